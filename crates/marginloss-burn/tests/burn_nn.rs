//! One test per way burn-nn 0.22.1's own margin losses depart from PyTorch, each showing
//! burn-nn's result, marginloss-burn's and torch 2.15's (from the committed fixtures):
//! burn-nn differs, marginloss-burn matches torch. The README's "burn-nn loss →
//! marginloss-burn" table lists the same cases.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use burn::nn::loss::{
    CosineEmbeddingLossConfig, HingeEmbeddingLossConfig, MarginRankingLossConfig, MultiMarginLossConfig,
    Reduction as NnReduction, TripletMarginLossConfig,
};
use burn::tensor::{DType, Int, Tensor};
use common::{device, int_tensor, load, tensor, values, Case};
use marginloss_burn as mb;
use mb::{Mode, Reduction};

fn case(loss: &str, name: &str) -> Case {
    load(loss).into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{loss}:{name}"))
}

fn f2(c: &Case, name: &str) -> Tensor<2> {
    let t = c.input(name);
    tensor::<2>(&t.data, &t.shape, DType::F32, &device())
}

fn f1(c: &Case, name: &str) -> Tensor<1> {
    let t = c.input(name);
    tensor::<1>(&t.data, &t.shape, DType::F32, &device())
}

fn i1(c: &Case, name: &str) -> Tensor<1, Int> {
    let t = c.input(name);
    int_tensor::<1>(&t.data, &t.shape, &device())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 3e-5 * b.abs().max(1e-6)
}

#[test]
fn hinge_embedding_burn_nn_reads_every_target_but_1_as_minus_1() {
    // torch: where(t != 1, max(0, m − x), 0) + where(t != −1, x, 0), so t ∉ {±1} adds both.
    let c = case("hinge_embedding", "spec_golden_f32_mean");
    let torch = c.output.data[0];
    let nn = HingeEmbeddingLossConfig::new().with_margin(1.0).init().forward(
        f1(&c, "input"),
        f1(&c, "target"),
        NnReduction::Mean,
    );
    let nn = values(&nn)[0];
    let ours = mb::hinge_embedding(
        f1(&c, "input"),
        f1(&c, "target"),
        mb::HingeEmbedding::new().mode(Mode::TorchCompat),
        Reduction::Mean,
    )
    .unwrap();
    let ours = values(&ours)[0];
    println!("burn-nn {nn}  marginloss-burn {ours}  torch {torch}");
    assert!(close(ours, torch), "marginloss-burn {ours} vs torch {torch}");
    assert!(!close(nn, torch), "burn-nn {nn} unexpectedly equals torch {torch}");
    // And in strict mode (the default) marginloss refuses those targets.
    let e =
        mb::hinge_embedding(f1(&c, "input"), f1(&c, "target"), mb::HingeEmbedding::new(), Reduction::Mean)
            .unwrap_err();
    assert!(e.to_string().contains("target"), "{e}");
}

#[test]
fn multi_margin_burn_nn_has_no_class_weight() {
    let c = case("multi_margin", "weight_p1_f32_mean");
    let torch = c.output.data[0];
    let nn = MultiMarginLossConfig::new().with_margin(1.0).with_p(1).init().forward(
        f2(&c, "input"),
        i1(&c, "target"),
        NnReduction::Mean,
    );
    let nn = values(&nn)[0];
    let ours = mb::multi_margin(
        f2(&c, "input"),
        i1(&c, "target"),
        Some(f1(&c, "weight")),
        mb::MultiMargin::new(),
        Reduction::Mean,
    )
    .unwrap();
    let ours = values(&ours)[0];
    println!("burn-nn {nn}  marginloss-burn {ours}  torch {torch}");
    assert!(close(ours, torch), "marginloss-burn {ours} vs torch {torch}");
    assert!(!close(nn, torch), "burn-nn {nn} (unweighted) unexpectedly equals torch {torch}");
}

#[test]
fn multi_margin_and_margin_ranking_burn_nn_panic_on_a_negative_margin() {
    // torch accepts any margin: MultiMarginLoss(margin=-0.5), MarginRankingLoss(margin=-0.5).
    // No fixture has a negative margin, so the torch value is its formula here:
    // max(0, −y·(x1 − x2) + m) averaged.
    assert!(catch_unwind(|| MarginRankingLossConfig::new().with_margin(-0.5).init()).is_err());
    assert!(catch_unwind(|| MultiMarginLossConfig::new().with_margin(-0.5).init()).is_err());
    let d = device();
    let x1 = Tensor::<1>::from_floats([1.0, -0.5, 2.0], &d);
    let x2 = Tensor::<1>::from_floats([2.0, -0.5, 1.0], &d);
    let y = Tensor::<1>::from_floats([1.0, -1.0, 1.0], &d);
    let ours = mb::margin_ranking(x1, x2, y, mb::MarginRanking::new().margin(-0.5), Reduction::Mean).unwrap();
    // −y·(x1 − x2) − 0.5 = (0.5, −0.5, −1.5) → mean of (0.5, 0, 0).
    assert!(close(values(&ours)[0], 0.5 / 3.0), "{:?}", values(&ours));
    let x = Tensor::<2>::from_floats([[0.3, 0.1, -0.2], [1.0, 1.2, 0.4]], &d);
    let t = Tensor::<1, Int>::from_ints([0, 2], &d);
    let ours = mb::multi_margin(x, t, None, mb::MultiMargin::new().margin(-0.5), Reduction::Mean).unwrap();
    // Row 0: max(0, −0.5 − 0.3 + 0.1) + max(0, −0.5 − 0.3 − 0.2) = 0; row 1: (−0.5 − 0.4 + 1.0) + (−0.5 − 0.4 + 1.2) = 0.4.
    assert!(close(values(&ours)[0], (0.4 / 3.0) / 2.0), "{:?}", values(&ours));
}

#[test]
fn triplet_margin_burn_nn_has_no_eps_and_gives_nan_gradients_at_anchor_equal_positive() {
    let c = case("triplet_margin", "anchor_eq_positive_f32_mean");
    let torch_grad = &c.grad("anchor").unwrap().data;
    let (a, p, n) = (f2(&c, "anchor").require_grad(), f2(&c, "positive").require_grad(), f2(&c, "negative"));
    let nn = TripletMarginLossConfig::new().with_margin(1.0).with_p(2.0).init().forward(
        a.clone(),
        p,
        n,
        NnReduction::Mean,
    );
    let nn_grad = values(&a.grad(&nn.backward()).unwrap());
    println!("burn-nn grad anchor {:?}  torch {:?}", &nn_grad[..5], &torch_grad[..5]);
    assert!(nn_grad.iter().any(|g| g.is_nan()), "burn-nn's gradient is finite: {nn_grad:?}");
    let (a, p, n) = (f2(&c, "anchor").require_grad(), f2(&c, "positive").require_grad(), f2(&c, "negative"));
    let ours = mb::triplet_margin(a.clone(), p, n, mb::TripletMargin::new(), Reduction::Mean).unwrap();
    assert!(close(values(&ours)[0], c.output.data[0]));
    let g = values(&a.grad(&ours.backward()).unwrap());
    for (x, y) in g.iter().zip(torch_grad) {
        assert!((x - y).abs() <= 3e-5, "marginloss-burn {x} vs torch {y}");
    }
}

#[test]
fn triplet_margin_burn_nn_has_no_swap() {
    let c = case("triplet_margin", "random_6x5_swap_f32_mean");
    let torch = c.output.data[0];
    let nn = TripletMarginLossConfig::new().with_margin(1.0).with_p(2.0).init().forward(
        f2(&c, "anchor"),
        f2(&c, "positive"),
        f2(&c, "negative"),
        NnReduction::Mean,
    );
    let nn = values(&nn)[0];
    let l = mb::TripletMargin::new().swap(true);
    let ours = values(
        &mb::triplet_margin(f2(&c, "anchor"), f2(&c, "positive"), f2(&c, "negative"), l, Reduction::Mean)
            .unwrap(),
    )[0];
    println!("burn-nn {nn}  marginloss-burn {ours}  torch {torch}");
    assert!(close(ours, torch), "marginloss-burn {ours} vs torch {torch}");
    assert!(!close(nn, torch), "burn-nn {nn} (no swap) unexpectedly equals torch {torch}");
}

#[test]
fn cosine_similarity_burn_default_eps_is_not_torchs_1e_8() {
    let c = case("cosine_similarity", "spec_tiny_norm_f32");
    let torch = &c.output.data;
    let nn = values(&burn_linalg::cosine_similarity(f2(&c, "input1"), f2(&c, "input2"), 1, None));
    let ours = values(
        &mb::cosine_similarity(f2(&c, "input1"), f2(&c, "input2"), mb::CosineSimilarity::new()).unwrap(),
    );
    println!("burn {nn:?}  marginloss-burn {ours:?}  torch {torch:?}");
    for (o, t) in ours.iter().zip(torch) {
        assert!(close(*o, *t), "marginloss-burn {o} vs torch {t}");
    }
    assert!(
        nn.iter().zip(torch).any(|(b, t)| !close(*b, *t)),
        "burn {nn:?} unexpectedly equals torch {torch:?}"
    );
}

#[test]
fn cosine_embedding_burn_nn_clamps_norms_where_torch_adds_eps_to_squared_norms() {
    let c = case("cosine_embedding", "tiny_norm_rows_f32_mean");
    let torch = c.output.data[0];
    let t = c.input("target");
    let yi = int_tensor::<1>(&t.data, &t.shape, &device());
    let nn =
        values(&CosineEmbeddingLossConfig::new().init().forward(f2(&c, "input1"), f2(&c, "input2"), yi))[0];
    let ours = mb::cosine_embedding(
        f2(&c, "input1"),
        f2(&c, "input2"),
        f1(&c, "target"),
        mb::CosineEmbedding::new(),
        Reduction::Mean,
    )
    .unwrap();
    let ours = values(&ours)[0];
    println!("burn-nn {nn}  marginloss-burn {ours}  torch {torch}");
    assert!(close(ours, torch), "marginloss-burn {ours} vs torch {torch}");
    assert!(!close(nn, torch), "burn-nn {nn} unexpectedly equals torch {torch}");
}

#[test]
fn burn_nn_panics_on_batch_mean_and_bad_shapes_where_marginloss_burn_returns_errors() {
    let d = device();
    let x = Tensor::<1>::from_floats([0.3, 1.2], &d);
    let y = Tensor::<1>::from_floats([1.0, -1.0], &d);
    let loss = HingeEmbeddingLossConfig::new().init();
    let (x2, y2) = (x.clone(), y.clone());
    assert!(catch_unwind(AssertUnwindSafe(|| loss.forward(x2, y2, NnReduction::BatchMean))).is_err());
    let y3 = Tensor::<1>::from_floats([1.0, -1.0, 1.0], &d);
    let x3 = x.clone();
    let loss2 = HingeEmbeddingLossConfig::new().init();
    assert!(catch_unwind(AssertUnwindSafe(|| loss2.forward(x3, y3, NnReduction::Mean))).is_err());
    // marginloss-burn: its Reduction has no BatchMean (None, Mean, Sum), and a bad shape is an Err.
    let y3 = Tensor::<1>::from_floats([1.0, -1.0, 1.0], &d);
    let e = mb::hinge_embedding(x, y3, mb::HingeEmbedding::new(), Reduction::Mean).unwrap_err();
    assert_eq!(e.to_string(), "hinge_embedding: target has shape [3] but input has shape [2]");
}
