//! The losses, one file each.

mod hinge;
mod hinge_embedding;
mod squared_hinge;

pub use hinge::{hinge, Hinge};
pub use hinge_embedding::{hinge_embedding, HingeEmbedding};
pub use squared_hinge::{squared_hinge, SquaredHinge};
