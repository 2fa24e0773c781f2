use crate::float::Float;

/// The Crammer–Singer hinge composed as
/// `clamp_min(margin + x.masked_fill(one_hot(y), -inf).amax(1) − x.gather(1, y), 0)`, with
/// the gradient of the sum of the output under the tie rule of
/// [`MulticlassHinge`](crate::MulticlassHinge): −1 to the target, +1 to the lowest index
/// attaining the max, where the hinge argument is strictly positive.
pub fn multiclass_hinge<T: Float>(
    input: &[T],
    target: &[i64],
    classes: usize,
    margin: f64,
) -> (Vec<T>, Vec<T>) {
    let c = classes;
    let y: Vec<usize> = target.iter().map(|&t| t as usize).collect();
    let sy: Vec<T> = input.chunks_exact(c).zip(&y).map(|(row, &y)| row[y]).collect();
    let masked: Vec<T> = input
        .iter()
        .enumerate()
        .map(|(k, &v)| if k % c == y[k / c] { T::neg_infinity() } else { v })
        .collect();
    // amax (NaN propagates) and the first arg-max
    let (other, jstar): (Vec<T>, Vec<usize>) = masked
        .chunks_exact(c)
        .map(|row| {
            if row.iter().any(|v| v.is_nan()) {
                return (T::nan(), 0);
            }
            let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
            (m, row.iter().position(|&v| v == m).unwrap_or(0))
        })
        .unzip();
    let u: Vec<T> = other.iter().zip(&sy).map(|(&o, &s)| (T::of(margin) + o) - s).collect();
    let losses: Vec<T> = u.iter().map(|&v| if v.is_nan() || v > T::zero() { v } else { T::zero() }).collect();
    let mut grad = vec![T::zero(); input.len()];
    for n in 0..u.len() {
        if u[n] > T::zero() {
            grad[n * c + y[n]] = -T::one();
            grad[n * c + jstar[n]] = T::one();
        }
    }
    (losses, grad)
}
