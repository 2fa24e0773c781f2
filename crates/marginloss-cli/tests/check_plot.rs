//! End-to-end tests of `marginloss check` (one data file per catalogued mistake, each
//! triggering exactly its finding; clean files triggering none) and `marginloss plot`.

use std::collections::BTreeSet;
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

fn npy_i64(dir: &Path, name: &str, shape: &[u64], data: &[i64]) -> String {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path.display().to_string()
}

/// Runs `check --json` and returns (exit code, report).
fn check(args: &[&str]) -> (i32, Value) {
    let out = bin().arg("check").args(args).arg("--json").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let code = out.status.code().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    if code == 1 {
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    } else {
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    (code, report)
}

fn codes(report: &Value) -> BTreeSet<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).unwrap()
}

/// `check` on `args` exits with `exit` and reports exactly the codes `want`.
fn expect(args: &[&str], exit: i32, want: &[&str]) -> Value {
    let (code, report) = check(args);
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(codes(&report), want, "{args:?}: {report:#}");
    assert_eq!(code, exit, "{args:?}: {report:#}");
    assert_eq!(report["ok"], exit == 0, "{args:?}");
    report
}

struct Data {
    _dir: tempfile::TempDir,
}

impl Data {
    fn new() -> (Data, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        (Data { _dir: dir }, p)
    }
}

/// Scores and ±1 labels whose y·x are `q` (y alternates +1, −1).
fn hinge_pair(d: &Path, name: &str, q: &[f32]) -> (String, String) {
    let y: Vec<f32> = (0..q.len()).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let x: Vec<f32> = q.iter().zip(&y).map(|(q, y)| q * y).collect();
    let n = q.len() as u64;
    (npy_f32(d, &format!("{name}_x.npy"), &[n], &x), npy_f32(d, &format!("{name}_y.npy"), &[n], &y))
}

const CLEAN_Q: &[f32] = &[2.0, 1.5, 0.3, 0.4, 1.7, 2.2, -0.6, -0.8];

#[test]
fn article_scores_to_hinge_embedding_suggest_hinge() {
    let (_g, d) = Data::new();
    let x = npy_f32(&d, "scores.npy", &[3], &[0.8, -0.5, 2.0]);
    let y = npy_f32(&d, "y.npy", &[3], &[-1.0, 1.0, -1.0]);
    let r = expect(&["hinge-embedding", "--input", &x, "--target", &y], 1, &["negative-distance"]);
    let f = finding(&r, "negative-distance");
    assert_eq!(f["severity"], "error");
    assert!(f["message"].as_str().unwrap().contains("these look like classifier scores; use `hinge`"));
    assert_eq!(f["fix"].as_str().unwrap(), format!("marginloss eval hinge --input {x} --target {y}"));
    assert_eq!(f["evidence"]["count"], 1);
    assert_eq!(f["evidence"]["first"][0]["index"], serde_json::json!([1]));
    assert_eq!(f["evidence"]["first"][0]["value"], -0.5);
    let stats = &f["evidence"]["stats"];
    assert!((stats["torch_hinge_embedding_loss"].as_f64().unwrap() + 0.1).abs() < 1e-6);
    assert!((stats["hinge_loss"].as_f64().unwrap() - 2.1).abs() < 1e-6);

    // The human report says the same, on stdout; one line on stderr; exit 1.
    let out = bin().args(["check", "hinge-embedding", "--input", &x, "--target", &y]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("check hinge-embedding: 1 error, 0 warnings, 0 notes\n"), "{text}");
    assert!(text.contains("error[negative-distance]"), "{text}");
    assert!(text.contains("use `hinge`"), "{text}");
    assert!(text.contains("evidence: input[1] = -0.5"), "{text}");
    assert!(text.contains(&format!("fix: marginloss eval hinge --input {x} --target {y}")), "{text}");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    // The suggested command works.
    let ok = bin().args(["eval", "hinge", "--input", &x, "--target", &y]).output().unwrap();
    assert!(ok.status.success());
}

#[test]
fn clean_files_trigger_no_finding_but_the_margin_summary() {
    let (_g, d) = Data::new();
    // hinge: half the samples past the margin, none at the kink, margin ~ spread
    let (x, y) = hinge_pair(&d, "clean", CLEAN_Q);
    let r = expect(&["hinge", "--input", &x, "--target", &y], 0, &["margin-summary"]);
    let s = &finding(&r, "margin-summary")["evidence"]["stats"];
    assert_eq!(s["zero_loss_share"], 0.5);
    assert_eq!(s["violating_share"], 0.5);
    assert_eq!(s["kink_share"], 0.0);
    assert_eq!(s["margin"], 1.0);
    assert_eq!(finding(&r, "margin-summary")["severity"], "note");
    expect(&["squared-hinge", "--input", &x, "--target", &y], 0, &["margin-summary"]);
    // soft-margin has no margin: no finding at all
    expect(&["soft-margin", "--input", &x, "--target", &y], 0, &[]);
    // hinge-embedding on distances
    let dist = npy_f32(&d, "dist.npy", &[6], &[0.2, 1.4, 0.5, 0.3, 0.1, 2.0]);
    let yd = npy_f32(&d, "yd.npy", &[6], &[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
    expect(&["hinge-embedding", "--input", &dist, "--target", &yd], 0, &["margin-summary"]);
    // margin-ranking (margin 0.5)
    let a = npy_f32(&d, "a.npy", &[6], &[1.0, 0.2, -0.5, 2.0, 0.0, 0.7]);
    let b = npy_f32(&d, "b.npy", &[6], &[0.0, 0.9, -1.5, 1.2, 0.4, -0.1]);
    let yr = npy_f32(&d, "yr.npy", &[6], &[1.0, -1.0, 1.0, 1.0, 1.0, -1.0]);
    expect(
        &["margin-ranking", "--input1", &a, "--input2", &b, "--target", &yr, "--margin", "0.5"],
        0,
        &["margin-summary"],
    );
    // class indices
    let s = npy_f32(&d, "s.npy", &[4, 3], &[2.0, -1.0, 0.5, -0.3, 1.8, -2.0, 0.1, 0.2, 0.9, 1.5, 1.2, -1.0]);
    let c = npy_i64(&d, "c.npy", &[4], &[0, 1, 2, 1]);
    expect(&["multi-margin", "--input", &s, "--target", &c], 0, &["margin-summary"]);
    expect(&["multiclass-hinge", "--input", &s, "--target", &c], 0, &["margin-summary"]);
    let rows = npy_i64(&d, "rows.npy", &[4, 3], &[0, -1, -1, 1, 2, -1, 2, -1, 0, 0, 1, -1]);
    expect(&["multilabel-margin", "--input", &s, "--target", &rows], 0, &["margin-summary"]);
    let ind = npy_f32(&d, "ind.npy", &[4, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
    expect(&["multilabel-soft-margin", "--input", &s, "--target", &ind], 0, &[]);
    // vectors
    let v1 = npy_f32(&d, "v1.npy", &[3, 2], &[1.0, 0.0, 0.5, 0.5, -1.0, 2.0]);
    let v2 = npy_f32(&d, "v2.npy", &[3, 2], &[0.0, 1.0, 0.5, -0.5, 1.0, 1.0]);
    expect(&["cosine-similarity", "--input1", &v1, "--input2", &v2], 0, &[]);
    expect(&["pairwise-distance", "--input1", &v1, "--input2", &v2], 0, &[]);
}

#[test]
fn binary_target_mistakes() {
    let (_g, d) = Data::new();
    let (x, _) = hinge_pair(&d, "clean", CLEAN_Q);
    let y01 = npy_f32(&d, "y01.npy", &[8], &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    let ypm = npy_f32(&d, "ypm.npy", &[8], &[1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0]);
    let y2 = npy_f32(&d, "y2.npy", &[8], &[1.0, -1.0, 2.0, -1.0, 1.0, -1.0, -1.0, 1.0]);
    let r = expect(&["hinge", "--input", &x, "--target", &y01], 1, &["labels-01"]);
    let f = finding(&r, "labels-01");
    assert!(f["message"].as_str().unwrap().contains("pass `--labels 01`"));
    assert_eq!(
        f["fix"].as_str().unwrap(),
        format!("marginloss eval hinge --input {x} --target {y01} --labels 01")
    );
    assert_eq!(f["evidence"]["count"], 4);
    // ... and with --labels 01 the same data is clean
    expect(&["hinge", "--input", &x, "--target", &y01, "--labels", "01"], 0, &["margin-summary"]);
    let r = expect(&["hinge", "--input", &x, "--target", &ypm, "--labels", "01"], 1, &["labels-pm1"]);
    assert_eq!(
        finding(&r, "labels-pm1")["fix"].as_str().unwrap(),
        format!("marginloss eval hinge --input {x} --target {ypm}")
    );
    let r = expect(&["hinge", "--input", &x, "--target", &y2], 1, &["target-out-of-domain"]);
    let f = finding(&r, "target-out-of-domain");
    assert_eq!(f["evidence"]["first"][0]["index"], serde_json::json!([2]));
    assert_eq!(f["evidence"]["first"][0]["value"], 2.0);
    // the same mistakes for hinge-embedding and margin-ranking
    let dist = npy_f32(&d, "dist.npy", &[8], &[0.2, 1.4, 0.5, 0.3, 0.1, 2.0, 0.7, 0.4]);
    expect(&["hinge-embedding", "--input", &dist, "--target", &y01], 1, &["labels-01"]);
    expect(&["margin-ranking", "--input1", &x, "--input2", &dist, "--target", &y01], 1, &["labels-01"]);
    // multilabel-soft-margin: indicators outside [0, 1]
    let s = npy_f32(&d, "s.npy", &[2, 2], &[2.0, -1.0, 0.5, -0.3]);
    let t = npy_f32(&d, "t.npy", &[2, 2], &[1.0, -1.0, -1.0, 1.0]);
    let r = expect(&["multilabel-soft-margin", "--input", &s, "--target", &t], 1, &["target-out-of-domain"]);
    assert!(finding(&r, "target-out-of-domain")["fix"].as_str().unwrap().contains("(y + 1) / 2"));
}

#[test]
fn input_mistakes() {
    let (_g, d) = Data::new();
    let (_, y) = hinge_pair(&d, "clean", CLEAN_Q);
    // probabilities where scores belong: a warning, exit 0
    let p = npy_f32(&d, "p.npy", &[8], &[0.9, 0.2, 0.7, 0.1, 0.8, 0.35, 0.6, 0.4]);
    let r = expect(&["hinge", "--input", &p, "--target", &y], 0, &["probabilities-not-scores"]);
    assert_eq!(finding(&r, "probabilities-not-scores")["severity"], "warning");
    assert_eq!(r["warnings"], 1);
    // NaN / Inf
    let nan = npy_f32(&d, "nan.npy", &[8], &[2.0, f32::NAN, 0.3, -0.4, f32::INFINITY, -2.2, 0.6, -0.8]);
    let r = expect(&["hinge", "--input", &nan, "--target", &y], 1, &["non-finite"]);
    let f = finding(&r, "non-finite");
    assert_eq!(f["evidence"]["count"], 2);
    assert_eq!(f["evidence"]["first"][0]["value"], "nan");
    assert_eq!(f["evidence"]["first"][1]["value"], "inf");
    // empty
    let empty = npy_f32(&d, "empty.npy", &[0], &[]);
    let r = expect(&["hinge", "--input", &empty, "--target", &empty], 1, &["empty-input"]);
    assert_eq!(r["errors"], 2);
    // shapes
    let x3 = npy_f32(&d, "x3.npy", &[3], &[2.0, -1.5, 0.3]);
    let r = expect(&["hinge", "--input", &x3, "--target", &y], 1, &["shape-mismatch"]);
    assert!(finding(&r, "shape-mismatch")["message"].as_str().unwrap().contains("has shape [8]"));
    let v1 = npy_f32(&d, "v1.npy", &[3, 2], &[1.0, 0.0, 0.5, 0.5, -1.0, 2.0]);
    let v2 = npy_f32(&d, "v2.npy", &[2, 3], &[0.0, 1.0, 0.5, -0.5, 1.0, 1.0]);
    expect(&["cosine-similarity", "--input1", &v1, "--input2", &v2], 1, &["shape-mismatch"]);
    // zero and near-zero vectors under a cosine
    let z = npy_f32(&d, "z.npy", &[3, 2], &[1.0, 0.0, 0.0, 0.0, -1.0, 2.0]);
    let v = npy_f32(&d, "v.npy", &[3, 2], &[0.0, 1.0, 0.5, -0.5, 1.0, 1.0]);
    let r = expect(&["cosine-similarity", "--input1", &z, "--input2", &v], 1, &["zero-vector"]);
    assert_eq!(finding(&r, "zero-vector")["evidence"]["first"][0]["index"], serde_json::json!([1]));
    let nz = npy_f32(&d, "nz.npy", &[3, 2], &[1.0, 0.0, 1e-5, 0.0, -1.0, 2.0]);
    expect(&["cosine-similarity", "--input1", &nz, "--input2", &v], 0, &["near-zero-vector"]);
    // ... but a zero vector is fine for a Euclidean distance
    expect(&["pairwise-distance", "--input1", &z, "--input2", &v], 0, &[]);
}

#[test]
fn class_index_mistakes() {
    let (_g, d) = Data::new();
    let s = npy_f32(&d, "s.npy", &[2, 3], &[2.0, -1.0, 0.5, -0.3, 1.8, -2.0]);
    let out = npy_i64(&d, "out.npy", &[2], &[0, 3]);
    let r = expect(&["multi-margin", "--input", &s, "--target", &out], 1, &["class-index-out-of-range"]);
    let f = finding(&r, "class-index-out-of-range");
    assert_eq!(f["evidence"]["first"][0]["index"], serde_json::json!([1]));
    assert_eq!(f["evidence"]["first"][0]["value"], 3.0);
    let one_based = npy_i64(&d, "one_based.npy", &[2], &[1, 3]);
    let r = expect(
        &["multiclass-hinge", "--input", &s, "--target", &one_based],
        1,
        &["class-index-out-of-range"],
    );
    assert!(finding(&r, "class-index-out-of-range")["fix"].as_str().unwrap().contains("target - 1"));
    let frac = npy_f32(&d, "frac.npy", &[2], &[0.0, 1.5]);
    expect(&["multi-margin", "--input", &s, "--target", &frac], 1, &["class-index-not-integer"]);
    let onehot = npy_f32(&d, "onehot.npy", &[2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let r = expect(&["multiclass-hinge", "--input", &s, "--target", &onehot], 1, &["one-hot-target"]);
    assert!(finding(&r, "one-hot-target")["fix"].as_str().unwrap().contains("argmax"));
    let w2 = npy_f32(&d, "w2.npy", &[2], &[1.0, 1.0]);
    let ok = npy_i64(&d, "ok.npy", &[2], &[0, 1]);
    expect(&["multi-margin", "--input", &s, "--target", &ok, "--weight", &w2], 1, &["shape-mismatch"]);
}

#[test]
fn multilabel_margin_mistakes() {
    let (_g, d) = Data::new();
    let s = npy_f32(&d, "s.npy", &[2, 3], &[2.0, -1.0, 0.5, -0.3, 1.8, -2.0]);
    let dup = npy_i64(&d, "dup.npy", &[2, 3], &[0, 0, -1, 1, -1, -1]);
    let r = expect(&["multilabel-margin", "--input", &s, "--target", &dup], 0, &["duplicate-label"]);
    let f = finding(&r, "duplicate-label");
    assert_eq!(f["evidence"]["first"][0]["index"], serde_json::json!([0, 1]));
    let none = npy_i64(&d, "none.npy", &[2, 3], &[-1, -1, -1, 1, -1, -1]);
    let r = expect(&["multilabel-margin", "--input", &s, "--target", &none], 0, &["row-without-label"]);
    assert_eq!(finding(&r, "row-without-label")["evidence"]["count"], 1);
    let ind = npy_i64(&d, "ind.npy", &[2, 3], &[1, 0, 1, 0, 1, 0]);
    let r = expect(&["multilabel-margin", "--input", &s, "--target", &ind], 1, &["indicator-target"]);
    assert!(finding(&r, "indicator-target")["fix"].as_str().unwrap().contains("multilabel-soft-margin"));
    let big = npy_i64(&d, "big.npy", &[2, 3], &[0, 5, -1, 1, -1, -1]);
    expect(&["multilabel-margin", "--input", &s, "--target", &big], 1, &["class-index-out-of-range"]);
}

#[test]
fn margin_diagnostics() {
    let (_g, d) = Data::new();
    let run = |name: &str, q: &[f32], extra: &[&str], want: &[&str]| {
        let (x, y) = hinge_pair(&d, name, q);
        let mut args = vec!["hinge", "--input", &x, "--target", &y];
        args.extend_from_slice(extra);
        expect(&args, 0, want)
    };
    let r = run("kink", &[1.0, 1.0, 2.0, 3.0, 0.5, 0.2, 1.5, 0.7], &[], &["margin-kink", "margin-summary"]);
    assert_eq!(finding(&r, "margin-summary")["evidence"]["stats"]["kink_share"], 0.25);
    assert_eq!(finding(&r, "margin-kink")["severity"], "warning");
    run("never", &[0.1, 0.5, 0.9, -0.3, 0.2, 0.6], &[], &["margin-never-reached", "margin-summary"]);
    let r =
        run("wrong", &[-0.1, -0.5, -0.9, -0.3, -0.2, -0.6], &[], &["margin-never-reached", "margin-summary"]);
    assert!(finding(&r, "margin-never-reached")["message"].as_str().unwrap().contains("inverted"));
    let r =
        run("always", &[1.5, 2.0, 2.6, 1.2, 3.1, 1.8], &[], &["margin-always-satisfied", "margin-summary"]);
    assert!(finding(&r, "margin-always-satisfied")["fix"].as_str().unwrap().contains("--margin 2"));
    // margin 1 against scores spread over ±30: <= 0.1× the spread
    let r = run(
        "small",
        &[-30.0, -10.0, 10.0, 30.0, 5.0, -5.0, 20.0, -20.0],
        &[],
        &["margin-scale", "margin-summary"],
    );
    let f = finding(&r, "margin-scale");
    assert!(f["message"].as_str().unwrap().contains("<= 0.1×"), "{f}");
    assert!(f["fix"].as_str().unwrap().ends_with("--margin 30"), "{f}");
    // margin 50 against a spread of ~1: >= 10×
    let r = run("large", CLEAN_Q, &["--margin", "50"], &["margin-scale", "margin-summary"]);
    assert!(finding(&r, "margin-scale")["message"].as_str().unwrap().contains(">= 10×"));
}

#[test]
fn untrained_class_scores_are_a_note_that_keeps_the_margin() {
    // Scores of an untrained 4-class model: small, the true class rarely on top. torch's
    // MultiMarginLoss still has a loss and a gradient for every row; lowering the margin
    // (to 0: a perceptron loss) is not the remedy, and the rows are not "inverted".
    let (_g, d) = Data::new();
    let x: Vec<f32> = (0..32).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.01).collect();
    let s = npy_f32(&d, "untrained.npy", &[8, 4], &x);
    let y = npy_i64(&d, "y.npy", &[8], &[0, 1, 2, 3, 3, 2, 1, 0]);
    for loss in ["multi-margin", "multiclass-hinge"] {
        let r =
            expect(&[loss, "--input", &s, "--target", &y], 0, &["margin-never-reached", "margin-summary"]);
        let f = finding(&r, "margin-never-reached");
        assert_eq!(f["severity"], "note", "{f}");
        let (msg, fix) = (f["message"].as_str().unwrap(), f["fix"].as_str().unwrap());
        assert!(msg.contains("expected for scores of an untrained model"), "{msg}");
        assert!(!msg.contains("inverted"), "{msg}");
        assert!(fix.starts_with("nothing to change before training: keep the margin 1"), "{fix}");
        assert!(!fix.contains("--margin"), "{fix}");
    }
}

#[test]
fn json_report_schema() {
    let (_g, d) = Data::new();
    let (x, y) = hinge_pair(&d, "clean", CLEAN_Q);
    let (code, r) = check(&["hinge", "--input", &x, "--target", &y]);
    assert_eq!(code, 0);
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["loss", "ok", "errors", "warnings", "notes", "inputs", "findings"]));
    assert_eq!(r["loss"], "hinge");
    assert_eq!(
        (r["errors"].as_u64(), r["warnings"].as_u64(), r["notes"].as_u64()),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(r["inputs"]["input"]["dtype"], "float32");
    assert_eq!(r["inputs"]["input"]["shape"], serde_json::json!([8]));
    assert_eq!(r["inputs"]["target"]["path"], y.as_str());
    let f = &r["findings"][0];
    let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["severity", "code", "message", "evidence", "fix"]));
    for k in ["count", "total", "first"] {
        assert!(f["evidence"].get(k).is_some(), "evidence lacks {k}");
    }
    // findings come errors first
    let nan = npy_f32(&d, "nan.npy", &[8], &[f32::NAN; 8]);
    let (_, r) = check(&["hinge", "--input", &nan, "--target", &y]);
    assert_eq!(r["findings"][0]["severity"], "error");
    assert_eq!(r["findings"][0]["evidence"]["arg"], "input");
    // --help documents the schema
    let help = bin().args(["check", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for needle in ["\"severity\"", "\"evidence\"", "\"fix\"", "margin-summary", "negative-distance"] {
        assert!(help.contains(needle), "check --help lacks {needle}");
    }
}

/// A bad invocation: exit code, a single stderr line containing `needle`, empty stdout.
fn fails(args: &[&str], code: i32, needle: &str) {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"));
}

#[test]
fn check_cli_errors_follow_the_eval_contract() {
    let (_g, d) = Data::new();
    let (x, y) = hinge_pair(&d, "clean", CLEAN_Q);
    let missing = d.join("missing.npy").display().to_string();
    fails(&["check", "hinge_loss", "--input", &x, "--target", &y], 2, "unknown loss 'hinge_loss'");
    fails(&["check", "hinge_embedding", "--input", &x], 2, "did you mean hinge-embedding?");
    fails(&["check", "hinge", "--input", &x], 2, "hinge needs --target");
    fails(&["check", "hinge", "--input", &x, "--target", &y, "--p", "2"], 2, "hinge does not take --p");
    fails(
        &["check", "soft-margin", "--input", &x, "--target", &y, "--margin", "1"],
        2,
        "does not take --margin",
    );
    fails(&["check", "hinge", "--input", &x, "--target", &y, "--frobnicate"], 2, "unexpected argument");
    fails(&["check", "hinge", "--input", &missing, "--target", &y], 1, "missing.npy: cannot read");
    fails(&["check"], 2, "");
}

fn plot(args: &[&str]) -> roxmltree::Document<'static> {
    let out = bin().arg("plot").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let path = args[args.iter().position(|a| *a == "-o").unwrap() + 1];
    let text = std::fs::read_to_string(path).unwrap();
    let text: &'static str = Box::leak(text.into_boxed_str());
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{args:?}: not XML: {e}"))
}

/// The curves: polylines drawn 2 px wide (axes and grid lines are 1 px).
fn curves(doc: &roxmltree::Document) -> Vec<usize> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .map(|n| n.attribute("points").unwrap().split_whitespace().count())
        .collect()
}

fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn plot_draws_one_curve_per_loss_and_label_with_a_legend() {
    let (_g, d) = Data::new();
    let out = d.join("hinge.svg").display().to_string();
    let doc = plot(&["hinge", "hinge-embedding", "--margin", "1", "-o", &out]);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let c = curves(&doc);
    assert_eq!(c.len(), 4, "{c:?}");
    // hinge over -3:3; hinge-embedding only on its domain x >= 0
    assert!(c[0] > 500 && c[2] > 250 && c[2] < c[0], "{c:?}");
    let t = texts(&doc);
    for label in [
        "hinge, margin 1, y = +1",
        "hinge, margin 1, y = -1",
        "hinge-embedding, margin 1, y = +1",
        "hinge-embedding, margin 1, y = -1",
    ] {
        assert!(t.iter().any(|s| s == label), "legend lacks {label}: {t:?}");
    }

    let out = d.join("all.svg").display().to_string();
    let doc = plot(&[
        "hinge",
        "squared-hinge",
        "hinge-embedding",
        "soft-margin",
        "margin-ranking",
        "--grad",
        "--range=-2:4",
        "-o",
        &out,
    ]);
    assert_eq!(curves(&doc).len(), 20, "5 losses × 2 labels × (loss, gradient)");
    let t = texts(&doc);
    assert!(t.iter().any(|s| s == "soft-margin, y = -1"), "{t:?}");
    assert!(t.iter().any(|s| s == "margin-ranking, margin 0, y = +1"), "{t:?}");
    assert!(t.iter().any(|s| s.contains("dloss/dx")), "{t:?}");
}

#[test]
fn plot_curves_are_the_library_values() {
    let (_g, d) = Data::new();
    let out = d.join("h.svg").display().to_string();
    // With the range 0:2, hinge y = +1 is max(0, 1 - x): it reaches 0 at x = 1 and stays.
    let doc = plot(&["hinge", "--range", "0:2", "-o", &out]);
    let pts: Vec<(f64, f64)> = doc
        .descendants()
        .find(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .unwrap()
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (a, b) = p.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    let (first, last) = (pts[0], pts[pts.len() - 1]);
    assert!(first.1 < last.1, "SVG y grows downwards: the loss falls from 1 to 0: {first:?} {last:?}");
    let mid = pts[pts.len() * 3 / 4];
    assert_eq!(mid.1, last.1, "flat at zero past the margin");
}

/// The value the y = +1 gradient curve of `hinge --grad` on 0:2 takes at its kink x = 1,
/// read back from the SVG's pixels (−1 before the kink, 0 after it).
fn grad_at_kink(args: &[&str]) -> f64 {
    let doc = plot(args);
    let lines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .collect();
    // hinge with --grad: loss y=+1, loss y=-1, grad y=+1, grad y=-1.
    let pts: Vec<f64> = lines[2]
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| p.split_once(',').unwrap().1.parse().unwrap())
        .collect();
    // The grid is 601 points over 0:2 (x = 1 is the middle one): -1 left of the kink, 0
    // right of it; map the kink's pixel back to a value.
    assert_eq!(pts.len(), 601);
    let (before, kink, after) = (pts[0], pts[300], pts[600]);
    -(kink - after) / (before - after)
}

#[test]
fn plot_kink_draws_the_chosen_subgradient() {
    let (_g, d) = Data::new();
    let out = d.join("k.svg").display().to_string();
    let range = "--range=0:2";
    let half = grad_at_kink(&["hinge", range, "--grad", "--kink", "half", "-o", &out]);
    assert!((half + 0.5).abs() < 0.02, "{half}");
    let one = grad_at_kink(&["hinge", range, "--grad", "--kink", "one", "-o", &out]);
    assert!((one + 1.0).abs() < 0.02, "{one}");
    let torch = grad_at_kink(&["hinge", range, "--grad", "-o", &out]);
    assert!(torch.abs() < 0.02, "{torch}");
    fails(&["plot", "squared-hinge", "-o", &out, "--kink", "one"], 2, "squared-hinge has no kink");
}

#[test]
fn plot_cli_errors() {
    let (_g, d) = Data::new();
    let svg = d.join("x.svg").display().to_string();
    let png = d.join("x.png").display().to_string();
    let nodir = d.join("no/such/dir/x.svg").display().to_string();
    fails(&["plot", "cosine-similarity", "-o", &svg], 2, "plot cannot draw 'cosine-similarity'");
    fails(&["plot", "hinge", "-o", &png], 2, "SVG only");
    fails(&["plot", "hinge", "-o", &svg, "--range", "3:1"], 2, "--range '3:1'");
    fails(&["plot", "hinge", "-o", &svg, "--range", "a:b"], 2, "--range 'a:b'");
    fails(&["plot", "hinge", "-o", &svg, "--margin", "inf"], 2, "--margin must be finite");
    fails(&["plot", "soft-margin", "-o", &svg, "--margin", "1"], 2, "soft-margin does not take --margin");
    fails(&["plot", "hinge-embedding", "-o", &svg, "--range=-3:-1"], 2, "distances x >= 0");
    fails(&["plot", "hinge"], 2, "--output");
    fails(&["plot", "-o", &svg], 2, "LOSS");
    fails(&["plot", "hinge", "-o", &nodir], 1, "cannot write");
}
