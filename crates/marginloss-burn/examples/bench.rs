//! Forward+backward timings on `Device::flex().autodiff()`: marginloss-burn's fused path
//! against its composed burn-op path and against burn-nn's own loss, one process, median
//! of 15 runs after 3 warm-ups.
//!
//! Each run is one training step's worth of loss work: it marks every float input that a
//! model would produce as tracked (both inputs of a pair loss, all three of a triplet; not
//! the targets), builds the loss, calls `backward()` and takes each input's gradient
//! tensor. So the adapter's data movement is in the figure: reading the inputs' host
//! slices, the gradient buffers it allocates and hands to burn, and the autodiff graph.
//! Flex is eager, so a gradient tensor is computed when `backward()` returns; what is not
//! timed is copying it out with `into_data()`, which costs the same on every path (at
//! 4096 × 1000 it is two 16 MB copies, ~15 ms here, more than the fused loss itself).
//!
//! ```text
//! cargo run --release -p marginloss-burn --features rayon,simd --example bench [-- --json] [-- --only NAME]
//! ```
//!
//! `--features rayon,simd` gives burn-flex the SIMD kernels and threads that burn's
//! default features give it (the crate itself depends on burn without them), and the
//! core its rayon split, so both sides use every core. `--json` prints one object per
//! workload: `{"name", "size", "bytes", "fused_ns", "composed_ns", "burn_nn_ns"}`
//! (`bytes`: what one step must read and write at the least, inputs read once and each
//! tracked input's gradient written once; `burn_nn_ns` null where burn-nn has no such
//! loss); `bench/compare.py` reads it.

use std::hint::black_box;
use std::time::Instant;

use burn::nn::loss::{
    CosineEmbeddingLossConfig, HingeEmbeddingLossConfig, MarginRankingLossConfig, MultiMarginLossConfig,
    Reduction as Nn, TripletMarginLossConfig,
};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use marginloss_burn::{self as mb, composed, Reduction};

const RUNS: usize = 15;
const MEAN: Reduction = Reduction::Mean;
/// Bytes per f32 element (and per i32 class index, burn's default int dtype on Flex).
const F: usize = 4;

/// Median nanoseconds of `f` (3 warm-ups).
fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e9
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

/// One training step's loss work: tracks the named inputs (shadowing them), evaluates the
/// loss from them, runs `backward()` and takes every tracked input's gradient tensor.
macro_rules! step {
    ([$($x:ident),+] $loss:expr) => {{
        $(let $x = $x.clone().require_grad();)+
        let kept = ($($x.clone(),)+);
        let grads = $loss.backward();
        let ($($x,)+) = kept;
        black_box(($($x.grad(&grads),)+));
    }};
}

struct Report {
    json: bool,
    only: Vec<String>,
}

impl Report {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// Times the three paths of one workload and prints its row.
    fn row(
        &self,
        name: &str,
        size: &str,
        bytes: usize,
        fused: impl FnMut(),
        composed: impl FnMut(),
        burn_nn: Option<&mut dyn FnMut()>,
    ) {
        if !self.wants(name) {
            return;
        }
        let (f, c) = (time(fused), time(composed));
        let b = burn_nn.map(time);
        if self.json {
            let bn = b.map_or("null".to_string(), |b| format!("{b:.0}"));
            println!(
                r#"{{"name":"{name}","size":"{size}","bytes":{bytes},"fused_ns":{f:.0},"composed_ns":{c:.0},"burn_nn_ns":{bn}}}"#
            );
        } else {
            let ms = |v: f64| format!("{:.3}", v / 1e6);
            let bn = b.map_or("–".to_string(), ms);
            let br = b.map_or("–".to_string(), |b| format!("{:.1}×", b / f));
            println!("| {name} | {size} | {} | {} | {bn} | {:.1}× | {br} |", ms(f), ms(c), c / f);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut report = Report { json: false, only: Vec::new() };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => report.json = true,
            "--only" => report.only.extend(args.next()),
            other => {
                eprintln!("bench: unknown argument {other:?} (expected --json, --only NAME)");
                std::process::exit(2);
            }
        }
    }
    if !report.json {
        println!("| loss | size | fused (ms) | composed (ms) | burn-nn (ms) | composed / fused | burn-nn / fused |");
        println!("|---|---|---|---|---|---|---|");
    }

    let dev = Device::flex().autodiff();
    dev.seed(1);
    let uniform =
        |shape: [usize; 2], lo: f64, hi: f64| Tensor::<2>::random(shape, Distribution::Uniform(lo, hi), &dev);
    let sign = |t: Tensor<1>| t.greater_elem(0.5).float().mul_scalar(2.0).sub_scalar(1.0);
    let signs = |n: usize| sign(Tensor::<1>::random([n], Distribution::Uniform(0.0, 1.0), &dev));

    // Element-wise, N = 1e6: distances / scores in [0, 2), ±1 targets.
    let n = 1_000_000;
    let e = "N=1e6";
    let x = Tensor::<1>::random([n], Distribution::Uniform(0.0, 2.0), &dev);
    let x2 = Tensor::<1>::random([n], Distribution::Uniform(0.0, 2.0), &dev);
    let y = signs(n);
    let he = mb::HingeEmbedding::new();
    let nn_he = HingeEmbeddingLossConfig::new().init();
    report.row(
        "hinge_embedding",
        e,
        3 * F * n,
        || step!([x] mb::hinge_embedding(x, y.clone(), he, MEAN).unwrap()),
        || step!([x] composed::hinge_embedding(x, y.clone(), he, MEAN).unwrap()),
        Some(&mut || step!([x] nn_he.forward(x, y.clone(), Nn::Mean))),
    );
    let h = mb::Hinge::new();
    report.row(
        "hinge",
        e,
        3 * F * n,
        || step!([x] mb::hinge(x, y.clone(), h, MEAN).unwrap()),
        || step!([x] composed::hinge(x, y.clone(), h, MEAN).unwrap()),
        None,
    );
    let sh = mb::SquaredHinge::new();
    report.row(
        "squared_hinge",
        e,
        3 * F * n,
        || step!([x] mb::squared_hinge(x, y.clone(), sh, MEAN).unwrap()),
        || step!([x] composed::squared_hinge(x, y.clone(), sh, MEAN).unwrap()),
        None,
    );
    let sm = mb::SoftMargin::new();
    report.row(
        "soft_margin",
        e,
        3 * F * n,
        || step!([x] mb::soft_margin(x, y.clone(), sm, MEAN).unwrap()),
        || step!([x] composed::soft_margin(x, y.clone(), sm, MEAN).unwrap()),
        None,
    );
    let mr = mb::MarginRanking::new();
    let nn_mr = MarginRankingLossConfig::new().init();
    report.row(
        "margin_ranking",
        e,
        5 * F * n,
        || step!([x, x2] mb::margin_ranking(x, x2, y.clone(), mr, MEAN).unwrap()),
        || step!([x, x2] composed::margin_ranking(x, x2, y.clone(), mr, MEAN).unwrap()),
        Some(&mut || step!([x, x2] nn_mr.forward(x, x2, y.clone(), Nn::Mean))),
    );

    // Embedding rows, 4096 × 128.
    let r = "4096×128";
    let rows_e = 4096 * 128;
    let (a, p, ng) =
        (uniform([4096, 128], -1.0, 1.0), uniform([4096, 128], -1.0, 1.0), uniform([4096, 128], -1.0, 1.0));
    let yr = signs(4096);
    let yi = yr.clone().int();
    let tm = mb::TripletMargin::new();
    let nn_tm = TripletMarginLossConfig::new().init();
    report.row(
        "triplet_margin",
        r,
        6 * F * rows_e,
        || step!([a, p, ng] mb::triplet_margin(a, p, ng, tm, MEAN).unwrap()),
        || step!([a, p, ng] composed::triplet_margin(a, p, ng, tm, MEAN).unwrap()),
        Some(&mut || step!([a, p, ng] nn_tm.forward(a, p, ng, Nn::Mean))),
    );
    let ce = mb::CosineEmbedding::new();
    let nn_ce = CosineEmbeddingLossConfig::new().init();
    report.row(
        "cosine_embedding",
        r,
        4 * F * rows_e + F * 4096,
        || step!([a, p] mb::cosine_embedding(a, p, yr.clone(), ce, MEAN).unwrap()),
        || step!([a, p] composed::cosine_embedding(a, p, yr.clone(), ce, MEAN).unwrap()),
        Some(&mut || step!([a, p] nn_ce.forward(a, p, yi.clone()))),
    );
    let co = mb::Contrastive::new();
    report.row(
        "contrastive",
        r,
        4 * F * rows_e + F * 4096,
        || step!([a, p] mb::contrastive(a, p, yr.clone(), co, MEAN).unwrap()),
        || step!([a, p] composed::contrastive(a, p, yr.clone(), co, MEAN).unwrap()),
        None,
    );

    // Class rows, 4096 × 1000: scores in [−1, 1), one class per row (and for the
    // multilabel losses four classes per row).
    let c = "4096×1000";
    let (rows, classes) = (4096_usize, 1000_usize);
    let s = uniform([rows, classes], -1.0, 1.0);
    let class = |i: usize, k: usize| ((i * 7919 + k * 104_729) % classes) as i64;
    let t = Tensor::<1, Int>::from_data(
        TensorData::new((0..rows).map(|i| class(i, 0)).collect::<Vec<_>>(), [rows]),
        &dev,
    );
    let mut padded = vec![-1_i64; rows * classes];
    let mut indicator = vec![0_f32; rows * classes];
    for i in 0..rows {
        for k in 0..4 {
            padded[i * classes + k] = class(i, k);
            indicator[i * classes + class(i, k) as usize] = 1.0;
        }
    }
    let ml_t = Tensor::<2, Int>::from_data(TensorData::new(padded, [rows, classes]), &dev);
    let ms_t = Tensor::<2>::from_data(TensorData::new(indicator, [rows, classes]), &dev);
    let mm = mb::MultiMargin::new();
    let nn_mm = MultiMarginLossConfig::new().init();
    report.row(
        "multi_margin",
        c,
        2 * F * rows * classes + F * rows,
        || step!([s] mb::multi_margin(s, t.clone(), None, mm, MEAN).unwrap()),
        || step!([s] composed::multi_margin(s, t.clone(), None, mm, MEAN).unwrap()),
        Some(&mut || step!([s] nn_mm.forward(s, t.clone(), Nn::Mean))),
    );
    let ch = mb::MulticlassHinge::new();
    report.row(
        "multiclass_hinge",
        c,
        2 * F * rows * classes + F * rows,
        || step!([s] mb::multiclass_hinge(s, t.clone(), ch, MEAN).unwrap()),
        || step!([s] composed::multiclass_hinge(s, t.clone(), ch, MEAN).unwrap()),
        None,
    );
    let mlm = mb::MultilabelMargin::new();
    report.row(
        "multilabel_margin",
        c,
        3 * F * rows * classes,
        || step!([s] mb::multilabel_margin(s, ml_t.clone(), mlm, MEAN).unwrap()),
        || step!([s] composed::multilabel_margin(s, ml_t.clone(), mlm, MEAN).unwrap()),
        None,
    );
    let mls = mb::MultilabelSoftMargin::new();
    report.row(
        "multilabel_soft_margin",
        c,
        3 * F * rows * classes,
        || step!([s] mb::multilabel_soft_margin(s, ms_t.clone(), None, mls, MEAN).unwrap()),
        || step!([s] composed::multilabel_soft_margin(s, ms_t.clone(), None, mls, MEAN).unwrap()),
        None,
    );
}
