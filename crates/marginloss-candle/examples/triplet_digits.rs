//! An embedding of handwritten digits trained with the batch-hard triplet loss on P × K
//! batches, next to the `siamese` example's pair loss trained the same way.
//!
//! ```text
//! cargo run --release -p marginloss-candle --example triplet_digits
//! ```
//!
//! Data and split as the `siamese` example: the 1,797 8×8 digits of UCI "Optical
//! Recognition of Handwritten Digits" (`data/digits.csv.gz`, CC BY 4.0; see
//! `data/README.md`), the same fixed shuffle into 1,297 training and 500 held-out images.
//! Model as there: Linear 64 → 32, ReLU, Linear 32 → 16, torch's default initialisation
//! from a fixed seed, AdamW (lr 1e-2, weight decay 1e-4).
//!
//! * **Triplet:** each step samples a P × K batch (P = 10 digits × K = 8 images each) and
//!   minimises `batch_hard_triplet_with` with Hermans et al.'s soft margin
//!   (`softplus(hp − hn)`), rows L2-normalised, euclidean distance: per anchor its
//!   farthest same-digit and nearest other-digit image. (With the hinge and margin 0.2 the
//!   held-out 1-NN accuracy came out lower in a try, 94.8%; margin 0.5, 96.6%.)
//! * **Pairs (the `siamese` example's loss):** each step samples 256 pairs (half the same
//!   digit) and minimises `hinge_embedding(1 − cos(e1, e2), margin 0.2)`.
//!
//! Both train from the same initial weights for the same number of steps; the table
//! reports the held-out 1-nearest-neighbour accuracy (cosine distance to the training
//! embeddings), as `siamese` does. (The `siamese` example itself draws its pairs and
//! weights from a different point of the random stream; it prints 97.0% for the pair
//! loss.)

use std::io::Read;
use std::time::Instant;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use marginloss_candle::{
    batch_hard_triplet_with, cosine_similarity, hinge_embedding_with, BatchHardTriplet, BatchReduction,
    HingeEmbedding, Reduction,
};

const TRAIN: usize = 1297;
const STEPS: usize = 300;
const P: usize = 10;
const K: usize = 8;
const PAIRS: usize = 256;
const MARGIN: f64 = 0.2;

/// xorshift64*: a small deterministic generator.
#[derive(Clone)]
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

/// The network with weights drawn from `rng` (torch's default for Linear: U(±1/√fan_in)).
fn net(rng: &mut Rng, dev: &Device) -> Result<(Net, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let net = Net { l1: linear(64, 32, vb.pp("l1"))?, l2: linear(32, 16, vb.pp("l2"))? };
    {
        let vars = varmap.data().lock().expect("varmap");
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let v = &vars[name];
            let fan_in = if name.starts_with("l1") { 64.0 } else { 32.0 };
            let init: Vec<f32> =
                (0..v.elem_count()).map(|_| rng.symmetric(1.0 / f64::sqrt(fan_in))).collect();
            v.set(&Tensor::from_vec(init, v.shape(), dev)?)?;
        }
    }
    Ok((net, varmap))
}

/// Row-normalised embeddings as a `Vec` of rows.
fn normalised(e: &Tensor) -> Result<Vec<Vec<f32>>> {
    let n = e.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-8)?;
    e.broadcast_div(&n)?.to_vec2::<f32>()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// 1-NN accuracy (cosine) of the test rows against the training rows.
fn one_nn(train: &[Vec<f32>], train_y: &[u8], test: &[Vec<f32>], test_y: &[u8]) -> f64 {
    let hits = test
        .iter()
        .zip(test_y)
        .filter(|(t, &y)| {
            let nn =
                (0..train.len()).max_by(|&a, &b| dot(t, &train[a]).total_cmp(&dot(t, &train[b]))).unwrap();
            train_y[nn] == y
        })
        .count();
    hits as f64 / test.len() as f64
}

fn main() -> Result<()> {
    let start = Instant::now();
    let dev = Device::Cpu;
    let (pixels, labels) = load()?;
    let n = labels.len();
    // The siamese example's shuffle and split.
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
    let accuracy = |net: &Net| -> Result<f64> {
        let (tr, te) = (normalised(&net.forward(&train_t)?)?, normalised(&net.forward(&test_t)?)?);
        Ok(one_nn(&tr, &train_y, &te, &test_y))
    };
    let raw = one_nn(&normalised(&train_t)?, &train_y, &normalised(&test_t)?, &test_y);
    let init_rng = rng.clone();
    let params = ParamsAdamW { lr: 1e-2, weight_decay: 1e-4, ..Default::default() };

    // Batch-hard triplet on P × K batches.
    let (tnet, tvars) = net(&mut init_rng.clone(), &dev)?;
    let before = accuracy(&tnet)?;
    let mut opt = AdamW::new(tvars.all_vars(), params.clone())?;
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
            idx.extend(picked.iter().map(|&i| i as u32));
            y.extend(std::iter::repeat_n(c as u8, K));
        }
        let x = train_t.index_select(&Tensor::new(idx, &dev)?, 0)?;
        let emb = tnet.forward(&x)?;
        let loss = batch_hard_triplet_with(&emb, &Tensor::new(y, &dev)?, loss_fn, BatchReduction::Mean)?;
        opt.backward_step(&loss)?;
        let l = loss.to_scalar::<f32>()?;
        curve.push(l);
        if step % 50 == 0 || step == STEPS - 1 {
            println!("  step {step:>3}  loss {l:.4}");
        }
    }
    let triplet_time = t0.elapsed().as_secs_f64();
    let triplet = accuracy(&tnet)?;

    // The siamese example's pair loss, from the same initial weights.
    let (pnet, pvars) = net(&mut init_rng.clone(), &dev)?;
    let mut opt = AdamW::new(pvars.all_vars(), params)?;
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
            ii.push(i as u32);
            jj.push(j as u32);
            yy.push(if same { 1f32 } else { -1.0 });
        }
        let emb = pnet.forward(&train_t)?;
        let e1 = emb.index_select(&Tensor::new(ii, &dev)?, 0)?;
        let e2 = emb.index_select(&Tensor::new(jj, &dev)?, 0)?;
        let x = cosine_similarity(&e1, &e2)?.affine(-1.0, 1.0)?;
        let loss = hinge_embedding_with(&x, &Tensor::new(yy, &dev)?, pair_fn, Reduction::Mean)?;
        opt.backward_step(&loss)?;
    }
    let pair_time = t0.elapsed().as_secs_f64();
    let pairs = accuracy(&pnet)?;

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
