//! Every torch 2.15 fixture case of every implemented loss through the candle functions:
//! the forward value and the gradients from `Tensor::backward` (of the output's sum for
//! `reduction = none`, as the fixtures) match torch within the parity tolerance, and are
//! equal to the core's fused `forward_backward` with upstream 1 (outputs bitwise, gradients
//! as numbers: candle accumulates into zeros, so a −0 arrives as +0). Cases marked
//! `compat_only` are rejected in strict mode with the core's message.

mod common;

use common::mat;
use std::collections::BTreeMap;

use candle_core::{Tensor, Var, WithDType};
use common::{assert_close, assert_close_floor, candle_dtype, for_each_case, values, CandleDType, Case};
use marginloss::Float;
use marginloss_candle as mc;
use mc::{Labels, Mode};

trait Elem: Float + WithDType + CandleDType {}
impl Elem for f32 {}
impl Elem for f64 {}

fn labels(c: &Case) -> Labels {
    match c.str_opt("labels") {
        Some("01") => Labels::ZeroOne,
        _ => Labels::PlusMinusOne,
    }
}

/// The inputs of a case as candle values: differentiable ones as `Var`s.
struct Inputs {
    vars: BTreeMap<String, Var>,
    consts: BTreeMap<String, Tensor>,
}

impl Inputs {
    fn new(c: &Case, diff: &[&str], index: &[&str]) -> Inputs {
        let dt = candle_dtype(&c.dtype);
        let mut vars = BTreeMap::new();
        let mut consts = BTreeMap::new();
        for (k, t) in &c.inputs {
            if diff.contains(&k.as_str()) {
                vars.insert(k.clone(), t.var(dt));
            } else if index.contains(&k.as_str()) {
                consts.insert(k.clone(), t.candle_i64());
            } else {
                consts.insert(k.clone(), t.candle(dt));
            }
        }
        Inputs { vars, consts }
    }
    fn get(&self, k: &str) -> &Tensor {
        self.vars.get(k).map(|v| v.as_tensor()).or_else(|| self.consts.get(k)).expect(k)
    }
    fn opt(&self, k: &str) -> Option<&Tensor> {
        self.vars.get(k).map(|v| v.as_tensor()).or_else(|| self.consts.get(k))
    }
}

/// The core's fused result: output and the gradients of the differentiable inputs.
type CoreRun<T> = (Vec<T>, Vec<Vec<T>>);

/// Checks one case: candle output and gradients vs torch, and bitwise vs the core.
fn check<T: Elem>(
    c: &Case,
    diff: &[&str],
    index: &[&str],
    floor: f64,
    run: impl Fn(&Inputs, Mode) -> candle_core::Result<Tensor>,
    core: impl Fn(Mode) -> marginloss::Result<CoreRun<T>>,
) {
    let inputs = Inputs::new(c, diff, index);
    if c.compat_only {
        let e = run(&inputs, Mode::Strict).expect_err(&format!("{}: strict accepted it", c.id()));
        let core_e = core(Mode::Strict).expect_err("core strict");
        assert_eq!(e.to_string(), core_e.to_string(), "{}: the core's message", c.id());
    }
    let out = run(&inputs, c.mode()).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_eq!(out.dims(), &c.output.shape[..], "{}: output shape", c.id());
    let got: Vec<T> = values(&out);
    assert_close(&format!("{} output", c.id()), &got, &c.output, &c.dtype);
    let (core_out, core_grads) = core(c.mode()).unwrap_or_else(|e| panic!("{}: core {e}", c.id()));
    let same = got.iter().zip(&core_out).all(|(a, b)| a.f64().to_bits() == b.f64().to_bits());
    assert!(same, "{}: output differs from the core's", c.id());
    let total = if out.rank() == 0 { out } else { out.sum_all().unwrap() };
    let grads = total.backward().unwrap();
    for (k, name) in diff.iter().enumerate() {
        let g =
            grads.get(&inputs.vars[*name]).unwrap_or_else(|| panic!("{}: no gradient for {name}", c.id()));
        assert_eq!(g.dims(), &c.input(name).shape[..], "{}: grad {name} shape", c.id());
        let g: Vec<T> = values(g);
        if let Some(want) = c.grad(name) {
            assert_close_floor(&format!("{} grad {name}", c.id()), &g, want, &c.dtype, floor);
        }
        // Equal as numbers: candle accumulates gradients into zeros, so −0 arrives as +0.
        let same = g.iter().zip(&core_grads[k]).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
        assert!(same, "{}: grad {name} differs from the core's fused kernel", c.id());
    }
    for (name, t) in &inputs.consts {
        assert!(grads.get(t).is_none(), "{}: {name} got a gradient", c.id());
    }
}

fn run_file(loss: &str, f32_case: fn(&Case), f64_case: fn(&Case)) -> usize {
    let n = for_each_case(loss, f32_case, f64_case);
    assert!(n >= 10, "{loss}: {n} cases");
    n
}

// ---------------------------------------------------------------------------------------

fn pointwise<T: Elem>(c: &Case, loss: &str) {
    let r = c.reduction();
    let margin = c.f64_opt("margin", if loss == "soft_margin" { 0.0 } else { 1.0 });
    let x = c.input("input").as_vec::<T>();
    let t = c.input("target").as_vec::<T>();
    let lab = labels(c);
    let run = |i: &Inputs, mode: Mode| {
        let (x, t) = (i.get("input"), i.get("target"));
        match loss {
            "hinge" => mc::hinge_with(x, t, mc::Hinge::new().margin(margin).labels(lab).mode(mode), r),
            "squared_hinge" => {
                mc::squared_hinge_with(x, t, mc::SquaredHinge::new().margin(margin).labels(lab).mode(mode), r)
            }
            "hinge_embedding" => {
                mc::hinge_embedding_with(x, t, mc::HingeEmbedding::new().margin(margin).mode(mode), r)
            }
            "soft_margin" => mc::soft_margin_with(x, t, mc::SoftMargin::new().mode(mode), r),
            _ => unreachable!(),
        }
    };
    let core = |mode: Mode| {
        let mut out = vec![T::zero(); r.output_len(x.len())];
        let mut g = vec![T::zero(); x.len()];
        let one = [T::one()];
        match loss {
            "hinge" => marginloss::Hinge::new()
                .margin(margin)
                .labels(lab)
                .mode(mode)
                .forward_backward(&x, &t, r, &one, &mut out, &mut g),
            "squared_hinge" => marginloss::SquaredHinge::new()
                .margin(margin)
                .labels(lab)
                .mode(mode)
                .forward_backward(&x, &t, r, &one, &mut out, &mut g),
            "hinge_embedding" => marginloss::HingeEmbedding::new()
                .margin(margin)
                .mode(mode)
                .forward_backward(&x, &t, r, &one, &mut out, &mut g),
            "soft_margin" => {
                marginloss::SoftMargin::new().mode(mode).forward_backward(&x, &t, r, &one, &mut out, &mut g)
            }
            _ => unreachable!(),
        }?;
        Ok((out, vec![g]))
    };
    check::<T>(c, &["input"], &[], 0.0, run, core);
}

#[test]
fn hinge_matches_torch_and_core() {
    run_file("hinge", |c| pointwise::<f32>(c, "hinge"), |c| pointwise::<f64>(c, "hinge"));
}

#[test]
fn squared_hinge_matches_torch_and_core() {
    run_file(
        "squared_hinge",
        |c| pointwise::<f32>(c, "squared_hinge"),
        |c| pointwise::<f64>(c, "squared_hinge"),
    );
}

#[test]
fn hinge_embedding_matches_torch_and_core() {
    run_file(
        "hinge_embedding",
        |c| pointwise::<f32>(c, "hinge_embedding"),
        |c| pointwise::<f64>(c, "hinge_embedding"),
    );
}

#[test]
fn soft_margin_matches_torch_and_core() {
    run_file("soft_margin", |c| pointwise::<f32>(c, "soft_margin"), |c| pointwise::<f64>(c, "soft_margin"));
}

fn margin_ranking<T: Elem>(c: &Case) {
    let r = c.reduction();
    let margin = c.f64_opt("margin", 0.0);
    let (x1, x2, t) =
        (c.input("input1").as_vec::<T>(), c.input("input2").as_vec::<T>(), c.input("target").as_vec::<T>());
    let run = |i: &Inputs, mode: Mode| {
        let l = mc::MarginRanking::new().margin(margin).mode(mode);
        mc::margin_ranking_with(i.get("input1"), i.get("input2"), i.get("target"), l, r)
    };
    let core = |mode: Mode| {
        let n = x1.len();
        let (mut out, mut g1, mut g2) =
            (vec![T::zero(); r.output_len(n)], vec![T::zero(); n], vec![T::zero(); n]);
        marginloss::MarginRanking::new().margin(margin).mode(mode).forward_backward(
            &x1,
            &x2,
            &t,
            r,
            &[T::one()],
            &mut out,
            &mut g1,
            &mut g2,
        )?;
        Ok((out, vec![g1, g2]))
    };
    check::<T>(c, &["input1", "input2"], &[], 0.0, run, core);
}

#[test]
fn margin_ranking_matches_torch_and_core() {
    run_file("margin_ranking", margin_ranking::<f32>, margin_ranking::<f64>);
}

fn distance<T: Elem>(c: &Case, loss: &str) {
    let (x1, x2) = (c.input("input1").as_vec::<T>(), c.input("input2").as_vec::<T>());
    let dim = c.input("input1").last_dim();
    let cos = || marginloss::CosineSimilarity::new().eps(c.f64_opt("eps", 1e-8));
    let pd = || marginloss::PairwiseDistance::new().p(c.f64_opt("p", 2.0)).eps(c.f64_opt("eps", 1e-6));
    let run = |i: &Inputs, mode: Mode| match loss {
        "cosine_similarity" => mc::cosine_similarity_with(i.get("input1"), i.get("input2"), cos().mode(mode)),
        _ => mc::pairwise_distance_with(i.get("input1"), i.get("input2"), pd().mode(mode)),
    };
    let core = |mode: Mode| {
        let n = x1.len() / dim;
        let (mut out, mut g1, mut g2) =
            (vec![T::zero(); n], vec![T::zero(); x1.len()], vec![T::zero(); x2.len()]);
        let one = [T::one()];
        match loss {
            "cosine_similarity" => cos().mode(mode).forward_backward(
                mat(&x1, dim),
                mat(&x2, dim),
                &one,
                &mut out,
                &mut g1,
                &mut g2,
            ),
            _ => pd().mode(mode).forward_backward(
                mat(&x1, dim),
                mat(&x2, dim),
                &one,
                &mut out,
                &mut g1,
                &mut g2,
            ),
        }?;
        Ok((out, vec![g1, g2]))
    };
    // As the core's parity test: where the exact gradient is 0, torch's f32 result is
    // noise of the gradient's natural scale (≥ 0.1 for every fixture row).
    check::<T>(c, &["input1", "input2"], &[], 0.1, run, core);
}

#[test]
fn cosine_similarity_matches_torch_and_core() {
    run_file(
        "cosine_similarity",
        |c| distance::<f32>(c, "cosine_similarity"),
        |c| distance::<f64>(c, "cosine_similarity"),
    );
}

#[test]
fn pairwise_distance_matches_torch_and_core() {
    run_file(
        "pairwise_distance",
        |c| distance::<f32>(c, "pairwise_distance"),
        |c| distance::<f64>(c, "pairwise_distance"),
    );
}

fn classes(c: &Case) -> usize {
    *c.input("input").shape.last().unwrap()
}

fn class_loss<T: Elem>(c: &Case, loss: &str) {
    let r = c.reduction();
    let x = c.input("input").as_vec::<T>();
    let cl = classes(c);
    let n = x.len() / cl;
    let margin = c.f64_opt("margin", 1.0);
    let p = c.f64_opt("p", 1.0);
    let run = |i: &Inputs, mode: Mode| {
        let (x, t) = (i.get("input"), i.get("target"));
        match loss {
            "multi_margin" => {
                let l = mc::MultiMargin::new().p(p).margin(margin).mode(mode);
                mc::multi_margin_with(x, t, i.opt("weight"), l, r)
            }
            "multiclass_hinge" => {
                mc::multiclass_hinge_with(x, t, mc::MulticlassHinge::new().margin(margin).mode(mode), r)
            }
            "multilabel_margin" => {
                mc::multilabel_margin_with(x, t, mc::MultilabelMargin::new().mode(mode), r)
            }
            _ => mc::multilabel_soft_margin_with(
                x,
                t,
                i.opt("weight"),
                mc::MultilabelSoftMargin::new().mode(mode),
                r,
            ),
        }
    };
    let core = |mode: Mode| {
        let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); x.len()]);
        let one = [T::one()];
        let w = c.inputs.get("weight").map(|w| w.as_vec::<T>());
        match loss {
            "multi_margin" => {
                let t = c.input("target").as_i64();
                marginloss::MultiMargin::new().p(p).margin(margin).mode(mode).forward_backward(
                    mat(&x, cl),
                    &t,
                    w.as_deref(),
                    r,
                    &one,
                    &mut out,
                    &mut g,
                )
            }
            "multiclass_hinge" => {
                let t = c.input("target").as_i64();
                marginloss::MulticlassHinge::new().margin(margin).mode(mode).forward_backward(
                    mat(&x, cl),
                    &t,
                    r,
                    &one,
                    &mut out,
                    &mut g,
                )
            }
            "multilabel_margin" => {
                let t = c.input("target").as_i64();
                marginloss::MultilabelMargin::new().mode(mode).forward_backward(
                    mat(&x, cl),
                    &t,
                    r,
                    &one,
                    &mut out,
                    &mut g,
                )
            }
            _ => {
                let t = c.input("target").as_vec::<T>();
                marginloss::MultilabelSoftMargin::new().mode(mode).forward_backward(
                    mat(&x, cl),
                    &t,
                    w.as_deref(),
                    r,
                    &one,
                    &mut out,
                    &mut g,
                )
            }
        }?;
        Ok((out, vec![g]))
    };
    let index: &[&str] = if loss == "multilabel_soft_margin" { &[] } else { &["target"] };
    check::<T>(c, &["input"], index, 0.0, run, core);
}

#[test]
fn multi_margin_matches_torch_and_core() {
    run_file(
        "multi_margin",
        |c| class_loss::<f32>(c, "multi_margin"),
        |c| class_loss::<f64>(c, "multi_margin"),
    );
}

#[test]
fn multiclass_hinge_matches_torch_and_core() {
    run_file(
        "multiclass_hinge",
        |c| class_loss::<f32>(c, "multiclass_hinge"),
        |c| class_loss::<f64>(c, "multiclass_hinge"),
    );
}

#[test]
fn multilabel_margin_matches_torch_and_core() {
    run_file(
        "multilabel_margin",
        |c| class_loss::<f32>(c, "multilabel_margin"),
        |c| class_loss::<f64>(c, "multilabel_margin"),
    );
}

#[test]
fn multilabel_soft_margin_matches_torch_and_core() {
    run_file(
        "multilabel_soft_margin",
        |c| class_loss::<f32>(c, "multilabel_soft_margin"),
        |c| class_loss::<f64>(c, "multilabel_soft_margin"),
    );
}

fn pair_loss<T: Elem>(c: &Case, loss: &str) {
    let r = c.reduction();
    let (x1, x2, t) =
        (c.input("input1").as_vec::<T>(), c.input("input2").as_vec::<T>(), c.input("target").as_vec::<T>());
    let dim = c.input("input1").last_dim();
    let lab = labels(c);
    let ce = |mode: Mode| mc::CosineEmbedding::new().margin(c.f64_opt("margin", 0.0)).labels(lab).mode(mode);
    let co = |mode: Mode| mc::Contrastive::new().margin(c.f64_opt("margin", 1.0)).labels(lab).mode(mode);
    let run = |i: &Inputs, mode: Mode| {
        let (a, b, y) = (i.get("input1"), i.get("input2"), i.get("target"));
        match loss {
            "cosine_embedding" => mc::cosine_embedding_with(a, b, y, ce(mode), r),
            _ => mc::contrastive_with(a, b, y, co(mode), r),
        }
    };
    let core = |mode: Mode| {
        let (mut out, mut g1, mut g2) =
            (vec![T::zero(); r.output_len(t.len())], vec![T::zero(); x1.len()], vec![T::zero(); x2.len()]);
        let one = [T::one()];
        match loss {
            "cosine_embedding" => ce(mode).forward_backward(
                mat(&x1, dim),
                mat(&x2, dim),
                &t,
                r,
                &one,
                &mut out,
                &mut g1,
                &mut g2,
            ),
            _ => co(mode).forward_backward(
                mat(&x1, dim),
                mat(&x2, dim),
                &t,
                r,
                &one,
                &mut out,
                &mut g1,
                &mut g2,
            ),
        }?;
        Ok((out, vec![g1, g2]))
    };
    // As the core's parity test: at the kink torch's f32 gradient is noise of scale 0.5/N.
    let floor = if c.name.starts_with("kink") { 0.5 / t.len() as f64 } else { 0.0 };
    check::<T>(c, &["input1", "input2"], &[], floor, run, core);
}

#[test]
fn cosine_embedding_matches_torch_and_core() {
    run_file(
        "cosine_embedding",
        |c| pair_loss::<f32>(c, "cosine_embedding"),
        |c| pair_loss::<f64>(c, "cosine_embedding"),
    );
}

#[test]
fn contrastive_matches_torch_and_core() {
    run_file("contrastive", |c| pair_loss::<f32>(c, "contrastive"), |c| pair_loss::<f64>(c, "contrastive"));
}

fn triplet_loss<T: Elem>(c: &Case, loss: &str) {
    let r = c.reduction();
    let (a, p, n) = (
        c.input("anchor").as_vec::<T>(),
        c.input("positive").as_vec::<T>(),
        c.input("negative").as_vec::<T>(),
    );
    let dim = c.input("anchor").last_dim();
    let (margin, swap) = (c.f64_opt("margin", 1.0), c.bool_opt("swap"));
    let tm = |mode: Mode| {
        mc::TripletMargin::new()
            .margin(margin)
            .p(c.f64_opt("p", 2.0))
            .eps(c.f64_opt("eps", 1e-6))
            .swap(swap)
            .mode(mode)
    };
    let cosine = c.str_opt("distance") == Some("cosine");
    let euc = |mode: Mode| mc::TripletMarginWithDistance::euclidean().margin(margin).swap(swap).mode(mode);
    let cos = |mode: Mode| mc::TripletMarginWithDistance::cosine().margin(margin).swap(swap).mode(mode);
    let run = |i: &Inputs, mode: Mode| {
        let (x, y, z) = (i.get("anchor"), i.get("positive"), i.get("negative"));
        match (loss, cosine) {
            ("triplet_margin", _) => mc::triplet_margin_with(x, y, z, tm(mode), r),
            (_, false) => mc::triplet_margin_with_distance_with(x, y, z, euc(mode), r),
            (_, true) => mc::triplet_margin_with_distance_with(x, y, z, cos(mode), r),
        }
    };
    let core = |mode: Mode| {
        let len = a.len();
        let mut out = vec![T::zero(); r.output_len(len / dim)];
        let mut g = [vec![T::zero(); len], vec![T::zero(); len], vec![T::zero(); len]];
        let [ga, gp, gn] = &mut g;
        let one = [T::one()];
        match (loss, cosine) {
            ("triplet_margin", _) => tm(mode).forward_backward(
                mat(&a, dim),
                mat(&p, dim),
                mat(&n, dim),
                r,
                &one,
                &mut out,
                ga,
                gp,
                gn,
            ),
            (_, false) => euc(mode).forward_backward(
                mat(&a, dim),
                mat(&p, dim),
                mat(&n, dim),
                r,
                &one,
                &mut out,
                ga,
                gp,
                gn,
            ),
            (_, true) => cos(mode).forward_backward(
                mat(&a, dim),
                mat(&p, dim),
                mat(&n, dim),
                r,
                &one,
                &mut out,
                ga,
                gp,
                gn,
            ),
        }?;
        Ok((out, g.to_vec()))
    };
    check::<T>(c, &["anchor", "positive", "negative"], &[], 0.0, run, core);
}

#[test]
fn triplet_margin_matches_torch_and_core() {
    run_file(
        "triplet_margin",
        |c| triplet_loss::<f32>(c, "triplet_margin"),
        |c| triplet_loss::<f64>(c, "triplet_margin"),
    );
}

#[test]
fn triplet_margin_with_distance_matches_torch_and_core() {
    run_file(
        "triplet_margin_with_distance",
        |c| triplet_loss::<f32>(c, "triplet_margin_with_distance"),
        |c| triplet_loss::<f64>(c, "triplet_margin_with_distance"),
    );
}
