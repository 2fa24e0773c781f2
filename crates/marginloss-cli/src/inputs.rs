//! The input flags shared by `eval` and `check`, and typed access to the arrays they name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use marginloss::{Float, Kink, Labels, Mode, Reduction, Rows};

use crate::fail::{data, data as data_err, usage, Fail};
use crate::io::{self, Array, DType};

/// Input files, named as PyTorch's functional arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Predictions: scores, distances or an (N, C) score matrix (.npy or .csv).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Targets: ±1 (or 0/1 with --labels 01), class indices, or padded label rows.
    #[arg(long, value_name = "FILE")]
    pub target: Option<PathBuf>,
    /// First input of a pair loss or distance, (N, D).
    #[arg(long, value_name = "FILE")]
    pub input1: Option<PathBuf>,
    /// Second input of a pair loss or distance, (N, D).
    #[arg(long, value_name = "FILE")]
    pub input2: Option<PathBuf>,
    /// Triplet anchors, (N, D).
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
    /// Triplet positives, (N, D).
    #[arg(long, value_name = "FILE")]
    pub positive: Option<PathBuf>,
    /// Triplet negatives, (N, D).
    #[arg(long, value_name = "FILE")]
    pub negative: Option<PathBuf>,
    /// Per-class weights, (C,).
    #[arg(long, value_name = "FILE")]
    pub weight: Option<PathBuf>,
    /// Refuse any input file larger than this (suffixes K, M, G, T: powers of 1024)
    /// [default: 2G].
    #[arg(long, value_name = "BYTES", value_parser = io::parse_bytes)]
    pub max_input_bytes: Option<u64>,
    /// Also read inputs that are not regular files (named pipes, devices), still bounded
    /// by --max-input-bytes.
    #[arg(long)]
    pub allow_special_files: bool,
    /// The first line of every CSV input is a header (without this flag a first line is
    /// a header only when none of its cells is, or begins like, a number).
    #[arg(long)]
    pub csv_header: bool,
}

/// Options shared by `eval` and `check`.
#[derive(Args, Debug, Clone)]
pub struct OptionArgs {
    /// The margin (each loss has its PyTorch default).
    #[arg(long, allow_negative_numbers = true)]
    pub margin: Option<f64>,
    /// The norm degree of a distance, or the exponent of multi-margin (1 or 2).
    #[arg(long, allow_negative_numbers = true)]
    pub p: Option<f64>,
    /// The eps of a distance.
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// Triplet losses: use min(d(a,n), d(p,n)) as the negative distance.
    #[arg(long)]
    pub swap: bool,
    /// How per-element losses are combined [default: mean].
    #[arg(long, value_enum)]
    pub reduction: Option<ReductionArg>,
    /// The encoding of binary targets: pm1 = {-1, 1}, 01 = {0, 1} (0 is read as -1) [default: pm1].
    #[arg(long, value_enum)]
    pub labels: Option<LabelsArg>,
    /// Triplet losses and hinge-embedding on --input1/--input2: the distance, euclidean
    /// (pairwise, p = 2) or cosine (1 - cos).
    #[arg(long, value_enum)]
    pub distance: Option<DistanceArg>,
    /// The subgradient exactly at a hinge's kink: zero (torch 2.15), half (jax, Keras,
    /// optax), one (older torch, TensorFlow, scikit-learn's SGD) [default: zero].
    #[arg(long, value_enum)]
    pub kink: Option<KinkArg>,
    /// Reproduce torch 2.15 exactly, quirks included, instead of rejecting misuse.
    #[arg(long)]
    pub torch_compat: bool,
    /// Compute in this float type (default: the inputs' float type; CSV is float64).
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReductionArg {
    None,
    Mean,
    Sum,
}

impl From<ReductionArg> for Reduction {
    fn from(r: ReductionArg) -> Self {
        match r {
            ReductionArg::None => Reduction::None,
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelsArg {
    #[value(name = "pm1")]
    Pm1,
    #[value(name = "01")]
    ZeroOne,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceArg {
    Euclidean,
    Cosine,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KinkArg {
    Zero,
    Half,
    One,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DTypeArg {
    F32,
    F64,
}

impl OptionArgs {
    pub fn mode(&self) -> Mode {
        if self.torch_compat {
            Mode::TorchCompat
        } else {
            Mode::Strict
        }
    }
    pub fn labels(&self) -> Labels {
        match self.labels {
            None | Some(LabelsArg::Pm1) => Labels::PlusMinusOne,
            Some(LabelsArg::ZeroOne) => Labels::ZeroOne,
        }
    }
    pub fn reduction(&self) -> Reduction {
        self.reduction.map_or(Reduction::Mean, Reduction::from)
    }
    pub fn kink(&self) -> Kink {
        kink_of(self.kink)
    }

    /// A usage error for each option given that `loss` does not take.
    pub fn only(&self, loss: &str, takes: &[&str]) -> Result<(), Fail> {
        let given = [
            ("margin", self.margin.is_some()),
            ("p", self.p.is_some()),
            ("eps", self.eps.is_some()),
            ("swap", self.swap),
            ("reduction", self.reduction.is_some()),
            ("labels", self.labels.is_some()),
            ("distance", self.distance.is_some()),
            ("kink", self.kink.is_some()),
        ];
        for (name, present) in given {
            if present && !takes.contains(&name) {
                let list: Vec<String> = takes.iter().map(|t| format!("--{t}")).collect();
                let list = if list.is_empty() { "none".to_string() } else { list.join(", ") };
                return Err(usage(format!("{loss} does not take --{name} (its options: {list})")));
            }
        }
        Ok(())
    }
}

/// The command-line spelling of a value-enum value (`zero`, `01`, `cosine`).
pub fn enum_label<E: ValueEnum>(v: &E) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}

/// The library's kink convention for `--kink` (torch 2.15's zero when absent).
pub fn kink_of(k: Option<KinkArg>) -> Kink {
    match k {
        None | Some(KinkArg::Zero) => Kink::Zero,
        Some(KinkArg::Half) => Kink::Half,
        Some(KinkArg::One) => Kink::One,
    }
}

/// A typed array: shape and values.
#[derive(Clone, Debug)]
pub struct Tensor<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> Tensor<T> {
    /// The array as rows of its last dimension: `(N, D)` is N rows of D, `(D,)` one row
    /// (every leading dimension counts rows).
    pub fn rows(&self) -> Result<Rows<'_, T>, Fail> {
        let (cols, lead) = self.shape.split_last().map_or((1, &[][..]), |(&c, lead)| (c, lead));
        let rows = lead.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let rows = rows.ok_or_else(|| data(format!("shape {:?} has too many elements", self.shape)))?;
        Ok(Rows::new(&self.data, rows, cols)?)
    }
}

/// The arrays named on the command line, read once.
#[derive(Debug)]
pub struct Inputs {
    arrays: BTreeMap<&'static str, Array>,
}

impl InputArgs {
    fn paths(&self) -> [(&'static str, &Option<PathBuf>); 8] {
        [
            ("input", &self.input),
            ("target", &self.target),
            ("input1", &self.input1),
            ("input2", &self.input2),
            ("anchor", &self.anchor),
            ("positive", &self.positive),
            ("negative", &self.negative),
            ("weight", &self.weight),
        ]
    }

    /// How the files are to be read.
    pub fn read_options(&self) -> io::ReadOptions {
        io::ReadOptions {
            max_bytes: self.max_input_bytes.unwrap_or(io::DEFAULT_MAX_INPUT_BYTES),
            allow_special: self.allow_special_files,
            csv_header: self.csv_header,
        }
    }

    /// Checks that exactly the `required` arguments (plus any of `optional`) are given, then
    /// reads them.
    pub fn read(&self, loss: &str, required: &[&str], optional: &[&str]) -> Result<Inputs, Fail> {
        for (name, path) in self.paths() {
            if path.is_some() && !required.contains(&name) && !optional.contains(&name) {
                return Err(usage(format!(
                    "{loss} does not take --{name} (it takes {})",
                    flags(required, optional)
                )));
            }
            if path.is_none() && required.contains(&name) {
                return Err(usage(format!("{loss} needs --{name} (it takes {})", flags(required, optional))));
            }
        }
        let opts = self.read_options();
        let mut arrays = BTreeMap::new();
        for (name, path) in self.paths() {
            if let Some(p) = path {
                arrays.insert(name, io::read(p, name, &opts)?);
            }
        }
        Ok(Inputs { arrays })
    }
}

fn flags(required: &[&str], optional: &[&str]) -> String {
    let mut s: Vec<String> = required.iter().map(|n| format!("--{n}")).collect();
    s.extend(optional.iter().map(|n| format!("[--{n}]")));
    s.join(" ")
}

impl Inputs {
    pub fn has(&self, name: &str) -> bool {
        self.arrays.contains_key(name)
    }

    /// The arrays read, by argument name.
    pub fn arrays(&self) -> impl Iterator<Item = (&'static str, &Array)> {
        self.arrays.iter().map(|(k, v)| (*k, v))
    }

    pub fn array(&self, name: &str) -> Result<&Array, Fail> {
        self.arrays.get(name).ok_or_else(|| usage(format!("missing --{name}")))
    }

    /// The float type to compute in: `--dtype`, else float64 if any floating-point input
    /// is float64, else float32 if any is float32, else float64.
    pub fn compute_dtype(&self, forced: Option<DTypeArg>) -> DTypeArg {
        if let Some(d) = forced {
            return d;
        }
        let floats: Vec<DType> = self.arrays.values().map(|a| a.dtype).filter(|d| d.is_float()).collect();
        if floats.contains(&DType::F64) {
            DTypeArg::F64
        } else if floats.contains(&DType::F32) {
            DTypeArg::F32
        } else {
            DTypeArg::F64
        }
    }

    /// Arrays built in memory (the option probe of `eval` and `check`).
    pub fn from_arrays(arrays: BTreeMap<&'static str, Array>) -> Inputs {
        Inputs { arrays }
    }

    /// A floating-point view of `name` (ints and bools are converted). A finite value that
    /// does not fit `T` (1e300 in float32) is an error naming the file and the index.
    pub fn float<T: Float>(&self, name: &str) -> Result<Tensor<T>, Fail> {
        let a = self.array(name)?;
        let data: Vec<T> = a.values.iter().map(|&v| T::of(v)).collect();
        if let Some(i) = data.iter().zip(&a.values).position(|(t, v)| v.is_finite() && !t.is_finite()) {
            return Err(data_err(format!(
                "--{name} {}: the value {} at {name}[{i}] does not fit {} (whose largest finite value is {}); compute in float64 with --dtype f64",
                a.display(),
                crate::num::show(a.values[i]),
                T::DTYPE,
                crate::num::show_float(T::max_value()),
            )));
        }
        Ok(Tensor { shape: a.shape.clone(), data })
    }

    /// An integer view of `name` (class indices).
    #[allow(dead_code)] // the class-index losses of the family use it Float files are accepted when every
    /// value is integral.
    pub fn index(&self, name: &str) -> Result<Tensor<i64>, Fail> {
        let a = self.array(name)?;
        if let Some(ints) = &a.ints {
            return Ok(Tensor { shape: a.shape.clone(), data: ints.clone() });
        }
        // Integral and within i64 (2^63 itself is not: it would saturate).
        match a
            .values
            .iter()
            .position(|v| v.fract() != 0.0 || !v.is_finite() || v.abs() >= 9_223_372_036_854_775_808.0)
        {
            Some(i) => Err(data(format!(
                "--{name} {}: class indices must be integers, got {} at {name}[{i}]",
                a.display(),
                crate::num::show(a.values[i])
            ))),
            None => Ok(Tensor { shape: a.shape.clone(), data: a.values.iter().map(|&v| v as i64).collect() }),
        }
    }
}

/// A data error unless `b`'s shape equals `a`'s.
pub fn same_shape<T, U>(a: (&str, &Tensor<T>), b: (&str, &Tensor<U>)) -> Result<(), Fail> {
    if a.1.shape == b.1.shape {
        Ok(())
    } else {
        Err(data(format!(
            "--{} has shape {:?} but --{} has shape {:?}; they must match (no broadcasting)",
            b.0, b.1.shape, a.0, a.1.shape
        )))
    }
}
