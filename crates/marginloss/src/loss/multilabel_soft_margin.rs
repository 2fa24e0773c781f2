//! PyTorch's `MultiLabelSoftMarginLoss`: one logistic loss per class, averaged over C.

use crate::distance::rows_of;
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{add_lanes, non_finite, padded, sum_lanes, BLOCK, LANES};
use crate::options::Mode;
use crate::parts::{self, Chunks};
use crate::reduction::{check_buffer, check_upstream, Output, Reduction};
use crate::rows::Rows;

const LOSS: &str = "multilabel_soft_margin";

/// PyTorch's `MultiLabelSoftMarginLoss` on `(N, C)` logits with per-class targets
/// `t_nc ∈ [0, 1]` (multi-hot, or soft labels):
///
/// ```text
/// l_n = −(1/C) · Σ_c w_c · [ t_nc · logσ(x_nc) + (1 − t_nc) · logσ(−x_nc) ]
/// logσ(v) = min(v, 0) − log1p(exp(−|v|))          (stable, as torch's log_sigmoid)
/// ```
///
/// `w` is the optional class weight (all ones when absent). The sum is divided by **C,
/// not by Σw** (as torch), then the per-sample losses are reduced by [`Reduction`] (mean
/// over the N samples by default).
///
/// * **Shapes:** `input` is `(N, C)` [`Rows`](crate::Rows); `target` is flat, C entries
///   per row (`N·C` in all, row-major); a 1-D input of C logits is
///   [`Rows::single`](crate::Rows::single), N = 1. `weight`, if given, has C elements
///   (torch's broadcasting of `target` and `weight` is not reproduced). The output has N
///   values for `None`, else one.
/// * **Gradient:** `∂l_n/∂x_nc = (w_c/C)·(σ(x_nc) − t_nc)`, computed as
///   `(1 − t)·σ(x) − t·σ(−x)` so that it does not cancel for large `|x|`. The loss is
///   smooth (no kink); `target` and `weight` get no gradient.
/// * **Errors (strict):** NaN/±Inf in `input`, `target` or `weight`, a target outside
///   `[0, 1]` (with a hint when it looks like a ±1 label), empty input. In both modes:
///   an input with no columns (C = 0), a target that is not C entries per row, a weight
///   of length ≠ C.
/// * **Torch-compat** uses any real target as it is (a target of −1 weights the
///   `logσ(−x)` term by 2), propagates NaN, and gives NaN (mean) or 0 (sum) for an empty
///   batch. Negative weights are accepted in both modes, as torch accepts them.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.MultiLabelSoftMarginLoss(weight)`, `F.multilabel_soft_margin_loss` |
/// | Keras | `keras.losses.BinaryCrossentropy(from_logits=True)` (mean over the last axis; weights differ) |
/// | scikit-learn | none (`metrics.log_loss` per label on `sigmoid(x)`) |
/// | optax | `optax.losses.sigmoid_binary_cross_entropy(x, t).mean(-1)` (no class weight) |
///
/// ```
/// use marginloss::{MultilabelSoftMargin, Reduction, Rows};
/// // The spec's golden vectors (torch 2.15, fixture spec_golden).
/// let x = [0.3f64, -1.2, 2.0, 0.0, 0.5, -0.5];
/// let x = Rows::new(&x, 2, 3)?; // N = 2 samples of C = 3 logits
/// let t = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
/// let l = MultilabelSoftMargin::new().forward(x, &t, None, Reduction::None)?.into_vec();
/// assert!((l[0] - 0.31485525).abs() < 1e-8 && (l[1] - 0.71376705).abs() < 1e-8);
/// let w = [1.0, 2.0, 0.5];
/// let l = MultilabelSoftMargin::new().forward(x, &t, Some(&w), Reduction::None)?.into_vec();
/// assert!((l[0] - 0.381461394888692).abs() < 1e-14 && (l[1] - 0.709446547003404).abs() < 1e-14);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MultilabelSoftMargin {
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl MultilabelSoftMargin {
    /// The loss with its defaults: strict.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks the shapes and the weight; returns the number of samples N, the number of
    /// classes C and the input's elements.
    fn check<'a, T: Float>(
        &self,
        input: Rows<'a, T>,
        target: &'a [T],
        weight: Option<&[T]>,
    ) -> Result<(usize, usize, &'a [T])> {
        let [n, classes] = input.shape();
        if Some(target.len()) != n.checked_mul(classes) {
            return Err(Error::Shape {
                loss: LOSS,
                arg: "target",
                got: vec![target.len()],
                expected: format!("input has shape [{n}, {classes}], so target has shape [{n}, {classes}]"),
            });
        }
        let (n, classes, input, _) =
            rows_of(LOSS, ("input", "target"), input, Rows::new(target, n, classes)?, self.mode)?;
        if let Some(w) = weight {
            if w.len() != classes {
                return Err(Error::Shape {
                    loss: LOSS,
                    arg: "weight",
                    got: vec![w.len()],
                    expected: format!("input has {classes} classes"),
                });
            }
            if self.mode.is_strict() {
                if let Some(c) = w.iter().position(|v| !v.is_finite()) {
                    return Err(non_finite(LOSS, "weight", c, w[c]));
                }
            }
        }
        Ok((n, classes, input))
    }

    /// Computes the loss, allocating the result (a scalar, or one value per sample for
    /// [`Reduction::None`]) of the `(N, C)` logits `input`, with C targets per row.
    ///
    /// # Errors
    /// In strict mode, the errors listed in this type's docs; in both modes, the shape
    /// errors (an [`Error::Shape`] naming the argument and the shape expected).
    pub fn forward<T: Float>(
        &self,
        input: Rows<'_, T>,
        target: &[T],
        weight: Option<&[T]>,
        reduction: Reduction,
    ) -> Result<Output<T>> {
        let (n, ..) = self.check(input, target, weight)?;
        let mut out = vec![T::zero(); reduction.output_len(n)];
        self.forward_into(input, target, weight, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    /// Computes the loss into `out` without allocating: `out` holds one value for
    /// `Mean`/`Sum` and N = `input.rows()` values for `None`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        input: Rows<'_, T>,
        target: &[T],
        weight: Option<&[T]>,
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let (n, classes, input) = self.check(input, target, weight)?;
        check_buffer(LOSS, "output", out.len(), reduction.output_len(n))?;
        let ok = if self.mode.is_strict() {
            pass::<T, true>(input, target, classes, weight, reduction, None, out)
                && crate::kernel::reduced_ok(reduction, out, &[])
        } else {
            pass::<T, false>(input, target, classes, weight, reduction, None, out)
        };
        if ok {
            Ok(())
        } else {
            Err(error((input, target, classes, weight), reduction, &[], out, &[]))
        }
    }

    /// Fused forward and backward in one pass over memory: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input` into
    /// `grad_input` (same length as `input`, overwritten), allocating nothing.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`;
    /// for `None`, one value per sample, or a single value applied to every sample
    /// (`&[1.0]` gives the gradient of the sum of the output).
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or
    /// `grad_input`. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        input: Rows<'_, T>,
        target: &[T],
        weight: Option<&[T]>,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let (n, classes, input) = self.check(input, target, weight)?;
        check_buffer(LOSS, "output", out.len(), reduction.output_len(n))?;
        check_buffer(LOSS, "grad input", grad_input.len(), input.len())?;
        check_upstream(LOSS, reduction, upstream.len(), n)?;
        let ok = if self.mode.is_strict() {
            pass::<T, true>(
                input,
                target,
                classes,
                weight,
                reduction,
                Some((upstream, &mut *grad_input)),
                out,
            ) && crate::kernel::reduced_ok(reduction, out, upstream)
        } else {
            pass::<T, false>(input, target, classes, weight, reduction, Some((upstream, grad_input)), out)
        };
        if ok {
            Ok(())
        } else {
            Err(error((input, target, classes, weight), reduction, upstream, out, grad_input))
        }
    }
}

/// [`MultilabelSoftMargin`] with its defaults and no class weight on `(N, C)` rows of
/// `f32` or `f64` logits.
///
/// ```
/// use marginloss::{multilabel_soft_margin, Reduction, Rows};
/// // −(1/C)·Σ_c [t·logσ(x) + (1 − t)·logσ(−x)] at x = 0 is ln 2 whatever the labels
/// let l = multilabel_soft_margin(Rows::single(&[0.0f64, 0.0]), &[1.0, 0.0], Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`MultilabelSoftMargin::forward`].
pub fn multilabel_soft_margin<T: Float>(
    input: Rows<'_, T>,
    target: &[T],
    reduction: Reduction,
) -> Result<Output<T>> {
    MultilabelSoftMargin::new().forward(input, target, None, reduction)
}

#[inline(always)]
fn valid<T: Float>(x: T, t: T) -> bool {
    x.is_finite() & (t >= T::zero()) & (t <= T::one())
}

/// `min(v, 0)` that keeps NaN.
#[inline(always)]
fn min0<T: Float>(v: T) -> T {
    T::select(v >= T::zero(), T::zero(), v)
}

/// The element's loss `−[t·logσ(x) + (1 − t)·logσ(−x)]` and its derivative
/// `(1 − t)·σ(x) − t·σ(−x)`, from `e = exp(−|x|)` (one exp, one log, one division).
#[inline(always)]
fn element<T: Float>(x: T, t: T) -> (T, T) {
    let (sp, e, inv) = x.abs().softplus_parts();
    let (pos, neg) = (min0(x) - sp, min0(-x) - sp);
    let loss = -(t * pos + (T::one() - t) * neg);
    let (near, far) = (inv, e * inv); // σ(|x|), σ(−|x|)
    let p = x >= T::zero();
    let (sx, snx) = (T::select(p, near, far), T::select(p, far, near));
    (loss, (T::one() - t) * sx - t * snx)
}

/// One row: the weighted sum of the element losses (8 lanes in `T`, added in `f64`) and,
/// with `GRAD`, `w·∂l/∂x·gr` into `grow`; `ws` is empty when there are no weights.
#[inline(always)]
fn row_terms<T: Float, const STRICT: bool, const GRAD: bool, const WEIGHTED: bool>(
    xs: &[T],
    ts: &[T],
    ws: &[T],
    gr: T,
    grow: &mut [T],
) -> (f64, bool) {
    let mut acc = [T::zero(); LANES];
    let mut ok = true;
    let n = xs.len();
    let full = n / BLOCK * BLOCK;
    let ts = &ts[..n];
    let mut grows = grow.as_chunks_mut::<BLOCK>().0.iter_mut();
    let (mut vals, mut scratch) = ([T::zero(); BLOCK], [T::zero(); BLOCK]);
    for (bi, (xv, tv)) in xs.as_chunks::<BLOCK>().0.iter().zip(ts.as_chunks::<BLOCK>().0).enumerate() {
        let wv = if WEIGHTED { ws[bi * BLOCK..(bi + 1) * BLOCK].try_into().ok() } else { None };
        // The gradient goes straight into the row's block (a scratch block without GRAD).
        let ds = match grows.next() {
            Some(gv) if GRAD => gv,
            _ => &mut scratch,
        };
        ok &= block::<T, STRICT, GRAD>(xv, tv, wv, gr, &mut vals, ds);
        add_lanes(&mut acc, &vals);
    }
    if full < n {
        // The row's last, short block, padded with valid zeros whose results are dropped.
        let len = n - full;
        let (xv, tv) = (padded(&xs[full..], T::zero()), padded(&ts[full..], T::zero()));
        let wv = if WEIGHTED { Some(padded(&ws[full..n], T::zero())) } else { None };
        ok &= block::<T, STRICT, GRAD>(&xv, &tv, wv.as_ref(), gr, &mut vals, &mut scratch);
        if GRAD {
            grow[full..].copy_from_slice(&scratch[..len]);
        }
        for (i, &v) in vals[..len].iter().enumerate() {
            acc[i % LANES] = acc[i % LANES] + v;
        }
    }
    (sum_lanes(&acc.map(Float::f64)), ok)
}

/// One block of a row: the weighted losses into `vals`, `w·∂l/∂x·gr` into `ds` (with
/// `GRAD`); returns whether every element is valid (with `STRICT`). Fixed-size blocks and
/// the checks in a loop of their own: each loop is a plain map the optimiser vectorises
/// at any width.
#[inline(always)]
fn block<T: Float, const STRICT: bool, const GRAD: bool>(
    xv: &[T; BLOCK],
    tv: &[T; BLOCK],
    wv: Option<&[T; BLOCK]>,
    gr: T,
    vals: &mut [T; BLOCK],
    ds: &mut [T; BLOCK],
) -> bool {
    let ones = [T::one(); BLOCK];
    let wv = wv.unwrap_or(&ones);
    for i in 0..BLOCK {
        let (l, d) = element(xv[i], tv[i]);
        vals[i] = l * wv[i];
        if GRAD {
            ds[i] = d * wv[i] * gr;
        }
    }
    let mut oks = [true; BLOCK];
    if STRICT {
        for i in 0..BLOCK {
            oks[i] = valid(xv[i], tv[i]);
        }
    }
    oks.iter().fold(true, |a, &b| a & b)
}

/// The single pass: each row's loss goes to `out` (`None`) or into an `f64` sum; with
/// `grad = Some((upstream, grad_input))` the gradient is written in the same pass.
/// Returns whether every element was valid (always true unless `STRICT`). Rows are cut
/// into the fixed tree of parts ([`crate::parts`]), each run through
/// [`crate::simd::vectorize`].
#[inline(always)]
fn pass<T: Float, const STRICT: bool>(
    input: &[T],
    target: &[T],
    classes: usize,
    weight: Option<&[T]>,
    reduction: Reduction,
    grad: Option<(&[T], &mut [T])>,
    out: &mut [T],
) -> bool {
    let n = input.len() / classes;
    let c = T::of(classes as f64);
    let reduced = reduction != Reduction::None;
    let w = weight.unwrap_or(&[]);
    // |∂l/∂x| ≤ 1 for a target in [0, 1], so a gradient element is at most |w|·|gr|.
    let wmax = if w.is_empty() { 1.0 } else { w.iter().fold(0.0f64, |m, v| m.max(v.f64().abs())) };
    let (x, t) = (Chunks(input, classes), Chunks(target, classes));
    let run = |ups: &[T], g: T, gs: &mut [T], out: &mut [T], grad: bool| {
        let gs = Chunks(gs, classes);
        parts::run(
            n,
            classes,
            (x, t, ups, out, gs),
            &|(x, t, ups, out, gs)| {
                let part = Part { x, t, w, wmax, ups, g, c, out, gs };
                match (grad, w.is_empty()) {
                    (false, true) => crate::simd::vectorize(With::<_, STRICT, false, false>(part)),
                    (false, false) => crate::simd::vectorize(With::<_, STRICT, false, true>(part)),
                    (true, true) => crate::simd::vectorize(With::<_, STRICT, true, false>(part)),
                    (true, false) => crate::simd::vectorize(With::<_, STRICT, true, true>(part)),
                }
            },
            &|(a, oka), (b, okb)| (a + b, oka & okb),
        )
    };
    let out_rows = if reduced { &mut [][..] } else { &mut out[..] };
    let (total, ok) = match grad {
        None => run(&[], T::zero(), &mut [], out_rows, false),
        Some((up, gs)) => {
            // `upstream` is empty only for an empty `None` call, which reads no row.
            let g = reduction.scale(up.first().copied().unwrap_or_else(T::zero), n);
            let ups = if !reduced && up.len() != 1 { up } else { &[] };
            run(ups, g, gs, out_rows, true)
        }
    };
    if reduced {
        out[0] = reduction.finish(total, n);
    }
    ok
}

/// One part of [`pass`]: its rows of inputs and targets, the weights (empty: none), the
/// upstream gradient per row (`ups`) or for all (`g`), `C`, the per-row losses (`out`,
/// empty when reduced: the sum is returned instead) and the gradient rows.
struct Part<'a, T> {
    x: Chunks<&'a [T]>,
    t: Chunks<&'a [T]>,
    w: &'a [T],
    wmax: f64,
    ups: &'a [T],
    g: T,
    c: T,
    out: &'a mut [T],
    gs: Chunks<&'a mut [T]>,
}

/// [`Part`] with its pass's flags, for [`crate::simd::vectorize`].
struct With<P, const STRICT: bool, const GRAD: bool, const WEIGHTED: bool>(P);

impl<T: Float, const STRICT: bool, const GRAD: bool, const WEIGHTED: bool> pulp::WithSimd
    for With<Part<'_, T>, STRICT, GRAD, WEIGHTED>
{
    type Output = (f64, bool);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool) {
        let Part { x, t, w, wmax, ups, g, c, out, gs } = self.0;
        let lim = crate::kernel::grad_limit::<T>();
        let classes = x.1;
        let mut ok = true;
        let mut total = 0.0f64;
        let rows = x.0.chunks_exact(classes).zip(t.0.chunks_exact(classes)).enumerate();
        let mut grows = gs.0.chunks_exact_mut(classes);
        for (r, (xs, ts)) in rows {
            let (row, row_ok) = match grows.next() {
                Some(grow) if GRAD => {
                    let gr = (if ups.is_empty() { g } else { ups[r] }) / c;
                    let (row, row_ok) = row_terms::<T, STRICT, true, WEIGHTED>(xs, ts, w, gr, grow);
                    // Strict: finite rows must give a finite gradient (the row is in L1).
                    let bounded = gr.f64().abs() * wmax < lim;
                    (row, row_ok & (!STRICT || bounded || crate::kernel::finite_row(grow)))
                }
                _ => row_terms::<T, STRICT, false, WEIGHTED>(xs, ts, w, T::zero(), &mut []),
            };
            ok &= row_ok;
            // As torch: the row sum in T, then / C in T.
            let v = T::of(row) / c;
            if STRICT && !out.is_empty() {
                ok &= v.is_finite();
            }
            match out.get_mut(r) {
                Some(o) => *o = v,
                None => total += v.f64(),
            }
        }
        (total, ok)
    }
}

/// The error of a failed strict pass (error path only): the first offending element,
/// else the overflow (`grad` empty for a forward pass).
#[cold]
#[allow(clippy::too_many_arguments)]
fn error<T: Float>(
    (input, target, classes, weight): (&[T], &[T], usize, Option<&[T]>),
    reduction: Reduction,
    upstream: &[T],
    out: &[T],
    grad: &[T],
) -> Error {
    if let Some(e) = locate(input, target) {
        return e;
    }
    let c = T::of(classes as f64);
    let w = weight.unwrap_or(&[]);
    let losses: Vec<bool> = match reduction {
        Reduction::None => out.iter().map(|v| v.is_finite()).collect(),
        _ => {
            let rows = input.chunks_exact(classes).zip(target.chunks_exact(classes));
            rows.map(|(xs, ts)| {
                let (row, _) = if w.is_empty() {
                    row_terms::<T, false, false, false>(xs, ts, w, T::zero(), &mut [])
                } else {
                    row_terms::<T, false, false, true>(xs, ts, w, T::zero(), &mut [])
                };
                (T::of(row) / c).is_finite()
            })
            .collect()
        }
    };
    crate::kernel::locate_overflow(LOSS, upstream, losses.into_iter(), &[("input", grad)])
}

/// The first offending element (error path only); `None` when every element is valid.
#[cold]
fn locate<T: Float>(input: &[T], target: &[T]) -> Option<Error> {
    for (i, (&x, &t)) in input.iter().zip(target).enumerate() {
        if !x.is_finite() {
            return Some(non_finite(LOSS, "input", i, x));
        }
        if !t.is_finite() {
            return Some(non_finite(LOSS, "target", i, t));
        }
        if !valid(x, t) {
            let hint = if t == -T::one() {
                Some("for {-1, 1} labels pass (y + 1) / 2, or use soft_margin per class")
            } else {
                None
            };
            return Some(Error::Domain {
                loss: LOSS,
                arg: "target",
                index: i,
                value: Value(t.f64()),
                expected: "target in [0, 1]",
                hint,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{mat, Rows};

    type Fb = (Vec<f64>, Vec<f64>);

    fn fb(
        l: MultilabelSoftMargin,
        x: &[f64],
        t: &[f64],
        c: usize,
        w: Option<&[f64]>,
        r: Reduction,
    ) -> Result<Fb> {
        let n = x.len() / c;
        let (mut out, mut g) = (vec![0.0; r.output_len(n)], vec![9.0; x.len()]);
        l.forward_backward(mat(x, c), t, w, r, &[1.0], &mut out, &mut g)?;
        Ok((out, g))
    }

    /* torch 2.15 (fixture spec_golden_f64_none):
    x = [[0.3,-1.2,2.0],[0,0.5,-0.5]], y = [[1,0,1],[0,1,1]], weight = [1,2,0.5]
    out [0.381461394888692, 0.709446547003404]
    grad [-0.14185249439611367, 0.15431681100065492, -0.019867153670352924,
          0.16666666666666666, -0.2516937791987636, -0.10374322186697574]
    */
    #[test]
    fn weighted_golden_divides_by_c_not_by_the_weight_sum() {
        let x = [0.3, -1.2, 2.0, 0.0, 0.5, -0.5];
        let t = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let (out, g) =
            fb(MultilabelSoftMargin::new(), &x, &t, 3, Some(&[1.0, 2.0, 0.5]), Reduction::None).unwrap();
        let want_out = [0.381461394888692, 0.709446547003404];
        let want_g = [
            -0.14185249439611367,
            0.15431681100065492,
            -0.019867153670352924,
            0.16666666666666666,
            -0.2516937791987636,
            -0.10374322186697574,
        ];
        for (a, b) in out.iter().zip(&want_out).chain(g.iter().zip(&want_g)) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn huge_logits_stay_finite_and_exact() {
        // torch: logits ±1000 give 1000 (spec §6b).
        let (out, g) =
            fb(MultilabelSoftMargin::new(), &[1000.0, -1000.0], &[0.0, 1.0], 2, None, Reduction::None)
                .unwrap();
        assert_eq!(out, [1000.0]);
        assert_eq!(g, [0.5, -0.5]);
        let (out, g) = fb(MultilabelSoftMargin::new(), &[1000.0], &[1.0], 1, None, Reduction::Sum).unwrap();
        assert_eq!((out[0], g[0]), (0.0, 0.0));
    }

    #[test]
    fn strict_rejects_a_pm1_target_with_a_hint() {
        let e = multilabel_soft_margin(mat(&[0.5f32, 1.0], 2), &[1.0, -1.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_soft_margin expects target in [0, 1], got -1 at target[1]; for {-1, 1} labels \
             pass (y + 1) / 2, or use soft_margin per class"
        );
        let e = multilabel_soft_margin(mat(&[0.5f32, 1.0], 2), &[1.0, 1.5], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "multilabel_soft_margin expects target in [0, 1], got 1.5 at target[1]");
    }

    #[test]
    fn strict_rejects_non_finite_input_and_weight() {
        let e =
            multilabel_soft_margin(mat(&[0.5f64, f64::NAN], 2), &[1.0, 0.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_soft_margin got NaN at input[1]; strict mode rejects NaN and infinities \
             (torch-compat mode propagates them as PyTorch does)"
        );
        let w = [1.0, f64::INFINITY];
        let e = MultilabelSoftMargin::new().forward(
            mat(&[0.5f64, 1.0], 2),
            &[1.0, 0.0],
            Some(&w),
            Reduction::Mean,
        );
        assert!(e.unwrap_err().to_string().starts_with("multilabel_soft_margin got inf at weight[1];"));
    }

    #[test]
    fn shape_errors_name_the_argument() {
        let l = MultilabelSoftMargin::new().mode(Mode::TorchCompat);
        let e = l.forward(mat(&[0.5f32; 4], 2), &[1.0; 2], None, Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_soft_margin: target has shape [2] but input has shape [2, 2], so target has \
             shape [2, 2]"
        );
        let e = l.forward(mat(&[0.5f32; 4], 2), &[1.0; 4], Some(&[1.0; 3]), Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "multilabel_soft_margin: weight has shape [3] but input has 2 classes");
        assert!(l.forward(Rows::new(&[0.5f32; 0], 4, 0).unwrap(), &[1.0; 0], None, Reduction::Mean).is_err());
        let e = multilabel_soft_margin::<f64>(mat(&[], 3), &[], Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("multilabel_soft_margin got an empty input;"), "{e}");
    }

    #[test]
    fn torch_compat_uses_any_target_and_empty_batch_gives_nan_mean() {
        // y = −1: −[−logσ(x) + 2·logσ(−x)] (spec §6b); at x = 0 that is log 2.
        let l = MultilabelSoftMargin::new().mode(Mode::TorchCompat);
        let (out, g) = fb(l, &[0.0], &[-1.0], 1, None, Reduction::None).unwrap();
        assert!((out[0] - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(g, [1.5]); // σ(0) − (−1)
        assert!(l
            .forward::<f32>(mat(&[], 4), &[], None, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        assert_eq!(l.forward::<f32>(mat(&[], 4), &[], None, Reduction::Sum).unwrap().scalar(), Some(0.0));
        let (out, g) = fb(l, &[f64::NAN, 1.0], &[1.0, 0.0], 2, None, Reduction::Mean).unwrap();
        assert!(out[0].is_nan() && g[0].is_nan() && !g[1].is_nan());
    }

    #[test]
    fn per_sample_upstream_scales_each_row() {
        let (mut out, mut g) = ([0.0f64; 2], [0.0; 4]);
        MultilabelSoftMargin::new()
            .forward_backward(
                mat(&[0.0; 4], 2),
                &[1.0, 0.0, 1.0, 0.0],
                None,
                Reduction::None,
                &[2.0, 4.0],
                &mut out,
                &mut g,
            )
            .unwrap();
        assert_eq!(out, [std::f64::consts::LN_2; 2]);
        assert_eq!(g, [-0.5, 0.5, -1.0, 1.0]); // (σ(0) − t)/C · upstream
    }
}
