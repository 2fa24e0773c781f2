//! Fused adapter vs composed candle ops: forward + backward (build the loss, then
//! `Tensor::backward`) on CPU in f32, median over the repetitions after a warm-up.
//!
//! ```sh
//! cargo run --release -p marginloss-candle --example compare [-- --json] [--reps R] [--only NAME]
//! ```
//!
//! With `--json`, one object per line, `{"name", "n", "composed_ns", "fused_ns"}` (read by
//! `bench/compare.py`); otherwise a table. Both paths run in torch-compat mode so that the
//! composed one stays on candle ops (in strict mode it also validates on a host copy).
//! Workloads: hinge, hinge-embedding, soft-margin, margin-ranking at N = 1e6 elements
//! (reduction mean); cosine-similarity (unreduced, backward of the sum) and the article's
//! pipeline (x = 1 − cos(a, b), hinge_embedding with margin 0.2, mean) at 4096 × 128.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use marginloss_candle::{self as mc, composed, Mode, Reduction};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    fn signs(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| if self.uniform(0.0, 1.0) < 0.5 { -1.0 } else { 1.0 }).collect()
    }
}

fn var(v: Vec<f32>, shape: &[usize]) -> Result<Var> {
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Median wall time of `f` in ns over `reps` runs after two warm-ups.
fn median_ns(reps: usize, f: &dyn Fn() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_nanos() as f64);
    }
    t.sort_by(f64::total_cmp);
    Ok(if reps % 2 == 1 { t[reps / 2] } else { 0.5 * (t[reps / 2 - 1] + t[reps / 2]) })
}

/// Builds the loss with `loss(fused?)` and runs its backward.
fn fwd_bwd(loss: &dyn Fn(bool) -> Result<Tensor>, fused: bool) -> Result<()> {
    let l = loss(fused)?;
    let l = if l.rank() == 0 { l } else { l.sum_all()? };
    let g = l.backward()?;
    std::hint::black_box(g);
    Ok(())
}

struct Row {
    name: &'static str,
    n: usize,
    composed_ns: f64,
    fused_ns: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(11usize);
    let path = args.iter().position(|a| a == "--path").and_then(|i| args.get(i + 1)).map(String::as_str);
    let only: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && args[i - 1] == "--only")
        .map(|(_, a)| a.as_str())
        .collect();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let r = Reduction::Mean;
    let compat = Mode::TorchCompat;
    let n = 1_000_000;
    let x = var(rng.vec(n, -2.0, 2.0), &[n])?;
    let x2 = var(rng.vec(n, -2.0, 2.0), &[n])?;
    let dist = var(rng.vec(n, 0.0, 2.0), &[n])?;
    let y = Tensor::from_vec(rng.signs(n), n, &Device::Cpu)?;
    let (rows, dim) = (4096, 128);
    let a = var(rng.vec(rows * dim, -1.0, 1.0), &[rows, dim])?;
    let b = var(rng.vec(rows * dim, -1.0, 1.0), &[rows, dim])?;
    let yr = Tensor::from_vec(rng.signs(rows), rows, &Device::Cpu)?;

    let h = mc::Hinge::new().mode(compat);
    let he = mc::HingeEmbedding::new().mode(compat);
    let sm = mc::SoftMargin::new().mode(compat);
    let mr = mc::MarginRanking::new().mode(compat);
    let cs = mc::CosineSimilarity::new().mode(compat);
    let art = mc::HingeEmbedding::new().margin(0.2).mode(compat);

    type Loss<'a> = Box<dyn Fn(bool) -> Result<Tensor> + 'a>;
    let workloads: Vec<(&'static str, usize, Loss)> = vec![
        (
            "hinge",
            n,
            Box::new(|f| if f { mc::hinge_with(&x, &y, h, r) } else { composed::hinge(&x, &y, h, r) }),
        ),
        (
            "hinge-embedding",
            n,
            Box::new(|f| {
                if f {
                    mc::hinge_embedding_with(&dist, &y, he, r)
                } else {
                    composed::hinge_embedding(&dist, &y, he, r)
                }
            }),
        ),
        (
            "soft-margin",
            n,
            Box::new(|f| {
                if f {
                    mc::soft_margin_with(&x, &y, sm, r)
                } else {
                    composed::soft_margin(&x, &y, sm, r)
                }
            }),
        ),
        (
            "margin-ranking",
            n,
            Box::new(|f| {
                if f {
                    mc::margin_ranking_with(&x, &x2, &y, mr, r)
                } else {
                    composed::margin_ranking(&x, &x2, &y, mr, r)
                }
            }),
        ),
        (
            "cosine-similarity",
            rows,
            Box::new(|f| {
                if f {
                    mc::cosine_similarity_with(&a, &b, cs)
                } else {
                    composed::cosine_similarity(&a, &b, cs)
                }
            }),
        ),
        (
            "article",
            rows,
            Box::new(|f| {
                if f {
                    let d = mc::cosine_similarity_with(&a, &b, cs)?.affine(-1.0, 1.0)?;
                    mc::hinge_embedding_with(&d, &yr, art, r)
                } else {
                    let d = composed::cosine_similarity(&a, &b, cs)?.affine(-1.0, 1.0)?;
                    composed::hinge_embedding(&d, &yr, art, r)
                }
            }),
        ),
    ];

    let mut out = Vec::new();
    for (name, n, loss) in &workloads {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        // Both paths agree on the value (a guard against timing a broken path).
        let (vf, vc) = (loss(true)?, loss(false)?);
        let (vf, vc) = (vf.sum_all()?.to_dtype(DType::F64)?, vc.sum_all()?.to_dtype(DType::F64)?);
        let (vf, vc) = (vf.to_scalar::<f64>()?, vc.to_scalar::<f64>()?);
        assert!((vf - vc).abs() <= 1e-4 * vf.abs().max(1.0), "{name}: fused {vf} vs composed {vc}");
        // `--path fused` or `--path composed` times one path only (for a profiler).
        let time = |fused: bool| -> Result<f64> {
            match path {
                Some(p) if (p == "fused") != fused => Ok(f64::NAN),
                _ => median_ns(reps, &|| fwd_bwd(loss.as_ref(), fused)),
            }
        };
        let composed_ns = time(false)?;
        let fused_ns = time(true)?;
        let row = Row { name, n: *n, composed_ns, fused_ns };
        if json {
            println!(
                "{{\"name\": \"{}\", \"n\": {}, \"composed_ns\": {:.1}, \"fused_ns\": {:.1}}}",
                row.name, row.n, row.composed_ns, row.fused_ns
            );
        }
        out.push(row);
    }
    if !json {
        println!("{:<18} {:>9} {:>14} {:>14} {:>9}", "loss", "n", "composed", "fused", "speed-up");
        for r in &out {
            println!(
                "{:<18} {:>9} {:>11.3} ms {:>11.3} ms {:>8.1}x",
                r.name,
                r.n,
                r.composed_ns / 1e6,
                r.fused_ns / 1e6,
                r.composed_ns / r.fused_ns
            );
        }
        println!("(f32, CPU, forward + backward, median of {reps} after warm-up; torch-compat mode)");
    }
    Ok(())
}
