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
use crate::kernel::non_finite;
use crate::options::{Labels, Mode};
use crate::reduction::{check_buffer, check_upstream, Reduction};

pub(crate) const NAMES: (&str, &str) = ("input1", "input2");

/// A loss on one row pair and its target.
pub(crate) trait PairRow<T: Float> {
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
}

/// Whether every element of `row` is finite.
#[inline(always)]
pub(crate) fn finite<T: Float>(row: &[T]) -> bool {
    row.iter().fold(true, |ok, v| ok & v.is_finite())
}

/// The number of rows `N`, checking that `input1`, `input2` are `(N, dim)` and `target` `(N)`.
fn check_shapes<T: Float>(
    loss: &'static str,
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    mode: Mode,
) -> Result<usize> {
    let n = rows_of(loss, NAMES, x1, x2, dim, mode)?;
    if target.len() != n {
        return Err(Error::Shape {
            loss,
            arg: "target",
            got: vec![target.len()],
            expected: format!("input1 has shape [{n}, {dim}], so target has shape [{n}]"),
        });
    }
    Ok(n)
}

/// The first invalid element (error path only).
#[cold]
fn locate<T: Float>(loss: &'static str, labels: Labels, x1: &[T], x2: &[T], target: &[T]) -> Error {
    if !(finite(x1) && finite(x2)) {
        return locate_non_finite(loss, NAMES, x1, x2);
    }
    for (i, &t) in target.iter().enumerate() {
        if !t.is_finite() {
            return non_finite(loss, "target", i, t);
        }
        if !labels.accepts(t) {
            return Error::Domain {
                loss,
                arg: "target",
                index: i,
                value: Value(t.f64()),
                expected: labels.expected(),
                hint: labels.hint(t),
            };
        }
    }
    // Not reached: the pass found an invalid element and the checks are deterministic.
    Error::Empty { loss, arg: "input1" }
}

/// Forward only: `out` has `reduction.output_len(N)` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Float, L: PairRow<T>>(
    l: &L,
    mode: Mode,
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    let n = check_shapes(L::LOSS, x1, x2, target, dim, mode)?;
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    let ok = if mode.is_strict() {
        forward_pass::<T, L, true>(l, x1, x2, target, dim, reduction, out)
    } else {
        forward_pass::<T, L, false>(l, x1, x2, target, dim, reduction, out)
    };
    if ok {
        Ok(())
    } else {
        Err(locate(L::LOSS, l.labels(), x1, x2, target))
    }
}

#[inline(always)]
fn forward_pass<T: Float, L: PairRow<T>, const STRICT: bool>(
    l: &L,
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    reduction: Reduction,
    out: &mut [T],
) -> bool {
    let labels = l.labels();
    let mut ok = true;
    let mut acc = 0.0f64;
    let rows = x1.chunks_exact(dim).zip(x2.chunks_exact(dim)).zip(target);
    for (i, ((a, b), &t)) in rows.enumerate() {
        let (v, fin) = l.value_finite(a, b, t);
        if STRICT {
            ok &= fin & labels.accepts(t);
        }
        match reduction {
            Reduction::None => out[i] = v,
            _ => acc += v.f64(),
        }
    }
    if reduction != Reduction::None {
        out[0] = reduction.finish(acc, target.len());
    }
    ok
}

/// Fused forward and backward: the loss into `out`, `upstream · ∂out/∂input{1,2}` into
/// `grad1`, `grad2`, reading each row pair once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_backward<T: Float, L: PairRow<T>>(
    l: &L,
    mode: Mode,
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad1: &mut [T],
    grad2: &mut [T],
) -> Result<()> {
    let n = check_shapes(L::LOSS, x1, x2, target, dim, mode)?;
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    check_buffer(L::LOSS, "grad input1", grad1.len(), x1.len())?;
    check_buffer(L::LOSS, "grad input2", grad2.len(), x2.len())?;
    check_upstream(L::LOSS, reduction, upstream.len(), n)?;
    let ok = if mode.is_strict() {
        fused_pass::<T, L, true>(l, x1, x2, target, dim, reduction, upstream, out, grad1, grad2)
    } else {
        fused_pass::<T, L, false>(l, x1, x2, target, dim, reduction, upstream, out, grad1, grad2)
    };
    if ok {
        Ok(())
    } else {
        Err(locate(L::LOSS, l.labels(), x1, x2, target))
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fused_pass<T: Float, L: PairRow<T>, const STRICT: bool>(
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
    let labels = l.labels();
    let n = target.len();
    let reduced = reduction != Reduction::None;
    let g0 = if reduced {
        reduction.scale(upstream[0], n)
    } else {
        upstream.first().copied().unwrap_or(T::zero())
    };
    let per_row = !reduced && upstream.len() != 1;
    let mut ok = true;
    let mut acc = 0.0f64;
    let rows = x1
        .chunks_exact(dim)
        .zip(x2.chunks_exact(dim))
        .zip(target)
        .zip(grad1.chunks_exact_mut(dim).zip(grad2.chunks_exact_mut(dim)));
    for (i, (((a, b), &t), (ga, gb))) in rows.enumerate() {
        let g = if per_row { upstream[i] } else { g0 };
        let (v, fin) = l.value_grad_finite(a, b, t, g, ga, gb);
        if STRICT {
            ok &= fin & labels.accepts(t);
        }
        if reduced {
            acc += v.f64();
        } else {
            out[i] = v;
        }
    }
    if reduced {
        out[0] = reduction.finish(acc, n);
    }
    ok
}

/// Generates the public `forward`, `forward_into` and `forward_backward` methods of a loss
/// on `(input1, input2, target)` row pairs whose options type has
/// `fn kernel<T>(&self) -> Result<K<T>>` (a [`PairRow`]) and a `mode` field.
macro_rules! pair_api {
    () => {
        /// Computes the loss, allocating the result (a scalar, or one value per row for
        /// [`Reduction::None`]); `dim` is the row length D.
        ///
        /// # Errors
        /// In strict mode, the errors listed in this type's docs; in both modes, lengths that
        /// are not `N·dim`, `N·dim` and `N`.
        pub fn forward<T: $crate::Float>(
            &self,
            input1: &[T],
            input2: &[T],
            target: &[T],
            dim: usize,
            reduction: $crate::Reduction,
        ) -> $crate::Result<$crate::Output<T>> {
            let mut out = vec![T::zero(); reduction.output_len(target.len())];
            self.forward_into(input1, input2, target, dim, reduction, &mut out)?;
            Ok($crate::Output::from_buffer(reduction, out))
        }

        /// Computes the loss into `out` without allocating: `out` holds one value for
        /// `Mean`/`Sum` and `N` values for `None`.
        ///
        /// # Errors
        /// As [`forward`](Self::forward), plus a wrongly sized `out`.
        pub fn forward_into<T: $crate::Float>(
            &self,
            input1: &[T],
            input2: &[T],
            target: &[T],
            dim: usize,
            reduction: $crate::Reduction,
            out: &mut [T],
        ) -> $crate::Result<()> {
            let k = self.kernel::<T>()?;
            $crate::loss::pair::forward(&k, self.mode, input1, input2, target, dim, reduction, out)
        }

        /// Fused forward and backward in one pass over the rows: writes the loss into `out` (as
        /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input{1,2}` into
        /// `grad_input1` and `grad_input2` (each `N·dim`, overwritten), allocating nothing.
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
            input1: &[T],
            input2: &[T],
            target: &[T],
            dim: usize,
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
                dim,
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
