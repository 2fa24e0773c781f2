//! Batch-all's hinge over the lower triangle of the Gram matrix: every unordered pair of
//! rows once, for both of its anchors, in 16 × 16 tile pairs.
//!
//! The full sweep ([`super::engine`]) needs whole rows: the Gram matrix's mirror, then
//! each row's weights, then the coefficient matrix's symmetrisation — two passes over an
//! `N × N` matrix in both orientations. Here a pair `{i, j}` (`j < i`) of different labels
//! is visited once: as the negative of `i`'s positives (their thresholds `d_ip + m`, one
//! per compare, broadcast) and of `j`'s (the thresholds of the tile's 16 columns along the
//! lanes). A triplet `(a, p, n)` is active when `d_an < t_ap = d_ap + m`; each adds 1 to
//! the count `c_ap` and −1 to the pair `{a, n}`'s weight, so the pair's coefficient
//! `S'_ij = −(act_i(j) + act_j(i))/d_ij` (squared distance: `−2·(…)`) is whole once the
//! tile is done. The tile goes into the matrix at `(i, j)` and, transposed, at `(j, i)`:
//! the result is the symmetric `S'` the backward multiplies by, with no mirror and no
//! symmetrisation, and half the square roots and divisions.
//!
//! The counts `c_ap` are complete after the sweep; [`finish`] then writes the positive
//! pairs' coefficients `(c_ap + c_pa)/d_ap` into both orientations and sums the loss,
//! `Σ c_ap·t_ap − Σ_{pairs} d_ij·(act_i(j) + act_j(i))`.
//!
//! Order and bits. The rows are halved recursively (the [`symmetrize`] recursion of the
//! engine: each call holds its rows as `&mut` slices, the two calls of a round touch
//! disjoint rows): the tree depends on `N` alone, so every thread count gives the same
//! bits. The counts are whole numbers (exact in any order); the distance sums are `T`
//! lanes per tile, folded into `f64` and added up the tree in a fixed order. Whole `f32`
//! tiles with up to [`WIDE_SLOTS`] positives per anchor take an AVX-512 kernel that
//! computes exactly what the portable kernel computes.
//!
//! [`symmetrize`]: super::engine

use super::engine::join_if;
use crate::float::Float;
use crate::kernel::{sum_lanes, LANES};

/// Tile side.
pub(crate) const B16: usize = 16;
/// Rows a leaf of the recursion handles.
const LEAF: usize = 128;
/// Positives per anchor the sweep takes at most (a larger class goes through the full
/// sweep: the tables below hold `N × k` values each).
pub(crate) const MAX_SLOTS: usize = 32;
/// Positives per anchor the AVX-512 kernel takes (its column thresholds and counts stay in
/// registers).
#[cfg(target_arch = "x86_64")]
const WIDE_SLOTS: usize = 8;

/// Where slot `kk` of row `j` lives in a `k`-slot table: 16 rows side by side, their `k`
/// slots one after the other, then the next 16 rows (a tile's column slots are one
/// vector each).
#[inline(always)]
pub(crate) fn at(k: usize, kk: usize, j: usize) -> usize {
    ((j / B16) * k + kk) * B16 + j % B16
}

/// Elements of a `k`-slot table over `n` rows.
pub(crate) fn table_len(k: usize, n: usize) -> usize {
    n.div_ceil(B16) * B16 * k
}

/// What every tile shares.
pub(crate) struct Tri<'a, T> {
    /// Euclidean (else squared euclidean) distance.
    pub euclid: bool,
    /// Rows (and the matrix's stride).
    pub n: usize,
    /// Squared norms of the rows.
    pub sq: &'a [T],
    /// Class ids of the rows.
    pub labels: &'a [u32],
    /// Slots per anchor: the largest class's size − 1.
    pub k: usize,
    /// `thr[at(k, kk, a)] = d(a, p_kk) + m` for `a`'s `kk`-th positive (its class's
    /// members but itself, ascending); `−∞` (never active) past its last.
    pub thr: &'a [T],
    /// Run the recursion's rounds on threads.
    pub par: bool,
    /// AVX-512 for whole `f32` tiles.
    #[cfg(target_arch = "x86_64")]
    pub wide: Option<pulp::x86::V4>,
}

/// The distance from a squared-norm pair and a Gram entry, with the full sweep's
/// operations (`to_distances`): the same bits.
#[inline(always)]
fn dist<T: Float>(euclid: bool, si: T, sj: T, g: T) -> T {
    let s = si + sj - (g + g);
    let s = T::select(s > T::zero(), s, T::zero());
    if euclid {
        s.sqrt()
    } else {
        s
    }
}

/// Fills `thr`, `pd` (the distances `d(a, p_kk)`, 0 past the last) and `pos[a]` (`a`'s
/// place in its class's member list) from the Gram matrix's lower triangle. Anchors in
/// halves at multiples of 16 (whole table chunks), on threads with `par`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn thresholds<T: Float>(
    euclid: bool,
    gram: &[T],
    sq: &[T],
    labels: &[u32],
    members: &[u32],
    offsets: &[u32],
    margin: T,
    k: usize,
    thr: &mut [T],
    pd: &mut [T],
    pos: &mut [u32],
    par: bool,
) {
    struct Ctx<'a, T> {
        euclid: bool,
        gram: &'a [T],
        sq: &'a [T],
        labels: &'a [u32],
        members: &'a [u32],
        offsets: &'a [u32],
        margin: T,
        k: usize,
        par: bool,
    }
    fn range<T: Float>(c: &Ctx<'_, T>, a0: usize, thr: &mut [T], pd: &mut [T], pos: &mut [u32]) {
        let (n, k) = (c.labels.len(), c.k);
        let len = pos.len();
        if len > 256 {
            let h = (len / 2).next_multiple_of(B16);
            let (t1, t2) = thr.split_at_mut(h * k);
            let (d1, d2) = pd.split_at_mut(h * k);
            let (p1, p2) = pos.split_at_mut(h);
            join_if(c.par, || range(c, a0, t1, d1, p1), || range(c, a0 + h, t2, d2, p2));
            return;
        }
        thr.fill(T::neg_infinity());
        pd.fill(T::zero());
        for (r, slot) in pos.iter_mut().enumerate() {
            let a = a0 + r;
            let y = c.labels[a] as usize;
            let same = &c.members[c.offsets[y] as usize..c.offsets[y + 1] as usize];
            let mut kk = 0;
            for (idx, &p) in same.iter().enumerate() {
                let p = p as usize;
                if p == a {
                    *slot = idx as u32;
                    continue;
                }
                let (hi, lo) = if a > p { (a, p) } else { (p, a) };
                let d = dist(c.euclid, c.sq[hi], c.sq[lo], c.gram[hi * n + lo]);
                thr[at(k, kk, r)] = d + c.margin;
                pd[at(k, kk, r)] = d;
                kk += 1;
            }
        }
    }
    let n = labels.len();
    let c = Ctx { euclid, gram, sq, labels, members, offsets, margin, k, par };
    range(&c, 0, &mut thr[..table_len(k, n)], &mut pd[..table_len(k, n)], &mut pos[..n]);
}

/// Rows `r0..r0 + h` of the matrix (all of `x`, stride `n`) with their count slots
/// (`cnt`, whole 16-row chunks), lower-triangle non-zero counts (`nnz`) and row sums
/// (`sum`).
struct Rows<'r, T> {
    x: &'r mut [T],
    r0: usize,
    h: usize,
    cnt: &'r mut [u32],
    nnz: &'r mut [u32],
    sum: &'r mut [f64],
}

impl<'r, T> Rows<'r, T> {
    fn reborrow(&mut self) -> Rows<'_, T> {
        Rows {
            x: &mut *self.x,
            r0: self.r0,
            h: self.h,
            cnt: &mut *self.cnt,
            nnz: &mut *self.nnz,
            sum: &mut *self.sum,
        }
    }
    /// Rows `..h1` and `h1..` (`h1` a multiple of 16).
    fn split(self, h1: usize, n: usize, k: usize) -> (Rows<'r, T>, Rows<'r, T>) {
        let (x1, x2) = self.x.split_at_mut(h1 * n);
        let (c1, c2) = self.cnt.split_at_mut(h1 / B16 * B16 * k);
        let (z1, z2) = self.nnz.split_at_mut(h1);
        let (s1, s2) = self.sum.split_at_mut(h1);
        (
            Rows { x: x1, r0: self.r0, h: h1, cnt: c1, nnz: z1, sum: s1 },
            Rows { x: x2, r0: self.r0 + h1, h: self.h - h1, cnt: c2, nnz: z2, sum: s2 },
        )
    }
}

/// The sweep: writes `S'` over the whole matrix `x` (`n × n`, the Gram matrix's lower
/// triangle on entry), the positives' counts into `cnt` (a `k`-slot table, zero on entry;
/// the positive pairs' own coefficients are [`finish`]'s) and each row's non-zero
/// coefficients left of the diagonal into `nnz` and its rows' sums into `sum` (both zero on
/// entry; a tile's row sums in `T`, added in `f64`). Returns
/// `Σ_{pairs} d_ij·(act_i(j) + act_j(i))`.
pub(crate) fn sweep<T: Float>(
    c: &Tri<'_, T>,
    x: &mut [T],
    cnt: &mut [u32],
    nnz: &mut [u32],
    sum: &mut [f64],
) -> f64 {
    let n = c.n;
    if n == 0 {
        return 0.0;
    }
    let rows = Rows {
        x: &mut x[..n * n],
        r0: 0,
        h: n,
        cnt: &mut cnt[..table_len(c.k, n)],
        nnz: &mut nnz[..n],
        sum: &mut sum[..n],
    };
    diag(c, rows)
}

/// Rows with themselves: the halves' own triangles, then the block between them.
fn diag<T: Float>(c: &Tri<'_, T>, mut rows: Rows<'_, T>) -> f64 {
    if rows.h <= LEAF {
        return leaf(c, rows.reborrow(), None);
    }
    let h1 = (rows.h / 2).next_multiple_of(B16);
    let (mut top, mut bot) = rows.split(h1, c.n, c.k);
    let (s1, s2) = join_if(c.par, || diag(c, top.reborrow()), || diag(c, bot.reborrow()));
    let s3 = cross(c, top, bot);
    (s1 + s2) + s3
}

/// Rows `a` against the later rows `b`: the tiles of `b`'s rows at `a`'s columns, in two
/// rounds of two disjoint sub-blocks.
fn cross<T: Float>(c: &Tri<'_, T>, a: Rows<'_, T>, b: Rows<'_, T>) -> f64 {
    let (n, k) = (c.n, c.k);
    if a.h <= LEAF && b.h <= LEAF {
        return leaf(c, b, Some(a));
    }
    if a.h > LEAF && b.h > LEAF {
        let (h1, g1) = ((a.h / 2).next_multiple_of(B16), (b.h / 2).next_multiple_of(B16));
        let (mut a1, mut a2) = a.split(h1, n, k);
        let (mut b1, mut b2) = b.split(g1, n, k);
        let (s1, s2) = join_if(
            c.par,
            || cross(c, a1.reborrow(), b1.reborrow()),
            || cross(c, a2.reborrow(), b2.reborrow()),
        );
        let (s3, s4) = join_if(c.par, || cross(c, a1, b2), || cross(c, a2, b1));
        (s1 + s2) + (s3 + s4)
    } else if a.h > LEAF {
        let h1 = (a.h / 2).next_multiple_of(B16);
        let (a1, a2) = a.split(h1, n, k);
        let mut b = b;
        let s1 = cross(c, a1, b.reborrow());
        s1 + cross(c, a2, b)
    } else {
        let g1 = (b.h / 2).next_multiple_of(B16);
        let (b1, b2) = b.split(g1, n, k);
        let mut a = a;
        let s1 = cross(c, a.reborrow(), b1);
        s1 + cross(c, a, b2)
    }
}

/// A leaf: `b`'s rows with themselves (`a` none) or against the rows of `a`, tile by tile
/// in row-major tile order.
fn leaf<T: Float>(c: &Tri<'_, T>, b: Rows<'_, T>, a: Option<Rows<'_, T>>) -> f64 {
    struct Op<'a, 'c, T> {
        c: &'c Tri<'c, T>,
        b: Rows<'a, T>,
        a: Option<Rows<'a, T>>,
    }
    impl<T: Float> pulp::WithSimd for Op<'_, '_, T> {
        type Output = f64;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
            let Op { c, b, a } = self;
            let (n, k) = (c.n, c.k);
            let chunk = B16 * k;
            let mut total = 0.0f64;
            match a {
                None => {
                    for ti in (0..b.h).step_by(B16) {
                        let hi = B16.min(b.h - ti);
                        let (before, from) = b.x.split_at_mut(ti * n);
                        let rb = &mut from[..hi * n];
                        let (cb_before, cb_from) = b.cnt.split_at_mut(ti / B16 * chunk);
                        let cb = &mut cb_from[..chunk];
                        let zb = &mut b.nnz[ti..ti + hi];
                        let (sum_before, sum_from) = b.sum.split_at_mut(ti);
                        let sb = &mut sum_from[..hi];
                        let i0 = b.r0 + ti;
                        total += tile(c, rb, None, i0, i0, hi, hi, (&mut *cb, &mut *zb, &mut *sb), None);
                        for tj in (0..ti).step_by(B16) {
                            let ra = &mut before[tj * n..(tj + B16) * n];
                            let ca = &mut cb_before[tj / B16 * chunk..(tj / B16 + 1) * chunk];
                            let sa = &mut sum_before[tj..tj + B16];
                            let bo = (&mut *cb, &mut *zb, &mut *sb);
                            total += tile(c, rb, Some(ra), i0, b.r0 + tj, hi, B16, bo, Some((ca, sa)));
                        }
                    }
                }
                Some(a) => {
                    for ti in (0..b.h).step_by(B16) {
                        let hi = B16.min(b.h - ti);
                        let rb = &mut b.x[ti * n..(ti + hi) * n];
                        let cb = &mut b.cnt[ti / B16 * chunk..(ti / B16 + 1) * chunk];
                        let zb = &mut b.nnz[ti..ti + hi];
                        let sb = &mut b.sum[ti..ti + hi];
                        for tj in (0..a.h).step_by(B16) {
                            let hj = B16.min(a.h - tj);
                            let ra = &mut a.x[tj * n..(tj + hj) * n];
                            let ca = &mut a.cnt[tj / B16 * chunk..(tj / B16 + 1) * chunk];
                            let sa = &mut a.sum[tj..tj + hj];
                            let bo = (&mut *cb, &mut *zb, &mut *sb);
                            total += tile(c, rb, Some(ra), b.r0 + ti, a.r0 + tj, hi, hj, bo, Some((ca, sa)));
                        }
                    }
                }
            }
            total
        }
    }
    crate::simd::vectorize(Op { c, b, a })
}

/// One tile: rows `i0..i0 + hb` (`rb`, whole rows) at columns `j0..j0 + ha`, and its
/// mirror in `ra` (rows `j0..`; none for the diagonal tile, `i0 = j0`, whose pairs are its
/// lower half). `b` holds the rows' count slots, non-zero counts and sums, `a` the
/// columns' count slots and sums (none for the diagonal tile: `b`'s). Returns the tile's
/// `Σ d·act`. The row sums: each row of the stored tile (the transposed one for `a`) in
/// `T`, its elements in column order, then added in `f64`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
#[inline(always)]
fn tile<T: Float>(
    c: &Tri<'_, T>,
    rb: &mut [T],
    mut ra: Option<&mut [T]>,
    i0: usize,
    j0: usize,
    hb: usize,
    ha: usize,
    b: (&mut [u32], &mut [u32], &mut [f64]),
    mut a: Option<(&mut [u32], &mut [f64])>,
) -> f64 {
    let (cb, zb, sb) = b;
    #[cfg(target_arch = "x86_64")]
    if let (Some(simd), true) = (c.wide, hb == B16 && ha == B16 && c.k <= WIDE_SLOTS) {
        // (No closures here: one would be compiled without the CPU's features.)
        if let Some(w) = wide::Tile::new(c, &mut *rb, ra.as_deref_mut()) {
            let a = a.as_mut().map(|(ca, sa)| (&mut **ca, &mut **sa));
            if let Some(v) = w.run(simd, i0, j0, (&mut *cb, &mut *zb, &mut *sb), a) {
                return v;
            }
        }
    }
    let (n, k, euclid) = (c.n, c.k, c.euclid);
    let (zero, one, inf) = (T::zero(), T::one(), T::infinity());
    let diag = ra.is_none();
    let mut ya = [u32::MAX; B16];
    let mut sa = [zero; B16];
    ya[..ha].copy_from_slice(&c.labels[j0..j0 + ha]);
    sa[..ha].copy_from_slice(&c.sq[j0..j0 + ha]);
    // Distances, and the negatives' distances (+∞ elsewhere: never active).
    let mut dd = [[zero; B16]; B16];
    let mut nd = [[inf; B16]; B16];
    let mut act = [[zero; B16]; B16];
    for r in 0..hb {
        let i = i0 + r;
        let (si, yi) = (c.sq[i], c.labels[i]);
        let row = &rb[r * n + j0..r * n + j0 + ha];
        for l in 0..ha {
            let d = dist(euclid, si, sa[l], row[l]);
            dd[r][l] = d;
            let valid = ya[l] != yi && (!diag || l < r);
            nd[r][l] = T::select(valid, d, inf);
        }
        // Row i's own positives (one threshold a compare).
        for kk in 0..k {
            let t = c.thr[at(k, kk, i)];
            let mut on_count = 0u32;
            for l in 0..B16 {
                let on = nd[r][l] < t;
                on_count += u32::from(on);
                act[r][l] = T::select(on, act[r][l] + one, act[r][l]);
            }
            cb[kk * B16 + i % B16] += on_count;
        }
    }
    // The columns' positives (their thresholds along the lanes), counted into the
    // columns' block (the diagonal tile's is the rows' own).
    let (cdst, sa_dst): (&mut [u32], Option<&mut [f64]>) = match a {
        Some((ca, sa)) => (ca, Some(sa)),
        None => (cb, None),
    };
    for kk in 0..k {
        let base = at(k, kk, j0);
        let mut tj = [T::neg_infinity(); B16];
        tj.copy_from_slice(&c.thr[base..base + B16]);
        let mut cj = [zero; B16];
        for r in 0..hb {
            for l in 0..B16 {
                let on = nd[r][l] < tj[l];
                cj[l] = T::select(on, cj[l] + one, cj[l]);
                act[r][l] = T::select(on, act[r][l] + one, act[r][l]);
            }
        }
        for (d, v) in cdst[kk * B16..(kk + 1) * B16].iter_mut().zip(&cj).take(ha) {
            *d += v.f64() as u32;
        }
    }
    // The coefficients `S'`, the rows' non-zero counts and the distance sum.
    let mut x = [[zero; B16]; B16];
    let mut ds = [zero; B16];
    for r in 0..hb {
        let mut nz = 0u32;
        for l in 0..B16 {
            let (a, d) = (act[r][l], dd[r][l]);
            let on = a > zero;
            let v = if euclid {
                T::select(on & (d > zero), -(a / d), zero)
            } else {
                T::select(on, -(a + a), zero)
            };
            x[r][l] = v;
            nz += u32::from(v != zero);
            ds[l] = T::select(on, ds[l] + d * a, ds[l]);
        }
        zb[r] += nz;
    }
    match ra {
        None => {
            // The lower half from the tile, the upper from its transpose, a zero diagonal.
            let mut out = [[zero; B16]; B16];
            for r in 0..hb {
                for l in 0..hb {
                    out[r][l] = if l < r {
                        x[r][l]
                    } else if l > r {
                        x[l][r]
                    } else {
                        zero
                    };
                }
                rb[r * n + j0..r * n + j0 + hb].copy_from_slice(&out[r][..hb]);
                sb[r] += row_sum(&out[r]);
            }
        }
        Some(ra) => {
            let mut xt = [[zero; B16]; B16];
            for r in 0..hb {
                rb[r * n + j0..r * n + j0 + ha].copy_from_slice(&x[r][..ha]);
                sb[r] += row_sum(&x[r]);
                for l in 0..B16 {
                    xt[l][r] = x[r][l];
                }
            }
            let sa = sa_dst.unwrap_or_default();
            for l in 0..ha {
                ra[l * n + i0..l * n + i0 + hb].copy_from_slice(&xt[l][..hb]);
                if let Some(s) = sa.get_mut(l) {
                    *s += row_sum(&xt[l]);
                }
            }
        }
    }
    fold(&ds)
}

/// A tile row's sum in `T`, its 16 elements in order (the padding adds zeros), as `f64`.
#[inline(always)]
fn row_sum<T: Float>(v: &[T; B16]) -> f64 {
    let mut t = v[0];
    for e in &v[1..] {
        t = t + *e;
    }
    t.f64()
}

/// Sixteen `T` lanes into `f64` in a fixed order.
#[inline(always)]
fn fold<T: Float>(l: &[T; B16]) -> f64 {
    let mut a = [0.0f64; LANES];
    for k in 0..LANES {
        a[k] = l[k].f64() + l[k + LANES].f64();
    }
    sum_lanes(&a)
}

/// The loss sum's parts and the counters, from [`finish`].
pub(crate) struct Totals {
    /// `Σ c_ap·t_ap − Σ d·act`: the hinge sum over every active triplet.
    pub sum: f64,
    pub active: u64,
    pub tuples: u64,
    pub pos_pairs: u64,
    pub neg_pairs: u64,
    pub anchors: u64,
}

/// What [`finish`] reads besides the sweep's context.
pub(crate) struct Classes<'a, T> {
    /// Members per class id.
    pub sizes: &'a [u32],
    /// The rows of class `y`: `members[offsets[y]..offsets[y + 1]]`, ascending.
    pub members: &'a [u32],
    pub offsets: &'a [u32],
    /// `pd[at(k, kk, a)] = d(a, p_kk)` ([`thresholds`]).
    pub pd: &'a [T],
    /// Each row's place in its class's list.
    pub pos: &'a [u32],
}

/// After the sweep: the loss sum and counters from the counts (anchors in order), then the
/// positive pairs' coefficients `S'_ap = (c_ap + c_pa)/d_ap` (squared: `2·(c_ap + c_pa)`)
/// written into each row `a` (a row writes only its own entries, so rows run on threads;
/// both orientations get the same bits), the ones left of the diagonal counted into `nnz`,
/// each added to its row's `sum` (after the sweep's, in column order).
pub(crate) fn finish<T: Float>(
    c: &Tri<'_, T>,
    cl: &Classes<'_, T>,
    cnt: &[u32],
    dsum: f64,
    x: &mut [T],
    nnz: &mut [u32],
    sum: &mut [f64],
) -> Totals {
    let (n, k) = (c.n, c.k);
    let mut t = Totals { sum: 0.0, active: 0, tuples: 0, pos_pairs: 0, neg_pairs: 0, anchors: 0 };
    for a in 0..n {
        let size = cl.sizes[c.labels[a] as usize] as usize;
        let (np, nneg) = (size - 1, n - size);
        t.pos_pairs += np as u64;
        t.neg_pairs += nneg as u64;
        if np > 0 && nneg > 0 {
            t.anchors += 1;
            t.tuples += (np * nneg) as u64;
        }
        for kk in 0..np {
            let ca = cnt[at(k, kk, a)];
            if ca > 0 {
                t.active += u64::from(ca);
                t.sum += c.thr[at(k, kk, a)].f64() * f64::from(ca);
            }
        }
    }
    t.sum -= dsum;
    fix_rows(c, cl, cnt, &mut x[..n * n], &mut nnz[..n], &mut sum[..n], 0);
    t
}

/// [`finish`]'s positive pairs for rows `a0..a0 + nnz.len()` (all of `x`).
fn fix_rows<T: Float>(
    c: &Tri<'_, T>,
    cl: &Classes<'_, T>,
    cnt: &[u32],
    x: &mut [T],
    nnz: &mut [u32],
    sum: &mut [f64],
    a0: usize,
) {
    let (n, k) = (c.n, c.k);
    let h = nnz.len();
    if c.par && h > 256 {
        let h1 = h / 2;
        let (x1, x2) = x.split_at_mut(h1 * n);
        let (z1, z2) = nnz.split_at_mut(h1);
        let (s1, s2) = sum.split_at_mut(h1);
        join_if(true, || fix_rows(c, cl, cnt, x1, z1, s1, a0), || fix_rows(c, cl, cnt, x2, z2, s2, a0 + h1));
        return;
    }
    let zero = T::zero();
    for (r, (z, sr)) in nnz.iter_mut().zip(sum.iter_mut()).enumerate() {
        let a = a0 + r;
        let y = c.labels[a] as usize;
        let same = &cl.members[cl.offsets[y] as usize..cl.offsets[y + 1] as usize];
        let pa = cl.pos[a];
        let mut kk = 0;
        for &p in same {
            let p = p as usize;
            if p == a {
                continue;
            }
            // a's slot among p's positives (p's list leaves p out).
            let slot = (pa - u32::from(pa > cl.pos[p])) as usize;
            let v = T::of(f64::from(cnt[at(k, kk, a)] + cnt[at(k, slot, p)]));
            let d = cl.pd[at(k, kk, a)];
            let s = if c.euclid { T::select(d > zero, v / d, zero) } else { v + v };
            x[r * n + p] = s;
            *sr += s.f64();
            if p < a && s != zero {
                *z += 1;
            }
            kk += 1;
        }
    }
}

/// The tile in `f32` with AVX-512: [`tile`]'s arithmetic, lane for lane, with the tile's
/// column thresholds and counts in registers, each row's counts from the compare masks'
/// popcounts, and the transposes by [`super::tile::transpose`].
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{at, fold, Tri, B16, WIDE_SLOTS};
    use crate::batch::tile::{load, store};
    use crate::float::Float;
    use pulp::x86::V4;
    use std::arch::x86_64::{__m512, __m512i, _CMP_GT_OQ, _CMP_LT_OQ, _CMP_NEQ_UQ};

    /// A tile's rows: count slots, non-zero counts, sums.
    pub(super) type Rowside<'r> = (&'r mut [u32], &'r mut [u32], &'r mut [f64]);
    /// Its columns' count slots and sums (none: the diagonal tile's are the rows').
    pub(super) type Colside<'r> = Option<(&'r mut [u32], &'r mut [f64])>;

    pub(super) struct Tile<'a> {
        n: usize,
        k: usize,
        euclid: bool,
        sq: &'a [f32],
        labels: &'a [u32],
        thr: &'a [f32],
        rb: &'a mut [f32],
        ra: Option<&'a mut [f32]>,
    }

    /// `acc[l] += Σ_r v[r][l]`, the sum in `f32` in row order, then added in `f64`.
    #[inline(always)]
    fn lanes_into(simd: V4, acc: &mut [f64], v: &[__m512; B16]) {
        let f = simd.avx512f;
        let mut s = v[0];
        for e in &v[1..] {
            s = f._mm512_add_ps(s, *e);
        }
        let s: [f32; B16] = pulp::cast(s);
        for (a, v) in acc.iter_mut().zip(s) {
            *a += f64::from(v);
        }
    }

    impl<'a> Tile<'a> {
        /// `None` unless `T` is `f32`.
        #[inline(always)]
        pub(super) fn new<T: Float>(
            c: &'a Tri<'_, T>,
            rb: &'a mut [T],
            ra: Option<&'a mut [T]>,
        ) -> Option<Self> {
            let (rb, ra) = T::f32_pair(rb, ra)?;
            Some(Tile {
                n: c.n,
                k: c.k,
                euclid: c.euclid,
                sq: T::f32_ref(c.sq)?,
                labels: c.labels,
                thr: T::f32_ref(c.thr)?,
                rb,
                ra,
            })
        }

        /// The tile for its slot count and distance (compile-time, so that the slot
        /// loops unroll into registers); `None` when a table slice is not the expected
        /// size (never: the caller checked the shapes).
        #[inline(always)]
        pub(super) fn run(
            self,
            simd: V4,
            i0: usize,
            j0: usize,
            b: Rowside<'_>,
            a: Colside<'_>,
        ) -> Option<f64> {
            macro_rules! slots {
                ($($k:literal)*) => {
                    match (self.k, self.euclid) {
                        $(
                            ($k, true) => self.slots::<$k, true>(simd, i0, j0, b, a),
                            ($k, false) => self.slots::<$k, false>(simd, i0, j0, b, a),
                        )*
                        (_, true) => self.slots::<WIDE_SLOTS, true>(simd, i0, j0, b, a),
                        (_, false) => self.slots::<WIDE_SLOTS, false>(simd, i0, j0, b, a),
                    }
                };
            }
            slots!(1 2 3 4 5 6 7)
        }

        #[inline(always)]
        fn slots<const K: usize, const EUCLID: bool>(
            self,
            simd: V4,
            i0: usize,
            j0: usize,
            b: Rowside<'_>,
            a: Colside<'_>,
        ) -> Option<f64> {
            let Tile { n, k, sq, labels, thr, rb, ra, .. } = self;
            let (cb, zb, sb) = b;
            if k != K {
                return None;
            }
            let f = simd.avx512f;
            let zero = f._mm512_setzero_ps();
            let one = f._mm512_set1_ps(1.0);
            let inf = f._mm512_set1_ps(f32::INFINITY);
            let diag = ra.is_none();
            let mut ya = [0u32; B16];
            ya.copy_from_slice(&labels[j0..j0 + B16]);
            let ya: __m512i = pulp::cast(ya);
            let sa = load(&sq[j0..]);
            // The two blocks' table chunks: `K` slots of 16 rows each.
            let (bi, bj) = (at(K, 0, i0), at(K, 0, j0));
            let tb: &[[f32; B16]; K] = thr.get(bi..bi + K * B16)?.as_chunks::<B16>().0.try_into().ok()?;
            let ta: &[[f32; B16]; K] = thr.get(bj..bj + K * B16)?.as_chunks::<B16>().0.try_into().ok()?;
            let cbk: &mut [[u32; B16]; K] =
                cb.get_mut(..K * B16)?.as_chunks_mut::<B16>().0.try_into().ok()?;
            let zb: &mut [u32; B16] = zb.try_into().ok()?;
            let mut tj = [zero; K];
            for (t, a) in tj.iter_mut().zip(ta) {
                *t = pulp::cast(*a);
            }
            let mut cj = [zero; K];
            let mut ds = zero;
            let mut x = [zero; B16];
            for (r, xr) in x.iter_mut().enumerate() {
                let i = i0 + r;
                let g = load(&rb[r * n + j0..]);
                let s = f._mm512_sub_ps(f._mm512_add_ps(f._mm512_set1_ps(sq[i]), sa), f._mm512_add_ps(g, g));
                let s = f._mm512_maskz_mov_ps(f._mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, zero), s);
                let d = if EUCLID { f._mm512_sqrt_ps(s) } else { s };
                let mut valid = f._mm512_cmpneq_epi32_mask(ya, f._mm512_set1_epi32(labels[i] as i32));
                if diag {
                    valid &= ((1u32 << r) - 1) as u16;
                }
                let nd = f._mm512_mask_blend_ps(valid, inf, d);
                // The two sides' active counts in two chains (whole numbers: the sum is
                // exact, as the portable single chain).
                let (mut act_i, mut act_j) = (zero, zero);
                for kk in 0..K {
                    let on = f._mm512_cmp_ps_mask::<_CMP_LT_OQ>(nd, f._mm512_set1_ps(tb[kk][r]));
                    cbk[kk][r] += u32::from(on).count_ones();
                    act_i = f._mm512_mask_add_ps(act_i, on, act_i, one);
                }
                for kk in 0..K {
                    let on = f._mm512_cmp_ps_mask::<_CMP_LT_OQ>(nd, tj[kk]);
                    cj[kk] = f._mm512_mask_add_ps(cj[kk], on, cj[kk], one);
                    act_j = f._mm512_mask_add_ps(act_j, on, act_j, one);
                }
                let act = f._mm512_add_ps(act_i, act_j);
                let on = f._mm512_cmp_ps_mask::<_CMP_GT_OQ>(act, zero);
                let v = if EUCLID {
                    let pos = on & f._mm512_cmp_ps_mask::<_CMP_GT_OQ>(d, zero);
                    f._mm512_maskz_div_ps(pos, f._mm512_sub_ps(zero, act), d)
                } else {
                    f._mm512_maskz_mov_ps(on, f._mm512_sub_ps(zero, f._mm512_add_ps(act, act)))
                };
                zb[r] += u32::from(f._mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, zero)).count_ones();
                ds = f._mm512_mask_add_ps(ds, on, ds, f._mm512_mul_ps(d, act));
                *xr = v;
            }
            let (cdst, sa_dst): (&mut [u32], Option<&mut [f64]>) = match a {
                Some((ca, sa)) => (ca, Some(sa)),
                None => (cb, None),
            };
            for (kk, c) in cj.iter().enumerate() {
                let v: [f32; B16] = pulp::cast(*c);
                for (d, v) in cdst[kk * B16..(kk + 1) * B16].iter_mut().zip(v) {
                    *d += v as u32;
                }
            }
            let t = crate::batch::tile::transpose(simd, x);
            // Row sums as the portable code orders them: the sum of the 16 stored rows
            // holds each row's elements in column order (the tile pair is transposed).
            match ra {
                None => {
                    let mut out = x;
                    for r in 0..B16 {
                        let above = (0xFFFFu32 << (r + 1)) as u16;
                        out[r] = f._mm512_mask_blend_ps(above, x[r], t[r]);
                        store(&mut rb[r * n + j0..], out[r]);
                    }
                    lanes_into(simd, sb, &out);
                }
                Some(ra) => {
                    for r in 0..B16 {
                        store(&mut rb[r * n + j0..], x[r]);
                        store(&mut ra[r * n + i0..], t[r]);
                    }
                    lanes_into(simd, sb, &t);
                    if let Some(sa) = sa_dst {
                        lanes_into(simd, sa, &x);
                    }
                }
            }
            Some(fold::<f32>(&pulp::cast(ds)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::engine::tests::values;

    /// The sweep's outputs: `S'`, the loss sum, the active and tuple counts, `nnz`, the
    /// row sums.
    type Out<T> = (Vec<T>, f64, u64, u64, Vec<u32>, Vec<f64>);

    /// The whole lower-triangle path on `q` (`n × dim`) with class ids `labels`.
    fn run<T: Float>(q: &[T], dim: usize, labels: &[u32], margin: f64, euclid: bool, par: bool) -> Out<T> {
        let n = labels.len();
        let sq: Vec<T> = (0..n)
            .map(|i| T::of(q[i * dim..(i + 1) * dim].iter().map(|v| v.f64() * v.f64()).sum()))
            .collect();
        let mut x = vec![T::zero(); n * n];
        crate::batch::engine::gram(q, n, dim, &mut x);
        // The upper triangle holds garbage the sweep must overwrite.
        for i in 0..n {
            for j in i + 1..n {
                x[i * n + j] = T::of(1e30);
            }
        }
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let mut sizes = vec![0u32; classes];
        for &y in labels {
            sizes[y as usize] += 1;
        }
        let mut offsets = vec![0u32; classes + 1];
        for c in 0..classes {
            offsets[c + 1] = offsets[c] + sizes[c];
        }
        let mut members = vec![0u32; n];
        let mut fill = offsets.clone();
        for (i, &y) in labels.iter().enumerate() {
            members[fill[y as usize] as usize] = i as u32;
            fill[y as usize] += 1;
        }
        let k = sizes.iter().max().map_or(0, |&s| s as usize).saturating_sub(1);
        let tl = table_len(k, n);
        let (mut thr, mut pd) = (vec![T::zero(); tl], vec![T::zero(); tl]);
        let mut pos = vec![0u32; n];
        thresholds(
            euclid,
            &x,
            &sq,
            labels,
            &members,
            &offsets,
            T::of(margin),
            k,
            &mut thr,
            &mut pd,
            &mut pos,
            par,
        );
        let (mut cnt, mut nnz, mut sums) = (vec![0u32; tl], vec![0u32; n], vec![0.0f64; n]);
        let c = Tri {
            euclid,
            n,
            sq: &sq,
            labels,
            k,
            thr: &thr,
            par,
            #[cfg(target_arch = "x86_64")]
            wide: crate::batch::tile::wide(),
        };
        let dsum = sweep(&c, &mut x, &mut cnt, &mut nnz, &mut sums);
        let cl = Classes { sizes: &sizes, members: &members, offsets: &offsets, pd: &pd, pos: &pos };
        let t = finish(&c, &cl, &cnt, dsum, &mut x, &mut nnz, &mut sums);
        (x, t.sum, t.active, t.tuples, nnz, sums)
    }

    /// Every triplet by brute force in `f64`: the same outputs.
    fn reference(q: &[f64], dim: usize, labels: &[u32], margin: f64, euclid: bool) -> Out<f64> {
        let n = labels.len();
        let d = |i: usize, j: usize| {
            let s: f64 = (0..dim).map(|t| (q[i * dim + t] - q[j * dim + t]).powi(2)).sum();
            if euclid {
                s.sqrt()
            } else {
                s
            }
        };
        let mut w = vec![0.0f64; n * n];
        let (mut sum, mut active, mut tuples) = (0.0, 0u64, 0u64);
        for a in 0..n {
            for p in (0..n).filter(|&p| p != a && labels[p] == labels[a]) {
                for ng in (0..n).filter(|&v| labels[v] != labels[a]) {
                    tuples += 1;
                    let l = d(a, p) - d(a, ng) + margin;
                    if l > 0.0 {
                        sum += l;
                        active += 1;
                        w[a * n + p] += 1.0;
                        w[a * n + ng] -= 1.0;
                    }
                }
            }
        }
        let mut x = vec![0.0f64; n * n];
        let mut nnz = vec![0u32; n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let v = w[i * n + j] + w[j * n + i];
                let dij = d(i, j);
                x[i * n + j] = if euclid {
                    if dij > 0.0 {
                        v / dij
                    } else {
                        0.0
                    }
                } else {
                    2.0 * v
                };
                if j < i && x[i * n + j] != 0.0 {
                    nnz[i] += 1;
                }
            }
        }
        let sums = (0..n).map(|i| x[i * n..(i + 1) * n].iter().sum()).collect();
        (x, sum, active, tuples, nnz, sums)
    }

    /// Class ids: sizes 1 to 9 mixed (`a`), or one large class of 17 beside small ones
    /// (`k` past the AVX-512 kernel's 8 slots).
    fn labels(n: usize, wide_classes: bool) -> Vec<u32> {
        if wide_classes {
            (0..n as u32).map(|i| if i % 3 == 0 && i < 51 { 0 } else { 1 + (i * 7) % 19 }).collect()
        } else {
            let mut v = Vec::new();
            let mut c = 0u32;
            while v.len() < n {
                let size = 1 + (c as usize * 5) % 9;
                for _ in 0..size.min(n - v.len()) {
                    v.push(c);
                }
                c += 1;
            }
            // Interleaved, so that classes span tiles.
            let mut out = vec![0u32; n];
            for (i, y) in v.into_iter().enumerate() {
                out[(i * 37) % n] = y;
            }
            out
        }
    }

    #[test]
    fn the_lower_triangle_sweep_equals_every_triplet_by_brute_force() {
        for (n, dim, big, margin) in
            [(150, 5, false, 0.3), (300, 3, false, 0.1), (90, 4, true, 0.5), (16, 2, false, 0.4)]
        {
            let q: Vec<f64> = values(n * dim, n as u64 + 11).into_iter().map(f64::from).collect();
            let y = labels(n, big);
            for euclid in [true, false] {
                let (x, sum, active, tuples, nnz, sums) = run(&q, dim, &y, margin, euclid, n > 200);
                let (rx, rsum, ractive, rtuples, rnnz, rsums) = reference(&q, dim, &y, margin, euclid);
                for (i, (a, b)) in sums.iter().zip(&rsums).enumerate() {
                    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{i}: {a} vs {b}");
                }
                let what = format!("n={n} big={big} euclid={euclid}");
                assert_eq!((active, tuples), (ractive, rtuples), "{what}");
                assert!((sum - rsum).abs() <= 1e-10 * rsum.abs().max(1.0), "{what}: {sum} vs {rsum}");
                assert_eq!(nnz, rnnz, "{what}");
                for (k, (a, b)) in x.iter().zip(&rx).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-10 * b.abs().max(1.0),
                        "{what} ({}, {}): {a} vs {b}",
                        k / n,
                        k % n
                    );
                }
            }
        }
    }

    /// Whole `f32` tiles through AVX-512 give the portable kernel's bits, serial and on
    /// threads (the recursion's tree is the same either way).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_lower_tiles_give_the_portable_bits() {
        use std::sync::atomic::Ordering::Relaxed;
        for (n, dim, big) in [(150, 9, false), (300, 16, false), (90, 4, true)] {
            let q = values(n * dim, 7 + n as u64);
            let y = labels(n, big);
            for euclid in [true, false] {
                for par in [false, true] {
                    let wide = run(&q, dim, &y, 0.2, euclid, par);
                    super::super::tile::PORTABLE.store(true, Relaxed);
                    let portable = run(&q, dim, &y, 0.2, euclid, par);
                    super::super::tile::PORTABLE.store(false, Relaxed);
                    let what = format!("n={n} euclid={euclid} par={par}");
                    assert!(
                        wide.0.iter().zip(&portable.0).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{what}"
                    );
                    assert_eq!(wide.1.to_bits(), portable.1.to_bits(), "{what}");
                    assert_eq!((wide.2, wide.3, &wide.4), (portable.2, portable.3, &portable.4), "{what}");
                    assert!(
                        wide.5.iter().zip(&portable.5).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{what}"
                    );
                }
            }
        }
    }
}
