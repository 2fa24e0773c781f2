//! An embedding of handwritten digits trained in burn with the batch-hard triplet loss on
//! P × K batches, next to the `siamese` example's pair loss trained the same way (the burn
//! twin of marginloss-candle's `triplet_digits`).
//!
//! ```text
//! cargo run --release -p marginloss-burn --example triplet_digits
//! ```
//!
//! Data and split as the `siamese` example: the 1,797 8×8 digits of UCI "Optical
//! Recognition of Handwritten Digits" as scikit-learn ships them
//! (`crates/marginloss-candle/data/digits.csv.gz`, CC BY 4.0), the same fixed shuffle
//! into 1,297 training and 500 held-out images. Model as there: Linear 64 → 32, ReLU,
//! Linear 32 → 16 on `Device::flex().autodiff()` (burn's default Linear initialisation,
//! torch's U(±1/√fan_in), from a fixed seed), AdamW (lr 1e-2, weight decay 1e-4).
//!
//! * **Triplet:** each step samples a P × K batch (P = 10 digits × K = 8 images each) and
//!   minimises `batch_hard_triplet` with Hermans et al.'s soft margin
//!   (`softplus(hp − hn)`), rows L2-normalised, euclidean distance: per anchor its
//!   farthest same-digit and nearest other-digit image, mined inside the batch by the
//!   core's fused kernel.
//! * **Pairs (the `siamese` example's loss):** each step samples 256 pairs (half the same
//!   digit) and minimises `hinge_embedding(1 − cos(e1, e2), margin 0.2)`.
//!
//! Both train from the same initial weights for 300 steps. The triplet run prints its
//! loss every 50 steps; then the table gives, for the 500 held-out images, the
//! 1-nearest-neighbour accuracy (cosine distance to the 1,297 training images, as
//! `siamese` reports it) of the raw pixels (a reference without any model), of the
//! untrained embedding, and of the embedding after each loss, with the wall time of each
//! training run. The batches are drawn from the same random stream as in the candle
//! example, so the figures are comparable with its table, not bitwise equal (the initial
//! weights come from burn's generator).

use std::time::Instant;

use burn::nn::LinearConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use marginloss_burn::{
    batch_hard_triplet, cosine_similarity, hinge_embedding, BatchHardTriplet, BatchReduction,
    CosineSimilarity, HingeEmbedding, Reduction,
};

#[path = "support/digits.rs"]
mod digits;
use digits::{normalised, one_nn, Net, Rng};

const TRAIN: usize = 1297;
const STEPS: usize = 300;
const P: usize = 10;
const K: usize = 8;
const PAIRS: usize = 256;
const MARGIN: f64 = 0.2;
const LR: f64 = 1e-2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let dev = Device::flex().autodiff();
    dev.seed(0x5EED);
    let (pixels, labels) = digits::load()?;
    let n = labels.len();
    // The siamese example's shuffle and split.
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
    let accuracy = |net: &Net| {
        let (tr, te) = (normalised(net.forward(train_t.clone())), normalised(net.forward(test_t.clone())));
        one_nn(&tr, &train_y, &te, &test_y)
    };
    let raw = one_nn(&normalised(train_t.clone()), &train_y, &normalised(test_t.clone()), &test_y);
    // One initialisation, cloned: both losses start from the same weights.
    let init = Net { l1: LinearConfig::new(64, 32).init(&dev), l2: LinearConfig::new(32, 16).init(&dev) };
    let before = accuracy(&init);

    // Batch-hard triplet on P × K batches.
    let mut tnet = init.clone();
    let mut opt = AdamWConfig::new().with_weight_decay(1e-4).init();
    let loss_fn = BatchHardTriplet::new().soft(true).normalize(true);
    println!(
        "triplet: {STEPS} steps of P x K = {P} x {K} images, batch_hard_triplet(soft margin, normalize, euclidean)"
    );
    let t0 = Instant::now();
    let mut curve = Vec::new();
    for step in 0..STEPS {
        let (mut idx, mut y) = (Vec::with_capacity(P * K), Vec::with_capacity(P * K));
        // P distinct digits (all ten here), K distinct images of each.
        let mut classes: Vec<usize> = (0..10).collect();
        for i in (1..10).rev() {
            classes.swap(i, rng.below(i + 1));
        }
        for &c in &classes[..P] {
            let pool = &by_class[c];
            let mut picked: Vec<usize> = Vec::with_capacity(K);
            while picked.len() < K {
                let i = pool[rng.below(pool.len())];
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            idx.extend(picked.iter().map(|&i| i as i64));
            y.extend(std::iter::repeat_n(c as i64, K));
        }
        let x = train_t.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(idx, [P * K]), &dev));
        let emb = tnet.forward(x);
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [P * K]), &dev);
        let loss = batch_hard_triplet(emb, y, loss_fn, BatchReduction::Mean)?;
        let l: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &tnet);
        tnet = opt.step(LR, tnet, grads);
        curve.push(l);
        if step % 50 == 0 || step == STEPS - 1 {
            println!("  step {step:>3}  loss {l:.4}");
        }
    }
    let triplet_time = t0.elapsed().as_secs_f64();
    let triplet = accuracy(&tnet);

    // The siamese example's pair loss, from the same initial weights.
    let mut pnet = init;
    let mut opt = AdamWConfig::new().with_weight_decay(1e-4).init();
    let pair_fn = HingeEmbedding::new().margin(MARGIN);
    let t0 = Instant::now();
    for _ in 0..STEPS {
        let (mut ii, mut jj, mut yy) = (Vec::new(), Vec::new(), Vec::new());
        while ii.len() < PAIRS {
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
        let emb = pnet.forward(train_t.clone());
        let e1 = emb.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(ii, [PAIRS]), &dev));
        let e2 = emb.select(0, Tensor::<1, Int>::from_data(TensorData::new(jj, [PAIRS]), &dev));
        // (PAIRS, 1) cosine distances against (PAIRS, 1) labels.
        let x = cosine_similarity(e1, e2, CosineSimilarity::new())?.neg().add_scalar(1.0);
        let y = Tensor::<2>::from_data(TensorData::new(yy, [PAIRS, 1]), &dev);
        let loss = hinge_embedding(x, y, pair_fn, Reduction::Mean)?;
        let grads = GradientsParams::from_grads(loss.backward(), &pnet);
        pnet = opt.step(LR, pnet, grads);
    }
    let pair_time = t0.elapsed().as_secs_f64();
    let pairs = accuracy(&pnet);

    println!("held-out ({} images)                               1-NN accuracy   train time", n - TRAIN);
    println!("  raw pixels (reference)                                {:>6.1}%", raw * 100.0);
    println!("  embedding before training                             {:>6.1}%", before * 100.0);
    println!(
        "  pairs: hinge_embedding (the siamese example's loss)   {:>6.1}%        {pair_time:.2} s",
        pairs * 100.0
    );
    println!(
        "  P x K batches: batch_hard_triplet                     {:>6.1}%        {triplet_time:.2} s",
        triplet * 100.0
    );
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    let (head, tail) = (&curve[..20], &curve[STEPS - 20..]);
    assert!(tail.iter().sum::<f32>() < head.iter().sum::<f32>(), "the loss went down");
    Ok(())
}
