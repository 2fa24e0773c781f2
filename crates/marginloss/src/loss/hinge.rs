//! Binary hinge loss (the SVM loss PyTorch does not have).

use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_option, pointwise_api, relu, Pointwise};
use crate::options::{Kink, Labels, Mode};
use crate::reduction::{Output, Reduction};

/// Binary hinge loss on classifier **scores**:
///
/// ```text
/// l_i = max(0, margin − y_i · x_i)          y_i ∈ {−1, +1}, margin = 1 by default
/// ```
///
/// then reduced by [`Reduction`] (mean by default). With [`Labels::ZeroOne`] the stored
/// target `t` is read as `y = 2t − 1`.
///
/// * **Shapes:** `input` and `target` have the same number of elements (any shape,
///   flattened row-major); the output has one element per input element, or one value.
/// * **Gradient:** `∂l_i/∂x_i = −y_i` where `margin − y_i·x_i > 0`, else 0. **At the kink**
///   (`y_i·x_i == margin`) it is 0 by default, as torch 2.15 gives for
///   `(margin - y*x).clamp_min(0)`; see [`Kink`] for the other conventions.
/// * **Errors (strict):** NaN/±Inf in `input` or `target`, a target outside the encoding
///   (with a hint to use [`Labels::ZeroOne`] when it is 0), empty input, a non-finite
///   margin, mismatched lengths. **Torch-compat** computes
///   `clamp_min(margin − y·x, 0)` for any target and propagates NaN.
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
/// | PyTorch | none (`HingeEmbeddingLoss` is a different loss); `(1 - y*x).clamp_min(0).mean()` |
/// | Keras | `keras.losses.Hinge` (but it guesses {0,1} labels from the data and averages the last axis) |
/// | scikit-learn | `sklearn.metrics.hinge_loss` (binary path), `SGDClassifier(loss="hinge")` |
/// | optax | `optax.losses.hinge_loss` (no reduction) |
///
/// ```
/// use marginloss::{Hinge, Reduction};
/// // The article's scores: hinge gives 2.1, where HingeEmbeddingLoss gives -0.1.
/// let x = [0.8f32, -0.5, 2.0];
/// let y = [-1.0f32, 1.0, -1.0];
/// let loss = Hinge::new().forward(&x, &y, Reduction::Mean)?.scalar().unwrap();
/// assert!((loss - 2.1).abs() < 1e-6);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Hinge {
    /// The margin (default 1.0).
    pub margin: f64,
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl Default for Hinge {
    fn default() -> Self {
        Hinge { margin: 1.0, labels: Labels::PlusMinusOne, mode: Mode::Strict, kink: Kink::Zero }
    }
}

impl Hinge {
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

    fn kernel<T: Float>(&self) -> Result<HingeKernel<T>> {
        finite_option::<T>("hinge", "margin", self.margin, self.mode)?;
        Ok(HingeKernel { margin: T::of(self.margin), labels: self.labels, kink: self.kink })
    }

    pointwise_api!("hinge");
}

/// [`Hinge`] with its defaults on `f32` or `f64` slices.
///
/// ```
/// use marginloss::{hinge, Reduction};
/// // max(0, 1 − y·x) = [1.8, 1.5, 3.0]: the article's scores
/// let (x, y) = ([0.8f64, -0.5, 2.0], [-1.0, 1.0, -1.0]);
/// let l = hinge(&x, &y, Reduction::None)?.into_vec();
/// assert!(l.iter().zip([1.8, 1.5, 3.0]).all(|(a, b)| (a - b).abs() < 1e-15));
/// assert!((hinge(&x, &y, Reduction::Mean)?.scalar().unwrap() - 2.1).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`Hinge::forward`].
pub fn hinge<T: Float>(input: &[T], target: &[T], reduction: Reduction) -> Result<Output<T>> {
    Hinge::new().forward(input, target, reduction)
}

#[derive(Clone, Copy)]
pub(crate) struct HingeKernel<T> {
    margin: T,
    labels: Labels,
    kink: Kink,
}

impl<T: Float> Pointwise<T> for HingeKernel<T> {
    const LOSS: &'static str = "hinge";

    #[inline(always)]
    fn valid(&self, x: T, t: T) -> bool {
        x.is_finite() & self.labels.accepts(t)
    }

    #[inline(always)]
    fn value(&self, x: T, t: T) -> T {
        relu(self.margin - self.labels.decode(t) * x)
    }

    #[inline(always)]
    fn value_grad(&self, x: T, t: T) -> (T, T) {
        let y = self.labels.decode(t);
        let u = self.margin - y * x;
        (relu(u), -y * self.kink.step(u))
    }

    fn domain_error(&self, index: usize, _x: T, t: T) -> Error {
        Error::Domain {
            loss: "hinge",
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
        let l = Hinge::new();
        let (x, t) = crate::kernel::isa_test_data::<f32>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f32>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f64>(3.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f64>().unwrap(), &x, &t);
    }

    #[test]
    fn article_scores_give_2_1() {
        let out = hinge(&[0.8f64, -0.5, 2.0], &[-1.0, 1.0, -1.0], Reduction::None).unwrap();
        let v = out.into_vec();
        assert!((v[0] - 1.8).abs() < 1e-15 && v[1] == 1.5 && v[2] == 3.0);
    }

    #[test]
    fn zero_label_in_pm1_mode_suggests_zero_one_labels() {
        let e = hinge(&[0.5f32, 1.0], &[1.0, 0.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hinge expects target in {-1, 1}, got 0 at target[1]; for {0, 1} labels choose \
             Labels::ZeroOne (CLI: --labels 01)"
        );
    }

    #[test]
    fn zero_one_labels_decode_zero_as_minus_one() {
        let h = Hinge::new().labels(Labels::ZeroOne);
        let a = h.forward(&[0.3f64, -2.0], &[0.0, 1.0], Reduction::None).unwrap().into_vec();
        assert_eq!(a, vec![1.3, 3.0]);
    }

    #[test]
    fn kink_gradient_follows_the_chosen_convention() {
        let x = [1.0f64];
        let t = [1.0f64];
        for (kink, want) in [(Kink::Zero, 0.0), (Kink::Half, -0.5), (Kink::One, -1.0)] {
            let (mut out, mut g) = ([0.0], [0.0]);
            Hinge::new()
                .kink(kink)
                .forward_backward(&x, &t, Reduction::Sum, &[1.0], &mut out, &mut g)
                .unwrap();
            assert_eq!((out[0], g[0]), (0.0, want), "{kink:?}");
        }
    }

    #[test]
    fn torch_compat_accepts_any_target_and_propagates_nan() {
        let h = Hinge::new().mode(Mode::TorchCompat);
        let v = h.forward(&[0.5f32, f32::NAN], &[0.0, 1.0], Reduction::None).unwrap().into_vec();
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        let e = Hinge::new().forward(&[f32::NAN], &[1.0], Reduction::Sum).unwrap_err();
        assert!(e.to_string().starts_with("hinge got NaN at input[0]"), "{e}");
    }

    #[test]
    fn non_finite_margin_is_rejected_in_strict_mode() {
        let e = Hinge::new().margin(f64::INFINITY).forward(&[1.0f32], &[1.0], Reduction::Sum).unwrap_err();
        assert_eq!(e.to_string(), "hinge: option margin must be finite, got inf");
    }
}
