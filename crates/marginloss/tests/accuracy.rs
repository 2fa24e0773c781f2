//! Reduction accuracy: the f32 mean of hinge_embedding over N = 10^7 is at least as close
//! to the exact mean as torch 2.15's (fixture written by `tools/gen_accuracy.py` from the
//! same splitmix64 data).

mod common;

use marginloss::{HingeEmbedding, Reduction};

fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn f32_mean_over_ten_million_is_no_worse_than_torch() {
    let text = std::fs::read_to_string(common::fixtures_dir().join("accuracy/hinge_embedding_mean_1e7.json"))
        .unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = fx["n"].as_u64().unwrap() as usize;
    let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 1..=n as u64 {
        let z = splitmix64(i);
        x.push(((z >> 40) as f64 / (1u64 << 24) as f64 * 2.0) as f32);
        y.push(if (z >> 39) & 1 == 1 { 1.0f32 } else { -1.0 });
    }
    for (k, want) in fx["first_x"].as_array().unwrap().iter().enumerate() {
        assert_eq!(f64::from(x[k]), want.as_f64().unwrap(), "generator drifted from the fixture");
    }
    let mean = HingeEmbedding::new().forward(&x, &y, Reduction::Mean).unwrap().scalar().unwrap();
    let exact = fx["exact_mean"].as_f64().unwrap();
    let torch_err = fx["torch_abs_error"].as_f64().unwrap();
    let ours = (f64::from(mean) - exact).abs();
    let half_ulp = f64::from(f32::EPSILON) * exact / 2.0;
    assert!(ours <= torch_err, "ours {ours:e} > torch {torch_err:e}");
    assert!(ours <= half_ulp, "not correctly rounded: error {ours:e}");
}
