//! `marginloss eval LOSS`: the loss and its gradients on files, as JSON or a summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Float, Hinge, HingeEmbedding,
    MarginRanking, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, PairwiseDistance,
    Reduction, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};
use serde::Serialize;

use crate::fail::{data, usage, Fail};
use crate::inputs::{enum_label, same_shape, DTypeArg, DistanceArg, InputArgs, Inputs, OptionArgs, Tensor};
use crate::io::{Array, DType};
use crate::num::{show, show_float};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The loss: hinge, squared-hinge, hinge-embedding, cosine-similarity, pairwise-distance,
    /// margin-ranking, soft-margin, multilabel-soft-margin, cosine-embedding, contrastive,
    /// triplet-margin, multi-margin, multiclass-hinge, multilabel-margin.
    pub loss: String,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Print {"loss": {"shape", "data"}, "grad": {ARG: {"shape", "data"}}} (NaN and ±Inf as null).
    #[arg(long)]
    pub json: bool,
}

/// What a loss takes on the command line.
pub struct Spec {
    pub name: &'static str,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
    pub options: &'static [&'static str],
}

/// Every loss `eval` knows.
pub const LOSSES: &[Spec] = &[
    Spec {
        name: "hinge",
        required: &["input", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction", "kink"],
    },
    Spec {
        name: "squared-hinge",
        required: &["input", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction"],
    },
    Spec {
        name: "hinge-embedding",
        required: &["input", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction", "kink"],
    },
    Spec { name: "cosine-similarity", required: &["input1", "input2"], optional: &[], options: &["eps"] },
    Spec {
        name: "margin-ranking",
        required: &["input1", "input2", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction", "kink"],
    },
    Spec {
        name: "soft-margin",
        required: &["input", "target"],
        optional: &[],
        options: &["labels", "reduction"],
    },
    Spec {
        name: "cosine-embedding",
        required: &["input1", "input2", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction", "kink"],
    },
    Spec {
        name: "contrastive",
        required: &["input1", "input2", "target"],
        optional: &[],
        options: &["margin", "labels", "reduction"],
    },
    Spec {
        name: "triplet-margin",
        required: &["anchor", "positive", "negative"],
        optional: &[],
        options: &["margin", "p", "eps", "swap", "distance", "reduction", "kink"],
    },
    Spec {
        name: "multi-margin",
        required: &["input", "target"],
        optional: &["weight"],
        options: &["p", "margin", "reduction"],
    },
    Spec {
        name: "multiclass-hinge",
        required: &["input", "target"],
        optional: &[],
        options: &["margin", "reduction"],
    },
    Spec {
        name: "multilabel-margin",
        required: &["input", "target"],
        optional: &[],
        options: &["reduction"],
    },
    Spec {
        name: "multilabel-soft-margin",
        required: &["input", "target"],
        optional: &["weight"],
        options: &["reduction"],
    },
    Spec {
        name: "pairwise-distance",
        required: &["input1", "input2"],
        optional: &[],
        options: &["p", "eps"],
    },
];

/// hinge-embedding on row pairs: `F.hinge_embedding_loss(d(input1, input2), target)` with
/// `d` chosen by `--distance`, the article's `1 - F.cosine_similarity(a, b)` for cosine.
pub const HINGE_EMBEDDING_PAIRS: Spec = Spec {
    name: "hinge-embedding",
    required: &["input1", "input2", "target"],
    optional: &[],
    options: &["margin", "p", "eps", "distance", "labels", "reduction", "kink"],
};

/// The spec `eval` runs: `spec(name)`, or hinge-embedding on row pairs when it is given
/// `--input1` or `--distance`.
fn eval_spec(args: &EvalArgs) -> Result<&'static Spec, Fail> {
    if args.loss == "hinge-embedding" && (args.inputs.input1.is_some() || args.inputs.input2.is_some()) {
        if args.options.distance.is_none() {
            return Err(usage(
                "hinge-embedding on --input1/--input2 needs --distance cosine|euclidean (the distance between the rows is the loss's input)",
            ));
        }
        if args.options.distance == Some(DistanceArg::Cosine) && args.options.p.is_some() {
            return Err(usage("hinge-embedding --distance cosine does not take --p"));
        }
        return Ok(&HINGE_EMBEDDING_PAIRS);
    }
    if args.loss == "hinge-embedding" && args.options.distance.is_some() {
        return Err(usage(
            "hinge-embedding --distance takes the rows --input1 and --input2 (their distance is the loss's input) instead of --input",
        ));
    }
    spec(&args.loss)
}

pub fn spec(name: &str) -> Result<&'static Spec, Fail> {
    LOSSES.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = LOSSES.iter().map(|s| s.name).collect();
        let dashed = name.replace('_', "-");
        let hint = if dashed != name && names.contains(&dashed.as_str()) {
            format!(" (did you mean {dashed}?)")
        } else {
            String::new()
        };
        usage(format!("unknown loss '{name}'{hint}; expected one of: {}", names.join(", ")))
    })
}

/// The loss's output and the gradient of its sum with respect to each floating input.
pub struct Evaluated<T> {
    pub loss: Tensor<T>,
    pub grads: Vec<(&'static str, Tensor<T>)>,
}

/// Checks the option values with the library itself, on a tiny valid input for each
/// argument, so that a bad value (`--margin nan`, `--p 3`, `--eps -1`) is a usage error
/// (exit 2) whatever the data, and before any file is read.
pub fn probe_options(spec: &Spec, o: &OptionArgs, dtype: DTypeArg) -> Result<(), Fail> {
    let arr = |shape: Vec<usize>, values: Vec<f64>, int: bool| Array {
        path: PathBuf::from("(option probe)"),
        dtype: if int { DType::I64 } else { DType::F64 },
        shape,
        ints: int.then(|| values.iter().map(|&v| v as i64).collect()),
        values,
    };
    let elementwise =
        matches!(spec.name, "hinge" | "squared-hinge" | "hinge-embedding" | "soft-margin" | "margin-ranking");
    let mut arrays = BTreeMap::new();
    for &name in spec.required {
        // 1 is a valid target in both label encodings.
        let a = match (spec.name, name) {
            ("multi-margin" | "multiclass-hinge", "target") => arr(vec![1], vec![0.0], true),
            ("multilabel-margin", "target") => arr(vec![1, 2], vec![0.0, -1.0], true),
            ("multilabel-soft-margin", "target") => arr(vec![1, 2], vec![1.0, 0.0], false),
            (_, "target") => arr(vec![1], vec![1.0], false),
            _ if elementwise => arr(vec![1], vec![0.5], false),
            _ => arr(vec![1, 2], vec![0.5, 0.25], false),
        };
        arrays.insert(name, a);
    }
    let inputs = Inputs::from_arrays(arrays);
    let result = match dtype {
        DTypeArg::F32 => evaluate::<f32>(spec, &inputs, o).map(drop),
        DTypeArg::F64 => evaluate::<f64>(spec, &inputs, o).map(drop),
    };
    match result {
        Err(e) if e.code == 2 => Err(e),
        _ => Ok(()),
    }
}

pub fn run(args: &EvalArgs) -> Result<(), Fail> {
    let spec = eval_spec(args)?;
    args.options.only(spec.name, spec.options)?;
    probe_options(spec, &args.options, args.options.dtype.unwrap_or(DTypeArg::F64))?;
    let inputs = args.inputs.read(spec.name, spec.required, spec.optional)?;
    let dtype = inputs.compute_dtype(args.options.dtype);
    let text = match dtype {
        DTypeArg::F32 => render(spec, args, evaluate::<f32>(spec, &inputs, &args.options)?, "float32")?,
        DTypeArg::F64 => render(spec, args, evaluate::<f64>(spec, &inputs, &args.options)?, "float64")?,
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

fn render<T: Float + Serialize>(
    spec: &Spec,
    args: &EvalArgs,
    ev: Evaluated<T>,
    dtype: &str,
) -> Result<String, Fail> {
    if args.json {
        #[derive(Serialize)]
        struct J<'a, T> {
            shape: &'a [usize],
            data: &'a [T],
        }
        #[derive(Serialize)]
        struct Doc<'a, T> {
            loss: J<'a, T>,
            grad: BTreeMap<&'static str, J<'a, T>>,
        }
        let doc = Doc {
            loss: J { shape: &ev.loss.shape, data: &ev.loss.data },
            grad: ev.grads.iter().map(|(k, t)| (*k, J { shape: &t.shape, data: &t.data })).collect(),
        };
        let mut s = serde_json::to_string(&doc).map_err(|e| data(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        return Ok(s);
    }
    let mut s = header(spec, args, dtype);
    // Distances and similarities are per-row values, not a loss.
    let what = match spec.name {
        "cosine-similarity" => "similarity",
        "pairwise-distance" => "distance",
        _ => "loss",
    };
    s += &format!("{what}  {}\n", summary(&ev.loss));
    for (k, g) in &ev.grads {
        let norm = g.data.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt();
        s += &format!("grad  {k}: {}  (L2 norm {norm:.6e})\n", summary(g));
    }
    Ok(s)
}

/// The first line of the text output: the loss, the reduction, the float type, the mode and
/// every option and optional input given.
fn header(spec: &Spec, args: &EvalArgs, dtype: &str) -> String {
    let o = &args.options;
    let mut s = format!(
        "{}  {}, {dtype}, {}",
        spec.name,
        if spec.options.contains(&"reduction") { o.reduction().as_str() } else { "per row" },
        if o.torch_compat { "torch-compat" } else { "strict" }
    );
    if let Some(d) = o.distance {
        s += &format!(", distance {}", enum_label(&d));
    }
    for (k, v) in [("margin", o.margin), ("p", o.p), ("eps", o.eps)] {
        if let Some(v) = v {
            s += &format!(", {k} {}", show(v));
        }
    }
    if o.swap {
        s += ", swap";
    }
    if let Some(l) = o.labels {
        s += &format!(", labels {}", enum_label(&l));
    }
    if let Some(k) = o.kink {
        s += &format!(", kink {}", enum_label(&k));
    }
    if let Some(w) = &args.inputs.weight {
        s += &format!(", weight {}", w.display());
    }
    s += "\n";
    s
}

/// A value as the text output shows it: -0 as 0.
fn show_value<T: Float>(v: T) -> String {
    if v == T::zero() {
        "0".into()
    } else {
        show_float(v)
    }
}

fn summary<T: Float>(t: &Tensor<T>) -> String {
    if t.shape.is_empty() {
        return t.data.first().map_or_else(String::new, |&v| show_value(v));
    }
    let shown: Vec<String> = t.data.iter().take(8).map(|&v| show_value(v)).collect();
    let more = if t.data.len() > 8 { format!(", … {} more", t.data.len() - 8) } else { String::new() };
    format!("shape {:?} [{}{more}]", t.shape, shown.join(", "))
}

fn out_shape(reduction: Reduction, shape: &[usize]) -> Vec<usize> {
    match reduction {
        Reduction::None => shape.to_vec(),
        _ => vec![],
    }
}

pub fn evaluate<T: Float>(spec: &Spec, inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    match spec.name {
        "hinge-embedding" if inputs.has("input1") => hinge_embedding_pairs::<T>(inputs, o),
        "hinge" | "squared-hinge" | "hinge-embedding" | "soft-margin" => pointwise::<T>(spec.name, inputs, o),
        "cosine-similarity" | "pairwise-distance" => distance::<T>(spec.name, inputs, o),
        "margin-ranking" => margin_ranking::<T>(inputs, o),
        "cosine-embedding" | "contrastive" => embedding_pair::<T>(spec.name, inputs, o),
        "triplet-margin" => triplet::<T>(inputs, o),
        "multi-margin" | "multiclass-hinge" | "multilabel-margin" => class_index::<T>(spec.name, inputs, o),
        "multilabel-soft-margin" => multilabel_soft_margin::<T>(inputs, o),
        other => Err(usage(format!("unknown loss '{other}'"))),
    }
}

fn pointwise<T: Float>(name: &str, inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x = inputs.float::<T>("input")?;
    let t = inputs.float::<T>("target")?;
    same_shape(("input", &x), ("target", &t))?;
    let r = o.reduction();
    let mut out = vec![T::zero(); r.output_len(x.data.len())];
    let mut g = vec![T::zero(); x.data.len()];
    let one = [T::one()];
    let (mode, labels) = (o.mode(), o.labels());
    match name {
        "hinge" => Hinge::new()
            .margin(o.margin.unwrap_or(1.0))
            .labels(labels)
            .mode(mode)
            .kink(o.kink())
            .forward_backward(&x.data, &t.data, r, &one, &mut out, &mut g),
        "squared-hinge" => SquaredHinge::new()
            .margin(o.margin.unwrap_or(1.0))
            .labels(labels)
            .mode(mode)
            .forward_backward(&x.data, &t.data, r, &one, &mut out, &mut g),
        "soft-margin" => SoftMargin::new()
            .labels(labels)
            .mode(mode)
            .forward_backward(&x.data, &t.data, r, &one, &mut out, &mut g),
        _ => HingeEmbedding::new()
            .margin(o.margin.unwrap_or(1.0))
            .labels(labels)
            .mode(mode)
            .kink(o.kink())
            .forward_backward(&x.data, &t.data, r, &one, &mut out, &mut g),
    }?;
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &x.shape), data: out },
        grads: vec![("input", Tensor { shape: x.shape, data: g })],
    })
}

/// hinge-embedding on the distance of row pairs, one fused pass: the loss and the gradients
/// for both inputs (torch: `F.hinge_embedding_loss(1 - F.cosine_similarity(a, b), y)` for
/// `--distance cosine`, `F.pairwise_distance(a, b, p, eps)` for euclidean).
fn hinge_embedding_pairs<T: Float>(inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    const NAME: &str = "hinge-embedding";
    let x1 = inputs.float::<T>("input1")?;
    let x2 = inputs.float::<T>("input2")?;
    let t = inputs.float::<T>("target")?;
    let (dim, rows) = rows_shape(NAME, ("input1", &x1.shape), ("input2", &x2.shape))?;
    if t.shape != rows {
        return Err(data(format!(
            "--target has shape {:?} but --input1 has shape {:?}; {NAME} needs one target per row, shape {rows:?}",
            t.shape, x1.shape
        )));
    }
    let r = o.reduction();
    let n = x1.data.len() / dim;
    let (mut out, mut g1, mut g2) =
        (vec![T::zero(); r.output_len(n)], vec![T::zero(); x1.data.len()], vec![T::zero(); x2.data.len()]);
    let one = [T::one()];
    let (mode, margin) = (o.mode(), o.margin.unwrap_or(1.0));
    let loss = HingeEmbedding::new().margin(margin).labels(o.labels()).mode(mode).kink(o.kink());
    match o.distance {
        Some(DistanceArg::Cosine) => loss
            .on(CosineDistance::new().eps(o.eps.unwrap_or(1e-8)))
            .forward_backward(x1.rows()?, x2.rows()?, &t.data, r, &one, &mut out, &mut g1, &mut g2)?,
        Some(DistanceArg::Euclidean) => {
            let d = PairwiseDistance::new().p(o.p.unwrap_or(2.0)).eps(o.eps.unwrap_or(1e-6)).mode(mode);
            loss.on(d).forward_backward(
                x1.rows()?,
                x2.rows()?,
                &t.data,
                r,
                &one,
                &mut out,
                &mut g1,
                &mut g2,
            )?
        }
        None => return Err(usage("hinge-embedding on --input1/--input2 needs --distance cosine|euclidean")),
    }
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &rows), data: out },
        grads: vec![
            ("input1", Tensor { shape: x1.shape, data: g1 }),
            ("input2", Tensor { shape: x2.shape, data: g2 }),
        ],
    })
}

/// The row length and output shape of an (…, D) pair: D is the last dimension; a 1-D
/// input is one row.
fn rows_shape(name: &str, a: (&str, &[usize]), b: (&str, &[usize])) -> Result<(usize, Vec<usize>), Fail> {
    if a.1 != b.1 {
        return Err(data(format!(
            "--{} has shape {:?} but --{} has shape {:?}; {name} needs equal shapes",
            b.0, b.1, a.0, a.1
        )));
    }
    match a.1.split_last() {
        Some((&d, rest)) if d > 0 => Ok((d, rest.to_vec())),
        _ => Err(data(format!("--{} has shape {:?}; {name} needs rows of at least one element", a.0, a.1))),
    }
}

fn distance<T: Float>(name: &str, inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x1 = inputs.float::<T>("input1")?;
    let x2 = inputs.float::<T>("input2")?;
    let (dim, shape) = rows_shape(name, ("input1", &x1.shape), ("input2", &x2.shape))?;
    let n = x1.data.len() / dim;
    let (mut out, mut g1, mut g2) =
        (vec![T::zero(); n], vec![T::zero(); x1.data.len()], vec![T::zero(); x2.data.len()]);
    let one = [T::one()];
    if name == "cosine-similarity" {
        CosineSimilarity::new().eps(o.eps.unwrap_or(1e-8)).mode(o.mode()).forward_backward(
            x1.rows()?,
            x2.rows()?,
            &one,
            &mut out,
            &mut g1,
            &mut g2,
        )?;
    } else {
        PairwiseDistance::new()
            .p(o.p.unwrap_or(2.0))
            .eps(o.eps.unwrap_or(1e-6))
            .mode(o.mode())
            .forward_backward(x1.rows()?, x2.rows()?, &one, &mut out, &mut g1, &mut g2)?;
    }
    Ok(Evaluated {
        loss: Tensor { shape, data: out },
        grads: vec![
            ("input1", Tensor { shape: x1.shape, data: g1 }),
            ("input2", Tensor { shape: x2.shape, data: g2 }),
        ],
    })
}

fn margin_ranking<T: Float>(inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x1 = inputs.float::<T>("input1")?;
    let x2 = inputs.float::<T>("input2")?;
    let t = inputs.float::<T>("target")?;
    same_shape(("input1", &x1), ("input2", &x2))?;
    same_shape(("input1", &x1), ("target", &t))?;
    let r = o.reduction();
    let n = x1.data.len();
    let (mut out, mut g1, mut g2) =
        (vec![T::zero(); r.output_len(n)], vec![T::zero(); n], vec![T::zero(); n]);
    MarginRanking::new()
        .margin(o.margin.unwrap_or(0.0))
        .labels(o.labels())
        .mode(o.mode())
        .kink(o.kink())
        .forward_backward(&x1.data, &x2.data, &t.data, r, &[T::one()], &mut out, &mut g1, &mut g2)?;
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &x1.shape), data: out },
        grads: vec![
            ("input1", Tensor { shape: x1.shape, data: g1 }),
            ("input2", Tensor { shape: x2.shape, data: g2 }),
        ],
    })
}

/// The number of classes C and the per-sample shape of an (…, C) score array.
fn classes_of(name: &str, shape: &[usize]) -> Result<(usize, Vec<usize>), Fail> {
    match shape.split_last() {
        Some((&c, rest)) if c > 0 => Ok((c, rest.to_vec())),
        _ => {
            Err(data(format!("--input has shape {shape:?}; {name} needs (N, C) or (C,) scores with C >= 1")))
        }
    }
}

fn multilabel_soft_margin<T: Float>(inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x = inputs.float::<T>("input")?;
    let t = inputs.float::<T>("target")?;
    same_shape(("input", &x), ("target", &t))?;
    let (c, rows) = classes_of("multilabel-soft-margin", &x.shape)?;
    let w = if inputs.has("weight") { Some(inputs.float::<T>("weight")?) } else { None };
    if let Some(w) = &w {
        if w.shape != [c] {
            return Err(data(format!(
                "--weight has shape {:?}; it needs one value per class, [{c}]",
                w.shape
            )));
        }
    }
    let r = o.reduction();
    let n = x.data.len() / c;
    let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); x.data.len()]);
    MultilabelSoftMargin::new().mode(o.mode()).forward_backward(
        x.rows()?,
        &t.data,
        w.as_ref().map(|w| w.data.as_slice()),
        r,
        &[T::one()],
        &mut out,
        &mut g,
    )?;
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &rows), data: out },
        grads: vec![("input", Tensor { shape: x.shape, data: g })],
    })
}

/// The optional class weights, checked to hold one value per class.
fn class_weight<T: Float>(inputs: &Inputs, c: usize) -> Result<Option<Tensor<T>>, Fail> {
    if !inputs.has("weight") {
        return Ok(None);
    }
    let w = inputs.float::<T>("weight")?;
    if w.shape != [c] {
        return Err(data(format!("--weight has shape {:?}; it needs one value per class, [{c}]", w.shape)));
    }
    Ok(Some(w))
}

/// multi-margin, multiclass-hinge and multilabel-margin: (N, C) or (C,) scores and integer
/// targets (one class index per row, or −1-padded index rows for multilabel-margin).
fn class_index<T: Float>(name: &str, inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x = inputs.float::<T>("input")?;
    let t = inputs.index("target")?;
    let (c, rows) = classes_of(name, &x.shape)?;
    if name == "multilabel-margin" {
        same_shape(("input", &x), ("target", &t))?;
    } else if t.shape != rows && !(rows.is_empty() && t.shape == [1]) {
        return Err(data(format!(
            "--target has shape {:?} but --input has shape {:?}; {name} needs one class index per row, shape {rows:?}",
            t.shape, x.shape
        )));
    }
    let r = o.reduction();
    let n = x.data.len() / c;
    let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); x.data.len()]);
    let one = [T::one()];
    match name {
        "multi-margin" => {
            let p = o.p.unwrap_or(1.0);
            if p != 1.0 && p != 2.0 {
                return Err(usage(format!("multi_margin: option p must be 1 or 2, got {}", show(p))));
            }
            let w = class_weight::<T>(inputs, c)?;
            MultiMargin::new().p(p).margin(o.margin.unwrap_or(1.0)).mode(o.mode()).forward_backward(
                x.rows()?,
                &t.data,
                w.as_ref().map(|w| w.data.as_slice()),
                r,
                &one,
                &mut out,
                &mut g,
            )?
        }
        "multiclass-hinge" => MulticlassHinge::new()
            .margin(o.margin.unwrap_or(1.0))
            .mode(o.mode())
            .forward_backward(x.rows()?, &t.data, r, &one, &mut out, &mut g)?,
        _ => MultilabelMargin::new().mode(o.mode()).forward_backward(
            x.rows()?,
            &t.data,
            r,
            &one,
            &mut out,
            &mut g,
        )?,
    }
    // torch follows the target's dimensionality: a (C,) input with a (1,) target gives a
    // (1,) unreduced loss, with a 0-d target a 0-d one.
    let rows = if rows.is_empty() && name != "multilabel-margin" { t.shape.clone() } else { rows };
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &rows), data: out },
        grads: vec![("input", Tensor { shape: x.shape, data: g })],
    })
}

/// cosine-embedding and contrastive: (…, D) pairs of rows and one ±1 target per row.
fn embedding_pair<T: Float>(name: &str, inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    let x1 = inputs.float::<T>("input1")?;
    let x2 = inputs.float::<T>("input2")?;
    let t = inputs.float::<T>("target")?;
    let (dim, rows) = rows_shape(name, ("input1", &x1.shape), ("input2", &x2.shape))?;
    if t.shape != rows {
        return Err(data(format!(
            "--target has shape {:?} but --input1 has shape {:?}; {name} needs one target per row, shape {rows:?}",
            t.shape, x1.shape
        )));
    }
    let r = o.reduction();
    let n = x1.data.len() / dim;
    let (mut out, mut g1, mut g2) =
        (vec![T::zero(); r.output_len(n)], vec![T::zero(); x1.data.len()], vec![T::zero(); x2.data.len()]);
    let one = [T::one()];
    if name == "cosine-embedding" {
        CosineEmbedding::new()
            .margin(o.margin.unwrap_or(0.0))
            .labels(o.labels())
            .mode(o.mode())
            .kink(o.kink())
            .forward_backward(x1.rows()?, x2.rows()?, &t.data, r, &one, &mut out, &mut g1, &mut g2)?;
    } else {
        Contrastive::new()
            .margin(o.margin.unwrap_or(1.0))
            .labels(o.labels())
            .mode(o.mode())
            .forward_backward(x1.rows()?, x2.rows()?, &t.data, r, &one, &mut out, &mut g1, &mut g2)?;
    }
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &rows), data: out },
        grads: vec![
            ("input1", Tensor { shape: x1.shape, data: g1 }),
            ("input2", Tensor { shape: x2.shape, data: g2 }),
        ],
    })
}

/// triplet-margin: `TripletMarginLoss`, or `TripletMarginWithDistanceLoss` with `--distance`.
fn triplet<T: Float>(inputs: &Inputs, o: &OptionArgs) -> Result<Evaluated<T>, Fail> {
    const NAME: &str = "triplet-margin";
    let a = inputs.float::<T>("anchor")?;
    let p = inputs.float::<T>("positive")?;
    let n = inputs.float::<T>("negative")?;
    let (dim, rows) = rows_shape(NAME, ("anchor", &a.shape), ("positive", &p.shape))?;
    rows_shape(NAME, ("anchor", &a.shape), ("negative", &n.shape))?;
    let r = o.reduction();
    let count = a.data.len() / dim;
    let len = a.data.len();
    let (mut out, mut ga, mut gp, mut gn) = (
        vec![T::zero(); r.output_len(count)],
        vec![T::zero(); len],
        vec![T::zero(); len],
        vec![T::zero(); len],
    );
    let one = [T::one()];
    let (margin, mode) = (o.margin.unwrap_or(1.0), o.mode());
    match o.distance {
        None => TripletMargin::new()
            .margin(margin)
            .p(o.p.unwrap_or(2.0))
            .eps(o.eps.unwrap_or(1e-6))
            .swap(o.swap)
            .mode(mode)
            .kink(o.kink())
            .forward_backward(
                a.rows()?,
                p.rows()?,
                n.rows()?,
                r,
                &one,
                &mut out,
                &mut ga,
                &mut gp,
                &mut gn,
            )?,
        Some(DistanceArg::Euclidean) => {
            let d = PairwiseDistance::new().p(o.p.unwrap_or(2.0)).eps(o.eps.unwrap_or(1e-6)).mode(mode);
            TripletMarginWithDistance::new(d)
                .margin(margin)
                .swap(o.swap)
                .mode(mode)
                .kink(o.kink())
                .forward_backward(
                    a.rows()?,
                    p.rows()?,
                    n.rows()?,
                    r,
                    &one,
                    &mut out,
                    &mut ga,
                    &mut gp,
                    &mut gn,
                )?
        }
        Some(DistanceArg::Cosine) => {
            if o.p.is_some() {
                return Err(usage("triplet-margin --distance cosine does not take --p"));
            }
            let d = CosineDistance::new().eps(o.eps.unwrap_or(1e-8));
            TripletMarginWithDistance::new(d)
                .margin(margin)
                .swap(o.swap)
                .mode(mode)
                .kink(o.kink())
                .forward_backward(
                    a.rows()?,
                    p.rows()?,
                    n.rows()?,
                    r,
                    &one,
                    &mut out,
                    &mut ga,
                    &mut gp,
                    &mut gn,
                )?
        }
    }
    Ok(Evaluated {
        loss: Tensor { shape: out_shape(r, &rows), data: out },
        grads: vec![
            ("anchor", Tensor { shape: a.shape, data: ga }),
            ("positive", Tensor { shape: p.shape, data: gp }),
            ("negative", Tensor { shape: n.shape, data: gn }),
        ],
    })
}
