//! All-pairs contrastive loss as pytorch-metric-learning's `ContrastiveLoss`.

use super::engine::{lanes_f64, Acc, Miner, Row, Scratch};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::kernel::LANES;
use crate::options::Mode;

/// The contrastive loss over every ordered pair `(i, j)`, `i ≠ j`, of the batch, as
/// pytorch-metric-learning's `ContrastiveLoss` (not Hadsell et al.'s squared form — that
/// is [`Contrastive`](crate::Contrastive) on given pairs):
///
/// ```text
/// positive pair (y_i = y_j):  l⁺_ij = max(0, d(i, j) − pos_margin)
/// negative pair (y_i ≠ y_j):  l⁻_ij = max(0, neg_margin − d(i, j))
/// ```
///
/// Each unordered pair is counted twice (both orders), as the reference does.
///
/// * **Reduction:** the positive and the negative terms are reduced **separately and
///   added**: `Mean` = `mean(l⁺) + mean(l⁻)` over the positive and the negative pairs,
///   `MeanNonzero` = the same over the pairs with a loss `> 0` (pytorch-metric-learning's
///   default `AvgNonZeroReducer` per sub-loss), `Sum` = `Σ l⁺ + Σ l⁻`, `None`: per anchor
///   `Σ_j l_ij`. A part with no pair contributes 0.
/// * **Defaults:** `pos_margin` 0, `neg_margin` 1 (the reference's), euclidean, no
///   normalisation, strict. pytorch-metric-learning's `CosineSimilarity()` is a
///   similarity `s = 1 − d`: its margins `(a, b)` are `pos_margin = 1 − a`,
///   `neg_margin = 1 − b` here.
/// * **Errors (strict):** as [`BatchAllTriplet`](super::BatchAllTriplet), margins finite.
///   **Torch-compat** reproduces the reference's quirk: when there is at most one
///   positive pair and at most one negative pair the loss is 0 with a zero gradient
///   (`GenericPairLoss.compute_loss`: `if all(len(x) <= 1 ...)`).
/// * **Cost:** the GEMM, one pass over the matrix, a second GEMM.
///
/// | library | equivalent |
/// |---|---|
/// | pytorch-metric-learning 2.9 | `losses.ContrastiveLoss(pos_margin, neg_margin, distance=LpDistance(normalize_embeddings=normalize))`, default reducer = `MeanNonzero`, `MeanReducer()` = `Mean` |
/// | TensorFlow Addons | — (`contrastive_loss` takes given distances and squares them) |
///
/// ```
/// use marginloss::batch::{Batch, BatchReduction, Embeddings, PairContrastive};
/// // rows 0, 1 (class 0) at 0 and 0.5, row 2 (class 1) at 0.75
/// let x = [0.0f64, 0.5, 0.75];
/// let batch = Batch::new(Embeddings::new(&x, 3, 1)?, &[0i64, 0, 1]);
/// // positive pairs: d = 0.5 (twice); negative pairs: 0.75, 0.25 (each twice), neg_margin 1
/// let l = PairContrastive::new().forward(&batch, BatchReduction::Mean)?;
/// assert!((l.scalar().unwrap() - (0.5 + (0.25 + 0.75) / 2.0)).abs() < 1e-12);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct PairContrastive {
    /// Positive pairs cost `max(0, d − pos_margin)` (default 0).
    pub pos_margin: f64,
    /// Negative pairs cost `max(0, neg_margin − d)` (default 1).
    pub neg_margin: f64,
    /// The distance (default euclidean).
    pub distance: BatchDistance,
    /// L2-normalise the rows first (default false).
    pub normalize: bool,
    /// Strict (default) or torch-compat (pytorch-metric-learning).
    pub mode: Mode,
}

impl Default for PairContrastive {
    fn default() -> Self {
        PairContrastive {
            pos_margin: 0.0,
            neg_margin: 1.0,
            distance: BatchDistance::Euclidean,
            normalize: false,
            mode: Mode::Strict,
        }
    }
}

impl PairContrastive {
    const LOSS: &'static str = "pair_contrastive";

    /// The loss with its defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the positive margin.
    pub fn pos_margin(mut self, m: f64) -> Self {
        self.pos_margin = m;
        self
    }
    /// Sets the negative margin.
    pub fn neg_margin(mut self, m: f64) -> Self {
        self.neg_margin = m;
        self
    }

    fn miner<T: Float, L: BatchLabel>(&self) -> Result<PairMiner<T>> {
        check_margin(Self::LOSS, "pos_margin", self.pos_margin, self.mode)?;
        check_margin(Self::LOSS, "neg_margin", self.neg_margin, self.mode)?;
        Ok(PairMiner { mp: T::of(self.pos_margin), mn: T::of(self.neg_margin) })
    }

    batch_api!();
}

pub(crate) struct PairMiner<T> {
    mp: T,
    mn: T,
}

#[derive(Clone, Copy)]
struct Lanes<T> {
    sum: [[T; LANES]; 2],
    cnt: [[T; LANES]; 2],
    pairs: [[T; LANES]; 2],
}

impl<T: Float> PairMiner<T> {
    #[inline(always)]
    fn range<L: BatchLabel>(&self, d: &[T], labels: &[L], y: L, g: T, w: &mut [T], acc: &mut Lanes<T>) {
        let m = d.len();
        let (labels, w) = (&labels[..m], &mut w[..m]);
        let chunks = m / LANES;
        for c in 0..chunks {
            for k in 0..LANES {
                let j = c * LANES + k;
                self.step(d[j], labels[j] == y, g, &mut w[j], acc, k);
            }
        }
        for j in chunks * LANES..m {
            self.step(d[j], labels[j] == y, g, &mut w[j], acc, j - chunks * LANES);
        }
    }

    #[inline(always)]
    fn step(&self, d: T, same: bool, g: T, w: &mut T, acc: &mut Lanes<T>, k: usize) {
        let (zero, one) = (T::zero(), T::one());
        let v = T::select(same, d - self.mp, self.mn - d);
        let act = v > zero;
        let l = T::select(act, v, zero);
        let (lp, cp, pp) = (T::select(same, l, zero), T::select(same && act, one, zero), T::select(same, one, zero));
        acc.sum[0][k] = acc.sum[0][k] + lp;
        acc.sum[1][k] = acc.sum[1][k] + (l - lp);
        acc.cnt[0][k] = acc.cnt[0][k] + cp;
        acc.cnt[1][k] = acc.cnt[1][k] + (T::select(act, one, zero) - cp);
        acc.pairs[0][k] = acc.pairs[0][k] + pp;
        acc.pairs[1][k] = acc.pairs[1][k] + (one - pp);
        *w = T::select(act, T::select(same, g, -g), zero);
    }
}

impl<T: Float, L: BatchLabel> Miner<T, L> for PairMiner<T> {
    const DENSE: bool = true;
    const CLASSES: usize = 2;

    fn zero_quirk(&self, acc: &Acc) -> bool {
        acc.tuples[0] <= 1 && acc.tuples[1] <= 1
    }

    #[inline(always)]
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc) {
        let m = r.d.len();
        let z = [T::zero(); LANES];
        let mut lanes = Lanes { sum: [z; 2], cnt: [z; 2], pairs: [z; 2] };
        let w = &mut s.w[..m];
        if r.skip < m {
            let (d0, d1) = r.d.split_at(r.skip);
            let (l0, l1) = r.labels[..m].split_at(r.skip);
            let (w0, w1) = w.split_at_mut(r.skip);
            self.range(d0, l0, r.y, r.g, w0, &mut lanes);
            self.range(&d1[1..], &l1[1..], r.y, r.g, &mut w1[1..], &mut lanes);
            w1[0] = T::zero();
        } else {
            self.range(r.d, r.labels, r.y, r.g, w, &mut lanes);
        }
        let f = |a: &[T; LANES]| lanes_f64(a);
        let acc = Acc {
            sum: [f(&lanes.sum[0]), f(&lanes.sum[1])],
            tuples: [f(&lanes.pairs[0]) as u64, f(&lanes.pairs[1]) as u64],
            active: [f(&lanes.cnt[0]) as u64, f(&lanes.cnt[1]) as u64],
            pos_pairs: f(&lanes.pairs[0]) as u64,
            neg_pairs: f(&lanes.pairs[1]) as u64,
            anchors: u64::from(f(&lanes.pairs[0]) > 0.0 && f(&lanes.pairs[1]) > 0.0),
        };
        (acc.sum[0] + acc.sum[1], acc)
    }
}
