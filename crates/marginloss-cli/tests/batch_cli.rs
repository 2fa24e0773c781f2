//! `marginloss eval|check|bench` for the batch losses, end to end.

use std::path::Path;

use assert_cmd::Command;
use npyz::WriterBuilder;
use serde_json::Value;

fn bin() -> Command {
    Command::cargo_bin("marginloss").expect("binary")
}

fn npy_f32(dir: &Path, name: &str, shape: &[u64], data: &[f32]) -> String {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path.display().to_string()
}

fn npy_i64(dir: &Path, name: &str, data: &[i64]) -> String {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[data.len() as u64])
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path.display().to_string()
}

fn json(args: &[&str]) -> (i32, Value, String) {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v, err)
}

#[test]
fn eval_batch_losses_prints_the_loss_and_gradients_as_json() {
    let dir = tempfile::tempdir().unwrap();
    // x = [0, 1, 3] (one column), labels [7, 7, 9]: triplets (0,1,2) → 0, (1,0,2) → 0.5
    let e = npy_f32(dir.path(), "e.npy", &[3, 1], &[0.0, 1.0, 3.0]);
    let l = npy_i64(dir.path(), "l.npy", &[7, 7, 9]);
    let (code, v, err) =
        json(&["eval", "batch-all-triplet", "--embeddings", &e, "--labels", &l, "--margin", "1.5", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["loss"]["data"][0].as_f64(), Some(0.25));
    assert_eq!(v["grad"]["embeddings"]["shape"], serde_json::json!([3, 1]));
    // only (1,0,2) is active; mean over 2 triplets: ∂(d10 − d12)/2 = [−1/2, (1 + 1)/2, −1/2]
    let g: Vec<f64> =
        v["grad"]["embeddings"]["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(g, vec![-0.5, 1.0, -0.5]);
    // with a reference set: a ref-embeddings gradient too
    let re = npy_f32(dir.path(), "re.npy", &[2, 1], &[0.5, 2.0]);
    let rl = npy_i64(dir.path(), "rl.npy", &[7, 9]);
    let (code, v, err) = json(&[
        "eval",
        "pair-contrastive",
        "--embeddings",
        &e,
        "--labels",
        &l,
        "--ref-embeddings",
        &re,
        "--ref-labels",
        &rl,
        "--reduction",
        "none",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["loss"]["shape"], serde_json::json!([3]));
    assert_eq!(v["grad"]["ref-embeddings"]["shape"], serde_json::json!([2, 1]));
}

#[test]
fn eval_refuses_degenerate_batches_and_bad_flags_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = npy_f32(dir.path(), "e.npy", &[3, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let distinct = npy_i64(dir.path(), "d.npy", &[1, 2, 3]);
    let (code, _, err) = json(&["eval", "batch-hard-triplet", "--embeddings", &e, "--labels", &distinct]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no label appears twice") && err.contains("P x K"), "{err}");
    // torch-compat: pytorch-metric-learning's zero loss
    let (code, v, err) = json(&[
        "eval",
        "batch-hard-triplet",
        "--embeddings",
        &e,
        "--labels",
        &distinct,
        "--torch-compat",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["loss"]["data"][0].as_f64(), Some(0.0));
    let (code, _, err) =
        json(&["eval", "pair-contrastive", "--embeddings", &e, "--labels", &distinct, "--margin", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = json(&[
        "eval",
        "semihard-triplet",
        "--embeddings",
        &e,
        "--labels",
        &distinct,
        "--distance",
        "manhattan",
    ]);
    assert_eq!(code, 2, "{err}");
    let short = npy_i64(dir.path(), "s.npy", &[1, 1]);
    let (code, _, err) = json(&["eval", "batch-all-triplet", "--embeddings", &e, "--labels", &short]);
    assert_eq!(code, 1);
    assert!(err.contains("2 labels for 3 embedding rows"), "{err}");
}

#[test]
fn check_reports_the_batch_findings() {
    let dir = tempfile::tempdir().unwrap();
    let e = npy_f32(dir.path(), "e.npy", &[4, 2], &[1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0]);
    let codes = |v: &Value| -> Vec<String> {
        v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
    };
    let distinct = npy_i64(dir.path(), "d.npy", &[1, 2, 3, 4]);
    let (code, v, _) =
        json(&["check", "batch-hard-triplet", "--embeddings", &e, "--labels", &distinct, "--json"]);
    assert_eq!(code, 1);
    assert_eq!(codes(&v), vec!["labels-never-repeat"]);
    let one = npy_i64(dir.path(), "o.npy", &[5, 5, 5, 5]);
    let (code, v, _) = json(&["check", "batch-hard-triplet", "--embeddings", &e, "--labels", &one, "--json"]);
    assert_eq!(code, 1);
    assert_eq!(codes(&v), vec!["single-class"]);
    let some = npy_i64(dir.path(), "s.npy", &[1, 1, 2, 3]);
    let (code, v, _) = json(&[
        "check",
        "batch-all-triplet",
        "--embeddings",
        &e,
        "--labels",
        &some,
        "--distance",
        "cosine",
        "--margin",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(codes(&v), vec!["singleton-classes", "margin-out-of-range"]);
    // rows 0 and 1 (class 1) at distance √2, negatives at √2 and 2: margin 0.01 is met by all
    let (code, v, _) = json(&[
        "check",
        "batch-all-triplet",
        "--embeddings",
        &e,
        "--labels",
        &npy_i64(dir.path(), "p.npy", &[1, 1, 2, 2]),
        "--margin",
        "-1",
        "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(codes(&v), vec!["margin-satisfied"]);
    let flat = npy_f32(dir.path(), "f.npy", &[4, 2], &[1.0; 8]);
    let (code, v, _) =
        json(&["check", "pair-contrastive", "--embeddings", &flat, "--labels", &some, "--json"]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"collapsed-embeddings".to_string()), "{v}");
}

#[test]
fn bench_reports_the_loss_beside_one_gemm() {
    let (code, v, err) = json(&[
        "bench",
        "batch-hard-triplet",
        "--n",
        "64",
        "--dim",
        "16",
        "--classes",
        "8",
        "--threads",
        "1",
        "--reps",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(v["fwd_bwd_ns"].as_f64().unwrap() > 0.0);
    assert!(v["gemm_ns"].as_f64().unwrap() > 0.0);
    assert_eq!(v["n"], 64);
}
