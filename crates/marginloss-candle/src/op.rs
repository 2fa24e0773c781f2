//! The one generic fused custom op: a candle `CustomOp2`/`CustomOp3` over any loss the
//! core describes ([`marginloss::op`]), running the core's forward kernel in `cpu_fwd`
//! and its fused forward-backward kernel in `bwd`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Storage,
    Tensor, WithDType,
};
use marginloss::op::{Arg, Geometry, Kind, Op, Param, Signature};
use marginloss::{Float, Reduction};

/// A core error as a candle error, with the core's message.
pub(crate) fn core_err(e: marginloss::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// A loss the adapter runs: the core's description and kernels for both element types.
pub(crate) trait Loss: Signature + Op<f32> + Op<f64> + Clone + Send + Sync + 'static {}
impl<L: Signature + Op<f32> + Op<f64> + Clone + Send + Sync + 'static> Loss for L {}

/// The element types of the fused kernels (f32 and f64).
pub(crate) trait Elem: Float + WithDType {}
impl Elem for f32 {}
impl Elem for f64 {}

/// The float dtypes the losses take (f16/bf16 computed in f32).
fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// The integer dtypes labels and class indices may have.
fn is_int(dt: DType) -> bool {
    matches!(dt, DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64)
}

/// Whether a dtype is a half-precision float computed in f32.
fn is_half(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16)
}

/// A one-line error of this crate (no backtrace appended, whatever `RUST_BACKTRACE` says).
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(candle_core::Error::Msg(format!($($arg)*)))
    };
}

/// The description's parameter of argument `k` (the arguments follow `PARAMS`).
fn param<L: Signature>(k: usize) -> Param {
    L::PARAMS.get(k).copied().unwrap_or(Param { name: "argument", kind: Kind::Target })
}

/// Checks `args` (in [`Signature::PARAMS`] order, an absent weight left out) against the
/// loss's description: the shape rule, one device, and the dtypes (a float input; float
/// targets and weights of the input's dtype, or f16/bf16/f32 with a half-precision
/// input; integer class indices). Integer labels
/// ([`Kind::Label`]) are converted to the input's dtype. Returns the arguments to run on
/// and the geometry.
///
/// Both the fused path and every composed function start here, so an unsupported dtype
/// is an error on every path.
pub(crate) fn checked<L: Signature>(
    loss: &L,
    reduction: Reduction,
    args: &[&Tensor],
) -> Result<(Vec<Tensor>, Geometry)> {
    let shapes: Vec<&[usize]> = args.iter().map(|t| t.dims()).collect();
    let geometry = loss.geometry(&shapes, reduction).map_err(core_err)?;
    let (input, dev) = (args[0].dtype(), args[0].device());
    if !is_float(input) {
        fail!(
            "{}: {} has dtype {input:?}; the losses take a float tensor (f16, bf16, f32, f64)",
            L::NAME,
            param::<L>(0).name
        )
    }
    let mut out = Vec::with_capacity(args.len());
    for (k, t) in args.iter().enumerate() {
        let p = param::<L>(k);
        if !t.device().same_device(dev) {
            fail!("{}: {} is on {:?}, the input on {:?}", L::NAME, p.name, t.device(), dev)
        }
        let dt = t.dtype();
        let t = match p.kind {
            Kind::Index if !is_int(dt) => fail!(
                "{}: {} holds class indices and must have an integer dtype (i64, i32, i16, u32, u8), got {dt:?}",
                L::NAME,
                p.name
            ),
            Kind::Index => (*t).clone(),
            Kind::Label if is_int(dt) => t.to_dtype(input)?,
            // f16/bf16 compute in f32: any of the three goes with a half-precision input.
            _ if is_half(input) && (is_half(dt) || dt == DType::F32) => (*t).clone(),
            _ if dt != input => fail!(
                "{}: {} has dtype {dt:?}, expected {input:?} like the input",
                L::NAME,
                p.name
            ),
            _ => (*t).clone(),
        };
        out.push(t);
    }
    Ok((out, geometry))
}

/// Gradients for an upstream gradient of ones, one per argument (`None` for those
/// without), computed by the forward.
type Grads = Vec<Option<Tensor>>;

/// The custom op: a loss, the geometry of the call, and whether the forward also computes
/// the gradients.
///
/// When an argument that receives a gradient is tracked (a `Var`, or the result of a
/// tracked op), `cpu_fwd` runs the core's fused `forward_backward` with upstream 1 instead
/// of the forward alone (the same output, bitwise) and keeps the gradients; a `bwd` whose
/// upstream gradient is all ones (what `loss.backward()` passes, and the sum of an
/// unreduced loss) takes them, so a training step visits the data once in the kernel. Any
/// other upstream, or a second backward, runs the fused kernel again with it.
#[derive(Clone)]
struct FusedOp<L> {
    loss: L,
    geometry: Geometry,
    out_shape: Shape,
    eager: bool,
    cache: Arc<Mutex<Option<Grads>>>,
}

/// One argument's data: floats borrowed from the storage, or class indices (borrowed for
/// i64, converted otherwise).
enum Data<'a, T> {
    Float(&'a [T]),
    Index(Cow<'a, [i64]>),
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout, name: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) if b <= data.len() => Ok(&data[a..b]),
        _ => fail!("{name}: internal error, the fused op got a non-contiguous input"),
    }
}

fn index_data<'a>(s: &'a CpuStorage, l: &Layout, loss: &str, arg: &str) -> Result<Cow<'a, [i64]>> {
    fn widen<X: Copy + Into<i64>>(v: &[X], l: &Layout, name: &str) -> Result<Cow<'static, [i64]>> {
        Ok(Cow::Owned(contiguous(v, l, name)?.iter().map(|&x| x.into()).collect()))
    }
    Ok(match s {
        CpuStorage::I64(v) => Cow::Borrowed(contiguous(v, l, loss)?),
        CpuStorage::U32(v) => widen(v, l, loss)?,
        CpuStorage::I32(v) => widen(v, l, loss)?,
        CpuStorage::I16(v) => widen(v, l, loss)?,
        CpuStorage::U8(v) => widen(v, l, loss)?,
        other => fail!(
            "{loss}: {arg} holds class indices and must have an integer dtype (i64, i32, i16, u32, u8), got {:?}",
            other.dtype()
        ),
    })
}

fn data_of<'a, T: Elem, L: Signature>(storages: &[(&'a CpuStorage, &Layout)]) -> Result<Vec<Data<'a, T>>> {
    storages
        .iter()
        .enumerate()
        .map(|(k, (s, l))| {
            let p = param::<L>(k);
            if p.kind == Kind::Index {
                Ok(Data::Index(index_data(s, l, L::NAME, p.name)?))
            } else {
                if s.dtype() != <T as WithDType>::DTYPE {
                    fail!(
                        "{}: {} has dtype {:?}, expected {:?} like the input",
                        L::NAME,
                        p.name,
                        s.dtype(),
                        <T as WithDType>::DTYPE
                    )
                }
                Ok(Data::Float(contiguous(s.as_slice::<T>()?, l, L::NAME)?))
            }
        })
        .collect()
}

fn args_of<'a, T>(data: &'a [Data<'_, T>]) -> Vec<Arg<'a, T>> {
    data.iter()
        .map(|d| match d {
            Data::Float(s) => Arg::Float(s),
            Data::Index(s) => Arg::Index(s),
        })
        .collect()
}

/// One zeroed gradient buffer per argument that receives a gradient.
fn grad_bufs<T: Elem, L: Signature>(lens: impl Iterator<Item = usize>) -> Vec<Vec<T>> {
    lens.enumerate()
        .filter(|(k, _)| param::<L>(*k).kind.has_grad())
        .map(|(_, n)| vec![T::zero(); n])
        .collect()
}

/// The buffers as candle tensors of the arguments' shapes (no copy), `None` for the
/// arguments without a gradient.
fn grad_tensors<T: Elem, L: Signature>(bufs: Vec<Vec<T>>, shapes: &[&Shape]) -> Result<Grads> {
    let mut bufs = bufs.into_iter();
    shapes
        .iter()
        .enumerate()
        .map(|(k, shape)| {
            if param::<L>(k).kind.has_grad() {
                let g = bufs.next().unwrap_or_default();
                Ok(Some(Tensor::from_vec(g, *shape, &Device::Cpu)?))
            } else {
                Ok(None)
            }
        })
        .collect()
}

impl<L: Loss> FusedOp<L> {
    /// The fused kernel with upstream `up`: the output and the gradients.
    fn fused<T: Elem>(&self, storages: &[(&CpuStorage, &Layout)], up: &[T]) -> Result<(Vec<T>, Grads)>
    where
        L: Op<T>,
    {
        let data = data_of::<T, L>(storages)?;
        let mut out = vec![T::zero(); self.geometry.output_len()];
        let mut bufs = grad_bufs::<T, L>(storages.iter().map(|(_, l)| l.shape().elem_count()));
        let mut refs: Vec<&mut [T]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        self.loss
            .forward_backward_args(&self.geometry, &args_of(&data), up, &mut out, &mut refs)
            .map_err(core_err)?;
        drop(data);
        let shapes: Vec<&Shape> = storages.iter().map(|(_, l)| l.shape()).collect();
        Ok((out, grad_tensors::<T, L>(bufs, &shapes)?))
    }

    fn cpu_fwd_typed<T: Elem>(&self, storages: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)>
    where
        L: Op<T>,
    {
        let out = if self.eager {
            let (out, grads) = self.fused::<T>(storages, &[T::one()])?;
            if let Ok(mut c) = self.cache.lock() {
                *c = Some(grads);
            }
            out
        } else {
            let data = data_of::<T, L>(storages)?;
            let mut out = vec![T::zero(); self.geometry.output_len()];
            self.loss.forward_args(&self.geometry, &args_of(&data), &mut out).map_err(core_err)?;
            out
        };
        Ok((T::to_cpu_storage_owned(out), self.out_shape.clone()))
    }

    fn cpu_fwd_any(&self, storages: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        match storages[0].0.dtype() {
            DType::F32 => self.cpu_fwd_typed::<f32>(storages),
            DType::F64 => self.cpu_fwd_typed::<f64>(storages),
            dt => fail!("{}: the fused kernel takes f32 or f64 input, got {dt:?}", L::NAME),
        }
    }

    fn bwd_typed<T: Elem>(&self, args: &[&Tensor], grad_res: &Tensor) -> Result<Grads>
    where
        L: Op<T>,
    {
        let up: Vec<T> = grad_res.to_dtype(<T as WithDType>::DTYPE)?.flatten_all()?.to_vec1()?;
        // The forward's gradients, for an upstream of ones (taken: a second backward recomputes).
        if up.iter().all(|&u| u == T::one()) {
            if let Some(grads) = self.cache.lock().ok().and_then(|mut c| c.take()) {
                return Ok(grads);
            }
        }
        let guards: Vec<_> = args.iter().map(|t| t.storage_and_layout()).collect();
        let mut storages = Vec::with_capacity(args.len());
        for (g, l) in &guards {
            match &**g {
                Storage::Cpu(s) => storages.push((s, *l)),
                _ => {
                    fail!("{}: internal error, the fused backward got a non-CPU tensor", L::NAME)
                }
            }
        }
        Ok(self.fused::<T>(&storages, &up)?.1)
    }

    fn bwd_any(&self, args: &[&Tensor], grad_res: &Tensor) -> Result<Grads> {
        match args[0].dtype() {
            DType::F32 => self.bwd_typed::<f32>(args, grad_res),
            DType::F64 => self.bwd_typed::<f64>(args, grad_res),
            dt => fail!("{}: the fused kernel takes f32 or f64 input, got {dt:?}", L::NAME),
        }
    }
}

impl<L: Loss> CustomOp2 for FusedOp<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.cpu_fwd_any(&[(s1, l1), (s2, l2)])
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let mut g = self.bwd_any(&[arg1, arg2], grad_res)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten()))
    }
}

impl<L: Loss> CustomOp3 for FusedOp<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.cpu_fwd_any(&[(s1, l1), (s2, l2), (s3, l3)])
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        arg3: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut g = self.bwd_any(&[arg1, arg2, arg3], grad_res)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten(), g.next().flatten()))
    }
}

/// A composed (candle-op) implementation of a loss over the same arguments.
pub(crate) type Composed<'a> = &'a dyn Fn(&[&Tensor]) -> Result<Tensor>;

/// Runs `loss` on `args` (in [`Signature::PARAMS`] order, an absent weight left out):
///
/// * the arguments are checked against the description ([`checked`]);
/// * f16/bf16 float arguments are cast to f32, and the result back (both casts are
///   differentiable, so gradients flow through them);
/// * on CPU, the arguments are made contiguous (a no-op when they are) and the fused op
///   is applied with `apply_op2`/`apply_op3`, which record a real backward;
/// * elsewhere, `composed` runs if given (candle ops with the same semantics), else the
///   arguments travel to the CPU and back (`to_device` is differentiable).
pub(crate) fn run<L: Loss>(
    loss: L,
    reduction: Reduction,
    args: &[&Tensor],
    composed: Option<Composed<'_>>,
) -> Result<Tensor> {
    let (args, geometry) = checked(&loss, reduction, args)?;
    let out_shape = Shape::from(geometry.output_shape().to_vec());
    let dt = args[0].dtype();
    let dev = args[0].device().clone();
    let args: Vec<Tensor> = if is_half(dt) {
        args.into_iter()
            .map(|t| if is_half(t.dtype()) { t.to_dtype(DType::F32) } else { Ok(t) })
            .collect::<Result<_>>()?
    } else {
        args
    };
    let refs: Vec<&Tensor> = args.iter().collect();
    let back = |t: Tensor| if is_half(dt) { t.to_dtype(dt) } else { Ok(t) };
    if !matches!(dev, Device::Cpu) {
        if let Some(c) = composed {
            return back(c(&refs)?);
        }
        let cpu: Vec<Tensor> = refs.iter().map(|t| t.to_device(&Device::Cpu)).collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = cpu.iter().collect();
        return back(fused(loss, geometry, out_shape, &refs)?.to_device(&dev)?);
    }
    back(fused(loss, geometry, out_shape, &refs)?)
}

/// Applies the fused op to CPU tensors (made contiguous first).
fn fused<L: Loss>(loss: L, geometry: Geometry, out_shape: Shape, args: &[&Tensor]) -> Result<Tensor> {
    let c: Vec<Tensor> = args.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
    // Compute the gradients in the forward when one will be asked for.
    let eager = c.iter().enumerate().any(|(k, t)| param::<L>(k).kind.has_grad() && t.track_op());
    let op = FusedOp { loss, geometry, out_shape, eager, cache: Arc::new(Mutex::new(None)) };
    match c.as_slice() {
        [a, b] => a.apply_op2(b, op),
        [a, b, d] => a.apply_op3(b, d, op),
        _ => fail!("{}: internal error, {} arguments", L::NAME, c.len()),
    }
}
