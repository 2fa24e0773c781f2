//! The batch losses (batch_hard_triplet, batch_all_triplet, semihard_triplet,
//! pair_contrastive) as burn ops: on `Device::flex()` and `Device::flex().autodiff()`,
//! values equal to the core's `forward`, gradients from `.backward()` equal to its fused
//! `forward_backward` (for upstream ones and for other upstreams), and the core's errors
//! (label count ≠ N, strict mode's degenerate batches) instead of panics.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use marginloss::batch::{Batch, Workspace};
use marginloss::{Float, Mode, Rows};
use marginloss_burn::{
    self as mb, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive,
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

    fn burn(&self, e: Tensor<2>, y: Tensor<1, Int>, r: BatchReduction) -> marginloss::Result<Tensor<1>> {
        match *self {
            Loss::Hard(l) => mb::batch_hard_triplet(e, y, l, r),
            Loss::All(l) => mb::batch_all_triplet(e, y, l, r),
            Loss::Semi(l) => mb::semihard_triplet(e, y, l, r),
            Loss::Pair(l) => mb::pair_contrastive(e, y, l, r),
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

fn vals<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    t.to_data().try_to_vec_as::<f64>().expect("values")
}

fn f64s<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

/// P × K labels (P classes, K each), interleaved.
fn pk_labels(p: usize, k: usize) -> Vec<i64> {
    (0..p * k).map(|i| (i % p) as i64 * 3 - 2).collect()
}

fn emb(x: &[f64], shape: [usize; 2], dev: &Device, dt: DType) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(x.to_vec(), shape), (dev, dt))
}

fn labels(y: &[i64], dev: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [y.len()]), dev)
}

fn values_and_grads<T: Float>(dt: DType) {
    let (n, d) = (12, 5);
    let x64: Vec<f64> = cast::<T>(&Rng(0xB47C_0001).vec(n * d)).iter().map(|v| v.f64()).collect();
    let x: Vec<T> = cast(&x64);
    let y = pk_labels(3, 4);
    let plain = Device::flex();
    let ad = Device::flex().autodiff();
    for loss in Loss::all() {
        for r in REDUCTIONS {
            let what = format!("{loss:?} {r:?} {dt:?}");
            let want = f64s(&loss.core_forward(&x, n, &y, r).unwrap());
            let shape = [r.output_len(n)];
            // Untracked, on plain Flex and on autodiff Flex: the core's forward alone.
            for dev in [&plain, &ad] {
                let got = loss.burn(emb(&x64, [n, d], dev, dt), labels(&y, dev), r).unwrap();
                assert_eq!(got.dims(), shape, "{what}: shape");
                assert_eq!(got.dtype(), dt, "{what}: dtype");
                assert_eq!(vals(&got), want, "{what}: value on {dev:?}");
            }
            // Tracked: the fused kernel in the forward, the same value; gradient of the sum.
            let e = emb(&x64, [n, d], &ad, dt).require_grad();
            let l = loss.burn(e.clone(), labels(&y, &ad), r).unwrap();
            let got = vals(&l);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-30), "{what}: tracked value {a} vs {b}");
            }
            let ones = vec![T::one(); r.output_len(n)];
            let (want_fused, want_g) = loss.core_fused(&x, n, &y, r, &ones);
            assert_eq!(got, f64s(&want_fused), "{what}: tracked value = the fused kernel's");
            let total = if r == BatchReduction::None { l.clone().sum() } else { l.clone() };
            let g = total.backward();
            let got_g = vals(&e.grad(&g).expect("a gradient"));
            assert_eq!(got_g, f64s(&want_g), "{what}: gradient");
            assert!(want_g.iter().any(|v| *v != T::zero()), "{what}: a non-trivial gradient");
            // A non-unit upstream: 2.5 for a scalar, per-anchor weights for None; the
            // backward reruns the fused kernel with it.
            let e = emb(&x64, [n, d], &ad, dt).require_grad();
            let l = loss.burn(e.clone(), labels(&y, &ad), r).unwrap();
            let w64: Vec<f64> = (0..r.output_len(n)).map(|i| 0.5 + 0.25 * i as f64).collect();
            let (up, weighted) = if r == BatchReduction::None {
                let wt = Tensor::<1>::from_data(TensorData::new(w64.clone(), [n]), (&ad, dt));
                (cast::<T>(&w64), (l * wt).sum())
            } else {
                (vec![T::of(2.5)], l.mul_scalar(2.5))
            };
            let (_, want_w) = loss.core_fused(&x, n, &y, r, &up);
            let got_w = vals(&e.grad(&weighted.backward()).expect("a gradient"));
            assert_eq!(got_w, f64s(&want_w), "{what}: gradient for upstream {up:?}");
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
fn labels_of_any_int_dtype_and_strided_embeddings_agree() {
    let (n, d) = (8, 3);
    let x = Rng(11).vec(n * d);
    let y = pk_labels(2, 4);
    let dev = Device::flex().autodiff();
    let loss = BatchHardTriplet::new().margin(0.3);
    let r = BatchReduction::Sum;
    let base = mb::batch_hard_triplet(emb(&x, [n, d], &dev, DType::F64), labels(&y, &dev), loss, r).unwrap();
    let y32: Vec<i32> = y.iter().map(|&v| v as i32).collect();
    let yt = Tensor::<1, Int>::from_data(TensorData::new(y32, [n]), &dev);
    let other = mb::batch_hard_triplet(emb(&x, [n, d], &dev, DType::F64), yt, loss, r).unwrap();
    assert_eq!(vals(&base), vals(&other));
    // The same values through a transposed view; the gradient arrives in the view's base.
    let xt: Vec<f64> = (0..d).flat_map(|j| (0..n).map(move |i| i * d + j)).map(|k| x[k]).collect();
    let bt = emb(&xt, [d, n], &dev, DType::F64).require_grad();
    let l = mb::batch_hard_triplet(bt.clone().transpose(), labels(&y, &dev), loss, r).unwrap();
    assert_eq!(vals(&l), vals(&base));
    let gt = vals(&bt.grad(&l.backward()).unwrap().transpose());
    let e = emb(&x, [n, d], &dev, DType::F64).require_grad();
    let l = mb::batch_hard_triplet(e.clone(), labels(&y, &dev), loss, r).unwrap();
    assert_eq!(gt, vals(&e.grad(&l.backward()).unwrap()));
}

fn err(r: marginloss::Result<Tensor<1>>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn a_label_count_other_than_n_is_the_cores_error() {
    let x = Rng(3).vec(12);
    let y5 = [0i64, 0, 1, 1, 2];
    let core = Loss::Hard(BatchHardTriplet::new())
        .core_forward(&x, 4, &y5, BatchReduction::Mean)
        .expect_err("core error")
        .to_string();
    assert!(core.contains("labels"), "{core}");
    for dev in [Device::flex(), Device::flex().autodiff()] {
        for tracked in [false, true] {
            if tracked && !dev.is_autodiff() {
                continue;
            }
            let e = emb(&x, [4, 3], &dev, DType::F64);
            let e = if tracked { e.require_grad() } else { e };
            let l = loss_hard(e, labels(&y5, &dev));
            assert_eq!(err(l), core, "{dev:?} tracked={tracked}");
        }
    }
}

fn loss_hard(e: Tensor<2>, y: Tensor<1, Int>) -> marginloss::Result<Tensor<1>> {
    mb::batch_hard_triplet(e, y, BatchHardTriplet::new(), BatchReduction::Mean)
}

#[test]
fn strict_mode_refuses_degenerate_batches_as_the_core() {
    let x = Rng(5).vec(12);
    let distinct = [0i64, 1, 2, 3];
    let one_class = [4i64; 4];
    let plain = Device::flex();
    let ad = Device::flex().autodiff();
    for y in [distinct, one_class] {
        for loss in Loss::all() {
            for r in REDUCTIONS {
                let core = loss.core_forward(&x, 4, &y, r).expect_err("strict").to_string();
                let e = emb(&x, [4, 3], &plain, DType::F32);
                assert_eq!(err(loss.burn(e, labels(&y, &plain), r)), core, "{loss:?} {r:?}");
                let e = emb(&x, [4, 3], &ad, DType::F32).require_grad();
                assert_eq!(err(loss.burn(e, labels(&y, &ad), r)), core, "{loss:?} {r:?} (tracked)");
            }
        }
    }
    // Every label once: "no positive pair".
    let m = err(loss_hard(emb(&x, [4, 3], &ad, DType::F64), labels(&distinct, &ad)));
    assert!(m.contains("no positive pair"), "{m}");
    // Torch-compat reproduces pytorch-metric-learning: zero loss, zero gradient.
    let e = emb(&x, [4, 3], &ad, DType::F64).require_grad();
    let compat = BatchHardTriplet::new().mode(Mode::TorchCompat);
    let l = mb::batch_hard_triplet(e.clone(), labels(&distinct, &ad), compat, BatchReduction::Mean).unwrap();
    assert_eq!(vals(&l), [0.0]);
    let g = vals(&e.grad(&l.backward()).expect("a gradient"));
    assert!(g.iter().all(|v| *v == 0.0));
    // Non-finite embeddings in strict mode: the core's error.
    let mut bad = x.clone();
    bad[4] = f64::NAN;
    let y = [0i64, 0, 1, 1];
    let core = Loss::Pair(PairContrastive::new())
        .core_forward(&bad, 4, &y, BatchReduction::Mean)
        .expect_err("nan")
        .to_string();
    let l = mb::pair_contrastive(
        emb(&bad, [4, 3], &ad, DType::F64).require_grad(),
        labels(&y, &ad),
        PairContrastive::new(),
        BatchReduction::Mean,
    );
    assert_eq!(err(l), core);
    // Semi-hard with its defaults, for completeness of the four entry points.
    let e = emb(&x, [4, 3], &plain, DType::F64);
    let got = mb::semihard_triplet(e, labels(&y, &plain), SemihardTriplet::new(), BatchReduction::Mean);
    let want = Loss::Semi(SemihardTriplet::new()).core_forward(&x, 4, &y, BatchReduction::Mean).unwrap();
    assert_eq!(vals(&got.unwrap()), want);
    let e = emb(&x, [4, 3], &plain, DType::F64);
    let got = mb::batch_all_triplet(e, labels(&y, &plain), BatchAllTriplet::new(), BatchReduction::Sum);
    let want = Loss::All(BatchAllTriplet::new()).core_forward(&x, 4, &y, BatchReduction::Sum).unwrap();
    assert_eq!(vals(&got.unwrap()), want);
}

#[test]
fn the_doc_example_holds() {
    let dev = Device::flex().autodiff();
    let e = Tensor::<2>::from_floats([[0.0], [1.0], [1.5], [3.0]], &dev).require_grad();
    let y = Tensor::<1, Int>::from_ints([0, 0, 1, 1], &dev);
    let loss = mb::batch_hard_triplet(e.clone(), y, BatchHardTriplet::new().margin(1.0), BatchReduction::Sum)
        .unwrap();
    assert_eq!(loss.dims(), [1]);
    assert!((vals(&loss)[0] - 4.5).abs() < 1e-6, "{:?}", vals(&loss));
    let g = vals(&e.grad(&loss.backward()).expect("a gradient"));
    // d/dx of the four hinge terms (all active): anchors 0 and 1 pull together and push
    // from their nearest negatives, and so on; the core's gradient is checked elsewhere.
    assert_eq!(g.len(), 4);
    assert!(g.iter().any(|v| *v != 0.0));
}

#[test]
fn random_batches_never_panic_and_give_the_cores_value_or_error() {
    // 400 awkward batches (see `awkward::Case`): every call returns the core's value (bit
    // for bit, f64) or the core's one-line error, and a tracked call's backward runs.
    let mut rng = Rng(0x5EED);
    let dev = Device::flex().autodiff();
    for k in 0..400 {
        let c = Case::draw(&mut rng);
        let what = c.describe(k);
        let e = emb(&c.x, [c.n, c.dim], &dev, DType::F64);
        let e = if c.tracked { e.require_grad() } else { e };
        match (c.opts.burn(e.clone(), labels(&c.y, &dev), c.r), c.core()) {
            (Ok(l), Ok(w)) => {
                awkward::same_bits(&what, &vals(&l), &w);
                if c.tracked {
                    let g = l.sum().backward();
                    assert_eq!(e.grad(&g).map(|g| g.dims()), Some([c.n, c.dim]), "{what}");
                }
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{what}");
                assert!(!a.to_string().contains('\n'), "{what}: {a}");
            }
            (got, want) => panic!("{what}: burn {:?} but the core {want:?}", got.map(|t| vals(&t))),
        }
    }
}
