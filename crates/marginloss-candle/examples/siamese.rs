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

use std::io::Read;
use std::time::Instant;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use marginloss_candle::{cosine_similarity, hinge_embedding_with, HingeEmbedding, Reduction};

const TRAIN: usize = 1297;
const BATCH: usize = 256;
const STEPS: usize = 300;
const MARGIN: f64 = 0.2;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [−a, a).
    fn symmetric(&mut self, a: f64) -> f32 {
        (a * (2.0 * (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 1.0)) as f32
    }
}

/// Pixels scaled to [0, 1] (row-major, 64 per image) and labels.
fn load() -> std::io::Result<(Vec<f32>, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: Vec<u8> = line.split(',').map(|s| s.parse().expect("integer")).collect();
        assert_eq!(v.len(), 65, "64 pixels and a label");
        pixels.extend(v[..64].iter().map(|&p| f32::from(p) / 16.0));
        labels.push(v[64]);
    }
    Ok((pixels, labels))
}

struct Net {
    l1: Linear,
    l2: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)
    }
}

/// Row-normalised embeddings as a `Vec` of rows.
fn normalised(e: &Tensor) -> Result<Vec<Vec<f32>>> {
    let n = e.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-8)?;
    e.broadcast_div(&n)?.to_vec2::<f32>()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

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
    let pair_acc = best as f64 / d.len() as f64;
    let hits = test
        .iter()
        .zip(test_y)
        .filter(|(t, &y)| {
            let nn =
                (0..train.len()).max_by(|&a, &b| dot(t, &train[a]).total_cmp(&dot(t, &train[b]))).unwrap();
            train_y[nn] == y
        })
        .count();
    (pair_acc, hits as f64 / test.len() as f64)
}

fn main() -> anyhow_free::Result<()> {
    let start = Instant::now();
    let dev = Device::Cpu;
    let (pixels, labels) = load()?;
    let n = labels.len();
    // A fixed shuffle, then 1,297 training and 500 held-out images.
    let mut rng = Rng(0x5EED_0FD1_6175);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let gather = |idx: &[usize]| -> (Vec<f32>, Vec<u8>) {
        (
            idx.iter().flat_map(|&i| pixels[i * 64..i * 64 + 64].to_vec()).collect(),
            idx.iter().map(|&i| labels[i]).collect(),
        )
    };
    let (train_x, train_y) = gather(&order[..TRAIN]);
    let (test_x, test_y) = gather(&order[TRAIN..]);
    let train_t = Tensor::from_vec(train_x, (TRAIN, 64), &dev)?;
    let test_t = Tensor::from_vec(test_x, (n - TRAIN, 64), &dev)?;
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

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let net = Net { l1: linear(64, 32, vb.pp("l1"))?, l2: linear(32, 16, vb.pp("l2"))? };
    // A reproducible initialisation (torch's default for Linear: U(±1/√fan_in)).
    {
        let vars = varmap.data().lock().expect("varmap");
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let v = &vars[name];
            let fan_in = if name.starts_with("l1") { 64.0 } else { 32.0 };
            let init: Vec<f32> =
                (0..v.elem_count()).map(|_| rng.symmetric(1.0 / f64::sqrt(fan_in))).collect();
            v.set(&Tensor::from_vec(init, v.shape(), &dev)?)?;
        }
    }
    let report = |net: &Net| -> Result<(f64, f64)> {
        let (tr, te) = (normalised(&net.forward(&train_t)?)?, normalised(&net.forward(&test_t)?)?);
        Ok(evaluate(&tr, &train_y, &te, &test_y, &pairs))
    };
    let raw = {
        let (tr, te) = (normalised(&train_t)?, normalised(&test_t)?);
        evaluate(&tr, &train_y, &te, &test_y, &pairs)
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
            ii.push(i as u32);
            jj.push(j as u32);
            yy.push(if same { 1f32 } else { -1.0 });
        }
        let emb = net.forward(&train_t)?;
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
