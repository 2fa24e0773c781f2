//! The fused single-pass driver shared by the losses on `(input1, input2, target)` row
//! pairs: [`CosineEmbedding`](crate::CosineEmbedding) and [`Contrastive`](crate::Contrastive).
//!
//! A loss supplies the per-row formula ([`PairRow`]); the driver reads each row pair and
//! its target once, writes the loss (or accumulates it in `f64`) and, in the fused variant,
//! the gradient rows, while the strict checks (finite rows, target in the encoding) ride
//! along as a running `&=`. The first offender is located only after a failed pass.

use crate::distance::{locate_non_finite, rows_of};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_row, non_finite, reduced_ok};
use crate::options::{Labels, Mode};
use crate::parts::{self, Chunks};
use crate::reduction::{check_buffer, check_upstream, Reduction};
use crate::rows::Rows;

pub(crate) const NAMES: (&str, &str) = ("input1", "input2");

/// A loss on one row pair and its target.
pub(crate) trait PairRow<T: Float>: Sync + Copy {
    /// The loss's name in errors.
    const LOSS: &'static str;
    /// The target encoding (strict mode accepts only its two labels).
    fn labels(&self) -> Labels;
    /// The loss of one row pair with stored target `t`.
    fn value(&self, a: &[T], b: &[T], t: T) -> T;
    /// The loss of one row pair; overwrites `ga` with `g·∂l/∂a` and `gb` with `g·∂l/∂b`.
    fn value_grad(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> T;
    /// [`value`](Self::value) and whether every element of `a` and `b` is finite; override
    /// it where the row pass can tell (the default scans the rows).
    #[inline(always)]
    fn value_finite(&self, a: &[T], b: &[T], t: T) -> (T, bool) {
        (self.value(a, b, t), finite(a) & finite(b))
    }
    /// [`value_grad`](Self::value_grad) and whether every element of `a` and `b` is finite.
    #[inline(always)]
    fn value_grad_finite(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool) {
        (self.value_grad(a, b, t, g, ga, gb), finite(a) & finite(b))
    }
    /// [`value_grad_finite`](Self::value_grad_finite) and whether a bound on the row's
    /// scalars proves every gradient element finite (strict mode scans the gradient rows
    /// only where it does not; the default proves nothing).
    #[inline(always)]
    fn value_grad_checked(
        &self,
        a: &[T],
        b: &[T],
        t: T,
        g: T,
        ga: &mut [T],
        gb: &mut [T],
    ) -> (T, bool, bool) {
        let (v, fin) = self.value_grad_finite(a, b, t, g, ga, gb);
        (v, fin, false)
    }
}

/// Whether every element of `row` is finite.
#[inline(always)]
pub(crate) fn finite<T: Float>(row: &[T]) -> bool {
    row.iter().fold(true, |ok, v| ok & v.is_finite())
}

/// The row count `N`, the row length `D` and the inputs' elements, checking that `input1`,
/// `input2` are `(N, D)` and `target` `(N)`.
#[allow(clippy::type_complexity)]
fn check_shapes<'a, T: Float>(
    loss: &'static str,
    x1: Rows<'a, T>,
    x2: Rows<'a, T>,
    target: &[T],
    mode: Mode,
) -> Result<(usize, usize, &'a [T], &'a [T])> {
    let shape = x1.shape();
    let r = rows_of(loss, NAMES, x1, x2, mode)?;
    crate::rows::per_row(loss, "target", target.len(), (NAMES.0, shape))?;
    Ok(r)
}

/// The first invalid element (error path only); `None` when every element is valid.
#[cold]
fn locate<T: Float>(loss: &'static str, labels: Labels, x1: &[T], x2: &[T], target: &[T]) -> Option<Error> {
    if !(finite(x1) && finite(x2)) {
        return Some(locate_non_finite(loss, NAMES, x1, x2));
    }
    for (i, &t) in target.iter().enumerate() {
        if !t.is_finite() {
            return Some(non_finite(loss, "target", i, t));
        }
        if !labels.accepts(t) {
            return Some(Error::Domain {
                loss,
                arg: "target",
                index: i,
                value: Value(t.f64()),
                expected: labels.expected(),
                hint: labels.hint(t),
            });
        }
    }
    None
}

/// The error of a failed strict pass (error path only): the first invalid element, else
/// the overflow (`grads` empty for a forward pass).
#[cold]
#[allow(clippy::too_many_arguments)]
fn error<T: Float, L: PairRow<T>>(
    l: &L,
    (x1, x2, target, dim): (&[T], &[T], &[T], usize),
    reduction: Reduction,
    upstream: &[T],
    out: &[T],
    grads: &[(&'static str, &[T])],
) -> Error {
    if let Some(e) = locate(L::LOSS, l.labels(), x1, x2, target) {
        return e;
    }
    let losses: Box<dyn Iterator<Item = T>> = match reduction {
        Reduction::None => Box::new(out.iter().copied()),
        _ => Box::new(
            x1.chunks_exact(dim).zip(x2.chunks_exact(dim)).zip(target).map(|((a, b), &t)| l.value(a, b, t)),
        ),
    };
    crate::kernel::locate_overflow(L::LOSS, upstream, losses.map(|v| v.is_finite()), grads)
}

/// Forward only: `out` has `reduction.output_len(N)` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Float, L: PairRow<T>>(
    l: &L,
    mode: Mode,
    x1: Rows<'_, T>,
    x2: Rows<'_, T>,
    target: &[T],
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    let (n, dim, x1, x2) = check_shapes(L::LOSS, x1, x2, target, mode)?;
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    let ok = if mode.is_strict() {
        pass::<T, L, true, false>(l, x1, x2, target, dim, reduction, &[], out, &mut [], &mut [])
            && reduced_ok(reduction, out, &[])
    } else {
        pass::<T, L, false, false>(l, x1, x2, target, dim, reduction, &[], out, &mut [], &mut [])
    };
    if ok {
        Ok(())
    } else {
        Err(error(l, (x1, x2, target, dim), reduction, &[], out, &[]))
    }
}

/// Fused forward and backward: the loss into `out`, `upstream · ∂out/∂input{1,2}` into
/// `grad1`, `grad2`, reading each row pair once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_backward<T: Float, L: PairRow<T>>(
    l: &L,
    mode: Mode,
    x1: Rows<'_, T>,
    x2: Rows<'_, T>,
    target: &[T],
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad1: &mut [T],
    grad2: &mut [T],
) -> Result<()> {
    let (n, dim, x1, x2) = check_shapes(L::LOSS, x1, x2, target, mode)?;
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    check_buffer(L::LOSS, "grad input1", grad1.len(), x1.len())?;
    check_buffer(L::LOSS, "grad input2", grad2.len(), x2.len())?;
    check_upstream(L::LOSS, reduction, upstream.len(), n)?;
    let ok = if mode.is_strict() {
        pass::<T, L, true, true>(l, x1, x2, target, dim, reduction, upstream, out, grad1, grad2)
            && reduced_ok(reduction, out, upstream)
    } else {
        pass::<T, L, false, true>(l, x1, x2, target, dim, reduction, upstream, out, grad1, grad2)
    };
    if ok {
        Ok(())
    } else {
        let grads = [("input1", &*grad1), ("input2", &*grad2)];
        Err(error(l, (x1, x2, target, dim), reduction, upstream, out, &grads))
    }
}

/// One pass over all row pairs in the fixed tree of parts ([`crate::parts`]), each part
/// run through [`crate::simd::vectorize`]: losses into `out` (or their reduction) and,
/// with `GRAD`, the gradient rows times the upstream gradient into `grad1`, `grad2`.
#[allow(clippy::too_many_arguments)]
fn pass<T: Float, L: PairRow<T>, const STRICT: bool, const GRAD: bool>(
    l: &L,
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad1: &mut [T],
    grad2: &mut [T],
) -> bool {
    let n = target.len();
    let l = *l;
    let (x1, x2) = (Chunks(x1, dim), Chunks(x2, dim));
    let (grad1, grad2) = (Chunks(grad1, dim), Chunks(grad2, dim));
    if reduction == Reduction::None {
        // One upstream value applies to every row (empty only for N = 0).
        let g = upstream.first().copied().unwrap_or(T::zero());
        let ups = if upstream.len() == 1 { &[][..] } else { upstream };
        parts::run(
            n,
            dim,
            (x1, x2, target, ups, out, grad1, grad2),
            &|(x1, x2, target, ups, out, grad1, grad2)| {
                let out = Some(out);
                crate::simd::vectorize(Part::<T, L, STRICT, GRAD> {
                    l,
                    x1,
                    x2,
                    target,
                    ups,
                    g,
                    out,
                    grad1,
                    grad2,
                })
                .1
            },
            &|a, b| a & b,
        )
    } else {
        let g = if GRAD { reduction.scale(upstream[0], n) } else { T::zero() };
        let (sum, ok) = parts::run(
            n,
            dim,
            (x1, x2, target, grad1, grad2),
            &|(x1, x2, target, grad1, grad2)| {
                let (ups, out) = (&[][..], None);
                crate::simd::vectorize(Part::<T, L, STRICT, GRAD> {
                    l,
                    x1,
                    x2,
                    target,
                    ups,
                    g,
                    out,
                    grad1,
                    grad2,
                })
            },
            &|(a, oka), (b, okb)| (a + b, oka & okb),
        );
        out[0] = reduction.finish(sum, n);
        ok
    }
}

/// One part of a pass: its rows, the upstream gradient per row (`ups`) or for all
/// (`g`), the per-row losses (`out`; else their sum is returned with the validity) and
/// the gradient rows (empty without `GRAD`).
struct Part<'a, T, L, const STRICT: bool, const GRAD: bool> {
    l: L,
    x1: Chunks<&'a [T]>,
    x2: Chunks<&'a [T]>,
    target: &'a [T],
    ups: &'a [T],
    g: T,
    out: Option<&'a mut [T]>,
    grad1: Chunks<&'a mut [T]>,
    grad2: Chunks<&'a mut [T]>,
}

impl<T: Float, L: PairRow<T>, const STRICT: bool, const GRAD: bool> pulp::WithSimd
    for Part<'_, T, L, STRICT, GRAD>
{
    type Output = (f64, bool);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool) {
        let Part { l, x1, x2, target, ups, g, mut out, grad1, grad2 } = self;
        let (dim, labels) = (x1.1, l.labels());
        let mut ok = true;
        let mut acc = 0.0f64;
        let rows = x1.0.chunks_exact(dim).zip(x2.0.chunks_exact(dim)).zip(target).enumerate();
        if GRAD {
            let grads = grad1.0.chunks_exact_mut(dim).zip(grad2.0.chunks_exact_mut(dim));
            for ((i, ((a, b), &t)), (ga, gb)) in rows.zip(grads) {
                let g = if ups.is_empty() { g } else { ups[i] };
                let (v, fin, bounded) = l.value_grad_checked(a, b, t, g, ga, gb);
                if STRICT {
                    // Finite rows must give a finite loss and gradient: proved by the bound,
                    // else the gradient rows (in L1) are scanned.
                    ok &= fin & labels.accepts(t) & v.is_finite();
                    ok &= bounded || (finite_row(ga) & finite_row(gb));
                }
                match out.as_deref_mut() {
                    Some(out) => out[i] = v,
                    None => acc += v.f64(),
                }
            }
        } else {
            for (i, ((a, b), &t)) in rows {
                let (v, fin) = l.value_finite(a, b, t);
                if STRICT {
                    ok &= fin & labels.accepts(t) & v.is_finite();
                }
                match out.as_deref_mut() {
                    Some(out) => out[i] = v,
                    None => acc += v.f64(),
                }
            }
        }
        (acc, ok)
    }
}

/// Generates the public `forward`, `forward_into` and `forward_backward` methods of a loss
/// on `(input1, input2, target)` row pairs whose options type has
/// `fn kernel<T>(&self) -> Result<K<T>>` (a [`PairRow`]) and a `mode` field.
macro_rules! pair_api {
    () => {
        /// Computes the loss, allocating the result (a scalar, or one value per row for
        /// [`Reduction::None`]) on `(N, D)` rows.
        ///
        /// # Errors
        /// In strict mode, the errors listed in this type's docs; in both modes, inputs whose
        /// shapes differ or a target that is not one label per row.
        pub fn forward<T: $crate::Float>(
            &self,
            input1: $crate::Rows<'_, T>,
            input2: $crate::Rows<'_, T>,
            target: &[T],
            reduction: $crate::Reduction,
        ) -> $crate::Result<$crate::Output<T>> {
            let mut out = vec![T::zero(); reduction.output_len(target.len())];
            self.forward_into(input1, input2, target, reduction, &mut out)?;
            Ok($crate::Output::from_buffer(reduction, out))
        }

        /// Computes the loss into `out` without allocating: `out` holds one value for
        /// `Mean`/`Sum` and `N` values for `None`.
        ///
        /// # Errors
        /// As [`forward`](Self::forward), plus a wrongly sized `out`.
        pub fn forward_into<T: $crate::Float>(
            &self,
            input1: $crate::Rows<'_, T>,
            input2: $crate::Rows<'_, T>,
            target: &[T],
            reduction: $crate::Reduction,
            out: &mut [T],
        ) -> $crate::Result<()> {
            let k = self.kernel::<T>()?;
            $crate::loss::pair::forward(&k, self.mode, input1, input2, target, reduction, out)
        }

        /// Fused forward and backward in one pass over the rows: writes the loss into `out` (as
        /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input{1,2}` into
        /// `grad_input1` and `grad_input2` (each as long as its input, overwritten), allocating nothing.
        ///
        /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`; for
        /// `None`, one value per row, or a single value applied to every row.
        ///
        /// # Errors
        /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or gradient
        /// buffers. On error the buffers' contents are unspecified.
        #[allow(clippy::too_many_arguments)]
        pub fn forward_backward<T: $crate::Float>(
            &self,
            input1: $crate::Rows<'_, T>,
            input2: $crate::Rows<'_, T>,
            target: &[T],
            reduction: $crate::Reduction,
            upstream: &[T],
            out: &mut [T],
            grad_input1: &mut [T],
            grad_input2: &mut [T],
        ) -> $crate::Result<()> {
            let k = self.kernel::<T>()?;
            $crate::loss::pair::forward_backward(
                &k,
                self.mode,
                input1,
                input2,
                target,
                reduction,
                upstream,
                out,
                grad_input1,
                grad_input2,
            )
        }
    };
}
pub(crate) use pair_api;
