//! The losses as compositions of plain candle ops, with the same semantics (values,
//! gradients, the [`Kink`] convention, torch's detached norm clamp) as the fused ops.
//!
//! These are what the crate's functions run on devices other than the CPU; they run on
//! any device, and the tests hold them equal to the fused path on CPU. Sums are
//! accumulated in the tensor's dtype here (the fused kernels accumulate in `f64`), so
//! reduced results can differ from the fused ones in the last bits.
//!
//! Each function has the loss's name and the arguments of the crate's `*_with` function
//! (`composed::hinge(&x, &y, Hinge::new(), Reduction::Mean)` is
//! [`crate::hinge_with`] as candle ops). Every one first checks its arguments against the
//! core's description of the loss ([`marginloss::op`]: shapes, dtypes, integer labels
//! converted), so an unsupported dtype is an error here too, in both modes.
//!
//! In [`Mode::Strict`] each function first validates its inputs by running the core's
//! checks on a host copy (a device-to-host transfer); in [`Mode::TorchCompat`] it stays
//! on the device.

use crate::op::checked;
use candle_core::{DType, Device, Result, Tensor, D};
use marginloss::op::Signature;
use marginloss::Rows;
use marginloss::{
    CosineSimilarity, Distance, Hinge, HingeEmbedding, Kink, Labels, MarginRanking, Mode,
    MultilabelSoftMargin, PairwiseDistance, Reduction, SoftMargin, SquaredHinge,
};

/// Checks `args` against the loss's description (shapes, one device, dtypes: an
/// unsupported dtype is an error here, in both modes) and converts integer labels to the
/// input's dtype; the arguments to compute with.
fn described<L: Signature>(loss: &L, reduction: Reduction, args: &[&Tensor]) -> Result<Vec<Tensor>> {
    Ok(checked(loss, reduction, args)?.0)
}

/// Runs `check` on detached host copies of `args` when `mode` is strict.
fn validate(mode: Mode, args: &[&Tensor], check: impl FnOnce(&[&Tensor]) -> Result<Tensor>) -> Result<()> {
    if mode == Mode::Strict {
        let host: Vec<Tensor> =
            args.iter().map(|t| t.detach().to_device(&Device::Cpu)).collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = host.iter().collect();
        check(&refs)?;
    }
    Ok(())
}

/// Runs `f` in f32 when the input is f16/bf16 (casting float arguments up and the
/// result back), else as is.
fn in_f32(args: &[Option<&Tensor>], f: impl FnOnce(&[Option<Tensor>]) -> Result<Tensor>) -> Result<Tensor> {
    let dt = args[0].map_or(DType::F32, Tensor::dtype);
    let half = matches!(dt, DType::F16 | DType::BF16);
    let cast: Vec<Option<Tensor>> = args
        .iter()
        .map(|t| match t {
            Some(t) if half && matches!(t.dtype(), DType::F16 | DType::BF16) => {
                t.to_dtype(DType::F32).map(Some)
            }
            Some(t) => Ok(Some((*t).clone())),
            None => Ok(None),
        })
        .collect::<Result<_>>()?;
    let out = f(&cast)?;
    if half {
        out.to_dtype(dt)
    } else {
        Ok(out)
    }
}

fn some(t: &Option<Tensor>) -> &Tensor {
    t.as_ref().expect("argument present")
}

/// The reduction of per-element losses.
fn reduce(l: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::None => Ok(l),
        Reduction::Mean => l.mean_all(),
        Reduction::Sum => l.sum_all(),
    }
}

/// The ±1 value of a (detached) target.
fn decode(t: &Tensor, labels: Labels) -> Result<Tensor> {
    let t = t.detach();
    match labels {
        Labels::PlusMinusOne => Ok(t),
        Labels::ZeroOne => t.affine(2.0, -1.0),
    }
}

/// `max(0, u)` with value as torch's `clamp_min(u, 0)` (NaN propagates) and derivative
/// 1 for `u > 0`, 0 for `u < 0`, and at `u = 0` the value `kink` chooses.
fn relu(u: &Tensor, kink: Kink) -> Result<Tensor> {
    let zero = u.zeros_like()?;
    // u ≤ 0 → 0, else u (for NaN the comparison is false, so NaN is kept).
    let v = u.le(0.0)?.where_cond(&zero, u)?;
    let at_kink = match kink {
        Kink::Zero => return Ok(v),
        Kink::Half => 0.5,
        Kink::One => 1.0,
    };
    // Exactly at the kink: value u·k = 0, derivative k.
    v + u.eq(0.0)?.where_cond(&(u * at_kink)?, &zero)?
}

/// `softplus(z) = log(1 + exp(z))`, stably: `max(z, 0) + log(1 + exp(−|z|))`.
///
/// At `z = 0` candle differentiates `|z|` as +1, so the second term contributes −½ there;
/// the `max` takes derivative 1 at its kink so that the sum is σ(0) = ½.
fn softplus(z: &Tensor) -> Result<Tensor> {
    let e = z.abs()?.neg()?.exp()?;
    relu(z, Kink::One)? + (e + 1.0)?.log()?
}

/// [`crate::hinge_with`] as candle ops: `max(0, margin − y·x)`.
///
/// # Errors
/// As [`crate::hinge_with`].
pub fn hinge(input: &Tensor, target: &Tensor, loss: Hinge, reduction: Reduction) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    validate(loss.mode, &[input, target], |a| crate::hinge_with(a[0], a[1], loss, reduction))?;
    in_f32(&[Some(input), Some(target)], |a| {
        let y = decode(some(&a[1]), loss.labels)?;
        let u = (y * some(&a[0]))?.affine(-1.0, loss.margin)?;
        reduce(relu(&u, loss.kink)?, reduction)
    })
}

/// [`crate::squared_hinge_with`] as candle ops: `max(0, margin − y·x)²`.
///
/// # Errors
/// As [`crate::squared_hinge_with`].
pub fn squared_hinge(
    input: &Tensor,
    target: &Tensor,
    loss: SquaredHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    validate(loss.mode, &[input, target], |a| crate::squared_hinge_with(a[0], a[1], loss, reduction))?;
    in_f32(&[Some(input), Some(target)], |a| {
        let y = decode(some(&a[1]), loss.labels)?;
        let u = (y * some(&a[0]))?.affine(-1.0, loss.margin)?;
        reduce(relu(&u, Kink::Zero)?.sqr()?, reduction)
    })
}

/// [`crate::hinge_embedding_with`] as candle ops, as torch composes it:
/// `where(y ≠ 1, max(0, margin − x), 0) + where(y ≠ −1, x, 0)`.
///
/// # Errors
/// As [`crate::hinge_embedding_with`].
pub fn hinge_embedding(
    input: &Tensor,
    target: &Tensor,
    loss: HingeEmbedding,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    validate(loss.mode, &[input, target], |a| crate::hinge_embedding_with(a[0], a[1], loss, reduction))?;
    in_f32(&[Some(input), Some(target)], |a| {
        let x = some(&a[0]);
        let y = decode(some(&a[1]), loss.labels)?;
        let zero = x.zeros_like()?;
        let neg = relu(&x.affine(-1.0, loss.margin)?, loss.kink)?;
        let neg = y.ne(1.0)?.where_cond(&neg, &zero)?;
        let pos = y.ne(-1.0)?.where_cond(x, &zero)?;
        reduce((neg + pos)?, reduction)
    })
}

/// [`crate::soft_margin_with`] as candle ops: `softplus(−y·x)`, stably.
///
/// # Errors
/// As [`crate::soft_margin_with`].
pub fn soft_margin(
    input: &Tensor,
    target: &Tensor,
    loss: SoftMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    validate(loss.mode, &[input, target], |a| crate::soft_margin_with(a[0], a[1], loss, reduction))?;
    in_f32(&[Some(input), Some(target)], |a| {
        let y = decode(some(&a[1]), loss.labels)?;
        let z = (y * some(&a[0]))?.neg()?;
        reduce(softplus(&z)?, reduction)
    })
}

/// [`crate::margin_ranking_with`] as candle ops: `max(0, −y·(x1 − x2) + margin)`.
///
/// # Errors
/// As [`crate::margin_ranking_with`].
pub fn margin_ranking(
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: MarginRanking,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input1, input2, target])?;
    let (input1, input2, target) = (&a[0], &a[1], &a[2]);
    validate(loss.mode, &[input1, input2, target], |a| {
        crate::margin_ranking_with(a[0], a[1], a[2], loss, reduction)
    })?;
    in_f32(&[Some(input1), Some(input2), Some(target)], |a| {
        let y = decode(some(&a[2]), loss.labels)?;
        let u = (y * (some(&a[0]) - some(&a[1]))?)?.affine(-1.0, loss.margin)?;
        reduce(relu(&u, loss.kink)?, reduction)
    })
}

/// `sqrt(s)` whose gradient at `s = 0` is 0 instead of infinite (torch's norm subgradient).
fn safe_sqrt(s: &Tensor) -> Result<Tensor> {
    let z = s.detach().eq(0.0)?.to_dtype(s.dtype())?;
    (s + &z)?.sqrt()? - z
}

/// [`crate::cosine_similarity_with`] as candle ops: `Σ x1·x2 / (max(‖x1‖, eps)·max(‖x2‖, eps))`
/// over the last dimension, the clamp detached as in torch 2.15.
///
/// # Errors
/// As [`crate::cosine_similarity_with`].
pub fn cosine_similarity(x1: &Tensor, x2: &Tensor, f: CosineSimilarity) -> Result<Tensor> {
    validate(f.mode, &[x1, x2], |a| crate::cosine_similarity_with(a[0], a[1], f))?;
    let (x1, x2) = crate::broadcast_pair("cosine_similarity", x1, x2)?;
    let a = described(&f, Reduction::None, &[&x1, &x2])?;
    let (x1, x2) = (&a[0], &a[1]);
    in_f32(&[Some(x1), Some(x2)], |a| {
        let (a, b) = (some(&a[0]), some(&a[1]));
        let clamp = |x: &Tensor| -> Result<Tensor> {
            let n = safe_sqrt(&x.sqr()?.sum(D::Minus1)?)?;
            let c = n.detach().maximum(f.eps)?;
            n.clone() + (c - n.detach())?
        };
        let (c1, c2) = (clamp(a)?, clamp(b)?);
        (a * b)?.sum(D::Minus1)? / (c1 * c2)?
    })
}

/// [`crate::pairwise_distance_with`] as candle ops: `‖x1 − x2 + eps‖_p` over the last
/// dimension (p = 2 and p = 1 as the core; general p through `powf`; p = ∞ as the max,
/// its gradient split evenly among tied entries as the core does).
///
/// # Errors
/// As [`crate::pairwise_distance_with`].
pub fn pairwise_distance(x1: &Tensor, x2: &Tensor, f: PairwiseDistance) -> Result<Tensor> {
    validate(f.mode, &[x1, x2], |a| crate::pairwise_distance_with(a[0], a[1], f))?;
    let (x1, x2) = crate::broadcast_pair("pairwise_distance", x1, x2)?;
    let a = described(&f, Reduction::None, &[&x1, &x2])?;
    let (x1, x2) = (&a[0], &a[1]);
    in_f32(&[Some(x1), Some(x2)], |a| {
        let v = (some(&a[0]) - some(&a[1]))?.affine(1.0, f.eps)?;
        if f.p == 2.0 {
            safe_sqrt(&v.sqr()?.sum(D::Minus1)?)
        } else if f.p == 1.0 {
            v.abs()?.sum(D::Minus1)
        } else if f.p == f64::INFINITY {
            // The max, with its gradient split evenly among tied entries (as the core).
            let abs = v.abs()?;
            let m = abs.detach().max_keepdim(D::Minus1)?;
            let mask = abs.detach().broadcast_eq(&m)?.to_dtype(abs.dtype())?;
            let count = mask.sum_keepdim(D::Minus1)?;
            let share = (abs * mask)?.sum_keepdim(D::Minus1)?.broadcast_div(&count)?;
            (m + (share.clone() - share.detach())?)?.squeeze(D::Minus1)
        } else {
            // s^(1/p) with the gradient 0 (not NaN) where s = 0, as the core.
            let s = v.abs()?.powf(f.p)?.sum(D::Minus1)?;
            let z = s.detach().eq(0.0)?.to_dtype(s.dtype())?;
            (s + &z)?.powf(1.0 / f.p)? - z
        }
    })
}

/// [`crate::multilabel_soft_margin_with`] as candle ops, as torch composes it:
/// `Σ_c w_c·(t·softplus(−x) + (1 − t)·softplus(x)) / C` per row.
///
/// # Errors
/// As [`crate::multilabel_soft_margin_with`].
pub fn multilabel_soft_margin(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    loss: MultilabelSoftMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[&[input, target][..], weight.as_slice()].concat())?;
    let (input, target, weight) = (&a[0], &a[1], a.get(2));
    validate(loss.mode, &[input, target], |a| match weight {
        Some(w) => {
            let w = w.detach().to_device(&Device::Cpu)?;
            crate::multilabel_soft_margin_with(a[0], a[1], Some(&w), loss, reduction)
        }
        None => crate::multilabel_soft_margin_with(a[0], a[1], None, loss, reduction),
    })?;
    in_f32(&[Some(input), Some(target), weight], |a| {
        let x = some(&a[0]);
        let t = some(&a[1]).detach();
        let classes = x.dim(D::Minus1)?;
        let pos = (&t * softplus(&x.neg()?)?)?;
        let neg = (t.affine(-1.0, 1.0)? * softplus(x)?)?;
        let mut l = (pos + neg)?;
        if let Some(w) = &a[2] {
            l = l.broadcast_mul(&w.detach())?;
        }
        let l = (l.sum(D::Minus1)? / classes as f64)?;
        reduce(l, reduction)
    })
}

/// The class-index arguments of a row loss: `input` as `(N, C)` and `target` as i64.
fn as_rows(input: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = if input.rank() == 1 { input.unsqueeze(0)? } else { input.clone() };
    let t = target.detach().to_dtype(DType::I64)?;
    Ok((x, t))
}

/// The per-row result back in the input's layout: `()` for a 1-D input.
fn unrow(l: Tensor, input: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let l = if input.rank() == 1 && reduction == Reduction::None { l.squeeze(0)? } else { l };
    reduce(l, reduction)
}

/// The `(N, C)` one-hot mask (in `dt`) of class indices `y (N,)`.
fn one_hot(y: &Tensor, classes: usize, dt: DType) -> Result<Tensor> {
    let range = Tensor::arange(0i64, classes as i64, y.device())?.unsqueeze(0)?;
    y.reshape(((), 1))?.broadcast_eq(&range)?.to_dtype(dt)
}

/// [`crate::multi_margin_with`] as candle ops, as torch composes it:
/// `Σ_{i ≠ y} w[y]·max(0, margin − x[y] + x[i])^p / C` per row.
///
/// The class indices are always checked on the host (in both modes, as the core does).
///
/// # Errors
/// As [`crate::multi_margin_with`].
pub fn multi_margin(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    loss: marginloss::MultiMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[&[input, target][..], weight.as_slice()].concat())?;
    let (input, target, weight) = (&a[0], &a[1], a.get(2));
    let host = |t: &Tensor| t.detach().to_device(&Device::Cpu);
    let w_host = weight.map(host).transpose()?;
    crate::multi_margin_with(&host(input)?, &host(target)?, w_host.as_ref(), loss, reduction)?;
    in_f32(&[Some(input), weight], |a| {
        let (x, y) = as_rows(some(&a[0]), target)?;
        let classes = x.dim(1)?;
        let dt = x.dtype();
        let xy = x.gather(&y.reshape(((), 1))?, 1)?;
        let z = x.broadcast_sub(&xy)?.affine(1.0, loss.margin)?;
        let mut l = relu(&z, Kink::Zero)?;
        if loss.p == 2.0 {
            l = l.sqr()?;
        }
        let others = one_hot(&y, classes, dt)?.affine(-1.0, 1.0)?;
        l = (l * others)?;
        if let Some(w) = &a[1] {
            let wy = w.detach().index_select(&y, 0)?.reshape(((), 1))?;
            l = l.broadcast_mul(&wy)?;
        }
        let l = (l.sum(1)? / classes as f64)?;
        unrow(l, input, reduction)
    })
}

/// [`crate::multiclass_hinge_with`] as candle ops, as torch composes it:
/// `max(0, margin + s[j*] − s[y])` with `j*` the lowest index of the largest wrong-class
/// score (its gradient goes to that one class).
///
/// The class indices are always checked on the host (in both modes, as the core does).
///
/// # Errors
/// As [`crate::multiclass_hinge_with`].
pub fn multiclass_hinge(
    input: &Tensor,
    target: &Tensor,
    loss: marginloss::MulticlassHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    let host = |t: &Tensor| t.detach().to_device(&Device::Cpu);
    crate::multiclass_hinge_with(&host(input)?, &host(target)?, loss, reduction)?;
    in_f32(&[Some(input)], |a| {
        let (x, y) = as_rows(some(&a[0]), target)?;
        let classes = x.dim(1)?;
        if classes < 2 {
            // Torch-compat: no wrong class, max_other = −inf, loss 0.
            let l = (x.sum(1)? * 0.0)?;
            return unrow(l, input, reduction);
        }
        let dt = x.dtype();
        let is_y = one_hot(&y, classes, dt)?;
        let masked = is_y.ne(0.0)?.where_cond(
            &Tensor::full(f32::NEG_INFINITY, x.shape(), x.device())?.to_dtype(dt)?,
            &x.detach(),
        )?;
        let j = masked.argmax_keepdim(1)?;
        let other = x.gather(&j.to_dtype(DType::I64)?, 1)?;
        let xy = x.gather(&y.reshape(((), 1))?, 1)?;
        let u = (other.affine(1.0, loss.margin)? - xy)?.squeeze(1)?;
        unrow(relu(&u, Kink::Zero)?, input, reduction)
    })
}

/// [`crate::multilabel_margin_with`] as candle ops:
/// `Σ_{j ∈ T} Σ_{i ∉ T} max(0, 1 − x[j] + x[i]) / C` per row, the target read up to its
/// first −1 (a class listed twice counts twice). Uses an `(N, C, C)` intermediate.
///
/// The class indices are always checked on the host (in both modes, as the core does).
///
/// # Errors
/// As [`crate::multilabel_margin_with`].
pub fn multilabel_margin(
    input: &Tensor,
    target: &Tensor,
    loss: marginloss::MultilabelMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input, target])?;
    let (input, target) = (&a[0], &a[1]);
    let host = |t: &Tensor| t.detach().to_device(&Device::Cpu);
    crate::multilabel_margin_with(&host(input)?, &host(target)?, loss, reduction)?;
    in_f32(&[Some(input)], |a| {
        let x = if some(&a[0]).rank() == 1 { some(&a[0]).unsqueeze(0)? } else { some(&a[0]).clone() };
        let t = target.detach().to_dtype(DType::I64)?.reshape(x.shape())?;
        let (n, classes) = x.dims2()?;
        let dt = x.dtype();
        // Entries before the first −1.
        let valid = t.eq(-1.0)?.to_dtype(dt)?.cumsum(1)?.eq(0.0)?.to_dtype(dt)?;
        // count[n, c]: how often class c is listed.
        let range = Tensor::arange(0i64, classes as i64, x.device())?.reshape((1, 1, classes))?;
        let hits = t.unsqueeze(2)?.broadcast_eq(&range)?.to_dtype(dt)?;
        let count = hits.broadcast_mul(&valid.unsqueeze(2)?)?.sum(1)?;
        let non_target = count.eq(0.0)?.to_dtype(dt)?;
        // z[n, j, i] = 1 − x[j] + x[i], weighted by count[j]·[i ∉ T].
        let z = x.unsqueeze(1)?.broadcast_sub(&x.unsqueeze(2)?)?.affine(1.0, 1.0)?;
        let w = count.unsqueeze(2)?.broadcast_mul(&non_target.unsqueeze(1)?)?;
        let l = (relu(&z, Kink::Zero)? * w.broadcast_as((n, classes, classes))?)?.sum((1, 2))?;
        unrow((l / classes as f64)?, input, reduction)
    })
}

/// ATen's `EPSILON` in `cosine_embedding_loss`: a C++ `float` 1e-12.
const COSINE_EMBEDDING_EPS: f64 = 1e-12_f32 as f64;

/// [`crate::cosine_embedding_with`] as candle ops, as ATen composes it:
/// `cos = Σ x1·x2 / sqrt((Σ x1² + EPS)(Σ x2² + EPS))`, then
/// `where(y == 1, 1 − cos, 0) + where(y == −1, max(0, cos − margin), 0)` (so a target that
/// is neither contributes 0 in torch-compat mode).
///
/// # Errors
/// As [`crate::cosine_embedding_with`].
pub fn cosine_embedding(
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: marginloss::CosineEmbedding,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input1, input2, target])?;
    let (input1, input2, target) = (&a[0], &a[1], &a[2]);
    validate(loss.mode, &[input1, input2, target], |a| {
        crate::cosine_embedding_with(a[0], a[1], a[2], loss, reduction)
    })?;
    in_f32(&[Some(input1), Some(input2), Some(target)], |a| {
        let (x1, x2) = (some(&a[0]), some(&a[1]));
        let y = decode(some(&a[2]), loss.labels)?.flatten_all()?;
        let prod = (x1 * x2)?.sum(D::Minus1)?.flatten_all()?;
        let m1 = x1.sqr()?.sum(D::Minus1)?.affine(1.0, COSINE_EMBEDDING_EPS)?.flatten_all()?;
        let m2 = x2.sqr()?.sum(D::Minus1)?.affine(1.0, COSINE_EMBEDDING_EPS)?.flatten_all()?;
        let cos = (prod / (m1 * m2)?.sqrt()?)?;
        let zero = cos.zeros_like()?;
        let pos = y.eq(1.0)?.where_cond(&cos.affine(-1.0, 1.0)?, &zero)?;
        let neg = relu(&cos.affine(1.0, -loss.margin)?, loss.kink)?;
        let neg = y.eq(-1.0)?.where_cond(&neg, &zero)?;
        let l = (pos + neg)?;
        let l = if x1.rank() == 1 && reduction == Reduction::None { l.squeeze(0)? } else { l };
        reduce(l, reduction)
    })
}

/// [`crate::contrastive_with`] as candle ops, as the torch composition of the fixtures:
/// `d = pairwise_distance(x1, x2)`, `where(y == 1, ½·d², ½·max(0, margin − d)²)`.
///
/// # Errors
/// As [`crate::contrastive_with`].
pub fn contrastive(
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: marginloss::Contrastive,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[input1, input2, target])?;
    let (input1, input2, target) = (&a[0], &a[1], &a[2]);
    validate(loss.mode, &[input1, input2, target], |a| {
        crate::contrastive_with(a[0], a[1], a[2], loss, reduction)
    })?;
    in_f32(&[Some(input1), Some(input2), Some(target)], |a| {
        let d = pairwise_distance(some(&a[0]), some(&a[1]), PairwiseDistance::new().mode(Mode::TorchCompat))?;
        let d = d.flatten_all()?;
        let y = decode(some(&a[2]), loss.labels)?.flatten_all()?;
        let pos = (d.sqr()? * 0.5)?;
        let neg = (relu(&d.affine(-1.0, loss.margin)?, Kink::Zero)?.sqr()? * 0.5)?;
        let l = y.eq(1.0)?.where_cond(&pos, &neg)?;
        let l = if some(&a[0]).rank() == 1 && reduction == Reduction::None { l.squeeze(0)? } else { l };
        reduce(l, reduction)
    })
}

/// `min(x, y)` with torch's `minimum` gradient: all to the smaller, split 0.5 / 0.5 at an
/// exact tie (whatever candle's own `minimum` backward does).
fn min_split(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let tie = ((x + y)? * 0.5)?;
    let lt = x.detach().lt(&y.detach())?;
    let gt = x.detach().gt(&y.detach())?;
    lt.where_cond(x, &gt.where_cond(y, &tie)?)
}

/// The triplet loss on given distances: `max(0, margin + dp − dn)` with the swap.
#[allow(clippy::too_many_arguments)]
fn triplet(
    d: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    a: &Tensor,
    p: &Tensor,
    n: &Tensor,
    margin: f64,
    swap: bool,
    kink: Kink,
    reduction: Reduction,
) -> Result<Tensor> {
    let dp = d(a, p)?;
    let mut dn = d(a, n)?;
    if swap {
        dn = min_split(&dn, &d(p, n)?)?;
    }
    let l = relu(&(dp.affine(1.0, margin)? - dn)?, kink)?;
    reduce(l, reduction)
}

/// [`crate::triplet_margin_with`] as candle ops, as torch composes it: `pairwise_distance`
/// (eps added to the difference) for `d(a, p)`, `d(a, n)` (and `d(p, n)` with `swap`, the
/// minimum's gradient split at ties), then `max(0, margin + d(a, p) − d(a, n))`.
///
/// # Errors
/// As [`crate::triplet_margin_with`].
pub fn triplet_margin(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    loss: marginloss::TripletMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[anchor, positive, negative])?;
    let (anchor, positive, negative) = (&a[0], &a[1], &a[2]);
    validate(loss.mode, &[anchor, positive, negative], |a| {
        crate::triplet_margin_with(a[0], a[1], a[2], loss, reduction)
    })?;
    // The options the core rejects in both modes (a margin that is not > 0).
    let none = Rows::new(&[], 0, 1).map_err(crate::op::core_err)?;
    loss.mode(Mode::TorchCompat)
        .forward::<f64>(none, none, none, Reduction::Sum)
        .map_err(crate::op::core_err)?;
    let f = PairwiseDistance::new().p(loss.p).eps(loss.eps).mode(Mode::TorchCompat);
    in_f32(&[Some(anchor), Some(positive), Some(negative)], |x| {
        let d = |u: &Tensor, v: &Tensor| pairwise_distance(u, v, f);
        let (a, p, n) = (some(&x[0]), some(&x[1]), some(&x[2]));
        triplet(&d, a, p, n, loss.margin, loss.swap, loss.kink, reduction)
    })
}

/// [`crate::triplet_margin_with_distance_with`] as candle ops: the distance's
/// [`composed`](crate::CandleDistance::composed) form, then as [`triplet_margin`].
///
/// # Errors
/// As [`crate::triplet_margin_with_distance_with`]; a distance without a composition.
pub fn triplet_margin_with_distance<Dist: crate::CandleDistance>(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    loss: marginloss::TripletMarginWithDistance<Dist>,
    reduction: Reduction,
) -> Result<Tensor> {
    let a = described(&loss, reduction, &[anchor, positive, negative])?;
    let (anchor, positive, negative) = (&a[0], &a[1], &a[2]);
    validate(loss.mode, &[anchor, positive, negative], |a| {
        crate::triplet_margin_with_distance_with(a[0], a[1], a[2], loss.clone(), reduction)
    })?;
    // The options the core rejects in both modes (a margin that is not > 0).
    let compat = loss.clone().mode(Mode::TorchCompat);
    let none = Rows::new(&[], 0, 1).map_err(crate::op::core_err)?;
    compat.forward::<f64>(none, none, none, Reduction::Sum).map_err(crate::op::core_err)?;
    in_f32(&[Some(anchor), Some(positive), Some(negative)], |x| {
        let d = |u: &Tensor, v: &Tensor| match loss.distance.composed(u, v) {
            Some(r) => r,
            None => candle_core::bail!(
                "triplet_margin_with_distance: the distance {} has no candle-op composition",
                Distance::<f32>::name(&loss.distance)
            ),
        };
        let (a, p, n) = (some(&x[0]), some(&x[1]), some(&x[2]));
        triplet(&d, a, p, n, loss.margin, loss.swap, loss.kink, reduction)
    })
}
