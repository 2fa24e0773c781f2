//! Every torch 2.15 fixture case of every loss through the burn functions on
//! `Device::flex().autodiff()`:
//!
//! * `*_matches_torch_and_core`: the fused path's value and the gradients from
//!   `backward()` (of the output's sum for `reduction = none`, as the fixtures) match torch
//!   within the parity tolerance and equal the core's fused `forward_backward` with
//!   upstream 1 (run through the core's op description); `compat_only` cases are rejected
//!   in strict mode with the core's message;
//! * `*_composed_equals_fused`: the composed path (`marginloss_burn::composed`, plain burn
//!   ops differentiated by burn) gives the fused path's values, gradients and strict-mode
//!   errors on the same cases — kinks, ties, empty and non-finite inputs included.
//!
//! `(C,)` rows run as `(1, C)` (burn has no rank-0 tensors).

mod common;

use common::{check, check_composed, for_each_case, labels, Case, Inputs, Out};
use marginloss::op::Op;
use marginloss::Float;
use marginloss_burn as mb;
use mb::{Mode, Reduction};

/// Which comparison a case runs.
#[derive(Clone, Copy)]
enum Path {
    /// Fused vs torch and the core.
    Torch,
    /// Composed vs fused.
    Composed,
}

/// The burn function `f`: `mb::f` (`k = false`) or `mb::composed::f` (`k = true`).
macro_rules! pick {
    ($k:expr, $f:ident) => {
        if $k {
            mb::composed::$f
        } else {
            mb::$f
        }
    };
}

fn go<T: Float, L: Op<T>>(
    c: &Case,
    path: Path,
    floor: f64,
    make: impl Fn(Mode) -> L,
    run: impl Fn(&Inputs<'_>, L, bool) -> marginloss::Result<Out>,
) {
    match path {
        Path::Torch => check::<T, L>(c, floor, make, run),
        Path::Composed => check_composed::<T, L>(c, floor, make, run),
    };
}

fn run_file(loss: &str, path: Path, f32_case: fn(&Case, Path), f64_case: fn(&Case, Path)) {
    let n = for_each_case(loss, |c| f32_case(c, path), |c| f64_case(c, path));
    assert!(n >= 10, "{loss}: {n} cases");
}

/// The two tests of a loss.
macro_rules! tests {
    ($file:literal, $f:ident, $torch:ident, $composed:ident) => {
        #[test]
        fn $torch() {
            run_file($file, Path::Torch, $f::<f32>, $f::<f64>);
        }
        #[test]
        fn $composed() {
            run_file($file, Path::Composed, $f::<f32>, $f::<f64>);
        }
    };
}

/// An element-wise loss on rank-1 or rank-2 inputs.
macro_rules! pointwise {
    ($T:ty, $c:expr, $path:expr, $f:ident, $make:expr) => {{
        let c: &Case = $c;
        let r = c.reduction();
        let rank2 = c.input("input").shape.len() == 2;
        let run = |i: &Inputs<'_>, l, k: bool| {
            if rank2 {
                pick!(k, $f)(i.f2("input"), i.f2("target"), l, r).map(Out::from)
            } else {
                pick!(k, $f)(i.f1("input"), i.f1("target"), l, r).map(Out::from)
            }
        };
        go::<$T, _>(c, $path, 0.0, $make, run);
    }};
}

fn hinge<T: Float>(c: &Case, path: Path)
where
    mb::Hinge: Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, path, hinge, |mode: Mode| mb::Hinge::new().margin(m).labels(labels(c)).mode(mode));
}

fn squared_hinge<T: Float>(c: &Case, path: Path)
where
    mb::SquaredHinge: Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, path, squared_hinge, |mode: Mode| mb::SquaredHinge::new()
        .margin(m)
        .labels(labels(c))
        .mode(mode));
}

fn hinge_embedding<T: Float>(c: &Case, path: Path)
where
    mb::HingeEmbedding: Op<T>,
{
    let m = c.f64_opt("margin", 1.0);
    pointwise!(T, c, path, hinge_embedding, |mode: Mode| mb::HingeEmbedding::new().margin(m).mode(mode));
}

fn soft_margin<T: Float>(c: &Case, path: Path)
where
    mb::SoftMargin: Op<T>,
{
    pointwise!(T, c, path, soft_margin, |mode: Mode| mb::SoftMargin::new().mode(mode));
}

tests!("hinge", hinge, hinge_matches_torch_and_core, hinge_composed_equals_fused);
tests!(
    "squared_hinge",
    squared_hinge,
    squared_hinge_matches_torch_and_core,
    squared_hinge_composed_equals_fused
);
tests!(
    "hinge_embedding",
    hinge_embedding,
    hinge_embedding_matches_torch_and_core,
    hinge_embedding_composed_equals_fused
);
tests!("soft_margin", soft_margin, soft_margin_matches_torch_and_core, soft_margin_composed_equals_fused);

fn margin_ranking<T: Float>(c: &Case, path: Path)
where
    mb::MarginRanking: Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 0.0));
    go::<T, _>(
        c,
        path,
        0.0,
        |mode| mb::MarginRanking::new().margin(m).mode(mode),
        |i, l, k| {
            pick!(k, margin_ranking)(i.f1("input1"), i.f1("input2"), i.f1("target"), l, r).map(Out::from)
        },
    );
}

tests!(
    "margin_ranking",
    margin_ranking,
    margin_ranking_matches_torch_and_core,
    margin_ranking_composed_equals_fused
);

// As the core's parity test: where the exact gradient is 0, torch's f32 result is noise of
// the gradient's natural scale (≥ 0.1 for every fixture row).
fn cosine_similarity<T: Float>(c: &Case, path: Path)
where
    mb::CosineSimilarity: Op<T>,
{
    let eps = c.f64_opt("eps", 1e-8);
    go::<T, _>(
        c,
        path,
        0.1,
        |mode| mb::CosineSimilarity::new().eps(eps).mode(mode),
        |i, f, k| pick!(k, cosine_similarity)(i.f2("input1"), i.f2("input2"), f).map(Out::from),
    );
}

fn pairwise_distance<T: Float>(c: &Case, path: Path)
where
    mb::PairwiseDistance: Op<T>,
{
    let (p, eps) = (c.f64_opt("p", 2.0), c.f64_opt("eps", 1e-6));
    go::<T, _>(
        c,
        path,
        0.1,
        |mode| mb::PairwiseDistance::new().p(p).eps(eps).mode(mode),
        |i, f, k| pick!(k, pairwise_distance)(i.f2("input1"), i.f2("input2"), f).map(Out::from),
    );
}

tests!(
    "cosine_similarity",
    cosine_similarity,
    cosine_similarity_matches_torch_and_core,
    cosine_similarity_composed_equals_fused
);
tests!(
    "pairwise_distance",
    pairwise_distance,
    pairwise_distance_matches_torch_and_core,
    pairwise_distance_composed_equals_fused
);

fn multi_margin<T: Float>(c: &Case, path: Path)
where
    mb::MultiMargin: Op<T>,
{
    let (r, m, p) = (c.reduction(), c.f64_opt("margin", 1.0), c.f64_opt("p", 1.0) as u32);
    go::<T, _>(
        c,
        path,
        0.0,
        |mode| mb::MultiMargin::new().p(f64::from(p)).margin(m).mode(mode),
        |i, l, k| {
            pick!(k, multi_margin)(i.f2("input"), i.i1("target"), i.opt1("weight"), l, r).map(Out::from)
        },
    );
}

fn multiclass_hinge<T: Float>(c: &Case, path: Path)
where
    mb::MulticlassHinge: Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 1.0));
    go::<T, _>(
        c,
        path,
        0.0,
        |mode| mb::MulticlassHinge::new().margin(m).mode(mode),
        |i, l, k| pick!(k, multiclass_hinge)(i.f2("input"), i.i1("target"), l, r).map(Out::from),
    );
}

fn multilabel_margin<T: Float>(c: &Case, path: Path)
where
    mb::MultilabelMargin: Op<T>,
{
    let r = c.reduction();
    go::<T, _>(
        c,
        path,
        0.0,
        |mode| mb::MultilabelMargin::new().mode(mode),
        |i, l, k| pick!(k, multilabel_margin)(i.f2("input"), i.i2("target"), l, r).map(Out::from),
    );
}

fn multilabel_soft_margin<T: Float>(c: &Case, path: Path)
where
    mb::MultilabelSoftMargin: Op<T>,
{
    let r = c.reduction();
    go::<T, _>(
        c,
        path,
        0.0,
        |mode| mb::MultilabelSoftMargin::new().mode(mode),
        |i, l, k| {
            pick!(k, multilabel_soft_margin)(i.f2("input"), i.f2("target"), i.opt1("weight"), l, r)
                .map(Out::from)
        },
    );
}

tests!("multi_margin", multi_margin, multi_margin_matches_torch_and_core, multi_margin_composed_equals_fused);
tests!(
    "multiclass_hinge",
    multiclass_hinge,
    multiclass_hinge_matches_torch_and_core,
    multiclass_hinge_composed_equals_fused
);
tests!(
    "multilabel_margin",
    multilabel_margin,
    multilabel_margin_matches_torch_and_core,
    multilabel_margin_composed_equals_fused
);
tests!(
    "multilabel_soft_margin",
    multilabel_soft_margin,
    multilabel_soft_margin_matches_torch_and_core,
    multilabel_soft_margin_composed_equals_fused
);

/// At the kink torch's f32 gradient is noise of scale 0.5/N (as the core's parity test).
fn kink_floor(c: &Case) -> f64 {
    if c.name.starts_with("kink") {
        0.5 / c.input("target").data.len() as f64
    } else {
        0.0
    }
}

/// As [`kink_floor`] for losses whose rows are those of `arg`.
fn kink_floor_rows(c: &Case, arg: &str) -> f64 {
    if c.name.starts_with("kink") {
        0.5 / c.input(arg).shape[0] as f64
    } else {
        0.0
    }
}

fn cosine_embedding<T: Float>(c: &Case, path: Path)
where
    mb::CosineEmbedding: Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 0.0));
    go::<T, _>(
        c,
        path,
        kink_floor(c),
        |mode| mb::CosineEmbedding::new().margin(m).labels(labels(c)).mode(mode),
        |i, l, k| {
            pick!(k, cosine_embedding)(i.f2("input1"), i.f2("input2"), i.f1("target"), l, r).map(Out::from)
        },
    );
}

fn contrastive<T: Float>(c: &Case, path: Path)
where
    mb::Contrastive: Op<T>,
{
    let (r, m) = (c.reduction(), c.f64_opt("margin", 1.0));
    go::<T, _>(
        c,
        path,
        kink_floor(c),
        |mode| mb::Contrastive::new().margin(m).labels(labels(c)).mode(mode),
        |i, l, k| pick!(k, contrastive)(i.f2("input1"), i.f2("input2"), i.f1("target"), l, r).map(Out::from),
    );
}

tests!(
    "cosine_embedding",
    cosine_embedding,
    cosine_embedding_matches_torch_and_core,
    cosine_embedding_composed_equals_fused
);
tests!("contrastive", contrastive, contrastive_matches_torch_and_core, contrastive_composed_equals_fused);

fn triplet_margin<T: Float>(c: &Case, path: Path)
where
    mb::TripletMargin: Op<T>,
{
    let r = c.reduction();
    let (m, p, eps, swap) =
        (c.f64_opt("margin", 1.0), c.f64_opt("p", 2.0), c.f64_opt("eps", 1e-6), c.bool_opt("swap"));
    go::<T, _>(
        c,
        path,
        kink_floor_rows(c, "anchor"),
        |mode| mb::TripletMargin::new().margin(m).p(p).eps(eps).swap(swap).mode(mode),
        |i, l, k| {
            pick!(k, triplet_margin)(i.f2("anchor"), i.f2("positive"), i.f2("negative"), l, r).map(Out::from)
        },
    );
}

fn twd<D: mb::BurnDistance>(
    i: &Inputs<'_>,
    l: mb::TripletMarginWithDistance<D>,
    r: Reduction,
    composed: bool,
) -> marginloss::Result<Out> {
    let (a, p, n) = (i.f2("anchor"), i.f2("positive"), i.f2("negative"));
    if composed {
        mb::composed::triplet_margin_with_distance(a, p, n, l, r).map(Out::from)
    } else {
        mb::triplet_margin_with_distance(a, p, n, l, r).map(Out::from)
    }
}

fn triplet_margin_with_distance<T: Float>(c: &Case, path: Path)
where
    mb::TripletMarginWithDistance: Op<T>,
    mb::TripletMarginWithDistance<mb::CosineDistance>: Op<T>,
{
    let r = c.reduction();
    let (m, swap) = (c.f64_opt("margin", 1.0), c.bool_opt("swap"));
    if c.str_opt("distance") == Some("cosine") {
        let make = |mode| mb::TripletMarginWithDistance::cosine().margin(m).swap(swap).mode(mode);
        go::<T, _>(c, path, kink_floor_rows(c, "anchor"), make, |i, l, k| twd(i, l, r, k));
    } else {
        let make = |mode| mb::TripletMarginWithDistance::euclidean().margin(m).swap(swap).mode(mode);
        go::<T, _>(c, path, kink_floor_rows(c, "anchor"), make, |i, l, k| twd(i, l, r, k));
    }
}

tests!(
    "triplet_margin",
    triplet_margin,
    triplet_margin_matches_torch_and_core,
    triplet_margin_composed_equals_fused
);
tests!(
    "triplet_margin_with_distance",
    triplet_margin_with_distance,
    triplet_margin_with_distance_matches_torch_and_core,
    triplet_margin_with_distance_composed_equals_fused
);
