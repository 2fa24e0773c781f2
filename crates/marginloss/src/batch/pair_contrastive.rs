//! All-pairs contrastive loss as pytorch-metric-learning's `ContrastiveLoss`.

use super::engine::{lanes_f64, Acc, Miner, Row, Scratch};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::kernel::{add_tree, padded, BLOCK, LANES};
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
/// use marginloss::batch::{Batch, BatchReduction, PairContrastive};
/// use marginloss::Rows;
/// // rows 0, 1 (class 0) at 0 and 0.5, row 2 (class 1) at 0.75
/// let x = [0.0f64, 0.5, 0.75];
/// let batch = Batch::new(Rows::new(&x, 3, 1)?, &[0i64, 0, 1]);
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

    fn miner<T: Float>(&self) -> Result<PairMiner<T>> {
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
    sum: [f64; 2],
    cnt: [f64; 2],
    pairs: [f64; 2],
    _t: std::marker::PhantomData<T>,
}

impl<T: Float> PairMiner<T> {
    /// A whole row in 64-element blocks, the sums in 64 lanes (element `j` into lane
    /// `j % 64`, folded in a fixed order at the end). The anchor itself (`skip`) and the
    /// tail's padding are elements with no pair, no loss and weight 0.
    #[inline(always)]
    fn row_blocks<L: BatchLabel>(
        &self,
        d: &[T],
        labels: &[L],
        y: L,
        skip: usize,
        g: T,
        w: &mut [T],
    ) -> Lanes<T> {
        let m = d.len();
        let (labels, w) = (&labels[..m], &mut w[..m]);
        let (zero, one, inf) = (T::zero(), T::one(), T::infinity());
        let mut acc = [[zero; BLOCK]; 5];
        let (dc, dt) = d.as_chunks::<BLOCK>();
        let (lc, lt) = labels.as_chunks::<BLOCK>();
        let (wc, wt) = w.as_chunks_mut::<BLOCK>();
        let full = dc.len() * BLOCK;
        for (b, ((db, lb), wb)) in dc.iter().zip(lc).zip(wc.iter_mut()).enumerate() {
            let mut same = [zero; BLOCK];
            for k in 0..BLOCK {
                same[k] = T::select(lb[k] == y, one, zero);
            }
            if skip / BLOCK == b {
                // The anchor: a padding element.
                let mut dp = *db;
                (dp[skip % BLOCK], same[skip % BLOCK]) = (inf, zero);
                self.block(&dp, &same, g, wb, &mut acc);
            } else {
                self.block(db, &same, g, wb, &mut acc);
            }
        }
        if !dt.is_empty() {
            let mut db = padded(dt, inf);
            let mut same = [zero; BLOCK];
            for (k, &l) in lt.iter().enumerate() {
                same[k] = T::select(l == y, one, zero);
            }
            if skip >= full && skip < m {
                (db[skip - full], same[skip - full]) = (inf, zero);
            }
            let mut wb = [zero; BLOCK];
            self.block(&db, &same, g, &mut wb, &mut acc);
            let len = wt.len();
            wt.copy_from_slice(&wb[..len]);
        }
        let f = |v: &[T; BLOCK]| {
            let mut l = [zero; LANES];
            add_tree(&mut l, v);
            lanes_f64(&l)
        };
        let pos = f(&acc[4]);
        let own = if skip < m { 1.0 } else { 0.0 };
        Lanes {
            sum: [f(&acc[0]), f(&acc[1])],
            cnt: [f(&acc[2]), f(&acc[3])],
            pairs: [pos, m as f64 - own - pos],
            _t: std::marker::PhantomData,
        }
    }

    /// One block: each element's weight into `wb`, and into `acc` the positive and
    /// negative losses, their active counts and the positive-pair count.
    #[inline(always)]
    fn block(
        &self,
        db: &[T; BLOCK],
        same: &[T; BLOCK],
        g: T,
        wb: &mut [T; BLOCK],
        acc: &mut [[T; BLOCK]; 5],
    ) {
        let (zero, one) = (T::zero(), T::one());
        let (mp, mn) = (self.mp, self.mn);
        let [s0, s1, c0, c1, p0] = acc;
        for k in 0..BLOCK {
            let sm = same[k] > zero;
            let v = T::select(sm, db[k] - mp, mn - db[k]);
            let act = v > zero;
            let l = T::select(act, v, zero);
            let a = T::select(act, one, zero);
            let lp = l * same[k];
            let ap = a * same[k];
            s0[k] = s0[k] + lp;
            s1[k] = s1[k] + (l - lp);
            c0[k] = c0[k] + ap;
            c1[k] = c1[k] + (a - ap);
            p0[k] = p0[k] + same[k];
            wb[k] = T::select(act, T::select(sm, g, -g), zero);
        }
    }
}

impl<T: Float, L: BatchLabel> Miner<T, L> for PairMiner<T> {
    const DENSE: bool = true;
    const CLASSES: usize = 2;
    const SYMMETRIC: bool = true;

    fn zero_quirk(&self, acc: &Acc) -> bool {
        acc.tuples[0] <= 1 && acc.tuples[1] <= 1
    }

    #[inline(always)]
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc) {
        let m = r.d.len();
        let lanes = self.row_blocks(r.d, r.labels, r.y, r.skip, r.g, &mut s.w[..m]);
        let acc = Acc {
            sum: lanes.sum,
            tuples: [lanes.pairs[0] as u64, lanes.pairs[1] as u64],
            active: [lanes.cnt[0] as u64, lanes.cnt[1] as u64],
            pos_pairs: lanes.pairs[0] as u64,
            neg_pairs: lanes.pairs[1] as u64,
            anchors: u64::from(lanes.pairs[0] > 0.0 && lanes.pairs[1] > 0.0),
            overflow: None,
            list_overflow: false,
        };
        (acc.sum[0] + acc.sum[1], acc)
    }
}
