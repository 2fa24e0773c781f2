//! One description of each loss and distance, for adapters to tensor frameworks.
//!
//! A framework adapter (candle, burn, …) needs to know, per loss: its name, its
//! arguments in PyTorch's order and what each one is (an input that receives a gradient,
//! a label, a float target, class indices, an optional weight), how the argument shapes
//! give the row count, the row length and the result shape, and how to call the fused
//! kernels on flat slices. This module states that once, as two traits every loss and
//! distance options struct implements:
//!
//! * [`Signature`] (independent of the element type): [`NAME`](Signature::NAME),
//!   [`PARAMS`](Signature::PARAMS) and the shape rule [`geometry`](Signature::geometry),
//!   which checks the argument shapes with the core's [`Error::Shape`] messages and
//!   returns a [`Geometry`];
//! * [`Op<T>`] for `T = f32, f64`: [`forward_args`](Op::forward_args) and
//!   [`forward_backward_args`](Op::forward_backward_args) over the arguments as borrowed
//!   slices ([`Arg`]), which call the loss's own `forward_into` / `forward_backward`
//!   (no copy, no allocation beyond the core's own).
//!
//! An adapter is then one generic function over `L: Signature + Op<f32> + Op<f64>`, plus
//! per loss a public function that names the arguments and, for devices the kernels do
//! not run on, a composed fallback.
//!
//! | loss / distance | arguments ([`Kind`]) | result (`None`) |
//! |---|---|---|
//! | [`Hinge`], [`SquaredHinge`], [`HingeEmbedding`], [`SoftMargin`] | `input` (I), `target` (L): same shape | `input`'s shape |
//! | [`MarginRanking`] | `input1` (I), `input2` (I), `target` (L): same shape | `input1`'s shape |
//! | [`CosineSimilarity`], [`PairwiseDistance`] | `input1` (I), `input2` (I): same shape `(…, D)` | `(…)` |
//! | [`MultiMargin`] | `input (N, C)` or `(C,)` (I), `target` (X), `weight (C,)` (W) | `(N,)` or `()` |
//! | [`MulticlassHinge`], [`MultilabelMargin`] | `input (N, C)` or `(C,)` (I), `target` (X) | `(N,)` or `()` |
//! | [`MultilabelSoftMargin`] | `input (N, C)` or `(C,)` (I), `target` as `input` (T), `weight (C,)` (W) | `(N,)` or `()` |
//! | [`CosineEmbedding`], [`Contrastive`], [`DistanceHingeEmbedding`] | `input1 (N, D)` or `(D,)` (I), `input2` as `input1` (I), `target`: N values (L) | `(N,)` or `()` |
//! | [`TripletMargin`], [`TripletMarginWithDistance`] | `anchor`, `positive`, `negative`: `(N, D)` or `(D,)` (I) | `(N,)` or `()` |
//!
//! (I) input with a gradient, (L) label, (T) float target, (X) class indices, (W) optional
//! weight. With `Mean`/`Sum` the result is a scalar, shape `()`. The distances reduce too
//! (the mean or sum of the per-row values) although the adapters expose them unreduced.
//!
//! ```
//! use marginloss::op::{Arg, Op, Signature};
//! use marginloss::{Hinge, Reduction};
//!
//! let (x, y) = ([0.8f32, -0.5, 2.0], [-1.0f32, 1.0, -1.0]);
//! let loss = Hinge::new();
//! let g = loss.geometry(&[&[3], &[3]], Reduction::Mean)?;
//! assert_eq!((g.rows, g.output_shape()), (3, &[][..]));
//! let (mut out, mut grad) = (vec![0.0; g.output_len()], vec![0.0; 3]);
//! let args = [Arg::Float(&x[..]), Arg::Float(&y[..])];
//! loss.forward_backward_args(&g, &args, &[1.0], &mut out, &mut [&mut grad[..]])?;
//! assert!((out[0] - 2.1).abs() < 1e-6);
//! assert_eq!(grad, [1.0 / 3.0, -1.0 / 3.0, 1.0 / 3.0]);
//! # Ok::<(), marginloss::Error>(())
//! ```

use crate::distance::{CosineSimilarity, Distance, PairwiseDistance};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::loss::{
    Contrastive, CosineEmbedding, DistanceHingeEmbedding, Hinge, HingeEmbedding, MarginRanking, MultiMargin,
    MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, SoftMargin, SquaredHinge, TripletMargin,
    TripletMarginWithDistance,
};
use crate::reduction::Reduction;
use crate::rows::Rows;

/// What one argument of a loss is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Floats of the loss's element type that receive a gradient.
    Input,
    /// Binary labels (±1, or 0/1 with [`Labels::ZeroOne`](crate::Labels::ZeroOne)) as
    /// floats of the element type; no gradient. Adapters may accept integer tensors here
    /// and convert them (the labels are integers).
    Label,
    /// Float targets of the element type (e.g. `multilabel_soft_margin`'s values in
    /// [0, 1]); no gradient.
    Target,
    /// Class indices, read as `i64`; no gradient.
    Index,
    /// An optional per-class weight of the element type; no gradient. Always the last
    /// argument, and may be absent.
    Weight,
}

impl Kind {
    /// Whether the argument receives a gradient.
    pub fn has_grad(self) -> bool {
        self == Kind::Input
    }

    /// Whether the argument is floats of the loss's element type (everything but
    /// [`Kind::Index`]).
    pub fn is_float(self) -> bool {
        self != Kind::Index
    }

    /// Whether the argument may be absent.
    pub fn is_optional(self) -> bool {
        self == Kind::Weight
    }
}

/// One parameter of a loss: its name (as PyTorch's functional API) and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    /// The name, e.g. `"input"`, `"target"`, `"anchor"`.
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
}

const fn p(name: &'static str, kind: Kind) -> Param {
    Param { name, kind }
}

/// One argument's data as the kernels read it: flat row-major slices.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a, T> {
    /// Floats of the element type (for every kind but [`Kind::Index`]).
    Float(&'a [T]),
    /// Class indices (for [`Kind::Index`]).
    Index(&'a [i64]),
}

/// What the shape rule found: the row count, the row length and the result shape.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Geometry {
    /// The number of rows N (of elements, for the element-wise losses).
    pub rows: usize,
    /// The row length (D or C; 1 for the element-wise losses).
    pub row_len: usize,
    /// The result's shape with [`Reduction::None`].
    pub unreduced: Vec<usize>,
    /// The reduction the result has.
    pub reduction: Reduction,
}

impl Geometry {
    /// The result's shape: [`unreduced`](Self::unreduced) for [`Reduction::None`], `[]`
    /// (a scalar) otherwise.
    pub fn output_shape(&self) -> &[usize] {
        match self.reduction {
            Reduction::None => &self.unreduced,
            Reduction::Mean | Reduction::Sum => &[],
        }
    }

    /// The number of values in the result.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
}

/// A row argument of the call `g` describes, as `g.rows × g.row_len` rows.
fn view<'a, T>(g: &Geometry, x: &'a [T]) -> Result<Rows<'a, T>> {
    Rows::new(x, g.rows, g.row_len)
}

/// A per-row argument (a target), passed as it is.
fn flat<'a, T>(_: &Geometry, x: &'a [T]) -> Result<&'a [T]> {
    Ok(x)
}

/// The description of a loss or distance that does not depend on the element type.
pub trait Signature {
    /// The loss's name, as in its error messages (`"hinge"`, `"triplet_margin"`, …).
    const NAME: &'static str;
    /// Its arguments in PyTorch's order.
    const PARAMS: &'static [Param];

    /// The shape rule: checks the argument shapes (one per argument given, in
    /// [`PARAMS`](Self::PARAMS) order; an optional weight may be left out) and returns the
    /// geometry of the call.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the first argument whose shape is wrong and what was
    /// expected; also for a missing required argument or too many.
    fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry>;

    /// The number of arguments that receive a gradient.
    fn grad_count() -> usize
    where
        Self: Sized,
    {
        Self::PARAMS.iter().filter(|p| p.kind.has_grad()).count()
    }
}

/// The fused kernels of a loss or distance on element type `T`, over the arguments as
/// slices.
///
/// Both methods check `args` against [`Signature::PARAMS`] (count and kind) and then call
/// the loss's own `forward_into` / `forward_backward` with the geometry's row length and
/// reduction; the loss checks the slice lengths as it always does.
pub trait Op<T: Float>: Signature {
    /// The loss into `out` ([`Geometry::output_len`] values).
    ///
    /// # Errors
    /// The loss's own errors; an argument missing or of the wrong [`Arg`] variant.
    fn forward_args(&self, geometry: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()>;

    /// The fused forward and backward: the loss into `out` and `upstream · ∂out/∂arg` into
    /// `grads`, one buffer per argument with a gradient ([`Kind::Input`]), in order, each
    /// as long as its argument. `upstream` as for the loss's `forward_backward`: one
    /// value for `Mean`/`Sum`; for `None` one per output value or a single one for all.
    ///
    /// # Errors
    /// As [`forward_args`](Self::forward_args), plus wrongly sized buffers.
    fn forward_backward_args(
        &self,
        geometry: &Geometry,
        args: &[Arg<'_, T>],
        upstream: &[T],
        out: &mut [T],
        grads: &mut [&mut [T]],
    ) -> Result<()>;
}

// ---------------------------------------------------------------------------------------
// Argument checks.

/// The float arguments in order (up to three), the class indices and the weight.
struct Unpacked<'a, T> {
    f: [&'a [T]; 3],
    index: &'a [i64],
    weight: Option<&'a [T]>,
}

fn arg_error(loss: &'static str, arg: &'static str, expected: &str) -> Error {
    Error::Shape { loss, arg, got: Vec::new(), expected: expected.into() }
}

/// Checks `args` against `params` and sorts them out.
fn unpack<'a, T>(loss: &'static str, params: &[Param], args: &[Arg<'a, T>]) -> Result<Unpacked<'a, T>> {
    if args.len() > params.len() {
        return Err(arg_error(loss, params[params.len() - 1].name, "the last argument (too many given)"));
    }
    let mut u = Unpacked { f: [&[]; 3], index: &[], weight: None };
    let mut floats = 0;
    for (k, param) in params.iter().enumerate() {
        match (args.get(k), param.kind) {
            (None, Kind::Weight) => {}
            (None, _) => return Err(arg_error(loss, param.name, "an argument (it is missing)")),
            (Some(Arg::Index(s)), Kind::Index) => u.index = s,
            (Some(Arg::Float(s)), Kind::Weight) => u.weight = Some(s),
            (Some(Arg::Float(s)), kind) if kind.is_float() => {
                if let Some(slot) = u.f.get_mut(floats) {
                    *slot = s;
                }
                floats += 1;
            }
            (Some(Arg::Index(_)), _) => {
                return Err(arg_error(loss, param.name, "floats of the input's type (got class indices)"))
            }
            (Some(Arg::Float(_)), _) => {
                return Err(arg_error(loss, param.name, "class indices (an integer tensor)"))
            }
        }
    }
    Ok(u)
}

/// The `N` gradient buffers of a call, checked.
fn grads_n<'g, 'b, T, const N: usize>(
    loss: &'static str,
    grads: &'g mut [&'b mut [T]],
) -> Result<&'g mut [&'b mut [T]; N]> {
    let got = grads.len();
    <&mut [&mut [T]; N]>::try_from(grads).map_err(|_| Error::Buffer {
        loss,
        buffer: "gradient list",
        got,
        expected: N,
    })
}

// ---------------------------------------------------------------------------------------
// Shape rules.

fn shape_err(loss: &'static str, arg: &'static str, got: &[usize], expected: String) -> Error {
    Error::Shape { loss, arg, got: got.to_vec(), expected }
}

/// The shapes of `N` required arguments, and of an optional last one.
type Shapes<'s, const N: usize> = ([&'s [usize]; N], Option<&'s [usize]>);

/// Splits `shapes` into the `N` required arguments' and the optional last one's.
fn shapes_n<'s, const N: usize>(
    loss: &'static str,
    params: &[Param],
    shapes: &[&'s [usize]],
) -> Result<Shapes<'s, N>> {
    let optional = params.last().is_some_and(|p| p.kind.is_optional());
    let extra = match shapes.len().checked_sub(N) {
        Some(0) => None,
        Some(1) if optional => Some(shapes[N]),
        Some(_) => {
            return Err(arg_error(loss, params[params.len() - 1].name, "the last argument (too many given)"))
        }
        None => return Err(arg_error(loss, params[shapes.len()].name, "an argument (it is missing)")),
    };
    let mut req: [&[usize]; N] = [&[]; N];
    req.copy_from_slice(&shapes[..N]);
    Ok((req, extra))
}

/// `other` has the shape of `first`.
fn same_shape(
    loss: &'static str,
    first: (&'static str, &[usize]),
    other: (&'static str, &[usize]),
) -> Result<()> {
    if first.1 != other.1 {
        return Err(shape_err(loss, other.0, other.1, format!("{} has shape {:?}", first.0, first.1)));
    }
    Ok(())
}

fn elements(input: &[usize], reduction: Reduction) -> Geometry {
    Geometry { rows: input.iter().product(), row_len: 1, unreduced: input.to_vec(), reduction }
}

/// `(N, C)` (rows N) or `(C,)` (one row, result `()`), C the row length; `what` the
/// expected shape in words.
fn row_input(
    loss: &'static str,
    arg: &'static str,
    input: &[usize],
    what: &str,
    reduction: Reduction,
) -> Result<Geometry> {
    let (rows, row_len, unreduced) = match *input {
        [c] => (1, c, vec![]),
        [n, c] => (n, c, vec![n]),
        _ => return Err(shape_err(loss, arg, input, what.into())),
    };
    Ok(Geometry { rows, row_len, unreduced, reduction })
}

fn class_rows(
    loss: &'static str,
    input: &[usize],
    weight: Option<&[usize]>,
    r: Reduction,
) -> Result<Geometry> {
    let g = row_input(loss, "input", input, "an input of shape (N, C) or (C,)", r)?;
    if let Some(w) = weight {
        if w != [g.row_len] {
            return Err(shape_err(loss, "weight", w, format!("one weight per class ([{}])", g.row_len)));
        }
    }
    Ok(g)
}

fn embedding_rows(loss: &'static str, arg: &'static str, x: &[usize], r: Reduction) -> Result<Geometry> {
    row_input(loss, arg, x, "an input of shape (N, D) or (D,)", r)
}

/// A pair loss's shapes: `input2` as `input1`, `target` with N elements (rank ≤ 1).
fn pair_geometry(loss: &'static str, s: [&[usize]; 3], r: Reduction) -> Result<Geometry> {
    let g = embedding_rows(loss, "input1", s[0], r)?;
    same_shape(loss, ("input1", s[0]), ("input2", s[1]))?;
    let t = s[2];
    if t.iter().product::<usize>() != g.rows || t.len() > 1 {
        return Err(shape_err(loss, "target", t, format!("one value per row of input1 ({})", g.rows)));
    }
    Ok(g)
}

fn triplet_geometry(loss: &'static str, s: [&[usize]; 3], r: Reduction) -> Result<Geometry> {
    let g = embedding_rows(loss, "anchor", s[0], r)?;
    same_shape(loss, ("anchor", s[0]), ("positive", s[1]))?;
    same_shape(loss, ("anchor", s[0]), ("negative", s[2]))?;
    Ok(g)
}

fn distance_geometry(loss: &'static str, s: [&[usize]; 2], reduction: Reduction) -> Result<Geometry> {
    same_shape(loss, ("input1", s[0]), ("input2", s[1]))?;
    let Some((&row_len, lead)) = s[0].split_last() else {
        return Err(shape_err(loss, "input1", s[0], "rows of at least one element".into()));
    };
    Ok(Geometry { rows: lead.iter().product(), row_len, unreduced: lead.to_vec(), reduction })
}

// ---------------------------------------------------------------------------------------
// The element-wise losses: (input, target).

const POINTWISE: &[Param] = &[p("input", Kind::Input), p("target", Kind::Label)];

macro_rules! pointwise_op {
    ($Ty:ident, $name:literal) => {
        impl Signature for $Ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [Param] = POINTWISE;
            fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
                let ([x, t], _) = shapes_n::<2>($name, POINTWISE, shapes)?;
                same_shape($name, ("input", x), ("target", t))?;
                Ok(elements(x, reduction))
            }
        }

        impl<T: Float> Op<T> for $Ty {
            fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
                let [x, t, _] = unpack($name, POINTWISE, args)?.f;
                self.forward_into(x, t, g.reduction, out)
            }
            fn forward_backward_args(
                &self,
                g: &Geometry,
                args: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                grads: &mut [&mut [T]],
            ) -> Result<()> {
                let [x, t, _] = unpack($name, POINTWISE, args)?.f;
                let [gx] = grads_n::<T, 1>($name, grads)?;
                self.forward_backward(x, t, g.reduction, up, out, gx)
            }
        }
    };
}

pointwise_op!(Hinge, "hinge");
pointwise_op!(SquaredHinge, "squared_hinge");
pointwise_op!(HingeEmbedding, "hinge_embedding");
pointwise_op!(SoftMargin, "soft_margin");

// ---------------------------------------------------------------------------------------
// Margin ranking: (input1, input2, target).

const RANKING: &[Param] = &[p("input1", Kind::Input), p("input2", Kind::Input), p("target", Kind::Label)];

impl Signature for MarginRanking {
    const NAME: &'static str = "margin_ranking";
    const PARAMS: &'static [Param] = RANKING;
    fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
        const L: &str = "margin_ranking";
        let ([x1, x2, t], _) = shapes_n::<3>(L, RANKING, shapes)?;
        same_shape(L, ("input1", x1), ("input2", x2))?;
        same_shape(L, ("input1", x1), ("target", t))?;
        Ok(elements(x1, reduction))
    }
}

impl<T: Float> Op<T> for MarginRanking {
    fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
        let [x1, x2, t] = unpack(Self::NAME, RANKING, args)?.f;
        self.forward_into(x1, x2, t, g.reduction, out)
    }
    fn forward_backward_args(
        &self,
        g: &Geometry,
        args: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        grads: &mut [&mut [T]],
    ) -> Result<()> {
        let [x1, x2, t] = unpack(Self::NAME, RANKING, args)?.f;
        let [g1, g2] = grads_n::<T, 2>(Self::NAME, grads)?;
        self.forward_backward(x1, x2, t, g.reduction, up, out, g1, g2)
    }
}

// ---------------------------------------------------------------------------------------
// Distances over the last dimension: (input1, input2).

const DISTANCE: &[Param] = &[p("input1", Kind::Input), p("input2", Kind::Input)];

/// A distance's per-row values reduced as a loss would be (the adapters use `None`).
fn reduce_rows<T: Float>(
    g: &Geometry,
    out: &mut [T],
    rows: impl FnOnce(&[T], &mut [T]) -> Result<()>,
    loss: &'static str,
) -> Result<()> {
    if g.reduction == Reduction::None {
        return rows(&[], out);
    }
    crate::reduction::check_buffer(loss, "output", out.len(), 1)?;
    let mut per_row = vec![T::zero(); g.rows];
    rows(&[], &mut per_row)?;
    let sum: f64 = per_row.iter().map(|v| v.f64()).sum();
    out[0] = g.reduction.finish(sum, g.rows);
    Ok(())
}

macro_rules! distance_op {
    ($Ty:ident, $name:literal) => {
        impl Signature for $Ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [Param] = DISTANCE;
            fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
                let (s, _) = shapes_n::<2>($name, DISTANCE, shapes)?;
                distance_geometry($name, s, reduction)
            }
        }

        impl<T: Float> Op<T> for $Ty {
            fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
                let [x1, x2, _] = unpack($name, DISTANCE, args)?.f;
                reduce_rows(g, out, |_, o| self.forward_into(view(g, x1)?, view(g, x2)?, o), $name)
            }
            fn forward_backward_args(
                &self,
                g: &Geometry,
                args: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                grads: &mut [&mut [T]],
            ) -> Result<()> {
                let [x1, x2, _] = unpack($name, DISTANCE, args)?.f;
                let [g1, g2] = grads_n::<T, 2>($name, grads)?;
                if g.reduction == Reduction::None {
                    return self.forward_backward(view(g, x1)?, view(g, x2)?, up, out, g1, g2);
                }
                crate::reduction::check_upstream($name, g.reduction, up.len(), g.rows)?;
                let each = [g.reduction.scale(up[0], g.rows)];
                reduce_rows(
                    g,
                    out,
                    |_, o| self.forward_backward(view(g, x1)?, view(g, x2)?, &each, o, g1, g2),
                    $name,
                )
            }
        }
    };
}

distance_op!(CosineSimilarity, "cosine_similarity");
distance_op!(PairwiseDistance, "pairwise_distance");

// ---------------------------------------------------------------------------------------
// Losses over rows of class scores: input (N, C) or (C,).

const MULTI_MARGIN: &[Param] =
    &[p("input", Kind::Input), p("target", Kind::Index), p("weight", Kind::Weight)];

impl Signature for MultiMargin {
    const NAME: &'static str = "multi_margin";
    const PARAMS: &'static [Param] = MULTI_MARGIN;
    fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
        let ([x, _], w) = shapes_n::<2>(Self::NAME, MULTI_MARGIN, shapes)?;
        class_rows(Self::NAME, x, w, reduction)
    }
}

impl<T: Float> Op<T> for MultiMargin {
    fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
        let u = unpack(Self::NAME, MULTI_MARGIN, args)?;
        self.forward_into(view(g, u.f[0])?, u.index, u.weight, g.reduction, out)
    }
    fn forward_backward_args(
        &self,
        g: &Geometry,
        args: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        grads: &mut [&mut [T]],
    ) -> Result<()> {
        let u = unpack(Self::NAME, MULTI_MARGIN, args)?;
        let [gx] = grads_n::<T, 1>(Self::NAME, grads)?;
        self.forward_backward(view(g, u.f[0])?, u.index, u.weight, g.reduction, up, out, gx)
    }
}

const CLASS_INDEX: &[Param] = &[p("input", Kind::Input), p("target", Kind::Index)];

macro_rules! class_index_op {
    ($Ty:ident, $name:literal) => {
        impl Signature for $Ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [Param] = CLASS_INDEX;
            fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
                let ([x, _], _) = shapes_n::<2>($name, CLASS_INDEX, shapes)?;
                class_rows($name, x, None, reduction)
            }
        }

        impl<T: Float> Op<T> for $Ty {
            fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
                let u = unpack($name, CLASS_INDEX, args)?;
                self.forward_into(view(g, u.f[0])?, u.index, g.reduction, out)
            }
            fn forward_backward_args(
                &self,
                g: &Geometry,
                args: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                grads: &mut [&mut [T]],
            ) -> Result<()> {
                let u = unpack($name, CLASS_INDEX, args)?;
                let [gx] = grads_n::<T, 1>($name, grads)?;
                self.forward_backward(view(g, u.f[0])?, u.index, g.reduction, up, out, gx)
            }
        }
    };
}

class_index_op!(MulticlassHinge, "multiclass_hinge");
class_index_op!(MultilabelMargin, "multilabel_margin");

const MULTILABEL_SOFT: &[Param] =
    &[p("input", Kind::Input), p("target", Kind::Target), p("weight", Kind::Weight)];

impl Signature for MultilabelSoftMargin {
    const NAME: &'static str = "multilabel_soft_margin";
    const PARAMS: &'static [Param] = MULTILABEL_SOFT;
    fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
        let ([x, t], w) = shapes_n::<2>(Self::NAME, MULTILABEL_SOFT, shapes)?;
        let g = class_rows(Self::NAME, x, w, reduction)?;
        same_shape(Self::NAME, ("input", x), ("target", t))?;
        Ok(g)
    }
}

impl<T: Float> Op<T> for MultilabelSoftMargin {
    fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
        let u = unpack(Self::NAME, MULTILABEL_SOFT, args)?;
        self.forward_into(view(g, u.f[0])?, u.f[1], u.weight, g.reduction, out)
    }
    fn forward_backward_args(
        &self,
        g: &Geometry,
        args: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        grads: &mut [&mut [T]],
    ) -> Result<()> {
        let u = unpack(Self::NAME, MULTILABEL_SOFT, args)?;
        let [gx] = grads_n::<T, 1>(Self::NAME, grads)?;
        self.forward_backward(view(g, u.f[0])?, u.f[1], u.weight, g.reduction, up, out, gx)
    }
}

// ---------------------------------------------------------------------------------------
// Losses over three row arguments: pairs (input1, input2, target) and triplets (anchor,
// positive, negative).

const PAIR: &[Param] = RANKING;
const TRIPLET: &[Param] = &[p("anchor", Kind::Input), p("positive", Kind::Input), p("negative", Kind::Input)];

/// A loss whose kernels take three float arguments and a row length; `$rule` is its
/// shape rule and `[$g, …]` names its gradient buffers.
macro_rules! rows3_op {
    ($Ty:ty, $name:literal, $params:ident, $rule:ident, $third:ident, [$($g:ident),+] $(, $bound:tt)?) => {
        impl$(<$bound>)? Signature for $Ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [Param] = $params;
            fn geometry(&self, shapes: &[&[usize]], reduction: Reduction) -> Result<Geometry> {
                let (s, _) = shapes_n::<3>($name, $params, shapes)?;
                $rule($name, s, reduction)
            }
        }

        impl<T: Float $(, $bound: Distance<T>)?> Op<T> for $Ty {
            fn forward_args(&self, g: &Geometry, args: &[Arg<'_, T>], out: &mut [T]) -> Result<()> {
                let [a, b, c] = unpack($name, $params, args)?.f;
                self.forward_into(view(g, a)?, view(g, b)?, $third(g, c)?, g.reduction, out)
            }
            fn forward_backward_args(
                &self,
                g: &Geometry,
                args: &[Arg<'_, T>],
                up: &[T],
                out: &mut [T],
                grads: &mut [&mut [T]],
            ) -> Result<()> {
                let [a, b, c] = unpack($name, $params, args)?.f;
                let [$($g),+] = grads_n($name, grads)?;
                self.forward_backward(view(g, a)?, view(g, b)?, $third(g, c)?, g.reduction, up, out, $($g),+)
            }
        }
    };
}

rows3_op!(CosineEmbedding, "cosine_embedding", PAIR, pair_geometry, flat, [g1, g2]);
rows3_op!(Contrastive, "contrastive", PAIR, pair_geometry, flat, [g1, g2]);
rows3_op!(DistanceHingeEmbedding<D>, "hinge_embedding", PAIR, pair_geometry, flat, [g1, g2], D);
rows3_op!(TripletMargin, "triplet_margin", TRIPLET, triplet_geometry, view, [ga, gp, gn]);
rows3_op!(
    TripletMarginWithDistance<D>,
    "triplet_margin_with_distance",
    TRIPLET,
    triplet_geometry,
    view,
    [ga, gp, gn],
    D
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;
    use crate::{CosineDistance, Labels};

    /// Runs `op` through the description and returns (output, gradients).
    fn run<L: Op<f64>>(
        op: &L,
        shapes: &[&[usize]],
        args: &[Arg<'_, f64>],
        r: Reduction,
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
        let g = op.geometry(shapes, r)?;
        let mut out = vec![0.0; g.output_len()];
        op.forward_args(&g, args, &mut out)?;
        let mut grads: Vec<Vec<f64>> = L::PARAMS
            .iter()
            .zip(shapes)
            .filter(|(p, _)| p.kind.has_grad())
            .map(|(_, s)| vec![0.0; s.iter().product()])
            .collect();
        let mut refs: Vec<&mut [f64]> = grads.iter_mut().map(|v| &mut v[..]).collect();
        let mut out2 = vec![0.0; g.output_len()];
        op.forward_backward_args(&g, args, &[1.0], &mut out2, &mut refs)?;
        assert_eq!(out, out2, "{}: forward == forward_backward", L::NAME);
        Ok((out, grads))
    }

    #[test]
    fn every_loss_runs_through_its_description_as_through_its_own_methods() {
        let x = [0.3f64, -1.2, 0.7, 2.0, -0.1, 0.4];
        let y = [0.1f64, 0.5, -0.3, 1.1, 0.9, -0.6];
        let z = [-0.4f64, 0.2, 0.8, -1.0, 0.3, 0.6];
        let pm = [1.0f64, -1.0];
        let (f, fy, fz) = (Arg::Float(&x[..]), Arg::Float(&y[..]), Arg::Float(&z[..]));
        let pm6 = [1.0, -1.0, -1.0, 1.0, 1.0, -1.0];
        let r = Reduction::Mean;

        let (v, g) = run(&Hinge::new(), &[&[2, 3], &[2, 3]], &[f, Arg::Float(&pm6)], r).unwrap();
        let (mut o, mut gx) = ([0.0], [0.0; 6]);
        Hinge::new().forward_backward(&x, &pm6, r, &[1.0], &mut o, &mut gx).unwrap();
        assert_eq!((v, g), (o.to_vec(), vec![gx.to_vec()]));

        let (v, g) = run(&MarginRanking::new(), &[&[6], &[6], &[6]], &[f, fy, Arg::Float(&pm6)], r).unwrap();
        let (mut o, mut g1, mut g2) = ([0.0], [0.0; 6], [0.0; 6]);
        MarginRanking::new().forward_backward(&x, &y, &pm6, r, &[1.0], &mut o, &mut g1, &mut g2).unwrap();
        assert_eq!((v, g), (o.to_vec(), vec![g1.to_vec(), g2.to_vec()]));

        let (v, g) = run(&CosineSimilarity::new(), &[&[2, 3], &[2, 3]], &[f, fy], Reduction::None).unwrap();
        let (mut o, mut g1, mut g2) = ([0.0; 2], [0.0; 6], [0.0; 6]);
        CosineSimilarity::new()
            .forward_backward(mat(&x, 3), mat(&y, 3), &[1.0], &mut o, &mut g1, &mut g2)
            .unwrap();
        assert_eq!((v, g), (o.to_vec(), vec![g1.to_vec(), g2.to_vec()]));

        let t = [2i64, 0];
        let w = [0.5, 1.0, 2.0];
        let args = [f, Arg::Index(&t), Arg::Float(&w)];
        let (v, g) = run(&MultiMargin::new(), &[&[2, 3], &[2], &[3]], &args, r).unwrap();
        let (mut o, mut gx) = ([0.0], [0.0; 6]);
        MultiMargin::new().forward_backward(mat(&x, 3), &t, Some(&w), r, &[1.0], &mut o, &mut gx).unwrap();
        assert_eq!((v, g), (o.to_vec(), vec![gx.to_vec()]));

        let tgt = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let (v, _) =
            run(&MultilabelSoftMargin::new(), &[&[2, 3], &[2, 3]], &[f, Arg::Float(&tgt)], r).unwrap();
        assert_eq!(v, MultilabelSoftMargin::new().forward(mat(&x, 3), &tgt, None, r).unwrap().into_vec());

        let (v, _) = run(&MulticlassHinge::new(), &[&[2, 3], &[2]], &[f, Arg::Index(&t)], r).unwrap();
        assert_eq!(v, MulticlassHinge::new().forward(mat(&x, 3), &t, r).unwrap().into_vec());

        let (v, _) =
            run(&Contrastive::new(), &[&[2, 3], &[2, 3], &[2]], &[f, fy, Arg::Float(&pm)], r).unwrap();
        assert_eq!(v, Contrastive::new().forward(mat(&x, 3), mat(&y, 3), &pm, r).unwrap().into_vec());

        let he = HingeEmbedding::new().margin(0.2).labels(Labels::PlusMinusOne).on(CosineDistance::default());
        let (v, _) = run(&he, &[&[2, 3], &[2, 3], &[2]], &[f, fy, Arg::Float(&pm)], r).unwrap();
        assert_eq!(v, he.forward(mat(&x, 3), mat(&y, 3), &pm, r).unwrap().into_vec());

        let (v, g) = run(&TripletMargin::new(), &[&[2, 3][..]; 3], &[f, fy, fz], Reduction::None).unwrap();
        assert_eq!(
            v,
            TripletMargin::new()
                .forward(mat(&x, 3), mat(&y, 3), mat(&z, 3), Reduction::None)
                .unwrap()
                .into_vec()
        );
        assert_eq!(g.len(), 3);

        let twd = TripletMarginWithDistance::cosine();
        let (v, _) = run(&twd, &[&[6], &[6], &[6]], &[f, fy, fz], Reduction::None).unwrap();
        assert_eq!(v, twd.forward(mat(&x, 6), mat(&y, 6), mat(&z, 6), Reduction::None).unwrap().into_vec());
    }

    #[test]
    fn a_reduced_distance_is_the_mean_of_its_rows_with_the_gradient_scaled() {
        let x = [3.0f64, 4.0, 0.0, 1.0];
        let y = [0.0f64; 4];
        let d = PairwiseDistance::new().eps(0.0);
        let (v, g) =
            run(&d, &[&[2, 2], &[2, 2]], &[Arg::Float(&x), Arg::Float(&y)], Reduction::Mean).unwrap();
        assert_eq!(v, vec![3.0]);
        // ½·(3, 4)/5 and ½·(0, 1)/1.
        for (got, want) in g[0].iter().zip([0.3, 0.4, 0.0, 0.5]) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
    }

    #[test]
    fn shape_rules_name_the_argument_and_what_was_expected() {
        let e = Hinge::new().geometry(&[&[3], &[2]], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "hinge: target has shape [2] but input has shape [3]");
        let e = TripletMargin::new().geometry(&[&[2, 3], &[2, 3], &[3, 2]], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "triplet_margin: negative has shape [3, 2] but anchor has shape [2, 3]");
        let e = Contrastive::new().geometry(&[&[4, 3], &[4, 3], &[3]], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "contrastive: target has shape [3] but one value per row of input1 (4)");
        let e = MultiMargin::new().geometry(&[&[2, 3, 1], &[2]], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multi_margin: input has shape [2, 3, 1] but an input of shape (N, C) or (C,)"
        );
        let e = MultiMargin::new().geometry(&[&[2, 3], &[2], &[2]], Reduction::Mean).unwrap_err();
        assert_eq!(e.to_string(), "multi_margin: weight has shape [2] but one weight per class ([3])");
        let e = CosineSimilarity::new().geometry(&[&[], &[]], Reduction::None).unwrap_err();
        assert_eq!(e.to_string(), "cosine_similarity: input1 has shape [] but rows of at least one element");
        let e = Hinge::new().geometry(&[&[3]], Reduction::Mean).unwrap_err();
        assert!(e.to_string().contains("target") && e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn geometry_gives_rows_row_length_and_result_shape() {
        let g = TripletMargin::new().geometry(&[&[4, 8][..]; 3], Reduction::None).unwrap();
        assert_eq!((g.rows, g.row_len, g.output_shape()), (4, 8, &[4][..]));
        let g = MultiMargin::new().geometry(&[&[5], &[1]], Reduction::None).unwrap();
        assert_eq!((g.rows, g.row_len, g.output_shape()), (1, 5, &[][..]));
        let g = PairwiseDistance::new().geometry(&[&[2, 3, 4], &[2, 3, 4]], Reduction::None).unwrap();
        assert_eq!((g.rows, g.row_len, g.output_shape()), (6, 4, &[2, 3][..]));
        let g = Hinge::new().geometry(&[&[2, 3], &[2, 3]], Reduction::Sum).unwrap();
        assert_eq!((g.rows, g.output_len()), (6, 1));
        assert_eq!(<TripletMargin as Signature>::grad_count(), 3);
        assert_eq!(<MultiMargin as Signature>::grad_count(), 1);
    }

    #[test]
    fn wrong_argument_variants_and_gradient_counts_are_errors() {
        let x = [0.5f64, 1.0];
        let l = Hinge::new();
        let g = l.geometry(&[&[2], &[2]], Reduction::Mean).unwrap();
        let t = [1i64, 0];
        let e = l.forward_args(&g, &[Arg::Float(&x), Arg::Index(&t)], &mut [0.0]).unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        let e = l
            .forward_backward_args(&g, &[Arg::Float(&x), Arg::Float(&x)], &[1.0], &mut [0.0], &mut [])
            .unwrap_err();
        assert!(e.to_string().contains("gradient list"), "{e}");
        let m = MultiMargin::new();
        let g = m.geometry(&[&[1, 2], &[1]], Reduction::Mean).unwrap();
        let e = m.forward_args(&g, &[Arg::Float(&x), Arg::Float(&x)], &mut [0.0]).unwrap_err();
        assert!(e.to_string().contains("class indices"), "{e}");
    }
}
