//! A siamese embedding of handwritten digits trained in burn with `hinge_embedding` on
//! the cosine distance of sampled pairs (the burn twin of marginloss-candle's example).
//!
//! ```text
//! cargo run --release -p marginloss-burn --example siamese
//! ```
//!
//! Data: the 1,797 8×8 digits of UCI "Optical Recognition of Handwritten Digits" as
//! scikit-learn ships them (`crates/marginloss-candle/data/digits.csv.gz`, CC BY 4.0),
//! split into 1,297 training and 500 held-out images by a fixed shuffle. Model: Linear
//! 64 → 32, ReLU, Linear 32 → 16 on `Device::flex().autodiff()`. Each step samples 256
//! training pairs (half the same digit, y = 1; half different digits, y = −1), takes the
//! cosine distance `x = 1 − cos(e1, e2)` of their embeddings and minimises
//! `HingeEmbeddingLoss(margin = 0.2)` with AdamW. Before and after training it reports, on
//! the held-out images, the accuracy of "same digit?" on 4,000 balanced pairs at the best
//! distance threshold, and the 1-nearest-neighbour accuracy.

use std::time::Instant;

use burn::nn::LinearConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use marginloss_burn::{cosine_similarity, hinge_embedding, CosineSimilarity, HingeEmbedding, Reduction};

#[path = "support/digits.rs"]
mod digits;
use digits::{dot, normalised, one_nn, Net, Rng};

const TRAIN: usize = 1297;
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let dev = Device::flex().autodiff();
    dev.seed(0x5EED);
    let (pixels, labels) = digits::load()?;
    let n = labels.len();
    let mut rng = Rng(0x5EED_0FD1_6175);
    let order = digits::shuffled(n, &mut || rng.next());
    let gather = |idx: &[usize]| -> (Vec<f32>, Vec<u8>) {
        (
            idx.iter().flat_map(|&i| pixels[i * 64..i * 64 + 64].to_vec()).collect(),
            idx.iter().map(|&i| labels[i]).collect(),
        )
    };
    let (train_x, train_y) = gather(&order[..TRAIN]);
    let (test_x, test_y) = gather(&order[TRAIN..]);
    let train_t = Tensor::<2>::from_data(TensorData::new(train_x, [TRAIN, 64]), &dev);
    let test_t = Tensor::<2>::from_data(TensorData::new(test_x, [n - TRAIN, 64]), &dev);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 10];
    for (i, &y) in train_y.iter().enumerate() {
        by_class[usize::from(y)].push(i);
    }
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

    let mut net = Net { l1: LinearConfig::new(64, 32).init(&dev), l2: LinearConfig::new(32, 16).init(&dev) };
    let report = |net: &Net| {
        let (tr, te) = (normalised(net.forward(train_t.clone())), normalised(net.forward(test_t.clone())));
        evaluate(&tr, &train_y, &te, &test_y, &pairs)
    };
    let raw = evaluate(&normalised(train_t.clone()), &train_y, &normalised(test_t.clone()), &test_y, &pairs);
    let before = report(&net);

    let mut opt = AdamWConfig::new().with_weight_decay(1e-4).init();
    let loss_fn = HingeEmbedding::new().margin(MARGIN);
    println!(
        "training: {TRAIN} images, {STEPS} steps of {BATCH} pairs, hinge_embedding(1 - cos, margin {MARGIN})"
    );
    let mut curve = Vec::new();
    for step in 0..STEPS {
        let (mut ii, mut jj, mut yy) = (Vec::new(), Vec::new(), Vec::new());
        while ii.len() < BATCH {
            let i = rng.below(TRAIN);
            let same = ii.len() % 2 == 0;
            let j = if same {
                let c = &by_class[usize::from(train_y[i])];
                c[rng.below(c.len())]
            } else {
                rng.below(TRAIN)
            };
            if i == j || (train_y[i] == train_y[j]) != same {
                continue;
            }
            ii.push(i as i64);
            jj.push(j as i64);
            yy.push(if same { 1f32 } else { -1.0 });
        }
        let emb = net.forward(train_t.clone());
        let e1 = emb.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(ii, [BATCH]), &dev));
        let e2 = emb.select(0, Tensor::<1, Int>::from_data(TensorData::new(jj, [BATCH]), &dev));
        // (BATCH, 1) cosine distances against (BATCH, 1) labels.
        let x = cosine_similarity(e1, e2, CosineSimilarity::new())?.neg().add_scalar(1.0);
        let y = Tensor::<2>::from_data(TensorData::new(yy, [BATCH, 1]), &dev);
        let loss = hinge_embedding(x, y, loss_fn, Reduction::Mean)?;
        let l: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = opt.step(1e-2, net, grads);
        curve.push(l);
        if step % 30 == 0 || step == STEPS - 1 {
            println!("  step {step:>3}  loss {l:.4}");
        }
    }
    let after = report(&net);
    println!("held-out ({} images)          pair accuracy   1-NN accuracy", n - TRAIN);
    println!("  raw pixels (reference)        {:>6.1}%         {:>6.1}%", raw.0 * 100.0, raw.1 * 100.0);
    println!("  embedding before training     {:>6.1}%         {:>6.1}%", before.0 * 100.0, before.1 * 100.0);
    println!("  embedding after training      {:>6.1}%         {:>6.1}%", after.0 * 100.0, after.1 * 100.0);
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    assert!(curve[STEPS - 1] < curve[0], "the loss went down");
    Ok(())
}
