//! `marginloss eval` on small generated files: the text header, labels, kink conventions,
//! hinge-embedding on row pairs and torch's output shapes (ships in the package: it needs
//! nothing outside the crate).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use npyz::WriterBuilder;
use serde_json::Value;

fn npy_f32(dir: &Path, name: &str, shape: &[u64], data: &[f32]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path
}

fn npy_i64(dir: &Path, name: &str, shape: &[u64], data: &[i64]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path
}

fn eval(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, String, String) {
    let out = Command::cargo_bin("marginloss").unwrap().arg("eval").args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (out.status.code().unwrap(), text, String::from_utf8(out.stderr).unwrap())
}

fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let (code, out, err) = eval(args);
    assert_eq!(code, 0, "{err}");
    out
}

fn json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

#[test]
fn the_header_shows_every_option_used() {
    let d = tempfile::tempdir().unwrap();
    let a = npy_f32(d.path(), "a.npy", &[2, 2], &[1.0, 0.0, 0.5, 0.5]);
    let p = npy_f32(d.path(), "p.npy", &[2, 2], &[0.9, 0.1, 0.5, 0.4]);
    let n = npy_f32(d.path(), "n.npy", &[2, 2], &[0.0, 1.0, -0.5, 0.5]);
    let out = ok(&[
        &"triplet-margin",
        &"--anchor",
        &a,
        &"--positive",
        &p,
        &"--negative",
        &n,
        &"--swap",
        &"--distance",
        &"cosine",
        &"--margin",
        &"0.5",
        &"--kink",
        &"half",
        &"--reduction",
        &"sum",
    ]);
    let first = out.lines().next().unwrap();
    assert_eq!(first, "triplet-margin  sum, float32, strict, distance cosine, margin 0.5, swap, kink half");

    let x = npy_f32(d.path(), "x.npy", &[2, 3], &[0.1, 0.2, 0.9, 0.5, 0.4, 0.1]);
    let w = npy_f32(d.path(), "w.npy", &[3], &[1.0, 2.0, 1.0]);
    let y = npy_i64(d.path(), "y.npy", &[2], &[2, 0]);
    let out = ok(&[&"multi-margin", &"--input", &x, &"--target", &y, &"--weight", &w, &"--p", &"2"]);
    let first = out.lines().next().unwrap();
    assert_eq!(first, format!("multi-margin  mean, float32, strict, p 2, weight {}", w.display()));

    let s = npy_f32(d.path(), "s.npy", &[3], &[0.8, -0.5, 2.0]);
    let t = npy_f32(d.path(), "t.npy", &[3], &[0.0, 1.0, 0.0]);
    let out = ok(&[&"hinge", &"--input", &s, &"--target", &t, &"--labels", &"01", &"--torch-compat"]);
    assert!(out.starts_with("hinge  mean, float32, torch-compat, labels 01\n"), "{out}");
    assert!(out.contains("loss  2.1"), "{out}");
}

#[test]
fn distances_and_similarities_are_labelled_as_such_and_negative_zero_prints_as_0() {
    let d = tempfile::tempdir().unwrap();
    // Rows of one element: cos = ±1 exactly, the gradient exactly 0 (no 1-ulp residue),
    // and the gradient of a negative element times 0 must not print as -0.
    let a = npy_f32(d.path(), "a.npy", &[2, 1], &[1.1, -0.3]);
    let b = npy_f32(d.path(), "b.npy", &[2, 1], &[-0.7, -0.9]);
    let out = ok(&[&"cosine-similarity", &"--input1", &a, &"--input2", &b]);
    assert!(out.contains("\nsimilarity  shape [2] [-1, 1]\n"), "{out}");
    assert!(out.contains("grad  input1: shape [2, 1] [0, 0]"), "{out}");
    assert!(!out.contains("-0") && !out.contains("\nloss"), "{out}");
    let j = json(&[&"cosine-similarity", &"--input1", &a, &"--input2", &b, &"--json"]);
    assert_eq!(j["grad"]["input1"]["data"], serde_json::json!([0.0, 0.0]));
    assert_eq!(j["grad"]["input2"]["data"], serde_json::json!([0.0, 0.0]));

    let out = ok(&[&"pairwise-distance", &"--input1", &a, &"--input2", &b]);
    assert!(out.starts_with("pairwise-distance  per row, float32, strict\ndistance  shape [2]"), "{out}");

    // hinge past the margin: gradient -0 (y = -1 times 0) shows as 0.
    let s = npy_f32(d.path(), "s.npy", &[2], &[-3.0, 3.0]);
    let t = npy_f32(d.path(), "t.npy", &[2], &[-1.0, 1.0]);
    let out = ok(&[&"hinge", &"--input", &s, &"--target", &t, &"--reduction", &"none"]);
    assert!(out.contains("loss  shape [2] [0, 0]\ngrad  input: shape [2] [0, 0]"), "{out}");
}

#[test]
fn kink_selects_the_subgradient_at_the_hinge_point() {
    let d = tempfile::tempdir().unwrap();
    // y·x = 1 = margin exactly: d max(0, 1 − y·x)/dx = −y·k with k = 0, ½, 1.
    let s = npy_f32(d.path(), "s.npy", &[2], &[1.0, -1.0]);
    let t = npy_f32(d.path(), "t.npy", &[2], &[1.0, -1.0]);
    for (kink, k) in [("zero", 0.0), ("half", 0.5), ("one", 1.0)] {
        let j = json(&[
            &"hinge",
            &"--input",
            &s,
            &"--target",
            &t,
            &"--reduction",
            &"sum",
            &"--kink",
            &kink,
            &"--json",
        ]);
        assert_eq!(j["grad"]["input"]["data"], serde_json::json!([-k, k]), "{kink}");
    }
    let (code, out, err) = eval(&[&"squared-hinge", &"--input", &s, &"--target", &t, &"--kink", &"one"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("squared-hinge does not take --kink"), "{err}");
}

#[test]
fn hinge_embedding_on_row_pairs_gives_gradients_for_both_inputs() {
    let d = tempfile::tempdir().unwrap();
    // distances 1 − 0.6 = 0.4 (similar: loss 0.4) and 1 (dissimilar, past margin 0.2: 0)
    let a = npy_f32(d.path(), "a.npy", &[2, 2], &[1.0, 0.0, 1.0, 0.0]);
    let b = npy_f32(d.path(), "b.npy", &[2, 2], &[0.6, 0.8, 0.0, 1.0]);
    let y = npy_f32(d.path(), "y.npy", &[2], &[1.0, -1.0]);
    let base: [&dyn AsRef<std::ffi::OsStr>; 9] =
        [&"hinge-embedding", &"--input1", &a, &"--input2", &b, &"--target", &y, &"--margin", &"0.2"];
    let mut args = base.to_vec();
    args.extend([&"--distance" as &dyn AsRef<std::ffi::OsStr>, &"cosine", &"--json"]);
    let j = json(&args);
    let loss = j["loss"]["data"][0].as_f64().unwrap();
    assert!((loss - 0.2).abs() < 1e-7, "{j}");
    let g1: Vec<f64> =
        j["grad"]["input1"]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // ∂/∂a[0] = −½·(b[0]/(‖a‖‖b‖) − cos·a[0]/‖a‖²) = [0, −0.4]
    assert!(g1[0].abs() < 1e-7 && (g1[1] + 0.4).abs() < 1e-7 && g1[2..] == [0.0, 0.0], "{g1:?}");
    assert_eq!(j["grad"]["input2"]["shape"], serde_json::json!([2, 2]));
    let mut args = base.to_vec();
    args.extend([&"--distance" as &dyn AsRef<std::ffi::OsStr>, &"cosine"]);
    assert!(ok(&args).starts_with("hinge-embedding  mean, float32, strict, distance cosine, margin 0.2\n"));
    // the distance must be named, and --distance needs the row pairs
    let (code, _, err) = eval(&base);
    assert_eq!(code, 2);
    assert!(err.contains("needs --distance cosine|euclidean"), "{err}");
    let (code, _, err) =
        eval(&[&"hinge-embedding", &"--input", &y, &"--target", &y, &"--distance", &"cosine"]);
    assert_eq!(code, 2);
    assert!(err.contains("--distance takes the rows --input1 and --input2"), "{err}");
}

#[test]
fn multi_margin_follows_the_targets_dimensionality_as_torch() {
    // torch 2.15: F.multi_margin_loss(x of shape (C,), y of shape (1,), reduction='none')
    // has shape (1,); with a 0-d y, shape ().
    let d = tempfile::tempdir().unwrap();
    let x = npy_f32(d.path(), "x.npy", &[4], &[0.1, 0.2, 0.4, 0.8]);
    let y1 = npy_i64(d.path(), "y1.npy", &[1], &[3]);
    let y0 = npy_i64(d.path(), "y0.npy", &[], &[3]);
    for loss in ["multi-margin", "multiclass-hinge"] {
        let j = json(&[&loss, &"--input", &x, &"--target", &y1, &"--reduction", &"none", &"--json"]);
        assert_eq!(j["loss"]["shape"], serde_json::json!([1]), "{loss}");
        let j = json(&[&loss, &"--input", &x, &"--target", &y0, &"--reduction", &"none", &"--json"]);
        assert_eq!(j["loss"]["shape"], serde_json::json!([]), "{loss}");
        let j = json(&[&loss, &"--input", &x, &"--target", &y1, &"--json"]);
        assert_eq!(j["loss"]["shape"], serde_json::json!([]), "{loss}: mean is 0-d");
    }
    let j = json(&[&"multi-margin", &"--input", &x, &"--target", &y1, &"--reduction", &"none", &"--json"]);
    assert!((j["loss"]["data"][0].as_f64().unwrap() - 0.325).abs() < 1e-7);
}
