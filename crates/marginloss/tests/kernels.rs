//! The fused kernels against the plain reference implementations, and finite-difference
//! gradient checks in f64, for the foundation losses and distances.

mod common;

use common::mat;
use common::{assert_rel, central_diff, Rng};
use marginloss::{
    reference, CosineSimilarity, Hinge, HingeEmbedding, PairwiseDistance, Reduction, SquaredHinge,
};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

type Fused = fn(&[f64], &[f64], Reduction, &[f64], &mut [f64], &mut [f64]) -> marginloss::Result<()>;
type Reference = fn(&[f64], &[f64], f64) -> (Vec<f64>, Vec<f64>);

fn pointwise_losses() -> [(&'static str, Fused, Reference, bool); 3] {
    [
        (
            "hinge",
            |x, t, r, u, o, g| Hinge::new().forward_backward(x, t, r, u, o, g),
            reference::hinge,
            false,
        ),
        (
            "squared_hinge",
            |x, t, r, u, o, g| SquaredHinge::new().forward_backward(x, t, r, u, o, g),
            reference::squared_hinge,
            false,
        ),
        (
            "hinge_embedding",
            |x, t, r, u, o, g| HingeEmbedding::new().forward_backward(x, t, r, u, o, g),
            reference::hinge_embedding,
            true,
        ),
    ]
}

/// Random data for an element-wise loss: distances (≥ 0) or scores, ±1 targets.
fn data(rng: &mut Rng, n: usize, distances: bool) -> (Vec<f64>, Vec<f64>) {
    let x = if distances { rng.vec(n, 0.0, 3.0) } else { rng.vec(n, -3.0, 3.0) };
    let t = (0..n).map(|_| rng.sign()).collect();
    (x, t)
}

#[test]
fn fused_pointwise_kernels_equal_the_reference() {
    let mut rng = Rng::new(7);
    for (name, fused, reference, distances) in pointwise_losses() {
        for n in [1usize, 2, 7, 8, 9, 31, 64, 257, 1000] {
            let (x, t) = data(&mut rng, n, distances);
            let (l, g) = reference(&x, &t, 1.0);
            for r in REDUCTIONS {
                let (want_out, want_grad) = reference::reduce(r, &l, &g);
                let mut out = vec![0.0; r.output_len(n)];
                let mut grad = vec![0.0; n];
                fused(&x, &t, r, &[1.0], &mut out, &mut grad).unwrap();
                for (a, b) in out.iter().zip(&want_out) {
                    assert_rel(&format!("{name} n={n} {r:?} out"), *a, *b, 1e-12);
                }
                assert_eq!(grad, want_grad, "{name} n={n} {r:?}");
            }
            // a per-element upstream gradient for Reduction::None
            let up = rng.vec(n, -2.0, 2.0);
            let (mut out, mut grad) = (vec![0.0; n], vec![0.0; n]);
            fused(&x, &t, Reduction::None, &up, &mut out, &mut grad).unwrap();
            assert_eq!(out, l, "{name}");
            for i in 0..n {
                assert_eq!(grad[i], g[i] * up[i], "{name} upstream[{i}]");
            }
        }
    }
}

#[test]
fn pointwise_gradients_match_finite_differences() {
    let mut rng = Rng::new(11);
    for (name, fused, _, distances) in pointwise_losses() {
        let (mut x, t) = data(&mut rng, 50, distances);
        // keep every element at least 1e-3 away from its kink
        for (xi, ti) in x.iter_mut().zip(&t) {
            let arg = if distances { 1.0 - *xi } else { 1.0 - ti * *xi };
            if arg.abs() < 1e-2 {
                *xi += 0.05;
            }
        }
        for r in [Reduction::Mean, Reduction::Sum] {
            let mut out = [0.0];
            let mut grad = vec![0.0; x.len()];
            fused(&x, &t, r, &[1.0], &mut out, &mut grad).unwrap();
            let mut f = |xs: &[f64]| {
                let mut o = [0.0];
                let mut g = vec![0.0; xs.len()];
                fused(xs, &t, r, &[1.0], &mut o, &mut g).unwrap();
                o[0]
            };
            for (i, &gi) in grad.iter().enumerate() {
                let fd = central_diff(&mut f, &x, i, 1e-6);
                assert_rel(&format!("{name} {r:?} d/dx[{i}]"), gi, fd, 1e-6);
            }
        }
    }
}

#[test]
fn fused_distances_equal_the_reference() {
    let mut rng = Rng::new(3);
    for (n, d) in [(1usize, 1usize), (3, 5), (17, 8), (40, 33)] {
        let x1 = rng.vec(n * d, -2.0, 2.0);
        let x2 = rng.vec(n * d, -2.0, 2.0);
        let (mut out, mut g1, mut g2) = (vec![0.0; n], vec![0.0; n * d], vec![0.0; n * d]);
        CosineSimilarity::new()
            .forward_backward(mat(&x1, d), mat(&x2, d), &[1.0], &mut out, &mut g1, &mut g2)
            .unwrap();
        let (ro, r1, r2) = reference::cosine_similarity(&x1, &x2, d, 1e-8);
        for (a, b) in out.iter().zip(&ro).chain(g1.iter().zip(&r1)).chain(g2.iter().zip(&r2)) {
            assert_rel(&format!("cosine n={n} d={d}"), *a, *b, 1e-12);
        }
        for p in [1.0, 1.5, 2.0, 3.0] {
            PairwiseDistance::new()
                .p(p)
                .forward_backward(mat(&x1, d), mat(&x2, d), &[1.0], &mut out, &mut g1, &mut g2)
                .unwrap();
            let (ro, r1, r2) = reference::pairwise_distance(&x1, &x2, d, p, 1e-6);
            for (a, b) in out.iter().zip(&ro).chain(g1.iter().zip(&r1)).chain(g2.iter().zip(&r2)) {
                assert_rel(&format!("pairwise p={p} n={n} d={d}"), *a, *b, 1e-12);
            }
        }
    }
}

#[test]
fn distance_gradients_match_finite_differences() {
    let mut rng = Rng::new(5);
    let (n, d) = (6usize, 7usize);
    let x1 = rng.vec(n * d, -2.0, 2.0);
    let x2 = rng.vec(n * d, -2.0, 2.0);
    let up = rng.vec(n, -1.0, 1.0);
    // f(x1, x2) = Σ_n up_n · dist_n, so its gradient is what forward_backward writes.
    type Run<'a> = &'a dyn Fn(&[f64], &[f64], &mut [f64], &mut [f64], &mut [f64]);
    let cases: [(&str, Run); 4] = [
        ("cosine", &|a, b, o, g1, g2| {
            CosineSimilarity::new().forward_backward(mat(a, d), mat(b, d), &up, o, g1, g2).unwrap()
        }),
        ("pairwise p=2", &|a, b, o, g1, g2| {
            PairwiseDistance::new().forward_backward(mat(a, d), mat(b, d), &up, o, g1, g2).unwrap()
        }),
        ("pairwise p=1", &|a, b, o, g1, g2| {
            PairwiseDistance::new().p(1.0).forward_backward(mat(a, d), mat(b, d), &up, o, g1, g2).unwrap()
        }),
        ("pairwise p=3", &|a, b, o, g1, g2| {
            PairwiseDistance::new().p(3.0).forward_backward(mat(a, d), mat(b, d), &up, o, g1, g2).unwrap()
        }),
    ];
    for (name, run) in cases {
        let (mut o, mut g1, mut g2) = (vec![0.0; n], vec![0.0; n * d], vec![0.0; n * d]);
        run(&x1, &x2, &mut o, &mut g1, &mut g2);
        let value = |a: &[f64], b: &[f64]| {
            let (mut o, mut s1, mut s2) = (vec![0.0; n], vec![0.0; n * d], vec![0.0; n * d]);
            run(a, b, &mut o, &mut s1, &mut s2);
            o.iter().zip(&up).map(|(v, u)| v * u).sum::<f64>()
        };
        for i in 0..n * d {
            let fd1 = central_diff(&mut |a| value(a, &x2), &x1, i, 1e-6);
            let fd2 = central_diff(&mut |b| value(&x1, b), &x2, i, 1e-6);
            assert_rel(&format!("{name} d/dx1[{i}]"), g1[i], fd1, 1e-6);
            assert_rel(&format!("{name} d/dx2[{i}]"), g2[i], fd2, 1e-6);
        }
    }
}

#[test]
fn empty_input_with_an_empty_upstream_is_not_a_panic() {
    let h = HingeEmbedding::new().mode(marginloss::Mode::TorchCompat);
    let (mut out, mut g) = ([0.0f32; 0], [0.0f32; 0]);
    h.forward_backward(&[], &[], Reduction::None, &[], &mut out, &mut g).unwrap();
    let mut one = [0.0f32];
    h.forward_backward(&[], &[], Reduction::Sum, &[1.0], &mut one, &mut g).unwrap();
    assert_eq!(one, [0.0]);
    h.forward_backward(&[], &[], Reduction::Mean, &[1.0], &mut one, &mut g).unwrap();
    assert!(one[0].is_nan());
}
