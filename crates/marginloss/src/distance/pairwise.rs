//! p-norm distance between rows, with PyTorch's eps added to the difference.

use super::{
    all_finite, distance2_backward_by_parts, rows_error, rows_of, rows_pass, Distance, GradPair, Internal,
    RowOp, RowPair,
};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{add_lanes, sum_lanes, BLOCK, LANES};
use crate::options::Mode;
use crate::reduction::{check_buffer, check_upstream, Reduction};
use crate::rows::Rows;

const NAMES: (&str, &str) = ("input1", "input2");

/// The p-norm distance between the rows of two `(N, D)` [`Rows`] views, as
/// `torch.nn.functional.pairwise_distance(x1, x2, p, eps)` computes it:
///
/// ```text
/// d_n = ‖x1[n] − x2[n] + eps‖_p = (Σ_d |x1[n,d] − x2[n,d] + eps|^p)^(1/p)     p = 2, eps = 1e-6
/// ```
///
/// eps is added to the **difference**, so the distance is asymmetric and `d(x, x) =
/// eps·D^(1/p)`, not 0 (pytorch/pytorch#61538). `p = ∞` is the max norm.
///
/// * **Shapes:** `input1` and `input2` are `(N, D)` [`Rows`] of the same shape; `N`
///   outputs, one per row. A single pair of vectors is [`Rows::single`].
/// * **Gradient:** `∂d/∂x1 = sign(v)·|v|^(p−1) / d^(p−1)` with `v = x1 − x2 + eps`
///   (`v/d` for p = 2, `sign(v)` for p = 1, split evenly among the maximal entries for
///   p = ∞), and `∂d/∂x2 = −∂d/∂x1`; 0 where `d = 0`, as torch's norm subgradient.
/// * **Errors (strict):** NaN/±Inf, empty input, `p` not > 0 (torch-compat also takes
///   p = 0, which counts non-zeros, and negative p), a non-finite eps, mismatched shapes.
/// * **Options in the dtype (strict):** `eps` must be finite in the inputs' type too:
///   `1e39` with `f32` inputs is an [`Error::Option`](crate::Error::Option) ("… fits float32"),
///   where torch-compat computes with the `inf` it becomes.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `F.pairwise_distance(x1, x2, p=2.0, eps=1e-6)`, `nn.PairwiseDistance` |
/// | Keras | none |
/// | scikit-learn | `sklearn.metrics.pairwise.paired_distances` (no eps) |
/// | optax | none (its triplet loss puts eps inside the root instead) |
///
/// ```
/// use marginloss::{PairwiseDistance, Rows};
/// let (x1, x2) = ([0.0f64, 0.0, 1.0, 2.0], [3.0, 4.0, 1.0, 2.0]);
/// let d = PairwiseDistance::new().forward(Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?)?;
/// assert!((d[0] - 4.999_999_2).abs() < 1e-6);
/// assert!((d[1] - 1e-6 * 2f64.sqrt()).abs() < 1e-18); // identical rows: eps·√D
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct PairwiseDistance {
    /// The norm degree (default 2).
    pub p: f64,
    /// Added to every component of the difference (default 1e-6).
    pub eps: f64,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for PairwiseDistance {
    fn default() -> Self {
        PairwiseDistance { p: 2.0, eps: 1e-6, mode: Mode::Strict }
    }
}

#[derive(Clone, Copy)]
enum Norm {
    Zero,
    One,
    Two,
    Inf,
    General(f64),
}

impl Norm {
    fn of(p: f64) -> Norm {
        if p == 2.0 {
            Norm::Two
        } else if p == 1.0 {
            Norm::One
        } else if p == f64::INFINITY {
            Norm::Inf
        } else if p == 0.0 {
            Norm::Zero
        } else {
            Norm::General(p)
        }
    }
}

/// `d(a, b)` in `f64` and whether all elements were finite.
#[inline(always)]
fn dist_row<T: Float>(a: &[T], b: &[T], norm: Norm, eps: T) -> (f64, bool) {
    if let Norm::Two = norm {
        return dist2_row(a, b, eps);
    }
    let mut ok = true;
    let mut acc = [0.0f64; 4];
    let mut lane = 0;
    let mut max = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        ok &= x.is_finite() & y.is_finite();
        let v = ((x - y) + eps).f64();
        match norm {
            Norm::Two => acc[lane] += v * v,
            Norm::One => acc[lane] += v.abs(),
            Norm::Zero => acc[lane] += f64::from(u8::from(v != 0.0)),
            Norm::Inf => max = if v.abs() > max || v.is_nan() { v.abs() } else { max },
            Norm::General(p) => acc[lane] += v.abs().powf(p),
        }
        lane = (lane + 1) & 3;
    }
    let s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    let d = match norm {
        Norm::Two => s.sqrt(),
        Norm::One | Norm::Zero => s,
        Norm::Inf => max,
        Norm::General(p) => s.powf(1.0 / p),
    };
    (d, ok)
}

/// The Euclidean case of [`dist_row`], vectorised: squares summed in `T` over eight lanes
/// (as torch sums in the tensor's dtype), the lanes added in `f64`.
#[inline(always)]
fn dist2_row<T: Float>(a: &[T], b: &[T], eps: T) -> (f64, bool) {
    let mut acc = [T::zero(); LANES];
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Blocks of 64: the squares into a local array (a plain map), then added into the
    // lanes (element i into lane i % 8, in order, as a loop over chunks of 8 would). Only
    // arithmetic: a finite sum means finite elements, and a row whose sum is not finite is
    // scanned.
    let (ab, _) = a.as_chunks::<BLOCK>();
    let (bb, _) = b.as_chunks::<BLOCK>();
    for (x, y) in ab.iter().zip(bb) {
        let mut sq = [T::zero(); BLOCK];
        for i in 0..BLOCK {
            let v = (x[i] - y[i]) + eps;
            sq[i] = v * v;
        }
        add_lanes(&mut acc, &sq);
    }
    let done = ab.len() * BLOCK;
    for (i, (&x, &y)) in a[done..].iter().zip(&b[done..]).enumerate() {
        let v = (x - y) + eps;
        acc[i % LANES] = acc[i % LANES] + v * v;
    }
    let s = sum_lanes(&acc.map(Float::f64));
    let ok = s.is_finite() || (all_finite(a) & all_finite(b));
    (s.sqrt(), ok)
}

/// [`Distance::distance2_backward`] for p = 2: the two distances (two reading passes), then
/// one pass writing `gx = k1·v1 + k2·v2`, `gy = −k1·v1`, `gz = −k2·v2` with `v1 = x − y + eps`,
/// `v2 = x − z + eps`, `k = c/d` (0 where d = 0): the same values, rounded the same way, as
/// two calls of [`dist_row_backward`] adding into zeroed rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dist2_pair_backward<T: Float, F: FnOnce(T, T) -> (T, T)>(
    x: &[T],
    y: &[T],
    z: &[T],
    eps: T,
    coef: F,
    gx: &mut [T],
    gy: &mut [T],
    gz: &mut [T],
) -> (T, T, bool) {
    let (d1, ok1) = dist2_row(x, y, eps);
    let (d2, ok2) = dist2_row(x, z, eps);
    let fin = ok1 & ok2;
    let (t1, t2) = (T::of(d1), T::of(d2));
    let (c1, c2) = coef(t1, t2);
    if (c1 == T::zero()) & (c2 == T::zero()) & fin {
        gx.fill(T::zero());
        gy.fill(T::zero());
        gz.fill(T::zero());
        return (t1, t2, fin);
    }
    let k = |c: T, d: f64| T::of(if d == 0.0 { 0.0 } else { c.f64() / d });
    let (k1, k2) = (k(c1, d1), k(c2, d2));
    let n = x.len();
    let (x, y, z, gx, gy, gz) = (&x[..n], &y[..n], &z[..n], &mut gx[..n], &mut gy[..n], &mut gz[..n]);
    // One output per loop (the rows are in L1): a loop storing into three slices needs
    // more run-time overlap checks than the optimiser will emit, and stays scalar.
    // gx = u + w = (−gy) + (−gz) exactly.
    for i in 0..n {
        gy[i] = -(((x[i] - y[i]) + eps) * k1);
    }
    for i in 0..n {
        gz[i] = -(((x[i] - z[i]) + eps) * k2);
    }
    for i in 0..n {
        gx[i] = -gy[i] + -gz[i];
    }
    (t1, t2, fin)
}

/// Writes (or adds, with `ADD`) `g·∂d/∂a` into `ga` and `g·∂d/∂b = −g·∂d/∂a` into `gb`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dist_row_backward<T: Float, const ADD: bool>(
    a: &[T],
    b: &[T],
    norm: Norm,
    eps: T,
    d: f64,
    g: f64,
    ga: &mut [T],
    gb: &mut [T],
) {
    if let Norm::Two = norm {
        // ∂d/∂a = v/d (0 where d = 0): one coefficient a row, one multiply an element.
        let c = T::of(if d == 0.0 { 0.0 } else { g / d });
        if ADD {
            for i in 0..a.len() {
                let da = ((a[i] - b[i]) + eps) * c;
                ga[i] = ga[i] + da;
                gb[i] = gb[i] - da;
            }
        } else {
            // One output per loop, as in `dist2_pair_backward`.
            let n = a.len();
            let (a, b, ga, gb) = (&a[..n], &b[..n], &mut ga[..n], &mut gb[..n]);
            for i in 0..n {
                ga[i] = ((a[i] - b[i]) + eps) * c;
            }
            for i in 0..n {
                gb[i] = -ga[i];
            }
        }
        return;
    }
    let ties = match norm {
        Norm::Inf => {
            a.iter().zip(b).filter(|(&x, &y)| ((x - y) + eps).f64().abs() == d).count().max(1) as f64
        }
        _ => 1.0,
    };
    for i in 0..a.len() {
        let v = ((a[i] - b[i]) + eps).f64();
        let s = if d == 0.0 {
            0.0
        } else {
            match norm {
                Norm::Two => v / d,
                Norm::One => v.signum() * f64::from(u8::from(v != 0.0)),
                Norm::Zero => 0.0,
                Norm::Inf => {
                    if v.abs() == d {
                        v.signum() / ties
                    } else {
                        0.0
                    }
                }
                Norm::General(p) => {
                    if v == 0.0 {
                        0.0
                    } else {
                        v.signum() * (v.abs() / d).powf(p - 1.0)
                    }
                }
            }
        };
        let da = T::of(g * s);
        if ADD {
            ga[i] = ga[i] + da;
            gb[i] = gb[i] - da;
        } else {
            ga[i] = da;
            gb[i] = -da;
        }
    }
}

/// Whether `g·∂d/∂x` is finite in every element, from `d` and `g` alone: each element is
/// at most `|g|` (plus rounding) for p ≥ 1, p = 0 and p = ∞ (`|v_i| ≤ ‖v‖_p`), once the
/// p = 2 coefficient `g/d` is finite and `d` itself is; 0 < p < 1 is not bounded so (the
/// rows are scanned).
#[inline(always)]
fn bounded<T: Float>(norm: Norm, d: f64, g: f64) -> bool {
    // An infinite d (the difference overflowed) can go with a finite loss, and its
    // gradient `v·(g/d)` is then `inf·0`: no bound, the rows are scanned.
    let lim = crate::kernel::grad_limit::<T>();
    g.abs() < lim
        && d < f64::INFINITY
        && match norm {
            Norm::Two => d == 0.0 || (g / d).abs() < lim,
            Norm::One | Norm::Zero | Norm::Inf => true,
            Norm::General(p) => p >= 1.0,
        }
}

impl PairwiseDistance {
    /// The Euclidean distance with eps = 1e-6, strict.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the norm degree.
    pub fn p(mut self, p: f64) -> Self {
        self.p = p;
        self
    }
    /// Sets eps, added to the difference.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks `p` and `eps` (strict mode): eps is added in `T`, so it must fit `T`.
    pub(crate) fn check_options<T: Float>(&self, loss: &'static str) -> Result<()> {
        if !self.mode.is_strict() {
            return Ok(());
        }
        if self.p.is_nan() || self.p <= 0.0 {
            return Err(Error::Option { loss, option: "p", value: Value(self.p), expected: "> 0" });
        }
        crate::kernel::finite_option::<T>(loss, "eps", self.eps, self.mode)
    }

    /// The distance of each row pair of the `(N, D)` inputs.
    ///
    /// # Errors
    /// In strict mode NaN/±Inf, empty input and bad options; in both modes inputs whose
    /// shapes differ ([`Error::Shape`] naming `input2` and the shape expected).
    pub fn forward<T: Float>(&self, input1: Rows<'_, T>, input2: Rows<'_, T>) -> Result<Vec<T>> {
        // The options first, as `forward_into` and `forward_backward` check them.
        self.check_options::<T>("pairwise_distance")?;
        let (n, ..) = rows_of("pairwise_distance", NAMES, input1, input2, self.mode)?;
        let mut out = vec![T::zero(); n];
        self.forward_into(input1, input2, &mut out)?;
        Ok(out)
    }

    /// As [`forward`](Self::forward), writing the `N` distances into `out`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,

        out: &mut [T],
    ) -> Result<()> {
        const L: &str = "pairwise_distance";
        self.check_options::<T>(L)?;
        let (n, dim, input1, input2) = rows_of(L, NAMES, input1, input2, self.mode)?;
        check_buffer(L, "output", out.len(), n)?;
        let (norm, eps) = (Norm::of(self.p), T::of(self.eps));
        let ok = if self.mode.is_strict() {
            rows_pass::<T, _, true, false>(
                NormRow { norm, eps },
                input1,
                input2,
                dim,
                &[],
                out,
                &mut [],
                &mut [],
            )
        } else {
            rows_pass::<T, _, false, false>(
                NormRow { norm, eps },
                input1,
                input2,
                dim,
                &[],
                out,
                &mut [],
                &mut [],
            )
        };
        if ok || !self.mode.is_strict() {
            Ok(())
        } else {
            Err(rows_error(L, NAMES, (input1, input2), &[], out, (&[], &[])))
        }
    }

    /// Fused forward and backward in one pass: writes the `N` distances into `out` and
    /// `Σ_n upstream_n · ∂d_n/∂input{1,2}` into `grad1` and `grad2`. `upstream` has `N`
    /// values or one value applied to every row.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized buffers.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,

        upstream: &[T],
        out: &mut [T],
        grad1: &mut [T],
        grad2: &mut [T],
    ) -> Result<()> {
        const L: &str = "pairwise_distance";
        self.check_options::<T>(L)?;
        let (n, dim, input1, input2) = rows_of(L, NAMES, input1, input2, self.mode)?;
        check_buffer(L, "output", out.len(), n)?;
        check_buffer(L, "grad input1", grad1.len(), input1.len())?;
        check_buffer(L, "grad input2", grad2.len(), input2.len())?;
        check_upstream(L, Reduction::None, upstream.len(), n)?;
        let (norm, eps) = (Norm::of(self.p), T::of(self.eps));
        let ok = if self.mode.is_strict() {
            rows_pass::<T, _, true, true>(
                NormRow { norm, eps },
                input1,
                input2,
                dim,
                upstream,
                &mut *out,
                &mut *grad1,
                &mut *grad2,
            )
        } else {
            rows_pass::<T, _, false, true>(
                NormRow { norm, eps },
                input1,
                input2,
                dim,
                upstream,
                out,
                grad1,
                grad2,
            )
        };
        if ok || !self.mode.is_strict() {
            Ok(())
        } else {
            Err(rows_error(L, NAMES, (input1, input2), upstream, out, (grad1, grad2)))
        }
    }
}

/// One row pair's p-norm distance for [`rows_pass`].
#[derive(Clone, Copy)]
struct NormRow<T> {
    norm: Norm,
    eps: T,
}

impl<T: Float> RowOp<T> for NormRow<T> {
    #[inline(always)]
    fn value(&self, a: &[T], b: &[T]) -> (T, bool) {
        let (d, fin) = dist_row(a, b, self.norm, self.eps);
        (T::of(d), fin)
    }

    #[inline(always)]
    fn value_grad(&self, a: &[T], b: &[T], g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool, bool) {
        let (d, fin) = dist_row(a, b, self.norm, self.eps);
        dist_row_backward::<T, false>(a, b, self.norm, self.eps, d, g.f64(), ga, gb);
        (T::of(d), fin, bounded::<T>(self.norm, d, g.f64()))
    }
}

impl<T: Float> Distance<T> for PairwiseDistance {
    fn name(&self) -> &'static str {
        "pairwise_distance"
    }

    #[inline(always)]
    fn distance(&self, rows: RowPair<'_, T>) -> T {
        T::of(dist_row(rows.x1(), rows.x2(), Norm::of(self.p), T::of(self.eps)).0)
    }

    #[inline(always)]
    fn distance_finite(&self, rows: RowPair<'_, T>) -> (T, bool) {
        let (d, ok) = dist_row(rows.x1(), rows.x2(), Norm::of(self.p), T::of(self.eps));
        (T::of(d), ok)
    }

    #[inline(always)]
    fn backward(&self, rows: RowPair<'_, T>, g: T, grads: GradPair<'_, T>) {
        let (norm, eps) = (Norm::of(self.p), T::of(self.eps));
        let (x1, x2) = (rows.x1(), rows.x2());
        let d = dist_row(x1, x2, norm, eps).0;
        let (grad1, grad2) = grads.split();
        dist_row_backward::<T, true>(x1, x2, norm, eps, d, g.f64(), grad1, grad2);
    }

    #[inline(always)]
    fn distance_backward<F: FnOnce(T) -> T>(
        &self,
        rows: RowPair<'_, T>,
        coef: F,
        grads: GradPair<'_, T>,
    ) -> T {
        self.distance_backward_finite(rows, coef, grads).0
    }

    #[inline(always)]
    fn distance_backward_finite<F: FnOnce(T) -> T>(
        &self,
        rows: RowPair<'_, T>,
        coef: F,
        grads: GradPair<'_, T>,
    ) -> (T, bool) {
        let (norm, eps) = (Norm::of(self.p), T::of(self.eps));
        let (x1, x2) = (rows.x1(), rows.x2());
        let (d, fin) = dist_row(x1, x2, norm, eps);
        let dt = T::of(d);
        let (grad1, grad2) = grads.split();
        dist_row_backward::<T, false>(x1, x2, norm, eps, d, coef(dt).f64(), grad1, grad2);
        (dt, fin)
    }

    #[inline(always)]
    fn distance2_backward<F: FnOnce(T, T) -> (T, T)>(
        &self,
        x: &[T],
        y: &[T],
        z: &[T],
        coef: F,
        gx: &mut [T],
        gy: &mut [T],
        gz: &mut [T],
        token: Internal,
    ) -> (T, T, bool) {
        if let Norm::Two = Norm::of(self.p) {
            dist2_pair_backward(x, y, z, T::of(self.eps), coef, gx, gy, gz)
        } else {
            distance2_backward_by_parts(self, x, y, z, coef, gx, gy, gz, token)
        }
    }

    #[inline(always)]
    fn grad_bounded(&self, d: T, coef: T) -> bool {
        bounded::<T>(Norm::of(self.p), d.f64(), coef.f64())
    }

    /// Strict mode: `p > 0` and a finite eps (this distance's own `mode` is ignored: the
    /// loss's mode governs).
    fn check(&self, loss: &'static str, mode: Mode) -> Result<()> {
        PairwiseDistance { mode, ..*self }.check_options::<T>(loss)
    }
}

/// [`PairwiseDistance`] with p = 2, eps = 1e-6 on `(N, D)` rows.
///
/// ```
/// use marginloss::{pairwise_distance, Rows};
/// // one pair: ‖x1 − x2 + eps‖₂ with eps = 1e-6: ‖(−3, −4) + 1e-6‖ = 5 − 1.4e-6
/// let d = pairwise_distance(Rows::single(&[0.0f64, 0.0]), Rows::single(&[3.0, 4.0]))?;
/// assert!((d[0] - (5.0 - 1.4e-6)).abs() < 1e-11);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`PairwiseDistance::forward`].
pub fn pairwise_distance<T: Float>(input1: Rows<'_, T>, input2: Rows<'_, T>) -> Result<Vec<T>> {
    PairwiseDistance::new().forward(input1, input2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    /* torch 2.15: F.pairwise_distance of identical rows is eps·D^(1/p):
    p=2, D=3: 1.7320508e-06; p=1: 3e-6; p=inf: 1e-6 (loss-spec §8.1) */
    #[test]
    fn identical_rows_are_eps_apart() {
        let x = [0.5f64, -1.0, 2.0];
        for (p, want) in [(2.0, 1e-6 * 3f64.sqrt()), (1.0, 3e-6), (f64::INFINITY, 1e-6)] {
            let d = PairwiseDistance::new().p(p).forward(mat(&x, 3), mat(&x, 3)).unwrap()[0];
            assert!((d - want).abs() < 1e-18, "p={p}: {d}");
        }
    }

    /* torch 2.15: gradient at x1 == x2 is 1/sqrt(D) per element for p=2, 1 for p=1 */
    #[test]
    fn gradient_at_identical_rows_is_not_zero() {
        let x = [0.5f64, -1.0, 2.0];
        let (mut o, mut g1, mut g2) = ([0.0], [0.0; 3], [0.0; 3]);
        PairwiseDistance::new()
            .forward_backward(mat(&x, 3), mat(&x, 3), &[1.0], &mut o, &mut g1, &mut g2)
            .unwrap();
        for g in g1 {
            assert!((g - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        }
        assert_eq!(g2.map(|g| -g), g1);
    }

    #[test]
    fn strict_rejects_non_positive_p() {
        let e = PairwiseDistance::new().p(0.0).forward(mat(&[1.0f32], 1), mat(&[2.0], 1)).unwrap_err();
        assert_eq!(e.to_string(), "pairwise_distance: option p must be > 0, got 0");
    }
}
