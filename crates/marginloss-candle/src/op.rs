//! The generic fused custom op: one candle `CustomOp2`/`CustomOp3` that runs a core
//! marginloss kernel in `cpu_fwd` and the core's fused forward-backward kernel in `bwd`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Storage,
    Tensor, WithDType,
};
use marginloss::{Float, TripletMarginWithDistance};

use crate::CandleDistance;

/// A core error as a candle error, with the core's message.
pub(crate) fn core_err(e: marginloss::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// One argument of a loss as the core kernel sees it: a float slice of the loss's
/// element type, or class indices.
pub(crate) enum Arg<'a, T> {
    Float(&'a [T]),
    Index(Cow<'a, [i64]>),
}

impl<T> Arg<'_, T> {
    /// The float data (the loss declared this argument float).
    pub(crate) fn f(&self) -> &[T] {
        match self {
            Arg::Float(s) => s,
            Arg::Index(_) => &[],
        }
    }
    /// The class indices (the loss declared this argument an index).
    pub(crate) fn i(&self) -> &[i64] {
        match self {
            Arg::Index(s) => s,
            Arg::Float(_) => &[],
        }
    }
}

/// The element types of the fused kernels (f32 and f64), with the calls that need a
/// concrete type (a user distance is `Distance<f32> + Distance<f64>`, not generic).
pub(crate) trait Elem: Float + WithDType {
    #[allow(clippy::too_many_arguments)]
    fn triplet_forward<D: CandleDistance>(
        l: &TripletMarginWithDistance<D>,
        a: &[Self],
        p: &[Self],
        n: &[Self],
        dim: usize,
        r: marginloss::Reduction,
        out: &mut [Self],
    ) -> marginloss::Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn triplet_forward_backward<D: CandleDistance>(
        l: &TripletMarginWithDistance<D>,
        a: &[Self],
        p: &[Self],
        n: &[Self],
        dim: usize,
        r: marginloss::Reduction,
        up: &[Self],
        out: &mut [Self],
        g: [&mut [Self]; 3],
    ) -> marginloss::Result<()>;
}

macro_rules! elem {
    ($t:ty) => {
        impl Elem for $t {
            fn triplet_forward<D: CandleDistance>(
                l: &TripletMarginWithDistance<D>,
                a: &[$t],
                p: &[$t],
                n: &[$t],
                dim: usize,
                r: marginloss::Reduction,
                out: &mut [$t],
            ) -> marginloss::Result<()> {
                l.forward_into(a, p, n, dim, r, out)
            }
            fn triplet_forward_backward<D: CandleDistance>(
                l: &TripletMarginWithDistance<D>,
                a: &[$t],
                p: &[$t],
                n: &[$t],
                dim: usize,
                r: marginloss::Reduction,
                up: &[$t],
                out: &mut [$t],
                [g1, g2, g3]: [&mut [$t]; 3],
            ) -> marginloss::Result<()> {
                l.forward_backward(a, p, n, dim, r, up, out, g1, g2, g3)
            }
        }
    };
}
elem!(f32);
elem!(f64);

/// A loss (or distance) whose core kernels the fused op runs.
pub(crate) trait Fused: Clone + Send + Sync + 'static {
    /// The op's name (the core loss name).
    const NAME: &'static str;
    /// For each argument: `true` if it holds class indices, `false` if floats.
    const INDEX: [bool; 3] = [false; 3];
    /// For each argument: whether it receives a gradient; the first that does gets
    /// `g[0]`, the second `g[1]`, the third `g[2]`.
    const GRAD: [bool; 3];

    /// The core forward into `out`.
    fn forward<T: Elem>(&self, a: &[Arg<'_, T>], out: &mut [T]) -> marginloss::Result<()>;

    /// The core fused forward-backward with upstream gradient `up`; `g` holds one buffer
    /// per argument with a gradient (in order), and empty ones after them.
    fn forward_backward<T: Elem>(
        &self,
        a: &[Arg<'_, T>],
        up: &[T],
        out: &mut [T],
        g: [&mut [T]; 3],
    ) -> marginloss::Result<()>;
}

/// Gradients for an upstream gradient of ones, one per argument (`None` for those
/// without), computed by the forward.
type Grads = Vec<Option<Tensor>>;

/// The custom op: a loss, the shape of its result, and whether the forward also computes
/// the gradients.
///
/// When an argument that receives a gradient is tracked (a `Var`, or the result of a
/// tracked op), `cpu_fwd` runs the core's fused `forward_backward` with upstream 1 instead
/// of the forward alone (the same output, bitwise) and keeps the gradients; a `bwd` whose
/// upstream gradient is all ones (what `loss.backward()` passes, and the sum of an
/// unreduced loss) takes them, so a training step visits the data once in the kernel. Any
/// other upstream, or a second backward, runs the fused kernel again with it.
#[derive(Clone)]
pub(crate) struct FusedOp<F> {
    pub(crate) f: F,
    pub(crate) out_shape: Shape,
    pub(crate) eager: bool,
    pub(crate) cache: Arc<Mutex<Option<Grads>>>,
}

/// One zeroed gradient buffer per argument that receives a gradient, then empty ones up
/// to three.
fn grad_bufs<T: Elem, F: Fused>(lens: impl Iterator<Item = usize>) -> Vec<Vec<T>> {
    let mut bufs: Vec<Vec<T>> =
        lens.enumerate().filter(|(k, _)| F::GRAD[*k]).map(|(_, n)| vec![T::zero(); n]).collect();
    bufs.resize_with(3, Vec::new);
    bufs
}

/// The buffers as candle tensors of the arguments' shapes (no copy), `None` for the
/// arguments without a gradient.
fn grad_tensors<T: Elem, F: Fused>(bufs: Vec<Vec<T>>, shapes: &[&Shape]) -> Result<Grads> {
    let mut bufs = bufs.into_iter();
    shapes
        .iter()
        .enumerate()
        .map(|(k, shape)| {
            if F::GRAD[k] {
                let g = bufs.next().unwrap_or_default();
                Ok(Some(Tensor::from_vec(g, *shape, &Device::Cpu)?))
            } else {
                Ok(None)
            }
        })
        .collect()
}

fn float_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, name: &str) -> Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{name}: internal error, the fused op got a non-contiguous input"),
    }
}

fn index_slice<'a>(s: &'a CpuStorage, l: &Layout, name: &str) -> Result<Cow<'a, [i64]>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{name}: internal error, the fused op got a non-contiguous target")
    };
    Ok(match s {
        CpuStorage::I64(v) => Cow::Borrowed(&v[a..b]),
        CpuStorage::U32(v) => Cow::Owned(v[a..b].iter().map(|&x| i64::from(x)).collect()),
        CpuStorage::I32(v) => Cow::Owned(v[a..b].iter().map(|&x| i64::from(x)).collect()),
        CpuStorage::I16(v) => Cow::Owned(v[a..b].iter().map(|&x| i64::from(x)).collect()),
        CpuStorage::U8(v) => Cow::Owned(v[a..b].iter().map(|&x| i64::from(x)).collect()),
        other => candle_core::bail!(
            "{name}: class-index targets must have an integer dtype (i64, u32, i32, i16, u8), got {:?}",
            other.dtype()
        ),
    })
}

fn args_of<'a, T: Elem, F: Fused>(storages: &[(&'a CpuStorage, &Layout)]) -> Result<Vec<Arg<'a, T>>> {
    storages
        .iter()
        .enumerate()
        .map(|(k, (s, l))| {
            if F::INDEX[k] {
                Ok(Arg::Index(index_slice(s, l, F::NAME)?))
            } else {
                if s.dtype() != <T as WithDType>::DTYPE {
                    candle_core::bail!(
                        "{}: argument {} has dtype {:?}, expected {:?} like the input",
                        F::NAME,
                        k + 1,
                        s.dtype(),
                        <T as WithDType>::DTYPE
                    )
                }
                Ok(Arg::Float(float_slice::<T>(s, l, F::NAME)?))
            }
        })
        .collect()
}

impl<F: Fused> FusedOp<F> {
    fn cpu_fwd_typed<T: Elem>(&self, storages: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let args = args_of::<T, F>(storages)?;
        let mut out = vec![T::zero(); self.out_shape.elem_count()];
        if self.eager {
            let mut bufs = grad_bufs::<T, F>(storages.iter().map(|(_, l)| l.shape().elem_count()));
            let [b1, b2, b3] = &mut bufs[..] else { unreachable!("three buffers") };
            self.f.forward_backward(&args, &[T::one()], &mut out, [b1, b2, b3]).map_err(core_err)?;
            let shapes: Vec<&Shape> = storages.iter().map(|(_, l)| l.shape()).collect();
            let grads = grad_tensors::<T, F>(bufs, &shapes)?;
            if let Ok(mut c) = self.cache.lock() {
                *c = Some(grads);
            }
        } else {
            self.f.forward(&args, &mut out).map_err(core_err)?;
        }
        Ok((T::to_cpu_storage_owned(out), self.out_shape.clone()))
    }

    fn cpu_fwd_any(&self, storages: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        match storages[0].0.dtype() {
            DType::F32 => self.cpu_fwd_typed::<f32>(storages),
            DType::F64 => self.cpu_fwd_typed::<f64>(storages),
            dt => candle_core::bail!("{}: the fused kernel takes f32 or f64 input, got {dt:?}", F::NAME),
        }
    }

    fn bwd_typed<T: Elem>(&self, args: &[&Tensor], grad_res: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let guards: Vec<_> = args.iter().map(|t| t.storage_and_layout()).collect();
        let mut storages = Vec::with_capacity(args.len());
        for (g, l) in &guards {
            match &**g {
                Storage::Cpu(s) => storages.push((s, *l)),
                _ => {
                    candle_core::bail!("{}: internal error, the fused backward got a non-CPU tensor", F::NAME)
                }
            }
        }
        let up: Vec<T> = grad_res.to_dtype(<T as WithDType>::DTYPE)?.flatten_all()?.to_vec1()?;
        // The forward's gradients, for an upstream of ones (taken: a second backward recomputes).
        if up.iter().all(|&u| u == T::one()) {
            if let Some(grads) = self.cache.lock().ok().and_then(|mut c| c.take()) {
                return Ok(grads);
            }
        }
        let a = args_of::<T, F>(&storages)?;
        let mut out = vec![T::zero(); self.out_shape.elem_count()];
        let mut bufs = grad_bufs::<T, F>(args.iter().map(|t| t.elem_count()));
        let [b1, b2, b3] = &mut bufs[..] else { unreachable!("three buffers") };
        self.f.forward_backward(&a, &up, &mut out, [b1, b2, b3]).map_err(core_err)?;
        drop(a);
        drop(storages);
        drop(guards);
        let shapes: Vec<&Shape> = args.iter().map(|t| t.shape()).collect();
        grad_tensors::<T, F>(bufs, &shapes)
    }

    fn bwd_any(&self, args: &[&Tensor], grad_res: &Tensor) -> Result<Vec<Option<Tensor>>> {
        match args[0].dtype() {
            DType::F32 => self.bwd_typed::<f32>(args, grad_res),
            DType::F64 => self.bwd_typed::<f64>(args, grad_res),
            dt => candle_core::bail!("{}: the fused kernel takes f32 or f64 input, got {dt:?}", F::NAME),
        }
    }
}

impl<F: Fused> CustomOp2 for FusedOp<F> {
    fn name(&self) -> &'static str {
        F::NAME
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

impl<F: Fused> CustomOp3 for FusedOp<F> {
    fn name(&self) -> &'static str {
        F::NAME
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

/// Whether a dtype is a half-precision float computed in f32.
fn is_half(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16)
}

/// Runs `f` on `args` with the result shape `out_shape`:
///
/// * f16/bf16 float arguments are cast to f32, and the result back (both casts are
///   differentiable, so gradients flow through them);
/// * on CPU, the arguments are made contiguous (a no-op when they are) and the fused op
///   is applied with `apply_op2`/`apply_op3`, which record a real backward;
/// * elsewhere, `composed` runs if given (candle ops with the same semantics), else the
///   arguments travel to the CPU and back (`to_device` is differentiable).
pub(crate) fn apply<F: Fused>(
    f: F,
    args: &[&Tensor],
    out_shape: Shape,
    composed: Option<Composed<'_>>,
) -> Result<Tensor> {
    let dev = args[0].device().clone();
    for (k, t) in args.iter().enumerate().skip(1) {
        if !t.device().same_device(&dev) {
            candle_core::bail!(
                "{}: argument {} is on {:?}, the input on {:?}",
                F::NAME,
                k + 1,
                t.device(),
                dev
            )
        }
    }
    let dt = args[0].dtype();
    if is_half(dt) {
        let cast: Vec<Tensor> =
            args.iter()
                .enumerate()
                .map(|(k, t)| {
                    if !F::INDEX[k] && is_half(t.dtype()) {
                        t.to_dtype(DType::F32)
                    } else {
                        Ok((*t).clone())
                    }
                })
                .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = cast.iter().collect();
        return apply(f, &refs, out_shape, composed)?.to_dtype(dt);
    }
    if !matches!(dev, Device::Cpu) {
        if let Some(c) = composed {
            return c(args);
        }
        let cpu: Vec<Tensor> = args.iter().map(|t| t.to_device(&Device::Cpu)).collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = cpu.iter().collect();
        return apply(f, &refs, out_shape, None)?.to_device(&dev);
    }
    let c: Vec<Tensor> = args.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
    // Compute the gradients in the forward when one will be asked for.
    let eager = c.iter().enumerate().any(|(k, t)| F::GRAD[k] && t.track_op());
    let op = FusedOp { f, out_shape, eager, cache: Arc::new(Mutex::new(None)) };
    match c.as_slice() {
        [a, b] => a.apply_op2(b, op),
        [a, b, d] => a.apply_op3(b, d, op),
        _ => candle_core::bail!("{}: internal error, {} arguments", F::NAME, c.len()),
    }
}
