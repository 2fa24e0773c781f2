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

use candle_core::{Result, Shape, Tensor, D};
pub use marginloss::{
    Contrastive, CosineDistance, CosineEmbedding, CosineSimilarity, Distance, Float, Hinge, HingeEmbedding,
    Kink, Labels, MarginRanking, Mode, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin,
    PairwiseDistance, Reduction, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};
use op::{apply, core_err, Arg, Elem, Fused};

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
            fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
                self.loss.forward_into(a[0].f(), a[1].f(), self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                [g1, _, _]: [&mut [T]; 3],
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
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.loss.forward_into(a[0].f(), a[1].f(), a[2].f(), self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        [g1, g2, _]: [&mut [T]; 3],
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
            fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
                self.f.forward_into(a[0].f(), a[1].f(), self.dim, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                [g1, g2, _]: [&mut [T]; 3],
            ) -> marginloss::Result<()> {
                self.f.forward_backward(a[0].f(), a[1].f(), self.dim, up, out, g1, g2)
            }
        }
    };
}

row_pair_fused!(CosineSimilarity, "cosine_similarity");
row_pair_fused!(PairwiseDistance, "pairwise_distance");

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
    apply(RowPair { f, dim }, &[&a, &b], shape, Some(&c))
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
    apply(RowPair { f, dim }, &[&a, &b], shape, Some(&c))
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
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_into(a[0].f(), a[1].i(), self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        [g1, _, _]: [&mut [T]; 3],
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
            const INDEX: [bool; 3] = [false, true, false];
            const GRAD: [bool; 3] = [true, false, false];
            fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
                self.loss.forward_into(a[0].f(), a[1].i(), self.classes, self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                [g1, _, _]: [&mut [T]; 3],
            ) -> marginloss::Result<()> {
                self.loss.forward_backward(a[0].f(), a[1].i(), self.classes, self.reduction, up, out, g1)
            }
        }
    };
}

class_index_fused!(MulticlassHinge, "multiclass_hinge");
class_index_fused!(MultilabelMargin, "multilabel_margin");

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
    let f = ClassIndex { loss, classes, reduction };
    let c = move |a: &[&Tensor]| composed::multiclass_hinge(a[0], a[1], loss, reduction);
    apply(f, &[input, target], reduced_shape(reduction, none), Some(&c))
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
    let f = ClassIndex { loss, classes, reduction };
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
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        let w = a.get(2).map(Arg::f);
        self.loss.forward_into(a[0].f(), a[1].f(), self.classes, w, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        [g1, _, _]: [&mut [T]; 3],
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
// Pair losses over rows: (input1, input2, target).

/// The row length D, the row count N and the unreduced result shape of a pair or triplet
/// loss whose inputs are `(N, D)` (result `(N,)`) or `(D,)` (one row, result `()`).
fn embedding_rows(loss: &'static str, arg: &'static str, x: &Tensor) -> Result<(usize, usize, Shape)> {
    match x.dims() {
        [d] => Ok((*d, 1, Shape::from(()))),
        [n, d] => Ok((*d, *n, Shape::from(*n))),
        _ => Err(shape_err(loss, arg, x, "an input of shape (N, D) or (D,)".into())),
    }
}

/// Checks a pair loss's shapes: `input2` as `input1`, `target` with N elements.
fn pair_shapes(loss: &'static str, x1: &Tensor, x2: &Tensor, t: &Tensor) -> Result<(usize, Shape)> {
    let (dim, n, none) = embedding_rows(loss, "input1", x1)?;
    same_shape(loss, ("input1", x1), ("input2", x2))?;
    if t.elem_count() != n || t.rank() > 1 {
        return Err(shape_err(loss, "target", t, format!("one value per row of input1 ({n})")));
    }
    Ok((dim, none))
}

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
            fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
                self.loss.forward_into(a[0].f(), a[1].f(), a[2].f(), self.dim, self.reduction, out)
            }
            fn forward_backward<T: Elem>(
                &self,
                a: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                [g1, g2, _]: [&mut [T]; 3],
            ) -> marginloss::Result<()> {
                let (x1, x2, t) = (a[0].f(), a[1].f(), a[2].f());
                self.loss.forward_backward(x1, x2, t, self.dim, self.reduction, up, out, g1, g2)
            }
        }
    };
}

pair_loss_fused!(CosineEmbedding, "cosine_embedding");
pair_loss_fused!(Contrastive, "contrastive");

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
    let (dim, none) = pair_shapes("cosine_embedding", input1, input2, target)?;
    let c = move |a: &[&Tensor]| composed::cosine_embedding(a[0], a[1], a[2], loss, reduction);
    let f = PairLoss { loss, dim, reduction };
    apply(f, &[input1, input2, target], reduced_shape(reduction, none), Some(&c))
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
    let (dim, none) = pair_shapes("contrastive", input1, input2, target)?;
    let c = move |a: &[&Tensor]| composed::contrastive(a[0], a[1], a[2], loss, reduction);
    let f = PairLoss { loss, dim, reduction };
    apply(f, &[input1, input2, target], reduced_shape(reduction, none), Some(&c))
}

// ---------------------------------------------------------------------------------------
// Triplet losses: (anchor, positive, negative), all three with gradients.

/// Checks a triplet loss's shapes: all three `(N, D)` (or `(D,)`).
fn triplet_shapes(loss: &'static str, a: &Tensor, p: &Tensor, n: &Tensor) -> Result<(usize, Shape)> {
    let (dim, _, none) = embedding_rows(loss, "anchor", a)?;
    same_shape(loss, ("anchor", a), ("positive", p))?;
    same_shape(loss, ("anchor", a), ("negative", n))?;
    Ok((dim, none))
}

#[derive(Clone)]
struct TripletMarginOp {
    loss: TripletMargin,
    dim: usize,
    reduction: Reduction,
}

impl Fused for TripletMarginOp {
    const NAME: &'static str = "triplet_margin";
    const GRAD: [bool; 3] = [true, true, true];
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        self.loss.forward_into(a[0].f(), a[1].f(), a[2].f(), self.dim, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        [g1, g2, g3]: [&mut [T]; 3],
    ) -> marginloss::Result<()> {
        let (l, dim, r) = (&self.loss, self.dim, self.reduction);
        l.forward_backward(a[0].f(), a[1].f(), a[2].f(), dim, r, up, out, g1, g2, g3)
    }
}

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
    let (dim, none) = triplet_shapes("triplet_margin", anchor, positive, negative)?;
    let c = move |a: &[&Tensor]| composed::triplet_margin(a[0], a[1], a[2], loss, reduction);
    let f = TripletMarginOp { loss, dim, reduction };
    apply(f, &[anchor, positive, negative], reduced_shape(reduction, none), Some(&c))
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

#[derive(Clone)]
struct TripletDistanceOp<Dist> {
    loss: TripletMarginWithDistance<Dist>,
    dim: usize,
    reduction: Reduction,
}

impl<Dist: CandleDistance> Fused for TripletDistanceOp<Dist> {
    const NAME: &'static str = "triplet_margin_with_distance";
    const GRAD: [bool; 3] = [true, true, true];
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()> {
        T::triplet_forward(&self.loss, a[0].f(), a[1].f(), a[2].f(), self.dim, self.reduction, out)
    }
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g: [&mut [T]; 3],
    ) -> marginloss::Result<()> {
        let (l, dim, r) = (&self.loss, self.dim, self.reduction);
        T::triplet_forward_backward(l, a[0].f(), a[1].f(), a[2].f(), dim, r, up, out, g)
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
    let (dim, none) = triplet_shapes("triplet_margin_with_distance", anchor, positive, negative)?;
    let shape = reduced_shape(reduction, none);
    let l = loss.clone();
    let c =
        move |a: &[&Tensor]| composed::triplet_margin_with_distance(a[0], a[1], a[2], l.clone(), reduction);
    // Whether the distance has a composition (asked on an empty batch; only off the CPU).
    let has_composed = !matches!(anchor.device(), candle_core::Device::Cpu) && {
        let empty = Tensor::zeros((0, dim), anchor.dtype(), anchor.device())?;
        loss.distance.composed(&empty, &empty).is_some()
    };
    let f = TripletDistanceOp { loss, dim, reduction };
    let args = [anchor, positive, negative];
    if has_composed {
        apply(f, &args, shape, Some(&c))
    } else {
        apply(f, &args, shape, None)
    }
}

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
