//! Forward+backward timings on `Device::flex().autodiff()`: marginloss-burn's fused path
//! against its composed burn-op path and against burn-nn's own loss, one process, median
//! of 15 runs after 3 warm-ups. Each run builds the loss from tracked inputs, calls
//! `backward()` and reads one gradient back, so the adapter's data movement is included.
//!
//! ```text
//! cargo run --release -p marginloss-burn --example bench
//! ```

use std::time::Instant;

use burn::nn::loss::{
    CosineEmbeddingLossConfig, HingeEmbeddingLossConfig, MarginRankingLossConfig, MultiMarginLossConfig,
    Reduction as Nn, TripletMarginLossConfig,
};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use marginloss_burn::{self as mb, composed, Reduction};

const RUNS: usize = 15;

/// Median milliseconds of `f` (3 warm-ups).
fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

fn main() {
    let dev = Device::flex().autodiff();
    dev.seed(1);
    let n = 1_000_000;
    let u =
        |shape: [usize; 2], lo: f64, hi: f64| Tensor::<2>::random(shape, Distribution::Uniform(lo, hi), &dev);
    let x1 = Tensor::<1>::random([n], Distribution::Uniform(0.0, 2.0), &dev);
    let sign = |t: Tensor<1>| t.greater_elem(0.5).float().mul_scalar(2.0).sub_scalar(1.0);
    let y1 = sign(Tensor::<1>::random([n], Distribution::Uniform(0.0, 1.0), &dev));
    let x2 = Tensor::<1>::random([n], Distribution::Uniform(0.0, 2.0), &dev);
    let grad1 = |l: Tensor<1>, x: &Tensor<1>| {
        let g = l.backward();
        let _ = x.grad(&g).map(|g| g.into_data());
    };
    let grad2 = |l: Tensor<1>, x: &Tensor<2>| {
        let g = l.backward();
        let _ = x.grad(&g).map(|g| g.into_data());
    };
    println!("| workload | fused (ms) | composed (ms) | burn-nn (ms) | composed / fused | burn-nn / fused |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, f: f64, c: f64, b: Option<f64>| {
        let bn = b.map_or("–".to_string(), |b| format!("{b:.2}"));
        let br = b.map_or("–".to_string(), |b| format!("{:.1}×", b / f));
        println!("| {name} | {f:.2} | {c:.2} | {bn} | {:.1}× | {br} |", c / f);
    };

    // Element-wise, N = 1e6.
    let he = mb::HingeEmbedding::new();
    let nn_he = HingeEmbeddingLossConfig::new().init();
    let f = time(|| {
        let x = x1.clone().require_grad();
        grad1(mb::hinge_embedding(x.clone(), y1.clone(), he, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = x1.clone().require_grad();
        grad1(composed::hinge_embedding(x.clone(), y1.clone(), he, Reduction::Mean).unwrap(), &x)
    });
    let b = time(|| {
        let x = x1.clone().require_grad();
        grad1(nn_he.forward(x.clone(), y1.clone(), Nn::Mean), &x)
    });
    row("hinge_embedding N=1e6", f, c, Some(b));
    let h = mb::Hinge::new();
    let f = time(|| {
        let x = x1.clone().require_grad();
        grad1(mb::hinge(x.clone(), y1.clone(), h, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = x1.clone().require_grad();
        grad1(composed::hinge(x.clone(), y1.clone(), h, Reduction::Mean).unwrap(), &x)
    });
    row("hinge N=1e6", f, c, None);
    let s = mb::SoftMargin::new();
    let f = time(|| {
        let x = x1.clone().require_grad();
        grad1(mb::soft_margin(x.clone(), y1.clone(), s, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = x1.clone().require_grad();
        grad1(composed::soft_margin(x.clone(), y1.clone(), s, Reduction::Mean).unwrap(), &x)
    });
    row("soft_margin N=1e6", f, c, None);
    let mr = mb::MarginRanking::new();
    let nn_mr = MarginRankingLossConfig::new().init();
    let f = time(|| {
        let x = x1.clone().require_grad();
        grad1(mb::margin_ranking(x.clone(), x2.clone(), y1.clone(), mr, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = x1.clone().require_grad();
        grad1(composed::margin_ranking(x.clone(), x2.clone(), y1.clone(), mr, Reduction::Mean).unwrap(), &x)
    });
    let b = time(|| {
        let x = x1.clone().require_grad();
        grad1(nn_mr.forward(x.clone(), x2.clone(), y1.clone(), Nn::Mean), &x)
    });
    row("margin_ranking N=1e6", f, c, Some(b));

    // Class rows, 4096 × 1000.
    let (rows, classes) = (4096, 1000);
    let s = u([rows, classes], -1.0, 1.0);
    let t: Vec<i64> = (0..rows as i64).map(|i| (i * 7919) % classes as i64).collect();
    let t = Tensor::<1, Int>::from_data(TensorData::new(t, [rows]), &dev);
    let mm = mb::MultiMargin::new();
    let nn_mm = MultiMarginLossConfig::new().init();
    let f = time(|| {
        let x = s.clone().require_grad();
        grad2(mb::multi_margin(x.clone(), t.clone(), None, mm, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = s.clone().require_grad();
        grad2(composed::multi_margin(x.clone(), t.clone(), None, mm, Reduction::Mean).unwrap(), &x)
    });
    let b = time(|| {
        let x = s.clone().require_grad();
        grad2(nn_mm.forward(x.clone(), t.clone(), Nn::Mean), &x)
    });
    row("multi_margin 4096×1000", f, c, Some(b));
    let ch = mb::MulticlassHinge::new();
    let f = time(|| {
        let x = s.clone().require_grad();
        grad2(mb::multiclass_hinge(x.clone(), t.clone(), ch, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = s.clone().require_grad();
        grad2(composed::multiclass_hinge(x.clone(), t.clone(), ch, Reduction::Mean).unwrap(), &x)
    });
    row("multiclass_hinge 4096×1000", f, c, None);

    // Embedding rows, 4096 × 128.
    let (a, p, ng) = (u([4096, 128], -1.0, 1.0), u([4096, 128], -1.0, 1.0), u([4096, 128], -1.0, 1.0));
    let tm = mb::TripletMargin::new();
    let nn_tm = TripletMarginLossConfig::new().init();
    let f = time(|| {
        let x = a.clone().require_grad();
        grad2(mb::triplet_margin(x.clone(), p.clone(), ng.clone(), tm, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = a.clone().require_grad();
        grad2(composed::triplet_margin(x.clone(), p.clone(), ng.clone(), tm, Reduction::Mean).unwrap(), &x)
    });
    let b = time(|| {
        let x = a.clone().require_grad();
        grad2(nn_tm.forward(x.clone(), p.clone(), ng.clone(), Nn::Mean), &x)
    });
    row("triplet_margin 4096×128", f, c, Some(b));
    let yr = sign(Tensor::<1>::random([4096], Distribution::Uniform(0.0, 1.0), &dev));
    let yi = yr.clone().int();
    let ce = mb::CosineEmbedding::new();
    let nn_ce = CosineEmbeddingLossConfig::new().init();
    let f = time(|| {
        let x = a.clone().require_grad();
        grad2(mb::cosine_embedding(x.clone(), p.clone(), yr.clone(), ce, Reduction::Mean).unwrap(), &x)
    });
    let c = time(|| {
        let x = a.clone().require_grad();
        grad2(composed::cosine_embedding(x.clone(), p.clone(), yr.clone(), ce, Reduction::Mean).unwrap(), &x)
    });
    let b = time(|| {
        let x = a.clone().require_grad();
        grad2(nn_ce.forward(x.clone(), p.clone(), yi.clone()), &x)
    });
    row("cosine_embedding 4096×128", f, c, Some(b));
}
