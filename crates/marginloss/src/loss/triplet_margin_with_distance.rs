//! PyTorch's `TripletMarginWithDistanceLoss`: the triplet loss over any [`Distance`], and
//! the fused row kernel that [`TripletMargin`](crate::TripletMargin) shares.

use crate::distance::{rows_of, CosineDistance, Distance, GradPair, PairwiseDistance, RowPair, INTERNAL};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{finite_row, non_finite, reduced_ok, relu};
use crate::options::{Kink, Mode};
use crate::parts::{self, Chunks};
use crate::reduction::{check_buffer, check_upstream, Output, Reduction};
use crate::rows::Rows;

/// PyTorch's `TripletMarginWithDistanceLoss` on `(anchor, positive, negative)` rows with a
/// distance `d` of your choice (any [`Distance`]; [`PairwiseDistance`] by default):
///
/// ```text
/// dp_n = d(a[n], p[n]);   dn_n = d(a[n], n[n]);   if swap: dn_n = min(dn_n, d(p[n], n[n]))
/// l_n  = max(0, margin + dp_n − dn_n)                       margin = 1 by default
/// ```
///
/// then reduced over the `N` rows by [`Reduction`]. `swap` (the "distance swap" of Balntas
/// et al., 2016) uses the positive as the anchor when it is closer to the negative.
///
/// * **Distances:** [`euclidean`](Self::euclidean) is torch's default
///   `pairwise_distance(x, y)` (p = 2, eps = 1e-6 added to the difference);
///   [`cosine`](Self::cosine) is `1 − cosine_similarity(x, y)` (eps = 1e-8 per norm), the
///   usual `lambda x, y: 1 - F.cosine_similarity(x, y)`; implement [`Distance`] for your
///   own (see the second example).
/// * **Shapes:** `anchor`, `positive` and `negative` are `(N, D)` [`Rows`](crate::Rows) of
///   the same shape (one triplet is [`Rows::single`](crate::Rows::single)); the output has
///   `N` values or one.
/// * **Gradient:** `∂l/∂dp = 1`, `∂l/∂dn = −1` where `margin + dp − dn > 0`, chained
///   through the distance's [`backward`](Distance::backward). With `swap` and an exact tie
///   `d(a, n) == d(p, n)` the `−1` is **split 0.5 / 0.5** between the two distances, as
///   torch's `minimum`. **At the kink** `margin + dp − dn == 0` the gradient is 0, as in
///   torch 2.15 (see [`Kink`]).
/// * **Errors:** a margin that is not > 0 (in both modes, as torch raises `margin must be
///   greater than 0`). Strict mode also rejects NaN/±Inf inputs, empty input, a non-finite
///   margin, the distance's own bad options ([`Distance::check`]; the loss's mode governs,
///   not the distance's), and mismatched shapes or buffers.
/// * **Torch-compat:** NaN propagates (a non-finite row gets torch's NaN gradient); empty
///   input gives NaN (mean) or 0 (sum). The distance is not checked for non-negativity, as
///   in torch. Inputs do not broadcast.
/// * **Options in the dtype (strict):** `margin` and the distance's `eps` must be finite in the inputs' type too:
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
/// | PyTorch | `nn.TripletMarginWithDistanceLoss(distance_function=, margin=1.0, swap=False)`, `F.triplet_margin_with_distance_loss` |
/// | Keras | none |
/// | scikit-learn | none |
/// | optax | none (`optax.losses.triplet_margin_loss` is p-norm only, with eps inside the root) |
///
/// ```
/// use marginloss::{Reduction, Rows, TripletMarginWithDistance};
/// // cosine distance: dp = 1 − 0.6 = 0.4, dn = 1 − 0 = 1, so l = max(0, 1 + 0.4 − 1) = 0.4
/// let (a, p, n) = ([1.0f64, 0.0], [0.6f64, 0.8], [0.0f64, 1.0]);
/// let (a, p, n) = (Rows::single(&a), Rows::single(&p), Rows::single(&n));
/// let l = TripletMarginWithDistance::cosine().forward(a, p, n, Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.4).abs() < 1e-12);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// A distance of your own, e.g. the squared Euclidean distance:
///
/// ```
/// use marginloss::{Distance, GradPair, Reduction, RowPair, Rows, TripletMarginWithDistance};
/// struct SquaredEuclidean;
/// impl Distance<f64> for SquaredEuclidean {
///     fn name(&self) -> &'static str { "squared_euclidean" }
///     fn distance(&self, rows: RowPair<'_, f64>) -> f64 {
///         rows.x1().iter().zip(rows.x2()).map(|(a, b)| (a - b) * (a - b)).sum()
///     }
///     // The rows (and gradient rows) have equal lengths by construction.
///     fn backward(&self, rows: RowPair<'_, f64>, g: f64, grads: GradPair<'_, f64>) {
///         let (g1, g2) = grads.split();
///         for (i, (a, b)) in rows.x1().iter().zip(rows.x2()).enumerate() {
///             let d = 2.0 * g * (a - b);
///             g1[i] += d;
///             g2[i] -= d;
///         }
///     }
/// }
/// let loss = TripletMarginWithDistance::new(SquaredEuclidean);
/// let (a, p, n) = ([0.0, 0.0], [1.0, 0.0], [0.0, 1.2]);
/// let l = loss.forward(Rows::single(&a), Rows::single(&p), Rows::single(&n), Reduction::Sum)?;
/// assert!((l.scalar().unwrap() - (1.0 + 1.0 - 1.44)).abs() < 1e-12);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct TripletMarginWithDistance<D = PairwiseDistance> {
    /// The distance between rows (default: [`PairwiseDistance`], p = 2, eps = 1e-6).
    pub distance: D,
    /// The margin (default 1.0; must be > 0).
    pub margin: f64,
    /// Whether to use `min(d(a, n), d(p, n))` as the negative distance (default false).
    pub swap: bool,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl<D: Default> Default for TripletMarginWithDistance<D> {
    fn default() -> Self {
        Self::new(D::default())
    }
}

impl TripletMarginWithDistance<PairwiseDistance> {
    /// The loss with torch's default distance, `pairwise_distance` (p = 2, eps = 1e-6).
    pub fn euclidean() -> Self {
        Self::new(PairwiseDistance::new())
    }
}

impl TripletMarginWithDistance<CosineDistance> {
    /// The loss with the cosine distance `1 − cos` (eps = 1e-8 per norm).
    pub fn cosine() -> Self {
        Self::new(CosineDistance::default())
    }
}

impl<D> TripletMarginWithDistance<D> {
    /// The loss over `distance` with margin 1, no swap, strict, kink gradient 0.
    pub fn new(distance: D) -> Self {
        TripletMarginWithDistance { distance, margin: 1.0, swap: false, mode: Mode::Strict, kink: Kink::Zero }
    }
    /// Sets the margin (must be > 0).
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// Sets the distance swap.
    pub fn swap(mut self, swap: bool) -> Self {
        self.swap = swap;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets the kink convention.
    pub fn kink(mut self, kink: Kink) -> Self {
        self.kink = kink;
        self
    }

    /// The row kernel, after the option checks.
    pub(crate) fn kernel<T: Float>(&self, loss: &'static str) -> Result<Triplet<'_, T, D>>
    where
        D: Distance<T>,
    {
        // `!(m > 0)`: NaN fails too, as torch's `margin > 0` check.
        if self.margin.is_nan() || self.margin <= 0.0 {
            return Err(Error::Option { loss, option: "margin", value: Value(self.margin), expected: "> 0" });
        }
        if self.mode.is_strict() && !self.margin.is_finite() {
            return Err(Error::Option {
                loss,
                option: "margin",
                value: Value(self.margin),
                expected: "finite and > 0",
            });
        }
        if self.mode.is_strict() {
            crate::kernel::fits::<T>(loss, "margin", self.margin)?;
        }
        self.distance.check(loss, self.mode)?;
        Ok(Triplet {
            loss,
            dist: &self.distance,
            margin: T::of(self.margin),
            swap: self.swap,
            kink: self.kink,
            mode: self.mode,
        })
    }

    /// Computes the loss, allocating the result (a scalar, or one value per row for
    /// [`Reduction::None`]) of the `(N, D)` rows.
    ///
    /// # Errors
    /// A margin that is not > 0; in strict mode, the errors listed in this type's docs; in
    /// both modes, arguments whose shapes differ (an [`Error::Shape`](crate::Error::Shape)
    /// naming the first that differs from `anchor`, and the shape expected).
    pub fn forward<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
    ) -> Result<Output<T>>
    where
        D: Distance<T>,
    {
        let k = self.kernel::<T>(LOSS)?;
        k.forward(anchor, positive, negative, reduction)
    }

    /// Computes the loss into `out` without allocating: `out` holds one value for
    /// `Mean`/`Sum` and `N` values for `None`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()>
    where
        D: Distance<T>,
    {
        self.kernel::<T>(LOSS)?.forward_into(anchor, positive, negative, reduction, out)
    }

    /// Fused forward and backward in one pass over the rows: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂{anchor, positive,
    /// negative}` into `grad_anchor`, `grad_positive`, `grad_negative` (each `N·D`,
    /// overwritten), allocating nothing.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`; for
    /// `None`, one value per row, or a single value applied to every row.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or gradient
    /// buffers. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        anchor: Rows<'_, T>,
        positive: Rows<'_, T>,
        negative: Rows<'_, T>,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_anchor: &mut [T],
        grad_positive: &mut [T],
        grad_negative: &mut [T],
    ) -> Result<()>
    where
        D: Distance<T>,
    {
        self.kernel::<T>(LOSS)?.forward_backward(
            anchor,
            positive,
            negative,
            reduction,
            upstream,
            out,
            grad_anchor,
            grad_positive,
            grad_negative,
        )
    }
}

const LOSS: &str = "triplet_margin_with_distance";
const NAMES: [&str; 3] = ["anchor", "positive", "negative"];

/// The fused triplet row kernel over a distance `D` (shared with `TripletMargin`).
pub(crate) struct Triplet<'a, T, D> {
    loss: &'static str,
    dist: &'a D,
    margin: T,
    swap: bool,
    kink: Kink,
    mode: Mode,
}

/// One row's loss, hinge argument and the weights of `d(a, n)` and `d(p, n)` in the
/// negative distance.
struct Row<T> {
    loss: T,
    u: T,
    wn: T,
    ws: T,
    /// Whether every element of the three rows is finite.
    fin: bool,
}

/// `min(x, y)` and the share of the gradient each side gets, as torch's `minimum`: the
/// smaller takes it all, a tie splits it 0.5 / 0.5, NaN propagates.
#[inline(always)]
fn min_split<T: Float>(x: T, y: T) -> (T, T, T) {
    if x < y {
        (x, T::one(), T::zero())
    } else if y < x {
        (y, T::zero(), T::one())
    } else if x == y {
        let half = T::of(0.5);
        (x, half, half)
    } else {
        (x + y, T::one(), T::one())
    }
}

impl<T: Float, D: Distance<T>> Triplet<'_, T, D> {
    #[inline(always)]
    fn row(&self, a: &[T], p: &[T], n: &[T]) -> Row<T> {
        let (dp, fp) = self.dist.distance_finite(RowPair::of(a, p));
        let (dn, fn_) = self.dist.distance_finite(RowPair::of(a, n));
        let (dn, wn, ws) = if self.swap {
            min_split(dn, self.dist.distance(RowPair::of(p, n)))
        } else {
            (dn, T::one(), T::zero())
        };
        let u = (self.margin + dp) - dn;
        Row { loss: relu(u), u, wn, ws, fin: fp & fn_ }
    }

    /// `N`, `D` and the three inputs' elements, checking that the inputs are all `(N, D)`.
    #[allow(clippy::type_complexity)]
    fn rows<'a>(
        &self,
        a: Rows<'a, T>,
        p: Rows<'a, T>,
        n: Rows<'a, T>,
    ) -> Result<(usize, usize, [&'a [T]; 3])> {
        crate::rows::same_shape(self.loss, &[(NAMES[0], a), (NAMES[1], p), (NAMES[2], n)])?;
        let (rows, dim, a, p) = rows_of(self.loss, (NAMES[0], NAMES[1]), a, p, self.mode)?;
        Ok((rows, dim, [a, p, n.data()]))
    }

    /// The error of a failed strict pass (error path only): the first non-finite element,
    /// else the overflow (`grads` empty for a forward pass).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn error(
        &self,
        (a, p, n, dim): (&[T], &[T], &[T], usize),
        reduction: Reduction,
        upstream: &[T],
        out: &[T],
        grads: &[(&'static str, &[T])],
    ) -> Error {
        for (i, ((&x, &y), &z)) in a.iter().zip(p).zip(n).enumerate() {
            for (name, v) in NAMES.into_iter().zip([x, y, z]) {
                if !v.is_finite() {
                    return non_finite(self.loss, name, i, v);
                }
            }
        }
        let losses: Box<dyn Iterator<Item = T>> = match reduction {
            Reduction::None => Box::new(out.iter().copied()),
            _ => Box::new(
                a.chunks_exact(dim)
                    .zip(p.chunks_exact(dim))
                    .zip(n.chunks_exact(dim))
                    .map(|((ar, pr), nr)| self.row(ar, pr, nr).loss),
            ),
        };
        crate::kernel::locate_overflow(self.loss, upstream, losses.map(|v| v.is_finite()), grads)
    }

    pub(crate) fn forward(
        &self,
        a: Rows<'_, T>,
        p: Rows<'_, T>,
        n: Rows<'_, T>,
        reduction: Reduction,
    ) -> Result<Output<T>> {
        let (rows, ..) = self.rows(a, p, n)?;
        let mut out = vec![T::zero(); reduction.output_len(rows)];
        self.forward_into(a, p, n, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    pub(crate) fn forward_into(
        &self,
        a: Rows<'_, T>,
        p: Rows<'_, T>,
        n: Rows<'_, T>,
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let (rows, dim, [a, p, n]) = self.rows(a, p, n)?;
        check_buffer(self.loss, "output", out.len(), reduction.output_len(rows))?;
        let ok = if self.mode.is_strict() {
            self.forward_pass::<true>(a, p, n, dim, reduction, out) && reduced_ok(reduction, out, &[])
        } else {
            self.forward_pass::<false>(a, p, n, dim, reduction, out)
        };
        if ok {
            Ok(())
        } else {
            Err(self.error((a, p, n, dim), reduction, &[], out, &[]))
        }
    }

    /// The forward pass over the same fixed tree of parts as [`fused_pass`](Self::fused_pass),
    /// each part summing its rows in order: the reduced value is bit-for-bit the fused one's.
    fn forward_pass<const STRICT: bool>(
        &self,
        a: &[T],
        p: &[T],
        n: &[T],
        dim: usize,
        reduction: Reduction,
        out: &mut [T],
    ) -> bool {
        let count = a.len() / dim;
        let reduced = reduction != Reduction::None;
        let rows_out = if reduced { &mut [][..] } else { &mut out[..] };
        let (acc, ok) = parts::run(
            count,
            dim,
            ((Chunks(a, dim), Chunks(p, dim), Chunks(n, dim)), rows_out),
            &|((a, p, n), out)| self.forward_rows::<STRICT>((a.0, p.0, n.0, dim), out),
            &|(x, okx), (y, oky)| (x + y, okx & oky),
        );
        if reduced {
            out[0] = reduction.finish(acc, count);
        }
        ok
    }

    /// The rows of one part of [`forward_pass`](Self::forward_pass): losses into `out` (or
    /// their sum in row order, when `out` is empty, as [`fused_rows`](Self::fused_rows)).
    #[inline]
    fn forward_rows<const STRICT: bool>(
        &self,
        (a, p, n, dim): (&[T], &[T], &[T], usize),
        out: &mut [T],
    ) -> (f64, bool) {
        let reduced = out.is_empty();
        let mut ok = true;
        let mut acc = 0.0f64;
        let rows = a.chunks_exact(dim).zip(p.chunks_exact(dim)).zip(n.chunks_exact(dim));
        for (i, ((ar, pr), nr)) in rows.enumerate() {
            let r = self.row(ar, pr, nr);
            if STRICT {
                ok &= r.fin & r.loss.is_finite();
            }
            if reduced {
                acc += r.loss.f64();
            } else {
                out[i] = r.loss;
            }
        }
        (acc, ok)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_backward(
        &self,
        a: Rows<'_, T>,
        p: Rows<'_, T>,
        n: Rows<'_, T>,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        ga: &mut [T],
        gp: &mut [T],
        gn: &mut [T],
    ) -> Result<()> {
        let (rows, dim, [a, p, n]) = self.rows(a, p, n)?;
        check_buffer(self.loss, "output", out.len(), reduction.output_len(rows))?;
        check_buffer(self.loss, "grad anchor", ga.len(), a.len())?;
        check_buffer(self.loss, "grad positive", gp.len(), p.len())?;
        check_buffer(self.loss, "grad negative", gn.len(), n.len())?;
        check_upstream(self.loss, reduction, upstream.len(), rows)?;
        let ok = if self.mode.is_strict() {
            self.fused_pass::<true>(a, p, n, dim, reduction, upstream, out, ga, gp, gn)
                && reduced_ok(reduction, out, upstream)
        } else {
            self.fused_pass::<false>(a, p, n, dim, reduction, upstream, out, ga, gp, gn)
        };
        if ok {
            Ok(())
        } else {
            let grads = [(NAMES[0], &*ga), (NAMES[1], &*gp), (NAMES[2], &*gn)];
            Err(self.error((a, p, n, dim), reduction, upstream, out, &grads))
        }
    }

    /// The fused pass over all rows in the fixed tree of parts ([`crate::parts`]), each
    /// part through [`crate::simd::vectorize`]; returns whether every element was finite.
    #[allow(clippy::too_many_arguments)]
    fn fused_pass<const STRICT: bool>(
        &self,
        a: &[T],
        p: &[T],
        n: &[T],
        dim: usize,
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        ga: &mut [T],
        gp: &mut [T],
        gn: &mut [T],
    ) -> bool {
        let count = a.len() / dim;
        let reduced = reduction != Reduction::None;
        let g0 = if reduced {
            reduction.scale(upstream[0], count)
        } else {
            upstream.first().copied().unwrap_or(T::zero())
        };
        let ups = if !reduced && upstream.len() != 1 { upstream } else { &[] };
        let rows_out = if reduced { &mut [][..] } else { &mut out[..] };
        let (acc, ok) = parts::run(
            count,
            dim,
            (
                (Chunks(a, dim), Chunks(p, dim), Chunks(n, dim)),
                ups,
                rows_out,
                (Chunks(ga, dim), Chunks(gp, dim), Chunks(gn, dim)),
            ),
            &|((a, p, n), ups, out, (ga, gp, gn))| {
                crate::simd::vectorize(FusedPart::<T, D, STRICT> {
                    k: self,
                    a,
                    p,
                    n,
                    ups,
                    g0,
                    out,
                    ga,
                    gp,
                    gn,
                })
            },
            &|(x, okx), (y, oky)| (x + y, okx & oky),
        );
        if reduced {
            out[0] = reduction.finish(acc, count);
        }
        ok
    }

    /// The fused rows of one part: losses into `out` (or their sum, when `out` is empty)
    /// and the gradient rows, with upstream `ups[i]` per row or `g0` for all.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fused_rows<const STRICT: bool>(
        &self,
        (a, p, n, dim): (&[T], &[T], &[T], usize),
        ups: &[T],
        g0: T,
        out: &mut [T],
        ga: &mut [T],
        gp: &mut [T],
        gn: &mut [T],
    ) -> (f64, bool) {
        let reduced = out.is_empty();
        let per_row = !ups.is_empty();
        let upstream = ups;
        let mut ok = true;
        let mut acc = 0.0f64;
        let rows = a
            .chunks_exact(dim)
            .zip(p.chunks_exact(dim))
            .zip(n.chunks_exact(dim))
            .zip(ga.chunks_exact_mut(dim).zip(gp.chunks_exact_mut(dim)).zip(gn.chunks_exact_mut(dim)));
        for (i, (((ar, pr), nr), ((gar, gpr), gnr))) in rows.enumerate() {
            let g = if per_row { upstream[i] } else { g0 };
            if !self.swap {
                // Both distances and their gradients in one visit of the rows.
                let mut loss = T::zero();
                let mut coef = T::zero();
                let (dp, dn, fin) = self.dist.distance2_backward(
                    ar,
                    pr,
                    nr,
                    |dp, dn| {
                        let u = (self.margin + dp) - dn;
                        loss = relu(u);
                        coef = g * self.kink.step(u);
                        (coef, -coef)
                    },
                    gar,
                    gpr,
                    gnr,
                    INTERNAL,
                );
                if STRICT {
                    // Finite rows must give a finite loss and gradient: proved from the two
                    // distances and the coefficient (the anchor's row adds two bounded
                    // terms), else the rows (in L1) are scanned.
                    ok &= fin & loss.is_finite();
                    let bounded = self.dist.grad_bounded(dp, coef) && self.dist.grad_bounded(dn, coef);
                    ok &= bounded || (finite_row(gar) & finite_row(gpr) & finite_row(gnr));
                }
                if reduced {
                    acc += loss.f64();
                } else {
                    out[i] = loss;
                }
                continue;
            }
            let r = self.row(ar, pr, nr);
            let fin = r.fin;
            if STRICT {
                ok &= fin;
            }
            if reduced {
                acc += r.loss.f64();
            } else {
                out[i] = r.loss;
            }
            gar.fill(T::zero());
            gpr.fill(T::zero());
            gnr.fill(T::zero());
            // Inactive terms are skipped; a non-finite row goes through the distance's
            // backward with a zero coefficient anyway, so that NaN reaches its gradient as
            // in torch's autograd.
            let c = g * self.kink.step(r.u);
            let (cn, cs) = (-(c * r.wn), -(c * r.ws));
            if c != T::zero() || !fin {
                self.dist.backward(RowPair::of(ar, pr), c, GradPair::of(dim, gar, gpr));
            }
            if cn != T::zero() || !fin {
                self.dist.backward(RowPair::of(ar, nr), cn, GradPair::of(dim, gar, gnr));
            }
            if self.swap && (cs != T::zero() || !fin) {
                self.dist.backward(RowPair::of(pr, nr), cs, GradPair::of(dim, gpr, gnr));
            }
            if STRICT {
                ok &= r.loss.is_finite() & finite_row(gar) & finite_row(gpr) & finite_row(gnr);
            }
        }
        (acc, ok)
    }
}

/// One part of [`Triplet::fused_pass`], for [`crate::simd::vectorize`].
struct FusedPart<'a, 'k, T, D, const STRICT: bool> {
    k: &'a Triplet<'k, T, D>,
    a: Chunks<&'a [T]>,
    p: Chunks<&'a [T]>,
    n: Chunks<&'a [T]>,
    ups: &'a [T],
    g0: T,
    out: &'a mut [T],
    ga: Chunks<&'a mut [T]>,
    gp: Chunks<&'a mut [T]>,
    gn: Chunks<&'a mut [T]>,
}

impl<T: Float, D: Distance<T>, const STRICT: bool> pulp::WithSimd for FusedPart<'_, '_, T, D, STRICT> {
    type Output = (f64, bool);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool) {
        let FusedPart { k, a, p, n, ups, g0, out, ga, gp, gn } = self;
        k.fused_rows::<STRICT>((a.0, p.0, n.0, a.1), ups, g0, out, ga.0, gp.0, gn.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    /// The squared Euclidean distance, a user-defined [`Distance`].
    struct SquaredEuclidean;

    impl Distance<f64> for SquaredEuclidean {
        fn name(&self) -> &'static str {
            "squared_euclidean"
        }
        fn distance(&self, rows: RowPair<'_, f64>) -> f64 {
            rows.x1().iter().zip(rows.x2()).map(|(a, b)| (a - b) * (a - b)).sum()
        }
        fn backward(&self, rows: RowPair<'_, f64>, g: f64, grads: GradPair<'_, f64>) {
            let (g1, g2) = grads.split();
            for (i, (a, b)) in rows.x1().iter().zip(rows.x2()).enumerate() {
                let d = 2.0 * g * (a - b);
                g1[i] += d;
                g2[i] -= d;
            }
        }
    }

    #[test]
    fn user_defined_distance_gradient_matches_finite_differences() {
        let dim = 3;
        let a = [0.1, -0.4, 0.7, 1.0, 0.2, -0.3];
        let p = [0.3, -0.1, 0.5, 0.6, 0.9, -0.2];
        let n = [0.0, -0.2, 0.4, 1.1, 0.0, 0.4];
        let upstream = [0.7, -1.3];
        for swap in [false, true] {
            let loss = TripletMarginWithDistance::new(SquaredEuclidean).margin(0.8).swap(swap);
            let (mut out, mut ga, mut gp, mut gn) = (vec![0.0; 2], vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
            loss.forward_backward(
                mat(&a, dim),
                mat(&p, dim),
                mat(&n, dim),
                Reduction::None,
                &upstream,
                &mut out,
                &mut ga,
                &mut gp,
                &mut gn,
            )
            .unwrap();
            // f = Σ upstream_i · l_i, by central differences with h = 1e-6
            let f = |a: &[f64], p: &[f64], n: &[f64]| -> f64 {
                let l = loss.forward(mat(a, dim), mat(p, dim), mat(n, dim), Reduction::None).unwrap();
                l.as_slice().iter().zip(upstream).map(|(l, u)| l * u).sum()
            };
            let h = 1e-6;
            let inputs = [a, p, n];
            for (which, grad) in [&ga, &gp, &gn].into_iter().enumerate() {
                for k in 0..6 {
                    let (mut plus, mut minus) = (inputs, inputs);
                    plus[which][k] += h;
                    minus[which][k] -= h;
                    let fd =
                        (f(&plus[0], &plus[1], &plus[2]) - f(&minus[0], &minus[1], &minus[2])) / (2.0 * h);
                    assert!(
                        (fd - grad[k]).abs() <= 1e-6 * fd.abs().max(1.0),
                        "swap={swap} input {which}[{k}]: {fd} vs {}",
                        grad[k]
                    );
                }
            }
            assert!(out.iter().all(|&l| l > 1e-3), "both rows active: {out:?}");
        }
    }

    /* torch 2.15 (loss-spec §7b): torch.minimum splits the gradient 0.5/0.5 on a tie. */
    #[test]
    fn swap_tie_splits_the_gradient_evenly() {
        // positive == anchor, so d(a, n) == d(p, n) exactly
        let (a, n) = ([0.0, 0.0], [1.0, 0.0]);
        let loss = TripletMarginWithDistance::new(SquaredEuclidean).margin(2.0).swap(true);
        let (mut out, mut ga, mut gp, mut gn) = ([0.0], [0.0; 2], [0.0; 2], [0.0; 2]);
        loss.forward_backward(
            mat(&a, 2),
            mat(&a, 2),
            mat(&n, 2),
            Reduction::Sum,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        assert_eq!(out, [1.0]); // 2 + 0 − 1
                                // −∂d(a,n)/∂a / 2 = −2(a − n)/2 = [1, 0]; dp = |a − p|² has zero gradient at a == p
        assert_eq!((ga, gp, gn), ([1.0, 0.0], [1.0, 0.0], [-2.0, 0.0]));
    }

    #[test]
    fn kink_gradient_is_zero_as_in_torch_2_15() {
        // margin + dp − dn = 1 + 1 − 2 = 0 exactly
        let (a, p, n) = ([0.0, 0.0], [1.0, 0.0], [1.0, 1.0]);
        let (mut out, mut ga, mut gp, mut gn) = ([9.0], [9.0; 2], [9.0; 2], [9.0; 2]);
        let loss = TripletMarginWithDistance::new(SquaredEuclidean);
        loss.forward_backward(
            mat(&a, 2),
            mat(&p, 2),
            mat(&n, 2),
            Reduction::Mean,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        assert_eq!(out, [0.0]);
        assert_eq!((ga, gp, gn), ([0.0; 2], [0.0; 2], [0.0; 2]));
        // the older-torch convention takes the active branch
        let loss = loss.kink(Kink::One);
        loss.forward_backward(
            mat(&a, 2),
            mat(&p, 2),
            mat(&n, 2),
            Reduction::Mean,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        // ∂/∂a [|a − p|² − |a − n|²] = 2(n − p), ∂/∂p = 2(p − a), ∂/∂n = 2(a − n)
        assert_eq!((ga, gp, gn), ([0.0, 2.0], [2.0, 0.0], [-2.0, -2.0]));
    }

    #[test]
    fn margin_must_be_positive_in_both_modes() {
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let e = TripletMarginWithDistance::cosine()
                .margin(0.0)
                .mode(mode)
                .forward(mat(&[1.0f32], 1), mat(&[1.0], 1), mat(&[1.0], 1), Reduction::Mean)
                .unwrap_err();
            assert_eq!(e.to_string(), "triplet_margin_with_distance: option margin must be > 0, got 0");
        }
        let e = TripletMarginWithDistance::euclidean()
            .margin(f64::INFINITY)
            .forward(mat(&[1.0f32], 1), mat(&[1.0], 1), mat(&[1.0], 1), Reduction::Mean)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "triplet_margin_with_distance: option margin must be finite and > 0, got inf"
        );
    }

    #[test]
    fn strict_errors_name_the_offender() {
        let l = TripletMarginWithDistance::euclidean();
        let e = l
            .forward(mat(&[1.0f64, 2.0], 1), mat(&[1.0, 2.0], 1), mat(&[0.0, f64::NAN], 1), Reduction::Mean)
            .unwrap_err();
        assert!(e.to_string().starts_with("triplet_margin_with_distance got NaN at negative[1]"), "{e}");
        let e = l
            .forward(mat(&[1.0f64, 2.0], 1), mat(&[1.0, 2.0], 1), mat(&[0.0], 1), Reduction::Mean)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "triplet_margin_with_distance: negative has shape [1, 1] but anchor has shape [2, 1]"
        );
        let e = l.forward::<f64>(mat(&[], 4), mat(&[], 4), mat(&[], 4), Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("triplet_margin_with_distance got an empty anchor"), "{e}");
        let e = TripletMarginWithDistance::new(CosineDistance { eps: -1.0 })
            .forward(mat(&[1.0f32], 1), mat(&[1.0], 1), mat(&[1.0], 1), Reduction::Sum)
            .unwrap_err();
        assert_eq!(e.to_string(), "triplet_margin_with_distance: option eps must be finite and >= 0, got -1");
    }

    #[test]
    fn torch_compat_empty_batch_is_nan_for_mean() {
        let l = TripletMarginWithDistance::euclidean().mode(Mode::TorchCompat);
        assert!(l
            .forward::<f64>(mat(&[], 2), mat(&[], 2), mat(&[], 2), Reduction::Mean)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        let (mut out, mut ga, mut gp, mut gn) = ([0.0f64; 0], [0.0; 0], [0.0; 0], [0.0; 0]);
        l.forward_backward(
            mat(&[], 2),
            mat(&[], 2),
            mat(&[], 2),
            Reduction::None,
            &[],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        let mut out = [0.0f64];
        l.forward_backward(
            mat(&[], 2),
            mat(&[], 2),
            mat(&[], 2),
            Reduction::Sum,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        assert_eq!(out, [0.0]);
    }

    #[test]
    fn torch_compat_propagates_nan_into_the_row_gradient() {
        let l = TripletMarginWithDistance::euclidean().mode(Mode::TorchCompat);
        let (a, p, n) = ([0.0f64, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [f64::NAN, 0.0, 5.0, 0.0]);
        let (mut out, mut ga, mut gp, mut gn) = ([0.0; 2], [0.0; 4], [0.0; 4], [0.0; 4]);
        l.forward_backward(
            mat(&a, 2),
            mat(&p, 2),
            mat(&n, 2),
            Reduction::None,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        assert!(out[0].is_nan());
        assert_eq!(out[1], 0.0);
        // row 0: d(a, p) is finite and inactive (gradient 0); d(a, n) is NaN
        assert!(ga[0].is_nan() && gn[0].is_nan() && gp[0] == 0.0);
        assert_eq!(&ga[2..], [0.0, 0.0]);
    }
}
