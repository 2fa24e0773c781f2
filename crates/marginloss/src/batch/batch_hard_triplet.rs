//! Batch-hard triplet loss (Hermans, Beyer & Leibe 2017): per anchor the farthest
//! positive and the nearest negative.

use super::engine::{hinge, lanes_extreme, Acc, Miner, Row, Scratch, NONE};
use super::{batch_api, check_margin, BatchDistance, BatchLabel};
use crate::error::Result;
use crate::float::Float;
use crate::options::Mode;

/// Which reference torch-compat mode reproduces where the two disagree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reference {
    /// pytorch-metric-learning 2.9 (`BatchHardMiner` + `TripletMarginLoss`): anchors
    /// without a positive or a negative are dropped; no tuple gives a zero loss.
    #[default]
    PytorchMetricLearning,
    /// TensorFlow Addons `triplet_hard_loss`: every anchor counts; without a positive the
    /// hardest positive distance is the row's minimum (0, the anchor itself), without a
    /// negative the hardest negative is the row's maximum; `Mean` is over all N anchors.
    TfAddons,
}

/// The batch-hard triplet loss of Hermans, Beyer & Leibe ("In Defense of the Triplet Loss
/// for Person Re-Identification", 2017): per anchor `a` that has a positive and a
/// negative,
///
/// ```text
/// hp_a = max_{p: y_p = y_a, p ≠ a} d(a, p)       hn_a = min_{n: y_n ≠ y_a} d(a, n)
/// l_a  = max(0, hp_a − hn_a + margin)            (soft: softplus(hp_a − hn_a), margin unused)
/// ```
///
/// * **Ties:** the lowest index wins (for both the hardest positive and negative).
/// * **Reduction:** `Mean` over the anchors that have both, `MeanNonzero` over those with
///   `l_a > 0` (pytorch-metric-learning's default), `Sum`, `None`: `l_a` per anchor (0 for
///   an anchor without a positive or a negative).
/// * **Defaults:** margin 0.05 (pytorch-metric-learning's `TripletMarginLoss`; TF-Addons
///   uses 1.0), hinge, euclidean, no normalisation, strict.
/// * **Shapes, errors:** as [`BatchAllTriplet`](super::BatchAllTriplet). Torch-compat
///   follows [`Reference`] (default pytorch-metric-learning; [`tf_addons`](Self::tf_addons)
///   selects TF-Addons' fallbacks and its mean over all anchors).
/// * **Cost:** the GEMM and one pass over each row; the backward touches 2 rows per anchor.
///
/// | library | equivalent |
/// |---|---|
/// | pytorch-metric-learning 2.9 | `miners.BatchHardMiner()` + `losses.TripletMarginLoss(margin)` (soft: `TripletMarginLoss(margin=0, smooth_loss=True)`); default reducer = `MeanNonzero` |
/// | TensorFlow Addons | `tfa.losses.triplet_hard_loss(y, emb, margin, soft, distance_metric="L2")` = torch-compat with [`Reference::TfAddons`], `Mean` |
///
/// ```
/// use marginloss::batch::{Batch, BatchHardTriplet, BatchReduction};
/// use marginloss::Rows;
/// // TF-Addons' documented example: y = [0, 0], emb = [[0, 1], [1, 0]], L2 → 1.0
/// let x = [0.0f32, 1.0, 1.0, 0.0];
/// let batch = Batch::new(Rows::new(&x, 2, 2)?, &[0i32, 0]);
/// let l = BatchHardTriplet::new().margin(1.0).tf_addons().forward(&batch, BatchReduction::Mean)?;
/// assert_eq!(l.scalar(), Some(1.0));
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchHardTriplet {
    /// The margin (default 0.05; unused with `soft`).
    pub margin: f64,
    /// softplus of `hp − hn` instead of the hinge.
    pub soft: bool,
    /// The distance (default euclidean).
    pub distance: BatchDistance,
    /// L2-normalise the rows first (default false).
    pub normalize: bool,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The reference torch-compat reproduces.
    pub reference: Reference,
}

impl Default for BatchHardTriplet {
    fn default() -> Self {
        BatchHardTriplet {
            margin: 0.05,
            soft: false,
            distance: BatchDistance::Euclidean,
            normalize: false,
            mode: Mode::Strict,
            reference: Reference::PytorchMetricLearning,
        }
    }
}

impl BatchHardTriplet {
    const LOSS: &'static str = "batch_hard_triplet";

    /// The loss with its defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// softplus of `hp − hn` (margin unused).
    pub fn soft(mut self, soft: bool) -> Self {
        self.soft = soft;
        self
    }
    /// Sets the reference for torch-compat mode.
    pub fn reference(mut self, reference: Reference) -> Self {
        self.reference = reference;
        self
    }
    /// TensorFlow Addons' `triplet_hard_loss`: torch-compat with [`Reference::TfAddons`].
    pub fn tf_addons(self) -> Self {
        self.mode(Mode::TorchCompat).reference(Reference::TfAddons)
    }

    fn miner<T: Float>(&self) -> Result<HardMiner<T>> {
        check_margin(Self::LOSS, "margin", self.margin, self.mode)?;
        Ok(HardMiner {
            margin: if self.soft { T::zero() } else { T::of(self.margin) },
            soft: self.soft,
            tfa: !self.mode.is_strict() && self.reference == Reference::TfAddons,
        })
    }

    batch_api!();
}

pub(crate) struct HardMiner<T> {
    margin: T,
    soft: bool,
    tfa: bool,
}

impl<T: Float, L: BatchLabel> Miner<T, L> for HardMiner<T> {
    const DENSE: bool = false;
    const CLASSES: usize = 1;

    /// One positive and one negative a row.
    fn max_picks(_np: usize) -> usize {
        2
    }

    fn hard(&self) -> Option<(T, bool)> {
        (!self.tfa).then_some((self.margin, self.soft))
    }

    #[inline(always)]
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc) {
        let m = r.d.len();
        let (d, labels) = (r.d, &r.labels[..m]);
        let (inf, ninf) = (T::infinity(), T::neg_infinity());
        // The hardest positive from the class list (ascending, so a strict comparison
        // keeps the lowest index among ties).
        let (mut hp, mut ip, mut np) = (ninf, NONE, 0u64);
        for &j in r.same {
            let j = j as usize;
            if j != r.skip && j < m {
                np += 1;
                if d[j] > hp {
                    (hp, ip) = (d[j], j);
                }
            }
        }
        let nneg = (m - r.same.len()) as u64;
        // The hardest negative: its value in a 16-lane pass over the row (the label
        // compare and the minimum vectorise), then its lowest index by a chunked search.
        let (mut hn, mut inn) = (inf, NONE);
        if nneg > 0 {
            (hn, inn) = nearest_negative(d, labels, r.y);
        }
        let mut acc = Acc { pos_pairs: np, neg_pairs: nneg, ..Acc::default() };
        let both = np > 0 && nneg > 0;
        if both {
            acc.anchors = 1;
        } else if self.tfa {
            // TF-Addons' masked max / min over an empty mask: the row's min / max (the
            // anchor's own 0 included), with the gradient going to that element (the
            // lowest index among ties).
            let extreme = |max: bool| {
                let mut best = (if max { ninf } else { inf }, NONE);
                for (j, &v) in d.iter().enumerate() {
                    if (max && v > best.0) || (!max && v < best.0) {
                        best = (v, j);
                    }
                }
                best
            };
            if np == 0 {
                (hp, ip) = extreme(false);
            }
            if nneg == 0 {
                (hn, inn) = extreme(true);
            }
        } else {
            return (0.0, acc);
        }
        let (l, dl) = hinge(hp - hn + self.margin, self.soft);
        acc.tuples[0] = 1;
        acc.active[0] = u64::from(l > T::zero());
        acc.sum[0] = l.f64();
        let g = dl * r.g;
        if ip != NONE && ip != r.skip {
            s.w[ip] = s.w[ip] + g;
            s.touched.push(ip);
        }
        if inn != NONE && inn != r.skip {
            s.w[inn] = s.w[inn] - g;
            s.touched.push(inn);
        }
        (l.f64(), acc)
    }
}

/// Lanes of the row pass (a minimum is exact at any width).
const W: usize = 64;

/// The nearest negative (`labels[j] != y`) of a row of distances and its lowest index
/// (`(+∞, NONE)` when there is none): the value in 64 lanes (the label compare and the
/// minimum vectorise), then the index by a chunked search.
#[inline(always)]
pub(super) fn nearest_negative<T: Float, L: BatchLabel>(d: &[T], labels: &[L], y: L) -> (T, usize) {
    let inf = T::infinity();
    let mut lanes = [inf; W];
    let (dc, dt) = d.as_chunks::<W>();
    let (lc, lt) = labels.as_chunks::<W>();
    for (dv, lv) in dc.iter().zip(lc) {
        for k in 0..W {
            let v = T::select(lv[k] != y, dv[k], inf);
            lanes[k] = T::select(v < lanes[k], v, lanes[k]);
        }
    }
    for (k, (&v, &l)) in dt.iter().zip(lt).enumerate() {
        let v = T::select(l != y, v, inf);
        lanes[k] = T::select(v < lanes[k], v, lanes[k]);
    }
    let hn = lanes_extreme(&lanes, false);
    (hn, first_negative(d, labels, y, hn))
}

/// The lowest index of a negative (`labels[j] != y`) at distance `v`: whole chunks
/// compared (a fold that vectorises), the position searched in the chunk that has it.
#[inline(always)]
fn first_negative<T: Float, L: BatchLabel>(d: &[T], labels: &[L], y: L, v: T) -> usize {
    for (c, (dc, lc)) in d.chunks(W).zip(labels.chunks(W)).enumerate() {
        if dc.iter().zip(lc).fold(false, |a, (&x, &l)| a | ((x == v) & (l != y))) {
            return dc.iter().zip(lc).position(|(&x, &l)| x == v && l != y).map_or(NONE, |k| c * W + k);
        }
    }
    NONE
}
