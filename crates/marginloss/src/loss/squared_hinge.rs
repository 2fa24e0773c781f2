//! Squared binary hinge loss.

use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_option, pointwise_api, relu, Pointwise};
use crate::options::{Labels, Mode};
use crate::reduction::{Output, Reduction};

/// Squared hinge loss on classifier **scores**:
///
/// ```text
/// l_i = max(0, margin − y_i · x_i)²         y_i ∈ {−1, +1}, margin = 1 by default
/// ```
///
/// then reduced by [`Reduction`]. With [`Labels::ZeroOne`] the target `t` is read as
/// `y = 2t − 1`.
///
/// * **Shapes:** `input` and `target` have the same number of elements.
/// * **Gradient:** `∂l_i/∂x_i = −2·y_i·max(0, margin − y_i·x_i)`. The loss is C¹, so the
///   gradient at the kink is 0 under every convention.
/// * **Errors (strict):** as [`Hinge`](crate::Hinge): NaN/±Inf, a target outside the
///   encoding, empty input, a non-finite margin, mismatched lengths. **Torch-compat**
///   computes `clamp_min(margin − y·x, 0)**2` for any target and propagates NaN.
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
/// | PyTorch | none; `(1 - y*x).clamp_min(0).pow(2).mean()` |
/// | Keras | `keras.losses.SquaredHinge` (guesses {0,1} labels; averages the last axis) |
/// | scikit-learn | `SGDClassifier(loss="squared_hinge")`, `LinearSVC` (its default loss) |
/// | optax | none |
///
/// ```
/// use marginloss::{SquaredHinge, Reduction};
/// let loss = SquaredHinge::new()
///     .forward(&[0.8f64, -0.5, 2.0], &[-1.0, 1.0, -1.0], Reduction::Mean)?
///     .scalar()
///     .unwrap();
/// assert!((loss - 4.83).abs() < 1e-12); // (1.8² + 1.5² + 3²) / 3
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SquaredHinge {
    /// The margin (default 1.0).
    pub margin: f64,
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for SquaredHinge {
    fn default() -> Self {
        SquaredHinge { margin: 1.0, labels: Labels::PlusMinusOne, mode: Mode::Strict }
    }
}

impl SquaredHinge {
    /// The loss with its defaults: margin 1, ±1 labels, strict.
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

    fn kernel<T: Float>(&self) -> Result<SquaredHingeKernel<T>> {
        finite_option::<T>("squared_hinge", "margin", self.margin, self.mode)?;
        Ok(SquaredHingeKernel { margin: T::of(self.margin), labels: self.labels })
    }

    pointwise_api!("squared_hinge");
}

/// [`SquaredHinge`] with its defaults on `f32` or `f64` slices.
///
/// ```
/// use marginloss::{squared_hinge, Reduction};
/// // max(0, 1 − y·x)² = [3.24, 2.25, 9.0]
/// let (x, y) = ([0.8f64, -0.5, 2.0], [-1.0, 1.0, -1.0]);
/// let l = squared_hinge(&x, &y, Reduction::None)?.into_vec();
/// assert!(l.iter().zip([3.24, 2.25, 9.0]).all(|(a, b)| (a - b).abs() < 1e-14));
/// assert!((squared_hinge(&x, &y, Reduction::Mean)?.scalar().unwrap() - 4.83).abs() < 1e-14);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`SquaredHinge::forward`].
pub fn squared_hinge<T: Float>(input: &[T], target: &[T], reduction: Reduction) -> Result<Output<T>> {
    SquaredHinge::new().forward(input, target, reduction)
}

#[derive(Clone, Copy)]
pub(crate) struct SquaredHingeKernel<T> {
    margin: T,
    labels: Labels,
}

impl<T: Float> Pointwise<T> for SquaredHingeKernel<T> {
    const LOSS: &'static str = "squared_hinge";
    // −2·y·max(0, u) grows with u.
    const BOUNDED_GRAD: bool = false;

    #[inline(always)]
    fn valid(&self, x: T, t: T) -> bool {
        x.is_finite() & self.labels.accepts(t)
    }

    #[inline(always)]
    fn value(&self, x: T, t: T) -> T {
        let r = relu(self.margin - self.labels.decode(t) * x);
        r * r
    }

    #[inline(always)]
    fn value_grad(&self, x: T, t: T) -> (T, T) {
        let y = self.labels.decode(t);
        let u = self.margin - y * x;
        let r = relu(u);
        // As torch's chain: the clamp's mask is applied last, so NaN gets gradient 0.
        let d = T::select(u > T::zero(), -(u + u) * y, T::zero());
        (r * r, d)
    }

    fn domain_error(&self, index: usize, _x: T, t: T) -> Error {
        Error::Domain {
            loss: "squared_hinge",
            arg: "target",
            index,
            value: Value(t.f64()),
            expected: self.labels.expected(),
            hint: self.labels.hint(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        // The kernel runs in AVX2/AVX-512 variants where the CPU has them; values,
        // gradients and sums must not depend on which one ran.
        let l = SquaredHinge::new();
        let (x, t) = crate::kernel::isa_test_data::<f32>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f32>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f64>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f64>().unwrap(), &x, &t);
    }

    #[test]
    fn gradient_is_minus_two_y_times_the_hinge() {
        let (mut out, mut g) = ([0.0f64; 3], [0.0f64; 3]);
        SquaredHinge::new()
            .forward_backward(&[0.5, 2.0, 1.0], &[1.0, -1.0, 1.0], Reduction::None, &[1.0], &mut out, &mut g)
            .unwrap();
        assert_eq!(out, [0.25, 9.0, 0.0]);
        assert_eq!(g, [-1.0, 6.0, 0.0]);
    }
}
