//! Batch-all triplet loss: every valid triplet of the batch.

use super::engine::{hinge, lanes_f64, scale_row, split_row, Acc, Miner, Row, Scratch};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::kernel::{add_tree, padded, BLOCK, LANES};
use crate::options::Mode;

/// The batch-all triplet loss over every valid triplet `(a, p, n)` of the batch —
/// `p ≠ a`, `y_p = y_a`, `y_n ≠ y_a`:
///
/// ```text
/// l_apn = max(0, d(a, p) − d(a, n) + margin)          (soft: softplus(d_ap − d_an + margin))
/// ```
///
/// * **Reduction** ([`BatchReduction`](super::BatchReduction)): `Mean` over all valid
///   triplets (zero losses included), `MeanNonzero` over those with `l > 0`, `Sum`, or
///   `None`: per anchor `Σ_{p,n} l_apn`.
/// * **Defaults:** margin 0.05 (pytorch-metric-learning's), hinge, euclidean distance, no
///   normalisation (pytorch-metric-learning normalises by default: set
///   [`normalize`](Self::normalize) to match it), strict.
/// * **Shapes:** embeddings `N × D`, labels `N`, optional reference set `M × D` + `M`
///   labels; the output has 1 value or `N`; gradients `N × D` (and `M × D`).
/// * **Gradient:** the hinge's is 0 at the kink (`l = 0` exactly), as torch 2.15's `relu`.
/// * **Errors (strict):** see the [module docs](super): no positive pair, no negative,
///   NaN/±Inf, label counts, `D = 0`, zero rows under the cosine distance or `normalize`,
///   a non-finite margin. Torch-compat gives pytorch-metric-learning's zero loss when the
///   batch has no triplet.
/// * **Cost:** the GEMM, then `Σ_a |P_a|·M` for the mining (no `N³` buffer: the
///   reference's vectorised path builds an `N × N × N` mask), then a second GEMM. The hinge
///   without a reference set and with one reduced value (not `None`) sweeps the Gram
///   matrix's lower triangle, each pair of rows once for both anchors (classes of up to 33
///   members; larger ones take the row-by-row sweep).
///
/// | library | equivalent |
/// |---|---|
/// | pytorch-metric-learning 2.9 | `losses.TripletMarginLoss(margin, smooth_loss=soft, distance=LpDistance(normalize_embeddings=normalize))` (default `triplets_per_anchor="all"`, default reducer = `MeanNonzero`; `MeanReducer()` = `Mean`, `SumReducer()` = `Sum`) |
/// | TensorFlow Addons | — |
///
/// ```
/// use marginloss::batch::{Batch, BatchAllTriplet, BatchReduction};
/// use marginloss::Rows;
/// // Two classes on a line: 0 and 1 are class 7, 3 is class 9.
/// let x = [0.0f64, 1.0, 3.0];
/// let batch = Batch::new(Rows::new(&x, 3, 1)?, &[7i64, 7, 9]);
/// // triplets (0,1,2): max(0, 1 − 3 + 1.5) = 0 and (1,0,2): max(0, 1 − 2 + 1.5) = 0.5
/// let l = BatchAllTriplet::new().margin(1.5).forward(&batch, BatchReduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.25).abs() < 1e-12);
/// let l = BatchAllTriplet::new().margin(1.5).forward(&batch, BatchReduction::MeanNonzero)?;
/// assert!((l.scalar().unwrap() - 0.5).abs() < 1e-12);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchAllTriplet {
    /// The margin (default 0.05).
    pub margin: f64,
    /// softplus instead of the hinge (pytorch-metric-learning's `smooth_loss`).
    pub soft: bool,
    /// The distance (default euclidean).
    pub distance: BatchDistance,
    /// L2-normalise the rows first (default false).
    pub normalize: bool,
    /// Strict (default) or torch-compat (pytorch-metric-learning).
    pub mode: Mode,
}

impl Default for BatchAllTriplet {
    fn default() -> Self {
        BatchAllTriplet {
            margin: 0.05,
            soft: false,
            distance: BatchDistance::Euclidean,
            normalize: false,
            mode: Mode::Strict,
        }
    }
}

impl BatchAllTriplet {
    const LOSS: &'static str = "batch_all_triplet";

    /// The loss with its defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// softplus instead of the hinge.
    pub fn soft(mut self, soft: bool) -> Self {
        self.soft = soft;
        self
    }

    fn miner<T: Float>(&self) -> Result<AllMiner<T>> {
        check_margin(Self::LOSS, "margin", self.margin, self.mode)?;
        Ok(AllMiner { margin: T::of(self.margin), soft: self.soft })
    }

    batch_api!();
}

pub(crate) struct AllMiner<T> {
    margin: T,
    soft: bool,
}

impl<T: Float, L: BatchLabel> Miner<T, L> for AllMiner<T> {
    const DENSE: bool = true;
    const CLASSES: usize = 1;

    fn tri_margin(&self) -> Option<T> {
        (!self.soft).then_some(self.margin)
    }

    #[inline(always)]
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc) {
        let (np, nneg) = split_row(r, s);
        s.w[..r.d.len()].fill(T::zero());
        let mut acc = Acc { pos_pairs: np as u64, neg_pairs: nneg as u64, ..Acc::default() };
        if np == 0 || nneg == 0 {
            return (0.0, acc);
        }
        acc.anchors = 1;
        acc.tuples[0] = (np * nneg) as u64;
        let m = r.d.len();
        let (total, active) = if self.soft {
            all_pairs_soft(s, np, m, self.margin)
        } else {
            all_pairs_hard(s, np, m, self.margin)
        };
        acc.sum[0] = total;
        acc.active[0] = active;
        scale_row(&mut s.w[..m], r.g);
        (total, acc)
    }
}

/// Every (positive, negative) pair of a row under softplus: the loss sum and the active
/// count, the weights added into `s.w`. The sums run in 64 lanes (element `j` into lane `j % 64`:
/// independent accumulators, the block's terms never stored), folded in a fixed order at
/// the end of each positive's pass.
#[inline(always)]
fn all_pairs_soft<T: Float>(s: &mut Scratch<'_, T>, np: usize, m: usize, margin: T) -> (f64, u64) {
    let (negd, w) = (&s.b[..m], &mut s.w[..m]);
    let (zero, inf) = (T::zero(), T::infinity());
    let mut total = 0.0f64;
    let mut active = 0u64;
    let (nb, ntail) = negd.as_chunks::<BLOCK>();
    for p in 0..np {
        let t = s.a[p] + margin;
        let mut acc = ([zero; BLOCK], [zero; BLOCK], [zero; BLOCK]);
        let (wb, wtail) = w.as_chunks_mut::<BLOCK>();
        for (wc, nc) in wb.iter_mut().zip(nb) {
            soft_block(t, wc, nc, &mut acc);
        }
        if !ntail.is_empty() {
            // The tail padded with +∞ (no pair, no loss, weight 0).
            let mut wc = [zero; BLOCK];
            wc[..wtail.len()].copy_from_slice(wtail);
            soft_block(t, &mut wc, &padded(ntail, inf), &mut acc);
            let len = wtail.len();
            wtail.copy_from_slice(&wc[..len]);
        }
        let (sum, cnt, wp) = acc;
        let fold = |v: &[T; BLOCK]| {
            let mut l = [zero; LANES];
            add_tree(&mut l, v);
            lanes_f64(&l)
        };
        total += fold(&sum);
        active += fold(&cnt) as u64;
        let pj = s.idx[p] as usize;
        w[pj] = w[pj] + T::of(fold(&wp));
    }
    (total, active)
}

/// Positives a pass of [`all_pairs_hard`] takes.
const PT: usize = 8;
/// Its lanes (one vector of `f32` with AVX-512).
const L16: usize = 16;
/// Negatives between two folds of its `T` lanes into `f64` (at most 64 terms a lane).
const CHUNK: usize = 1024;

/// Every (positive, negative) pair of a row under the hinge, up to [`PT`] positives a pass: each block of negatives is
/// read once for all of them, and each negative's weight (minus its number of active
/// positives) is written once a pass. A pair is active when `d_an < t_p = d_ap + m`
/// (the sign of `t_p − d_an`), and positive `p`'s loss is `t_p·c_p − Σ d_an` over its
/// `c_p` active negatives: per pair a compare and two masked adds. The counts and
/// distance sums run in 16 lanes (element `j` into lane `j % 16`), folded into `f64`
/// every [`CHUNK`] negatives in a fixed order; the counts, and so the weights, are exact.
#[inline(always)]
fn all_pairs_hard<T: Float>(s: &mut Scratch<'_, T>, np: usize, m: usize, margin: T) -> (f64, u64) {
    let (negd, w) = (&s.b[..m], &mut s.w[..m]);
    let (zero, inf) = (T::zero(), T::infinity());
    let fold = |l: &[T; L16]| {
        let mut a = [0.0f64; LANES];
        for k in 0..LANES {
            a[k] = l[k].f64() + l[k + LANES].f64();
        }
        crate::kernel::sum_lanes(&a)
    };
    let (mut total, mut active) = (0.0f64, 0u64);
    for p0 in (0..np).step_by(PT) {
        let pn = PT.min(np - p0);
        // Missing positives at −∞: never active.
        let mut t = [T::neg_infinity(); PT];
        for p in 0..pn {
            t[p] = s.a[p0 + p] + margin;
        }
        let (mut sums, mut counts) = ([0.0f64; PT], [0.0f64; PT]);
        for (cw, cn) in w.chunks_mut(CHUNK).zip(negd.chunks(CHUNK)) {
            let mut sum = [[zero; L16]; PT];
            let mut cnt = [[zero; L16]; PT];
            let (wb, wt) = cw.as_chunks_mut::<L16>();
            let (nb, nt) = cn.as_chunks::<L16>();
            for (wc, nc) in wb.iter_mut().zip(nb) {
                hard_block(&t, wc, nc, &mut sum, &mut cnt);
            }
            if !nt.is_empty() {
                // The tail padded with +∞ (no pair, no loss, weight 0).
                let (mut wc, mut nc) = ([zero; L16], [inf; L16]);
                wc[..wt.len()].copy_from_slice(wt);
                nc[..nt.len()].copy_from_slice(nt);
                hard_block(&t, &mut wc, &nc, &mut sum, &mut cnt);
                let len = wt.len();
                wt.copy_from_slice(&wc[..len]);
            }
            for p in 0..PT {
                sums[p] += fold(&sum[p]);
                counts[p] += fold(&cnt[p]);
            }
        }
        for p in 0..pn {
            if counts[p] > 0.0 {
                total += t[p].f64() * counts[p] - sums[p];
            }
            active += counts[p] as u64;
            let pj = s.idx[p0 + p] as usize;
            w[pj] = w[pj] + T::of(counts[p]);
        }
    }
    (total, active)
}

/// One block of [`all_pairs_hard`]: every positive of the pass against 16 negatives (the
/// additions written as selects of the sum, which become masked adds).
#[inline(always)]
fn hard_block<T: Float>(
    t: &[T; PT],
    wc: &mut [T; L16],
    nc: &[T; L16],
    sum: &mut [[T; L16]; PT],
    cnt: &mut [[T; L16]; PT],
) {
    let one = T::one();
    let mut act = *wc;
    for p in 0..PT {
        for k in 0..L16 {
            let (d, on) = (nc[k], nc[k] < t[p]);
            sum[p][k] = T::select(on, sum[p][k] + d, sum[p][k]);
            cnt[p][k] = T::select(on, cnt[p][k] + one, cnt[p][k]);
            act[k] = T::select(on, act[k] - one, act[k]);
        }
    }
    *wc = act;
}

/// One block of a positive's softplus pass: the loss, active count and weight sums into
/// `acc`'s 64 lanes, the negatives' weights into `wc`.
#[inline(always)]
fn soft_block<T: Float>(
    t: T,
    wc: &mut [T; BLOCK],
    nc: &[T; BLOCK],
    acc: &mut ([T; BLOCK], [T; BLOCK], [T; BLOCK]),
) {
    let (zero, one) = (T::zero(), T::one());
    let (sum, cnt, wp) = acc;
    for k in 0..BLOCK {
        let (l, dl) = hinge(t - nc[k], true);
        sum[k] = sum[k] + l;
        cnt[k] = cnt[k] + T::select(l > zero, one, zero);
        wp[k] = wp[k] + dl;
        wc[k] = wc[k] - dl;
    }
}
