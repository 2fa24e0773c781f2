//! The UCI handwritten digits the examples train on (shared by `siamese` and
//! `linear_svm`; not an example itself).

use std::io::Read;

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
