//! margin_ranking, soft_margin and multilabel_soft_margin:
//!
//! 1. golden parity with torch 2.15 (`fixtures/torch/<loss>.json`), every case in f32 and
//!    f64 through `forward_into` and `forward_backward`; `compat_only` cases are rejected
//!    by strict mode and reproduced by torch-compat mode;
//! 2. the fused kernels against the plain [`marginloss::reference`] implementations on a
//!    few hundred random inputs, every reduction, per-element upstream gradients;
//! 3. central finite differences of every differentiable input (f64).

mod common;

use common::mat;
use common::{assert_close, fixtures_dir, for_each_case, load, Case};
use marginloss::{
    reference, Float, Labels, MarginRanking, Mode, MultilabelSoftMargin, Reduction, SoftMargin,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// 1. torch parity

fn margin_ranking_case<T: Float>(c: &Case) {
    let x1 = c.input("input1").as_vec::<T>();
    let x2 = c.input("input2").as_vec::<T>();
    let t = c.input("target").as_vec::<T>();
    let r = c.reduction();
    let loss = MarginRanking::new().margin(c.f64_opt("margin", 0.0));
    let n = x1.len();
    let mut out = vec![T::zero(); r.output_len(n)];
    let (mut g1, mut g2) = (vec![T::zero(); n], vec![T::zero(); n]);
    if c.compat_only {
        assert!(loss.forward_into(&x1, &x2, &t, r, &mut out).is_err(), "{}: strict accepted it", c.id());
        let fb = loss.forward_backward(&x1, &x2, &t, r, &[T::one()], &mut out, &mut g1, &mut g2);
        assert!(fb.is_err(), "{}: strict forward_backward accepted it", c.id());
    }
    let loss = loss.mode(c.mode());
    loss.forward_into(&x1, &x2, &t, r, &mut out).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    loss.forward_backward(&x1, &x2, &t, r, &[T::one()], &mut out, &mut g1, &mut g2)
        .unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    assert_close(&format!("{} grad input1", c.id()), &g1, c.grad("input1").unwrap(), &c.dtype);
    assert_close(&format!("{} grad input2", c.id()), &g2, c.grad("input2").unwrap(), &c.dtype);
}

fn soft_margin_case<T: Float>(c: &Case) {
    let x = c.input("input").as_vec::<T>();
    let t = c.input("target").as_vec::<T>();
    let r = c.reduction();
    let loss = SoftMargin::new();
    let mut out = vec![T::zero(); r.output_len(x.len())];
    let mut g = vec![T::zero(); x.len()];
    if c.compat_only {
        assert!(loss.forward_into(&x, &t, r, &mut out).is_err(), "{}: strict accepted it", c.id());
        assert!(loss.forward_backward(&x, &t, r, &[T::one()], &mut out, &mut g).is_err(), "{}", c.id());
    }
    let loss = loss.mode(c.mode());
    loss.forward_into(&x, &t, r, &mut out).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    // For the `overflow` cases `output` holds the stable value (torch's is `torch_output`,
    // checked in `soft_margin_overflow_cases_record_where_torch_overflows`).
    assert_close(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    loss.forward_backward(&x, &t, r, &[T::one()], &mut out, &mut g)
        .unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    assert_close(&format!("{} grad", c.id()), &g, c.grad("input").unwrap(), &c.dtype);
}

fn multilabel_soft_margin_case<T: Float>(c: &Case) {
    let x = c.input("input").as_vec::<T>();
    let t = c.input("target").as_vec::<T>();
    let w = c.inputs.get("weight").map(|w| w.as_vec::<T>());
    let classes = c.input("input").last_dim();
    let r = c.reduction();
    let loss = MultilabelSoftMargin::new().mode(c.mode());
    let mut out = vec![T::zero(); r.output_len(x.len() / classes)];
    let mut g = vec![T::zero(); x.len()];
    assert!(!c.compat_only, "{}: the file has no compat_only case", c.id());
    loss.forward_into(mat(&x, classes), &t, w.as_deref(), r, &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    loss.forward_backward(mat(&x, classes), &t, w.as_deref(), r, &[T::one()], &mut out, &mut g)
        .unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    assert_close(&format!("{} grad", c.id()), &g, c.grad("input").unwrap(), &c.dtype);
}

/// Runs every case of a file through `f32_case`/`f64_case`, asserting that all of them
/// ran and that the file holds `expected` cases.
fn run_file(loss: &str, expected: usize, f32_case: fn(&Case), f64_case: fn(&Case)) {
    let ran = std::cell::Cell::new(0usize);
    let n = for_each_case(
        loss,
        |c| {
            f32_case(c);
            ran.set(ran.get() + 1);
        },
        |c| {
            f64_case(c);
            ran.set(ran.get() + 1);
        },
    );
    assert_eq!((n, ran.get()), (expected, expected), "{loss}: cases in the file / checked");
}

#[test]
fn margin_ranking_matches_torch() {
    run_file("margin_ranking", 36, margin_ranking_case::<f32>, margin_ranking_case::<f64>);
}

#[test]
fn soft_margin_matches_torch() {
    run_file("soft_margin", 24, soft_margin_case::<f32>, soft_margin_case::<f64>);
}

#[test]
fn multilabel_soft_margin_matches_torch() {
    run_file(
        "multilabel_soft_margin",
        30,
        multilabel_soft_margin_case::<f32>,
        multilabel_soft_margin_case::<f64>,
    );
}

/// The `overflow` cases carry torch's own result in `torch_output`. In f32 torch's
/// `exp(100)` overflows to `inf`; we give the finite stable value (`output`) and agree
/// with torch wherever torch is finite. In f64 nothing overflows at 100 and torch's
/// output equals ours (the generator tags those cases only because torch's gradient
/// differs from the stable formula in the last bits).
#[test]
fn soft_margin_overflow_cases_record_where_torch_overflows() {
    let text = std::fs::read_to_string(fixtures_dir().join("torch/soft_margin.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let raw: Vec<&Value> =
        doc["cases"].as_array().unwrap().iter().filter(|c| c.get("torch_output").is_some()).collect();
    let cases: Vec<Case> =
        load("soft_margin").into_iter().filter(|c| c.name.starts_with("overflow")).collect();
    assert_eq!((raw.len(), cases.len()), (6, 6));
    for (c, rc) in cases.iter().zip(raw) {
        assert_eq!(rc["name"].as_str(), Some(c.name.as_str()));
        let torch: Vec<f64> = rc["torch_output"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) if s == "inf" => f64::INFINITY,
                Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
                Value::String(s) if s == "nan" => f64::NAN,
                v => v.as_f64().unwrap(),
            })
            .collect();
        let r = c.reduction();
        let ours: Vec<f64> = if c.dtype == "float32" {
            let (x, t) = (c.input("input").as_vec::<f32>(), c.input("target").as_vec::<f32>());
            SoftMargin::new().forward(&x, &t, r).unwrap().into_vec().iter().map(|v| v.f64()).collect()
        } else {
            let (x, t) = (c.input("input").as_vec::<f64>(), c.input("target").as_vec::<f64>());
            SoftMargin::new().forward(&x, &t, r).unwrap().into_vec()
        };
        assert!(ours.iter().all(|v| v.is_finite()), "{}: {ours:?}", c.id());
        // f32 uses a vectorised exp/ln_1p (a few ulp); f64 uses libm and is exact here.
        let rtol = if c.dtype == "float32" { 1e-6 } else { 0.0 };
        for (o, w) in ours.iter().zip(&c.output.data) {
            assert!((o - w).abs() <= rtol * w.abs(), "{}: the stable value: {o} vs {w}", c.id());
        }
        if c.dtype == "float32" {
            assert!(torch.iter().any(|v| v.is_infinite()), "{}: torch did not overflow: {torch:?}", c.id());
        } else {
            assert_eq!(torch, ours, "{}", c.id());
        }
        for (o, tv) in ours.iter().zip(&torch) {
            if tv.is_finite() {
                assert!((o - tv).abs() <= 3e-5 * tv.abs(), "{}: {o} vs torch {tv}", c.id());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// random inputs

/// SplitMix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn normals(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
    fn pm1(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| if self.uniform() < 0.5 { -1.0 } else { 1.0 }).collect()
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// `|a − b| ≤ rtol · max(|b|, max|b|)` element-wise (relative to the array's scale).
fn close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rtol * w.abs().max(scale), "{what}[{i}]: {g:e} vs {w:e}");
    }
}

/// The gradient a fused call with upstream `up` (one value for Mean/Sum, one per output
/// element for None) must give, from the reference's gradient of the unreduced sum;
/// input element `i` belongs to output element `i / row_len`.
fn expected_grad(r: Reduction, grad_of_sum: &[f64], up: &[f64], row_len: usize) -> Vec<f64> {
    let n_out = grad_of_sum.len() / row_len;
    grad_of_sum
        .iter()
        .enumerate()
        .map(|(i, &g)| match r {
            Reduction::None => g * up[i / row_len],
            Reduction::Sum => g * up[0],
            Reduction::Mean => g * (up[0] / n_out as f64),
        })
        .collect()
}

fn upstream(rng: &mut Rng, r: Reduction, n: usize) -> Vec<f64> {
    match r {
        Reduction::None => (0..n).map(|_| rng.range(-2.0, 2.0)).collect(),
        _ => vec![rng.range(0.5, 2.0)],
    }
}

// ---------------------------------------------------------------------------------------
// 2. fused == reference

#[test]
fn margin_ranking_fused_equals_reference() {
    let mut rng = Rng(1);
    for trial in 0..300 {
        let n = 1 + rng.below(40);
        let (x1, x2) = (rng.normals(n, 1.5), rng.normals(n, 1.5));
        let y = rng.pm1(n);
        let margin = rng.range(-1.0, 1.0);
        // Half the trials store the targets as {0, 1}; the reference gets them decoded.
        let zero_one = trial % 2 == 1;
        let stored: Vec<f64> =
            if zero_one { y.iter().map(|&v| (v + 1.0) / 2.0).collect() } else { y.clone() };
        let labels = if zero_one { Labels::ZeroOne } else { Labels::PlusMinusOne };
        let loss = MarginRanking::new().margin(margin).labels(labels);
        let (l, g1, g2) = reference::margin_ranking(&x1, &x2, &y, margin);
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let (want, _) = reference::reduce(r, &l, &[]);
            let mut out = vec![0.0; r.output_len(n)];
            let (mut f1, mut f2) = (vec![0.0; n], vec![0.0; n]);
            loss.forward_backward(&x1, &x2, &stored, r, &up, &mut out, &mut f1, &mut f2).unwrap();
            let what = format!("trial {trial} {r:?}");
            close(&format!("{what} out"), &out, &want, 1e-12);
            close(&format!("{what} grad1"), &f1, &expected_grad(r, &g1, &up, 1), 1e-12);
            close(&format!("{what} grad2"), &f2, &expected_grad(r, &g2, &up, 1), 1e-12);
            let mut fwd = vec![0.0; r.output_len(n)];
            loss.forward_into(&x1, &x2, &stored, r, &mut fwd).unwrap();
            assert_eq!(fwd, out, "{what}: forward_into and forward_backward agree exactly");
        }
    }
}

#[test]
fn soft_margin_fused_equals_reference() {
    let mut rng = Rng(2);
    for trial in 0..300 {
        let n = 1 + rng.below(40);
        // Moderate scores: the reference is torch's literal formula, exact where it does
        // not overflow.
        let x = rng.normals(n, 3.0);
        let y = rng.pm1(n);
        let (l, g) = reference::soft_margin(&x, &y);
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let (want, _) = reference::reduce(r, &l, &[]);
            let mut out = vec![0.0; r.output_len(n)];
            let mut fg = vec![0.0; n];
            SoftMargin::new().forward_backward(&x, &y, r, &up, &mut out, &mut fg).unwrap();
            let what = format!("trial {trial} {r:?}");
            close(&format!("{what} out"), &out, &want, 1e-12);
            close(&format!("{what} grad"), &fg, &expected_grad(r, &g, &up, 1), 1e-12);
            let mut fwd = vec![0.0; r.output_len(n)];
            SoftMargin::new().forward_into(&x, &y, r, &mut fwd).unwrap();
            assert_eq!(fwd, out, "{what}: forward_into and forward_backward agree exactly");
        }
    }
}

#[test]
fn multilabel_soft_margin_fused_equals_reference() {
    let mut rng = Rng(3);
    for trial in 0..300 {
        let (n, c) = (1 + rng.below(8), 1 + rng.below(7));
        let x = rng.normals(n * c, 2.5);
        // Hard labels in even trials, soft labels in odd ones.
        let t: Vec<f64> = (0..n * c)
            .map(|_| if trial % 2 == 0 { f64::from(u8::from(rng.uniform() < 0.5)) } else { rng.uniform() })
            .collect();
        let w: Option<Vec<f64>> = (trial % 3 != 0).then(|| (0..c).map(|_| rng.range(0.1, 2.0)).collect());
        let (l, g) = reference::multilabel_soft_margin(&x, &t, c, w.as_deref());
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let (want, _) = reference::reduce(r, &l, &[]);
            let mut out = vec![0.0; r.output_len(n)];
            let mut fg = vec![0.0; n * c];
            let loss = MultilabelSoftMargin::new();
            loss.forward_backward(mat(&x, c), &t, w.as_deref(), r, &up, &mut out, &mut fg).unwrap();
            let what = format!("trial {trial} {r:?} N={n} C={c}");
            close(&format!("{what} out"), &out, &want, 1e-12);
            close(&format!("{what} grad"), &fg, &expected_grad(r, &g, &up, c), 1e-12);
            let mut fwd = vec![0.0; r.output_len(n)];
            loss.forward_into(mat(&x, c), &t, w.as_deref(), r, &mut fwd).unwrap();
            assert_eq!(fwd, out, "{what}: forward_into and forward_backward agree exactly");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. finite differences (f64, h = 1e-6, away from kinks)

const H: f64 = 1e-6;

/// Checks `grad` against central differences of `f` at `x`, where `f` is the weighted
/// sum `Σ up·out` the analytic gradient was computed for.
fn fd_check(what: &str, x: &[f64], grad: &[f64], mut f: impl FnMut(&[f64]) -> f64) {
    let mut p = x.to_vec();
    let fd: Vec<f64> = (0..x.len())
        .map(|i| {
            p[i] = x[i] + H;
            let hi = f(&p);
            p[i] = x[i] - H;
            let lo = f(&p);
            p[i] = x[i];
            (hi - lo) / (2.0 * H)
        })
        .collect();
    close(what, grad, &fd, 1e-6);
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

#[test]
fn margin_ranking_gradient_matches_finite_differences() {
    let mut rng = Rng(4);
    for trial in 0..100 {
        let n = 1 + rng.below(20);
        let (mut x1, x2) = (rng.normals(n, 1.5), rng.normals(n, 1.5));
        let y = rng.pm1(n);
        let margin = rng.range(-1.0, 1.0);
        // Move each pair at least 1e-3 away from its kink.
        for i in 0..n {
            let u = -y[i] * (x1[i] - x2[i]) + margin;
            if u.abs() < 1e-3 {
                x1[i] -= y[i] * 2e-3;
            }
        }
        let loss = MarginRanking::new().margin(margin);
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let mut out = vec![0.0; r.output_len(n)];
            let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
            loss.forward_backward(&x1, &x2, &y, r, &up, &mut out, &mut g1, &mut g2).unwrap();
            let eval = |a: &[f64], b: &[f64]| dot(loss.forward(a, b, &y, r).unwrap().as_slice(), &up);
            fd_check(&format!("trial {trial} {r:?} input1"), &x1, &g1, |p| eval(p, &x2));
            fd_check(&format!("trial {trial} {r:?} input2"), &x2, &g2, |p| eval(&x1, p));
        }
    }
}

#[test]
fn soft_margin_gradient_matches_finite_differences() {
    let mut rng = Rng(5);
    for trial in 0..100 {
        let n = 1 + rng.below(20);
        // Wide enough to reach the saturated tails (|x| up to ~25).
        let x = rng.normals(n, 6.0);
        let y = rng.pm1(n);
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let mut out = vec![0.0; r.output_len(n)];
            let mut g = vec![0.0; n];
            SoftMargin::new().forward_backward(&x, &y, r, &up, &mut out, &mut g).unwrap();
            fd_check(&format!("trial {trial} {r:?} input"), &x, &g, |p| {
                dot(SoftMargin::new().forward(p, &y, r).unwrap().as_slice(), &up)
            });
        }
    }
}

#[test]
fn multilabel_soft_margin_gradient_matches_finite_differences() {
    let mut rng = Rng(6);
    for trial in 0..100 {
        let (n, c) = (1 + rng.below(6), 1 + rng.below(6));
        let x = rng.normals(n * c, 3.0);
        let t: Vec<f64> = (0..n * c).map(|_| rng.uniform()).collect();
        let w: Option<Vec<f64>> = (trial % 2 == 0).then(|| (0..c).map(|_| rng.range(0.1, 2.0)).collect());
        let loss = MultilabelSoftMargin::new();
        for r in REDUCTIONS {
            let up = upstream(&mut rng, r, n);
            let mut out = vec![0.0; r.output_len(n)];
            let mut g = vec![0.0; n * c];
            loss.forward_backward(mat(&x, c), &t, w.as_deref(), r, &up, &mut out, &mut g).unwrap();
            fd_check(&format!("trial {trial} {r:?} input"), &x, &g, |p| {
                dot(loss.forward(mat(p, c), &t, w.as_deref(), r).unwrap().as_slice(), &up)
            });
        }
    }
}

/// A guard that the random tests above exercise the reference where it matters: torch's
/// literal soft margin (the reference) overflows in f32 where the kernel stays finite.
#[test]
fn reference_soft_margin_overflows_like_torch_where_the_kernel_does_not() {
    let (x, y) = ([-100.0f32, 1.0], [1.0f32, -1.0]);
    let (l, g) = reference::soft_margin(&x, &y);
    assert!(l[0].is_infinite() && g[0].is_nan());
    let mut out = [0.0f32; 2];
    let mut fg = [0.0f32; 2];
    SoftMargin::new()
        .mode(Mode::Strict)
        .forward_backward(&x, &y, Reduction::None, &[1.0], &mut out, &mut fg)
        .unwrap();
    assert_eq!((out[0], fg[0]), (100.0, -1.0));
    assert!((out[1] - l[1]).abs() <= 1e-6 * l[1] && (fg[1] - g[1]).abs() <= 1e-6 * g[1].abs());
}
