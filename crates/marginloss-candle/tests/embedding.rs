//! The pair and triplet losses (cosine_embedding, contrastive, triplet_margin,
//! triplet_margin_with_distance) beyond the fixtures: the composed fallback equal to the
//! fused path on CPU (values and gradients, swap ties and kinks included); transposed and
//! sliced inputs; f16; errors with the core's message on both paths.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::mat;
use common::{f64s, Rng};
use marginloss_candle::{self as mc, composed, Kink, Labels, Mode, Reduction};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

fn var(v: &[f64], shape: &[usize], dt: DType) -> Var {
    Var::from_tensor(&Tensor::from_slice(v, shape, &Device::Cpu).unwrap().to_dtype(dt).unwrap()).unwrap()
}

fn tensor(v: &[f64], shape: &[usize], dt: DType) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap().to_dtype(dt).unwrap()
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

/// Rows with the special cases: a zero row, identical rows, a tiny row.
fn rows(rng: &mut Rng, n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = rng.vec(n * d, -1.0, 1.0);
    let b = rng.vec(n * d, -1.0, 1.0);
    a[..d].fill(0.0);
    a[d..2 * d].copy_from_slice(&b[d..2 * d]);
    for k in 0..d {
        a[2 * d + k] = 1e-7 * b[2 * d + k];
    }
    (a, b)
}

#[test]
fn composed_equals_fused_for_the_pair_losses() {
    let mut rng = Rng::new(41);
    let (n, d) = (9, 4);
    for (dt, rtol) in [(DType::F64, 1e-12), (DType::F32, 3e-6)] {
        let (a, b) = rows(&mut rng, n, d);
        let (x1, x2) = (var(&a, &[n, d], dt), var(&b, &[n, d], dt));
        for labels in [Labels::PlusMinusOne, Labels::ZeroOne] {
            let y: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
            let stored: Vec<f64> =
                y.iter().map(|&v| if labels == Labels::ZeroOne { (v + 1.0) / 2.0 } else { v }).collect();
            let t = tensor(&stored, &[n], dt);
            for r in REDUCTIONS {
                for (margin, kink) in [(0.0, Kink::Zero), (0.3, Kink::Half), (-0.5, Kink::One)] {
                    let l = mc::CosineEmbedding::new().margin(margin).labels(labels).kink(kink);
                    compare(
                        &format!("cosine_embedding {dt:?} {labels:?} {r:?} {margin}"),
                        &[&x1, &x2],
                        rtol,
                        |f| {
                            if f {
                                mc::cosine_embedding_with(&x1, &x2, &t, l, r)
                            } else {
                                composed::cosine_embedding(&x1, &x2, &t, l, r)
                            }
                            .unwrap()
                        },
                    );
                }
                for margin in [1.0, 2.0, 0.0] {
                    let l = mc::Contrastive::new().margin(margin).labels(labels);
                    compare(
                        &format!("contrastive {dt:?} {labels:?} {r:?} {margin}"),
                        &[&x1, &x2],
                        rtol,
                        |f| {
                            if f {
                                mc::contrastive_with(&x1, &x2, &t, l, r)
                            } else {
                                composed::contrastive(&x1, &x2, &t, l, r)
                            }
                            .unwrap()
                        },
                    );
                }
            }
        }
        // Torch-compat: targets that are neither ±1.
        let t = tensor(&[1.0, -1.0, 0.0, 2.0, 1.0, -1.0, 0.5, 1.0, -1.0], &[n], dt);
        for r in REDUCTIONS {
            let l = mc::CosineEmbedding::new().mode(Mode::TorchCompat);
            compare(&format!("cosine_embedding compat {dt:?} {r:?}"), &[&x1, &x2], rtol, |f| {
                if f {
                    mc::cosine_embedding_with(&x1, &x2, &t, l, r)
                } else {
                    composed::cosine_embedding(&x1, &x2, &t, l, r)
                }
                .unwrap()
            });
            let l = mc::Contrastive::new().mode(Mode::TorchCompat);
            compare(&format!("contrastive compat {dt:?} {r:?}"), &[&x1, &x2], rtol, |f| {
                if f {
                    mc::contrastive_with(&x1, &x2, &t, l, r)
                } else {
                    composed::contrastive(&x1, &x2, &t, l, r)
                }
                .unwrap()
            });
        }
    }
}

#[test]
fn composed_equals_fused_for_the_triplet_losses() {
    let mut rng = Rng::new(42);
    let (n, d) = (8, 5);
    for (dt, rtol) in [(DType::F64, 1e-12), (DType::F32, 3e-6)] {
        let (mut a, mut p) = rows(&mut rng, n, d);
        let mut ng = rng.vec(n * d, -1.0, 1.0);
        // Rows 3 and 4: exact swap ties for eps = 0, in dyadic numbers: n = a − ½,
        // p = n − ½, so a − n = −(p − n) and d(a, n) == d(p, n) on both paths.
        for row in [3, 4] {
            for k in 0..d {
                let i = row * d + k;
                a[i] = [0.25, -0.5, 0.75, 1.0, -0.25][k % 5] * (row as f64 - 2.0);
                ng[i] = a[i] - 0.5;
                p[i] = ng[i] - 0.5;
            }
        }
        let pm = p;
        let (va, vp, vn) = (var(&a, &[n, d], dt), var(&pm, &[n, d], dt), var(&ng, &[n, d], dt));
        let vars = [&va, &vp, &vn];
        for r in REDUCTIONS {
            for swap in [false, true] {
                for (margin, p, eps) in [(1.0, 2.0, 1e-6), (0.5, 1.0, 1e-6), (1.0, 3.0, 0.0), (2.0, 2.0, 0.0)]
                {
                    let l = mc::TripletMargin::new().margin(margin).p(p).eps(eps).swap(swap);
                    let id = format!("triplet_margin {dt:?} {r:?} swap {swap} p {p} eps {eps}");
                    compare(&id, &vars, rtol, |f| {
                        if f {
                            mc::triplet_margin_with(&va, &vp, &vn, l, r)
                        } else {
                            composed::triplet_margin(&va, &vp, &vn, l, r)
                        }
                        .unwrap()
                    });
                }
                let e = mc::TripletMarginWithDistance::euclidean().swap(swap).margin(0.7);
                compare(&format!("with_distance euclidean {dt:?} {r:?} {swap}"), &vars, rtol, |f| {
                    if f {
                        mc::triplet_margin_with_distance_with(&va, &vp, &vn, e, r)
                    } else {
                        composed::triplet_margin_with_distance(&va, &vp, &vn, e, r)
                    }
                    .unwrap()
                });
                let c = mc::TripletMarginWithDistance::cosine().swap(swap).margin(0.5);
                compare(&format!("with_distance cosine {dt:?} {r:?} {swap}"), &vars, rtol, |f| {
                    if f {
                        mc::triplet_margin_with_distance_with(&va, &vp, &vn, c, r)
                    } else {
                        composed::triplet_margin_with_distance(&va, &vp, &vn, c, r)
                    }
                    .unwrap()
                });
            }
        }
    }
}

#[test]
fn swap_ties_split_the_gradient_on_both_paths() {
    // a = 0, p = (2, 0), n = (1, 0): d(a, n) = d(p, n) = 1 (eps 0), dp = 2, l = 1 + 2 − 1.
    let dt = DType::F64;
    let (a, p, n) =
        (var(&[0.0, 0.0], &[1, 2], dt), var(&[2.0, 0.0], &[1, 2], dt), var(&[1.0, 0.0], &[1, 2], dt));
    let l = mc::TripletMargin::new().eps(0.0).swap(true);
    for fused in [true, false] {
        let out = if fused {
            mc::triplet_margin_with(&a, &p, &n, l, Reduction::Sum)
        } else {
            composed::triplet_margin(&a, &p, &n, l, Reduction::Sum)
        }
        .unwrap();
        let (v, g) = value_and_grads(&out, &[&a, &p, &n]);
        assert_eq!(v, [2.0], "fused {fused}");
        // a: ∂dp/∂a − ½·∂d(a, n)/∂a = (−1, 0) + (½, 0); p: (1, 0) − (½, 0); n: the halves cancel.
        assert_eq!(g[0], [-0.5, 0.0], "fused {fused}: anchor");
        assert_eq!(g[1], [1.0 - 0.5, 0.0], "fused {fused}: positive");
        assert_eq!(g[2], [0.0, 0.0], "fused {fused}: negative");
    }
}

/// A loss of up to three inputs.
type Run<'a> = dyn Fn(&[&Tensor]) -> Tensor + 'a;

#[test]
fn transposed_and_sliced_inputs_give_the_contiguous_result() {
    let mut rng = Rng::new(43);
    let (n, d) = (6, 4);
    let (a, b) = (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0));
    let c = rng.vec(n * d, -1.0, 1.0);
    let y: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let dt = DType::F32;
    for r in REDUCTIONS {
        // Stored as (D, N) and transposed: a non-contiguous (N, D) view.
        let vs: Vec<Var> = [&a, &b, &c].iter().map(|v| var(v, &[d, n], dt)).collect();
        let views: Vec<Tensor> = vs.iter().map(|v| v.t().unwrap()).collect();
        assert!(!views[0].is_contiguous());
        let dense: Vec<Var> =
            views.iter().map(|v| var(&f64s(&v.contiguous().unwrap()), &[n, d], dt)).collect();
        let t = tensor(&y, &[n], dt);
        let runs: [&Run; 4] = [
            &|x| {
                mc::cosine_embedding_with(x[0], x[1], &t, mc::CosineEmbedding::new().margin(0.1), r).unwrap()
            },
            &|x| mc::contrastive_with(x[0], x[1], &t, mc::Contrastive::new(), r).unwrap(),
            &|x| mc::triplet_margin_with(x[0], x[1], x[2], mc::TripletMargin::new().swap(true), r).unwrap(),
            &|x| {
                let l = mc::TripletMarginWithDistance::cosine().margin(0.5);
                mc::triplet_margin_with_distance_with(x[0], x[1], x[2], l, r).unwrap()
            },
        ];
        for (k, run) in runs.iter().enumerate() {
            let used = if k < 2 { 2 } else { 3 };
            let out = run(&[&views[0], &views[1], &views[2]]);
            let (v, g) = value_and_grads(&out, &[&vs[0], &vs[1], &vs[2]][..used]);
            let out2 = run(&[dense[0].as_tensor(), dense[1].as_tensor(), dense[2].as_tensor()]);
            let (v2, g2) = value_and_grads(&out2, &[&dense[0], &dense[1], &dense[2]][..used]);
            assert_eq!(v, v2, "loss {k} {r:?}: values");
            for j in 0..used {
                let t2 = Tensor::from_slice(&g2[j], (n, d), &Device::Cpu).unwrap().t().unwrap();
                assert_eq!(g[j], f64s(&t2.contiguous().unwrap()), "loss {k} {r:?}: grad {j}");
            }
        }
        // A slice with an offset: rows 2..5 of the anchor.
        let big = var(&a, &[n, d], DType::F64);
        let (p, ng) = (tensor(&b[..3 * d], &[3, d], DType::F64), tensor(&c[..3 * d], &[3, d], DType::F64));
        let out =
            mc::triplet_margin_with(&big.narrow(0, 2, 3).unwrap(), &p, &ng, mc::TripletMargin::new(), r)
                .unwrap();
        let (v, g) = value_and_grads(&out, &[&big]);
        let mut want_out = vec![0.0; r.output_len(3)];
        let mut ga = vec![0.0; 3 * d];
        marginloss::TripletMargin::new()
            .forward_backward(
                mat(&a[2 * d..5 * d], d),
                mat(&b[..3 * d], d),
                mat(&c[..3 * d], d),
                r,
                &[1.0],
                &mut want_out,
                &mut ga,
                &mut vec![0.0; 3 * d],
                &mut vec![0.0; 3 * d],
            )
            .unwrap();
        if r != Reduction::None {
            assert_eq!(v, want_out, "{r:?}");
        }
        assert!(g[0][..2 * d].iter().chain(&g[0][5 * d..]).all(|&x| x == 0.0));
        assert_eq!(&g[0][2 * d..5 * d], &ga[..], "{r:?}: sliced grads");
    }
}

#[test]
fn one_dimensional_inputs_are_one_row() {
    let dt = DType::F64;
    let (a, b, c) = (var(&[1.0, 0.0], &[2], dt), var(&[0.6, 0.8], &[2], dt), var(&[0.0, 1.0], &[2], dt));
    let y = tensor(&[1.0], &[1], dt);
    let out = mc::cosine_embedding_with(&a, &b, &y, mc::CosineEmbedding::new(), Reduction::None).unwrap();
    assert_eq!(out.dims(), &[] as &[usize]);
    let l = mc::TripletMarginWithDistance::cosine();
    let out = mc::triplet_margin_with_distance_with(&a, &b, &c, l, Reduction::None).unwrap();
    assert_eq!(out.dims(), &[] as &[usize]);
    assert!((f64s(&out)[0] - 0.4).abs() < 1e-12);
    let comp = composed::triplet_margin_with_distance(&a, &b, &c, l, Reduction::None).unwrap();
    assert_eq!(comp.dims(), &[] as &[usize]);
}

#[test]
fn f16_and_bf16_compute_in_f32() {
    let mut rng = Rng::new(44);
    let (n, d) = (5, 4);
    let (a, b, c) = (rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0), rng.vec(n * d, -1.0, 1.0));
    let y: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    for dt in [DType::F16, DType::BF16] {
        let tol = if dt == DType::F16 { 4e-3 } else { 3e-2 };
        // Reference: f32 from the half-rounded values.
        let round = |v: &[f64]| f64s(&tensor(v, &[n, d], dt));
        let (ha, hb, hc) = (round(&a), round(&b), round(&c));
        let (va, vb, vc) = (var(&a, &[n, d], dt), var(&b, &[n, d], dt), var(&c, &[n, d], dt));
        let (fa, fb, fc) =
            (var(&ha, &[n, d], DType::F32), var(&hb, &[n, d], DType::F32), var(&hc, &[n, d], DType::F32));
        let run = |x: &Tensor, p: &Tensor, q: &Tensor, t: &Tensor| {
            [
                mc::cosine_embedding_with(x, p, t, mc::CosineEmbedding::new(), Reduction::Mean).unwrap(),
                mc::contrastive_with(x, p, t, mc::Contrastive::new(), Reduction::Mean).unwrap(),
                mc::triplet_margin_with(x, p, q, mc::TripletMargin::new(), Reduction::Mean).unwrap(),
            ]
        };
        let half = run(&va, &vb, &vc, &tensor(&y, &[n], dt));
        let full = run(&fa, &fb, &fc, &tensor(&y, &[n], DType::F32));
        for (k, (h, f)) in half.iter().zip(&full).enumerate() {
            assert_eq!(h.dtype(), dt);
            let (vh, gh) = value_and_grads(h, &[&va, &vb]);
            let (vf, gf) = value_and_grads(f, &[&fa, &fb]);
            close(&format!("{dt:?} loss {k} value"), &vh, &vf, tol);
            close(&format!("{dt:?} loss {k} grad a"), &gh[0], &gf[0], tol);
            close(&format!("{dt:?} loss {k} grad b"), &gh[1], &gf[1], tol);
        }
    }
}

#[test]
fn errors_carry_the_core_message_on_both_paths() {
    let dt = DType::F32;
    let x = tensor(&[1.0, 2.0, 3.0, 4.0], &[2, 2], dt);
    let bad_t = tensor(&[1.0, 0.0], &[2], dt);
    let core = marginloss::CosineEmbedding::new()
        .forward(
            mat(&[1.0f32, 2.0, 3.0, 4.0], 2),
            mat(&[1.0, 2.0, 3.0, 4.0], 2),
            &[1.0, 0.0],
            Reduction::Mean,
        )
        .unwrap_err()
        .to_string();
    let l = mc::CosineEmbedding::new();
    assert_eq!(mc::cosine_embedding_with(&x, &x, &bad_t, l, Reduction::Mean).unwrap_err().to_string(), core);
    assert_eq!(composed::cosine_embedding(&x, &x, &bad_t, l, Reduction::Mean).unwrap_err().to_string(), core);
    let core = marginloss::Contrastive::new()
        .forward(
            mat(&[1.0f32, 2.0, 3.0, 4.0], 2),
            mat(&[1.0, 2.0, 3.0, 4.0], 2),
            &[1.0, 0.0],
            Reduction::Mean,
        )
        .unwrap_err()
        .to_string();
    let l = mc::Contrastive::new();
    assert_eq!(mc::contrastive_with(&x, &x, &bad_t, l, Reduction::Mean).unwrap_err().to_string(), core);
    assert_eq!(composed::contrastive(&x, &x, &bad_t, l, Reduction::Mean).unwrap_err().to_string(), core);
    // A margin that is not > 0: rejected in both modes, on both paths.
    for mode in [Mode::Strict, Mode::TorchCompat] {
        let l = mc::TripletMargin::new().margin(0.0).mode(mode);
        let core = l
            .forward(mat(&[1.0f32, 2.0], 2), mat(&[1.0, 2.0], 2), mat(&[1.0, 2.0], 2), Reduction::Mean)
            .unwrap_err()
            .to_string();
        assert_eq!(mc::triplet_margin_with(&x, &x, &x, l, Reduction::Mean).unwrap_err().to_string(), core);
        assert_eq!(composed::triplet_margin(&x, &x, &x, l, Reduction::Mean).unwrap_err().to_string(), core);
        let l = mc::TripletMarginWithDistance::cosine().margin(-1.0).mode(mode);
        let core = l
            .forward(mat(&[1.0f32, 2.0], 2), mat(&[1.0, 2.0], 2), mat(&[1.0, 2.0], 2), Reduction::Mean)
            .unwrap_err()
            .to_string();
        assert_eq!(
            mc::triplet_margin_with_distance_with(&x, &x, &x, l, Reduction::Mean).unwrap_err().to_string(),
            core
        );
        assert_eq!(
            composed::triplet_margin_with_distance(&x, &x, &x, l, Reduction::Mean).unwrap_err().to_string(),
            core
        );
    }
    // Mismatched shapes.
    let short = tensor(&[1.0, 2.0], &[1, 2], dt);
    assert!(mc::triplet_margin_with(&x, &x, &short, mc::TripletMargin::new(), Reduction::Mean).is_err());
    assert!(mc::cosine_embedding_with(
        &x,
        &x,
        &tensor(&[1.0], &[1], dt),
        mc::CosineEmbedding::new(),
        Reduction::Mean
    )
    .is_err());
}

#[test]
fn gradients_from_the_forward_serve_one_backward_and_any_upstream_recomputes() {
    // The forward of a tracked input computes the gradients for an upstream of ones; a
    // second backward, or a scaled upstream, runs the fused kernel again: all agree.
    let mut rng = Rng::new(45);
    let (n, d) = (6, 3);
    let (a, p, q) = (
        var(&rng.vec(n * d, -1.0, 1.0), &[n, d], DType::F64),
        rng.vec(n * d, -1.0, 1.0),
        rng.vec(n * d, -1.0, 1.0),
    );
    let (p, q) = (tensor(&p, &[n, d], DType::F64), tensor(&q, &[n, d], DType::F64));
    for r in REDUCTIONS {
        let out = mc::triplet_margin_with(&a, &p, &q, mc::TripletMargin::new().margin(2.0), r).unwrap();
        let total = if out.rank() == 0 { out.clone() } else { out.sum_all().unwrap() };
        let g1 = f64s(total.backward().unwrap().get(&a).unwrap());
        let g2 = f64s(total.backward().unwrap().get(&a).unwrap());
        assert_eq!(g1, g2, "{r:?}: second backward");
        let g3 = f64s((total * 3.0).unwrap().backward().unwrap().get(&a).unwrap());
        let want: Vec<f64> = g1.iter().map(|g| 3.0 * g).collect();
        close(&format!("{r:?}: scaled upstream"), &g3, &want, 1e-15);
        assert!(g1.iter().any(|&g| g != 0.0));
    }
}
