//! Shared helpers: deterministic data, the criterion configuration and the fused /
//! reference pair every topic benches.

pub mod batch;
pub mod class;
pub mod distance;
pub mod pointwise;
pub mod rows;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use marginloss::Rows;

/// `x` as rows of `cols` elements (as many rows as fit).
pub fn mat<T>(x: &[T], cols: usize) -> Rows<'_, T> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    Rows::new(x, rows, cols).expect("a whole number of rows")
}

/// The configuration of every group: short runs, few samples (the machine is shared).
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

/// A tiny deterministic xorshift64* generator.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator with a fixed non-zero state derived from `seed`.
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// `n` labels in {−1, +1}.
    pub fn signs(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| if self.next_u64() >> 63 == 0 { -1.0 } else { 1.0 }).collect()
    }

    /// `n` labels in {0, 1}.
    pub fn bits(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.next_u64() >> 63) as f32).collect()
    }

    /// `n` class indices in `0..classes`.
    pub fn classes(&mut self, n: usize, classes: usize) -> Vec<i64> {
        (0..n).map(|_| self.below(classes) as i64).collect()
    }
}

/// Bytes of `count` elements of `f32`.
pub const fn f32s(count: usize) -> u64 {
    (count * std::mem::size_of::<f32>()) as u64
}

/// Bytes of `count` elements of `i64`.
pub const fn i64s(count: usize) -> u64 {
    (count * std::mem::size_of::<i64>()) as u64
}

/// Benches `fused` and `reference` side by side in the group `g`, under the parameter
/// `param` (the size), with the throughput `bytes`: what the fused call reads and writes.
pub fn pair<R1, R2>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    param: &str,
    bytes: u64,
    mut fused: impl FnMut() -> R1,
    mut reference: impl FnMut() -> R2,
) {
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::new("fused", param), |b| b.iter(&mut fused));
    g.bench_function(BenchmarkId::new("reference", param), |b| b.iter(&mut reference));
}
