use crate::float::Float;

/// torch 2.15's eager `soft_margin_loss`, literally: `log1p(exp(−x·y))` and its
/// hand-written backward `−y·e/(1 + e)`, `e = exp(−x·y)`. **It overflows** (loss `inf`,
/// gradient NaN) once `−y·x` passes about 88.7 in `f32`, as torch does; the kernel
/// [`SoftMargin`](crate::SoftMargin) does not. Returns the per-element losses and the
/// gradient of their sum.
pub fn soft_margin<T: Float>(input: &[T], target: &[T]) -> (Vec<T>, Vec<T>) {
    let neg_x: Vec<T> = input.iter().map(|&x| -x).collect();
    let e: Vec<T> = neg_x.iter().zip(target).map(|(&v, &y)| (v * y).exp()).collect();
    let l = e.iter().map(|&v| v.ln_1p()).collect();
    let g = e.iter().zip(target).map(|(&v, &y)| -y * v / (T::one() + v)).collect();
    (l, g)
}
