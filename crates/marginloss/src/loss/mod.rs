//! The losses, one file each.

mod hinge;
mod hinge_embedding;
mod margin_ranking;
mod multilabel_soft_margin;
mod soft_margin;
mod squared_hinge;

pub use hinge::{hinge, Hinge};
pub use hinge_embedding::{hinge_embedding, HingeEmbedding};
pub use margin_ranking::{margin_ranking, MarginRanking};
pub use multilabel_soft_margin::{multilabel_soft_margin, MultilabelSoftMargin};
pub use soft_margin::{soft_margin, SoftMargin};
pub use squared_hinge::{squared_hinge, SquaredHinge};
