//! **Test support, behind the cargo feature `reference` (off by default); not for
//! training.** Plain reference implementations: each loss written the way PyTorch composes it, one
//! tensor op at a time, each op a separate pass with its own allocation. They exist to
//! test the fused kernels against and to benchmark them beside; they do not validate, and
//! malformed input (short weights, out-of-range classes, `dim == 0`) may panic.
//!
//! Every function returns `(per-element losses, gradient of their sum)` for each
//! differentiable input, unreduced; [`reduce`] applies a reduction.

use crate::float::Float;
use crate::reduction::Reduction;

mod margin_ranking;
mod multi_margin;
mod multiclass_hinge;
mod multilabel_margin;
mod multilabel_soft_margin;
mod pointwise;
mod rows;
mod soft_margin;

pub use margin_ranking::*;
pub use multi_margin::*;
pub use multiclass_hinge::*;
pub use multilabel_margin::*;
pub use multilabel_soft_margin::*;
pub use pointwise::{hinge, hinge_embedding, squared_hinge};
pub use rows::{cosine_similarity, pairwise_distance};
pub use soft_margin::*;
mod contrastive;
mod cosine_embedding;
mod triplet_margin;
mod triplet_margin_with_distance;

pub use contrastive::*;
pub use cosine_embedding::*;
pub use triplet_margin::*;
pub use triplet_margin_with_distance::*;

/// Reduces per-element losses and scales per-element gradients as PyTorch's reduction
/// and its backward would: returns the output values and the input gradient for an
/// upstream gradient of one.
pub fn reduce<T: Float>(reduction: Reduction, losses: &[T], grad: &[T]) -> (Vec<T>, Vec<T>) {
    match reduction {
        Reduction::None => (losses.to_vec(), grad.to_vec()),
        Reduction::Sum => (vec![T::of(losses.iter().map(|v| v.f64()).sum())], grad.to_vec()),
        Reduction::Mean => {
            let n = losses.len();
            let s: f64 = losses.iter().map(|v| v.f64()).sum();
            let g = T::one() / T::of(n as f64);
            (vec![T::of(s / n as f64)], grad.iter().map(|&d| d * g).collect())
        }
    }
}
