//! Semi-hard triplet loss as TensorFlow Addons' `triplet_semihard_loss` defines it.

use super::engine::{lanes_extreme, split_row, Acc, Miner, Row, Scratch, NONE};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::options::Mode;

/// The semi-hard triplet loss of TensorFlow Addons (`tfa.losses.triplet_semihard_loss`,
/// after FaceNet, Schroff et al. 2015): for every positive pair `(a, p)` (`p ≠ a`,
/// `y_p = y_a`) the negative is the **nearest negative farther than the positive**, or,
/// when there is none, the **farthest negative**:
///
/// ```text
/// S_ap   = { n : y_n ≠ y_a, d(a, n) > d(a, p) }
/// neg_ap = min_{n ∈ S_ap} d(a, n)   if S_ap ≠ ∅,   else max_{n: y_n ≠ y_a} d(a, n)
/// l_ap   = max(0, d(a, p) − neg_ap + margin)
/// ```
///
/// "Semi-hard" means three different things in the literature (FaceNet:
/// `d_ap² < d_an² < d_ap² + α`; pytorch-metric-learning's `TripletMarginMiner("semihard")`:
/// every triplet with `0 < d_an − d_ap ≤ m`); this is TF-Addons' definition, with no
/// upper bound on the negative.
///
/// * **Ties:** the lowest index among equal distances.
/// * **Reduction:** `Mean` over the positive pairs (zero losses included, as TF-Addons),
///   `MeanNonzero`, `Sum`, `None`: per anchor `Σ_p l_ap`.
/// * **Defaults:** margin 1.0 (TF-Addons'), euclidean (TF-Addons' `"L2"`; `"squared-L2"` is
///   [`BatchDistance::SquaredEuclidean`]), no normalisation, strict.
/// * **Errors (strict):** as [`BatchAllTriplet`](super::BatchAllTriplet); positive pairs
///   of an anchor without any negative (possible only with a reference set) are not
///   tuples. **Torch-compat** reproduces TF-Addons: `Mean` of a batch without a positive
///   pair is NaN (`0/0`, gradient NaN), and a pair whose anchor has no negative gets
///   `neg = ` the row's minimum (0, the anchor itself: `l = d_ap + margin`).
/// * **Cost:** the GEMM, then two vectorised passes over the row per positive; the
///   backward touches at most `2·|P_a|` rows per anchor.
///
/// | library | equivalent |
/// |---|---|
/// | TensorFlow Addons | `tfa.losses.triplet_semihard_loss(y, emb, margin, distance_metric="L2")` = torch-compat, `Mean` |
/// | pytorch-metric-learning 2.9 | none: `BatchEasyHardMiner(pos_strategy="all", neg_strategy="semihard")` drops pairs without a semi-hard negative instead of falling back |
///
/// ```
/// use marginloss::batch::{Batch, BatchReduction, SemihardTriplet};
/// use marginloss::Rows;
/// // a = 0, p = 1 (d = 1), negatives at 0.5 and 3: the nearest one farther than 1 is 3.
/// let x = [0.0f64, 1.0, 0.5, 3.0];
/// let batch = Batch::new(Rows::new(&x, 4, 1)?, &[1u8, 1, 2, 2]);
/// let l = SemihardTriplet::new().margin(2.5).forward(&batch, BatchReduction::None)?;
/// // anchor 0: pair (0,1): max(0, 1 − 3 + 2.5) = 0.5
/// assert!((l.as_slice()[0] - 0.5).abs() < 1e-12);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SemihardTriplet {
    /// The margin (default 1.0).
    pub margin: f64,
    /// The distance (default euclidean).
    pub distance: BatchDistance,
    /// L2-normalise the rows first (default false).
    pub normalize: bool,
    /// Strict (default) or torch-compat (TF-Addons).
    pub mode: Mode,
}

impl Default for SemihardTriplet {
    fn default() -> Self {
        SemihardTriplet {
            margin: 1.0,
            distance: BatchDistance::Euclidean,
            normalize: false,
            mode: Mode::Strict,
        }
    }
}

impl SemihardTriplet {
    const LOSS: &'static str = "semihard_triplet";

    /// The loss with its defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    fn miner<T: Float>(&self) -> Result<SemiMiner<T>> {
        check_margin(Self::LOSS, "margin", self.margin, self.mode)?;
        Ok(SemiMiner { margin: T::of(self.margin), tfa: !self.mode.is_strict() })
    }

    batch_api!();
}

pub(crate) struct SemiMiner<T> {
    margin: T,
    tfa: bool,
}

impl<T: Float, L: BatchLabel> Miner<T, L> for SemiMiner<T> {
    const DENSE: bool = false;
    const CLASSES: usize = 1;

    /// A positive and a negative for each positive.
    fn max_picks(np: usize) -> usize {
        np.saturating_mul(2)
    }

    fn nan_when_empty(&self) -> bool {
        self.tfa
    }

    #[inline(always)]
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc) {
        let (np, nneg) = split_row(r, s);
        let mut acc = Acc { pos_pairs: np as u64, neg_pairs: nneg as u64, ..Acc::default() };
        if np == 0 || (nneg == 0 && !self.tfa) {
            return (0.0, acc);
        }
        if nneg > 0 {
            acc.anchors = 1;
        }
        let m = r.d.len();
        let inf = T::infinity();
        // Without any negative the fallback is TF-Addons' row minimum (the anchor itself
        // without a reference set), and no negative lies above a positive.
        let mut far = (inf, NONE);
        if nneg == 0 {
            for (j, &v) in r.d.iter().enumerate() {
                if v < far.0 {
                    far = (v, j);
                }
            }
        }
        // The positives in tiles of up to four: one pass over the negatives a tile finds
        // each positive's nearest negative above it, and the first tile's pass the
        // farthest negative (the fallback) too.
        let mut total = 0.0f64;
        // One pass over the negatives per positive: its nearest negative above it, and in
        // the first pass the farthest negative (the fallback) too. (Several positives a
        // pass vectorised worse: the optimiser turned the thresholds into gathers.)
        let negd = &s.b[..m];
        for p in 0..np {
            let dp = s.a[p];
            let near = if nneg == 0 {
                (inf, NONE)
            } else if p == 0 {
                let (near, fr) = nearest_above::<T, true>(negd, dp);
                far = fr;
                near
            } else {
                nearest_above::<T, false>(negd, dp).0
            };
            let (neg, ineg) = if near.0 < inf { near } else { far };
            let v = dp - neg + self.margin;
            acc.tuples[0] += 1;
            if v > T::zero() {
                acc.active[0] += 1;
                total += v.f64();
                let pj = s.idx[p] as usize;
                s.w[pj] = s.w[pj] + r.g;
                s.touched.push(pj);
                if ineg != NONE && ineg != r.skip {
                    s.w[ineg] = s.w[ineg] - r.g;
                    s.touched.push(ineg);
                }
            }
        }
        acc.sum[0] = total;
        (total, acc)
    }
}

/// Lanes of the selection passes: a minimum or maximum with its first index is exact at
/// any width, so these run 64 lanes wide (independent accumulators) on any instruction set.
const W: usize = 64;

/// One pass over `negd` (`+∞` at the non-negatives): the nearest value strictly above
/// `t` with its lowest index (`(+∞, NONE)` when none), and with `FAR` the largest finite
/// value with its lowest index. The pass keeps values only (per lane, a select the
/// optimiser vectorises); each index is then found in the lanes holding the value.
#[inline(always)]
fn nearest_above<T: Float, const FAR: bool>(negd: &[T], t: T) -> ((T, usize), (T, usize)) {
    let inf = T::infinity();
    let mut nv = [inf; W];
    let mut fv = [T::neg_infinity(); W];
    let (body, tail) = negd.as_chunks::<W>();
    for chunk in body {
        pass_step::<T, FAR>(chunk, t, &mut nv, &mut fv);
    }
    if !tail.is_empty() {
        // The tail padded with +∞ (above nothing nearer, never the farthest).
        let mut last = [inf; W];
        last[..tail.len()].copy_from_slice(tail);
        pass_step::<T, FAR>(&last, t, &mut nv, &mut fv);
    }
    let mut near = (inf, NONE);
    let v = lanes_extreme(&nv, false);
    if v < inf {
        near = (v, first_in_lanes(negd, &nv, v));
    }
    let mut far = (inf, NONE);
    if FAR {
        let v = lanes_extreme(&fv, true);
        if v > T::neg_infinity() {
            far = (v, first_in_lanes(negd, &fv, v));
        }
    }
    (near, far)
}

/// The first position of `v` in `x`, which the lanes holding `v` after a
/// [`nearest_above`] pass contain: position `j` went to lane `j % W`, so only
/// `k, k + W, …` of each such lane `k` are searched.
#[inline(always)]
fn first_in_lanes<T: Float>(x: &[T], lanes: &[T; W], v: T) -> usize {
    // The lanes holding `v` as a bit mask (one vector compare), then each such lane
    // (nearly always one) searched.
    let mut mask = 0u64;
    for k in 0..W {
        mask |= u64::from(lanes[k] == v) << k;
    }
    let mut at = NONE;
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        if let Some(j) = (k..x.len()).step_by(W).find(|&j| x[j] == v) {
            at = at.min(j);
        }
    }
    at
}

/// One chunk of [`nearest_above`]'s pass.
#[inline(always)]
fn pass_step<T: Float, const FAR: bool>(chunk: &[T; W], t: T, nv: &mut [T; W], fv: &mut [T; W]) {
    let inf = T::infinity();
    for k in 0..W {
        let v = chunk[k];
        nv[k] = T::select((v > t) & (v < nv[k]), v, nv[k]);
    }
    if FAR {
        for k in 0..W {
            let v = chunk[k];
            fv[k] = T::select((v != inf) & (v > fv[k]), v, fv[k]);
        }
    }
}
