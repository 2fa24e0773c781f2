//! A plain reference for the batch losses: every tuple enumerated, every distance and its
//! gradient computed directly from the two rows (no Gram matrix), in f64. Slow (N·M² for
//! the triplets) and obvious; the fused kernels are held equal to it.
#![allow(dead_code, clippy::type_complexity, clippy::needless_range_loop)]

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    All,
    Hard,
    Semi,
    Pair,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    Euclid,
    Sq,
    Cos,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Red {
    Mean,
    MeanNonzero,
    Sum,
    None,
}

#[derive(Clone, Copy, Debug)]
pub struct Cfg {
    pub kind: Kind,
    pub margin: f64,
    pub pos_margin: f64,
    pub neg_margin: f64,
    pub soft: bool,
    pub dist: Dist,
    pub normalize: bool,
    pub red: Red,
    /// torch-compat (PML zero loss; TFA for semi-hard)
    pub compat: bool,
    /// TFA fallbacks for batch-hard (with compat)
    pub tfa: bool,
}

impl Cfg {
    pub fn new(kind: Kind) -> Self {
        Cfg {
            kind,
            margin: 0.3,
            pos_margin: 0.2,
            neg_margin: 1.2,
            soft: false,
            dist: Dist::Euclid,
            normalize: false,
            red: Red::Mean,
            compat: false,
            tfa: false,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// d(a, b) and (∂d/∂a, ∂d/∂b).
fn dist(kind: Dist, a: &[f64], b: &[f64], same: bool) -> (f64, Vec<f64>, Vec<f64>) {
    let dim = a.len();
    if same {
        return (0.0, vec![0.0; dim], vec![0.0; dim]);
    }
    match kind {
        Dist::Euclid | Dist::Sq => {
            let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
            let s = dot(&diff, &diff);
            if kind == Dist::Sq {
                let ga: Vec<f64> = diff.iter().map(|v| 2.0 * v).collect();
                let gb = ga.iter().map(|v| -v).collect();
                (s, ga, gb)
            } else {
                let d = s.sqrt();
                if d == 0.0 {
                    return (0.0, vec![0.0; dim], vec![0.0; dim]);
                }
                let ga: Vec<f64> = diff.iter().map(|v| v / d).collect();
                let gb = ga.iter().map(|v| -v).collect();
                (d, ga, gb)
            }
        }
        Dist::Cos => {
            let eps = 1e-8;
            let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
            let (ca, cb) = (na.max(eps), nb.max(eps));
            let cos = dot(a, b) / (ca * cb);
            let ka = if na > 0.0 { cos / (ca * na) } else { 0.0 };
            let kb = if nb > 0.0 { cos / (cb * nb) } else { 0.0 };
            // d = 1 − cos
            let ga = (0..dim).map(|i| -(b[i] / (ca * cb) - ka * a[i])).collect();
            let gb = (0..dim).map(|i| -(a[i] / (ca * cb) - kb * b[i])).collect();
            (1.0 - cos, ga, gb)
        }
    }
}

fn hinge(v: f64, soft: bool) -> (f64, f64) {
    if soft {
        let l = v.max(0.0) + (-v.abs()).exp().ln_1p();
        (l, 1.0 / (1.0 + (-v).exp()))
    } else if v > 0.0 {
        (v, 1.0)
    } else {
        (0.0, 0.0)
    }
}

fn normalize_rows(x: &[f64], dim: usize) -> Vec<f64> {
    x.chunks(dim.max(1))
        .flat_map(|r| {
            let n = dot(r, r).sqrt().max(1e-12);
            r.iter().map(move |v| v / n).collect::<Vec<_>>()
        })
        .collect()
}

fn normalize_back(g: &[f64], x: &[f64], dim: usize) -> Vec<f64> {
    let mut out = vec![0.0; g.len()];
    for i in 0..x.len() / dim {
        let r = &x[i * dim..(i + 1) * dim];
        let gr = &g[i * dim..(i + 1) * dim];
        let n = dot(r, r).sqrt();
        if n > 1e-12 {
            let xh: Vec<f64> = r.iter().map(|v| v / n).collect();
            let gd = dot(gr, &xh);
            for k in 0..dim {
                out[i * dim + k] = (gr[k] - gd * xh[k]) / n;
            }
        } else {
            for k in 0..dim {
                out[i * dim + k] = gr[k] / 1e-12;
            }
        }
    }
    out
}

pub struct RefOut {
    pub out: Vec<f64>,
    pub grad: Vec<f64>,
    pub grad_ref: Vec<f64>,
    pub tuples: u64,
    pub active: u64,
}

/// The loss, `∂(Σ upstream·out)/∂x` and `∂/∂reference`.
pub fn reference(
    cfg: &Cfg,
    x: &[f64],
    dim: usize,
    labels: &[i64],
    refset: Option<(&[f64], &[i64])>,
    upstream: &[f64],
) -> RefOut {
    let n = labels.len();
    let xs = if cfg.normalize { normalize_rows(x, dim) } else { x.to_vec() };
    let (rs, rl, m, self_ref) = match refset {
        Some((r, rl)) => {
            (if cfg.normalize { normalize_rows(r, dim) } else { r.to_vec() }, rl, rl.len(), false)
        }
        None => (xs.clone(), labels, n, true),
    };
    let row = |v: &[f64], i: usize| v[i * dim..(i + 1) * dim].to_vec();
    let d = |i: usize, j: usize| dist(cfg.dist, &row(&xs, i), &row(&rs, j), self_ref && i == j);
    // terms: (class, anchor, loss, [(j, dl/dd_ij)])
    let mut terms: Vec<(usize, usize, f64, Vec<(usize, f64)>)> = Vec::new();
    let mut pos_pairs = 0;
    for a in 0..n {
        let dr: Vec<f64> = (0..m).map(|j| d(a, j).0).collect();
        let pos: Vec<usize> = (0..m).filter(|&j| rl[j] == labels[a] && !(self_ref && j == a)).collect();
        let neg: Vec<usize> = (0..m).filter(|&j| rl[j] != labels[a]).collect();
        pos_pairs += pos.len();
        match cfg.kind {
            Kind::All => {
                for &p in &pos {
                    for &q in &neg {
                        let (l, g) = hinge(dr[p] - dr[q] + cfg.margin, cfg.soft);
                        terms.push((0, a, l, vec![(p, g), (q, -g)]));
                    }
                }
            }
            Kind::Hard => {
                let argmax = |s: &[usize]| {
                    s.iter().copied().fold(None, |b: Option<usize>, j| match b {
                        Some(k) if dr[k] >= dr[j] => Some(k),
                        _ => Some(j),
                    })
                };
                let argmin = |s: &[usize]| {
                    s.iter().copied().fold(None, |b: Option<usize>, j| match b {
                        Some(k) if dr[k] <= dr[j] => Some(k),
                        _ => Some(j),
                    })
                };
                let all: Vec<usize> = (0..m).collect();
                let tfa = cfg.compat && cfg.tfa;
                let (p, q) = (argmax(&pos), argmin(&neg));
                let (p, q) = match (p, q) {
                    (Some(p), Some(q)) => (p, q),
                    _ if tfa => (
                        p.unwrap_or_else(|| argmin(&all).unwrap()),
                        q.unwrap_or_else(|| argmax(&all).unwrap()),
                    ),
                    _ => continue,
                };
                let margin = if cfg.soft { 0.0 } else { cfg.margin };
                let (l, g) = hinge(dr[p] - dr[q] + margin, cfg.soft);
                terms.push((0, a, l, vec![(p, g), (q, -g)]));
            }
            Kind::Semi => {
                let far = neg.iter().copied().fold(None, |b: Option<usize>, j| match b {
                    Some(k) if dr[k] >= dr[j] => Some(k),
                    _ => Some(j),
                });
                let far = match far {
                    Some(f) => f,
                    None if cfg.compat => (0..m).fold(0, |k, j| if dr[j] < dr[k] { j } else { k }),
                    None => continue,
                };
                for &p in &pos {
                    let near =
                        neg.iter().copied().filter(|&q| dr[q] > dr[p]).fold(None, |b: Option<usize>, j| {
                            match b {
                                Some(k) if dr[k] <= dr[j] => Some(k),
                                _ => Some(j),
                            }
                        });
                    let q = near.unwrap_or(far);
                    let (l, g) = hinge(dr[p] - dr[q] + cfg.margin, false);
                    terms.push((0, a, l, vec![(p, g), (q, -g)]));
                }
            }
            Kind::Pair => {
                for j in 0..m {
                    if self_ref && j == a {
                        continue;
                    }
                    if rl[j] == labels[a] {
                        let (l, g) = hinge(dr[j] - cfg.pos_margin, false);
                        terms.push((0, a, l, vec![(j, g)]));
                    } else {
                        let (l, g) = hinge(cfg.neg_margin - dr[j], false);
                        terms.push((1, a, l, vec![(j, -g)]));
                    }
                }
            }
        }
    }
    let classes = if cfg.kind == Kind::Pair { 2 } else { 1 };
    let mut tuples = [0u64; 2];
    let mut active = [0u64; 2];
    let mut sums = [0.0f64; 2];
    for t in &terms {
        tuples[t.0] += 1;
        active[t.0] += u64::from(t.2 > 0.0);
        sums[t.0] += t.2;
    }
    let mut per_anchor = vec![0.0; n];
    for t in &terms {
        per_anchor[t.1] += t.2;
    }
    let quirk = cfg.compat && cfg.kind == Kind::Pair && tuples[0] <= 1 && tuples[1] <= 1;
    let mut scale = [1.0f64; 2];
    let out = match cfg.red {
        Red::None => {
            if quirk {
                scale = [0.0; 2];
                vec![0.0; n]
            } else {
                per_anchor
            }
        }
        _ => {
            let mut v = 0.0;
            for c in 0..classes {
                let div = match cfg.red {
                    Red::Mean => tuples[c],
                    Red::MeanNonzero => active[c],
                    _ => 1,
                };
                if div == 0 {
                    scale[c] = 0.0;
                } else {
                    v += sums[c] / div as f64;
                    scale[c] = 1.0 / div as f64;
                }
            }
            if cfg.red == Red::Mean && cfg.kind == Kind::Semi && cfg.compat && tuples[0] == 0 {
                v = f64::NAN;
                scale = [f64::NAN; 2];
            }
            if quirk {
                v = 0.0;
                scale = [0.0; 2];
            }
            if classes == 1 {
                scale[1] = scale[0];
            }
            scale = [scale[0] * upstream[0], scale[1] * upstream[0]];
            vec![v]
        }
    };
    let mut gq = vec![0.0; n * dim];
    let mut gr = vec![0.0; m * dim];
    for (c, a, _l, parts) in &terms {
        let ga = if cfg.red == Red::None {
            upstream[if upstream.len() == 1 { 0 } else { *a }] * scale[*c]
        } else {
            scale[*c]
        };
        for &(j, g) in parts {
            if g == 0.0 || ga == 0.0 {
                continue;
            }
            let (_, da, dj) = d(*a, j);
            for k in 0..dim {
                gq[a * dim + k] += ga * g * da[k];
                if self_ref {
                    gq[j * dim + k] += ga * g * dj[k];
                } else {
                    gr[j * dim + k] += ga * g * dj[k];
                }
            }
        }
    }
    if scale.iter().any(|s| s.is_nan()) {
        gq.iter_mut().for_each(|v| *v = f64::NAN);
        gr.iter_mut().for_each(|v| *v = f64::NAN);
    }
    if cfg.normalize {
        gq = normalize_back(&gq, x, dim);
        if let Some((r, _)) = refset {
            gr = normalize_back(&gr, r, dim);
        }
    }
    let _ = pos_pairs;
    RefOut { out, grad: gq, grad_ref: gr, tuples: tuples[0] + tuples[1], active: active[0] + active[1] }
}
