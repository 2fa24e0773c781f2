//! `marginloss eval|check|bench NAME …` for the batch metric-learning losses
//! (batch-all-triplet, batch-hard-triplet, semihard-triplet, pair-contrastive): embeddings
//! and class labels in, the mined loss and its gradients out.

use marginloss::Rows;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser};
use marginloss::batch::{
    gram_matrix, Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, BatchStats,
    PairContrastive, SemihardTriplet, Workspace,
};
use marginloss::{Float, Mode};
use serde_json::{json, Value};

use crate::fail::{data, usage, Fail};
use crate::io::{read, Array, DType, ReadOptions};

/// The batch losses' `eval` / `check` / `bench` names.
pub const NAMES: [&str; 4] =
    ["batch-all-triplet", "batch-hard-triplet", "semihard-triplet", "pair-contrastive"];

/// Whether `argv` (without the program name) is `eval|check|bench NAME` with a batch loss.
pub fn wants(argv: &[OsString]) -> bool {
    argv.len() >= 2
        && ["eval", "check", "bench"].iter().any(|c| argv[0] == *c)
        && NAMES.iter().any(|n| argv[1] == *n)
}

#[derive(Parser, Debug)]
#[command(name = "marginloss")]
enum Cmd {
    /// Evaluate a batch loss (and its gradients) on .npy/.csv embeddings and labels.
    Eval(Box<EvalArgs>),
    /// Diagnose a batch: labels that never repeat, one class, singletons, collapsed
    /// embeddings, a margin outside the distance's range, tuples that already satisfy it.
    Check(Box<EvalArgs>),
    /// Time a batch loss on generated P x K data beside one N x D x N GEMM (gemm_ns).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct LossArgs {
    /// batch-all-triplet, batch-hard-triplet, semihard-triplet or pair-contrastive.
    name: String,
    /// The margin (triplet losses).
    #[arg(long, allow_negative_numbers = true)]
    margin: Option<f64>,
    /// pair-contrastive: positive pairs cost max(0, d - pos-margin).
    #[arg(long, allow_negative_numbers = true)]
    pos_margin: Option<f64>,
    /// pair-contrastive: negative pairs cost max(0, neg-margin - d).
    #[arg(long, allow_negative_numbers = true)]
    neg_margin: Option<f64>,
    /// euclidean, squared-euclidean or cosine.
    #[arg(long, default_value = "euclidean")]
    distance: String,
    /// L2-normalise the rows first (pytorch-metric-learning does by default).
    #[arg(long)]
    normalize: bool,
    /// softplus instead of the hinge (batch-all, batch-hard).
    #[arg(long)]
    soft: bool,
    /// mean, mean-nonzero, sum or none (one value per anchor).
    #[arg(long, default_value = "mean")]
    reduction: String,
    /// Reproduce the reference (pytorch-metric-learning; TF-Addons for semihard-triplet).
    #[arg(long)]
    torch_compat: bool,
    /// batch-hard-triplet: TF-Addons' triplet_hard_loss (fallbacks, mean over all anchors).
    #[arg(long)]
    tf_addons: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    loss: LossArgs,
    /// N x D embeddings (.npy float32/float64, or .csv).
    #[arg(long)]
    embeddings: PathBuf,
    /// N integer class labels (.npy int64/int32, or .csv).
    #[arg(long)]
    labels: PathBuf,
    /// M x D reference embeddings (candidates), pytorch-metric-learning's ref_emb.
    #[arg(long, requires = "ref_labels")]
    ref_embeddings: Option<PathBuf>,
    /// M reference labels.
    #[arg(long, requires = "ref_embeddings")]
    ref_labels: Option<PathBuf>,
    /// Print JSON ({"loss", "grad": {"embeddings", ["ref-embeddings"]}} for eval).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    loss: LossArgs,
    /// Rows N.
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Row length D.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Classes (N / classes examples each).
    #[arg(long, default_value_t = 128)]
    classes: usize,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print one JSON object: name, n, dim, classes, dtype, threads, fwd_bwd_ns, gemm_ns.
    #[arg(long)]
    json: bool,
}

/// Runs `eval|check|bench NAME …`; `argv` without the program name.
pub fn run(argv: &[OsString]) -> Result<(), Fail> {
    let cmd = Cmd::try_parse_from(std::iter::once(OsString::from("marginloss")).chain(argv.iter().cloned()))
        .map_err(|e| {
            let text = e.render().to_string();
            usage(format!(
                "{} (see marginloss --help)",
                text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ")
            ))
        })?;
    match cmd {
        Cmd::Eval(a) => eval(&a, false),
        Cmd::Check(a) => eval(&a, true),
        Cmd::Bench(a) => bench(&a),
    }
}

/// The loss `args` describe, run on one batch.
enum Loss {
    All(BatchAllTriplet),
    Hard(BatchHardTriplet),
    Semi(SemihardTriplet),
    Pair(PairContrastive),
}

impl Loss {
    fn new(a: &LossArgs) -> Result<(Loss, BatchReduction), Fail> {
        let distance = BatchDistance::parse(&a.distance).ok_or_else(|| {
            usage(format!("--distance {}: expected euclidean, squared-euclidean or cosine", a.distance))
        })?;
        let reduction = BatchReduction::parse(&a.reduction).ok_or_else(|| {
            usage(format!("--reduction {}: expected mean, mean-nonzero, sum or none", a.reduction))
        })?;
        let mode = if a.torch_compat || a.tf_addons { Mode::TorchCompat } else { Mode::Strict };
        let pair = a.name == "pair-contrastive";
        if pair && a.margin.is_some() {
            return Err(usage("pair-contrastive takes --pos-margin and --neg-margin, not --margin"));
        }
        if !pair && (a.pos_margin.is_some() || a.neg_margin.is_some()) {
            return Err(usage(format!("{} takes --margin, not --pos-margin / --neg-margin", a.name)));
        }
        if a.soft && !matches!(a.name.as_str(), "batch-all-triplet" | "batch-hard-triplet") {
            return Err(usage(format!(
                "--soft applies to batch-all-triplet and batch-hard-triplet, not {}",
                a.name
            )));
        }
        if a.tf_addons && a.name != "batch-hard-triplet" {
            return Err(usage("--tf-addons applies to batch-hard-triplet (semihard-triplet --torch-compat is TF-Addons already)"));
        }
        let loss = match a.name.as_str() {
            "batch-all-triplet" => {
                let mut l =
                    BatchAllTriplet::new().soft(a.soft).distance(distance).normalize(a.normalize).mode(mode);
                if let Some(m) = a.margin {
                    l = l.margin(m);
                }
                Loss::All(l)
            }
            "batch-hard-triplet" => {
                let mut l =
                    BatchHardTriplet::new().soft(a.soft).distance(distance).normalize(a.normalize).mode(mode);
                if a.tf_addons {
                    l = l.tf_addons();
                }
                if let Some(m) = a.margin {
                    l = l.margin(m);
                }
                Loss::Hard(l)
            }
            "semihard-triplet" => {
                let mut l = SemihardTriplet::new().distance(distance).normalize(a.normalize).mode(mode);
                if let Some(m) = a.margin {
                    l = l.margin(m);
                }
                Loss::Semi(l)
            }
            "pair-contrastive" => {
                let mut l = PairContrastive::new().distance(distance).normalize(a.normalize).mode(mode);
                if let Some(m) = a.pos_margin {
                    l = l.pos_margin(m);
                }
                if let Some(m) = a.neg_margin {
                    l = l.neg_margin(m);
                }
                Loss::Pair(l)
            }
            other => return Err(usage(format!("unknown batch loss {other}"))),
        };
        Ok((loss, reduction))
    }

    /// The largest margin (the one that decides "already satisfied").
    fn margin(&self) -> f64 {
        match self {
            Loss::All(l) => l.margin,
            Loss::Hard(l) => l.margin,
            Loss::Semi(l) => l.margin,
            Loss::Pair(l) => l.neg_margin,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run<T: Float>(
        &self,
        batch: &Batch<'_, T, i64>,
        r: BatchReduction,
        up: &[T],
        out: &mut [T],
        g: &mut [T],
        gr: Option<&mut [T]>,
        ws: &mut Workspace<T>,
    ) -> marginloss::Result<BatchStats> {
        match self {
            Loss::All(l) => l.forward_backward(batch, r, up, out, g, gr, ws),
            Loss::Hard(l) => l.forward_backward(batch, r, up, out, g, gr, ws),
            Loss::Semi(l) => l.forward_backward(batch, r, up, out, g, gr, ws),
            Loss::Pair(l) => l.forward_backward(batch, r, up, out, g, gr, ws),
        }
    }
}

fn matrix(a: &Array, arg: &str) -> Result<(usize, usize), Fail> {
    if !a.dtype.is_float() {
        return Err(data(format!("--{arg} {}: embeddings must be float32 or float64", a.display())));
    }
    match a.shape[..] {
        [n, d] => Ok((n, d)),
        _ => Err(data(format!("--{arg} {}: has shape {:?}, expected N x D (2-D)", a.display(), a.shape))),
    }
}

fn labels(a: &Array, arg: &str, n: usize) -> Result<Vec<i64>, Fail> {
    let ints = match (a.dtype, &a.ints) {
        (DType::I64, Some(v)) => v.clone(),
        (DType::I32, _) => a.values.iter().map(|&v| v as i64).collect(),
        _ if a.values.iter().all(|v| v.fract() == 0.0 && v.abs() < 9e15) && a.dtype != DType::Bool => {
            a.values.iter().map(|&v| v as i64).collect()
        }
        _ => {
            return Err(data(format!(
                "--{arg} {}: labels must be integers (int64/int32, or a .csv of whole numbers)",
                a.display()
            )))
        }
    };
    if a.shape.len() > 1 && a.shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(data(format!(
            "--{arg} {}: has shape {:?}, expected N labels (1-D)",
            a.display(),
            a.shape
        )));
    }
    if ints.len() != n {
        return Err(data(format!("--{arg} {}: {} labels for {n} embedding rows", a.display(), ints.len())));
    }
    Ok(ints)
}

fn tensor<T: Float>(shape: &[usize], v: &[T]) -> Value {
    json!({"shape": shape, "data": v.iter().map(|x| x.f64()).collect::<Vec<f64>>()})
}

fn eval(a: &EvalArgs, check: bool) -> Result<(), Fail> {
    let (loss, reduction) = Loss::new(&a.loss)?;
    let e = read(&a.embeddings, "embeddings", &ReadOptions::default())?;
    let (n, d) = matrix(&e, "embeddings")?;
    let y = labels(&read(&a.labels, "labels", &ReadOptions::default())?, "labels", n)?;
    let reference = match (&a.ref_embeddings, &a.ref_labels) {
        (Some(re), Some(rl)) => {
            let r = read(re, "ref-embeddings", &ReadOptions::default())?;
            let (m, rd) = matrix(&r, "ref-embeddings")?;
            if rd != d {
                return Err(data(format!(
                    "--ref-embeddings {}: rows of {rd} values, the embeddings have {d}",
                    r.display()
                )));
            }
            let ry = labels(&read(rl, "ref-labels", &ReadOptions::default())?, "ref-labels", m)?;
            Some((r, m, ry))
        }
        _ => None,
    };
    let f64s = e.dtype == DType::F64 || reference.as_ref().is_some_and(|r| r.0.dtype == DType::F64);
    if f64s {
        eval_t::<f64>(a, check, &loss, reduction, &e, n, d, &y, reference.as_ref())
    } else {
        eval_t::<f32>(a, check, &loss, reduction, &e, n, d, &y, reference.as_ref())
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_t<T: Float>(
    a: &EvalArgs,
    check: bool,
    loss: &Loss,
    reduction: BatchReduction,
    e: &Array,
    n: usize,
    d: usize,
    y: &[i64],
    reference: Option<&(Array, usize, Vec<i64>)>,
) -> Result<(), Fail> {
    let x: Vec<T> = e.values.iter().map(|&v| T::of(v)).collect();
    let rx: Option<Vec<T>> = reference.map(|r| r.0.values.iter().map(|&v| T::of(v)).collect());
    let mut batch = Batch::new(Rows::new(&x, n, d)?, y);
    if let (Some(r), Some(rx)) = (reference, &rx) {
        batch = batch.with_reference(Rows::new(rx, r.1, d)?, &r.2);
    }
    if check {
        return check_t(a, loss, reduction, &batch, &x, n, d, y, reference.map(|r| &r.2[..]));
    }
    let mut out = vec![T::zero(); reduction.output_len(n)];
    let mut g = vec![T::zero(); n * d];
    let mut gr = vec![T::zero(); reference.map_or(0, |r| r.1 * d)];
    let grr = if reference.is_some() { Some(&mut gr[..]) } else { None };
    let stats = loss.run(&batch, reduction, &[T::one()], &mut out, &mut g, grr, &mut Workspace::new())?;
    let shape: Vec<usize> = if reduction == BatchReduction::None { vec![n] } else { vec![] };
    if a.json {
        let mut grad = serde_json::Map::new();
        grad.insert("embeddings".into(), tensor(&[n, d], &g));
        if let Some(r) = reference {
            grad.insert("ref-embeddings".into(), tensor(&[r.1, d], &gr));
        }
        println!("{}", json!({"loss": tensor(&shape, &out), "grad": grad}));
    } else {
        let v: Vec<String> = out.iter().map(|v| v.to_string()).collect();
        println!("{} ({}, {}): {}", a.loss.name, a.loss.distance, reduction.as_str(), v.join(" "));
        println!(
            "  tuples {}, with loss > 0: {}, anchors with a positive and a negative: {} of {n}",
            stats.tuples, stats.active, stats.anchors
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_t<T: Float>(
    a: &EvalArgs,
    loss: &Loss,
    reduction: BatchReduction,
    batch: &Batch<'_, T, i64>,
    x: &[T],
    n: usize,
    d: usize,
    y: &[i64],
    ref_labels: Option<&[i64]>,
) -> Result<(), Fail> {
    let mut findings: Vec<Value> = Vec::new();
    fn push(findings: &mut Vec<Value>, level: &str, code: &str, message: String, fix: &str) {
        findings.push(json!({"level": level, "code": code, "message": message, "fix": fix}));
    }
    macro_rules! add {
        ($($a:expr),* $(,)?) => { push(&mut findings, $($a),*) };
    }
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for &l in ref_labels.unwrap_or(y) {
        *counts.entry(l).or_default() += 1;
    }
    let singles = counts.values().filter(|&&c| c == 1).count();
    if ref_labels.is_none() && singles == counts.len() {
        add!(
            "error",
            "labels-never-repeat",
            format!("all {n} labels are distinct: there is no positive pair"),
            "sample at least two examples per class (P x K batches)"
        );
    } else if singles > 0 && ref_labels.is_none() {
        add!(
            "warning",
            "singleton-classes",
            format!("{singles} of {} classes have one member: those rows are never anchors", counts.len()),
            "sample K >= 2 examples per class"
        );
    }
    if counts.len() == 1 {
        add!(
            "error",
            "single-class",
            "every label is the same: there is no negative".into(),
            "sample at least two classes per batch"
        );
    }
    // Collapsed embeddings: every row (nearly) the same.
    let mean: Vec<f64> =
        (0..d).map(|k| (0..n).map(|i| x[i * d + k].f64()).sum::<f64>() / n.max(1) as f64).collect();
    let spread = (0..n)
        .map(|i| (0..d).map(|k| (x[i * d + k].f64() - mean[k]).powi(2)).sum::<f64>().sqrt())
        .fold(0.0, f64::max);
    let scale = (0..n * d).map(|i| x[i].f64().abs()).fold(0.0, f64::max);
    if n > 1 && spread <= 1e-6 * scale.max(1e-30) {
        add!("error", "collapsed-embeddings", format!("all {n} rows coincide (largest distance to their mean {spread:e}): every distance is about 0"),
            "the embedding has collapsed: lower the learning rate, use batch-hard with a margin, or normalize");
    }
    let dist = BatchDistance::parse(&a.loss.distance).unwrap_or_default();
    let range = match (dist, a.loss.normalize) {
        (BatchDistance::Cosine, _) | (BatchDistance::Euclidean, true) => Some(2.0),
        (BatchDistance::SquaredEuclidean, true) => Some(4.0),
        _ => None,
    };
    if let Some(hi) = range {
        if loss.margin() > hi {
            add!("warning", "margin-out-of-range", format!("margin {} exceeds {hi}, the largest {} distance{}", loss.margin(), a.loss.distance, if a.loss.normalize { " between unit rows" } else { "" }),
                "pick a margin inside the distance's range (e.g. 0.2 for unit-norm euclidean, 0.1-0.5 for cosine)");
        }
    }
    let errors = findings.iter().filter(|f| f["level"] == "error").count();
    let mut stats = None;
    if errors == 0 {
        let mut out = vec![T::zero(); reduction.output_len(n)];
        let mut g = vec![T::zero(); n * d];
        match loss.run(batch, reduction, &[T::one()], &mut out, &mut g, None, &mut Workspace::new()) {
            Ok(s) => {
                if s.tuples > 0 && (s.active as f64) < 0.1 * s.tuples as f64 {
                    add!("note", "margin-satisfied", format!("{} of {} tuples already satisfy the margin: that is why the loss reads {}", s.tuples - s.active, s.tuples, out[0]),
                        "mine harder (batch-hard, semihard-triplet), raise the margin, or use --reduction mean-nonzero");
                }
                stats = Some(s);
            }
            Err(e) => add!("error", "loss-refused", e.to_string(), "see the message"),
        }
    }
    let errors = findings.iter().filter(|f| f["level"] == "error").count();
    if a.json {
        println!(
            "{}",
            json!({"loss": a.loss.name, "n": n, "dim": d, "findings": findings, "tuples": stats.map(|s| s.tuples), "active": stats.map(|s| s.active)})
        );
    } else {
        let warnings = findings.iter().filter(|f| f["level"] == "warning").count();
        println!(
            "check {}: {errors} errors, {warnings} warnings, {} notes",
            a.loss.name,
            findings.len() - errors - warnings
        );
        for f in &findings {
            println!(
                "{}[{}]: {}\n  fix: {}",
                f["level"].as_str().unwrap_or(""),
                f["code"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or(""),
                f["fix"].as_str().unwrap_or("")
            );
        }
    }
    if errors > 0 {
        Err(data(format!("check {}: {errors} error(s) in the batch", a.loss.name)))
    } else {
        Ok(())
    }
}

fn bench(a: &BenchArgs) -> Result<(), Fail> {
    if a.n == 0 || a.dim == 0 || a.classes == 0 || a.reps == 0 {
        return Err(usage("--n, --dim, --classes and --reps must be at least 1"));
    }
    if a.n.checked_mul(a.n).and_then(|v| v.checked_mul(8)).is_none_or(|b| b > 8 << 30) {
        return Err(usage(format!("--n {}: the N x N matrix would exceed 8 GiB", a.n)));
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |t| t.get()));
    if threads == 0 {
        return Err(usage("--threads must be at least 1"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| data(format!("cannot start {threads} threads: {e}")))?;
    let (loss, reduction) = Loss::new(&a.loss)?;
    let (fb, gm) = match a.dtype.as_str() {
        "f32" => pool.install(|| bench_t::<f32>(a, &loss, reduction))?,
        "f64" => pool.install(|| bench_t::<f64>(a, &loss, reduction))?,
        other => return Err(usage(format!("--dtype {other}: expected f32 or f64"))),
    };
    if a.json {
        println!(
            "{}",
            json!({"name": a.loss.name, "n": a.n, "dim": a.dim, "classes": a.classes, "dtype": a.dtype,
            "threads": threads, "fwd_bwd_ns": fb, "gemm_ns": gm})
        );
    } else {
        println!(
            "{} n={} dim={} classes={} {} threads={}: fwd+bwd {:.3} ms, one N x D x N GEMM {:.3} ms ({:.2}x)",
            a.loss.name,
            a.n,
            a.dim,
            a.classes,
            a.dtype,
            threads,
            fb / 1e6,
            gm / 1e6,
            fb / gm
        );
    }
    Ok(())
}

fn bench_t<T: Float>(a: &BenchArgs, loss: &Loss, reduction: BatchReduction) -> Result<(f64, f64), Fail> {
    let (n, d) = (a.n, a.dim);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<T> = (0..n * d)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            T::of((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect();
    let y: Vec<i64> = (0..n).map(|i| (i % a.classes) as i64).collect();
    let emb = Rows::new(&x, n, d)?;
    let batch = Batch::new(emb, &y);
    let mut out = vec![T::zero(); reduction.output_len(n)];
    let mut g = vec![T::zero(); n * d];
    let mut ws = Workspace::new();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    loss.run(&batch, reduction, &[T::one()], &mut out, &mut g, None, &mut ws)?;
    let mut fb = Vec::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        loss.run(&batch, reduction, &[T::one()], &mut out, &mut g, None, &mut ws)?;
        fb.push(t.elapsed().as_nanos() as f64);
    }
    let mut prod = vec![T::zero(); n * n];
    gram_matrix(emb, &mut prod)?;
    let mut gm = Vec::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        gram_matrix(emb, &mut prod)?;
        gm.push(t.elapsed().as_nanos() as f64);
    }
    Ok((median(fb), median(gm)))
}
