//! Metric learning from a batch: `(embeddings, labels) → loss` with the tuples mined
//! inside the batch, as burn ops with autodiff through the core's fused kernel
//! ([`marginloss::batch`]: the formulas, reductions, distances, ties and strict-mode
//! errors are the core's and documented there).
//!
//! | function | core type | tuples |
//! |---|---|---|
//! | [`batch_hard_triplet`] | [`BatchHardTriplet`] | per anchor: farthest positive, nearest negative |
//! | [`batch_all_triplet`] | [`BatchAllTriplet`] | every `(a, p, n)` |
//! | [`semihard_triplet`] | [`SemihardTriplet`] | per positive pair: TF-Addons' semi-hard negative |
//! | [`pair_contrastive`] | [`PairContrastive`] | every ordered pair `i ≠ j` |
//!
//! ## Arguments and result
//!
//! * `embeddings`: a `Tensor<2>` `(N, D)`. f32 and f64 compute in their own type; f16,
//!   bf16 and any other float dtype compute in f32, the result and gradient stored back in
//!   the input's dtype (as every other function of this crate). Strided views are made
//!   contiguous first.
//! * `labels`: a `Tensor<1, Int>` `(N)` of any integer dtype, on any device; it is read to
//!   the host, only compared for equality and gets no gradient.
//! * The result: a `Tensor<1>` of shape `[1]` for [`BatchReduction::Mean`],
//!   [`MeanNonzero`](BatchReduction::MeanNonzero) and [`Sum`](BatchReduction::Sum) (burn has
//!   no rank-0 tensors), `[N]` (one value per anchor) for [`BatchReduction::None`].
//!
//! ## How it runs
//!
//! A burn backend extension (`#[backend_extension(Flex, Autodiff)]`, as the crate's other
//! fused losses) runs the core kernel on the embeddings' host slice. On an autodiff
//! device, when the embeddings are tracked, the forward runs the core's fused
//! `forward_backward` **once** with upstream 1 (the same loss value as `forward`,
//! bitwise) and a custom autodiff `Backward` node keeps the gradient:
//!
//! * a backward whose upstream is all ones (`loss.backward()` on a scalar reduction, or
//!   `loss.sum().backward()` on [`BatchReduction::None`]) takes it without visiting the
//!   data again;
//! * any other upstream (a scalar `u ≠ 1`, or per-anchor values for `None`), or a second
//!   backward, reruns the core's `forward_backward` with that upstream.
//!
//! So the gradient is exactly the core's, for every reduction including `None`.
//! Untracked (plain `Device::flex()`, or embeddings without `require_grad`), the forward
//! alone runs. There is no composed burn-op path for the mining: embeddings on another
//! backend travel to Flex and the loss travels back (both moves differentiable).
//!
//! ## Errors
//!
//! The core's [`marginloss::Error`], never a panic: label count ≠ N, and in
//! [`Mode::Strict`](crate::Mode::Strict) a batch with no positive pair or no negative,
//! NaN/±Inf, `N = 0`, `D = 0`, a non-finite margin, … (the rank and element kinds are fixed
//! by the argument types).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex};
use burn::tensor::{DType, Element, Int, Shape, Tensor, TensorData};
use marginloss::batch::{Batch, BatchLabel, BatchStats, Workspace};
pub use marginloss::batch::{
    BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive, Reference,
    SemihardTriplet,
};
use marginloss::{Error, Float, Result, Rows};

use crate::op::is_flex;

/// A batch loss of the core: its name and its two entry points.
trait BatchLoss: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    fn forward<T: Float, L: BatchLabel>(
        &self,
        batch: &Batch<'_, T, L>,
        reduction: BatchReduction,
    ) -> Result<marginloss::Output<T>>;
    #[allow(clippy::too_many_arguments)]
    fn forward_backward<T: Float, L: BatchLabel>(
        &self,
        batch: &Batch<'_, T, L>,
        reduction: BatchReduction,
        upstream: &[T],
        out: &mut [T],
        grad: &mut [T],
        workspace: &mut Workspace<T>,
    ) -> Result<BatchStats>;
}

macro_rules! batch_loss {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl BatchLoss for $ty {
            const NAME: &'static str = $name;
            fn forward<T: Float, L: BatchLabel>(
                &self,
                batch: &Batch<'_, T, L>,
                reduction: BatchReduction,
            ) -> Result<marginloss::Output<T>> {
                <$ty>::forward(self, batch, reduction)
            }
            fn forward_backward<T: Float, L: BatchLabel>(
                &self,
                batch: &Batch<'_, T, L>,
                reduction: BatchReduction,
                upstream: &[T],
                out: &mut [T],
                grad: &mut [T],
                workspace: &mut Workspace<T>,
            ) -> Result<BatchStats> {
                <$ty>::forward_backward(self, batch, reduction, upstream, out, grad, None, workspace)
            }
        }
    )*};
}

batch_loss!(
    BatchHardTriplet => "batch_hard_triplet",
    BatchAllTriplet => "batch_all_triplet",
    SemihardTriplet => "semihard_triplet",
    PairContrastive => "pair_contrastive",
);

/// The loss values and, when an upstream was given, the gradient.
type Outcome<T> = (Vec<T>, Option<Vec<T>>);

/// The core's kernel on host slices: `forward` (`up = None`) or the fused
/// `forward_backward` with upstream `up`.
fn kernel<B: BatchLoss, T: Float>(
    loss: &B,
    x: &[T],
    (n, d): (usize, usize),
    labels: &[i64],
    reduction: BatchReduction,
    up: Option<&[T]>,
) -> Result<Outcome<T>> {
    let batch = Batch::new(Rows::new(x, n, d)?, labels);
    match up {
        None => Ok((loss.forward(&batch, reduction)?.into_vec(), None)),
        Some(up) => {
            let mut out = vec![T::zero(); reduction.output_len(n)];
            let mut grad = vec![T::zero(); n * d];
            let mut ws = Workspace::new();
            loss.forward_backward(&batch, reduction, up, &mut out, &mut grad, &mut ws)?;
            Ok((out, Some(grad)))
        }
    }
}

/// [`BatchLoss`] as an object (the extension method takes one loss-independent argument).
trait DynBatch: Send + Sync {
    fn name(&self) -> &'static str;
    fn run_f32(
        &self,
        x: &[f32],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f32]>,
    ) -> Result<Outcome<f32>>;
    fn run_f64(
        &self,
        x: &[f64],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f64]>,
    ) -> Result<Outcome<f64>>;
}

impl<B: BatchLoss> DynBatch for B {
    fn name(&self) -> &'static str {
        B::NAME
    }
    fn run_f32(
        &self,
        x: &[f32],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f32]>,
    ) -> Result<Outcome<f32>> {
        kernel(self, x, nd, labels, reduction, up)
    }
    fn run_f64(
        &self,
        x: &[f64],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f64]>,
    ) -> Result<Outcome<f64>> {
        kernel(self, x, nd, labels, reduction, up)
    }
}

/// The element types of the fused kernel (f32 and f64), with their burn dtype and their
/// [`DynBatch`] entry point.
trait Elem: Float + Element + bytemuck::Pod {
    const BURN: DType;
    fn go(
        op: &dyn DynBatch,
        x: &[Self],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[Self]>,
    ) -> Result<Outcome<Self>>;
}

impl Elem for f32 {
    const BURN: DType = DType::F32;
    fn go(
        op: &dyn DynBatch,
        x: &[f32],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f32]>,
    ) -> Result<Outcome<f32>> {
        op.run_f32(x, nd, labels, reduction, up)
    }
}

impl Elem for f64 {
    const BURN: DType = DType::F64;
    fn go(
        op: &dyn DynBatch,
        x: &[f64],
        nd: (usize, usize),
        labels: &[i64],
        reduction: BatchReduction,
        up: Option<&[f64]>,
    ) -> Result<Outcome<f64>> {
        op.run_f64(x, nd, labels, reduction, up)
    }
}

/// One call of a batch loss: the loss, the labels (on the host), the embeddings' shape,
/// the reduction, and the slot where the backend implementation leaves a core error (an
/// extension method returns a tensor, not a `Result`).
#[derive(Clone)]
pub struct BatchCall {
    op: Arc<dyn DynBatch>,
    labels: Arc<[i64]>,
    n: usize,
    d: usize,
    reduction: BatchReduction,
    error: Arc<Mutex<Option<Error>>>,
}

impl fmt::Debug for BatchCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchCall")
            .field("op", &self.op.name())
            .field("n", &self.n)
            .field("d", &self.d)
            .field("reduction", &self.reduction)
            .finish()
    }
}

impl BatchCall {
    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn take_error(&self) -> Option<Error> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }

    fn out_shape(&self) -> Shape {
        Shape::from(vec![self.reduction.output_len(self.n)])
    }
}

/// A tensor's data as a `T` slice (borrowed when it is contiguous and already `T`).
fn host<T: Elem>(t: &FlexTensor) -> Cow<'_, [T]> {
    match t.as_slice::<T>() {
        Some(s) => Cow::Borrowed(s),
        None => {
            let data = t.to_contiguous().into_data().convert::<T>();
            Cow::Owned(data.as_slice::<T>().map(<[T]>::to_vec).unwrap_or_default())
        }
    }
}

/// A host vector as a Flex tensor of `shape`, stored in `dtype`.
fn flex_of<T: Elem>(v: Vec<T>, shape: Shape, dtype: DType) -> FlexTensor {
    let data = TensorData::new(v, shape);
    if dtype == T::BURN {
        FlexTensor::from_data(data)
    } else {
        FlexTensor::from_data(data.convert_dtype(dtype))
    }
}

/// What an upstream gradient is: ones (the forward's own pass) or given values.
enum Upstream {
    Ones,
    Values(FlexTensor),
}

/// The loss and, with an upstream, the gradient, as Flex tensors in `dtype`.
type FlexOutcome = (FlexTensor, Option<FlexTensor>);

fn run_typed<T: Elem>(call: &BatchCall, x: &FlexTensor, up: Option<&Upstream>) -> Result<FlexOutcome> {
    let dtype = x.dtype();
    let data = host::<T>(x);
    let ones = [T::one()];
    let values;
    let up: Option<&[T]> = match up {
        None => None,
        Some(Upstream::Ones) => Some(&ones),
        Some(Upstream::Values(u)) => {
            values = host::<T>(u);
            Some(&values)
        }
    };
    let nd = (call.n, call.d);
    let (out, grad) = T::go(&*call.op, &data, nd, &call.labels, call.reduction, up)?;
    let grad = grad.map(|g| flex_of(g, Shape::from(vec![call.n, call.d]), dtype));
    Ok((flex_of(out, call.out_shape(), dtype), grad))
}

/// Runs `call` in the embeddings' dtype (f64 in f64, everything else in f32).
fn run(call: &BatchCall, x: &FlexTensor, up: Option<&Upstream>) -> Result<FlexOutcome> {
    if x.dtype() == DType::F64 {
        run_typed::<f64>(call, x, up)
    } else {
        run_typed::<f32>(call, x, up)
    }
}

/// The forward on Flex; a core error goes to the call's slot and the result is zeros of
/// the output shape (discarded by the public function).
fn forward_flex(call: &BatchCall, x: &FlexTensor) -> FlexTensor {
    match run(call, x, None) {
        Ok((out, _)) => out,
        Err(e) => {
            call.fail(e);
            FlexTensor::zeros(call.out_shape(), x.dtype())
        }
    }
}

/// The backend extension: a batch loss over the embeddings.
#[backend_extension(Flex, Autodiff)]
pub trait BatchBackend: burn::backend::Backend {
    /// A batch loss of the embeddings `x` (`call` says which; the labels travel in it).
    fn marginloss_batch(x: FloatTensor<Self>, call: BatchCall) -> FloatTensor<Self>;
}

impl BatchBackend for Flex {
    fn marginloss_batch(x: FlexTensor, call: BatchCall) -> FlexTensor {
        forward_flex(&call, &x)
    }
}

/// The custom autodiff node of a batch loss.
#[derive(Debug)]
struct BatchBackward;

/// What the node keeps: the call, the (contiguous) embeddings for a rerun, and the
/// gradient the forward computed for an upstream of ones (taken by the first backward).
#[derive(Clone, Debug)]
struct BatchState {
    call: BatchCall,
    x: FlexTensor,
    cached: Arc<Mutex<Option<FlexTensor>>>,
}

impl BatchState {
    /// The gradient for upstream `up`: the forward's (all ones, the first time), else a
    /// rerun of the fused kernel with `up`.
    fn grad(&self, up: FlexTensor) -> Option<FlexTensor> {
        let ones = if up.dtype() == DType::F64 {
            host::<f64>(&up).iter().all(|&u| u == 1.0)
        } else {
            host::<f32>(&up).iter().all(|&u| u == 1.0)
        };
        if ones {
            if let Some(g) = self.cached.lock().ok().and_then(|mut c| c.take()) {
                return Some(g);
            }
        }
        let up = if ones { Upstream::Ones } else { Upstream::Values(up) };
        // The forward accepted these inputs, so the core cannot refuse them now; should it,
        // no gradient is better than a wrong one.
        run(&self.call, &self.x, Some(&up)).ok().and_then(|(_, g)| g)
    }
}

impl Backward<Flex, 1> for BatchBackward {
    type State = BatchState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let up = grads.consume::<Flex>(&ops.node);
        let g = ops.state.grad(up);
        let [parent] = ops.parents;
        if let (Some(node), Some(g)) = (parent, g) {
            grads.register::<Flex>(node.id, g);
        }
    }
}

impl<C: CheckpointStrategy> BatchBackend for Autodiff<Flex, C> {
    fn marginloss_batch(x: FloatTensor<Self>, call: BatchCall) -> FloatTensor<Self> {
        match BatchBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive().to_contiguous();
                let (out, cached) = match run(&call, &x, Some(&Upstream::Ones)) {
                    Ok((out, g)) => (out, g),
                    Err(e) => {
                        let dtype = x.dtype();
                        call.fail(e);
                        (FlexTensor::zeros(call.out_shape(), dtype), None)
                    }
                };
                let state = BatchState { call, x, cached: Arc::new(Mutex::new(cached)) };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward_flex(&call, &x.into_primitive())),
        }
    }
}

/// Reads the labels, runs the loss through the extension, and returns the core's error if
/// the kernel refused the batch.
fn apply<B: BatchLoss>(
    loss: B,
    reduction: BatchReduction,
    embeddings: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Result<Tensor<1>> {
    let dev = embeddings.device();
    if !is_flex(&dev) {
        let flex = burn::tensor::Device::flex();
        let flex = if dev.is_autodiff() { flex.autodiff() } else { flex };
        return apply(loss, reduction, embeddings.to_device(&flex), labels).map(|l| l.to_device(&dev));
    }
    let [n, d] = embeddings.dims();
    let labels: Vec<i64> = labels.into_data().try_into_vec_as::<i64>().map_err(|e| Error::Batch {
        loss: B::NAME,
        problem: format!("labels could not be read as integers ({e:?})"),
        fix: "pass the class labels as a Tensor<1, Int>",
    })?;
    let call = BatchCall {
        op: Arc::new(loss),
        labels: labels.into(),
        n,
        d,
        reduction,
        error: Arc::new(Mutex::new(None)),
    };
    let out = <Dispatch as BatchBackend>::marginloss_batch(embeddings.into_dispatch(), call.clone());
    match call.take_error() {
        Some(e) => Err(e),
        None => Ok(Tensor::from_dispatch(out)),
    }
}

/// The batch-hard triplet loss (Hermans, Beyer & Leibe 2017; core: [`BatchHardTriplet`],
/// which documents the semantics): per anchor `a` with a positive and a negative,
/// `max(0, max_p d(a, p) − min_n d(a, n) + margin)` (or its soft variant), reduced by
/// `reduction` ([`BatchReduction::Mean`]: over those anchors).
///
/// `embeddings` `(N, D)`, `labels` `(N)` integers; the result is `[1]`, or `[N]` for
/// [`BatchReduction::None`]. Only `embeddings` gets a gradient, exactly the core's fused
/// `forward_backward`'s; see the [module docs](self).
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use marginloss_burn::{batch_hard_triplet, BatchHardTriplet, BatchReduction};
/// let dev = Device::flex().autodiff();
/// // Two classes on a line: rows 0, 1 are class 0 at 0 and 1; rows 2, 3 class 1 at 1.5 and 3.
/// let e = Tensor::<2>::from_floats([[0.0], [1.0], [1.5], [3.0]], &dev).require_grad();
/// let y = Tensor::<1, Int>::from_ints([0, 0, 1, 1], &dev);
/// let loss = batch_hard_triplet(e.clone(), y, BatchHardTriplet::new().margin(1.0), BatchReduction::Sum)?;
/// // anchors: max(0, 1 − 1.5 + 1) + max(0, 1 − 0.5 + 1) + max(0, 1.5 − 0.5 + 1) + max(0, 1.5 − 2 + 1)
/// let v = loss.to_data().try_to_vec_as::<f64>().expect("values");
/// assert_eq!(loss.dims(), [1]);
/// assert!((v[0] - 4.5).abs() < 1e-6);
/// let grads = loss.backward();
/// assert_eq!(e.grad(&grads).expect("a gradient").dims(), [4, 1]);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// The core's errors: label count ≠ N, and in strict mode a batch without a positive pair
/// or a negative, NaN/±Inf, `N = 0` or `D = 0`, a non-finite margin.
pub fn batch_hard_triplet(
    embeddings: Tensor<2>,
    labels: Tensor<1, Int>,
    loss: BatchHardTriplet,
    reduction: BatchReduction,
) -> Result<Tensor<1>> {
    apply(loss, reduction, embeddings, labels)
}

/// The batch-all triplet loss (core: [`BatchAllTriplet`], which documents the semantics):
/// `max(0, d(a, p) − d(a, n) + margin)` over every valid triplet of the batch, reduced by
/// `reduction` ([`BatchReduction::Mean`]: over all valid triplets). Shapes and gradient as
/// [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet`].
pub fn batch_all_triplet(
    embeddings: Tensor<2>,
    labels: Tensor<1, Int>,
    loss: BatchAllTriplet,
    reduction: BatchReduction,
) -> Result<Tensor<1>> {
    apply(loss, reduction, embeddings, labels)
}

/// TensorFlow Addons' semi-hard triplet loss (core: [`SemihardTriplet`], which documents
/// the semantics): per positive pair `(a, p)`, `max(0, d(a, p) − d(a, n) + margin)` with
/// `n` the nearest negative farther than `p`, else the farthest negative, reduced by
/// `reduction` ([`BatchReduction::Mean`]: over the positive pairs). Shapes and gradient as
/// [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet`].
pub fn semihard_triplet(
    embeddings: Tensor<2>,
    labels: Tensor<1, Int>,
    loss: SemihardTriplet,
    reduction: BatchReduction,
) -> Result<Tensor<1>> {
    apply(loss, reduction, embeddings, labels)
}

/// pytorch-metric-learning's `ContrastiveLoss` over every ordered pair of the batch (core:
/// [`PairContrastive`], which documents the semantics): `max(0, d − pos_margin)` for
/// positive pairs, `max(0, neg_margin − d)` for negative pairs, the two parts reduced
/// separately by `reduction` and added. Shapes and gradient as [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet`].
pub fn pair_contrastive(
    embeddings: Tensor<2>,
    labels: Tensor<1, Int>,
    loss: PairContrastive,
    reduction: BatchReduction,
) -> Result<Tensor<1>> {
    apply(loss, reduction, embeddings, labels)
}
