//! Awkward batches for the adapters' batch-loss sweeps (included by
//! `crates/marginloss-{candle,burn}/tests/batch.rs`): a small deterministic generator and
//! one random case of the kind the core's `fuzz_batch` target decodes, with the core's
//! answer for it.
#![allow(dead_code)]

use marginloss::batch::{
    Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive, SemihardTriplet,
};
use marginloss::{Mode, Rows};

/// xorshift64*: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [−1, 1).
    pub fn unit(&mut self) -> f64 {
        2.0 * (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.unit()).collect()
    }
    /// `0..k`.
    pub fn below(&mut self, k: u64) -> usize {
        (self.next() % k) as usize
    }
}

/// One of the four batch losses with its options.
#[derive(Clone, Copy, Debug)]
pub enum Opts {
    Hard(BatchHardTriplet),
    All(BatchAllTriplet),
    Semi(SemihardTriplet),
    Pair(PairContrastive),
}

/// A batch and a call: `(n, dim)` embeddings (0 rows or columns included) with NaN, inf,
/// 1e300 and 0 sprinkled in, labels from 1–4 classes (now and then as many as N is not),
/// a margin that may be negative, NaN or huge, either mode, any distance, `normalize` one
/// time in three, any reduction, tracked or not.
pub struct Case {
    pub n: usize,
    pub dim: usize,
    pub x: Vec<f64>,
    pub y: Vec<i64>,
    pub opts: Opts,
    pub r: BatchReduction,
    pub tracked: bool,
}

pub const REDUCTIONS: [BatchReduction; 4] =
    [BatchReduction::Mean, BatchReduction::MeanNonzero, BatchReduction::Sum, BatchReduction::None];

impl Case {
    pub fn draw(rng: &mut Rng) -> Case {
        let (n, dim) = (rng.below(9), rng.below(4));
        let mut x = rng.vec(n * dim);
        for v in x.iter_mut() {
            *v = match rng.below(40) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => 1e300,
                3 => 0.0,
                _ => *v,
            };
        }
        let classes = 1 + rng.below(4) as u64;
        let labels = if rng.below(10) == 0 { rng.below(9) } else { n };
        let y = (0..labels).map(|_| (rng.next() % classes) as i64).collect();
        let mode = if rng.below(2) == 0 { Mode::Strict } else { Mode::TorchCompat };
        let margin = [0.2, -0.5, f64::NAN, 1e300][rng.below(4)];
        let d =
            [BatchDistance::Euclidean, BatchDistance::SquaredEuclidean, BatchDistance::Cosine][rng.below(3)];
        let nz = rng.below(3) == 0;
        let opts = match rng.below(4) {
            0 => Opts::Hard(BatchHardTriplet::new().margin(margin).distance(d).normalize(nz).mode(mode)),
            1 => Opts::All(BatchAllTriplet::new().margin(margin).distance(d).normalize(nz).mode(mode)),
            2 => Opts::Semi(SemihardTriplet::new().margin(margin).distance(d).normalize(nz).mode(mode)),
            _ => Opts::Pair(PairContrastive::new().neg_margin(margin).distance(d).normalize(nz).mode(mode)),
        };
        Case { n, dim, x, y, opts, r: REDUCTIONS[rng.below(4)], tracked: rng.below(2) == 0 }
    }

    /// The core's forward on the case (f64).
    pub fn core(&self) -> marginloss::Result<Vec<f64>> {
        let b = Batch::new(Rows::new(&self.x, self.n, self.dim)?, &self.y[..]);
        Ok(match self.opts {
            Opts::Hard(l) => l.forward(&b, self.r)?,
            Opts::All(l) => l.forward(&b, self.r)?,
            Opts::Semi(l) => l.forward(&b, self.r)?,
            Opts::Pair(l) => l.forward(&b, self.r)?,
        }
        .into_vec())
    }

    pub fn describe(&self, k: usize) -> String {
        format!(
            "case {k}: {:?} {:?} n {} dim {} labels {:?} x {:?}",
            self.opts, self.r, self.n, self.dim, self.y, self.x
        )
    }
}

/// `got` holds the core's values bit for bit (any NaN equal to any NaN).
pub fn same_bits(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (a, b) in got.iter().zip(want) {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what}: {got:?} vs {want:?}");
    }
}
