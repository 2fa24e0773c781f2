//! PyTorch's `TripletMarginLoss`: the triplet loss over the p-norm distance.

use super::triplet_margin_with_distance::TripletMarginWithDistance;
use crate::distance::PairwiseDistance;
use crate::error::Result;
use crate::float::Float;
use crate::options::{Kink, Mode};
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

/// PyTorch's `TripletMarginLoss` on `(anchor, positive, negative)` rows:
///
/// ```text
/// d(u, v) = ‖u − v + eps‖_p                    (F.pairwise_distance: eps added to the difference)
/// dp_n = d(a[n], p[n]);   dn_n = d(a[n], n[n]);   if swap: dn_n = min(dn_n, d(p[n], n[n]))
/// l_n  = max(0, margin + dp_n − dn_n)          margin = 1, p = 2, eps = 1e-6 by default
/// ```
///
/// then reduced over the `N` rows by [`Reduction`]. This is
/// [`TripletMarginWithDistance`] over a [`PairwiseDistance`] with this `p` and `eps`, and
/// runs the same fused kernel.
///
/// * **Shapes:** `anchor`, `positive` and `negative` are `(N, D)` [`Rows`](crate::Rows) of
///   the same shape (a single triplet of `(D)` vectors is [`Rows::single`](crate::Rows::single),
///   `N = 1`); the output has `N` values or one.
/// * **Gradient:** `∂l/∂dp = 1`, `∂l/∂dn = −1` where `margin + dp − dn > 0`, chained through
///   the p-norm (`v/‖v‖` for p = 2, `v = u − v' + eps`). Because of eps, `anchor ==
///   positive` still gives `dp` a gradient (`±1/√D` per element for p = 2), as in torch.
///   With `swap` and an exact tie `d(a, n) == d(p, n)` the gradient is **split 0.5 / 0.5**
///   (torch's `at::min`). **At the kink** `margin + dp − dn == 0` it is 0, as in torch 2.15
///   (see [`Kink`]).
/// * **Errors:** a margin that is not > 0, in both modes (torch raises `margin must be
///   greater than 0`). Strict mode also rejects NaN/±Inf inputs, empty input, a non-finite
///   margin, `p <= 0`, a non-finite eps, and mismatched shapes or buffers.
/// * **Torch-compat:** NaN propagates; empty input gives NaN (mean) or 0 (sum); `p = 0`
///   (which counts non-zeros) and negative `p` are computed as torch does. Inputs do not
///   broadcast.
/// * **Options in the dtype (strict):** `margin` and `eps` must be finite in the inputs' type too:
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
/// | PyTorch | `nn.TripletMarginLoss(margin=1.0, p=2.0, eps=1e-6, swap=False)`, `F.triplet_margin_loss` |
/// | Keras | none |
/// | scikit-learn | none |
/// | optax | `optax.losses.triplet_margin_loss(a, p, n, norm_degree=2, margin=1.0, eps=1e-6)`, unreduced; eps sits **inside the root** (`d(a, a) = 1e-3`) and there is no `abs` (odd degrees differ) |
///
/// ```
/// use marginloss::{Reduction, Rows, TripletMargin};
/// // one triplet: dp ≈ 1, dn ≈ 1.5: l ≈ 1 + 1 − 1.5 = 0.5
/// // (eps = 1e-6 moves each distance by ~1e-6)
/// let (a, p, n) = ([0.0f64, 0.0], [0.0, 1.0], [0.0, 1.5]);
/// let (a, p, n) = (Rows::single(&a), Rows::single(&p), Rows::single(&n));
/// let l = TripletMargin::new().forward(a, p, n, Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.5).abs() < 1e-6);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct TripletMargin {
    /// The margin (default 1.0; must be > 0).
    pub margin: f64,
    /// The norm degree of the distance (default 2).
    pub p: f64,
    /// Added to every component of the difference (default 1e-6).
    pub eps: f64,
    /// Whether to use `min(d(a, n), d(p, n))` as the negative distance (default false).
    pub swap: bool,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl Default for TripletMargin {
    fn default() -> Self {
        TripletMargin { margin: 1.0, p: 2.0, eps: 1e-6, swap: false, mode: Mode::Strict, kink: Kink::Zero }
    }
}

const LOSS: &str = "triplet_margin";

impl TripletMargin {
    /// The loss with torch's defaults: margin 1, p = 2, eps = 1e-6, no swap, strict, kink
    /// gradient 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin (must be > 0).
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// Sets the norm degree.
    pub fn p(mut self, p: f64) -> Self {
        self.p = p;
        self
    }
    /// Sets eps, added to the difference.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the distance swap.
    pub fn swap(mut self, swap: bool) -> Self {
        self.swap = swap;
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

    /// The same loss as a [`TripletMarginWithDistance`] over [`PairwiseDistance`].
    fn general(&self) -> TripletMarginWithDistance<PairwiseDistance> {
        TripletMarginWithDistance::new(PairwiseDistance::new().p(self.p).eps(self.eps).mode(self.mode))
            .margin(self.margin)
            .swap(self.swap)
            .mode(self.mode)
            .kink(self.kink)
    }

    /// Computes the loss, allocating the result (a scalar, or one value per row for
    /// [`Reduction::None`]) of the `(N, D)` rows.
    ///
    /// # Errors
    /// A margin that is not > 0; in strict mode, the errors listed in this type's docs; in
    /// both modes, arguments whose shapes differ (an [`Error::Shape`](crate::Error::Shape)
    /// naming the first that differs from `anchor`, and the shape expected).
    pub fn forward<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
    ) -> Result<Output<T>> {
        let general = self.general();
        general.kernel::<T>(LOSS)?.forward(anchor, positive, negative, reduction)
    }

    /// Computes the loss into `out` without allocating: `out` holds one value for
    /// `Mean`/`Sum` and `N` values for `None`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let general = self.general();
        general.kernel::<T>(LOSS)?.forward_into(anchor, positive, negative, reduction, out)
    }

    /// Fused forward and backward in one pass over the rows: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂{anchor, positive,
    /// negative}` into `grad_anchor`, `grad_positive`, `grad_negative` (each `N·D`,
    /// overwritten), allocating nothing.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`; for
    /// `None`, one value per row, or a single value applied to every row.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or gradient
    /// buffers. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_anchor: &mut [T],
        grad_positive: &mut [T],
        grad_negative: &mut [T],
    ) -> Result<()> {
        let general = self.general();
        general.kernel::<T>(LOSS)?.forward_backward(
            anchor,
            positive,
            negative,
            reduction,
            upstream,
            out,
            grad_anchor,
            grad_positive,
            grad_negative,
        )
    }
}

/// [`TripletMargin`] with torch's defaults (margin 1, p = 2, eps = 1e-6, no swap, strict)
/// on `(N, D)` rows.
///
/// ```
/// use marginloss::{triplet_margin, Reduction, Rows};
/// // d(a, p) ≈ 5, d(a, n) ≈ 1 (p-norm with eps = 1e-6): max(0, 1 + 5 − 1) ≈ 5
/// let (a, p, n) = ([0.0f64, 0.0], [3.0, 4.0], [0.0, 1.0]);
/// let l = triplet_margin(Rows::single(&a), Rows::single(&p), Rows::single(&n), Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 5.0).abs() < 1e-5);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`TripletMargin::forward`].
pub fn triplet_margin<T: Float>(
    anchor: Rows<'_, T>,
    positive: Rows<'_, T>,
    negative: Rows<'_, T>,
    reduction: Reduction,
) -> Result<Output<T>> {
    TripletMargin::new().forward(anchor, positive, negative, reduction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    type Grads = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

    fn fused(l: TripletMargin, a: &[f64], p: &[f64], n: &[f64], dim: usize) -> Grads {
        let rows = a.len() / dim;
        let (mut out, mut ga, mut gp, mut gn) =
            (vec![0.0; rows], vec![0.0; a.len()], vec![0.0; a.len()], vec![0.0; a.len()]);
        l.forward_backward(
            mat(a, dim),
            mat(p, dim),
            mat(n, dim),
            Reduction::None,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        (out, ga, gp, gn)
    }

    /* torch 2.15 (loss-spec §7a): with anchor == positive, eps makes the difference eps·1,
    so dp's gradient is ±1/sqrt(D) per element (0.57735 for D = 3), not 0. */
    #[test]
    fn anchor_equal_to_positive_still_has_a_gradient() {
        let a = [0.5, -1.0, 2.0];
        let (out, ga, gp, gn) = fused(TripletMargin::new(), &a, &a, &[0.5, -1.0, 1.7], 3);
        assert!(out[0] > 0.0);
        let s = 1.0 / 3f64.sqrt();
        for k in 0..3 {
            assert!((gp[k] + s).abs() < 1e-9, "{gp:?}");
        }
        // anchor: dp's +1/√D and −∂d(a, n)/∂a
        assert!((ga[2] - (s - 1.0)).abs() < 1e-5, "{ga:?}");
        assert!((gn[2] - 1.0).abs() < 1e-5, "{gn:?}");
    }

    /* the fixture's kink_eps0 case: eps = 0, margin + dp − dn = 1 + 1 − 2 = 0 exactly;
    torch 2.15 gives gradient 0 there */
    #[test]
    fn kink_gradient_is_zero_as_in_torch_2_15() {
        let (a, p, n) = ([0.0, 0.0], [1.0, 0.0], [2.0, 0.0]);
        let (out, ga, gp, gn) = fused(TripletMargin::new().eps(0.0), &a, &p, &n, 2);
        assert_eq!(out, [0.0]);
        assert_eq!((ga, gp, gn), (vec![0.0; 2], vec![0.0; 2], vec![0.0; 2]));
        let (_, ga, gp, gn) = fused(TripletMargin::new().eps(0.0).kink(Kink::One), &a, &p, &n, 2);
        // ∂dp/∂p = (p − a)/|p − a| = [1, 0]; −∂dn/∂n = (a − n)/|a − n| = [−1, 0]; the anchor's cancel
        assert_eq!((ga, gp, gn), (vec![0.0; 2], vec![1.0, 0.0], vec![-1.0, 0.0]));
    }

    #[test]
    fn swap_tie_splits_the_gradient_evenly() {
        // positive == anchor: d(a, n) == d(p, n) exactly
        let (a, n) = ([0.0, 0.0], [0.0, 0.5]);
        let (out, ga, gp, gn) = fused(TripletMargin::new().swap(true), &a, &a, &n, 2);
        assert!(out[0] > 0.0);
        let (_, ga1, gp1, gn1) = fused(TripletMargin::new(), &a, &a, &n, 2);
        // Without swap d(a, n) takes the whole −1: gn1 = ∂d(a, n)/∂a. With the tie half of it
        // moves to d(p, n), whose gradient (p == a) is the same vector.
        for k in 0..2 {
            assert!((ga[k] - (ga1[k] + gn1[k] / 2.0)).abs() < 1e-12, "{ga:?} {ga1:?}");
            assert!((gp[k] - (gp1[k] - gn1[k] / 2.0)).abs() < 1e-12, "{gp:?} {gp1:?}");
            assert!((gn[k] - gn1[k]).abs() < 1e-12, "{gn:?} {gn1:?}");
        }
        assert!(gn1[1].abs() > 0.9);
    }

    #[test]
    fn errors_name_the_loss_and_option() {
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let e = TripletMargin::new().margin(-1.0).mode(mode).forward(
                mat(&[1.0f32], 1),
                mat(&[1.0], 1),
                mat(&[1.0], 1),
                Reduction::Sum,
            );
            assert_eq!(e.unwrap_err().to_string(), "triplet_margin: option margin must be > 0, got -1");
        }
        let e = TripletMargin::new()
            .p(0.0)
            .forward(mat(&[1.0f32], 1), mat(&[1.0], 1), mat(&[1.0], 1), Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "triplet_margin: option p must be > 0, got 0");
        // torch-compat computes p = 0 as torch does: the count of non-zero components
        let l = TripletMargin::new()
            .p(0.0)
            .mode(Mode::TorchCompat)
            .forward(mat(&[0.0f64, 0.0], 2), mat(&[0.0, 0.0], 2), mat(&[1.0, 1.0], 2), Reduction::Sum)
            .unwrap();
        assert_eq!(l.scalar(), Some(1.0)); // 1 + 2 − 2
        let e = triplet_margin(
            mat(&[1.0f64, f64::INFINITY], 2),
            mat(&[1.0, 1.0], 2),
            mat(&[0.0, 0.0], 2),
            Reduction::Mean,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("triplet_margin got inf at anchor[1]"), "{e}");
    }
}
