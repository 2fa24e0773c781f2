//! `forward` and `forward_backward` give the same bits on large inputs: both passes walk
//! the same fixed tree of parts (issue 10, item 10: the triplet forward pass used to sum
//! its rows in one sequence while the fused pass summed per part).

mod common;

use common::mat;
use common::Rng;
use marginloss::{Distance, Float, Reduction, TripletMargin, TripletMarginWithDistance};

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.f64().to_bits()).collect()
}

/// Forward and fused outputs of a triplet loss on `n` random rows of `dim`.
fn check<T: Float, D: Distance<T>>(
    what: &str,
    l: &TripletMarginWithDistance<D>,
    rows: usize,
    dim: usize,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut v = |scale: f64| rng.vec(rows * dim, -scale, scale).into_iter().map(T::of).collect::<Vec<T>>();
    let (a, p, n) = (v(1.0), v(1.0), v(1.0));
    for r in REDUCTIONS {
        let fwd = l.forward(mat(&a, dim), mat(&p, dim), mat(&n, dim), r).unwrap().into_vec();
        let mut out = vec![T::zero(); r.output_len(rows)];
        let (mut ga, mut gp, mut gn) =
            (vec![T::zero(); a.len()], vec![T::zero(); a.len()], vec![T::zero(); a.len()]);
        l.forward_backward(
            mat(&a, dim),
            mat(&p, dim),
            mat(&n, dim),
            r,
            &[T::one()],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
        assert_eq!(bits(&fwd), bits(&out), "{what}, {r:?}: forward and forward_backward differ");
        let mut into = vec![T::zero(); r.output_len(rows)];
        l.forward_into(mat(&a, dim), mat(&p, dim), mat(&n, dim), r, &mut into).unwrap();
        assert_eq!(bits(&fwd), bits(&into), "{what}, {r:?}: forward and forward_into differ");
    }
}

#[test]
fn triplet_forward_and_fused_sums_are_bit_identical_on_100k_elements() {
    // 100,000 elements (more than one part of the tree) and 300,000 (several).
    for (rows, dim) in [(10_000, 10), (100_000, 3)] {
        for swap in [false, true] {
            for p in [2.0, 1.0] {
                let l = TripletMargin::new().swap(swap).p(p);
                let general =
                    TripletMarginWithDistance::new(marginloss::PairwiseDistance::new().p(p)).swap(swap);
                let what = format!("triplet p={p} swap={swap} {rows}x{dim}");
                check::<f32, _>(&what, &general, rows, dim, 7);
                check::<f64, _>(&what, &general, rows, dim, 8);
                // TripletMargin itself runs the same kernel.
                let mut rng = Rng::new(9);
                let a: Vec<f32> = rng.vec(rows * dim, -1.0, 1.0).into_iter().map(|v| v as f32).collect();
                let b: Vec<f32> = rng.vec(rows * dim, -1.0, 1.0).into_iter().map(|v| v as f32).collect();
                for r in [Reduction::Mean, Reduction::Sum] {
                    let fwd =
                        l.forward(mat(&a, dim), mat(&b, dim), mat(&a, dim), r).unwrap().scalar().unwrap();
                    let (mut out, mut g1, mut g2, mut g3) =
                        ([0.0f32], vec![0.0; a.len()], vec![0.0; a.len()], vec![0.0; a.len()]);
                    l.forward_backward(
                        mat(&a, dim),
                        mat(&b, dim),
                        mat(&a, dim),
                        r,
                        &[1.0],
                        &mut out,
                        &mut g1,
                        &mut g2,
                        &mut g3,
                    )
                    .unwrap();
                    assert_eq!(fwd.to_bits(), out[0].to_bits(), "{what} {r:?}");
                }
            }
            let cos = TripletMarginWithDistance::cosine().swap(swap);
            check::<f32, _>(&format!("cosine swap={swap}"), &cos, rows, dim, 10);
        }
    }
}
