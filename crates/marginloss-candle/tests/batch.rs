//! The batch losses (batch_hard_triplet, batch_all_triplet, semihard_triplet,
//! pair_contrastive) as candle ops: values equal to the core's `forward`, gradients equal
//! to its `forward_backward` (and to finite differences), errors naming the argument, and
//! strict mode's degenerate batches.

use candle_core::{DType, Device, Tensor, Var};
use marginloss::batch::{Batch, Workspace};
use marginloss::{Float, Mode, Rows};
use marginloss_candle::{
    self as mc, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive,
    SemihardTriplet,
};

#[path = "../../marginloss/tests/common/awkward.rs"]
mod awkward;
use awkward::{Case, Opts, Rng, REDUCTIONS};

/// One of the four losses with its options (the shared `awkward::Opts`), with the
/// adapter's function and the core calls.
type Loss = Opts;

impl Loss {
    fn all() -> Vec<Loss> {
        vec![
            Loss::Hard(BatchHardTriplet::new().margin(0.5)),
            Loss::Hard(BatchHardTriplet::new().soft(true).distance(BatchDistance::SquaredEuclidean)),
            Loss::All(BatchAllTriplet::new().margin(0.4)),
            Loss::All(BatchAllTriplet::new().normalize(true).distance(BatchDistance::Cosine)),
            Loss::Semi(SemihardTriplet::new()),
            Loss::Pair(PairContrastive::new().pos_margin(0.1).neg_margin(1.2)),
            Loss::Pair(PairContrastive::new().normalize(true)),
        ]
    }

    fn candle(&self, e: &Tensor, y: &Tensor, r: BatchReduction) -> candle_core::Result<Tensor> {
        match *self {
            Loss::Hard(l) => mc::batch_hard_triplet_with(e, y, l, r),
            Loss::All(l) => mc::batch_all_triplet_with(e, y, l, r),
            Loss::Semi(l) => mc::semihard_triplet_with(e, y, l, r),
            Loss::Pair(l) => mc::pair_contrastive_with(e, y, l, r),
        }
    }

    fn core_forward<T: Float>(
        &self,
        x: &[T],
        n: usize,
        y: &[i64],
        r: BatchReduction,
    ) -> marginloss::Result<Vec<T>> {
        let b = Batch::new(Rows::new(x, n, x.len() / n)?, y);
        Ok(match *self {
            Loss::Hard(l) => l.forward(&b, r)?,
            Loss::All(l) => l.forward(&b, r)?,
            Loss::Semi(l) => l.forward(&b, r)?,
            Loss::Pair(l) => l.forward(&b, r)?,
        }
        .into_vec())
    }

    /// The core's fused kernel with `up`: (loss, gradient).
    fn core_fused<T: Float>(
        &self,
        x: &[T],
        n: usize,
        y: &[i64],
        r: BatchReduction,
        up: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let b = Batch::new(Rows::new(x, n, x.len() / n).unwrap(), y);
        let mut out = vec![T::zero(); r.output_len(n)];
        let mut g = vec![T::zero(); x.len()];
        let mut ws = Workspace::new();
        match *self {
            Loss::Hard(l) => l.forward_backward(&b, r, up, &mut out, &mut g, None, &mut ws),
            Loss::All(l) => l.forward_backward(&b, r, up, &mut out, &mut g, None, &mut ws),
            Loss::Semi(l) => l.forward_backward(&b, r, up, &mut out, &mut g, None, &mut ws),
            Loss::Pair(l) => l.forward_backward(&b, r, up, &mut out, &mut g, None, &mut ws),
        }
        .unwrap();
        (out, g)
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

/// P × K labels (P classes, K each), interleaved.
fn pk_labels(p: usize, k: usize) -> Vec<i64> {
    (0..p * k).map(|i| (i % p) as i64 * 3 - 2).collect()
}

/// The labels as a candle tensor of dtype `dt` (shifted to be non-negative for unsigned).
fn label_tensor(y: &[i64], dt: DType) -> Tensor {
    let shifted: Vec<i64> = y.iter().map(|&v| v + 10).collect();
    let src: &[i64] = if matches!(dt, DType::U8 | DType::U32) { &shifted } else { y };
    Tensor::new(src, &Device::Cpu).unwrap().to_dtype(dt).unwrap()
}

fn values_and_grads<T: Float + candle_core::WithDType>(dt: DType) {
    let (n, d) = (12, 5);
    let mut rng = Rng(0xB47C_0001);
    let x64 = rng.vec(n * d);
    let x: Vec<T> = cast(&x64);
    let y = pk_labels(3, 4);
    let label_dtypes = [DType::U8, DType::U32, DType::I64];
    for (li, loss) in Loss::all().into_iter().enumerate() {
        for (ri, r) in REDUCTIONS.into_iter().enumerate() {
            let what = format!("{loss:?} {r:?} {dt:?}");
            let yt = label_tensor(&y, label_dtypes[(li + ri) % 3]);
            let want = loss.core_forward(&x, n, &y, r).unwrap();
            // Untracked: the core's forward alone.
            let e = Tensor::from_slice(&x, (n, d), &Device::Cpu).unwrap();
            let got = loss.candle(&e, &yt, r).unwrap();
            let expect_dims: &[usize] = if r == BatchReduction::None { &[n] } else { &[] };
            assert_eq!(got.dims(), expect_dims, "{what}: shape");
            assert_eq!(got.flatten_all().unwrap().to_vec1::<T>().unwrap(), want, "{what}: value");
            // Tracked: the fused kernel in the forward, same value; gradient of the sum.
            let v = Var::from_tensor(&e).unwrap();
            let l = loss.candle(&v, &yt, r).unwrap();
            assert_eq!(l.flatten_all().unwrap().to_vec1::<T>().unwrap(), want, "{what}: tracked value");
            let total = if r == BatchReduction::None { l.sum_all().unwrap() } else { l.clone() };
            let g = total.backward().unwrap();
            let ones = vec![T::one(); r.output_len(n)];
            let (_, want_g) = loss.core_fused(&x, n, &y, r, &ones);
            let got_g = g.get(&v).expect("a gradient").flatten_all().unwrap().to_vec1::<T>().unwrap();
            assert_eq!(got_g, want_g, "{what}: gradient");
            assert!(want_g.iter().any(|v| *v != T::zero()), "{what}: a non-trivial gradient");
            // A second backward gives the same gradient.
            let g2 = total.backward().unwrap();
            assert_eq!(
                g2.get(&v).unwrap().flatten_all().unwrap().to_vec1::<T>().unwrap(),
                want_g,
                "{what}: again"
            );
            // A non-unit upstream: 2.5 for a scalar, per-anchor weights for None.
            let w64: Vec<f64> = (0..r.output_len(n)).map(|i| 0.5 + 0.25 * i as f64).collect();
            let w: Vec<T> = cast(&w64);
            let (up, weighted) = if r == BatchReduction::None {
                let wt = Tensor::from_slice(&w, n, &Device::Cpu).unwrap();
                (w.clone(), (&l * &wt).unwrap().sum_all().unwrap())
            } else {
                (vec![T::of(2.5)], l.affine(2.5, 0.0).unwrap())
            };
            let (_, want_w) = loss.core_fused(&x, n, &y, r, &up);
            let got_w = f64s(weighted.backward().unwrap().get(&v).unwrap());
            let tol = if dt == DType::F32 { 1e-5 } else { 1e-12 };
            let scale = want_w.iter().fold(1.0f64, |m, v| m.max(v.f64().abs()));
            for (i, (a, b)) in got_w.iter().zip(&want_w).enumerate() {
                assert!((a - b.f64()).abs() <= tol * scale, "{what}: upstream grad[{i}] {a} vs {b:?}");
            }
        }
    }
}

#[test]
fn values_and_gradients_equal_the_core_f32() {
    values_and_grads::<f32>(DType::F32);
}

#[test]
fn values_and_gradients_equal_the_core_f64() {
    values_and_grads::<f64>(DType::F64);
}

#[test]
fn defaults_are_the_core_defaults_and_the_mean() {
    let (n, d) = (8, 3);
    let x = Rng(7).vec(n * d);
    let y = pk_labels(2, 4);
    let e = Tensor::from_slice(&x, (n, d), &Device::Cpu).unwrap();
    let yt = label_tensor(&y, DType::I64);
    let m = BatchReduction::Mean;
    let cases: [(Tensor, Loss); 4] = [
        (mc::batch_hard_triplet(&e, &yt).unwrap(), Loss::Hard(BatchHardTriplet::new())),
        (mc::batch_all_triplet(&e, &yt).unwrap(), Loss::All(BatchAllTriplet::new())),
        (mc::semihard_triplet(&e, &yt).unwrap(), Loss::Semi(SemihardTriplet::new())),
        (mc::pair_contrastive(&e, &yt).unwrap(), Loss::Pair(PairContrastive::new())),
    ];
    for (got, loss) in cases {
        assert_eq!(got.to_scalar::<f64>().unwrap(), loss.core_forward(&x, n, &y, m).unwrap()[0], "{loss:?}");
    }
}

/// Central differences of the f64 loss against the autograd gradient.
fn finite_difference(loss: Loss, r: BatchReduction) {
    let (n, d) = (6, 3);
    let x = Rng(0xFD_0013).vec(n * d);
    let y = Tensor::new(&[0u32, 0, 1, 1, 2, 2], &Device::Cpu).unwrap();
    let v = Var::from_slice(&x, (n, d), &Device::Cpu).unwrap();
    let l = loss.candle(&v, &y, r).unwrap();
    let total = if r == BatchReduction::None { l.sum_all().unwrap() } else { l };
    let g = f64s(total.backward().unwrap().get(&v).unwrap());
    let f = |x: &[f64]| {
        let e = Tensor::from_slice(x, (n, d), &Device::Cpu).unwrap();
        f64s(&loss.candle(&e, &y, r).unwrap()).iter().sum::<f64>()
    };
    let h = 1e-6;
    for i in 0..n * d {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (f(&a) - f(&b)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= 1e-6,
            "{loss:?} {r:?}: d/dx[{i}]: finite difference {fd} vs autograd {}",
            g[i]
        );
    }
    assert!(g.iter().any(|v| v.abs() > 1e-3), "{loss:?} {r:?}: a non-trivial gradient");
}

#[test]
fn batch_hard_gradient_matches_finite_differences() {
    for r in REDUCTIONS {
        finite_difference(Loss::Hard(BatchHardTriplet::new().margin(1.0)), r);
    }
    finite_difference(Loss::Hard(BatchHardTriplet::new().soft(true)), BatchReduction::Mean);
}

#[test]
fn pair_contrastive_gradient_matches_finite_differences() {
    for r in REDUCTIONS {
        finite_difference(Loss::Pair(PairContrastive::new().neg_margin(1.5)), r);
    }
    finite_difference(Loss::Pair(PairContrastive::new().normalize(true)), BatchReduction::Mean);
}

#[test]
fn strided_embeddings_are_made_contiguous() {
    let (n, d) = (8, 3);
    let x = Rng(11).vec(n * d);
    let y = label_tensor(&pk_labels(2, 4), DType::I64);
    let e = Tensor::from_slice(&x, (n, d), &Device::Cpu).unwrap();
    // The same values through a transposed view.
    let t = e.t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!t.is_contiguous());
    let v = Var::from_tensor(&e).unwrap();
    let a = mc::batch_hard_triplet(&v, &y).unwrap();
    let b = mc::batch_hard_triplet(&t, &y).unwrap();
    assert_eq!(a.to_scalar::<f64>().unwrap(), b.to_scalar::<f64>().unwrap());
    // Through a differentiable transpose of a Var: the gradient arrives in the Var's layout.
    let vt = Var::from_tensor(&e.t().unwrap().contiguous().unwrap()).unwrap();
    let l = mc::batch_hard_triplet(&vt.t().unwrap(), &y).unwrap();
    let gt = l.backward().unwrap().get(&vt).unwrap().t().unwrap().contiguous().unwrap();
    let g = a.backward().unwrap().get(&v).unwrap().clone();
    assert_eq!(f64s(&gt), f64s(&g));
}

fn err(r: candle_core::Result<Tensor>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn errors_name_the_function_and_the_argument() {
    let dev = Device::Cpu;
    let e = Tensor::from_slice(&Rng(3).vec(12), (4, 3), &dev).unwrap();
    let y = Tensor::new(&[0i64, 0, 1, 1], &dev).unwrap();
    // Embeddings of the wrong rank.
    for bad in [e.flatten_all().unwrap(), e.reshape((2, 2, 3)).unwrap()] {
        let m = err(mc::batch_hard_triplet(&bad, &y));
        assert!(m.starts_with("batch_hard_triplet: embeddings") && m.contains("rank-2"), "{m}");
    }
    // Embeddings of another dtype.
    for dt in [DType::F16, DType::BF16, DType::I64] {
        let m = err(mc::batch_all_triplet(&e.to_dtype(dt).unwrap(), &y));
        assert!(m.starts_with("batch_all_triplet: embeddings has dtype") && m.contains("f32 or f64"), "{m}");
    }
    // Float labels.
    for dt in [DType::F32, DType::F64] {
        let m = err(mc::semihard_triplet(&e, &y.to_dtype(dt).unwrap()));
        assert!(m.starts_with("semihard_triplet: labels has dtype") && m.contains("integer"), "{m}");
    }
    // Labels of the wrong rank.
    let m = err(mc::pair_contrastive(&e, &y.reshape((2, 2)).unwrap()));
    assert!(m.starts_with("pair_contrastive: labels must be a rank-1"), "{m}");
    // A label count other than N: the core's message, which names the labels.
    let y5 = Tensor::new(&[0i64, 0, 1, 1, 2], &dev).unwrap();
    let m = err(mc::batch_hard_triplet(&e, &y5));
    let x: Vec<f64> = f64s(&e);
    let core = Loss::Hard(BatchHardTriplet::new())
        .core_forward(&x, 4, &[0, 0, 1, 1, 2], BatchReduction::Mean)
        .expect_err("core error")
        .to_string();
    assert_eq!(m, core);
    assert!(m.contains("labels"), "{m}");
    // The same through a Var (the fused path).
    let v = Var::from_tensor(&e).unwrap();
    assert_eq!(err(mc::batch_hard_triplet(&v, &y5)), core);
}

#[test]
fn strict_mode_refuses_degenerate_batches_as_the_core() {
    let dev = Device::Cpu;
    let x = Rng(5).vec(12);
    let e = Tensor::from_slice(&x, (4, 3), &dev).unwrap();
    let v = Var::from_tensor(&e).unwrap();
    let distinct = [0i64, 1, 2, 3];
    let one_class = [4i64; 4];
    for labels in [distinct, one_class] {
        let yt = Tensor::new(&labels, &dev).unwrap();
        for loss in Loss::all() {
            for r in REDUCTIONS {
                let core = loss.core_forward(&x, 4, &labels, r).expect_err("strict").to_string();
                assert_eq!(err(loss.candle(&e, &yt, r)), core, "{loss:?} {r:?}");
                assert_eq!(err(loss.candle(&v, &yt, r)), core, "{loss:?} {r:?} (tracked)");
            }
        }
    }
    // Every label once: "no positive pair".
    let yt = Tensor::new(&distinct, &dev).unwrap();
    let m = err(mc::batch_hard_triplet(&e, &yt));
    assert!(m.contains("no positive pair"), "{m}");
    // Torch-compat reproduces pytorch-metric-learning: zero loss, zero gradient.
    let compat = BatchHardTriplet::new().mode(Mode::TorchCompat);
    let l = mc::batch_hard_triplet_with(&v, &yt, compat, BatchReduction::Mean).unwrap();
    assert_eq!(l.to_scalar::<f64>().unwrap(), 0.0);
    let g = f64s(l.backward().unwrap().get(&v).unwrap());
    assert!(g.iter().all(|v| *v == 0.0));
    // Non-finite embeddings in strict mode: the core's error.
    let mut bad = x.clone();
    bad[4] = f64::NAN;
    let eb = Tensor::from_slice(&bad, (4, 3), &dev).unwrap();
    let m = err(mc::pair_contrastive(&eb, &Tensor::new(&[0i64, 0, 1, 1], &dev).unwrap()));
    let core = Loss::Pair(PairContrastive::new())
        .core_forward(&bad, 4, &[0, 0, 1, 1], BatchReduction::Mean)
        .expect_err("nan")
        .to_string();
    assert_eq!(m, core);
}

#[test]
fn labels_get_no_gradient_and_integer_dtypes_agree() {
    let dev = Device::Cpu;
    let (n, d) = (8, 2);
    let x = Rng(9).vec(n * d);
    let y = pk_labels(2, 4);
    let e = Tensor::from_slice(&x, (n, d), &dev).unwrap();
    let want = mc::batch_all_triplet(&e, &label_tensor(&y, DType::I64)).unwrap().to_scalar::<f64>().unwrap();
    for dt in [DType::U8, DType::U32, DType::I16, DType::I32] {
        let got = mc::batch_all_triplet(&e, &label_tensor(&y, dt)).unwrap().to_scalar::<f64>().unwrap();
        assert_eq!(got, want, "{dt:?}");
    }
    let v = Var::from_tensor(&e).unwrap();
    let yt = label_tensor(&y, DType::I64);
    let g = mc::batch_all_triplet(&v, &yt).unwrap().backward().unwrap();
    assert!(g.get(&yt).is_none());
    assert!(g.get(&v).is_some());
}

#[test]
fn random_batches_never_panic_and_give_the_cores_value_or_error() {
    // 400 awkward batches (see `awkward::Case`), as plain tensors and as Vars: every call
    // returns the core's value (bit for bit, f64) or the core's one-line error, and a Var's
    // backward runs.
    let mut rng = Rng(0x5EED);
    let dev = Device::Cpu;
    for k in 0..400 {
        let c = Case::draw(&mut rng);
        let what = c.describe(k);
        let e = Tensor::from_vec(c.x.clone(), (c.n, c.dim), &dev).unwrap();
        let var = c.tracked.then(|| Var::from_tensor(&e).unwrap());
        let input = var.as_ref().map_or(&e, |v| v.as_tensor());
        let yt = Tensor::from_vec(c.y.clone(), c.y.len(), &dev).unwrap();
        match (c.opts.candle(input, &yt, c.r), c.core()) {
            (Ok(l), Ok(w)) => {
                awkward::same_bits(&what, &f64s(&l), &w);
                if let Some(v) = &var {
                    let g = l.sum_all().unwrap().backward().unwrap();
                    assert_eq!(g.get(v).map(|g| g.dims().to_vec()), Some(vec![c.n, c.dim]), "{what}");
                }
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{what}");
                assert!(!a.to_string().contains('\n'), "{what}: {a}");
            }
            (got, want) => panic!("{what}: candle {:?} but the core {want:?}", got.map(|t| f64s(&t))),
        }
    }
}
