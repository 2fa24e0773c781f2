//! The generic fused op: one burn backend extension (`MarginBackend`, two methods for two-
//! and three-tensor losses) whose Flex implementation runs a core marginloss kernel on the
//! tensors' host slices, and whose `Autodiff<Flex>` implementation records one custom
//! `Backward` node that hands out the gradients the forward already computed.
//!
//! A loss enters through the core's description of it ([`marginloss::op`]: its arguments
//! in PyTorch's order, which get gradients, its shape rule and its kernels on slices);
//! everything here is loss-independent.

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
use burn::backend::{
    backend_extension, BackendTensor, Dispatch, DispatchDevice, DispatchTensor, DispatchTensorKind, Flex,
};
use burn::tensor::{DType, Device, Element, Int, Shape, Tensor, TensorData};
use marginloss::op::{Arg, Geometry, Kind, Op, Param, Signature};
use marginloss::{Float, Reduction};

/// The element types of the fused kernels (f32 and f64), with their burn dtype.
trait Elem: Float + Element + bytemuck::Pod {
    /// burn's dtype of `Self`.
    const BURN: DType;
}

impl Elem for f32 {
    const BURN: DType = DType::F32;
}

impl Elem for f64 {
    const BURN: DType = DType::F64;
}

/// A loss or distance the adapter runs: the core's description of it
/// ([`Signature`](marginloss::op::Signature): name, arguments in PyTorch's order, shape
/// rule) and its fused kernels on both element types ([`Op`](marginloss::op::Op)).
/// Every core loss and distance options struct is one.
pub trait Loss: Signature + Op<f32> + Op<f64> + Clone + Send + Sync + 'static {}

impl<L: Signature + Op<f32> + Op<f64> + Clone + Send + Sync + 'static> Loss for L {}

/// [`Loss`] as an object (the extension method takes one loss-independent argument).
trait DynOp: Send + Sync {
    fn name(&self) -> &'static str;
    fn params(&self) -> &'static [Param];
    fn fwd_f32(&self, g: &Geometry, a: &[Arg<'_, f32>], out: &mut [f32]) -> marginloss::Result<()>;
    fn fwd_f64(&self, g: &Geometry, a: &[Arg<'_, f64>], out: &mut [f64]) -> marginloss::Result<()>;
    fn fwd_bwd_f32(
        &self,
        g: &Geometry,
        a: &[Arg<'_, f32>],
        up: &[f32],
        out: &mut [f32],
        grads: &mut [&mut [f32]],
    ) -> marginloss::Result<()>;
    fn fwd_bwd_f64(
        &self,
        g: &Geometry,
        a: &[Arg<'_, f64>],
        up: &[f64],
        out: &mut [f64],
        grads: &mut [&mut [f64]],
    ) -> marginloss::Result<()>;
}

impl<L: Loss> DynOp for L {
    fn name(&self) -> &'static str {
        L::NAME
    }
    fn params(&self) -> &'static [Param] {
        L::PARAMS
    }
    fn fwd_f32(&self, g: &Geometry, a: &[Arg<'_, f32>], out: &mut [f32]) -> marginloss::Result<()> {
        self.forward_args(g, a, out)
    }
    fn fwd_f64(&self, g: &Geometry, a: &[Arg<'_, f64>], out: &mut [f64]) -> marginloss::Result<()> {
        self.forward_args(g, a, out)
    }
    fn fwd_bwd_f32(
        &self,
        g: &Geometry,
        a: &[Arg<'_, f32>],
        up: &[f32],
        out: &mut [f32],
        grads: &mut [&mut [f32]],
    ) -> marginloss::Result<()> {
        self.forward_backward_args(g, a, up, out, grads)
    }
    fn fwd_bwd_f64(
        &self,
        g: &Geometry,
        a: &[Arg<'_, f64>],
        up: &[f64],
        out: &mut [f64],
        grads: &mut [&mut [f64]],
    ) -> marginloss::Result<()> {
        self.forward_backward_args(g, a, up, out, grads)
    }
}

/// The element-type-specific entry points of [`DynOp`], so that the runner is generic.
trait Run: Elem {
    fn fwd(op: &dyn DynOp, g: &Geometry, a: &[Arg<'_, Self>], out: &mut [Self]) -> marginloss::Result<()>;
    fn fwd_bwd(
        op: &dyn DynOp,
        g: &Geometry,
        a: &[Arg<'_, Self>],
        up: &[Self],
        out: &mut [Self],
        grads: &mut [&mut [Self]],
    ) -> marginloss::Result<()>;
}

macro_rules! run_impl {
    ($t:ty, $fwd:ident, $fwd_bwd:ident) => {
        impl Run for $t {
            fn fwd(
                op: &dyn DynOp,
                g: &Geometry,
                a: &[Arg<'_, $t>],
                out: &mut [$t],
            ) -> marginloss::Result<()> {
                op.$fwd(g, a, out)
            }
            fn fwd_bwd(
                op: &dyn DynOp,
                g: &Geometry,
                a: &[Arg<'_, $t>],
                up: &[$t],
                out: &mut [$t],
                grads: &mut [&mut [$t]],
            ) -> marginloss::Result<()> {
                op.$fwd_bwd(g, a, up, out, grads)
            }
        }
    };
}
run_impl!(f32, fwd_f32, fwd_bwd_f32);
run_impl!(f64, fwd_f64, fwd_bwd_f64);

/// One call of a fused loss: the loss, the geometry its shape rule gave, its class
/// indices, the burn result shape, and the slot where the backend implementation leaves a
/// core error (an extension method returns a tensor, not a `Result`; the caller reads the
/// slot when the call returns, which on the eager Flex backend is after the kernel ran).
#[derive(Clone)]
pub struct Call {
    op: Arc<dyn DynOp>,
    geometry: Geometry,
    idx: Indices,
    out_shape: Shape,
    error: Arc<Mutex<Option<marginloss::Error>>>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("op", &self.op.name())
            .field("geometry", &self.geometry)
            .field("out_shape", &self.out_shape)
            .finish()
    }
}

impl Call {
    fn fail(&self, e: marginloss::Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn take_error(&self) -> Option<marginloss::Error> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The float arguments' data as `T` slices (borrowed when the dtype is already `T`).
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

/// The gradients of one fused call: one per argument, `None` for arguments without one.
type Grads = Vec<Option<FlexTensor>>;

/// Runs `call` on Flex tensors in `T` (`floats`: the float arguments in PyTorch's order;
/// the class indices are in the call): the forward alone (`up = None`), or the fused
/// forward-backward with upstream `up` (one value, or one per output element), returning
/// a gradient for each float argument that receives one.
fn run_typed<T: Run>(
    call: &Call,
    floats: &[FlexTensor],
    up: Option<&[T]>,
    dtype: DType,
) -> marginloss::Result<(FlexTensor, Grads)> {
    let data: Vec<Cow<'_, [T]>> = floats.iter().map(host::<T>).collect();
    let mut slices = data.iter().map(|c| &c[..]);
    // The arguments in the description's order; an absent optional weight ends the list.
    let mut args = Vec::with_capacity(3);
    let mut has_grad = Vec::with_capacity(floats.len());
    for param in call.op.params() {
        if param.kind == Kind::Index {
            args.push(Arg::Index(call.idx.as_slice()));
        } else if let Some(s) = slices.next() {
            args.push(Arg::Float(s));
            has_grad.push(param.kind.has_grad());
        }
    }
    let mut out = vec![T::zero(); call.geometry.output_len()];
    let op = &*call.op;
    let g = &call.geometry;
    let Some(up) = up else {
        T::fwd(op, g, &args, &mut out)?;
        return Ok((flex_of(out, call.out_shape.clone(), dtype), Vec::new()));
    };
    let mut bufs: Vec<Vec<T>> =
        data.iter().zip(&has_grad).filter(|(_, &gr)| gr).map(|(s, _)| vec![T::zero(); s.len()]).collect();
    {
        let mut refs: Vec<&mut [T]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        T::fwd_bwd(op, g, &args, up, &mut out, &mut refs)?;
    }
    drop(args);
    let mut bufs = bufs.into_iter();
    let grads = floats
        .iter()
        .zip(&has_grad)
        .map(|(t, &gr)| {
            gr.then(|| flex_of(bufs.next().unwrap_or_default(), t.layout().shape().clone(), dtype))
        })
        .collect();
    Ok((flex_of(out, call.out_shape.clone(), dtype), grads))
}

/// What an upstream gradient asks for: the cached gradients (all ones) or a rerun.
enum Upstream {
    Ones,
    Values(FlexTensor),
}

/// Runs `call` on Flex tensors in their dtype (f16/bf16 and any other float type in
/// f32), the forward alone or with gradients for `up`.
fn run(call: &Call, args: &[FlexTensor], up: Option<&Upstream>) -> marginloss::Result<(FlexTensor, Grads)> {
    let dtype = args[0].dtype();
    if dtype == DType::F64 {
        match up {
            None => run_typed::<f64>(call, args, None, dtype),
            Some(Upstream::Ones) => run_typed::<f64>(call, args, Some(&[1.0]), dtype),
            Some(Upstream::Values(u)) => run_typed::<f64>(call, args, Some(&host::<f64>(u)), dtype),
        }
    } else {
        match up {
            None => run_typed::<f32>(call, args, None, dtype),
            Some(Upstream::Ones) => run_typed::<f32>(call, args, Some(&[1.0]), dtype),
            Some(Upstream::Values(u)) => run_typed::<f32>(call, args, Some(&host::<f32>(u)), dtype),
        }
    }
}

/// The forward on Flex tensors; a core error goes to the call's slot and the result is
/// zeros of the output shape (discarded by the public function).
fn forward_flex(call: &Call, args: &[FlexTensor]) -> FlexTensor {
    match run(call, args, None) {
        Ok((out, _)) => out,
        Err(e) => {
            call.fail(e);
            FlexTensor::zeros(call.out_shape.clone(), args[0].dtype())
        }
    }
}

/// The backend extension: a fused loss over two or three float tensors.
#[backend_extension(Flex, Autodiff)]
pub trait MarginBackend: burn::backend::Backend {
    /// A one-tensor fused loss (`call` says which; class indices travel in it).
    fn marginloss_fused1(a: FloatTensor<Self>, call: Call) -> FloatTensor<Self>;
    /// A two-tensor fused loss (`call` says which).
    fn marginloss_fused2(a: FloatTensor<Self>, b: FloatTensor<Self>, call: Call) -> FloatTensor<Self>;
    /// A three-tensor fused loss (`call` says which).
    fn marginloss_fused3(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        call: Call,
    ) -> FloatTensor<Self>;
}

impl MarginBackend for Flex {
    fn marginloss_fused1(a: FlexTensor, call: Call) -> FlexTensor {
        forward_flex(&call, &[a])
    }
    fn marginloss_fused2(a: FlexTensor, b: FlexTensor, call: Call) -> FlexTensor {
        forward_flex(&call, &[a, b])
    }
    fn marginloss_fused3(a: FlexTensor, b: FlexTensor, c: FlexTensor, call: Call) -> FlexTensor {
        forward_flex(&call, &[a, b, c])
    }
}

/// The custom autodiff node of a fused call with `N` tensor arguments.
#[derive(Debug)]
struct FusedBackward<const N: usize>;

/// What the node keeps: the call, its (contiguous) arguments for a rerun, and the
/// gradients the forward computed for an upstream of ones (taken by the first backward).
#[derive(Clone, Debug)]
struct FusedState<const N: usize> {
    call: Call,
    args: [FlexTensor; N],
    cached: Arc<Mutex<Option<Grads>>>,
}

impl<const N: usize> FusedState<N> {
    /// The gradients for upstream `up`: the forward's (when `up` is all ones, the first
    /// time), else a rerun of the fused kernel with `up`.
    fn grads(&self, up: FlexTensor) -> Grads {
        let ones = {
            let dtype = up.dtype();
            if dtype == DType::F64 {
                host::<f64>(&up).iter().all(|&u| u == 1.0)
            } else {
                host::<f32>(&up).iter().all(|&u| u == 1.0)
            }
        };
        if ones {
            if let Some(g) = self.cached.lock().ok().and_then(|mut c| c.take()) {
                return g;
            }
        }
        let up = if ones { Upstream::Ones } else { Upstream::Values(up) };
        match run(&self.call, &self.args, Some(&up)) {
            Ok((_, g)) => g,
            // The forward accepted these inputs, so the core cannot refuse them now; should
            // it, no gradient is better than a wrong one.
            Err(_) => Vec::new(),
        }
    }
}

impl<const N: usize> Backward<Flex, N> for FusedBackward<N> {
    type State = FusedState<N>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let up = grads.consume::<Flex>(&ops.node);
        let g = ops.state.grads(up);
        for (k, parent) in ops.parents.into_iter().enumerate() {
            if let (Some(node), Some(Some(gk))) = (parent, g.get(k)) {
                grads.register::<Flex>(node.id, gk.clone());
            }
        }
    }
}

/// The fused call on `Autodiff<Flex>`: when an argument is tracked, the forward runs the
/// fused forward-backward with upstream 1 (the same output, bitwise) and the node keeps
/// the gradients; untracked, the forward alone.
fn fused_autodiff<C: CheckpointStrategy, const N: usize>(
    args: [FloatTensor<Autodiff<Flex, C>>; N],
    call: Call,
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = args.each_ref().map(|a| a.node());
    match FusedBackward::<N>.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let prims = args.map(|a| a.into_primitive().to_contiguous());
            let (out, cached) = match run(&call, &prims, Some(&Upstream::Ones)) {
                Ok((out, g)) => (out, Some(g)),
                Err(e) => {
                    let dtype = prims[0].dtype();
                    call.fail(e);
                    (FlexTensor::zeros(call.out_shape.clone(), dtype), None)
                }
            };
            let state = FusedState { call, args: prims, cached: Arc::new(Mutex::new(cached)) };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            let prims = args.map(|a| a.into_primitive());
            prep.finish(forward_flex(&call, &prims))
        }
    }
}

impl<C: CheckpointStrategy> MarginBackend for Autodiff<Flex, C> {
    fn marginloss_fused1(a: FloatTensor<Self>, call: Call) -> FloatTensor<Self> {
        fused_autodiff::<C, 1>([a], call)
    }
    fn marginloss_fused2(a: FloatTensor<Self>, b: FloatTensor<Self>, call: Call) -> FloatTensor<Self> {
        fused_autodiff::<C, 2>([a, b], call)
    }
    fn marginloss_fused3(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        call: Call,
    ) -> FloatTensor<Self> {
        fused_autodiff::<C, 3>([a, b, c], call)
    }
}

/// Whether `device` (or the device an autodiff device wraps) is burn's Flex backend, the
/// one the fused kernels run on.
pub(crate) fn is_flex(device: &Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// One argument of a call as the public function hands it over.
pub(crate) enum Operand {
    /// A float tensor (input, label, target or weight) and its shape.
    Float(DispatchTensor, Vec<usize>),
    /// Class indices and their shape.
    Index(Indices, Vec<usize>),
}

/// Class indices as the kernels read them: a Flex tensor's own contiguous i64 storage
/// (no copy; an `(N, C)` multilabel target is as large as the input), else a host copy
/// in i64: one widening pass from Flex's i32, or burn's conversion for any other int
/// dtype, a strided view or another backend.
#[derive(Clone)]
pub(crate) enum Indices {
    Flex(FlexTensor),
    Host(Arc<[i64]>),
}

impl Indices {
    fn of<const D: usize>(t: Tensor<D, Int>) -> Self {
        /// The Flex int primitive inside a dispatch tensor (an autodiff device wraps it).
        fn flex_int(kind: DispatchTensorKind) -> Option<FlexTensor> {
            match kind {
                DispatchTensorKind::Flex(BackendTensor::Int(t)) => Some(t),
                DispatchTensorKind::Autodiff(inner) => flex_int(*inner),
                _ => None,
            }
        }
        match flex_int(t.clone().into_dispatch().kind) {
            Some(f) if f.as_slice::<i64>().is_some() => Indices::Flex(f),
            // Flex's default int dtype: widened in one pass.
            Some(f) if f.as_slice::<i32>().is_some() => {
                Indices::Host(f.as_slice::<i32>().unwrap_or_default().iter().map(|&v| i64::from(v)).collect())
            }
            _ => Indices::Host(t.into_data().try_into_vec_as::<i64>().unwrap_or_default().into()),
        }
    }

    fn as_slice(&self) -> &[i64] {
        match self {
            Indices::Flex(t) => t.as_slice::<i64>().unwrap_or_default(),
            Indices::Host(v) => v,
        }
    }
}

impl Operand {
    /// A float tensor argument.
    pub(crate) fn float<const D: usize>(t: Tensor<D>) -> Operand {
        let shape = t.dims().to_vec();
        Operand::Float(t.into_dispatch(), shape)
    }

    /// A class-index argument (read on the host as i64).
    pub(crate) fn index<const D: usize>(t: Tensor<D, Int>) -> Operand {
        let shape = t.dims().to_vec();
        Operand::Index(Indices::of(t), shape)
    }

    fn shape(&self) -> &[usize] {
        match self {
            Operand::Float(_, s) | Operand::Index(_, s) => s,
        }
    }
}

/// Runs `loss` fused on Flex over `args` (in PyTorch's order, all on one Flex device):
/// the core's shape rule checks the shapes, the kernels run through the backend
/// extension, and the result has rank `R`: the core's unreduced shape padded with 1s
/// (distances keep their last dimension as 1), or `[1; R]` when reduced.
pub(crate) fn fused<L: Loss, const R: usize>(
    loss: L,
    reduction: Reduction,
    args: Vec<Operand>,
) -> marginloss::Result<Tensor<R>> {
    let shapes: Vec<&[usize]> = args.iter().map(Operand::shape).collect();
    let geometry = loss.geometry(&shapes, reduction)?;
    let out_shape = match reduction {
        Reduction::None => {
            let mut s = geometry.unreduced.clone();
            s.resize(R, 1);
            Shape::from(s)
        }
        Reduction::Mean | Reduction::Sum => Shape::from(vec![1; R]),
    };
    let mut floats = Vec::with_capacity(3);
    let mut idx = Indices::Host(Arc::from([]));
    for a in args {
        match a {
            Operand::Float(t, _) => floats.push(t),
            Operand::Index(v, _) => idx = v,
        }
    }
    let call = Call { op: Arc::new(loss), geometry, idx, out_shape, error: Arc::new(Mutex::new(None)) };
    let mut it = floats.into_iter();
    let out = match (it.next(), it.next(), it.next()) {
        (Some(a), None, None) => <Dispatch as MarginBackend>::marginloss_fused1(a, call.clone()),
        (Some(a), Some(b), None) => <Dispatch as MarginBackend>::marginloss_fused2(a, b, call.clone()),
        (Some(a), Some(b), Some(c)) => <Dispatch as MarginBackend>::marginloss_fused3(a, b, c, call.clone()),
        _ => {
            return Err(marginloss::Error::Shape {
                loss: L::NAME,
                arg: L::PARAMS[0].name,
                got: Vec::new(),
                expected: "one to three float tensors".into(),
            })
        }
    };
    match call.take_error() {
        Some(e) => Err(e),
        None => Ok(Tensor::from_dispatch(out)),
    }
}
