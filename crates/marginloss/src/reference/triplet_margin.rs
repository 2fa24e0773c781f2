use super::rows::pairwise_distance;
use super::triplet_margin_with_distance::triplet_margin_with_distance;
use crate::float::Float;

/// `F.triplet_margin_loss(a, p, n, margin, p, eps, swap, reduction="none")` composed as
/// ATen does (`pairwise_distance` three times, `at::min` for swap, `clamp_min`), for finite
/// `p > 0`; with the gradients of the sum of the output with respect to the anchor,
/// positive and negative.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn triplet_margin<T: Float>(
    anchor: &[T],
    positive: &[T],
    negative: &[T],
    dim: usize,
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let dist = |x: &[T], y: &[T], dim: usize| pairwise_distance(x, y, dim, p, eps);
    triplet_margin_with_distance(anchor, positive, negative, dim, margin, swap, &dist)
}
