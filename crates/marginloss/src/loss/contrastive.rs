//! The contrastive loss of Hadsell, Chopra & LeCun (2006) on pairs of rows.

use super::pair::{self, PairRow};
use crate::distance::{Distance, GradPair, PairwiseDistance, RowPair};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::relu;
use crate::options::{Labels, Mode};
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

/// The contrastive loss (Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning
/// an Invariant Mapping", CVPR 2006) on pairs of rows `x1[n]`, `x2[n]`:
///
/// ```text
/// d_n = ‖x1[n] − x2[n] + eps‖₂                  eps = 1e-6, as F.pairwise_distance
/// l_n = ½ · d_n²                   if y_n = +1   (SIMILAR pair: pull together)
/// l_n = ½ · max(0, margin − d_n)²  if y_n = −1   (dissimilar pair: push past the margin)
/// ```
///
/// margin = 1 by default, then reduced over the `N` rows by [`Reduction`].
///
/// **Label convention: `y = +1` means *similar*** (as in PyTorch's `HingeEmbeddingLoss`
/// and `CosineEmbeddingLoss`). The paper uses the opposite, `Y = 0` for similar and
/// `Y = 1` for dissimilar. With [`Labels::ZeroOne`] the stored target 1 is similar and 0
/// is dissimilar (`y = 2t − 1`), which is therefore **the paper's `1 − Y`**.
///
/// * **Shapes:** `input1` and `input2` are `(N, D)` [`Rows`](crate::Rows) of the same
///   shape, `target` is `(N)`; the output has `N` values or one.
/// * **Gradient:** `∂l/∂x1 = d·∂d/∂x1` for `y = 1` and `−max(0, margin − d)·∂d/∂x1` for
///   `y = −1`, with `∂d/∂x1 = v/d`, `v = x1 − x2 + eps` (`∂/∂x2` is its negation). The loss
///   is C¹, so there is no kink: the gradient at `d = margin` is 0 under every convention.
///   Identical rows have `d = eps·√D`, not 0, so a dissimilar identical pair still gets a
///   gradient (`−(margin − d)/√D` per element), unlike pytorch-metric-learning's.
/// * **Errors (strict):** NaN/±Inf in an input or the target, a target outside the
///   encoding (with a hint to use [`Labels::ZeroOne`] when it is 0), empty input, a margin
///   that is negative or not finite, mismatched shapes or buffers.
/// * **Torch-compat** (PyTorch has no such loss; this mode follows the torch composition
///   below, which the fixtures were made with): a target equal to `1` (after decoding) is
///   similar and **every other value dissimilar**; NaN propagates; any margin; empty input
///   gives NaN (mean) or 0 (sum).
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
/// | PyTorch | none in `torch.nn`; `d = F.pairwise_distance(x1, x2)`, `torch.where(y == 1, 0.5*d**2, 0.5*(margin - d).clamp_min(0)**2)` |
/// | pytorch-metric-learning | `losses.ContrastiveLoss(pos_margin=0, neg_margin=1)` is a different loss: all ordered pairs of a batch from class labels, `relu(d − pos_margin)` and `relu(neg_margin − d)` (not squared, not halved) on L2-normalised embeddings, each part averaged over its non-zero terms, then summed |
/// | Keras | none in `keras.losses`; TensorFlow Addons' (deprecated) `tfa.losses.contrastive_loss(y, d)` is `y·d² + (1 − y)·max(margin − d, 0)²` on given distances, y = 1 similar, no ½ |
/// | scikit-learn | none |
/// | optax | none |
///
/// ```
/// use marginloss::{Contrastive, Reduction, Rows};
/// // d = ‖[0, 0] − [0.3, 0.4] + 1e-6‖ ≈ 0.5 for both pairs: similar ½·d², dissimilar ½·(1 − d)²
/// let x1 = [0.0f64, 0.0, 0.0, 0.0];
/// let x2 = [0.3f64, 0.4, 0.3, 0.4];
/// let (x1, x2) = (Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?); // 2 pairs of rows of 2
/// let l = Contrastive::new().forward(x1, x2, &[1.0, -1.0], Reduction::None)?;
/// assert!((l.as_slice()[0] - 0.125).abs() < 1e-6);
/// assert!((l.as_slice()[1] - 0.125).abs() < 1e-6);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Contrastive {
    /// The distance dissimilar pairs are pushed beyond (default 1.0).
    pub margin: f64,
    /// The target encoding (default ±1; `+1`, or 1 under [`Labels::ZeroOne`], is similar).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for Contrastive {
    fn default() -> Self {
        Contrastive { margin: 1.0, labels: Labels::PlusMinusOne, mode: Mode::Strict }
    }
}

impl Contrastive {
    /// The loss with its defaults: margin 1, ±1 labels (+1 similar), strict.
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

    fn kernel<T: Float>(&self) -> Result<Kernel<T>> {
        if self.mode.is_strict() && !(self.margin >= 0.0 && self.margin.is_finite()) {
            return Err(Error::Option {
                loss: LOSS,
                option: "margin",
                value: Value(self.margin),
                expected: "finite and >= 0",
            });
        }
        if self.mode.is_strict() {
            crate::kernel::fits::<T>(LOSS, "margin", self.margin)?;
        }
        Ok(Kernel { margin: T::of(self.margin), labels: self.labels, dist: PairwiseDistance::new() })
    }

    pair::pair_api!();
}

/// [`Contrastive`] with its defaults (margin 1, ±1 labels with +1 similar, strict) on
/// `(N, D)` rows.
///
/// ```
/// use marginloss::{contrastive, Reduction, Rows};
/// // d ≈ 5 for the similar pair (½·d² ≈ 12.5), d ≈ 0.5 for the dissimilar one
/// // (½·max(0, 1 − d)² ≈ 0.125); d includes torch's eps = 1e-6 added to the difference
/// let (x1, x2, y) = ([0.0f64, 0.0, 0.0, 0.0], [3.0, 4.0, 0.3, 0.4], [1.0, -1.0]);
/// let (x1, x2) = (Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?);
/// let l = contrastive(x1, x2, &y, Reduction::None)?.into_vec();
/// assert!((l[0] - 12.5).abs() < 1e-4 && (l[1] - 0.125).abs() < 1e-5);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`Contrastive::forward`].
pub fn contrastive<T: Float>(
    input1: Rows<'_, T>,
    input2: Rows<'_, T>,
    target: &[T],
    reduction: Reduction,
) -> Result<Output<T>> {
    Contrastive::new().forward(input1, input2, target, reduction)
}

const LOSS: &str = "contrastive";

#[derive(Clone, Copy)]
struct Kernel<T> {
    margin: T,
    labels: Labels,
    dist: PairwiseDistance,
}

impl<T: Float> Kernel<T> {
    /// The loss and `∂l/∂d` for distance `d` and stored target `t`, in `T` as the torch
    /// composition computes it.
    #[inline(always)]
    fn loss(&self, d: T, t: T) -> (T, T) {
        let half = T::of(0.5);
        if self.labels.decode(t) == T::one() {
            (half * (d * d), d)
        } else {
            let r = relu(self.margin - d);
            (half * (r * r), -r)
        }
    }
}

impl<T: Float> PairRow<T> for Kernel<T> {
    const LOSS: &'static str = LOSS;

    fn labels(&self) -> Labels {
        self.labels
    }

    #[inline(always)]
    fn value(&self, a: &[T], b: &[T], t: T) -> T {
        self.loss(self.dist.distance(RowPair::of(a, b)), t).0
    }

    #[inline(always)]
    fn value_grad(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> T {
        self.value_grad_finite(a, b, t, g, ga, gb).0
    }

    #[inline(always)]
    fn value_finite(&self, a: &[T], b: &[T], t: T) -> (T, bool) {
        let (d, fin) = self.dist.distance_finite(RowPair::of(a, b));
        (self.loss(d, t).0, fin)
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
        let mut l = T::zero();
        let mut coef = T::zero();
        let (d, fin) = self.dist.distance_backward_finite(
            RowPair::of(a, b),
            |d| {
                let (v, dd) = self.loss(d, t);
                l = v;
                coef = g * dd;
                coef
            },
            GradPair::of(a.len(), ga, gb),
        );
        (l, fin, self.dist.grad_bounded(d, coef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    fn fused(
        l: Contrastive,
        x1: &[f64],
        x2: &[f64],
        t: &[f64],
        dim: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut out, mut g1, mut g2) = (vec![0.0; t.len()], vec![0.0; x1.len()], vec![0.0; x2.len()]);
        l.forward_backward(
            mat(x1, dim),
            mat(x2, dim),
            t,
            Reduction::None,
            &[1.0],
            &mut out,
            &mut g1,
            &mut g2,
        )
        .unwrap();
        (out, g1, g2)
    }

    /* The fixture's torch composition (tools/gen_fixtures.py f_contrastive) on identical
    rows of D = 4: d = 2e-6; similar: ½d², gradient d·v/d = eps per element; dissimilar:
    ½(1 − d)², gradient −(1 − d)·eps/d = −(1 − d)/2 per element. */
    #[test]
    fn identical_rows_keep_a_gradient_through_eps() {
        let x = [0.5, -1.0, 2.0, 0.25];
        let (out, g1, g2) = fused(Contrastive::new(), &[x, x].concat(), &[x, x].concat(), &[1.0, -1.0], 4);
        let d = 2e-6;
        assert!((out[0] - 0.5 * d * d).abs() < 1e-20);
        assert!((out[1] - 0.5 * (1.0 - d) * (1.0 - d)).abs() < 1e-15);
        for k in 0..4 {
            assert!((g1[k] - 1e-6).abs() < 1e-15, "{}", g1[k]);
            assert!((g1[4 + k] + (1.0 - d) / 2.0).abs() < 1e-9, "{}", g1[4 + k]);
        }
        assert_eq!(g2, g1.iter().map(|g| -g).collect::<Vec<_>>());
    }

    #[test]
    fn dissimilar_pair_beyond_the_margin_has_no_loss_and_no_gradient() {
        // d ≈ 2 > margin 1: loss 0 and gradient 0 (C¹: the gradient is already 0 at d = margin)
        let (out, g1, _) = fused(Contrastive::new().margin(1.0), &[0.0, 0.0], &[2.0, 0.0], &[-1.0], 2);
        assert_eq!(out, [0.0]);
        assert_eq!(g1, [0.0, 0.0]);
    }

    #[test]
    fn zero_one_labels_read_one_as_similar() {
        let x1 = [0.0f64, 0.0, 0.0, 0.0];
        let x2 = [0.6f64, 0.0, 0.6, 0.0];
        let pm = Contrastive::new().forward(mat(&x1, 2), mat(&x2, 2), &[1.0, -1.0], Reduction::None).unwrap();
        let zo = Contrastive::new()
            .labels(Labels::ZeroOne)
            .forward(mat(&x1, 2), mat(&x2, 2), &[1.0, 0.0], Reduction::None)
            .unwrap();
        assert_eq!(pm, zo);
        assert!((pm.as_slice()[0] - 0.18).abs() < 1e-6 && (pm.as_slice()[1] - 0.08).abs() < 1e-6);
    }

    #[test]
    fn strict_errors_name_the_offender() {
        let e =
            contrastive(mat(&[0.0f32, 1.0], 2), mat(&[1.0, 0.0], 2), &[0.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "contrastive expects target in {-1, 1}, got 0 at target[0]; \
             for {0, 1} labels choose Labels::ZeroOne (CLI: --labels 01)"
        );
        let e = Contrastive::new()
            .labels(Labels::ZeroOne)
            .forward(mat(&[0.0f32, 1.0], 2), mat(&[1.0, 0.0], 2), &[-1.0], Reduction::Mean)
            .unwrap_err();
        assert!(
            e.to_string().ends_with("for {-1, 1} labels choose Labels::PlusMinusOne (CLI: --labels pm1)"),
            "{e}"
        );
        let e = contrastive(mat(&[0.0f32, 1.0], 2), mat(&[1.0, f32::INFINITY], 2), &[1.0], Reduction::Mean)
            .unwrap_err();
        assert!(e.to_string().starts_with("contrastive got inf at input2[1]"), "{e}");
        let e = Contrastive::new()
            .margin(-1.0)
            .forward(mat(&[0.0f32], 1), mat(&[1.0], 1), &[1.0], Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "contrastive: option margin must be finite and >= 0, got -1");
        let (mut out, mut g1, mut g2) = ([0.0f32], [0.0f32; 2], [0.0f32; 1]);
        let e = Contrastive::new()
            .forward_backward(
                mat(&[0.0f32, 1.0], 2),
                mat(&[1.0, 0.0], 2),
                &[1.0],
                Reduction::Sum,
                &[1.0],
                &mut out,
                &mut g1,
                &mut g2,
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "contrastive: the grad input2 buffer has length 1, expected 2");
    }

    #[test]
    fn torch_compat_reads_any_target_but_one_as_dissimilar() {
        let l = Contrastive::new().mode(Mode::TorchCompat);
        let x1 = [0.0f64, 0.0, 0.0, 0.0];
        let x2 = [0.6f64, 0.0, 0.6, 0.0];
        let out = l.forward(mat(&x1, 2), mat(&x2, 2), &[0.0, 2.0], Reduction::None).unwrap();
        let dis = l.forward(mat(&x1, 2), mat(&x2, 2), &[-1.0, -1.0], Reduction::None).unwrap();
        assert_eq!(out, dis);
    }
}
