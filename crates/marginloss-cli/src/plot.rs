//! `marginloss plot LOSS... -o FILE.svg`: each loss against its scalar input for y = +1
//! and y = −1, computed with the library's own forward/backward (not re-derived formulas).

use std::path::PathBuf;

use clap::Args;
use marginloss::{Hinge, HingeEmbedding, Kink, MarginRanking, Reduction, SoftMargin, SquaredHinge};
use plotters::prelude::*;

use crate::fail::{data, usage, Fail};
use crate::inputs::{kink_of, KinkArg};
use crate::num::show;

/// The losses `plot` draws: their name, default margin (None: no margin), and what the
/// scalar input is.
const PLOTTABLE: &[(&str, Option<f64>, &str)] = &[
    ("hinge", Some(1.0), "score"),
    ("squared-hinge", Some(1.0), "score"),
    ("hinge-embedding", Some(1.0), "distance ≥ 0"),
    ("soft-margin", None, "score"),
    ("margin-ranking", Some(0.0), "x1 − x2"),
];

#[derive(Args, Debug)]
#[command(after_help = "\
Each curve is computed by the library (strict mode): hinge-embedding is drawn only on its
domain, distances x >= 0; margin-ranking is drawn against x1 - x2. The SVG holds one
<polyline> per loss and label (and per gradient with --grad) and a legend; PNG is not
offered (the bitmap backend needs system font libraries; convert the SVG, e.g. with
rsvg-convert).

Example: marginloss plot hinge hinge-embedding --margin 1 -o hinge-vs-hinge-embedding.svg")]
pub struct PlotArgs {
    /// The losses: hinge, squared-hinge, hinge-embedding, soft-margin, margin-ranking.
    #[arg(required = true, value_name = "LOSS")]
    pub losses: Vec<String>,
    /// The output file (.svg).
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    pub output: PathBuf,
    /// The margin of every loss that has one [default: each loss's own, 1; margin-ranking 0].
    #[arg(long, allow_negative_numbers = true)]
    pub margin: Option<f64>,
    /// The input range A:B [default: -3:3].
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    pub range: Option<String>,
    /// Add a second panel with the gradients dloss/dx.
    #[arg(long)]
    pub grad: bool,
    /// The subgradient drawn exactly at the kink of hinge, hinge-embedding and
    /// margin-ranking: zero (torch 2.15), half (jax, Keras, optax), one (older torch,
    /// TensorFlow, scikit-learn's SGD) [default: zero]. squared-hinge and soft-margin have
    /// no kink.
    #[arg(long, value_enum)]
    pub kink: Option<KinkArg>,
}

/// One curve: a loss for one label, its values and gradients on the grid.
struct Curve {
    label: String,
    xs: Vec<f64>,
    loss: Vec<f64>,
    grad: Vec<f64>,
}

fn parse_range(s: &str) -> Result<(f64, f64), Fail> {
    let bad = || usage(format!("--range '{s}': expected A:B with finite numbers A < B, e.g. -3:3"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let (a, b): (f64, f64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if !(a.is_finite() && b.is_finite() && a < b) {
        return Err(bad());
    }
    if !(b - a).is_finite() {
        return Err(usage(format!(
            "--range '{s}': the range overflows (B - A is beyond the largest float64); use a narrower range"
        )));
    }
    Ok((a, b))
}

/// Loss and gradient of `loss` at every x, for the label y (±1), from the library.
fn evaluate(
    loss: &str,
    margin: Option<f64>,
    kink: Kink,
    y: f64,
    xs: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), Fail> {
    let n = xs.len();
    let t = vec![y; n];
    let (mut out, mut g) = (vec![0.0; n], vec![0.0; n]);
    let (r, one) = (Reduction::None, [1.0]);
    match loss {
        "hinge" => Hinge::new()
            .margin(margin.unwrap_or(1.0))
            .kink(kink)
            .forward_backward(xs, &t, r, &one, &mut out, &mut g),
        "squared-hinge" => SquaredHinge::new()
            .margin(margin.unwrap_or(1.0))
            .forward_backward(xs, &t, r, &one, &mut out, &mut g),
        "hinge-embedding" => HingeEmbedding::new()
            .margin(margin.unwrap_or(1.0))
            .kink(kink)
            .forward_backward(xs, &t, r, &one, &mut out, &mut g),
        "soft-margin" => SoftMargin::new().forward_backward(xs, &t, r, &one, &mut out, &mut g),
        _ => {
            let zeros = vec![0.0; n];
            let mut g2 = vec![0.0; n];
            MarginRanking::new()
                .margin(margin.unwrap_or(0.0))
                .kink(kink)
                .forward_backward(xs, &zeros, &t, r, &one, &mut out, &mut g, &mut g2)
        }
    }?;
    Ok((out, g))
}

fn curves(args: &PlotArgs, (a, b): (f64, f64)) -> Result<Vec<Curve>, Fail> {
    let names: Vec<&str> = PLOTTABLE.iter().map(|p| p.0).collect();
    let mut out = Vec::new();
    for name in &args.losses {
        let Some(&(name, default, _)) = PLOTTABLE.iter().find(|p| p.0 == name.as_str()) else {
            return Err(usage(format!(
                "plot cannot draw '{name}' (a loss of one scalar input); it draws: {}",
                names.join(", ")
            )));
        };
        let margin = default.map(|d| args.margin.unwrap_or(d));
        // The grid, with the kinks (x = ±margin) and 0 included so corners are exact.
        let steps = 600;
        let mut xs: Vec<f64> = (0..=steps).map(|i| a + (b - a) * i as f64 / steps as f64).collect();
        if let Some(m) = margin {
            xs.extend([m, -m, 0.0].into_iter().filter(|v| *v > a && *v < b));
        }
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        if name == "hinge-embedding" {
            xs.retain(|&x| x >= 0.0);
            if xs.is_empty() {
                return Err(usage(format!(
                    "hinge-embedding takes distances x >= 0; the range {}:{} holds none",
                    show(a),
                    show(b)
                )));
            }
        }
        for y in [1.0, -1.0] {
            let (loss, grad) = evaluate(name, margin, kink_of(args.kink), y, &xs).map_err(|e| {
                usage(format!(
                    "--range {}:{}: {name} cannot be drawn over this range ({}); use a narrower range",
                    show(a),
                    show(b),
                    e.message
                ))
            })?;
            if let Some(i) = loss.iter().chain(&grad).position(|v| !v.is_finite()) {
                let x = xs[i % xs.len()];
                return Err(usage(format!(
                    "--range {}:{}: {name} overflows at x = {} (y = {}); use a narrower range",
                    show(a),
                    show(b),
                    show(x),
                    show(y)
                )));
            }
            let m = margin.map_or(String::new(), |m| format!(", margin {}", show(m)));
            let label = format!("{name}{m}, y = {}", if y > 0.0 { "+1" } else { "-1" });
            out.push(Curve { label, xs: xs.clone(), loss, grad });
        }
    }
    Ok(out)
}

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn bounds(curves: &[Curve], f: impl Fn(&Curve) -> &[f64]) -> (f64, f64) {
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| f(c).iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.05);
    (lo - pad, hi + pad)
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Fail {
    data(format!("cannot draw the plot: {e}"))
}

fn render(args: &PlotArgs, curves: &[Curve], (a, b): (f64, f64)) -> Result<String, Fail> {
    let mut svg = String::new();
    // "x: score (hinge, soft-margin); distance ≥ 0 (hinge-embedding)"
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for name in &args.losses {
        if let Some(&(name, _, what)) = PLOTTABLE.iter().find(|p| p.0 == name.as_str()) {
            match groups.iter_mut().find(|g| g.0 == what) {
                Some(g) if !g.1.contains(&name) => g.1.push(name),
                Some(_) => {}
                None => groups.push((what, vec![name])),
            }
        }
    }
    let x_desc = if groups.len() == 1 {
        format!("x: {}", groups[0].0)
    } else {
        let parts: Vec<String> = groups.iter().map(|(w, n)| format!("{w} ({})", n.join(", "))).collect();
        format!("x: {}", parts.join("; "))
    };
    let height = if args.grad { 780 } else { 480 };
    {
        let root = SVGBackend::with_string(&mut svg, (860, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (top, bottom) = if args.grad {
            let (t, b) = root.split_vertically(460);
            (t, Some(b))
        } else {
            (root, None)
        };
        let title = if args.losses.len() <= 3 { args.losses.join(" vs ") } else { "margin losses".into() };
        let (lo, hi) = bounds(curves, |c| &c.loss);
        let mut chart = ChartBuilder::on(&top)
            .caption(format!("{title}: loss against x"), ("sans-serif", 26))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(a..b, lo..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc.as_str())
            .y_desc("loss")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(draw_err)?;
        for (i, c) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    c.xs.iter().copied().zip(c.loss.iter().copied()).filter(|(_, v)| v.is_finite()),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(c.label.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 2), (x + 18, y + 2)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(draw_err)?;
        if let Some(bottom) = bottom {
            let (lo, hi) = bounds(curves, |c| &c.grad);
            let mut chart = ChartBuilder::on(&bottom)
                .caption("gradient dloss/dx (kink: torch 2.15's 0)", ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d(a..b, lo..hi)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc(x_desc.as_str())
                .y_desc("dloss/dx")
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .draw()
                .map_err(draw_err)?;
            for (i, c) in curves.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        c.xs.iter().copied().zip(c.grad.iter().copied()).filter(|(_, v)| v.is_finite()),
                        color.stroke_width(2),
                    ))
                    .map_err(draw_err)?;
            }
        }
        root_present(&top)?;
    }
    Ok(svg)
}

fn root_present<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    area.present().map_err(|e| data(format!("cannot draw the plot: {e}")))
}

pub fn run(args: &PlotArgs) -> Result<(), Fail> {
    let ext = args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if ext.as_deref() != Some("svg") {
        return Err(usage(format!(
            "-o {}: plot writes SVG only (name the file .svg; convert it to PNG with e.g. rsvg-convert)",
            args.output.display()
        )));
    }
    if let Some(m) = args.margin {
        if !m.is_finite() {
            return Err(usage(format!("--margin must be finite, got {}", show(m))));
        }
        if args.losses.iter().all(|l| l == "soft-margin") {
            return Err(usage("soft-margin does not take --margin"));
        }
    }
    if args.kink.is_some() && args.losses.iter().all(|l| l == "soft-margin" || l == "squared-hinge") {
        return Err(usage(format!(
            "--kink: {} has no kink (it is differentiable everywhere)",
            args.losses.join(", ")
        )));
    }
    let range = match &args.range {
        Some(s) => parse_range(s)?,
        None => (-3.0, 3.0),
    };
    let curves = curves(args, range)?;
    let svg = render(args, &curves, range)?;
    std::fs::write(&args.output, svg)
        .map_err(|e| data(format!("-o {}: cannot write: {e}", args.output.display())))?;
    Ok(())
}
