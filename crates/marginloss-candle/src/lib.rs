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
//!   class indices and weights get no gradient.
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
//!
//! Still to come (the core losses are being written): `cosine_embedding`,
//! `triplet_margin`, `triplet_margin_with_distance`, `contrastive`.

#![deny(missing_docs)]

pub mod composed;
mod op;

use candle_core::{Result, Shape, Tensor, D};
pub use marginloss::{
    CosineSimilarity, Float, Hinge, HingeEmbedding, Kink, Labels, MarginRanking, Mode, MultiMargin,
    MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, PairwiseDistance, Reduction, SoftMargin,
    SquaredHinge,
};
use op::{apply, core_err, Arg, Fused};

/// The result shape of a loss over elements (or rows) whose unreduced shape is `none`.
fn reduced_shape(reduction: Reduction, none: Shape) -> Shape {
    match reduction {
        Reduction::None => none,
        Reduction::Mean | Reduction::Sum => Shape::from(()),
    }
}

/// A shape-mismatch error in the core's words.
fn shape_err(loss: &'static str, arg: &'static str, got: &Tensor, expected: String) -> candle_core::Error {
    core_err(marginloss::Error::Shape { loss, arg, got: got.dims().to_vec(), expected })
}

fn same_shape(
    loss: &'static str,
    first: (&'static str, &Tensor),
    other: (&'static str, &Tensor),
) -> Result<()> {
    if first.1.dims() != other.1.dims() {
        return Err(shape_err(loss, other.0, other.1, format!("{} has shape {:?}", first.0, first.1.dims())));
    }
    Ok(())
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
            fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
                self.loss.forward_into(a[0].f(), a[1].f(), self.reduction, out)
            }
            fn forward_backward<T: Float>(
                &self,
                a: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                g1: &mut [T],
                _g2: &mut [T],
            ) -> marginloss::Result<()> {
                self.loss.forward_backward(a[0].f(), a[1].f(), self.reduction, up, out, g1)
            }
        }
    };
}

pointwise_fused!(Hinge, "hinge");
pointwise_fused!(SquaredHinge, "squared_hinge");
pointwise_fused!(HingeEmbedding, "hinge_embedding");
pointwise_fused!(SoftMargin, "soft_margin");

fn pointwise<L>(
    loss: L,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    composed: &dyn Fn(&[&Tensor]) -> Result<Tensor>,
) -> Result<Tensor>
where
    Pointwise<L>: Fused,
{
    same_shape(<Pointwise<L> as Fused>::NAME, ("input", input), ("target", target))?;
    let shape = reduced_shape(reduction, input.shape().clone());
    apply(Pointwise { loss, reduction }, &[input, target], shape, Some(composed))
}

/// The binary hinge loss `max(0, margin − y·x)` on classifier scores ([`Hinge`]).
///
/// `target` has `input`'s shape and holds ±1 (or 0/1 with [`Labels::ZeroOne`]); it gets
/// no gradient.
///
/// # Errors
/// The core's strict-mode errors (as `candle_core::Error::Msg`), mismatched shapes,
/// an unsupported dtype.
pub fn hinge(input: &Tensor, target: &Tensor, loss: Hinge, reduction: Reduction) -> Result<Tensor> {
    pointwise(loss, input, target, reduction, &|a| composed::hinge(a[0], a[1], loss, reduction))
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
    pointwise(loss, input, target, reduction, &|a| composed::squared_hinge(a[0], a[1], loss, reduction))
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
    pointwise(loss, input, target, reduction, &|a| composed::hinge_embedding(a[0], a[1], loss, reduction))
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
    pointwise(loss, input, target, reduction, &|a| composed::soft_margin(a[0], a[1], loss, reduction))
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
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.loss.forward_into(a[0].f(), a[1].f(), a[2].f(), self.reduction, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        g2: &mut [T],
    ) -> marginloss::Result<()> {
        self.loss.forward_backward(a[0].f(), a[1].f(), a[2].f(), self.reduction, up, out, g1, g2)
    }
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
    const L: &str = "margin_ranking";
    same_shape(L, ("input1", input1), ("input2", input2))?;
    same_shape(L, ("input1", input1), ("target", target))?;
    let shape = reduced_shape(reduction, input1.shape().clone());
    let c = move |a: &[&Tensor]| composed::margin_ranking(a[0], a[1], a[2], loss, reduction);
    apply(Ranking { loss, reduction }, &[input1, input2, target], shape, Some(&c))
}

// ---------------------------------------------------------------------------------------
// Distances over the last dimension.

/// The row length and the unreduced result shape of a distance's inputs, broadcast to
/// each other.
fn broadcast_rows(loss: &'static str, x1: &Tensor, x2: &Tensor) -> Result<(Tensor, Tensor, Shape)> {
    let (x1, x2) = if x1.dims() == x2.dims() {
        (x1.clone(), x2.clone())
    } else {
        let shape = x1.shape().broadcast_shape_binary_op(x2.shape(), loss)?;
        (x1.broadcast_as(&shape)?, x2.broadcast_as(&shape)?)
    };
    if x1.rank() == 0 {
        return Err(shape_err(loss, "input1", &x1, "rows of at least one element".into()));
    }
    let dims = x1.dims();
    let out = Shape::from(dims[..dims.len() - 1].to_vec());
    Ok((x1, x2, out))
}

#[derive(Clone)]
struct Cosine {
    f: CosineSimilarity,
    dim: usize,
}

impl Fused for Cosine {
    const NAME: &'static str = "cosine_similarity";
    const GRAD: [bool; 3] = [true, true, false];
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.f.forward_into(a[0].f(), a[1].f(), self.dim, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        g2: &mut [T],
    ) -> marginloss::Result<()> {
        self.f.forward_backward(a[0].f(), a[1].f(), self.dim, up, out, g1, g2)
    }
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
    let (a, b, shape) = broadcast_rows("cosine_similarity", x1, x2)?;
    let dim = a.dim(D::Minus1)?;
    let c = move |t: &[&Tensor]| composed::cosine_similarity(t[0], t[1], f);
    apply(Cosine { f, dim }, &[&a, &b], shape, Some(&c))
}

#[derive(Clone)]
struct Pairwise {
    f: PairwiseDistance,
    dim: usize,
}

impl Fused for Pairwise {
    const NAME: &'static str = "pairwise_distance";
    const GRAD: [bool; 3] = [true, true, false];
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.f.forward_into(a[0].f(), a[1].f(), self.dim, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        g2: &mut [T],
    ) -> marginloss::Result<()> {
        self.f.forward_backward(a[0].f(), a[1].f(), self.dim, up, out, g1, g2)
    }
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
    let (a, b, shape) = broadcast_rows("pairwise_distance", x1, x2)?;
    let dim = a.dim(D::Minus1)?;
    let c = move |t: &[&Tensor]| composed::pairwise_distance(t[0], t[1], f);
    apply(Pairwise { f, dim }, &[&a, &b], shape, Some(&c))
}

// ---------------------------------------------------------------------------------------
// Row losses: input (N, C) or (C,).

/// C, and the unreduced result shape `(N,)` (or `()` for a 1-D input).
fn rows(loss: &'static str, input: &Tensor) -> Result<(usize, Shape)> {
    match input.dims() {
        [c] => Ok((*c, Shape::from(()))),
        [n, c] => Ok((*c, Shape::from(*n))),
        _ => Err(shape_err(loss, "input", input, "an input of shape (N, C) or (C,)".into())),
    }
}

#[derive(Clone)]
struct MultiMarginOp {
    loss: MultiMargin,
    classes: usize,
    reduction: Reduction,
}

impl Fused for MultiMarginOp {
    const NAME: &'static str = "multi_margin";
    const INDEX: [bool; 3] = [false, true, false];
    const GRAD: [bool; 3] = [true, false, false];
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_into(a[0].f(), a[1].i(), self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        _g2: &mut [T],
    ) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_backward(a[0].f(), a[1].i(), self.classes, w, self.reduction, up, out, g1)
    }
}

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
    let (classes, none) = rows("multi_margin", input)?;
    let f = MultiMarginOp { loss, classes, reduction };
    let shape = reduced_shape(reduction, none);
    let c = move |a: &[&Tensor]| composed::multi_margin(a[0], a[1], a.get(2).copied(), loss, reduction);
    match weight {
        Some(w) => apply(f, &[input, target, w], shape, Some(&c)),
        None => apply(f, &[input, target], shape, Some(&c)),
    }
}

#[derive(Clone)]
struct MulticlassHingeOp {
    loss: MulticlassHinge,
    classes: usize,
    reduction: Reduction,
}

impl Fused for MulticlassHingeOp {
    const NAME: &'static str = "multiclass_hinge";
    const INDEX: [bool; 3] = [false, true, false];
    const GRAD: [bool; 3] = [true, false, false];
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.loss.forward_into(a[0].f(), a[1].i(), self.classes, self.reduction, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        _g2: &mut [T],
    ) -> marginloss::Result<()> {
        self.loss.forward_backward(a[0].f(), a[1].i(), self.classes, self.reduction, up, out, g1)
    }
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
    let (classes, none) = rows("multiclass_hinge", input)?;
    let f = MulticlassHingeOp { loss, classes, reduction };
    let c = move |a: &[&Tensor]| composed::multiclass_hinge(a[0], a[1], loss, reduction);
    apply(f, &[input, target], reduced_shape(reduction, none), Some(&c))
}

#[derive(Clone)]
struct MultilabelMarginOp {
    loss: MultilabelMargin,
    classes: usize,
    reduction: Reduction,
}

impl Fused for MultilabelMarginOp {
    const NAME: &'static str = "multilabel_margin";
    const INDEX: [bool; 3] = [false, true, false];
    const GRAD: [bool; 3] = [true, false, false];
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.loss.forward_into(a[0].f(), a[1].i(), self.classes, self.reduction, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        _g2: &mut [T],
    ) -> marginloss::Result<()> {
        self.loss.forward_backward(a[0].f(), a[1].i(), self.classes, self.reduction, up, out, g1)
    }
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
    let (classes, none) = rows("multilabel_margin", input)?;
    let f = MultilabelMarginOp { loss, classes, reduction };
    let c = move |a: &[&Tensor]| composed::multilabel_margin(a[0], a[1], loss, reduction);
    apply(f, &[input, target], reduced_shape(reduction, none), Some(&c))
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
    fn forward<T: Float>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_into(a[0].f(), a[1].f(), self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Float>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g1: &mut [T],
        _g2: &mut [T],
    ) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_backward(a[0].f(), a[1].f(), self.classes, w, self.reduction, up, out, g1)
    }
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
    const L: &str = "multilabel_soft_margin";
    let (classes, none) = rows(L, input)?;
    same_shape(L, ("input", input), ("target", target))?;
    let f = MultilabelSoftMarginOp { loss, classes, reduction };
    let shape = reduced_shape(reduction, none);
    match weight {
        Some(w) => {
            let c = move |a: &[&Tensor]| {
                composed::multilabel_soft_margin(a[0], a[1], Some(a[2]), loss, reduction)
            };
            apply(f, &[input, target, w], shape, Some(&c))
        }
        None => {
            let c = move |a: &[&Tensor]| composed::multilabel_soft_margin(a[0], a[1], None, loss, reduction);
            apply(f, &[input, target], shape, Some(&c))
        }
    }
}

// ---------------------------------------------------------------------------------------
// PENDING (issue 3, pair/triplet family, on another branch): cosine_embedding,
// triplet_margin, triplet_margin_with_distance, contrastive. Each becomes a `Fused` impl
// over (input1, input2, target) or (anchor, positive, negative) with `apply_op3`, as
// `Ranking` above, once the core types land.
