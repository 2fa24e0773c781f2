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
//! ## Batch losses
//!
//! [`batch`]: metric learning from `(embeddings (N, D), labels (N))` with the tuples mined
//! in the batch ([`batch_hard_triplet`], [`batch_all_triplet`], [`semihard_triplet`],
//! [`pair_contrastive`]; semantics: [`marginloss::batch`]). They run the core's fused
//! kernel on Flex with the same custom `Backward` node (embeddings on other backends travel
//! to Flex and back); the result is `[1]`, or `[N]` for [`BatchReduction::None`].
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

pub mod batch;
mod checks;
pub mod composed;
mod op;

pub use batch::{
    batch_all_triplet, batch_hard_triplet, pair_contrastive, semihard_triplet, BatchAllTriplet,
    BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive, Reference, SemihardTriplet,
};
use burn::tensor::{DType, Int, Tensor};
use marginloss::op::Signature;
pub use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Distance, Error, Float, Hinge,
    HingeEmbedding, Kink, Labels, MarginRanking, Mode, MultiMargin, MulticlassHinge, MultilabelMargin,
    MultilabelSoftMargin, PairwiseDistance, Reduction, Result, SoftMargin, SquaredHinge, TripletMargin,
    TripletMarginWithDistance,
};
pub use op::Loss;
use op::{fused, is_flex, Operand};

// ---------------------------------------------------------------------------------------
// Plumbing shared by the public functions.

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

/// Class indices on `like`'s device.
fn int_on<const D: usize, const E: usize>(t: Tensor<D, Int>, like: &Tensor<E>) -> Tensor<D, Int> {
    let dev = like.device();
    if t.device() == dev {
        t
    } else {
        t.to_device(&dev)
    }
}

/// Whether a float dtype is computed by the kernels in its own type (else in f32).
pub(crate) fn is_native(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}

/// `Operand::float`.
fn f<const D: usize>(t: Tensor<D>) -> Operand {
    Operand::float(t)
}

/// `Operand::index`.
fn i<const D: usize>(t: Tensor<D, Int>) -> Operand {
    Operand::index(t)
}

// ---------------------------------------------------------------------------------------
// Element-wise losses: (input, target) → per-element loss.

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
    let target = like(target, &input);
    if !is_flex(&input.device()) {
        return composed::hinge(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), f(target)])
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
    let target = like(target, &input);
    if !is_flex(&input.device()) {
        return composed::squared_hinge(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), f(target)])
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
    let target = like(target, &input);
    if !is_flex(&input.device()) {
        return composed::hinge_embedding(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), f(target)])
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
    let target = like(target, &input);
    if !is_flex(&input.device()) {
        return composed::soft_margin(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), f(target)])
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
    let (input2, target) = (like(input2, &input1), like(target, &input1));
    if !is_flex(&input1.device()) {
        return composed::margin_ranking(input1, input2, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input1), f(input2), f(target)])
}

// ---------------------------------------------------------------------------------------
// Distances over the last dimension.

/// Cosine similarity over the last dimension, as `F.cosine_similarity(x1, x2, dim=-1,
/// eps)` in torch 2.15: each norm clamped to `eps` (default 1e-8; burn's own
/// `cosine_similarity` defaults to the dtype's smallest positive value) ([`CosineSimilarity`]).
///
/// `x1` and `x2` are `(…, K)` and broadcast to each other; the result is `(…, 1)`. Both
/// get gradients (a broadcast input's summed back by burn).
///
/// # Errors
/// The core's strict-mode errors; shapes that do not broadcast.
pub fn cosine_similarity<const D: usize>(
    x1: Tensor<D>,
    x2: Tensor<D>,
    f: CosineSimilarity,
) -> Result<Tensor<D>> {
    let (x1, x2) = checks::broadcast(CosineSimilarity::NAME, x1, x2)?;
    if !is_flex(&x1.device()) {
        return composed::cosine_similarity(x1, x2, f);
    }
    fused(f, Reduction::None, vec![self::f(x1), self::f(x2)])
}

/// The p-norm distance `‖x1 − x2 + eps‖_p` over the last dimension, as
/// `F.pairwise_distance(x1, x2, p, eps)` ([`PairwiseDistance`]).
///
/// `x1` and `x2` are `(…, K)` and broadcast to each other; the result is `(…, 1)`. Both
/// get gradients.
///
/// # Errors
/// As [`cosine_similarity`].
pub fn pairwise_distance<const D: usize>(
    x1: Tensor<D>,
    x2: Tensor<D>,
    f: PairwiseDistance,
) -> Result<Tensor<D>> {
    let (x1, x2) = checks::broadcast(PairwiseDistance::NAME, x1, x2)?;
    if !is_flex(&x1.device()) {
        return composed::pairwise_distance(x1, x2, f);
    }
    fused(f, Reduction::None, vec![self::f(x1), self::f(x2)])
}

// ---------------------------------------------------------------------------------------
// Row losses: input (N, C).

/// PyTorch's `MultiMarginLoss` ([`MultiMargin`]): `input (N, C)` class scores, `target
/// (N,)` class indices, optional `weight (C,)`; `p` 1 or 2 and any margin (burn-nn has no
/// weight and asserts `margin >= 0`). Only `input` gets a gradient.
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
    let target = int_on(target, &input);
    let weight = weight.map(|w| like(w, &input));
    if !is_flex(&input.device()) {
        return composed::multi_margin(input, target, weight, loss, reduction);
    }
    let mut args = vec![f(input), i(target)];
    args.extend(weight.map(f));
    fused(loss, reduction, args)
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
    let target = int_on(target, &input);
    if !is_flex(&input.device()) {
        return composed::multiclass_hinge(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), i(target)])
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
    let target = int_on(target, &input);
    if !is_flex(&input.device()) {
        return composed::multilabel_margin(input, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input), i(target)])
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
    let target = like(target, &input);
    let weight = weight.map(|w| like(w, &input));
    if !is_flex(&input.device()) {
        return composed::multilabel_soft_margin(input, target, weight, loss, reduction);
    }
    let mut args = vec![f(input), f(target)];
    args.extend(weight.map(f));
    fused(loss, reduction, args)
}

// ---------------------------------------------------------------------------------------
// Pair losses over rows: (input1, input2, target).

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
    let (input2, target) = (like(input2, &input1), like(target, &input1));
    if !is_flex(&input1.device()) {
        return composed::cosine_embedding(input1, input2, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input1), f(input2), f(target)])
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
    let (input2, target) = (like(input2, &input1), like(target, &input1));
    if !is_flex(&input1.device()) {
        return composed::contrastive(input1, input2, target, loss, reduction);
    }
    fused(loss, reduction, vec![f(input1), f(input2), f(target)])
}

// ---------------------------------------------------------------------------------------
// Triplet losses: (anchor, positive, negative), all three with gradients.

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
    let (positive, negative) = (like(positive, &anchor), like(negative, &anchor));
    if !is_flex(&anchor.device()) {
        return composed::triplet_margin(anchor, positive, negative, loss, reduction);
    }
    fused(loss, reduction, vec![f(anchor), f(positive), f(negative)])
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
    let (positive, negative) = (like(positive, &anchor), like(negative, &anchor));
    if !is_flex(&anchor.device()) {
        return composed::triplet_margin_with_distance(anchor, positive, negative, loss, reduction);
    }
    fused(loss, reduction, vec![f(anchor), f(positive), f(negative)])
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
