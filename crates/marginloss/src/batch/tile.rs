//! 16 × 16 `f32` tile pairs with AVX-512 shuffles: the mirror and the symmetrisation of
//! a square matrix ([`super::engine`]'s `sym_pair`), where the portable code's element
//! by element transposes cost more than the memory traffic.
//!
//! Each function computes exactly what the portable tile code computes, bit for bit:
//! the same element arithmetic (`s·(a + bᵀ)`, no fused multiply-add) and the same `f64`
//! summation order for the row sums (eight lanes, `k mod 8`, then
//! [`sum_lanes`](crate::kernel::sum_lanes)'s tree), so results do not depend on
//! which CPU ran them.
//!
//! The transpose swaps one bit of the row and column indices a stage: with `B = 2^b`,
//! rows `r` and `r | B` (bit `b` of `r` clear) exchange the elements whose column bit
//! `b` differs from the row's; after the four stages element `(r, c)` sits at `(c, r)`.
//! Every stage is sixteen two-source permutes (`vpermt2ps`).

use pulp::x86::V4;
use std::arch::x86_64::{__m512, __m512d, __m512i};

/// Tile side (the engine's `SYM`).
pub(crate) const T16: usize = 16;

/// Tests set this to run the portable tile code on any CPU, to compare the two.
#[cfg(test)]
pub(crate) static PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The CPU's AVX-512 (F, DQ, BW, CD, VL) token, once per call.
#[inline(always)]
pub(crate) fn wide() -> Option<V4> {
    #[cfg(test)]
    if PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    V4::try_new()
}

/// The first 16 values of `row` as a vector.
#[inline(always)]
pub(crate) fn load(row: &[f32]) -> __m512 {
    let mut a = [0.0f32; T16];
    a.copy_from_slice(&row[..T16]);
    pulp::cast(a)
}

/// `v` into the first 16 values of `row`.
#[inline(always)]
pub(crate) fn store(row: &mut [f32], v: __m512) {
    let a: [f32; T16] = pulp::cast(v);
    row[..T16].copy_from_slice(&a);
}

/// The permute indices of stage `b`: (rows with bit `b` clear, rows with it set).
#[inline(always)]
fn stage_idx(b: usize) -> (__m512i, __m512i) {
    let bit = 1u32 << b;
    let mut lo = [0u32; T16];
    let mut hi = [0u32; T16];
    for c in 0..T16 as u32 {
        if c & bit == 0 {
            lo[c as usize] = c;
            hi[c as usize] = c ^ bit;
        } else {
            lo[c as usize] = 16 + (c ^ bit);
            hi[c as usize] = 16 + c;
        }
    }
    (pulp::cast(lo), pulp::cast(hi))
}

/// The transpose of a 16 × 16 tile held as 16 row vectors.
#[inline(always)]
pub(crate) fn transpose(simd: V4, mut r: [__m512; T16]) -> [__m512; T16] {
    let f = simd.avx512f;
    for b in 0..4 {
        let (lo, hi) = stage_idx(b);
        let bit = 1 << b;
        for i in 0..T16 {
            if i & bit == 0 {
                let (x, y) = (r[i], r[i | bit]);
                r[i] = f._mm512_permutex2var_ps(x, lo, y);
                r[i | bit] = f._mm512_permutex2var_ps(x, hi, y);
            }
        }
    }
    r
}

/// Loads the 16 × 16 tile at column `c0` of 16 consecutive rows of stride `n`.
#[inline(always)]
fn load_tile(rows: &[f32], n: usize, c0: usize) -> [__m512; T16] {
    let mut t = [pulp::cast([0.0f32; T16]); T16];
    for (r, v) in t.iter_mut().enumerate() {
        *v = load(&rows[r * n + c0..]);
    }
    t
}

#[inline(always)]
fn store_tile(rows: &mut [f32], n: usize, c0: usize, t: &[__m512; T16]) {
    for (r, v) in t.iter().enumerate() {
        store(&mut rows[r * n + c0..], *v);
    }
}

/// `acc[r] += Σ_k t[k][r]` for the 16 lanes `r`, each sum in `f64` as the portable
/// `row_sum` of the transposed tile's row `r` orders it: `l_g = (0 + t[g]) + t[g + 8]`,
/// then `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`.
#[inline(always)]
fn add_column_sums(simd: V4, t: &[__m512; T16], acc: &mut [f64]) {
    let f = simd.avx512f;
    let halves = |v: __m512| -> (__m512d, __m512d) {
        let lo = f._mm512_cvtps_pd(f._mm512_castps512_ps256(v));
        let hi = f._mm512_cvtps_pd(simd.avx512dq._mm512_extractf32x8_ps::<1>(v));
        (lo, hi)
    };
    let zero = f._mm512_setzero_pd();
    let mut l = [(zero, zero); 8];
    for g in 0..8 {
        let (a0, a1) = halves(t[g]);
        let (b0, b1) = halves(t[g + 8]);
        l[g] =
            (f._mm512_add_pd(f._mm512_add_pd(zero, a0), b0), f._mm512_add_pd(f._mm512_add_pd(zero, a1), b1));
    }
    let add =
        |x: (__m512d, __m512d), y: (__m512d, __m512d)| (f._mm512_add_pd(x.0, y.0), f._mm512_add_pd(x.1, y.1));
    let s = add(add(add(l[0], l[4]), add(l[1], l[5])), add(add(l[2], l[6]), add(l[3], l[7])));
    let (lo, hi): ([f64; 8], [f64; 8]) = (pulp::cast(s.0), pulp::cast(s.1));
    for (a, v) in acc[..8].iter_mut().zip(lo) {
        *a += v;
    }
    for (a, v) in acc[8..T16].iter_mut().zip(hi) {
        *a += v;
    }
}

/// Mirror mode: the tile at (rows of `ra`, columns `bj..`) becomes the transpose of the
/// tile at (rows of `rb`, columns `bi..`); for the diagonal tile (`rb` none, `bi = bj`)
/// the part above the diagonal becomes the transpose of the part below it.
#[inline(always)]
pub(crate) fn mirror_pair(simd: V4, ra: &mut [f32], rb: Option<&mut [f32]>, n: usize, bi: usize, bj: usize) {
    match rb {
        Some(rb) => {
            let t = transpose(simd, load_tile(rb, n, bi));
            store_tile(ra, n, bj, &t);
        }
        None => {
            let a = load_tile(ra, n, bj);
            let t = transpose(simd, a);
            let f = simd.avx512f;
            let mut out = a;
            for r in 0..T16 {
                // Lanes k > r from the transpose.
                let above = (0xFFFFu32 << (r + 1)) as u16;
                out[r] = f._mm512_mask_blend_ps(above, a[r], t[r]);
            }
            store_tile(ra, n, bj, &out);
        }
    }
}

/// What the symmetrisation of a tile pair needs besides the tiles.
pub(crate) struct SymTile<'a> {
    /// Labels of the tile's rows (`bi..`) and columns (`bj..`).
    pub li: &'a [u32],
    pub lj: &'a [u32],
    /// Two class scales (same label: `s0`, else `s1`), or `s0` for every pair.
    pub two: bool,
    pub s0: f32,
    pub s1: f32,
    /// Accumulate the row sums of the result.
    pub want: bool,
    /// Only the lower triangle holds coefficients: `A` reads as zero, and the diagonal
    /// tile takes each element from its lower half.
    pub lower: bool,
}

/// `A ← s∘(A + Bᵀ)` and `B ← Aᵀ` for the tile `A` at (rows of `ra`, columns `bj..`) and
/// its mirror `B` at (rows of `rb`, columns `bi..`), with the row sums of both added to
/// `acc_i` / `acc_j`; for the diagonal tile (`rb` none) `A ← s∘(A + Aᵀ)` with a zero
/// diagonal.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn sym_pair(
    simd: V4,
    c: &SymTile<'_>,
    ra: &mut [f32],
    rb: Option<&mut [f32]>,
    n: usize,
    bi: usize,
    bj: usize,
    acc_i: &mut [f64],
    acc_j: &mut [f64],
) {
    let f = simd.avx512f;
    let a = if c.lower && rb.is_some() { [f._mm512_setzero_ps(); T16] } else { load_tile(ra, n, bj) };
    let bt = match &rb {
        Some(rb) => transpose(simd, load_tile(rb, n, bi)),
        None => transpose(simd, a),
    };
    let diag_lower = c.lower && rb.is_none();
    let mut lj = [0u32; T16];
    lj.copy_from_slice(&c.lj[..T16]);
    let lj: __m512i = pulp::cast(lj);
    let (s0, s1) = (f._mm512_set1_ps(c.s0), f._mm512_set1_ps(c.s1));
    let mut out = a;
    for r in 0..T16 {
        let s = if c.two {
            let same = f._mm512_cmpeq_epi32_mask(lj, f._mm512_set1_epi32(c.li[r] as i32));
            f._mm512_mask_blend_ps(same, s1, s0)
        } else {
            s0
        };
        let sum = if diag_lower {
            // Lanes k < r from the tile's own row, the others from its transpose.
            f._mm512_mask_blend_ps(!(0xFFFFu32 << r) as u16, bt[r], a[r])
        } else {
            f._mm512_add_ps(a[r], bt[r])
        };
        let v = f._mm512_mul_ps(s, sum);
        out[r] = if rb.is_none() { f._mm512_mask_blend_ps(1u16 << r, v, f._mm512_setzero_ps()) } else { v };
    }
    store_tile(ra, n, bj, &out);
    match rb {
        Some(rb) => {
            let t = transpose(simd, out);
            store_tile(rb, n, bi, &t);
            if c.want {
                // Row r of A sums column r of Aᵀ; row k of Aᵀ sums column k of A.
                add_column_sums(simd, &t, acc_i);
                add_column_sums(simd, &out, acc_j);
            }
        }
        None => {
            if c.want {
                // Exactly symmetric: its columns are its rows.
                add_column_sums(simd, &out, acc_i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(n: usize, seed: u64) -> Vec<f32> {
        crate::batch::engine::tests::values(n * n, seed)
    }

    #[test]
    fn transpose_of_a_tile_swaps_rows_and_columns() {
        let Some(simd) = wide() else { return };
        let x = matrix(16, 7);
        let t = transpose(simd, load_tile(&x, 16, 0));
        let mut got = vec![0.0f32; 256];
        store_tile(&mut got, 16, 0, &t);
        for r in 0..16 {
            for c in 0..16 {
                assert_eq!(got[c * 16 + r], x[r * 16 + c], "({r}, {c})");
            }
        }
    }

    #[test]
    fn column_sums_follow_the_portable_lane_order() {
        let Some(simd) = wide() else { return };
        let x = matrix(16, 11);
        let t = load_tile(&x, 16, 0);
        let mut acc = [0.5f64; 16];
        add_column_sums(simd, &t, &mut acc);
        for c in 0..16 {
            let mut lanes = [0.0f64; 8];
            for k in 0..16 {
                lanes[k % 8] += f64::from(x[k * 16 + c]);
            }
            let want = 0.5 + crate::kernel::sum_lanes(&lanes);
            assert_eq!(acc[c].to_bits(), want.to_bits(), "column {c}");
        }
    }
}
