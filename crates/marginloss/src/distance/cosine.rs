//! Cosine similarity with PyTorch 2.15's per-norm eps clamp.

use super::{dot3, rows_error, rows_of, rows_pass, Distance, GradPair, RowOp, RowPair};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::options::Mode;
use crate::reduction::{check_buffer, check_upstream, Reduction};
use crate::rows::Rows;

const NAMES: (&str, &str) = ("input1", "input2");

/// Cosine similarity of the rows of two `(N, D)` [`Rows`] views, as
/// `torch.nn.functional.cosine_similarity(x1, x2, dim=1, eps)` computes it in 2.15:
///
/// ```text
/// cos_n = Σ_d x1[n,d]·x2[n,d] / (max(‖x1[n]‖, eps) · max(‖x2[n]‖, eps))     eps = 1e-8
/// ```
///
/// Each norm is clamped **separately** (older torch clamped the product). A zero row gives
/// 0; a row with norm below eps is divided by eps, not by its norm.
///
/// * **Shapes:** `input1` and `input2` are `(N, D)` [`Rows`] of the same shape; the output
///   has `N` values, one per row (there is no reduction). A single pair of vectors is
///   [`Rows::single`].
/// * **Gradient:** torch clamps the norm in place under `no_grad`, so autograd
///   differentiates the *unclamped* norm while using the clamped value; we reproduce that:
///   `∂cos/∂x1 = x2/(c1·c2) − (cos/c1)·x1/‖x1‖` with `c = max(‖x‖, eps)` (the second
///   term is 0 for a zero row), and symmetrically for `x2`.
/// * **Errors (strict):** NaN/±Inf, empty input, a non-finite or negative `eps`,
///   mismatched shapes.
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
/// | PyTorch | `F.cosine_similarity(x1, x2, dim=1, eps=1e-8)`, `nn.CosineSimilarity` |
/// | Keras | `keras.losses.cosine_similarity` is its negation with an rsqrt floor at 1e-7 |
/// | scikit-learn | `sklearn.metrics.pairwise.cosine_similarity` (full matrix, no eps) |
/// | optax | `optax.losses.cosine_similarity` (eps floors the squared norm, default 0) |
///
/// ```
/// use marginloss::{CosineSimilarity, Rows};
/// let x1 = [1.0f64, 0.0, 3e-9, 4e-9];
/// let x2 = [1.0f64, 1.0, 3.0, 4.0];
/// let cos = CosineSimilarity::new().forward(Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?)?;
/// assert!((cos[0] - 0.5f64.sqrt()).abs() < 1e-15);
/// assert!((cos[1] - 0.5).abs() < 1e-15); // ‖x1[1]‖ = 5e-9 is clamped to 1e-8
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CosineSimilarity {
    /// The lower bound of each norm (default 1e-8).
    pub eps: f64,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for CosineSimilarity {
    fn default() -> Self {
        CosineSimilarity { eps: 1e-8, mode: Mode::Strict }
    }
}

/// One row's cosine and the quantities its gradient needs.
#[derive(Clone, Copy)]
pub(crate) struct CosRow {
    pub cos: f64,
    n1: f64,
    n2: f64,
    c1: f64,
    c2: f64,
    pub ok: bool,
}

impl CosRow {
    /// Whether `g·∂cos/∂x` is finite in every element, from the row's scalars: element `i`
    /// of the first row's gradient is `b_i·k12 − a_i·ka`, at most `‖b‖·|k12| + ‖a‖·|ka|`.
    #[inline(always)]
    pub(crate) fn grad_bounded<T: Float>(&self, g: f64) -> bool {
        let k12 = g / (self.c1 * self.c2);
        let ka = if self.n1 > 0.0 { g * self.cos / (self.c1 * self.n1) } else { 0.0 };
        let kb = if self.n2 > 0.0 { g * self.cos / (self.c2 * self.n2) } else { 0.0 };
        let b1 = self.n2 * k12.abs() + self.n1 * ka.abs();
        let b2 = self.n1 * k12.abs() + self.n2 * kb.abs();
        // The coefficients themselves must fit `T` too: `0·inf` is NaN (a zero row against
        // a tiny eps makes `k12` huge while `‖b‖·k12` is 0).
        let lim = crate::kernel::grad_limit::<T>();
        b1 < lim && b2 < lim && k12.abs() < lim && ka.abs() < lim && kb.abs() < lim
    }
}

#[inline(always)]
pub(crate) fn cos_row<T: Float>(a: &[T], b: &[T], eps: f64) -> CosRow {
    let (ab, aa, bb, ok) = dot3(a, b);
    let (n1, n2) = (aa.sqrt(), bb.sqrt());
    let (c1, c2) = (n1.max(eps), n2.max(eps));
    CosRow { cos: ab / (c1 * c2), n1, n2, c1, c2, ok }
}

/// Writes (or adds, with `ADD`) `g·∂cos/∂a` into `ga` and `g·∂cos/∂b` into `gb`.
#[inline(always)]
pub(crate) fn cos_row_backward<T: Float, const ADD: bool>(
    a: &[T],
    b: &[T],
    r: &CosRow,
    g: f64,
    ga: &mut [T],
    gb: &mut [T],
) {
    // ∂cos/∂x1 = x2/(c1·c2) − (cos/c1)·x1/‖x1‖ (straight through the clamp; the second
    // term is 0 for a zero row), and symmetrically for x2: two coefficients a row, so the
    // element loop is two multiply-adds with no division.
    let k12 = g / (r.c1 * r.c2);
    if a.len() == 1 && (r.n1 > 0.0 && r.n1.is_finite()) && (r.n2 > 0.0 && r.n2.is_finite()) {
        // One element: a² = ‖a‖², so ∂cos/∂a = b/(c1·c2) − a·(ab/(c1·c2))·a/(c1·‖a‖)
        // = b/(c1·c2) · (1 − ‖a‖/c1), which is exactly 0 when the norm is not clamped
        // (c1 = ‖a‖), as torch's is; the general form below leaves a rounding residue.
        let fa = T::of(k12 * (1.0 - r.n1 / r.c1));
        let fb = T::of(k12 * (1.0 - r.n2 / r.c2));
        // `+ 0` turns the −0 of a negative element times 0 into +0.
        let (da, db) = (b[0] * fa + T::zero(), a[0] * fb + T::zero());
        if ADD {
            ga[0] = ga[0] + da;
            gb[0] = gb[0] + db;
        } else {
            ga[0] = da;
            gb[0] = db;
        }
        return;
    }
    let ka = if r.n1 > 0.0 { g * r.cos / (r.c1 * r.n1) } else { 0.0 };
    let kb = if r.n2 > 0.0 { g * r.cos / (r.c2 * r.n2) } else { 0.0 };
    let (k12, ka, kb) = (T::of(k12), T::of(ka), T::of(kb));
    if ADD {
        for i in 0..a.len() {
            let (p, q) = (a[i], b[i]);
            ga[i] = ga[i] + (q * k12 - ka * p);
            gb[i] = gb[i] + (p * k12 - kb * q);
        }
    } else {
        // One output per loop (the rows are in L1): fewer run-time overlap checks for the
        // optimiser to emit, so both loops vectorise.
        let n = a.len();
        let (a, b, ga, gb) = (&a[..n], &b[..n], &mut ga[..n], &mut gb[..n]);
        for i in 0..n {
            ga[i] = b[i] * k12 - ka * a[i];
        }
        for i in 0..n {
            gb[i] = a[i] * k12 - kb * b[i];
        }
    }
}

impl CosineSimilarity {
    /// Cosine similarity with eps = 1e-8, strict.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets eps, the lower bound of each norm.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    fn check_options<T: Float>(&self) -> Result<()> {
        check_eps::<T>("cosine_similarity", self.eps, self.mode)
    }

    /// The similarity of each row pair of the `(N, D)` inputs.
    ///
    /// # Errors
    /// In strict mode NaN/±Inf, empty input and a bad `eps`; in both modes inputs whose
    /// shapes differ ([`Error::Shape`] naming `input2` and the shape expected).
    pub fn forward<T: Float>(&self, input1: Rows<'_, T>, input2: Rows<'_, T>) -> Result<Vec<T>> {
        // The options first, as `forward_into` and `forward_backward` check them.
        self.check_options::<T>()?;
        let (n, ..) = rows_of("cosine_similarity", NAMES, input1, input2, self.mode)?;
        let mut out = vec![T::zero(); n];
        self.forward_into(input1, input2, &mut out)?;
        Ok(out)
    }

    /// As [`forward`](Self::forward), writing the `N` similarities into `out`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        input1: Rows<'_, T>,
        input2: Rows<'_, T>,

        out: &mut [T],
    ) -> Result<()> {
        self.check_options::<T>()?;
        let (n, dim, input1, input2) = rows_of("cosine_similarity", NAMES, input1, input2, self.mode)?;
        check_buffer("cosine_similarity", "output", out.len(), n)?;
        let ok = if self.mode.is_strict() {
            rows_pass::<T, _, true, false>(
                CosRowOp(self.eps),
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
                CosRowOp(self.eps),
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
            Err(rows_error("cosine_similarity", NAMES, (input1, input2), &[], out, (&[], &[])))
        }
    }

    /// Fused forward and backward in one pass: writes the `N` similarities into `out` and
    /// `Σ_n upstream_n · ∂cos_n/∂input{1,2}` into `grad1` and `grad2` (each `N·D`,
    /// row-major like the inputs). `upstream` has `N` values, or one value applied to every
    /// row (`&[1.0]` gives the gradient of the sum).
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
        const L: &str = "cosine_similarity";
        self.check_options::<T>()?;
        let (n, dim, input1, input2) = rows_of(L, NAMES, input1, input2, self.mode)?;
        check_buffer(L, "output", out.len(), n)?;
        check_buffer(L, "grad input1", grad1.len(), input1.len())?;
        check_buffer(L, "grad input2", grad2.len(), input2.len())?;
        check_upstream(L, Reduction::None, upstream.len(), n)?;
        let ok = if self.mode.is_strict() {
            rows_pass::<T, _, true, true>(
                CosRowOp(self.eps),
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
                CosRowOp(self.eps),
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

/// One row pair's cosine (per-norm clamp `.0`) for [`rows_pass`].
#[derive(Clone, Copy)]
struct CosRowOp(f64);

impl<T: Float> RowOp<T> for CosRowOp {
    #[inline(always)]
    fn value(&self, a: &[T], b: &[T]) -> (T, bool) {
        let r = cos_row(a, b, self.0);
        (T::of(r.cos), r.ok)
    }

    #[inline(always)]
    fn value_grad(&self, a: &[T], b: &[T], g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool, bool) {
        let r = cos_row(a, b, self.0);
        cos_row_backward::<T, false>(a, b, &r, g.f64(), ga, gb);
        (T::of(r.cos), r.ok, r.grad_bounded::<T>(g.f64()))
    }
}

/// Strict mode: `eps` finite, `>= 0`, and finite in `T` (torch clamps the norms with eps
/// in the tensor's dtype).
fn check_eps<T: Float>(loss: &'static str, eps: f64, mode: Mode) -> Result<()> {
    if !mode.is_strict() {
        return Ok(());
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::Option { loss, option: "eps", value: Value(eps), expected: "finite and >= 0" });
    }
    crate::kernel::fits::<T>(loss, "eps", eps)
}

/// [`CosineSimilarity`] with eps = 1e-8 on `(N, D)` rows.
///
/// ```
/// use marginloss::{cosine_similarity, Rows};
/// // 2 rows of 2: cos([1, 0], [1, 1]) = 1/√2, cos([0, 2], [0, -3]) = −1
/// let (x1, x2) = ([1.0f64, 0.0, 0.0, 2.0], [1.0, 1.0, 0.0, -3.0]);
/// let c = cosine_similarity(Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?)?;
/// assert!((c[0] - 0.5f64.sqrt()).abs() < 1e-15 && c[1] == -1.0);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`CosineSimilarity::forward`].
pub fn cosine_similarity<T: Float>(input1: Rows<'_, T>, input2: Rows<'_, T>) -> Result<Vec<T>> {
    CosineSimilarity::new().forward(input1, input2)
}

/// The cosine distance `1 − cos(x1, x2)` with torch's per-norm eps (default 1e-8): the
/// distance `TripletMarginWithDistanceLoss` users most often pass as
/// `lambda x, y: 1 - F.cosine_similarity(x, y)`, and the article's distance for
/// `HingeEmbeddingLoss` (`HingeEmbedding::new().on(CosineDistance::new())`).
///
/// ```text
/// d(x1, x2) = 1 − Σ x1·x2 / (max(‖x1‖, eps) · max(‖x2‖, eps))
/// ```
///
/// ```
/// use marginloss::{CosineDistance, Distance, RowPair};
/// let d = CosineDistance::new();
/// // cos([1, 0], [1, 1]) = 1/√2, so d = 1 − 1/√2 ≈ 0.2929.
/// let v: f64 = d.distance(RowPair::new(&[1.0, 0.0], &[1.0, 1.0])?);
/// assert!((v - (1.0 - 0.5f64.sqrt())).abs() < 1e-15);
/// // A zero row has cosine 0 (the norm is clamped to eps), so distance 1.
/// let zero = RowPair::new(&[0.0f32, 0.0], &[1.0, 2.0])?;
/// assert_eq!(CosineDistance::new().eps(1e-6).distance(zero), 1.0);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CosineDistance {
    /// The lower bound of each norm (default 1e-8).
    pub eps: f64,
}

impl Default for CosineDistance {
    fn default() -> Self {
        CosineDistance { eps: 1e-8 }
    }
}

impl CosineDistance {
    /// The cosine distance with eps = 1e-8, as torch's `F.cosine_similarity` default.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets eps, the lower bound of each norm (strict mode rejects a negative or
    /// non-finite eps when a loss uses the distance).
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl<T: Float> Distance<T> for CosineDistance {
    fn name(&self) -> &'static str {
        "cosine_distance"
    }

    #[inline(always)]
    fn distance(&self, rows: RowPair<'_, T>) -> T {
        T::one() - T::of(cos_row(rows.x1(), rows.x2(), self.eps).cos)
    }

    #[inline(always)]
    fn distance_finite(&self, rows: RowPair<'_, T>) -> (T, bool) {
        let r = cos_row(rows.x1(), rows.x2(), self.eps);
        (T::one() - T::of(r.cos), r.ok)
    }

    #[inline(always)]
    fn backward(&self, rows: RowPair<'_, T>, g: T, grads: GradPair<'_, T>) {
        let (x1, x2) = (rows.x1(), rows.x2());
        let r = cos_row(x1, x2, self.eps);
        let (grad1, grad2) = grads.split();
        cos_row_backward::<T, true>(x1, x2, &r, -g.f64(), grad1, grad2);
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
        let (x1, x2) = (rows.x1(), rows.x2());
        let r = cos_row(x1, x2, self.eps);
        let d = T::one() - T::of(r.cos);
        let (grad1, grad2) = grads.split();
        cos_row_backward::<T, false>(x1, x2, &r, -coef(d).f64(), grad1, grad2);
        (d, r.ok)
    }

    /// Strict mode: a finite eps >= 0 that fits `T`.
    fn check(&self, loss: &'static str, mode: Mode) -> Result<()> {
        check_eps::<T>(loss, self.eps, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    /* torch 2.15 (loss-spec §8.2):
    x1 = torch.tensor([[1e-10,0,0]], dtype=torch.float64, requires_grad=True)
    x2 = torch.tensor([[1.,2,2]], dtype=torch.float64)
    F.cosine_similarity(x1, x2).sum().backward()   # x1.grad = [3.30e7, 6.67e7, 6.67e7]
    */
    #[test]
    fn gradient_goes_straight_through_the_norm_clamp() {
        let x1 = [1e-10f64, 0.0, 0.0];
        let x2 = [1.0f64, 2.0, 2.0];
        let (mut out, mut g1, mut g2) = ([0.0], [0.0; 3], [0.0; 3]);
        CosineSimilarity::new()
            .forward_backward(mat(&x1, 3), mat(&x2, 3), &[1.0], &mut out, &mut g1, &mut g2)
            .unwrap();
        assert!((out[0] - 1.0 / 300.0).abs() < 1e-15);
        let want = [1.0 / 3e-8 - (1.0 / 300.0) / 1e-8, 2.0 / 3e-8, 2.0 / 3e-8];
        for (g, w) in g1.iter().zip(want) {
            assert!((g - w).abs() <= 1e-9 * w.abs(), "{g} vs {w}");
        }
    }

    #[test]
    fn rows_of_one_element_have_exactly_zero_gradient_unless_clamped() {
        // torch 2.15: F.cosine_similarity(a, b) on (N, 1) rows is ±1 with gradient exactly 0
        // (x/‖x‖ = ±1 exactly); the general form would leave a 1-ulp residue (5.96e-8 in f32).
        let a = [1.1f32, -0.3, 7.0e-3, 123.456, -2.5e-5, 3.0];
        let b = [0.7f32, 0.9, -4.4, 1.0e-3, -17.0, 3.0];
        let n = a.len();
        let (mut out, mut g1, mut g2) = (vec![0.0f32; n], vec![1.0f32; n], vec![1.0f32; n]);
        CosineSimilarity::new()
            .forward_backward(mat(&a, 1), mat(&b, 1), &[1.0], &mut out, &mut g1, &mut g2)
            .unwrap();
        for i in 0..n {
            assert_eq!(out[i].abs(), 1.0, "row {i}");
            assert_eq!((g1[i].to_bits(), g2[i].to_bits()), (0, 0), "row {i}: {} {}", g1[i], g2[i]);
        }
        let a64: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
        let b64: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        let (mut o, mut h1, mut h2) = (vec![0.0; n], vec![1.0; n], vec![1.0; n]);
        CosineSimilarity::new()
            .forward_backward(mat(&a64, 1), mat(&b64, 1), &[2.0], &mut o, &mut h1, &mut h2)
            .unwrap();
        assert!(h1.iter().chain(&h2).all(|&g| g.to_bits() == 0), "{h1:?} {h2:?}");
        // The cosine distance (through the loss that uses it) gets the same exact zero.
        let d = CosineDistance::new();
        let (mut d1, mut d2) = ([5.0f32], [5.0f32]);
        let rows = RowPair::of(&[1.1f32], &[-0.7]);
        let v = d.distance_backward(rows, |_| 1.0, GradPair::of(1, &mut d1, &mut d2));
        assert_eq!((v, d1[0].to_bits(), d2[0].to_bits()), (2.0, 0, 0));
        let (mut e1, mut e2) = ([0.0f32], [0.0f32]);
        Distance::<f32>::backward(&d, rows, 1.0, GradPair::of(1, &mut e1, &mut e2));
        assert_eq!((e1[0].to_bits(), e2[0].to_bits()), (0, 0));
    }

    #[test]
    fn a_clamped_row_of_one_element_keeps_its_gradient() {
        // ‖a‖ = 5e-9 < eps = 1e-8: ∂cos/∂a = b/(eps·|b|)·(1 − ‖a‖/eps) = sign(b)·0.5e8.
        let (a, b) = ([5e-9f64, 0.0, 2.0], [-3.0f64, 4.0, 0.0]);
        let (mut out, mut g1, mut g2) = ([0.0; 3], [0.0; 3], [0.0; 3]);
        CosineSimilarity::new()
            .forward_backward(mat(&a, 1), mat(&b, 1), &[1.0], &mut out, &mut g1, &mut g2)
            .unwrap();
        let (want, w1, w2) = crate::reference::cosine_similarity(&a, &b, 1, 1e-8);
        assert_eq!(out.to_vec(), want);
        for (g, w) in g1.iter().chain(&g2).zip(w1.iter().chain(&w2)) {
            assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
        }
        assert!((g1[0] + 0.5e8).abs() < 1e-6, "{}", g1[0]);
        // a zero row: cos 0, ∂cos/∂a = b/(eps·|b|), ∂cos/∂b = 0 (a = 0); x2 = 0 likewise.
        assert_eq!((g1[1], g2[1]), (1e8, 0.0));
        assert_eq!((g1[2], g2[2]), (0.0, 1e8));
    }

    #[test]
    fn zero_row_gives_zero_similarity() {
        let c = cosine_similarity(mat(&[0.0f32, 0.0], 2), mat(&[1.0, 2.0], 2)).unwrap();
        assert_eq!(c, vec![0.0]);
    }

    #[test]
    fn non_finite_input_is_located() {
        let e = cosine_similarity(mat(&[1.0f32, 2.0, 3.0, 4.0], 2), mat(&[1.0, 2.0, f32::INFINITY, 0.0], 2))
            .unwrap_err();
        assert!(e.to_string().starts_with("cosine_similarity got inf at input2[2]"), "{e}");
    }
}
