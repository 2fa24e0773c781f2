//! The generic fused op: one burn backend extension (`MarginBackend`, two methods for two-
//! and three-tensor losses) whose Flex implementation runs a core marginloss kernel on the
//! tensors' host slices, and whose `Autodiff<Flex>` implementation records one custom
//! `Backward` node that hands out the gradients the forward already computed.
//!
//! A loss enters through [`Fused`] (its name, which arguments get gradients, and the two
//! core calls); everything else here is loss-independent.

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
use burn::backend::{backend_extension, Dispatch, DispatchDevice, DispatchTensor, Flex};
use burn::tensor::{DType, Device, Element, Shape, TensorData};
use marginloss::{Float, Reduction, TripletMarginWithDistance};

use crate::BurnDistance;

/// The element types of the fused kernels (f32 and f64), with the calls that need a
/// concrete type (a user distance is `Distance<f32> + Distance<f64>`, not generic).
pub(crate) trait Elem: Float + Element + bytemuck::Pod {
    /// burn's dtype of `Self`.
    const BURN: DType;

    #[allow(clippy::too_many_arguments)]
    fn triplet_forward<D: BurnDistance>(
        l: &TripletMarginWithDistance<D>,
        a: &[Self],
        p: &[Self],
        n: &[Self],
        dim: usize,
        r: Reduction,
        out: &mut [Self],
    ) -> marginloss::Result<()>;

    #[allow(clippy::too_many_arguments)]
    fn triplet_forward_backward<D: BurnDistance>(
        l: &TripletMarginWithDistance<D>,
        a: &[Self],
        p: &[Self],
        n: &[Self],
        dim: usize,
        r: Reduction,
        up: &[Self],
        out: &mut [Self],
        g: [&mut [Self]; 3],
    ) -> marginloss::Result<()>;
}

macro_rules! elem {
    ($t:ty, $dt:expr) => {
        impl Elem for $t {
            const BURN: DType = $dt;
            fn triplet_forward<D: BurnDistance>(
                l: &TripletMarginWithDistance<D>,
                a: &[$t],
                p: &[$t],
                n: &[$t],
                dim: usize,
                r: Reduction,
                out: &mut [$t],
            ) -> marginloss::Result<()> {
                l.forward_into(a, p, n, dim, r, out)
            }
            fn triplet_forward_backward<D: BurnDistance>(
                l: &TripletMarginWithDistance<D>,
                a: &[$t],
                p: &[$t],
                n: &[$t],
                dim: usize,
                r: Reduction,
                up: &[$t],
                out: &mut [$t],
                [g1, g2, g3]: [&mut [$t]; 3],
            ) -> marginloss::Result<()> {
                l.forward_backward(a, p, n, dim, r, up, out, g1, g2, g3)
            }
        }
    };
}
elem!(f32, DType::F32);
elem!(f64, DType::F64);

/// A loss (or distance) whose core kernels the fused op runs: the burn adapter's view of
/// one loss. `a` holds the float arguments in PyTorch's order (the input(s) first, then
/// targets and weights), `idx` the class indices of the class-index losses.
pub(crate) trait Fused: Send + Sync + 'static {
    /// The core loss name.
    const NAME: &'static str;
    /// For each float argument: whether it receives a gradient. The first argument that
    /// does gets `g[0]`, the second `g[1]`, the third `g[2]`.
    const GRAD: [bool; 3];

    /// The core forward into `out`.
    fn forward<T: Elem>(&self, a: &[&[T]], idx: &[i64], out: &mut [T]) -> marginloss::Result<()>;

    /// The core fused forward-backward with upstream gradient `up`; `g` holds one buffer
    /// per argument with a gradient (in order), and empty ones after them.
    fn forward_backward<T: Elem>(
        &self,
        a: &[&[T]],
        idx: &[i64],
        up: &[T],
        out: &mut [T],
        g: [&mut [T]; 3],
    ) -> marginloss::Result<()>;
}

/// [`Fused`] as an object (the extension method takes one loss-independent argument).
trait DynFused: Send + Sync {
    fn name(&self) -> &'static str;
    fn grad(&self) -> [bool; 3];
    fn forward_f32(&self, a: &[&[f32]], idx: &[i64], out: &mut [f32]) -> marginloss::Result<()>;
    fn forward_f64(&self, a: &[&[f64]], idx: &[i64], out: &mut [f64]) -> marginloss::Result<()>;
    #[allow(clippy::type_complexity)]
    fn forward_backward_f32(
        &self,
        a: &[&[f32]],
        idx: &[i64],
        up: &[f32],
        out: &mut [f32],
        g: [&mut [f32]; 3],
    ) -> marginloss::Result<()>;
    fn forward_backward_f64(
        &self,
        a: &[&[f64]],
        idx: &[i64],
        up: &[f64],
        out: &mut [f64],
        g: [&mut [f64]; 3],
    ) -> marginloss::Result<()>;
}

impl<F: Fused> DynFused for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn grad(&self) -> [bool; 3] {
        F::GRAD
    }
    fn forward_f32(&self, a: &[&[f32]], idx: &[i64], out: &mut [f32]) -> marginloss::Result<()> {
        self.forward(a, idx, out)
    }
    fn forward_f64(&self, a: &[&[f64]], idx: &[i64], out: &mut [f64]) -> marginloss::Result<()> {
        self.forward(a, idx, out)
    }
    fn forward_backward_f32(
        &self,
        a: &[&[f32]],
        idx: &[i64],
        up: &[f32],
        out: &mut [f32],
        g: [&mut [f32]; 3],
    ) -> marginloss::Result<()> {
        self.forward_backward(a, idx, up, out, g)
    }
    fn forward_backward_f64(
        &self,
        a: &[&[f64]],
        idx: &[i64],
        up: &[f64],
        out: &mut [f64],
        g: [&mut [f64]; 3],
    ) -> marginloss::Result<()> {
        self.forward_backward(a, idx, up, out, g)
    }
}

/// The element-type-specific entry points of [`DynFused`], so that the runner is generic.
trait Run: Elem {
    fn fwd(op: &dyn DynFused, a: &[&[Self]], idx: &[i64], out: &mut [Self]) -> marginloss::Result<()>;
    fn fwd_bwd(
        op: &dyn DynFused,
        a: &[&[Self]],
        idx: &[i64],
        up: &[Self],
        out: &mut [Self],
        g: [&mut [Self]; 3],
    ) -> marginloss::Result<()>;
}

impl Run for f32 {
    fn fwd(op: &dyn DynFused, a: &[&[f32]], idx: &[i64], out: &mut [f32]) -> marginloss::Result<()> {
        op.forward_f32(a, idx, out)
    }
    fn fwd_bwd(
        op: &dyn DynFused,
        a: &[&[f32]],
        idx: &[i64],
        up: &[f32],
        out: &mut [f32],
        g: [&mut [f32]; 3],
    ) -> marginloss::Result<()> {
        op.forward_backward_f32(a, idx, up, out, g)
    }
}

impl Run for f64 {
    fn fwd(op: &dyn DynFused, a: &[&[f64]], idx: &[i64], out: &mut [f64]) -> marginloss::Result<()> {
        op.forward_f64(a, idx, out)
    }
    fn fwd_bwd(
        op: &dyn DynFused,
        a: &[&[f64]],
        idx: &[i64],
        up: &[f64],
        out: &mut [f64],
        g: [&mut [f64]; 3],
    ) -> marginloss::Result<()> {
        op.forward_backward_f64(a, idx, up, out, g)
    }
}

/// One call of a fused loss: the loss, its class indices, the result shape, and the slot
/// where the backend implementation leaves a core error (an extension method returns a
/// tensor, not a `Result`; the public function reads the slot when the call returns, which
/// on the eager Flex backend is after the kernel ran).
#[derive(Clone)]
pub struct Call {
    op: Arc<dyn DynFused>,
    idx: Arc<[i64]>,
    out_shape: Shape,
    error: Arc<Mutex<Option<marginloss::Error>>>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("op", &self.op.name())
            .field("classes", &self.idx.len())
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

/// Runs `call` on Flex tensors in `T`: the forward alone (`up = None`), or the fused
/// forward-backward with upstream `up` (one value, or one per output element).
fn run_typed<T: Run>(
    call: &Call,
    args: &[FlexTensor],
    up: Option<&[T]>,
    dtype: DType,
) -> marginloss::Result<(FlexTensor, Grads)> {
    let data: Vec<Cow<'_, [T]>> = args.iter().map(host::<T>).collect();
    let slices: Vec<&[T]> = data.iter().map(|c| &c[..]).collect();
    let mut out = vec![T::zero(); call.out_shape.num_elements()];
    let op = &*call.op;
    let Some(up) = up else {
        T::fwd(op, &slices, &call.idx, &mut out)?;
        return Ok((flex_of(out, call.out_shape.clone(), dtype), Vec::new()));
    };
    let grad = op.grad();
    let mut bufs: Vec<Vec<T>> = slices
        .iter()
        .enumerate()
        .filter(|(k, _)| grad[*k])
        .map(|(_, s)| vec![T::zero(); s.len()])
        .collect();
    bufs.resize_with(3, Vec::new);
    {
        let [b1, b2, b3] = &mut bufs[..] else { unreachable!("three buffers") };
        T::fwd_bwd(op, &slices, &call.idx, up, &mut out, [b1, b2, b3])?;
    }
    let mut bufs = bufs.into_iter();
    let grads = args
        .iter()
        .enumerate()
        .map(|(k, t)| {
            grad[k].then(|| flex_of(bufs.next().unwrap_or_default(), t.layout().shape().clone(), dtype))
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

/// Runs the fused op `f` on 2 or 3 dispatch tensors (all on a Flex device), with class
/// indices `idx` and result shape `out_shape`.
pub(crate) fn apply_fused<F: Fused>(
    f: F,
    args: Vec<DispatchTensor>,
    idx: Vec<i64>,
    out_shape: Shape,
) -> marginloss::Result<DispatchTensor> {
    let call = Call { op: Arc::new(f), idx: idx.into(), out_shape, error: Arc::new(Mutex::new(None)) };
    let mut it = args.into_iter();
    let (Some(a), Some(b)) = (it.next(), it.next()) else {
        unreachable!("every fused loss has at least two tensor arguments")
    };
    let out = match it.next() {
        None => <Dispatch as MarginBackend>::marginloss_fused2(a, b, call.clone()),
        Some(c) => <Dispatch as MarginBackend>::marginloss_fused3(a, b, c, call.clone()),
    };
    match call.take_error() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
