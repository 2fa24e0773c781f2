//! PyTorch's `CosineEmbeddingLoss`: pull similar pairs to cosine 1, push dissimilar ones
//! below a margin.

use super::pair::{self, finite, PairRow};
use crate::distance::dot3;
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::relu;
use crate::options::{Kink, Labels, Mode};
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

/// `EPSILON` in ATen's `cosine_embedding_loss`: a C++ `float` 1e-12, so
/// 9.999999960041972e-13 in f64 as well.
const EPS: f64 = 1e-12_f32 as f64;

/// PyTorch's `CosineEmbeddingLoss` on pairs of rows `x1[n]`, `x2[n]` (embeddings) with a
/// target `y_n` saying whether the pair is similar (+1) or dissimilar (−1):
///
/// ```text
/// cos_n = Σ_d x1·x2 / sqrt((Σ_d x1² + EPS) · (Σ_d x2² + EPS))      EPS = (f32)1e-12
/// l_n   = 1 − cos_n                    if y_n = +1
/// l_n   = max(0, cos_n − margin)       if y_n = −1                 margin = 0 by default
/// ```
///
/// then reduced over the `N` rows by [`Reduction`]. EPS is a C++ `float` in ATen, so it is
/// 9.999999960041972e-13 in f64 too, and it is **added to each squared norm** (this is not
/// the per-norm clamp of [`cosine_similarity`](crate::cosine_similarity)): a zero row has
/// cosine 0, no error. With [`Labels::ZeroOne`] the stored target `t` is read as `y = 2t − 1`.
///
/// * **Shapes:** `input1` and `input2` are `(N, D)` [`Rows`](crate::Rows) of the same
///   shape, `target` is `(N)`; a single pair of `(D)` vectors is
///   [`Rows::single`](crate::Rows::single), `N = 1`. The output has `N` values or one.
/// * **Gradient:** `∂l/∂x1 = ∂l/∂cos · (x2/sqrt(M1·M2) − cos·x1/M1)` with
///   `M = Σ x² + EPS` (symmetrically for `x2`), `∂l/∂cos = −1` for `y = 1` and
///   `[cos − margin > 0]` for `y = −1`. A zero `x1` with `y = 1` gets `−x2/sqrt(EPS·M2)`,
///   about −1e6 per unit of `x2`, as in torch. **At the kink** `cos == margin` with
///   `y = −1` the gradient is 0, as in torch 2.15 (see [`Kink`]). The target gets none.
/// * **Errors (strict):** NaN/±Inf in an input or the target, a target outside the
///   encoding (with a hint to use [`Labels::ZeroOne`] when it is 0), empty input, a margin
///   outside [−1, 1] (the range torch documents but does not check) or non-finite,
///   mismatched shapes or buffers.
/// * **Torch-compat** reproduces torch 2.15: a target that is neither 1 nor −1 contributes
///   loss 0 and gradient 0, silently; any margin is used; NaN propagates; empty input gives
///   NaN (mean) or 0 (sum). Each row is computed in the element type as torch does (an f32
///   row whose squared norms overflow gives NaN, as in torch); only the three sums are
///   accumulated in f64. Unlike torch, inputs do not broadcast and `D = 0` is an error.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.CosineEmbeddingLoss(margin)`, `F.cosine_embedding_loss(x1, x2, y)` |
/// | Keras | none (`keras.losses.CosineSimilarity` is `−cos`, without targets or margin) |
/// | scikit-learn | none |
/// | optax | none (`1 − optax.losses.cosine_similarity` is the `y = 1` branch, eps on the squared norm, default 0) |
///
/// ```
/// use marginloss::{CosineEmbedding, Reduction, Rows};
/// // torch 2.15, float64: a = [3e-7, 0], b = [1, 0], y = 1 gives 0.7126521139071077,
/// // the value for EPS = (float)1e-12 (EPS = 1e-12 would differ in the 10th digit).
/// let (a, b) = (Rows::single(&[3e-7f64, 0.0]), Rows::single(&[1.0, 0.0]));
/// let l = CosineEmbedding::new().forward(a, b, &[1.0], Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.7126521139071077).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CosineEmbedding {
    /// The margin a dissimilar pair's cosine must stay below (default 0; strict mode
    /// requires it in [−1, 1]).
    pub margin: f64,
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl Default for CosineEmbedding {
    fn default() -> Self {
        CosineEmbedding { margin: 0.0, labels: Labels::PlusMinusOne, mode: Mode::Strict, kink: Kink::Zero }
    }
}

impl CosineEmbedding {
    /// The loss with its defaults: margin 0, ±1 labels, strict, kink gradient 0.
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

    fn kernel<T: Float>(&self) -> Result<Kernel<T>> {
        if self.mode.is_strict() && !(-1.0..=1.0).contains(&self.margin) {
            return Err(Error::Option {
                loss: LOSS,
                option: "margin",
                value: Value(self.margin),
                expected: "in [-1, 1]",
            });
        }
        Ok(Kernel { margin: T::of(self.margin), labels: self.labels, kink: self.kink })
    }

    pair::pair_api!();
}

/// [`CosineEmbedding`] with its defaults (margin 0, ±1 labels, strict) on `(N, D)` rows.
///
/// ```
/// use marginloss::{cosine_embedding, Reduction, Rows};
/// // 2 pairs of rows of 2: cos = 1/√2 for the similar pair (loss 1 − 1/√2), 0 for the
/// // dissimilar one
/// let (x1, x2, y) = ([1.0f64, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0], [1.0, -1.0]);
/// let (x1, x2) = (Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?);
/// let l = cosine_embedding(x1, x2, &y, Reduction::None)?.into_vec();
/// assert!((l[0] - (1.0 - 0.5f64.sqrt())).abs() < 1e-9 && l[1] == 0.0);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`CosineEmbedding::forward`].
pub fn cosine_embedding<T: Float>(
    input1: Rows<'_, T>,
    input2: Rows<'_, T>,
    target: &[T],
    reduction: Reduction,
) -> Result<Output<T>> {
    CosineEmbedding::new().forward(input1, input2, target, reduction)
}

const LOSS: &str = "cosine_embedding";

#[derive(Clone, Copy)]
struct Kernel<T> {
    margin: T,
    labels: Labels,
    kink: Kink,
}

/// One row's cosine as ATen forms it: the sums (accumulated in f64) rounded to `T`, EPS
/// added to each squared norm in `T`, then `P / sqrt(M1·M2)` in `T`.
struct Cos<T> {
    cos: T,
    denom: T,
    m1: T,
    m2: T,
}

#[inline(always)]
fn cos_of<T: Float>(a: &[T], b: &[T]) -> Cos<T> {
    let (ab, aa, bb, _) = dot3(a, b);
    let eps = T::of(EPS);
    let (m1, m2) = (T::of(aa) + eps, T::of(bb) + eps);
    let denom = (m1 * m2).sqrt();
    Cos { cos: T::of(ab) / denom, denom, m1, m2 }
}

impl<T: Float> Kernel<T> {
    /// The loss and `∂l/∂cos` for decoded target `y`.
    #[inline(always)]
    fn loss(&self, cos: T, y: T) -> (T, T) {
        // Both sides computed and picked without a branch: random ±1 targets would
        // mispredict half the rows.
        let (pos, neg) = (y == T::one(), y == -T::one());
        let u = cos - self.margin;
        let l = T::select(pos, T::one() - cos, T::select(neg, relu(u), T::zero()));
        let d = T::select(pos, -T::one(), T::select(neg, self.kink.step(u), T::zero()));
        (l, d)
    }
}

impl<T: Float> PairRow<T> for Kernel<T> {
    const LOSS: &'static str = LOSS;

    fn labels(&self) -> Labels {
        self.labels
    }

    #[inline(always)]
    fn value(&self, a: &[T], b: &[T], t: T) -> T {
        self.loss(cos_of(a, b).cos, self.labels.decode(t)).0
    }

    #[inline(always)]
    fn value_grad(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> T {
        self.value_grad_bounded(a, b, t, g, ga, gb).0
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
        let (v, bounded) = self.value_grad_bounded(a, b, t, g, ga, gb);
        (v, finite(a) & finite(b), bounded)
    }
}

impl<T: Float> Kernel<T> {
    /// The loss and gradient rows of one pair, and whether the row's scalars bound every
    /// gradient element below `T`'s range (`|ga_i| ≤ |k|·√m2 + |ka|·√m1`, as `|b_i| ≤ √m2`).
    #[inline(always)]
    fn value_grad_bounded(&self, a: &[T], b: &[T], t: T, g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool) {
        let r = cos_of(a, b);
        let (l, dcos) = self.loss(r.cos, self.labels.decode(t));
        let c = g * dcos;
        let (k, ka, kb) = (c / r.denom, c * r.cos / r.m1, c * r.cos / r.m2);
        let n = a.len();
        let (a, b, ga, gb) = (&a[..n], &b[..n], &mut ga[..n], &mut gb[..n]);
        for i in 0..n {
            ga[i] = k * b[i] - ka * a[i];
            gb[i] = k * a[i] - kb * b[i];
        }
        let (s1, s2) = (r.m1.f64().sqrt(), r.m2.f64().sqrt());
        let (k, ka, kb) = (k.f64().abs(), ka.f64().abs(), kb.f64().abs());
        let lim = crate::kernel::grad_limit::<T>();
        let coefs = k < lim && ka < lim && kb < lim; // 0·inf is NaN
        (l, coefs && k * s2 + ka * s1 < lim && k * s1 + kb * s2 < lim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    fn fused(
        l: CosineEmbedding,
        x1: &[f64],
        x2: &[f64],
        t: &[f64],
        dim: usize,
    ) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
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
        )?;
        Ok((out, g1, g2))
    }

    /* torch 2.15 (loss-spec §5): a zero row has cosine 0, y = 1 gives 1 and the gradient
    -x2/sqrt(EPS·M2) (≈ -1e6 for a unit x2); y = -1 gives max(0, -margin). */
    #[test]
    fn zero_row_is_defined_through_eps() {
        let (out, g1, g2) =
            fused(CosineEmbedding::new(), &[0.0, 0.0, 0.0, 0.0], &[1.0, 0.0, 1.0, 0.0], &[1.0, -1.0], 2)
                .unwrap();
        assert_eq!(out, [1.0, 0.0]);
        let want = -1.0 / (EPS * (1.0 + EPS)).sqrt();
        assert!((g1[0] - want).abs() < 1e-9 * want.abs(), "{}", g1[0]);
        assert!((g1[0] + 1e6).abs() < 1.0);
        assert_eq!(&g1[1..], [0.0, 0.0, 0.0]);
        assert_eq!(g2, [0.0; 4]);
        let (out, ..) =
            fused(CosineEmbedding::new().margin(-0.5), &[0.0, 0.0], &[1.0, 0.0], &[-1.0], 2).unwrap();
        assert_eq!(out, [0.5]);
    }

    #[test]
    fn kink_gradient_is_zero_as_in_torch_2_15() {
        // orthogonal rows: cos = 0 = margin with y = -1
        let (out, g1, g2) = fused(CosineEmbedding::new(), &[1.0, 0.0], &[0.0, 1.0], &[-1.0], 2).unwrap();
        assert_eq!(out, [0.0]);
        assert_eq!((g1, g2), (vec![0.0, 0.0], vec![0.0, 0.0]));
        let (_, g1, _) =
            fused(CosineEmbedding::new().kink(Kink::One), &[1.0, 0.0], &[0.0, 1.0], &[-1.0], 2).unwrap();
        // x2/sqrt(M1·M2) − cos·x1/M1 = [0, 1/(1 + EPS)]
        assert_eq!(g1[0], 0.0);
        assert!((g1[1] - 1.0).abs() < 1e-11, "{}", g1[1]);
    }

    /* torch 2.15: F.cosine_embedding_loss(x1, x2, torch.tensor([0., 2.]), reduction="none")
    is [0, 0], gradients 0 */
    #[test]
    fn torch_compat_gives_zero_for_targets_outside_pm1() {
        let x1 = [0.3, -1.0, 2.0, 0.5];
        let x2 = [1.0, 1.0, -0.5, 0.25];
        let l = CosineEmbedding::new().mode(Mode::TorchCompat);
        let (out, g1, g2) = fused(l, &x1, &x2, &[0.0, 2.0], 2).unwrap();
        assert_eq!(out, [0.0, 0.0]);
        assert_eq!((g1, g2), (vec![0.0; 4], vec![0.0; 4]));
    }

    #[test]
    fn strict_rejects_zero_target_with_the_labels_hint() {
        let e = cosine_embedding(
            mat(&[1.0f32, 0.0, 0.0, 1.0], 2),
            mat(&[1.0, 0.0, 1.0, 0.0], 2),
            &[1.0, 0.0],
            Reduction::Mean,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cosine_embedding expects target in {-1, 1}, got 0 at target[1]; \
             for {0, 1} labels choose Labels::ZeroOne (CLI: --labels 01)"
        );
        // ... and Labels::ZeroOne reads 0 as a dissimilar pair
        let l = CosineEmbedding::new()
            .labels(Labels::ZeroOne)
            .forward(
                mat(&[1.0f32, 0.0, 1.0, 1.0], 2),
                mat(&[1.0, 0.0, 1.0, 0.0], 2),
                &[1.0, 0.0],
                Reduction::None,
            )
            .unwrap();
        assert!((l.as_slice()[1] - 0.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn strict_errors_name_the_offender() {
        let l = CosineEmbedding::new();
        let e =
            l.forward(mat(&[1.0f64, 0.0], 2), mat(&[f64::NAN, 0.0], 2), &[1.0], Reduction::Sum).unwrap_err();
        assert!(e.to_string().starts_with("cosine_embedding got NaN at input2[0]; strict mode"), "{e}");
        let e = l.forward::<f64>(mat(&[], 2), mat(&[], 2), &[], Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("cosine_embedding got an empty input1"), "{e}");
        let e = l.margin(1.5).forward(mat(&[1.0f64], 1), mat(&[1.0], 1), &[1.0], Reduction::Sum).unwrap_err();
        assert_eq!(e.to_string(), "cosine_embedding: option margin must be in [-1, 1], got 1.5");
        let e = l
            .margin(f64::NAN)
            .forward(mat(&[1.0f64], 1), mat(&[1.0], 1), &[1.0], Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "cosine_embedding: option margin must be in [-1, 1], got NaN");
        let e =
            l.forward(mat(&[1.0f64, 2.0], 2), mat(&[1.0, 2.0], 2), &[1.0, 1.0], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cosine_embedding: target has shape [2] but input1 has shape [1, 2], so target has shape [1]"
        );
        // 4 elements stated as 2 × 2 and 1 × 4: the second input names the first's shape
        let x = [1.0f64, 2.0, 3.0, 4.0];
        let e = l.forward(mat(&x, 2), mat(&x, 4), &[1.0, 1.0], Reduction::Sum).unwrap_err();
        assert_eq!(e.to_string(), "cosine_embedding: input2 has shape [1, 4] but input1 has shape [2, 2]");
        // torch-compat takes any margin
        assert!(l
            .margin(1.5)
            .mode(Mode::TorchCompat)
            .forward(mat(&[1.0f64], 1), mat(&[1.0], 1), &[1.0], Reduction::Sum)
            .is_ok());
    }

    #[test]
    fn torch_compat_empty_batch_is_nan_for_mean_and_zero_for_sum() {
        let l = CosineEmbedding::new().mode(Mode::TorchCompat);
        assert!(l
            .forward::<f32>(mat(&[], 3), mat(&[], 3), &[], Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        assert_eq!(
            l.forward::<f32>(mat(&[], 3), mat(&[], 3), &[], Reduction::Sum).unwrap().scalar(),
            Some(0.0)
        );
        // an empty per-row upstream matches the empty output
        let (mut out, mut g1, mut g2) = ([0.0f32; 0], [0.0f32; 0], [0.0f32; 0]);
        l.forward_backward(mat(&[], 3), mat(&[], 3), &[], Reduction::None, &[], &mut out, &mut g1, &mut g2)
            .unwrap();
    }
}
