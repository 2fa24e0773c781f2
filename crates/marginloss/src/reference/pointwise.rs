use crate::float::Float;

fn sub_scalar<T: Float>(m: T, v: &[T]) -> Vec<T> {
    v.iter().map(|&x| m - x).collect()
}
fn mul<T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().zip(b).map(|(&x, &y)| x * y).collect()
}
fn clamp_min0<T: Float>(v: &[T]) -> Vec<T> {
    v.iter().map(|&u| if u.is_nan() || u > T::zero() { u } else { T::zero() }).collect()
}
fn gt0<T: Float>(v: &[T]) -> Vec<T> {
    v.iter().map(|&u| if u > T::zero() { T::one() } else { T::zero() }).collect()
}

/// `clamp_min(margin − y·x, 0)` and its gradient (kink 0), y = target as given (±1).
pub fn hinge<T: Float>(input: &[T], target: &[T], margin: f64) -> (Vec<T>, Vec<T>) {
    let yx = mul(target, input);
    let u = sub_scalar(T::of(margin), &yx);
    let l = clamp_min0(&u);
    let mask = gt0(&u);
    let g = mask.iter().zip(target).map(|(&m, &y)| -(m * y)).collect();
    (l, g)
}

/// `clamp_min(margin − y·x, 0)²` and its gradient.
pub fn squared_hinge<T: Float>(input: &[T], target: &[T], margin: f64) -> (Vec<T>, Vec<T>) {
    let (h, _) = hinge(input, target, margin);
    let l = mul(&h, &h);
    let g = h.iter().zip(target).map(|(&r, &y)| -(T::of(2.0) * r) * y).collect();
    (l, g)
}

/// `where(t ≠ 1, clamp_min(margin − x, 0), 0) + where(t ≠ −1, x, 0)` and its gradient.
pub fn hinge_embedding<T: Float>(input: &[T], target: &[T], margin: f64) -> (Vec<T>, Vec<T>) {
    let u = sub_scalar(T::of(margin), input);
    let relu = clamp_min0(&u);
    let mask = gt0(&u);
    let one = T::one();
    let neg: Vec<T> = relu.iter().zip(target).map(|(&r, &t)| if t != one { r } else { T::zero() }).collect();
    let pos: Vec<T> =
        input.iter().zip(target).map(|(&x, &t)| if t != -one { x } else { T::zero() }).collect();
    let l = neg.iter().zip(&pos).map(|(&a, &b)| a + b).collect();
    let g = target
        .iter()
        .zip(&mask)
        .map(|(&t, &m)| {
            let dp = if t != -one { one } else { T::zero() };
            let dn = if t != one { m } else { T::zero() };
            dp - dn
        })
        .collect();
    (l, g)
}
