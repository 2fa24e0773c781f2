//! Distances and similarities between rows, with gradients: [`cosine_similarity`] and
//! [`pairwise_distance`] as PyTorch computes them, and the [`Distance`] trait that the
//! triplet-style losses are generic over.

mod cosine;
mod pairwise;

pub use cosine::{cosine_similarity, CosineDistance, CosineSimilarity};
pub use pairwise::{pairwise_distance, PairwiseDistance};

use crate::reduction::check_buffer;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernel::{add_lanes, sum_lanes, BLOCK, LANES};
use crate::options::Mode;
use crate::parts::{self, Chunks};
use crate::rows::Rows;

/// Two rows of equal length: what a [`Distance`] measures. The lengths are checked when
/// the pair is made, so a distance never receives rows of different lengths (and may index
/// both rows up to [`len`](Self::len)).
#[derive(Debug)]
pub struct RowPair<'a, T> {
    x1: &'a [T],
    x2: &'a [T],
}

impl<T> Clone for RowPair<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RowPair<'_, T> {}

impl<'a, T> RowPair<'a, T> {
    /// The pair `(x1, x2)`.
    ///
    /// # Errors
    /// An [`Error::Shape`] when the lengths differ.
    pub fn new(x1: &'a [T], x2: &'a [T]) -> Result<Self> {
        if x1.len() != x2.len() {
            return Err(Error::Shape {
                loss: "distance",
                arg: "x2",
                got: vec![x2.len()],
                expected: format!("x1 has shape [{}]", x1.len()),
            });
        }
        Ok(RowPair { x1, x2 })
    }
    /// The rows of equal length the kernels pass (cut to the shorter one, which they never
    /// are: the row drivers split equal buffers).
    #[inline(always)]
    pub(crate) fn of(x1: &'a [T], x2: &'a [T]) -> Self {
        let n = x1.len().min(x2.len());
        RowPair { x1: &x1[..n], x2: &x2[..n] }
    }
    /// The first row.
    #[inline(always)]
    pub fn x1(&self) -> &'a [T] {
        self.x1
    }
    /// The second row, as long as the first.
    #[inline(always)]
    pub fn x2(&self) -> &'a [T] {
        self.x2
    }
    /// The rows' length.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.x1.len()
    }
    /// Whether the rows are empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.x1.is_empty()
    }
}

/// The gradient rows of a [`RowPair`]: two mutable rows of the pair's length (checked when
/// made).
#[derive(Debug)]
pub struct GradPair<'a, T> {
    g1: &'a mut [T],
    g2: &'a mut [T],
}

impl<'a, T> GradPair<'a, T> {
    /// Gradient rows `g1` for `rows.x1()` and `g2` for `rows.x2()`.
    ///
    /// # Errors
    /// An [`Error::Buffer`] when a row's length is not `rows.len()`.
    pub fn new<U>(rows: RowPair<'_, U>, g1: &'a mut [T], g2: &'a mut [T]) -> Result<Self> {
        for (buffer, got) in [("grad1", g1.len()), ("grad2", g2.len())] {
            check_buffer("distance", buffer, got, rows.len())?;
        }
        Ok(GradPair { g1, g2 })
    }
    /// The gradient rows the kernels pass, cut to `n` (which they already have).
    #[inline(always)]
    pub(crate) fn of(n: usize, g1: &'a mut [T], g2: &'a mut [T]) -> Self {
        let (n1, n2) = (n.min(g1.len()), n.min(g2.len()));
        GradPair { g1: &mut g1[..n1], g2: &mut g2[..n2] }
    }
    /// The two rows.
    #[inline(always)]
    pub fn split(self) -> (&'a mut [T], &'a mut [T]) {
        (self.g1, self.g2)
    }
}

/// The token that keeps the kernels' own fast paths of [`Distance`] uncallable from
/// outside the crate (it cannot be made there).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Internal(());

/// A distance between two vectors of the same length, with its gradient.
///
/// Implement it to plug your own distance into the losses that take one (the way
/// PyTorch's `TripletMarginWithDistanceLoss` takes `distance_function`). The methods
/// receive a [`RowPair`] (and a [`GradPair`]), whose rows are of equal length by
/// construction; they must not panic on finite input.
///
/// The built-in distances, called directly:
///
/// ```
/// use marginloss::{CosineDistance, Distance, GradPair, PairwiseDistance, RowPair};
/// let (x1, x2) = ([1.0f64, 0.0], [1.0, 1.0]);
/// // ‖x1 − x2 + 1e-6‖₂ = ‖(1e-6, −1 + 1e-6)‖ ≈ 1 − 1e-6
/// let d = PairwiseDistance::new().distance(RowPair::new(&x1, &x2)?);
/// assert!((d - (1.0 - 1e-6)).abs() < 1e-11);
/// // 1 − cos = 1 − 1/√2, and its gradient g·∂d/∂x1 = −g·(x2/(‖x1‖‖x2‖) − cos·x1/‖x1‖²)
/// let cd = CosineDistance::new();
/// assert!((cd.distance(RowPair::new(&x1, &x2)?) - (1.0 - 0.5f64.sqrt())).abs() < 1e-15);
/// let (mut g1, mut g2) = ([0.0; 2], [0.0; 2]);
/// let rows = RowPair::new(&x1, &x2)?;
/// cd.backward(rows, 1.0, GradPair::new(rows, &mut g1, &mut g2)?);
/// let h = 0.5f64.sqrt();
/// assert!((g1[0] - 0.0).abs() < 1e-15 && (g1[1] + h).abs() < 1e-15);
/// # let _ = g2;
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// Your own distance, plugged into [`HingeEmbedding::on`](crate::HingeEmbedding::on): the
/// L1 distance, `Σ |x1 − x2|`, with subgradient `sign(x1 − x2)`:
///
/// ```
/// use marginloss::{Distance, GradPair, HingeEmbedding, Reduction, RowPair, Rows};
/// struct L1;
/// impl Distance<f64> for L1 {
///     fn name(&self) -> &'static str { "l1" }
///     fn distance(&self, rows: RowPair<'_, f64>) -> f64 {
///         rows.x1().iter().zip(rows.x2()).map(|(a, b)| (a - b).abs()).sum()
///     }
///     fn backward(&self, rows: RowPair<'_, f64>, g: f64, grads: GradPair<'_, f64>) {
///         let (x1, x2) = (rows.x1(), rows.x2());
///         let (g1, g2) = grads.split();
///         for i in 0..rows.len() {
///             let s = g * (x1[i] - x2[i]).signum();
///             g1[i] += s;
///             g2[i] -= s;
///         }
///     }
/// }
/// // 2 pairs of rows of 2: d = 3 for the similar pair (loss 3), d = 0.5 for the
/// // dissimilar one (loss max(0, 1 − 0.5) = 0.5)
/// let (x1, x2, y) = ([1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.25, -0.25], [1.0, -1.0]);
/// let (x1, x2) = (Rows::new(&x1, 2, 2)?, Rows::new(&x2, 2, 2)?);
/// let l = HingeEmbedding::new().on(L1).forward(x1, x2, &y, Reduction::None)?.into_vec();
/// assert_eq!(l, vec![3.0, 0.5]);
/// # Ok::<(), marginloss::Error>(())
/// ```
pub trait Distance<T: Float>: Sync {
    /// The distance's name, used in error messages.
    fn name(&self) -> &'static str;

    /// The distance `d(x1, x2)`.
    fn distance(&self, rows: RowPair<'_, T>) -> T;

    /// Adds `g · ∂d/∂x1` to the first gradient row and `g · ∂d/∂x2` to the second
    /// (accumulates: a row that takes part in two distances receives both contributions).
    fn backward(&self, rows: RowPair<'_, T>, g: T, grads: GradPair<'_, T>);

    /// Validates the distance's own options before a loss in `mode` uses it (e.g.
    /// [`PairwiseDistance`] rejects `p <= 0` in strict mode); `loss` names the caller in the
    /// error. The default accepts everything.
    ///
    /// # Errors
    /// An [`Error::Option`] for an option outside its domain.
    fn check(&self, loss: &'static str, mode: Mode) -> Result<()> {
        let _ = (loss, mode);
        Ok(())
    }

    /// The distance `d`, and `g·∂d/∂x1`, `g·∂d/∂x2` **written** (not added) into the
    /// gradient rows, where `g = coef(d)`: what a loss of the distance needs in one visit of
    /// the rows. The default calls [`distance`](Self::distance) and
    /// [`backward`](Self::backward); override it to share the work between the two.
    #[inline(always)]
    fn distance_backward<F: FnOnce(T) -> T>(&self, rows: RowPair<'_, T>, coef: F, grads: GradPair<'_, T>) -> T
    where
        Self: Sized,
    {
        let d = self.distance(rows);
        let (g1, g2) = grads.split();
        g1.fill(T::zero());
        g2.fill(T::zero());
        self.backward(rows, coef(d), GradPair { g1, g2 });
        d
    }

    /// Whether `coef·∂d/∂x` is finite in every element for a distance `d` of finite rows,
    /// proved from the two scalars alone (strict mode scans the gradient rows where it is
    /// not). The default proves nothing.
    #[doc(hidden)]
    #[inline(always)]
    fn grad_bounded(&self, d: T, coef: T) -> bool {
        let _ = (d, coef);
        false
    }

    /// [`distance_backward`](Self::distance_backward) and whether every element of both
    /// rows is finite, in one visit of the rows where the distance overrides it (the default
    /// scans the rows).
    #[doc(hidden)]
    #[inline(always)]
    fn distance_backward_finite<F: FnOnce(T) -> T>(
        &self,
        rows: RowPair<'_, T>,
        coef: F,
        grads: GradPair<'_, T>,
    ) -> (T, bool)
    where
        Self: Sized,
    {
        (self.distance_backward(rows, coef, grads), all_finite(rows.x1) & all_finite(rows.x2))
    }

    /// The distance `d(x1, x2)` and whether every element of both rows is finite, in one
    /// visit of the rows where the distance overrides it (the default scans the rows).
    #[doc(hidden)]
    #[inline(always)]
    fn distance_finite(&self, rows: RowPair<'_, T>) -> (T, bool) {
        (self.distance(rows), all_finite(rows.x1) & all_finite(rows.x2))
    }

    /// For a loss of two distances from one row (the triplet loss) in one visit of the
    /// rows: `d1 = d(x, y)`, `d2 = d(x, z)` and whether every element of `x`, `y`, `z` is
    /// finite; then, with `(c1, c2) = coef(d1, d2)`, `∂(c1·d1 + c2·d2)/∂{x, y, z}`
    /// **written** (not added) into `gx`, `gy`, `gz` (all of `x`'s length). A term whose
    /// coefficient is 0 contributes nothing when the rows are finite; with a non-finite row
    /// both terms go through [`backward`](Self::backward) so that NaN reaches the gradient.
    /// The kernels' fast path: only the crate calls it (its [`Internal`] token).
    #[doc(hidden)]
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
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
    ) -> (T, T, bool)
    where
        Self: Sized,
    {
        distance2_backward_by_parts(self, x, y, z, coef, gx, gy, gz, token)
    }
}

/// [`Distance::distance2_backward`] by [`Distance::distance`] and [`Distance::backward`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn distance2_backward_by_parts<T: Float, D: Distance<T>, F: FnOnce(T, T) -> (T, T)>(
    dist: &D,
    x: &[T],
    y: &[T],
    z: &[T],
    coef: F,
    gx: &mut [T],
    gy: &mut [T],
    gz: &mut [T],
    _: Internal,
) -> (T, T, bool) {
    let fin = all_finite(x) & all_finite(y) & all_finite(z);
    let (xy, xz) = (RowPair::of(x, y), RowPair::of(x, z));
    let (d1, d2) = (dist.distance(xy), dist.distance(xz));
    let (c1, c2) = coef(d1, d2);
    gx.fill(T::zero());
    gy.fill(T::zero());
    gz.fill(T::zero());
    if c1 != T::zero() || !fin {
        dist.backward(xy, c1, GradPair::of(xy.len(), gx, gy));
    }
    if c2 != T::zero() || !fin {
        dist.backward(xz, c2, GradPair::of(xz.len(), gx, gz));
    }
    (d1, d2, fin)
}

/// The token, for the crate's own calls of [`Distance::distance2_backward`].
pub(crate) const INTERNAL: Internal = Internal(());

/// Whether every element of `row` is finite.
#[inline(always)]
pub(crate) fn all_finite<T: Float>(row: &[T]) -> bool {
    row.iter().fold(true, |ok, v| ok & v.is_finite())
}

/// The row count `N`, the row length `D` and the two inputs' elements, checking that both
/// inputs have the same shape `(N, D)` with `D ≥ 1` (and, in strict mode, `N ≥ 1`).
#[allow(clippy::type_complexity)]
pub(crate) fn rows_of<'a, T: Float>(
    loss: &'static str,
    names: (&'static str, &'static str),
    x1: Rows<'a, T>,
    x2: Rows<'a, T>,
    mode: Mode,
) -> Result<(usize, usize, &'a [T], &'a [T])> {
    let [n, dim] = crate::rows::same_shape(loss, &[(names.0, x1), (names.1, x2)])?;
    if dim == 0 {
        return Err(Error::Shape {
            loss,
            arg: names.0,
            got: vec![n, 0],
            expected: "rows of at least one element".into(),
        });
    }
    if n == 0 && mode.is_strict() {
        return Err(Error::Empty { loss, arg: names.0 });
    }
    Ok((n, dim, x1.data(), x2.data()))
}

/// A per-row-pair quantity with its gradient, for [`rows_pass`].
pub(crate) trait RowOp<T: Float>: Copy + Sync {
    /// The value for rows `a`, `b` and whether every element was finite.
    fn value(&self, a: &[T], b: &[T]) -> (T, bool);
    /// As [`value`](Self::value), also writing `g·∂v/∂a` into `ga` and `g·∂v/∂b` into `gb`;
    /// the third value says whether a bound on the row's scalars proves every gradient
    /// element finite (strict mode scans the rows only where it does not).
    fn value_grad(&self, a: &[T], b: &[T], g: T, ga: &mut [T], gb: &mut [T]) -> (T, bool, bool);
}

/// The value of every row pair into `out` and, with `GRAD`, `upstream · ∂v/∂input{1,2}`
/// into the gradient rows (`upstream` one value per row, or one for all), over the fixed
/// tree of parts ([`crate::parts`]), each part through [`crate::simd::vectorize`].
/// Returns whether every element was finite (with `STRICT`: and every value and gradient
/// element).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows_pass<T: Float, O: RowOp<T>, const STRICT: bool, const GRAD: bool>(
    op: O,
    x1: &[T],
    x2: &[T],
    dim: usize,
    upstream: &[T],
    out: &mut [T],
    grad1: &mut [T],
    grad2: &mut [T],
) -> bool {
    let g = upstream.first().copied().unwrap_or(T::zero());
    let ups = if upstream.len() == 1 { &[][..] } else { upstream };
    parts::run(
        out.len(),
        dim,
        (Chunks(x1, dim), Chunks(x2, dim), ups, out, Chunks(grad1, dim), Chunks(grad2, dim)),
        &|(x1, x2, ups, out, grad1, grad2)| {
            crate::simd::vectorize(RowsPart::<T, O, STRICT, GRAD> { op, x1, x2, ups, g, out, grad1, grad2 })
        },
        &|a, b| a & b,
    )
}

/// One part of [`rows_pass`].
struct RowsPart<'a, T, O, const STRICT: bool, const GRAD: bool> {
    op: O,
    x1: Chunks<&'a [T]>,
    x2: Chunks<&'a [T]>,
    ups: &'a [T],
    g: T,
    out: &'a mut [T],
    grad1: Chunks<&'a mut [T]>,
    grad2: Chunks<&'a mut [T]>,
}

impl<T: Float, O: RowOp<T>, const STRICT: bool, const GRAD: bool> pulp::WithSimd
    for RowsPart<'_, T, O, STRICT, GRAD>
{
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> bool {
        let RowsPart { op, x1, x2, ups, g, out, grad1, grad2 } = self;
        let dim = x1.1;
        let mut ok = true;
        let rows = x1.0.chunks_exact(dim).zip(x2.0.chunks_exact(dim)).zip(out.iter_mut());
        if GRAD {
            let grads = grad1.0.chunks_exact_mut(dim).zip(grad2.0.chunks_exact_mut(dim));
            for (i, (((a, b), o), (ga, gb))) in rows.zip(grads).enumerate() {
                let g = if ups.is_empty() { g } else { ups[i] };
                let (v, fin, bounded) = op.value_grad(a, b, g, ga, gb);
                *o = v;
                ok &= fin;
                if STRICT {
                    // Finite rows must give a finite value and gradient: proved by the bound,
                    // else the rows (in L1) are scanned.
                    ok &= v.is_finite()
                        && (bounded || (crate::kernel::finite_row(ga) & crate::kernel::finite_row(gb)));
                }
            }
        } else {
            for ((a, b), o) in rows {
                let (v, fin) = op.value(a, b);
                *o = v;
                ok &= fin & (!STRICT || v.is_finite());
            }
        }
        ok
    }
}

/// `Σ a_i·b_i`, `Σ a_i²`, `Σ b_i²` and whether every element is finite. Accumulated in
/// `T` over eight lanes (as torch accumulates in the tensor's dtype: f32 rows whose squared
/// norm overflows give inf, as in torch), the lanes added in `f64`.
#[inline(always)]
pub(crate) fn dot3<T: Float>(a: &[T], b: &[T]) -> (f64, f64, f64, bool) {
    let (mut ab, mut aa, mut bb) = ([T::zero(); LANES], [T::zero(); LANES], [T::zero(); LANES]);
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Blocks of 64: the products into local arrays (plain maps), then added into the lanes
    // (element i into lane i % 8, in order). Only arithmetic in the loops; finiteness is
    // read off the sums, which are finite whenever every element is, and rows whose sums
    // are not are scanned (a NaN/inf element, or finite elements whose squares overflow).
    let (xb, _) = a.as_chunks::<BLOCK>();
    let (yb, _) = b.as_chunks::<BLOCK>();
    for (x, y) in xb.iter().zip(yb) {
        let (mut pq, mut pp, mut qq) = ([T::zero(); BLOCK], [T::zero(); BLOCK], [T::zero(); BLOCK]);
        for i in 0..BLOCK {
            pq[i] = x[i] * y[i];
        }
        for i in 0..BLOCK {
            pp[i] = x[i] * x[i];
        }
        for i in 0..BLOCK {
            qq[i] = y[i] * y[i];
        }
        add_lanes(&mut ab, &pq);
        add_lanes(&mut aa, &pp);
        add_lanes(&mut bb, &qq);
    }
    let done = xb.len() * BLOCK;
    for (i, (&p, &q)) in a[done..].iter().zip(&b[done..]).enumerate() {
        ab[i % LANES] = ab[i % LANES] + p * q;
        aa[i % LANES] = aa[i % LANES] + p * p;
        bb[i % LANES] = bb[i % LANES] + q * q;
    }
    let s = |v: [T; LANES]| sum_lanes(&v.map(Float::f64));
    let (ab, aa, bb) = (s(ab), s(aa), s(bb));
    let ok = (ab.is_finite() & aa.is_finite() & bb.is_finite()) || (all_finite(a) & all_finite(b));
    (ab, aa, bb, ok)
}

/// The error of a failed strict distance pass (error path only): the first non-finite
/// input element, else the overflow among the written values and gradients.
#[cold]
pub(crate) fn rows_error<T: Float>(
    loss: &'static str,
    names: (&'static str, &'static str),
    (x1, x2): (&[T], &[T]),
    upstream: &[T],
    out: &[T],
    grads: (&[T], &[T]),
) -> Error {
    if !(all_finite(x1) && all_finite(x2)) {
        return locate_non_finite(loss, names, x1, x2);
    }
    let grads = [(names.0, grads.0), (names.1, grads.1)];
    crate::kernel::locate_overflow(loss, upstream, out.iter().map(|v| v.is_finite()), &grads)
}

/// The first non-finite element among two row buffers, as an error (error path only).
#[cold]
pub(crate) fn locate_non_finite<T: Float>(
    loss: &'static str,
    names: (&'static str, &'static str),
    x1: &[T],
    x2: &[T],
) -> Error {
    for (i, (a, b)) in x1.iter().zip(x2).enumerate() {
        if !a.is_finite() {
            return crate::kernel::non_finite(loss, names.0, i, *a);
        }
        if !b.is_finite() {
            return crate::kernel::non_finite(loss, names.1, i, *b);
        }
    }
    Error::Empty { loss, arg: names.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    #[test]
    fn row_sums_add_element_i_into_lane_i_mod_8_in_order() {
        // The blocked loops must keep the plain lane order (so results do not depend on the
        // block size or the vector width): every length, every tail.
        let lanes = |v: &[f32]| {
            let mut acc = [0.0f32; 8];
            for (i, &x) in v.iter().enumerate() {
                acc[i % 8] += x;
            }
            let a = acc.map(f64::from);
            ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
        };
        for n in 0..200 {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 3.0).collect();
            let (ab, aa, bb, ok) = dot3(&a, &b);
            let prod = |f: fn(f32, f32) -> f32| a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect::<Vec<_>>();
            assert!(ok);
            assert_eq!(ab.to_bits(), lanes(&prod(|x, y| x * y)).to_bits(), "n = {n}");
            assert_eq!(aa.to_bits(), lanes(&prod(|x, _| x * x)).to_bits(), "n = {n}");
            assert_eq!(bb.to_bits(), lanes(&prod(|_, y| y * y)).to_bits(), "n = {n}");
            let d = PairwiseDistance::new()
                .forward(mat(&a, n.max(1)), mat(&b, n.max(1)))
                .map(|d| d.first().copied());
            if n > 0 {
                let sq = prod(|x, y| ((x - y) + 1e-6) * ((x - y) + 1e-6));
                let want = lanes(&sq).sqrt() as f32;
                assert_eq!(d.unwrap().unwrap().to_bits(), want.to_bits(), "n = {n}");
            }
        }
    }

    #[test]
    fn finiteness_is_exact_when_the_sums_overflow() {
        // Finite f32 elements whose squares overflow make the sums infinite (as in torch)
        // but are not non-finite input; a NaN or inf element is.
        let big = [1e20f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0];
        let ones = [1.0f32; 9];
        let (_, aa, _, ok) = dot3(&big, &ones);
        assert!(aa.is_infinite() && ok);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 8] {
                let mut row = ones;
                row[at] = bad;
                assert!(!dot3(&row, &ones).3, "{bad} at {at}");
                assert!(!dot3(&ones, &row).3, "{bad} at {at} in b");
            }
        }
        // torch-compat returns torch's inf; strict refuses a non-finite result of finite
        // input, naming the row.
        let compat = PairwiseDistance::new().mode(Mode::TorchCompat);
        assert_eq!(compat.forward(mat(&big, 9), mat(&[0.0f32; 9], 9)).unwrap(), [f32::INFINITY]);
        let d = PairwiseDistance::new();
        let e = d.forward(mat(&big, 9), mat(&[0.0f32; 9], 9)).unwrap_err();
        assert!(matches!(e, Error::Overflow { quantity: "loss", index: Some(0), .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("pairwise_distance: the loss overflows float32 at output[0];"),
            "{e}"
        );
        let err = d.forward(mat(&[f32::NAN; 9], 9), mat(&ones, 9)).unwrap_err();
        assert!(err.to_string().contains("input1"), "{err}");
    }
}
