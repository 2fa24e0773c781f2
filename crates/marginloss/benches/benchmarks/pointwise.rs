//! Elementwise losses on `(input, target)` (hinge, squared hinge, hinge embedding, soft
//! margin) and on `(input1, input2, target)` (margin ranking), mean reduction.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use marginloss::{reference, Hinge, HingeEmbedding, MarginRanking, Reduction, SoftMargin, SquaredHinge};

use super::{config, f32s, pair, XorShift};

/// Elementwise sizes.
const SIZES: [usize; 3] = [100, 10_000, 1_000_000];

/// Benches one `(input, target)` loss: `fused(x, y, out, grad)` against
/// `reference(x, y)` followed by the mean reduction.
fn bench_xy(
    c: &mut Criterion,
    name: &str,
    input: impl Fn(&mut XorShift, usize) -> Vec<f32>,
    fused: impl Fn(&[f32], &[f32], &mut [f32], &mut [f32]),
    plain: impl Fn(&[f32], &[f32]) -> (Vec<f32>, Vec<f32>),
) {
    let mut g = c.benchmark_group(name);
    for n in SIZES {
        let mut rng = XorShift::new(n as u64);
        let x = input(&mut rng, n);
        let y = rng.signs(n);
        let (mut out, mut grad) = ([0.0f32], vec![0.0f32; n]);
        // Reads input and target, writes the gradient (the scalar output is negligible).
        pair(
            &mut g,
            &n.to_string(),
            f32s(3 * n),
            || {
                fused(black_box(&x), black_box(&y), &mut out, &mut grad);
                out[0]
            },
            || {
                let (l, d) = plain(black_box(&x), black_box(&y));
                reference::reduce(Reduction::Mean, &l, &d)
            },
        );
    }
    g.finish();
}

fn hinge(c: &mut Criterion) {
    let loss = Hinge::new();
    bench_xy(
        c,
        "hinge",
        |r, n| r.vec(n, -2.0, 2.0),
        |x, y, out, grad| loss.forward_backward(x, y, Reduction::Mean, &[1.0], out, grad).unwrap(),
        |x, y| reference::hinge(x, y, 1.0),
    );
}

fn squared_hinge(c: &mut Criterion) {
    let loss = SquaredHinge::new();
    bench_xy(
        c,
        "squared_hinge",
        |r, n| r.vec(n, -2.0, 2.0),
        |x, y, out, grad| loss.forward_backward(x, y, Reduction::Mean, &[1.0], out, grad).unwrap(),
        |x, y| reference::squared_hinge(x, y, 1.0),
    );
}

fn hinge_embedding(c: &mut Criterion) {
    let loss = HingeEmbedding::new();
    bench_xy(
        c,
        "hinge_embedding",
        // Distances: non-negative (strict mode rejects negative ones).
        |r, n| r.vec(n, 0.0, 2.0),
        |x, y, out, grad| loss.forward_backward(x, y, Reduction::Mean, &[1.0], out, grad).unwrap(),
        |x, y| reference::hinge_embedding(x, y, 1.0),
    );
}

fn soft_margin(c: &mut Criterion) {
    let loss = SoftMargin::new();
    bench_xy(
        c,
        "soft_margin",
        |r, n| r.vec(n, -2.0, 2.0),
        |x, y, out, grad| loss.forward_backward(x, y, Reduction::Mean, &[1.0], out, grad).unwrap(),
        reference::soft_margin,
    );
}

fn margin_ranking(c: &mut Criterion) {
    let loss = MarginRanking::new();
    let mut g = c.benchmark_group("margin_ranking");
    for n in SIZES {
        let mut rng = XorShift::new(n as u64);
        let (x1, x2, y) = (rng.vec(n, -2.0, 2.0), rng.vec(n, -2.0, 2.0), rng.signs(n));
        let (mut out, mut g1, mut g2) = ([0.0f32], vec![0.0f32; n], vec![0.0f32; n]);
        // Reads input1, input2, target; writes both gradients.
        pair(
            &mut g,
            &n.to_string(),
            f32s(5 * n),
            || {
                loss.forward_backward(
                    black_box(&x1),
                    black_box(&x2),
                    black_box(&y),
                    Reduction::Mean,
                    &[1.0],
                    &mut out,
                    &mut g1,
                    &mut g2,
                )
                .unwrap();
                out[0]
            },
            || {
                let (l, d1, d2) = reference::margin_ranking(black_box(&x1), black_box(&x2), &y, 0.0);
                let (o, d1) = reference::reduce(Reduction::Mean, &l, &d1);
                (o, d1, reference::reduce(Reduction::Mean, &l, &d2).1)
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = hinge, squared_hinge, hinge_embedding, soft_margin, margin_ranking
}
