//! A siamese embedding of handwritten digits trained with `hinge_embedding` on the cosine
//! distance of sampled pairs.
//!
//! ```text
//! cargo run --release -p marginloss-candle --example siamese
//! ```
//!
//! Data: the 1,797 8×8 digits of UCI "Optical Recognition of Handwritten Digits" as
//! scikit-learn ships them (`data/digits.csv.gz`, CC BY 4.0; see `data/README.md`), split
//! into 1,297 training and 500 held-out images. Model: Linear 64 → 32, ReLU, Linear
//! 32 → 16. Each step samples 256 training pairs (half the same digit, y = 1; half
//! different digits, y = −1), takes the cosine distance `x = 1 − cos(e1, e2)` of their
//! embeddings and minimises `HingeEmbeddingLoss(margin = 0.2)` with AdamW. Before and after
//! training it reports, on the held-out images, the accuracy of "same digit?" on 4,000
//! balanced pairs at the best distance threshold, and the 1-nearest-neighbour accuracy
//! (cosine distance to the training embeddings).

use std::time::Instant;

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use marginloss_candle::{cosine_similarity, hinge_embedding_with, HingeEmbedding, Reduction};

#[path = "support/digits.rs"]
mod digits;
use digits::{dot, net, normalised, one_nn, Rng, Split, TRAIN};

const BATCH: usize = 256;
const STEPS: usize = 300;
const MARGIN: f64 = 0.2;

/// Pair accuracy at the best threshold on `pairs` (cosine distance, same digit?) and
/// 1-NN accuracy of the test rows against the training rows.
fn evaluate(
    train: &[Vec<f32>],
    train_y: &[u8],
    test: &[Vec<f32>],
    test_y: &[u8],
    pairs: &[(usize, usize)],
) -> (f64, f64) {
    let mut d: Vec<(f32, bool)> =
        pairs.iter().map(|&(i, j)| (1.0 - dot(&test[i], &test[j]), test_y[i] == test_y[j])).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold after the k-th smallest distance: "same" below it.
    let negatives = d.iter().filter(|p| !p.1).count();
    let (mut correct, mut best) = (negatives, negatives);
    for p in &d {
        correct = if p.1 { correct + 1 } else { correct - 1 };
        best = best.max(correct);
    }
    (best as f64 / d.len() as f64, one_nn(train, train_y, test, test_y))
}

fn main() -> anyhow_free::Result<()> {
    let start = Instant::now();
    let dev = Device::Cpu;
    let (pixels, labels) = digits::load()?;
    let n = labels.len();
    // A fixed shuffle, then 1,297 training and 500 held-out images.
    let mut rng = Rng(0x5EED_0FD1_6175);
    let split = Split::new(&pixels, &labels, &mut rng, &dev)?;
    let (train_t, test_t, train_y, test_y) = (&split.train, &split.test, &split.train_y, &split.test_y);
    // Held-out pairs for the pair accuracy: 2,000 same-digit and 2,000 different-digit.
    let mut test_class: Vec<Vec<usize>> = vec![Vec::new(); 10];
    for (i, &y) in test_y.iter().enumerate() {
        test_class[usize::from(y)].push(i);
    }
    let mut pairs = Vec::new();
    while pairs.len() < 4000 {
        let i = rng.below(test_y.len());
        let j = if pairs.len() % 2 == 0 {
            let c = &test_class[usize::from(test_y[i])];
            c[rng.below(c.len())]
        } else {
            rng.below(test_y.len())
        };
        let same = test_y[i] == test_y[j];
        if i != j && same == (pairs.len() % 2 == 0) {
            pairs.push((i, j));
        }
    }

    // A reproducible initialisation (torch's default for Linear: U(±1/√fan_in)).
    let (net, varmap) = net(&mut rng, &dev)?;
    let report = |net: &digits::Net| -> Result<(f64, f64)> {
        let (tr, te) = (normalised(&net.forward(train_t)?)?, normalised(&net.forward(test_t)?)?);
        Ok(evaluate(&tr, train_y, &te, test_y, &pairs))
    };
    let raw = {
        let (tr, te) = (normalised(train_t)?, normalised(test_t)?);
        evaluate(&tr, train_y, &te, test_y, &pairs)
    };
    let before = report(&net)?;

    let mut opt =
        AdamW::new(varmap.all_vars(), ParamsAdamW { lr: 1e-2, weight_decay: 1e-4, ..Default::default() })?;
    let loss_fn = HingeEmbedding::new().margin(MARGIN);
    println!(
        "training: {TRAIN} images, {STEPS} steps of {BATCH} pairs, hinge_embedding(1 - cos, margin {MARGIN})"
    );
    let mut curve = Vec::new();
    for step in 0..STEPS {
        let (ii, jj, yy) = split.pairs(&mut rng, BATCH);
        let emb = net.forward(train_t)?;
        let e1 = emb.index_select(&Tensor::new(ii, &dev)?, 0)?;
        let e2 = emb.index_select(&Tensor::new(jj, &dev)?, 0)?;
        let x = cosine_similarity(&e1, &e2)?.affine(-1.0, 1.0)?;
        let loss = hinge_embedding_with(&x, &Tensor::new(yy, &dev)?, loss_fn, Reduction::Mean)?;
        opt.backward_step(&loss)?;
        let l = loss.to_scalar::<f32>()?;
        curve.push(l);
        if step % 30 == 0 || step == STEPS - 1 {
            println!("  step {step:>3}  loss {l:.4}");
        }
    }
    let after = report(&net)?;
    println!("held-out ({} images)          pair accuracy   1-NN accuracy", n - TRAIN);
    println!("  raw pixels (reference)        {:>6.1}%         {:>6.1}%", raw.0 * 100.0, raw.1 * 100.0);
    println!("  embedding before training     {:>6.1}%         {:>6.1}%", before.0 * 100.0, before.1 * 100.0);
    println!("  embedding after training      {:>6.1}%         {:>6.1}%", after.0 * 100.0, after.1 * 100.0);
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    assert!(curve[STEPS - 1] < curve[0], "the loss went down");
    Ok(())
}

/// A boxed-error `Result` for `main` (no extra dependency).
mod anyhow_free {
    /// Any error.
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
}
