//! Every torch 2.15 fixture case of every loss through the burn functions on
//! `Device::flex().autodiff()`: the forward value and the gradients from `backward()` (of
//! the output's sum for `reduction = none`, as the fixtures) match torch within the
//! parity tolerance, and are equal to the core's fused `forward_backward` with upstream 1
//! (run through the core's op description). Cases marked `compat_only` are rejected in
//! strict mode with the core's message. `(C,)` rows run as `(1, C)` (burn has no rank-0
//! tensors).

mod common;

use common::{check, for_each_case, labels, Case, Out};
use marginloss::Float;
use marginloss_burn as mb;
use mb::{Mode, Reduction};

fn run_file(loss: &str, f32_case: fn(&Case), f64_case: fn(&Case)) -> usize {
    let n = for_each_case(loss, f32_case, f64_case);
    assert!(n >= 10, "{loss}: {n} cases");
    n
}

/// An element-wise loss on rank-1 or rank-2 inputs.
macro_rules! pointwise {
    ($T:ty, $c:expr, $f:path, $make:expr) => {{
        let c: &Case = $c;
        let r = c.reduction();
        let rank2 = c.input("input").shape.len() == 2;
        check::<$T, _>(c, 0.0, $make, |i, l| {
            if rank2 {
                $f(i.f2("input"), i.f2("target"), l, r).map(Out::from)
            } else {
                $f(i.f1("input"), i.f1("target"), l, r).map(Out::from)
            }
        });
    }};
}

fn hinge<T: Float>(c: &Case)
where
    mb::Hinge: marginloss::op::Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, mb::hinge, |mode: Mode| mb::Hinge::new().margin(m).labels(labels(c)).mode(mode));
}

fn squared_hinge<T: Float>(c: &Case)
where
    mb::SquaredHinge: marginloss::op::Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, mb::squared_hinge, |mode: Mode| mb::SquaredHinge::new().margin(m).labels(labels(c)).mode(mode));
}

fn hinge_embedding<T: Float>(c: &Case)
where
    mb::HingeEmbedding: marginloss::op::Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, mb::hinge_embedding, |mode: Mode| mb::HingeEmbedding::new().margin(m).mode(mode));
}

fn soft_margin<T: Float>(c: &Case)
where
    mb::SoftMargin: marginloss::op::Op<T>,
{
    pointwise!(T, c, mb::soft_margin, |mode: Mode| mb::SoftMargin::new().mode(mode));
}

#[test]
fn hinge_matches_torch_and_core() {
    run_file("hinge", hinge::<f32>, hinge::<f64>);
}

#[test]
fn squared_hinge_matches_torch_and_core() {
    run_file("squared_hinge", squared_hinge::<f32>, squared_hinge::<f64>);
}

#[test]
fn hinge_embedding_matches_torch_and_core() {
    run_file("hinge_embedding", hinge_embedding::<f32>, hinge_embedding::<f64>);
}

#[test]
fn soft_margin_matches_torch_and_core() {
    run_file("soft_margin", soft_margin::<f32>, soft_margin::<f64>);
}

fn margin_ranking<T: Float>(c: &Case)
where
    mb::MarginRanking: marginloss::op::Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 0.0));
    check::<T, _>(
        c,
        0.0,
        |mode| mb::MarginRanking::new().margin(m).mode(mode),
        |i, l| mb::margin_ranking(i.f1("input1"), i.f1("input2"), i.f1("target"), l, r).map(Out::from),
    );
}

#[test]
fn margin_ranking_matches_torch_and_core() {
    run_file("margin_ranking", margin_ranking::<f32>, margin_ranking::<f64>);
}

fn cosine_similarity<T: Float>(c: &Case)
where
    mb::CosineSimilarity: marginloss::op::Op<T>,
{
    let eps = c.f64_opt("eps", 1e-8);
    // As the core's parity test: where the exact gradient is 0, torch's f32 result is
    // noise of the gradient's natural scale (≥ 0.1 for every fixture row).
    check::<T, _>(
        c,
        0.1,
        |mode| mb::CosineSimilarity::new().eps(eps).mode(mode),
        |i, f| mb::cosine_similarity(i.f2("input1"), i.f2("input2"), f).map(Out::from),
    );
}

fn pairwise_distance<T: Float>(c: &Case)
where
    mb::PairwiseDistance: marginloss::op::Op<T>,
{
    let (p, eps) = (c.f64_opt("p", 2.0), c.f64_opt("eps", 1e-6));
    check::<T, _>(
        c,
        0.1,
        |mode| mb::PairwiseDistance::new().p(p).eps(eps).mode(mode),
        |i, f| mb::pairwise_distance(i.f2("input1"), i.f2("input2"), f).map(Out::from),
    );
}

#[test]
fn cosine_similarity_matches_torch_and_core() {
    run_file("cosine_similarity", cosine_similarity::<f32>, cosine_similarity::<f64>);
}

#[test]
fn pairwise_distance_matches_torch_and_core() {
    run_file("pairwise_distance", pairwise_distance::<f32>, pairwise_distance::<f64>);
}

fn multi_margin<T: Float>(c: &Case)
where
    mb::MultiMargin: marginloss::op::Op<T>,
{
    let (r, m, p) = (c.reduction(), c.f64_opt("margin", 1.0), c.f64_opt("p", 1.0) as u32);
    check::<T, _>(
        c,
        0.0,
        |mode| mb::MultiMargin::new().p(p).margin(m).mode(mode),
        |i, l| mb::multi_margin(i.f2("input"), i.i1("target"), i.opt1("weight"), l, r).map(Out::from),
    );
}

fn multiclass_hinge<T: Float>(c: &Case)
where
    mb::MulticlassHinge: marginloss::op::Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 1.0));
    check::<T, _>(
        c,
        0.0,
        |mode| mb::MulticlassHinge::new().margin(m).mode(mode),
        |i, l| mb::multiclass_hinge(i.f2("input"), i.i1("target"), l, r).map(Out::from),
    );
}

fn multilabel_margin<T: Float>(c: &Case)
where
    mb::MultilabelMargin: marginloss::op::Op<T>,
{
    let r = c.reduction();
    check::<T, _>(
        c,
        0.0,
        |mode| mb::MultilabelMargin::new().mode(mode),
        |i, l| mb::multilabel_margin(i.f2("input"), i.i2("target"), l, r).map(Out::from),
    );
}

fn multilabel_soft_margin<T: Float>(c: &Case)
where
    mb::MultilabelSoftMargin: marginloss::op::Op<T>,
{
    let r = c.reduction();
    check::<T, _>(
        c,
        0.0,
        |mode| mb::MultilabelSoftMargin::new().mode(mode),
        |i, l| mb::multilabel_soft_margin(i.f2("input"), i.f2("target"), i.opt1("weight"), l, r).map(Out::from),
    );
}

#[test]
fn multi_margin_matches_torch_and_core() {
    run_file("multi_margin", multi_margin::<f32>, multi_margin::<f64>);
}

#[test]
fn multiclass_hinge_matches_torch_and_core() {
    run_file("multiclass_hinge", multiclass_hinge::<f32>, multiclass_hinge::<f64>);
}

#[test]
fn multilabel_margin_matches_torch_and_core() {
    run_file("multilabel_margin", multilabel_margin::<f32>, multilabel_margin::<f64>);
}

#[test]
fn multilabel_soft_margin_matches_torch_and_core() {
    run_file("multilabel_soft_margin", multilabel_soft_margin::<f32>, multilabel_soft_margin::<f64>);
}

/// At the kink torch's f32 gradient is noise of scale 0.5/N (as the core's parity test).
fn kink_floor(c: &Case) -> f64 {
    if c.name.starts_with("kink") {
        0.5 / c.input("target").data.len() as f64
    } else {
        0.0
    }
}

fn cosine_embedding<T: Float>(c: &Case)
where
    mb::CosineEmbedding: marginloss::op::Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 0.0));
    check::<T, _>(
        c,
        kink_floor(c),
        |mode| mb::CosineEmbedding::new().margin(m).labels(labels(c)).mode(mode),
        |i, l| mb::cosine_embedding(i.f2("input1"), i.f2("input2"), i.f1("target"), l, r).map(Out::from),
    );
}

fn contrastive<T: Float>(c: &Case)
where
    mb::Contrastive: marginloss::op::Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 1.0));
    check::<T, _>(
        c,
        kink_floor(c),
        |mode| mb::Contrastive::new().margin(m).labels(labels(c)).mode(mode),
        |i, l| mb::contrastive(i.f2("input1"), i.f2("input2"), i.f1("target"), l, r).map(Out::from),
    );
}

#[test]
fn cosine_embedding_matches_torch_and_core() {
    run_file("cosine_embedding", cosine_embedding::<f32>, cosine_embedding::<f64>);
}

#[test]
fn contrastive_matches_torch_and_core() {
    run_file("contrastive", contrastive::<f32>, contrastive::<f64>);
}

fn triplet_margin<T: Float>(c: &Case)
where
    mb::TripletMargin: marginloss::op::Op<T>,
{
    let r = c.reduction();
    let (m, p, eps, swap) = (c.f64_opt("margin", 1.0), c.f64_opt("p", 2.0), c.f64_opt("eps", 1e-6), c.bool_opt("swap"));
    check::<T, _>(
        c,
        0.0,
        |mode| mb::TripletMargin::new().margin(m).p(p).eps(eps).swap(swap).mode(mode),
        |i, l| mb::triplet_margin(i.f2("anchor"), i.f2("positive"), i.f2("negative"), l, r).map(Out::from),
    );
}

fn triplet_margin_with_distance<T: Float>(c: &Case)
where
    mb::TripletMarginWithDistance: marginloss::op::Op<T>,
    mb::TripletMarginWithDistance<mb::CosineDistance>: marginloss::op::Op<T>,
{
    let r = c.reduction();
    let (m, swap) = (c.f64_opt("margin", 1.0), c.bool_opt("swap"));
    fn run<D: mb::BurnDistance>(
        i: &common::Inputs<'_>,
        l: mb::TripletMarginWithDistance<D>,
        r: Reduction,
    ) -> marginloss::Result<Out> {
        mb::triplet_margin_with_distance(i.f2("anchor"), i.f2("positive"), i.f2("negative"), l, r).map(Out::from)
    }
    if c.str_opt("distance") == Some("cosine") {
        let make = |mode| mb::TripletMarginWithDistance::cosine().margin(m).swap(swap).mode(mode);
        check::<T, _>(c, 0.0, make, |i, l| run(i, l, r));
    } else {
        let make = |mode| mb::TripletMarginWithDistance::euclidean().margin(m).swap(swap).mode(mode);
        check::<T, _>(c, 0.0, make, |i, l| run(i, l, r));
    }
}

#[test]
fn triplet_margin_matches_torch_and_core() {
    run_file("triplet_margin", triplet_margin::<f32>, triplet_margin::<f64>);
}

#[test]
fn triplet_margin_with_distance_matches_torch_and_core() {
    run_file("triplet_margin_with_distance", triplet_margin_with_distance::<f32>, triplet_margin_with_distance::<f64>);
}
