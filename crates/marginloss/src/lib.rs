//! # marginloss
//!
//! The margin / hinge family of loss functions with **exact PyTorch 2.15 semantics**,
//! analytic gradients computed in **fused single-pass kernels**, and **strict guards**
//! that turn a misuse into an error instead of a silent wrong number.
//!
//! The classic mistake this crate exists to catch: PyTorch's `HingeEmbeddingLoss` takes a
//! *distance* `x ≥ 0` (loss `x` for `y = 1`, `max(0, margin − x)` for `y = −1`), while the
//! SVM hinge loss is `max(0, 1 − y·x)` on *scores*. Fed the scores `x = [0.8, −0.5, 2.0]`,
//! `y = [−1, 1, −1]`, `HingeEmbeddingLoss` returns −0.1; the hinge loss is 2.1.
//!
//! ```
//! use marginloss::{hinge, HingeEmbedding, Mode, Reduction};
//! let (x, y) = ([0.8f64, -0.5, 2.0], [-1.0, 1.0, -1.0]);
//! let svm = hinge(&x, &y, Reduction::Mean)?.scalar().unwrap();
//! assert!((svm - 2.1).abs() < 1e-12);
//! let torch = HingeEmbedding::new().mode(Mode::TorchCompat).forward(&x, &y, Reduction::Mean)?;
//! assert!((torch.scalar().unwrap() + 0.1).abs() < 1e-12);
//! assert!(HingeEmbedding::new().forward(&x, &y, Reduction::Mean).is_err()); // strict: negative distance
//! # Ok::<(), marginloss::Error>(())
//! ```
//!
//! ## Shape of the API
//!
//! Each loss is an options struct (`Hinge`, `HingeEmbedding`, …, all `#[non_exhaustive]`
//! with public fields and builder setters) with three methods, generic over `f32`/`f64`:
//!
//! * `forward(…, reduction) -> Output<T>`: convenient, allocates the result;
//! * `forward_into(…, reduction, out)`: writes into a caller buffer;
//! * `forward_backward(…, reduction, upstream, out, grad_…)`: the fused kernel — one pass
//!   over the inputs writes the loss and `upstream · ∂loss/∂input` into caller buffers,
//!   with no allocation.
//!
//! Row inputs — embeddings, triplets, class scores, the rows of a distance — are [`Rows`]
//! views, `Rows::new(&x, n, d)?` (or [`Rows::single`] for one row), whose shape is stated
//! by the caller and checked; elementwise inputs, targets (per-row labels, class indices,
//! multilabel targets), weights and output and gradient buffers are plain slices, row-major
//! where they hold rows. A mismatch between arguments, or a target whose length is not one
//! per row, is an [`Error::Shape`] naming the argument and the shape expected:
//!
//! ```
//! use marginloss::{multi_margin, Reduction, Rows};
//! let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0];
//! let scores = Rows::new(&x, 2, 4)?; // N = 2 rows of C = 4 class scores
//! let l = multi_margin(scores, &[3i64, 0], Reduction::Mean)?;
//! assert!((l.scalar().unwrap() - 0.4).abs() < 1e-15);
//! let e = multi_margin(scores, &[3i64], Reduction::Mean).unwrap_err();
//! assert!(e.to_string().contains("so target (one class index per row) has shape [2]"), "{e}");
//! # Ok::<(), marginloss::Error>(())
//! ```
//!
//! Every call validates in [`Mode::Strict`] (the default) or reproduces torch in
//! [`Mode::TorchCompat`]; the checks ride along in the kernel's single pass.
//!
//! ## Errors
//!
//! Every fallible call returns [`Result`]; no input reachable from the public API panics,
//! aborts or allocates without bound (the fuzz targets in `crates/marginloss-fuzz` hold this; see
//! `docs/RELIABILITY.md`). An [`Error`]'s text is one line naming the loss, the argument,
//! the flat index and the value. [`Mode::Strict`] refuses NaN/±Inf, empty input, values
//! outside the loss's domain, options outside theirs or not finite in the inputs' dtype,
//! and any non-finite loss or gradient computed from finite input ([`Error::Overflow`]);
//! [`Mode::TorchCompat`] refuses only what PyTorch refuses (shapes, class indices, a few
//! options) and otherwise returns torch's values, `inf` and NaN included.
//!
//! With the cargo feature `reference` (off by default) a `reference` module holds plain,
//! unfused implementations of the same formulas, written the way PyTorch composes them;
//! the tests hold the kernels equal to them. They are test support, not for training:
//! they do not validate their inputs and may panic on malformed ones.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod batch;
pub mod distance;
mod error;
mod float;
pub(crate) mod kernel;
pub mod loss;
pub mod op;
mod options;
mod parts;
mod reduction;
#[cfg(feature = "reference")]
pub mod reference;
mod rows;
mod simd;

pub use batch::{
    Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchLabel, BatchReduction, BatchStats,
    PairContrastive, SemihardTriplet, Workspace,
};
pub use distance::{
    cosine_similarity, pairwise_distance, CosineDistance, CosineSimilarity, Distance, GradPair,
    PairwiseDistance, RowPair,
};
pub use error::{Error, Result, Value};
pub use float::Float;
pub use loss::*;
pub use options::{Kink, Labels, Mode};
pub use reduction::{Output, Reduction};
pub use rows::Rows;

/// The crate README's Rust example, compiled and run as a doctest (the workspace README
/// shows the same code; `tests/workspace.rs` holds the two equal).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
