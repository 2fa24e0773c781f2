//! The losses, one file each.

mod class_index;
mod class_rows;
mod contrastive;
mod cosine_embedding;
mod hinge;
mod hinge_embedding;
mod margin_ranking;
mod multi_margin;
mod multiclass_hinge;
mod multilabel_margin;
mod multilabel_soft_margin;
mod pair;
mod soft_margin;
mod squared_hinge;
mod triplet_margin;
mod triplet_margin_with_distance;

pub use class_index::{ClassIndex, SignedClassIndex};
pub use contrastive::{contrastive, Contrastive};
pub use cosine_embedding::{cosine_embedding, CosineEmbedding};
pub use hinge::{hinge, Hinge};
pub use hinge_embedding::{hinge_embedding, DistanceHingeEmbedding, HingeEmbedding};
pub use margin_ranking::{margin_ranking, MarginRanking};
pub use multi_margin::{multi_margin, MultiMargin};
pub use multiclass_hinge::{multiclass_hinge, MulticlassHinge};
pub use multilabel_margin::{
    multilabel_margin, multilabel_target_from_indicator, multilabel_target_from_sets, MultilabelMargin,
};
pub use multilabel_soft_margin::{multilabel_soft_margin, MultilabelSoftMargin};
pub use soft_margin::{soft_margin, SoftMargin};
pub use squared_hinge::{squared_hinge, SquaredHinge};
pub use triplet_margin::{triplet_margin, TripletMargin};
pub use triplet_margin_with_distance::TripletMarginWithDistance;
