//! `marginloss check LOSS`: reads the data once and reports the misuses of the loss it can
//! see there, each with its evidence and the command line to use instead.
//!
//! The checks are chosen by the loss's [`Kind`] (what its inputs are: scores, distances,
//! score pairs, vectors, class indices, label rows), so a new loss needs one line in
//! [`PROFILES`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Args, ValueEnum};
use marginloss::{Hinge, HingeEmbedding, Labels, Mode};
use serde::{Serialize, Serializer};

use crate::eval::{spec, Spec};
use crate::fail::{data, Fail};
use crate::inputs::{InputArgs, Inputs, OptionArgs};
use crate::io::Array;

const SCHEMA: &str = "\
Exit status: 0 when no finding has severity error, 1 otherwise (or when a file cannot be read);
2 for a usage error, as eval.

--json prints one object:
  {\"loss\": NAME, \"ok\": BOOL (no error finding), \"errors\": N, \"warnings\": N, \"notes\": N,
   \"inputs\": {ARG: {\"path\": STR, \"dtype\": STR, \"shape\": [N, ...]}},
   \"findings\": [{\"severity\": \"error\"|\"warning\"|\"note\",
                 \"code\": STR (stable kebab-case id, e.g. \"negative-distance\"),
                 \"message\": STR,
                 \"evidence\": {\"arg\": STR (absent when not about one argument),
                              \"count\": N (offending values, rows or samples), \"total\": N,
                              \"first\": [{\"index\": [I, ...], \"value\": NUMBER|\"nan\"|\"inf\"|\"-inf\"}]
                                       (up to 5 offenders, in order),
                              \"stats\": {NAME: NUMBER} (absent when empty)},
                 \"fix\": STR|null (the command line or option to use instead)}]}

Codes: empty-input, non-finite, shape-mismatch, labels-01, labels-pm1, target-out-of-domain,
negative-distance, probabilities-not-scores, zero-vector, near-zero-vector, one-hot-target,
class-index-not-integer, class-index-out-of-range, indicator-target, duplicate-label,
row-without-label, margin-kink, margin-never-reached, margin-always-satisfied, margin-scale,
and the note margin-summary (shares of samples at the kink, with zero loss, violating the
margin). Margin diagnostics run only on data with no error or input warning.";

#[derive(Args, Debug)]
#[command(after_help = SCHEMA)]
pub struct CheckArgs {
    /// The loss, as for eval: hinge, squared-hinge, hinge-embedding, margin-ranking, soft-margin, …
    pub loss: String,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Print the report as JSON (the schema is below).
    #[arg(long)]
    pub json: bool,
}

/// What a loss's inputs are; it selects the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--input` classifier scores, `--target` binary labels.
    Score,
    /// `--input` distances `>= 0`, `--target` binary labels (similar / dissimilar).
    Distance,
    /// `--input1`, `--input2` scores, `--target` binary "which ranks higher".
    Ranking,
    /// `--input1`, `--input2` (N, D) vectors, no target.
    Vectors,
    /// `--input1`, `--input2` (N, D) vectors and a binary `--target` (N,).
    VectorPairs,
    /// `--anchor`, `--positive`, `--negative` (N, D) vectors.
    Triplet,
    /// `--input` (N, C) scores, `--target` one class index per row.
    ClassIndex,
    /// `--input` (N, C) scores, `--target` (N, C) class indices padded with −1.
    LabelRows,
    /// `--input` (N, C) logits, `--target` (N, C) 0/1 indicators.
    Indicator,
}

/// A loss's kind, its default margin (None: no margin diagnostics), and whether it
/// compares vectors with a cosine.
pub struct Profile {
    pub name: &'static str,
    pub kind: Kind,
    pub margin: Option<f64>,
    pub cosine: bool,
}

const fn p(name: &'static str, kind: Kind, margin: Option<f64>, cosine: bool) -> Profile {
    Profile { name, kind, margin, cosine }
}

/// One line a loss. A name eval does not know yet is not reachable (check takes eval's
/// names); the family losses landing later are listed already.
pub const PROFILES: &[Profile] = &[
    p("hinge", Kind::Score, Some(1.0), false),
    p("squared-hinge", Kind::Score, Some(1.0), false),
    p("soft-margin", Kind::Score, None, false),
    p("hinge-embedding", Kind::Distance, Some(1.0), false),
    p("contrastive", Kind::Distance, None, false),
    p("margin-ranking", Kind::Ranking, Some(0.0), false),
    p("cosine-similarity", Kind::Vectors, None, true),
    p("pairwise-distance", Kind::Vectors, None, false),
    p("cosine-embedding", Kind::VectorPairs, None, true),
    // cosine only with --distance cosine (see `cosine_distance`)
    p("triplet-margin", Kind::Triplet, None, false),
    p("multi-margin", Kind::ClassIndex, Some(1.0), false),
    p("multiclass-hinge", Kind::ClassIndex, Some(1.0), false),
    // torch's MultiLabelMarginLoss: the margin is fixed at 1 (no --margin)
    p("multilabel-margin", Kind::LabelRows, Some(1.0), false),
    p("multilabel-soft-margin", Kind::Indicator, None, false),
];

pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A value in the evidence: NaN and ±Inf as strings.
#[derive(Clone, Copy, Debug)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("nan")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(v)
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub index: Vec<usize>,
    pub value: Num,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<&'static str>,
    pub count: usize,
    pub total: usize,
    pub first: Vec<Item>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<&'static str, Num>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub evidence: Evidence,
    pub fix: Option<String>,
}

#[derive(Serialize)]
struct InputInfo {
    path: String,
    dtype: &'static str,
    shape: Vec<usize>,
}

#[derive(Serialize)]
struct Report<'a> {
    loss: &'a str,
    ok: bool,
    errors: usize,
    warnings: usize,
    notes: usize,
    inputs: BTreeMap<&'static str, InputInfo>,
    findings: &'a [Finding],
}

/// How many offenders the evidence lists.
const FIRST: usize = 5;

/// The row-major multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() {
        return vec![];
    }
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[d] = i % n;
            i /= n;
        }
    }
    idx
}

/// The offending elements of `a`: count and the first few.
fn scan(arg: &'static str, a: &Array, bad: impl Fn(f64) -> bool) -> Evidence {
    let mut ev = Evidence { arg: Some(arg), total: a.values.len(), ..Evidence::default() };
    for (i, &v) in a.values.iter().enumerate() {
        if bad(v) {
            ev.count += 1;
            if ev.first.len() < FIRST {
                ev.first.push(Item { index: unravel(i, &a.shape), value: Num(v) });
            }
        }
    }
    ev
}

/// A value to 6 significant digits (-0.10000000000000002 prints as -0.1).
fn fmt_num(v: f64) -> String {
    if v.is_finite() {
        let r: f64 = format!("{v:.5e}").parse().unwrap_or(v);
        if r != 0.0 && (r.abs() < 1e-4 || r.abs() >= 1e6) {
            format!("{r:e}")
        } else {
            format!("{r}")
        }
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// `v` rounded to one significant digit (for a suggested margin).
fn round1(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powf(v.abs().log10().floor());
    let r = (v / mag).round() * mag;
    // print 0.30000000000000004 as 0.3
    format!("{r:.12}").parse::<f64>().unwrap_or(r)
}

fn pct(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 || p == 100.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A `marginloss eval` command line: the user's, edited.
#[derive(Clone, Debug)]
struct Line {
    loss: &'static str,
    flags: Vec<(&'static str, Option<String>)>,
}

impl Line {
    fn from_args(loss: &'static str, args: &CheckArgs) -> Line {
        let i = &args.inputs;
        let mut flags: Vec<(&'static str, Option<String>)> = Vec::new();
        for (name, path) in [
            ("input", &i.input),
            ("target", &i.target),
            ("input1", &i.input1),
            ("input2", &i.input2),
            ("anchor", &i.anchor),
            ("positive", &i.positive),
            ("negative", &i.negative),
            ("weight", &i.weight),
        ] {
            if let Some(path) = path {
                flags.push((name, Some(path.display().to_string())));
            }
        }
        let o = &args.options;
        for (name, v) in [
            ("margin", o.margin.map(crate::num::show)),
            ("p", o.p.map(crate::num::show)),
            ("eps", o.eps.map(crate::num::show)),
            ("max-input-bytes", i.max_input_bytes.map(|b| b.to_string())),
            ("reduction", o.reduction.map(|r| enum_name(&r))),
            ("labels", o.labels.map(|r| enum_name(&r))),
            ("distance", o.distance.map(|r| enum_name(&r))),
            ("kink", o.kink.map(|r| enum_name(&r))),
            ("dtype", o.dtype.map(|r| enum_name(&r))),
        ] {
            if let Some(v) = v {
                flags.push((name, Some(v)));
            }
        }
        if o.swap {
            flags.push(("swap", None));
        }
        if i.allow_special_files {
            flags.push(("allow-special-files", None));
        }
        if i.csv_header {
            flags.push(("csv-header", None));
        }
        if o.torch_compat {
            flags.push(("torch-compat", None));
        }
        Line { loss, flags }
    }

    /// The same data for another loss: flags it does not take are dropped.
    fn for_loss(&self, to: &'static Spec) -> Line {
        let keep = |f: &str| {
            to.required.contains(&f)
                || to.optional.contains(&f)
                || to.options.contains(&f)
                || f == "dtype"
                || f == "torch-compat"
        };
        Line { loss: to.name, flags: self.flags.iter().filter(|(f, _)| keep(f)).cloned().collect() }
    }

    fn set(&self, flag: &'static str, value: Option<String>) -> Line {
        let mut l = self.clone();
        match l.flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(slot) => slot.1 = value,
            None => l.flags.push((flag, value)),
        }
        l
    }

    fn without(&self, flag: &str) -> Line {
        let mut l = self.clone();
        l.flags.retain(|(f, _)| *f != flag);
        l
    }

    fn render(&self) -> String {
        let mut s = format!("marginloss eval {}", self.loss);
        for (f, v) in &self.flags {
            s += &format!(" --{f}");
            if let Some(v) = v {
                s += " ";
                s += &shell_quote(v);
            }
        }
        s
    }
}

fn enum_name<E: ValueEnum>(e: &E) -> String {
    e.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// The state of one check run.
struct Checker<'a> {
    args: &'a CheckArgs,
    spec: &'static Spec,
    profile: Option<&'static Profile>,
    inputs: &'a Inputs,
    line: Line,
    findings: Vec<Finding>,
    /// Arguments already found empty or non-finite: later checks skip them.
    broken: Vec<&'static str>,
}

impl<'a> Checker<'a> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        evidence: Evidence,
        fix: Option<String>,
    ) {
        self.findings.push(Finding { severity, code, message, evidence, fix });
    }

    fn has_severity(&self, s: Severity) -> bool {
        self.findings.iter().any(|f| f.severity == s)
    }

    /// The array `name` when given and not broken.
    fn ok(&self, name: &'static str) -> Option<&'a Array> {
        if self.broken.contains(&name) {
            None
        } else {
            self.inputs.array(name).ok()
        }
    }

    fn flag(&self, name: &str) -> String {
        let path = self.inputs.array(name).map(Array::display).unwrap_or_default();
        format!("--{name} {path}")
    }

    /// Empty arrays and NaN/±Inf, for every argument.
    fn generic(&mut self) {
        let names: Vec<&'static str> = self.inputs.arrays().map(|(k, _)| k).collect();
        for name in order(&names) {
            let Ok(a) = self.inputs.array(name) else { continue };
            if a.values.is_empty() {
                let ev = Evidence { arg: Some(name), count: 0, total: 0, ..Evidence::default() };
                let msg = format!(
                    "{} has shape {:?}: no elements; the mean of an empty batch is NaN (torch) and strict eval rejects it",
                    self.flag(name),
                    a.shape
                );
                self.push(
                    Severity::Error,
                    "empty-input",
                    msg,
                    ev,
                    Some("drop empty batches before the loss".into()),
                );
                self.broken.push(name);
                continue;
            }
            let ev = scan(name, a, |v| !v.is_finite());
            if ev.count > 0 {
                let nan = a.values.iter().filter(|v| v.is_nan()).count();
                let msg = format!(
                    "{}: {} of {} values are not finite ({nan} NaN, {} ±Inf); the loss and its gradient become NaN",
                    self.flag(name),
                    ev.count,
                    ev.total,
                    ev.count - nan
                );
                let fix = "remove or impute the non-finite values (e.g. np.nan_to_num, or mask the samples) before the loss";
                self.push(Severity::Error, "non-finite", msg, ev, Some(fix.into()));
                self.broken.push(name);
            }
        }
    }

    /// A shape-mismatch finding unless `b` has the `want` shape.
    fn shape_is(&mut self, b: &'static str, want: &[usize], why: &str) -> bool {
        let Ok(arr) = self.inputs.array(b) else { return true };
        if arr.shape == want || arr.values.is_empty() {
            return true;
        }
        let ev = Evidence {
            arg: Some(b),
            count: arr.values.len(),
            total: want.iter().product(),
            ..Evidence::default()
        };
        let msg =
            format!("{} has shape {:?}; {} needs {want:?} ({why})", self.flag(b), arr.shape, self.spec.name);
        let fix = format!("pass a --{b} of shape {want:?} (eval does not broadcast)");
        self.push(Severity::Error, "shape-mismatch", msg, ev, Some(fix));
        false
    }

    /// Binary targets: {0, 1} where ±1 is expected and the reverse, anything else.
    fn binary_target(&mut self) {
        let Some(t) = self.ok("target") else { return };
        let labels = self.args.options.labels();
        let in_pm1 = |v: f64| v == 1.0 || v == -1.0;
        let in_01 = |v: f64| v == 1.0 || v == 0.0;
        let name = self.spec.name;
        let takes_labels = self.spec.options.contains(&"labels");
        match labels {
            Labels::PlusMinusOne if t.values.iter().all(|&v| in_01(v)) && t.values.contains(&0.0) => {
                let ev = scan("target", t, |v| v == 0.0);
                let msg = format!(
                    "{}: the targets are {{0, 1}} ({} zeros of {}); {name} expects ±1 by default, and a 0 is neither class (strict eval rejects it; torch silently uses y = 0)",
                    self.flag("target"),
                    ev.count,
                    ev.total
                );
                let fix = takes_labels.then(|| self.line.set("labels", Some("01".into())).render());
                self.push(Severity::Error, "labels-01", msg + "; pass `--labels 01`", ev, fix);
            }
            Labels::ZeroOne if t.values.iter().all(|&v| in_pm1(v)) && t.values.contains(&-1.0) => {
                let ev = scan("target", t, |v| v == -1.0);
                let msg = format!(
                    "{}: --labels 01 is given but the targets are ±1 ({} of {} are -1); drop `--labels 01`",
                    self.flag("target"),
                    ev.count,
                    ev.total
                );
                let fix = Some(self.line.without("labels").render());
                self.push(Severity::Error, "labels-pm1", msg, ev, fix);
            }
            _ => {
                let ok = |v: f64| match labels {
                    Labels::PlusMinusOne => in_pm1(v),
                    _ => in_01(v),
                };
                let ev = scan("target", t, |v| !ok(v));
                if ev.count > 0 {
                    let expected = match labels {
                        Labels::PlusMinusOne => "{-1, 1}",
                        _ => "{0, 1} (--labels 01)",
                    };
                    let msg = format!(
                        "{}: {} of {} targets are outside {expected}, the domain of {name}'s target",
                        self.flag("target"),
                        ev.count,
                        ev.total
                    );
                    let fix = "map the labels to {-1, 1} (or {0, 1} with --labels 01); class indices belong to multi-margin / multiclass-hinge";
                    self.push(Severity::Error, "target-out-of-domain", msg, ev, Some(fix.into()));
                }
            }
        }
    }

    /// Scores that all lie in [0, 1] look like probabilities.
    fn probabilities(&mut self, arg: &'static str) {
        let Some(a) = self.ok(arg) else { return };
        if a.values.len() < 2 || !a.values.iter().all(|&v| (0.0..=1.0).contains(&v)) {
            return;
        }
        let (lo, hi) = a.values.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let mut ev =
            Evidence { arg: Some(arg), count: a.values.len(), total: a.values.len(), ..Default::default() };
        ev.stats.insert("min", Num(lo));
        ev.stats.insert("max", Num(hi));
        let msg = format!(
            "{}: all {} values lie in [0, 1] (min {}, max {}): these look like probabilities, not raw scores; {} wants unbounded scores (logits, decision values), and with probabilities every sample stays inside the margin",
            self.flag(arg),
            a.values.len(),
            fmt_num(lo),
            fmt_num(hi),
            self.spec.name
        );
        let fix = "pass the raw scores (logits) instead; from a probability p the score is log(p / (1 - p))";
        self.push(Severity::Warning, "probabilities-not-scores", msg, ev, Some(fix.into()));
    }

    /// Negative values where distances belong.
    fn negative_distance(&mut self, arg: &'static str) {
        let Some(a) = self.ok(arg) else { return };
        let ev = scan(arg, a, |v| v < 0.0);
        if ev.count == 0 {
            return;
        }
        let name = self.spec.name;
        let mut ev = ev;
        let mut msg = format!(
            "{}: {} of {} values are negative, but {name} takes distances (>= 0)",
            self.flag(arg),
            ev.count,
            ev.total
        );
        let mut fix = None;
        if let (Ok(hinge), true) = (spec("hinge"), name == "hinge-embedding") {
            msg += "; these look like classifier scores; use `hinge`";
            // What each loss gives on this data (when the targets are valid).
            if let Some(t) = self.ok("target") {
                let o = &self.args.options;
                let r = o.reduction();
                if t.values.len() == a.values.len() {
                    let torch = HingeEmbedding::new()
                        .margin(o.margin.unwrap_or(1.0))
                        .labels(o.labels())
                        .mode(Mode::TorchCompat)
                        .forward(&a.values, &t.values, r);
                    let svm = Hinge::new().labels(o.labels()).forward(&a.values, &t.values, r);
                    if let (Ok(torch), Ok(svm), true) = (torch, svm, r != marginloss::Reduction::None) {
                        let (torch, svm) = (torch.as_slice()[0], svm.as_slice()[0]);
                        ev.stats.insert("torch_hinge_embedding_loss", Num(torch));
                        ev.stats.insert("hinge_loss", Num(svm));
                        msg += &format!(
                            " (torch's HingeEmbeddingLoss silently gives {} here; hinge gives {})",
                            fmt_num(torch),
                            fmt_num(svm)
                        );
                    }
                }
            }
            fix = Some(self.line.for_loss(hinge).render());
        } else {
            msg += "; compute distances first";
            if let Ok(pd) = spec("pairwise-distance") {
                fix = Some(format!(
                    "distances come from embeddings: {} (or 1 - cosine-similarity)",
                    Line {
                        loss: pd.name,
                        flags: vec![("input1", Some("A.npy".into())), ("input2", Some("B.npy".into()))]
                    }
                    .render()
                ));
            }
        }
        self.push(Severity::Error, "negative-distance", msg, ev, fix);
    }

    /// (N, D) rows with zero or near-zero norm under a cosine.
    fn zero_vectors(&mut self, arg: &'static str) {
        let Some(a) = self.ok(arg) else { return };
        let Some(&d) = a.shape.last() else { return };
        if d == 0 {
            return;
        }
        let eps = self.args.options.eps.unwrap_or(1e-8);
        let norms: Vec<f64> =
            a.values.chunks(d).map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
        let mut sorted: Vec<f64> = norms.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let rows = &a.shape[..a.shape.len() - 1];
        let collect = |bad: &dyn Fn(f64) -> bool| {
            let mut ev = Evidence { arg: Some(arg), total: norms.len(), ..Evidence::default() };
            for (i, &n) in norms.iter().enumerate() {
                if bad(n) {
                    ev.count += 1;
                    if ev.first.len() < FIRST {
                        ev.first.push(Item { index: unravel(i, rows), value: Num(n) });
                    }
                }
            }
            ev
        };
        let zero = collect(&|n| n <= eps);
        let name = self.spec.name;
        if zero.count > 0 {
            let msg = format!(
                "{}: {} of {} rows have norm <= eps ({eps}); their cosine is undefined ({name} clamps the norm to eps and returns 0 with a meaningless gradient); evidence values are row norms",
                self.flag(arg),
                zero.count,
                zero.total
            );
            let fix = "drop the all-zero rows (padding, missing embeddings) or mask them out";
            self.push(Severity::Error, "zero-vector", msg, zero, Some(fix.into()));
            return;
        }
        let near = collect(&|n| n < 1e-3 * median);
        if near.count > 0 {
            let msg = format!(
                "{}: {} of {} rows have a norm below 1/1000 of the median row norm ({}); their cosine and its gradient (~1/norm) are dominated by noise; evidence values are row norms",
                self.flag(arg),
                near.count,
                near.total,
                fmt_num(median)
            );
            let fix = "check these rows for padding or collapsed embeddings; drop or mask them";
            self.push(Severity::Warning, "near-zero-vector", msg, near, Some(fix.into()));
        }
    }

    /// Whether the triplet's distance is the cosine one.
    fn cosine(&self) -> bool {
        use crate::inputs::DistanceArg;
        self.profile.is_some_and(|p| p.cosine)
            || (self.profile.is_some_and(|p| p.kind == Kind::Triplet)
                && self.args.options.distance == Some(DistanceArg::Cosine))
    }

    /// (N, D) vector arguments of equal shapes.
    fn vectors(&mut self, args: &[&'static str]) {
        let Ok(first) = self.inputs.array(args[0]) else { return };
        let want = first.shape.clone();
        for &b in &args[1..] {
            self.shape_is(b, &want, &format!("the shape of --{}", args[0]));
        }
        if self.cosine() {
            for &a in args {
                self.zero_vectors(a);
            }
        }
    }

    /// Class-index targets: integers in 0..C, one per row.
    fn class_index(&mut self) {
        let Some(x) = self.ok("input") else { return };
        let Some((&c, rows)) = x.shape.split_last() else { return };
        let rows = rows.to_vec();
        let x_shape = x.shape.clone();
        if let Some(t) = self.ok("target") {
            if t.shape == x_shape && rows.len() == 1 && t.values.iter().all(|&v| v == 0.0 || v == 1.0) {
                let per_row: Vec<usize> =
                    t.values.chunks(c.max(1)).map(|r| r.iter().filter(|&&v| v == 1.0).count()).collect();
                let ev = Evidence {
                    arg: Some("target"),
                    count: per_row.iter().filter(|&&k| k == 1).count(),
                    total: per_row.len(),
                    ..Evidence::default()
                };
                let msg = format!(
                    "{} has the shape of the scores {:?} and holds only 0 and 1: a one-hot (or multi-hot) matrix; {} takes one class index per row, shape {rows:?}",
                    self.flag("target"),
                    x_shape,
                    self.spec.name
                );
                let fix = if per_row.iter().all(|&k| k == 1) {
                    "pass the class indices: target.argmax(axis=1)".to_string()
                } else {
                    let multi = spec("multilabel-soft-margin").map(|s| self.line.for_loss(s).render());
                    format!("rows with several 1s are multilabel targets: {}", multi.unwrap_or_default())
                };
                self.push(Severity::Error, "one-hot-target", msg, ev, Some(fix));
                self.broken.push("target");
            }
        }
        if rows.is_empty() {
            // (C,) scores: one sample, target [1] or []
            if !matches!(self.inputs.array("target"), Ok(t) if t.shape == [1] || t.shape.is_empty()) {
                self.shape_is("target", &[1], "one class index per row");
            }
        } else if self.ok("target").is_some() {
            self.shape_is("target", &rows, "one class index per row");
        }
        if self.inputs.has("weight") {
            self.shape_is("weight", &[c], "one weight per class");
        }
        let Some(t) = self.ok("target") else { return };
        self.indices(t, c, 0.0, "class indices in 0..C");
    }

    /// Integrality and range of index targets; `low` is the smallest allowed value.
    fn indices(&mut self, t: &Array, c: usize, low: f64, what: &str) -> bool {
        let ev = scan("target", t, |v| v.fract() != 0.0);
        if ev.count > 0 {
            let msg = format!(
                "{}: {} of {} targets are not integers; {} takes {what}",
                self.flag("target"),
                ev.count,
                ev.total,
                self.spec.name
            );
            let fix = "pass integer class indices (np.int64), not scores or probabilities";
            self.push(Severity::Error, "class-index-not-integer", msg, ev, Some(fix.into()));
            return false;
        }
        let ev = scan("target", t, |v| v < low || v >= c as f64);
        if ev.count > 0 {
            let (lo, hi) = t.values.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            let mut ev = ev;
            ev.stats.insert("classes", Num(c as f64));
            let hint =
                if hi == c as f64 && lo >= 1.0 { "; the indices look 1-based: subtract 1" } else { "" };
            let msg = format!(
                "{}: {} of {} class indices are outside {}..{} (the input has C = {c} columns; the targets span {}..{}){hint}",
                self.flag("target"),
                ev.count,
                ev.total,
                fmt_num(low),
                c - 1,
                fmt_num(lo),
                fmt_num(hi)
            );
            let fix = if hint.is_empty() {
                format!(
                    "pass scores with one column per class (C > {}) or remap the labels to 0..{}",
                    fmt_num(hi),
                    c - 1
                )
            } else {
                "use 0-based class indices: target - 1".into()
            };
            self.push(Severity::Error, "class-index-out-of-range", msg, ev, Some(fix));
            return false;
        }
        true
    }

    /// multilabel-margin's −1-padded label rows.
    fn label_rows(&mut self) {
        let Some(x) = self.ok("input") else { return };
        let x_shape = x.shape.clone();
        let Some(&c) = x_shape.last() else { return };
        if !self.shape_is("target", &x_shape, "one row of class indices per score row, padded with -1") {
            return;
        }
        let Some(t) = self.ok("target") else { return };
        if c == 0 {
            return;
        }
        if c >= 3 && t.values.iter().all(|&v| v == 0.0 || v == 1.0) {
            let ev = scan("target", t, |v| v == 1.0);
            let msg = format!(
                "{}: every entry is 0 or 1 and no row has a -1: a 0/1 indicator matrix; {} reads each row as a list of class indices ([1, 0, 1, ...] means classes 1 and 0)",
                self.flag("target"),
                self.spec.name
            );
            let fix = spec("multilabel-soft-margin")
                .map(|s| {
                    format!(
                        "{} (it takes indicators), or convert with multilabel_target_from_indicator",
                        self.line.for_loss(s).render()
                    )
                })
                .ok();
            self.push(Severity::Error, "indicator-target", msg, ev, fix);
            return;
        }
        if !self.indices(t, c, -1.0, "class indices in 0..C, padded with -1") {
            return;
        }
        let rows = t.values.len() / c;
        let mut dup = Evidence { arg: Some("target"), total: rows, ..Evidence::default() };
        let mut empty = Evidence { arg: Some("target"), total: rows, ..Evidence::default() };
        for (r, row) in t.values.chunks(c).enumerate() {
            let labels: Vec<f64> = row.iter().copied().take_while(|&v| v != -1.0).collect();
            if labels.is_empty() {
                empty.count += 1;
                if empty.first.len() < FIRST {
                    empty.first.push(Item { index: unravel(r * c, &t.shape), value: Num(row[0]) });
                }
            }
            if let Some(j) = (1..labels.len()).find(|&j| labels[..j].contains(&labels[j])) {
                dup.count += 1;
                if dup.first.len() < FIRST {
                    dup.first.push(Item { index: unravel(r * c + j, &t.shape), value: Num(labels[j]) });
                }
            }
        }
        if dup.count > 0 {
            let msg = format!(
                "{}: {} of {rows} rows list a class twice before the -1; {} counts it twice (as torch does), doubling its weight",
                self.flag("target"),
                dup.count,
                self.spec.name
            );
            let fix = "list each label once per row (build rows with multilabel_target_from_sets)";
            self.push(Severity::Warning, "duplicate-label", msg, dup, Some(fix.into()));
        }
        if empty.count > 0 {
            let msg = format!(
                "{}: {} of {rows} rows have no label (they start with -1); they contribute loss 0 and no gradient but still count in the mean",
                self.flag("target"),
                empty.count
            );
            let fix = "drop the unlabelled rows, or use --reduction sum if they are meant to be empty";
            self.push(Severity::Warning, "row-without-label", msg, empty, Some(fix.into()));
        }
    }

    /// multilabel-soft-margin's indicator targets in [0, 1].
    fn indicator(&mut self) {
        let Some(x) = self.ok("input") else { return };
        let x_shape = x.shape.clone();
        let c = x_shape.last().copied().unwrap_or(0);
        self.shape_is("target", &x_shape, "one indicator per score");
        if self.inputs.has("weight") {
            self.shape_is("weight", &[c], "one weight per class");
        }
        let Some(t) = self.ok("target") else { return };
        let ev = scan("target", t, |v| !(0.0..=1.0).contains(&v));
        if ev.count > 0 {
            let pm1 = t.values.iter().all(|&v| v == 1.0 || v == -1.0);
            let msg = format!(
                "{}: {} of {} targets are outside [0, 1]{}",
                self.flag("target"),
                ev.count,
                ev.total,
                if pm1 { "; they look like ±1 labels" } else { "" }
            );
            let fix = if pm1 {
                "map ±1 labels to indicators: (y + 1) / 2"
            } else {
                "pass 0/1 indicators (or soft labels in [0, 1])"
            };
            self.push(Severity::Error, "target-out-of-domain", msg, ev, Some(fix.into()));
        }
    }

    fn run_kind(&mut self) {
        let Some(profile) = self.profile else { return };
        match profile.kind {
            Kind::Score | Kind::Distance => {
                if let Ok(x) = self.inputs.array("input") {
                    let shape = x.shape.clone();
                    self.shape_is("target", &shape, "one target per input");
                }
                self.binary_target();
                if profile.kind == Kind::Distance {
                    self.negative_distance("input");
                } else {
                    self.probabilities("input");
                }
            }
            Kind::Ranking => {
                if let Ok(x) = self.inputs.array("input1") {
                    let shape = x.shape.clone();
                    self.shape_is("input2", &shape, "one score per pair");
                    self.shape_is("target", &shape, "one target per pair");
                }
                self.binary_target();
            }
            Kind::Vectors => self.vectors(&["input1", "input2"]),
            Kind::VectorPairs => {
                self.vectors(&["input1", "input2"]);
                if let Ok(x) = self.inputs.array("input1") {
                    let rows = x.shape[..x.shape.len().saturating_sub(1)].to_vec();
                    self.shape_is("target", &rows, "one target per row pair");
                }
                self.binary_target();
            }
            Kind::Triplet => self.vectors(&["anchor", "positive", "negative"]),
            Kind::ClassIndex => {
                self.class_index();
                self.probabilities("input");
            }
            Kind::LabelRows => {
                self.label_rows();
                self.probabilities("input");
            }
            Kind::Indicator => self.indicator(),
        }
    }

    /// The per-sample quantity compared with the margin (a sample has zero loss when it
    /// is >= the margin), and the values whose spread sets the margin's scale.
    fn margin_quantity(&self, kind: Kind) -> Option<(Vec<f64>, Vec<f64>, &'static str)> {
        let labels = self.args.options.labels();
        let decode = |t: f64| if labels == Labels::ZeroOne { 2.0 * t - 1.0 } else { t };
        match kind {
            Kind::Score => {
                let x = self.ok("input")?;
                let t = self.ok("target")?;
                let q: Vec<f64> = x.values.iter().zip(&t.values).map(|(x, t)| decode(*t) * x).collect();
                Some((q.clone(), q, "y·x"))
            }
            Kind::Distance => {
                let x = self.ok("input")?;
                let t = self.ok("target")?;
                let q: Vec<f64> = x
                    .values
                    .iter()
                    .zip(&t.values)
                    .filter(|(_, t)| decode(**t) == -1.0)
                    .map(|(x, _)| *x)
                    .collect();
                Some((q, x.values.clone(), "the distance x of dissimilar pairs (y = -1)"))
            }
            Kind::Ranking => {
                let (a, b, t) = (self.ok("input1")?, self.ok("input2")?, self.ok("target")?);
                let q: Vec<f64> = a
                    .values
                    .iter()
                    .zip(&b.values)
                    .zip(&t.values)
                    .map(|((a, b), t)| decode(*t) * (a - b))
                    .collect();
                Some((q.clone(), q, "y·(x1 - x2)"))
            }
            Kind::ClassIndex => {
                let (x, t) = (self.ok("input")?, self.ok("target")?);
                let c = *x.shape.last()?;
                if c < 2 {
                    return None;
                }
                let q: Vec<f64> = x
                    .values
                    .chunks(c)
                    .zip(&t.values)
                    .map(|(row, &y)| {
                        let y = y as usize;
                        let other = row
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != y)
                            .fold(f64::MIN, |m, (_, v)| m.max(*v));
                        row[y] - other
                    })
                    .collect();
                Some((q.clone(), q, "x[y] - max other x"))
            }
            Kind::LabelRows => {
                let (x, t) = (self.ok("input")?, self.ok("target")?);
                let c = *x.shape.last()?;
                let mut q = Vec::new();
                for (row, trow) in x.values.chunks(c).zip(t.values.chunks(c)) {
                    let labels: Vec<usize> =
                        trow.iter().take_while(|&&v| v != -1.0).map(|&v| v as usize).collect();
                    let pos = labels.iter().map(|&j| row[j]).fold(f64::MAX, f64::min);
                    let neg = (0..c).filter(|i| !labels.contains(i)).map(|i| row[i]).fold(f64::MIN, f64::max);
                    if !labels.is_empty() && labels.len() < c && neg > f64::MIN {
                        q.push(pos - neg);
                    }
                }
                Some((q.clone(), q, "min label score - max non-label score"))
            }
            _ => None,
        }
    }

    fn margin_diagnostics(&mut self) {
        let Some(profile) = self.profile else { return };
        let Some(default) = profile.margin else { return };
        if self.has_severity(Severity::Error) || self.has_severity(Severity::Warning) {
            return;
        }
        let margin = self.args.options.margin.unwrap_or(default);
        let Some((q, scale_values, what)) = self.margin_quantity(profile.kind) else { return };
        if q.is_empty() {
            return;
        }
        let n = q.len();
        let at = q.iter().filter(|&&v| v == margin).count();
        let zero = q.iter().filter(|&&v| v >= margin).count();
        let violating = n - zero;
        let spread = spread(&scale_values);
        let share = |k: usize| k as f64 / n as f64;
        let takes_margin = self.spec.options.contains(&"margin");
        let mut stats = BTreeMap::new();
        stats.insert("margin", Num(margin));
        stats.insert("samples", Num(n as f64));
        stats.insert("kink_share", Num(share(at)));
        stats.insert("zero_loss_share", Num(share(zero)));
        stats.insert("violating_share", Num(share(violating)));
        stats.insert("spread", Num(spread.0));
        let base = Evidence { arg: None, count: n, total: n, first: vec![], stats };
        let msg = format!(
            "margin {}: of {n} samples ({what}), {} reach the margin (zero loss), {} violate it, {} sit exactly at the kink; spread ({}) of the data {}",
            fmt_num(margin),
            pct(share(zero)),
            pct(share(violating)),
            pct(share(at)),
            spread.1,
            fmt_num(spread.0)
        );
        self.push(Severity::Note, "margin-summary", msg, base.clone(), None);

        let suggest = |m: f64, line: &Line| -> String {
            if takes_margin {
                line.set("margin", Some(round1(m).to_string())).render()
            } else {
                format!(
                    "rescale the scores so that their spread is about the fixed margin {}",
                    fmt_num(margin)
                )
            }
        };
        let mut scale_warned = false;
        // Class scores where the true class is not on top for most rows are scores before
        // (or early in) training: their scale says nothing about the margin to use, and the
        // remedy is training, not a margin fitted to the untrained spread.
        let untrained = matches!(profile.kind, Kind::ClassIndex | Kind::LabelRows) && median(&q) <= 0.0;
        if margin != 0.0 && spread.0 > 0.0 && !untrained {
            let ratio = margin.abs() / spread.0;
            if !(0.1..10.0).contains(&ratio) {
                let large = ratio >= 10.0;
                let msg = format!(
                    "margin {} is {} the spread of the data ({} {}): {}",
                    fmt_num(margin),
                    if large {
                        format!("{ratio:.0}× (>= 10×)")
                    } else {
                        format!("{ratio:.2}× (<= 0.1×)")
                    },
                    spread.1,
                    fmt_num(spread.0),
                    if large {
                        "no sample can get past it, every sample keeps a constant gradient"
                    } else {
                        "it has almost no effect; the loss behaves like a perceptron loss at 0"
                    }
                );
                self.push(
                    Severity::Warning,
                    "margin-scale",
                    msg,
                    base.clone(),
                    Some(suggest(spread.0, &self.line)),
                );
                scale_warned = true;
            }
        }
        if share(at) >= 0.1 {
            let msg = format!(
                "{} of the samples sit exactly at the kink ({what} == margin {}): the gradient there is a convention (0 in torch 2.15, 1 in older torch and TensorFlow, 0.5 in jax); quantized or rounded data often causes this",
                pct(share(at)),
                fmt_num(margin)
            );
            let fix = "use unrounded scores, or be explicit about the kink convention: --kink zero|half|one (Kink in the library)";
            self.push(Severity::Warning, "margin-kink", msg, base.clone(), Some(fix.into()));
        }
        if scale_warned || n < 2 {
            return;
        }
        if zero == 0 {
            // Class scores (one column per class): "all on the wrong side" is what scores
            // look like before training, not an inverted encoding, and a smaller margin is
            // never the remedy (margin 0 turns the hinge into a perceptron loss).
            let classes = matches!(profile.kind, Kind::ClassIndex | Kind::LabelRows);
            let all_wrong = q.iter().all(|&v| v < 0.0) && profile.kind != Kind::Distance;
            let mid = median(&q);
            let unseparated = (classes || all_wrong || mid <= 0.0) && profile.kind != Kind::Distance;
            let right = q.iter().filter(|&&v| v > 0.0).count();
            let msg = format!(
                "no sample reaches the margin {} ({what} < margin for all {n}): every sample keeps a loss and a gradient{}",
                fmt_num(margin),
                if classes {
                    format!(
                        "; the true class scores highest in {} of the samples: expected for scores of an untrained model",
                        pct(share(right))
                    )
                } else if all_wrong {
                    "; every sample is on the wrong side: the labels or the scores look inverted".to_string()
                } else if unseparated {
                    "; most samples are on the wrong side of 0: expected for scores of an untrained model".to_string()
                } else {
                    "; a margin near the median leaves about half of them past it".to_string()
                }
            );
            let fix = if classes {
                format!(
                    "nothing to change before training: keep the margin {} (the loss and its gradient are what training needs); if these scores come from a trained model, check that the target's class indices number the score columns in the same order",
                    fmt_num(margin)
                )
            } else if all_wrong {
                "check the label encoding: negate the targets (or the scores)".to_string()
            } else if unseparated {
                format!(
                    "nothing to change before training: keep the margin {}; if these scores come from a trained model, check the label encoding",
                    fmt_num(margin)
                )
            } else {
                suggest(mid, &self.line)
            };
            let severity = if classes { Severity::Note } else { Severity::Warning };
            self.push(severity, "margin-never-reached", msg, base, Some(fix));
        } else if violating == 0 {
            let msg = format!(
                "every sample is past the margin {} ({what} >= margin for all {n}): the margin term has zero loss and zero gradient",
                fmt_num(margin)
            );
            let fix = suggest(median(&q), &self.line);
            self.push(Severity::Warning, "margin-always-satisfied", msg, base, Some(fix));
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// The interquartile range, or the standard deviation when the IQR is 0.
fn spread(v: &[f64]) -> (f64, &'static str) {
    if v.len() < 2 {
        return (0.0, "IQR");
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (s.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
    };
    let iqr = q(0.75) - q(0.25);
    if iqr > 0.0 {
        return (iqr, "IQR");
    }
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    let var = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / s.len() as f64;
    (var.sqrt(), "std")
}

/// Argument names in command-line order.
fn order(names: &[&'static str]) -> Vec<&'static str> {
    ["input", "target", "input1", "input2", "anchor", "positive", "negative", "weight"]
        .into_iter()
        .filter(|n| names.contains(n))
        .collect()
}

/// Runs every check; the findings in order of severity (stable within a severity).
pub fn findings(args: &CheckArgs) -> Result<(&'static Spec, Inputs, Vec<Finding>), Fail> {
    let spec = spec(&args.loss)?;
    args.options.only(spec.name, spec.options)?;
    let o = &args.options;
    crate::eval::probe_options(spec, o, o.dtype.unwrap_or(crate::inputs::DTypeArg::F64))?;
    let inputs = args.inputs.read(spec.name, spec.required, spec.optional)?;
    // Again in the compute type (a margin finite in float64 may not be in float32).
    crate::eval::probe_options(spec, o, inputs.compute_dtype(o.dtype))?;
    let mut c = Checker {
        args,
        spec,
        profile: profile(spec.name),
        inputs: &inputs,
        line: Line::from_args(spec.name, args),
        findings: Vec::new(),
        broken: Vec::new(),
    };
    c.generic();
    c.run_kind();
    c.margin_diagnostics();
    let mut f = c.findings;
    f.sort_by_key(|f| f.severity);
    Ok((spec, inputs, f))
}

pub fn run(args: &CheckArgs) -> Result<(), Fail> {
    let (spec, inputs, findings) = findings(args)?;
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings, notes) = (count(Severity::Error), count(Severity::Warning), count(Severity::Note));
    let text = if args.json {
        let infos = inputs
            .arrays()
            .map(|(k, a)| {
                (k, InputInfo { path: a.display(), dtype: dtype_name(a.dtype), shape: a.shape.clone() })
            })
            .collect();
        let report = Report {
            loss: spec.name,
            ok: errors == 0,
            errors,
            warnings,
            notes,
            inputs: infos,
            findings: &findings,
        };
        let mut s = serde_json::to_string(&report).map_err(|e| data(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        human(spec, &inputs, &findings, (errors, warnings, notes))
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if errors > 0 {
        return Err(data(format!(
            "check {}: {errors} error{} in the data (see the report above)",
            spec.name,
            if errors == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

fn dtype_name(d: crate::io::DType) -> &'static str {
    use crate::io::DType;
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::Bool => "bool",
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn human(spec: &Spec, inputs: &Inputs, findings: &[Finding], (e, w, n): (usize, usize, usize)) -> String {
    let mut s = format!(
        "check {}: {}, {}, {}\n",
        spec.name,
        plural(e, "error"),
        plural(w, "warning"),
        plural(n, "note")
    );
    let names: Vec<&'static str> = inputs.arrays().map(|(k, _)| k).collect();
    for name in order(&names) {
        if let Ok(a) = inputs.array(name) {
            let _ = writeln!(s, "  --{name} {}  {} {:?}", a.display(), dtype_name(a.dtype), a.shape);
        }
    }
    for f in findings {
        let _ = writeln!(s, "\n{}[{}]: {}", f.severity.as_str(), f.code, f.message);
        let ev = &f.evidence;
        if !ev.first.is_empty() {
            let arg = ev.arg.unwrap_or("sample");
            let items: Vec<String> = ev
                .first
                .iter()
                .map(|it| {
                    let idx: Vec<String> = it.index.iter().map(usize::to_string).collect();
                    format!("{arg}[{}] = {}", idx.join(", "), fmt_num(it.value.0))
                })
                .collect();
            let more = if ev.count > ev.first.len() {
                format!(", … {} more", ev.count - ev.first.len())
            } else {
                String::new()
            };
            let _ = writeln!(s, "  evidence: {}{more}", items.join(", "));
        }
        if !ev.stats.is_empty() {
            let st: Vec<String> = ev.stats.iter().map(|(k, v)| format!("{k} {}", fmt_num(v.0))).collect();
            let _ = writeln!(s, "  stats: {}", st.join(", "));
        }
        if let Some(fix) = &f.fix {
            let _ = writeln!(s, "  fix: {fix}");
        }
    }
    if e == 0 && w == 0 {
        s += "\nno misuse found\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loss_eval_knows_has_a_profile() {
        for s in crate::eval::LOSSES {
            assert!(profile(s.name).is_some(), "{} has no check profile", s.name);
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(round1(0.2876), 0.3);
        assert_eq!(round1(23.0), 20.0);
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(spread(&[1.0, 2.0, 3.0, 4.0, 5.0]).0, 2.0);
    }
}
