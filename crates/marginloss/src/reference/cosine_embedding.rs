use crate::float::Float;

/// `F.cosine_embedding_loss(x1, x2, y, margin, reduction="none")` composed as ATen does,
/// op by op in the element type (sums accumulated in `f64`):
/// `prod_sum = (x1*x2).sum(1)`, `m = (x*x).sum(1) + EPSILON` with `EPSILON = (float)1e-12`,
/// `cos = prod_sum / sqrt(m1*m2)`, `where(y == 1, 1 - cos, 0) + where(y == -1,
/// clamp_min(cos - margin, 0), 0)`; with the gradients of the sum of the output with
/// respect to `x1` and `x2`, back-propagated through the same ops (kink gradient 0).
pub fn cosine_embedding<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    dim: usize,
    margin: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let eps = T::of(f64::from(1e-12f32));
    let rowsum = |x: &[T], y: &[T]| -> Vec<T> {
        x.chunks_exact(dim)
            .zip(y.chunks_exact(dim))
            .map(|(a, b)| T::of(a.iter().zip(b).map(|(&p, &q)| (p * q).f64()).sum()))
            .collect()
    };
    let prod = rowsum(x1, x2);
    let m1: Vec<T> = rowsum(x1, x1).into_iter().map(|s| s + eps).collect();
    let m2: Vec<T> = rowsum(x2, x2).into_iter().map(|s| s + eps).collect();
    let denom: Vec<T> = m1.iter().zip(&m2).map(|(&a, &b)| (a * b).sqrt()).collect();
    let cos: Vec<T> = prod.iter().zip(&denom).map(|(&p, &d)| p / d).collect();
    let (one, zero, m) = (T::one(), T::zero(), T::of(margin));
    let mut out = Vec::new();
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    for i in 0..target.len() {
        let t = target[i];
        let pos = one - cos[i];
        let u = cos[i] - m;
        let neg = if u.is_nan() || u > zero { u } else { zero };
        let l = (if t == one { pos } else { zero }) + (if t == -one { neg } else { zero });
        out.push(l);
        // backward, op by op
        let g_pos = if t == one { one } else { zero };
        let g_neg = if t == -one { one } else { zero };
        let g_cos = -g_pos + g_neg * (if u > zero { one } else { zero });
        let g_prod = g_cos / denom[i];
        let g_denom = -(g_cos * prod[i]) / (denom[i] * denom[i]);
        let g_m1m2 = g_denom / (T::of(2.0) * denom[i]);
        let (g_m1, g_m2) = (g_m1m2 * m2[i], g_m1m2 * m1[i]);
        let (a, b) = (&x1[i * dim..(i + 1) * dim], &x2[i * dim..(i + 1) * dim]);
        for k in 0..dim {
            g1.push(g_prod * b[k] + T::of(2.0) * g_m1 * a[k]);
            g2.push(g_prod * a[k] + T::of(2.0) * g_m2 * b[k]);
        }
    }
    (out, g1, g2)
}
