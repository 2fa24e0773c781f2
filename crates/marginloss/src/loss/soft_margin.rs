//! PyTorch's `SoftMarginLoss`: the logistic loss on ±1 labels, computed stably.

use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{pointwise_api, relu, Pointwise};
use crate::options::{Labels, Mode};
use crate::reduction::{Output, Reduction};

/// PyTorch's `SoftMarginLoss` (the logistic loss) on classifier **scores**:
///
/// ```text
/// l_i = log(1 + exp(−y_i · x_i))          y_i ∈ {−1, +1}
///     = max(−z_i, 0) + log1p(exp(−|z_i|)),   z_i = y_i · x_i   (as computed here)
/// ```
///
/// then reduced by [`Reduction`] (mean by default). With [`Labels::ZeroOne`] the stored
/// target `t` is read as `y = 2t − 1`.
///
/// **Computed stably, unlike torch.** Torch evaluates `log1p(exp(−y·x))` literally, so
/// `exp` overflows once `−y·x` passes about 88.7 in `f32` (709.8 in `f64`): the loss
/// becomes `inf` and its hand-written backward `−y·e/(1 + e)` becomes NaN (`inf/inf`).
/// This crate uses the softplus form above and `∂l/∂x = −y·σ(−z)`, both finite for every
/// finite input (`x = −100, y = 1` gives 100 and −1 where torch gives `inf` and NaN).
/// Where torch is finite the two agree to rounding. This holds in both modes.
///
/// * **Shapes:** `input` and `target` have the same number of elements (torch's
///   broadcasting of `target` to the input's shape is not reproduced).
/// * **Gradient:** `∂l_i/∂x_i = −y_i·σ(−y_i·x_i)`, `σ(v) = 1/(1 + exp(−v))`. The loss is
///   smooth: there is no kink. The target gets no gradient (as in torch).
/// * **Errors (strict):** NaN/±Inf in `input` or `target`, a target outside the encoding
///   (with a hint to use [`Labels::ZeroOne`] when it is 0), empty input, mismatched
///   lengths (the last in both modes).
/// * **Torch-compat** uses any real target as it is (`y = 0` gives `log 2` and gradient
///   0), propagates NaN, and gives NaN (mean) or 0 (sum) for empty input. At `x = −∞`
///   (`y = 1`) the loss is `inf` as in torch, but the gradient is the stable `−1`
///   where torch's is NaN.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.SoftMarginLoss`, `F.soft_margin_loss` (overflows, see above) |
/// | Keras | `keras.losses.BinaryCrossentropy(from_logits=True)` with `t = (y + 1)/2` |
/// | scikit-learn | `SGDClassifier(loss="log_loss")` (per-sample), `metrics.log_loss` on `sigmoid(x)` |
/// | optax | `optax.losses.sigmoid_binary_cross_entropy(x, (y + 1)/2)` (no reduction) |
///
/// ```
/// use marginloss::{Reduction, SoftMargin};
/// // torch 2.15 gives [inf, inf, 0.0067153485] here (fixture overflow_f32_none).
/// let x = [-100.0f32, 100.0, 5.0];
/// let y = [1.0f32, -1.0, 1.0];
/// let l = SoftMargin::new().forward(&x, &y, Reduction::None)?.into_vec();
/// assert_eq!(&l[..2], &[100.0, 100.0]);
/// // f32 uses a vectorised exp/log (within 1e-6 relative of the exact 0.0067153485)
/// assert!((l[2] - 0.006_715_348_5).abs() < 1e-8);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SoftMargin {
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl SoftMargin {
    /// The loss with its defaults: ±1 labels, strict.
    pub fn new() -> Self {
        Self::default()
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

    // `pointwise_api!` calls `kernel::<T>()`; this loss has no option to convert to T.
    #[allow(clippy::extra_unused_type_parameters)]
    fn kernel<T: Float>(&self) -> Result<SoftMarginKernel> {
        Ok(SoftMarginKernel { labels: self.labels })
    }

    pointwise_api!("soft_margin");
}

/// [`SoftMargin`] with its defaults on `f32` or `f64` slices.
///
/// ```
/// use marginloss::{soft_margin, Reduction};
/// // log(1 + e^(−y·x)) = [ln 2, ln(1 + e²)]
/// let (x, y) = ([0.0f64, 2.0], [1.0, -1.0]);
/// let l = soft_margin(&x, &y, Reduction::None)?.into_vec();
/// assert!((l[0] - 2f64.ln()).abs() < 1e-15 && (l[1] - (1.0 + 2f64.exp()).ln()).abs() < 1e-15);
/// // stable far out, where torch's float32 overflows: log(1 + e^100) = 100
/// assert_eq!(soft_margin(&[100.0f32], &[-1.0], Reduction::Mean)?.scalar(), Some(100.0));
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`SoftMargin::forward`].
pub fn soft_margin<T: Float>(input: &[T], target: &[T], reduction: Reduction) -> Result<Output<T>> {
    SoftMargin::new().forward(input, target, reduction)
}

#[derive(Clone, Copy)]
pub(crate) struct SoftMarginKernel {
    labels: Labels,
}

/// `log(1 + exp(v))` without overflow: `max(v, 0) + log1p(exp(−|v|))`, NaN-propagating.
#[inline(always)]
fn softplus<T: Float>(v: T) -> T {
    relu(v) + v.abs().softplus_parts().0
}

impl<T: Float> Pointwise<T> for SoftMarginKernel {
    const LOSS: &'static str = "soft_margin";

    #[inline(always)]
    fn valid(&self, x: T, t: T) -> bool {
        x.is_finite() & self.labels.accepts(t)
    }

    #[inline(always)]
    fn value(&self, x: T, t: T) -> T {
        softplus(-(self.labels.decode(t) * x))
    }

    #[inline(always)]
    fn value_grad(&self, x: T, t: T) -> (T, T) {
        let y = self.labels.decode(t);
        let z = y * x;
        // One exp serves both: e = exp(−|z|) ≤ 1, so nothing overflows.
        let (ln, e, inv) = z.abs().softplus_parts();
        let loss = relu(-z) + ln;
        // σ(−z) = e/(1 + e) for z ≥ 0, 1/(1 + e) for z < 0 (NaN stays NaN).
        let s = T::select(z >= T::zero(), e, T::one()) * inv;
        (loss, -y * s)
    }

    fn domain_error(&self, index: usize, _x: T, t: T) -> Error {
        Error::Domain {
            loss: "soft_margin",
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
        let l = SoftMargin::new();
        let (x, t) = crate::kernel::isa_test_data::<f32>(30.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f32>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f64>(30.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f64>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f32>(100.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f32>().unwrap(), &x, &t);
        let (x, t) = crate::kernel::isa_test_data::<f64>(100.0);
        crate::kernel::assert_same_bits_on_every_isa(&l.kernel::<f64>().unwrap(), &x, &t);
    }

    fn fb(l: SoftMargin, x: &[f32], y: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut out, mut g) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        l.forward_backward(x, y, Reduction::None, &[1.0], &mut out, &mut g).unwrap();
        (out, g)
    }

    #[test]
    fn stays_finite_where_torch_overflows_in_f32() {
        // torch 2.15: x = -89, y = 1 gives inf and gradient NaN; -88 gives 88.0.
        let (out, g) = fb(SoftMargin::new(), &[-89.0, -88.0, 1e30, -1e30], &[1.0, 1.0, -1.0, 1.0]);
        assert_eq!(out, [89.0, 88.0, 1e30, 1e30]);
        assert_eq!(g, [-1.0, -1.0, 1.0, -1.0]);
        // Far on the right side the loss and gradient vanish without becoming NaN.
        let (out, g) = fb(SoftMargin::new(), &[200.0], &[1.0]);
        assert_eq!((out[0], g[0]), (0.0, -0.0));
    }

    #[test]
    fn matches_log_of_one_plus_exp_at_moderate_inputs() {
        let (out, g) = fb(SoftMargin::new(), &[0.0, 1.0, -2.0], &[1.0, 1.0, -1.0]);
        assert!((out[0] - std::f32::consts::LN_2).abs() < 1e-7);
        assert!((out[1] - 0.3132617).abs() < 1e-7);
        assert!((out[2] - 0.12692801).abs() < 1e-7);
        assert_eq!(g[0], -0.5);
        assert!((g[1] - -0.26894143).abs() < 1e-7);
        assert!((g[2] - 0.11920292).abs() < 1e-7);
    }

    #[test]
    fn zero_one_labels_decode_zero_as_minus_one() {
        let l = SoftMargin::new().labels(Labels::ZeroOne);
        let a = l.forward(&[1.0f64, 1.0], &[0.0, 1.0], Reduction::None).unwrap().into_vec();
        let b = soft_margin(&[1.0f64, 1.0], &[-1.0, 1.0], Reduction::None).unwrap().into_vec();
        assert_eq!(a, b);
    }

    #[test]
    fn strict_zero_target_suggests_zero_one_labels() {
        let e = soft_margin(&[0.5f32, 1.0], &[1.0, 0.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "soft_margin expects target in {-1, 1}, got 0 at target[1]; for {0, 1} labels choose \
             Labels::ZeroOne (CLI: --labels 01)"
        );
    }

    #[test]
    fn strict_rejects_non_finite_and_empty() {
        let e = soft_margin(&[0.5f64, f64::NEG_INFINITY], &[1.0, 1.0], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "soft_margin got -inf at input[1]; strict mode rejects NaN and infinities \
             (torch-compat mode propagates them as PyTorch does)"
        );
        let e = soft_margin::<f32>(&[], &[], Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("soft_margin got an empty input;"), "{e}");
        let e = soft_margin(&[1.0f32], &[1.0, 1.0], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "soft_margin: target has shape [2] but input has shape [1]");
    }

    /* torch 2.15 (fixture target_zero):
    F.soft_margin_loss(x, y, reduction="none"), x = [0.5, -1, 2], y = [0, 1, 0]
      -> [0.6931472, 1.3132616, 0.6931472], grad [-0, -0.7310586, -0]
    */
    #[test]
    fn torch_compat_uses_a_zero_target_as_is() {
        let (out, g) = fb(SoftMargin::new().mode(Mode::TorchCompat), &[0.5, -1.0, 2.0], &[0.0, 1.0, 0.0]);
        assert_eq!(out[0], std::f32::consts::LN_2);
        assert_eq!(out[2], std::f32::consts::LN_2);
        assert!((out[1] - 1.3132616).abs() < 1e-6);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - -0.7310586).abs() < 1e-7);
    }

    #[test]
    fn torch_compat_infinities_and_nan() {
        let l = SoftMargin::new().mode(Mode::TorchCompat);
        let (out, g) = fb(l, &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN], &[1.0, 1.0, 1.0]);
        // torch: 0 / -0, inf / NaN (ours: the stable -1), NaN / NaN.
        assert_eq!((out[0], g[0]), (0.0, -0.0));
        assert_eq!((out[1], g[1]), (f32::INFINITY, -1.0));
        assert!(out[2].is_nan() && g[2].is_nan());
    }
}
