//! The adapter's own behaviour: strided and broadcast inputs, upstream gradients other
//! than ones, half precision, plain (non-autodiff) Flex, errors instead of panics on
//! either path, and a training step with `burn::optim` that lowers the loss.

use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use marginloss::Rows;
use marginloss_burn as mb;
use mb::{Mode, Reduction};

fn dev() -> Device {
    Device::flex().autodiff()
}

fn vals<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    t.to_data().try_to_vec_as::<f64>().expect("values")
}

fn t2(data: &[f64], shape: [usize; 2], dt: DType) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(data.to_vec(), shape), (&dev(), dt))
}

fn t1(data: &[f64], dt: DType) -> Tensor<1> {
    Tensor::<1>::from_data(TensorData::new(data.to_vec(), [data.len()]), (&dev(), dt))
}

const X: [f64; 12] = [0.8, -0.5, 2.0, 0.1, -1.2, 0.3, 0.7, -0.9, 1.5, 0.0, -0.2, 0.6];

#[test]
fn transposed_and_sliced_inputs_give_the_contiguous_result_and_gradient() {
    // x^T of a (4, 3) tensor is a strided (3, 4) view; compare with the same values laid
    // out contiguously.
    let base = t2(&X, [4, 3], DType::F64).require_grad();
    let xt = base.clone().transpose();
    let contiguous: Vec<f64> = (0..3).flat_map(|j| (0..4).map(move |i| X[i * 3 + j])).collect();
    let xc = t2(&contiguous, [3, 4], DType::F64).require_grad();
    let y = t2(&[1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0], [3, 4], DType::F64);
    let l1 = mb::hinge(xt, y.clone(), mb::Hinge::new(), Reduction::Mean).unwrap();
    let l2 = mb::hinge(xc.clone(), y, mb::Hinge::new(), Reduction::Mean).unwrap();
    assert_eq!(vals(&l1), vals(&l2));
    let (g1, g2) = (l1.backward(), l2.backward());
    let gb = base.grad(&g1).unwrap().transpose();
    assert_eq!(vals(&gb), vals(&xc.grad(&g2).unwrap()));

    // A slice of rows of a larger tensor through a row loss.
    let big = t2(&X, [4, 3], DType::F32).require_grad();
    let rows = big.clone().slice([1..3, 0..3]);
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &dev());
    let l = mb::multi_margin(rows, t.clone(), None, mb::MultiMargin::new(), Reduction::Sum).unwrap();
    let g = big.grad(&l.backward()).unwrap();
    let own = t2(&X[3..9], [2, 3], DType::F32).require_grad();
    let l2 = mb::multi_margin(own.clone(), t, None, mb::MultiMargin::new(), Reduction::Sum).unwrap();
    assert_eq!(vals(&l), vals(&l2));
    let g2 = vals(&own.grad(&l2.backward()).unwrap());
    let g = vals(&g);
    assert_eq!(&g[3..9], &g2[..]);
    assert!(g[..3].iter().chain(&g[9..]).all(|&v| v == 0.0), "rows outside the slice get 0");
}

#[test]
fn a_broadcast_distance_input_gets_its_gradient_summed() {
    let a = t2(&X, [4, 3], DType::F64).require_grad();
    let b = t2(&[0.5, -0.25, 1.0], [1, 3], DType::F64).require_grad();
    let d = mb::cosine_similarity(a.clone(), b.clone(), mb::CosineSimilarity::new()).unwrap();
    assert_eq!(d.dims(), [4, 1]);
    let g = d.clone().sum().backward();
    // The same with b repeated explicitly: b's gradient is the sum over the rows.
    let b4 = t2(&[0.5, -0.25, 1.0].repeat(4), [4, 3], DType::F64).require_grad();
    let a2 = t2(&X, [4, 3], DType::F64).require_grad();
    let d2 = mb::cosine_similarity(a2.clone(), b4.clone(), mb::CosineSimilarity::new()).unwrap();
    assert_eq!(vals(&d), vals(&d2));
    let g2 = d2.sum().backward();
    let gb4 = vals(&b4.grad(&g2).unwrap());
    let summed: Vec<f64> = (0..3).map(|j| (0..4).map(|i| gb4[i * 3 + j]).sum()).collect();
    for (x, y) in vals(&b.grad(&g).unwrap()).iter().zip(&summed) {
        assert!((x - y).abs() < 1e-14, "{x} vs {y}");
    }
    assert_eq!(vals(&a.grad(&g).unwrap()), vals(&a2.grad(&g2).unwrap()));
    // Shapes that do not broadcast are the core's shape error, not a panic.
    let e = mb::pairwise_distance(
        t2(&X, [4, 3], DType::F32),
        t2(&X[..6], [2, 3], DType::F32),
        mb::PairwiseDistance::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "pairwise_distance: input2 has shape [2, 3] but a shape that broadcasts with input1's [4, 3]"
    );
}

#[test]
fn an_upstream_other_than_ones_reruns_the_fused_kernel_with_it() {
    let x = t2(&X, [4, 3], DType::F64).require_grad();
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 1, 1], [4]), &dev());
    let l = mb::multiclass_hinge(x.clone(), t, mb::MulticlassHinge::new(), Reduction::None).unwrap();
    let w = [0.5, -2.0, 3.0, 0.25];
    let g = x.grad(&(l * t1(&w, DType::F64)).sum().backward()).unwrap();
    let (mut out, mut gx) = ([0.0; 4], [0.0; 12]);
    mb::MulticlassHinge::new()
        .forward_backward(Rows::new(&X, 4, 3).unwrap(), &[0, 2, 1, 1], Reduction::None, &w, &mut out, &mut gx)
        .unwrap();
    assert_eq!(vals(&g), gx.to_vec());
}

#[test]
fn half_precision_computes_in_f32_and_returns_the_input_dtype() {
    let x16 = t1(&X, DType::F16).require_grad();
    let y = t1(&[1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0], DType::F16);
    let l = mb::soft_margin(x16.clone(), y.clone(), mb::SoftMargin::new(), Reduction::Mean).unwrap();
    assert_eq!(l.dtype(), DType::F16);
    let g = x16.grad(&l.backward()).unwrap();
    assert_eq!(g.dtype(), DType::F16);
    // The f32 computation on the f16 values, rounded to f16.
    let x32 = x16.clone().cast(DType::F32).detach().require_grad();
    let l32 =
        mb::soft_margin(x32.clone(), y.cast(DType::F32), mb::SoftMargin::new(), Reduction::Mean).unwrap();
    let g32 = x32.grad(&l32.backward()).unwrap();
    assert_eq!(vals(&l), vals(&l32.cast(DType::F16)));
    assert_eq!(vals(&g), vals(&g32.cast(DType::F16)));
}

#[test]
fn plain_flex_without_autodiff_runs_the_forward() {
    let d = Device::flex();
    let x = Tensor::<1>::from_data(TensorData::new(vec![0.8f32, -0.5, 2.0], [3]), &d);
    let y = Tensor::<1>::from_data(TensorData::new(vec![-1.0f32, 1.0, -1.0], [3]), &d);
    let l = mb::hinge(x, y, mb::Hinge::new(), Reduction::Mean).unwrap();
    assert!((vals(&l)[0] - 2.1).abs() < 1e-6);
}

#[test]
fn bad_inputs_are_the_cores_errors_on_both_paths_never_a_panic() {
    let f32s = |v: &[f64]| t1(v, DType::F32);
    type Run = fn(Tensor<1>, Tensor<1>, mb::HingeEmbedding, Reduction) -> mb::Result<Tensor<1>>;
    for (path, run) in
        [("fused", mb::hinge_embedding as Run), ("composed", mb::composed::hinge_embedding as Run)]
    {
        let he = mb::HingeEmbedding::new();
        let e = run(f32s(&[0.8, -0.5, 2.0]), f32s(&[-1.0, 1.0, -1.0]), he, Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hinge_embedding expects distances >= 0, got -0.5 at input[1]; for classifier scores use hinge",
            "{path}"
        );
        let e = run(f32s(&[0.8, 0.5]), f32s(&[1.0, 1.0, -1.0]), he, Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "hinge_embedding: target has shape [3] but input has shape [2]", "{path}");
        let e = run(f32s(&[]), f32s(&[]), he, Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("hinge_embedding got an empty input"), "{path}: {e}");
        let e = run(f32s(&[0.8, f64::NAN]), f32s(&[1.0, 1.0]), he, Reduction::Mean).unwrap_err();
        assert!(e.to_string().starts_with("hinge_embedding got NaN at input[1]"), "{path}: {e}");
        // torch-compat: the empty mean is NaN, as torch.
        let l = run(f32s(&[]), f32s(&[]), he.mode(Mode::TorchCompat), Reduction::Mean).unwrap();
        assert!(vals(&l)[0].is_nan(), "{path}");
    }
    // Class indices are checked in both modes, on both paths.
    let x = t2(&X, [4, 3], DType::F32);
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 1, 1], [4]), &dev());
    let want = "multi_margin: class index 3 at target[1] is out of range for 3 classes (expected 0..=2)";
    let m = mb::MultiMargin::new().mode(Mode::TorchCompat);
    assert_eq!(
        mb::multi_margin(x.clone(), t.clone(), None, m, Reduction::Mean).unwrap_err().to_string(),
        want
    );
    assert_eq!(
        mb::composed::multi_margin(x.clone(), t, None, m, Reduction::Mean).unwrap_err().to_string(),
        want
    );
    // A target with the wrong number of rows, a weight of the wrong length.
    let t3 = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1], [3]), &dev());
    assert!(mb::multi_margin(x.clone(), t3.clone(), None, m, Reduction::Mean).is_err());
    assert!(mb::composed::multi_margin(x.clone(), t3, None, m, Reduction::Mean).is_err());
    let t4 = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1, 2], [4]), &dev());
    let w = f32s(&[1.0, 2.0]);
    let e = mb::multi_margin(x.clone(), t4.clone(), Some(w.clone()), m, Reduction::Mean).unwrap_err();
    assert_eq!(e.to_string(), "multi_margin: weight has shape [2] but one weight per class ([3])");
    assert_eq!(mb::composed::multi_margin(x, t4, Some(w), m, Reduction::Mean).unwrap_err(), e);
    // Triplet inputs of different shapes.
    let (a, n) = (t2(&X, [4, 3], DType::F32), t2(&X, [3, 4], DType::F32));
    let e = mb::triplet_margin(a.clone(), a.clone(), n.clone(), mb::TripletMargin::new(), Reduction::Mean)
        .unwrap_err();
    assert_eq!(e.to_string(), "triplet_margin: negative has shape [3, 4] but anchor has shape [4, 3]");
    assert!(mb::composed::triplet_margin(a.clone(), a, n, mb::TripletMargin::new(), Reduction::Mean).is_err());
}

#[test]
fn a_training_step_with_burn_optim_lowers_the_loss() {
    // A linear classifier on 3 separable clusters, trained with the Crammer–Singer hinge.
    let d = dev();
    let pts: Vec<f64> = (0..30)
        .flat_map(|i| {
            let c = (i % 3) as f64;
            let j = (i / 3) as f64 * 0.07;
            [c * 2.0 - 2.0 + j, 1.0 - c + 0.5 * j]
        })
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(pts, [30, 2]), &d);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..30).map(|i| (i % 3) as i64).collect::<Vec<_>>(), [30]),
        &d,
    );
    let mut model: Linear = LinearConfig::new(2, 3).init(&d);
    let mut optim = SgdConfig::new().init();
    let loss = |m: &Linear| {
        mb::multiclass_hinge(m.forward(x.clone()), y.clone(), mb::MulticlassHinge::new(), Reduction::Mean)
            .unwrap()
    };
    let first = vals(&loss(&model))[0];
    for _ in 0..20 {
        let l = loss(&model);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim.step(0.1, model, grads);
    }
    let last = vals(&loss(&model))[0];
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

#[test]
fn composed_multilabel_margin_sizes_its_intermediate_by_the_longest_list() {
    // Lists of different lengths (0 to 3 classes, one listed twice, anything after a −1):
    // the composed path equals the fused one in value and gradient.
    let x = t2(&X, [3, 4], DType::F64);
    let target = Tensor::<2, Int>::from_data(
        TensorData::new(vec![3i64, 0, 0, -1, -1, 2, 3, 1, 1, 2, -1, 0], [3, 4]),
        &dev(),
    );
    let m = mb::MultilabelMargin::new().mode(Mode::TorchCompat);
    for r in [Reduction::None, Reduction::Mean] {
        let (xf, xc) = (x.clone().require_grad(), x.clone().require_grad());
        let lf = mb::multilabel_margin(xf.clone(), target.clone(), m, r).unwrap();
        let lc = mb::composed::multilabel_margin(xc.clone(), target.clone(), m, r).unwrap();
        for (a, b) in vals(&lf).iter().zip(vals(&lc)) {
            assert!((a - b).abs() < 1e-12, "{r:?}: {a} vs {b}");
        }
        let (gf, gc) = (lf.sum().backward(), lc.sum().backward());
        for (a, b) in vals(&xf.grad(&gf).unwrap()).iter().zip(vals(&xc.grad(&gc).unwrap())) {
            assert!((a - b).abs() < 1e-12, "{r:?}: grad {a} vs {b}");
        }
    }
    // One class per row at 512 × 2000: an (N, C, C) intermediate would be 8 GB of f32;
    // sized by the longest list it is (512, 1, 2000).
    let (n, c) = (512, 2000);
    let xs: Vec<f64> = (0..n * c).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
    let mut t = vec![-1i64; n * c];
    for i in 0..n {
        t[i * c] = (i % c) as i64;
    }
    let x = t2(&xs, [n, c], DType::F32).require_grad();
    let t = Tensor::<2, Int>::from_data(TensorData::new(t, [n, c]), &dev());
    let lf = mb::multilabel_margin(x.clone(), t.clone(), m, Reduction::Mean).unwrap();
    let lc = mb::composed::multilabel_margin(x, t, m, Reduction::Mean).unwrap();
    let (a, b) = (vals(&lf)[0], vals(&lc)[0]);
    assert!((a - b).abs() <= 3e-5 * a.abs(), "{a} vs {b}");
}

/// The fused and the composed path gave the same values (NaN where NaN) or the same error.
fn same_on_both_paths<const D: usize>(
    what: &str,
    fused: mb::Result<Tensor<D>>,
    composed: mb::Result<Tensor<D>>,
) {
    match (fused, composed) {
        (Ok(f), Ok(c)) => {
            let (vf, vc) = (vals(&f), vals(&c));
            assert_eq!(vf.len(), vc.len(), "{what}");
            for (a, b) in vf.iter().zip(&vc) {
                assert!(a == b || (a.is_nan() && b.is_nan()), "{what}: {vf:?} vs {vc:?}");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
        (f, c) => panic!("{what}: fused {:?} but composed {:?}", f.map(|t| vals(&t)), c.map(|t| vals(&t))),
    }
}

#[test]
fn class_losses_on_batches_without_elements_agree_on_both_paths() {
    // (0, C) and (N, 0) in torch-compat mode (strict refuses them): the same values and an
    // empty gradient on both paths, never a panic (burn's `expand` refuses a zero dimension).
    let compat = Mode::TorchCompat;
    for shape in [[0usize, 4], [3, 0]] {
        let [n, _] = shape;
        for r in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let x =
                || Tensor::<2>::from_data(TensorData::new(Vec::<f64>::new(), shape), &dev()).require_grad();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64; n], [n]), &dev());
            let lists = Tensor::<2, Int>::from_data(TensorData::new(Vec::<i64>::new(), shape), &dev());
            let soft = Tensor::<2>::from_data(TensorData::new(Vec::<f64>::new(), shape), &dev());
            type Pair = (mb::Result<Tensor<1>>, mb::Result<Tensor<1>>);
            let cases: Vec<(&str, Pair)> = vec![
                ("multilabel_margin", {
                    let m = mb::MultilabelMargin::new().mode(compat);
                    (
                        mb::multilabel_margin(x(), lists.clone(), m, r),
                        mb::composed::multilabel_margin(x(), lists.clone(), m, r),
                    )
                }),
                ("multilabel_soft_margin", {
                    let m = mb::MultilabelSoftMargin::new().mode(compat);
                    (
                        mb::multilabel_soft_margin(x(), soft.clone(), None, m, r),
                        mb::composed::multilabel_soft_margin(x(), soft.clone(), None, m, r),
                    )
                }),
                ("multi_margin", {
                    let m = mb::MultiMargin::new().mode(compat);
                    (
                        mb::multi_margin(x(), idx.clone(), None, m, r),
                        mb::composed::multi_margin(x(), idx.clone(), None, m, r),
                    )
                }),
                ("multiclass_hinge", {
                    let m = mb::MulticlassHinge::new().mode(compat);
                    (
                        mb::multiclass_hinge(x(), idx.clone(), m, r),
                        mb::composed::multiclass_hinge(x(), idx.clone(), m, r),
                    )
                }),
            ];
            for (name, (fused, composed)) in cases {
                same_on_both_paths(&format!("{name} {shape:?} {r:?}"), fused, composed);
            }
        }
    }
}

#[test]
fn row_losses_on_batches_without_elements_agree_on_both_paths() {
    // (0, K) and (N, 0) rows in torch-compat mode, triplets with swap: the same value or
    // the same error on both paths, never a panic.
    let compat = Mode::TorchCompat;
    for shape in [[0usize, 4], [3, 0]] {
        let [n, _] = shape;
        for r in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let x =
                || Tensor::<2>::from_data(TensorData::new(Vec::<f64>::new(), shape), &dev()).require_grad();
            let y = || Tensor::<1>::from_data(TensorData::new(vec![1.0f64; n], [n]), &dev());
            type Pair = (mb::Result<Tensor<1>>, mb::Result<Tensor<1>>);
            let tm = mb::TripletMargin::new().swap(true).mode(compat);
            let ce = mb::CosineEmbedding::new().mode(compat);
            let co = mb::Contrastive::new().mode(compat);
            let cases: Vec<(&str, Pair)> = vec![
                (
                    "triplet_margin",
                    (
                        mb::triplet_margin(x(), x(), x(), tm, r),
                        mb::composed::triplet_margin(x(), x(), x(), tm, r),
                    ),
                ),
                (
                    "cosine_embedding",
                    (
                        mb::cosine_embedding(x(), x(), y(), ce, r),
                        mb::composed::cosine_embedding(x(), x(), y(), ce, r),
                    ),
                ),
                (
                    "contrastive",
                    (mb::contrastive(x(), x(), y(), co, r), mb::composed::contrastive(x(), x(), y(), co, r)),
                ),
            ];
            for (name, (fused, composed)) in cases {
                same_on_both_paths(&format!("{name} {shape:?} {r:?}"), fused, composed);
            }
        }
        let cs = mb::CosineSimilarity::new().mode(compat);
        let pd = mb::PairwiseDistance::new().mode(compat);
        let x = || Tensor::<2>::from_data(TensorData::new(Vec::<f64>::new(), shape), &dev());
        for (name, fused, composed) in [
            (
                "cosine_similarity",
                mb::cosine_similarity(x(), x(), cs),
                mb::composed::cosine_similarity(x(), x(), cs),
            ),
            (
                "pairwise_distance",
                mb::pairwise_distance(x(), x(), pd),
                mb::composed::pairwise_distance(x(), x(), pd),
            ),
        ] {
            same_on_both_paths(&format!("{name} {shape:?}"), fused, composed);
        }
    }
}

#[test]
fn class_indices_of_any_int_dtype_or_layout_give_the_same_loss_and_gradient() {
    // i64 storage is read in place, i32 (Flex's default) widened in one pass, the rest
    // converted by burn; a transposed (strided) index tensor is read in its logical order.
    let x = t2(&X, [3, 4], DType::F64);
    let lists = [3i64, 0, -1, 0, 2, 1, 1, -1, 0, 1, 2, 3];
    let m = mb::MultilabelMargin::new();
    let run = |t: Tensor<2, Int>| {
        let x = x.clone().require_grad();
        let l = mb::multilabel_margin(x.clone(), t, m, Reduction::None).unwrap();
        let g = l.clone().sum().backward();
        (vals(&l), vals(&x.grad(&g).unwrap()))
    };
    let want =
        run(Tensor::<2, Int>::from_data(TensorData::new(lists.to_vec(), [3, 4]), (&dev(), DType::I64)));
    for dt in [DType::I32, DType::I16, DType::I8] {
        let t = Tensor::<2, Int>::from_data(TensorData::new(lists.to_vec(), [3, 4]), (&dev(), dt));
        assert_eq!(t.dtype(), dt);
        assert_eq!(run(t), want, "{dt:?}");
    }
    let transposed: Vec<i64> = (0..4).flat_map(|j| (0..3).map(move |i| lists[i * 4 + j])).collect();
    for dt in [DType::I64, DType::I32] {
        let t = Tensor::<2, Int>::from_data(TensorData::new(transposed.clone(), [4, 3]), (&dev(), dt))
            .transpose();
        assert_eq!(run(t), want, "transposed {dt:?}");
    }
    // The same through multi_margin's (N,) indices, sliced out of a longer tensor.
    let long =
        Tensor::<1, Int>::from_data(TensorData::new(vec![9i64, 2, 0, 3, 9], [5]), (&dev(), DType::I64));
    let mm = mb::MultiMargin::new();
    let a = mb::multi_margin(x.clone(), long.slice(1..4), None, mm, Reduction::None).unwrap();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0, 3], [3]), (&dev(), DType::I32));
    let b = mb::multi_margin(x, idx, None, mm, Reduction::None).unwrap();
    assert_eq!(vals(&a), vals(&b));
}
