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
