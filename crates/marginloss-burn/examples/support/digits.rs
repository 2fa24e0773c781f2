//! What the burn digit examples share (`siamese`, `triplet_digits`, `linear_svm`; not an
//! example itself): the UCI handwritten digits, a fixed shuffle, the generator, the
//! embedding network and the 1-nearest-neighbour evaluation.
#![allow(dead_code)] // each example uses a part

use std::io::Read;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::Tensor;

/// xorshift64*: a small deterministic generator (`tools/linear_svm_reference.py` repeats
/// it for scikit-learn).
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
}

/// The embedding network: Linear 64 → 32, ReLU, Linear 32 → 16.
#[derive(Module, Debug)]
pub struct Net {
    pub l1: Linear,
    pub l2: Linear,
}

impl Net {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.l2.forward(relu(self.l1.forward(x)))
    }
}

/// Row-normalised rows of `e` as `Vec`s.
pub fn normalised(e: Tensor<2>) -> Vec<Vec<f32>> {
    let [n, k] = e.dims();
    let v: Vec<f32> = e.into_data().try_into_vec_as::<f32>().expect("f32");
    (0..n)
        .map(|i| {
            let row = &v[i * k..(i + 1) * k];
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-8);
            row.iter().map(|x| x / norm).collect()
        })
        .collect()
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

/// Pixels scaled to [0, 1] (row-major, 64 per image) and labels, from
/// `crates/marginloss-candle/data/digits.csv.gz`.
pub fn load() -> std::io::Result<(Vec<f32>, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../marginloss-candle/data/digits.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: Vec<u8> = line
            .split(',')
            .map(|s| s.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
            .collect::<std::io::Result<_>>()?;
        if v.len() != 65 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "expected 64 pixels and a label",
            ));
        }
        pixels.extend(v[..64].iter().map(|&p| f32::from(p) / 16.0));
        labels.push(v[64]);
    }
    Ok((pixels, labels))
}

/// `0..n` in a fixed order: Fisher–Yates from the last index down, swapping `i` with
/// `next() % (i + 1)` (`tools/linear_svm_reference.py` repeats it for scikit-learn).
pub fn shuffled(n: usize, next: &mut dyn FnMut() -> u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}
