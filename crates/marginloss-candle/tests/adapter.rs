//! The adapter's behaviour beyond the fixtures: strided, sliced and broadcast inputs;
//! f16/bf16; the composed fallback equal to the fused path on CPU (values and
//! gradients); strict errors with the core's message; no gradient for targets; and a loss
//! inside a candle-nn training step.

mod common;

use candle_core::{DType, Device, Module, Tensor, Var, D};
use common::mat;
use common::{f64s, Rng};
use marginloss_candle::{self as mc, composed, Kink, Labels, Mode, Reduction};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

fn dev() -> Device {
    Device::Cpu
}

fn var(v: &[f64], shape: &[usize], dt: DType) -> Var {
    Var::from_tensor(&Tensor::from_slice(v, shape, &dev()).unwrap().to_dtype(dt).unwrap()).unwrap()
}

fn tensor(v: &[f64], shape: &[usize], dt: DType) -> Tensor {
    Tensor::from_slice(v, shape, &dev()).unwrap().to_dtype(dt).unwrap()
}

fn pm1(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sign()).collect()
}

/// `|a − b| ≤ rtol·max(1, max|b|)` element-wise.
fn close(what: &str, a: &[f64], b: &[f64], rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= rtol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

/// The output (summed if unreduced) and its gradients with respect to `vars`.
fn value_and_grads(out: &Tensor, vars: &[&Var]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let total = if out.rank() == 0 { out.clone() } else { out.sum_all().unwrap() };
    let g = total.backward().unwrap();
    let grads = vars.iter().map(|v| f64s(g.get(v).expect("a gradient"))).collect();
    (f64s(out), grads)
}

// ---------------------------------------------------------------------------------------
// Strided inputs

#[test]
fn transposed_and_sliced_inputs_give_the_contiguous_result() {
    let mut rng = Rng::new(1);
    let (xs, ys) = (rng.vec(12, -2.0, 2.0), pm1(&mut rng, 12));
    for r in REDUCTIONS {
        // Reference: the contiguous (4, 3) transpose, materialised.
        let x = var(&xs, &[3, 4], DType::F32);
        let y = tensor(&ys, &[3, 4], DType::F32);
        let xt = x.t().unwrap();
        assert!(!xt.is_contiguous());
        let out = mc::hinge_with(&xt, &y.t().unwrap(), mc::Hinge::new(), r).unwrap();
        let (v, g) = value_and_grads(&out, &[&x]);
        let x2 = var(&f64s(&x.t().unwrap().contiguous().unwrap()), &[4, 3], DType::F32);
        let y2 = y.t().unwrap().contiguous().unwrap();
        let out2 = mc::hinge_with(&x2, &y2, mc::Hinge::new(), r).unwrap();
        let (v2, g2) = value_and_grads(&out2, &[&x2]);
        assert_eq!(v, v2, "{r:?}: values");
        // The gradient of x is the transpose of the gradient of its transpose.
        let g2t =
            f64s(&Tensor::from_slice(&g2[0], (4, 3), &dev()).unwrap().t().unwrap().contiguous().unwrap());
        assert_eq!(g[0], g2t, "{r:?}: gradients");

        // A slice with an offset: columns 1..3 of a (3, 4) matrix.
        let xs_ = x.narrow(1, 1, 2).unwrap();
        let ys_ = y.narrow(1, 1, 2).unwrap();
        let out = mc::squared_hinge_with(&xs_, &ys_, mc::SquaredHinge::new(), r).unwrap();
        let (_, g) = value_and_grads(&out, &[&x]);
        let want = marginloss::SquaredHinge::new()
            .forward_backward(
                &f64s(&xs_).iter().map(|&v| v as f32).collect::<Vec<_>>(),
                &f64s(&ys_).iter().map(|&v| v as f32).collect::<Vec<_>>(),
                r,
                &[1.0],
                &mut vec![0.0; r.output_len(6)],
                &mut [0.0f32; 6],
            )
            .map(|_| ());
        want.unwrap();
        for row in 0..3 {
            assert_eq!(g[0][row * 4], 0.0);
            assert_eq!(g[0][row * 4 + 3], 0.0);
        }
    }
}

#[test]
fn broadcast_views_and_shapes_reach_the_fused_op() {
    let mut rng = Rng::new(2);
    let (n, d) = (5, 3);
    let a = rng.vec(n * d, -1.0, 1.0);
    let b = rng.vec(d, -1.0, 1.0);
    let x1 = var(&a, &[n, d], DType::F64);
    let x2 = var(&b, &[1, d], DType::F64);
    for f in ["cosine", "pairwise"] {
        // x2 (1, D) broadcast against x1 (N, D): x2's gradient sums over the rows.
        let out = match f {
            "cosine" => mc::cosine_similarity_with(&x1, &x2, mc::CosineSimilarity::new()),
            _ => mc::pairwise_distance_with(&x1, &x2, mc::PairwiseDistance::new()),
        }
        .unwrap();
        assert_eq!(out.dims(), &[n]);
        let (v, g) = value_and_grads(&out, &[&x1, &x2]);
        let rep: Vec<f64> = (0..n).flat_map(|_| b.clone()).collect();
        let (mut o, mut g1, mut g2) = (vec![0.0; n], vec![0.0; n * d], vec![0.0; n * d]);
        match f {
            "cosine" => marginloss::CosineSimilarity::new().forward_backward(
                mat(&a, d),
                mat(&rep, d),
                &[1.0],
                &mut o,
                &mut g1,
                &mut g2,
            ),
            _ => marginloss::PairwiseDistance::new().forward_backward(
                mat(&a, d),
                mat(&rep, d),
                &[1.0],
                &mut o,
                &mut g1,
                &mut g2,
            ),
        }
        .unwrap();
        assert_eq!(v, o, "{f}: values");
        assert_eq!(g[0], g1, "{f}: grad x1");
        let summed: Vec<f64> = (0..d).map(|j| (0..n).map(|i| g2[i * d + j]).sum()).collect();
        close(&format!("{f}: grad x2"), &g[1], &summed, 1e-14);
    }
    // A stride-0 target from broadcast_as.
    let x = var(&a, &[n, d], DType::F64);
    let y = Tensor::new(&[1.0f64, -1.0, 1.0], &dev()).unwrap().broadcast_as((n, d)).unwrap();
    assert!(!y.is_contiguous());
    let out = mc::hinge_with(&x, &y, mc::Hinge::new(), Reduction::Sum).unwrap();
    let yv = f64s(&y);
    let mut g = vec![0.0; n * d];
    let mut o = [0.0];
    marginloss::Hinge::new().forward_backward(&a, &yv, Reduction::Sum, &[1.0], &mut o, &mut g).unwrap();
    let (v, gg) = value_and_grads(&out, &[&x]);
    assert_eq!(v, o);
    assert_eq!(gg[0], g);
}

// ---------------------------------------------------------------------------------------
// Half precision

#[test]
fn f16_and_bf16_compute_in_f32_within_half_precision() {
    let mut rng = Rng::new(3);
    let (n, d) = (6, 4);
    let a = rng.vec(n * d, -1.0, 1.0);
    let b = rng.vec(n * d, -1.0, 1.0);
    let y = pm1(&mut rng, n);
    for (dt, tol) in [(DType::F16, 2e-3), (DType::BF16, 1.6e-2)] {
        // The half inputs, rounded, are the f32 reference's inputs.
        let (ah, bh) = (var(&a, &[n, d], dt), var(&b, &[n, d], dt));
        let (af, bf) = (var(&f64s(&ah), &[n, d], DType::F32), var(&f64s(&bh), &[n, d], DType::F32));
        let run = |a: &Tensor, b: &Tensor, yt: &Tensor| {
            let x = mc::cosine_similarity_with(a, b, mc::CosineSimilarity::new())
                .unwrap()
                .affine(-1.0, 1.0)
                .unwrap();
            mc::hinge_embedding_with(&x, yt, mc::HingeEmbedding::new().margin(0.5), Reduction::Mean).unwrap()
        };
        let lh = run(&ah, &bh, &tensor(&y, &[n], dt));
        assert_eq!(lh.dtype(), dt);
        let lf = run(&af, &bf, &tensor(&y, &[n], DType::F32));
        let (vh, gh) = value_and_grads(&lh, &[&ah, &bh]);
        let (vf, gf) = value_and_grads(&lf, &[&af, &bf]);
        close(&format!("{dt:?} loss"), &vh, &vf, tol);
        close(&format!("{dt:?} grad a"), &gh[0], &gf[0], tol);
        close(&format!("{dt:?} grad b"), &gh[1], &gf[1], tol);
        // Every loss accepts half input.
        let x = var(&a[..n], &[n], dt);
        let yt = tensor(&y, &[n], dt);
        for r in REDUCTIONS {
            let outs = [
                mc::hinge_with(&x, &yt, mc::Hinge::new(), r).unwrap(),
                mc::squared_hinge_with(&x, &yt, mc::SquaredHinge::new(), r).unwrap(),
                mc::soft_margin_with(&x, &yt, mc::SoftMargin::new(), r).unwrap(),
                mc::margin_ranking_with(&x, &x.affine(0.5, 0.0).unwrap(), &yt, mc::MarginRanking::new(), r)
                    .unwrap(),
            ];
            for o in outs {
                assert_eq!(o.dtype(), dt);
                let g = o.sum_all().unwrap().backward().unwrap();
                assert_eq!(g.get(&x).unwrap().dtype(), dt);
            }
        }
        let cls = Tensor::new(&[0i64, 2, 1], &dev()).unwrap();
        let s = var(&a[..12], &[3, 4], dt);
        let o = mc::multi_margin_with(&s, &cls, None, mc::MultiMargin::new(), Reduction::Mean).unwrap();
        let o32 = mc::multi_margin_with(
            &s.to_dtype(DType::F32).unwrap(),
            &cls,
            None,
            mc::MultiMargin::new(),
            Reduction::Mean,
        )
        .unwrap();
        close(&format!("{dt:?} multi_margin"), &f64s(&o), &f64s(&o32), tol);
    }
}

// ---------------------------------------------------------------------------------------
// Composed fallback == fused, on CPU

/// Runs `f(fused?)` for both paths and compares values and gradients of `vars`.
fn compare(what: &str, vars: &[&Var], rtol: f64, f: impl Fn(bool) -> Tensor) {
    let fused = f(true);
    let comp = f(false);
    assert_eq!(fused.dims(), comp.dims(), "{what}: shape");
    let (v1, g1) = value_and_grads(&fused, vars);
    let (v2, g2) = value_and_grads(&comp, vars);
    close(&format!("{what}: value"), &v2, &v1, rtol);
    for (k, (a, b)) in g1.iter().zip(&g2).enumerate() {
        close(&format!("{what}: grad {k}"), b, a, rtol);
    }
}

/// Scores with a few exact kinks (`y·x == margin`) and zeros mixed in.
fn scores(rng: &mut Rng, y: &[f64], margin: f64) -> Vec<f64> {
    y.iter()
        .enumerate()
        .map(|(i, &y)| match i % 7 {
            0 => margin * y,
            1 => 0.0,
            _ => rng.uniform(-3.0, 3.0),
        })
        .collect()
}

#[test]
fn composed_equals_fused_for_the_elementwise_losses() {
    let mut rng = Rng::new(4);
    let n = 29;
    for (dt, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
        for trial in 0..6 {
            let labels = if trial % 2 == 0 { Labels::PlusMinusOne } else { Labels::ZeroOne };
            let kink = [Kink::Zero, Kink::Half, Kink::One][trial % 3];
            let margin = [1.0, 0.5, 2.0][trial % 3];
            let y = pm1(&mut rng, n);
            let stored: Vec<f64> =
                y.iter().map(|&v| if labels == Labels::ZeroOne { (v + 1.0) / 2.0 } else { v }).collect();
            let xs = scores(&mut rng, &y, margin);
            let x = var(&xs, &[n], dt);
            let t = tensor(&stored, &[n], dt);
            for r in REDUCTIONS {
                let id = format!("{dt:?} trial {trial} {r:?}");
                let h = mc::Hinge::new().margin(margin).labels(labels).kink(kink);
                compare(&format!("hinge {id}"), &[&x], rtol, |fused| {
                    if fused { mc::hinge_with(&x, &t, h, r) } else { composed::hinge(&x, &t, h, r) }.unwrap()
                });
                let s = mc::SquaredHinge::new().margin(margin).labels(labels);
                compare(&format!("squared_hinge {id}"), &[&x], rtol, |fused| {
                    if fused {
                        mc::squared_hinge_with(&x, &t, s, r)
                    } else {
                        composed::squared_hinge(&x, &t, s, r)
                    }
                    .unwrap()
                });
                let sm = mc::SoftMargin::new().labels(labels);
                compare(&format!("soft_margin {id}"), &[&x], rtol, |fused| {
                    if fused {
                        mc::soft_margin_with(&x, &t, sm, r)
                    } else {
                        composed::soft_margin(&x, &t, sm, r)
                    }
                    .unwrap()
                });
                // hinge_embedding takes distances ≥ 0, with kinks at x == margin.
                let ds: Vec<f64> =
                    xs.iter().enumerate().map(|(i, v)| if i % 5 == 0 { margin } else { v.abs() }).collect();
                let dx = var(&ds, &[n], dt);
                let he = mc::HingeEmbedding::new().margin(margin).labels(labels).kink(kink);
                compare(&format!("hinge_embedding {id}"), &[&dx], rtol, |fused| {
                    if fused {
                        mc::hinge_embedding_with(&dx, &t, he, r)
                    } else {
                        composed::hinge_embedding(&dx, &t, he, r)
                    }
                    .unwrap()
                });
                // margin_ranking: kinks where −y·(x1 − x2) + margin == 0.
                let x2s: Vec<f64> = xs
                    .iter()
                    .zip(&y)
                    .enumerate()
                    .map(|(i, (a, y))| if i % 4 == 0 { a - margin * y } else { -a / 2.0 })
                    .collect();
                let x2 = var(&x2s, &[n], dt);
                let mr = mc::MarginRanking::new().margin(margin).labels(labels).kink(kink);
                compare(&format!("margin_ranking {id}"), &[&x, &x2], rtol, |fused| {
                    if fused {
                        mc::margin_ranking_with(&x, &x2, &t, mr, r)
                    } else {
                        composed::margin_ranking(&x, &x2, &t, mr, r)
                    }
                    .unwrap()
                });
            }
        }
    }
}

#[test]
fn composed_equals_fused_for_the_distances_and_multilabel_soft_margin() {
    let mut rng = Rng::new(5);
    let (n, d) = (7, 5);
    for (dt, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
        let mut a = rng.vec(n * d, -1.0, 1.0);
        let b = rng.vec(n * d, -1.0, 1.0);
        a[..d].fill(0.0); // a zero row: its norm's subgradient is 0
        a[d..2 * d].copy_from_slice(&b[d..2 * d]); // identical rows
        for k in 0..d {
            a[2 * d + k] = 1e-9 * b[2 * d + k]; // a norm below eps
        }
        let (x1, x2) = (var(&a, &[n, d], dt), var(&b, &[n, d], dt));
        for eps in [1e-8, 1e-3] {
            let f = mc::CosineSimilarity::new().eps(eps);
            compare(&format!("cosine {dt:?} eps {eps}"), &[&x1, &x2], rtol, |fused| {
                if fused {
                    mc::cosine_similarity_with(&x1, &x2, f)
                } else {
                    composed::cosine_similarity(&x1, &x2, f)
                }
                .unwrap()
            });
        }
        for p in [2.0, 1.0, 3.0, f64::INFINITY] {
            let f = mc::PairwiseDistance::new().p(p);
            compare(&format!("pairwise {dt:?} p {p}"), &[&x1, &x2], rtol * 10.0, |fused| {
                if fused {
                    mc::pairwise_distance_with(&x1, &x2, f)
                } else {
                    composed::pairwise_distance(&x1, &x2, f)
                }
                .unwrap()
            });
        }
        let t: Vec<f64> = (0..n * d)
            .map(|i| {
                if i % 3 == 0 {
                    1.0
                } else if i % 3 == 1 {
                    0.0
                } else {
                    0.25
                }
            })
            .collect();
        let t = tensor(&t, &[n, d], dt);
        let w = tensor(&rng.vec(d, 0.5, 2.0), &[d], dt);
        let x = var(&rng.vec(n * d, -4.0, 4.0), &[n, d], dt);
        for r in REDUCTIONS {
            for weight in [None, Some(&w)] {
                let l = mc::MultilabelSoftMargin::new();
                compare(
                    &format!("multilabel_soft_margin {dt:?} {r:?} {}", weight.is_some()),
                    &[&x],
                    rtol,
                    |fused| {
                        if fused {
                            mc::multilabel_soft_margin_with(&x, &t, weight, l, r)
                        } else {
                            composed::multilabel_soft_margin(&x, &t, weight, l, r)
                        }
                        .unwrap()
                    },
                );
            }
        }
    }
}

#[test]
fn composed_matches_torch_compat_quirks() {
    // Targets outside {−1, 1} and a negative distance, in torch-compat mode.
    let x = var(&[0.5, -0.3, 1.5, 0.0], &[4], DType::F64);
    let t = tensor(&[0.0, 2.0, -1.0, 1.0], &[4], DType::F64);
    let he = mc::HingeEmbedding::new().mode(Mode::TorchCompat);
    let h = mc::Hinge::new().mode(Mode::TorchCompat);
    for r in REDUCTIONS {
        compare("hinge_embedding compat", &[&x], 1e-15, |fused| {
            if fused {
                mc::hinge_embedding_with(&x, &t, he, r)
            } else {
                composed::hinge_embedding(&x, &t, he, r)
            }
            .unwrap()
        });
        compare("hinge compat", &[&x], 1e-15, |fused| {
            if fused { mc::hinge_with(&x, &t, h, r) } else { composed::hinge(&x, &t, h, r) }.unwrap()
        });
    }
}

// ---------------------------------------------------------------------------------------
// Errors and targets

#[test]
fn strict_errors_carry_the_core_message_on_both_paths() {
    let x = tensor(&[0.8, -0.5, 2.0], &[3], DType::F32);
    let t = tensor(&[0.0, 1.0, -1.0], &[3], DType::F32);
    let core = marginloss::Hinge::new()
        .forward(&[0.8f32, -0.5, 2.0], &[0.0, 1.0, -1.0], Reduction::Mean)
        .unwrap_err();
    let fused = mc::hinge_with(&x, &t, mc::Hinge::new(), Reduction::Mean).unwrap_err();
    let comp = composed::hinge(&x, &t, mc::Hinge::new(), Reduction::Mean).unwrap_err();
    assert_eq!(fused.to_string(), core.to_string());
    assert_eq!(comp.to_string(), core.to_string());
    assert!(fused.to_string().contains("Labels::ZeroOne"), "{fused}");
    // The article's mistake: scores fed to hinge_embedding.
    let e = mc::hinge_embedding_with(
        &x,
        &tensor(&[-1.0, 1.0, -1.0], &[3], DType::F32),
        mc::HingeEmbedding::new(),
        Reduction::Mean,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("hinge_embedding expects distances >= 0, got -0.5 at input[1]"), "{e}");
    // Shapes.
    let e = mc::hinge_with(&x, &tensor(&[1.0, 1.0], &[2], DType::F32), mc::Hinge::new(), Reduction::Mean)
        .unwrap_err();
    assert!(e.to_string().contains("target has shape [2]"), "{e}");
    let e =
        mc::hinge_with(&x, &x.to_dtype(DType::F64).unwrap(), mc::Hinge::new(), Reduction::Mean).unwrap_err();
    assert!(e.to_string().contains("dtype"), "{e}");
    let e = mc::multi_margin_with(
        &tensor(&[0.1, 0.2, 0.3], &[1, 3], DType::F32),
        &Tensor::new(&[3i64], &dev()).unwrap(),
        None,
        mc::MultiMargin::new(),
        Reduction::Mean,
    )
    .unwrap_err();
    assert!(e.to_string().contains("out of range for 3 classes"), "{e}");
}

#[test]
fn targets_get_no_gradient_and_inputs_always_do() {
    let x = var(&[0.5, -0.3, 1.5], &[3], DType::F32);
    let y = var(&[1.0, -1.0, 1.0], &[3], DType::F32);
    for fused in [true, false] {
        let out = if fused {
            mc::hinge_with(&x, &y, mc::Hinge::new(), Reduction::Mean)
        } else {
            composed::hinge(&x, &y, mc::Hinge::new(), Reduction::Mean)
        }
        .unwrap();
        let g = out.backward().unwrap();
        assert!(g.get(&x).is_some(), "the input's gradient (fused: {fused})");
        assert!(g.get(&y).is_none(), "the target's gradient (fused: {fused})");
    }
    let x1 = var(&[0.5, -0.3, 1.5], &[3], DType::F32);
    let out = mc::margin_ranking_with(&x1, &x, &y, mc::MarginRanking::new(), Reduction::Sum).unwrap();
    let g = out.backward().unwrap();
    assert!(g.get(&x1).is_some() && g.get(&x).is_some() && g.get(&y).is_none());
}

#[test]
fn upstream_gradients_scale_the_result() {
    // A loss used inside a larger graph: 3·mean and a per-element weighting of `none`.
    let x = var(&[0.5, -0.3, 1.5, 2.0], &[4], DType::F64);
    let y = tensor(&[1.0, -1.0, -1.0, 1.0], &[4], DType::F64);
    let m = mc::hinge_with(&x, &y, mc::Hinge::new(), Reduction::Mean).unwrap();
    let g = (m * 3.0).unwrap().backward().unwrap();
    assert_eq!(f64s(g.get(&x).unwrap()), vec![-0.75, 0.75, 0.75, 0.0]);
    let w = tensor(&[1.0, 2.0, 3.0, 4.0], &[4], DType::F64);
    let l = mc::hinge_with(&x, &y, mc::Hinge::new(), Reduction::None).unwrap();
    let g = (l * w).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(f64s(g.get(&x).unwrap()), vec![-1.0, 2.0, 3.0, 0.0]);
}

// ---------------------------------------------------------------------------------------
// Training

#[test]
fn a_candle_nn_training_step_lowers_the_loss() {
    use candle_nn::Optimizer;
    let mut rng = Rng::new(6);
    let n = 64;
    // Two Gaussian blobs in 2-D, labels ±1.
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let y = if i % 2 == 0 { 1.0 } else { -1.0 };
        xs.push(y * 1.0 + rng.uniform(-1.0, 1.0));
        xs.push(-y * 0.5 + rng.uniform(-1.0, 1.0));
        ys.push(y);
    }
    let x = tensor(&xs, &[n, 2], DType::F32);
    let y = tensor(&ys, &[n], DType::F32);
    // A zero-initialised Linear 2 → 1 (deterministic: every score starts at 0, loss 1).
    let w = Var::zeros((1, 2), DType::F32, &dev()).unwrap();
    let b = Var::zeros(1, DType::F32, &dev()).unwrap();
    let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let mut opt = candle_nn::SGD::new(vec![w.clone(), b.clone()], 0.1).unwrap();
    let loss = |lin: &candle_nn::Linear| {
        let s = lin.forward(&x).unwrap().squeeze(D::Minus1).unwrap();
        mc::hinge_with(&s, &y, mc::Hinge::new(), Reduction::Mean).unwrap()
    };
    let first = loss(&lin).to_scalar::<f32>().unwrap();
    for _ in 0..30 {
        let l = loss(&lin);
        opt.backward_step(&l).unwrap();
    }
    let last = loss(&lin).to_scalar::<f32>().unwrap();
    assert_eq!(first, 1.0);
    assert!(last < 0.5 * first, "hinge loss {first} → {last}");
    // The two-class problem is learnt: most training scores have the label's sign.
    let s = f64s(&lin.forward(&x).unwrap());
    let right = s.iter().zip(&ys).filter(|(s, y)| *s * *y > 0.0).count();
    assert!(right >= n * 9 / 10, "{right}/{n} correct");
}

#[test]
fn composed_equals_fused_for_the_class_index_losses() {
    let mut rng = Rng::new(7);
    let (n, c) = (9, 5);
    for (dt, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
        for trial in 0..4 {
            // Scores on a coarse grid, so that ties and exact kinks (z == 0) occur.
            let xs: Vec<f64> = (0..n * c).map(|_| (rng.uniform(-4.0, 4.0)).round() / 4.0).collect();
            let x = var(&xs, &[n, c], dt);
            let y: Vec<i64> = (0..n).map(|i| ((i * 3 + trial) % c) as i64).collect();
            let yt = Tensor::new(y.as_slice(), &dev()).unwrap();
            let yu = yt.to_dtype(DType::U32).unwrap();
            let w = tensor(&rng.vec(c, 0.5, 2.0), &[c], dt);
            // Multilabel targets: 0–3 classes then −1, some listed twice.
            let mut ml = vec![-1i64; n * c];
            for row in 0..n {
                let k = row % 4;
                for j in 0..k {
                    ml[row * c + j] = ((row + 2 * j + trial) % c) as i64;
                }
                if row % 5 == 0 && k > 0 {
                    ml[row * c + k] = ml[row * c];
                }
            }
            let mlt = Tensor::from_vec(ml, (n, c), &dev()).unwrap();
            for r in REDUCTIONS {
                for p in [1.0, 2.0] {
                    for weight in [None, Some(&w)] {
                        let l = mc::MultiMargin::new().p(p).margin([1.0, 0.5][trial % 2]);
                        let id = format!("multi_margin {dt:?} {trial} {r:?} p{p} w{}", weight.is_some());
                        compare(&id, &[&x], rtol, |fused| {
                            if fused {
                                mc::multi_margin_with(&x, &yt, weight, l, r)
                            } else {
                                composed::multi_margin(&x, &yu, weight, l, r)
                            }
                            .unwrap()
                        });
                    }
                }
                let l = mc::MulticlassHinge::new().margin([1.0, 0.5][trial % 2]);
                compare(&format!("multiclass_hinge {dt:?} {trial} {r:?}"), &[&x], rtol, |fused| {
                    if fused {
                        mc::multiclass_hinge_with(&x, &yt, l, r)
                    } else {
                        composed::multiclass_hinge(&x, &yt, l, r)
                    }
                    .unwrap()
                });
                let l = mc::MultilabelMargin::new();
                compare(&format!("multilabel_margin {dt:?} {trial} {r:?}"), &[&x], rtol, |fused| {
                    if fused {
                        mc::multilabel_margin_with(&x, &mlt, l, r)
                    } else {
                        composed::multilabel_margin(&x, &mlt, l, r)
                    }
                    .unwrap()
                });
            }
            // A 1-D input is one row with a 0-d target.
            let x1 = var(&xs[..c], &[c], dt);
            let y0 = Tensor::new(2i64, &dev()).unwrap();
            for r in REDUCTIONS {
                compare(&format!("multi_margin 1-D {dt:?} {r:?}"), &[&x1], rtol, |fused| {
                    let l = mc::MultiMargin::new();
                    if fused {
                        mc::multi_margin_with(&x1, &y0, None, l, r)
                    } else {
                        composed::multi_margin(&x1, &y0, None, l, r)
                    }
                    .unwrap()
                });
            }
        }
    }
    // Out-of-range indices are refused in both modes, with the core's message.
    let x = var(&[0.1, 0.2, 0.3], &[1, 3], DType::F32);
    let bad = Tensor::new(&[3i64], &dev()).unwrap();
    let compat = mc::MultiMargin::new().mode(Mode::TorchCompat);
    let e1 = mc::multi_margin_with(&x, &bad, None, compat, Reduction::Mean).unwrap_err();
    let e2 = composed::multi_margin(&x, &bad, None, compat, Reduction::Mean).unwrap_err();
    assert_eq!(e1.to_string(), e2.to_string());
}
