//! The article's cosine-distance example against torch 2.15:
//! ```python
//! torch.manual_seed(20)
//! a = torch.randn(100, 128, requires_grad=True); b = torch.randn(100, 128, requires_grad=True)
//! x = 1 - torch.cosine_similarity(a, b)
//! y = 2 * torch.empty(100).random_(2) - 1
//! output = nn.HingeEmbeddingLoss(margin=0.2)(x, y)   # 0.4938560426235199
//! output.backward()
//! ```

mod common;

use common::mat;
use common::{assert_close, fixtures_dir, read_npy, Tensor};
use marginloss::{CosineDistance, CosineSimilarity, HingeEmbedding, Reduction};

fn f32s(name: &str) -> Vec<f32> {
    read_npy(fixtures_dir().join("article").join(name)).into_iter().map(|v| v as f32).collect()
}

fn tensor(v: Vec<f64>) -> Tensor {
    Tensor { dtype: "float32".into(), shape: vec![v.len()], data: v }
}

#[test]
fn fused_article_pipeline_matches_torch() {
    let (a, b, y) = (f32s("a.npy"), f32s("b.npy"), f32s("y.npy"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("article/expected.json")).unwrap())
            .unwrap();
    let loss = HingeEmbedding::new().margin(0.2).on(CosineDistance::default());
    let (mut out, mut ga, mut gb) = ([0.0f32], vec![0.0f32; a.len()], vec![0.0f32; b.len()]);
    loss.forward_backward(
        mat(&a, 128),
        mat(&b, 128),
        &y,
        Reduction::Mean,
        &[1.0],
        &mut out,
        &mut ga,
        &mut gb,
    )
    .unwrap();
    let want = expected["mean"].as_f64().unwrap();
    assert!((f64::from(out[0]) - want).abs() <= 3e-5 * want, "{} vs {want}", out[0]);
    // one f32 ulp: the exactly rounded mean of torch's own per-sample losses
    assert_eq!(f64::from(out[0]), 0.493_856_012_821_197_5);
    assert_close("grad a", &ga, &tensor(read_npy(fixtures_dir().join("article/grad_a.npy"))), "float32");
    assert_close("grad b", &gb, &tensor(read_npy(fixtures_dir().join("article/grad_b.npy"))), "float32");

    let none = loss.forward(mat(&a, 128), mat(&b, 128), &y, Reduction::None).unwrap().into_vec();
    let want_none: Vec<f64> =
        expected["none"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_close("per-sample", &none, &tensor(want_none), "float32");
}

#[test]
fn fused_pipeline_equals_the_composition() {
    let (a, b, y) = (f32s("a.npy"), f32s("b.npy"), f32s("y.npy"));
    let n = y.len();
    // composed: cosine, 1 - cos, hinge embedding, then back through the cosine
    let cos = CosineSimilarity::new();
    let mut c = vec![0.0f32; n];
    cos.forward_into(mat(&a, 128), mat(&b, 128), &mut c).unwrap();
    let x: Vec<f32> = c.iter().map(|v| 1.0 - v).collect();
    let (mut mean, mut dx) = ([0.0f32], vec![0.0f32; n]);
    HingeEmbedding::new()
        .margin(0.2)
        .forward_backward(&x, &y, Reduction::Mean, &[1.0], &mut mean, &mut dx)
        .unwrap();
    let dcos: Vec<f32> = dx.iter().map(|g| -g).collect();
    let (mut ga, mut gb) = (vec![0.0f32; a.len()], vec![0.0f32; b.len()]);
    cos.forward_backward(mat(&a, 128), mat(&b, 128), &dcos, &mut c, &mut ga, &mut gb).unwrap();
    // fused
    let (mut out, mut fa, mut fb) = ([0.0f32], vec![0.0f32; a.len()], vec![0.0f32; b.len()]);
    HingeEmbedding::new()
        .margin(0.2)
        .on(CosineDistance::default())
        .forward_backward(mat(&a, 128), mat(&b, 128), &y, Reduction::Mean, &[1.0], &mut out, &mut fa, &mut fb)
        .unwrap();
    assert_eq!(out, mean);
    assert_eq!(fa, ga);
    assert_eq!(fb, gb);
}
