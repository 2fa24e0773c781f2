//! The batch metric-learning losses: fused forward + backward of each, f32, N rows of
//! D = 128 in 128 classes, beside one N×D×N GEMM of the same crate (faer) — the cost the
//! issue's budget is stated in (each loss ≤ 2.5× the GEMM).

use marginloss::Rows;
use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use marginloss::batch::{
    Batch, BatchAllTriplet, BatchHardTriplet, BatchReduction, PairContrastive, SemihardTriplet, Workspace,
};

use super::{config, f32s, XorShift};

/// Batch sizes N; every row has `DIM` elements.
pub const NS: [usize; 2] = [256, 1024];
/// The row length.
pub const DIM: usize = 128;
/// Classes (N / 128 examples each).
pub const CLASSES: usize = 128;

fn batch_losses(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    for n in NS {
        let mut rng = XorShift::new(n as u64);
        let x = rng.vec(n * DIM, -1.0, 1.0);
        let y: Vec<i64> = (0..n).map(|i| (i % CLASSES) as i64).collect();
        let batch = Batch::new(Rows::new(&x, n, DIM).expect("shape"), &y);
        let (mut out, mut grad) = ([0.0f32], vec![0.0f32; n * DIM]);
        let mut ws = Workspace::new();
        let r = BatchReduction::MeanNonzero;
        g.throughput(Throughput::Bytes(f32s(2 * n * DIM)));
        let p = format!("{n}x{DIM}");
        g.bench_function(BenchmarkId::new("gemm", &p), |b| {
            let mut prod = vec![0.0f32; n * n];
            b.iter(|| {
                let lhs = faer::MatRef::from_row_major_slice(black_box(&x), n, DIM);
                let dst = faer::MatMut::from_row_major_slice_mut(&mut prod, n, n);
                faer::linalg::matmul::matmul(
                    dst,
                    faer::Accum::Replace,
                    lhs,
                    lhs.transpose(),
                    1.0f32,
                    faer::Par::Seq,
                );
                prod[0]
            })
        });
        g.bench_function(BenchmarkId::new("batch_all_triplet", &p), |b| {
            let l = BatchAllTriplet::new().normalize(true).margin(0.2);
            b.iter(|| {
                l.forward_backward(black_box(&batch), r, &[1.0], &mut out, &mut grad, None, &mut ws).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("batch_hard_triplet", &p), |b| {
            let l = BatchHardTriplet::new().normalize(true).margin(0.2);
            b.iter(|| {
                l.forward_backward(black_box(&batch), r, &[1.0], &mut out, &mut grad, None, &mut ws).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("semihard_triplet", &p), |b| {
            let l = SemihardTriplet::new().normalize(true).margin(0.2);
            b.iter(|| {
                l.forward_backward(black_box(&batch), r, &[1.0], &mut out, &mut grad, None, &mut ws).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("pair_contrastive", &p), |b| {
            let l = PairContrastive::new().normalize(true);
            b.iter(|| {
                l.forward_backward(black_box(&batch), r, &[1.0], &mut out, &mut grad, None, &mut ws).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = batch_losses
}
