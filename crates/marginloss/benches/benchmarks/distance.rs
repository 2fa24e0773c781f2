//! Row distances on `(N, D)` pairs, unreduced (one value per row, an upstream gradient
//! per row): cosine similarity and the p = 2 pairwise distance.

use super::mat;
use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use marginloss::{reference, CosineSimilarity, PairwiseDistance};

use super::{config, f32s, pair, XorShift};

/// Row counts; every row has `DIM` elements.
pub const ROWS: [usize; 3] = [64, 512, 4096];
/// The row length.
pub const DIM: usize = 128;

/// Benches one distance: `fused(x1, x2, upstream, out, g1, g2)` against `plain(x1, x2)`.
fn bench_distance(
    c: &mut Criterion,
    name: &str,
    fused: impl Fn(&[f32], &[f32], &[f32], &mut [f32], &mut [f32], &mut [f32]),
    plain: impl Fn(&[f32], &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    let mut g = c.benchmark_group(name);
    for rows in ROWS {
        let n = rows * DIM;
        let mut rng = XorShift::new(rows as u64);
        let (x1, x2) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let up = vec![1.0f32; rows];
        let (mut out, mut g1, mut g2) = (vec![0.0f32; rows], vec![0.0f32; n], vec![0.0f32; n]);
        // Reads both inputs and the upstream gradient; writes the output and both gradients.
        pair(
            &mut g,
            &format!("{rows}x{DIM}"),
            f32s(4 * n + 2 * rows),
            || {
                fused(black_box(&x1), black_box(&x2), &up, &mut out, &mut g1, &mut g2);
                out[0]
            },
            || plain(black_box(&x1), black_box(&x2)),
        );
    }
    g.finish();
}

fn cosine_similarity(c: &mut Criterion) {
    let d = CosineSimilarity::new();
    bench_distance(
        c,
        "cosine_similarity",
        |x1, x2, up, out, g1, g2| d.forward_backward(mat(x1, DIM), mat(x2, DIM), up, out, g1, g2).unwrap(),
        |x1, x2| reference::cosine_similarity(x1, x2, DIM, 1e-8),
    );
}

fn pairwise_distance(c: &mut Criterion) {
    let d = PairwiseDistance::new();
    bench_distance(
        c,
        "pairwise_distance",
        |x1, x2, up, out, g1, g2| d.forward_backward(mat(x1, DIM), mat(x2, DIM), up, out, g1, g2).unwrap(),
        |x1, x2| reference::pairwise_distance(x1, x2, DIM, 2.0, 1e-6),
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = cosine_similarity, pairwise_distance
}
