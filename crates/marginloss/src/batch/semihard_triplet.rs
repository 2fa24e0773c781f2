//! Semi-hard triplet loss as TensorFlow Addons' `triplet_semihard_loss` defines it.

use super::engine::{lane_pick, scale_row, split_row, Acc, Miner, Row, Scratch, LANE_NONE, NONE};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::kernel::LANES;
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
        if np == 0 {
            return (0.0, acc);
        }
        let m = r.d.len();
        let inf = T::infinity();
        // The fallback negative: the farthest (lowest index among ties), or, without any
        // negative, TF-Addons' row minimum (the anchor itself without a reference set).
        let (far, ifar) = if nneg > 0 {
            // Lane-wise (value, first index), the non-negatives (+∞ in `s.b`) left out.
            let (mut fl, mut fi) = ([T::neg_infinity(); LANES], [LANE_NONE; LANES]);
            let negd = &s.b[..m];
            let full = m - m % LANES;
            let mut step = |k: usize, j: usize, v: T| {
                let up = v != inf && v > fl[k];
                fl[k] = T::select(up, v, fl[k]);
                fi[k] = if up { j as u32 } else { fi[k] };
            };
            for (c, chunk) in negd[..full].chunks_exact(LANES).enumerate() {
                for k in 0..LANES {
                    step(k, c * LANES + k, chunk[k]);
                }
            }
            for (k, &v) in negd[full..].iter().enumerate() {
                step(k, full + k, v);
            }
            lane_pick(&fl, &fi, true)
        } else if self.tfa {
            let mut best = (inf, NONE);
            for (j, &v) in r.d.iter().enumerate() {
                if v < best.0 {
                    best = (v, j);
                }
            }
            best
        } else {
            return (0.0, acc);
        };
        if nneg > 0 {
            acc.anchors = 1;
        }
        let zero = T::zero();
        let mut total = 0.0f64;
        for p in 0..np {
            let dp = s.a[p];
            // Nearest negative strictly farther than the positive: the value in lanes (a
            // select-only loop that vectorises), then its lowest index, searched only in
            // the lanes that hold it.
            let negd = &s.b[..m];
            let mut lanes = [inf; LANES];
            let (body, tail) = negd.as_chunks::<LANES>();
            for chunk in body {
                for k in 0..LANES {
                    let v = chunk[k];
                    lanes[k] = T::select((v > dp) & (v < lanes[k]), v, lanes[k]);
                }
            }
            for (k, &v) in tail.iter().enumerate() {
                lanes[k] = T::select((v > dp) & (v < lanes[k]), v, lanes[k]);
            }
            let mut near = inf;
            for &v in &lanes {
                near = T::select(v < near, v, near);
            }
            let (neg, ineg) = if near < inf {
                let mut at = NONE;
                for (k, &v) in lanes.iter().enumerate() {
                    if v == near {
                        let first = (k..m).step_by(LANES).find(|&j| negd[j] == near).unwrap_or(NONE);
                        at = at.min(first);
                    }
                }
                (near, at)
            } else {
                (far, ifar)
            };
            let v = dp - neg + self.margin;
            acc.tuples[0] += 1;
            if v > zero {
                acc.active[0] += 1;
                total += v.f64();
                let pj = s.idx[p] as usize;
                s.w[pj] = s.w[pj] + T::one();
                if ineg != NONE && ineg != r.skip {
                    s.w[ineg] = s.w[ineg] - T::one();
                }
            }
        }
        acc.sum[0] = total;
        scale_row(&mut s.w[..m], r.g);
        (total, acc)
    }
}
