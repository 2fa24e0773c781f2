//! The driver every batch loss runs on: distance matrix by GEMM, one sweep over row
//! blocks that turns each Gram row into distances, mines it and writes the row's gradient
//! coefficients over it, then the reduction and the backward (a second GEMM, or a sparse
//! scan), and the gradient through `normalize`.
//!
//! Gradient algebra. With `w_ij = ∂loss/∂d_ij` (what the miner writes) every distance
//! gives `∂loss/∂x_i = α_i·x_i − Σ_j X_ij·r_j` and `∂loss/∂r_j = β_j·r_j − Σ_i X_ij·x_i`:
//!
//! | distance | `X_ij` | `α_i` | `β_j` |
//! |---|---|---|---|
//! | euclidean | `w/d` (0 at `d = 0`) | `Σ_j X_ij` | `Σ_i X_ij` |
//! | squared | `2w` | `Σ_j X_ij` | `Σ_i X_ij` |
//! | cosine | `w/(c_i·c_j)` | `Σ_j w·cos/(c_i·n_i)` | `Σ_i w·cos/(c_j·n_j)` |
//!
//! (`n` a row's norm, `c = max(n, eps)`; the cosine's norm term is 0 for a zero row.)
//! Without a reference set `r = x`, so `∂loss/∂x_k = (α_k + β_k)·x_k − Σ_j (X_kj + X_jk)·x_j`:
//! one product with the symmetrised coefficients.
//!
//! Without a reference set the Gram matrix is symmetric: half of it is computed (a
//! recursive SYRK) and mirrored. A symmetric miner (`Miner::SYMMETRIC`: the pair loss,
//! whose weight depends on the distance and the two labels only) skips the mirror and
//! sweeps each row's lower triangle (`j < i`): every unordered pair once, its counts and
//! sums doubled, the backward's matrix `s_c·(X + Xᵀ) = 2·s_c·(L + Lᵀ)`. Per-anchor values
//! (`BatchReduction::None`) need whole rows and take the full sweep.
//!
//! Batch-all's hinge (`Miner::tri_margin`) with rows as their own candidates and one
//! reduced value skips both the mirror and the symmetrisation: `super::triangle` sweeps
//! the lower triangle in tile pairs, each unordered pair once for both of its anchors, and
//! writes the symmetric `S'` (and its row sums) itself; the reduction's scale rides on the
//! backward product.
//!
//! The transposes (the mirror, the symmetrisation) work in 16 × 16 tiles: portable code,
//! or AVX-512 shuffles for whole `f32` tiles (`super::tile`), bit for bit the same.

use super::{Batch, BatchDistance, BatchLabel, BatchReduction, BatchStats, Common};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::{sum_lanes, LANES};
use crate::parts::{Chunks, Split};
use crate::reduction::check_buffer;

mod extremes;
use super::batch_hard_triplet::nearest_negative;

/// No index (no self candidate, no pick).
pub(crate) const NONE: usize = usize::MAX;
/// `F.normalize`'s eps.
const NORMALIZE_EPS: f64 = 1e-12;
/// `F.cosine_similarity`'s eps (per norm).
const COSINE_EPS: f64 = 1e-8;

/// One anchor row as a miner sees it.
pub(crate) struct Row<'a, T, L> {
    /// Distances to the `M` candidates.
    pub d: &'a [T],
    /// The candidates' labels.
    pub labels: &'a [L],
    /// The anchor's label.
    pub y: L,
    /// The anchor's own index among the candidates ([`NONE`] with a reference set).
    pub skip: usize,
    /// The candidates with the anchor's label, ascending (the anchor itself among them
    /// without a reference set).
    pub same: &'a [u32],
    /// The factor the row's weights carry (the per-anchor upstream gradient for
    /// `Reduction::None`, else 1).
    pub g: T,
}

/// Per-part scratch a miner may use: three rows of `M` values and `M` indices.
pub(crate) struct Scratch<'a, T> {
    /// The weights `∂(row loss)/∂d_j · g` the miner writes: a dense miner every entry; a
    /// sparse one finds them zero and adds to a few, each of which it records in `touched`.
    pub w: &'a mut [T],
    pub a: &'a mut [T],
    pub b: &'a mut [T],
    pub idx: &'a mut [u32],
    /// The columns a sparse miner wrote.
    pub touched: Touched<'a>,
}

/// The columns a sparse miner wrote (in any order, repeats allowed): `cols[..len]`, or
/// all of `w` to scan once `cols` ran out (`full`).
pub(crate) struct Touched<'a> {
    cols: &'a mut [u32],
    len: usize,
    full: bool,
}

impl Touched<'_> {
    /// Records that the miner wrote `w[j]`.
    #[inline(always)]
    pub fn push(&mut self, j: usize) {
        if let Some(c) = self.cols.get_mut(self.len) {
            *c = j as u32;
            self.len += 1;
        } else {
            self.full = true;
        }
    }
}

/// Counters and sums of a set of rows; class 0 holds the triplet losses' tuples and the
/// pair loss's positive pairs, class 1 the pair loss's negative pairs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Acc {
    pub sum: [f64; 2],
    pub tuples: [u64; 2],
    pub active: [u64; 2],
    pub pos_pairs: u64,
    pub neg_pairs: u64,
    pub anchors: u64,
    /// Strict mode: the flat index (in the `N × M` matrix) of the first non-finite distance.
    pub overflow: Option<usize>,
    /// A sparse miner weighted more columns of a row than its `max_picks` bound (a miner
    /// bug: the call returns an error rather than a gradient missing the extra columns).
    pub list_overflow: bool,
}

impl Acc {
    fn add(self, o: Acc) -> Acc {
        Acc {
            sum: [self.sum[0] + o.sum[0], self.sum[1] + o.sum[1]],
            tuples: [self.tuples[0] + o.tuples[0], self.tuples[1] + o.tuples[1]],
            active: [self.active[0] + o.active[0], self.active[1] + o.active[1]],
            pos_pairs: self.pos_pairs + o.pos_pairs,
            neg_pairs: self.neg_pairs + o.neg_pairs,
            anchors: self.anchors + o.anchors,
            overflow: match (self.overflow, o.overflow) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            list_overflow: self.list_overflow | o.list_overflow,
        }
    }
}

/// The loss-specific part: mining one row.
pub(crate) trait Miner<T: Float, L: BatchLabel>: Sync {
    /// Dense weights (backward by GEMM) or a few per row (backward by a sparse scan).
    const DENSE: bool;
    /// 2 when positive and negative terms are reduced separately (the pair loss).
    const CLASSES: usize;
    /// A row's weight for candidate `j` depends on `d_ij` and the two labels only (the
    /// pair loss): with rows as their own candidates and one upstream factor for all rows,
    /// the coefficient matrix is then exactly symmetric.
    const SYMMETRIC: bool = false;
    /// `Mean` of no tuple is NaN (TF-Addons' `0/0`) rather than 0.
    fn nan_when_empty(&self) -> bool {
        false
    }
    /// The loss is zero whatever the tuples (pytorch-metric-learning's pair-loss quirk).
    fn zero_quirk(&self, _acc: &Acc) -> bool {
        false
    }
    /// A sparse miner's bound on the non-zero weights of a row whose anchor has `np`
    /// positives (the candidates of its class): the length of the row's list of picks.
    fn max_picks(_np: usize) -> usize {
        usize::MAX
    }
    /// The margin of a batch-all hinge, whose rows as their own candidates can take the
    /// lower-triangle sweep ([`super::triangle`]); `None` for every other miner.
    fn tri_margin(&self) -> Option<T> {
        None
    }
    /// A batch-hard miner's `(margin, soft)`, whose rows as their own candidates take
    /// the lower-triangle sweep ([`extremes`]); `None` for every other miner (and for
    /// TF-Addons' fallbacks, which read whole rows).
    fn hard(&self) -> Option<(T, bool)> {
        None
    }
    /// Mines one row: writes every `s.w[j]`, returns the row's loss sum and counters.
    /// Must be `#[inline(always)]` (it runs inside the vectorised part loop).
    fn row(&self, r: &Row<'_, T, L>, s: &mut Scratch<'_, T>) -> (f64, Acc);
}

/// The buffers a batch loss needs, kept by the caller between calls: one `N × M` matrix
/// (distances, then gradient coefficients), the normalised rows and per-row vectors. A
/// call with sizes the workspace has already seen allocates none of them again.
#[derive(Clone, Debug, Default)]
pub struct Workspace<T> {
    mat: Vec<T>,
    qn: Vec<T>,
    rn: Vec<T>,
    q_raw: Vec<T>,
    r_raw: Vec<T>,
    q_sq: Vec<T>,
    r_sq: Vec<T>,
    q_ic: Vec<T>,
    r_ic: Vec<T>,
    q_k: Vec<T>,
    r_k: Vec<T>,
    coef_q: Vec<T>,
    coef_r: Vec<T>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    vals: Vec<f64>,
    scratch: Vec<T>,
    idx: Vec<u32>,
    ids: Vec<u32>,
    keys: Vec<(i128, u32)>,
    counts: Vec<u32>,
    offsets: Vec<u32>,
    members: Vec<u32>,
    picks: Vec<u32>,
    pick_x: Vec<T>,
    picks_len: Vec<u32>,
    col_off: Vec<u32>,
    col_row: Vec<u32>,
    col_x: Vec<T>,
    tri_t: Vec<T>,
    tri_u: Vec<u32>,
}

impl<T: Float> Workspace<T> {
    /// An empty workspace (buffers grow on first use).
    pub fn new() -> Self {
        Workspace {
            mat: Vec::new(),
            qn: Vec::new(),
            rn: Vec::new(),
            q_raw: Vec::new(),
            r_raw: Vec::new(),
            q_sq: Vec::new(),
            r_sq: Vec::new(),
            q_ic: Vec::new(),
            r_ic: Vec::new(),
            q_k: Vec::new(),
            r_k: Vec::new(),
            coef_q: Vec::new(),
            coef_r: Vec::new(),
            alpha: Vec::new(),
            beta: Vec::new(),
            vals: Vec::new(),
            scratch: Vec::new(),
            idx: Vec::new(),
            ids: Vec::new(),
            keys: Vec::new(),
            counts: Vec::new(),
            offsets: Vec::new(),
            members: Vec::new(),
            picks: Vec::new(),
            pick_x: Vec::new(),
            picks_len: Vec::new(),
            col_off: Vec::new(),
            col_row: Vec::new(),
            col_x: Vec::new(),
            tri_t: Vec::new(),
            tri_u: Vec::new(),
        }
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        let t = std::mem::size_of::<T>();
        t * (self.mat.capacity()
            + self.qn.capacity()
            + self.rn.capacity()
            + self.q_raw.capacity()
            + self.r_raw.capacity()
            + self.q_sq.capacity()
            + self.r_sq.capacity()
            + self.q_ic.capacity()
            + self.r_ic.capacity()
            + self.q_k.capacity()
            + self.r_k.capacity()
            + self.coef_q.capacity()
            + self.coef_r.capacity()
            + self.scratch.capacity()
            + self.pick_x.capacity()
            + self.col_x.capacity()
            + self.tri_t.capacity())
            + 8 * (self.alpha.capacity() + self.beta.capacity() + self.vals.capacity())
            + 4 * (self.idx.capacity()
                + self.ids.capacity()
                + self.counts.capacity()
                + self.offsets.capacity()
                + self.members.capacity()
                + self.picks.capacity()
                + self.picks_len.capacity()
                + self.tri_u.capacity()
                + self.col_off.capacity()
                + self.col_row.capacity())
            + std::mem::size_of::<(i128, u32)>() * self.keys.capacity()
    }
}

fn size<V: Clone + Default>(v: &mut Vec<V>, n: usize) {
    if v.len() != n {
        v.resize(n, V::default());
    }
}

/// [`size`] for the buffers the input does not bound (the `N × M` matrix, the per-part
/// rows): a failed allocation is an error naming the matrix, not an abort.
fn try_size<V: Clone + Default>(
    v: &mut Vec<V>,
    len: usize,
    loss: &'static str,
    (n, m): (usize, usize),
) -> Result<()> {
    if len > v.len() && v.try_reserve_exact(len - v.len()).is_err() {
        return Err(Error::Batch {
            loss,
            problem: format!(
                "{n} rows against {m} candidates need {len} × {} bytes of working memory, which could not be allocated",
                std::mem::size_of::<V>()
            ),
            fix: "split the batch or the reference set into smaller calls",
        });
    }
    size(v, len);
    Ok(())
}

/// Rows per part: a function of the row count only (never of the thread count).
fn part_rows(n: usize) -> usize {
    n.div_ceil(16).max(64).next_multiple_of(8)
}

/// Runs `leaf(args, part index)` over `parts` parts in a fixed binary tree, combining
/// left then right.
fn tree<B: Split, R: Send>(
    parts: usize,
    first: usize,
    par: bool,
    args: B,
    leaf: &(impl Fn(B, usize) -> R + Sync),
    join: &(impl Fn(R, R) -> R + Sync),
) -> R {
    tree_split(parts, first, par, false, args, leaf, join)
}

/// [`tree`], split where the work halves when part `p`'s work grows as `2p + 1` (`tri`:
/// the rows of a lower triangle) rather than at the middle part. The tree is still a
/// function of the part count alone.
fn tree_split<B: Split, R: Send>(
    parts: usize,
    first: usize,
    par: bool,
    tri: bool,
    args: B,
    leaf: &(impl Fn(B, usize) -> R + Sync),
    join: &(impl Fn(R, R) -> R + Sync),
) -> R {
    if parts <= 1 {
        return leaf(args, first);
    }
    let mid = if tri {
        (work_half(first, first + parts).round() as usize).saturating_sub(first).clamp(1, parts - 1)
    } else {
        parts / 2
    };
    let (l, r) = args.split_at(mid);
    let (a, b) = join_if(
        par,
        || tree_split(mid, first, par, tri, l, leaf, join),
        || tree_split(parts - mid, first + mid, par, tri, r, leaf, join),
    );
    join(a, b)
}

/// Where rows `r0..r1` of a lower triangle split into two halves of equal work (row `r`
/// holds `r` entries, so `r² − r0² = r1² − r²`).
fn work_half(r0: usize, r1: usize) -> f64 {
    ((r0 * r0 + r1 * r1) as f64 / 2.0).sqrt()
}

#[inline]
pub(crate) fn join_if<RA: Send, RB: Send>(
    par: bool,
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    #[cfg(feature = "rayon")]
    if par {
        return rayon::join(a, b);
    }
    let _ = par;
    (a(), b())
}

fn parallel(work: usize) -> bool {
    #[cfg(feature = "rayon")]
    {
        work >= 1 << 18 && rayon::current_num_threads() > 1
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = work;
        false
    }
}

/// `Σ a_k·b_k` in eight `f64` lanes (element `k` into lane `k % 8`), summed in a fixed
/// order: the same bits at any vector width.
#[inline(always)]
fn dot_f64<T: Float>(a: &[T], b: &[T]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b.as_chunks::<LANES>();
    for (x, y) in ac.iter().zip(bc) {
        for k in 0..LANES {
            acc[k] += x[k].f64() * y[k].f64();
        }
    }
    for (k, (x, y)) in at.iter().zip(bt).enumerate() {
        acc[k] += x.f64() * y.f64();
    }
    sum_lanes(&acc)
}

/// Per-row norms of `x` (`n × dim`): writes the normalised rows into `xn` when
/// `normalize`, and for the rows fed to the distance their squared norm, `1/max(‖x‖, eps)`
/// and the cosine's straight-through coefficient `1/(c·‖x‖)` (0 for a zero row); the raw
/// norms go into `raw`. Vectorised ([`crate::simd::vectorize`]).
struct Norms<'a, T> {
    x: &'a [T],
    dim: usize,
    normalize: bool,
    xn: &'a mut [T],
    raw: &'a mut [T],
    sq: &'a mut [T],
    ic: &'a mut [T],
    k: &'a mut [T],
}

impl<T: Float> pulp::WithSimd for Norms<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Norms { x, dim, normalize, xn, raw, sq, ic, k } = self;
        for i in 0..sq.len() {
            let row = &x[i * dim..(i + 1) * dim];
            let s = dot_f64(row, row);
            let norm = s.sqrt();
            raw[i] = T::of(norm);
            let (s2, n2) = if normalize {
                // x / max(‖x‖, eps) in T, as F.normalize (norm computed in T there; f64 here).
                let den = T::of(norm.max(NORMALIZE_EPS));
                let out = &mut xn[i * dim..(i + 1) * dim];
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = v / den;
                }
                let s2 = dot_f64(out, out);
                (s2, s2.sqrt())
            } else {
                (s, norm)
            };
            sq[i] = T::of(s2);
            let c = n2.max(COSINE_EPS);
            ic[i] = T::of(1.0 / c);
            k[i] = if n2 > 0.0 { T::of(1.0 / (c * n2)) } else { T::zero() };
        }
    }
}

/// Rows a leaf of the row-wise passes ([`norms`], [`normalize_backward`]) takes when they
/// run on threads (each row's result is its own, so the split changes no bit).
const ROWS_LEAF: usize = 64;

/// Whether the row-wise passes over `n × dim` values run on threads.
fn rows_parallel(n: usize, dim: usize) -> bool {
    n > ROWS_LEAF && parallel(n.saturating_mul(dim).saturating_mul(4))
}

/// Whether a scan of `x` ([`non_finite_par`]) runs on threads.
fn scan_par<T>(x: &[T]) -> bool {
    parallel(x.len().saturating_mul(4))
}

#[allow(clippy::too_many_arguments)]
fn norms<T: Float>(
    x: &[T],
    dim: usize,
    normalize: bool,
    xn: &mut [T],
    raw: &mut [T],
    sq: &mut [T],
    ic: &mut [T],
    k: &mut [T],
    par: bool,
) {
    let n = sq.len();
    if par && n > ROWS_LEAF {
        let h = n / 2;
        let (x1, x2) = x.split_at(h * dim);
        let (n1, n2) = xn.split_at_mut(if normalize { h * dim } else { 0 });
        let (r1, r2) = raw.split_at_mut(h);
        let (s1, s2) = sq.split_at_mut(h);
        let (i1, i2) = ic.split_at_mut(h);
        let (k1, k2) = k.split_at_mut(h);
        join_if(
            par,
            || norms(x1, dim, normalize, n1, r1, s1, i1, k1, par),
            || norms(x2, dim, normalize, n2, r2, s2, i2, k2, par),
        );
        return;
    }
    crate::simd::vectorize(Norms { x, dim, normalize, xn, raw, sq, ic, k });
}

/// Shared read-only context of a sweep.
struct Ctx<'a, T, L> {
    dist: BatchDistance,
    m: usize,
    q: &'a [T],
    r: &'a [T],
    labels: &'a [L],
    ref_labels: &'a [L],
    /// The candidates of class `k`: `members[offsets[k]..offsets[k + 1]]` (ascending).
    members: &'a [u32],
    offsets: &'a [u32],
    self_ref: bool,
    q_sq: &'a [T],
    r_sq: &'a [T],
    q_ic: &'a [T],
    r_ic: &'a [T],
    q_k: &'a [T],
    r_k: &'a [T],
    upstream: &'a [T],
    grad: bool,
    strict: bool,
    /// Rows as their own candidates with a symmetric miner: row `i` is swept over the
    /// columns `j < i` only (each unordered pair once; see `run`).
    lower: bool,
}

/// The vectorised body of one part: rows `i0..i0 + rows` whose Gram rows are in `mat`.
struct PartOp<'a, 'b, T, L, Mi> {
    mi: &'a Mi,
    c: &'a Ctx<'a, T, L>,
    i0: usize,
    mat: &'b mut [T],
    alpha: &'b mut [f64],
    vals: &'b mut [f64],
    scratch: &'b mut [T],
    idx: &'b mut [u32],
    beta: &'b mut [f64],
    /// Sparse miners: each row's list of non-zero columns (`cap` slots a row) and its
    /// length.
    picks: &'b mut [u32],
    pick_x: &'b mut [T],
    picks_len: &'b mut [u32],
    cap: usize,
}

impl<T: Float, L: BatchLabel, Mi: Miner<T, L>> pulp::WithSimd for PartOp<'_, '_, T, L, Mi> {
    type Output = Acc;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Acc {
        let PartOp { mi, c, i0, mat, alpha, vals, scratch, idx, beta, picks, pick_x, picks_len, cap } = self;
        let m = c.m;
        let mut acc = Acc::default();
        let (w, rest) = scratch.split_at_mut(m);
        let (sa, sb) = rest.split_at_mut(m);
        let (idx, cols) = idx.split_at_mut(m);
        // A sparse miner's weights start at zero, and are put back to zero after each row.
        if !Mi::DENSE {
            w.fill(T::zero());
        }
        // Each part zeroes its own column partials (on its thread, into its cache).
        beta.fill(0.0);
        let (beta0, beta1) = if c.grad { beta.split_at_mut(m) } else { (&mut [][..], &mut [][..]) };
        for (r, row) in mat.chunks_exact_mut(m.max(1)).enumerate().take(vals.len()) {
            let i = i0 + r;
            let row = if c.lower { &mut row[..i] } else { row };
            let skip = if c.self_ref { i } else { NONE };
            let finite = to_distances(c.dist, row, c.q_sq[i], c.q_ic[i], c.r_sq, c.r_ic, skip);
            if c.strict && !finite && acc.overflow.is_none() {
                // (An overflow the clamp at zero turned finite: the row's first entry.)
                acc.overflow = Some(row.iter().position(|v| !v.is_finite()).map_or(i * m, |j| i * m + j));
            }
            let g = match c.upstream.len() {
                0 => T::one(),
                1 => c.upstream[0],
                _ => c.upstream[i],
            };
            let y = c.labels[i];
            let same = class_members(c.members, c.offsets, y);
            let rw = Row { d: row, labels: c.ref_labels, y, skip, same, g };
            let mut s = Scratch {
                w: &mut *w,
                a: &mut *sa,
                b: &mut *sb,
                idx: &mut *idx,
                touched: Touched { cols: &mut *cols, len: 0, full: false },
            };
            let (v, a) = mi.row(&rw, &mut s);
            let (ncols, cols_full) = (s.touched.len, s.touched.full);
            // The touched columns, ascending and once each (`None`: scan the whole row).
            let touched = if Mi::DENSE || cols_full {
                None
            } else {
                let t = &mut cols[..ncols];
                t.sort_unstable();
                let mut len = 0;
                for k in 0..t.len() {
                    if len == 0 || t[k] != t[len - 1] {
                        t[len] = t[k];
                        len += 1;
                    }
                }
                Some(&cols[..len])
            };
            vals[r] = v;
            acc = acc.add(a);
            if c.grad {
                let (a0, a1) = if Mi::DENSE {
                    let a = coefficients::<T, L, Mi>(c, i, y, row, w, beta0, beta1);
                    picks_len[r] = count_nonzero(row) as u32;
                    a
                } else {
                    let list = (&mut picks[r * cap..(r + 1) * cap], &mut pick_x[r * cap..(r + 1) * cap]);
                    let (a0, a1, len, full) =
                        sparse_coefficients(c, i, y, Mi::CLASSES == 2, row, w, touched, beta0, beta1, list);
                    picks_len[r] = len as u32;
                    acc.list_overflow |= full;
                    (a0, a1)
                };
                alpha[2 * r] = a0;
                alpha[2 * r + 1] = a1;
            }
            if !Mi::DENSE {
                match touched {
                    Some(t) => {
                        for &j in t {
                            w[j as usize] = T::zero();
                        }
                    }
                    None => w.fill(T::zero()),
                }
            }
        }
        acc
    }
}

/// `labels` (and `ref_labels`) as dense class ids into `ids` (anchors first), by sorting
/// `(key, position)` pairs: `(anchor ids, reference ids)`, the reference ids being the
/// anchors' own without a reference set.
fn class_ids<'w, L: BatchLabel>(
    labels: &[L],
    ref_labels: Option<&[L]>,
    keys: &mut Vec<(i128, u32)>,
    table: &mut Vec<u32>,
    ids: &'w mut Vec<u32>,
) -> (&'w [u32], &'w [u32]) {
    let n = labels.len();
    let all = labels.iter().chain(ref_labels.unwrap_or(&[]));
    let len = n + ref_labels.map_or(0, <[L]>::len);
    size(ids, len);
    // Labels in a range at most a few times their number (class indices, as usual): a
    // table of the range marks the labels present, and their ranks are the ids, as the
    // sort below would give them, without the sort.
    let (lo, hi) = all.clone().fold((i128::MAX, i128::MIN), |(lo, hi), l| (lo.min(l.key()), hi.max(l.key())));
    if len > 0 && hi - lo < 4 * len as i128 + 64 {
        let span = (hi - lo) as usize + 1;
        table.clear();
        table.resize(span, 0);
        for l in all.clone() {
            table[(l.key() - lo) as usize] = 1;
        }
        let mut id = 0u32;
        for t in table.iter_mut() {
            let present = *t;
            *t = id;
            id += present;
        }
        for (slot, l) in ids.iter_mut().zip(all) {
            *slot = table[(l.key() - lo) as usize];
        }
        let (a, r) = ids.split_at(n);
        return (a, if ref_labels.is_some() { r } else { a });
    }
    keys.clear();
    keys.extend(all.enumerate().map(|(p, l)| (l.key(), p as u32)));
    keys.sort_unstable();
    let mut id = 0u32;
    for (k, &(key, p)) in keys.iter().enumerate() {
        if k > 0 && key != keys[k - 1].0 {
            id += 1;
        }
        ids[p as usize] = id;
    }
    let (a, r) = ids.split_at(n);
    (a, if ref_labels.is_some() { r } else { a })
}

/// The candidates of class `y` (none when no candidate has it).
#[inline(always)]
fn class_members<'a, L: BatchLabel>(members: &'a [u32], offsets: &[u32], y: L) -> &'a [u32] {
    let k = y.key() as usize;
    match (offsets.get(k), offsets.get(k + 1)) {
        (Some(&a), Some(&b)) => &members[a as usize..b as usize],
        _ => &[],
    }
}

/// The candidates grouped by class id (a counting sort, positions ascending within a
/// class): `counts[k]` their number, `offsets[k]..offsets[k + 1]` their range in
/// `members`.
fn group_classes(ref_ids: &[u32], counts: &mut Vec<u32>, offsets: &mut Vec<u32>, members: &mut Vec<u32>) {
    let classes = ref_ids.iter().max().map_or(0, |&k| k as usize + 1);
    counts.clear();
    counts.resize(classes, 0);
    for &k in ref_ids {
        counts[k as usize] += 1;
    }
    offsets.clear();
    offsets.push(0);
    let mut at = 0u32;
    for &c in counts.iter() {
        at += c;
        offsets.push(at);
    }
    size(members, ref_ids.len());
    for (j, &k) in ref_ids.iter().enumerate() {
        let slot = &mut offsets[k as usize];
        members[*slot as usize] = j as u32;
        *slot += 1;
    }
    // Each class's start was advanced past its members: shift back.
    for k in (1..offsets.len()).rev() {
        offsets[k] = offsets[k - 1];
    }
    offsets[0] = 0;
}

/// Gram row → distances, in place; returns whether every distance is finite (checked in
/// the same loop).
#[inline(always)]
fn to_distances<T: Float>(
    dist: BatchDistance,
    row: &mut [T],
    i_sq: T,
    i_ic: T,
    sq: &[T],
    ic: &[T],
    skip: usize,
) -> bool {
    let m = row.len();
    let (sq, ic) = (&sq[..m], &ic[..m]);
    let zero = T::zero();
    let mut finite = true;
    match dist {
        BatchDistance::Euclidean => {
            for j in 0..m {
                let s = i_sq + sq[j] - (row[j] + row[j]);
                finite &= s.is_finite();
                row[j] = T::select(s > zero, s, zero).sqrt();
            }
        }
        BatchDistance::SquaredEuclidean => {
            for j in 0..m {
                let s = i_sq + sq[j] - (row[j] + row[j]);
                finite &= s.is_finite();
                row[j] = T::select(s > zero, s, zero);
            }
        }
        BatchDistance::Cosine => {
            for j in 0..m {
                let d = T::one() - row[j] * (i_ic * ic[j]);
                finite &= d.is_finite();
                row[j] = d;
            }
        }
    }
    if skip < m {
        row[skip] = zero;
    }
    finite
}

/// Weights → gradient coefficients `X_ij`, in place over the distances; returns the
/// row's `α` per class and adds its `β` contributions.
#[inline(always)]
fn coefficients<T: Float, L: BatchLabel, Mi: Miner<T, L>>(
    c: &Ctx<'_, T, L>,
    i: usize,
    y: L,
    row: &mut [T],
    w: &[T],
    beta0: &mut [f64],
    beta1: &mut [f64],
) -> (f64, f64) {
    let m = row.len();
    let (w, labels, beta0, beta1) = (&w[..m], &c.ref_labels[..m], &mut beta0[..m], &mut beta1[..m]);
    let zero = T::zero();
    let two = Mi::CLASSES == 2;
    match c.dist {
        // Rows as their own candidates: the coefficients' sums come from the symmetrised
        // matrix's row sums instead (`symmetrize`).
        BatchDistance::Euclidean => {
            for j in 0..m {
                let d = row[j];
                row[j] = T::select(d > zero, w[j] / d, zero);
            }
            if c.self_ref {
                return (0.0, 0.0);
            }
            class_sums(row, labels, y, two, beta0, beta1)
        }
        BatchDistance::SquaredEuclidean => {
            for j in 0..m {
                row[j] = w[j] + w[j];
            }
            if c.self_ref {
                return (0.0, 0.0);
            }
            class_sums(row, labels, y, two, beta0, beta1)
        }
        BatchDistance::Cosine => {
            // α, β from u_j = w_j·cos_j (cos = 1 − d), then X_ij = w_j/(c_i·c_j) over d.
            let (ici, ki) = (c.q_ic[i], c.q_k[i]);
            let (ic, kr) = (&c.r_ic[..m], &c.r_k[..m]);
            let mut l0 = [0.0f64; LANES];
            let mut l1 = [0.0f64; LANES];
            for lo in (0..m).step_by(LANES) {
                for j in lo..(lo + LANES).min(m) {
                    let k = j - lo;
                    let wcos = w[j] * (T::one() - row[j]);
                    let pos = !two || labels[j] == y;
                    let u0 = T::select(pos, wcos, zero);
                    l0[k] += u0.f64();
                    beta0[j] += (u0 * kr[j]).f64();
                    if two {
                        let u1 = wcos - u0;
                        l1[k] += u1.f64();
                        beta1[j] += (u1 * kr[j]).f64();
                    }
                }
            }
            for j in 0..m {
                row[j] = w[j] * (ici * ic[j]);
            }
            let f = ki.f64();
            (sum_lanes(&l0) * f, sum_lanes(&l1) * f)
        }
    }
}

/// [`coefficients`] for a miner that weights a few candidates per row: only the 16-wide
/// chunks of `w` with a non-zero weight are visited (or only the `touched` columns, the
/// miner's list, ascending); each non-zero weight's column and
/// coefficient `X_ij` go into `list` (in column order: the backward reads only the lists,
/// never the `N × M` matrix again). `α` and `β` collect the same terms as the dense path.
/// Returns `(α₀, α₁, list length)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sparse_coefficients<T: Float, L: BatchLabel>(
    c: &Ctx<'_, T, L>,
    i: usize,
    y: L,
    two: bool,
    row: &[T],
    w: &[T],
    touched: Option<&[u32]>,
    beta0: &mut [f64],
    beta1: &mut [f64],
    list: (&mut [u32], &mut [T]),
) -> (f64, f64, usize, bool) {
    const C: usize = 16;
    let m = row.len();
    let (w, labels) = (&w[..m], &c.ref_labels[..m]);
    let zero = T::zero();
    let mut alpha = [0.0f64; 2];
    let mut len = 0usize;
    let mut full = false;
    let (ici, ki) = (c.q_ic[i], c.q_k[i]);
    let mut visit = |j: usize| {
        let wj = w[j];
        if wj == zero {
            return;
        }
        let d = row[j];
        let cls = usize::from(two && labels[j] != y);
        // The coefficient X_ij over the distance, and the term α_i / β_j collect.
        let (coef, term, beta_f) = match c.dist {
            BatchDistance::Euclidean => {
                let v = T::select(d > zero, wj / d, zero);
                (v, v, T::one())
            }
            BatchDistance::SquaredEuclidean => {
                let v = wj + wj;
                (v, v, T::one())
            }
            BatchDistance::Cosine => (wj * (ici * c.r_ic[j]), wj * (T::one() - d), c.r_k[j]),
        };
        // The miners' bound (`Miner::max_picks`) sizes the list; a column past it
        // would be a miner bug, kept out of the list rather than written past it.
        debug_assert!(len < list.0.len(), "a sparse miner weighted more columns than its bound");
        if let (Some(col), Some(x)) = (list.0.get_mut(len), list.1.get_mut(len)) {
            (*col, *x) = (j as u32, coef);
            len += 1;
        } else {
            full = true;
        }
        alpha[cls] += term.f64();
        let b = (term * beta_f).f64();
        if cls == 0 {
            beta0[j] += b;
        } else {
            beta1[j] += b;
        }
    };
    // The non-zero weights in column order: the columns the miner listed, or a scan of
    // the 16-wide chunks of `w` that hold any.
    match touched {
        Some(t) => t.iter().for_each(|&j| visit(j as usize)),
        None => {
            for (cb, wc) in w.chunks(C).enumerate() {
                if any_nonzero(wc) {
                    (cb * C..cb * C + wc.len()).for_each(&mut visit);
                }
            }
        }
    }
    if c.dist == BatchDistance::Cosine {
        let f = ki.f64();
        alpha = [alpha[0] * f, alpha[1] * f];
    }
    (alpha[0], alpha[1], len, full)
}

/// `Σ_j` of `xs` split by class (same label as the anchor, or not, when `two`), in eight
/// `f64` lanes, and each element added into `beta{0,1}[j]`.
#[inline(always)]
fn class_sums<T: Float, L: BatchLabel>(
    xs: &[T],
    labels: &[L],
    y: L,
    two: bool,
    beta0: &mut [f64],
    beta1: &mut [f64],
) -> (f64, f64) {
    let m = xs.len();
    let (labels, beta0) = (&labels[..m], &mut beta0[..m]);
    let zero = T::zero();
    let mut l0 = [0.0f64; LANES];
    let mut l1 = [0.0f64; LANES];
    let chunks = m / LANES;
    for c in 0..chunks {
        for k in 0..LANES {
            let j = c * LANES + k;
            let x = xs[j];
            let pos = !two || labels[j] == y;
            let x0 = T::select(pos, x, zero).f64();
            l0[k] += x0;
            beta0[j] += x0;
            if two {
                let x1 = x.f64() - x0;
                l1[k] += x1;
                beta1[j] += x1;
            }
        }
    }
    for j in chunks * LANES..m {
        let k = j - chunks * LANES;
        let x = xs[j];
        let pos = !two || labels[j] == y;
        let x0 = T::select(pos, x, zero).f64();
        l0[k] += x0;
        beta0[j] += x0;
        if two {
            let x1 = x.f64() - x0;
            l1[k] += x1;
            beta1[j] += x1;
        }
    }
    (sum_lanes(&l0), sum_lanes(&l1))
}

#[inline(always)]
fn sum_t<T: Float>(a: &[T; LANES]) -> f64 {
    ((a[0].f64() + a[4].f64()) + (a[1].f64() + a[5].f64()))
        + ((a[2].f64() + a[6].f64()) + (a[3].f64() + a[7].f64()))
}

/// The first non-finite element of `x`: 64-element chunks checked whole (a fold that
/// vectorises), the position searched only in the chunk that fails.
fn non_finite<T: Float>(x: &[T]) -> Option<(usize, T)> {
    struct Op<'a, T>(&'a [T]);
    impl<T: Float> pulp::WithSimd for Op<'_, T> {
        type Output = Option<usize>;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> Option<usize> {
            for (c, chunk) in self.0.chunks(64).enumerate() {
                if !chunk.iter().fold(true, |a, v| a & v.is_finite()) {
                    return chunk.iter().position(|v| !v.is_finite()).map(|i| c * 64 + i);
                }
            }
            None
        }
    }
    crate::simd::vectorize(Op(x)).map(|i| (i, x[i]))
}

/// [`non_finite`] in halves on threads for a large `x` (the first index either way). On
/// entry to a call this is also what wakes the pool's idle threads, while there is
/// still little to do.
fn non_finite_par<T: Float>(x: &[T], par: bool) -> Option<(usize, T)> {
    const LEAF: usize = 1 << 14;
    if !par || x.len() <= LEAF {
        return non_finite(x);
    }
    let h = (x.len() / 2).next_multiple_of(64);
    let (a, b) = x.split_at(h);
    let (l, r) = join_if(true, || non_finite_par(a, true), || non_finite_par(b, true));
    l.or(r.map(|(i, v)| (i + h, v)))
}

#[cfg(test)]
thread_local! {
    /// Tests: take the full-row sweep where a lower-triangle one would run.
    pub(crate) static FULL_SWEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the lower-triangle sweeps are turned off (tests comparing them with the full
/// sweep).
fn full_sweep() -> bool {
    #[cfg(test)]
    {
        FULL_SWEEP.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// Runs a batch loss: validates, sweeps, reduces, and (with `grad`) back-propagates.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<T: Float, L: BatchLabel, Mi: Miner<T, u32>>(
    mi: &Mi,
    loss: &'static str,
    opt: Common,
    batch: &Batch<'_, T, L>,
    reduction: BatchReduction,
    grad: Option<(&[T], &mut [T])>,
    out: &mut [T],
    grad_ref: Option<&mut [T]>,
    ws: &mut Workspace<T>,
) -> Result<BatchStats> {
    let strict = opt.mode.is_strict();
    let emb = batch.embeddings;
    let (n, dim) = (emb.rows(), emb.cols());
    if batch.labels.len() != n {
        return Err(Error::Shape {
            loss,
            arg: "labels",
            got: vec![batch.labels.len()],
            expected: format!("one label per embedding row ({n})"),
        });
    }
    let (r_emb, ref_labels) = match batch.reference {
        Some((r, rl)) => {
            if r.cols() != dim {
                return Err(Error::Shape {
                    loss,
                    arg: "reference embeddings",
                    got: vec![r.rows(), r.cols()],
                    expected: format!("rows of D = {dim} values, as the embeddings"),
                });
            }
            if rl.len() != r.rows() {
                return Err(Error::Shape {
                    loss,
                    arg: "reference labels",
                    got: vec![rl.len()],
                    expected: format!("one label per reference row ({})", r.rows()),
                });
            }
            (Some(r), rl)
        }
        None => (None, batch.labels),
    };
    let self_ref = r_emb.is_none();
    let m = r_emb.map_or(n, |r| r.rows());
    // Rows and candidates are indexed as u32 (labels, picks); N·M must be addressable.
    if n.checked_add(if self_ref { 0 } else { m }).is_none_or(|t| t > u32::MAX as usize)
        || n.checked_mul(m).is_none_or(|t| t > isize::MAX as usize / std::mem::size_of::<T>())
    {
        return Err(Error::Batch {
            loss,
            problem: format!("{n} rows against {m} candidates is more than one call can index"),
            fix: "split the batch or the reference set into smaller calls",
        });
    }
    check_buffer(loss, "output", out.len(), reduction.output_len(n))?;
    let grad_ref = match grad_ref {
        Some(g) if self_ref => {
            return Err(Error::Buffer {
                loss,
                buffer: "grad reference (the batch has no reference set)",
                got: g.len(),
                expected: 0,
            })
        }
        Some(g) if grad.is_some() => {
            check_buffer(loss, "grad reference", g.len(), m * dim)?;
            Some(g)
        }
        _ => None,
    };
    if let Some((up, g)) = &grad {
        check_buffer(loss, "grad embeddings", g.len(), n * dim)?;
        let ok = match reduction {
            BatchReduction::None => up.len() == n || up.len() == 1,
            _ => up.len() == 1,
        };
        if !ok {
            return Err(Error::Buffer {
                loss,
                buffer: "upstream gradient",
                got: up.len(),
                expected: reduction.output_len(n),
            });
        }
    }
    let ref_data = r_emb.map_or(&[][..], |r| r.data());
    if strict {
        if n == 0 {
            return Err(Error::Empty { loss, arg: "embeddings" });
        }
        if m == 0 {
            return Err(Error::Empty { loss, arg: "reference embeddings" });
        }
        if dim == 0 {
            return Err(Error::Batch {
                loss,
                problem: format!("the embeddings have D = 0 columns ({n} x 0)"),
                fix: "pass the embedding matrix with its real row length",
            });
        }
    }

    // Norms (and normalised copies).
    let normalize = opt.normalize;
    size(&mut ws.q_raw, n);
    size(&mut ws.q_sq, n);
    size(&mut ws.q_ic, n);
    size(&mut ws.q_k, n);
    size(&mut ws.qn, if normalize { n * dim } else { 0 });
    let par_q = rows_parallel(n, dim);
    norms(
        emb.data(),
        dim,
        normalize,
        &mut ws.qn,
        &mut ws.q_raw,
        &mut ws.q_sq,
        &mut ws.q_ic,
        &mut ws.q_k,
        par_q,
    );
    if let Some(r) = r_emb {
        size(&mut ws.r_raw, m);
        size(&mut ws.r_sq, m);
        size(&mut ws.r_ic, m);
        size(&mut ws.r_k, m);
        size(&mut ws.rn, if normalize { m * dim } else { 0 });
        let par_r = rows_parallel(m, dim);
        norms(
            r.data(),
            dim,
            normalize,
            &mut ws.rn,
            &mut ws.r_raw,
            &mut ws.r_sq,
            &mut ws.r_ic,
            &mut ws.r_k,
            par_r,
        );
    }
    // Non-finite input, checked in the norms' pass: a row whose norm is not finite is
    // searched (its norm can also overflow from finite values, which then pass).
    let finite_norms = |raw: &[T]| raw.iter().all(|v| v.is_finite());
    if !finite_norms(&ws.q_raw) || (!self_ref && !finite_norms(&ws.r_raw)) {
        if strict {
            if let Some((i, v)) = non_finite(emb.data()) {
                return Err(Error::NonFinite { loss, arg: "embeddings", index: i, value: Value(v.f64()) });
            }
            if let Some((i, v)) = non_finite(ref_data) {
                return Err(Error::NonFinite {
                    loss,
                    arg: "reference embeddings",
                    index: i,
                    value: Value(v.f64()),
                });
            }
        } else if non_finite(emb.data()).is_some() || non_finite(ref_data).is_some() {
            out.fill(T::nan());
            if let Some((_, g)) = grad {
                g.fill(T::nan());
            }
            if let Some(g) = grad_ref {
                g.fill(T::nan());
            }
            return Ok(BatchStats::default());
        }
    }
    if strict {
        // Finite rows whose norm overflows (every distance from them would be wrong, and
        // the clamp at zero would hide it): refused, naming the row.
        let big =
            |sq: &[T], raw: &[T]| sq.iter().zip(raw).position(|(s, r)| !s.is_finite() || !r.is_finite());
        let at = big(&ws.q_sq, &ws.q_raw).map(|i| ("embedding rows", i)).or_else(|| {
            if self_ref {
                None
            } else {
                big(&ws.r_sq, &ws.r_raw).map(|i| ("reference rows", i))
            }
        });
        if let Some((arg, i)) = at {
            return Err(Error::Overflow {
                loss,
                quantity: "squared norm",
                arg,
                index: Some(i),
                dtype: T::DTYPE,
            });
        }
    }
    if strict && (opt.distance == BatchDistance::Cosine || normalize) {
        let zero = |raw: &[T], what: &str| {
            raw.iter().position(|v| *v == T::zero()).map(|i| format!("row {i} of the {what} is all zeros"))
        };
        if let Some(p) = zero(&ws.q_raw, "embeddings").or_else(|| {
            if self_ref {
                None
            } else {
                zero(&ws.r_raw, "reference embeddings")
            }
        }) {
            return Err(Error::Batch {
                loss,
                problem: p,
                fix: "the cosine distance and normalize need non-zero rows: drop them, or use the euclidean distance without normalize",
            });
        }
    }

    let Workspace {
        mat,
        qn,
        rn,
        q_raw,
        r_raw,
        q_sq,
        r_sq,
        q_ic,
        r_ic,
        q_k,
        r_k,
        coef_q,
        coef_r,
        alpha,
        beta,
        vals,
        scratch,
        idx,
        ids,
        keys,
        counts,
        offsets,
        members,
        picks,
        pick_x,
        picks_len,
        col_off,
        col_row,
        col_x,
        tri_t,
        tri_u,
    } = ws;
    // The labels as dense u32 class ids (equal ids exactly for equal labels), anchors then
    // reference rows: the miners' compares then run at the distances' lane width.
    let (labels, ref_labels) =
        class_ids(batch.labels, if self_ref { None } else { Some(ref_labels) }, keys, counts, ids);
    group_classes(ref_labels, counts, offsets, members);
    let q: &[T] = if normalize { qn } else { emb.data() };
    let r: &[T] = if self_ref {
        q
    } else if normalize {
        rn
    } else {
        ref_data
    };
    let (r_sq, r_ic, r_k): (&[T], &[T], &[T]) = if self_ref { (q_sq, q_ic, q_k) } else { (r_sq, r_ic, r_k) };
    let want_grad = grad.is_some();
    // Per-anchor values (`None`) need whole rows.
    let lower = self_ref && Mi::SYMMETRIC && reduction != BatchReduction::None;
    // Batch-all's hinge with rows as their own candidates and one reduced value: the
    // lower-triangle sweep (each unordered pair once, for both anchors), when its tables
    // stay small and no distance can overflow (every squared norm below 1/16 of f32's
    // largest value, so `|s| ≤ 4·max` is finite).
    let slots = counts.iter().max().map_or(0, |&c| c as usize).saturating_sub(1);
    let tri_margin = mi.tri_margin().filter(|_| {
        self_ref
            && reduction != BatchReduction::None
            && matches!(opt.distance, BatchDistance::Euclidean | BatchDistance::SquaredEuclidean)
            && (1..=super::triangle::MAX_SLOTS).contains(&slots)
            && q_sq.iter().all(|v| v.f64() < f64::from(f32::MAX) / 16.0)
    });
    let tri = tri_margin.is_some();
    // Batch-hard with rows as their own candidates: the lower triangle alone.
    let hard = mi.hard().filter(|_| self_ref && !lower && !tri && !full_sweep());
    let upstream: &[T] = match (&grad, reduction) {
        (Some((up, _)), BatchReduction::None) => up,
        _ => &[],
    };
    let ctx = Ctx {
        dist: opt.distance,
        m,
        q,
        r,
        labels,
        ref_labels,
        members,
        offsets,
        self_ref,
        q_sq,
        r_sq,
        q_ic,
        r_ic,
        q_k,
        r_k,
        upstream,
        grad: want_grad,
        strict,
        lower,
    };

    // The sweep.
    let prt = part_rows(n);
    let parts = n.div_ceil(prt).max(1);
    try_size(mat, n * m, loss, (n, m))?;
    size(alpha, 2 * n);
    size(vals, n);
    try_size(scratch, parts * 3 * m, loss, (n, m))?;
    try_size(idx, parts * 3 * m, loss, (n, m))?;
    try_size(beta, if want_grad { parts * 2 * m } else { 0 }, loss, (n, m))?;
    // A sparse miner's rows list their non-zero columns: as many slots a row as its bound
    // for the largest class (at most `M`).
    let listed = !Mi::DENSE && want_grad;
    let cap = if listed { Mi::max_picks(counts.iter().max().map_or(0, |&c| c as usize)).min(m) } else { 0 };
    try_size(picks, n * cap, loss, (n, m))?;
    try_size(pick_x, n * cap, loss, (n, m))?;
    size(picks_len, if want_grad { n } else { 0 });
    let par = parallel(n.saturating_mul(m).saturating_mul(dim.max(1)));
    // Rows as their own candidates: the Gram matrix is symmetric, so half of it is
    // computed and the rest mirrored (exactly symmetric distances, too). A symmetric
    // miner (its weight a function of the distance and the two labels) then needs only
    // the lower triangle: each unordered pair is swept once, its counts and sums doubled,
    // and the backward's matrix is `2·s_c·(L + Lᵀ)`.
    // (Batch-hard's lower sweep computes its own Gram rows, part by part.)
    if self_ref && n > 0 && hard.is_none() {
        gram_symmetric(q, n, dim, mat, vals, !lower && !tri, par);
    }
    let hard_acc = match hard {
        Some((margin, soft)) if n > 0 => {
            let b = extremes::Bufs {
                mat: &mut mat[..],
                alpha: &mut alpha[..],
                vals: &mut vals[..],
                scratch: &mut scratch[..],
                idx: &mut idx[..],
                beta: &mut beta[..],
                picks: &mut picks[..],
                pick_x: &mut pick_x[..],
                picks_len: &mut picks_len[..],
                cap,
            };
            let acc = extremes::sweep(&ctx, margin, soft, prt, parts, par, b);
            if acc.is_none() {
                // A distance that is not finite: the full sweep (which names it), from a
                // whole Gram matrix again.
                gram_symmetric(q, n, dim, mat, vals, true, par);
            }
            acc
        }
        _ => None,
    };
    let acc = if let Some(margin) = tri_margin {
        use super::triangle::{self as tr, table_len};
        beta.fill(0.0);
        let tl = table_len(slots, n);
        try_size(tri_t, 2 * tl, loss, (n, m))?;
        try_size(tri_u, tl + 2 * n, loss, (n, m))?;
        let (thr, pd) = tri_t.split_at_mut(tl);
        let (cnt, rest) = tri_u.split_at_mut(tl);
        let (pos, nnz) = rest.split_at_mut(n);
        let euclid = opt.distance == BatchDistance::Euclidean;
        tr::thresholds(euclid, mat, q_sq, labels, members, offsets, margin, slots, thr, pd, pos, par);
        cnt.fill(0);
        nnz.fill(0);
        let c = tr::Tri {
            euclid,
            n,
            sq: q_sq,
            labels,
            k: slots,
            thr,
            par,
            #[cfg(target_arch = "x86_64")]
            wide: super::tile::wide(),
        };
        // The row sums `α_i = Σ_j S'_ij` (into `vals` first: one per row).
        vals.fill(0.0);
        let dsum = tr::sweep(&c, mat, cnt, nnz, vals);
        let cl = tr::Classes { sizes: counts, members, offsets, pd, pos };
        let t = tr::finish(&c, &cl, cnt, dsum, mat, nnz, vals);
        for (a, v) in alpha.chunks_exact_mut(2).zip(vals.iter_mut()) {
            (a[0], a[1]) = (*v, 0.0);
            *v = 0.0;
        }
        if want_grad {
            picks_len.copy_from_slice(nnz);
        }
        Acc {
            sum: [t.sum, 0.0],
            tuples: [t.tuples, 0],
            active: [t.active, 0],
            pos_pairs: t.pos_pairs,
            neg_pairs: t.neg_pairs,
            anchors: t.anchors,
            overflow: None,
            list_overflow: false,
        }
    } else if n == 0 || m == 0 {
        beta.fill(0.0);
        Acc::default()
    } else if let Some(acc) = hard_acc {
        acc
    } else {
        let bw = if want_grad { 2 * m } else { 0 };
        // The lower sweep's rows grow with their index: the tree splits by work.
        tree_split(
            parts,
            0,
            par,
            lower,
            (
                Chunks(&mut mat[..], prt * m),
                Chunks(&mut alpha[..], prt * 2),
                Chunks(&mut vals[..], prt),
                Chunks(&mut scratch[..], 3 * m),
                Chunks(&mut idx[..], 3 * m),
                Chunks(&mut beta[..], bw),
                (Chunks(&mut picks[..], prt * cap), Chunks(&mut pick_x[..], prt * cap)),
                Chunks(&mut picks_len[..], if want_grad { prt } else { 0 }),
            ),
            &|(
                Chunks(mat, _),
                Chunks(alpha, _),
                Chunks(vals, _),
                Chunks(scratch, _),
                Chunks(idx, _),
                Chunks(beta, _),
                (Chunks(picks, _), Chunks(pick_x, _)),
                Chunks(picks_len, _),
            ),
              part| {
                let i0 = part * prt;
                let rows = vals.len();
                if !ctx.self_ref {
                    T::gemm(
                        mat,
                        super::gemm::Operand::new(&ctx.q[i0 * dim..(i0 + rows) * dim], rows, dim),
                        super::gemm::Operand::new(ctx.r, m, dim).t(),
                        T::one(),
                        false,
                    );
                }
                crate::simd::vectorize(PartOp {
                    mi,
                    c: &ctx,
                    i0,
                    mat,
                    alpha,
                    vals,
                    scratch,
                    idx,
                    beta,
                    picks,
                    pick_x,
                    picks_len,
                    cap,
                })
            },
            &|a: Acc, b: Acc| a.add(b),
        )
    };

    let mut acc = acc;
    if lower {
        // Each unordered pair was swept once: the ordered pairs count it twice. An
        // anchor has a pair of each kind when its class has another member and is not
        // every row.
        acc.sum = [2.0 * acc.sum[0], 2.0 * acc.sum[1]];
        acc.tuples = [2 * acc.tuples[0], 2 * acc.tuples[1]];
        acc.active = [2 * acc.active[0], 2 * acc.active[1]];
        acc.pos_pairs *= 2;
        acc.neg_pairs *= 2;
        acc.anchors = labels
            .iter()
            .filter(|&&y| {
                let k = counts[y as usize] as usize;
                k >= 2 && k < n
            })
            .count() as u64;
    }
    if acc.list_overflow {
        return Err(Error::Batch {
            loss,
            problem: "internal error: a row's gradient needs more columns than the miner's bound".into(),
            fix: "please report this batch (it is a marginloss bug); the loss value is unaffected",
        });
    }
    let stats = BatchStats {
        tuples: acc.tuples[0] + acc.tuples[1],
        active: acc.active[0] + acc.active[1],
        positive_pairs: acc.pos_pairs,
        negative_pairs: acc.neg_pairs,
        anchors: acc.anchors,
    };
    if strict {
        if let Some(k) = acc.overflow {
            return Err(Error::Overflow {
                loss,
                quantity: "distance",
                arg: "distances",
                index: Some(k),
                dtype: T::DTYPE,
            });
        }
        let refd = !self_ref;
        if acc.pos_pairs == 0 {
            return Err(Error::Batch {
                loss,
                problem: if refd {
                    "no reference row shares a label with an anchor, so there is no positive pair".into()
                } else {
                    format!("no label appears twice among the {n} rows, so there is no positive pair")
                },
                fix: "sample at least two examples of each class per batch (P x K batches: P classes, K >= 2 each)",
            });
        }
        if acc.neg_pairs == 0 {
            return Err(Error::Batch {
                loss,
                problem: "every candidate has the anchor's label (one class), so there is no negative".into(),
                fix: "sample at least two classes per batch (P x K batches with P >= 2)",
            });
        }
        if stats.tuples == 0 {
            return Err(Error::Batch {
                loss,
                problem: "no anchor has both a positive and a negative".into(),
                fix: "sample P x K batches (P >= 2 classes, K >= 2 of each)",
            });
        }
    }

    // Reduction.
    let quirk = !strict && mi.zero_quirk(&acc);
    let mut scale = [1.0f64; 2];
    match reduction {
        BatchReduction::None => {
            for (o, v) in out.iter_mut().zip(vals.iter()) {
                *o = T::of(if quirk { 0.0 } else { *v });
            }
            if quirk {
                scale = [0.0; 2];
            }
        }
        _ => {
            let mut value = 0.0;
            for c in 0..Mi::CLASSES {
                let div = match reduction {
                    BatchReduction::Mean => acc.tuples[c],
                    BatchReduction::MeanNonzero => acc.active[c],
                    _ => 1,
                };
                if div == 0 {
                    scale[c] = 0.0;
                } else {
                    value += acc.sum[c] / div as f64;
                    scale[c] = 1.0 / div as f64;
                }
            }
            if reduction == BatchReduction::Mean && stats.tuples == 0 && mi.nan_when_empty() {
                value = f64::NAN;
                scale = [f64::NAN; 2];
            }
            if quirk {
                value = 0.0;
                scale = [0.0; 2];
            }
            if Mi::CLASSES == 1 {
                scale[1] = scale[0];
            }
            out[0] = T::of(value);
            if let Some((up, _)) = &grad {
                let g = up[0].f64();
                scale = [scale[0] * g, scale[1] * g];
            }
        }
    }

    // Strict mode never hands back a non-finite loss from finite input: a distance or a
    // loss that overflows the compute type is refused, naming the first anchor.
    if strict {
        let overflow = |quantity, arg, index| Error::Overflow { loss, quantity, arg, index, dtype: T::DTYPE };
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Err(overflow("loss", "output", Some(i)));
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(overflow("loss", "output", None));
        }
    }
    let Some((_, grad)) = grad else { return Ok(stats) };
    let mut grad_ref = grad_ref;
    if scale.iter().any(|s| !s.is_finite()) {
        grad.fill(T::nan());
        if let Some(g) = grad_ref.as_deref_mut() {
            g.fill(T::nan());
        }
        return Ok(stats);
    }
    if scale == [0.0; 2] || n == 0 || m == 0 || dim == 0 {
        grad.fill(T::zero());
        if let Some(g) = grad_ref.as_deref_mut() {
            g.fill(T::zero());
        }
        return Ok(stats);
    }
    if lower {
        // `S = s_c·(X + Xᵀ) = 2·s_c·(L + Lᵀ)`: every gradient term of a swept pair twice.
        scale = [2.0 * scale[0], 2.0 * scale[1]];
    }
    let s0 = T::of(scale[0]);
    let s1 = T::of(scale[1]);
    // β_j: the parts' partials summed into the first part's, in part order (whole
    // partials at a time: a vector loop rather than a strided walk per column).
    if parts > 1 && beta.len() >= parts * 2 * m {
        let (first, rest) = beta.split_at_mut(2 * m);
        let rest = &rest[..(parts - 1) * 2 * m];
        // Column ranges on threads; each column's partials added in part order.
        const COLS: usize = 1024;
        tree(
            (2 * m).div_ceil(COLS),
            0,
            par,
            Chunks(first, COLS),
            &|Chunks(f, _), c| {
                let at = c * COLS..c * COLS + f.len();
                for p in rest.chunks_exact(2 * m) {
                    for (a, b) in f.iter_mut().zip(&p[at.clone()]) {
                        *a += *b;
                    }
                }
            },
            &|(), ()| (),
        );
    }
    let beta_j = |j: usize| -> f64 { scale[0] * beta[j] + scale[1] * beta[m + j] };
    size(coef_q, n);
    for i in 0..n {
        coef_q[i] = T::of(scale[0] * alpha[2 * i] + scale[1] * alpha[2 * i + 1]);
    }
    // A sparse one-class miner's scale rides on its scans (`s`) instead of a pass over
    // the whole matrix.
    if self_ref {
        for (j, c) in coef_q.iter_mut().enumerate() {
            *c = T::of(c.f64() + beta_j(j));
        }
    } else {
        size(coef_r, m);
        for (j, c) in coef_r.iter_mut().enumerate() {
            *c = T::of(beta_j(j));
        }
    }
    // A dense miner's matrix with few non-zero coefficients (a loss most of whose pairs
    // satisfy their margins) goes through the sparse backward instead of a GEMM: its
    // columns listed from the matrix.
    // The lists take `cap` slots a row (the longest row's count): only when they need at
    // most half the matrix's memory.
    let nnz: usize = picks_len.iter().map(|&c| c as usize).sum();
    let longest = picks_len.iter().max().map_or(0, |&c| c as usize);
    let list_bytes = n.saturating_mul(longest).saturating_mul(4 + std::mem::size_of::<T>());
    // The lower-triangle sweep's matrix is `S'` itself, symmetric: its lists come from the
    // lower triangle as the symmetric miner's, at the scale `s_c` (not doubled).
    let lower_lists = lower || tri;
    let entries = if lower_lists { n.saturating_mul(n.saturating_sub(1)) / 2 } else { n.saturating_mul(m) };
    let sparse_dense = Mi::DENSE
        && nnz.saturating_mul(SPARSE_RATIO) < entries
        && list_bytes.saturating_mul(2) <= n.saturating_mul(m).saturating_mul(std::mem::size_of::<T>());
    let mut cap = cap;
    if sparse_dense {
        cap = longest;
        try_size(picks, n * cap, loss, (n, m))?;
        try_size(pick_x, n * cap, loss, (n, m))?;
        if cap > 0 {
            tree_split(
                parts,
                0,
                par,
                lower_lists,
                (
                    Chunks(&mut mat[..], prt * m),
                    Chunks(&mut picks[..], prt * cap),
                    Chunks(&mut pick_x[..], prt * cap),
                ),
                &|(Chunks(x, _), Chunks(p, _), Chunks(v, _)), part| {
                    list_nonzeros(x, m, cap, p, v, lower_lists.then_some(part * prt))
                },
                &|(), ()| (),
            );
        }
    }
    if Mi::DENSE && !sparse_dense {
        // The class scales go into the matrix: with its transpose added when the rows
        // are their own candidates.
        if self_ref {
            // Euclidean and squared: `coef_k = Σ_j S_kj` (the row sums of the symmetrised
            // matrix hold every α and β term, each with its class scale).
            let sums = (opt.distance != BatchDistance::Cosine).then_some(&mut coef_q[..]);
            if tri {
                // `S'` is whole and symmetric and `coef = s·α` holds its row sums: the scale
                // rides on the product.
            } else if lower {
                symmetrize(mat, n, labels, Mi::CLASSES == 2, s0, s1, sums, vals, true, par);
            } else if Mi::SYMMETRIC && upstream.len() <= 1 {
                // X is symmetric (the Gram matrix is, exactly, and so the distances):
                // s_c·(X + Xᵀ) = 2·s_c·X, a row-parallel scale instead of the transposes.
                let two = T::one() + T::one();
                scale_rows(mat, n, labels, Mi::CLASSES == 2, two * s0, two * s1, sums, prt, par);
            } else {
                symmetrize(mat, n, labels, Mi::CLASSES == 2, s0, s1, sums, vals, false, par);
            }
        } else if scale != [1.0; 2] {
            scale_classes(mat, m, labels, ref_labels, Mi::CLASSES == 2, s0, s1);
        }
        // ∂/∂q_i = coef_i·q_i − Σ_j X_ij·r_j
        // The lower-triangle sweep's `S'` carries no scale: the product takes it.
        let alpha = if tri { -s0 } else { -T::one() };
        rows_backward_dense(mat, m, dim, q, r, coef_q, grad, alpha, prt, par);
        if let Some(gr) = grad_ref.as_deref_mut() {
            cols_backward_dense(mat, n, m, dim, q, r, coef_r, gr, par);
        }
    } else {
        debug_assert!(!Mi::DENSE || sparse_dense);
        let lists = Lists {
            x: pick_x,
            picks,
            len: picks_len,
            cap,
            scale: [s0, s1],
            two: Mi::CLASSES == 2,
            labels,
            ref_labels,
        };
        let want_cols = self_ref || grad_ref.is_some();
        let sums = sparse_dense && self_ref && opt.distance != BatchDistance::Cosine;
        let lists_at = &lists;
        let transpose = move || {
            // Moved out of the captures: the columns borrow the workspace, not the closure.
            let (off, row, x) = (col_off, col_row, col_x);
            if want_cols {
                transpose_lists(lists_at, m, off, row, x, loss, (n, m)).map(Some)
            } else {
                Ok(None)
            }
        };
        // ∂/∂q_i = coef_i·q_i − Σ_j X_ij·r_j over row i's list. The row sums need the
        // columns first; otherwise the columns' counting sort runs beside the rows' pass.
        let cols = if sums {
            let cols = transpose()?;
            if let Some(cols) = &cols {
                // The row sums the symmetrisation would give: coef_k = Σ_j S_kj.
                list_sums(&lists, cols, coef_q, prt, par);
            }
            rows_backward_sparse(&lists, dim, q, r, coef_q, grad, prt, par);
            cols
        } else {
            let coef_q = &coef_q[..];
            let grad = &mut *grad;
            let (cols, ()) =
                join_if(par, transpose, || rows_backward_sparse(&lists, dim, q, r, coef_q, grad, prt, par));
            cols?
        };
        // Then the transposed half (rows as their own candidates) or the reference rows'
        // gradient, both scattered from every list into parts of the destination rows.
        if let Some(cols) = cols {
            if self_ref {
                scatter_cols(&cols, dim, q, None, grad, par);
            }
            if let Some(gr) = grad_ref.as_deref_mut() {
                scatter_cols(&cols, dim, q, Some((r, &coef_r[..])), gr, par);
            }
        }
    }
    if normalize {
        normalize_backward(grad, q, q_raw, dim, rows_parallel(n, dim));
        if let Some(gr) = grad_ref.as_deref_mut() {
            normalize_backward(gr, r, r_raw, dim, rows_parallel(m, dim));
        }
    }
    // The same for the gradients (with a finite upstream; a non-finite one is the
    // caller's to propagate).
    let up_finite = upstream.iter().all(|u| u.is_finite()) && scale.iter().all(|s| s.is_finite());
    if strict && up_finite {
        let overflow =
            |arg, index| Error::Overflow { loss, quantity: "gradient", arg, index, dtype: T::DTYPE };
        if let Some(i) = non_finite_par(grad, scan_par(grad)).map(|(i, _)| i) {
            return Err(overflow("embeddings", Some(i)));
        }
        if let Some(i) = grad_ref.as_deref().and_then(|g| non_finite_par(g, scan_par(g))).map(|(i, _)| i) {
            return Err(overflow("reference embeddings", Some(i)));
        }
    }
    Ok(stats)
}

/// `X ← s_c·(X + Xᵀ)` in place (square `n × n`, the diagonal zeroed), with `s_c = s0`
/// for same-label pairs and `s1` for the others when `two`, `s0` for all otherwise; with
/// `sums`, each row's sum of the result (accumulated in `f64` in `acc`, tile by tile in
/// a fixed order).
///
/// The row range is halved recursively (cache-obliviously): the two halves' own
/// triangles, then the block between them, itself split into two rounds of two disjoint
/// sub-blocks. Every call holds its rows as `&mut` slices, the two calls of a round touch
/// disjoint rows (so they may run in parallel), and the order in which a row's sum
/// collects its tiles is fixed by the recursion alone: the same bits on any number of
/// threads. The leaves work in 16 × 16 tile pairs copied through local arrays,
/// vectorised; whole `f32` tiles on a CPU with AVX-512 go through [`super::tile`]'s
/// shuffles instead (the same bits).
#[allow(clippy::too_many_arguments)]
fn symmetrize<T: Float>(
    x: &mut [T],
    n: usize,
    labels: &[u32],
    two: bool,
    s0: T,
    s1: T,
    sums: Option<&mut [T]>,
    acc: &mut Vec<f64>,
    lower: bool,
    par: bool,
) {
    let want = sums.is_some();
    size(acc, n);
    acc.fill(0.0);
    let ctx = Sym {
        n,
        labels,
        two,
        s: (s0, s1),
        want,
        par,
        mirror: false,
        lower,
        #[cfg(target_arch = "x86_64")]
        wide: super::tile::wide(),
    };
    sym_diag(&ctx, x, 0, n, acc);
    if let Some(out) = sums {
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o = T::of(*a);
        }
    }
}

/// `x = q·qᵀ` (`n × n`) for about half a GEMM: the lower triangle (rounded out to whole
/// 64-row diagonal blocks) by a recursive SYRK in strips split where the work halves, in
/// a fixed tree; then, with `mirror`, every tile above the diagonal overwritten with its
/// mirror's transpose (the [`symmetrize`] recursion in `mirror` mode), so the matrix is
/// exactly symmetric. Without `mirror` only the lower triangle is meaningful.
fn gram_symmetric<T: Float>(
    q: &[T],
    n: usize,
    dim: usize,
    x: &mut [T],
    scratch: &mut [f64],
    mirror: bool,
    par: bool,
) {
    /// `rows` (from row `base`, stride `n`) gets `q_i·q_j` for `i, j ∈ r0..r1`, `j ≤ i`
    /// rounded out to whole diagonal blocks: the rectangle below the split by one
    /// product, the two triangles recursively (the classic recursive SYRK).
    fn triangle<T: Float>(q: &[T], n: usize, dim: usize, rows: &mut [T], base: usize, r0: usize, r1: usize) {
        const DIAG: usize = 64;
        let at = |r: usize, c: usize| (r - base) * n + c;
        if r1 - r0 <= DIAG {
            let block = super::gemm::Operand::new(&q[r0 * dim..r1 * dim], r1 - r0, dim);
            T::gemm_strided(&mut rows[at(r0, r0)..], n, block, block.t(), T::one());
            return;
        }
        let mid = ((r0 + r1) / 2).next_multiple_of(SYM).clamp(r0 + SYM, r1 - 1);
        T::gemm_strided(
            &mut rows[at(mid, r0)..],
            n,
            super::gemm::Operand::new(&q[mid * dim..r1 * dim], r1 - mid, dim),
            super::gemm::Operand::new(&q[r0 * dim..mid * dim], mid - r0, dim).t(),
            T::one(),
        );
        triangle(q, n, dim, rows, base, r0, mid);
        triangle(q, n, dim, rows, base, mid, r1);
    }
    /// Rows `r0..r1` (all of `rows`), columns `0..r1`: split where the work halves (a
    /// fixed tree, whatever the thread count) down to strips of at most `STRIP` rows,
    /// each the rectangle left of its diagonal block and its triangle.
    fn lower<T: Float>(q: &[T], n: usize, dim: usize, rows: &mut [T], r0: usize, r1: usize, par: bool) {
        const STRIP: usize = 512;
        if r1 - r0 <= STRIP {
            if r0 > 0 {
                T::gemm_strided(
                    rows,
                    n,
                    super::gemm::Operand::new(&q[r0 * dim..r1 * dim], r1 - r0, dim),
                    super::gemm::Operand::new(&q[..r0 * dim], r0, dim).t(),
                    T::one(),
                );
            }
            triangle(q, n, dim, rows, r0, r0, r1);
            return;
        }
        // Work ∝ r1² − r0²: split at the row that halves it, on a multiple of 16.
        let mid = (work_half(r0, r1) as usize).next_multiple_of(SYM);
        let mid = mid.clamp(r0 + SYM, r1 - 1);
        let (top, bot) = rows.split_at_mut((mid - r0) * n);
        join_if(par, || lower(q, n, dim, top, r0, mid, par), || lower(q, n, dim, bot, mid, r1, par));
    }
    if n == 0 {
        return;
    }
    lower(q, n, dim, &mut x[..n * n], 0, n, par);
    if !mirror {
        return;
    }
    let ctx = Sym {
        n,
        labels: &[],
        two: false,
        s: (T::one(), T::one()),
        want: false,
        par,
        mirror: true,
        lower: false,
        #[cfg(target_arch = "x86_64")]
        wide: super::tile::wide(),
    };
    sym_diag(&ctx, &mut x[..n * n], 0, n, &mut scratch[..n]);
}

/// Tile side of [`symmetrize`].
const SYM: usize = 16;
/// Rows a [`symmetrize`] leaf handles.
const SYM_LEAF: usize = 128;

/// What every [`symmetrize`] call shares.
struct Sym<'a, T> {
    n: usize,
    labels: &'a [u32],
    two: bool,
    s: (T, T),
    want: bool,
    par: bool,
    /// Copy the lower triangle over the upper instead (no scale, no sums).
    mirror: bool,
    /// Read the lower triangle only (the upper one holds no coefficients): the result is
    /// `s_c·(L + Lᵀ)` for the strictly lower part `L`.
    lower: bool,
    /// AVX-512 for the whole `f32` tiles ([`super::tile`]).
    #[cfg(target_arch = "x86_64")]
    wide: Option<pulp::x86::V4>,
}

/// Rows `r0..r0 + h` (all of them in `rows`) with themselves.
fn sym_diag<T: Float>(c: &Sym<'_, T>, rows: &mut [T], r0: usize, h: usize, acc: &mut [f64]) {
    if h <= SYM_LEAF {
        sym_leaf(c, rows, r0, h, None, acc, &mut []);
        return;
    }
    let h1 = (h / 2).next_multiple_of(SYM);
    let (top, bot) = rows.split_at_mut(h1 * c.n);
    let (at, ab) = acc.split_at_mut(h1);
    join_if(c.par, || sym_diag(c, top, r0, h1, at), || sym_diag(c, bot, r0 + h1, h - h1, ab));
    sym_cross(c, (top, r0, h1, at), (bot, r0 + h1, h - h1, ab));
}

/// Rows `a0..a0 + ha` against rows `b0..b0 + hb` (`a0 + ha <= b0`): the tiles at
/// (a rows, b columns) and their mirrors.
type Block<'r, T> = (&'r mut [T], usize, usize, &'r mut [f64]);

fn sym_cross<T: Float>(c: &Sym<'_, T>, a: Block<'_, T>, b: Block<'_, T>) {
    let (xa, a0, ha, acc_a) = a;
    let (xb, b0, hb, acc_b) = b;
    if ha <= SYM_LEAF && hb <= SYM_LEAF {
        sym_leaf(c, xa, a0, ha, Some((xb, b0, hb)), acc_a, acc_b);
        return;
    }
    let n = c.n;
    if ha > SYM_LEAF && hb > SYM_LEAF {
        let (h1, g1) = ((ha / 2).next_multiple_of(SYM), (hb / 2).next_multiple_of(SYM));
        let (a1, a2) = xa.split_at_mut(h1 * n);
        let (b1, b2) = xb.split_at_mut(g1 * n);
        let (sa1, sa2) = acc_a.split_at_mut(h1);
        let (sb1, sb2) = acc_b.split_at_mut(g1);
        join_if(
            c.par,
            || sym_cross(c, (&mut *a1, a0, h1, &mut *sa1), (&mut *b1, b0, g1, &mut *sb1)),
            || sym_cross(c, (&mut *a2, a0 + h1, ha - h1, &mut *sa2), (&mut *b2, b0 + g1, hb - g1, &mut *sb2)),
        );
        join_if(
            c.par,
            || sym_cross(c, (a1, a0, h1, sa1), (b2, b0 + g1, hb - g1, sb2)),
            || sym_cross(c, (a2, a0 + h1, ha - h1, sa2), (b1, b0, g1, sb1)),
        );
    } else if ha > SYM_LEAF {
        let h1 = (ha / 2).next_multiple_of(SYM);
        let (a1, a2) = xa.split_at_mut(h1 * n);
        let (sa1, sa2) = acc_a.split_at_mut(h1);
        sym_cross(c, (a1, a0, h1, sa1), (&mut *xb, b0, hb, &mut *acc_b));
        sym_cross(c, (a2, a0 + h1, ha - h1, sa2), (xb, b0, hb, acc_b));
    } else {
        let g1 = (hb / 2).next_multiple_of(SYM);
        let (b1, b2) = xb.split_at_mut(g1 * n);
        let (sb1, sb2) = acc_b.split_at_mut(g1);
        sym_cross(c, (&mut *xa, a0, ha, &mut *acc_a), (b1, b0, g1, sb1));
        sym_cross(c, (xa, a0, ha, acc_a), (b2, b0 + g1, hb - g1, sb2));
    }
}

/// A leaf: rows `a0..a0 + ha` with themselves (`b` none) or against the rows of `b`, in
/// tile pairs in row-major tile order.
fn sym_leaf<T: Float>(
    c: &Sym<'_, T>,
    xa: &mut [T],
    a0: usize,
    ha: usize,
    b: Option<(&mut [T], usize, usize)>,
    acc_a: &mut [f64],
    acc_b: &mut [f64],
) {
    struct Op<'a, 'c, T> {
        c: &'c Sym<'c, T>,
        xa: &'a mut [T],
        a0: usize,
        ha: usize,
        b: Option<(&'a mut [T], usize, usize)>,
        acc_a: &'a mut [f64],
        acc_b: &'a mut [f64],
    }
    impl<T: Float> pulp::WithSimd for Op<'_, '_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Op { c, xa, a0, ha, b, acc_a, acc_b } = self;
            let n = c.n;
            match b {
                None => {
                    for ti in (0..ha).step_by(SYM) {
                        let hi = SYM.min(ha - ti);
                        let (upper, lower) = xa.split_at_mut((ti + hi) * n);
                        let ra = &mut upper[ti * n..];
                        let (sa, sb) = acc_a.split_at_mut(ti + hi);
                        sym_pair(c, ra, None, a0 + ti, a0 + ti, hi, hi, &mut sa[ti..], &mut []);
                        for tj in (ti + hi..ha).step_by(SYM) {
                            let hj = SYM.min(ha - tj);
                            let off = tj - (ti + hi);
                            let rb = &mut lower[off * n..(off + hj) * n];
                            let sbj = &mut sb[off..off + hj];
                            sym_pair(c, &mut *ra, Some(rb), a0 + ti, a0 + tj, hi, hj, &mut sa[ti..], sbj);
                        }
                    }
                }
                Some((xb, b0, hb)) => {
                    for ti in (0..ha).step_by(SYM) {
                        let hi = SYM.min(ha - ti);
                        let ra = &mut xa[ti * n..(ti + hi) * n];
                        for tj in (0..hb).step_by(SYM) {
                            let hj = SYM.min(hb - tj);
                            let rb = &mut xb[tj * n..(tj + hj) * n];
                            let (sa, sb) = (&mut acc_a[ti..ti + hi], &mut acc_b[tj..tj + hj]);
                            sym_pair(c, &mut *ra, Some(rb), a0 + ti, b0 + tj, hi, hj, sa, sb);
                        }
                    }
                }
            }
        }
    }
    crate::simd::vectorize(Op { c, xa, a0, ha, b, acc_a, acc_b });
}

/// One tile pair: the tile at rows `bi..bi+hi` (`ra`, whole rows) × columns `bj..bj+hj`
/// and its mirror in `rb` (rows `bj..`; none for the diagonal tile, `bi = bj`). Whole
/// tiles go through [`sym_tile`]; the matrix's edge through element-wise code.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
#[inline(always)]
fn sym_pair<T: Float>(
    c: &Sym<'_, T>,
    ra: &mut [T],
    mut rb: Option<&mut [T]>,
    bi: usize,
    bj: usize,
    hi: usize,
    hj: usize,
    acc_i: &mut [f64],
    acc_j: &mut [f64],
) {
    let (n, two, (s0, s1)) = (c.n, c.two, c.s);
    let full = hi == SYM && hj == SYM;
    #[cfg(target_arch = "x86_64")]
    if let (Some(simd), true) = (c.wide, full) {
        if let Some((ra, rb)) = T::f32_pair(&mut *ra, rb.as_deref_mut()) {
            if c.mirror {
                super::tile::mirror_pair(simd, ra, rb, n, bi, bj);
            } else {
                let t = super::tile::SymTile {
                    li: &c.labels[bi..bi + SYM],
                    lj: &c.labels[bj..bj + SYM],
                    two,
                    s0: s0.f64() as f32,
                    s1: s1.f64() as f32,
                    want: c.want,
                    lower: c.lower,
                };
                super::tile::sym_pair(simd, &t, ra, rb, n, bi, bj, acc_i, acc_j);
            }
            return;
        }
    }
    let zero = T::zero();
    let mut a = [[zero; SYM]; SYM];
    let mut b = [[zero; SYM]; SYM];
    // The lower-only mode's upper tile holds no coefficients: it reads as zero.
    let rows_a = if c.lower && rb.is_some() { 0 } else { hi };
    for r in 0..rows_a {
        let src = &ra[r * n + bj..r * n + bj + hj];
        if full {
            a[r].copy_from_slice(&src[..SYM]);
        } else {
            a[r][..hj].copy_from_slice(src);
        }
    }
    {
        let mirror: &[T] = match &rb {
            Some(rb) => rb,
            None => ra,
        };
        for r in 0..hj {
            let src = &mirror[r * n + bi..r * n + bi + hi];
            if full {
                b[r].copy_from_slice(&src[..SYM]);
            } else {
                b[r][..hi].copy_from_slice(src);
            }
        }
    }
    let bt = transpose(&b);
    if c.mirror {
        // The tile becomes its mirror's transpose (the diagonal tile: its upper half its
        // lower half's).
        for r in 0..hi {
            let dst = &mut ra[r * n + bj..r * n + bj + hj];
            if rb.is_some() {
                dst.copy_from_slice(&bt[r][..hj]);
            } else if r + 1 < hj {
                dst[r + 1..].copy_from_slice(&bt[r][r + 1..hj]);
            }
        }
        return;
    }
    let (li, lj) = (&c.labels[bi..bi + hi], &c.labels[bj..bj + hj]);
    let mut lia = [0u32; SYM];
    let mut lja = [u32::MAX; SYM];
    lia[..hi].copy_from_slice(li);
    lja[..hj].copy_from_slice(lj);
    let diag_lower = c.lower && rb.is_none();
    for r in 0..SYM {
        for k in 0..SYM {
            let s = if two { T::select(lia[r] == lja[k], s0, s1) } else { s0 };
            // The diagonal tile in lower-only mode: each element from the lower half.
            let v = if diag_lower { T::select(k < r, a[r][k], bt[r][k]) } else { a[r][k] + bt[r][k] };
            a[r][k] = s * v;
        }
    }
    if rb.is_none() {
        for r in 0..SYM {
            a[r][r] = zero;
        }
    }
    // The padding (past `hi` / `hj`) held zeros and stays zero.
    let at = transpose(&a);
    for r in 0..hi {
        let dst = &mut ra[r * n + bj..r * n + bj + hj];
        if full {
            dst.copy_from_slice(&a[r]);
        } else {
            dst.copy_from_slice(&a[r][..hj]);
        }
    }
    if c.want {
        for r in 0..hi {
            acc_i[r] += row_sum(&a[r]);
        }
    }
    if let Some(rb) = rb {
        for r in 0..hj {
            let dst = &mut rb[r * n + bi..r * n + bi + hi];
            if full {
                dst.copy_from_slice(&at[r]);
            } else {
                dst.copy_from_slice(&at[r][..hi]);
            }
        }
        if c.want {
            for r in 0..hj {
                acc_j[r] += row_sum(&at[r]);
            }
        }
    }
}

/// A square tile's transpose.
#[inline(always)]
fn transpose<T: Float, const B: usize>(a: &[[T; B]; B]) -> [[T; B]; B] {
    let mut t = [[T::zero(); B]; B];
    for r in 0..B {
        for c in 0..B {
            t[c][r] = a[r][c];
        }
    }
    t
}

/// The elements of a tile row summed pairwise in a fixed order, in `f64`.
#[inline(always)]
fn row_sum<T: Float, const B: usize>(v: &[T; B]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    for (k, x) in v.iter().enumerate() {
        lanes[k % LANES] += x.f64();
    }
    sum_lanes(&lanes)
}

/// `X_ij ← s_c·X_ij` for a square matrix (class of `(labels[i], labels[j])`), in row
/// parts; with `sums`, each row's sum of the result (in `f64`, eight lanes).
#[allow(clippy::too_many_arguments)]
fn scale_rows<T: Float>(
    x: &mut [T],
    n: usize,
    labels: &[u32],
    two: bool,
    s0: T,
    s1: T,
    sums: Option<&mut [T]>,
    prt: usize,
    par: bool,
) {
    struct Op<'a, T> {
        x: &'a mut [T],
        i0: usize,
        n: usize,
        labels: &'a [u32],
        two: bool,
        s: (T, T),
        sums: &'a mut [T],
    }
    impl<T: Float> pulp::WithSimd for Op<'_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Op { x, i0, n, labels, two, s: (s0, s1), sums } = self;
            // 64 f64 lanes (independent accumulators), folded in a fixed order.
            const C: usize = 64;
            for (k, row) in x.chunks_exact_mut(n).enumerate() {
                let y = labels[i0 + k];
                let mut lanes = [0.0f64; C];
                let (rc, rt) = row.as_chunks_mut::<C>();
                let (lc, lt) = labels[..n].as_chunks::<C>();
                for (v, l) in rc.iter_mut().zip(lc) {
                    for j in 0..C {
                        let s = if two { T::select(l[j] == y, s0, s1) } else { s0 };
                        v[j] = v[j] * s;
                        lanes[j] += v[j].f64();
                    }
                }
                for (j, (v, &l)) in rt.iter_mut().zip(lt).enumerate() {
                    let s = if two { T::select(l == y, s0, s1) } else { s0 };
                    *v = *v * s;
                    lanes[j] += v.f64();
                }
                if let Some(o) = sums.get_mut(k) {
                    let mut l8 = [0.0f64; LANES];
                    for chunk in lanes.as_chunks::<LANES>().0 {
                        for t in 0..LANES {
                            l8[t] += chunk[t];
                        }
                    }
                    *o = T::of(sum_lanes(&l8));
                }
            }
        }
    }
    let parts = n.div_ceil(prt).max(1);
    let sums = sums.unwrap_or(&mut []);
    tree(
        parts,
        0,
        par,
        (Chunks(&mut x[..n * n], prt * n), Chunks(sums, prt)),
        &|(Chunks(x, _), Chunks(sums, _)), part| {
            crate::simd::vectorize(Op { x, i0: part * prt, n, labels, two, s: (s0, s1), sums });
        },
        &|(), ()| (),
    );
}

/// `X_ij ← s_c·X_ij` with the class of `(labels[i], ref_labels[j])`.
fn scale_classes<T: Float, L: BatchLabel>(
    x: &mut [T],
    m: usize,
    labels: &[L],
    ref_labels: &[L],
    two: bool,
    s0: T,
    s1: T,
) {
    for (row, &y) in x.chunks_exact_mut(m).zip(labels) {
        for (v, &l) in row.iter_mut().zip(ref_labels) {
            let s = if two && l != y { s1 } else { s0 };
            *v = *v * s;
        }
    }
}

/// `grad_i = coef_i·q_i − Σ_j X_ij·r_j` over row parts, by GEMM.
#[allow(clippy::too_many_arguments)]
fn rows_backward_dense<T: Float>(
    x: &[T],
    m: usize,
    dim: usize,
    q: &[T],
    r: &[T],
    coef: &[T],
    grad: &mut [T],
    alpha: T,
    prt: usize,
    par: bool,
) {
    let n = coef.len();
    let parts = n.div_ceil(prt).max(1);
    tree(
        parts,
        0,
        par,
        Chunks(&mut grad[..], prt * dim),
        &|Chunks(g, _), part| {
            let i0 = part * prt;
            let rows = g.len() / dim;
            let xs = &x[i0 * m..(i0 + rows) * m];
            T::gemm(
                g,
                super::gemm::Operand::new(xs, rows, m),
                super::gemm::Operand::new(r, m, dim),
                alpha,
                false,
            );
            add_scaled_rows(g, coef, q, i0, dim);
        },
        &|(), ()| (),
    );
}

/// `g_k += coef_{k0+k}·v_{k0+k}` for the rows of a part starting at row `k0`.
#[inline(always)]
fn add_scaled_rows<T: Float>(g: &mut [T], coef: &[T], v: &[T], k0: usize, dim: usize) {
    for (k, gk) in g.chunks_exact_mut(dim).enumerate() {
        let i = k0 + k;
        axpy(gk, coef[i], &v[i * dim..(i + 1) * dim]);
    }
}

/// `grad_j = coef_j·r_j − Σ_i X_ij·q_i` over parts of the reference rows, by GEMM.
#[allow(clippy::too_many_arguments)]
fn cols_backward_dense<T: Float>(
    x: &[T],
    n: usize,
    m: usize,
    dim: usize,
    q: &[T],
    r: &[T],
    coef: &[T],
    grad: &mut [T],
    par: bool,
) {
    let prt = part_rows(m);
    let parts = m.div_ceil(prt).max(1);
    tree(
        parts,
        0,
        par,
        Chunks(&mut grad[..], prt * dim),
        &|Chunks(g, _), part| {
            let j0 = part * prt;
            let cols = g.len() / dim;
            let lhs = super::gemm::Operand { data: &x[j0..], rows: n, cols, stride: m, trans: true };
            T::gemm(g, lhs, super::gemm::Operand::new(q, n, dim), -T::one(), false);
            add_scaled_rows(g, coef, r, j0, dim);
        },
        &|(), ()| (),
    );
}

/// A sparse miner's coefficients: row `i`'s columns `picks[i·cap..][..len[i]]`
/// (ascending) with their `X_ij` in `x` alongside, each scaled by its class's reduction
/// scale.
struct Lists<'a, T> {
    x: &'a [T],
    picks: &'a [u32],
    len: &'a [u32],
    cap: usize,
    scale: [T; 2],
    two: bool,
    labels: &'a [u32],
    ref_labels: &'a [u32],
}

impl<T: Float> Lists<'_, T> {
    /// Row `i`'s `(column, scaled coefficient)` pairs, in column order.
    #[inline(always)]
    fn row(&self, i: usize) -> impl Iterator<Item = (usize, T)> + '_ {
        let len = (self.len[i] as usize).min(self.cap);
        let at = i * self.cap..i * self.cap + len;
        let y = self.labels[i];
        self.picks[at.clone()].iter().zip(&self.x[at]).map(move |(&j, &x)| {
            let j = j as usize;
            let cls = usize::from(self.two && self.ref_labels[j] != y);
            (j, x * self.scale[cls])
        })
    }
}

/// A dense miner's matrix goes through the sparse backward when fewer than one in this
/// many coefficients is non-zero (a listed coefficient costs one row update, against a
/// GEMM's far cheaper multiply-adds).
const SPARSE_RATIO: usize = 24;

/// Each row's non-zero coefficients of `x` (`· × m`) into its `cap` slots of `picks` /
/// `pick_x`, in column order (each row holds at most `cap`).
fn list_nonzeros<T: Float>(
    x: &mut [T],
    m: usize,
    cap: usize,
    picks: &mut [u32],
    pick_x: &mut [T],
    lower: Option<usize>,
) {
    if cap == 0 || m == 0 {
        return;
    }
    for (r, ((row, cols), xs)) in
        x.chunks_exact(m).zip(picks.chunks_exact_mut(cap)).zip(pick_x.chunks_exact_mut(cap)).enumerate()
    {
        // Lower-only rows (`lower`: the part's first row) end at their diagonal.
        let row = match lower {
            Some(i0) => &row[..(i0 + r).min(m)],
            None => row,
        };
        let mut len = 0;
        for (cb, chunk) in row.chunks(16).enumerate() {
            if !any_nonzero(chunk) {
                continue;
            }
            for (o, &v) in chunk.iter().enumerate() {
                if v != T::zero() && len < cap {
                    (cols[len], xs[len]) = ((cb * 16 + o) as u32, v);
                    len += 1;
                }
            }
        }
    }
}

/// `coef_k = Σ_j S_kj` from the lists (rows as their own candidates): each row's sum of
/// its own list and its column's entries (the transposed lists), in the order one pass
/// over the rows would add them (column entries of the rows before `k`, `k`'s own, then
/// those of the rows after), in `f64`; rows in parts, so on threads with the same bits.
fn list_sums<T: Float>(lists: &Lists<'_, T>, cols: &Cols<'_, T>, coef: &mut [T], prt: usize, par: bool) {
    let n = lists.len.len();
    let parts = n.div_ceil(prt).max(1);
    tree(
        parts,
        0,
        par,
        Chunks(&mut coef[..n], prt),
        &|Chunks(c, _), part| {
            for (r, ck) in c.iter_mut().enumerate() {
                let k = part * prt + r;
                let at = cols.off[k] as usize..cols.off[k + 1] as usize;
                let (rows, xs) = (&cols.row[at.clone()], &cols.x[at]);
                let split = rows.partition_point(|&i| (i as usize) < k);
                let mut a = 0.0f64;
                for x in &xs[..split] {
                    a += x.f64();
                }
                for (_, x) in lists.row(k) {
                    a += x.f64();
                }
                for x in &xs[split..] {
                    a += x.f64();
                }
                *ck = T::of(a);
            }
        },
        &|(), ()| (),
    );
}

/// `grad_i = coef_i·q_i − Σ_j X_ij·r_j` over row `i`'s list, in row parts.
#[allow(clippy::too_many_arguments)]
fn rows_backward_sparse<T: Float>(
    lists: &Lists<'_, T>,
    dim: usize,
    q: &[T],
    r: &[T],
    coef: &[T],
    grad: &mut [T],
    prt: usize,
    par: bool,
) {
    struct Op<'a, 'l, T> {
        lists: &'a Lists<'l, T>,
        dim: usize,
        q: &'a [T],
        r: &'a [T],
        coef: &'a [T],
        g: &'a mut [T],
        i0: usize,
    }
    impl<T: Float> pulp::WithSimd for Op<'_, '_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Op { lists, dim, q, r, coef, g, i0 } = self;
            g.fill(T::zero());
            for (k, gi) in g.chunks_exact_mut(dim).enumerate() {
                for (j, c) in lists.row(i0 + k) {
                    axpy(gi, -c, &r[j * dim..(j + 1) * dim]);
                }
            }
            add_scaled_rows(g, coef, q, i0, dim);
        }
    }
    let n = coef.len();
    let parts = n.div_ceil(prt).max(1);
    tree(
        parts,
        0,
        par,
        Chunks(&mut grad[..], prt * dim),
        &|Chunks(g, _), part| crate::simd::vectorize(Op { lists, dim, q, r, coef, g, i0: part * prt }),
        &|(), ()| (),
    );
}

/// The pick lists by column: column `j`'s rows `row[off[j]..off[j + 1]]` (ascending)
/// with their scaled coefficients alongside.
struct Cols<'a, T> {
    off: &'a [u32],
    row: &'a [u32],
    x: &'a [T],
}

/// Transposes the pick lists (a counting sort by column, rows in order).
fn transpose_lists<'w, T: Float>(
    lists: &Lists<'_, T>,
    m: usize,
    off: &'w mut Vec<u32>,
    row: &'w mut Vec<u32>,
    x: &'w mut Vec<T>,
    loss: &'static str,
    shape: (usize, usize),
) -> Result<Cols<'w, T>> {
    let n = lists.len.len();
    off.clear();
    off.resize(m + 2, 0);
    let mut total = 0usize;
    for i in 0..n {
        for (j, _) in lists.row(i) {
            off[j + 2] += 1;
            total += 1;
        }
    }
    // off[j + 1] = start of column j (a cursor while filling), then the end.
    for j in 2..m + 2 {
        off[j] += off[j - 1];
    }
    try_size(row, total, loss, shape)?;
    try_size(x, total, loss, shape)?;
    for i in 0..n {
        for (j, c) in lists.row(i) {
            let at = off[j + 1] as usize;
            row[at] = i as u32;
            x[at] = c;
            off[j + 1] += 1;
        }
    }
    Ok(Cols { off: &off[..m + 1], row, x })
}

/// `grad_j (+)= Σ_i −X_ij·q_i` over column `j`'s picks (rows in order), in parts of the
/// destination rows. With `base = Some((r, coef))` the destination is the reference
/// rows' gradient and starts at `coef_j·r_j`; without, it is added to.
fn scatter_cols<T: Float>(
    cols: &Cols<'_, T>,
    dim: usize,
    q: &[T],
    base: Option<(&[T], &[T])>,
    grad: &mut [T],
    par: bool,
) {
    struct Op<'a, 'c, T> {
        cols: &'a Cols<'c, T>,
        dim: usize,
        q: &'a [T],
        base: Option<(&'a [T], &'a [T])>,
        g: &'a mut [T],
        j0: usize,
    }
    impl<T: Float> pulp::WithSimd for Op<'_, '_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Op { cols, dim, q, base, g, j0 } = self;
            if base.is_some() {
                g.fill(T::zero());
            }
            for (k, gj) in g.chunks_exact_mut(dim).enumerate() {
                let j = j0 + k;
                let at = cols.off[j] as usize..cols.off[j + 1] as usize;
                for (&i, &c) in cols.row[at.clone()].iter().zip(&cols.x[at]) {
                    let i = i as usize;
                    axpy(gj, -c, &q[i * dim..(i + 1) * dim]);
                }
            }
            if let Some((r, coef)) = base {
                add_scaled_rows(g, coef, r, j0, dim);
            }
        }
    }
    let rows_out = grad.len() / dim.max(1);
    let prt = part_rows(rows_out);
    let parts = rows_out.div_ceil(prt).max(1);
    tree(
        parts,
        0,
        par,
        Chunks(&mut grad[..], prt * dim),
        &|Chunks(g, _), part| crate::simd::vectorize(Op { cols, dim, q, base, g, j0: part * prt }),
        &|(), ()| (),
    );
}

/// The number of non-zero (or NaN) values of a row, in fixed-length chunks (vectorises).
#[inline(always)]
fn count_nonzero<T: Float>(row: &[T]) -> usize {
    const C: usize = 64;
    let (body, tail) = row.as_chunks::<C>();
    let mut lanes = [0u32; C];
    for chunk in body {
        for k in 0..C {
            lanes[k] += u32::from(chunk[k] != T::zero());
        }
    }
    let mut total = tail.iter().filter(|v| **v != T::zero()).count();
    for l in lanes {
        total += l as usize;
    }
    total
}

/// Whether a chunk holds a non-zero (or NaN) value: the whole chunk compared, no early
/// exit, so the check vectorises.
#[inline(always)]
fn any_nonzero<T: Float>(chunk: &[T]) -> bool {
    chunk.iter().fold(false, |a, &v| a | (v != T::zero()))
}

#[inline(always)]
fn axpy<T: Float>(y: &mut [T], a: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + a * x;
    }
}

/// The gradient through `x̂ = x / max(‖x‖, eps)`: `(g − (g·x̂)·x̂)/‖x‖` where `‖x‖ > eps`,
/// `g/eps` elsewhere (the clamp passes no gradient), in place.
fn normalize_backward<T: Float>(grad: &mut [T], xn: &[T], raw: &[T], dim: usize, par: bool) {
    let n = raw.len();
    if par && n > ROWS_LEAF && dim > 0 {
        let h = n / 2;
        let (g1, g2) = grad.split_at_mut(h * dim);
        let (x1, x2) = xn.split_at(h * dim);
        let (r1, r2) = raw.split_at(h);
        join_if(
            par,
            || normalize_backward(g1, x1, r1, dim, par),
            || normalize_backward(g2, x2, r2, dim, par),
        );
        return;
    }
    struct Op<'a, T> {
        grad: &'a mut [T],
        xn: &'a [T],
        raw: &'a [T],
        dim: usize,
    }
    impl<T: Float> pulp::WithSimd for Op<'_, T> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Op { grad, xn, raw, dim } = self;
            for ((g, xh), &nr) in grad.chunks_exact_mut(dim).zip(xn.chunks_exact(dim)).zip(raw) {
                let n = nr.f64();
                if n > NORMALIZE_EPS {
                    let (dot, inv) = (T::of(dot_f64(g, xh)), T::of(1.0 / n));
                    for (gv, &h) in g.iter_mut().zip(xh) {
                        *gv = (*gv - dot * h) * inv;
                    }
                } else {
                    let inv = T::of(1.0 / NORMALIZE_EPS);
                    for gv in g.iter_mut() {
                        *gv = *gv * inv;
                    }
                }
            }
        }
    }
    if dim > 0 {
        crate::simd::vectorize(Op { grad, xn, raw, dim });
    }
}

/// Splits a row for the triplet miners: the positives' indices into `s.idx[..np]` and
/// distances into `s.a[..np]`, the negatives' distances into `s.b` (`+∞` at every other
/// candidate). Returns `(np, number of negatives)`. The positives come from
/// the row's class list, so the pass over the row is a copy.
#[inline(always)]
pub(crate) fn split_row<T: Float, L: BatchLabel>(
    r: &Row<'_, T, L>,
    s: &mut Scratch<'_, T>,
) -> (usize, usize) {
    let m = r.d.len();
    let (d, negd) = (r.d, &mut s.b[..m]);
    negd.copy_from_slice(d);
    let inf = T::infinity();
    let mut np = 0;
    for &j in r.same {
        let j = j as usize;
        if let Some(v) = negd.get_mut(j) {
            *v = inf;
        }
        if j != r.skip {
            s.idx[np] = j as u32;
            s.a[np] = d[j];
            np += 1;
        }
    }
    (np, m - r.same.len())
}

/// The minimum (`max`: the maximum) of 64 lanes by halving (32 → 16 → … → 1 compares of
/// whole halves: vector instructions, not a chain of 64 scalar ones). Exact, so the order
/// does not matter (the lanes hold no NaN).
#[inline(always)]
pub(crate) fn lanes_extreme<T: Float>(lanes: &[T; 64], max: bool) -> T {
    let mut a = *lanes;
    let mut half = 32;
    while half > 0 {
        for k in 0..half {
            let (x, y) = (a[k], a[k + half]);
            let take = if max { y > x } else { y < x };
            a[k] = T::select(take, y, x);
        }
        half /= 2;
    }
    a[0]
}

/// `w ← g·w` over the row.
#[inline(always)]
pub(crate) fn scale_row<T: Float>(w: &mut [T], g: T) {
    if g != T::one() {
        for v in w.iter_mut() {
            *v = *v * g;
        }
    }
}

/// The lanes of `a` summed in a fixed order, in `f64`.
#[inline(always)]
pub(crate) fn lanes_f64<T: Float>(a: &[T; LANES]) -> f64 {
    sum_t(a)
}

/// `(l, dl/dv, l > 0)` of the hinge `max(0, v)` (gradient 0 at the kink, torch 2.15) or,
/// with `soft`, of `softplus(v) = max(v, 0) + ln(1 + e^(−|v|))`.
#[inline(always)]
pub(crate) fn hinge<T: Float>(v: T, soft: bool) -> (T, T) {
    let zero = T::zero();
    if soft {
        let (lp, e, r1) = v.abs().softplus_parts();
        (T::select(v > zero, v, zero) + lp, T::select(v >= zero, r1, e * r1))
    } else {
        (T::select(v > zero, v, zero), T::select(v > zero, T::one(), zero))
    }
}

/// `out = x·xᵀ` (`n × n`) by the row-block GEMMs the losses' sweep runs (same parts, same
/// threads), for timing the losses against.
pub(crate) fn gram<T: Float>(x: &[T], n: usize, dim: usize, out: &mut [T]) {
    let prt = part_rows(n);
    let parts = n.div_ceil(prt).max(1);
    if n == 0 {
        return;
    }
    tree(
        parts,
        0,
        parallel(n.saturating_mul(n).saturating_mul(dim.max(1))),
        Chunks(&mut out[..], prt * n),
        &|Chunks(o, _), part| {
            let i0 = part * prt;
            let rows = o.len() / n;
            T::gemm(
                o,
                super::gemm::Operand::new(&x[i0 * dim..(i0 + rows) * dim], rows, dim),
                super::gemm::Operand::new(x, n, dim).t(),
                T::one(),
                false,
            );
        },
        &|(), ()| (),
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `len` values in `[-1, 1)` from an xorshift generator.
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Runs `f` with the wide tile code, then with the portable one, and returns both.
    #[cfg(target_arch = "x86_64")]
    fn both<R>(mut f: impl FnMut() -> R) -> (R, R) {
        use std::sync::atomic::Ordering::Relaxed;
        let wide = f();
        super::super::tile::PORTABLE.store(true, Relaxed);
        let portable = f();
        super::super::tile::PORTABLE.store(false, Relaxed);
        (wide, portable)
    }

    /// The AVX-512 tiles give the portable code's bits: the mirror of the half Gram
    /// matrix, and the symmetrisation with two class scales, a zero diagonal and the row
    /// sums, on a size with whole and edge tiles, serial and parallel.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_tiles_give_the_portable_bits() {
        let (n, dim) = (150, 9);
        let q = values(n * dim, 3);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 5).collect();
        let base = values(n * n, 5);
        for par in [false, true] {
            let (g1, g2) = both(|| {
                let mut x = vec![0.0f32; n * n];
                let mut acc = vec![0.0f64; n];
                gram_symmetric(&q, n, dim, &mut x, &mut acc, true, par);
                x
            });
            assert!(g1.iter().zip(&g2).all(|(a, b)| a.to_bits() == b.to_bits()), "mirror, par={par}");
            for (two, want, lower) in
                [(true, true, false), (false, true, false), (true, false, false), (true, true, true)]
            {
                let (s1, s2) = both(|| {
                    let mut x = base.clone();
                    let mut sums = vec![0.0f32; n];
                    let mut acc = Vec::new();
                    let sums_arg = want.then_some(&mut sums[..]);
                    symmetrize(&mut x, n, &labels, two, 0.75f32, -1.25f32, sums_arg, &mut acc, lower, par);
                    (x, sums)
                });
                let what = format!("symmetrize two={two} sums={want} lower={lower} par={par}");
                assert!(s1.0.iter().zip(&s2.0).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
                assert!(s1.1.iter().zip(&s2.1).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: sums");
                // And it is the symmetrisation: s·(X + Xᵀ), zero diagonal.
                for i in 0..n {
                    for j in 0..n {
                        let s = if !two || labels[i] == labels[j] { 0.75f32 } else { -1.25 };
                        let e = if i == j {
                            0.0
                        } else if lower {
                            s * base[i.max(j) * n + i.min(j)]
                        } else {
                            s * (base[i * n + j] + base[j * n + i])
                        };
                        assert_eq!(s1.0[i * n + j], e, "{what} ({i}, {j})");
                    }
                }
            }
        }
    }
}
