use super::rows::pairwise_distance;
use crate::float::Float;

/// The contrastive loss as the fixtures compose it with torch:
/// `d = F.pairwise_distance(x1, x2)` (p = 2, eps = 1e-6),
/// `torch.where(y == 1, 0.5 * d**2, 0.5 * clamp_min(margin - d, 0)**2)` (any target other
/// than 1 is dissimilar); with the gradients of the sum of the output with respect to `x1`
/// and `x2`.
pub fn contrastive<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    margin: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (d, gd1, gd2) = pairwise_distance(x1, x2, dim, 2.0, 1e-6);
    let half = T::of(0.5);
    let mut out = Vec::new();
    let mut coef = Vec::new();
    for (&d, &t) in d.iter().zip(target) {
        if t == T::one() {
            out.push(half * (d * d));
            coef.push(d);
        } else {
            let u = T::of(margin) - d;
            let r = if u.is_nan() || u > T::zero() { u } else { T::zero() };
            out.push(half * (r * r));
            coef.push(-r);
        }
    }
    let scale = |g: &[T]| -> Vec<T> { g.iter().enumerate().map(|(j, &v)| coef[j / dim] * v).collect() };
    let (g1, g2) = (scale(&gd1), scale(&gd2));
    (out, g1, g2)
}
