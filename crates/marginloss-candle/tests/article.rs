//! The article's cosine-distance example in candle, against torch 2.15
//! (`fixtures/article/`): `a`, `b` are `Var`s (100 × 128), `x = 1 − cos(a, b)`,
//! `HingeEmbeddingLoss(margin = 0.2)(x, y)`, backward. The loss and both gradients match
//! torch's (the loss within 3e-5 relative: torch sums the mean in f32, the core in f64,
//! and the two differ in the last bit).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{f64s, fixtures_dir};
use marginloss_candle::{
    composed, cosine_similarity_with, hinge_embedding_with, CosineSimilarity, HingeEmbedding, Reduction,
};
use serde_json::Value;

fn npy_f32(name: &str) -> (Vec<f32>, Vec<usize>) {
    let path = fixtures_dir().join("article").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (npy.into_vec::<f32>().unwrap(), shape)
}

fn var(name: &str) -> Var {
    let (v, shape) = npy_f32(name);
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Norm-wise closeness: `|got − want| ≤ rtol · max|want|` element-wise.
fn assert_close(what: &str, got: &[f64], want: &[f32], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let w = f64::from(w);
        assert!((g - w).abs() <= rtol * scale, "{what}[{i}]: {g:e} vs {w:e} (scale {scale:e})");
    }
}

fn run(fused: bool) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("article/expected.json")).unwrap())
            .unwrap();
    let (a, b) = (var("a.npy"), var("b.npy"));
    let (y, _) = npy_f32("y.npy");
    let y = Tensor::from_vec(y, 100, &Device::Cpu).unwrap();
    assert_eq!(a.dims(), &[100, 128]);

    let f = CosineSimilarity::new();
    let loss = HingeEmbedding::new().margin(0.2);
    let cos = if fused { cosine_similarity_with(&a, &b, f) } else { composed::cosine_similarity(&a, &b, f) }
        .unwrap();
    let x = cos.affine(-1.0, 1.0).unwrap(); // 1 − cos
    let out = if fused {
        hinge_embedding_with(&x, &y, loss, Reduction::Mean)
    } else {
        composed::hinge_embedding(&x, &y, loss, Reduction::Mean)
    }
    .unwrap();
    assert_eq!(out.dtype(), DType::F32);

    let want_x: Vec<f32> =
        expected["x"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_close("x", &f64s(&x), &want_x, 3e-5);
    let mean = f64::from(out.to_scalar::<f32>().unwrap());
    let want = expected["mean"].as_f64().unwrap();
    assert!((mean - want).abs() <= 3e-5 * want, "loss {mean} vs torch {want}");
    if fused {
        // The core's f64-accumulated f32 mean, 1 ulp from torch's f32 sum.
        assert_eq!(mean as f32, 0.493_856_f32); // 0.4938560128211975 as f64
    }

    let grads = out.backward().unwrap();
    let (ga, gb) = (grads.get(&a).expect("grad a"), grads.get(&b).expect("grad b"));
    assert_close("grad a", &f64s(ga), &npy_f32("grad_a.npy").0, 3e-5);
    assert_close("grad b", &f64s(gb), &npy_f32("grad_b.npy").0, 3e-5);
    let norm = |g: &Tensor| {
        g.sqr().unwrap().sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap().sqrt()
    };
    let (na, nb) = (expected["grad_a_norm"].as_f64().unwrap(), expected["grad_b_norm"].as_f64().unwrap());
    assert!((norm(ga) - na).abs() <= 1e-5 * na, "‖grad a‖ {} vs {na}", norm(ga));
    assert!((norm(gb) - nb).abs() <= 1e-5 * nb, "‖grad b‖ {} vs {nb}", norm(gb));
}

#[test]
fn article_example_matches_torch_through_the_fused_ops() {
    run(true);
}

#[test]
fn article_example_matches_torch_through_the_composed_ops() {
    run(false);
}

#[test]
fn article_scores_are_refused_in_strict_mode_and_give_torchs_value_in_compat() {
    // Feeding classifier scores to hinge_embedding: strict refuses, compat gives torch's −0.1.
    let x = Tensor::new(&[0.8f32, -0.5, 2.0], &Device::Cpu).unwrap();
    let y = Tensor::new(&[-1.0f32, 1.0, -1.0], &Device::Cpu).unwrap();
    assert!(hinge_embedding_with(&x, &y, HingeEmbedding::new(), Reduction::Mean).is_err());
    let compat = HingeEmbedding::new().mode(marginloss_candle::Mode::TorchCompat);
    let v = hinge_embedding_with(&x, &y, compat, Reduction::Mean).unwrap().to_scalar::<f32>().unwrap();
    assert!((v + 0.1).abs() < 1e-6, "{v}");
    let h = marginloss_candle::hinge(&x, &y).unwrap();
    assert!((h.to_scalar::<f32>().unwrap() - 2.1).abs() < 1e-6);
}
