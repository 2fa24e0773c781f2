//! The single-pass row driver shared by the class-index losses (`multi_margin`,
//! `multiclass_hinge`, `multilabel_margin`).
//!
//! The input is an `(N, C)` [`Rows`] view; each row has `targets_per_row(C)`
//! integer targets (any [`ClassIndex`] type) (one class index, or a `−1`-terminated list of C entries). A loss
//! supplies the per-row formula ([`ClassRows`]); the driver checks shapes, walks the rows
//! once (the target range check and the strict finiteness check ride along), reduces, and
//! locates the first offender only after a pass has failed.

use super::class_index::ClassIndex;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernel::non_finite;
use crate::options::Mode;
use crate::parts::{self, Chunks};
use crate::reduction::{check_buffer, check_upstream, Reduction};
use crate::rows::Rows;

/// One row's loss: the per-sample value as torch's `reduction='none'` output gives it (in
/// `T`), its contribution to a `mean`/`sum` reduction (in `f64`), and whether every input
/// element of the row is finite.
pub(crate) struct RowLoss<T> {
    pub value: T,
    pub reduced: f64,
    pub finite: bool,
}

/// A loss over rows of C class scores with integer targets.
pub(crate) trait ClassRows<T: Float>: Clone + Send + Sync {
    /// The loss's name in errors.
    const LOSS: &'static str;
    /// Number of targets per row of `classes` scores.
    fn targets_per_row(classes: usize) -> usize;
    /// Whether one target entry is in range (checked in both modes, before `row`).
    fn target_ok(v: i64, classes: usize) -> bool;
    /// Whether every target entry of a row is in range.
    #[inline(always)]
    fn targets_ok<I: ClassIndex>(t: &[I], classes: usize) -> bool {
        t.iter().fold(true, |ok, &v| ok & Self::target_ok(v.as_i64(), classes))
    }
    /// The error for the out-of-range target `value` at flat index `index`.
    fn target_error(index: usize, value: i64, classes: usize) -> Error;
    /// The loss of one row whose targets passed `targets_ok`.
    fn row<I: ClassIndex>(&mut self, x: &[T], t: &[I]) -> RowLoss<T>;
    /// The loss of one row and its gradient: overwrites `grad` (the row's C elements) with
    /// `up · ∂(per-sample loss)/∂x`, `scale` being [`grad_scale`](Self::grad_scale)'s value.
    fn row_grad<I: ClassIndex>(&mut self, x: &[T], t: &[I], scale: T, up: T, grad: &mut [T]) -> RowLoss<T>;
    /// The per-call gradient factor for `n` rows of `classes` (e.g. torch's
    /// `1/(N·C)` for mean).
    fn grad_scale(reduction: Reduction, n: usize, classes: usize) -> T;
    /// Whether every gradient element of a finite row is finite for this scale and
    /// upstream value, proved without looking at the row (strict mode scans the row
    /// otherwise). The default proves nothing.
    #[inline(always)]
    fn grad_bounded(&self, scale: T, up: T, classes: usize) -> bool {
        let _ = (scale, up, classes);
        false
    }
}

/// Checks the class count, the target's length against the input's rows, and emptiness;
/// returns N, C and the input's elements.
pub(crate) fn rows_of<'a, T: Float, K: ClassRows<T>, I: ClassIndex>(
    input: Rows<'a, T>,
    target: &[I],
    mode: Mode,
) -> Result<(usize, usize, &'a [T])> {
    let [n, classes] = input.shape();
    if classes == 0 {
        return Err(Error::Shape {
            loss: K::LOSS,
            arg: "input",
            got: vec![n, 0],
            expected: "at least one class (classes >= 1)".into(),
        });
    }
    let tpr = K::targets_per_row(classes);
    if Some(target.len()) != n.checked_mul(tpr) {
        let got = if tpr > 1 && target.len().is_multiple_of(tpr) {
            vec![target.len() / tpr, tpr]
        } else {
            vec![target.len()]
        };
        let expected = if tpr == 1 {
            format!("input has shape [{n}, {classes}], so target (one class index per row) has shape [{n}]")
        } else {
            format!("input has shape [{n}, {classes}], so target has shape [{n}, {classes}]")
        };
        return Err(Error::Shape { loss: K::LOSS, arg: "target", got, expected });
    }
    if n == 0 && mode.is_strict() {
        return Err(Error::Empty { loss: K::LOSS, arg: "input" });
    }
    Ok((n, classes, input.data()))
}

/// The first out-of-range target (error path only).
#[cold]
fn locate_target<T: Float, K: ClassRows<T>, I: ClassIndex>(target: &[I], classes: usize) -> Error {
    match target.iter().position(|&v| !K::target_ok(v.as_i64(), classes)) {
        Some(i) => K::target_error(i, target[i].as_i64(), classes),
        None => Error::Empty { loss: K::LOSS, arg: "target" },
    }
}

/// The first non-finite input element (error path only).
#[cold]
fn locate_non_finite_input<T: Float>(loss: &'static str, input: &[T]) -> Error {
    match input.iter().position(|v| !v.is_finite()) {
        Some(i) => non_finite(loss, "input", i, input[i]),
        None => Error::Empty { loss, arg: "input" },
    }
}

/// Forward only: `out` has `reduction.output_len(N)` elements.
pub(crate) fn forward<T: Float, K: ClassRows<T>, I: ClassIndex>(
    k: &K,
    mode: Mode,
    input: Rows<'_, T>,
    target: &[I],
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    let (n, classes, input) = rows_of::<T, K, I>(input, target, mode)?;
    check_buffer(K::LOSS, "output", out.len(), reduction.output_len(n))?;
    let strict = mode.is_strict();
    let (sum, finite, in_range) = pass::<T, K, I, false>(
        k,
        input,
        target,
        classes,
        reduction,
        (&[], T::zero(), T::zero()),
        out,
        &mut [],
        strict,
    );
    finish::<T, K, I>(k, mode, (input, target, classes), reduction, n, (in_range, finite, sum), &[], out, &[])
}

/// Fused forward and backward: one pass writes the loss into `out` and
/// `upstream · ∂out/∂input` into `grad` (overwritten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_backward<T: Float, K: ClassRows<T>, I: ClassIndex>(
    k: &K,
    mode: Mode,
    input: Rows<'_, T>,
    target: &[I],
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad: &mut [T],
) -> Result<()> {
    let (n, classes, input) = rows_of::<T, K, I>(input, target, mode)?;
    check_buffer(K::LOSS, "output", out.len(), reduction.output_len(n))?;
    check_buffer(K::LOSS, "grad input", grad.len(), input.len())?;
    check_upstream(K::LOSS, reduction, upstream.len(), n)?;
    let scale = K::grad_scale(reduction, n, classes);
    let ups = if upstream.len() == 1 { &[][..] } else { upstream };
    let up = (ups, upstream.first().copied().unwrap_or(T::zero()), scale);
    let strict = mode.is_strict();
    let (sum, finite, in_range) =
        pass::<T, K, I, true>(k, input, target, classes, reduction, up, out, grad, strict);
    finish::<T, K, I>(
        k,
        mode,
        (input, target, classes),
        reduction,
        n,
        (in_range, finite, sum),
        upstream,
        out,
        grad,
    )
}

/// One pass over all rows in the fixed tree of parts ([`crate::parts`]), each part run
/// through [`crate::simd::vectorize`] with its own copy of the kernel: per-row losses
/// into `out` (`None`) or the sum of the rows' contributions, and with `GRAD` the
/// gradient rows (`up`: the upstream gradient per row or for all, and the scale).
/// Returns the sum, whether every input was finite (with `strict`: and every loss and
/// gradient element) and whether every target was in range (a part stops at its first
/// out-of-range target).
#[allow(clippy::too_many_arguments)]
fn pass<T: Float, K: ClassRows<T>, I: ClassIndex, const GRAD: bool>(
    k: &K,
    input: &[T],
    target: &[I],
    classes: usize,
    reduction: Reduction,
    (ups, up, scale): (&[T], T, T),
    out: &mut [T],
    grad: &mut [T],
    strict: bool,
) -> (f64, bool, bool) {
    let n = input.len() / classes;
    let tpr = K::targets_per_row(classes);
    let out = if reduction == Reduction::None { out } else { &mut [] };
    parts::run(
        n,
        classes,
        (Chunks(input, classes), Chunks(target, tpr), ups, out, Chunks(grad, classes)),
        &|(x, t, ups, out, g)| {
            let k = k.clone();
            crate::simd::vectorize(Part::<T, K, I, GRAD> { k, x, t, ups, up, scale, out, g, strict })
        },
        &|(a, fa, ra), (b, fb, rb)| (a + b, fa & fb, ra & rb),
    )
}

/// One part of [`pass`].
struct Part<'a, T, K, I, const GRAD: bool> {
    k: K,
    x: Chunks<&'a [T]>,
    t: Chunks<&'a [I]>,
    ups: &'a [T],
    up: T,
    scale: T,
    out: &'a mut [T],
    g: Chunks<&'a mut [T]>,
    strict: bool,
}

impl<T: Float, K: ClassRows<T>, I: ClassIndex, const GRAD: bool> pulp::WithSimd for Part<'_, T, K, I, GRAD> {
    type Output = (f64, bool, bool);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool, bool) {
        let Part { mut k, x, t, ups, up, scale, out, g, strict } = self;
        let classes = x.1;
        let (mut finite, mut in_range) = (true, true);
        let mut acc = [0.0f64; 4];
        let rows = x.0.chunks_exact(classes).zip(t.0.chunks_exact(t.1)).enumerate();
        let mut grows = g.0.chunks_exact_mut(classes);
        for (i, (x, t)) in rows {
            if !K::targets_ok(t, classes) {
                in_range = false;
                break;
            }
            let r = match grows.next() {
                Some(g) if GRAD => {
                    let u = if ups.is_empty() { up } else { ups[i] };
                    let r = k.row_grad(x, t, scale, u, g);
                    // Strict: a finite row must give a finite gradient, proved by the
                    // kernel's bound or else by a scan of the row (in L1).
                    if strict {
                        finite &= k.grad_bounded(scale, u, classes) || crate::kernel::finite_row(g);
                    }
                    r
                }
                _ => k.row(x, t),
            };
            // Strict: a per-row loss must be finite (a reduced pass checks its total).
            finite &= r.finite & (!strict || out.is_empty() || r.value.is_finite());
            match out.get_mut(i) {
                Some(o) => *o = r.value,
                None => acc[i % 4] += r.reduced,
            }
        }
        ((acc[0] + acc[2]) + (acc[1] + acc[3]), finite, in_range)
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn finish<T: Float, K: ClassRows<T>, I: ClassIndex>(
    k: &K,
    mode: Mode,
    (input, target, classes): (&[T], &[I], usize),
    reduction: Reduction,
    n: usize,
    (in_range, finite, sum): (bool, bool, f64),
    upstream: &[T],
    out: &mut [T],
    grad: &[T],
) -> Result<()> {
    if !in_range {
        return Err(locate_target::<T, K, I>(target, classes));
    }
    if reduction != Reduction::None {
        out[0] = reduction.finish(sum, n);
    }
    if mode.is_strict() && !(finite && crate::kernel::reduced_ok(reduction, out, upstream)) {
        return Err(strict_error(k, (input, target, classes), reduction, upstream, out, grad));
    }
    Ok(())
}

/// The error of a failed strict pass (error path only): the first non-finite input, else
/// the overflow.
#[cold]
fn strict_error<T: Float, K: ClassRows<T>, I: ClassIndex>(
    k: &K,
    (input, target, classes): (&[T], &[I], usize),
    reduction: Reduction,
    upstream: &[T],
    out: &[T],
    grad: &[T],
) -> Error {
    if input.iter().any(|v| !v.is_finite()) {
        return locate_non_finite_input(K::LOSS, input);
    }
    let mut k = k.clone();
    // Unreduced: each row's loss in T; reduced: each row's contribution to the sum.
    let losses: Vec<bool> = match reduction {
        Reduction::None => out.iter().map(|v| v.is_finite()).collect(),
        _ => {
            let tpr = K::targets_per_row(classes);
            let rows = input.chunks_exact(classes).zip(target.chunks_exact(tpr));
            rows.map(|(x, t)| k.row(x, t).reduced.is_finite()).collect()
        }
    };
    crate::kernel::locate_overflow(K::LOSS, upstream, losses.into_iter(), &[("input", grad)])
}
