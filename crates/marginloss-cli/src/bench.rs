//! `marginloss bench NAME`: times the fused forward and forward+backward kernels on
//! generated data, beside the machine's streaming bandwidth measured in the same run.

use marginloss::Rows;
use std::hint::black_box;
use std::time::Instant;

use clap::Args;
use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Float, Hinge, HingeEmbedding,
    MarginRanking, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, PairwiseDistance,
    Reduction, SoftMargin, SquaredHinge, TripletMargin,
};
use serde::Serialize;

use crate::eval::LOSSES;
use crate::fail::{data, usage, Fail};
use crate::inputs::DTypeArg;
use crate::io::show_bytes;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Any `eval` loss name, or `article` (x = 1 - cosine_similarity(a, b), hinge_embedding
    /// with margin 0.2, forward and backward to a and b).
    pub name: String,
    /// Elements (element-wise losses) or rows/samples (row and class losses).
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// Row length D of the row losses and distances.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Classes C of the class losses.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Element type.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repetitions of each kernel (medians are reported).
    #[arg(long, default_value_t = 20)]
    pub reps: usize,
    /// Print one JSON object: name, n, dim, classes, dtype, threads, fwd_ns, fwd_bwd_ns,
    /// bytes_fwd_bwd, gbps, roofline_gbps.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    name: String,
    n: usize,
    dim: usize,
    classes: usize,
    dtype: &'static str,
    threads: usize,
    fwd_ns: f64,
    fwd_bwd_ns: f64,
    bytes_fwd_bwd: u64,
    gbps: f64,
    roofline_gbps: f64,
}

/// A generated workload: its two timed kernels and the bytes the fused call moves.
struct Work<'a> {
    fwd: Box<dyn FnMut() + 'a>,
    fwd_bwd: Box<dyn FnMut() + 'a>,
    bytes: u64,
}

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn vec<T: Float>(&mut self, n: usize, lo: f64, hi: f64) -> Vec<T> {
        (0..n).map(|_| T::of(lo + (hi - lo) * self.next())).collect()
    }
    fn signs<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| if self.next() < 0.5 { -T::one() } else { T::one() }).collect()
    }
    fn classes(&mut self, n: usize, c: usize) -> Vec<i64> {
        (0..n).map(|_| ((self.next() * c as f64) as i64).min(c as i64 - 1)).collect()
    }
}

pub fn run(args: &BenchArgs) -> Result<(), Fail> {
    if args.name != "article" && !LOSSES.iter().any(|s| s.name == args.name) {
        let names: Vec<&str> = LOSSES.iter().map(|s| s.name).collect();
        return Err(usage(format!(
            "unknown benchmark '{}'; expected article or one of: {}",
            args.name,
            names.join(", ")
        )));
    }
    if args.n == 0 || args.dim == 0 || args.classes < 2 || args.reps == 0 {
        return Err(usage("--n, --dim and --reps must be at least 1, --classes at least 2"));
    }
    if args.reps > MAX_REPS {
        return Err(usage(format!("--reps {} is more than the {MAX_REPS} bench runs", args.reps)));
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err(usage("--threads must be at least 1"));
    }
    if threads > MAX_THREADS {
        return Err(usage(format!("--threads {threads} is more than the {MAX_THREADS} bench starts")));
    }
    check_memory(args, mem_available())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| data(format!("cannot start {threads} threads: {e}")))?;
    let report = pool.install(|| match args.dtype {
        DTypeArg::F32 => measure::<f32>(args, threads),
        DTypeArg::F64 => measure::<f64>(args, threads),
    })?;
    if args.json {
        let s = serde_json::to_string(&report).map_err(|e| data(format!("cannot encode JSON: {e}")))?;
        println!("{s}");
    } else {
        let per = |ns: f64| ns / elements(args) as f64;
        println!(
            "{}  n {}  dim {}  classes {}  {}  {} thread(s)  {} reps",
            report.name, report.n, report.dim, report.classes, report.dtype, report.threads, args.reps
        );
        println!(
            "forward            {:>12.0} ns/call  {:>8.3} ns/element",
            report.fwd_ns,
            per(report.fwd_ns)
        );
        println!(
            "forward+backward   {:>12.0} ns/call  {:>8.3} ns/element",
            report.fwd_bwd_ns,
            per(report.fwd_bwd_ns)
        );
        println!(
            "bandwidth          {:>12.2} GB/s ({} bytes read and written per call) = {:.0}% of the {:.2} GB/s triad roofline",
            report.gbps,
            report.bytes_fwd_bwd,
            100.0 * report.gbps / report.roofline_gbps,
            report.roofline_gbps
        );
    }
    Ok(())
}

/// The most threads `bench` starts.
pub const MAX_THREADS: usize = 1024;

/// The most timed repetitions `bench` runs.
pub const MAX_REPS: usize = 100_000;

/// The bytes the STREAM triad allocates (three f64 arrays of 2^24 elements).
const TRIAD_BYTES: u64 = 3 * (1 << 24) * 8;

/// The bytes every buffer of the workload takes (generated inputs, gradients, outputs and
/// the triad's arrays), or `None` when the count overflows 64 bits.
fn footprint(args: &BenchArgs) -> Option<u64> {
    let s: u64 = match args.dtype {
        DTypeArg::F32 => 4,
        DTypeArg::F64 => 8,
    };
    let (n, d, c) = (args.n as u64, args.dim as u64, args.classes as u64);
    let k = |times: u64, elems: Option<u64>, size: u64| elems?.checked_mul(times)?.checked_mul(size);
    let sum = |parts: &[Option<u64>]| parts.iter().try_fold(0u64, |acc, p| acc.checked_add((*p)?));
    let (nd, nc) = (n.checked_mul(d), n.checked_mul(c));
    let work = match args.name.as_str() {
        "hinge" | "squared-hinge" | "hinge-embedding" | "soft-margin" => k(3, Some(n), s),
        "margin-ranking" => k(5, Some(n), s),
        "cosine-similarity" | "pairwise-distance" => sum(&[k(4, nd, s), k(2, Some(n), s)]),
        "cosine-embedding" | "contrastive" | "article" => sum(&[k(4, nd, s), k(1, Some(n), s)]),
        "triplet-margin" => k(6, nd, s),
        "multi-margin" | "multiclass-hinge" => sum(&[k(2, nc, s), k(1, Some(n), 8)]),
        "multilabel-margin" => sum(&[k(2, nc, s), k(1, nc, 8)]),
        _ => k(3, nc, s),
    };
    work?.checked_add(TRIAD_BYTES)
}

/// A small text file (at most 64 KiB of it).
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path).ok()?.take(1 << 16).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The memory a workload may take, in bytes: `MemAvailable` from /proc/meminfo, or the
/// process's address-space limit (`ulimit -v`, from /proc/self/limits) when that is lower;
/// `None` where the system reports neither.
fn mem_available() -> Option<u64> {
    let meminfo = read_small("/proc/meminfo").and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: u64 =
            line.trim_start_matches("MemAvailable:").trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    });
    let rlimit = read_small("/proc/self/limits").and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("Max address space"))?;
        line.trim_start_matches("Max address space").split_whitespace().next()?.parse::<u64>().ok()
    });
    match (meminfo, rlimit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A usage error unless the workload's buffers fit the available memory (and this
/// machine's address space).
fn check_memory(args: &BenchArgs, available: Option<u64>) -> Result<(), Fail> {
    let sizes = match kind(&args.name) {
        Kind::Elementwise => format!("--n {}", args.n),
        Kind::Rows => format!("--n {} --dim {}", args.n, args.dim),
        Kind::Classes => format!("--n {} --classes {}", args.n, args.classes),
    };
    let what = format!("bench {} {sizes}", args.name);
    let Some(bytes) = footprint(args) else {
        return Err(usage(format!("{what}: the buffers' size overflows 64 bits; use smaller sizes")));
    };
    if bytes > isize::MAX as u64 {
        return Err(usage(format!(
            "{what}: the buffers need {}, more than this machine can address; use smaller sizes",
            show_bytes(bytes)
        )));
    }
    if let Some(avail) = available {
        if bytes > avail {
            return Err(usage(format!(
                "{what}: the buffers need {} but {} of memory is available; use smaller sizes",
                show_bytes(bytes),
                show_bytes(avail)
            )));
        }
    }
    Ok(())
}

/// The element count the per-element figures divide by.
fn elements(args: &BenchArgs) -> usize {
    match kind(&args.name) {
        Kind::Elementwise => args.n,
        Kind::Rows => args.n * args.dim,
        Kind::Classes => args.n * args.classes,
    }
}

enum Kind {
    Elementwise,
    Rows,
    Classes,
}

fn kind(name: &str) -> Kind {
    match name {
        "hinge" | "squared-hinge" | "hinge-embedding" | "soft-margin" | "margin-ranking" => Kind::Elementwise,
        "multi-margin" | "multiclass-hinge" | "multilabel-margin" | "multilabel-soft-margin" => Kind::Classes,
        _ => Kind::Rows,
    }
}

fn measure<T: Float>(args: &BenchArgs, threads: usize) -> Result<Report, Fail> {
    let roofline = triad_gbps(args.reps.clamp(3, 10));
    let (n, d, c) = (args.n, args.dim, args.classes);
    let s = std::mem::size_of::<T>() as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let r = Reduction::Mean;
    let one = [T::one()];
    let name = args.name.as_str();
    // Every buffer lives here; the closures borrow them.
    let x: Vec<T>;
    let x2: Vec<T>;
    let x3: Vec<T>;
    let t: Vec<T>;
    let cls: Vec<i64>;
    let mut out = vec![T::zero(); 1];
    let mut out2 = vec![T::zero(); 1];
    let mut g1: Vec<T>;
    let mut g2: Vec<T>;
    let mut g3: Vec<T>;
    let work: Work<'_> = match name {
        "hinge" | "squared-hinge" | "hinge-embedding" | "soft-margin" => {
            x = if name == "hinge-embedding" { rng.vec(n, 0.0, 2.0) } else { rng.vec(n, -3.0, 3.0) };
            t = rng.signs(n);
            g1 = vec![T::zero(); n];
            let (x, t) = (&x, &t);
            macro_rules! pw {
                ($loss:expr) => {{
                    let l = $loss;
                    Work {
                        fwd: Box::new(move || l.forward_into(x, t, r, black_box(&mut out)).unwrap_or(())),
                        fwd_bwd: Box::new(move || {
                            l.forward_backward(x, t, r, &one, black_box(&mut out2), &mut g1).unwrap_or(())
                        }),
                        bytes: 3 * n as u64 * s,
                    }
                }};
            }
            match name {
                "hinge" => pw!(Hinge::new()),
                "squared-hinge" => pw!(SquaredHinge::new()),
                "soft-margin" => pw!(SoftMargin::new()),
                _ => pw!(HingeEmbedding::new()),
            }
        }
        "margin-ranking" => {
            (x, x2, t) = (rng.vec(n, -3.0, 3.0), rng.vec(n, -3.0, 3.0), rng.signs(n));
            (g1, g2) = (vec![T::zero(); n], vec![T::zero(); n]);
            let l = MarginRanking::new().margin(0.1);
            let (x, x2, t) = (&x, &x2, &t);
            Work {
                fwd: Box::new(move || l.forward_into(x, x2, t, r, &mut out).unwrap_or(())),
                fwd_bwd: Box::new(move || {
                    l.forward_backward(x, x2, t, r, &one, &mut out2, &mut g1, &mut g2).unwrap_or(())
                }),
                bytes: 5 * n as u64 * s,
            }
        }
        "cosine-similarity" | "pairwise-distance" => {
            (x, x2) = (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0));
            (g1, g2) = (vec![T::zero(); n * d], vec![T::zero(); n * d]);
            out = vec![T::zero(); n];
            out2 = vec![T::zero(); n];
            let (x, x2) = (Rows::new(&x, n, d)?, Rows::new(&x2, n, d)?);
            let bytes = (4 * n * d + n) as u64 * s;
            if name == "cosine-similarity" {
                let l = CosineSimilarity::new();
                Work {
                    fwd: Box::new(move || l.forward_into(x, x2, &mut out).unwrap_or(())),
                    fwd_bwd: Box::new(move || {
                        l.forward_backward(x, x2, &one, &mut out2, &mut g1, &mut g2).unwrap_or(())
                    }),
                    bytes,
                }
            } else {
                let l = PairwiseDistance::new();
                Work {
                    fwd: Box::new(move || l.forward_into(x, x2, &mut out).unwrap_or(())),
                    fwd_bwd: Box::new(move || {
                        l.forward_backward(x, x2, &one, &mut out2, &mut g1, &mut g2).unwrap_or(())
                    }),
                    bytes,
                }
            }
        }
        "cosine-embedding" | "contrastive" | "article" => {
            (x, x2, t) = (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0), rng.signs(n));
            (g1, g2) = (vec![T::zero(); n * d], vec![T::zero(); n * d]);
            let (x, x2, t) = (Rows::new(&x, n, d)?, Rows::new(&x2, n, d)?, &t);
            let bytes = (4 * n * d + n) as u64 * s;
            macro_rules! pair {
                ($loss:expr) => {{
                    let l = $loss;
                    Work {
                        fwd: Box::new(move || l.forward_into(x, x2, t, r, &mut out).unwrap_or(())),
                        fwd_bwd: Box::new(move || {
                            l.forward_backward(x, x2, t, r, &one, &mut out2, &mut g1, &mut g2).unwrap_or(())
                        }),
                        bytes,
                    }
                }};
            }
            match name {
                "cosine-embedding" => pair!(CosineEmbedding::new()),
                "contrastive" => pair!(Contrastive::new()),
                _ => pair!(HingeEmbedding::new().margin(0.2).on(CosineDistance::default())),
            }
        }
        "triplet-margin" => {
            (x, x2, x3) = (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0));
            (g1, g2, g3) = (vec![T::zero(); n * d], vec![T::zero(); n * d], vec![T::zero(); n * d]);
            let l = TripletMargin::new();
            let (x, x2, x3) = (Rows::new(&x, n, d)?, Rows::new(&x2, n, d)?, Rows::new(&x3, n, d)?);
            Work {
                fwd: Box::new(move || l.forward_into(x, x2, x3, r, &mut out).unwrap_or(())),
                fwd_bwd: Box::new(move || {
                    l.forward_backward(x, x2, x3, r, &one, &mut out2, &mut g1, &mut g2, &mut g3).unwrap_or(())
                }),
                bytes: 6 * (n * d) as u64 * s,
            }
        }
        "multi-margin" | "multiclass-hinge" => {
            (x, cls) = (rng.vec(n * c, -1.0, 1.0), rng.classes(n, c));
            g1 = vec![T::zero(); n * c];
            let (x, cls) = (Rows::new(&x, n, c)?, &cls);
            let bytes = 2 * (n * c) as u64 * s + 8 * n as u64;
            if name == "multi-margin" {
                let l = MultiMargin::new();
                Work {
                    fwd: Box::new(move || l.forward_into(x, cls, None, r, &mut out).unwrap_or(())),
                    fwd_bwd: Box::new(move || {
                        l.forward_backward(x, cls, None, r, &one, &mut out2, &mut g1).unwrap_or(())
                    }),
                    bytes,
                }
            } else {
                let l = MulticlassHinge::new();
                Work {
                    fwd: Box::new(move || l.forward_into(x, cls, r, &mut out).unwrap_or(())),
                    fwd_bwd: Box::new(move || {
                        l.forward_backward(x, cls, r, &one, &mut out2, &mut g1).unwrap_or(())
                    }),
                    bytes,
                }
            }
        }
        "multilabel-margin" => {
            x = rng.vec(n * c, -1.0, 1.0);
            // two labels per row, then -1 padding
            cls = (0..n)
                .flat_map(|_| {
                    let (a, b) = (rng.classes(1, c)[0], rng.classes(1, c)[0]);
                    let mut row = vec![-1i64; c];
                    row[0] = a;
                    if b != a {
                        row[1] = b;
                    }
                    row
                })
                .collect();
            g1 = vec![T::zero(); n * c];
            let l = MultilabelMargin::new();
            let (x, cls) = (Rows::new(&x, n, c)?, &cls);
            Work {
                fwd: Box::new(move || l.forward_into(x, cls, r, &mut out).unwrap_or(())),
                fwd_bwd: Box::new(move || {
                    l.forward_backward(x, cls, r, &one, &mut out2, &mut g1).unwrap_or(())
                }),
                bytes: (2 * s + 8) * (n * c) as u64,
            }
        }
        "multilabel-soft-margin" => {
            x = rng.vec(n * c, -3.0, 3.0);
            t = (0..n * c).map(|_| if rng.next() < 0.2 { T::one() } else { T::zero() }).collect();
            g1 = vec![T::zero(); n * c];
            let l = MultilabelSoftMargin::new();
            let (x, t) = (Rows::new(&x, n, c)?, &t);
            Work {
                fwd: Box::new(move || l.forward_into(x, t, None, r, &mut out).unwrap_or(())),
                fwd_bwd: Box::new(move || {
                    l.forward_backward(x, t, None, r, &one, &mut out2, &mut g1).unwrap_or(())
                }),
                bytes: 3 * (n * c) as u64 * s,
            }
        }
        other => return Err(usage(format!("bench has no workload for '{other}'"))),
    };
    let Work { mut fwd, mut fwd_bwd, bytes } = work;
    let fwd_ns = median_ns(&mut fwd, args.reps);
    let fwd_bwd_ns = median_ns(&mut fwd_bwd, args.reps);
    Ok(Report {
        name: args.name.clone(),
        n,
        dim: d,
        classes: c,
        dtype: T::DTYPE,
        threads,
        fwd_ns,
        fwd_bwd_ns,
        bytes_fwd_bwd: bytes,
        gbps: bytes as f64 / fwd_bwd_ns,
        roofline_gbps: roofline,
    })
}

/// Warms up (at least 3 calls and 20 ms), then returns the median of `reps` timed calls.
fn median_ns(f: &mut dyn FnMut(), reps: usize) -> f64 {
    let start = Instant::now();
    let mut warm = 0;
    while warm < 3 || start.elapsed().as_millis() < 20 {
        f();
        warm += 1;
    }
    // Calls much shorter than the clock's resolution are timed in batches.
    let once = start.elapsed().as_nanos() as f64 / warm as f64;
    let batch = ((20_000.0 / once.max(1.0)).ceil() as usize).clamp(1, 100_000);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The machine's streaming bandwidth: the STREAM triad `a[i] = b[i] + s·c[i]` over three
/// f64 arrays of 2^24 elements (384 MiB, far past any last-level cache) on the current
/// rayon pool, counting 24 bytes per element (STREAM's convention); the best of `reps`.
fn triad_gbps(reps: usize) -> f64 {
    use rayon::prelude::*;
    const N: usize = 1 << 24;
    const CHUNK: usize = 1 << 16;
    let mut a = vec![0.0f64; N];
    let b = vec![1.0f64; N];
    let c = vec![2.0f64; N];
    let s = black_box(3.0);
    let mut best = f64::INFINITY;
    for _ in 0..reps + 1 {
        let t = Instant::now();
        a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).zip(c.par_chunks(CHUNK)).for_each(|((a, b), c)| {
            for i in 0..a.len() {
                a[i] = b[i] + s * c[i];
            }
        });
        black_box(&a);
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    (24 * N) as f64 / best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, n: usize, dim: usize, classes: usize) -> BenchArgs {
        BenchArgs {
            name: name.into(),
            n,
            dim,
            classes,
            dtype: DTypeArg::F32,
            threads: Some(1),
            reps: 1,
            json: false,
        }
    }

    #[test]
    fn footprint_counts_every_buffer_and_the_triad() {
        assert_eq!(footprint(&args("hinge", 1000, 128, 10)), Some(3 * 1000 * 4 + TRIAD_BYTES));
        assert_eq!(footprint(&args("triplet-margin", 10, 128, 10)), Some(6 * 1280 * 4 + TRIAD_BYTES));
        assert_eq!(footprint(&args("multi-margin", 10, 1, 100)), Some(2 * 1000 * 4 + 80 + TRIAD_BYTES));
    }

    #[test]
    fn sizes_that_overflow_or_exceed_memory_are_usage_errors() {
        let e = check_memory(&args("hinge", usize::MAX, 1, 2), Some(u64::MAX)).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("overflows"), "{}", e.message);
        let e = check_memory(&args("pairwise-distance", 1 << 40, 1 << 30, 2), Some(u64::MAX)).unwrap_err();
        assert!(e.message.contains("overflows"), "{}", e.message);
        let e = check_memory(&args("pairwise-distance", 1 << 40, 1 << 19, 2), Some(u64::MAX)).unwrap_err();
        assert!(e.message.contains("more than this machine can address"), "{}", e.message);
        let e = check_memory(&args("hinge", 1_000_000_000_000, 1, 2), Some(8 << 30)).unwrap_err();
        assert!(
            e.message.contains("bench hinge --n 1000000000000: the buffers need 10.9 TiB but 8 GiB"),
            "{}",
            e.message
        );
        assert!(check_memory(&args("hinge", 1000, 1, 2), Some(1 << 30)).is_ok());
        assert!(check_memory(&args("hinge", 1000, 1, 2), None).is_ok());
    }
}
