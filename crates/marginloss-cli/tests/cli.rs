//! End-to-end tests of the built `marginloss` binary: `eval` against the torch 2.15
//! fixtures for every loss name, `demo`, and the exit code and message of bad inputs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use npyz::WriterBuilder;
use serde_json::Value;

fn bin() -> Command {
    Command::cargo_bin("marginloss").expect("binary")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/torch")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::Null => f64::NAN,
        other => panic!("not a number: {other:?}"),
    }
}

/// Writes a fixture tensor as an .npy file in its own dtype.
fn write_npy(dir: &Path, name: &str, t: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.npy"));
    let shape: Vec<u64> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
    let data: Vec<f64> = t["data"].as_array().unwrap().iter().map(num).collect();
    let file = std::fs::File::create(&path).unwrap();
    macro_rules! put {
        ($ty:ty) => {{
            let mut w = npyz::WriteOptions::<$ty>::new()
                .default_dtype()
                .shape(&shape)
                .writer(file)
                .begin_nd()
                .unwrap();
            w.extend(data.iter().map(|&v| v as $ty)).unwrap();
            w.finish().unwrap();
        }};
    }
    match t["dtype"].as_str().unwrap() {
        "float32" => put!(f32),
        "float64" => put!(f64),
        "int64" => put!(i64),
        other => panic!("dtype {other}"),
    }
    path
}

fn npy_f32(dir: &Path, name: &str, shape: &[u64], data: &[f32]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path
}

fn assert_close(what: &str, got: &Value, want: &Value, dtype: &str) {
    let tol = if dtype == "float32" { 3e-5 } else { 1e-10 };
    assert_eq!(got["shape"], want["shape"], "{what}: shape");
    let g: Vec<f64> = got["data"].as_array().unwrap().iter().map(num).collect();
    let w: Vec<f64> = want["data"].as_array().unwrap().iter().map(num).collect();
    assert_eq!(g.len(), w.len(), "{what}: length");
    let scale = w.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if b.is_nan() || b.is_infinite() {
            assert!(a.is_nan(), "{what}[{i}]: got {a}, want {b} (printed as null)");
        } else {
            assert!((a - b).abs() <= tol * scale.max(0.1), "{what}[{i}]: got {a}, want {b}");
        }
    }
}

/// Runs `eval --json` on every case of a fixture file whose options the CLI can express,
/// comparing the loss and every gradient; returns the number of cases run.
fn eval_matches_fixture(file: &str, loss: &str) -> usize {
    let text = std::fs::read_to_string(fixtures().join(format!("{file}.json"))).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut ran = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case["inputs"].as_object().unwrap().values().any(|t| t.get("npy").is_some()) {
            continue; // the 100,000-element cases are covered by the library tests
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = bin();
        cmd.args(["eval", loss, "--json"]);
        for (arg, t) in case["inputs"].as_object().unwrap() {
            cmd.arg(format!("--{arg}")).arg(write_npy(dir.path(), arg, t));
        }
        for (k, v) in case["options"].as_object().unwrap() {
            match v {
                Value::Bool(true) => {
                    cmd.arg(format!("--{k}"));
                }
                Value::Bool(false) => {}
                Value::String(s) => {
                    cmd.arg(format!("--{k}")).arg(s);
                }
                other => {
                    cmd.arg(format!("--{k}")).arg(num(other).to_string());
                }
            }
        }
        if case["compat_only"].as_bool().unwrap() {
            cmd.arg("--torch-compat");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{file}:{name}: {}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dtype = case["dtype"].as_str().unwrap();
        assert_close(&format!("{file}:{name} loss"), &got["loss"], &case["output"], dtype);
        if let Some(grads) = case["grad"].as_object() {
            for (k, g) in grads {
                assert_close(&format!("{file}:{name} grad {k}"), &got["grad"][k], g, dtype);
            }
            assert_eq!(got["grad"].as_object().unwrap().len(), grads.len(), "{file}:{name}: grad keys");
        }
        ran += 1;
    }
    assert!(ran > 0, "{file}: no case ran");
    ran
}

#[test]
fn eval_hinge_matches_torch() {
    assert!(eval_matches_fixture("hinge", "hinge") >= 30);
}

#[test]
fn eval_squared_hinge_matches_torch() {
    assert!(eval_matches_fixture("squared_hinge", "squared-hinge") >= 30);
}

#[test]
fn eval_hinge_embedding_matches_torch() {
    assert!(eval_matches_fixture("hinge_embedding", "hinge-embedding") >= 30);
}

#[test]
fn eval_cosine_similarity_matches_torch() {
    assert!(eval_matches_fixture("cosine_similarity", "cosine-similarity") >= 10);
}

#[test]
fn eval_pairwise_distance_matches_torch() {
    assert!(eval_matches_fixture("pairwise_distance", "pairwise-distance") >= 10);
}

#[test]
fn eval_margin_ranking_matches_torch() {
    assert!(eval_matches_fixture("margin_ranking", "margin-ranking") >= 30);
}

#[test]
fn eval_soft_margin_matches_torch() {
    assert!(eval_matches_fixture("soft_margin", "soft-margin") >= 20);
}

#[test]
fn eval_multilabel_soft_margin_matches_torch() {
    assert!(eval_matches_fixture("multilabel_soft_margin", "multilabel-soft-margin") >= 20);
}

#[test]
fn eval_multi_margin_matches_torch() {
    assert!(eval_matches_fixture("multi_margin", "multi-margin") >= 50);
}

#[test]
fn eval_multiclass_hinge_matches_torch() {
    assert!(eval_matches_fixture("multiclass_hinge", "multiclass-hinge") >= 20);
}

#[test]
fn eval_multilabel_margin_matches_torch() {
    assert!(eval_matches_fixture("multilabel_margin", "multilabel-margin") >= 40);
}

#[test]
fn eval_cosine_embedding_matches_torch() {
    assert!(eval_matches_fixture("cosine_embedding", "cosine-embedding") >= 40);
}

#[test]
fn eval_contrastive_matches_torch() {
    assert!(eval_matches_fixture("contrastive", "contrastive") >= 20);
}

#[test]
fn eval_triplet_margin_matches_torch() {
    assert!(eval_matches_fixture("triplet_margin", "triplet-margin") >= 40);
}

#[test]
fn eval_triplet_margin_with_distance_matches_torch() {
    assert!(eval_matches_fixture("triplet_margin_with_distance", "triplet-margin") >= 30);
}

#[test]
fn eval_reads_csv_with_a_header_and_computes_in_float64() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.csv"), "score\n0.8\n-0.5\n2.0\n").unwrap();
    std::fs::write(dir.path().join("y.csv"), "label\n-1\n1\n-1\n").unwrap();
    let out = bin()
        .args(["eval", "hinge", "--json", "--input"])
        .arg(dir.path().join("x.csv"))
        .arg("--target")
        .arg(dir.path().join("y.csv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["loss"]["shape"], serde_json::json!([]));
    assert!((v["loss"]["data"][0].as_f64().unwrap() - 2.1).abs() < 1e-15);
    assert_eq!(v["grad"]["input"]["data"][1].as_f64().unwrap(), -1.0 / 3.0);
}

#[test]
fn eval_prints_nan_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_f32(dir.path(), "x.npy", &[2], &[f32::NAN, 1.0]);
    let y = npy_f32(dir.path(), "y.npy", &[2], &[-1.0, 1.0]);
    let out = bin()
        .args(["eval", "hinge-embedding", "--torch-compat", "--reduction", "none", "--json", "--input"])
        .arg(&x)
        .arg("--target")
        .arg(&y)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(r#"{"loss":{"shape":[2],"data":[null,1.0]}"#), "{text}");
}

#[test]
fn eval_summary_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_f32(dir.path(), "x.npy", &[3], &[0.8, -0.5, 2.0]);
    let y = npy_f32(dir.path(), "y.npy", &[3], &[-1.0, 1.0, -1.0]);
    let out = bin().args(["eval", "hinge", "--input"]).arg(&x).arg("--target").arg(&y).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("hinge  mean, float32, strict\nloss  2.1\ngrad  input: shape [3]"), "{text}");
}

fn read_f32(path: &Path) -> (Vec<u64>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect())
}

#[test]
fn eval_hinge_embedding_on_cosine_distance_matches_the_article() {
    // torch 2.15 (tools/gen_fixtures.py article()):
    // F.hinge_embedding_loss(1 - F.cosine_similarity(a, b), y, margin=0.2), backward.
    let art = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/article");
    let (a, b, y) = (art.join("a.npy"), art.join("b.npy"), art.join("y.npy"));
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("expected.json")).unwrap()).unwrap();
    let run = |reduction: &str| -> Value {
        let out = bin()
            .args(["eval", "hinge-embedding", "--input1"])
            .arg(&a)
            .arg("--input2")
            .arg(&b)
            .arg("--target")
            .arg(&y)
            .args(["--distance", "cosine", "--margin", "0.2", "--reduction", reduction, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mean = run("mean");
    assert_eq!(mean["loss"]["shape"], serde_json::json!([]));
    let got = num(&mean["loss"]["data"][0]);
    let want = num(&expected["mean"]);
    assert!((got - want).abs() <= 3e-5 * want, "{got} vs {want}");
    for (arg, file) in [("input1", "grad_a.npy"), ("input2", "grad_b.npy")] {
        let (shape, g) = read_f32(&art.join(file));
        let want = serde_json::json!({"shape": shape, "data": g});
        assert_close(arg, &mean["grad"][arg], &want, "float32");
    }
    let none = run("none");
    let want = serde_json::json!({"shape": [100], "data": expected["none"]});
    assert_close("none", &none["loss"], &want, "float32");
}

#[test]
fn demo_data_is_the_article_fixture() {
    // `marginloss demo` embeds crates/marginloss-cli/data/article/ (a package cannot reach
    // outside its crate); it must stay a byte-for-byte copy of fixtures/article/.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for name in ["a.npy", "b.npy", "y.npy", "expected.json"] {
        let copy = std::fs::read(root.join("data/article").join(name)).unwrap();
        let fixture = std::fs::read(root.join("../../fixtures/article").join(name)).unwrap();
        assert!(copy == fixture, "data/article/{name} differs from fixtures/article/{name}");
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

struct Files {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        npy_f32(&path, "scores.npy", &[3], &[0.8, -0.5, 2.0]);
        npy_f32(&path, "dist.npy", &[3], &[0.8, 0.5, 2.0]);
        npy_f32(&path, "y.npy", &[3], &[-1.0, 1.0, -1.0]);
        npy_f32(&path, "y01.npy", &[3], &[0.0, 1.0, 0.0]);
        npy_f32(&path, "y4.npy", &[4], &[-1.0, 1.0, -1.0, 1.0]);
        npy_f32(&path, "nan.npy", &[3], &[0.8, f32::NAN, 2.0]);
        npy_f32(&path, "empty.npy", &[0], &[]);
        std::fs::write(path.join("corrupt.npy"), b"\x93NUMPY garbage").unwrap();
        std::fs::write(path.join("words.csv"), "1.0\nabc\n").unwrap();
        std::fs::write(path.join("data.txt2"), "1.0\n").unwrap();
        // uint8 array: a dtype eval does not take
        let f = std::fs::File::create(path.join("u8.npy")).unwrap();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[3]).writer(f).begin_nd().unwrap();
        w.extend([1u8, 2, 3]).unwrap();
        w.finish().unwrap();
        Files { _dir: dir, path }
    }
    fn p(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }
}

#[test]
fn bad_inputs_fail_with_one_line_and_the_right_exit_code() {
    let f = Files::new();
    let (scores, dist, y) = (f.p("scores.npy"), f.p("dist.npy"), f.p("y.npy"));
    let he = "hinge-embedding";
    // usage errors: exit 2
    fails(&["eval", "hinge_loss", "--input", &scores], 2, "unknown loss 'hinge_loss'");
    fails(&["eval", "hinge_embedding", "--input", &dist], 2, "did you mean hinge-embedding?");
    fails(&["eval", "hinge", "--input", &scores], 2, "hinge needs --target");
    fails(&["eval", "hinge", "--input", &scores, "--target", &y, "--p", "2"], 2, "hinge does not take --p");
    fails(
        &["eval", "hinge", "--input", &scores, "--target", &y, "--anchor", &y],
        2,
        "does not take --anchor",
    );
    fails(
        &["eval", "hinge", "--input", &scores, "--target", &y, "--reduction", "avg"],
        2,
        "invalid value 'avg'",
    );
    fails(&["eval", "hinge", "--input", &scores, "--target", &y, "--frobnicate"], 2, "unexpected argument");
    fails(
        &["eval", "cosine-similarity", "--input1", &scores, "--input2", &scores, "--reduction", "sum"],
        2,
        "cosine-similarity does not take --reduction",
    );
    // a bad option value is a bad command line too: exit 2 (below)
    // data errors: exit 1
    fails(
        &["eval", he, "--input", &scores, "--target", &y],
        1,
        "hinge_embedding expects distances >= 0, got -0.5 at input[1]; for classifier scores use hinge",
    );
    fails(&["eval", "hinge", "--input", &scores, "--target", &f.p("y01.npy")], 1, "--labels 01");
    fails(&["eval", he, "--input", &f.p("missing.npy"), "--target", &y], 1, "missing.npy: cannot read");
    fails(&["eval", he, "--input", &f.p("corrupt.npy"), "--target", &y], 1, "not a valid .npy file");
    fails(&["eval", he, "--input", &f.p("u8.npy"), "--target", &y], 1, "unsupported dtype");
    fails(
        &["eval", he, "--input", &dist, "--target", &f.p("y4.npy")],
        1,
        "--target has shape [4] but --input has shape [3]",
    );
    fails(
        &["eval", he, "--input", &f.p("nan.npy"), "--target", &y],
        1,
        "hinge_embedding got NaN at input[1]",
    );
    fails(&["eval", he, "--input", &f.p("empty.npy"), "--target", &f.p("empty.npy")], 1, "empty input");
    fails(
        &["eval", he, "--input", &f.p("words.csv"), "--target", &y],
        1,
        "line 2, cell 1: 'abc' is not a number",
    );
    fails(&["eval", he, "--input", &f.p("data.txt2"), "--target", &y], 1, "unknown file type");
    fails(
        &["eval", he, "--input", &dist, "--target", &y, "--margin", "inf"],
        2,
        "option margin must be finite",
    );
    fails(
        &["eval", "pairwise-distance", "--input1", &scores, "--input2", &dist, "--p", "0"],
        2,
        "option p must be > 0",
    );
}

#[test]
fn torch_compat_accepts_what_strict_rejects() {
    let f = Files::new();
    let out = bin()
        .args([
            "eval",
            "hinge-embedding",
            "--torch-compat",
            "--json",
            "--input",
            &f.p("scores.npy"),
            "--target",
            &f.p("y.npy"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["loss"]["data"][0].as_f64().unwrap() + 0.1).abs() < 1e-7);
}

fn npy_i64(dir: &Path, name: &str, shape: &[u64], data: &[i64]) -> String {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path.display().to_string()
}

#[test]
fn family_bad_inputs_fail_with_one_line_and_the_right_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |name: &str, shape: &[u64], v: &[f32]| npy_f32(d, name, shape, v).display().to_string();
    let scores = s("scores.npy", &[2, 3], &[0.1, 0.5, -0.2, 1.0, 0.0, 0.3]);
    let y = s("y.npy", &[3], &[1.0, -1.0, 1.0]);
    let y01 = s("y01.npy", &[3], &[1.0, 0.0, 1.0]);
    let v3 = s("v3.npy", &[3], &[0.1, 0.2, 0.3]);
    let nan3 = s("nan3.npy", &[3], &[0.1, f32::NAN, 0.3]);
    let cls_bad = npy_i64(d, "cls_bad.npy", &[2], &[0, 3]);
    let cls = npy_i64(d, "cls.npy", &[2], &[0, 2]);
    let cls_float = s("cls_float.npy", &[2], &[0.0, 1.5]);
    let ml_bad = npy_i64(d, "ml_bad.npy", &[2, 3], &[0, 5, -1, 1, -1, -1]);
    let soft_bad = s("soft_bad.npy", &[2, 3], &[1.0, 0.0, 2.0, 0.0, 1.0, 0.0]);
    let w2 = s("w2.npy", &[2], &[1.0, 1.0]);
    fails(
        &["eval", "multi-margin", "--input", &scores, "--target", &cls_bad],
        1,
        "class index 3 at target[1] is out of range for 3 classes",
    );
    fails(
        &["eval", "multi-margin", "--input", &scores, "--target", &cls, "--p", "3"],
        2,
        "option p must be 1 or 2",
    );
    fails(
        &["eval", "multi-margin", "--input", &scores, "--target", &cls, "--weight", &w2],
        1,
        "--weight has shape [2]",
    );
    fails(
        &["eval", "multi-margin", "--input", &scores, "--target", &cls_float],
        1,
        "class indices must be integers, got 1.5 at target[1]",
    );
    fails(
        &["eval", "multiclass-hinge", "--input", &scores, "--target", &cls_bad],
        1,
        "out of range for 3 classes",
    );
    fails(&["eval", "multiclass-hinge", "--input", &scores, "--target", &y], 1, "--target has shape [3]");
    fails(&["eval", "multilabel-margin", "--input", &scores, "--target", &ml_bad], 1, "class index 5");
    fails(
        &["eval", "multilabel-soft-margin", "--input", &scores, "--target", &soft_bad],
        1,
        "got 2 at target[2]",
    );
    fails(&["eval", "margin-ranking", "--input1", &v3, "--input2", &v3, "--target", &y01], 1, "--labels 01");
    fails(&["eval", "margin-ranking", "--input1", &v3, "--input2", &v3], 2, "margin-ranking needs --target");
    fails(&["eval", "soft-margin", "--input", &nan3, "--target", &y], 1, "soft_margin got NaN at input[1]");
    fails(
        &["eval", "soft-margin", "--input", &v3, "--target", &y, "--margin", "1"],
        2,
        "soft-margin does not take --margin",
    );
}
