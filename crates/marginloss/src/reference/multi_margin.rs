use crate::float::Float;

/// `F.multi_margin_loss(x, y, p, margin, weight, reduction='none')` composed as torch's
/// decomposition (`torch/_decomp/decompositions.py`) does it:
/// `u = x.gather(1, y)`, `z = clamp_min(margin − u + x, 0)`, `z^p`, `· w[y]`,
/// `where(i ≠ y, z, 0)`, `mean(dim=1)`, with the gradient of the sum of the output.
/// Unlike eager torch (and the fused kernel in torch-compat mode), NaN propagates here.
pub fn multi_margin<T: Float>(
    input: &[T],
    target: &[i64],
    classes: usize,
    p: u32,
    margin: f64,
    weight: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let c = classes;
    let y: Vec<usize> = target.iter().map(|&t| t as usize).collect();
    // gather
    let u: Vec<T> = input.chunks_exact(c).zip(&y).map(|(row, &y)| row[y]).collect();
    // z = margin - u + x
    let m = T::of(margin);
    let z: Vec<T> = input.iter().enumerate().map(|(k, &x)| (m - u[k / c]) + x).collect();
    let active: Vec<bool> = z.iter().map(|&v| v > T::zero()).collect();
    let zc: Vec<T> = z.iter().map(|&v| if v.is_nan() || v > T::zero() { v } else { T::zero() }).collect();
    let zp: Vec<T> = if p == 2 { zc.iter().map(|&v| v * v).collect() } else { zc.clone() };
    let wy: Vec<T> = y.iter().map(|&y| weight.map_or(T::one(), |w| w[y])).collect();
    let zw: Vec<T> =
        zp.iter().enumerate().map(|(k, &v)| if weight.is_some() { v * wy[k / c] } else { v }).collect();
    let zm: Vec<T> =
        zw.iter().enumerate().map(|(k, &v)| if k % c != y[k / c] { v } else { T::zero() }).collect();
    let losses: Vec<T> =
        zm.chunks_exact(c).map(|row| T::of(row.iter().map(|v| v.f64()).sum::<f64>() / c as f64)).collect();
    // gradient of Σ losses
    let inv_c = T::of(1.0 / c as f64);
    let dz: Vec<T> = (0..input.len())
        .map(|k| {
            if k % c == y[k / c] || !active[k] {
                return T::zero();
            }
            let dp = if p == 2 { T::of(2.0) * zc[k] } else { T::one() };
            dp * wy[k / c] * inv_c
        })
        .collect();
    let mut grad = dz.clone();
    for (n, row) in dz.chunks_exact(c).enumerate() {
        let s: f64 = row.iter().map(|v| v.f64()).sum();
        grad[n * c + y[n]] = T::of(-s);
    }
    (losses, grad)
}
