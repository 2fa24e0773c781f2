//! Metric learning from a batch: `(embeddings, labels) → loss` with the tuples mined
//! inside the batch, fused over one distance matrix.
//!
//! | loss | tuples | pytorch-metric-learning | TensorFlow Addons |
//! |---|---|---|---|
//! | [`BatchAllTriplet`] | every `(a, p, n)` | `TripletMarginLoss()` (all triplets) | — |
//! | [`BatchHardTriplet`] | per anchor: farthest positive, nearest negative | `BatchHardMiner` + `TripletMarginLoss` | `triplet_hard_loss` ([`Reference::TfAddons`]) |
//! | [`SemihardTriplet`] | per positive pair: nearest negative farther than the positive, else the farthest | — (its "semihard" miners differ) | `triplet_semihard_loss` |
//! | [`PairContrastive`] | every ordered pair `i ≠ j` | `ContrastiveLoss` | — |
//!
//! ## Inputs
//!
//! * **Embeddings** `N × D` row-major ([`Rows`]: the shape is stated and checked
//!   against the slice length, so a wrong `D` is an error, not a different loss), `f32` or
//!   `f64`; **labels** `N` integers of any primitive integer type ([`BatchLabel`]).
//! * Optionally a **reference set** `M × D` with `M` labels ([`Batch::with_reference`],
//!   pytorch-metric-learning's `ref_emb` / `ref_labels`): the anchors are the embeddings,
//!   the candidates (positives and negatives) the reference rows, and **every** reference
//!   row is a candidate (a reference row equal to the anchor is not excluded). Without a
//!   reference set the candidates are the embeddings themselves and the anchor is excluded
//!   from its own positives.
//!
//! Positives of anchor `a`: candidates `j` with `y_j = y_a` (`j ≠ a` without a reference
//! set); negatives: `y_j ≠ y_a`.
//!
//! ## Distances ([`BatchDistance`])
//!
//! `d(x, y)` between an anchor row and a candidate row:
//!
//! * `Euclidean`: `‖x − y‖₂`, computed as `sqrt(max(‖x‖² + ‖y‖² − 2·x·y, 0))` from the
//!   GEMM (as `torch.cdist` does for more than 25 rows); its gradient at distance 0 is 0,
//!   never NaN (the TF-Addons / sentence-transformers #4033 convention). Without a
//!   reference set the diagonal is exactly 0.
//! * `SquaredEuclidean`: `max(‖x‖² + ‖y‖² − 2·x·y, 0)`.
//! * `Cosine`: `1 − x·y / (max(‖x‖, eps)·max(‖y‖, eps))`, eps = 1e-8, each norm clamped
//!   separately with the gradient straight through the clamp, as
//!   [`CosineSimilarity`](crate::CosineSimilarity) (torch 2.15's `F.cosine_similarity`).
//!
//! `normalize` first L2-normalises every row as `F.normalize(x, dim=1, eps=1e-12)`
//! (`x / max(‖x‖, 1e-12)`), with the gradient through it. **pytorch-metric-learning
//! normalises by default** (`LpDistance(normalize_embeddings=True)`); here it is off by
//! default and has to be asked for.
//!
//! ## Reductions ([`BatchReduction`])
//!
//! `Mean` over the valid tuples (triplets, anchors or positive pairs, as each loss says),
//! `MeanNonzero` over the tuples with a loss `> 0` (pytorch-metric-learning's
//! `AvgNonZeroReducer`; 0 with a zero gradient when there are none), `Sum`, and `None`:
//! one value per anchor, the sum of the losses of the tuples anchored there (so the `None`
//! values add up to `Sum`). The pair loss reduces its positive and its negative terms
//! separately and adds the two, as pytorch-metric-learning's `MultipleReducers` does.
//!
//! ## Strict and torch-compat
//!
//! [`Mode::Strict`](crate::Mode::Strict) (the default) refuses, with an error that says what
//! to change: a batch with no positive pair (every label appears once), a batch with no
//! negative (one class), NaN/±Inf, a label count other than `N` (`M`), `D = 0`, `N = 0`,
//! zero rows under the cosine distance or `normalize`, a non-finite margin.
//! [`Mode::TorchCompat`](crate::Mode::TorchCompat) reproduces the reference on such
//! batches: pytorch-metric-learning's zero loss (with a zero gradient) when no tuple
//! exists, TF-Addons' NaN when there is no positive pair, its fallbacks for anchors
//! without positives or negatives. Non-finite input in torch-compat mode gives NaN loss
//! values and NaN gradients throughout. The references differ there, and that is not
//! reproduced. Measured with pytorch-metric-learning 2.9.0 on one NaN element in a 12 × 4
//! batch (defaults, normalised):
//!
//! * `TripletMarginLoss` (all triplets) and `ContrastiveLoss` return a *finite* loss: their
//!   `AvgNonZeroReducer` keeps `loss > 0`, which drops the NaN tuples. Every row of the
//!   gradient is NaN.
//! * `BatchHardMiner` + `TripletMarginLoss` returns a NaN loss with a finite gradient.
//! * Without normalisation, an `inf` element gives `inf` (all triplets).
//!
//! ## Ties
//!
//! Every arg-max / arg-min (hardest positive, hardest or semi-hard negative, the
//! fallbacks) takes the **lowest index** among equal distances. The references do not
//! specify theirs (`torch.max(dim=1)`, `tf.reduce_min`'s gradient splits over ties).
//!
//! ## Cost
//!
//! One `N × D × M` GEMM (faer) forms the Gram matrix a block of rows at a time; the same
//! sweep turns each row into distances, mines it and writes the row of gradient
//! coefficients over it. The backward is `α_i·x_i − Σ_j X_ij·x_j`: a second GEMM for the
//! dense losses (batch-all, pair-contrastive), a scan of the few non-zero coefficients for
//! the sparse ones (batch-hard, semi-hard). Memory: one `N × M` buffer plus `O((N + M)·D)`
//! in a [`Workspace`] the caller can keep; nothing of size `N³`. With the `rayon` feature
//! the row blocks run on threads; the blocks depend only on the sizes, so the results are
//! bit-for-bit the same for any thread count.

// The kernels index rows by position on purpose (fixed-lane loops the optimiser vectorises).
#![allow(clippy::needless_range_loop)]

pub(crate) mod gemm;

mod batch_all_triplet;
mod batch_hard_triplet;
mod engine;
mod pair_contrastive;
mod semihard_triplet;
#[cfg(target_arch = "x86_64")]
mod tile;
mod triangle;

pub use batch_all_triplet::BatchAllTriplet;
pub use batch_hard_triplet::{BatchHardTriplet, Reference};
pub use engine::Workspace;
pub use pair_contrastive::PairContrastive;
pub use semihard_triplet::SemihardTriplet;

use crate::error::{Error, Result};
use crate::rows::Rows;
use std::fmt::Debug;

mod sealed {
    pub trait Sealed {}
}

/// An integer class label: every primitive integer type. Labels are only compared for
/// equality.
pub trait BatchLabel: Copy + PartialEq + Send + Sync + Debug + sealed::Sealed + 'static {
    /// The label as `f64`, for error messages.
    fn as_f64(self) -> f64;
    /// The label as an exact, ordered key (every primitive integer fits `i128`).
    #[doc(hidden)]
    fn key(self) -> i128;
}

macro_rules! label_impl {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl BatchLabel for $t {
            #[inline(always)]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn key(self) -> i128 {
                self as i128
            }
        }
    )*};
}
label_impl!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// A batch: embeddings with their labels, and optionally a reference set of candidates.
#[derive(Debug)]
pub struct Batch<'a, T, L> {
    pub(crate) embeddings: Rows<'a, T>,
    pub(crate) labels: &'a [L],
    pub(crate) reference: Option<(Rows<'a, T>, &'a [L])>,
}

impl<'a, T, L> Batch<'a, T, L> {
    /// Embeddings and one label per row (the count is checked by the loss).
    pub fn new(embeddings: Rows<'a, T>, labels: &'a [L]) -> Self {
        Batch { embeddings, labels, reference: None }
    }
    /// Adds a reference set (pytorch-metric-learning's `ref_emb`, `ref_labels`): every
    /// reference row is a candidate for every anchor.
    pub fn with_reference(mut self, embeddings: Rows<'a, T>, labels: &'a [L]) -> Self {
        self.reference = Some((embeddings, labels));
        self
    }
    /// The embeddings (the anchors).
    pub fn embeddings(&self) -> Rows<'a, T> {
        self.embeddings
    }
    /// The reference set, if any.
    pub fn reference(&self) -> Option<Rows<'a, T>> {
        self.reference.map(|r| r.0)
    }
}

/// The distance between an anchor and a candidate (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchDistance {
    /// `‖x − y‖₂`, gradient 0 at distance 0 (the default).
    #[default]
    Euclidean,
    /// `‖x − y‖₂²`.
    SquaredEuclidean,
    /// `1 − cos(x, y)` with torch's per-norm eps 1e-8.
    Cosine,
}

impl BatchDistance {
    /// Parses `euclidean`, `squared-euclidean` or `cosine`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "euclidean" => Some(BatchDistance::Euclidean),
            "squared-euclidean" => Some(BatchDistance::SquaredEuclidean),
            "cosine" => Some(BatchDistance::Cosine),
            _ => None,
        }
    }
    /// The name [`parse`](Self::parse) accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchDistance::Euclidean => "euclidean",
            BatchDistance::SquaredEuclidean => "squared-euclidean",
            BatchDistance::Cosine => "cosine",
        }
    }
}

/// How the tuple losses of a batch are combined (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchReduction {
    /// The mean over the valid tuples (the default).
    #[default]
    Mean,
    /// The mean over the tuples with a loss `> 0`; 0 (zero gradient) when there are none.
    MeanNonzero,
    /// The sum.
    Sum,
    /// One value per anchor: the sum of its tuples' losses.
    None,
}

impl BatchReduction {
    /// Parses `mean`, `mean-nonzero`, `sum` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mean" => Some(BatchReduction::Mean),
            "mean-nonzero" => Some(BatchReduction::MeanNonzero),
            "sum" => Some(BatchReduction::Sum),
            "none" => Some(BatchReduction::None),
            _ => None,
        }
    }
    /// The name [`parse`](Self::parse) accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchReduction::Mean => "mean",
            BatchReduction::MeanNonzero => "mean-nonzero",
            BatchReduction::Sum => "sum",
            BatchReduction::None => "none",
        }
    }
    /// The output length for `n` anchors: `n` for `None`, else 1.
    pub fn output_len(self, n: usize) -> usize {
        match self {
            BatchReduction::None => n,
            _ => 1,
        }
    }
}

/// What a call found in the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Valid tuples (the `Mean` divisor; for the pair loss, positive plus negative pairs).
    pub tuples: u64,
    /// Tuples with a loss `> 0` (the `MeanNonzero` divisor).
    pub active: u64,
    /// Ordered (anchor, positive) pairs.
    pub positive_pairs: u64,
    /// Ordered (anchor, negative) pairs.
    pub negative_pairs: u64,
    /// Anchors with at least one positive and one negative.
    pub anchors: u64,
}

/// The options every batch loss shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Common {
    pub distance: BatchDistance,
    pub normalize: bool,
    pub mode: crate::Mode,
}

/// Generates the builder setters and the public `forward` / `forward_backward` of a
/// batch loss whose options have `distance`, `normalize` and `mode` fields and a
/// `fn miner(&self) -> Result<impl Miner>`.
macro_rules! batch_api {
    () => {
        /// Sets the distance.
        pub fn distance(mut self, distance: $crate::batch::BatchDistance) -> Self {
            self.distance = distance;
            self
        }
        /// L2-normalises the rows first (`F.normalize`, eps 1e-12), gradient through it.
        pub fn normalize(mut self, normalize: bool) -> Self {
            self.normalize = normalize;
            self
        }
        /// Sets the validation mode.
        pub fn mode(mut self, mode: $crate::Mode) -> Self {
            self.mode = mode;
            self
        }

        fn common(&self) -> $crate::batch::Common {
            $crate::batch::Common { distance: self.distance, normalize: self.normalize, mode: self.mode }
        }

        /// The loss of a batch (allocates its result and a workspace): a scalar, or one
        /// value per anchor for [`BatchReduction::None`](crate::batch::BatchReduction::None).
        ///
        /// # Errors
        /// See the type's docs: shapes, label counts, and in strict mode degenerate
        /// batches, non-finite values and options.
        pub fn forward<T: $crate::Float, L: $crate::batch::BatchLabel>(
            &self,
            batch: &$crate::batch::Batch<'_, T, L>,
            reduction: $crate::batch::BatchReduction,
        ) -> $crate::Result<$crate::Output<T>> {
            let mut out = vec![T::zero(); reduction.output_len(batch.embeddings.rows())];
            let mut ws = $crate::batch::Workspace::new();
            $crate::batch::engine::run(
                &self.miner::<T>()?,
                Self::LOSS,
                self.common(),
                batch,
                reduction,
                None,
                &mut out,
                None,
                &mut ws,
            )?;
            Ok($crate::Output::from_buffer(
                match reduction {
                    $crate::batch::BatchReduction::None => $crate::Reduction::None,
                    _ => $crate::Reduction::Mean,
                },
                out,
            ))
        }

        /// Fused forward and backward: writes the loss into `out` (1 value, or N for
        /// `None`) and `upstream · ∂loss/∂embeddings` into `grad` (`N·D`), and
        /// `∂/∂reference` into `grad_reference` (`M·D`) when given (only with a reference
        /// set). `upstream` has one value, or N (one per anchor) for `None`. The
        /// workspace's buffers are reused: a call with sizes it has seen allocates
        /// nothing proportional to `N·M`.
        ///
        /// # Errors
        /// As [`forward`](Self::forward), plus wrongly sized buffers.
        #[allow(clippy::too_many_arguments)]
        pub fn forward_backward<T: $crate::Float, L: $crate::batch::BatchLabel>(
            &self,
            batch: &$crate::batch::Batch<'_, T, L>,
            reduction: $crate::batch::BatchReduction,
            upstream: &[T],
            out: &mut [T],
            grad: &mut [T],
            grad_reference: Option<&mut [T]>,
            workspace: &mut $crate::batch::Workspace<T>,
        ) -> $crate::Result<$crate::batch::BatchStats> {
            $crate::batch::engine::run(
                &self.miner::<T>()?,
                Self::LOSS,
                self.common(),
                batch,
                reduction,
                Some((upstream, grad)),
                out,
                grad_reference,
                workspace,
            )
        }
    };
}
pub(crate) use batch_api;

/// The Gram matrix `X·Xᵀ` (`N × N`, row-major, into `out`) by the same row-block GEMMs
/// (faer) the losses' sweep runs, on the same threads: the yardstick the losses' cost is
/// stated in (`marginloss bench` reports it as `gemm_ns`).
///
/// # Errors
/// [`Error::Buffer`] when `out` does not have `N·N` elements.
pub fn gram_matrix<T: crate::Float>(x: Rows<'_, T>, out: &mut [T]) -> Result<()> {
    let n = x.rows();
    crate::reduction::check_buffer("gram_matrix", "output", out.len(), n * n)?;
    engine::gram(x.data(), n, x.cols(), out);
    Ok(())
}

/// Strict mode: a finite margin.
pub(crate) fn check_margin(
    loss: &'static str,
    option: &'static str,
    m: f64,
    mode: crate::Mode,
) -> Result<()> {
    if mode.is_strict() && !m.is_finite() {
        return Err(Error::Option { loss, option, value: crate::Value(m), expected: "finite" });
    }
    Ok(())
}
