//! # marginloss-candle
//!
//! Every [`marginloss`] loss as a [candle](https://github.com/huggingface/candle) op that
//! takes part in autograd: `Tensor::backward` through any of them yields the gradient of
//! the core crate's **fused** forward-backward kernel.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use marginloss_candle::{hinge_embedding, cosine_similarity, CosineSimilarity, HingeEmbedding, Reduction};
//!
//! let dev = Device::Cpu;
//! let a = Var::from_slice(&[1.0f32, 0.0, 0.5, 0.5], (2, 2), &dev)?;
//! let b = Var::from_slice(&[0.0f32, 1.0, 0.5, 0.4], (2, 2), &dev)?;
//! let y = Tensor::new(&[-1.0f32, 1.0], &dev)?;
//! // The cosine distance x = 1 − cos(a, b) is a distance ≥ 0: HingeEmbeddingLoss's input.
//! let x = cosine_similarity(&a, &b, CosineSimilarity::new())?.affine(-1.0, 1.0)?;
//! let loss = hinge_embedding(&x, &y, HingeEmbedding::new().margin(0.2), Reduction::Mean)?;
//! let grads = loss.backward()?;
//! assert!(grads.get(&a).is_some() && grads.get(&b).is_some());
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! ## How it runs
//!
//! * Each function has the core's name and takes `&Tensor`s, the core's options struct
//!   (margin, labels, [`Mode`], [`Kink`], …) and a [`Reduction`]; it returns
//!   `candle_core::Result<Tensor>`. A strict-mode error from the core comes back as
//!   `candle_core::Error::Msg` holding the core's message.
//! * **CPU, f32/f64:** a `CustomOp2`/`CustomOp3` applied with `apply_op2`/`apply_op3` runs
//!   the core's forward kernel; its `bwd` runs the core's fused forward-backward kernel
//!   with candle's upstream gradient, so the gradient is exactly the core's. Targets,
//!   class indices and weights get no gradient. When an input that receives a gradient
//!   is tracked (a `Var` or the result of tracked ops), the forward runs the fused
//!   kernel with upstream 1 instead and keeps the gradients (the same output, bitwise):
//!   a backward with an upstream of ones (`loss.backward()`, or the sum of an unreduced
//!   loss) takes them without visiting the data again; any other upstream, or a second
//!   backward, reruns the fused kernel with it.
//! * **Strided inputs** (transposed, sliced, broadcast views) are made contiguous first
//!   (a no-op for contiguous ones; the copy is differentiable).
//! * **f16/bf16:** computed in f32 and the result cast back (both casts differentiable).
//! * **Other devices (CUDA, Metal):** every function runs as a composition of candle ops
//!   with the same semantics: the functions of [`composed`], which also run on CPU and
//!   are tested equal to the fused path there (values and gradients, kinks included).
//!   In [`Mode::Strict`] the composed path validates its inputs by running the core's
//!   checks on a host copy (use [`Mode::TorchCompat`] to stay on the device; the
//!   class-index losses always check their indices on the host, as the core does in
//!   both modes). The CUDA/Metal builds are not exercised by this crate's CI, which has
//!   no GPU: only the composed functions' CPU behaviour is tested.
//!
//! ## Shapes
//!
//! | function | arguments | result (`None`) | result (`Mean`/`Sum`) |
//! |---|---|---|---|
//! | element-wise losses | `input`, `target`: same shape | `input`'s shape | `()` |
//! | [`margin_ranking`] | `input1`, `input2`, `target`: same shape | `input1`'s shape | `()` |
//! | [`cosine_similarity`], [`pairwise_distance`] | `(…, D)`, broadcastable to each other | `(…)` | – |
//! | row losses | `input (N, C)` or `(C,)` | `(N,)` or `()` | `()` |
//! | [`cosine_embedding`], [`contrastive`] | `input1`, `input2`: `(N, D)` or `(D,)`; `target`: N values | `(N,)` or `()` | `()` |
//! | [`triplet_margin`], [`triplet_margin_with_distance`] | `anchor`, `positive`, `negative`: `(N, D)` or `(D,)` | `(N,)` or `()` | `()` |
//!
//! The triplet losses run a `CustomOp3` whose `bwd` returns all three gradients;
//! [`triplet_margin_with_distance`] takes any [`CandleDistance`] ([`PairwiseDistance`],
//! [`CosineDistance`], or your own).

#![deny(missing_docs)]

pub mod composed;
mod op;

use candle_core::{Result, Tensor};
pub use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Distance, Float, Hinge, HingeEmbedding,
    Kink, Labels, MarginRanking, Mode, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin,
    PairwiseDistance, Reduction, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};
use op::run;

/// The arguments with an optional last one (a weight) left out when absent.
fn with_weight<'a>(args: &[&'a Tensor], weight: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    args.iter().copied().chain(weight).collect()
}

// ---------------------------------------------------------------------------------------
// Element-wise losses: (input, target) → per-element loss.

/// The binary hinge loss `max(0, margin − y·x)` on classifier scores ([`Hinge`]).
///
/// `target` has `input`'s shape and holds ±1 (or 0/1 with [`Labels::ZeroOne`]); it gets
/// no gradient.
///
/// # Errors
/// The core's strict-mode errors (as `candle_core::Error::Msg`), mismatched shapes,
/// an unsupported dtype.
pub fn hinge(input: &Tensor, target: &Tensor, loss: Hinge, reduction: Reduction) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::hinge(a[0], a[1], loss, reduction)))
}

/// The squared hinge loss `max(0, margin − y·x)²` ([`SquaredHinge`]).
///
/// # Errors
/// As [`hinge`].
pub fn squared_hinge(
    input: &Tensor,
    target: &Tensor,
    loss: SquaredHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::squared_hinge(a[0], a[1], loss, reduction)))
}

/// PyTorch's `HingeEmbeddingLoss` on **distances** `x ≥ 0` ([`HingeEmbedding`]): `x` for
/// `y = 1`, `max(0, margin − x)` for `y = −1`.
///
/// # Errors
/// As [`hinge`]; in strict mode also a negative distance.
pub fn hinge_embedding(
    input: &Tensor,
    target: &Tensor,
    loss: HingeEmbedding,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::hinge_embedding(a[0], a[1], loss, reduction)))
}

/// PyTorch's `SoftMarginLoss` `log(1 + exp(−y·x))`, computed stably ([`SoftMargin`]).
///
/// # Errors
/// As [`hinge`].
pub fn soft_margin(
    input: &Tensor,
    target: &Tensor,
    loss: SoftMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::soft_margin(a[0], a[1], loss, reduction)))
}

/// PyTorch's `MarginRankingLoss` `max(0, −y·(x1 − x2) + margin)` ([`MarginRanking`]).
/// `input1`, `input2` and `target` have the same shape; both inputs get gradients.
///
/// # Errors
/// As [`hinge`].
pub fn margin_ranking(
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: MarginRanking,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::margin_ranking(a[0], a[1], a[2], loss, reduction);
    run(loss, reduction, &[input1, input2, target], Some(&c))
}

// ---------------------------------------------------------------------------------------
// Distances over the last dimension.

/// `x1` and `x2` broadcast to each other (no copy when they have the same shape).
pub(crate) fn broadcast_pair(loss: &'static str, x1: &Tensor, x2: &Tensor) -> Result<(Tensor, Tensor)> {
    if x1.dims() == x2.dims() {
        return Ok((x1.clone(), x2.clone()));
    }
    let shape = x1.shape().broadcast_shape_binary_op(x2.shape(), loss)?;
    Ok((x1.broadcast_as(&shape)?, x2.broadcast_as(&shape)?))
}

/// Cosine similarity over the last dimension, as `F.cosine_similarity(x1, x2, dim=-1,
/// eps)` in torch 2.15 (each norm clamped to eps separately) ([`CosineSimilarity`]).
///
/// `x1` and `x2` are `(…, D)` and broadcast to each other; the result is `(…)`. Both get
/// gradients.
///
/// # Errors
/// The core's strict-mode errors; shapes that do not broadcast; an unsupported dtype.
pub fn cosine_similarity(x1: &Tensor, x2: &Tensor, f: CosineSimilarity) -> Result<Tensor> {
    let (a, b) = broadcast_pair("cosine_similarity", x1, x2)?;
    let c = move |t: &[&Tensor]| composed::cosine_similarity(t[0], t[1], f);
    run(f, Reduction::None, &[&a, &b], Some(&c))
}

/// The p-norm distance `‖x1 − x2 + eps‖_p` over the last dimension, as
/// `F.pairwise_distance(x1, x2, p, eps)` ([`PairwiseDistance`]).
///
/// `x1` and `x2` are `(…, D)` and broadcast to each other; the result is `(…)`. Both get
/// gradients.
///
/// # Errors
/// As [`cosine_similarity`].
pub fn pairwise_distance(x1: &Tensor, x2: &Tensor, f: PairwiseDistance) -> Result<Tensor> {
    let (a, b) = broadcast_pair("pairwise_distance", x1, x2)?;
    let c = move |t: &[&Tensor]| composed::pairwise_distance(t[0], t[1], f);
    run(f, Reduction::None, &[&a, &b], Some(&c))
}

// ---------------------------------------------------------------------------------------
// Row losses: input (N, C) or (C,).

/// PyTorch's `MultiMarginLoss` ([`MultiMargin`]): `input (N, C)` class scores, `target
/// (N,)` class indices (any integer dtype), optional `weight (C,)`. Only `input` gets a
/// gradient.
///
/// # Errors
/// As [`hinge`]; also a class index out of range, a non-integer target.
pub fn multi_margin(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    loss: MultiMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multi_margin(a[0], a[1], a.get(2).copied(), loss, reduction);
    run(loss, reduction, &with_weight(&[input, target], weight), Some(&c))
}

/// The Crammer–Singer multiclass hinge ([`MulticlassHinge`]): `input (N, C)` scores,
/// `target (N,)` class indices. Only `input` gets a gradient.
///
/// # Errors
/// As [`multi_margin`].
pub fn multiclass_hinge(
    input: &Tensor,
    target: &Tensor,
    loss: MulticlassHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multiclass_hinge(a[0], a[1], loss, reduction);
    run(loss, reduction, &[input, target], Some(&c))
}

/// PyTorch's `MultiLabelMarginLoss` ([`MultilabelMargin`]): `input (N, C)` scores,
/// `target (N, C)` class indices padded with −1 (any signed integer dtype; see
/// [`marginloss::multilabel_target_from_sets`]). Only `input` gets a gradient.
///
/// # Errors
/// As [`multi_margin`].
pub fn multilabel_margin(
    input: &Tensor,
    target: &Tensor,
    loss: MultilabelMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multilabel_margin(a[0], a[1], loss, reduction);
    run(loss, reduction, &[input, target], Some(&c))
}

/// PyTorch's `MultiLabelSoftMarginLoss` ([`MultilabelSoftMargin`]): `input (N, C)`
/// logits, `target (N, C)` in [0, 1], optional `weight (C,)`. Only `input` gets a
/// gradient.
///
/// # Errors
/// As [`hinge`].
pub fn multilabel_soft_margin(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    loss: MultilabelSoftMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c =
        move |a: &[&Tensor]| composed::multilabel_soft_margin(a[0], a[1], a.get(2).copied(), loss, reduction);
    run(loss, reduction, &with_weight(&[input, target], weight), Some(&c))
}

// ---------------------------------------------------------------------------------------
// Pair losses over rows: (input1, input2, target).

/// PyTorch's `CosineEmbeddingLoss` ([`CosineEmbedding`]): `1 − cos` for similar pairs
/// (`y = 1`), `max(0, cos − margin)` for dissimilar ones (`y = −1`), the cosine with
/// ATen's eps `(f32)1e-12` added to each squared norm.
///
/// `input1` and `input2` are `(N, D)` (or `(D,)` for one pair), `target` has N values
/// (±1, or 0/1 with [`Labels::ZeroOne`]). Both inputs get gradients, the target none.
///
/// # Errors
/// As [`hinge`]; in strict mode also a margin outside [−1, 1].
pub fn cosine_embedding(
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: CosineEmbedding,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::cosine_embedding(a[0], a[1], a[2], loss, reduction);
    run(loss, reduction, &[input1, input2, target], Some(&c))
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
    input1: &Tensor,
    input2: &Tensor,
    target: &Tensor,
    loss: Contrastive,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::contrastive(a[0], a[1], a[2], loss, reduction);
    run(loss, reduction, &[input1, input2, target], Some(&c))
}

// ---------------------------------------------------------------------------------------
// Triplet losses: (anchor, positive, negative), all three with gradients.

/// PyTorch's `TripletMarginLoss` ([`TripletMargin`]): `max(0, margin + d(a, p) − d(a, n))`
/// with `d(u, v) = ‖u − v + eps‖_p`; with `swap`, `d(a, n)` becomes
/// `min(d(a, n), d(p, n))` (an exact tie splits the gradient 0.5 / 0.5, as torch).
///
/// `anchor`, `positive` and `negative` are `(N, D)` (or `(D,)` for one triplet) and do not
/// broadcast; all three get gradients.
///
/// # Errors
/// A margin that is not > 0 (in both modes, as torch); the core's strict-mode errors;
/// mismatched shapes; an unsupported dtype.
pub fn triplet_margin(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    loss: TripletMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::triplet_margin(a[0], a[1], a[2], loss, reduction);
    run(loss, reduction, &[anchor, positive, negative], Some(&c))
}

/// A row distance that [`triplet_margin_with_distance`] can use: the core's
/// [`Distance`] for both element types, and optionally the same distance as candle ops
/// for devices other than the CPU.
///
/// Implemented for [`PairwiseDistance`] and [`CosineDistance`]. For a distance of your
/// own, implement [`Distance<f32>`](Distance) and [`Distance<f64>`](Distance), then this
/// trait; without [`composed`](Self::composed), non-CPU tensors travel to the CPU and back
/// (differentiably).
pub trait CandleDistance: Distance<f32> + Distance<f64> + Clone + Send + Sync + 'static {
    /// The distance between the rows (last dimension) of `x1` and `x2` as candle ops, with
    /// the same values and gradients as the core's, or `None` when there is no such
    /// composition. The caller has already validated the inputs.
    fn composed(&self, x1: &Tensor, x2: &Tensor) -> Option<Result<Tensor>> {
        let _ = (x1, x2);
        None
    }
}

impl CandleDistance for PairwiseDistance {
    fn composed(&self, x1: &Tensor, x2: &Tensor) -> Option<Result<Tensor>> {
        Some(composed::pairwise_distance(x1, x2, self.mode(Mode::TorchCompat)))
    }
}

impl CandleDistance for CosineDistance {
    fn composed(&self, x1: &Tensor, x2: &Tensor) -> Option<Result<Tensor>> {
        let f = CosineSimilarity::new().eps(self.eps).mode(Mode::TorchCompat);
        Some(composed::cosine_similarity(x1, x2, f).and_then(|c| c.affine(-1.0, 1.0)))
    }
}

/// PyTorch's `TripletMarginWithDistanceLoss` ([`TripletMarginWithDistance`]):
/// `max(0, margin + d(a, p) − d(a, n))` over any [`CandleDistance`], e.g.
/// [`TripletMarginWithDistance::euclidean`] (`pairwise_distance`) or
/// [`TripletMarginWithDistance::cosine`] (`1 − cosine_similarity`); `swap` as in
/// [`triplet_margin`].
///
/// Shapes as [`triplet_margin`]; all three inputs get gradients.
///
/// # Errors
/// As [`triplet_margin`], plus the distance's own bad options in strict mode.
pub fn triplet_margin_with_distance<Dist: CandleDistance>(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    loss: TripletMarginWithDistance<Dist>,
    reduction: Reduction,
) -> Result<Tensor> {
    let l = loss.clone();
    let c =
        move |a: &[&Tensor]| composed::triplet_margin_with_distance(a[0], a[1], a[2], l.clone(), reduction);
    // Whether the distance has a composition (asked on an empty batch; only off the CPU).
    let has_composed = !matches!(anchor.device(), candle_core::Device::Cpu) && {
        let dim = anchor.dims().last().copied().unwrap_or(0);
        let empty = Tensor::zeros((0, dim), anchor.dtype(), anchor.device())?;
        loss.distance.composed(&empty, &empty).is_some()
    };
    let args = [anchor, positive, negative];
    run(loss, reduction, &args, if has_composed { Some(&c) } else { None })
}
