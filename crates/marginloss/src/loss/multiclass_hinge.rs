//! The Crammer–Singer multiclass hinge loss (scikit-learn's and optax's multiclass hinge).

use super::class_index::ClassIndex;
use super::class_rows::{self, ClassRows, RowLoss};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernel::{finite_option, relu};
use crate::options::Mode;
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

const LOSS: &str = "multiclass_hinge";

/// The Crammer–Singer multiclass hinge loss on rows of C class **scores** `s` with
/// class-index targets `y`:
///
/// ```text
/// l = max(0, margin + max_{j ≠ y} s_j − s_y)              margin = 1 by default
/// ```
///
/// then reduced over the N rows by [`Reduction`] (`mean` is `Σ l / N`). Only the most
/// violating wrong class counts, and there is no `/C`: this is **not** PyTorch's
/// [`MultiMargin`](crate::MultiMargin) (Weston–Watkins, a sum over the wrong classes
/// divided by C). Computed in `T` as the torch composition
/// `clamp_min(margin + s.masked_fill(one_hot(y), -inf).amax(1) − s.gather(1, y), 0)`:
/// `(margin + max_other) − s_y`.
///
/// * **Shapes:** `input` is `(N, C)` [`Rows`](crate::Rows) with `C ≥ 2`; `target` holds N
///   class indices in `0..C`. A 1-D input `(C,)` is [`Rows::single`](crate::Rows::single),
///   N = 1. The output has N values for `None`, else one.
/// * **Gradient (tie rule):** if `margin + max_other − s_y > 0` **strictly**,
///   `∂l/∂s_y = −1` and `∂l/∂s_{j*} = +1` for the **lowest** index `j* ≠ y` attaining
///   `max_other`; every other entry is 0 (times `1/N` for mean). **Kink:** at
///   `margin + max_other − s_y == 0` the gradient is 0, as torch 2.15's strict `clamp_min`.
///   A tie for the maximum is a non-differentiable point too; it gives the whole
///   subgradient to one class instead of splitting it.
/// * **Errors (strict):** `C < 2` (there is no wrong class to compare with), a class
///   index outside `0..C` (both modes), NaN/±Inf in `input`, empty input, a non-finite
///   margin, an input with no columns (C = 0) or a target that is not one class index per
///   row (both modes).
/// * **Torch-compat** follows the torch composition above: NaN propagates to the loss (a
///   NaN score in `max_other` or in `s_y`) with a zero gradient there; `C == 1`
///   gives `max_other = −inf`, so loss 0; an empty batch gives NaN (mean) or 0 (sum).
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
/// | PyTorch | none built in; the composition above (`nn.MultiMarginLoss` is a different loss) |
/// | Keras | `keras.losses.CategoricalHinge` with one-hot targets is `max(0, 1 + max_j((1−t_j)·s_j) − s_y)`: the true slot enters the max as 0, so it equals this only when some wrong-class score is ≥ 0 |
/// | scikit-learn | `metrics.hinge_loss(y, decision, labels=…)`, multiclass path: the mean of this with margin 1, columns in **sorted** label order (a metric, no gradient) |
/// | optax | `optax.losses.multiclass_hinge_loss(scores, labels)` (margin 1, no reduction). optax differs at ties and the kink: its `max` over `s + 1 − onehot` includes the true class, so at the kink it spreads the gradient (`s=[1,0,0], y=0` gives `[−2/3, 1/3, 1/3]`, here 0) and splits tied maxima; an out-of-range or negative label silently gives `max(s) + 1` (here an error) |
///
/// ```
/// use marginloss::{MulticlassHinge, Reduction, Rows};
/// // optax's documented example: [0.5, 0.5, 1.7].
/// let s = [1.0f64, 0.5, -0.2, -5.0, -3.0, -2.5, 0.2, 0.2, 0.9];
/// let y = [0i64, 2, 0];
/// let l = MulticlassHinge::new().forward(Rows::new(&s, 3, 3)?, &y, Reduction::None)?.into_vec();
/// assert_eq!(l, vec![0.5, 0.5, 1.7]);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MulticlassHinge {
    /// The margin (default 1.0).
    pub margin: f64,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for MulticlassHinge {
    fn default() -> Self {
        MulticlassHinge { margin: 1.0, mode: Mode::Strict }
    }
}

impl MulticlassHinge {
    /// The loss with its defaults: margin 1, strict.
    pub fn new() -> Self {
        Self::default()
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

    fn kernel<T: Float>(&self, input: &[T], classes: usize) -> Result<MulticlassHingeKernel<T>> {
        finite_option::<T>(LOSS, "margin", self.margin, self.mode)?;
        if classes == 1 && self.mode.is_strict() {
            return Err(Error::Shape {
                loss: LOSS,
                arg: "input",
                got: vec![input.len(), 1],
                expected: "at least 2 classes (a single class has no wrong class to compare with)".into(),
            });
        }
        Ok(MulticlassHingeKernel { margin: T::of(self.margin) })
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
        reduction: Reduction,
    ) -> Result<Output<T>> {
        self.kernel(input.data(), input.cols())?;
        let (n, ..) = class_rows::rows_of::<T, MulticlassHingeKernel<T>, I>(input, target, self.mode)?;
        let mut out = vec![T::zero(); reduction.output_len(n)];
        self.forward_into(input, target, reduction, &mut out)?;
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
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let k = self.kernel(input.data(), input.cols())?;
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
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let k = self.kernel(input.data(), input.cols())?;
        class_rows::forward_backward(&k, self.mode, input, target, reduction, upstream, out, grad_input)
    }
}

/// [`MulticlassHinge`] with its defaults (margin 1, strict) on an `(N, C)` input.
///
/// ```
/// use marginloss::{multiclass_hinge, Reduction, Rows};
/// // max(0, 1 + max_{j≠y} x_j − x_y): 1 + 0.4 − 0.8 = 0.6 and 1 + 0.3 − 0.5 = 0.8
/// let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0];
/// let l = multiclass_hinge(Rows::new(&x, 2, 4)?, &[3u32, 0], Reduction::None)?.into_vec();
/// assert!((l[0] - 0.6).abs() < 1e-15 && (l[1] - 0.8).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`MulticlassHinge::forward`].
pub fn multiclass_hinge<T: Float, I: ClassIndex>(
    input: Rows<'_, T>,
    target: &[I],
    reduction: Reduction,
) -> Result<Output<T>> {
    MulticlassHinge::new().forward(input, target, reduction)
}

#[derive(Clone)]
struct MulticlassHingeKernel<T> {
    margin: T,
}

const LANES: usize = 8;

/// Folds `x` into the lane maxima `m` (`maxps`: a NaN is skipped, see [`has_nan`]) and
/// returns whether every element is finite. Branch-free over lanes.
#[inline(always)]
fn lane_max<T: Float>(x: &[T], m: &mut [T; LANES]) -> bool {
    let mut finite = true;
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            let v = c[k];
            m[k] = T::select(v > m[k], v, m[k]);
            finite &= v.is_finite();
        }
    }
    for (k, &v) in rem.iter().enumerate() {
        m[k] = T::select(v > m[k], v, m[k]);
        finite &= v.is_finite();
    }
    finite
}

/// Whether `x` holds a NaN (the slow path of a non-finite row).
#[cold]
fn has_nan<T: Float>(x: &[T]) -> bool {
    x.iter().any(|v| v.is_nan())
}

/// The first index of `x` holding exactly `m` (`m` not NaN), one compare per element and
/// one branch per 8.
#[inline(always)]
fn first_equal<T: Float>(x: &[T], m: T) -> Option<usize> {
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    for (i, c) in chunks.enumerate() {
        if c.iter().fold(false, |hit, &v| hit | (v == m)) {
            return c.iter().position(|&v| v == m).map(|k| i * LANES + k);
        }
    }
    rem.iter().position(|&v| v == m).map(|k| x.len() - rem.len() + k)
}

impl<T: Float> MulticlassHingeKernel<T> {
    /// `(margin + max_{j≠y} s_j) − s_y`, `max_{j≠y} s_j` (`−inf` for C = 1) and whether the
    /// row is finite. A NaN among the wrong classes makes the max NaN.
    #[inline(always)]
    fn argument(&self, x: &[T], y: usize) -> (T, T, bool) {
        let mut m = [T::neg_infinity(); LANES];
        let finite = lane_max(&x[..y], &mut m) & lane_max(&x[y + 1..], &mut m) & x[y].is_finite();
        let mut top = m[0];
        for &v in &m[1..] {
            top = T::select(v > top, v, top);
        }
        if !finite && (has_nan(&x[..y]) || has_nan(&x[y + 1..])) {
            top = T::nan();
        }
        ((self.margin + top) - x[y], top, finite)
    }
}

impl<T: Float> ClassRows<T> for MulticlassHingeKernel<T> {
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

    #[inline(always)]
    fn row<I: ClassIndex>(&mut self, x: &[T], t: &[I]) -> RowLoss<T> {
        let (u, _, finite) = self.argument(x, t[0].as_i64() as usize);
        let value = relu(u);
        RowLoss { value, reduced: value.f64(), finite }
    }

    #[inline(always)]
    fn row_grad<I: ClassIndex>(&mut self, x: &[T], t: &[I], scale: T, up: T, grad: &mut [T]) -> RowLoss<T> {
        let y = t[0].as_i64() as usize;
        let (u, top, finite) = self.argument(x, y);
        grad.fill(T::zero());
        if u > T::zero() {
            // the lowest index j ≠ y attaining the max (none when C = 1)
            let jstar =
                first_equal(&x[..y], top).or_else(|| first_equal(&x[y + 1..], top).map(|j| y + 1 + j));
            if let Some(jstar) = jstar {
                let g = scale * up;
                grad[y] = -g;
                grad[jstar] = g;
            }
        }
        let value = relu(u);
        RowLoss { value, reduced: value.f64(), finite }
    }

    fn grad_scale(reduction: Reduction, n: usize, _classes: usize) -> T {
        reduction.scale(T::one(), n)
    }

    /// The gradient is `±scale·up` in two entries and 0 elsewhere.
    #[inline(always)]
    fn grad_bounded(&self, scale: T, up: T, _classes: usize) -> bool {
        (scale * up).f64().abs() < crate::kernel::grad_limit::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    fn fused(l: MulticlassHinge, x: &[f64], y: &[i64], c: usize, r: Reduction) -> (Vec<f64>, Vec<f64>) {
        let n = x.len() / c;
        let (mut out, mut g) = (vec![0.0; r.output_len(n)], vec![0.0; x.len()]);
        l.forward_backward(mat(x, c), y, r, &[1.0], &mut out, &mut g).unwrap();
        (out, g)
    }

    #[test]
    fn tie_for_the_max_goes_to_the_lowest_index() {
        // wrong classes 0, 1, 3 all score 0.5: j* = 0
        let (out, g) = fused(MulticlassHinge::new(), &[0.5, 0.5, 0.1, 0.5], &[2], 4, Reduction::Sum);
        assert!((out[0] - 1.4).abs() < 1e-15);
        assert_eq!(g, vec![1.0, 0.0, -1.0, 0.0]);
    }

    #[test]
    fn kink_gradient_is_zero_where_optax_spreads_it() {
        // margin + max_other − s_y = 1 + 0 − 1 = 0: optax gives [-2/3, 1/3, 1/3]
        let (out, g) = fused(MulticlassHinge::new(), &[1.0, 0.0, 0.0], &[0], 3, Reduction::Sum);
        assert_eq!(out, vec![0.0]);
        assert_eq!(g, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn mean_scales_the_gradient_by_one_over_n() {
        let x = [1.0, 0.5, -0.2, -5.0, -3.0, -2.5, 0.2, 0.2, 0.9];
        let (out, g) = fused(MulticlassHinge::new(), &x, &[0, 2, 0], 3, Reduction::Mean);
        assert!((out[0] - 0.9).abs() < 1e-15);
        let t = 1.0 / 3.0;
        assert_eq!(g, vec![-t, t, 0.0, 0.0, t, -t, -t, 0.0, t]);
    }

    #[test]
    fn single_class_is_rejected_strictly_and_gives_zero_in_torch_compat() {
        let e = multiclass_hinge(mat(&[0.5f64, 1.0, 2.0], 1), &[0, 0, 0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multiclass_hinge: input has shape [3, 1] but at least 2 classes (a single class has no wrong \
             class to compare with)"
        );
        let l = MulticlassHinge::new().mode(Mode::TorchCompat);
        let (out, g) = fused(l, &[0.5, 1.0, 2.0], &[0, 0, 0], 1, Reduction::None);
        assert_eq!((out, g), (vec![0.0; 3], vec![0.0; 3]));
    }

    #[test]
    fn torch_compat_propagates_nan_with_zero_gradient() {
        let l = MulticlassHinge::new().mode(Mode::TorchCompat);
        let (out, g) = fused(l, &[f64::NAN, 0.0, 1.0, 0.0, 0.0, 2.0], &[2, 0], 3, Reduction::None);
        assert!(out[0].is_nan());
        assert_eq!(out[1], 3.0);
        assert_eq!(g, vec![0.0, 0.0, 0.0, -1.0, 0.0, 1.0]);
        let e = multiclass_hinge(mat(&[f64::NAN, 0.0, 1.0], 3), &[2], Reduction::Sum).unwrap_err();
        assert!(e.to_string().starts_with("multiclass_hinge got NaN at input[0]; strict mode"), "{e}");
    }

    #[test]
    fn out_of_range_label_is_an_error_in_both_modes() {
        // optax silently gives max(s) + 1 for label 5 or -1
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let l = MulticlassHinge::new().mode(mode);
            let e = l.forward(mat(&[0.0f32, 1.0, 0.5], 3), &[-1], Reduction::Sum).unwrap_err();
            assert_eq!(
                e.to_string(),
                "multiclass_hinge: class index -1 at target[0] is out of range for 3 classes (expected 0..=2)"
            );
        }
    }

    #[test]
    fn non_finite_margin_and_empty_input_are_rejected_strictly() {
        let e = MulticlassHinge::new().margin(f64::NAN).forward(mat(&[0.0f32, 1.0], 2), &[0], Reduction::Sum);
        assert_eq!(e.unwrap_err().to_string(), "multiclass_hinge: option margin must be finite, got NaN");
        let e = multiclass_hinge::<f64, i64>(mat(&[], 2), &[], Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("multiclass_hinge got an empty input"), "{e}");
        let l = MulticlassHinge::new().mode(Mode::TorchCompat);
        assert!(l.forward::<f64, i64>(mat(&[], 2), &[], Reduction::Mean).unwrap().scalar().unwrap().is_nan());
    }
}
