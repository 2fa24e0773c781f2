use crate::float::Float;

/// `F.multilabel_margin_loss(x, t, reduction='none')` written out as its definition: an
/// `is_target` matrix, then for each listed target `j` (up to the first −1, duplicates
/// kept) the vector `1 − x[j] + x` clamped at 0, masked to the non-targets and summed, `/C`;
/// with the gradient of the sum of the output (`z > 0` active).
pub fn multilabel_margin<T: Float>(input: &[T], target: &[i64], classes: usize) -> (Vec<T>, Vec<T>) {
    let c = classes;
    let lists: Vec<Vec<usize>> = target
        .chunks_exact(c)
        .map(|row| row.iter().take_while(|&&v| v >= 0).map(|&v| v as usize).collect())
        .collect();
    let mut is_target = vec![false; input.len()];
    for (n, l) in lists.iter().enumerate() {
        for &j in l {
            is_target[n * c + j] = true;
        }
    }
    let mut losses = Vec::with_capacity(lists.len());
    let mut grad = vec![T::zero(); input.len()];
    for (n, (row, l)) in input.chunks_exact(c).zip(&lists).enumerate() {
        let mut total = 0.0f64;
        for &j in l {
            let z: Vec<T> = row.iter().map(|&v| (T::one() - row[j]) + v).collect();
            for (i, &zi) in z.iter().enumerate() {
                if !is_target[n * c + i] && zi > T::zero() {
                    total += zi.f64();
                    grad[n * c + j] = grad[n * c + j] - T::one();
                    grad[n * c + i] = grad[n * c + i] + T::one();
                }
            }
        }
        losses.push(T::of(total / c as f64));
    }
    let inv_c = T::of(1.0 / c as f64);
    let grad = grad.into_iter().map(|g| g * inv_c).collect();
    (losses, grad)
}
