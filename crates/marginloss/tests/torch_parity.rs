//! Golden parity with torch 2.15 (fixtures written by `tools/gen_fixtures.py`): values and
//! gradients of every case, in f32 and f64, every reduction. Cases marked `compat_only`
//! (quirky targets, negative distances, NaN, empty input) must be reproduced in
//! torch-compat mode and rejected in strict mode.

mod common;

use common::mat;
use common::{assert_close, assert_close_floor, for_each_case, Case};
use marginloss::{
    CosineSimilarity, Float, Hinge, HingeEmbedding, Labels, Mode, PairwiseDistance, SquaredHinge,
};

fn labels(c: &Case) -> Labels {
    match c.str_opt("labels") {
        Some("01") => Labels::ZeroOne,
        _ => Labels::PlusMinusOne,
    }
}

/// Runs forward_into and forward_backward of an element-wise loss on a case.
fn pointwise<T: Float>(c: &Case, loss: &str) {
    let x = c.input("input").as_vec::<T>();
    let t = c.input("target").as_vec::<T>();
    let r = c.reduction();
    let margin = c.f64_opt("margin", 1.0);
    let run = |mode: Mode, out: &mut [T], grad: Option<&mut [T]>| match (loss, grad) {
        ("hinge", None) => {
            Hinge::new().margin(margin).labels(labels(c)).mode(mode).forward_into(&x, &t, r, out)
        }
        ("hinge", Some(g)) => Hinge::new().margin(margin).labels(labels(c)).mode(mode).forward_backward(
            &x,
            &t,
            r,
            &[T::one()],
            out,
            g,
        ),
        ("squared_hinge", None) => {
            SquaredHinge::new().margin(margin).labels(labels(c)).mode(mode).forward_into(&x, &t, r, out)
        }
        ("squared_hinge", Some(g)) => SquaredHinge::new()
            .margin(margin)
            .labels(labels(c))
            .mode(mode)
            .forward_backward(&x, &t, r, &[T::one()], out, g),
        ("hinge_embedding", None) => {
            HingeEmbedding::new().margin(margin).mode(mode).forward_into(&x, &t, r, out)
        }
        ("hinge_embedding", Some(g)) => {
            HingeEmbedding::new().margin(margin).mode(mode).forward_backward(&x, &t, r, &[T::one()], out, g)
        }
        _ => unreachable!(),
    };
    let mut out = vec![T::zero(); r.output_len(x.len())];
    let mut grad = vec![T::zero(); x.len()];
    if c.compat_only {
        assert!(run(Mode::Strict, &mut out, None).is_err(), "{}: strict mode accepted it", c.id());
    }
    run(c.mode(), &mut out, None).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    run(c.mode(), &mut out, Some(&mut grad)).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    if let Some(want) = c.grad("input") {
        assert_close(&format!("{} grad", c.id()), &grad, want, &c.dtype);
    }
}

fn pointwise_file(loss: &str) {
    let n = for_each_case(loss, |c| pointwise::<f32>(c, loss), |c| pointwise::<f64>(c, loss));
    assert!(n >= 40, "{loss}: only {n} cases");
}

#[test]
fn hinge_matches_torch() {
    pointwise_file("hinge");
}

#[test]
fn squared_hinge_matches_torch() {
    pointwise_file("squared_hinge");
}

#[test]
fn hinge_embedding_matches_torch() {
    pointwise_file("hinge_embedding");
}

fn rows<T: Float>(c: &Case, loss: &str) {
    let x1 = c.input("input1").as_vec::<T>();
    let x2 = c.input("input2").as_vec::<T>();
    let dim = c.input("input1").last_dim();
    let n = x1.len() / dim;
    let (mut out, mut g1, mut g2) =
        (vec![T::zero(); n], vec![T::zero(); x1.len()], vec![T::zero(); x2.len()]);
    match loss {
        "cosine_similarity" => {
            let f = CosineSimilarity::new().eps(c.f64_opt("eps", 1e-8)).mode(c.mode());
            assert_close(&c.id(), &f.forward(mat(&x1, dim), mat(&x2, dim)).unwrap(), &c.output, &c.dtype);
            f.forward_backward(mat(&x1, dim), mat(&x2, dim), &[T::one()], &mut out, &mut g1, &mut g2)
                .unwrap();
        }
        "pairwise_distance" => {
            let f = PairwiseDistance::new().p(c.f64_opt("p", 2.0)).eps(c.f64_opt("eps", 1e-6)).mode(c.mode());
            assert_close(&c.id(), &f.forward(mat(&x1, dim), mat(&x2, dim)).unwrap(), &c.output, &c.dtype);
            f.forward_backward(mat(&x1, dim), mat(&x2, dim), &[T::one()], &mut out, &mut g1, &mut g2)
                .unwrap();
        }
        _ => unreachable!(),
    }
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    // The gradients' natural scale is 1/‖x‖ (≥ 0.1 for every fixture row); where the exact
    // gradient is 0 (identical or parallel rows) torch's f32 result is noise of that scale.
    let floor = 0.1;
    assert_close_floor(&format!("{} grad input1", c.id()), &g1, c.grad("input1").unwrap(), &c.dtype, floor);
    assert_close_floor(&format!("{} grad input2", c.id()), &g2, c.grad("input2").unwrap(), &c.dtype, floor);
}

#[test]
fn cosine_similarity_matches_torch() {
    let n = for_each_case(
        "cosine_similarity",
        |c| rows::<f32>(c, "cosine_similarity"),
        |c| rows::<f64>(c, "cosine_similarity"),
    );
    assert!(n >= 10);
}

#[test]
fn pairwise_distance_matches_torch() {
    let n = for_each_case(
        "pairwise_distance",
        |c| rows::<f32>(c, "pairwise_distance"),
        |c| rows::<f64>(c, "pairwise_distance"),
    );
    assert!(n >= 10);
}
