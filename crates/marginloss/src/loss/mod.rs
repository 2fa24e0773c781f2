//! The losses, one file each.

mod contrastive;
mod cosine_embedding;
mod hinge;
mod hinge_embedding;
mod pair;
mod squared_hinge;
mod triplet_margin;
mod triplet_margin_with_distance;

pub use contrastive::{contrastive, Contrastive};
pub use cosine_embedding::{cosine_embedding, CosineEmbedding};
pub use hinge::{hinge, Hinge};
pub use hinge_embedding::{hinge_embedding, HingeEmbedding};
pub use squared_hinge::{squared_hinge, SquaredHinge};
pub use triplet_margin::{triplet_margin, TripletMargin};
pub use triplet_margin_with_distance::TripletMarginWithDistance;
