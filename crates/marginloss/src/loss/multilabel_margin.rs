//! PyTorch's `MultiLabelMarginLoss`, and helpers that build its `−1`-padded targets.

use super::class_index::{ClassIndex, SignedClassIndex};
use super::class_rows::{self, ClassRows, RowLoss};
use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::non_finite;
use crate::options::Mode;
use crate::reduction::{Output, Reduction};
use crate::rows::Rows;

const LOSS: &str = "multilabel_margin";

/// Largest C whose "is a target" mask fits the on-stack bitset (64 words of 64 bits).
const STACK_CLASSES: usize = 4096;

/// PyTorch's `MultiLabelMarginLoss`: a multilabel hinge on rows of C class **scores** `x`,
/// each with a list of target classes:
///
/// ```text
/// T = target row read up to its first −1        (a list: duplicates are kept)
/// S = set(T)
/// l = ( Σ_{j ∈ T} Σ_{i ∉ S} max(0, 1 − (x[j] − x[i])) ) / C
/// ```
///
/// then reduced over the N rows by [`Reduction`] (`mean` is `Σ l / N`; the `/C` is always
/// applied). The margin is fixed at 1 and there is no weight, as in torch.
///
/// * **Target encoding:** each target row has C entries: class indices, then `−1`, then
///   anything in `−1..C` (ignored). `[3, 0, −1, 1]` means classes {3, 0}. A class listed
///   twice counts twice (`[3, 3, −1, 0]` gives twice the loss of `[3, −1, 0, 0]`), as
///   torch does. Build targets with [`multilabel_target_from_sets`] or
///   [`multilabel_target_from_indicator`]; **passing a 0/1 indicator row directly is a
///   silent mistake** (it reads as classes 0 and 1).
/// * **Shapes:** `input` is `(N, C)` [`Rows`](crate::Rows); `target` is flat, C entries
///   per row (`N·C` in all, row-major). A 1-D input `(C,)` is
///   [`Rows::single`](crate::Rows::single), N = 1 (torch then returns a 0-d tensor; this
///   returns one element).
/// * **Accumulation:** for each listed target, the sum over the classes in eight lanes of
///   `T`, the lanes then added in `f64` (torch's `acc_type` sums every term in `f64`), then `/C`.
/// * **Gradient:** each pair `(j ∈ T, i ∉ S)` with `z = 1 − x[j] + x[i] > 0` adds `−1/C`
///   to `∂l/∂x[j]` and `+1/C` to `∂l/∂x[i]` (times `1/N` for mean), accumulated in `T` as
///   torch's backward kernel. **Kink:** `z == 0` is inactive, gradient 0, in every torch
///   version (the kernel tests `z > 0`).
/// * **Target range:** every entry of the whole target, **including those after the first
///   −1**, must lie in `−1..C`, in both modes (torch: `argument #2 'target' is out of
///   range`): an index ≥ C is a `ClassIndex` error, an entry below −1 a `Domain` error.
/// * **Errors (strict):** NaN/±Inf in `input`, empty input; in both modes the target range
///   above, an input with no columns (C = 0) and a target that is not C entries per row.
/// * **Torch-compat** reproduces eager torch 2.15: a NaN score makes `z > 0` false and is
///   **silently skipped** (`x = [0.1, NaN, 0.4, 0.8]`, targets {3} give 0.225); an empty
///   batch gives NaN for mean and 0 for sum (eager torch returns an **uninitialised**
///   scalar there) and an empty output for `None`.
/// * **Scratch:** the per-row copy of the scores with the targets masked out is on the
///   stack for `C ≤ 4096`; above that one `Vec` of C elements is allocated per call
///   (O(C), not O(N)).
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.MultiLabelMarginLoss()`, `F.multilabel_margin_loss` |
/// | Keras | none |
/// | scikit-learn | none |
/// | optax | none |
///
/// ```
/// use marginloss::{MultilabelMargin, Reduction, Rows};
/// // loss-spec §3 golden vector (torch 2.15): none [0.85, 0.175], mean 0.5125.
/// let x = [0.1f64, 0.2, 0.4, 0.8, 0.3, 0.9, 0.1, 0.0];
/// let x = Rows::new(&x, 2, 4)?; // N = 2 rows of C = 4 scores
/// let t = [3i64, 0, -1, 1, 1, -1, 2, 2]; // C = 4 target entries per row
/// let l = MultilabelMargin::new().forward(x, &t, Reduction::None)?.into_vec();
/// assert!((l[0] - 0.85).abs() < 1e-15 && (l[1] - 0.175).abs() < 1e-15);
/// let m = MultilabelMargin::new().forward(x, &t, Reduction::Mean)?.scalar().unwrap();
/// assert!((m - 0.5125).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MultilabelMargin {
    /// Strict (default) or torch-compat.
    pub mode: Mode,
}

impl Default for MultilabelMargin {
    fn default() -> Self {
        MultilabelMargin { mode: Mode::Strict }
    }
}

impl MultilabelMargin {
    /// The loss, strict.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Computes the loss, allocating the result (a scalar, or one value per row for
    /// [`Reduction::None`]) of the `(N, C)` scores `input`, with C target entries per row.
    ///
    /// # Errors
    /// As listed in this type's docs.
    pub fn forward<T: Float, I: SignedClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        reduction: Reduction,
    ) -> Result<Output<T>> {
        let (n, ..) = class_rows::rows_of::<T, MultilabelMarginKernel<T>, I>(input, target, self.mode)?;
        let mut out = vec![T::zero(); reduction.output_len(n)];
        self.forward_into(input, target, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    /// Computes the loss into `out`: `out` holds one value for `Mean`/`Sum` and N values
    /// for `None`. Allocates nothing for `C ≤ 4096`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float, I: SignedClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let k = MultilabelMarginKernel::new(input.cols(), input.data().len());
        class_rows::forward(&k, self.mode, input, target, reduction, out)
    }

    /// Fused forward and backward in one pass over memory: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input` into `grad_input`
    /// (same length as `input`, overwritten). Allocates nothing for `C ≤ 4096`.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`; for
    /// `None`, one value per row, or a single value applied to every row.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or
    /// `grad_input`. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float, I: SignedClassIndex>(
        &self,
        input: Rows<'_, T>,
        target: &[I],
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let k = MultilabelMarginKernel::new(input.cols(), input.data().len());
        class_rows::forward_backward(&k, self.mode, input, target, reduction, upstream, out, grad_input)
    }
}

/// [`MultilabelMargin`] (strict) on an `(N, C)` input with `−1`-padded targets.
///
/// ```
/// use marginloss::{multilabel_margin, Reduction, Rows};
/// // torch's documented example: classes {3, 0} of [0.1, 0.2, 0.4, 0.8] give 0.85
/// let x = Rows::single(&[0.1f64, 0.2, 0.4, 0.8]);
/// let l = multilabel_margin(x, &[3, 0, -1, 1], Reduction::Mean)?;
/// assert!((l.scalar().unwrap() - 0.85).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`MultilabelMargin::forward`].
pub fn multilabel_margin<T: Float, I: SignedClassIndex>(
    input: Rows<'_, T>,
    target: &[I],
    reduction: Reduction,
) -> Result<Output<T>> {
    MultilabelMargin::new().forward(input, target, reduction)
}

/// Builds a [`MultilabelMargin`] target from label sets: row `n` lists `sets[n]` in the
/// given order, then `−1` up to `classes` entries. The result is `(sets.len(), classes)`
/// row-major.
///
/// ```
/// use marginloss::multilabel_target_from_sets;
/// let t = multilabel_target_from_sets(&[vec![3, 0], vec![], vec![1]], 4)?;
/// assert_eq!(t, vec![3, 0, -1, -1, -1, -1, -1, -1, 1, -1, -1, -1]);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// `classes == 0` (`Shape`); `classes` or the target's size (`sets.len() · classes`) above
/// 2³² entries, or
/// one whose memory cannot be allocated (`Shape`, never an abort); a label `≥ classes`
/// (`ClassIndex`, or `Domain` for a label of 2⁶³ or more, which no `i64` target holds) or
/// a label repeated within a set (`Domain`: torch would count it twice), with the index the
/// label would take in the produced target (`n·classes + position`).
pub fn multilabel_target_from_sets(sets: &[Vec<usize>], classes: usize) -> Result<Vec<i64>> {
    const HELPER: &str = "multilabel_target_from_sets";
    let shape_error = |expected: &str| Error::Shape {
        loss: HELPER,
        arg: "classes",
        got: vec![sets.len(), classes],
        expected: expected.into(),
    };
    if classes == 0 {
        return Err(shape_error("at least one class (classes >= 1)"));
    }
    let total = match sets.len().checked_mul(classes) {
        Some(t) if t <= MAX_TARGET_ENTRIES && classes <= MAX_TARGET_ENTRIES => t,
        _ => {
            return Err(shape_error(
                "at most 2^32 entries (classes and sets.len() * classes); the class count looks wrong",
            ))
        }
    };
    let mut out = Vec::new();
    if out.try_reserve_exact(total).is_err() {
        return Err(shape_error(
            "a target that fits in memory (allocating sets.len() * classes entries failed)",
        ));
    }
    out.resize(total, -1i64);
    // One bit per class, for the labels that occur: the bitset is bounded by the largest
    // label (itself below `classes`), not by `classes`.
    let top = sets.iter().flatten().copied().filter(|&l| l < classes).max().map_or(0, |m| m + 1);
    let mut seen = vec![0u64; top.div_ceil(64)];
    for (n, (set, row)) in sets.iter().zip(out.chunks_exact_mut(classes)).enumerate() {
        seen.fill(0);
        for (j, &label) in set.iter().enumerate() {
            // `j < classes` whenever the labels so far were distinct and below `classes`;
            // a longer set fails on a repeated or out-of-range label first.
            let index = n * classes + j;
            if label >= classes {
                return Err(match i64::try_from(label) {
                    Ok(value) => Error::ClassIndex { loss: HELPER, arg: "sets", index, value, classes },
                    Err(_) => Error::Domain {
                        loss: HELPER,
                        arg: "sets",
                        index,
                        value: Value(label as f64),
                        expected: "labels below classes (a label of 2^63 or more is no class index)",
                        hint: None,
                    },
                });
            }
            if is_set(&seen, label) {
                return Err(Error::Domain {
                    loss: HELPER,
                    arg: "sets",
                    index,
                    value: Value(label as f64),
                    expected: "each label at most once per set",
                    hint: Some("torch counts a repeated label twice; remove the duplicate"),
                });
            }
            // `label < classes <= total` fits in i64 (the total is at most 2^32).
            row[j] = label as i64;
            seen[label / 64] |= 1 << (label % 64);
        }
    }
    Ok(out)
}

/// The largest target [`multilabel_target_from_sets`] builds: 2³² entries (32 GiB).
const MAX_TARGET_ENTRIES: usize = 1 << 32;

/// Builds a [`MultilabelMargin`] target from a `(N, classes)` 0/1 indicator (multi-hot)
/// matrix: row `n` lists the classes whose indicator is 1, ascending, then `−1`.
///
/// ```
/// use marginloss::multilabel_target_from_indicator;
/// let t = multilabel_target_from_indicator(&[0.0f32, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], 4)?;
/// assert_eq!(t, vec![1, 3, -1, -1, -1, -1, -1, -1]);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// `classes == 0` or a length that is not a multiple of `classes` (`Shape`); a NaN/±Inf
/// (`NonFinite`) or any other value than exactly 0 or 1 (`Domain`), with its flat index.
pub fn multilabel_target_from_indicator<T: Float>(indicator: &[T], classes: usize) -> Result<Vec<i64>> {
    const HELPER: &str = "multilabel_target_from_indicator";
    if classes == 0 || !indicator.len().is_multiple_of(classes) {
        return Err(Error::Shape {
            loss: HELPER,
            arg: "indicator",
            got: vec![indicator.len()],
            expected: format!("a whole number of rows of {classes} classes (classes >= 1)"),
        });
    }
    let mut out = vec![-1i64; indicator.len()];
    for (n, (ind, row)) in indicator.chunks_exact(classes).zip(out.chunks_exact_mut(classes)).enumerate() {
        let mut k = 0;
        for (c, &v) in ind.iter().enumerate() {
            if v == T::one() {
                row[k] = c as i64;
                k += 1;
            } else if v != T::zero() {
                let index = n * classes + c;
                if !v.is_finite() {
                    return Err(non_finite(HELPER, "indicator", index, v));
                }
                return Err(Error::Domain {
                    loss: HELPER,
                    arg: "indicator",
                    index,
                    value: Value(v.f64()),
                    expected: "indicator values in {0, 1}",
                    hint: None,
                });
            }
        }
    }
    Ok(out)
}

/// The per-row copy of the scores with the targets set to `−inf` (so `z > 0` is false
/// there without a per-element mask test).
// Deliberately inline: the stack variant is what keeps C ≤ 4096 allocation-free.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Scratch<T> {
    Stack([T; STACK_CLASSES]),
    Heap(Vec<T>),
}

#[derive(Clone)]
struct MultilabelMarginKernel<T> {
    scratch: Scratch<T>,
    /// C as `T`, the divisor.
    classes_t: T,
    classes: f64,
}

const LANES: usize = 8;

impl<T: Float> MultilabelMarginKernel<T> {
    /// The kernel for rows of `classes` scores in an input of `len` elements: the heap
    /// scratch (for `classes > 4096`) is allocated only when a row fits in the input, so
    /// its size is bounded by the input's (a bad `classes` fails the shape check instead).
    fn new(classes: usize, len: usize) -> Self {
        let scratch = if classes <= STACK_CLASSES {
            Scratch::Stack([T::zero(); STACK_CLASSES])
        } else {
            Scratch::Heap(vec![T::zero(); if classes <= len { classes } else { 0 }])
        };
        MultilabelMarginKernel { scratch, classes_t: T::of(classes as f64), classes: classes as f64 }
    }

    /// Copies `x` into the scratch with the row's targets (read up to the first −1) set
    /// to `−inf`; returns it and whether `x` is finite.
    #[inline(always)]
    fn masked<I: ClassIndex>(&mut self, x: &[T], t: &[I]) -> (&[T], bool) {
        let xm = match &mut self.scratch {
            Scratch::Stack(a) => &mut a[..x.len()],
            Scratch::Heap(v) => &mut v[..x.len()],
        };
        let mut finite = true;
        for (m, &v) in xm.iter_mut().zip(x) {
            *m = v;
            finite &= v.is_finite();
        }
        for v in t.iter().map(|v| v.as_i64()).take_while(|&v| v >= 0) {
            xm[v as usize] = T::neg_infinity();
        }
        (xm, finite)
    }
}

#[inline(always)]
fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 != 0
}

#[inline(always)]
fn lane_sum<T: Float>(acc: &[T; LANES]) -> f64 {
    (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))).f64()
}

/// `Σ_i max(0, base + xm[i])` over 8 lanes (`z > 0` is false for NaN: skipped as in eager
/// torch). With a gradient: `grad[i]` gets `g` where active (`add`: added to it, else
/// stored), and the number of active terms is returned.
#[inline(always)]
fn pass<T: Float>(xm: &[T], base: T, g: T, grad: &mut [T], add: bool) -> (f64, f64) {
    let (mut acc, mut cnt) = ([T::zero(); LANES], [T::zero(); LANES]);
    let chunks = xm.chunks_exact(LANES);
    let rem = chunks.remainder();
    if grad.is_empty() {
        for c in chunks {
            for k in 0..LANES {
                let z = base + c[k];
                acc[k] = acc[k] + T::select(z > T::zero(), z, T::zero());
            }
        }
        for (k, &v) in rem.iter().enumerate() {
            let z = base + v;
            acc[k] = acc[k] + T::select(z > T::zero(), z, T::zero());
        }
    } else {
        let mut gs = grad.chunks_exact_mut(LANES);
        for (c, gc) in chunks.zip(&mut gs) {
            for k in 0..LANES {
                let z = base + c[k];
                let on = z > T::zero();
                acc[k] = acc[k] + T::select(on, z, T::zero());
                cnt[k] = cnt[k] + T::select(on, T::one(), T::zero());
                let d = T::select(on, g, T::zero());
                gc[k] = T::select(add, gc[k] + d, d);
            }
        }
        for (k, (&v, gr)) in rem.iter().zip(gs.into_remainder()).enumerate() {
            let z = base + v;
            let on = z > T::zero();
            acc[k] = acc[k] + T::select(on, z, T::zero());
            cnt[k] = cnt[k] + T::select(on, T::one(), T::zero());
            let d = T::select(on, g, T::zero());
            *gr = T::select(add, *gr + d, d);
        }
    }
    (lane_sum(&acc), lane_sum(&cnt))
}

impl<T: Float> ClassRows<T> for MultilabelMarginKernel<T> {
    const LOSS: &'static str = LOSS;

    fn targets_per_row(classes: usize) -> usize {
        classes
    }

    #[inline(always)]
    fn target_ok(v: i64, classes: usize) -> bool {
        v >= -1 && v < classes as i64
    }

    fn target_error(index: usize, value: i64, classes: usize) -> Error {
        if value < -1 {
            Error::Domain {
                loss: LOSS,
                arg: "target",
                index,
                value: Value(value as f64),
                expected: "class indices in -1..C (-1 ends a row's label list)",
                hint: None,
            }
        } else {
            Error::ClassIndex { loss: LOSS, arg: "target", index, value, classes }
        }
    }

    #[inline]
    fn row<I: ClassIndex>(&mut self, x: &[T], t: &[I]) -> RowLoss<T> {
        let (xm, finite) = self.masked(x, t);
        let mut sum = 0.0f64;
        for j in t.iter().map(|v| v.as_i64()).take_while(|&v| v >= 0) {
            sum += pass(xm, T::one() - x[j as usize], T::zero(), &mut [], false).0;
        }
        let value = T::of(sum) / self.classes_t;
        RowLoss { value, reduced: sum / self.classes, finite }
    }

    #[inline]
    fn row_grad<I: ClassIndex>(&mut self, x: &[T], t: &[I], g: T, up: T, grad: &mut [T]) -> RowLoss<T> {
        let classes = self.classes;
        let classes_t = self.classes_t;
        let (xm, finite) = self.masked(x, t);
        let mut sum = 0.0f64;
        let mut add = false;
        for j in t.iter().map(|v| v.as_i64()).take_while(|&v| v >= 0) {
            let j = j as usize;
            // the targets are −inf in xm, so the pass leaves grad[j] alone (adds 0)
            let (s, active) = pass(xm, T::one() - x[j], g, grad, add);
            add = true;
            sum += s;
            grad[j] = grad[j] - T::of(active) * g;
        }
        if !add {
            grad.fill(T::zero());
        }
        if up != T::one() {
            for gi in grad.iter_mut() {
                *gi = *gi * up;
            }
        }
        let value = T::of(sum) / classes_t;
        RowLoss { value, reduced: sum / classes, finite }
    }

    fn grad_scale(reduction: Reduction, n: usize, classes: usize) -> T {
        match reduction {
            Reduction::Mean => T::of(1.0 / (n as f64 * classes as f64)),
            _ => T::of(1.0 / classes as f64),
        }
    }

    /// Each entry is a sum of at most C² terms `±scale` (C target rows of C classes),
    /// times `up`.
    #[inline(always)]
    fn grad_bounded(&self, scale: T, up: T, classes: usize) -> bool {
        let c = classes as f64;
        (scale.f64() * up.f64()).abs() * c * c < crate::kernel::grad_limit::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{mat, Rows};

    fn fused(l: MultilabelMargin, x: &[f64], t: &[i64], c: usize, r: Reduction) -> (Vec<f64>, Vec<f64>) {
        let n = x.len() / c;
        let (mut out, mut g) = (vec![0.0; r.output_len(n)], vec![0.0; x.len()]);
        l.forward_backward(mat(x, c), t, r, &[1.0], &mut out, &mut g).unwrap();
        (out, g)
    }

    /* torch 2.15 docs example:
    x = torch.tensor([[0.1, 0.2, 0.4, 0.8]], requires_grad=True); y = torch.tensor([[3, 0, -1, 1]])
    F.multilabel_margin_loss(x, y).backward()   # 0.85, grad [-0.5, 0.5, 0.5, -0.5]
    */
    #[test]
    fn docs_example_value_and_gradient() {
        let (out, g) =
            fused(MultilabelMargin::new(), &[0.1, 0.2, 0.4, 0.8], &[3, 0, -1, 1], 4, Reduction::Mean);
        assert!((out[0] - 0.85).abs() < 1e-15);
        assert_eq!(g, vec![-0.5, 0.5, 0.5, -0.5]);
    }

    #[test]
    fn kink_gradient_is_zero() {
        // z = 1 − 1 + 0 = 0 for class 1: inactive
        let (out, g) =
            fused(MultilabelMargin::new(), &[1.0, 0.0, 0.5, 0.25], &[0, -1, -1, -1], 4, Reduction::Sum);
        assert_eq!(out, vec![0.1875]);
        assert_eq!(g, vec![-0.5, 0.0, 0.25, 0.25]);
    }

    #[test]
    fn duplicate_labels_count_twice_as_in_torch() {
        let x = [0.1f64, 0.2, 0.4, 0.8];
        let once = multilabel_margin(mat(&x, 4), &[3, -1, 0, 0], Reduction::Sum).unwrap().scalar().unwrap();
        let twice = multilabel_margin(mat(&x, 4), &[3, 3, -1, 0], Reduction::Sum).unwrap().scalar().unwrap();
        assert!((once - 0.325).abs() < 1e-15 && (twice - 0.65).abs() < 1e-15);
    }

    #[test]
    fn torch_compat_skips_nan() {
        let l = MultilabelMargin::new().mode(Mode::TorchCompat);
        let (out, g) = fused(l, &[0.1, f64::NAN, 0.4, 0.8], &[3, -1, 0, 0], 4, Reduction::Sum);
        assert!((out[0] - 0.225).abs() < 1e-15);
        assert_eq!(g, vec![0.25, 0.0, 0.25, -0.5]);
        let e = multilabel_margin(mat(&[0.1, f64::NAN, 0.4, 0.8], 4), &[3, -1, 0, 0], Reduction::Sum)
            .unwrap_err();
        assert!(e.to_string().starts_with("multilabel_margin got NaN at input[1]; strict mode"), "{e}");
    }

    #[test]
    fn whole_target_is_range_checked_in_both_modes() {
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let l = MultilabelMargin::new().mode(mode);
            // 9 sits after the first -1, where torch still checks it
            let e = l.forward(mat(&[0.0f32; 4], 4), &[3, -1, 9, 0], Reduction::Sum).unwrap_err();
            assert_eq!(
                e.to_string(),
                "multilabel_margin: class index 9 at target[2] is out of range for 4 classes (expected 0..=3)"
            );
            let e = l.forward(mat(&[0.0f32; 4], 4), &[3, -2, 0, 0], Reduction::Sum).unwrap_err();
            assert_eq!(
                e.to_string(),
                "multilabel_margin expects class indices in -1..C (-1 ends a row's label list), got -2 at \
                 target[1]"
            );
        }
    }

    #[test]
    fn shapes_and_empty_input() {
        let e = multilabel_margin(mat(&[0.0f64; 8], 4), &[0, -1, -1, -1], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_margin: target has shape [1, 4] but input has shape [2, 4], so target has \
             shape [2, 4]"
        );
        let e = multilabel_margin::<f64, i64>(mat(&[], 4), &[], Reduction::Sum).unwrap_err();
        assert!(e.to_string().starts_with("multilabel_margin got an empty input"), "{e}");
        let l = MultilabelMargin::new().mode(Mode::TorchCompat);
        assert!(l.forward::<f64, i64>(mat(&[], 4), &[], Reduction::Mean).unwrap().scalar().unwrap().is_nan());
        assert_eq!(l.forward::<f64, i64>(mat(&[], 4), &[], Reduction::Sum).unwrap().scalar(), Some(0.0));
    }

    #[test]
    fn target_from_sets_pads_with_minus_one() {
        let t = multilabel_target_from_sets(&[vec![2, 0], vec![], vec![1, 2, 3, 0]], 4).unwrap();
        assert_eq!(t, vec![2, 0, -1, -1, -1, -1, -1, -1, 1, 2, 3, 0]);
        assert_eq!(multilabel_target_from_sets(&[], 3).unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn target_from_sets_rejects_bad_labels() {
        let e = multilabel_target_from_sets(&[vec![0], vec![1, 4]], 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_target_from_sets: class index 4 at sets[5] is out of range for 4 classes (expected 0..=3)"
        );
        let e = multilabel_target_from_sets(&[vec![1, 2, 1]], 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_target_from_sets expects each label at most once per set, got 1 at sets[2]; torch \
             counts a repeated label twice; remove the duplicate"
        );
        let e = multilabel_target_from_sets(&[vec![0]], 0).unwrap_err();
        assert!(e.to_string().contains("at least one class"), "{e}");
    }

    #[test]
    fn target_from_sets_refuses_a_huge_class_count_instead_of_aborting() {
        // 2^40 classes would be an 8 TiB target: an error, even for empty sets.
        for sets in [vec![vec![0]], vec![vec![]], vec![]] {
            let e = multilabel_target_from_sets(&sets, 1 << 40).unwrap_err();
            assert!(e.to_string().contains("at most 2^32 entries"), "{e}");
        }
        let e = multilabel_target_from_sets(&[vec![], vec![]], usize::MAX).unwrap_err();
        assert!(e.to_string().contains("at most 2^32 entries"), "{e}");
        // A label that no i64 holds is reported as it is, not clamped to i64::MAX.
        let e = multilabel_target_from_sets(&[vec![usize::MAX]], 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_target_from_sets expects labels below classes (a label of 2^63 or more is no \
             class index), got 1.8446744e19 at sets[0]"
        );
    }

    #[test]
    fn a_huge_class_count_with_empty_input_allocates_nothing() {
        // torch-compat accepts an empty batch; the scratch must not be sized by `classes`.
        let l = MultilabelMargin::new().mode(Mode::TorchCompat);
        let v = l.forward::<f32, i64>(Rows::new(&[], 0, 1 << 60).unwrap(), &[], Reduction::Sum).unwrap();
        assert_eq!(v.scalar(), Some(0.0));
        // a stated shape whose element count overflows is refused where the view is made
        assert!(Rows::new(&[0.0f32; 3], 3, usize::MAX).is_err());
        let e = MultilabelMargin::new().forward::<f32, i64>(
            Rows::new(&[], usize::MAX, 0).unwrap(),
            &[0; 3],
            Reduction::Sum,
        );
        assert!(e.unwrap_err().to_string().contains("at least one class"));
    }

    #[test]
    fn target_from_indicator_lists_ones_ascending() {
        let ind = [1.0f64, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let t = multilabel_target_from_indicator(&ind, 4).unwrap();
        assert_eq!(t, vec![0, 2, 3, -1, -1, -1, -1, -1, 1, -1, -1, -1]);
        // the silent mistake it prevents: the indicator row read as class indices {1, 0}
        let x = [0.3f64, 0.9, 0.1, 0.0];
        let right =
            multilabel_margin(mat(&x, 4), &[1, -1, -1, -1], Reduction::Sum).unwrap().scalar().unwrap();
        let wrong = multilabel_margin(mat(&x, 4), &[0, 1, 0, 0], Reduction::Sum).unwrap().scalar().unwrap();
        let built = multilabel_target_from_indicator(&[0.0, 1.0, 0.0, 0.0], 4).unwrap();
        assert_eq!(built, vec![1, -1, -1, -1]);
        assert_eq!(multilabel_margin(mat(&x, 4), &built, Reduction::Sum).unwrap().scalar().unwrap(), right);
        assert!((right - wrong).abs() > 0.1);
    }

    #[test]
    fn target_from_indicator_rejects_values_other_than_0_and_1() {
        let e = multilabel_target_from_indicator(&[0.0f32, 1.0, 0.5, 0.0], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_target_from_indicator expects indicator values in {0, 1}, got 0.5 at indicator[2]"
        );
        let e = multilabel_target_from_indicator(&[0.0f32, f32::NAN], 2).unwrap_err();
        assert!(e.to_string().starts_with("multilabel_target_from_indicator got NaN at indicator[1]"), "{e}");
        let e = multilabel_target_from_indicator(&[0.0f32, 1.0, 0.0], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multilabel_target_from_indicator: indicator has shape [3] but a whole number of rows of 2 \
             classes (classes >= 1)"
        );
    }
}
