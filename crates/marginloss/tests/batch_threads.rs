//! The batch losses give the same bits on 1, 2 and 3 threads: the row blocks (and so
//! every GEMM call, every sum) depend only on the sizes.
#![cfg(feature = "rayon")]

mod common;

use common::Rng;
use marginloss::batch::{
    Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive,
    SemihardTriplet, Workspace,
};
use marginloss::Rows;

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

#[test]
fn batch_losses_give_the_same_bits_on_any_thread_count() {
    let mut rng = Rng::new(71);
    let (n, m, dim) = (300, 200, 24);
    let x: Vec<f32> = rng.vec(n * dim, -1.0, 1.0).into_iter().map(|v| v as f32).collect();
    let rx: Vec<f32> = rng.vec(m * dim, -1.0, 1.0).into_iter().map(|v| v as f32).collect();
    let y: Vec<i64> = (0..n).map(|i| (i % 20) as i64).collect();
    let ry: Vec<i64> = (0..m).map(|i| (i % 25) as i64).collect();
    let emb = Rows::new(&x, n, dim).unwrap();
    let remb = Rows::new(&rx, m, dim).unwrap();
    for with_ref in [false, true] {
        let batch =
            if with_ref { Batch::new(emb, &y).with_reference(remb, &ry) } else { Batch::new(emb, &y) };
        for d in [BatchDistance::Euclidean, BatchDistance::Cosine] {
            for r in [BatchReduction::MeanNonzero, BatchReduction::None] {
                let run = |which: usize| {
                    let mut ws = Workspace::new();
                    let mut out = vec![0.0f32; r.output_len(n)];
                    let mut g = vec![0.0f32; n * dim];
                    let mut gr = vec![0.0f32; m * dim];
                    let gr_opt = if with_ref { Some(&mut gr[..]) } else { None };
                    let up = [1.0f32];
                    match which {
                        0 => BatchAllTriplet::new()
                            .distance(d)
                            .normalize(true)
                            .margin(0.3)
                            .forward_backward(&batch, r, &up, &mut out, &mut g, gr_opt, &mut ws),
                        1 => BatchHardTriplet::new()
                            .distance(d)
                            .margin(0.3)
                            .forward_backward(&batch, r, &up, &mut out, &mut g, gr_opt, &mut ws),
                        2 => SemihardTriplet::new()
                            .distance(d)
                            .margin(0.3)
                            .forward_backward(&batch, r, &up, &mut out, &mut g, gr_opt, &mut ws),
                        _ => PairContrastive::new()
                            .distance(d)
                            .neg_margin(1.1)
                            .forward_backward(&batch, r, &up, &mut out, &mut g, gr_opt, &mut ws),
                    }
                    .unwrap();
                    out.into_iter().chain(g).chain(gr).collect::<Vec<f32>>()
                };
                for which in 0..4 {
                    same_bits_on_any_thread_count(
                        &format!("loss {which} {d:?} {r:?} ref={with_ref}"),
                        || run(which),
                    );
                }
            }
        }
    }
}
