//! `marginloss demo`: the article's pitfall and its cosine-distance example, step by step.

use marginloss::Rows;
use marginloss::{CosineDistance, Hinge, HingeEmbedding, Mode, Reduction};

use crate::fail::{data, Fail};
use crate::io::{parse_npy, DEFAULT_MAX_INPUT_BYTES};

// The article's arrays, written by tools/gen_fixtures.py (a copy of fixtures/article/, kept
// inside the crate so that the published package builds; tests/cli.rs holds them equal).
const A: &[u8] = include_bytes!("../data/article/a.npy");
const B: &[u8] = include_bytes!("../data/article/b.npy");
const Y: &[u8] = include_bytes!("../data/article/y.npy");
const EXPECTED: &str = include_str!("../data/article/expected.json");

fn f32s(bytes: &[u8], name: &str) -> Result<Vec<f32>, Fail> {
    let a = parse_npy(bytes, DEFAULT_MAX_INPUT_BYTES).map_err(|e| data(format!("{name}: {e}")))?;
    Ok(a.values.iter().map(|&v| v as f32).collect())
}

/// What the per-sample losses say about the pairs: how many are dissimilar (y = -1) and
/// how many of those are already past the margin (loss 0).
fn pair_summary(y: &[f32], per: &[f32], n: usize) -> String {
    let dissimilar = y.iter().filter(|&&t| t == -1.0).count();
    let past = y.iter().zip(per).filter(|&(&t, &l)| t == -1.0 && l == 0.0).count();
    let similar = n - dissimilar;
    let which = if past == dissimilar { format!("all {past}") } else { format!("{past}") };
    format!(
        "   {similar} similar pairs (y = 1) contribute their distance; {which} of the {dissimilar} dissimilar pairs (y = -1)\n   are already past the margin (distance >= 0.2, loss 0).\n"
    )
}

pub fn run() -> Result<(), Fail> {
    let mut s = String::new();
    let x = [0.8f32, -0.5, 2.0];
    let y = [-1.0f32, 1.0, -1.0];
    s += "1. The pitfall: classifier scores fed to PyTorch's HingeEmbeddingLoss\n";
    s += "   x = [0.8, -0.5, 2.0] (scores), y = [-1, 1, -1]\n\n";
    let torch = HingeEmbedding::new().mode(Mode::TorchCompat).forward(&x, &y, Reduction::Mean)?;
    let torch = torch.as_slice()[0];
    s += &format!(
        "   hinge_embedding, torch-compat: {torch:.4}  <- what nn.HingeEmbeddingLoss() prints: a negative loss\n"
    );
    match HingeEmbedding::new().forward(&x, &y, Reduction::Mean) {
        Err(e) => s += &format!("   hinge_embedding, strict:       error: {e}\n"),
        Ok(v) => return Err(data(format!("strict hinge_embedding accepted scores: {v:?}"))),
    }
    let svm = Hinge::new().forward(&x, &y, Reduction::None)?;
    let svm_mean = Hinge::new().forward(&x, &y, Reduction::Mean)?;
    s += &format!(
        "   hinge (max(0, 1 - y*x)):       {:.4}  = mean of {:?}  <- the SVM hinge loss that was meant\n\n",
        svm_mean.as_slice()[0],
        svm.as_slice()
    );

    s += "2. HingeEmbeddingLoss used as intended, on cosine distances (the article's example)\n";
    s += "   torch.manual_seed(20)\n";
    s += "   a = torch.randn(100, 128, requires_grad=True)\n";
    s += "   b = torch.randn(100, 128, requires_grad=True)\n";
    s += "   x = 1 - torch.cosine_similarity(a, b)\n";
    s += "   y = 2 * torch.empty(100).random_(2) - 1      # +1 similar, -1 dissimilar\n";
    s += "   loss = nn.HingeEmbeddingLoss(margin=0.2)(x, y); loss.backward()\n";
    s += "   marginloss: HingeEmbedding::new().margin(0.2).on(CosineDistance::new()), one fused pass\n";
    s +=
        "   (the same from the command line: marginloss eval hinge-embedding --input1 a.npy --input2 b.npy\n";
    s += "    --target y.npy --distance cosine --margin 0.2)\n\n";
    let (a, b, yv) = (f32s(A, "a.npy")?, f32s(B, "b.npy")?, f32s(Y, "y.npy")?);
    // The article's shapes: 100 pairs of 128-dimensional embeddings.
    let (n, d) = (yv.len(), 128);
    let (ra, rb) = (Rows::new(&a, n, d)?, Rows::new(&b, n, d)?);
    // One fused pass over the rows: cosine distance, hinge embedding, and the gradients
    // back through the cosine into a and b.
    let loss = HingeEmbedding::new().margin(0.2).on(CosineDistance::default());
    let (mut mean, mut ga, mut gb) = ([0.0f32], vec![0.0f32; a.len()], vec![0.0f32; b.len()]);
    loss.forward_backward(ra, rb, &yv, Reduction::Mean, &[1.0], &mut mean, &mut ga, &mut gb)?;
    let per = loss.forward(ra, rb, &yv, Reduction::None)?.into_vec();

    let expected: serde_json::Value =
        serde_json::from_str(EXPECTED).map_err(|e| data(format!("bad expected.json: {e}")))?;
    let want = expected["mean"].as_f64().unwrap_or(f64::NAN);
    let norm = |g: &[f32]| g.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
    let ulps = (i64::from(mean[0].to_bits() as i32) - i64::from((want as f32).to_bits() as i32)).abs();
    s += &format!("   mean loss   {}   torch 2.15 prints {want}: {ulps} f32 ulp apart\n", f64::from(mean[0]));
    if ulps > 0 {
        s += "               (torch sums in float32; marginloss sums in float64 and rounds once: the exact\n";
        s += "               mean of torch's own per-sample losses rounds to the value above)\n";
    }
    s += &format!(
        "   |grad a|    {:.9e}   (torch {:.9e})\n",
        norm(&ga),
        expected["grad_a_norm"].as_f64().unwrap_or(f64::NAN)
    );
    s += &format!(
        "   |grad b|    {:.9e}   (torch {:.9e})\n",
        norm(&gb),
        expected["grad_b_norm"].as_f64().unwrap_or(f64::NAN)
    );
    s += "   per-sample losses (reduction=\"none\"):\n";
    for row in per.chunks(10) {
        let r: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
        s += &format!("     {}\n", r.join(" "));
    }
    s += &pair_summary(&yv, &per, n);
    print!("{s}");
    Ok(())
}
