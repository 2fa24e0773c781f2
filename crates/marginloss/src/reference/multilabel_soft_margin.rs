use crate::float::Float;

/// torch's `F.log_sigmoid`: `min(v, 0) − log1p(exp(−|v|))`.
fn log_sigmoid<T: Float>(v: T) -> T {
    v.min(T::zero()) - (-v.abs()).exp().ln_1p()
}

fn sigmoid<T: Float>(v: T) -> T {
    if v >= T::zero() {
        T::one() / (T::one() + (-v).exp())
    } else {
        let e = v.exp();
        e / (T::one() + e)
    }
}

/// `F.multilabel_soft_margin_loss` as torch composes it in Python:
/// `−(t·logσ(x) + (1 − t)·logσ(−x))`, times `weight` (if any), summed over each row of
/// `classes` elements and divided by C. Returns the per-sample losses and the gradient
/// of their sum, `(σ(x) − t)·w/C`.
pub fn multilabel_soft_margin<T: Float>(
    input: &[T],
    target: &[T],
    classes: usize,
    weight: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let w = |j: usize| weight.map_or(T::one(), |w| w[j % classes]);
    let elem: Vec<T> = input
        .iter()
        .zip(target)
        .enumerate()
        .map(|(i, (&x, &t))| -(t * log_sigmoid(x) + (T::one() - t) * log_sigmoid(-x)) * w(i))
        .collect();
    let c = T::of(classes as f64);
    let l = elem.chunks_exact(classes).map(|r| T::of(r.iter().map(|v| v.f64()).sum()) / c).collect();
    let g = input.iter().zip(target).enumerate().map(|(i, (&x, &t))| (sigmoid(x) - t) * w(i) / c).collect();
    (l, g)
}
