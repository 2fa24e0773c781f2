//! What the candle digit examples share (`siamese`, `triplet_digits`; not an example
//! itself): the data and its split, the network and its reproducible initialisation, the
//! pair sampler and the 1-nearest-neighbour evaluation.
#![allow(dead_code)] // each example uses a part

use std::io::Read;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder, VarMap};

/// Training images; the remaining 500 are held out.
pub const TRAIN: usize = 1297;

/// xorshift64*: a small deterministic generator.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [−a, a).
    pub fn symmetric(&mut self, a: f64) -> f32 {
        (a * (2.0 * (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 1.0)) as f32
    }
}

/// Pixels scaled to [0, 1] (row-major, 64 per image) and labels.
pub fn load() -> std::io::Result<(Vec<f32>, Vec<u8>)> {
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

/// The digits split by a fixed shuffle drawn from `rng`: [`TRAIN`] training images and the
/// held-out rest, as tensors, with their labels and the training images of each digit.
pub struct Split {
    pub train: Tensor,
    pub test: Tensor,
    pub train_y: Vec<u8>,
    pub test_y: Vec<u8>,
    pub by_class: Vec<Vec<usize>>,
}

impl Split {
    pub fn new(pixels: &[f32], labels: &[u8], rng: &mut Rng, dev: &Device) -> Result<Split> {
        let n = labels.len();
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
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 10];
        for (i, &y) in train_y.iter().enumerate() {
            by_class[usize::from(y)].push(i);
        }
        Ok(Split {
            train: Tensor::from_vec(train_x, (TRAIN, 64), dev)?,
            test: Tensor::from_vec(test_x, (n - TRAIN, 64), dev)?,
            train_y,
            test_y,
            by_class,
        })
    }

    /// `count` training pairs, alternately the same digit (`y = 1`) and different digits
    /// (`y = −1`): the two index lists and the targets.
    pub fn pairs(&self, rng: &mut Rng, count: usize) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let (mut ii, mut jj, mut yy) = (Vec::new(), Vec::new(), Vec::new());
        while ii.len() < count {
            let i = rng.below(TRAIN);
            let same = ii.len() % 2 == 0;
            let j = if same {
                let c = &self.by_class[usize::from(self.train_y[i])];
                c[rng.below(c.len())]
            } else {
                rng.below(TRAIN)
            };
            if i == j || (self.train_y[i] == self.train_y[j]) != same {
                continue;
            }
            ii.push(i as u32);
            jj.push(j as u32);
            yy.push(if same { 1f32 } else { -1.0 });
        }
        (ii, jj, yy)
    }

    /// 1-NN accuracy of `net`'s held-out embeddings against its training ones (cosine).
    pub fn one_nn(&self, net: &impl Module) -> Result<f64> {
        let (tr, te) = (normalised(&net.forward(&self.train)?)?, normalised(&net.forward(&self.test)?)?);
        Ok(one_nn(&tr, &self.train_y, &te, &self.test_y))
    }
}

/// Linear 64 → 32, ReLU, Linear 32 → 16.
pub struct Net {
    l1: Linear,
    l2: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)
    }
}

/// The network with weights drawn from `rng` (torch's default for Linear: U(±1/√fan_in)),
/// parameters in name order.
pub fn net(rng: &mut Rng, dev: &Device) -> Result<(Net, VarMap)> {
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
pub fn normalised(e: &Tensor) -> Result<Vec<Vec<f32>>> {
    let n = e.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-8)?;
    e.broadcast_div(&n)?.to_vec2::<f32>()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// 1-NN accuracy (cosine) of the test rows against the training rows.
pub fn one_nn(train: &[Vec<f32>], train_y: &[u8], test: &[Vec<f32>], test_y: &[u8]) -> f64 {
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
