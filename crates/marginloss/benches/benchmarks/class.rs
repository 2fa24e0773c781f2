//! Class-score losses on `(N, C)` rows, mean reduction: multi-margin, multiclass hinge
//! (Crammer–Singer), multilabel margin and multilabel soft margin.

use super::mat;
use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use marginloss::{
    reference, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, Reduction,
};

use super::{config, f32s, i64s, pair, XorShift};

/// `(rows, classes)` shapes.
const SHAPES: [(usize, usize); 2] = [(4096, 10), (4096, 1000)];

/// Benches one loss with class-index targets: `fused(x, t, c, out, grad)` against
/// `plain(x, t, c)` followed by the mean reduction. `target(rng, rows, c)` makes the
/// targets; `target_bytes` is their size.
fn bench_class(
    c: &mut Criterion,
    name: &str,
    target: impl Fn(&mut XorShift, usize, usize) -> Vec<i64>,
    fused: impl Fn(&[f32], &[i64], usize, &mut [f32], &mut [f32]),
    plain: impl Fn(&[f32], &[i64], usize) -> (Vec<f32>, Vec<f32>),
) {
    let mut g = c.benchmark_group(name);
    for (rows, classes) in SHAPES {
        let n = rows * classes;
        let mut rng = XorShift::new(n as u64);
        let x = rng.vec(n, -1.0, 1.0);
        let t = target(&mut rng, rows, classes);
        let (mut out, mut grad) = ([0.0f32], vec![0.0f32; n]);
        // Reads the scores and the targets; writes the gradient.
        pair(
            &mut g,
            &format!("{rows}x{classes}"),
            f32s(2 * n) + i64s(t.len()),
            || {
                fused(black_box(&x), black_box(&t), classes, &mut out, &mut grad);
                out[0]
            },
            || {
                let (l, d) = plain(black_box(&x), black_box(&t), classes);
                reference::reduce(Reduction::Mean, &l, &d)
            },
        );
    }
    g.finish();
}

fn multi_margin(c: &mut Criterion) {
    let loss = MultiMargin::new();
    bench_class(
        c,
        "multi_margin",
        |r, rows, classes| r.classes(rows, classes),
        |x, t, c, out, grad| {
            loss.forward_backward(mat(x, c), t, None, Reduction::Mean, &[1.0], out, grad).unwrap()
        },
        |x, t, c| reference::multi_margin(x, t, c, 1, 1.0, None),
    );
}

fn multiclass_hinge(c: &mut Criterion) {
    let loss = MulticlassHinge::new();
    bench_class(
        c,
        "multiclass_hinge",
        |r, rows, classes| r.classes(rows, classes),
        |x, t, c, out, grad| loss.forward_backward(mat(x, c), t, Reduction::Mean, &[1.0], out, grad).unwrap(),
        |x, t, c| reference::multiclass_hinge(x, t, c, 1.0),
    );
}

/// Multilabel targets: per row 1–3 distinct labels, then −1 padding to `classes`.
fn label_lists(r: &mut XorShift, rows: usize, classes: usize) -> Vec<i64> {
    let mut t = vec![-1i64; rows * classes];
    for row in t.chunks_exact_mut(classes) {
        let (start, k) = (r.below(classes), (1 + r.below(3)).min(classes));
        for (j, v) in row.iter_mut().take(k).enumerate() {
            *v = ((start + j) % classes) as i64;
        }
    }
    t
}

fn multilabel_margin(c: &mut Criterion) {
    let loss = MultilabelMargin::new();
    bench_class(
        c,
        "multilabel_margin",
        label_lists,
        |x, t, c, out, grad| loss.forward_backward(mat(x, c), t, Reduction::Mean, &[1.0], out, grad).unwrap(),
        reference::multilabel_margin,
    );
}

fn multilabel_soft_margin(c: &mut Criterion) {
    let loss = MultilabelSoftMargin::new();
    let mut g = c.benchmark_group("multilabel_soft_margin");
    for (rows, classes) in SHAPES {
        let n = rows * classes;
        let mut rng = XorShift::new(n as u64);
        let (x, t) = (rng.vec(n, -2.0, 2.0), rng.bits(n));
        let (mut out, mut grad) = ([0.0f32], vec![0.0f32; n]);
        // Reads the scores and the 0/1 targets; writes the gradient.
        pair(
            &mut g,
            &format!("{rows}x{classes}"),
            f32s(3 * n),
            || {
                loss.forward_backward(
                    mat(black_box(&x), classes),
                    black_box(&t),
                    None,
                    Reduction::Mean,
                    &[1.0],
                    &mut out,
                    &mut grad,
                )
                .unwrap();
                out[0]
            },
            || {
                let (l, d) = reference::multilabel_soft_margin(black_box(&x), black_box(&t), classes, None);
                reference::reduce(Reduction::Mean, &l, &d)
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = multi_margin, multiclass_hinge, multilabel_margin, multilabel_soft_margin
}
