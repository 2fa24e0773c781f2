//! PyTorch's `HingeEmbeddingLoss`: a loss on **distances**, not scores.

use super::pair::{self, PairRow};
use crate::distance::{Distance, GradPair, RowPair};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_option, pointwise_api, relu, Pointwise};
use crate::options::{Kink, Labels, Mode};
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

/// PyTorch's `HingeEmbeddingLoss` on **distances** `x ≥ 0` between pairs:
///
/// ```text
/// l_i = x_i                        if y_i = +1   (similar pair: pull together)
/// l_i = max(0, margin − x_i)       if y_i = −1   (dissimilar pair: push past the margin)
/// ```
///
/// margin = 1 by default, then reduced by [`Reduction`]. Exactly as torch implements it:
/// `where(y ≠ 1, max(0, margin − x), 0) + where(y ≠ −1, x, 0)`.
///
/// **This is not the SVM hinge.** Fed classifier scores it silently returns nonsense: the
/// scores `x = [0.8, −0.5, 2.0]`, `y = [−1, 1, −1]` give −0.1 where the hinge loss is 2.1.
/// Strict mode (the default) therefore rejects a negative input and points to
/// [`Hinge`](crate::Hinge).
///
/// * **Shapes:** `input` and `target` have the same number of elements.
/// * **Gradient:** `∂l_i/∂x_i = [y_i ≠ −1] − [y_i ≠ 1]·[margin − x_i > 0]`. **At the kink**
///   `x_i == margin` with `y_i = −1` it is 0, as in torch 2.15 (1 in older torch); see
///   [`Kink`]. The target gets no gradient.
/// * **Errors (strict):** a negative input (`hinge_embedding expects distances >= 0, got
///   -0.5 at input[1]; for classifier scores use hinge`), NaN/±Inf, a target outside the
///   encoding, empty input, a non-finite margin, mismatched lengths.
/// * **Torch-compat** reproduces torch 2.15 quirks: a target that is neither 1 nor −1
///   gets both terms, `max(x, margin)`; negative inputs are used as they are; NaN
///   propagates; empty input gives NaN (mean) or 0 (sum).
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
/// | PyTorch | `nn.HingeEmbeddingLoss(margin)`, `F.hinge_embedding_loss` |
/// | Keras | none |
/// | scikit-learn | none |
/// | optax | none |
///
/// ```
/// use marginloss::{HingeEmbedding, Mode, Reduction};
/// let (x, y) = ([0.8f32, -0.5, 2.0], [-1.0f32, 1.0, -1.0]);
/// // torch-compat reproduces PyTorch's silent -0.1 ...
/// let torch = HingeEmbedding::new().mode(Mode::TorchCompat);
/// let v = torch.forward(&x, &y, Reduction::Mean)?.scalar().unwrap();
/// assert!((v - -0.1).abs() < 1e-7);
/// // ... strict mode refuses the scores and says what to use.
/// let e = HingeEmbedding::new().forward(&x, &y, Reduction::Mean).unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "hinge_embedding expects distances >= 0, got -0.5 at input[1]; for classifier scores use hinge"
/// );
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct HingeEmbedding {
    /// The margin (default 1.0).
    pub margin: f64,
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl Default for HingeEmbedding {
    fn default() -> Self {
        HingeEmbedding { margin: 1.0, labels: Labels::PlusMinusOne, mode: Mode::Strict, kink: Kink::Zero }
    }
}

impl HingeEmbedding {
    /// The loss with its defaults: margin 1, ±1 labels, strict, kink gradient 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// Sets the target encoding.
    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets the kink convention.
    pub fn kink(mut self, kink: Kink) -> Self {
        self.kink = kink;
        self
    }

    fn kernel<T: Float>(&self) -> Result<HingeEmbeddingKernel<T>> {
        finite_option::<T>("hinge_embedding", "margin", self.margin, self.mode)?;
        Ok(HingeEmbeddingKernel { margin: T::of(self.margin), labels: self.labels, kink: self.kink })
    }

    pointwise_api!("hinge_embedding");
}

/// [`HingeEmbedding`] with its defaults on `f32` or `f64` slices.
///
/// ```
/// use marginloss::{hinge_embedding, Reduction};
/// // distances x ≥ 0: x for y = 1, max(0, 1 − x) for y = −1 → [0.3, 0.2, 0.0]
/// let (x, y) = ([0.3f64, 0.8, 1.5], [1.0, -1.0, -1.0]);
/// let l = hinge_embedding(&x, &y, Reduction::None)?.into_vec();
/// assert!(l.iter().zip([0.3, 0.2, 0.0]).all(|(a, b)| (a - b).abs() < 1e-15));
/// assert!((hinge_embedding(&x, &y, Reduction::Sum)?.scalar().unwrap() - 0.5).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`HingeEmbedding::forward`].
pub fn hinge_embedding<T: Float>(input: &[T], target: &[T], reduction: Reduction) -> Result<Output<T>> {
    HingeEmbedding::new().forward(input, target, reduction)
}

#[derive(Clone, Copy)]
pub(crate) struct HingeEmbeddingKernel<T> {
    margin: T,
    labels: Labels,
    kink: Kink,
}

impl<T: Float> Pointwise<T> for HingeEmbeddingKernel<T> {
    const LOSS: &'static str = "hinge_embedding";

    #[inline(always)]
    fn valid(&self, x: T, t: T) -> bool {
        (x >= T::zero()) & x.is_finite() & self.labels.accepts(t)
    }

    #[inline(always)]
    fn value(&self, x: T, t: T) -> T {
        let y = self.labels.decode(t);
        let neg = T::select(y != T::one(), relu(self.margin - x), T::zero());
        let pos = T::select(y != -T::one(), x, T::zero());
        neg + pos
    }

    #[inline(always)]
    fn value_grad(&self, x: T, t: T) -> (T, T) {
        let y = self.labels.decode(t);
        let u = self.margin - x;
        let (is_neg, is_pos) = (y != T::one(), y != -T::one());
        let neg = T::select(is_neg, relu(u), T::zero());
        let dneg = T::select(is_neg, self.kink.step(u), T::zero());
        let pos = T::select(is_pos, x, T::zero());
        let dpos = T::select(is_pos, T::one(), T::zero());
        (neg + pos, dpos - dneg)
    }

    fn domain_error(&self, index: usize, x: T, t: T) -> Error {
        if x < T::zero() {
            Error::Domain {
                loss: "hinge_embedding",
                arg: "input",
                index,
                value: Value(x.f64()),
                expected: "distances >= 0",
                hint: Some("for classifier scores use hinge"),
            }
        } else {
            Error::Domain {
                loss: "hinge_embedding",
                arg: "target",
                index,
                value: Value(t.f64()),
                expected: self.labels.expected(),
                hint: self.labels.hint(t),
            }
        }
    }
}

/// [`HingeEmbedding`] of a [`Distance`] between row pairs, fused into one pass: the
/// common pipeline `HingeEmbeddingLoss(margin)(1 - F.cosine_similarity(a, b), y)` (or any
/// other distance) computed and differentiated row by row, reading `a` and `b` once.
///
/// ```text
/// l_n = HingeEmbedding(d(a_n, b_n), y_n)
/// ```
///
/// Built with [`HingeEmbedding::on`]. Gradients flow to both inputs through the distance's
/// [`Distance::backward`]; values and gradients equal composing [`HingeEmbedding`] with
/// the distance (the distance is never negative, so the strict distance check is moot;
/// strict mode still rejects NaN/±Inf and targets outside the encoding).
///
/// ```
/// use marginloss::{CosineDistance, HingeEmbedding, Reduction, Rows};
/// // Two pairs: identical rows (distance 0) labelled similar, orthogonal rows (distance 1)
/// // labelled dissimilar with margin 0.2: both losses are 0.
/// let a = [1.0f64, 0.0, 1.0, 0.0];
/// let b = [1.0f64, 0.0, 0.0, 1.0];
/// let loss = HingeEmbedding::new().margin(0.2).on(CosineDistance::default());
/// let (a, b) = (Rows::new(&a, 2, 2)?, Rows::new(&b, 2, 2)?);
/// let v = loss.forward(a, b, &[1.0, -1.0], Reduction::None)?.into_vec();
/// assert_eq!(v, vec![0.0, 0.0]);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceHingeEmbedding<D> {
    /// The loss applied to each distance.
    pub loss: HingeEmbedding,
    /// The distance between `input1[n]` and `input2[n]`.
    pub distance: D,
}

impl HingeEmbedding {
    /// This loss applied to `distance(input1[n], input2[n])` for row pairs, fused.
    pub fn on<D>(self, distance: D) -> DistanceHingeEmbedding<D> {
        DistanceHingeEmbedding { loss: self, distance }
    }
}

struct OnDistance<'a, T, D> {
    he: HingeEmbeddingKernel<T>,
    distance: &'a D,
}

impl<T: Copy, D> Clone for OnDistance<'_, T, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Copy, D> Copy for OnDistance<'_, T, D> {}

impl<T: Float, D: Distance<T>> PairRow<T> for OnDistance<'_, T, D> {
    const LOSS: &'static str = "hinge_embedding";

    fn labels(&self) -> Labels {
        self.he.labels
    }

    #[inline(always)]
    fn value(&self, a: &[T], b: &[T], t: T) -> T {
        self.he.value(self.distance.distance(RowPair::of(a, b)), t)
    }

    #[inline(always)]
    fn value_grad(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> T {
        self.value_grad_finite(a, b, t, g, ga, gb).0
    }

    #[inline(always)]
    fn value_finite(&self, a: &[T], b: &[T], t: T) -> (T, bool) {
        let (d, fin) = self.distance.distance_finite(RowPair::of(a, b));
        (self.he.value(d, t), fin)
    }

    #[inline(always)]
    fn value_grad_finite(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool) {
        let (v, fin, _) = self.value_grad_checked(a, b, t, g, ga, gb);
        (v, fin)
    }

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
        let mut v = T::zero();
        let mut coef = T::zero();
        let (d, fin) = self.distance.distance_backward_finite(
            RowPair::of(a, b),
            |d| {
                let (value, dx) = self.he.value_grad(d, t);
                v = value;
                coef = dx * g;
                coef
            },
            GradPair::of(a.len(), ga, gb),
        );
        (v, fin, self.distance.grad_bounded(d, coef))
    }
}

impl<D> DistanceHingeEmbedding<D> {
    fn kernel<T: Float>(&self) -> Result<OnDistance<'_, T, D>>
    where
        D: Distance<T>,
    {
        self.distance.check("hinge_embedding", self.loss.mode)?;
        Ok(OnDistance { he: self.loss.kernel()?, distance: &self.distance })
    }

    /// The loss of each row pair of the `(N, D)` inputs, reduced.
    ///
    /// # Errors
    /// Inputs whose shapes differ, or a target that is not one label per row (an
    /// [`Error::Shape`] naming the argument and the shape expected); in strict mode
    /// NaN/±Inf, empty input, targets outside the encoding and bad options.
    pub fn forward<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,
        target: &[T],
        reduction: Reduction,
    ) -> Result<Output<T>>
    where
        D: Distance<T>,
    {
        let mut out = vec![T::zero(); reduction.output_len(target.len())];
        self.forward_into(input1, input2, target, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    /// As [`forward`](Self::forward), into `out` (`reduction.output_len(N)` elements).
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,
        target: &[T],
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()>
    where
        D: Distance<T>,
    {
        let k = self.kernel::<T>()?;
        pair::forward(&k, self.loss.mode, input1, input2, target, reduction, out)
    }

    /// Fused forward and backward in one pass over the rows: the loss into `out` and
    /// `upstream · ∂out/∂input{1,2}` into `grad_input1`, `grad_input2`.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized buffers.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,
        target: &[T],
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input1: &mut [T],
        grad_input2: &mut [T],
    ) -> Result<()>
    where
        D: Distance<T>,
    {
        let k = self.kernel::<T>()?;
        pair::forward_backward(
            &k,
            self.loss.mode,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        // The kernel runs in AVX2/AVX-512 variants where the CPU has them; values,
        // gradients and sums must not depend on which one ran.
        let l = HingeEmbedding::new().margin(1.0);
        let (x, t) = crate::kernel::isa_test_data::<f32>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f32>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f64>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f64>().unwrap(), &x, &t);
    }

    /* torch 2.15:
    x = torch.tensor([0.3,0.3,0.3,0.3,0.3,2,2,-0.5], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1,-1,0,2,0.5,0,-1,3], dtype=torch.float64)
    out = F.hinge_embedding_loss(x, t, reduction="none"); out.sum().backward()
    */
    #[test]
    fn torch_compat_reproduces_both_terms_for_targets_outside_pm1() {
        let x = [0.3f64, 0.3, 0.3, 0.3, 0.3, 2.0, 2.0, -0.5];
        let t = [1.0f64, -1.0, 0.0, 2.0, 0.5, 0.0, -1.0, 3.0];
        let (mut out, mut g) = ([0.0; 8], [0.0; 8]);
        HingeEmbedding::new()
            .mode(Mode::TorchCompat)
            .forward_backward(&x, &t, Reduction::None, &[1.0], &mut out, &mut g)
            .unwrap();
        assert_eq!(out, [0.3, 0.7, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0]);
        assert_eq!(g, [1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn strict_mode_rejects_a_target_outside_pm1() {
        let e = hinge_embedding(&[0.3f64, 0.3], &[1.0, 0.0], Reduction::Mean).unwrap_err();
        assert!(e.to_string().contains("got 0 at target[1]; for {0, 1} labels"), "{e}");
    }

    #[test]
    fn kink_gradient_is_zero_as_in_torch_2_15() {
        let (mut out, mut g) = ([0.0f32], [9.0f32; 2]);
        HingeEmbedding::new()
            .forward_backward(&[1.0f32, 0.5], &[-1.0, -1.0], Reduction::Sum, &[1.0], &mut out, &mut g)
            .unwrap();
        assert_eq!(out[0], 0.5);
        assert_eq!(g, [0.0, -1.0]);
    }
}
