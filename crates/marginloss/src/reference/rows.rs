use crate::float::Float;

fn norm2<T: Float>(row: &[T]) -> f64 {
    row.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt()
}

/// `F.cosine_similarity(x1, x2, dim=1, eps)` composed as torch 2.15 does
/// (`(x1 / max(‖x1‖, eps)) · (x2 / max(‖x2‖, eps))` summed), with the gradients of the
/// sum of the output with respect to `x1` and `x2` (norm clamp straight-through).
pub fn cosine_similarity<T: Float>(x1: &[T], x2: &[T], dim: usize, eps: f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut out = Vec::new();
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    for (a, b) in x1.chunks_exact(dim).zip(x2.chunks_exact(dim)) {
        let (n1, n2) = (norm2(a), norm2(b));
        let (c1, c2) = (n1.max(eps), n2.max(eps));
        let an: Vec<f64> = a.iter().map(|v| v.f64() / c1).collect();
        let bn: Vec<f64> = b.iter().map(|v| v.f64() / c2).collect();
        let cos: f64 = an.iter().zip(&bn).map(|(p, q)| p * q).sum();
        out.push(T::of(cos));
        // d/da_k Σ a_i b_i / (c1 c2) with c1 following ‖a‖'s derivative
        for k in 0..dim {
            let da_norm = if n1 > 0.0 { a[k].f64() / n1 } else { 0.0 };
            let db_norm = if n2 > 0.0 { b[k].f64() / n2 } else { 0.0 };
            g1.push(T::of(bn[k] / c1 - cos / c1 * da_norm));
            g2.push(T::of(an[k] / c2 - cos / c2 * db_norm));
        }
    }
    (out, g1, g2)
}

/// `F.pairwise_distance(x1, x2, p, eps)` for finite `p > 0`, with the gradients of the
/// sum of the output.
pub fn pairwise_distance<T: Float>(
    x1: &[T],
    x2: &[T],
    dim: usize,
    p: f64,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut out = Vec::new();
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    for (a, b) in x1.chunks_exact(dim).zip(x2.chunks_exact(dim)) {
        let v: Vec<f64> = a.iter().zip(b).map(|(&x, &y)| ((x - y) + T::of(eps)).f64()).collect();
        let d = v.iter().map(|u| u.abs().powf(p)).sum::<f64>().powf(1.0 / p);
        out.push(T::of(d));
        for &u in &v {
            let s =
                if d == 0.0 || u == 0.0 { 0.0 } else { u.signum() * u.abs().powf(p - 1.0) / d.powf(p - 1.0) };
            g1.push(T::of(s));
            g2.push(T::of(-s));
        }
    }
    (out, g1, g2)
}
