//! Loader for the golden fixtures that `tools/gen_fixtures.py` writes with torch 2.15,
//! and the parity tolerance: 3e-5 relative in f32, 1e-10 in f64.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use marginloss::{Float, Mode, Reduction};
use serde_json::Value;

/// A tensor from a fixture: floats as f64 (exact for f32 data), ints as i64.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn as_vec<T: Float>(&self) -> Vec<T> {
        self.data.iter().map(|&v| T::of(v)).collect()
    }
    pub fn as_i64(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
    /// The last dimension (row length), 1 for a 0-d or 1-d tensor.
    pub fn last_dim(&self) -> usize {
        if self.shape.len() >= 2 {
            *self.shape.last().unwrap()
        } else {
            1
        }
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub file: String,
    pub name: String,
    pub dtype: String,
    pub options: serde_json::Map<String, Value>,
    pub compat_only: bool,
    pub inputs: BTreeMap<String, Tensor>,
    pub output: Tensor,
    pub grad: Option<BTreeMap<String, Tensor>>,
}

impl Case {
    pub fn mode(&self) -> Mode {
        if self.compat_only {
            Mode::TorchCompat
        } else {
            Mode::Strict
        }
    }
    pub fn reduction(&self) -> Reduction {
        self.options
            .get("reduction")
            .and_then(Value::as_str)
            .map(|s| Reduction::parse(s).expect("reduction"))
            .unwrap_or(Reduction::None)
    }
    pub fn f64_opt(&self, key: &str, default: f64) -> f64 {
        self.options.get(key).and_then(Value::as_f64).unwrap_or(default)
    }
    pub fn bool_opt(&self, key: &str) -> bool {
        self.options.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
    pub fn str_opt(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Value::as_str)
    }
    pub fn input(&self, name: &str) -> &Tensor {
        self.inputs.get(name).unwrap_or_else(|| panic!("{}: no input {name}", self.name))
    }
    pub fn grad(&self, name: &str) -> Option<&Tensor> {
        self.grad.as_ref().and_then(|g| g.get(name))
    }
    pub fn id(&self) -> String {
        format!("{}:{}", self.file, self.name)
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("bad number {other}"),
        },
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => panic!("bad number {other:?}"),
    }
}

pub fn read_npy(path: PathBuf) -> Vec<f64> {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let dtype = npy.dtype();
    let npyz::DType::Plain(ts) = dtype else { panic!("{}: not a plain dtype", path.display()) };
    match (ts.type_char(), ts.size_field()) {
        (npyz::TypeChar::Float, 4) => npy.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
        (npyz::TypeChar::Float, 8) => npy.into_vec::<f64>().unwrap(),
        (npyz::TypeChar::Int, 8) => npy.into_vec::<i64>().unwrap().into_iter().map(|v| v as f64).collect(),
        other => panic!("{}: unsupported dtype {other:?}", path.display()),
    }
}

fn tensor(v: &Value) -> Tensor {
    let dtype = v["dtype"].as_str().expect("dtype").to_string();
    let shape = v["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data = if let Some(p) = v.get("npy").and_then(Value::as_str) {
        read_npy(fixtures_dir().join("torch").join(p))
    } else {
        v["data"].as_array().expect("data").iter().map(num).collect()
    };
    Tensor { dtype, shape, data }
}

fn tensors(v: &Value) -> BTreeMap<String, Tensor> {
    v.as_object().expect("object").iter().map(|(k, t)| (k.clone(), tensor(t))).collect()
}

/// All cases of `fixtures/torch/<loss>.json`.
pub fn load(loss: &str) -> Vec<Case> {
    let path = fixtures_dir().join("torch").join(format!("{loss}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("fixture json");
    assert!(doc["torch_version"].as_str().unwrap().starts_with("2.15.0"));
    let cases = doc["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    cases
        .iter()
        .map(|c| Case {
            file: loss.to_string(),
            name: c["name"].as_str().unwrap().to_string(),
            dtype: c["dtype"].as_str().unwrap().to_string(),
            options: c["options"].as_object().cloned().unwrap_or_default(),
            compat_only: c["compat_only"].as_bool().unwrap_or(false),
            inputs: tensors(&c["inputs"]),
            output: tensor(&c["output"]),
            grad: c.get("grad").filter(|g| !g.is_null()).map(tensors),
        })
        .collect()
}

/// The parity tolerance for a dtype.
pub fn rtol(dtype: &str) -> f64 {
    match dtype {
        "float32" => 3e-5,
        "float64" => 1e-10,
        other => panic!("dtype {other}"),
    }
}

/// Asserts `got ≈ want` norm-wise: `|a − b| ≤ rtol·max|want|` for every element (the
/// error relative to the array's largest magnitude, as `tools/compare_eval.py` measures), with
/// NaN equal to NaN and infinities equal by sign.
pub fn assert_close<T: Float>(what: &str, got: &[T], want: &Tensor, dtype: &str) {
    assert_close_floor(what, got, want, dtype, 0.0)
}

/// As [`assert_close`], with the array scale at least `floor`: for results whose exact
/// value is 0 and torch's is rounding noise (the gradient of the cosine of identical rows),
/// `floor` is the natural magnitude of the terms that cancelled.
pub fn assert_close_floor<T: Float>(what: &str, got: &[T], want: &Tensor, dtype: &str, floor: f64) {
    assert_eq!(got.len(), want.data.len(), "{what}: length");
    let tol = rtol(dtype);
    let scale = want.data.iter().filter(|v| v.is_finite()).fold(floor, |m, v| m.max(v.abs()));
    for (i, (g, &w)) in got.iter().zip(&want.data).enumerate() {
        let g = g.f64();
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        let bound = tol * w.abs().max(scale);
        assert!(
            (g - w).abs() <= bound,
            "{what}[{i}]: got {g:e}, want {w:e} (|diff| {:e} > {bound:e})",
            (g - w).abs()
        );
    }
}

/// The cases, split by dtype, run through `f` for both element types.
pub fn for_each_case(loss: &str, mut f32_case: impl FnMut(&Case), mut f64_case: impl FnMut(&Case)) -> usize {
    let cases = load(loss);
    for c in &cases {
        match c.dtype.as_str() {
            "float32" => f32_case(c),
            "float64" => f64_case(c),
            other => panic!("{}: dtype {other}", c.id()),
        }
    }
    cases.len()
}

/// A small deterministic generator (xorshift64*) for property-style tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// ±1 with equal probability.
    pub fn sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Central finite difference of `f` at `x` with respect to element `i`.
pub fn central_diff(f: &mut dyn FnMut(&[f64]) -> f64, x: &[f64], i: usize, h: f64) -> f64 {
    let mut xp = x.to_vec();
    xp[i] += h;
    let fp = f(&xp);
    xp[i] -= 2.0 * h;
    let fm = f(&xp);
    (fp - fm) / (2.0 * h)
}

/// Asserts `a ≈ b` to `rtol` relative (with an absolute floor of `rtol`).
pub fn assert_rel(what: &str, a: f64, b: f64, rtol: f64) {
    assert!((a - b).abs() <= rtol * b.abs().max(1.0), "{what}: {a} vs {b} (diff {:e})", (a - b).abs());
}

/// `x` as rows of `cols` elements (as many rows as fit); panics on a length that is not a
/// whole number of rows — test support, not the library's contract.
pub fn mat<T>(x: &[T], cols: usize) -> marginloss::Rows<'_, T> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    marginloss::Rows::new(x, rows, cols).expect("a whole number of rows")
}
