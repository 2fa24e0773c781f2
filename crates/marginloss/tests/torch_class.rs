//! The class-index losses (`multi_margin`, `multiclass_hinge`, `multilabel_margin`):
//! golden parity with torch 2.15 (every fixture case, f32 and f64, forward_into and
//! forward_backward), fused kernel == plain reference on random inputs, and central
//! finite-difference gradient checks away from the kinks.

mod common;

use common::mat;
use common::{assert_close, for_each_case, Case, Tensor};
use marginloss::{reference, Float, Mode, MultiMargin, MulticlassHinge, MultilabelMargin, Reduction};

/// The row length C: the last dimension (a 1-D input `(C,)` is one row).
fn classes(t: &Tensor) -> usize {
    *t.shape.last().expect("input has at least one dimension")
}

/// Runs one loss's `forward_into` or (with a gradient buffer) `forward_backward`.
fn run_case<T: Float>(
    loss: &str,
    c: &Case,
    mode: Mode,
    out: &mut [T],
    grad: Option<&mut [T]>,
) -> marginloss::Result<()> {
    let x = c.input("input").as_vec::<T>();
    let t = c.input("target").as_i64();
    let cl = classes(c.input("input"));
    let r = c.reduction();
    let up = [T::one()];
    match loss {
        "multi_margin" => {
            let w = c.inputs.get("weight").map(|w| w.as_vec::<T>());
            let l = MultiMargin::new().p(c.f64_opt("p", 1.0)).margin(c.f64_opt("margin", 1.0)).mode(mode);
            match grad {
                None => l.forward_into(mat(&x, cl), &t, w.as_deref(), r, out),
                Some(g) => l.forward_backward(mat(&x, cl), &t, w.as_deref(), r, &up, out, g),
            }
        }
        "multiclass_hinge" => {
            let l = MulticlassHinge::new().margin(c.f64_opt("margin", 1.0)).mode(mode);
            match grad {
                None => l.forward_into(mat(&x, cl), &t, r, out),
                Some(g) => l.forward_backward(mat(&x, cl), &t, r, &up, out, g),
            }
        }
        "multilabel_margin" => {
            let l = MultilabelMargin::new().mode(mode);
            match grad {
                None => l.forward_into(mat(&x, cl), &t, r, out),
                Some(g) => l.forward_backward(mat(&x, cl), &t, r, &up, out, g),
            }
        }
        other => unreachable!("{other}"),
    }
}

fn parity<T: Float>(loss: &str, c: &Case) {
    let input = c.input("input");
    let n = input.data.len() / classes(input);
    let mut out = vec![T::zero(); c.reduction().output_len(n)];
    let mut grad = vec![T::zero(); input.data.len()];
    if c.compat_only {
        let e = run_case::<T>(loss, c, Mode::Strict, &mut out, None);
        assert!(e.is_err(), "{}: strict mode accepted it", c.id());
        let e = run_case::<T>(loss, c, Mode::Strict, &mut out, Some(&mut grad));
        assert!(e.is_err(), "{}: strict fused accepted it", c.id());
    }
    run_case::<T>(loss, c, c.mode(), &mut out, None).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} output", c.id()), &out, &c.output, &c.dtype);
    out.fill(T::nan());
    grad.fill(T::nan());
    run_case::<T>(loss, c, c.mode(), &mut out, Some(&mut grad)).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    assert_close(&format!("{} fused output", c.id()), &out, &c.output, &c.dtype);
    if let Some(want) = c.grad("input") {
        assert_close(&format!("{} grad", c.id()), &grad, want, &c.dtype);
    }
}

fn parity_file(loss: &str, expected_cases: usize) {
    let mut checked = 0;
    let n = for_each_case(
        loss,
        |c| {
            parity::<f32>(loss, c);
            checked += 1;
        },
        |c| parity::<f64>(loss, c),
    );
    assert_eq!(n, expected_cases, "{loss}: case count");
    assert_eq!(checked * 2, n, "{loss}: half the cases are f32");
}

#[test]
fn multi_margin_matches_torch() {
    parity_file("multi_margin", 62);
}

#[test]
fn multiclass_hinge_matches_torch() {
    parity_file("multiclass_hinge", 30);
}

#[test]
fn multilabel_margin_matches_torch() {
    parity_file("multilabel_margin", 48);
}

// ------------------------------------------------------------------------------------
// fused == reference

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }
    /// A multilabel target row: a random list (possibly with duplicates), −1, then junk
    /// in −1..C.
    fn label_row(&mut self, c: usize) -> Vec<i64> {
        let k = self.below(c + 1);
        let mut row: Vec<i64> = (0..k).map(|_| self.below(c) as i64).collect();
        if self.below(4) == 0 && k > 0 {
            row[k - 1] = row[0]; // a duplicate
        }
        while row.len() < c {
            row.push(-1);
            if row.len() < c && self.below(2) == 0 {
                row.push(self.below(c) as i64);
            }
        }
        row.truncate(c);
        row
    }
}

fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale.max(w.abs()), "{what}[{i}]: got {g:e}, want {w:e}");
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// Checks a fused kernel against reference (per-sample losses, gradient of their sum) for
/// every reduction and for a per-row upstream vector.
fn check_against_reference(
    what: &str,
    rng: &mut Rng,
    n: usize,
    losses: &[f64],
    ref_grad: &[f64],
    mut fused: impl FnMut(Reduction, &[f64], &mut [f64], &mut [f64]),
) {
    let c = ref_grad.len() / n;
    for r in REDUCTIONS {
        let (want_out, want_grad) = reference::reduce(r, losses, ref_grad);
        let mut out = vec![f64::NAN; r.output_len(n)];
        let mut grad = vec![f64::NAN; ref_grad.len()];
        fused(r, &[1.0], &mut out, &mut grad);
        assert_rel(&format!("{what} {r:?} output"), &out, &want_out, 1e-12);
        assert_rel(&format!("{what} {r:?} grad"), &grad, &want_grad, 1e-12);
    }
    let up = rng.vec(n, -2.0, 2.0);
    let mut out = vec![f64::NAN; n];
    let mut grad = vec![f64::NAN; ref_grad.len()];
    fused(Reduction::None, &up, &mut out, &mut grad);
    let want: Vec<f64> = ref_grad.iter().enumerate().map(|(k, g)| g * up[k / c]).collect();
    assert_rel(&format!("{what} upstream output"), &out, losses, 1e-12);
    assert_rel(&format!("{what} upstream grad"), &grad, &want, 1e-12);
}

#[test]
fn multi_margin_fused_equals_reference() {
    let mut rng = Rng(1);
    for trial in 0..300 {
        let (n, c) = (1 + rng.below(6), 1 + rng.below(7));
        let x = rng.vec(n * c, -2.0, 2.0);
        let y: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        let p = 1 + (trial % 2) as u32;
        let margin = rng.uniform(-0.5, 2.0);
        let w = rng.vec(c, 0.0, 2.0);
        let weight = if trial % 3 == 0 { None } else { Some(&w[..]) };
        let (losses, g) = reference::multi_margin(&x, &y, c, p, margin, weight);
        let l = MultiMargin::new().p(f64::from(p)).margin(margin);
        check_against_reference(&format!("trial {trial}"), &mut rng, n, &losses, &g, |r, up, out, grad| {
            l.forward_backward(mat(&x, c), &y, weight, r, up, out, grad).unwrap()
        });
    }
}

#[test]
fn multiclass_hinge_fused_equals_reference() {
    let mut rng = Rng(2);
    for trial in 0..300 {
        let (n, c) = (1 + rng.below(6), 2 + rng.below(6));
        // quantised scores make ties in the max common
        let x: Vec<f64> = (0..n * c).map(|_| (rng.uniform(-2.0, 2.0) * 4.0).round() / 4.0).collect();
        let y: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        let margin = rng.uniform(0.0, 2.0);
        let (losses, g) = reference::multiclass_hinge(&x, &y, c, margin);
        let l = MulticlassHinge::new().margin(margin);
        check_against_reference(&format!("trial {trial}"), &mut rng, n, &losses, &g, |r, up, out, grad| {
            l.forward_backward(mat(&x, c), &y, r, up, out, grad).unwrap()
        });
    }
}

#[test]
fn multiclass_hinge_wide_rows_agree_with_reference() {
    // rows longer than the kernel's 8 lanes, with ties for the max across lanes and chunks
    let mut rng = Rng(12);
    for trial in 0..200 {
        let (n, c) = (1 + rng.below(4), 2 + rng.below(70));
        let x: Vec<f64> = (0..n * c).map(|_| (rng.uniform(-2.0, 2.0) * 2.0).round() / 2.0).collect();
        let y: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        let margin = rng.uniform(0.0, 2.0);
        let (losses, g) = reference::multiclass_hinge(&x, &y, c, margin);
        let l = MulticlassHinge::new().margin(margin);
        check_against_reference(&format!("trial {trial}"), &mut rng, n, &losses, &g, |r, up, out, grad| {
            l.forward_backward(mat(&x, c), &y, r, up, out, grad).unwrap()
        });
    }
}

#[test]
fn multilabel_margin_fused_equals_reference() {
    let mut rng = Rng(3);
    for trial in 0..300 {
        let (n, c) = (1 + rng.below(6), 1 + rng.below(8));
        let x = rng.vec(n * c, -2.0, 2.0);
        let t: Vec<i64> = (0..n).flat_map(|_| rng.label_row(c)).collect();
        let (losses, g) = reference::multilabel_margin(&x, &t, c);
        check_against_reference(&format!("trial {trial}"), &mut rng, n, &losses, &g, |r, up, out, grad| {
            MultilabelMargin::new().forward_backward(mat(&x, c), &t, r, up, out, grad).unwrap()
        });
    }
}

#[test]
fn multilabel_margin_wide_rows_use_the_heap_mask_and_agree_with_reference() {
    // C > 4096 takes the heap bitset path.
    let mut rng = Rng(4);
    let (n, c) = (2, 5000);
    let x = rng.vec(n * c, -1.0, 1.0);
    let mut t = vec![-1i64; n * c];
    t[..3].copy_from_slice(&[4999, 70, 4096]);
    t[c..c + 2].copy_from_slice(&[0, 4095]);
    let (losses, g) = reference::multilabel_margin(&x, &t, c);
    check_against_reference("wide", &mut rng, n, &losses, &g, |r, up, out, grad| {
        MultilabelMargin::new().forward_backward(mat(&x, c), &t, r, up, out, grad).unwrap()
    });
}

// ------------------------------------------------------------------------------------
// finite differences

const H: f64 = 1e-6;
const AWAY: f64 = 1e-3;

/// Central differences of `f` (the summed loss) at `x`, compared with `grad`.
fn check_fd(what: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
    let scale = grad.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    let mut xp = x.to_vec();
    for k in 0..x.len() {
        xp[k] = x[k] + H;
        let fp = f(&xp);
        xp[k] = x[k] - H;
        let fm = f(&xp);
        xp[k] = x[k];
        let fd = (fp - fm) / (2.0 * H);
        assert!(
            (fd - grad[k]).abs() <= 1e-6 * scale,
            "{what}: d/dx[{k}] fd {fd:e} vs analytic {:e}",
            grad[k]
        );
    }
}

/// Redraws a row until `kinks(row)` (the hinge arguments and other non-differentiable
/// gaps) are all at least `AWAY` from 0.
fn draw_row(rng: &mut Rng, c: usize, kinks: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    loop {
        let row = rng.vec(c, -2.0, 2.0);
        if kinks(&row).iter().all(|z| z.abs() > AWAY) {
            return row;
        }
    }
}

#[test]
fn multi_margin_gradient_matches_finite_differences() {
    let mut rng = Rng(5);
    for trial in 0..60 {
        let (n, c) = (1 + rng.below(5), 2 + rng.below(6));
        let p = 1 + (trial % 2) as u32;
        let margin = rng.uniform(0.2, 1.5);
        let w = rng.vec(c, 0.1, 2.0);
        let weight = if trial % 3 == 0 { None } else { Some(&w[..]) };
        let y: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        let x: Vec<f64> = y
            .iter()
            .flat_map(|&y| {
                draw_row(&mut rng, c, |r| {
                    (0..c).filter(|&i| i != y as usize).map(|i| margin - r[y as usize] + r[i]).collect()
                })
            })
            .collect();
        let l = MultiMargin::new().p(f64::from(p)).margin(margin);
        for r in [Reduction::Sum, Reduction::Mean] {
            let (mut out, mut g) = ([0.0], vec![0.0; x.len()]);
            l.forward_backward(mat(&x, c), &y, weight, r, &[1.0], &mut out, &mut g).unwrap();
            check_fd(&format!("trial {trial} {r:?}"), &x, &g, |x| {
                l.forward(mat(x, c), &y, weight, r).unwrap().scalar().unwrap()
            });
        }
    }
}

#[test]
fn multiclass_hinge_gradient_matches_finite_differences() {
    let mut rng = Rng(6);
    for trial in 0..60 {
        let (n, c) = (1 + rng.below(5), 2 + rng.below(6));
        let margin = rng.uniform(0.2, 1.5);
        let y: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        let x: Vec<f64> = y
            .iter()
            .flat_map(|&y| {
                let y = y as usize;
                draw_row(&mut rng, c, |r| {
                    let mut others: Vec<f64> = (0..c).filter(|&j| j != y).map(|j| r[j]).collect();
                    others.sort_by(|a, b| b.total_cmp(a));
                    let mut k = vec![margin + others[0] - r[y]];
                    if others.len() > 1 {
                        k.push(others[0] - others[1]); // a tie for the max
                    }
                    k
                })
            })
            .collect();
        let l = MulticlassHinge::new().margin(margin);
        for r in [Reduction::Sum, Reduction::Mean] {
            let (mut out, mut g) = ([0.0], vec![0.0; x.len()]);
            l.forward_backward(mat(&x, c), &y, r, &[1.0], &mut out, &mut g).unwrap();
            check_fd(&format!("trial {trial} {r:?}"), &x, &g, |x| {
                l.forward(mat(x, c), &y, r).unwrap().scalar().unwrap()
            });
        }
    }
}

#[test]
fn multilabel_margin_gradient_matches_finite_differences() {
    let mut rng = Rng(7);
    for trial in 0..60 {
        let (n, c) = (1 + rng.below(5), 2 + rng.below(6));
        let t: Vec<i64> = (0..n).flat_map(|_| rng.label_row(c)).collect();
        let x: Vec<f64> = t
            .chunks_exact(c)
            .flat_map(|row| {
                let labels: Vec<usize> = row.iter().take_while(|&&v| v >= 0).map(|&v| v as usize).collect();
                draw_row(&mut rng, c, |r| {
                    let mut k = Vec::new();
                    for &j in &labels {
                        for i in (0..c).filter(|i| !labels.contains(i)) {
                            k.push(1.0 - r[j] + r[i]);
                        }
                    }
                    k
                })
            })
            .collect();
        for r in [Reduction::Sum, Reduction::Mean] {
            let (mut out, mut g) = ([0.0], vec![0.0; x.len()]);
            MultilabelMargin::new().forward_backward(mat(&x, c), &t, r, &[1.0], &mut out, &mut g).unwrap();
            check_fd(&format!("trial {trial} {r:?}"), &x, &g, |x| {
                MultilabelMargin::new().forward(mat(x, c), &t, r).unwrap().scalar().unwrap()
            });
        }
    }
}
