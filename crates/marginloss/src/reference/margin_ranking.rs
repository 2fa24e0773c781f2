use crate::float::Float;

/// `clamp_min(−y·(x1 − x2) + margin, 0)` composed as torch 2.15 does, op by op (kink
/// gradient 0, `y` = target as given), with the gradients of the sum of the losses with
/// respect to `input1` and `input2`.
pub fn margin_ranking<T: Float>(
    input1: &[T],
    input2: &[T],
    target: &[T],
    margin: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let m = T::of(margin);
    let diff: Vec<T> = input1.iter().zip(input2).map(|(&a, &b)| a - b).collect();
    let neg_y: Vec<T> = target.iter().map(|&y| -y).collect();
    let prod: Vec<T> = neg_y.iter().zip(&diff).map(|(&y, &d)| y * d).collect();
    let u: Vec<T> = prod.iter().map(|&p| p + m).collect();
    let l = u.iter().map(|&v| if v.is_nan() || v > T::zero() { v } else { T::zero() }).collect();
    // clamp_min backward (strict `>`), then mul backward: ∂/∂diff = mask·(−y).
    let mask: Vec<T> = u.iter().map(|&v| if v > T::zero() { T::one() } else { T::zero() }).collect();
    let g1: Vec<T> = mask.iter().zip(&neg_y).map(|(&k, &y)| k * y).collect();
    let g2 = g1.iter().map(|&g| -g).collect();
    (l, g1, g2)
}
