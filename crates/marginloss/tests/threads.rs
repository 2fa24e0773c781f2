//! Results do not depend on the thread count: every driver cuts its work into a fixed
//! tree of parts whose shape depends only on the problem size, so one thread and many
//! give the same bits (values and gradients, every reduction).
#![cfg(feature = "rayon")]

mod common;

use common::mat;
use common::Rng;
use marginloss::{
    CosineEmbedding, CosineSimilarity, HingeEmbedding, MarginRanking, MultiMargin, MultilabelMargin,
    MultilabelSoftMargin, PairwiseDistance, Reduction, TripletMargin,
};

/// Runs `f` on pools of 1, 2 and 3 threads and asserts that each returns the same bits.
fn same_bits_on_any_thread_count(what: &str, f: impl Fn() -> Vec<f32> + Sync) {
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
        pool.install(&f).into_iter().map(f32::to_bits).collect::<Vec<_>>()
    };
    let one = on(1);
    assert!(one.len() > 1, "{what}: nothing computed");
    for threads in [2, 3] {
        assert!(on(threads) == one, "{what}: {threads} threads differ from one");
    }
}

fn data(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(lo, hi) as f32).collect()
}

fn signs(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| if rng.uniform(0.0, 1.0) < 0.5 { 1.0 } else { -1.0 }).collect()
}

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

#[test]
fn element_wise_and_ranking_losses_give_the_same_bits_on_any_thread_count() {
    // 300,000 elements: several parts of the tree.
    let mut rng = Rng::new(61);
    let n = 300_000;
    let (x, x2, y) = (data(&mut rng, n, 0.0, 2.0), data(&mut rng, n, -1.0, 1.0), signs(&mut rng, n));
    for r in REDUCTIONS {
        same_bits_on_any_thread_count("hinge_embedding", || {
            let (mut out, mut g) = (vec![0.0; r.output_len(n)], vec![0.0; n]);
            HingeEmbedding::new().forward_backward(&x, &y, r, &[1.0], &mut out, &mut g).unwrap();
            out.into_iter().chain(g).collect()
        });
        same_bits_on_any_thread_count("margin_ranking", || {
            let (mut out, mut g1, mut g2) = (vec![0.0; r.output_len(n)], vec![0.0; n], vec![0.0; n]);
            let l = MarginRanking::new().margin(0.1);
            l.forward_backward(&x, &x2, &y, r, &[1.0], &mut out, &mut g1, &mut g2).unwrap();
            out.into_iter().chain(g1).chain(g2).collect()
        });
    }
}

#[test]
fn row_losses_give_the_same_bits_on_any_thread_count() {
    let mut rng = Rng::new(62);
    let (rows, dim) = (3000, 100);
    let len = rows * dim;
    let (a, b, y) = (data(&mut rng, len, -1.0, 1.0), data(&mut rng, len, -1.0, 1.0), signs(&mut rng, rows));
    let probs: Vec<f32> = data(&mut rng, len, 0.0, 1.0);
    let class: Vec<i64> = (0..rows).map(|_| (rng.next_u64() % dim as u64) as i64).collect();
    let labels: Vec<i64> =
        (0..len).map(|i| if i % dim < 3 { ((i / dim + i % dim) % dim) as i64 } else { -1 }).collect();
    for r in REDUCTIONS {
        same_bits_on_any_thread_count("cosine_embedding", || {
            let (mut out, mut g1, mut g2) = (vec![0.0; r.output_len(rows)], vec![0.0; len], vec![0.0; len]);
            CosineEmbedding::new()
                .forward_backward(mat(&a, dim), mat(&b, dim), &y, r, &[1.0], &mut out, &mut g1, &mut g2)
                .unwrap();
            out.into_iter().chain(g1).chain(g2).collect()
        });
        same_bits_on_any_thread_count("multilabel_soft_margin", || {
            let (mut out, mut g) = (vec![0.0; r.output_len(rows)], vec![0.0; len]);
            let l = MultilabelSoftMargin::new();
            l.forward_backward(mat(&a, dim), &probs, None, r, &[1.0], &mut out, &mut g).unwrap();
            out.into_iter().chain(g).collect()
        });
        same_bits_on_any_thread_count("triplet_margin", || {
            let (mut out, mut ga, mut gp, mut gn) =
                (vec![0.0; r.output_len(rows)], vec![0.0; len], vec![0.0; len], vec![0.0; len]);
            let l = TripletMargin::new().swap(true);
            l.forward_backward(
                mat(&a, dim),
                mat(&b, dim),
                mat(&probs, dim),
                r,
                &[1.0],
                &mut out,
                &mut ga,
                &mut gp,
                &mut gn,
            )
            .unwrap();
            out.into_iter().chain(ga).chain(gp).chain(gn).collect()
        });
        same_bits_on_any_thread_count("multi_margin", || {
            let (mut out, mut g) = (vec![0.0; r.output_len(rows)], vec![0.0; len]);
            MultiMargin::new()
                .forward_backward(mat(&a, dim), &class, None, r, &[1.0], &mut out, &mut g)
                .unwrap();
            out.into_iter().chain(g).collect()
        });
        same_bits_on_any_thread_count("multilabel_margin", || {
            let (mut out, mut g) = (vec![0.0; r.output_len(rows)], vec![0.0; len]);
            MultilabelMargin::new()
                .forward_backward(mat(&a, dim), &labels, r, &[1.0], &mut out, &mut g)
                .unwrap();
            out.into_iter().chain(g).collect()
        });
    }
    same_bits_on_any_thread_count("pairwise_distance", || {
        let (mut out, mut g1, mut g2) = (vec![0.0; rows], vec![0.0; len], vec![0.0; len]);
        PairwiseDistance::new()
            .forward_backward(mat(&a, dim), mat(&b, dim), &[1.0], &mut out, &mut g1, &mut g2)
            .unwrap();
        out.into_iter().chain(g1).chain(g2).collect()
    });
    same_bits_on_any_thread_count("cosine_similarity", || {
        let (mut out, mut g1, mut g2) = (vec![0.0; rows], vec![0.0; len], vec![0.0; len]);
        CosineSimilarity::new()
            .forward_backward(mat(&a, dim), mat(&b, dim), &y, &mut out, &mut g1, &mut g2)
            .unwrap();
        out.into_iter().chain(g1).chain(g2).collect()
    });
}
