//! The batch losses: fused kernels equal to the plain reference (`common/batch_ref.rs`),
//! finite differences in f64, strict errors and torch-compat results on degenerate
//! batches, the tie rule, workspace reuse.

#[path = "common/batch_ref.rs"]
mod batch_ref;
mod common;

use batch_ref::{reference, Cfg, Dist, Kind, Red};
use common::Rng;
use marginloss::batch::{
    Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, BatchStats, PairContrastive,
    SemihardTriplet, Workspace,
};
use marginloss::Rows;
use marginloss::{Float, Mode};

#[derive(Debug)]
pub struct Fused<T> {
    pub out: Vec<T>,
    pub grad: Vec<T>,
    pub grad_ref: Vec<T>,
    pub stats: BatchStats,
}

fn dist(d: Dist) -> BatchDistance {
    match d {
        Dist::Euclid => BatchDistance::Euclidean,
        Dist::Sq => BatchDistance::SquaredEuclidean,
        Dist::Cos => BatchDistance::Cosine,
    }
}

fn red(r: Red) -> BatchReduction {
    match r {
        Red::Mean => BatchReduction::Mean,
        Red::MeanNonzero => BatchReduction::MeanNonzero,
        Red::Sum => BatchReduction::Sum,
        Red::None => BatchReduction::None,
    }
}

/// Runs the fused loss `cfg` describes.
#[allow(clippy::too_many_arguments)]
pub fn fused<T: Float>(
    cfg: &Cfg,
    x: &[T],
    dim: usize,
    labels: &[i64],
    refset: Option<(&[T], &[i64])>,
    upstream: &[T],
    ws: &mut Workspace<T>,
) -> marginloss::Result<Fused<T>> {
    let n = labels.len();
    let emb = Rows::new(x, n, dim)?;
    let mut batch = Batch::new(emb, labels);
    let mut grad_ref = Vec::new();
    if let Some((r, rl)) = refset {
        batch = batch.with_reference(Rows::new(r, rl.len(), dim)?, rl);
        grad_ref = vec![T::zero(); r.len()];
    }
    let r = red(cfg.red);
    let mut out = vec![T::zero(); r.output_len(n)];
    let mut grad = vec![T::zero(); x.len()];
    let mode = if cfg.compat { Mode::TorchCompat } else { Mode::Strict };
    let (d, nz) = (dist(cfg.dist), cfg.normalize);
    let gr = if refset.is_some() { Some(&mut grad_ref[..]) } else { None };
    let stats = match cfg.kind {
        Kind::All => BatchAllTriplet::new()
            .margin(cfg.margin)
            .soft(cfg.soft)
            .distance(d)
            .normalize(nz)
            .mode(mode)
            .forward_backward(&batch, r, upstream, &mut out, &mut grad, gr, ws)?,
        Kind::Hard => {
            let mut l = BatchHardTriplet::new()
                .margin(cfg.margin)
                .soft(cfg.soft)
                .distance(d)
                .normalize(nz)
                .mode(mode);
            if cfg.tfa {
                l = l.tf_addons();
            }
            l.forward_backward(&batch, r, upstream, &mut out, &mut grad, gr, ws)?
        }
        Kind::Semi => SemihardTriplet::new()
            .margin(cfg.margin)
            .distance(d)
            .normalize(nz)
            .mode(mode)
            .forward_backward(&batch, r, upstream, &mut out, &mut grad, gr, ws)?,
        Kind::Pair => PairContrastive::new()
            .pos_margin(cfg.pos_margin)
            .neg_margin(cfg.neg_margin)
            .distance(d)
            .normalize(nz)
            .mode(mode)
            .forward_backward(&batch, r, upstream, &mut out, &mut grad, gr, ws)?,
    };
    Ok(Fused { out, grad, grad_ref, stats })
}

fn labels(rng: &mut Rng, n: usize, classes: u64) -> Vec<i64> {
    (0..n).map(|_| (rng.next_u64() % classes) as i64).collect()
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().filter(|v| v.is_finite()).fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: got {g:e}, want {w:e} (scale {scale:e})");
    }
}

const KINDS: [Kind; 4] = [Kind::All, Kind::Hard, Kind::Semi, Kind::Pair];
const DISTS: [Dist; 3] = [Dist::Euclid, Dist::Sq, Dist::Cos];
const REDS: [Red; 4] = [Red::Mean, Red::MeanNonzero, Red::Sum, Red::None];

/// The dense losses take a matrix with few non-zero coefficients (most pairs or triplets
/// already past their margins) through the sparse backward and a dense one through the
/// GEMM: both equal the reference, with and without a reference set, every distance and
/// reduction.
#[test]
fn dense_losses_equal_the_reference_whether_their_coefficients_are_sparse_or_dense() {
    let mut rng = Rng::new(11);
    let (n, m, dim) = (96, 80, 6);
    let mut ws = Workspace::new();
    let euclid = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    for kind in [Kind::All, Kind::Pair] {
        for d in DISTS {
            for r in REDS {
                for with_ref in [false, true] {
                    for sparse in [true, false] {
                        let x = rng.vec(n * dim, -1.0, 1.0);
                        let y = labels(&mut rng, n, 6);
                        let rx = rng.vec(m * dim, -1.0, 1.0);
                        let ry = labels(&mut rng, m, 6);
                        let refset = with_ref.then_some((&rx[..], &ry[..]));
                        let (cx, cy, cm) = if with_ref { (&rx[..], &ry[..], m) } else { (&x[..], &y[..], n) };
                        // The margins are set from the batch's own distances: quantiles of
                        // the negative distances (pair) and of d_ap − d_an (batch-all).
                        let dd = |i: usize, j: usize| {
                            let (a, b) = (&x[i * dim..(i + 1) * dim], &cx[j * dim..(j + 1) * dim]);
                            match d {
                                Dist::Euclid => euclid(a, b),
                                Dist::Sq => euclid(a, b).powi(2),
                                Dist::Cos => {
                                    let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
                                    let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                                    let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
                                    1.0 - dot / (na * nb)
                                }
                            }
                        };
                        let (mut neg, mut diffs) = (Vec::new(), Vec::new());
                        for (i, &yi) in y.iter().enumerate() {
                            let own = |j: usize| !with_ref && j == i;
                            for j in (0..cm).filter(|&j| cy[j] != yi) {
                                neg.push(dd(i, j));
                            }
                            for p in (0..cm).filter(|&p| cy[p] == yi && !own(p)) {
                                for q in (0..cm).filter(|&q| cy[q] != yi) {
                                    diffs.push(dd(i, p) - dd(i, q));
                                }
                            }
                        }
                        neg.sort_by(f64::total_cmp);
                        diffs.sort_by(f64::total_cmp);
                        let up: Vec<f64> = if r == Red::None { rng.vec(n, 0.5, 2.0) } else { vec![1.3] };
                        let mut cfg = Cfg::new(kind);
                        cfg.dist = d;
                        cfg.red = r;
                        // Midway between a sorted value and the next clearly larger one (a
                        // pair's distance appears twice), so no pair or triplet sits on its
                        // hinge's kink, where rounding would decide.
                        let mid = |v: &[f64], k: usize| {
                            let next =
                                v[k..].iter().find(|&&b| b > v[k] + 1e-9).copied().unwrap_or(v[k] + 1.0);
                            0.5 * (v[k] + next)
                        };
                        if sparse {
                            // Pair: no positive active, the nearest 0.4% of negatives;
                            // batch-all: the most violating 0.1% of triplets.
                            cfg.pos_margin = 1e3;
                            cfg.neg_margin = mid(&neg, neg.len() / 250);
                            cfg.margin = -mid(&diffs, diffs.len() - diffs.len() / 1000 - 2);
                        } else {
                            cfg.pos_margin = 0.0;
                            cfg.neg_margin = mid(&neg, neg.len() / 2);
                            cfg.margin = -mid(&diffs, diffs.len() / 3);
                        }
                        let want = reference(&cfg, &x, dim, &y, refset, &up);
                        let got = fused(&cfg, &x, dim, &y, refset, &up, &mut ws).unwrap();
                        let what = format!("{kind:?} {d:?} {r:?} ref={with_ref} sparse={sparse}");
                        if sparse {
                            assert!(got.stats.active > 0, "{what}: nothing active");
                            assert!(
                                2 * got.stats.active * 24 < (n * cm) as u64,
                                "{what}: not sparse ({})",
                                got.stats.active
                            );
                        } else {
                            assert!(
                                got.stats.active * 24 > (n * cm) as u64,
                                "{what}: not dense ({})",
                                got.stats.active
                            );
                        }
                        close(&format!("{what} out"), &got.out, &want.out, 1e-10);
                        close(&format!("{what} grad"), &got.grad, &want.grad, 1e-10);
                        if with_ref {
                            close(&format!("{what} grad_ref"), &got.grad_ref, &want.grad_ref, 1e-10);
                        }
                    }
                }
            }
        }
    }
}

/// Every loss × distance × normalize × reduction × soft, with and without a reference set,
/// with upstream weights: fused (f64) equals the reference to 1e-10 of the result's scale.
#[test]
fn fused_kernels_equal_the_plain_reference_in_f64() {
    let mut rng = Rng::new(5);
    let (n, m, dim) = (13, 9, 5);
    let mut ws = Workspace::new();
    for kind in KINDS {
        for d in DISTS {
            for normalize in [false, true] {
                for r in REDS {
                    for soft in [false, true] {
                        if soft && !matches!(kind, Kind::All | Kind::Hard) {
                            continue;
                        }
                        for with_ref in [false, true] {
                            let x = rng.vec(n * dim, -1.0, 1.0);
                            let y = labels(&mut rng, n, 4);
                            let rx = rng.vec(m * dim, -1.0, 1.0);
                            let ry = labels(&mut rng, m, 4);
                            let refset = with_ref.then_some((&rx[..], &ry[..]));
                            let up: Vec<f64> = if r == Red::None { rng.vec(n, 0.5, 2.0) } else { vec![1.7] };
                            let mut cfg = Cfg::new(kind);
                            cfg.dist = d;
                            cfg.normalize = normalize;
                            cfg.red = r;
                            cfg.soft = soft;
                            if d == Dist::Cos {
                                cfg.margin = 0.1;
                                cfg.pos_margin = 0.05;
                                cfg.neg_margin = 0.9;
                            }
                            let want = reference(&cfg, &x, dim, &y, refset, &up);
                            let got = fused(&cfg, &x, dim, &y, refset, &up, &mut ws).unwrap();
                            let what = format!(
                                "{kind:?} {d:?} normalize={normalize} {r:?} soft={soft} ref={with_ref}"
                            );
                            close(&format!("{what} out"), &got.out, &want.out, 1e-10);
                            close(&format!("{what} grad"), &got.grad, &want.grad, 1e-10);
                            if with_ref {
                                close(&format!("{what} grad_ref"), &got.grad_ref, &want.grad_ref, 1e-10);
                            }
                            assert_eq!(got.stats.tuples, want.tuples, "{what} tuples");
                            assert_eq!(got.stats.active, want.active, "{what} active");
                        }
                    }
                }
            }
        }
    }
}

/// Rows longer than the batch-all kernel's fold interval (1024 candidates) and than one
/// pass of its positives (8), with a ragged tail: fused (f64 and f32) equals the reference.
#[test]
fn batch_all_rows_longer_than_a_fold_chunk_equal_the_reference() {
    let mut rng = Rng::new(23);
    let (n, m, dim) = (6, 1100, 4);
    let x = rng.vec(n * dim, -1.0, 1.0);
    let y = labels(&mut rng, n, 3);
    let rx = rng.vec(m * dim, -1.0, 1.0);
    let ry = labels(&mut rng, m, 3);
    let mut cfg = Cfg::new(Kind::All);
    cfg.margin = 0.3;
    for r in [Red::MeanNonzero, Red::Sum] {
        cfg.red = r;
        let want = reference(&cfg, &x, dim, &y, Some((&rx, &ry)), &[1.0]);
        let got = fused(&cfg, &x, dim, &y, Some((&rx, &ry)), &[1.0], &mut Workspace::new()).unwrap();
        close(&format!("{r:?} out"), &got.out, &want.out, 1e-10);
        close(&format!("{r:?} grad"), &got.grad, &want.grad, 1e-10);
        close(&format!("{r:?} grad_ref"), &got.grad_ref, &want.grad_ref, 1e-10);
        assert_eq!(got.stats.active, want.active, "{r:?} active");
        let (x32, rx32): (Vec<f32>, Vec<f32>) =
            (x.iter().map(|&v| v as f32).collect(), rx.iter().map(|&v| v as f32).collect());
        let got = fused(&cfg, &x32, dim, &y, Some((&rx32, &ry)), &[1.0], &mut Workspace::new()).unwrap();
        let g: Vec<f64> = got.out.iter().map(|&v| f64::from(v)).collect();
        close(&format!("{r:?} f32 out"), &g, &want.out, 3e-5);
    }
}

/// pair-contrastive sweeps each unordered pair once when it reduces to one value (its
/// weights are symmetric) and whole rows for per-anchor values: the counters agree, the
/// `Sum` is the sum of the per-anchor values, and both gradients are the same.
#[test]
fn pair_contrastive_counts_the_same_pairs_whether_it_sweeps_half_or_whole_rows() {
    let mut rng = Rng::new(29);
    let (n, dim) = (70, 5);
    let x = rng.vec(n * dim, -1.0, 1.0);
    let mut y = labels(&mut rng, n, 6);
    y[3] = 99; // a singleton: a negative of every row, an anchor of none
    let mut cfg = Cfg::new(Kind::Pair);
    cfg.neg_margin = 1.2;
    cfg.red = Red::Sum;
    let sum = fused(&cfg, &x, dim, &y, None, &[1.0], &mut Workspace::new()).unwrap();
    cfg.red = Red::None;
    let each = fused(&cfg, &x, dim, &y, None, &vec![1.0; n], &mut Workspace::new()).unwrap();
    let (a, b) = (sum.stats, each.stats);
    assert_eq!(
        (a.tuples, a.active, a.positive_pairs, a.negative_pairs, a.anchors),
        (b.tuples, b.active, b.positive_pairs, b.negative_pairs, b.anchors)
    );
    assert_eq!(a.anchors, (n - 1) as u64);
    assert_eq!(a.positive_pairs + a.negative_pairs, (n * (n - 1)) as u64);
    let total: f64 = each.out.iter().sum();
    close("sum", &sum.out, &[total], 1e-12);
    close("grad", &sum.grad, &each.grad, 1e-12);
}

/// f32 through the same kernels stays within f32 rounding of the f64 reference.
#[test]
fn f32_kernels_track_the_f64_reference() {
    let mut rng = Rng::new(6);
    let (n, dim) = (40, 16);
    let mut ws = Workspace::<f32>::new();
    for kind in KINDS {
        for d in DISTS {
            let x = rng.vec(n * dim, -1.0, 1.0);
            let y = labels(&mut rng, n, 5);
            let mut cfg = Cfg::new(kind);
            cfg.dist = d;
            cfg.normalize = d == Dist::Cos;
            let want = reference(&cfg, &x, dim, &y, None, &[1.0]);
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let got = fused(&cfg, &x32, dim, &y, None, &[1.0], &mut ws).unwrap();
            let g: Vec<f64> = got.grad.iter().map(|&v| f64::from(v)).collect();
            close(&format!("{kind:?} {d:?} out"), &[f64::from(got.out[0])], &want.out, 1e-4);
            close(&format!("{kind:?} {d:?} grad"), &g, &want.grad, 1e-3);
        }
    }
}

/// The analytic gradient matches central differences of the fused forward (f64).
#[test]
fn gradients_match_finite_differences_in_f64() {
    let mut rng = Rng::new(7);
    let (n, m, dim) = (10, 7, 4);
    let mut ws = Workspace::new();
    for kind in KINDS {
        for d in DISTS {
            for (normalize, with_ref, soft) in
                [(false, false, false), (true, true, false), (false, true, true)]
            {
                if soft && !matches!(kind, Kind::All | Kind::Hard) {
                    continue;
                }
                let x = rng.vec(n * dim, -1.0, 1.0);
                let y = labels(&mut rng, n, 3);
                let rx = rng.vec(m * dim, -1.0, 1.0);
                let ry = labels(&mut rng, m, 3);
                let mut cfg = Cfg::new(kind);
                cfg.dist = d;
                cfg.normalize = normalize;
                cfg.soft = soft;
                cfg.red = Red::Sum;
                let got = fused(
                    &cfg,
                    &x,
                    dim,
                    &y,
                    with_ref.then_some((&rx[..], &ry[..])),
                    &[1.0],
                    &mut Workspace::new(),
                )
                .unwrap();
                let h = 1e-6;
                let mut f = |xx: &[f64], rr: &[f64]| {
                    fused(&cfg, xx, dim, &y, with_ref.then_some((rr, &ry[..])), &[1.0], &mut ws).unwrap().out
                        [0]
                };
                let what = format!("{kind:?} {d:?} normalize={normalize} ref={with_ref} soft={soft}");
                for i in 0..x.len() {
                    let (mut xp, mut xm) = (x.clone(), x.clone());
                    xp[i] += h;
                    xm[i] -= h;
                    let fd = (f(&xp, &rx) - f(&xm, &rx)) / (2.0 * h);
                    assert!(
                        (fd - got.grad[i]).abs() <= 1e-5 * fd.abs().max(1.0),
                        "{what} grad[{i}]: {} vs fd {fd}",
                        got.grad[i]
                    );
                }
                if with_ref {
                    for i in 0..rx.len() {
                        let (mut rp, mut rm) = (rx.clone(), rx.clone());
                        rp[i] += h;
                        rm[i] -= h;
                        let fd = (f(&x, &rp) - f(&x, &rm)) / (2.0 * h);
                        assert!(
                            (fd - got.grad_ref[i]).abs() <= 1e-5 * fd.abs().max(1.0),
                            "{what} grad_ref[{i}]: {} vs fd {fd}",
                            got.grad_ref[i]
                        );
                    }
                }
            }
        }
    }
}

fn err(cfg: &Cfg, x: &[f64], dim: usize, y: &[i64]) -> String {
    match fused(cfg, x, dim, y, None, &[1.0], &mut Workspace::new()) {
        Ok(_) => panic!("{cfg:?}: expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn strict_mode_refuses_degenerate_batches_with_a_fix() {
    let x = [0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0];
    for kind in KINDS {
        let cfg = Cfg::new(kind);
        let e = err(&cfg, &x, 2, &[1, 2, 3]);
        assert!(e.contains("no label appears twice") && e.contains("P x K"), "{e}");
        let e = err(&cfg, &x, 2, &[4, 4, 4]);
        assert!(e.contains("one class") && e.contains("at least two classes"), "{e}");
        let e = err(&cfg, &[0.0, 1.0, f64::NAN, 3.0, 4.0, 5.0], 2, &[1, 1, 2]);
        assert!(e.contains("got NaN at embeddings[2]"), "{e}");
        let e = BatchAllTriplet::new()
            .forward(&Batch::new(Rows::new(&x[..], 3, 2).unwrap(), &[1i64, 1]), BatchReduction::Mean)
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels has shape [2]") && e.contains("(3)"), "{e}");
        let e = err(&cfg, &[], 0, &[1, 1, 2]);
        assert!(e.contains("D = 0"), "{e}");
        let mut c = cfg;
        c.dist = Dist::Cos;
        let e = err(&c, &[0.0, 1.0, 0.0, 0.0, 4.0, 5.0], 2, &[1, 1, 2]);
        assert!(e.contains("row 1 of the embeddings is all zeros"), "{e}");
        let mut c = cfg;
        c.margin = f64::INFINITY;
        c.neg_margin = f64::INFINITY;
        let e = err(&c, &x, 2, &[1, 1, 2]);
        assert!(e.contains("must be finite"), "{e}");
        // a wrong D is an error, not a different loss
        assert!(Rows::new(&x[..], 4, 2).is_err());
    }
}

#[test]
fn strict_mode_refuses_a_distance_that_overflows_float32() {
    // Finite f32 rows whose squared distance overflows f32 (found by fuzz_batch): strict
    // mode names the overflow instead of returning a number computed from inf − inf
    // (which the hinge turned into a silent 0 here); torch-compat does not refuse it. The
    // squared norms (1.69e38) are finite; a row whose own squared norm overflows is
    // refused before (`a_finite_row_whose_norm_overflows_is_not_called_non_finite`).
    let x = [-1.3e19f32, 1.0, 1.3e19, 1.0, 0.5, 0.5, 0.25, 0.0];
    let y = [1i64, 1, 2, 2];
    let batch = Batch::new(Rows::new(&x[..], 4, 2).unwrap(), &y[..]);
    let e = BatchAllTriplet::new().forward(&batch, BatchReduction::Mean).unwrap_err().to_string();
    assert!(e.starts_with("batch_all_triplet: the distance overflows float32 at distances[1];"), "{e}");
    assert!(BatchAllTriplet::new().mode(Mode::TorchCompat).forward(&batch, BatchReduction::Mean).is_ok());
    let (mut out, mut g) = ([0.0f32], [0.0f32; 8]);
    let e = PairContrastive::new()
        .forward_backward(&batch, BatchReduction::Sum, &[1.0], &mut out, &mut g, None, &mut Workspace::new())
        .unwrap_err();
    assert!(matches!(e, marginloss::Error::Overflow { .. }), "{e}");
}

#[test]
fn a_distance_matrix_that_cannot_be_allocated_is_an_error_not_an_abort() {
    // 2^18 rows of D = 0 (torch-compat allows it): the 2^18 × 2^18 f32 matrix is 256 GiB.
    // Under Linux's default (heuristic) overcommit the reservation fails at once; where
    // every allocation is granted (`overcommit_memory = 1`) the test would touch the
    // memory, so it only runs under the default.
    let heuristic = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|v| v.trim() == "0");
    if !heuristic {
        eprintln!("skipped: overcommit_memory is not 0 (or not Linux)");
        return;
    }
    let n = 1usize << 18;
    let y: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
    let batch = Batch::new(Rows::new(&[][..], n, 0).unwrap(), &y[..]);
    let l = BatchHardTriplet::new().mode(Mode::TorchCompat);
    let e = l.forward::<f32, i64>(&batch, BatchReduction::Mean).unwrap_err().to_string();
    assert!(e.contains("could not be allocated") && e.contains("smaller calls"), "{e}");
}

#[test]
fn torch_compat_reproduces_the_references_on_degenerate_batches() {
    let x = [0.0f64, 1.0, 2.0, 3.0, 4.0, 6.0];
    let mut ws = Workspace::new();
    for kind in KINDS {
        for (y, what) in [(&[1i64, 2, 3][..], "no positives"), (&[4, 4, 4][..], "one class")] {
            for r in REDS {
                let mut cfg = Cfg::new(kind);
                cfg.compat = true;
                cfg.red = r;
                let got = fused(&cfg, &x, 2, y, None, &[1.0], &mut ws).unwrap();
                let want = reference(&cfg, &x, 2, y, None, &[1.0]);
                close(&format!("{kind:?} {what} {r:?}"), &got.out, &want.out, 1e-12);
                close(&format!("{kind:?} {what} {r:?} grad"), &got.grad, &want.grad, 1e-12);
                if kind == Kind::Semi && r == Red::Mean && what == "no positives" {
                    assert!(got.out[0].is_nan(), "TF-Addons: 0/0");
                } else if kind != Kind::Pair && (kind != Kind::Semi || what == "no positives") {
                    // pytorch-metric-learning: a zero loss with a zero gradient
                    assert!(got.out.iter().all(|v| *v == 0.0), "{kind:?} {what} {r:?}: {:?}", got.out);
                    assert!(got.grad.iter().all(|v| *v == 0.0));
                }
            }
        }
    }
    // TF-Addons' single-class semi-hard: neg = 0 (the anchor), l = d_ap + margin
    let mut cfg = Cfg::new(Kind::Semi);
    cfg.compat = true;
    let got = fused(&cfg, &[0.0f64, 3.0], 1, &[5, 5], None, &[1.0], &mut ws).unwrap();
    assert!((got.out[0] - 3.3).abs() < 1e-12);
    // TF-Addons' batch-hard fallbacks, mean over every anchor
    let mut cfg = Cfg::new(Kind::Hard);
    (cfg.compat, cfg.tfa, cfg.margin) = (true, true, 1.0);
    let got = fused(&cfg, &[0.0f64, 1.0, 1.0, 0.0], 2, &[0, 0], None, &[1.0], &mut ws).unwrap();
    assert_eq!(got.out[0], 1.0);
    // pytorch-metric-learning's pair quirk: one positive and one negative pair gives 0
    let mut cfg = Cfg::new(Kind::Pair);
    cfg.compat = true;
    let rx = [0.5f64, 3.0];
    let got = fused(&cfg, &[0.0f64], 1, &[1], Some((&rx[..], &[1, 2][..])), &[1.0], &mut ws).unwrap();
    assert_eq!(got.out[0], 0.0);
    cfg.compat = false;
    let got = fused(&cfg, &[0.0f64], 1, &[1], Some((&rx[..], &[1, 2][..])), &[1.0], &mut ws).unwrap();
    assert!((got.out[0] - 0.3).abs() < 1e-12);
    // non-finite input in torch-compat: NaN throughout
    let mut cfg = Cfg::new(Kind::All);
    cfg.compat = true;
    let got = fused(&cfg, &[0.0f64, f64::INFINITY, 1.0], 1, &[1, 1, 2], None, &[1.0], &mut ws).unwrap();
    assert!(got.out[0].is_nan() && got.grad.iter().all(|v| v.is_nan()));
}

/// Singletons (a class of one) have no positive: they are anchors of nothing, but
/// candidates (negatives) of everyone else.
#[test]
fn singletons_are_negatives_but_not_anchors() {
    let x = [0.0f64, 0.4, 5.0, 0.3];
    let y = [1i64, 1, 2, 3];
    let mut cfg = Cfg::new(Kind::Hard);
    cfg.red = Red::None;
    cfg.margin = 1.0;
    let got = fused(&cfg, &x, 1, &y, None, &[1.0], &mut Workspace::new()).unwrap();
    // anchor 0: hp = 0.4, hn = 0.3 → 1.1; anchor 1: hp = 0.4, hn = 0.1 → 1.3; singletons 0
    close("per anchor", &got.out, &[1.1, 1.3, 0.0, 0.0], 1e-12);
    assert_eq!(got.stats.anchors, 2);
}

/// Equal distances: the lowest index is the hardest negative.
#[test]
fn ties_go_to_the_lowest_index() {
    // anchor 0 at 0; positive 1 at 1; negatives 2 and 3 both at distance 2 (at ±2)
    let x = [0.0f64, 1.0, 2.0, -2.0];
    let y = [0i64, 0, 1, 1];
    let mut cfg = Cfg::new(Kind::Hard);
    cfg.red = Red::None;
    cfg.margin = 2.0;
    let up = [1.0, 0.0, 0.0, 0.0];
    let got = fused(&cfg, &x, 1, &y, None, &up, &mut Workspace::new()).unwrap();
    // only anchor 0 carries weight: ∂/∂x2 = −1 (the lowest-index negative), x3 untouched
    assert_eq!(got.grad[3], 0.0);
    assert_eq!(got.grad[2], -1.0);
    let mut cfg = Cfg::new(Kind::Semi);
    cfg.red = Red::None;
    cfg.margin = 2.0;
    let got = fused(&cfg, &x, 1, &y, None, &up, &mut Workspace::new()).unwrap();
    assert_eq!(got.grad[3], 0.0);
    assert_eq!(got.grad[2], -1.0);
}

/// Identical rows: the euclidean gradient at distance 0 is 0, never NaN.
#[test]
fn euclidean_gradient_at_zero_distance_is_zero_not_nan() {
    let x = [1.0f64, 2.0, 1.0, 2.0, 1.0, 2.0, 0.0, 0.0];
    let y = [0i64, 0, 1, 1];
    for kind in KINDS {
        let mut cfg = Cfg::new(kind);
        cfg.margin = 5.0;
        let got = fused(&cfg, &x, 2, &y, None, &[1.0], &mut Workspace::new()).unwrap();
        assert!(got.grad.iter().all(|v| v.is_finite()), "{kind:?}: {:?}", got.grad);
        let want = reference(&cfg, &x, 2, &y, None, &[1.0]);
        close(&format!("{kind:?}"), &got.grad, &want.grad, 1e-12);
    }
}

/// A non-finite per-anchor upstream weight (`Reduction::None`) is the caller's to
/// propagate: every loss answers (the fuzz target once found semi-hard spreading it over a
/// whole row, past its pick lists' bound, which tripped an internal check). The sparse
/// miners (batch-hard, semi-hard) keep it to the rows that anchor's tuples touch; the
/// dense ones multiply it into every coefficient of its row (`0 · ∞` is NaN, as in torch's
/// autograd), so the backward product spreads it.
#[test]
fn a_non_finite_upstream_weight_is_propagated_not_refused() {
    let mut rng = Rng::new(3);
    let (n, dim) = (48, 4);
    let x = rng.vec(n * dim, -1.0, 1.0);
    let y = labels(&mut rng, n, 8);
    for kind in KINDS {
        for bad in [f64::INFINITY, f64::NAN] {
            let mut up = vec![1.0; n];
            up[5] = bad;
            let mut cfg = Cfg::new(kind);
            cfg.red = Red::None;
            cfg.margin = 0.5;
            let got = fused(&cfg, &x, dim, &y, None, &up, &mut Workspace::new()).unwrap();
            assert!(got.out.iter().all(|v| v.is_finite()), "{kind:?} {bad}: the loss values stay finite");
            up[5] = 0.0;
            let clean = fused(&cfg, &x, dim, &y, None, &up, &mut Workspace::new()).unwrap();
            // Rows whose gradient does not involve anchor 5 are unchanged.
            let same = (0..n)
                .filter(|&i| {
                    let g = &got.grad[i * dim..(i + 1) * dim];
                    g.iter().all(|v| v.is_finite()) && g == &clean.grad[i * dim..(i + 1) * dim]
                })
                .count();
            if matches!(kind, Kind::Hard | Kind::Semi) {
                assert!(same >= n / 2, "{kind:?} {bad}: only {same} of {n} rows untouched");
            }
        }
    }
}

/// Reusing a workspace across sizes gives the same bits as a fresh one.
#[test]
fn a_reused_workspace_gives_the_same_bits() {
    let mut rng = Rng::new(9);
    let mut ws = Workspace::<f32>::new();
    for n in [50usize, 20, 70, 50] {
        let x: Vec<f32> = rng.vec(n * 8, -1.0, 1.0).into_iter().map(|v| v as f32).collect();
        let y = labels(&mut rng, n, 6);
        for kind in KINDS {
            let cfg = Cfg::new(kind);
            let a = fused(&cfg, &x, 8, &y, None, &[1.0], &mut ws).unwrap();
            let b = fused(&cfg, &x, 8, &y, None, &[1.0], &mut Workspace::new()).unwrap();
            assert_eq!(a.out, b.out);
            assert_eq!(a.grad, b.grad);
        }
    }
}

#[test]
fn integer_label_types_are_accepted() {
    let x = [0.0f32, 1.0, 3.0];
    let e = Rows::new(&x, 3, 1).unwrap();
    let l = BatchAllTriplet::new().margin(1.5);
    let a = l.forward(&Batch::new(e, &[7u8, 7, 9]), BatchReduction::Mean).unwrap();
    let b = l.forward(&Batch::new(e, &[7usize, 7, 9]), BatchReduction::Mean).unwrap();
    let c = l.forward(&Batch::new(e, &[-7i16, -7, 9]), BatchReduction::Mean).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.scalar(), Some(0.25));
}

// ---------------------------------------------------------------------------------------
// Parity with pytorch-metric-learning 2.9.0 / TF-Addons' formulas (torch 2.15.0):
// fixtures/batch/*.json from tools/gen_batch_fixtures.py.

fn fixture_f64(v: &serde_json::Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| match x {
            serde_json::Value::String(s) if s == "nan" => f64::NAN,
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            x => x.as_f64().expect("number"),
        })
        .collect()
}

fn parity_case<T: Float>(loss: &str, c: &serde_json::Value) {
    let o = &c["options"];
    let kind = match loss {
        "batch_all_triplet" => Kind::All,
        "batch_hard_triplet" => Kind::Hard,
        "semihard_triplet" => Kind::Semi,
        _ => Kind::Pair,
    };
    let mut cfg = Cfg::new(kind);
    cfg.margin = o["margin"].as_f64().unwrap();
    cfg.pos_margin = o["pos_margin"].as_f64().unwrap();
    cfg.neg_margin = o["neg_margin"].as_f64().unwrap();
    cfg.soft = o["soft"].as_bool().unwrap();
    cfg.normalize = o["normalize"].as_bool().unwrap();
    cfg.dist = match o["distance"].as_str().unwrap() {
        "euclidean" => Dist::Euclid,
        "squared-euclidean" => Dist::Sq,
        _ => Dist::Cos,
    };
    cfg.red = match o["reduction"].as_str().unwrap() {
        "mean" => Red::Mean,
        "mean-nonzero" => Red::MeanNonzero,
        "sum" => Red::Sum,
        _ => Red::None,
    };
    cfg.compat = o["mode"] == "compat";
    cfg.tfa = o["reference"] == "tfa";
    let inp = &c["inputs"];
    let dim = inp["embeddings"]["shape"][1].as_u64().unwrap() as usize;
    let t = |v: &serde_json::Value| fixture_f64(v).into_iter().map(T::of).collect::<Vec<T>>();
    let ints = |v: &serde_json::Value| fixture_f64(v).into_iter().map(|x| x as i64).collect::<Vec<i64>>();
    let (x, y, up) = (t(&inp["embeddings"]), ints(&inp["labels"]), t(&inp["upstream"]));
    let (rx, ry) = match inp.get("ref_embeddings") {
        Some(r) => (Some(t(r)), Some(ints(&inp["ref_labels"]))),
        None => (None, None),
    };
    let refset = rx.as_deref().zip(ry.as_deref());
    let got = fused(&cfg, &x, dim, &y, refset, &up, &mut Workspace::new())
        .unwrap_or_else(|e| panic!("{loss} {}: {e}", c["name"]));
    let what = format!("{loss} {} {}", c["name"].as_str().unwrap(), T::DTYPE);
    let tol = if T::DTYPE == "float32" { 3e-5 } else { 1e-10 };
    let f = |v: &[T]| v.iter().map(|x| x.f64()).collect::<Vec<f64>>();
    let want_out = fixture_f64(&c["output"]);
    close(&format!("{what} out"), &f(&got.out), &want_out, tol);
    if want_out.iter().any(|v| v.is_nan()) {
        // TF-Addons' 0/0: TensorFlow's gradient is NaN too (its `maximum` passes the inf of
        // 1/0 at the tie, times the 0 mask); the torch port's strict clamp gives 0 there.
        assert!(got.grad.iter().all(|v| v.is_nan()), "{what}: NaN loss, gradient not NaN");
        return;
    }
    close(&format!("{what} grad"), &f(&got.grad), &fixture_f64(&c["grad"]["embeddings"]), tol);
    if let Some(g) = c["grad"].get("ref_embeddings") {
        close(&format!("{what} grad ref"), &f(&got.grad_ref), &fixture_f64(g), tol);
    }
}

#[test]
fn batch_losses_match_pytorch_metric_learning_and_tf_addons_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/batch");
    let mut count = 0;
    for loss in ["batch_all_triplet", "batch_hard_triplet", "semihard_triplet", "pair_contrastive"] {
        let text = std::fs::read_to_string(dir.join(format!("{loss}.json"))).expect("fixture");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(doc["torch_version"].as_str().unwrap().starts_with("2.15.0"));
        assert_eq!(doc["pml_version"], "2.9.0");
        for c in doc["cases"].as_array().unwrap() {
            match c["dtype"].as_str().unwrap() {
                "float32" => parity_case::<f32>(loss, c),
                _ => parity_case::<f64>(loss, c),
            }
            count += 1;
        }
    }
    assert!(count > 600, "{count} cases");
}

/// Finite rows whose norm overflows `f32` (the non-finite check rides on the norms' pass,
/// so such a row is searched, and passes): strict mode refuses the row's squared norm,
/// not an element of the input, and not silently (its distances would clamp to zero).
#[test]
fn a_finite_row_whose_norm_overflows_is_not_called_non_finite() {
    let (n, dim) = (4, 8);
    let mut x = vec![0.5f32; n * dim];
    x[dim..2 * dim].fill(3.0e38);
    let y = [1i64, 1, 2, 2];
    let batch = Batch::new(Rows::new(&x[..], n, dim).unwrap(), &y[..]);
    let e = BatchHardTriplet::new().forward(&batch, BatchReduction::Mean).unwrap_err().to_string();
    assert!(e.contains("squared norm overflows float32") && e.contains("rows[1]"), "{e}");
    // A real infinity is still named, at its index.
    x[2 * dim + 3] = f32::INFINITY;
    let batch = Batch::new(Rows::new(&x[..], n, dim).unwrap(), &y[..]);
    let e = BatchHardTriplet::new().forward(&batch, BatchReduction::Mean).unwrap_err().to_string();
    assert!(e.contains(&format!("embeddings[{}]", 2 * dim + 3)), "{e}");
}
