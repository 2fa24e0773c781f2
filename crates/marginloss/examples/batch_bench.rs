//! Times a batch loss's fused forward + backward beside one N×D×N GEMM of the same crate
//! (faer), and of the `gemm` crate, in the same process, and prints one JSON line.
//!
//! `cargo run --release -p marginloss --features rayon --example batch_bench -- \
//!    batch-all-triplet --n 1024 --dim 128 --classes 128 --threads 1 --reps 20`
//!
//! `--neg-margin M` sets pair-contrastive's negative margin (default 1, as
//! pytorch-metric-learning's).
//!
//! Also the peak-RSS probe (`--loss-only` skips the GEMM comparison and its N×N buffer):
//! `/usr/bin/time -v target/release/examples/batch_bench batch-all-triplet --n 4096 --reps 1 --loss-only`.
#![allow(unsafe_code)] // the `gemm` crate's entry point, for the comparison only

use marginloss::Rows;
use std::time::Instant;

use marginloss::batch::{
    Batch, BatchAllTriplet, BatchHardTriplet, BatchReduction, PairContrastive, SemihardTriplet, Workspace,
};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// On-CPU nanoseconds of the calling thread (`/proc/thread-self/schedstat`), so that a
/// loaded machine's waiting is not counted; 0 where it cannot be read.
fn cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// Median wall and on-CPU time and the fastest wall time (ns) of `f` over `reps` calls,
/// after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_ns());
        f();
        cpu.push(cpu_ns() - c);
        wall.push(t.elapsed().as_secs_f64() * 1e9);
    }
    let fastest = wall.iter().copied().fold(f64::INFINITY, f64::min);
    (median(wall), median(cpu), fastest)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "batch-all-triplet".into());
    let (n, dim, classes) = (arg(&args, "--n", 1024), arg(&args, "--dim", 128), arg(&args, "--classes", 128));
    let (threads, reps) = (arg(&args, "--threads", 1), arg(&args, "--reps", 20));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..n * dim).map(|_| next()).collect();
    let y: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    let batch = Batch::new(Rows::new(&x, n, dim).expect("shape"), &y);
    let (mut out, mut g) = ([0.0f32], vec![0.0f32; n * dim]);
    let mut ws = Workspace::new();
    let r = BatchReduction::MeanNonzero;
    // pytorch-metric-learning's default 1 (random unit rows are about √2 apart, so few
    // negatives are active); `--neg-margin 1.5` makes nearly all of them active.
    let neg_margin: f64 = args
        .iter()
        .position(|a| a == "--neg-margin")
        .and_then(|i| args.get(i + 1))
        .map_or(1.0, |v| v.parse().expect("--neg-margin"));
    let loss_only = args.iter().any(|a| a == "--loss-only");
    let mut prod = vec![0.0f32; if loss_only { 0 } else { n * n }];
    let (loss_ns, gemm_ns, gemm_crate_ns) = pool.install(|| {
        let loss_ns =
            time(reps, || {
                match name.as_str() {
                    "batch-all-triplet" => BatchAllTriplet::new()
                        .normalize(true)
                        .margin(0.2)
                        .forward_backward(&batch, r, &[1.0], &mut out, &mut g, None, &mut ws),
                    "batch-hard-triplet" => BatchHardTriplet::new()
                        .normalize(true)
                        .margin(0.2)
                        .forward_backward(&batch, r, &[1.0], &mut out, &mut g, None, &mut ws),
                    "semihard-triplet" => SemihardTriplet::new()
                        .normalize(true)
                        .margin(0.2)
                        .forward_backward(&batch, r, &[1.0], &mut out, &mut g, None, &mut ws),
                    "pair-contrastive" => PairContrastive::new()
                        .normalize(true)
                        .neg_margin(neg_margin)
                        .forward_backward(&batch, r, &[1.0], &mut out, &mut g, None, &mut ws),
                    "gemm-only" => Ok(Default::default()),
                    other => panic!("unknown loss {other}"),
                }
                .expect("loss");
            });
        if loss_only {
            return (loss_ns, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
        }
        // One N×D×N product, faer (what the losses use), sequential like each of their blocks.
        let gemm_ns = time(reps, || {
            let lhs = faer::MatRef::from_row_major_slice(&x, n, dim);
            let dst = faer::MatMut::from_row_major_slice_mut(&mut prod, n, n);
            faer::linalg::matmul::matmul(
                dst,
                faer::Accum::Replace,
                lhs,
                lhs.transpose(),
                1.0f32,
                faer::Par::Seq,
            );
        });
        // The same with the `gemm` crate (candle's), single thread.
        let gemm_crate_ns = time(reps, || {
            // SAFETY: dst is n×n row-major (row stride n), lhs n×dim row-major, rhs = lhsᵀ
            // (dim×n: column stride dim, row stride 1); all in bounds.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    dim,
                    prod.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    dim as isize,
                    x.as_ptr(),
                    dim as isize,
                    1,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        (loss_ns, gemm_ns, gemm_crate_ns)
    });
    println!(
        "{{\"name\":\"{name}\",\"n\":{n},\"dim\":{dim},\"classes\":{classes},\"threads\":{threads},\"fwd_bwd_ns\":{:.0},\"fwd_bwd_cpu_ns\":{:.0},\"fwd_bwd_min_ns\":{:.0},\"gemm_ns\":{:.0},\"gemm_cpu_ns\":{:.0},\"gemm_min_ns\":{:.0},\"gemm_crate_ns\":{:.0},\"gemm_crate_cpu_ns\":{:.0},\"ratio\":{:.3},\"ratio_cpu\":{},\"loss\":{},\"workspace_bytes\":{}}}",
        loss_ns.0, loss_ns.1, loss_ns.2, gemm_ns.0, gemm_ns.1, gemm_ns.2, gemm_crate_ns.0, gemm_crate_ns.1,
        loss_ns.0 / gemm_ns.0,
        // The schedstat clock can read 0 for a call shorter than its tick: no ratio then.
        if gemm_ns.1 > 0.0 { format!("{:.3}", loss_ns.1 / gemm_ns.1) } else { "null".into() },
        out[0],
        ws.bytes()
    );
}
