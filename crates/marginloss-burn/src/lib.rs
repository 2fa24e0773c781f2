//! # marginloss-burn
//!
//! Every [`marginloss`] loss as a [burn](https://burn.dev) 0.22 op that takes part in
//! autodiff: on burn's Flex CPU backend (plain or `Autodiff`), `loss.backward()` through
//! any of them yields the gradient of the core crate's **fused** forward-backward kernel;
//! on every other backend the same function runs as a composition of burn tensor ops with
//! the same semantics.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use marginloss_burn::{cosine_similarity, hinge_embedding, CosineSimilarity, HingeEmbedding, Reduction};
//!
//! let dev = Device::flex().autodiff();
//! let a = Tensor::<2>::from_floats([[1.0, 0.0], [0.5, 0.5]], &dev).require_grad();
//! let b = Tensor::<2>::from_floats([[0.0, 1.0], [0.5, 0.4]], &dev).require_grad();
//! let y = Tensor::<2>::from_floats([[-1.0], [1.0]], &dev);
//! // The cosine distance x = 1 − cos(a, b) is a distance ≥ 0: HingeEmbeddingLoss's input.
//! let x = cosine_similarity(a.clone(), b.clone(), CosineSimilarity::new())?.neg().add_scalar(1.0);
//! let loss = hinge_embedding(x, y, HingeEmbedding::new().margin(0.2), Reduction::Mean)?;
//! let grads = loss.backward();
//! assert!(a.grad(&grads).is_some() && b.grad(&grads).is_some());
//! # Ok::<(), marginloss::Error>(())
//! ```
//!
//! ## How it runs
//!
//! * Each function has the core's name, takes burn's backend-less `Tensor`s in PyTorch's
//!   argument order, the core's options struct (margin, labels, [`Mode`], [`Kink`], …) and
//!   a [`Reduction`], and returns `Result<Tensor<…>, marginloss::Error>`: wrong ranks,
//!   mismatched shapes, empty inputs and (in strict mode) NaN come back as the core's
//!   error, never as a panic.
//! * **Flex (`Device::flex()`, `Device::flex().autodiff()`):** a burn backend extension
//!   (`#[backend_extension(Flex, Autodiff)]`) runs the core kernel on the tensors' host
//!   slices. On an autodiff device, when an argument is tracked, the forward runs the
//!   core's fused forward-backward with upstream 1 (the same output, bitwise) and a custom
//!   `Backward` node keeps the gradients: a backward whose upstream gradient is all ones
//!   (`loss.backward()` on a reduced loss, or on the sum of an unreduced one) takes them
//!   without visiting the data again; any other upstream, or a second backward, reruns
//!   the fused kernel with it. Targets, class indices and weights get no gradient.
//! * **Strided inputs** (transposed, sliced, expanded views) are made contiguous first (a
//!   no-op for contiguous ones). Distances broadcast their two inputs (burn's `expand`, so
//!   the gradient of a broadcast input is summed back by burn).
//! * **Dtypes:** f32 and f64 compute in their own type; f16, bf16 and any other float
//!   dtype compute in f32, the result and gradients stored back in the input's dtype.
//!   Targets and weights are used in the input's dtype.
//! * **Other backends (wgpu, cuda, ndarray, …):** the functions of [`composed`], plain
//!   burn tensor ops with the same semantics (the [`Kink`] convention, eps placement, the
//!   swap's tie split, the empty-input policy); burn's autodiff differentiates them. In
//!   [`Mode::Strict`] they validate on a host copy first (the class-index losses always
//!   read their indices on the host, as the core checks them in both modes). They also
//!   run on Flex, where the tests hold them equal to the fused path.
//!
//! ## Shapes
//!
//! burn has no rank-0 tensors, so a reduced loss (`Mean`, `Sum`) has shape `[1]` for the
//! row losses and `[1, …, 1]` (the input's rank) for the element-wise ones; distances keep
//! their last dimension with size 1, as burn's own `cosine_similarity`.
//!
//! | function | arguments | result (`None`) | result (`Mean`/`Sum`) |
//! |---|---|---|---|
//! | element-wise losses, [`margin_ranking`] | `Tensor<D>`s of one shape | the input's shape | `[1; D]` |
//! | [`cosine_similarity`], [`pairwise_distance`] | `Tensor<D>` `(…, K)`, broadcastable to each other | `(…, 1)` | – |
//! | [`multi_margin`], [`multiclass_hinge`] | `input: Tensor<2>` `(N, C)`, `target: Tensor<1, Int>` `(N,)` | `[N]` | `[1]` |
//! | [`multilabel_margin`] | `input (N, C)`, `target: Tensor<2, Int>` `(N, C)` (−1-padded) | `[N]` | `[1]` |
//! | [`multilabel_soft_margin`] | `input (N, C)`, `target (N, C)` in [0, 1] | `[N]` | `[1]` |
//! | [`cosine_embedding`], [`contrastive`] | `input1`, `input2: Tensor<2>` `(N, K)`, `target: Tensor<1>` `(N,)` | `[N]` | `[1]` |
//! | [`triplet_margin`], [`triplet_margin_with_distance`] | `anchor`, `positive`, `negative: Tensor<2>` `(N, K)` | `[N]` | `[1]` |

#![deny(missing_docs)]

mod checks;
pub mod composed;
mod op;

use burn::tensor::{DType, Int, Shape, Tensor};
use checks::same_dims;
pub use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Distance, Error, Float, Hinge,
    HingeEmbedding, Kink, Labels, MarginRanking, Mode, MultiMargin, MulticlassHinge, MultilabelMargin,
    MultilabelSoftMargin, PairwiseDistance, Reduction, Result, SoftMargin, SquaredHinge, TripletMargin,
    TripletMarginWithDistance,
};
use op::{apply_fused, is_flex, Elem, Fused};

// ---------------------------------------------------------------------------------------
// Shared checks and plumbing.

/// `t` on `like`'s device and in its float dtype (no-ops when they already agree; both
/// moves are differentiable).
fn like<const D: usize, const E: usize>(t: Tensor<D>, like: &Tensor<E>) -> Tensor<D> {
    let dev = like.device();
    let t = if t.device() == dev { t } else { t.to_device(&dev) };
    let dt = like.dtype();
    if t.dtype() == dt {
        t
    } else {
        t.cast(dt)
    }
}

/// `t` on `like`'s device.
fn int_on<const D: usize, const E: usize>(t: Tensor<D, Int>, like: &Tensor<E>) -> Tensor<D, Int> {
    let dev = like.device();
    if t.device() == dev {
        t
    } else {
        t.to_device(&dev)
    }
}

/// The result shape of a loss whose unreduced result has shape `none`: `none`, or all
/// ones of its rank for a reduced loss.
fn reduced_shape(reduction: Reduction, none: &[usize]) -> Shape {
    match reduction {
        Reduction::None => Shape::from(none.to_vec()),
        Reduction::Mean | Reduction::Sum => Shape::from(vec![1; none.len()]),
    }
}

/// The class indices of an int tensor, read on the host as i64.
fn indices<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap_or_default()
}

/// Whether a float dtype is computed by the kernels in its own type (else in f32).
pub(crate) fn is_native(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}

// ---------------------------------------------------------------------------------------
// Element-wise losses: (input, target) → per-element loss.

#[derive(Clone)]
struct Pointwise<L> {
    loss: L,
    reduction: Reduction,
}

macro_rules! pointwise_fused {
    ($Ty:ident, $name:literal) => {
        impl Fused for Pointwise<$Ty> {
            const NAME: &'static str = $name;
            const GRAD: [bool; 3] = [true, false, false];
            fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
                self.loss.forward_into(a[0], a[1], self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[&[T]],
                _: &[i64],
                up: &[T],
                out: &mut [T],
                [g1, _, _]: [&mut [T]; 3],
            ) -> Result<()> {
                self.loss.forward_backward(a[0], a[1], self.reduction, up, out, g1)
            }
        }
    };
}

pointwise_fused!(Hinge, "hinge");
pointwise_fused!(SquaredHinge, "squared_hinge");
pointwise_fused!(HingeEmbedding, "hinge_embedding");
pointwise_fused!(SoftMargin, "soft_margin");

/// An element-wise loss on `(input, target)`: shapes checked, then fused on Flex or
/// `composed` elsewhere.
fn pointwise<L, const D: usize>(
    loss: L,
    input: Tensor<D>,
    target: Tensor<D>,
    reduction: Reduction,
    composed: fn(Tensor<D>, Tensor<D>, L, Reduction) -> Result<Tensor<D>>,
) -> Result<Tensor<D>>
where
    Pointwise<L>: Fused,
{
    let name = <Pointwise<L> as Fused>::NAME;
    same_dims(name, ("input", &input.dims()), ("target", &target.dims()))?;
    let target = like(target, &input);
    if !is_flex(&input.device()) {
        return composed(input, target, loss, reduction);
    }
    let shape = reduced_shape(reduction, &input.dims());
    let out = apply_fused(Pointwise { loss, reduction }, vec![input.into_dispatch(), target.into_dispatch()], vec![], shape)?;
    Ok(Tensor::from_dispatch(out))
}

/// The binary hinge loss `max(0, margin − y·x)` on classifier scores ([`Hinge`]).
///
/// `target` has `input`'s shape and holds ±1 (or 0/1 with [`Labels::ZeroOne`]); it gets
/// no gradient.
///
/// # Errors
/// The core's strict-mode errors (NaN/±Inf, an empty input, a target outside the label
/// encoding), mismatched shapes.
pub fn hinge<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: Hinge,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    pointwise(loss, input, target, reduction, composed::hinge)
}

/// The squared hinge loss `max(0, margin − y·x)²` ([`SquaredHinge`]).
///
/// # Errors
/// As [`hinge`].
pub fn squared_hinge<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: SquaredHinge,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    pointwise(loss, input, target, reduction, composed::squared_hinge)
}

/// PyTorch's `HingeEmbeddingLoss` on **distances** `x ≥ 0` ([`HingeEmbedding`]): `x` for
/// `y = 1`, `max(0, margin − x)` for `y = −1` (and, in torch-compat mode, both terms for a
/// target that is neither, as torch; burn-nn takes only the margin term there).
///
/// # Errors
/// As [`hinge`]; in strict mode also a negative distance.
pub fn hinge_embedding<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: HingeEmbedding,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    pointwise(loss, input, target, reduction, composed::hinge_embedding)
}

/// PyTorch's `SoftMarginLoss` `log(1 + exp(−y·x))`, computed stably ([`SoftMargin`]).
///
/// # Errors
/// As [`hinge`].
pub fn soft_margin<const D: usize>(
    input: Tensor<D>,
    target: Tensor<D>,
    loss: SoftMargin,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    pointwise(loss, input, target, reduction, composed::soft_margin)
}

// ---------------------------------------------------------------------------------------
// Margin ranking: (input1, input2, target).

#[derive(Clone)]
struct Ranking {
    loss: MarginRanking,
    reduction: Reduction,
}

impl Fused for Ranking {
    const NAME: &'static str = "margin_ranking";
    const GRAD: [bool; 3] = [true, true, false];
    fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
        self.loss.forward_into(a[0], a[1], a[2], self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        _: &[i64],
        up: &[T],
        out: &mut [T],
        [g1, g2, _]: [&mut [T]; 3],
    ) -> Result<()> {
        self.loss.forward_backward(a[0], a[1], a[2], self.reduction, up, out, g1, g2)
    }
}

/// PyTorch's `MarginRankingLoss` `max(0, −y·(x1 − x2) + margin)` ([`MarginRanking`]), any
/// margin (burn-nn asserts `margin >= 0`). `input1`, `input2` and `target` have the same
/// shape; both inputs get gradients.
///
/// # Errors
/// As [`hinge`].
pub fn margin_ranking<const D: usize>(
    input1: Tensor<D>,
    input2: Tensor<D>,
    target: Tensor<D>,
    loss: MarginRanking,
    reduction: Reduction,
) -> Result<Tensor<D>> {
    const L: &str = "margin_ranking";
    same_dims(L, ("input1", &input1.dims()), ("input2", &input2.dims()))?;
    same_dims(L, ("input1", &input1.dims()), ("target", &target.dims()))?;
    let (input2, target) = (like(input2, &input1), like(target, &input1));
    if !is_flex(&input1.device()) {
        return composed::margin_ranking(input1, input2, target, loss, reduction);
    }
    let shape = reduced_shape(reduction, &input1.dims());
    let args = vec![input1.into_dispatch(), input2.into_dispatch(), target.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(Ranking { loss, reduction }, args, vec![], shape)?))
}

// ---------------------------------------------------------------------------------------
// Distances over the last dimension.

/// A distance between row pairs (`dim` the row length) as a fused op.
#[derive(Clone)]
struct RowPair<F> {
    f: F,
    dim: usize,
}

macro_rules! row_pair_fused {
    ($Ty:ident, $name:literal) => {
        impl Fused for RowPair<$Ty> {
            const NAME: &'static str = $name;
            const GRAD: [bool; 3] = [true, true, false];
            fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
                self.f.forward_into(a[0], a[1], self.dim, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[&[T]],
                _: &[i64],
                up: &[T],
                out: &mut [T],
                [g1, g2, _]: [&mut [T]; 3],
            ) -> Result<()> {
                self.f.forward_backward(a[0], a[1], self.dim, up, out, g1, g2)
            }
        }
    };
}

row_pair_fused!(CosineSimilarity, "cosine_similarity");
row_pair_fused!(PairwiseDistance, "pairwise_distance");

/// A row distance: broadcast, then fused on Flex or `composed` elsewhere.
fn row_distance<F, const D: usize>(
    f: F,
    x1: Tensor<D>,
    x2: Tensor<D>,
    composed: fn(Tensor<D>, Tensor<D>, F) -> Result<Tensor<D>>,
) -> Result<Tensor<D>>
where
    RowPair<F>: Fused,
{
    let name = <RowPair<F> as Fused>::NAME;
    let shape = checks::broadcast_rows(name, &x1.dims(), &x2.dims())?;
    let x2 = like(x2, &x1);
    let (x1, x2) = if x1.dims() == x2.dims() { (x1, x2) } else { (x1.expand(shape), x2.expand(shape)) };
    if !is_flex(&x1.device()) {
        return composed(x1, x2, f);
    }
    let dim = shape[D - 1];
    let mut out = shape.to_vec();
    out[D - 1] = 1;
    let args = vec![x1.into_dispatch(), x2.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(RowPair { f, dim }, args, vec![], Shape::from(out))?))
}

/// Cosine similarity over the last dimension, as `F.cosine_similarity(x1, x2, dim=-1,
/// eps)` in torch 2.15: each norm clamped to `eps` (default 1e-8; burn's own
/// `cosine_similarity` defaults to the dtype's smallest positive value) ([`CosineSimilarity`]).
///
/// `x1` and `x2` are `(…, K)` and broadcast to each other; the result is `(…, 1)`. Both
/// get gradients.
///
/// # Errors
/// The core's strict-mode errors; shapes that do not broadcast; rank 0.
pub fn cosine_similarity<const D: usize>(x1: Tensor<D>, x2: Tensor<D>, f: CosineSimilarity) -> Result<Tensor<D>> {
    row_distance(f, x1, x2, composed::cosine_similarity)
}

/// The p-norm distance `‖x1 − x2 + eps‖_p` over the last dimension, as
/// `F.pairwise_distance(x1, x2, p, eps)` ([`PairwiseDistance`]).
///
/// `x1` and `x2` are `(…, K)` and broadcast to each other; the result is `(…, 1)`. Both
/// get gradients.
///
/// # Errors
/// As [`cosine_similarity`].
pub fn pairwise_distance<const D: usize>(x1: Tensor<D>, x2: Tensor<D>, f: PairwiseDistance) -> Result<Tensor<D>> {
    row_distance(f, x1, x2, composed::pairwise_distance)
}

// ---------------------------------------------------------------------------------------
// Row losses: input (N, C).

#[derive(Clone)]
struct MultiMarginOp {
    loss: MultiMargin,
    classes: usize,
    reduction: Reduction,
    weighted: bool,
}

impl Fused for MultiMarginOp {
    const NAME: &'static str = "multi_margin";
    const GRAD: [bool; 3] = [true, false, false];
    fn forward<T: Elem>(&self, a: &[&[T]], idx: &[i64], out: &mut [T]) -> Result<()> {
        let w = self.weighted.then(|| a[1]);
        self.loss.forward_into(a[0], idx, self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        idx: &[i64],
        up: &[T],
        out: &mut [T],
        [g1, _, _]: [&mut [T]; 3],
    ) -> Result<()> {
        let w = self.weighted.then(|| a[1]);
        self.loss.forward_backward(a[0], idx, self.classes, w, self.reduction, up, out, g1)
    }
}

/// PyTorch's `MultiMarginLoss` ([`MultiMargin`]): `input (N, C)` class scores, `target
/// (N,)` class indices, optional `weight (C,)`; `p` 1 or 2 and any margin. Only `input`
/// gets a gradient.
///
/// # Errors
/// As [`hinge`]; a class index out of range (in both modes, as the core); a weight that is
/// not `(C,)`.
pub fn multi_margin(
    input: Tensor<2>,
    target: Tensor<1, Int>,
    weight: Option<Tensor<1>>,
    loss: MultiMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    const L: &str = "multi_margin";
    let [n, classes] = input.dims();
    checks::per_row(L, n, classes, &target.dims())?;
    checks::per_class(L, classes, weight.as_ref())?;
    let target = int_on(target, &input);
    let weight = weight.map(|w| like(w, &input));
    if !is_flex(&input.device()) {
        return composed::multi_margin(input, target, weight, loss, reduction);
    }
    let shape = reduced_shape(reduction, &[n]);
    let f = MultiMarginOp { loss, classes, reduction, weighted: weight.is_some() };
    // Without a weight the second tensor is a placeholder the kernel does not read.
    let second = weight.unwrap_or_else(|| Tensor::zeros([0], &input.device()));
    let args = vec![input.into_dispatch(), second.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(f, args, indices(target), shape)?))
}

/// A loss on `(N, C)` scores with integer targets (`classes` = C) as a fused op; only the
/// scores get a gradient.
#[derive(Clone)]
struct ClassIndex<L> {
    loss: L,
    classes: usize,
    reduction: Reduction,
}

macro_rules! class_index_fused {
    ($Ty:ident, $name:literal) => {
        impl Fused for ClassIndex<$Ty> {
            const NAME: &'static str = $name;
            const GRAD: [bool; 3] = [true, false, false];
            fn forward<T: Elem>(&self, a: &[&[T]], idx: &[i64], out: &mut [T]) -> Result<()> {
                self.loss.forward_into(a[0], idx, self.classes, self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[&[T]],
                idx: &[i64],
                up: &[T],
                out: &mut [T],
                [g1, _, _]: [&mut [T]; 3],
            ) -> Result<()> {
                self.loss.forward_backward(a[0], idx, self.classes, self.reduction, up, out, g1)
            }
        }
    };
}

class_index_fused!(MulticlassHinge, "multiclass_hinge");
class_index_fused!(MultilabelMargin, "multilabel_margin");

/// A class-index loss on the fused path (the second tensor a placeholder).
fn class_index_fused<L, const TD: usize>(
    loss: L,
    input: Tensor<2>,
    target: Tensor<TD, Int>,
    reduction: Reduction,
) -> Result<Tensor<1>>
where
    ClassIndex<L>: Fused,
{
    let [n, classes] = input.dims();
    let shape = reduced_shape(reduction, &[n]);
    let placeholder = Tensor::<1>::zeros([0], &input.device());
    let args = vec![input.into_dispatch(), placeholder.into_dispatch()];
    let f = ClassIndex { loss, classes, reduction };
    Ok(Tensor::from_dispatch(apply_fused(f, args, indices(target), shape)?))
}

/// The Crammer–Singer multiclass hinge ([`MulticlassHinge`]), as scikit-learn's
/// `LinearSVC(multi_class="crammer_singer")`: `max(0, margin + max_{j≠y} s_j − s_y)` per
/// row; `input (N, C)` scores, `target (N,)` class indices. Only `input` gets a gradient.
///
/// # Errors
/// As [`multi_margin`]; fewer than 2 classes in strict mode.
pub fn multiclass_hinge(
    input: Tensor<2>,
    target: Tensor<1, Int>,
    loss: MulticlassHinge,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let [n, classes] = input.dims();
    checks::per_row("multiclass_hinge", n, classes, &target.dims())?;
    let target = int_on(target, &input);
    if !is_flex(&input.device()) {
        return composed::multiclass_hinge(input, target, loss, reduction);
    }
    class_index_fused(loss, input, target, reduction)
}

/// PyTorch's `MultiLabelMarginLoss` ([`MultilabelMargin`]): `input (N, C)` scores,
/// `target (N, C)` class indices padded with −1 (see
/// [`marginloss::multilabel_target_from_sets`]). Only `input` gets a gradient.
///
/// # Errors
/// As [`multi_margin`].
pub fn multilabel_margin(
    input: Tensor<2>,
    target: Tensor<2, Int>,
    loss: MultilabelMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    same_dims("multilabel_margin", ("input", &input.dims()), ("target", &target.dims()))?;
    let target = int_on(target, &input);
    if !is_flex(&input.device()) {
        return composed::multilabel_margin(input, target, loss, reduction);
    }
    class_index_fused(loss, input, target, reduction)
}

#[derive(Clone)]
struct MultilabelSoftMarginOp {
    loss: MultilabelSoftMargin,
    classes: usize,
    reduction: Reduction,
}

impl Fused for MultilabelSoftMarginOp {
    const NAME: &'static str = "multilabel_soft_margin";
    const GRAD: [bool; 3] = [true, false, false];
    fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
        let w = a.get(2).copied();
        self.loss.forward_into(a[0], a[1], self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        _: &[i64],
        up: &[T],
        out: &mut [T],
        [g1, _, _]: [&mut [T]; 3],
    ) -> Result<()> {
        let w = a.get(2).copied();
        self.loss.forward_backward(a[0], a[1], self.classes, w, self.reduction, up, out, g1)
    }
}

/// PyTorch's `MultiLabelSoftMarginLoss` ([`MultilabelSoftMargin`]): `input (N, C)`
/// logits, `target (N, C)` in [0, 1], optional `weight (C,)`. Only `input` gets a
/// gradient.
///
/// # Errors
/// As [`hinge`]; a weight that is not `(C,)`.
pub fn multilabel_soft_margin(
    input: Tensor<2>,
    target: Tensor<2>,
    weight: Option<Tensor<1>>,
    loss: MultilabelSoftMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    const L: &str = "multilabel_soft_margin";
    let [n, classes] = input.dims();
    same_dims(L, ("input", &input.dims()), ("target", &target.dims()))?;
    checks::per_class(L, classes, weight.as_ref())?;
    let target = like(target, &input);
    let weight = weight.map(|w| like(w, &input));
    if !is_flex(&input.device()) {
        return composed::multilabel_soft_margin(input, target, weight, loss, reduction);
    }
    let shape = reduced_shape(reduction, &[n]);
    let f = MultilabelSoftMarginOp { loss, classes, reduction };
    let mut args = vec![input.into_dispatch(), target.into_dispatch()];
    args.extend(weight.map(Tensor::into_dispatch));
    Ok(Tensor::from_dispatch(apply_fused(f, args, vec![], shape)?))
}

// ---------------------------------------------------------------------------------------
// Pair losses over rows: (input1, input2, target).

/// A loss on `(input1, input2, target)` row pairs (`dim` the row length) as a fused op;
/// both inputs get gradients, the target none.
#[derive(Clone)]
struct PairLoss<L> {
    loss: L,
    dim: usize,
    reduction: Reduction,
}

macro_rules! pair_loss_fused {
    ($Ty:ident, $name:literal) => {
        impl Fused for PairLoss<$Ty> {
            const NAME: &'static str = $name;
            const GRAD: [bool; 3] = [true, true, false];
            fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
                self.loss.forward_into(a[0], a[1], a[2], self.dim, self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[&[T]],
                _: &[i64],
                up: &[T],
                out: &mut [T],
                [g1, g2, _]: [&mut [T]; 3],
            ) -> Result<()> {
                self.loss.forward_backward(a[0], a[1], a[2], self.dim, self.reduction, up, out, g1, g2)
            }
        }
    };
}

pair_loss_fused!(CosineEmbedding, "cosine_embedding");
pair_loss_fused!(Contrastive, "contrastive");

/// A pair loss: shapes checked, then fused on Flex or `composed` elsewhere.
fn pair_loss<L>(
    loss: L,
    input1: Tensor<2>,
    input2: Tensor<2>,
    target: Tensor<1>,
    reduction: Reduction,
    composed: fn(Tensor<2>, Tensor<2>, Tensor<1>, L, Reduction) -> Result<Tensor<1>>,
) -> Result<Tensor<1>>
where
    PairLoss<L>: Fused,
{
    let name = <PairLoss<L> as Fused>::NAME;
    checks::pair(name, &input1.dims(), &input2.dims(), &target.dims())?;
    let (input2, target) = (like(input2, &input1), like(target, &input1));
    if !is_flex(&input1.device()) {
        return composed(input1, input2, target, loss, reduction);
    }
    let [n, dim] = input1.dims();
    let shape = reduced_shape(reduction, &[n]);
    let args = vec![input1.into_dispatch(), input2.into_dispatch(), target.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(PairLoss { loss, dim, reduction }, args, vec![], shape)?))
}

/// PyTorch's `CosineEmbeddingLoss` ([`CosineEmbedding`]): `1 − cos` for similar pairs
/// (`y = 1`), `max(0, cos − margin)` for dissimilar ones (`y = −1`), the cosine with
/// ATen's eps `(f32)1e-12` added to each squared norm.
///
/// `input1` and `input2` are `(N, K)`, `target` has N values (±1, or 0/1 with
/// [`Labels::ZeroOne`]). Both inputs get gradients, the target none.
///
/// # Errors
/// As [`hinge`]; in strict mode also a margin outside [−1, 1].
pub fn cosine_embedding(
    input1: Tensor<2>,
    input2: Tensor<2>,
    target: Tensor<1>,
    loss: CosineEmbedding,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    pair_loss(loss, input1, input2, target, reduction, composed::cosine_embedding)
}

/// The contrastive loss of Hadsell, Chopra & LeCun ([`Contrastive`]): with
/// `d = ‖x1 − x2 + 1e-6‖₂`, `½·d²` for similar pairs (`y = +1`) and
/// `½·max(0, margin − d)²` for dissimilar ones (`y = −1`).
///
/// Shapes as [`cosine_embedding`]. Both inputs get gradients, the target none.
///
/// # Errors
/// As [`hinge`]; in strict mode also a negative or non-finite margin.
pub fn contrastive(
    input1: Tensor<2>,
    input2: Tensor<2>,
    target: Tensor<1>,
    loss: Contrastive,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    pair_loss(loss, input1, input2, target, reduction, composed::contrastive)
}

// ---------------------------------------------------------------------------------------
// Triplet losses: (anchor, positive, negative), all three with gradients.

#[derive(Clone)]
struct TripletMarginOp {
    loss: TripletMargin,
    dim: usize,
    reduction: Reduction,
}

impl Fused for TripletMarginOp {
    const NAME: &'static str = "triplet_margin";
    const GRAD: [bool; 3] = [true, true, true];
    fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
        self.loss.forward_into(a[0], a[1], a[2], self.dim, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        _: &[i64],
        up: &[T],
        out: &mut [T],
        [g1, g2, g3]: [&mut [T]; 3],
    ) -> Result<()> {
        let (l, dim, r) = (&self.loss, self.dim, self.reduction);
        l.forward_backward(a[0], a[1], a[2], dim, r, up, out, g1, g2, g3)
    }
}

/// PyTorch's `TripletMarginLoss` ([`TripletMargin`]): `max(0, margin + d(a, p) − d(a, n))`
/// with `d(u, v) = ‖u − v + eps‖_p` (eps default 1e-6, so `a = p` has a finite gradient;
/// burn-nn has no eps); with `swap`, `d(a, n)` becomes `min(d(a, n), d(p, n))` (an exact
/// tie splits the gradient 0.5 / 0.5, as torch).
///
/// `anchor`, `positive` and `negative` are `(N, K)`; all three get gradients.
///
/// # Errors
/// A margin that is not > 0 (in both modes, as torch); the core's strict-mode errors;
/// mismatched shapes.
pub fn triplet_margin(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    loss: TripletMargin,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    const L: &str = "triplet_margin";
    checks::triplet(L, &anchor.dims(), &positive.dims(), &negative.dims())?;
    let (positive, negative) = (like(positive, &anchor), like(negative, &anchor));
    if !is_flex(&anchor.device()) {
        return composed::triplet_margin(anchor, positive, negative, loss, reduction);
    }
    let [n, dim] = anchor.dims();
    let shape = reduced_shape(reduction, &[n]);
    let args = vec![anchor.into_dispatch(), positive.into_dispatch(), negative.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(TripletMarginOp { loss, dim, reduction }, args, vec![], shape)?))
}

/// A row distance that [`triplet_margin_with_distance`] can use: the core's [`Distance`]
/// for both element types, and optionally the same distance as burn tensor ops for
/// backends other than Flex.
///
/// Implemented for [`PairwiseDistance`] and [`CosineDistance`]. For a distance of your
/// own, implement [`Distance<f32>`](Distance) and [`Distance<f64>`](Distance), then this
/// trait; without [`composed`](Self::composed), tensors on other backends travel to Flex
/// and back (differentiably).
pub trait BurnDistance: Distance<f32> + Distance<f64> + Clone + Send + Sync + 'static {
    /// The distance between the rows of `x1` and `x2` (`(N, K)`, result `(N,)`) as burn
    /// tensor ops, with the same values and gradients as the core's, or `None` when there
    /// is no such composition. The caller has already validated the inputs.
    fn composed(&self, x1: Tensor<2>, x2: Tensor<2>) -> Option<Tensor<1>> {
        let _ = (x1, x2);
        None
    }
}

impl BurnDistance for PairwiseDistance {
    fn composed(&self, x1: Tensor<2>, x2: Tensor<2>) -> Option<Tensor<1>> {
        Some(composed::pairwise_rows(x1, x2, *self))
    }
}

impl BurnDistance for CosineDistance {
    fn composed(&self, x1: Tensor<2>, x2: Tensor<2>) -> Option<Tensor<1>> {
        Some(composed::cosine_rows(x1, x2, self.eps).neg().add_scalar(1.0))
    }
}

#[derive(Clone)]
struct TripletDistanceOp<Dist> {
    loss: TripletMarginWithDistance<Dist>,
    dim: usize,
    reduction: Reduction,
}

impl<Dist: BurnDistance> Fused for TripletDistanceOp<Dist> {
    const NAME: &'static str = "triplet_margin_with_distance";
    const GRAD: [bool; 3] = [true, true, true];
    fn forward<T: Elem>(&self, a: &[&[T]], _: &[i64], out: &mut [T]) -> Result<()> {
        T::triplet_forward(&self.loss, a[0], a[1], a[2], self.dim, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        _: &[i64],
        up: &[T],
        out: &mut [T],
        g: [&mut [T]; 3],
    ) -> Result<()> {
        let (l, dim, r) = (&self.loss, self.dim, self.reduction);
        T::triplet_forward_backward(l, a[0], a[1], a[2], dim, r, up, out, g)
    }
}

/// PyTorch's `TripletMarginWithDistanceLoss` ([`TripletMarginWithDistance`]):
/// `max(0, margin + d(a, p) − d(a, n))` over any [`BurnDistance`], e.g.
/// [`TripletMarginWithDistance::euclidean`] (`pairwise_distance`) or
/// [`TripletMarginWithDistance::cosine`] (`1 − cosine_similarity`); `swap` as in
/// [`triplet_margin`].
///
/// Shapes as [`triplet_margin`]; all three inputs get gradients.
///
/// # Errors
/// As [`triplet_margin`], plus the distance's own bad options in strict mode.
pub fn triplet_margin_with_distance<Dist: BurnDistance>(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    loss: TripletMarginWithDistance<Dist>,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    const L: &str = "triplet_margin_with_distance";
    checks::triplet(L, &anchor.dims(), &positive.dims(), &negative.dims())?;
    let (positive, negative) = (like(positive, &anchor), like(negative, &anchor));
    if !is_flex(&anchor.device()) {
        return composed::triplet_margin_with_distance(anchor, positive, negative, loss, reduction);
    }
    let [n, dim] = anchor.dims();
    let shape = reduced_shape(reduction, &[n]);
    let args = vec![anchor.into_dispatch(), positive.into_dispatch(), negative.into_dispatch()];
    Ok(Tensor::from_dispatch(apply_fused(TripletDistanceOp { loss, dim, reduction }, args, vec![], shape)?))
}

/// [`triplet_margin_with_distance`] for a distance without a burn-op composition on a
/// backend other than Flex: the inputs travel to Flex and the loss back (both moves
/// differentiable).
pub(crate) fn triplet_via_flex<Dist: BurnDistance>(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    loss: TripletMarginWithDistance<Dist>,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    let dev = anchor.device();
    let flex = burn::tensor::Device::flex();
    let flex = if dev.is_autodiff() { flex.autodiff() } else { flex };
    let [a, p, n] = [anchor, positive, negative].map(|t| t.to_device(&flex));
    triplet_margin_with_distance(a, p, n, loss, reduction).map(|l| l.to_device(&dev))
}
