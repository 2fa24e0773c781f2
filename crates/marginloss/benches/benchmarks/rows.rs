//! Embedding losses on `(N, D)` rows, mean reduction: cosine embedding, contrastive,
//! triplet margin, and triplet margin with a chosen distance (euclidean and cosine).

use super::mat;
use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use marginloss::{
    reference, Contrastive, CosineDistance, CosineEmbedding, Distance, PairwiseDistance, Reduction,
    TripletMargin, TripletMarginWithDistance,
};

use super::distance::{DIM, ROWS};
use super::{config, f32s, pair, XorShift};

/// Benches one `(x1, x2, target)` loss: `fused(x1, x2, y, out, g1, g2)` against
/// `plain(x1, x2, y)` followed by the mean reduction.
fn bench_pair_rows(
    c: &mut Criterion,
    name: &str,
    fused: impl Fn(&[f32], &[f32], &[f32], &mut [f32], &mut [f32], &mut [f32]),
    plain: impl Fn(&[f32], &[f32], &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    let mut g = c.benchmark_group(name);
    for rows in ROWS {
        let n = rows * DIM;
        let mut rng = XorShift::new(rows as u64);
        let (x1, x2, y) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.signs(rows));
        let (mut out, mut g1, mut g2) = ([0.0f32], vec![0.0f32; n], vec![0.0f32; n]);
        // Reads both inputs and the target; writes both gradients.
        pair(
            &mut g,
            &format!("{rows}x{DIM}"),
            f32s(4 * n + rows),
            || {
                fused(black_box(&x1), black_box(&x2), black_box(&y), &mut out, &mut g1, &mut g2);
                out[0]
            },
            || {
                let (l, d1, d2) = plain(black_box(&x1), black_box(&x2), black_box(&y));
                let (o, d1) = reference::reduce(Reduction::Mean, &l, &d1);
                (o, d1, reference::reduce(Reduction::Mean, &l, &d2).1)
            },
        );
    }
    g.finish();
}

fn cosine_embedding(c: &mut Criterion) {
    let loss = CosineEmbedding::new();
    bench_pair_rows(
        c,
        "cosine_embedding",
        |x1, x2, y, out, g1, g2| {
            loss.forward_backward(mat(x1, DIM), mat(x2, DIM), y, Reduction::Mean, &[1.0], out, g1, g2)
                .unwrap()
        },
        |x1, x2, y| reference::cosine_embedding(x1, x2, y, DIM, 0.0),
    );
}

fn contrastive(c: &mut Criterion) {
    let loss = Contrastive::new();
    bench_pair_rows(
        c,
        "contrastive",
        |x1, x2, y, out, g1, g2| {
            loss.forward_backward(mat(x1, DIM), mat(x2, DIM), y, Reduction::Mean, &[1.0], out, g1, g2)
                .unwrap()
        },
        |x1, x2, y| reference::contrastive(x1, x2, y, DIM, 1.0),
    );
}

/// The four outputs of a triplet reference: losses and the three gradients.
type Triplet = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

/// Benches one triplet loss: `fused(a, p, n, out, ga, gp, gn)` against `plain(a, p, n)`
/// followed by the mean reduction.
#[allow(clippy::type_complexity)]
fn bench_triplet(
    c: &mut Criterion,
    name: &str,
    fused: impl Fn(&[f32], &[f32], &[f32], &mut [f32], &mut [f32], &mut [f32], &mut [f32]),
    plain: impl Fn(&[f32], &[f32], &[f32]) -> Triplet,
) {
    let mut g = c.benchmark_group(name);
    for rows in ROWS {
        let n = rows * DIM;
        let mut rng = XorShift::new(rows as u64);
        let (a, p, ng) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let mut out = [0.0f32];
        let (mut ga, mut gp, mut gn) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        // Reads anchor, positive, negative; writes their three gradients.
        pair(
            &mut g,
            &format!("{rows}x{DIM}"),
            f32s(6 * n),
            || {
                fused(black_box(&a), black_box(&p), black_box(&ng), &mut out, &mut ga, &mut gp, &mut gn);
                out[0]
            },
            || {
                let (l, da, dp, dn) = plain(black_box(&a), black_box(&p), black_box(&ng));
                let (o, da) = reference::reduce(Reduction::Mean, &l, &da);
                let dp = reference::reduce(Reduction::Mean, &l, &dp).1;
                (o, da, dp, reference::reduce(Reduction::Mean, &l, &dn).1)
            },
        );
    }
    g.finish();
}

fn triplet_margin(c: &mut Criterion) {
    let loss = TripletMargin::new();
    bench_triplet(
        c,
        "triplet_margin",
        |a, p, n, out, ga, gp, gn| {
            loss.forward_backward(
                mat(a, DIM),
                mat(p, DIM),
                mat(n, DIM),
                Reduction::Mean,
                &[1.0],
                out,
                ga,
                gp,
                gn,
            )
            .unwrap()
        },
        |a, p, n| reference::triplet_margin(a, p, n, DIM, 1.0, 2.0, 1e-6, false),
    );
}

/// `TripletMarginWithDistance` with distance `d`, against the reference composed from
/// `dist` (the reference of the same distance).
fn triplet_with<D: Distance<f32>>(
    c: &mut Criterion,
    name: &str,
    d: D,
    dist: reference::RowDistance<'_, f32>,
) {
    let loss = TripletMarginWithDistance::new(d);
    bench_triplet(
        c,
        name,
        |a, p, n, out, ga, gp, gn| {
            loss.forward_backward(
                mat(a, DIM),
                mat(p, DIM),
                mat(n, DIM),
                Reduction::Mean,
                &[1.0],
                out,
                ga,
                gp,
                gn,
            )
            .unwrap()
        },
        |a, p, n| reference::triplet_margin_with_distance(a, p, n, DIM, 1.0, false, dist),
    );
}

fn triplet_margin_with_distance(c: &mut Criterion) {
    triplet_with(c, "triplet_margin_with_distance/euclidean", PairwiseDistance::new(), &|x, y, dim| {
        reference::pairwise_distance(x, y, dim, 2.0, 1e-6)
    });
    triplet_with(c, "triplet_margin_with_distance/cosine", CosineDistance::default(), &|x, y, dim| {
        let (s, g1, g2) = reference::cosine_similarity(x, y, dim, 1e-8);
        let neg = |v: Vec<f32>| v.into_iter().map(|g| -g).collect();
        (s.into_iter().map(|s| 1.0 - s).collect(), neg(g1), neg(g2))
    });
}

criterion_group! {
    name = benches;
    config = config();
    targets = cosine_embedding, contrastive, triplet_margin, triplet_margin_with_distance
}
