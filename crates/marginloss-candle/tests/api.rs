//! The adapter's surface: unsupported dtypes are errors on every path (fused and composed,
//! both modes), integer label tensors are accepted where the labels are integers, errors
//! name the argument, and each `name(…)` is `name_with(…)` with the defaults and the mean.

use candle_core::{DType, Device, Result, Tensor};
use marginloss_candle::{self as mc, composed, Labels, Mode, Reduction};

fn t(v: &[f64], shape: &[usize], dt: DType) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap().to_dtype(dt).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// A loss call on (x, y, z) float data of shape (2, 3), with labels `lab` (2·3 or 2 values,
/// per loss), in `mode`, through the fused path or the composed one.
type Call = Box<dyn Fn(&[Tensor; 3], &Tensor, &Tensor, Mode, bool) -> Result<Tensor>>;

/// Every adapter function, as (name, call): `a` the float arguments, `lab` the element
/// labels (2, 3), `idx` class indices (2,).
fn every_function() -> Vec<(&'static str, Call)> {
    use mc::*;
    let r = Reduction::Mean;
    macro_rules! call {
        ($name:literal, |$a:ident, $lab:ident, $idx:ident, $m:ident| $fused:expr, $comp:expr) => {
            (
                $name,
                Box::new(move |$a: &[Tensor; 3], $lab: &Tensor, $idx: &Tensor, $m: Mode, fused: bool| {
                    let _ = ($lab, $idx);
                    if fused {
                        $fused
                    } else {
                        $comp
                    }
                }) as Call,
            )
        };
    }
    let rows = |lab: &Tensor| lab.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    vec![
        call!("hinge", |a, l, i, m| hinge_with(&a[0], l, Hinge::new().mode(m), r), {
            composed::hinge(&a[0], l, Hinge::new().mode(m), r)
        }),
        call!("squared_hinge", |a, l, i, m| squared_hinge_with(&a[0], l, SquaredHinge::new().mode(m), r), {
            composed::squared_hinge(&a[0], l, SquaredHinge::new().mode(m), r)
        }),
        call!(
            "hinge_embedding",
            |a, l, i, m| hinge_embedding_with(&a[0], l, HingeEmbedding::new().mode(m), r),
            composed::hinge_embedding(&a[0], l, HingeEmbedding::new().mode(m), r)
        ),
        call!("soft_margin", |a, l, i, m| soft_margin_with(&a[0], l, SoftMargin::new().mode(m), r), {
            composed::soft_margin(&a[0], l, SoftMargin::new().mode(m), r)
        }),
        call!(
            "margin_ranking",
            |a, l, i, m| margin_ranking_with(&a[0], &a[1], l, MarginRanking::new().mode(m), r),
            composed::margin_ranking(&a[0], &a[1], l, MarginRanking::new().mode(m), r)
        ),
        call!(
            "cosine_similarity",
            |a, l, i, m| cosine_similarity_with(&a[0], &a[1], CosineSimilarity::new().mode(m)),
            composed::cosine_similarity(&a[0], &a[1], CosineSimilarity::new().mode(m))
        ),
        call!(
            "pairwise_distance",
            |a, l, i, m| pairwise_distance_with(&a[0], &a[1], PairwiseDistance::new().mode(m)),
            composed::pairwise_distance(&a[0], &a[1], PairwiseDistance::new().mode(m))
        ),
        call!(
            "multi_margin",
            |a, l, i, m| multi_margin_with(&a[0], i, None, MultiMargin::new().mode(m), r),
            composed::multi_margin(&a[0], i, None, MultiMargin::new().mode(m), r)
        ),
        call!(
            "multiclass_hinge",
            |a, l, i, m| multiclass_hinge_with(&a[0], i, MulticlassHinge::new().mode(m), r),
            composed::multiclass_hinge(&a[0], i, MulticlassHinge::new().mode(m), r)
        ),
        call!(
            "multilabel_margin",
            |a, l, i, m| {
                let t = Tensor::new(&[[0i64, -1, 0], [2, 1, -1]], &Device::Cpu)?;
                multilabel_margin_with(&a[0], &t, MultilabelMargin::new().mode(m), r)
            },
            {
                let t = Tensor::new(&[[0i64, -1, 0], [2, 1, -1]], &Device::Cpu)?;
                composed::multilabel_margin(&a[0], &t, MultilabelMargin::new().mode(m), r)
            }
        ),
        call!(
            "multilabel_soft_margin",
            |a, l, i, m| {
                multilabel_soft_margin_with(&a[0], &a[2], None, MultilabelSoftMargin::new().mode(m), r)
            },
            composed::multilabel_soft_margin(&a[0], &a[2], None, MultilabelSoftMargin::new().mode(m), r)
        ),
        call!(
            "cosine_embedding",
            |a, l, i, m| cosine_embedding_with(&a[0], &a[1], &rows(l), CosineEmbedding::new().mode(m), r),
            composed::cosine_embedding(&a[0], &a[1], &rows(l), CosineEmbedding::new().mode(m), r)
        ),
        call!(
            "contrastive",
            |a, l, i, m| contrastive_with(&a[0], &a[1], &rows(l), Contrastive::new().mode(m), r),
            composed::contrastive(&a[0], &a[1], &rows(l), Contrastive::new().mode(m), r)
        ),
        call!(
            "triplet_margin",
            |a, l, i, m| triplet_margin_with(&a[0], &a[1], &a[2], TripletMargin::new().mode(m), r),
            composed::triplet_margin(&a[0], &a[1], &a[2], TripletMargin::new().mode(m), r)
        ),
        call!(
            "triplet_margin_with_distance",
            |a, l, i, m| {
                let loss = TripletMarginWithDistance::cosine().mode(m);
                triplet_margin_with_distance_with(&a[0], &a[1], &a[2], loss, r)
            },
            {
                let loss = TripletMarginWithDistance::cosine().mode(m);
                composed::triplet_margin_with_distance(&a[0], &a[1], &a[2], loss, r)
            }
        ),
    ]
}

const X: [f64; 6] = [0.5, 1.0, 2.0, 1.5, 0.25, 3.0];
const Y: [f64; 6] = [1.0, 2.0, 0.5, 0.25, 1.0, 1.5];
const Z: [f64; 6] = [0.0, 1.0, 0.5, 1.0, 0.5, 0.0];
const PM: [f64; 6] = [1.0, -1.0, 1.0, -1.0, -1.0, 1.0];

fn floats(dt: DType) -> [Tensor; 3] {
    [t(&X, &[2, 3], dt), t(&Y, &[2, 3], dt), t(&Z, &[2, 3], dt)]
}

fn indices() -> Tensor {
    Tensor::new(&[2i64, 0], &Device::Cpu).unwrap()
}

#[test]
fn every_function_computes_on_the_valid_arguments_of_this_file() {
    // The premise of the dtype test below: with float data these calls succeed.
    let (lab, idx) = (t(&PM, &[2, 3], DType::F32), indices());
    for (name, f) in every_function() {
        for fused in [true, false] {
            let out = f(&floats(DType::F32), &lab, &idx, Mode::TorchCompat, fused);
            assert!(out.is_ok(), "{name} fused={fused}: {out:?}");
        }
    }
}

#[test]
fn integer_inputs_are_an_error_on_every_path_in_both_modes() {
    let idx = indices();
    for dt in [DType::I64, DType::U32, DType::U8] {
        let a = floats(dt);
        let lab = t(&PM, &[2, 3], DType::F32);
        for (name, f) in every_function() {
            for mode in [Mode::Strict, Mode::TorchCompat] {
                for fused in [true, false] {
                    let e = f(&a, &lab, &idx, mode, fused)
                        .expect_err(&format!("{name} {dt:?} {mode:?} fused={fused}"))
                        .to_string();
                    assert!(e.contains("dtype"), "{name} {dt:?} {mode:?} fused={fused}: {e}");
                }
            }
        }
    }
}

#[test]
fn float_weights_and_targets_of_another_dtype_are_errors_naming_them() {
    let x = t(&X, &[2, 3], DType::F32);
    let w = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let l = mc::MultiMargin::new().mode(Mode::TorchCompat);
    for e in [
        mc::multi_margin_with(&x, &indices(), Some(&w), l, Reduction::Mean).unwrap_err(),
        composed::multi_margin(&x, &indices(), Some(&w), l, Reduction::Mean).unwrap_err(),
    ] {
        assert_eq!(e.to_string(), "multi_margin: weight has dtype U32, expected F32 like the input");
    }
    let ti = t(&Z, &[2, 3], DType::I64);
    let l = mc::MultilabelSoftMargin::new().mode(Mode::TorchCompat);
    for e in [
        mc::multilabel_soft_margin_with(&x, &ti, None, l, Reduction::Mean).unwrap_err(),
        composed::multilabel_soft_margin(&x, &ti, None, l, Reduction::Mean).unwrap_err(),
    ] {
        assert_eq!(
            e.to_string(),
            "multilabel_soft_margin: target has dtype I64, expected F32 like the input"
        );
    }
    let y = t(&PM, &[2, 3], DType::F64);
    let e = mc::hinge(&x, &y).unwrap_err().to_string();
    assert_eq!(e, "hinge: target has dtype F64, expected F32 like the input");
    let e = mc::multi_margin(&x, &t(&[2.0, 0.0], &[2], DType::F32)).unwrap_err().to_string();
    assert_eq!(
        e,
        "multi_margin: target holds class indices and must have an integer dtype (i64, i32, i16, u32, u8), got F32"
    );
    let e = mc::cosine_similarity(&t(&X, &[2, 3], DType::I64), &x).unwrap_err().to_string();
    assert_eq!(
        e,
        "cosine_similarity: input1 has dtype I64; the losses take a float tensor (f16, bf16, f32, f64)"
    );
}

#[test]
fn integer_labels_give_the_float_labels_result() {
    let (lab, idx) = (t(&PM, &[2, 3], DType::F32), indices());
    let lab_i64 = lab.to_dtype(DType::I64).unwrap();
    let binary = ["hinge", "squared_hinge", "hinge_embedding", "soft_margin", "margin_ranking"];
    let pairs = ["cosine_embedding", "contrastive"];
    for (name, f) in every_function() {
        if !binary.contains(&name) && !pairs.contains(&name) {
            continue;
        }
        for fused in [true, false] {
            let a = floats(DType::F32);
            let want = f64s(&f(&a, &lab, &idx, Mode::Strict, fused).unwrap());
            let got = f64s(&f(&a, &lab_i64, &idx, Mode::Strict, fused).unwrap());
            assert_eq!(got, want, "{name} fused={fused}: i64 ±1 labels");
        }
    }
    // 0/1 labels in an unsigned tensor with Labels::ZeroOne.
    let x = floats(DType::F64);
    let pm = t(&PM, &[2, 3], DType::F64);
    for dt in [DType::U8, DType::U32, DType::I64] {
        let t01 = pm.affine(0.5, 0.5).unwrap().to_dtype(dt).unwrap();
        let zo = mc::Hinge::new().labels(Labels::ZeroOne);
        let want = f64s(&mc::hinge(&x[0], &pm).unwrap());
        assert_eq!(f64s(&mc::hinge_with(&x[0], &t01, zo, Reduction::Mean).unwrap()), want, "{dt:?}");
        let want = f64s(&composed::hinge(&x[0], &pm, mc::Hinge::new(), Reduction::Mean).unwrap());
        assert_eq!(f64s(&composed::hinge(&x[0], &t01, zo, Reduction::Mean).unwrap()), want, "{dt:?}");
        let rows01 = t01.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        let rows_pm = pm.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        let ce = mc::CosineEmbedding::new().labels(Labels::ZeroOne);
        let want = f64s(&mc::cosine_embedding(&x[0], &x[1], &rows_pm).unwrap());
        let got = mc::cosine_embedding_with(&x[0], &x[1], &rows01, ce, Reduction::Mean).unwrap();
        assert_eq!(f64s(&got), want, "{dt:?}");
    }
    // A u8 label 0 in ±1 mode is refused with the core's hint, as a float 0 is.
    let t0 = Tensor::new(&[1u8, 0], &Device::Cpu).unwrap();
    let e = mc::hinge(&t(&[0.5, 0.5], &[2], DType::F32), &t0).unwrap_err().to_string();
    assert!(e.contains("Labels::ZeroOne") && e.contains("target[1]"), "{e}");
}

#[test]
fn integer_labels_leave_the_gradient_unchanged() {
    let x = candle_core::Var::from_tensor(&t(&X, &[6], DType::F32)).unwrap();
    let y_f = t(&PM, &[6], DType::F32);
    let y_i = y_f.to_dtype(DType::I64).unwrap();
    let g_f = mc::hinge(&x, &y_f).unwrap().backward().unwrap();
    let g_i = mc::hinge(&x, &y_i).unwrap().backward().unwrap();
    assert_eq!(f64s(g_f.get(&x).unwrap()), f64s(g_i.get(&x).unwrap()));
}

#[test]
fn each_short_form_is_the_with_form_with_the_defaults_and_the_mean() {
    use mc::*;
    let a = floats(DType::F64);
    let lab = t(&PM, &[2, 3], DType::F64);
    let rows = t(&[1.0, -1.0], &[2], DType::F64);
    let idx = indices();
    let m = Reduction::Mean;
    let same = |name: &str, short: Tensor, long: Tensor| assert_eq!(f64s(&short), f64s(&long), "{name}");
    same("hinge", hinge(&a[0], &lab).unwrap(), hinge_with(&a[0], &lab, Hinge::new(), m).unwrap());
    same(
        "squared_hinge",
        squared_hinge(&a[0], &lab).unwrap(),
        squared_hinge_with(&a[0], &lab, SquaredHinge::new(), m).unwrap(),
    );
    same(
        "hinge_embedding",
        hinge_embedding(&a[0], &lab).unwrap(),
        hinge_embedding_with(&a[0], &lab, HingeEmbedding::new(), m).unwrap(),
    );
    same(
        "soft_margin",
        soft_margin(&a[0], &lab).unwrap(),
        soft_margin_with(&a[0], &lab, SoftMargin::new(), m).unwrap(),
    );
    same(
        "margin_ranking",
        margin_ranking(&a[0], &a[1], &lab).unwrap(),
        margin_ranking_with(&a[0], &a[1], &lab, MarginRanking::new(), m).unwrap(),
    );
    same(
        "cosine_similarity",
        cosine_similarity(&a[0], &a[1]).unwrap(),
        cosine_similarity_with(&a[0], &a[1], CosineSimilarity::new()).unwrap(),
    );
    same(
        "pairwise_distance",
        pairwise_distance(&a[0], &a[1]).unwrap(),
        pairwise_distance_with(&a[0], &a[1], PairwiseDistance::new()).unwrap(),
    );
    same(
        "multi_margin",
        multi_margin(&a[0], &idx).unwrap(),
        multi_margin_with(&a[0], &idx, None, MultiMargin::new(), m).unwrap(),
    );
    same(
        "multiclass_hinge",
        multiclass_hinge(&a[0], &idx).unwrap(),
        multiclass_hinge_with(&a[0], &idx, MulticlassHinge::new(), m).unwrap(),
    );
    let ml = Tensor::new(&[[0i64, -1, 0], [2, 1, -1]], &Device::Cpu).unwrap();
    same(
        "multilabel_margin",
        multilabel_margin(&a[0], &ml).unwrap(),
        multilabel_margin_with(&a[0], &ml, MultilabelMargin::new(), m).unwrap(),
    );
    same(
        "multilabel_soft_margin",
        multilabel_soft_margin(&a[0], &a[2]).unwrap(),
        multilabel_soft_margin_with(&a[0], &a[2], None, MultilabelSoftMargin::new(), m).unwrap(),
    );
    same(
        "cosine_embedding",
        cosine_embedding(&a[0], &a[1], &rows).unwrap(),
        cosine_embedding_with(&a[0], &a[1], &rows, CosineEmbedding::new(), m).unwrap(),
    );
    same(
        "contrastive",
        contrastive(&a[0], &a[1], &rows).unwrap(),
        contrastive_with(&a[0], &a[1], &rows, Contrastive::new(), m).unwrap(),
    );
    same(
        "triplet_margin",
        triplet_margin(&a[0], &a[1], &a[2]).unwrap(),
        triplet_margin_with(&a[0], &a[1], &a[2], TripletMargin::new(), m).unwrap(),
    );
    same(
        "triplet_margin_with_distance",
        triplet_margin_with_distance(&a[0], &a[1], &a[2]).unwrap(),
        triplet_margin_with_distance_with(&a[0], &a[1], &a[2], TripletMarginWithDistance::euclidean(), m)
            .unwrap(),
    );
}

#[test]
fn a_half_precision_input_takes_f32_targets_as_before() {
    let y = t(&PM, &[6], DType::F32);
    for dt in [DType::F16, DType::BF16] {
        let x = t(&X, &[6], dt);
        let half = mc::hinge(&x, &y.to_dtype(dt).unwrap()).unwrap();
        let mixed = mc::hinge(&x, &y).unwrap();
        assert_eq!(mixed.dtype(), dt);
        assert_eq!(f64s(&mixed), f64s(&half), "{dt:?}");
        let comp = composed::hinge(&x, &y, mc::Hinge::new(), Reduction::Mean).unwrap();
        assert_eq!(f64s(&comp), f64s(&half), "{dt:?} composed");
    }
}
