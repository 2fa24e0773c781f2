//! PyTorch's `MultiMarginLoss`: the Weston–Watkins multiclass hinge, divided by C.

use super::class_index::ClassIndex;
use super::class_rows::{self, ClassRows, RowLoss};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_option, non_finite};
use crate::options::Mode;
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

const LOSS: &str = "multi_margin";

/// PyTorch's `MultiMarginLoss` on rows of C class **scores** `x` with class-index targets
/// `y` (the Weston–Watkins multiclass hinge, summed over the wrong classes and divided by C):
///
/// ```text
/// z_i = margin − x[y] + x[i]                              (i ≠ y)
/// l   = ( Σ_{i ≠ y, z_i > 0} w[y] · z_i^p ) / C           p ∈ {1, 2}, margin = 1 by default
/// ```
///
/// then reduced over the N rows by [`Reduction`]: `mean` is `Σ l / N`, `sum` is `Σ l`; the
/// `/C` is always applied. The optional class weight is the **target's** weight `w[y]`,
/// applied after the power (`w[y]·z^p`, not `(w[y]·z)^p`), and the mean does not divide by
/// the sum of the weights (unlike `NLLLoss`).
///
/// * **Shapes:** `input` is `(N, C)` [`Rows`](crate::Rows); `target` holds N class
///   indices in `0..C`; `weight`, if given, has C elements. A 1-D input `(C,)` is
///   [`Rows::single`](crate::Rows::single), N = 1, with one target (torch's 0-d target);
///   torch then returns a 0-d tensor where this returns one element. The output has N
///   values for `None`, else one.
/// * **Accumulation:** as torch's CPU kernel: each row's sum and its `/C` in `T`, the batch
///   sum and `/N` in `f64`.
/// * **Gradient:** for `i ≠ y` with `z_i > 0`, `∂l/∂x_i = w[y]·(1 or 2·z_i)/C` and
///   `∂l/∂x_y = −Σ_i ∂l/∂x_i` (times `1/N` for mean), computed as torch's backward kernel
///   with `g = (T)(1/(N·C))` or `(T)(1/C)`. **Kink:** `z_i == 0` is inactive, gradient 0,
///   in every torch version (the kernel tests `z > 0`). `weight` gets no gradient (torch
///   refuses to differentiate it).
/// * **Errors (strict):** `p` not 1 or 2 (both modes), a non-finite margin, a class index
///   outside `0..C` (both modes, as torch's `target out of range`), NaN/±Inf in `input`
///   or `weight`, a negative weight (torch accepts it; it makes the loss unbounded below),
///   an empty batch, an input with no columns (C = 0) or a target that is not one class
///   index per row (both modes).
/// * **Torch-compat** reproduces eager torch 2.15: a NaN score makes `z > 0` false, so it
///   is **silently skipped** (a NaN non-target score contributes 0; a NaN target score
///   zeroes the whole row and its gradient); `+inf` gives an infinite loss with a finite
///   gradient for p = 1. Under `torch.compile` the decomposition propagates NaN instead;
///   the `reference` feature's `reference::multi_margin` follows that. An empty
///   batch gives NaN for mean and 0 for sum, where eager torch returns an **uninitialised**
///   scalar (garbage), and an empty output for `None`.
/// * **Options in the dtype (strict):** `margin` must be finite in the inputs' type too:
///   `1e39` with `f32` inputs is an [`Error::Option`](crate::Error::Option) ("… fits float32"),
///   where torch-compat computes with the `inf` it becomes.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.MultiMarginLoss(p, margin, weight)`, `F.multi_margin_loss` |
/// | Keras | none (`CategoricalHinge` is a Crammer–Singer variant: see [`MulticlassHinge`](crate::MulticlassHinge)) |
/// | scikit-learn | none (`metrics.hinge_loss` is Crammer–Singer) |
/// | optax | none (`multiclass_hinge_loss` is Crammer–Singer) |
///
/// ```
/// use marginloss::{MultiMargin, Reduction, Rows};
/// // loss-spec §2 golden vector (torch 2.15): none [0.325, 0.475], mean 0.4.
/// let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0];
/// let x = Rows::new(&x, 2, 4)?; // N = 2 rows of C = 4 scores
/// let y = [3i64, 0];
/// let l = MultiMargin::new().forward(x, &y, None, Reduction::None)?.into_vec();
/// assert!((l[0] - 0.325).abs() < 1e-15 && (l[1] - 0.475).abs() < 1e-15);
/// let w = [1.0, 2.0, 3.0, 4.0];
/// let l = MultiMargin::new().forward(x, &y, Some(&w[..]), Reduction::None)?.into_vec();
/// assert!((l[0] - 1.3).abs() < 1e-15 && (l[1] - 0.475).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MultiMargin {
    /// The exponent p, 1 (default) or 2. An `f64` like every `p` in this crate
    /// ([`TripletMargin::p`](crate::TripletMargin::p), [`PairwiseDistance::p`](crate::PairwiseDistance::p))
    /// and like torch's `p` argument; any other value is rejected when the loss is computed.
    pub p: f64,
    /// The margin (default 1.0).
    pub margin: f64,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for MultiMargin {
    fn default() -> Self {
        MultiMargin { p: 1.0, margin: 1.0, mode: Mode::Strict }
    }
}

impl MultiMargin {
    /// The loss with torch's defaults: p = 1, margin 1, strict.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the exponent p (1 or 2; anything else, 1.5 included, is rejected when the loss
    /// is computed, in both modes, as torch rejects it).
    ///
    /// ```
    /// use marginloss::{MultiMargin, Reduction, Rows};
    /// let (x, y) = (Rows::single(&[0.1f64, 0.2, 0.4, 0.8]), [3i64]);
    /// // z = 1 − 0.8 + [0.1, 0.2, 0.4] = [0.3, 0.4, 0.6]; p = 2: (0.09 + 0.16 + 0.36) / 4.
    /// let l = MultiMargin::new().p(2.0).forward(x, &y, None, Reduction::Sum)?;
    /// assert!((l.scalar().unwrap() - 0.1525).abs() < 1e-15);
    /// assert!(MultiMargin::new().p(1.5).forward(x, &y, None, Reduction::Sum).is_err());
    /// # Ok::<(), marginloss::Error>(())
    /// ```
    pub fn p(mut self, p: f64) -> Self {
        self.p = p;
        self
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    fn kernel<'w, T: Float>(
        &self,
        weight: Option<&'w [T]>,
        classes: usize,
    ) -> Result<MultiMarginKernel<'w, T>> {
        if self.p != 1.0 && self.p != 2.0 {
            return Err(Error::Option { loss: LOSS, option: "p", value: Value(self.p), expected: "1 or 2" });
        }
        finite_option::<T>(LOSS, "margin", self.margin, self.mode)?;
        if let Some(w) = weight {
            if classes > 0 && w.len() != classes {
                return Err(Error::Shape {
                    loss: LOSS,
                    arg: "weight",
                    got: vec![w.len()],
                    expected: format!("one weight per class, shape [{classes}]"),
                });
            }
            if self.mode.is_strict() {
                if let Some(i) = w.iter().position(|v| !v.is_finite()) {
                    return Err(non_finite(LOSS, "weight", i, w[i]));
                }
                if let Some(i) = w.iter().position(|&v| v < T::zero()) {
                    return Err(Error::Domain {
                        loss: LOSS,
                        arg: "weight",
                        index: i,
                        value: Value(w[i].f64()),
                        expected: "class weights >= 0",
                        hint: Some("torch-compat mode accepts negative weights as PyTorch does"),
                    });
                }
            }
        }
        let wmax = weight.map_or(1.0, |w| w.iter().fold(0.0f64, |m, v| m.max(v.f64().abs())));
        Ok(MultiMarginKernel {
            wmax,
            squared: self.p == 2.0,
            margin: T::of(self.margin),
            weight,
            classes: T::of(classes as f64),
        })
    }

    /// Computes the loss, allocating the result (a scalar, or one value per row for
    /// [`Reduction::None`]) of the `(N, C)` scores `input`.
    ///
    /// # Errors
    /// As listed in this type's docs.
    pub fn forward<T: Float, I: ClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        weight: Option<&[T]>,
        reduction: Reduction,
    ) -> Result<Output<T>> {
        self.kernel(weight, input.cols())?;
        let (n, ..) = class_rows::rows_of::<T, MultiMarginKernel<'_, T>, I>(input, target, self.mode)?;
        let mut out = vec![T::zero(); reduction.output_len(n)];
        self.forward_into(input, target, weight, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    /// Computes the loss into `out` without allocating: `out` holds one value for
    /// `Mean`/`Sum` and N values for `None`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float, I: ClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        weight: Option<&[T]>,
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let k = self.kernel(weight, input.cols())?;
        class_rows::forward(&k, self.mode, input, target, reduction, out)
    }

    /// Fused forward and backward in one pass over memory: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input` into `grad_input`
    /// (same length as `input`, overwritten), allocating nothing.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`; for
    /// `None`, one value per row, or a single value applied to every row.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or
    /// `grad_input`. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float, I: ClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        weight: Option<&[T]>,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let k = self.kernel(weight, input.cols())?;
        class_rows::forward_backward(&k, self.mode, input, target, reduction, upstream, out, grad_input)
    }
}

/// [`MultiMargin`] with torch's defaults (p = 1, margin 1, no weight, strict) on an
/// `(N, C)` input.
///
/// ```
/// use marginloss::{multi_margin, Reduction, Rows};
/// // loss-spec §2 golden vector (torch 2.15): rows [0.1, 0.2, 0.4, 0.8] (class 3) and
/// // [0.5, 0.1, 0.3, 0.0] (class 0) give [0.325, 0.475], mean 0.4
/// let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0];
/// let l = multi_margin(Rows::new(&x, 2, 4)?, &[3, 0], Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.4).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`MultiMargin::forward`].
pub fn multi_margin<T: Float, I: ClassIndex>(
    input: Rows<'_, T>,
    target: &[I],
    reduction: Reduction,
) -> Result<Output<T>> {
    MultiMargin::new().forward(input, target, None, reduction)
}

#[derive(Clone)]
struct MultiMarginKernel<'w, T> {
    /// The largest `|w|` (1 without weights; NaN compares false, so a NaN weight bounds
    /// nothing).
    wmax: f64,
    squared: bool,
    margin: T,
    weight: Option<&'w [T]>,
    /// C as `T`, the divisor.
    classes: T,
}

impl<T: Float> ClassRows<T> for MultiMarginKernel<'_, T> {
    const LOSS: &'static str = LOSS;

    fn targets_per_row(_classes: usize) -> usize {
        1
    }

    #[inline(always)]
    fn target_ok(v: i64, classes: usize) -> bool {
        v >= 0 && (v as u64) < classes as u64
    }

    fn target_error(index: usize, value: i64, classes: usize) -> Error {
        Error::ClassIndex { loss: LOSS, arg: "target", index, value, classes }
    }

    #[inline]
    fn row<I: ClassIndex>(&mut self, x: &[T], t: &[I]) -> RowLoss<T> {
        let y = t[0].as_i64() as usize;
        let base = self.margin - x[y];
        let w = self.weight.map_or(T::one(), |w| w[y]);
        // The classes before and after y, each a branch-free loop over lanes.
        let (mut acc, mut finite) = ([T::zero(); LANES], x[y].is_finite());
        let mut unused = [T::zero(); LANES];
        for part in [&x[..y], &x[y + 1..]] {
            finite &=
                terms(part, base, self.squared, w, (T::zero(), T::zero()), &mut acc, &mut unused, &mut []);
        }
        let value = lane_sum(&acc) / self.classes;
        RowLoss { value, reduced: value.f64(), finite }
    }

    #[inline]
    fn row_grad<I: ClassIndex>(&mut self, x: &[T], t: &[I], g: T, up: T, grad: &mut [T]) -> RowLoss<T> {
        let y = t[0].as_i64() as usize;
        let base = self.margin - x[y];
        let w = self.weight.map_or(T::one(), |w| w[y]);
        let (mut acc, mut dacc, mut finite) = ([T::zero(); LANES], [T::zero(); LANES], x[y].is_finite());
        let (gx, rest) = grad.split_at_mut(y);
        let (gy, gz) = rest.split_at_mut(1);
        finite &= terms(&x[..y], base, self.squared, w, (g, up), &mut acc, &mut dacc, gx);
        finite &= terms(&x[y + 1..], base, self.squared, w, (g, up), &mut acc, &mut dacc, gz);
        // ∂/∂x[y] = −Σ_{i≠y} ∂/∂x[i]
        gy[0] = -lane_sum(&dacc) * up;
        let value = lane_sum(&acc) / self.classes;
        RowLoss { value, reduced: value.f64(), finite }
    }

    fn grad_scale(reduction: Reduction, n: usize, classes: usize) -> T {
        match reduction {
            Reduction::Mean => T::of(1.0 / (n as f64 * classes as f64)),
            _ => T::of(1.0 / classes as f64),
        }
    }

    /// p = 1: each entry is `w[y]·scale·up`, the target's the sum of at most C of them;
    /// p = 2 grows with the scores (the row is scanned).
    #[inline(always)]
    fn grad_bounded(&self, scale: T, up: T, classes: usize) -> bool {
        !self.squared
            && (scale.f64() * up.f64()).abs() * self.wmax * (classes as f64)
                < crate::kernel::grad_limit::<T>()
    }
}

const LANES: usize = 8;

#[inline(always)]
fn lane_sum<T: Float>(acc: &[T; LANES]) -> T {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// One class's term `w·z^p` (0 unless `z = base + x > 0`, so NaN is skipped as in eager
/// torch) and its derivative `w·p·z^(p−1)·g`.
#[inline(always)]
fn term<T: Float>(x: T, base: T, squared: bool, w: T, g: T) -> (T, T) {
    let z = base + x;
    let on = z > T::zero();
    let h = T::select(squared, z * z, z) * w;
    let d = T::select(squared, (g + g) * z, g) * w;
    (T::select(on, h, T::zero()), T::select(on, d, T::zero()))
}

/// Adds the terms of `x` to `acc` (8 lanes) and, when `grad` is not empty, writes
/// `up ·` their derivatives into it and adds the derivatives to `dacc`. Returns whether
/// every element was finite.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn terms<T: Float>(
    x: &[T],
    base: T,
    squared: bool,
    w: T,
    (g, up): (T, T),
    acc: &mut [T; LANES],
    dacc: &mut [T; LANES],
    grad: &mut [T],
) -> bool {
    let mut finite = true;
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    if grad.is_empty() {
        for c in chunks {
            for k in 0..LANES {
                acc[k] = acc[k] + term(c[k], base, squared, w, g).0;
                finite &= c[k].is_finite();
            }
        }
        for (k, &v) in rem.iter().enumerate() {
            acc[k] = acc[k] + term(v, base, squared, w, g).0;
            finite &= v.is_finite();
        }
    } else {
        let mut gs = grad.chunks_exact_mut(LANES);
        for (c, gc) in chunks.zip(&mut gs) {
            for k in 0..LANES {
                let (h, d) = term(c[k], base, squared, w, g);
                acc[k] = acc[k] + h;
                dacc[k] = dacc[k] + d;
                gc[k] = d * up;
                finite &= c[k].is_finite();
            }
        }
        for (k, (&v, gr)) in rem.iter().zip(gs.into_remainder()).enumerate() {
            let (h, d) = term(v, base, squared, w, g);
            acc[k] = acc[k] + h;
            dacc[k] = dacc[k] + d;
            *gr = d * up;
            finite &= v.is_finite();
        }
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{mat, Rows};

    fn fused(
        l: MultiMargin,
        x: &[f64],
        y: &[i64],
        c: usize,
        w: Option<&[f64]>,
        r: Reduction,
    ) -> (Vec<f64>, Vec<f64>) {
        let n = x.len() / c;
        let (mut out, mut g) = (vec![0.0; r.output_len(n)], vec![0.0; x.len()]);
        l.forward_backward(mat(x, c), y, w, r, &[1.0], &mut out, &mut g).unwrap();
        (out, g)
    }

    /* torch 2.15 docs example:
    x = torch.tensor([[0.1, 0.2, 0.4, 0.8]], requires_grad=True); y = torch.tensor([3])
    F.multi_margin_loss(x, y).backward()   # 0.325, grad [0.25, 0.25, 0.25, -0.75]
    */
    #[test]
    fn docs_example_value_and_gradient() {
        let (out, g) = fused(MultiMargin::new(), &[0.1, 0.2, 0.4, 0.8], &[3], 4, None, Reduction::Mean);
        assert!((out[0] - 0.325).abs() < 1e-15);
        assert_eq!(g, vec![0.25, 0.25, 0.25, -0.75]);
    }

    #[test]
    fn target_weight_multiplies_after_the_power() {
        // p = 2, w[y] = 2, z = 0.5: 2 · 0.25 / 2 = 0.25, not (2 · 0.5)² / 2 = 0.5.
        let w = [2.0, 1.0];
        let (out, g) = fused(MultiMargin::new().p(2.0), &[0.5, 0.0], &[0], 2, Some(&w), Reduction::Sum);
        assert_eq!(out, vec![0.25]);
        assert_eq!(g, vec![-1.0, 1.0]); // 2·z·w[y]/C = 2·0.5·2/2
    }

    #[test]
    fn kink_gradient_is_zero() {
        // z = 1 − 1 + 0 = 0 exactly: inactive.
        let (out, g) = fused(MultiMargin::new(), &[1.0, 0.0, 0.5], &[0], 3, None, Reduction::Sum);
        assert_eq!(out, vec![0.5 / 3.0]);
        assert_eq!(g, vec![-1.0 / 3.0, 0.0, 1.0 / 3.0]);
    }

    #[test]
    fn torch_compat_skips_nan_and_keeps_the_inf_gradient_finite() {
        let l = MultiMargin::new().mode(Mode::TorchCompat);
        // a NaN target score zeroes the row; a NaN wrong-class score is skipped
        let x = [0.1, f64::NAN, 0.4, 0.8, f64::NAN, 0.1, 0.3, 0.0];
        let (out, g) = fused(l, &x, &[3, 0], 4, None, Reduction::None);
        assert_eq!(out, vec![(0.3 + 0.6) / 4.0, 0.0]);
        assert_eq!(&g[4..], &[0.0; 4]);
        // loss-spec §2: x[i] = +inf gives an infinite loss with gradient [-2/3, 1/3, 1/3]
        let (out, g) = fused(l, &[0.0, f64::INFINITY, 0.0], &[0], 3, None, Reduction::Sum);
        assert_eq!(out, vec![f64::INFINITY]);
        assert_eq!(g, vec![-2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    }

    #[test]
    fn strict_mode_rejects_nan_with_its_index() {
        let e = multi_margin(mat(&[0.1f32, f32::NAN, 0.4, 0.8], 4), &[3], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin got NaN at input[1]; strict mode rejects NaN and infinities (torch-compat mode \
             propagates them as PyTorch does)"
        );
    }

    #[test]
    fn class_index_out_of_range_is_an_error_in_both_modes() {
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let e = MultiMargin::new()
                .mode(mode)
                .forward(mat(&[0.0f64; 8], 4), &[0, 4], None, Reduction::Sum)
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "multi_margin: class index 4 at target[1] is out of range for 4 classes (expected 0..=3)"
            );
        }
        let e = multi_margin(mat(&[0.0f64; 4], 4), &[-1], Reduction::Sum).unwrap_err();
        assert!(e.to_string().contains("class index -1 at target[0]"), "{e}");
    }

    #[test]
    fn p_other_than_1_or_2_is_rejected() {
        let e =
            MultiMargin::new().p(3.0).forward(mat(&[0.0f32; 2], 2), &[0], None, Reduction::Sum).unwrap_err();
        assert_eq!(e.to_string(), "multi_margin: option p must be 1 or 2, got 3");
        // p is an f64 as TripletMargin's and PairwiseDistance's are: a fractional or NaN p
        // is an error, never truncated to 1.
        for bad in [1.5, f64::NAN, f64::INFINITY] {
            let e = MultiMargin::new().p(bad).forward(mat(&[0.0f32; 2], 2), &[0], None, Reduction::Sum);
            assert!(e.unwrap_err().to_string().starts_with("multi_margin: option p must be 1 or 2, got"));
        }
        let e = MultiMargin::new()
            .p(0.0)
            .mode(Mode::TorchCompat)
            .forward(mat(&[0.0f32; 2], 2), &[0], None, Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "multi_margin: option p must be 1 or 2, got 0");
    }

    #[test]
    fn weight_shape_sign_and_finiteness_are_checked() {
        let x = [0.0f64; 4];
        let e = MultiMargin::new()
            .forward(mat(&x, 4), &[0], Some(&[1.0, 1.0, 1.0][..]), Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "multi_margin: weight has shape [3] but one weight per class, shape [4]");
        let w = [1.0, 1.0, -1.5, 1.0];
        let e = MultiMargin::new().forward(mat(&x, 4), &[0], Some(&w[..]), Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin expects class weights >= 0, got -1.5 at weight[2]; torch-compat mode accepts \
             negative weights as PyTorch does"
        );
        let l = MultiMargin::new().mode(Mode::TorchCompat);
        let v = l.forward(mat(&[0.0, 0.0], 2), &[0], Some(&[-1.5, 1.0][..]), Reduction::Sum).unwrap();
        assert_eq!(v.scalar(), Some(-0.75));
        let w = [1.0, f64::INFINITY, 1.0, 1.0];
        let e = MultiMargin::new().forward(mat(&x, 4), &[0], Some(&w[..]), Reduction::Sum).unwrap_err();
        assert!(e.to_string().starts_with("multi_margin got inf at weight[1]"), "{e}");
    }

    #[test]
    fn shapes_are_checked() {
        let e = Rows::new(&[0.0f64; 7], 2, 4).unwrap_err();
        assert_eq!(e.to_string(), "rows: data has shape [7] but 2 rows of 4 elements are 8 elements");
        let e = multi_margin(Rows::new(&[0.0f64; 8], 2, 4).unwrap(), &[0, 0, 0], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin: target has shape [3] but input has shape [2, 4], so target (one class \
             index per row) has shape [2]"
        );
        // 8 scores stated as 4 rows of 2 classes for 2 targets: the stated rows disagree
        let e = multi_margin(Rows::new(&[0.0f64; 8], 4, 2).unwrap(), &[0, 0], Reduction::Sum).unwrap_err();
        assert!(e.to_string().contains("input has shape [4, 2]"), "{e}");
        let e = multi_margin(Rows::new(&[0.0f64; 0], 3, 0).unwrap(), &[0i64; 3], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin: input has shape [3, 0] but at least one class (classes >= 1)"
        );
        let (mut out, mut g) = ([0.0f64], [0.0f64; 3]);
        let e = MultiMargin::new()
            .forward_backward(mat(&[0.0; 4], 4), &[0], None, Reduction::Sum, &[1.0], &mut out, &mut g)
            .unwrap_err();
        assert_eq!(e.to_string(), "multi_margin: the grad input buffer has length 3, expected 4");
    }

    #[test]
    fn empty_batch_is_rejected_strictly_and_nan_or_zero_in_torch_compat() {
        let e = multi_margin::<f32, i64>(mat(&[], 3), &[], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin got an empty input; strict mode rejects it because the mean of nothing is \
             undefined (torch-compat mode gives NaN for mean, 0 for sum)"
        );
        let l = MultiMargin::new().mode(Mode::TorchCompat);
        assert!(l
            .forward::<f32, i64>(mat(&[], 3), &[], None, Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        assert_eq!(
            l.forward::<f32, i64>(mat(&[], 3), &[], None, Reduction::Sum).unwrap().scalar(),
            Some(0.0)
        );
        assert_eq!(
            l.forward::<f32, i64>(mat(&[], 3), &[], None, Reduction::None).unwrap(),
            Output::Elements(vec![])
        );
    }
}
