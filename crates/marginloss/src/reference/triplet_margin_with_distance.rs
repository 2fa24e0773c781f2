use crate::float::Float;

/// A distance's reference: `(d per row, ∂Σd/∂x1, ∂Σd/∂x2)` for `(N, dim)` inputs.
pub type RowDistance<'a, T> = &'a dyn Fn(&[T], &[T], usize) -> (Vec<T>, Vec<T>, Vec<T>);

/// `F.triplet_margin_with_distance_loss(a, p, n, distance_function, margin, swap,
/// reduction="none")` composed as torch does: three distance calls, `torch.minimum` for
/// swap (a tie splits the gradient 0.5 / 0.5), `clamp_min(margin + dp - dn, 0)` (kink
/// gradient 0); with the gradients of the sum of the output with respect to the anchor,
/// positive and negative.
#[allow(clippy::type_complexity)]
pub fn triplet_margin_with_distance<T: Float>(
    anchor: &[T],
    positive: &[T],
    negative: &[T],
    dim: usize,
    margin: f64,
    swap: bool,
    distance: RowDistance<'_, T>,
) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let (dp, gdp_a, gdp_p) = distance(anchor, positive, dim);
    let (dn, gdn_a, gdn_n) = distance(anchor, negative, dim);
    let (zero, one, half) = (T::zero(), T::one(), T::of(0.5));
    let rows = dp.len();
    let (ds, gds_p, gds_n) = if swap {
        distance(positive, negative, dim)
    } else {
        (vec![zero; rows], vec![zero; anchor.len()], vec![zero; anchor.len()])
    };
    let mut out = Vec::new();
    let (mut wn, mut ws, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows {
        let (dneg, a, b) = if !swap || dn[i] < ds[i] {
            (dn[i], one, zero)
        } else if ds[i] < dn[i] {
            (ds[i], zero, one)
        } else if dn[i] == ds[i] {
            (dn[i], half, half)
        } else {
            (dn[i] + ds[i], one, one)
        };
        let u = (T::of(margin) + dp[i]) - dneg;
        out.push(if u.is_nan() || u > zero { u } else { zero });
        mask.push(if u > zero { one } else { zero });
        wn.push(a);
        ws.push(b);
    }
    let (mut ga, mut gp, mut gn) = (Vec::new(), Vec::new(), Vec::new());
    for j in 0..anchor.len() {
        let i = j / dim;
        let (m, cn, cs) = (mask[i], mask[i] * wn[i], mask[i] * ws[i]);
        ga.push(m * gdp_a[j] - cn * gdn_a[j]);
        gp.push(m * gdp_p[j] - cs * gds_p[j]);
        gn.push(-(cn * gdn_n[j]) - cs * gds_n[j]);
    }
    (out, ga, gp, gn)
}
