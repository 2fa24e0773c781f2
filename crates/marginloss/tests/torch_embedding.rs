//! The embedding losses (cosine embedding, triplet margin, triplet margin with a distance,
//! contrastive):
//!
//! 1. golden parity with torch 2.15 (`fixtures/torch/<loss>.json`, written by
//!    `tools/gen_fixtures.py`): every case, f32 and f64, through `forward_into` and the fused
//!    `forward_backward` (values and gradients); `compat_only` cases must be rejected by
//!    strict mode and reproduced by torch-compat mode;
//! 2. the fused kernels against the plain reference compositions (`marginloss::reference`)
//!    on random f64 inputs, every reduction and a per-row upstream gradient, to 1e-12;
//! 3. finite-difference checks of every gradient, away from the kinks.

mod common;

use common::mat;
use std::cell::Cell;

use common::{assert_close, assert_close_floor, for_each_case, Case, Tensor};
use marginloss::{
    reference, Contrastive, CosineDistance, CosineEmbedding, Distance, Float, GradPair, Labels, Mode,
    PairwiseDistance, Reduction, Result, RowPair, TripletMargin, TripletMarginWithDistance,
};

// ---------------------------------------------------------------------------------------
// 1. torch parity

thread_local! {
    /// The largest parity error seen, relative to each array's largest magnitude (as
    /// `assert_close` measures it), per dtype: (f32, f64).
    static MAX_ERR: Cell<(f64, f64)> = const { Cell::new((0.0, 0.0)) };
}

/// `assert_close`, recording the observed error for the summary line.
fn check<T: Float>(what: &str, got: &[T], want: &Tensor, dtype: &str) {
    check_floor(what, got, want, dtype, 0.0)
}

/// `assert_close_floor`, recording the observed error (at the same scale) for the summary.
fn check_floor<T: Float>(what: &str, got: &[T], want: &Tensor, dtype: &str, floor: f64) {
    if floor > 0.0 {
        assert_close_floor(what, got, want, dtype, floor);
    } else {
        assert_close(what, got, want, dtype);
    }
    let scale = want.data.iter().filter(|v| v.is_finite()).fold(floor, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&want.data)
        .filter(|(_, w)| w.is_finite())
        .map(|(g, w)| (g.f64() - w).abs() / w.abs().max(scale).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    MAX_ERR.with(|m| {
        let (a, b) = m.get();
        m.set(if dtype == "float32" { (a.max(err), b) } else { (a, b.max(err)) });
    });
}

fn report(file: &str, n: usize) {
    let (e32, e64) = MAX_ERR.with(|m| m.replace((0.0, 0.0)));
    eprintln!("{file}: {n} cases pass; max relative error f32 {e32:.2e}, f64 {e64:.2e}");
}

fn labels(c: &Case) -> Labels {
    match c.str_opt("labels") {
        Some("01") => Labels::ZeroOne,
        _ => Labels::PlusMinusOne,
    }
}

#[derive(Clone, Copy)]
enum PairLoss {
    CosineEmbedding,
    Contrastive,
}

/// A pair loss's forward_into / forward_backward for a case in a mode.
struct PairCall<'a, T> {
    c: &'a Case,
    loss: PairLoss,
    x1: Vec<T>,
    x2: Vec<T>,
    t: Vec<T>,
    dim: usize,
}

impl<T: Float> PairCall<'_, T> {
    fn forward_into(&self, mode: Mode, out: &mut [T]) -> Result<()> {
        let (c, r) = (self.c, self.c.reduction());
        match self.loss {
            PairLoss::CosineEmbedding => CosineEmbedding::new()
                .margin(c.f64_opt("margin", 0.0))
                .mode(mode)
                .forward_into(mat(&self.x1, self.dim), mat(&self.x2, self.dim), &self.t, r, out),
            PairLoss::Contrastive => Contrastive::new()
                .margin(c.f64_opt("margin", 1.0))
                .labels(labels(c))
                .mode(mode)
                .forward_into(mat(&self.x1, self.dim), mat(&self.x2, self.dim), &self.t, r, out),
        }
    }

    fn forward_backward(&self, mode: Mode, out: &mut [T], g1: &mut [T], g2: &mut [T]) -> Result<()> {
        let (c, r, up) = (self.c, self.c.reduction(), [T::one()]);
        match self.loss {
            PairLoss::CosineEmbedding => {
                CosineEmbedding::new().margin(c.f64_opt("margin", 0.0)).mode(mode).forward_backward(
                    mat(&self.x1, self.dim),
                    mat(&self.x2, self.dim),
                    &self.t,
                    r,
                    &up,
                    out,
                    g1,
                    g2,
                )
            }
            PairLoss::Contrastive => Contrastive::new()
                .margin(c.f64_opt("margin", 1.0))
                .labels(labels(c))
                .mode(mode)
                .forward_backward(
                    mat(&self.x1, self.dim),
                    mat(&self.x2, self.dim),
                    &self.t,
                    r,
                    &up,
                    out,
                    g1,
                    g2,
                ),
        }
    }
}

fn pair_case<T: Float>(c: &Case, loss: PairLoss) {
    let call = PairCall {
        c,
        loss,
        x1: c.input("input1").as_vec(),
        x2: c.input("input2").as_vec(),
        t: c.input("target").as_vec(),
        dim: c.input("input1").last_dim(),
    };
    let r = c.reduction();
    let mut out = vec![T::zero(); r.output_len(call.t.len())];
    let (mut g1, mut g2) = (vec![T::zero(); call.x1.len()], vec![T::zero(); call.x2.len()]);
    if c.compat_only {
        assert!(call.forward_into(Mode::Strict, &mut out).is_err(), "{}: strict accepted it", c.id());
        assert!(
            call.forward_backward(Mode::Strict, &mut out, &mut g1, &mut g2).is_err(),
            "{}: strict fused accepted it",
            c.id()
        );
    }
    call.forward_into(c.mode(), &mut out).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    check(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    call.forward_backward(c.mode(), &mut out, &mut g1, &mut g2).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    check(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    // cosine_embedding's `kink` case: rows 0 and 1 sit at the kink (gradient exactly 0) and
    // row 2 pairs [1, 1] with itself, y = 1, whose exact gradient is EPS/(2 + EPS)² ≈ 2.5e-13:
    // two terms of magnitude 0.5 cancel, so torch's value (like ours) is rounding noise of
    // that 0.5 (times the reduction's 1/N). Compare at that natural scale.
    let floor = if c.name.starts_with("kink") { 0.5 / call.t.len() as f64 } else { 0.0 };
    check_floor(&format!("{} grad input1", c.id()), &g1, c.grad("input1").unwrap(), &c.dtype, floor);
    check_floor(&format!("{} grad input2", c.id()), &g2, c.grad("input2").unwrap(), &c.dtype, floor);
}

#[test]
fn cosine_embedding_matches_torch() {
    let n = for_each_case(
        "cosine_embedding",
        |c| pair_case::<f32>(c, PairLoss::CosineEmbedding),
        |c| pair_case::<f64>(c, PairLoss::CosineEmbedding),
    );
    assert_eq!(n, 42);
    report("cosine_embedding", n);
}

#[test]
fn contrastive_matches_the_torch_composition() {
    let n = for_each_case(
        "contrastive",
        |c| pair_case::<f32>(c, PairLoss::Contrastive),
        |c| pair_case::<f64>(c, PairLoss::Contrastive),
    );
    assert_eq!(n, 24);
    report("contrastive", n);
}

/// Runs a triplet loss (given as forward_into and forward_backward closures over the case's
/// buffers) on a case.
fn triplet_case<T: Float>(
    c: &Case,
    fwd: impl Fn(&[T], &[T], &[T], usize, Reduction, &mut [T]) -> Result<()>,
    fb: impl Fn(&[T], &[T], &[T], usize, Reduction, &mut [T], &mut [T], &mut [T], &mut [T]) -> Result<()>,
) {
    assert!(!c.compat_only, "{}: no compat-only triplet cases expected", c.id());
    let (a, p, n) =
        (c.input("anchor").as_vec::<T>(), c.input("positive").as_vec(), c.input("negative").as_vec());
    let dim = c.input("anchor").last_dim();
    let r = c.reduction();
    let mut out = vec![T::zero(); r.output_len(a.len() / dim)];
    fwd(&a, &p, &n, dim, r, &mut out).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    check(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    let mut g = [vec![T::zero(); a.len()], vec![T::zero(); a.len()], vec![T::zero(); a.len()]];
    let [ga, gp, gn] = &mut g;
    fb(&a, &p, &n, dim, r, &mut out, ga, gp, gn).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    check(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    for (name, got) in ["anchor", "positive", "negative"].into_iter().zip(&g) {
        check(&format!("{} grad {name}", c.id()), got, c.grad(name).unwrap(), &c.dtype);
    }
}

fn triplet_margin_case<T: Float>(c: &Case) {
    let l = TripletMargin::new()
        .margin(c.f64_opt("margin", 1.0))
        .p(c.f64_opt("p", 2.0))
        .eps(c.f64_opt("eps", 1e-6))
        .swap(c.bool_opt("swap"))
        .mode(c.mode());
    triplet_case::<T>(
        c,
        |a, p, n, dim, r, out| l.forward_into(mat(a, dim), mat(p, dim), mat(n, dim), r, out),
        |a, p, n, dim, r, out, ga, gp, gn| {
            l.forward_backward(mat(a, dim), mat(p, dim), mat(n, dim), r, &[T::one()], out, ga, gp, gn)
        },
    );
}

#[test]
fn triplet_margin_matches_torch() {
    let n = for_each_case("triplet_margin", triplet_margin_case::<f32>, triplet_margin_case::<f64>);
    assert_eq!(n, 48);
    report("triplet_margin", n);
}

fn with_distance_case<T: Float, D: Distance<T>>(c: &Case, d: D) {
    let l = TripletMarginWithDistance::new(d)
        .margin(c.f64_opt("margin", 1.0))
        .swap(c.bool_opt("swap"))
        .mode(c.mode());
    triplet_case::<T>(
        c,
        |a, p, n, dim, r, out| l.forward_into(mat(a, dim), mat(p, dim), mat(n, dim), r, out),
        |a, p, n, dim, r, out, ga, gp, gn| {
            l.forward_backward(mat(a, dim), mat(p, dim), mat(n, dim), r, &[T::one()], out, ga, gp, gn)
        },
    );
}

fn triplet_margin_with_distance_case<T: Float>(c: &Case) {
    match c.str_opt("distance") {
        Some("euclidean") => with_distance_case::<T, _>(c, PairwiseDistance::new()),
        Some("cosine") => with_distance_case::<T, _>(c, CosineDistance::default()),
        other => panic!("{}: distance {other:?}", c.id()),
    }
}

#[test]
fn triplet_margin_with_distance_matches_torch() {
    let n = for_each_case(
        "triplet_margin_with_distance",
        triplet_margin_with_distance_case::<f32>,
        triplet_margin_with_distance_case::<f64>,
    );
    assert_eq!(n, 36);
    report("triplet_margin_with_distance", n);
}

// ---------------------------------------------------------------------------------------
// 2. fused == reference, 3. finite differences

/// SplitMix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unif(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unif()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.range(-scale, scale)).collect()
    }
    fn pm1(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| if self.unif() < 0.5 { -1.0 } else { 1.0 }).collect()
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// `|got − want| ≤ tol · max(max|want|, floor)` element-wise: the error relative to the
/// array's scale, or to `floor` where the whole array is smaller than its natural scale
/// (a gradient that cancels to rounding noise, e.g. the cosine of a row with itself).
fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor.max(f64::MIN_POSITIVE), |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: got {g:e}, want {w:e} (scale {scale:e})");
    }
}

/// The losses' natural scale (they are margin-sized), the floor for comparing outputs.
const OUT_FLOOR: f64 = 1e-2;

/// The reference's per-row losses and per-element gradients (of the sum), reduced and
/// scaled by `upstream` the way the fused kernel must: returns (out, grads, g) with `g` the
/// upstream gradient each row receives.
fn expected(
    reduction: Reduction,
    upstream: &[f64],
    dim: usize,
    losses: &[f64],
    grads: &[Vec<f64>],
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let n = losses.len();
    let out = match reduction {
        Reduction::None => losses.to_vec(),
        Reduction::Sum => vec![losses.iter().sum()],
        Reduction::Mean => vec![losses.iter().sum::<f64>() / n as f64],
    };
    let g: Vec<f64> = (0..n)
        .map(|row| match reduction {
            Reduction::None => upstream[if upstream.len() == 1 { 0 } else { row }],
            Reduction::Sum => upstream[0],
            Reduction::Mean => upstream[0] / n as f64,
        })
        .collect();
    let grads = grads.iter().map(|v| v.iter().enumerate().map(|(j, &d)| g[j / dim] * d).collect()).collect();
    (out, grads, g)
}

/// The gradients' natural scale, the floor for comparing them: the magnitude of the terms
/// each gradient element is made of, `|g_n|·max(1, 1/‖x[n]‖)` over the rows of every input
/// (a distance's or cosine's gradient is a difference of terms of order 1 or `1/‖x‖`, which
/// can cancel to rounding noise, e.g. the cosine of a 1-element row or of a row with itself).
fn natural_scale(g: &[f64], inputs: &[&[f64]], dim: usize) -> f64 {
    let mut scale = 0.0f64;
    for x in inputs {
        for (row, gi) in x.chunks_exact(dim).zip(g) {
            let norm = (row.iter().map(|v| v * v).sum::<f64>() + 1e-12).sqrt();
            scale = scale.max(gi.abs() * (1.0 / norm).max(1.0));
        }
    }
    scale
}

/// The upstream gradients to try for a reduction over `n` rows.
fn upstreams(rng: &mut Rng, reduction: Reduction, n: usize) -> Vec<Vec<f64>> {
    match reduction {
        Reduction::None => vec![vec![1.0], rng.vec(n, 2.0)],
        _ => vec![vec![rng.range(0.5, 2.0)]],
    }
}

/// Σ_i w_i·l_i of a None-reduced loss (for finite differences).
fn weighted(l: &[f64], w: &[f64]) -> f64 {
    l.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Central differences of `f` at `x` (h = 1e-6) against `grad`, to 1e-6 relative.
fn gradcheck(what: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
    let h = 1e-6;
    let mut xp = x.to_vec();
    for k in 0..x.len() {
        xp[k] = x[k] + h;
        let fp = f(&xp);
        xp[k] = x[k] - h;
        let fm = f(&xp);
        xp[k] = x[k];
        let fd = (fp - fm) / (2.0 * h);
        assert!(
            (fd - grad[k]).abs() <= 1e-6 * grad[k].abs().max(1.0),
            "{what}[{k}]: finite difference {fd:e}, analytic {:e}",
            grad[k]
        );
    }
}

/// Random `(N, D)` pair rows with ±1 targets, sometimes a zero or tiny row.
fn pair_rows(rng: &mut Rng, special_rows: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>, usize) {
    let (n, dim) = (1 + rng.below(8), 1 + rng.below(6));
    let (mut x1, mut x2) = (rng.vec(n * dim, 1.5), rng.vec(n * dim, 1.5));
    if special_rows && rng.unif() < 0.3 {
        let r = rng.below(n);
        let scale = if rng.unif() < 0.5 { 0.0 } else { 1e-7 };
        x1[r * dim..(r + 1) * dim].iter_mut().for_each(|v| *v *= scale);
    }
    if special_rows && rng.unif() < 0.2 {
        let r = rng.below(n);
        x2[r * dim..(r + 1) * dim].copy_from_slice(&x1[r * dim..(r + 1) * dim]);
    }
    let t = rng.pm1(n);
    (x1, x2, t, dim)
}

#[test]
fn cosine_embedding_fused_equals_reference() {
    let mut rng = Rng(1);
    for _ in 0..300 {
        let (x1, x2, t, dim) = pair_rows(&mut rng, true);
        let margin = rng.range(-1.0, 1.0);
        let (l, g1, g2) = reference::cosine_embedding(&x1, &x2, &t, dim, margin);
        let loss = CosineEmbedding::new().margin(margin);
        for r in REDUCTIONS {
            for up in upstreams(&mut rng, r, t.len()) {
                let (want, wg, g) = expected(r, &up, dim, &l, &[g1.clone(), g2.clone()]);
                let floor = natural_scale(&g, &[&x1, &x2], dim);
                let (mut out, mut h1, mut h2) =
                    (vec![0.0; want.len()], vec![0.0; x1.len()], vec![0.0; x2.len()]);
                loss.forward_backward(mat(&x1, dim), mat(&x2, dim), &t, r, &up, &mut out, &mut h1, &mut h2)
                    .unwrap();
                assert_rel("cosine_embedding out", &out, &want, 1e-12, OUT_FLOOR);
                assert_rel("cosine_embedding grad1", &h1, &wg[0], 1e-12, floor);
                assert_rel("cosine_embedding grad2", &h2, &wg[1], 1e-12, floor);
                let mut out2 = vec![0.0; want.len()];
                loss.forward_into(mat(&x1, dim), mat(&x2, dim), &t, r, &mut out2).unwrap();
                assert_eq!(out, out2);
            }
        }
    }
}

#[test]
fn contrastive_fused_equals_reference() {
    let mut rng = Rng(2);
    for _ in 0..300 {
        let (x1, x2, t, dim) = pair_rows(&mut rng, true);
        let margin = rng.range(0.1, 3.0);
        let (l, g1, g2) = reference::contrastive(&x1, &x2, &t, dim, margin);
        let loss = Contrastive::new().margin(margin);
        for r in REDUCTIONS {
            for up in upstreams(&mut rng, r, t.len()) {
                let (want, wg, g) = expected(r, &up, dim, &l, &[g1.clone(), g2.clone()]);
                let floor = natural_scale(&g, &[&x1, &x2], dim);
                let (mut out, mut h1, mut h2) =
                    (vec![0.0; want.len()], vec![0.0; x1.len()], vec![0.0; x2.len()]);
                loss.forward_backward(mat(&x1, dim), mat(&x2, dim), &t, r, &up, &mut out, &mut h1, &mut h2)
                    .unwrap();
                assert_rel("contrastive out", &out, &want, 1e-12, OUT_FLOOR);
                assert_rel("contrastive grad1", &h1, &wg[0], 1e-12, floor);
                assert_rel("contrastive grad2", &h2, &wg[1], 1e-12, floor);
                let mut out2 = vec![0.0; want.len()];
                loss.forward_into(mat(&x1, dim), mat(&x2, dim), &t, r, &mut out2).unwrap();
                assert_eq!(out, out2);
            }
        }
        // Labels::ZeroOne: 1 similar, 0 dissimilar
        let t01: Vec<f64> = t.iter().map(|&y| (y + 1.0) / 2.0).collect();
        let zo = Contrastive::new().margin(margin).labels(Labels::ZeroOne);
        assert_eq!(
            zo.forward(mat(&x1, dim), mat(&x2, dim), &t01, Reduction::None).unwrap(),
            loss.forward(mat(&x1, dim), mat(&x2, dim), &t, Reduction::None).unwrap()
        );
    }
}

/// Random triplet rows; with `tie`, some positives equal their anchors (a swap tie).
fn triplet_rows(rng: &mut Rng, tie: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>, usize) {
    let (n, dim) = (1 + rng.below(8), 1 + rng.below(6));
    let a = rng.vec(n * dim, 1.0);
    let mut p: Vec<f64> = a.iter().map(|v| v + rng.range(-0.6, 0.6)).collect();
    let neg = rng.vec(n * dim, 1.0);
    if tie && rng.unif() < 0.3 {
        let r = rng.below(n);
        p[r * dim..(r + 1) * dim].copy_from_slice(&a[r * dim..(r + 1) * dim]);
    }
    (a, p, neg, dim)
}

type RefDist = Box<dyn Fn(&[f64], &[f64], usize) -> (Vec<f64>, Vec<f64>, Vec<f64>)>;

/// Runs a triplet loss's fused kernel against the reference composition.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn triplet_vs_reference(
    rng: &mut Rng,
    what: &str,
    a: &[f64],
    p: &[f64],
    n: &[f64],
    dim: usize,
    reference: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
    fused: &dyn Fn(Reduction, &[f64], &mut [f64], &mut [f64], &mut [f64], &mut [f64]),
) {
    let (l, ga, gp, gn) = reference;
    for r in REDUCTIONS {
        for up in upstreams(rng, r, l.len()) {
            let (want, wg, g) = expected(r, &up, dim, &l, &[ga.clone(), gp.clone(), gn.clone()]);
            let floor = natural_scale(&g, &[a, p, n], dim);
            let mut out = vec![0.0; want.len()];
            let mut g = [vec![0.0; a.len()], vec![0.0; p.len()], vec![0.0; n.len()]];
            let [ha, hp, hn] = &mut g;
            fused(r, &up, &mut out, ha, hp, hn);
            assert_rel(&format!("{what} out"), &out, &want, 1e-12, OUT_FLOOR);
            for (k, name) in ["anchor", "positive", "negative"].into_iter().enumerate() {
                assert_rel(&format!("{what} grad {name}"), &g[k], &wg[k], 1e-12, floor);
            }
        }
    }
}

#[test]
fn triplet_margin_fused_equals_reference() {
    let mut rng = Rng(3);
    for i in 0..300 {
        let (a, p, n, dim) = triplet_rows(&mut rng, true);
        let (margin, swap) = (rng.range(0.1, 2.0), rng.unif() < 0.5);
        let norm = [1.0, 2.0, 3.0, 1.5][i % 4];
        let reference = reference::triplet_margin(&a, &p, &n, dim, margin, norm, 1e-6, swap);
        let loss = TripletMargin::new().margin(margin).p(norm).swap(swap);
        triplet_vs_reference(
            &mut rng,
            "triplet_margin",
            &a,
            &p,
            &n,
            dim,
            reference,
            &|r, up, out, ga, gp, gn| {
                loss.forward_backward(mat(&a, dim), mat(&p, dim), mat(&n, dim), r, up, out, ga, gp, gn)
                    .unwrap();
                let mut out2 = vec![0.0; out.len()];
                loss.forward_into(mat(&a, dim), mat(&p, dim), mat(&n, dim), r, &mut out2).unwrap();
                assert_eq!(out, &out2[..]);
            },
        );
    }
}

/// The squared Euclidean distance, a user-defined [`Distance`].
struct SquaredEuclidean;

impl Distance<f64> for SquaredEuclidean {
    fn name(&self) -> &'static str {
        "squared_euclidean"
    }
    fn distance(&self, rows: RowPair<'_, f64>) -> f64 {
        rows.x1().iter().zip(rows.x2()).map(|(a, b)| (a - b) * (a - b)).sum()
    }
    fn backward(&self, rows: RowPair<'_, f64>, g: f64, grads: GradPair<'_, f64>) {
        let (g1, g2) = grads.split();
        for (i, (a, b)) in rows.x1().iter().zip(rows.x2()).enumerate() {
            let d = 2.0 * g * (a - b);
            g1[i] += d;
            g2[i] -= d;
        }
    }
}

fn squared_euclidean_reference(x1: &[f64], x2: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = x1
        .chunks_exact(dim)
        .zip(x2.chunks_exact(dim))
        .map(|(a, b)| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum())
        .collect();
    let g1: Vec<f64> = x1.iter().zip(x2).map(|(p, q)| 2.0 * (p - q)).collect();
    let g2 = g1.iter().map(|v| -v).collect();
    (d, g1, g2)
}

/// The three distances of the with-distance loss, with their reference compositions.
fn distances() -> Vec<(&'static str, RefDist)> {
    vec![
        (
            "euclidean",
            Box::new(|x: &[f64], y: &[f64], dim| reference::pairwise_distance(x, y, dim, 2.0, 1e-6)),
        ),
        (
            "cosine",
            Box::new(|x: &[f64], y: &[f64], dim| {
                let (c, g1, g2) = reference::cosine_similarity(x, y, dim, 1e-8);
                let neg = |v: Vec<f64>| v.into_iter().map(|g| -g).collect();
                (c.into_iter().map(|c| 1.0 - c).collect(), neg(g1), neg(g2))
            }),
        ),
        ("squared_euclidean", Box::new(squared_euclidean_reference)),
    ]
}

/// A triplet loss's fused call `(a, p, n, dim, reduction, upstream, out, ga, gp, gn)`.
type RunFn =
    dyn Fn(&[f64], &[f64], &[f64], usize, Reduction, &[f64], &mut [f64], &mut [f64], &mut [f64], &mut [f64]);

/// The loss for a named distance, as a fused call that also checks `forward_into` agrees.
fn with_distance(name: &str, margin: f64, swap: bool) -> Box<RunFn> {
    fn run<D: Distance<f64> + 'static>(l: TripletMarginWithDistance<D>) -> Box<RunFn> {
        Box::new(move |a, p, n, dim, r, up, out, ga, gp, gn| {
            l.forward_backward(mat(a, dim), mat(p, dim), mat(n, dim), r, up, out, ga, gp, gn).unwrap();
            let mut out2 = vec![0.0; out.len()];
            l.forward_into(mat(a, dim), mat(p, dim), mat(n, dim), r, &mut out2).unwrap();
            assert_eq!(out, &out2[..]);
        })
    }
    match name {
        "euclidean" => run(TripletMarginWithDistance::euclidean().margin(margin).swap(swap)),
        "cosine" => run(TripletMarginWithDistance::cosine().margin(margin).swap(swap)),
        _ => run(TripletMarginWithDistance::new(SquaredEuclidean).margin(margin).swap(swap)),
    }
}

#[test]
fn triplet_margin_with_distance_fused_equals_reference() {
    let mut rng = Rng(4);
    for (name, dist) in distances() {
        for _ in 0..150 {
            let (a, p, n, dim) = triplet_rows(&mut rng, true);
            let (margin, swap) = (rng.range(0.1, 2.0), rng.unif() < 0.5);
            let reference = reference::triplet_margin_with_distance(&a, &p, &n, dim, margin, swap, &*dist);
            let run = with_distance(name, margin, swap);
            triplet_vs_reference(&mut rng, name, &a, &p, &n, dim, reference, &|r, up, out, ga, gp, gn| {
                run(&a, &p, &n, dim, r, up, out, ga, gp, gn)
            });
        }
    }
}

#[test]
fn cosine_embedding_gradients_match_finite_differences() {
    let mut rng = Rng(5);
    let mut checked = 0;
    while checked < 100 {
        let (x1, x2, t, dim) = pair_rows(&mut rng, false);
        let margin = rng.range(-0.9, 0.9);
        let loss = CosineEmbedding::new().margin(margin);
        let cos = reference::cosine_similarity(&x1, &x2, dim, 0.0).0;
        // away from the kink cos == margin (y = −1) and from near-zero rows
        let norms_ok =
            x1.chunks(dim).chain(x2.chunks(dim)).all(|r| r.iter().map(|v| v * v).sum::<f64>() > 1e-2);
        if !norms_ok || cos.iter().zip(&t).any(|(c, &y)| y < 0.0 && (c - margin).abs() < 1e-3) {
            continue;
        }
        let w = rng.vec(t.len(), 2.0);
        let (mut out, mut g1, mut g2) = (vec![0.0; t.len()], vec![0.0; x1.len()], vec![0.0; x2.len()]);
        loss.forward_backward(
            mat(&x1, dim),
            mat(&x2, dim),
            &t,
            Reduction::None,
            &w,
            &mut out,
            &mut g1,
            &mut g2,
        )
        .unwrap();
        let f = |a: &[f64], b: &[f64]| {
            weighted(loss.forward(mat(a, dim), mat(b, dim), &t, Reduction::None).unwrap().as_slice(), &w)
        };
        gradcheck("cosine_embedding input1", &x1, &g1, |x| f(x, &x2));
        gradcheck("cosine_embedding input2", &x2, &g2, |x| f(&x1, x));
        checked += 1;
    }
}

#[test]
fn contrastive_gradients_match_finite_differences() {
    let mut rng = Rng(6);
    let mut checked = 0;
    while checked < 100 {
        let (x1, x2, t, dim) = pair_rows(&mut rng, false);
        let margin = rng.range(0.2, 3.0);
        let loss = Contrastive::new().margin(margin);
        let d = reference::pairwise_distance(&x1, &x2, dim, 2.0, 1e-6).0;
        if d.iter().zip(&t).any(|(d, &y)| y < 0.0 && (margin - d).abs() < 1e-3) {
            continue;
        }
        let w = rng.vec(t.len(), 2.0);
        let (mut out, mut g1, mut g2) = (vec![0.0; t.len()], vec![0.0; x1.len()], vec![0.0; x2.len()]);
        loss.forward_backward(
            mat(&x1, dim),
            mat(&x2, dim),
            &t,
            Reduction::None,
            &w,
            &mut out,
            &mut g1,
            &mut g2,
        )
        .unwrap();
        let f = |a: &[f64], b: &[f64]| {
            weighted(loss.forward(mat(a, dim), mat(b, dim), &t, Reduction::None).unwrap().as_slice(), &w)
        };
        gradcheck("contrastive input1", &x1, &g1, |x| f(x, &x2));
        gradcheck("contrastive input2", &x2, &g2, |x| f(&x1, x));
        checked += 1;
    }
}

/// Finite-difference checks of a triplet loss, skipping samples near a kink: the hinge
/// argument, a swap tie, or (p-norms) a difference component near 0.
#[allow(clippy::type_complexity)]
fn triplet_gradcheck(
    rng: &mut Rng,
    what: &str,
    dist: &dyn Fn(&[f64], &[f64], usize) -> Vec<f64>,
    margin: f64,
    swap: bool,
    fused: &dyn Fn(&[f64], &[f64], &[f64], usize, &[f64], &mut [f64], &mut [f64], &mut [f64], &mut [f64]),
) -> bool {
    let (a, p, n, dim) = triplet_rows(rng, false);
    let near0 = |x: &[f64], y: &[f64]| x.iter().zip(y).any(|(u, v)| (u - v).abs() < 1e-3);
    if near0(&a, &p) || near0(&a, &n) || near0(&p, &n) {
        return false;
    }
    let (dp, dn, ds) = (dist(&a, &p, dim), dist(&a, &n, dim), dist(&p, &n, dim));
    for i in 0..dp.len() {
        let neg = if swap { dn[i].min(ds[i]) } else { dn[i] };
        if (margin + dp[i] - neg).abs() < 1e-3 || (swap && (dn[i] - ds[i]).abs() < 1e-3) {
            return false;
        }
    }
    let rows = dp.len();
    let w = rng.vec(rows, 2.0);
    let mut out = vec![0.0; rows];
    let mut g = [vec![0.0; a.len()], vec![0.0; a.len()], vec![0.0; a.len()]];
    let [ga, gp, gn] = &mut g;
    fused(&a, &p, &n, dim, &w, &mut out, ga, gp, gn);
    let f = |a: &[f64], p: &[f64], n: &[f64]| -> f64 {
        let mut o = vec![0.0; rows];
        let mut s = [vec![0.0; a.len()], vec![0.0; a.len()], vec![0.0; a.len()]];
        let [sa, sp, sn] = &mut s;
        fused(a, p, n, dim, &w, &mut o, sa, sp, sn);
        weighted(&o, &w)
    };
    gradcheck(&format!("{what} anchor"), &a, &g[0], |x| f(x, &p, &n));
    gradcheck(&format!("{what} positive"), &p, &g[1], |x| f(&a, x, &n));
    gradcheck(&format!("{what} negative"), &n, &g[2], |x| f(&a, &p, x));
    true
}

#[test]
fn triplet_margin_gradients_match_finite_differences() {
    let mut rng = Rng(7);
    for norm in [1.0, 2.0, 3.0] {
        let mut checked = 0;
        while checked < 40 {
            let (margin, swap) = (rng.range(0.2, 2.0), checked % 2 == 1);
            let loss = TripletMargin::new().margin(margin).p(norm).swap(swap);
            let dist = |x: &[f64], y: &[f64], dim| reference::pairwise_distance(x, y, dim, norm, 1e-6).0;
            let ok = triplet_gradcheck(
                &mut rng,
                &format!("triplet_margin p={norm} swap={swap}"),
                &dist,
                margin,
                swap,
                &|a, p, n, dim, w, out, ga, gp, gn| {
                    loss.forward_backward(
                        mat(a, dim),
                        mat(p, dim),
                        mat(n, dim),
                        Reduction::None,
                        w,
                        out,
                        ga,
                        gp,
                        gn,
                    )
                    .unwrap()
                },
            );
            checked += usize::from(ok);
        }
    }
}

#[test]
fn triplet_margin_with_distance_gradients_match_finite_differences() {
    let mut rng = Rng(8);
    for (name, dist) in distances() {
        let mut checked = 0;
        while checked < 40 {
            let (margin, swap) = (rng.range(0.2, 2.0), checked % 2 == 1);
            let run = with_distance(name, margin, swap);
            let ok = triplet_gradcheck(
                &mut rng,
                &format!("triplet_margin_with_distance {name} swap={swap}"),
                &|x, y, dim| dist(x, y, dim).0,
                margin,
                swap,
                &|a, p, n, dim, w, out, ga, gp, gn| run(a, p, n, dim, Reduction::None, w, out, ga, gp, gn),
            );
            checked += usize::from(ok);
        }
    }
}
