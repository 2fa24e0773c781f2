//! # marginloss-candle
//!
//! Every [`marginloss`] loss as a [candle](https://github.com/huggingface/candle) op that
//! takes part in autograd: `Tensor::backward` through any of them yields the gradient of
//! the core crate's **fused** forward-backward kernel.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use marginloss_candle::{cosine_similarity, hinge_embedding_with, HingeEmbedding, Reduction};
//!
//! let dev = Device::Cpu;
//! let a = Var::from_slice(&[1.0f32, 0.0, 0.5, 0.5], (2, 2), &dev)?;
//! let b = Var::from_slice(&[0.0f32, 1.0, 0.5, 0.4], (2, 2), &dev)?;
//! let y = Tensor::new(&[-1i64, 1], &dev)?;
//! // The cosine distance x = 1 − cos(a, b) is a distance ≥ 0: HingeEmbeddingLoss's input.
//! let x = cosine_similarity(&a, &b)?.affine(-1.0, 1.0)?;
//! let loss = hinge_embedding_with(&x, &y, HingeEmbedding::new().margin(0.2), Reduction::Mean)?;
//! let grads = loss.backward()?;
//! assert!(grads.get(&a).is_some() && grads.get(&b).is_some());
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! ## Two functions per loss
//!
//! Each loss and distance has the core's name in two forms, as `candle_nn::loss` has
//! `cross_entropy(&logits, &target)`:
//!
//! * `hinge(&input, &target)`: the loss with its defaults (PyTorch's where PyTorch has the
//!   loss) and [`Reduction::Mean`]; the distances return one value per row;
//! * `hinge_with(&input, &target, Hinge::new().margin(0.5), Reduction::Sum)`: with the
//!   core's options struct (margin, labels, [`Mode`], [`Kink`], …) and a [`Reduction`].
//!   The losses with an optional `weight` take it here (`multi_margin_with(&x, &y,
//!   Some(&w), …)`).
//!
//! Arguments are in PyTorch's order and named as its functional API names them; errors
//! name them too (`hinge: target has dtype F64, expected F32 like the input`). Every
//! function returns `candle_core::Result<Tensor>`; a strict-mode error from the core comes
//! back as `candle_core::Error::Msg` holding the core's message. Binary labels (`target`
//! of the element-wise, ranking and pair losses) may be an integer tensor (`i64`, `i32`,
//! `i16`, `u32`, `u8`: ±1 needs a signed type, 0/1 with [`Labels::ZeroOne`] any); class
//! indices must be one.
//!
//! ## How it runs
//!
//! * Each loss is described once in the core ([`marginloss::op`]: its arguments, which
//!   get gradients, its shape rule); this crate's one generic op runs any described loss.
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
//!   Any other dtype for an input (an integer tensor, f8) is an error on every path.
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
//! [`triplet_margin_with_distance_with`] takes any [`CandleDistance`]
//! ([`PairwiseDistance`], [`CosineDistance`], or your own).
//!
//! **Metric learning from a batch** (`(embeddings (N, D), labels (N)) → loss`, the tuples
//! mined inside the batch; CPU only): [`batch_hard_triplet`], [`batch_all_triplet`],
//! [`semihard_triplet`], [`pair_contrastive`] and their `_with` forms, in [`batch`].

#![deny(missing_docs)]

pub mod batch;
pub mod composed;
mod op;

use candle_core::{Result, Tensor};
pub use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Distance, Float, Hinge, HingeEmbedding,
    Kink, Labels, MarginRanking, Mode, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin,
    PairwiseDistance, Reduction, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};
use op::run;

pub use batch::{
    batch_all_triplet, batch_all_triplet_with, batch_hard_triplet, batch_hard_triplet_with, pair_contrastive,
    pair_contrastive_with, semihard_triplet, semihard_triplet_with, BatchAllTriplet, BatchDistance,
    BatchHardTriplet, BatchReduction, PairContrastive, SemihardTriplet,
};

/// The arguments with an optional last one (a weight) left out when absent.
fn with_weight<'a>(args: &[&'a Tensor], weight: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    args.iter().copied().chain(weight).collect()
}

/// `x1` and `x2` broadcast to each other (no copy when they have the same shape).
pub(crate) fn broadcast_pair(loss: &'static str, x1: &Tensor, x2: &Tensor) -> Result<(Tensor, Tensor)> {
    if x1.dims() == x2.dims() {
        return Ok((x1.clone(), x2.clone()));
    }
    let shape = x1.shape().broadcast_shape_binary_op(x2.shape(), loss)?;
    Ok((x1.broadcast_as(&shape)?, x2.broadcast_as(&shape)?))
}

// ---------------------------------------------------------------------------------------
// Element-wise losses: (input, target) → per-element loss.

/// The binary hinge loss `max(0, margin − y·x)` on classifier scores ([`Hinge`]), with
/// margin 1, ±1 labels and the mean.
///
/// `target` has `input`'s shape and holds ±1 (a float or signed integer tensor); it gets
/// no gradient. [`hinge_with`] takes the options (margin, 0/1 labels, mode, kink) and a
/// reduction.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{hinge, hinge_with, Hinge, Labels, Reduction};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[0.5f32, -0.25, 2.0, 1.5], &dev)?;
/// let y = Tensor::new(&[-1i64, 1, -1, 1], &dev)?;
/// // (1.5 + 1.25 + 3 + 0) / 4
/// assert_eq!(hinge(&x, &y)?.to_scalar::<f32>()?, 1.4375);
/// let t = Tensor::new(&[0u8, 1, 0, 1], &dev)?;
/// let l = hinge_with(&x, &t, Hinge::new().labels(Labels::ZeroOne).margin(2.0), Reduction::None)?;
/// assert_eq!(l.to_vec1::<f32>()?, [2.5, 2.25, 4.0, 0.5]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`hinge_with`].
pub fn hinge(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    hinge_with(input, target, Hinge::new(), Reduction::Mean)
}

/// [`hinge`] with its options ([`Hinge`]) and a [`Reduction`].
///
/// # Errors
/// The core's strict-mode errors (as `candle_core::Error::Msg`), mismatched shapes,
/// an unsupported dtype.
pub fn hinge_with(input: &Tensor, target: &Tensor, loss: Hinge, reduction: Reduction) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::hinge(a[0], a[1], loss, reduction)))
}

/// The squared hinge loss `max(0, margin − y·x)²` ([`SquaredHinge`]), with margin 1, ±1
/// labels and the mean; shapes and labels as [`hinge`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{squared_hinge, squared_hinge_with, Reduction, SquaredHinge};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[0.5f64, -0.25, 2.0, 1.5], &dev)?;
/// let y = Tensor::new(&[-1.0f64, 1.0, -1.0, 1.0], &dev)?;
/// // (1.5² + 1.25² + 3² + 0) / 4
/// assert_eq!(squared_hinge(&x, &y)?.to_scalar::<f64>()?, 3.203125);
/// let l = squared_hinge_with(&x, &y, SquaredHinge::new().margin(0.5), Reduction::Sum)?;
/// assert_eq!(l.to_scalar::<f64>()?, 1.0 + 0.5625 + 6.25);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`squared_hinge_with`].
pub fn squared_hinge(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    squared_hinge_with(input, target, SquaredHinge::new(), Reduction::Mean)
}

/// [`squared_hinge`] with its options ([`SquaredHinge`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`].
pub fn squared_hinge_with(
    input: &Tensor,
    target: &Tensor,
    loss: SquaredHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::squared_hinge(a[0], a[1], loss, reduction)))
}

/// PyTorch's `HingeEmbeddingLoss` on **distances** `x ≥ 0` ([`HingeEmbedding`]): `x` for
/// `y = 1`, `max(0, margin − x)` for `y = −1`, with margin 1 and the mean, as
/// `F.hinge_embedding_loss(x, y)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{hinge_embedding, hinge_embedding_with, HingeEmbedding, Reduction};
/// let dev = Device::Cpu;
/// let d = Tensor::new(&[0.5f32, 0.25, 2.0, 1.5], &dev)?;
/// let y = Tensor::new(&[-1i64, 1, -1, 1], &dev)?;
/// // (0.5 + 0.25 + 0 + 1.5) / 4
/// assert_eq!(hinge_embedding(&d, &y)?.to_scalar::<f32>()?, 0.5625);
/// let l = hinge_embedding_with(&d, &y, HingeEmbedding::new().margin(2.5), Reduction::None)?;
/// assert_eq!(l.to_vec1::<f32>()?, [2.0, 0.25, 0.5, 1.5]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`hinge_embedding_with`].
pub fn hinge_embedding(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    hinge_embedding_with(input, target, HingeEmbedding::new(), Reduction::Mean)
}

/// [`hinge_embedding`] with its options ([`HingeEmbedding`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`]; in strict mode also a negative distance.
pub fn hinge_embedding_with(
    input: &Tensor,
    target: &Tensor,
    loss: HingeEmbedding,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::hinge_embedding(a[0], a[1], loss, reduction)))
}

/// PyTorch's `SoftMarginLoss` `log(1 + exp(−y·x))`, computed stably ([`SoftMargin`]),
/// with ±1 labels and the mean, as `F.soft_margin_loss(x, y)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{soft_margin, soft_margin_with, Labels, Reduction, SoftMargin};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[0.0f64, 0.0], &dev)?;
/// let y = Tensor::new(&[1i64, -1], &dev)?;
/// assert!((soft_margin(&x, &y)?.to_scalar::<f64>()? - 2f64.ln()).abs() < 1e-15);
/// let t = Tensor::new(&[1u8, 0], &dev)?;
/// let l = soft_margin_with(&x, &t, SoftMargin::new().labels(Labels::ZeroOne), Reduction::Sum)?;
/// assert!((l.to_scalar::<f64>()? - 2.0 * 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`soft_margin_with`].
pub fn soft_margin(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    soft_margin_with(input, target, SoftMargin::new(), Reduction::Mean)
}

/// [`soft_margin`] with its options ([`SoftMargin`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`].
pub fn soft_margin_with(
    input: &Tensor,
    target: &Tensor,
    loss: SoftMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    run(loss, reduction, &[input, target], Some(&|a| composed::soft_margin(a[0], a[1], loss, reduction)))
}

/// PyTorch's `MarginRankingLoss` `max(0, −y·(x1 − x2) + margin)` ([`MarginRanking`]),
/// with margin 0 and the mean, as `F.margin_ranking_loss(x1, x2, y)`. `input1`, `input2`
/// and `target` have the same shape; both inputs get gradients.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{margin_ranking, margin_ranking_with, MarginRanking, Reduction};
/// let dev = Device::Cpu;
/// let x1 = Tensor::new(&[1.0f32, 0.5], &dev)?;
/// let x2 = Tensor::new(&[0.5f32, 1.0], &dev)?;
/// let y = Tensor::new(&[1i64, 1], &dev)?; // x1 should rank higher
/// assert_eq!(margin_ranking(&x1, &x2, &y)?.to_scalar::<f32>()?, 0.25);
/// let l = margin_ranking_with(&x1, &x2, &y, MarginRanking::new().margin(1.0), Reduction::Sum)?;
/// assert_eq!(l.to_scalar::<f32>()?, 0.5 + 1.5);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`margin_ranking_with`].
pub fn margin_ranking(input1: &Tensor, input2: &Tensor, target: &Tensor) -> Result<Tensor> {
    margin_ranking_with(input1, input2, target, MarginRanking::new(), Reduction::Mean)
}

/// [`margin_ranking`] with its options ([`MarginRanking`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`].
pub fn margin_ranking_with(
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

/// Cosine similarity over the last dimension with eps 1e-8, as `F.cosine_similarity(x1,
/// x2, dim=-1)` in torch 2.15 (each norm clamped to eps separately)
/// ([`CosineSimilarity`]).
///
/// `x1` and `x2` are `(…, D)` and broadcast to each other; the result is `(…)`. Both get
/// gradients.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{cosine_similarity, cosine_similarity_with, CosineSimilarity};
/// let dev = Device::Cpu;
/// let x1 = Tensor::new(&[[3.0f64, 4.0], [1.0, 0.0]], &dev)?;
/// let x2 = Tensor::new(&[[4.0f64, 3.0], [0.0, 1.0]], &dev)?;
/// assert_eq!(cosine_similarity(&x1, &x2)?.to_vec1::<f64>()?, [0.96, 0.0]);
/// // A norm below eps is clamped: 0.5·0.5 / (1·1).
/// let small = Tensor::new(&[[0.5f64, 0.0]], &dev)?;
/// let c = cosine_similarity_with(&small, &small, CosineSimilarity::new().eps(1.0))?;
/// assert_eq!(c.to_vec1::<f64>()?, [0.25]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`cosine_similarity_with`].
pub fn cosine_similarity(x1: &Tensor, x2: &Tensor) -> Result<Tensor> {
    cosine_similarity_with(x1, x2, CosineSimilarity::new())
}

/// [`cosine_similarity`] with its options ([`CosineSimilarity`]: eps, mode).
///
/// # Errors
/// The core's strict-mode errors; shapes that do not broadcast; an unsupported dtype.
pub fn cosine_similarity_with(x1: &Tensor, x2: &Tensor, f: CosineSimilarity) -> Result<Tensor> {
    let (a, b) = broadcast_pair("cosine_similarity", x1, x2)?;
    let c = move |t: &[&Tensor]| composed::cosine_similarity(t[0], t[1], f);
    run(f, Reduction::None, &[&a, &b], Some(&c))
}

/// The p-norm distance `‖x1 − x2 + eps‖_p` over the last dimension with p = 2 and eps
/// 1e-6, as `F.pairwise_distance(x1, x2)` ([`PairwiseDistance`]).
///
/// `x1` and `x2` are `(…, D)` and broadcast to each other; the result is `(…)`. Both get
/// gradients.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{pairwise_distance, pairwise_distance_with, PairwiseDistance};
/// let dev = Device::Cpu;
/// let x1 = Tensor::new(&[[3.0f64, 4.0]], &dev)?;
/// let x2 = Tensor::zeros((1, 2), candle_core::DType::F64, &dev)?;
/// let d = pairwise_distance(&x1, &x2)?.to_vec1::<f64>()?; // ‖(3 + 1e-6, 4 + 1e-6)‖
/// assert!((d[0] - 5.0000014).abs() < 1e-7);
/// let d1 = pairwise_distance_with(&x1, &x2, PairwiseDistance::new().p(1.0).eps(0.0))?;
/// assert_eq!(d1.to_vec1::<f64>()?, [7.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`pairwise_distance_with`].
pub fn pairwise_distance(x1: &Tensor, x2: &Tensor) -> Result<Tensor> {
    pairwise_distance_with(x1, x2, PairwiseDistance::new())
}

/// [`pairwise_distance`] with its options ([`PairwiseDistance`]: p, eps, mode).
///
/// # Errors
/// As [`cosine_similarity_with`].
pub fn pairwise_distance_with(x1: &Tensor, x2: &Tensor, f: PairwiseDistance) -> Result<Tensor> {
    let (a, b) = broadcast_pair("pairwise_distance", x1, x2)?;
    let c = move |t: &[&Tensor]| composed::pairwise_distance(t[0], t[1], f);
    run(f, Reduction::None, &[&a, &b], Some(&c))
}

// ---------------------------------------------------------------------------------------
// Row losses: input (N, C) or (C,).

/// PyTorch's `MultiMarginLoss` ([`MultiMargin`]) with p = 1, margin 1, no weight and the
/// mean, as `F.multi_margin_loss(x, y)`: `input (N, C)` class scores, `target (N,)` class
/// indices (an integer tensor). Only `input` gets a gradient; [`multi_margin_with`] takes
/// an optional `weight (C,)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{multi_margin, multi_margin_with, MultiMargin, Reduction};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[0.1f64, 0.2, 0.4, 0.8]], &dev)?;
/// let y = Tensor::new(&[3u32], &dev)?;
/// // ((1 − 0.8 + 0.1) + (1 − 0.8 + 0.2) + (1 − 0.8 + 0.4)) / 4, torch's documented example
/// assert!((multi_margin(&x, &y)?.to_scalar::<f64>()? - 0.325).abs() < 1e-12);
/// let w = Tensor::new(&[1.0f64, 1.0, 1.0, 2.0], &dev)?;
/// let l = multi_margin_with(&x, &y, Some(&w), MultiMargin::new(), Reduction::Mean)?;
/// assert!((l.to_scalar::<f64>()? - 0.65).abs() < 1e-12);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`multi_margin_with`].
pub fn multi_margin(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    multi_margin_with(input, target, None, MultiMargin::new(), Reduction::Mean)
}

/// [`multi_margin`] with an optional `weight (C,)`, its options ([`MultiMargin`]: p,
/// margin, mode) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`]; also a class index out of range, a non-integer target.
pub fn multi_margin_with(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    loss: MultiMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multi_margin(a[0], a[1], a.get(2).copied(), loss, reduction);
    run(loss, reduction, &with_weight(&[input, target], weight), Some(&c))
}

/// The Crammer–Singer multiclass hinge `max(0, margin + max_{j≠y} x_j − x_y)`
/// ([`MulticlassHinge`]) with margin 1 and the mean: `input (N, C)` scores, `target (N,)`
/// class indices. Only `input` gets a gradient.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{multiclass_hinge, multiclass_hinge_with, MulticlassHinge, Reduction};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[0.25f32, 0.5, 0.75], [2.0, 0.5, 0.25]], &dev)?;
/// let y = Tensor::new(&[2i64, 0], &dev)?;
/// // (1 + 0.5 − 0.75, max(0, 1 + 0.5 − 2)) averaged
/// assert_eq!(multiclass_hinge(&x, &y)?.to_scalar::<f32>()?, 0.375);
/// let l = multiclass_hinge_with(&x, &y, MulticlassHinge::new().margin(2.0), Reduction::None)?;
/// assert_eq!(l.to_vec1::<f32>()?, [1.75, 0.5]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`multi_margin_with`].
pub fn multiclass_hinge(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    multiclass_hinge_with(input, target, MulticlassHinge::new(), Reduction::Mean)
}

/// [`multiclass_hinge`] with its options ([`MulticlassHinge`]) and a [`Reduction`].
///
/// # Errors
/// As [`multi_margin_with`].
pub fn multiclass_hinge_with(
    input: &Tensor,
    target: &Tensor,
    loss: MulticlassHinge,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multiclass_hinge(a[0], a[1], loss, reduction);
    run(loss, reduction, &[input, target], Some(&c))
}

/// PyTorch's `MultiLabelMarginLoss` ([`MultilabelMargin`]) with the mean, as
/// `F.multilabel_margin_loss(x, y)`: `input (N, C)` scores, `target (N, C)` class indices
/// padded with −1 (a signed integer tensor; see [`marginloss::multilabel_target_from_sets`]).
/// Only `input` gets a gradient.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{multilabel_margin, multilabel_margin_with, MultilabelMargin, Reduction};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[0.1f64, 0.2, 0.4, 0.8]], &dev)?;
/// let y = Tensor::new(&[[3i64, 0, -1, 1]], &dev)?; // classes 3 and 0; the rest is padding
/// // torch's documented example: 0.85
/// assert!((multilabel_margin(&x, &y)?.to_scalar::<f64>()? - 0.85).abs() < 1e-12);
/// let l = multilabel_margin_with(&x, &y, MultilabelMargin::new(), Reduction::None)?;
/// assert_eq!(l.dims(), [1]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`multi_margin_with`].
pub fn multilabel_margin(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    multilabel_margin_with(input, target, MultilabelMargin::new(), Reduction::Mean)
}

/// [`multilabel_margin`] with its options ([`MultilabelMargin`]) and a [`Reduction`].
///
/// # Errors
/// As [`multi_margin_with`].
pub fn multilabel_margin_with(
    input: &Tensor,
    target: &Tensor,
    loss: MultilabelMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::multilabel_margin(a[0], a[1], loss, reduction);
    run(loss, reduction, &[input, target], Some(&c))
}

/// PyTorch's `MultiLabelSoftMarginLoss` ([`MultilabelSoftMargin`]) with no weight and the
/// mean, as `F.multilabel_soft_margin_loss(x, t)`: `input (N, C)` logits, `target (N, C)`
/// in [0, 1] (floats of the input's dtype). Only `input` gets a gradient;
/// [`multilabel_soft_margin_with`] takes an optional `weight (C,)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{multilabel_soft_margin, multilabel_soft_margin_with, MultilabelSoftMargin, Reduction};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[0.0f64, 0.0]], &dev)?;
/// let t = Tensor::new(&[[1.0f64, 0.0]], &dev)?;
/// // log(1 + e⁰) for each class, averaged over the classes
/// assert!((multilabel_soft_margin(&x, &t)?.to_scalar::<f64>()? - 2f64.ln()).abs() < 1e-15);
/// let w = Tensor::new(&[2.0f64, 0.0], &dev)?;
/// let l = multilabel_soft_margin_with(&x, &t, Some(&w), MultilabelSoftMargin::new(), Reduction::Sum)?;
/// assert!((l.to_scalar::<f64>()? - 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`multilabel_soft_margin_with`].
pub fn multilabel_soft_margin(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    multilabel_soft_margin_with(input, target, None, MultilabelSoftMargin::new(), Reduction::Mean)
}

/// [`multilabel_soft_margin`] with an optional `weight (C,)`, its options
/// ([`MultilabelSoftMargin`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`].
pub fn multilabel_soft_margin_with(
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
/// ATen's eps `(f32)1e-12` added to each squared norm; margin 0 and the mean, as
/// `F.cosine_embedding_loss(x1, x2, y)`.
///
/// `input1` and `input2` are `(N, D)` (or `(D,)` for one pair), `target` has N values
/// (±1, or 0/1 with [`Labels::ZeroOne`]). Both inputs get gradients, the target none.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{cosine_embedding, cosine_embedding_with, CosineEmbedding, Reduction};
/// let dev = Device::Cpu;
/// let x1 = Tensor::new(&[[3.0f64, 4.0], [3.0, 4.0]], &dev)?;
/// let x2 = Tensor::new(&[[4.0f64, 3.0], [4.0, 3.0]], &dev)?;
/// let y = Tensor::new(&[1i64, -1], &dev)?;
/// // cos = 0.96: (1 − 0.96 + 0.96) / 2
/// assert!((cosine_embedding(&x1, &x2, &y)?.to_scalar::<f64>()? - 0.5).abs() < 1e-12);
/// let l = cosine_embedding_with(&x1, &x2, &y, CosineEmbedding::new().margin(0.5), Reduction::None)?;
/// let l = l.to_vec1::<f64>()?;
/// assert!((l[0] - 0.04).abs() < 1e-12 && (l[1] - 0.46).abs() < 1e-12);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`cosine_embedding_with`].
pub fn cosine_embedding(input1: &Tensor, input2: &Tensor, target: &Tensor) -> Result<Tensor> {
    cosine_embedding_with(input1, input2, target, CosineEmbedding::new(), Reduction::Mean)
}

/// [`cosine_embedding`] with its options ([`CosineEmbedding`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`]; in strict mode also a margin outside [−1, 1].
pub fn cosine_embedding_with(
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
/// `½·max(0, margin − d)²` for dissimilar ones (`y = −1`); margin 1 and the mean.
///
/// Shapes as [`cosine_embedding`]. Both inputs get gradients, the target none.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{contrastive, contrastive_with, Contrastive, Reduction};
/// let dev = Device::Cpu;
/// let x1 = Tensor::new(&[[3.0f64, 4.0], [3.0, 4.0]], &dev)?;
/// let x2 = Tensor::zeros((2, 2), candle_core::DType::F64, &dev)?;
/// let y = Tensor::new(&[1i64, -1], &dev)?;
/// // d ≈ 5: (½·25 + ½·max(0, 1 − 5)²) / 2
/// assert!((contrastive(&x1, &x2, &y)?.to_scalar::<f64>()? - 6.25).abs() < 1e-5);
/// let l = contrastive_with(&x1, &x2, &y, Contrastive::new().margin(6.0), Reduction::None)?;
/// assert!((l.to_vec1::<f64>()?[1] - 0.5).abs() < 1e-5); // ½·(6 − 5)²
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`contrastive_with`].
pub fn contrastive(input1: &Tensor, input2: &Tensor, target: &Tensor) -> Result<Tensor> {
    contrastive_with(input1, input2, target, Contrastive::new(), Reduction::Mean)
}

/// [`contrastive`] with its options ([`Contrastive`]) and a [`Reduction`].
///
/// # Errors
/// As [`hinge_with`]; in strict mode also a negative or non-finite margin.
pub fn contrastive_with(
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
/// `min(d(a, n), d(p, n))` (an exact tie splits the gradient 0.5 / 0.5, as torch). The
/// defaults are torch's: margin 1, p = 2, eps 1e-6, no swap, the mean.
///
/// `anchor`, `positive` and `negative` are `(N, D)` (or `(D,)` for one triplet) and do not
/// broadcast; all three get gradients.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{triplet_margin, triplet_margin_with, Reduction, TripletMargin};
/// let dev = Device::Cpu;
/// let a = Tensor::new(&[[0.0f64, 0.0]], &dev)?;
/// let p = Tensor::new(&[[3.0f64, 4.0]], &dev)?;
/// let n = Tensor::new(&[[0.0f64, 1.0]], &dev)?;
/// // 1 + d(a, p) − d(a, n) ≈ 1 + 5 − 1
/// assert!((triplet_margin(&a, &p, &n)?.to_scalar::<f64>()? - 5.0).abs() < 1e-5);
/// let l = triplet_margin_with(&a, &p, &n, TripletMargin::new().p(1.0).eps(0.0), Reduction::Sum)?;
/// assert_eq!(l.to_scalar::<f64>()?, 1.0 + 7.0 - 1.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`triplet_margin_with`].
pub fn triplet_margin(anchor: &Tensor, positive: &Tensor, negative: &Tensor) -> Result<Tensor> {
    triplet_margin_with(anchor, positive, negative, TripletMargin::new(), Reduction::Mean)
}

/// [`triplet_margin`] with its options ([`TripletMargin`]) and a [`Reduction`].
///
/// # Errors
/// A margin that is not > 0 (in both modes, as torch); the core's strict-mode errors;
/// mismatched shapes; an unsupported dtype.
pub fn triplet_margin_with(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    loss: TripletMargin,
    reduction: Reduction,
) -> Result<Tensor> {
    let c = move |a: &[&Tensor]| composed::triplet_margin(a[0], a[1], a[2], loss, reduction);
    run(loss, reduction, &[anchor, positive, negative], Some(&c))
}

/// A row distance that [`triplet_margin_with_distance_with`] can use: the core's
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
/// `max(0, margin + d(a, p) − d(a, n))`, here with torch's default distance
/// (`pairwise_distance`), margin 1, no swap and the mean. [`triplet_margin_with_distance_with`]
/// takes any [`CandleDistance`], e.g. [`TripletMarginWithDistance::cosine`]
/// (`1 − cosine_similarity`).
///
/// Shapes as [`triplet_margin`]; all three inputs get gradients.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use marginloss_candle::{triplet_margin_with_distance, triplet_margin_with_distance_with};
/// use marginloss_candle::{Reduction, TripletMarginWithDistance};
/// let dev = Device::Cpu;
/// let a = Tensor::new(&[[1.0f64, 0.0]], &dev)?;
/// let p = Tensor::new(&[[1.0f64, 0.0]], &dev)?;
/// let n = Tensor::new(&[[0.0f64, 1.0]], &dev)?;
/// // Euclidean: max(0, 1 + ‖a − p + eps‖ − ‖a − n + eps‖) ≈ max(0, 1 + 0 − √2) = 0
/// assert_eq!(triplet_margin_with_distance(&a, &p, &n)?.to_scalar::<f64>()?, 0.0);
/// // Cosine distance 1 − cos: 1.5 + 0 − 1
/// let cosine = TripletMarginWithDistance::cosine().margin(1.5);
/// let l = triplet_margin_with_distance_with(&a, &p, &n, cosine, Reduction::Mean)?;
/// assert!((l.to_scalar::<f64>()? - 0.5).abs() < 1e-12);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`triplet_margin_with_distance_with`].
pub fn triplet_margin_with_distance(anchor: &Tensor, positive: &Tensor, negative: &Tensor) -> Result<Tensor> {
    let loss = TripletMarginWithDistance::euclidean();
    triplet_margin_with_distance_with(anchor, positive, negative, loss, Reduction::Mean)
}

/// [`triplet_margin_with_distance`] with any [`CandleDistance`], its options
/// ([`TripletMarginWithDistance`]: margin, swap, mode, kink) and a [`Reduction`].
///
/// # Errors
/// As [`triplet_margin_with`], plus the distance's own bad options in strict mode.
pub fn triplet_margin_with_distance_with<Dist: CandleDistance>(
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

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
