//! Batch-hard from half the Gram matrix: with the rows as their own candidates, each row's
//! hardest positive and hardest negative come from the lower triangle alone, so the upper
//! half is never mirrored or swept.
//!
//! Row `i`'s candidates `j < i` are its own lower row; those with `j > i` are column `i`
//! of the rows below. Pass A computes each part's lower rows of the Gram matrix by one
//! product (no separate Gram phase, so no barrier between the product and the sweep, and
//! the rows are swept while in cache), turns them into distances and, in the same loop,
//! takes each row's nearest negative and lowers each column's running nearest negative
//! (one running minimum per column and part, with the row that set it). The columns'
//! minima are then merged across the parts, in part order, with each row's own. Pass B
//! takes each anchor's hardest positive from its class list (reading `(i, j)` or `(j, i)`,
//! whichever is below the diagonal), the loss, and the gradient lists, as the full-row
//! sweep would.
//!
//! The result is the full-row sweep's, bit for bit: the distance formulas are symmetric
//! in `i` and `j` (`‖x_i‖² + ‖x_j‖² − 2g`, `1 − g·(c_i·c_j)`), ties go to the lowest
//! index on both sides (a strict comparison in increasing order, and a row's own
//! candidates, all below its column's, win ties), and pass B runs the full sweep's tree
//! over the same parts, so the loss sums in the same order. A distance that is not finite
//! returns `None` and the caller takes the full sweep, which names it.

use super::{
    class_members, hinge, nearest_negative, sparse_coefficients, to_distances, tree, tree_split, Acc, Ctx,
    NONE,
};
use crate::batch::gemm::Operand;
use crate::float::Float;
use crate::parts::Chunks;

/// The buffers of one call, as `run` sized them.
pub(super) struct Bufs<'a, T> {
    /// `N × N`: the lower triangle's Gram values (computed here), then its distances.
    pub mat: &'a mut [T],
    /// `2` a row: its nearest negative `(distance, index)`, then its gradient's `α`.
    pub alpha: &'a mut [f64],
    pub vals: &'a mut [f64],
    /// `3N` a part: its column minima, then the weights and the distances it lists.
    pub scratch: &'a mut [T],
    /// `3N` a part: the rows of its column minima.
    pub idx: &'a mut [u32],
    pub beta: &'a mut [f64],
    pub picks: &'a mut [u32],
    pub pick_x: &'a mut [T],
    pub picks_len: &'a mut [u32],
    pub cap: usize,
}

/// Runs the batch-hard sweep over the lower triangle (`c.m == N` candidates, the rows
/// themselves); `None` when a distance is not finite (nothing the caller needs was
/// written but `mat`, whose lower triangle now holds distances).
pub(super) fn sweep<T: Float>(
    c: &Ctx<'_, T, u32>,
    margin: T,
    soft: bool,
    prt: usize,
    parts: usize,
    par: bool,
    b: Bufs<'_, T>,
) -> Option<Acc> {
    let Bufs { mat, alpha, vals, scratch, idx, beta, picks, pick_x, picks_len, cap } = b;
    let n = c.m;
    let dim = c.q.len().checked_div(n).unwrap_or(0);
    // Pass A: the Gram rows, distances, row minima and each part's column minima (rows
    // grow with their index: the tree splits by work).
    let finite = tree_split(
        parts,
        0,
        par,
        true,
        (
            Chunks(&mut mat[..], prt * n),
            Chunks(&mut alpha[..], prt * 2),
            Chunks(&mut scratch[..], 3 * n),
            Chunks(&mut idx[..], 3 * n),
        ),
        &|(Chunks(mat, _), Chunks(alpha, _), Chunks(s, _), Chunks(ix, _)), part| {
            // The part's lower rows of the Gram matrix (to the end of its diagonal block),
            // by one product, then swept while they are in cache.
            let (i0, rows) = (part * prt, alpha.len() / 2);
            let i1 = i0 + rows;
            if dim > 0 {
                T::gemm_strided(
                    mat,
                    n,
                    Operand::new(&c.q[i0 * dim..i1 * dim], rows, dim),
                    Operand::new(&c.q[..i1 * dim], i1, dim).t(),
                    T::one(),
                );
            } else {
                mat.fill(T::zero());
            }
            crate::simd::vectorize(Lower { c, i0, mat, alpha, colmin: &mut s[..n], colrow: &mut ix[..n] })
        },
        &|a, b| a & b,
    );
    if !finite {
        return None;
    }
    // Each row's nearest negative: its own (the lower indices, winning ties), or the
    // parts' column minima, merged in part order.
    {
        let (scratch, idx) = (&*scratch, &*idx);
        tree(
            parts,
            0,
            par,
            Chunks(&mut alpha[..], prt * 2),
            &|Chunks(a, _), part| {
                for r in 0..a.len() / 2 {
                    let i = part * prt + r;
                    let (mut best, mut at) = (T::infinity(), u32::MAX);
                    for p in part..parts {
                        let v = scratch[p * 3 * n + i];
                        if v < best {
                            (best, at) = (v, idx[p * 3 * n + i]);
                        }
                    }
                    if best < T::of(a[2 * r]) {
                        (a[2 * r], a[2 * r + 1]) = (best.f64(), f64::from(at));
                    }
                }
            },
            &|(), ()| (),
        );
    }
    // Pass B: the anchors, on the full sweep's tree.
    let mat = &*mat;
    let bw = if c.grad { 2 * n } else { 0 };
    Some(tree(
        parts,
        0,
        par,
        (
            Chunks(&mut alpha[..], prt * 2),
            Chunks(&mut vals[..], prt),
            Chunks(&mut scratch[..], 3 * n),
            Chunks(&mut beta[..], bw),
            (Chunks(&mut picks[..], prt * cap), Chunks(&mut pick_x[..], prt * cap)),
            Chunks(&mut picks_len[..], if c.grad { prt } else { 0 }),
        ),
        &|(
            Chunks(alpha, _),
            Chunks(vals, _),
            Chunks(s, _),
            Chunks(beta, _),
            (Chunks(picks, _), Chunks(pick_x, _)),
            Chunks(plen, _),
        ),
          part| {
            let i0 = part * prt;
            let zero = T::zero();
            let (w, rest) = s.split_at_mut(n);
            let d = &mut rest[..n];
            w.fill(zero);
            beta.fill(0.0);
            let (beta0, beta1) = if c.grad { beta.split_at_mut(n) } else { (&mut [][..], &mut [][..]) };
            let mut acc = Acc::default();
            for (r, v) in vals.iter_mut().enumerate() {
                let i = i0 + r;
                let y = c.labels[i];
                let same = class_members(c.members, c.offsets, y);
                // The hardest positive from the class list (ascending: a strict comparison
                // keeps the lowest index among ties).
                let (mut hp, mut ip, mut np) = (T::neg_infinity(), NONE, 0u64);
                for &j in same {
                    let j = j as usize;
                    if j != i {
                        np += 1;
                        let dj = if j < i { mat[i * n + j] } else { mat[j * n + i] };
                        if dj > hp {
                            (hp, ip) = (dj, j);
                        }
                    }
                }
                let nneg = (n - same.len()) as u64;
                let (hn, inn) = (T::of(alpha[2 * r]), alpha[2 * r + 1]);
                let mut a = Acc { pos_pairs: np, neg_pairs: nneg, ..Acc::default() };
                let (mut coef, mut listed) = ((0.0, 0.0), 0u32);
                *v = 0.0;
                if np > 0 && nneg > 0 && inn >= 0.0 {
                    let inn = inn as usize;
                    a.anchors = 1;
                    let (l, dl) = hinge(hp - hn + margin, soft);
                    a.tuples[0] = 1;
                    a.active[0] = u64::from(l > zero);
                    a.sum[0] = l.f64();
                    *v = l.f64();
                    if c.grad {
                        let up = match c.upstream.len() {
                            0 => T::one(),
                            1 => c.upstream[0],
                            _ => c.upstream[i],
                        };
                        let g = dl * up;
                        (w[ip], w[inn]) = (zero + g, zero - g);
                        (d[ip], d[inn]) = (hp, hn);
                        let t = [ip.min(inn) as u32, ip.max(inn) as u32];
                        let list = (&mut picks[r * cap..(r + 1) * cap], &mut pick_x[r * cap..(r + 1) * cap]);
                        let (a0, a1, len, full) =
                            sparse_coefficients(c, i, y, false, d, w, Some(&t), beta0, beta1, list);
                        (coef, listed) = ((a0, a1), len as u32);
                        acc.list_overflow |= full;
                        (w[ip], w[inn]) = (zero, zero);
                    }
                }
                acc = acc.add(a);
                if c.grad {
                    plen[r] = listed;
                    (alpha[2 * r], alpha[2 * r + 1]) = coef;
                }
            }
            acc
        },
        &|a: Acc, b: Acc| a.add(b),
    ))
}

/// Pass A over one part: rows `i0..` (their lower rows in `mat`).
struct Lower<'a, 'c, T> {
    c: &'a Ctx<'c, T, u32>,
    i0: usize,
    mat: &'a mut [T],
    alpha: &'a mut [f64],
    colmin: &'a mut [T],
    colrow: &'a mut [u32],
}

impl<T: Float> pulp::WithSimd for Lower<'_, '_, T> {
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> bool {
        let Lower { c, i0, mat, alpha, colmin, colrow } = self;
        let n = c.m;
        let rows = alpha.len() / 2;
        let inf = T::infinity();
        colmin[..i0 + rows].fill(inf);
        colrow[..i0 + rows].fill(u32::MAX);
        let mut finite = true;
        for r in 0..rows {
            let i = i0 + r;
            let row = &mut mat[r * n..r * n + i];
            finite &= to_distances(c.dist, row, c.q_sq[i], c.q_ic[i], c.r_sq, c.r_ic, NONE);
            let (y, labels) = (c.labels[i], &c.ref_labels[..i]);
            let (hn, inn) = nearest_negative(row, labels, y);
            (alpha[2 * r], alpha[2 * r + 1]) = (hn.f64(), if inn == NONE { -1.0 } else { inn as f64 });
            // The columns' nearest negatives among the rows so far (a strict comparison:
            // the earlier row keeps a tie).
            let at = i as u32;
            for ((cm, cr), (&v, &l)) in
                colmin[..i].iter_mut().zip(&mut colrow[..i]).zip(row.iter().zip(labels))
            {
                let v = T::select(l != y, v, inf);
                let lt = v < *cm;
                *cm = T::select(lt, v, *cm);
                *cr = if lt { at } else { *cr };
            }
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::values;
    use super::super::FULL_SWEEP;
    use crate::batch::{Batch, BatchDistance, BatchHardTriplet, BatchReduction, Workspace};
    use crate::float::Float;
    use crate::{Mode, Rows};

    /// Loss, gradient and counters (or the error) of one call, the floats as bits.
    type Outcome = Result<(Vec<u64>, Vec<u64>, String), String>;

    fn call<T: Float>(
        loss: &BatchHardTriplet,
        x: &[T],
        y: &[u32],
        dim: usize,
        r: BatchReduction,
        up: &[T],
    ) -> Outcome {
        let n = y.len();
        let batch = Batch::new(Rows::new(x, n, dim).map_err(|e| e.to_string())?, y);
        let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); n * dim]);
        let mut ws = Workspace::new();
        let stats = loss
            .forward_backward(&batch, r, up, &mut out, &mut g, None, &mut ws)
            .map_err(|e| e.to_string())?;
        let bits = |v: &[T]| v.iter().map(|x| x.f64().to_bits()).collect();
        Ok((bits(&out), bits(&g), format!("{stats:?}")))
    }

    /// Both sweeps of one case, on this thread.
    fn both<T: Float>(
        loss: &BatchHardTriplet,
        x: &[T],
        y: &[u32],
        dim: usize,
        r: BatchReduction,
        up: &[T],
    ) -> (Outcome, Outcome) {
        let lower = call(loss, x, y, dim, r, up);
        FULL_SWEEP.with(|f| f.set(true));
        let full = call(loss, x, y, dim, r, up);
        FULL_SWEEP.with(|f| f.set(false));
        (lower, full)
    }

    /// Rows `k·7 % n` copied over rows `k` (exact ties in distance), labels in `classes`
    /// classes, one singleton class when `single`.
    fn case(n: usize, dim: usize, classes: u32, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut x = values(n * dim, seed);
        for k in (0..n).step_by(5) {
            let src = (k * 7 + 3) % n;
            let row: Vec<f32> = x[src * dim..(src + 1) * dim].to_vec();
            x[k * dim..(k + 1) * dim].copy_from_slice(&row);
        }
        let mut y: Vec<u32> = (0..n as u32).map(|i| (i * 13 + seed as u32) % classes).collect();
        if n > 3 {
            y[n - 1] = classes + 1;
        }
        (x, y)
    }

    /// The lower-triangle sweep gives the full-row sweep's loss, gradient and counters bit
    /// for bit: every distance, with and without `normalize`, hinge and soft, every
    /// reduction (per-anchor upstream for `none`), `f32` and `f64`, on one part and on
    /// several (the thread pool's), with tied distances from repeated rows.
    #[test]
    fn lower_triangle_batch_hard_equals_the_full_sweep() {
        let reductions =
            [BatchReduction::Mean, BatchReduction::MeanNonzero, BatchReduction::Sum, BatchReduction::None];
        let mut cases = 0;
        for (n, dim, classes) in [(2, 3, 1), (9, 4, 3), (70, 5, 6), (300, 16, 40), (530, 8, 120)] {
            let (x, y) = case(n, dim, classes, n as u64);
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let up: Vec<f32> = values(n, 9).iter().map(|v| v + 1.5).collect();
            let up64: Vec<f64> = up.iter().map(|&v| f64::from(v)).collect();
            for dist in [BatchDistance::Euclidean, BatchDistance::SquaredEuclidean, BatchDistance::Cosine] {
                for normalize in [false, true] {
                    for soft in [false, true] {
                        for mode in [Mode::Strict, Mode::TorchCompat] {
                            let loss = BatchHardTriplet::new()
                                .margin(0.3)
                                .soft(soft)
                                .distance(dist)
                                .normalize(normalize)
                                .mode(mode);
                            for r in reductions {
                                let (u, u64s) = if r == BatchReduction::None {
                                    (&up[..], &up64[..])
                                } else {
                                    (&up[..1], &up64[..1])
                                };
                                let what = format!(
                                    "n={n} {dist:?} normalize={normalize} soft={soft} {mode:?} {r:?}"
                                );
                                let (a, b) = both(&loss, &x, &y, dim, r, u);
                                assert_eq!(a, b, "f32 {what}");
                                let (a, b) = both(&loss, &x64, &y, dim, r, u64s);
                                assert_eq!(a, b, "f64 {what}");
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 3 * 2 * 2 * 2 * 4);
    }

    /// A distance that overflows `f32` takes the full sweep: strict mode's error names the
    /// same entry, torch-compat mode's infinite loss is the same.
    #[test]
    fn an_overflowing_distance_falls_back_to_the_full_sweep() {
        let (n, dim) = (80, 4);
        let (mut x, y) = case(n, dim, 5, 4);
        for v in &mut x[50 * dim..51 * dim] {
            *v = 3.0e19;
        }
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let loss = BatchHardTriplet::new().mode(mode);
            let (a, b) = both(&loss, &x, &y, dim, BatchReduction::Mean, &[1.0f32]);
            assert_eq!(a, b, "{mode:?}");
            if mode == Mode::Strict {
                assert!(a.unwrap_err().contains("overflow"));
            }
        }
    }
}
