//! Metric learning from a batch: `(embeddings, labels) → loss` with the tuples mined
//! inside the batch, as candle ops with autograd through the core's fused kernel
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
//! * `embeddings`: a rank-2 `(N, D)` tensor of dtype f32 or f64 (other float dtypes are
//!   refused: cast first). Strided views are made contiguous (the copy is differentiable).
//! * `labels`: a rank-1 `(N)` integer tensor (u8, u32, i16, i32, i64); labels are only
//!   compared for equality and get no gradient.
//! * The result: a scalar `()` for [`BatchReduction::Mean`], [`MeanNonzero`](BatchReduction::MeanNonzero)
//!   and [`Sum`](BatchReduction::Sum); `(N)` (one value per anchor) for
//!   [`BatchReduction::None`]. `name(&e, &y)` uses the core type's defaults and `Mean`;
//!   `name_with(&e, &y, options, reduction)` takes both.
//!
//! ## How it runs
//!
//! A `CustomOp1` on the embeddings (the labels are read to the host when the op is
//! built). When the embeddings are tracked (a `Var` or the result of tracked ops), its
//! `cpu_fwd` runs the core's fused `forward_backward` **once** with upstream 1 and keeps
//! the gradient (the same loss value as `forward`); otherwise it runs `forward` alone.
//!
//! * **Scalar reductions:** the loss is linear in the upstream gradient `u`, so `bwd`
//!   returns `u · ∂loss/∂embeddings` from the kept gradient (no second pass over the data;
//!   a second `backward` reuses it).
//! * **`BatchReduction::None`:** autograd is supported too. An upstream of all ones
//!   (`loss.sum_all()?.backward()`) takes the kept gradient; any other per-anchor upstream
//!   reruns the core's `forward_backward` with it.
//!
//! The gradient is therefore exactly the core's. Only the CPU runs these losses (there is
//! no composed candle-op path for the mining): tensors on another device are an error
//! that names the function; move them with `to_device(&Device::Cpu)`.
//!
//! ## Errors
//!
//! A `candle_core::Error::Msg` with one line: this crate's, naming the function and the
//! argument (`batch_hard_triplet: labels has dtype F32; …`), or the core's message (label
//! count ≠ N, and in [`Mode::Strict`](crate::Mode::Strict) a batch with no positive pair
//! or no negative, NaN/±Inf, a non-finite margin, …).

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor, WithDType};
use marginloss::batch::{Batch, BatchLabel, BatchStats, Workspace};
pub use marginloss::batch::{
    BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive, Reference,
    SemihardTriplet,
};
use marginloss::{Float, Rows};

use crate::op::core_err;

/// A one-line error of this module.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(candle_core::Error::Msg(format!($($arg)*)))
    };
}

/// The element types of the fused kernel.
trait Elem: Float + WithDType {}
impl Elem for f32 {}
impl Elem for f64 {}

/// A batch loss of the core: its name and its two entry points.
trait BatchLoss: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    fn forward<T: Float, L: BatchLabel>(
        &self,
        batch: &Batch<'_, T, L>,
        reduction: BatchReduction,
    ) -> marginloss::Result<marginloss::Output<T>>;
    #[allow(clippy::too_many_arguments)]
    fn forward_backward<T: Float, L: BatchLabel>(
        &self,
        batch: &Batch<'_, T, L>,
        reduction: BatchReduction,
        upstream: &[T],
        out: &mut [T],
        grad: &mut [T],
        workspace: &mut Workspace<T>,
    ) -> marginloss::Result<BatchStats>;
}

macro_rules! batch_loss {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl BatchLoss for $ty {
            const NAME: &'static str = $name;
            fn forward<T: Float, L: BatchLabel>(
                &self,
                batch: &Batch<'_, T, L>,
                reduction: BatchReduction,
            ) -> marginloss::Result<marginloss::Output<T>> {
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
            ) -> marginloss::Result<BatchStats> {
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

/// The op: a loss, its reduction, the labels (on the host), the shape of the embeddings,
/// whether the forward also computes the gradient, and that gradient (for upstream 1).
#[derive(Clone)]
struct BatchOp<B> {
    loss: B,
    reduction: BatchReduction,
    labels: Arc<Vec<i64>>,
    n: usize,
    d: usize,
    eager: bool,
    grad: Arc<Mutex<Option<Tensor>>>,
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout, name: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) if b <= data.len() => Ok(&data[a..b]),
        _ => fail!("{name}: internal error, the batch op got non-contiguous embeddings"),
    }
}

impl<B: BatchLoss> BatchOp<B> {
    fn out_shape(&self) -> Shape {
        match self.reduction {
            BatchReduction::None => Shape::from(self.n),
            _ => Shape::from(()),
        }
    }

    /// The core's fused kernel with upstream `up`: the loss values and the gradient.
    fn fused<T: Elem>(&self, data: &[T], up: &[T]) -> Result<(Vec<T>, Tensor)> {
        let batch = Batch::new(Rows::new(data, self.n, self.d).map_err(core_err)?, &self.labels[..]);
        let mut out = vec![T::zero(); self.reduction.output_len(self.n)];
        let mut grad = vec![T::zero(); self.n * self.d];
        let mut ws = Workspace::new();
        self.loss
            .forward_backward(&batch, self.reduction, up, &mut out, &mut grad, &mut ws)
            .map_err(core_err)?;
        Ok((out, Tensor::from_vec(grad, (self.n, self.d), &Device::Cpu)?))
    }

    fn cpu_fwd_typed<T: Elem>(&self, data: &[T]) -> Result<(CpuStorage, Shape)> {
        let out = if self.eager {
            let (out, grad) = self.fused(data, &[T::one()])?;
            if let Ok(mut g) = self.grad.lock() {
                *g = Some(grad);
            }
            out
        } else {
            let batch = Batch::new(Rows::new(data, self.n, self.d).map_err(core_err)?, &self.labels[..]);
            self.loss.forward(&batch, self.reduction).map_err(core_err)?.into_vec()
        };
        Ok((T::to_cpu_storage_owned(out), self.out_shape()))
    }

    fn bwd_typed<T: Elem>(&self, arg: &Tensor, grad_res: &Tensor) -> Result<Tensor> {
        let up: Vec<T> = grad_res.to_dtype(<T as WithDType>::DTYPE)?.flatten_all()?.to_vec1()?;
        let kept = self.grad.lock().ok().and_then(|g| g.clone());
        let scalar = self.reduction != BatchReduction::None;
        match kept {
            // A scalar loss is linear in the upstream gradient.
            Some(g) if scalar => {
                let u = up.first().copied().unwrap_or_else(T::one);
                if u == T::one() {
                    Ok(g)
                } else {
                    g.affine(u.f64(), 0.0)
                }
            }
            Some(g) if up.iter().all(|&u| u == T::one()) => Ok(g),
            _ => {
                let (guard, layout) = arg.storage_and_layout();
                let data: &[T] = match &*guard {
                    Storage::Cpu(s) => contiguous(s.as_slice::<T>()?, layout, B::NAME)?,
                    _ => fail!("{}: internal error, the backward got non-CPU embeddings", B::NAME),
                };
                Ok(self.fused(data, &up)?.1)
            }
        }
    }
}

impl<B: BatchLoss> CustomOp1 for BatchOp<B> {
    fn name(&self) -> &'static str {
        B::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        match s {
            CpuStorage::F32(v) => self.cpu_fwd_typed(contiguous(v, l, B::NAME)?),
            CpuStorage::F64(v) => self.cpu_fwd_typed(contiguous(v, l, B::NAME)?),
            other => fail!("{}: embeddings have dtype {:?}, expected f32 or f64", B::NAME, other.dtype()),
        }
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        match arg.dtype() {
            DType::F32 => self.bwd_typed::<f32>(arg, grad_res).map(Some),
            DType::F64 => self.bwd_typed::<f64>(arg, grad_res).map(Some),
            dt => fail!("{}: embeddings have dtype {dt:?}, expected f32 or f64", B::NAME),
        }
    }
}

/// Checks the arguments and applies the op.
fn run<B: BatchLoss>(
    loss: B,
    reduction: BatchReduction,
    embeddings: &Tensor,
    labels: &Tensor,
) -> Result<Tensor> {
    let name = B::NAME;
    for (arg, t) in [("embeddings", embeddings), ("labels", labels)] {
        if !matches!(t.device(), Device::Cpu) {
            fail!(
                "{name}: {arg} is on {:?}; the batch losses run on the CPU only (move the tensors with to_device(&Device::Cpu))",
                t.device()
            )
        }
    }
    let &[n, d] = embeddings.dims() else {
        fail!("{name}: embeddings must be a rank-2 (N, D) tensor, got shape {:?}", embeddings.dims())
    };
    match embeddings.dtype() {
        DType::F32 | DType::F64 => {}
        dt => fail!("{name}: embeddings has dtype {dt:?}; the batch losses take f32 or f64 embeddings"),
    }
    if labels.rank() != 1 {
        fail!("{name}: labels must be a rank-1 (N) tensor of class labels, got shape {:?}", labels.dims())
    }
    let labels = match labels.dtype() {
        DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64 => {
            labels.to_dtype(DType::I64)?.to_vec1()?
        }
        dt => fail!(
            "{name}: labels has dtype {dt:?}; labels must have an integer dtype (i64, i32, i16, u32, u8)"
        ),
    };
    let x = embeddings.contiguous()?;
    let op = BatchOp {
        loss,
        reduction,
        labels: Arc::new(labels),
        n,
        d,
        eager: x.track_op(),
        grad: Arc::new(Mutex::new(None)),
    };
    x.apply_op1(op)
}

/// The batch-hard triplet loss (Hermans, Beyer & Leibe 2017; core: [`BatchHardTriplet`]):
/// per anchor `a` with a positive and a negative, `max(0, max_p d(a, p) − min_n d(a, n) +
/// margin)`, with the core's defaults (margin 0.05, euclidean distance, no normalisation,
/// strict mode) and [`BatchReduction::Mean`] over those anchors.
///
/// `embeddings` `(N, D)` f32/f64, `labels` `(N)` integers; see the [module docs](self).
///
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use marginloss_candle::{batch_hard_triplet, batch_hard_triplet_with, BatchHardTriplet, BatchReduction};
/// let dev = Device::Cpu;
/// // Two classes on a line: rows 0, 1 are class 0 at 0 and 1; rows 2, 3 class 1 at 1.5 and 3.
/// let e = Var::from_slice(&[0.0f64, 1.0, 1.5, 3.0], (4, 1), &dev)?;
/// let y = Tensor::new(&[0u8, 0, 1, 1], &dev)?;
/// let loss = batch_hard_triplet_with(&e, &y, BatchHardTriplet::new().margin(1.0), BatchReduction::Sum)?;
/// // anchors: max(0, 1 − 1.5 + 1) + max(0, 1 − 0.5 + 1) + max(0, 1.5 − 0.5 + 1) + max(0, 1.5 − 2 + 1)
/// assert!((loss.to_scalar::<f64>()? - (0.5 + 1.5 + 2.0 + 0.5)).abs() < 1e-12);
/// let grad = loss.backward()?.get(&e).expect("a gradient").to_vec2::<f64>()?;
/// assert_eq!(grad.len(), 4);
/// let mean = batch_hard_triplet(&e, &y)?; // margin 0.05, the mean over the 4 anchors
/// assert_eq!(mean.dims(), &[] as &[usize]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn batch_hard_triplet(embeddings: &Tensor, labels: &Tensor) -> Result<Tensor> {
    batch_hard_triplet_with(embeddings, labels, BatchHardTriplet::new(), BatchReduction::Mean)
}

/// [`batch_hard_triplet`] with its options ([`BatchHardTriplet`]: margin, soft, distance,
/// normalize, mode, TF-Addons reference) and a [`BatchReduction`].
///
/// # Errors
/// `embeddings` not rank 2 or not f32/f64; `labels` not rank 1 or not an integer tensor;
/// a tensor off the CPU; the core's errors (label count ≠ N, and in strict mode a batch
/// without a positive pair or a negative, NaN/±Inf, a non-finite margin).
pub fn batch_hard_triplet_with(
    embeddings: &Tensor,
    labels: &Tensor,
    loss: BatchHardTriplet,
    reduction: BatchReduction,
) -> Result<Tensor> {
    run(loss, reduction, embeddings, labels)
}

/// The batch-all triplet loss (core: [`BatchAllTriplet`]): `max(0, d(a, p) − d(a, n) +
/// margin)` over every valid triplet of the batch, with the core's defaults (margin 0.05,
/// euclidean, no normalisation, strict) and [`BatchReduction::Mean`] over all valid
/// triplets. Shapes as [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn batch_all_triplet(embeddings: &Tensor, labels: &Tensor) -> Result<Tensor> {
    batch_all_triplet_with(embeddings, labels, BatchAllTriplet::new(), BatchReduction::Mean)
}

/// [`batch_all_triplet`] with its options ([`BatchAllTriplet`]) and a [`BatchReduction`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn batch_all_triplet_with(
    embeddings: &Tensor,
    labels: &Tensor,
    loss: BatchAllTriplet,
    reduction: BatchReduction,
) -> Result<Tensor> {
    run(loss, reduction, embeddings, labels)
}

/// TensorFlow Addons' semi-hard triplet loss (core: [`SemihardTriplet`]): per positive
/// pair `(a, p)`, `max(0, d(a, p) − d(a, n) + margin)` with `n` the nearest negative
/// farther than `p`, else the farthest negative; the core's defaults (margin 1.0,
/// euclidean, no normalisation, strict) and [`BatchReduction::Mean`] over the positive
/// pairs. Shapes as [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn semihard_triplet(embeddings: &Tensor, labels: &Tensor) -> Result<Tensor> {
    semihard_triplet_with(embeddings, labels, SemihardTriplet::new(), BatchReduction::Mean)
}

/// [`semihard_triplet`] with its options ([`SemihardTriplet`]) and a [`BatchReduction`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn semihard_triplet_with(
    embeddings: &Tensor,
    labels: &Tensor,
    loss: SemihardTriplet,
    reduction: BatchReduction,
) -> Result<Tensor> {
    run(loss, reduction, embeddings, labels)
}

/// pytorch-metric-learning's `ContrastiveLoss` over every ordered pair of the batch (core:
/// [`PairContrastive`]): `max(0, d − pos_margin)` for positive pairs, `max(0, neg_margin −
/// d)` for negative pairs, the two parts reduced separately and added; the core's defaults
/// (`pos_margin` 0, `neg_margin` 1, euclidean, no normalisation, strict) and
/// [`BatchReduction::Mean`]. Shapes as [`batch_hard_triplet`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn pair_contrastive(embeddings: &Tensor, labels: &Tensor) -> Result<Tensor> {
    pair_contrastive_with(embeddings, labels, PairContrastive::new(), BatchReduction::Mean)
}

/// [`pair_contrastive`] with its options ([`PairContrastive`]) and a [`BatchReduction`].
///
/// # Errors
/// As [`batch_hard_triplet_with`].
pub fn pair_contrastive_with(
    embeddings: &Tensor,
    labels: &Tensor,
    loss: PairContrastive,
    reduction: BatchReduction,
) -> Result<Tensor> {
    run(loss, reduction, embeddings, labels)
}
