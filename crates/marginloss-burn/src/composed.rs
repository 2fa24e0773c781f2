//! The losses as compositions of plain burn tensor ops, with the same semantics (values,
//! gradients, the [`Kink`] convention, torch's detached norm clamp, the swap's tie split)
//! as the fused ops.
//!
//! These are what the crate's functions run on backends other than Flex; they run on any
//! backend (burn's autodiff differentiates them), and the tests hold them equal to the
//! fused path on Flex. Sums are accumulated in the tensor's dtype here (the fused kernels
//! accumulate in `f64`), so results can differ from the fused ones in the last bits.
//!
//! Each function checks shapes as the crate's function of the same name does. In
//! [`Mode::Strict`] it first validates its inputs by running the core's checks on a host
//! copy (a device-to-host transfer); in [`Mode::TorchCompat`] it stays on the device. The
//! class-index losses always read their indices on the host (the core checks them in both
//! modes, and burn's `gather` has no defined result for an index out of range).

use burn::tensor::{DType, Int, Tensor, TensorData};
use marginloss::Rows;
use marginloss::{
    Contrastive, CosineEmbedding, CosineSimilarity, Hinge, HingeEmbedding, Kink, Labels, MarginRanking, Mode,
    MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, PairwiseDistance, Reduction,
    Result, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};

use marginloss::op::Signature;

use crate::{checks, is_native, BurnDistance};

/// A tensor's values on the host, as f64 (exact for every float dtype).
fn host<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    t.to_data().try_into_vec_as::<f64>().unwrap_or_default()
}

/// A float tensor's values on the host with its shape as rows of its last dimension
/// (every leading dimension counts rows, as in the loss's description).
struct HostRows {
    data: Vec<f64>,
    rows: usize,
    cols: usize,
}

impl HostRows {
    fn of<const D: usize>(t: &Tensor<D>) -> Self {
        let dims = t.dims();
        let (lead, last) = dims.split_at(D.saturating_sub(1));
        Self { data: host(t), rows: lead.iter().product(), cols: last.first().copied().unwrap_or(1) }
    }

    fn view(&self) -> Result<Rows<'_, f64>> {
        Rows::new(&self.data, self.rows, self.cols)
    }
}

/// No rows: for the option checks the core makes in both modes.
fn no_rows() -> Result<Rows<'static, f64>> {
    Rows::new(&[], 0, 1)
}

/// A class-index tensor's values on the host.
fn host_i64<const D: usize>(t: &Tensor<D, Int>) -> Vec<i64> {
    t.to_data().try_into_vec_as::<i64>().unwrap_or_default()
}

/// Runs `check` (the core on host copies) when `mode` is strict, and in either mode when
/// `first` (the loss's first input) has no elements: the core's rules for empty and
/// zero-width rows hold in both modes, and there is no work to save.
fn validate<const D: usize>(mode: Mode, first: &Tensor<D>, check: impl FnOnce() -> Result<()>) -> Result<()> {
    if mode == Mode::Strict || first.shape().num_elements() == 0 {
        check()?;
    }
    Ok(())
}

/// `t` in f32 when `dt` is a dtype the kernels compute in f32 (f16, bf16, …).
fn up<const D: usize>(t: Tensor<D>, dt: DType) -> Tensor<D> {
    if is_native(dt) {
        t
    } else {
        t.cast(DType::F32)
    }
}

/// The result back in the input's dtype `dt`.
fn down<const D: usize>(t: Tensor<D>, dt: DType) -> Tensor<D> {
    if t.dtype() == dt {
        t
    } else {
        t.cast(dt)
    }
}

/// The reduction of per-element losses: a reduced loss keeps the rank, all dimensions 1.
fn reduce<const D: usize>(l: Tensor<D>, reduction: Reduction) -> Tensor<D> {
    let one = [1usize; D];
    match reduction {
        Reduction::None => l,
        Reduction::Mean => l.mean().reshape(one),
        Reduction::Sum => l.sum().reshape(one),
    }
}

/// The ±1 value of a (detached) target.
fn decode<const D: usize>(t: Tensor<D>, labels: Labels) -> Tensor<D> {
    let t = t.detach();
    match labels {
        Labels::PlusMinusOne => t,
        Labels::ZeroOne => t.mul_scalar(2.0).sub_scalar(1.0),
    }
}

/// `v` with `u`'s NaNs put back, detached: the value NaN where `u` is NaN, the gradient
/// there 0 (torch's `clamp_min` passes no gradient to a NaN).
fn nan_back<const D: usize>(v: Tensor<D>, u: &Tensor<D>) -> Tensor<D> {
    v.mask_where(u.clone().is_nan(), u.clone().detach())
}

/// `u` where `u > 0`, else 0 (gradient 0 there); NaN stays NaN, with gradient 0.
fn positive<const D: usize>(u: &Tensor<D>) -> Tensor<D> {
    u.clone().mask_fill(u.clone().greater_elem(0.0).bool_not(), 0.0)
}

/// `max(0, u)` with value as torch's `clamp_min(u, 0)` (NaN propagates) and derivative
/// 1 for `u > 0`, 0 for `u < 0` and for NaN, and at `u = 0` the value `kink` chooses.
fn relu<const D: usize>(u: Tensor<D>, kink: Kink) -> Tensor<D> {
    let v = positive(&u);
    let at_kink = match kink {
        Kink::Zero => return nan_back(v, &u),
        Kink::Half => 0.5,
        Kink::One => 1.0,
    };
    // Exactly at the kink: value k·u = 0, derivative k.
    let k = u.clone().mul_scalar(at_kink).mask_fill(u.clone().not_equal_elem(0.0), 0.0);
    nan_back(v + k, &u)
}

/// `max(0, u)²` (kink gradient 0 either way); NaN propagates with gradient 0.
fn relu_sq<const D: usize>(u: Tensor<D>) -> Tensor<D> {
    nan_back(positive(&u).square(), &u)
}

/// `softplus(z) = log(1 + exp(z))`, stably: `max(z, 0) + log1p(exp(−|z|))`.
///
/// burn differentiates `|z|` as `sign(z)`, 0 at `z = 0`, so the `max` takes derivative ½
/// at its kink and the sum's derivative there is σ(0) = ½.
fn softplus<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    let e = z.clone().abs().neg().exp();
    relu(z, Kink::Half) + e.log1p()
}

/// `sqrt(s)` whose gradient at `s = 0` is 0 instead of infinite (torch's norm subgradient).
fn safe_sqrt<const D: usize>(s: Tensor<D>) -> Tensor<D> {
    let zero = s.clone().detach().equal_elem(0.0);
    s.mask_fill(zero.clone(), 1.0).sqrt().mask_fill(zero, 0.0)
}

/// An element-wise loss: checked, validated, computed in f32 for half dtypes.
fn elementwise<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    f: impl FnOnce(Tensor<D>, Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let dt = input.dtype();
    let (x, t) = (up(input, dt), up(target, dt));
    down(f(x, t), dt)
}

/// [`crate::hinge`] as burn ops: `max(0, margin − y·x)`.
///
/// # Errors
/// As [`crate::hinge`].
pub fn hinge<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: Hinge,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    validate(loss.mode, &input, || loss.forward(&host(&input), &host(&target), reduction).map(drop))?;
    Ok(elementwise(input, target, |x, t| {
        let u = decode(t, loss.labels).mul(x).neg().add_scalar(loss.margin);
        reduce(relu(u, loss.kink), reduction)
    }))
}

/// [`crate::squared_hinge`] as burn ops: `max(0, margin − y·x)²`.
///
/// # Errors
/// As [`crate::squared_hinge`].
pub fn squared_hinge<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: SquaredHinge,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    validate(loss.mode, &input, || loss.forward(&host(&input), &host(&target), reduction).map(drop))?;
    Ok(elementwise(input, target, |x, t| {
        let u = decode(t, loss.labels).mul(x).neg().add_scalar(loss.margin);
        reduce(relu_sq(u), reduction)
    }))
}

/// [`crate::hinge_embedding`] as burn ops, as torch composes it:
/// `where(y ≠ 1, max(0, margin − x), 0) + where(y ≠ −1, x, 0)`.
///
/// # Errors
/// As [`crate::hinge_embedding`].
pub fn hinge_embedding<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: HingeEmbedding,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    validate(loss.mode, &input, || loss.forward(&host(&input), &host(&target), reduction).map(drop))?;
    Ok(elementwise(input, target, |x, t| {
        let y = decode(t, loss.labels);
        let neg = relu(x.clone().neg().add_scalar(loss.margin), loss.kink);
        let neg = neg.mask_fill(y.clone().equal_elem(1.0), 0.0);
        let pos = x.mask_fill(y.equal_elem(-1.0), 0.0);
        reduce(neg + pos, reduction)
    }))
}

/// [`crate::soft_margin`] as burn ops: `softplus(−y·x)`, stably.
///
/// # Errors
/// As [`crate::soft_margin`].
pub fn soft_margin<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: SoftMargin,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    validate(loss.mode, &input, || loss.forward(&host(&input), &host(&target), reduction).map(drop))?;
    Ok(elementwise(input, target, |x, t| {
        let z = decode(t, loss.labels).mul(x).neg();
        reduce(softplus(z), reduction)
    }))
}

/// [`crate::margin_ranking`] as burn ops: `max(0, −y·(x1 − x2) + margin)`.
///
/// # Errors
/// As [`crate::margin_ranking`].
pub fn margin_ranking<const D: usize>(
    input1: Tensor<D>,
    input2: Tensor<D>,
    target: Tensor<D>,
    loss: MarginRanking,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    loss.geometry(&[&input1.dims(), &input2.dims(), &target.dims()], reduction)?;
    validate(loss.mode, &input1, || {
        loss.forward(&host(&input1), &host(&input2), &host(&target), reduction).map(drop)
    })?;
    let dt = input1.dtype();
    let (x1, x2, t) = (up(input1, dt), up(input2, dt), up(target, dt));
    let u = decode(t, loss.labels).mul(x1 - x2).neg().add_scalar(loss.margin);
    Ok(down(reduce(relu(u, loss.kink), reduction), dt))
}

/// The cosine of the rows (last dimension) of same-shape `a` and `b`, each norm clamped to
/// `eps` with the clamp detached (torch 2.15); the result keeps the dimension.
fn cosine_keep<const D: usize>(a: Tensor<D>, b: Tensor<D>, eps: f64) -> Tensor<D> {
    let clamp = |x: Tensor<D>| {
        let n = safe_sqrt(x.square().sum_dim(D - 1));
        let c = n.clone().detach().clamp_min(eps);
        n.clone() + (c - n.detach())
    };
    let (c1, c2) = (clamp(a.clone()), clamp(b.clone()));
    (a * b).sum_dim(D - 1) / (c1 * c2)
}

/// The p-norm of the rows of `a − b + eps`, keeping the dimension.
fn pairwise_keep<const D: usize>(a: Tensor<D>, b: Tensor<D>, p: f64, eps: f64) -> Tensor<D> {
    let v = (a - b).add_scalar(eps);
    if p == 2.0 {
        safe_sqrt(v.square().sum_dim(D - 1))
    } else if p == 1.0 {
        v.abs().sum_dim(D - 1)
    } else if p == f64::INFINITY {
        // The max, with its gradient split evenly among tied entries (as the core).
        let abs = v.abs();
        let m = abs.clone().detach().max_dim(D - 1);
        let tied = abs.clone().detach().equal(m.clone().expand(abs.dims())).float().cast(abs.dtype());
        let count = tied.clone().sum_dim(D - 1);
        let share = (abs * tied).sum_dim(D - 1) / count;
        m + (share.clone() - share.detach())
    } else {
        // s^(1/p) with the gradient 0 (not NaN) where s = 0, as the core.
        let s = v.abs().powf_scalar(p).sum_dim(D - 1);
        let zero = s.clone().detach().equal_elem(0.0);
        s.mask_fill(zero.clone(), 1.0).powf_scalar(1.0 / p).mask_fill(zero, 0.0)
    }
}

/// [`crate::cosine_similarity`] as burn ops: `Σ x1·x2 / (max(‖x1‖, eps)·max(‖x2‖, eps))`
/// over the last dimension, the clamp detached as in torch 2.15.
///
/// # Errors
/// As [`crate::cosine_similarity`].
pub fn cosine_similarity<const D: usize>(
    x1: Tensor<D>,
    x2: Tensor<D>,
    f: CosineSimilarity,
) -> Result<Tensor<D>> {
    let (x1, x2) = checks::broadcast(CosineSimilarity::NAME, x1, x2)?;
    validate(f.mode, &x1, || f.forward(HostRows::of(&x1).view()?, HostRows::of(&x2).view()?).map(drop))?;
    let dt = x1.dtype();
    Ok(down(cosine_keep(up(x1, dt), up(x2, dt), f.eps), dt))
}

/// [`crate::pairwise_distance`] as burn ops: `‖x1 − x2 + eps‖_p` over the last dimension
/// (p = 2 and p = 1 as the core; general p through `powf`; p = ∞ as the max, its gradient
/// split evenly among tied entries as the core does).
///
/// # Errors
/// As [`crate::pairwise_distance`].
pub fn pairwise_distance<const D: usize>(
    x1: Tensor<D>,
    x2: Tensor<D>,
    f: PairwiseDistance,
) -> Result<Tensor<D>> {
    let (x1, x2) = checks::broadcast(PairwiseDistance::NAME, x1, x2)?;
    validate(f.mode, &x1, || f.forward(HostRows::of(&x1).view()?, HostRows::of(&x2).view()?).map(drop))?;
    let dt = x1.dtype();
    Ok(down(pairwise_keep(up(x1, dt), up(x2, dt), f.p, f.eps), dt))
}

/// `pairwise_distance` of `(N, K)` rows as an `(N,)` tensor, unchecked (for
/// [`BurnDistance`] implementations, whose caller has validated).
pub fn pairwise_rows(x1: Tensor<2>, x2: Tensor<2>, f: PairwiseDistance) -> Tensor<1> {
    let n = x1.dims()[0];
    pairwise_keep(x1, x2, f.p, f.eps).reshape([n])
}

/// The cosine similarity of `(N, K)` rows as an `(N,)` tensor, each norm clamped to
/// `eps`, unchecked (for [`BurnDistance`] implementations).
pub fn cosine_rows(x1: Tensor<2>, x2: Tensor<2>, eps: f64) -> Tensor<1> {
    let n = x1.dims()[0];
    cosine_keep(x1, x2, eps).reshape([n])
}

/// The row reduction of per-row losses `l (N,)`.
fn reduce_rows(l: Tensor<1>, reduction: Reduction) -> Tensor<1> {
    reduce(l, reduction)
}

/// [`crate::multilabel_soft_margin`] as burn ops, as torch composes it:
/// `Σ_c w_c·(t·softplus(−x) + (1 − t)·softplus(x)) / C` per row.
///
/// # Errors
/// As [`crate::multilabel_soft_margin`].
pub fn multilabel_soft_margin(
    input: Tensor<2>,
    target: Tensor<2>,
    weight: Option<Tensor<1>>,
    loss: MultilabelSoftMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let [n, classes] = input.dims();
    let wd = weight.as_ref().map(Tensor::dims);
    let (xd, td) = (input.dims(), target.dims());
    let mut shapes: Vec<&[usize]> = vec![&xd, &td];
    shapes.extend(wd.as_ref().map(|d| &d[..]));
    loss.geometry(&shapes, reduction)?;
    validate(loss.mode, &input, || {
        let w = weight.as_ref().map(host);
        loss.forward(HostRows::of(&input).view()?, &host(&target), w.as_deref(), reduction).map(drop)
    })?;
    let dt = input.dtype();
    let x = up(input, dt);
    let t = up(target, dt).detach();
    let pos = t.clone() * softplus(x.clone().neg());
    let neg = t.neg().add_scalar(1.0) * softplus(x);
    let mut l = pos + neg;
    if let Some(w) = weight {
        l = l * up(w, dt).detach().reshape([1, classes]);
    }
    let l = l.sum_dim(1).mul_scalar(1.0 / classes as f64).reshape([n]);
    Ok(down(reduce_rows(l, reduction), dt))
}

/// The loss of an `(N, C)` batch without elements (N = 0 or C = 0): the core's value,
/// already computed on the host by the caller's check. There is nothing to compose (and
/// burn's `expand` refuses a zero dimension); the input stays in the graph, so it gets its
/// (empty) gradient as on the fused path.
fn no_elements(x: Tensor<2>, value: &marginloss::Output<f64>, reduction: Reduction) -> Tensor<1> {
    let [n, _] = x.dims();
    let values = value.as_slice().to_vec();
    let len = values.len();
    let dt = x.dtype();
    let zero = match reduction {
        Reduction::None => x.sum_dim(1).reshape([n]),
        Reduction::Mean | Reduction::Sum => x.sum().reshape([1]),
    };
    Tensor::<1>::from_data(TensorData::new(values, [len]), (&zero.device(), dt)) + zero.mul_scalar(0.0)
}

/// The `(N, C)` mask of the target class of each row.
fn is_target(y: Tensor<1, Int>, n: usize, classes: usize) -> Tensor<2, burn::tensor::Bool> {
    let dev = y.device();
    let cols = Tensor::<1, Int>::arange(0..classes as i64, (&dev, y.dtype()))
        .reshape([1, classes])
        .expand([n, classes]);
    y.reshape([n, 1]).expand([n, classes]).equal(cols)
}

/// [`crate::multi_margin`] as burn ops, as torch composes it:
/// `Σ_{i ≠ y} w[y]·max(0, margin − x[y] + x[i])^p / C` per row.
///
/// # Errors
/// As [`crate::multi_margin`].
pub fn multi_margin(
    input: Tensor<2>,
    target: Tensor<1, Int>,
    weight: Option<Tensor<1>>,
    loss: MultiMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let [n, classes] = input.dims();
    let wd = weight.as_ref().map(Tensor::dims);
    let (xd, td) = (input.dims(), target.dims());
    let mut shapes: Vec<&[usize]> = vec![&xd, &td];
    shapes.extend(wd.as_ref().map(|d| &d[..]));
    loss.geometry(&shapes, reduction)?;
    // The class indices are checked in both modes (as the core does).
    let w = weight.as_ref().map(host);
    let value = loss.forward(HostRows::of(&input).view()?, &host_i64(&target), w.as_deref(), reduction)?;
    if n == 0 || classes == 0 {
        return Ok(no_elements(input, &value, reduction));
    }
    let dt = input.dtype();
    let x = up(input, dt);
    let xy = x.clone().gather(1, target.clone().reshape([n, 1]));
    let z = (x - xy).add_scalar(loss.margin);
    // torch's kernel adds a term only `if z > 0`: a NaN term is skipped, not propagated.
    let mut l = if loss.p == 2.0 { positive(&z).square() } else { positive(&z) };
    l = l.mask_fill(is_target(target.clone(), n, classes), 0.0);
    if let Some(w) = weight {
        let wy = up(w, dt).detach().select(0, target).reshape([n, 1]);
        l = l * wy;
    }
    let l = l.sum_dim(1).mul_scalar(1.0 / classes as f64).reshape([n]);
    Ok(down(reduce_rows(l, reduction), dt))
}

/// [`crate::multiclass_hinge`] as burn ops: `max(0, margin + s[j*] − s[y])` with `j*` the
/// lowest index of the largest wrong-class score (its gradient goes to that one class).
///
/// # Errors
/// As [`crate::multiclass_hinge`].
pub fn multiclass_hinge(
    input: Tensor<2>,
    target: Tensor<1, Int>,
    loss: MulticlassHinge,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let [n, classes] = input.dims();
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    let value = loss.forward(HostRows::of(&input).view()?, &host_i64(&target), reduction)?;
    if n == 0 || classes == 0 {
        return Ok(no_elements(input, &value, reduction));
    }
    let dt = input.dtype();
    let x = up(input, dt);
    if classes < 2 {
        // Torch-compat: no wrong class, max_other = −inf, loss 0.
        let l = x.sum_dim(1).mul_scalar(0.0).reshape([n]);
        return Ok(down(reduce_rows(l, reduction), dt));
    }
    let dev = x.device();
    let is_y = is_target(target.clone(), n, classes);
    let masked = x.clone().detach().mask_fill(is_y, f64::NEG_INFINITY);
    let m = masked.clone().max_dim(1).expand([n, classes]);
    // The lowest column holding the row's largest wrong-class score.
    let cols = Tensor::<1, Int>::arange(0..classes as i64, (&dev, target.dtype()))
        .reshape([1, classes])
        .expand([n, classes]);
    let j = cols.mask_fill(masked.equal(m).bool_not(), classes as i64).min_dim(1);
    let other = x.clone().gather(1, j);
    let xy = x.gather(1, target.reshape([n, 1]));
    let u = (other.add_scalar(loss.margin) - xy).reshape([n]);
    Ok(down(reduce_rows(relu(u, Kink::Zero), reduction), dt))
}

/// [`crate::multilabel_margin`] as burn ops:
/// `Σ_{j ∈ T} Σ_{i ∉ T} max(0, 1 − x[j] + x[i]) / C` per row, the target read up to its
/// first −1 (a class listed twice counts twice). Uses an `(N, K, C)` intermediate, K the
/// longest target list in the batch (not `(N, C, C)`: at 4096 × 1000 that is 16 GB).
///
/// # Errors
/// As [`crate::multilabel_margin`].
pub fn multilabel_margin(
    input: Tensor<2>,
    target: Tensor<2, Int>,
    loss: MultilabelMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let [n, classes] = input.dims();
    loss.geometry(&[&input.dims(), &target.dims()], reduction)?;
    let listed = host_i64(&target);
    let value = loss.forward(HostRows::of(&input).view()?, &listed, reduction)?;
    if n == 0 || classes == 0 {
        return Ok(no_elements(input, &value, reduction));
    }
    // K: the longest list before a −1 (at least 1, so that a batch without targets still
    // has the graph; its slots are all invalid and weigh 0). C ≥ 1 below, so K ≤ C.
    let k = listed
        .chunks(classes.max(1))
        .map(|row| row.iter().position(|&c| c == -1).unwrap_or(row.len()))
        .max()
        .unwrap_or(0)
        .max(1);
    let dt = input.dtype();
    let x = up(input, dt);
    let fdt = x.dtype();
    let dev = x.device();
    let target = target.slice([0..n, 0..k]);
    // Slots before the first −1; the others (whatever they hold) read class 0, weight 0.
    let invalid = target.clone().equal_elem(-1).int().cumsum(1).not_equal_elem(0);
    let valid = invalid.clone().bool_not().float().cast(fdt);
    let slots = target.mask_fill(invalid, 0);
    // Which classes are listed: [i ∈ T] from the valid slots.
    let range = Tensor::<1, Int>::arange(0..classes as i64, (&dev, slots.dtype()))
        .reshape([1, 1, classes])
        .expand([n, k, classes]);
    let hits = slots.clone().reshape([n, k, 1]).expand([n, k, classes]).equal(range).float().cast(fdt);
    let listed = (hits * valid.clone().reshape([n, k, 1])).sum_dim(1).reshape([n, classes]);
    let non_target = listed.equal_elem(0.0).float().cast(fdt);
    // z[n, s, i] = 1 − x[t_s] + x[i], weighted by [slot s valid]·[i ∉ T].
    let xt = x.clone().gather(1, slots);
    let z = (x.reshape([n, 1, classes]) - xt.reshape([n, k, 1])).add_scalar(1.0);
    let w = valid.reshape([n, k, 1]) * non_target.reshape([n, 1, classes]);
    // As torch's kernel, a term counts only `if z > 0` (a NaN term is skipped).
    let l = (positive(&z) * w).sum_dim(2).sum_dim(1).reshape([n]).mul_scalar(1.0 / classes as f64);
    Ok(down(reduce_rows(l, reduction), dt))
}

/// ATen's `EPSILON` in `cosine_embedding_loss`: a C++ `float` 1e-12.
const COSINE_EMBEDDING_EPS: f64 = 1e-12_f32 as f64;

/// [`crate::cosine_embedding`] as burn ops, as ATen composes it:
/// `cos = Σ x1·x2 / sqrt((Σ x1² + EPS)(Σ x2² + EPS))`, then
/// `where(y == 1, 1 − cos, 0) + where(y == −1, max(0, cos − margin), 0)` (so a target that
/// is neither contributes 0 in torch-compat mode).
///
/// # Errors
/// As [`crate::cosine_embedding`].
pub fn cosine_embedding(
    input1: Tensor<2>,
    input2: Tensor<2>,
    target: Tensor<1>,
    loss: CosineEmbedding,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    loss.geometry(&[&input1.dims(), &input2.dims(), &target.dims()], reduction)?;
    let [n, _] = input1.dims();
    validate(loss.mode, &input1, || {
        loss.forward(HostRows::of(&input1).view()?, HostRows::of(&input2).view()?, &host(&target), reduction)
            .map(drop)
    })?;
    let dt = input1.dtype();
    let (x1, x2) = (up(input1, dt), up(input2, dt));
    let y = decode(up(target, dt), loss.labels);
    let prod = (x1.clone() * x2.clone()).sum_dim(1).reshape([n]);
    let m1 = x1.square().sum_dim(1).add_scalar(COSINE_EMBEDDING_EPS).reshape([n]);
    let m2 = x2.square().sum_dim(1).add_scalar(COSINE_EMBEDDING_EPS).reshape([n]);
    let cos = prod / (m1 * m2).sqrt();
    let pos = cos.clone().neg().add_scalar(1.0).mask_fill(y.clone().not_equal_elem(1.0), 0.0);
    let neg = relu(cos.sub_scalar(loss.margin), loss.kink).mask_fill(y.not_equal_elem(-1.0), 0.0);
    Ok(down(reduce_rows(pos + neg, reduction), dt))
}

/// [`crate::contrastive`] as burn ops, as the torch composition of the fixtures:
/// `d = pairwise_distance(x1, x2)`, `where(y == 1, ½·d², ½·max(0, margin − d)²)`.
///
/// # Errors
/// As [`crate::contrastive`].
pub fn contrastive(
    input1: Tensor<2>,
    input2: Tensor<2>,
    target: Tensor<1>,
    loss: Contrastive,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    loss.geometry(&[&input1.dims(), &input2.dims(), &target.dims()], reduction)?;
    let [n, _] = input1.dims();
    validate(loss.mode, &input1, || {
        loss.forward(HostRows::of(&input1).view()?, HostRows::of(&input2).view()?, &host(&target), reduction)
            .map(drop)
    })?;
    let dt = input1.dtype();
    let d = pairwise_rows(up(input1, dt), up(input2, dt), PairwiseDistance::new());
    let y = decode(up(target, dt), loss.labels);
    let pos = d.clone().square().mul_scalar(0.5);
    let neg = relu_sq(d.neg().add_scalar(loss.margin)).mul_scalar(0.5);
    let l = neg.mask_where(y.equal_elem(1.0), pos).reshape([n]);
    Ok(down(reduce_rows(l, reduction), dt))
}

/// `min(x, y)` with torch's `minimum` gradient: all to the smaller, split 0.5 / 0.5 at an
/// exact tie.
fn min_split(x: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    let tie = (x.clone() + y.clone()).mul_scalar(0.5);
    let lt = x.clone().detach().lower(y.clone().detach());
    let gt = x.clone().detach().greater(y.clone().detach());
    tie.mask_where(lt, x).mask_where(gt, y)
}

/// The triplet loss on given distances: `max(0, margin + dp − dn)` with the swap.
#[allow(clippy::too_many_arguments)]
fn triplet(
    d: &dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<1>,
    a: Tensor<2>,
    p: Tensor<2>,
    n: Tensor<2>,
    margin: f64,
    swap: bool,
    kink: Kink,
    reduction: Reduction,
) -> Tensor<1> {
    let dp = d(a.clone(), p.clone());
    let mut dn = d(a, n.clone());
    if swap {
        dn = min_split(dn, d(p, n));
    }
    reduce_rows(relu(dp.add_scalar(margin) - dn, kink), reduction)
}

/// [`crate::triplet_margin`] as burn ops, as torch composes it: `pairwise_distance` (eps
/// added to the difference) for `d(a, p)`, `d(a, n)` (and `d(p, n)` with `swap`, the
/// minimum's gradient split at ties), then `max(0, margin + d(a, p) − d(a, n))`.
///
/// # Errors
/// As [`crate::triplet_margin`].
pub fn triplet_margin(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    loss: TripletMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    loss.geometry(&[&anchor.dims(), &positive.dims(), &negative.dims()], reduction)?;
    validate(loss.mode, &anchor, || {
        loss.forward(
            HostRows::of(&anchor).view()?,
            HostRows::of(&positive).view()?,
            HostRows::of(&negative).view()?,
            reduction,
        )
        .map(drop)
    })?;
    // The options the core rejects in both modes (a margin that is not > 0).
    loss.mode(Mode::TorchCompat).forward::<f64>(no_rows()?, no_rows()?, no_rows()?, Reduction::Sum)?;
    let f = PairwiseDistance::new().p(loss.p).eps(loss.eps).mode(Mode::TorchCompat);
    let dt = anchor.dtype();
    let d = |u: Tensor<2>, v: Tensor<2>| pairwise_rows(u, v, f);
    let (a, p, n) = (up(anchor, dt), up(positive, dt), up(negative, dt));
    Ok(down(triplet(&d, a, p, n, loss.margin, loss.swap, loss.kink, reduction), dt))
}

/// [`crate::triplet_margin_with_distance`] as burn ops: the distance's
/// [`composed`](BurnDistance::composed) form, then as [`triplet_margin`].
///
/// # Errors
/// As [`crate::triplet_margin_with_distance`]; a distance without a composition.
pub fn triplet_margin_with_distance<Dist: BurnDistance>(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    loss: TripletMarginWithDistance<Dist>,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    loss.geometry(&[&anchor.dims(), &positive.dims(), &negative.dims()], reduction)?;
    validate(loss.mode, &anchor, || {
        let (a, p, n) = (HostRows::of(&anchor), HostRows::of(&positive), HostRows::of(&negative));
        loss.forward(a.view()?, p.view()?, n.view()?, reduction).map(drop)
    })?;
    // The options the core rejects in both modes (a margin that is not > 0).
    let compat = loss.clone().mode(Mode::TorchCompat);
    compat.forward::<f64>(no_rows()?, no_rows()?, no_rows()?, Reduction::Sum)?;
    let dt = anchor.dtype();
    let dist = loss.distance.clone();
    let dev = anchor.device();
    // Without a composition the distance runs on Flex.
    let empty = || Tensor::<2>::zeros([0, 1], &dev);
    if dist.composed(empty(), empty()).is_none() {
        return crate::triplet_via_flex(anchor, positive, negative, loss, reduction);
    }
    let d = move |u: Tensor<2>, v: Tensor<2>| {
        let n = u.dims()[0];
        dist.composed(u, v).unwrap_or_else(|| Tensor::zeros([n], &dev))
    };
    let (a, p, n) = (up(anchor, dt), up(positive, dt), up(negative, dt));
    Ok(down(triplet(&d, a, p, n, loss.margin, loss.swap, loss.kink, reduction), dt))
}
