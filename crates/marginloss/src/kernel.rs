//! The fused single-pass driver shared by the element-wise losses.
//!
//! A loss supplies the per-element formula ([`Pointwise`]); the driver reads each
//! `(input, target)` pair once, writes the loss (or accumulates it in eight `f64` lanes)
//! and, in the fused variant, the gradient, while the strict checks are folded into the
//! same loop as a running `&=`. Only after a pass has failed is the first offending
//! element located (a second scan on the error path only).

use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::options::Mode;
use crate::parts;
use crate::reduction::{check_buffer, check_upstream, Reduction};

/// Lanes of independent `f64` accumulators: lets the compiler vectorise the reduction and
/// keeps the rounding error of long sums small.
pub(crate) const LANES: usize = 8;

/// An element-wise loss `l(x, t)` with derivative `∂l/∂x`.
pub(crate) trait Pointwise<T: Float>: Sync + Copy {
    /// The loss's name in errors.
    const LOSS: &'static str;
    /// Strict-mode validity of one element. Must be `false` for NaN/±Inf.
    fn valid(&self, x: T, t: T) -> bool;
    /// The loss of one element.
    fn value(&self, x: T, t: T) -> T;
    /// The loss of one element and its derivative with respect to `x`.
    fn value_grad(&self, x: T, t: T) -> (T, T);
    /// The error for an element for which `valid` is `false` (finite values only: the
    /// driver reports non-finite ones itself).
    fn domain_error(&self, index: usize, x: T, t: T) -> Error;
    /// Whether `|∂l/∂x| ≤ 1` for every valid element, so that the gradient `d·g` is finite
    /// whenever `g` is: the strict reduced pass then checks `g` once instead of every
    /// gradient element.
    const BOUNDED_GRAD: bool = true;
}

/// A `NonFinite` error for `v`.
#[inline]
pub(crate) fn non_finite<T: Float>(loss: &'static str, arg: &'static str, index: usize, v: T) -> Error {
    Error::NonFinite { loss, arg, index, value: Value(v.f64()) }
}

/// Locates the first invalid element (error path only); `None` when every element is valid.
#[cold]
fn locate<T: Float, L: Pointwise<T>>(l: &L, input: &[T], target: &[T]) -> Option<Error> {
    for (i, (&x, &t)) in input.iter().zip(target).enumerate() {
        if !x.is_finite() {
            return Some(non_finite(L::LOSS, "input", i, x));
        }
        if !t.is_finite() {
            return Some(non_finite(L::LOSS, "target", i, t));
        }
        if !l.valid(x, t) {
            return Some(l.domain_error(i, x, t));
        }
    }
    None
}

/// The error of a failed strict pass (error path only): the first invalid input element,
/// else the overflow ([`locate_overflow`]; `grad` is empty for a forward pass).
#[cold]
fn pointwise_error<T: Float, L: Pointwise<T>>(
    l: &L,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    upstream: &[T],
    out: &[T],
    grad: &[T],
) -> Error {
    if let Some(e) = locate(l, input, target) {
        return e;
    }
    let losses: Box<dyn Iterator<Item = T>> = match reduction {
        Reduction::None => Box::new(out.iter().copied()),
        _ => Box::new(input.iter().zip(target).map(|(&x, &t)| l.value(x, t))),
    };
    locate_overflow(L::LOSS, upstream, losses.map(|v| v.is_finite()), &[("input", grad)])
}

/// A strict-mode overflow after a pass over valid inputs (error path only): the first
/// non-finite `upstream` value (a `NonFinite` error), else the first non-finite loss
/// (`losses_finite`, each loss's finiteness in output order: `Overflow` at `output[i]`),
/// else the first non-finite gradient element (at `arg[i]`), else the reduction
/// (`index: None`).
#[cold]
pub(crate) fn locate_overflow<T: Float>(
    loss: &'static str,
    upstream: &[T],
    losses_finite: impl Iterator<Item = bool>,
    grads: &[(&'static str, &[T])],
) -> Error {
    if let Some(i) = upstream.iter().position(|v| !v.is_finite()) {
        return non_finite(loss, "upstream", i, upstream[i]);
    }
    let overflow = |quantity, arg, index| Error::Overflow { loss, quantity, arg, index, dtype: T::DTYPE };
    for (i, fin) in losses_finite.enumerate() {
        if !fin {
            return overflow("loss", "output", Some(i));
        }
    }
    for &(arg, g) in grads {
        if let Some(i) = g.iter().position(|v| !v.is_finite()) {
            return overflow("gradient", arg, Some(i));
        }
    }
    overflow("loss", "output", None)
}

/// Strict mode's check after a pass: a reduced output must be finite, and so must a
/// single upstream value (with it every bounded gradient is finite; a per-element upstream
/// is checked in the pass).
#[inline]
pub(crate) fn reduced_ok<T: Float>(reduction: Reduction, out: &[T], upstream: &[T]) -> bool {
    (reduction == Reduction::None || out[0].is_finite()) && (upstream.len() != 1 || upstream[0].is_finite())
}

fn check_shapes<T: Float, L: Pointwise<T>>(input: &[T], target: &[T], mode: Mode) -> Result<()> {
    if input.len() != target.len() {
        return Err(Error::Shape {
            loss: L::LOSS,
            arg: "target",
            got: vec![target.len()],
            expected: format!("input has shape [{}]", input.len()),
        });
    }
    if input.is_empty() && mode.is_strict() {
        return Err(Error::Empty { loss: L::LOSS, arg: "input" });
    }
    Ok(())
}

/// Forward only: `out` has `reduction.output_len(n)` elements.
pub(crate) fn forward<T: Float, L: Pointwise<T>>(
    l: &L,
    mode: Mode,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    check_shapes::<T, L>(input, target, mode)?;
    let n = input.len();
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    let ok = if mode.is_strict() {
        forward_parts::<T, L, true>(l, input, target, reduction, out) && reduced_ok(reduction, out, &[])
    } else {
        forward_parts::<T, L, false>(l, input, target, reduction, out)
    };
    if ok {
        Ok(())
    } else {
        Err(pointwise_error(l, input, target, reduction, &[], out, &[]))
    }
}

fn forward_parts<T: Float, L: Pointwise<T>, const STRICT: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    out: &mut [T],
) -> bool {
    let n = input.len();
    match reduction {
        Reduction::None => map_parts::<T, L, STRICT, false>(l, input, target, &[], T::zero(), out, &mut []),
        Reduction::Mean | Reduction::Sum => {
            let (sum, ok) = sum_parts::<T, L, STRICT, false>(l, input, target, T::zero(), &mut []);
            out[0] = reduction.finish(sum, n);
            ok
        }
    }
}

/// A reduced pass over all parts of the fixed tree ([`crate::parts`]): the sum of the
/// losses and whether every element was valid. With `GRAD`, `d · g` goes into `grad`.
fn sum_parts<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    g: T,
    grad: &mut [T],
) -> (f64, bool) {
    parts::run(
        input.len(),
        1,
        (input, target, grad),
        &|(input, target, grad)| {
            crate::simd::vectorize(SumPart::<T, L, STRICT, GRAD> { l, input, target, g, grad })
        },
        &|(a, oka), (b, okb)| (a + b, oka & okb),
    )
}

/// An unreduced pass over all parts (the same fixed tree): losses into `out` and, with
/// `GRAD`, the gradient times `upstream` (one per element) or `g` (when `upstream` is
/// empty) into `grad`.
#[allow(clippy::too_many_arguments)]
fn map_parts<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    upstream: &[T],
    g: T,
    out: &mut [T],
    grad: &mut [T],
) -> bool {
    parts::run(
        input.len(),
        1,
        (input, target, upstream, out, grad),
        &|(input, target, upstream, out, grad)| {
            let up = if GRAD { Some((upstream, g)) } else { None };
            crate::simd::vectorize(MapPart::<T, L, STRICT, GRAD> { l, input, target, up, out, grad })
        },
        &|a, b| a & b,
    )
}

/// [`sum_part`]'s arguments, for [`crate::simd::vectorize`].
struct SumPart<'a, T, L, const STRICT: bool, const GRAD: bool> {
    l: &'a L,
    input: &'a [T],
    target: &'a [T],
    g: T,
    grad: &'a mut [T],
}

impl<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool> pulp::WithSimd
    for SumPart<'_, T, L, STRICT, GRAD>
{
    type Output = (f64, bool);
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool) {
        sum_part::<T, L, STRICT, GRAD>(self.l, self.input, self.target, self.g, self.grad)
    }
}

/// [`map_part`]'s arguments, for [`crate::simd::vectorize`].
struct MapPart<'a, T, L, const STRICT: bool, const GRAD: bool> {
    l: &'a L,
    input: &'a [T],
    target: &'a [T],
    up: Option<(&'a [T], T)>,
    out: &'a mut [T],
    grad: &'a mut [T],
}

impl<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool> pulp::WithSimd
    for MapPart<'_, T, L, STRICT, GRAD>
{
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> bool {
        map_part::<T, L, STRICT, GRAD>(self.l, self.input, self.target, self.up, self.out, self.grad)
    }
}

/// One part of a reduced pass: the partial sum of the losses, and with `GRAD` the
/// gradient `d · g` of every element into `grad`.
#[inline(always)]
fn sum_part<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    g: T,
    grad: &mut [T],
) -> (f64, bool) {
    // A local copy: its fields stay in registers, where loads through `&L` would be
    // repeated every element whenever the optimiser cannot rule out that the stores into
    // `grad` change them (which keeps the loop from vectorising).
    let l = &{ *l };
    // Blocks of 64 elements: the element loop writes values (and gradients) into arrays,
    // a plain map the optimiser vectorises at any width; `add_block` then sums them. The
    // rounding error of an f32 block sum is a few ulp of the block, far below what the
    // f64 total keeps.
    let mut ok = true;
    let mut acc = [0.0f64; LANES];
    let xs = input.chunks_exact(BLOCK);
    let ts = target.chunks_exact(BLOCK);
    let (xr, tr) = (xs.remainder(), ts.remainder());
    let tail = input.len() - xr.len();
    if GRAD {
        let mut gs = grad.chunks_exact_mut(BLOCK);
        for ((xb, tb), gb) in xs.zip(ts).zip(&mut gs) {
            // Values into a block-sized array first, lane sums after: the element loop is
            // then a plain map that vectorises at any width.
            let mut vals = [T::zero(); BLOCK];
            let mut oks = [true; BLOCK];
            for i in 0..BLOCK {
                let (v, d) = l.value_grad(xb[i], tb[i]);
                vals[i] = v;
                gb[i] = d * g;
                if STRICT {
                    // A bounded gradient is finite with `g` (checked once by the caller).
                    oks[i] = l.valid(xb[i], tb[i]) & (L::BOUNDED_GRAD || gb[i].is_finite());
                }
            }
            if STRICT {
                ok &= oks.iter().fold(true, |a, &b| a & b);
            }
            add_block(&mut acc, &vals);
        }
        for (k, ((&x, &t), gr)) in xr.iter().zip(tr).zip(&mut grad[tail..]).enumerate() {
            let (v, d) = l.value_grad(x, t);
            acc[k % LANES] += v.f64();
            *gr = d * g;
            if STRICT {
                ok &= l.valid(x, t) & (L::BOUNDED_GRAD || gr.is_finite());
            }
        }
    } else {
        for (xb, tb) in xs.zip(ts) {
            let mut vals = [T::zero(); BLOCK];
            let mut oks = [true; BLOCK];
            for i in 0..BLOCK {
                // `value_grad` (its gradient unused) vectorises better than `value` for
                // some losses; the optimiser drops the unused half.
                vals[i] = l.value_grad(xb[i], tb[i]).0;
                if STRICT {
                    oks[i] = l.valid(xb[i], tb[i]);
                }
            }
            if STRICT {
                ok &= oks.iter().fold(true, |a, &b| a & b);
            }
            add_block(&mut acc, &vals);
        }
        for (k, (&x, &t)) in xr.iter().zip(tr).enumerate() {
            acc[k % LANES] += l.value(x, t).f64();
            if STRICT {
                ok &= l.valid(x, t);
            }
        }
    }
    (sum_lanes(&acc), ok)
}

/// One part of an unreduced pass: the loss of every element into `out`, and with `GRAD`
/// the gradient times the upstream gradient (`upstream` per element, or `g` for all).
#[inline(always)]
fn map_part<T: Float, L: Pointwise<T>, const STRICT: bool, const GRAD: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    upstream: Option<(&[T], T)>,
    out: &mut [T],
    grad: &mut [T],
) -> bool {
    // A local copy, as in `sum_part`.
    let l = &{ *l };
    let mut ok = true;
    match upstream {
        Some((ups, _)) if GRAD && !ups.is_empty() => {
            for i in 0..input.len() {
                let (x, t) = (input[i], target[i]);
                let (v, d) = l.value_grad(x, t);
                out[i] = v;
                grad[i] = d * ups[i];
                if STRICT {
                    ok &= l.valid(x, t) & v.is_finite() & grad[i].is_finite();
                }
            }
        }
        Some((_, g)) if GRAD => {
            for i in 0..input.len() {
                let (x, t) = (input[i], target[i]);
                let (v, d) = l.value_grad(x, t);
                out[i] = v;
                grad[i] = d * g;
                if STRICT {
                    // A bounded gradient is finite with `g` (checked once by the caller).
                    ok &= l.valid(x, t) & v.is_finite() & (L::BOUNDED_GRAD || grad[i].is_finite());
                }
            }
        }
        _ => {
            for i in 0..input.len() {
                let (x, t) = (input[i], target[i]);
                out[i] = l.value(x, t);
                if STRICT {
                    ok &= l.valid(x, t) & out[i].is_finite();
                }
            }
        }
    }
    ok
}

/// Fused forward and backward: writes the loss into `out` and `upstream · ∂loss/∂input`
/// into `grad`, reading each element once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_backward<T: Float, L: Pointwise<T>>(
    l: &L,
    mode: Mode,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad: &mut [T],
) -> Result<()> {
    check_shapes::<T, L>(input, target, mode)?;
    let n = input.len();
    check_buffer(L::LOSS, "output", out.len(), reduction.output_len(n))?;
    check_buffer(L::LOSS, "grad input", grad.len(), n)?;
    check_upstream(L::LOSS, reduction, upstream.len(), n)?;
    let ok = if mode.is_strict() {
        fused_parts::<T, L, true>(l, input, target, reduction, upstream, out, grad)
            && reduced_ok(reduction, out, upstream)
    } else {
        fused_parts::<T, L, false>(l, input, target, reduction, upstream, out, grad)
    };
    if ok {
        Ok(())
    } else {
        Err(pointwise_error(l, input, target, reduction, upstream, out, grad))
    }
}

fn fused_parts<T: Float, L: Pointwise<T>, const STRICT: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad: &mut [T],
) -> bool {
    let n = input.len();
    match reduction {
        Reduction::None => {
            // One value applies to every element; an empty input has an empty upstream.
            let ups = if upstream.len() == 1 { &[][..] } else { upstream };
            let g = upstream.first().copied().unwrap_or(T::zero());
            map_parts::<T, L, STRICT, true>(l, input, target, ups, g, out, grad)
        }
        Reduction::Mean | Reduction::Sum => {
            let g = reduction.scale(upstream[0], n);
            let (sum, ok) = sum_parts::<T, L, STRICT, true>(l, input, target, g, grad);
            out[0] = reduction.finish(sum, n);
            ok
        }
    }
}

/// The block the kernels work in: values go into a local array of this many (a plain map
/// the optimiser vectorises at any width), then into the lanes.
pub(crate) const BLOCK: usize = LANES * 8;

/// Adds a block into `T` lanes: element `i` into lane `i % LANES`, in order. The order is
/// fixed, so a sum does not depend on the block size or the vector width.
#[inline(always)]
pub(crate) fn add_lanes<T: Float>(acc: &mut [T; LANES], vals: &[T; BLOCK]) {
    for vc in vals.as_chunks::<LANES>().0 {
        for k in 0..LANES {
            acc[k] = acc[k] + vc[k];
        }
    }
}

/// Adds a block into `T` lanes as a pairwise tree: the block's eight lane-wide chunks
/// summed `((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))`, then into the lanes. The
/// order is fixed (the same bits at any vector width), and the additions into a lane form
/// a chain of four, not eight, so a loop of blocks is not bound by the adds' latency.
#[inline(always)]
pub(crate) fn add_tree<T: Float>(acc: &mut [T; LANES], vals: &[T; BLOCK]) {
    let c = vals.as_chunks::<LANES>().0;
    for k in 0..LANES {
        let lo = (c[0][k] + c[1][k]) + (c[2][k] + c[3][k]);
        let hi = (c[4][k] + c[5][k]) + (c[6][k] + c[7][k]);
        acc[k] = acc[k] + (lo + hi);
    }
}

/// Adds a block of values into the `f64` lanes: eight lanes of `T` sum eight values each
/// ([`add_lanes`]), then each lane goes into its `f64` lane.
#[inline(always)]
pub(crate) fn add_block<T: Float>(acc: &mut [f64; LANES], vals: &[T; BLOCK]) {
    let mut block = [T::zero(); LANES];
    add_lanes(&mut block, vals);
    for k in 0..LANES {
        acc[k] += block[k].f64();
    }
}

/// The first `src.len()` (at most [`BLOCK`]) elements of `src`, then `fill`: a short last
/// block padded so that it runs through the same fixed-length loop.
#[inline(always)]
pub(crate) fn padded<T: Float>(src: &[T], fill: T) -> [T; BLOCK] {
    // A whole block is a fixed-length copy (vector moves, not a call to memcpy).
    if let Ok(whole) = <&[T; BLOCK]>::try_from(src) {
        return *whole;
    }
    let mut out = [fill; BLOCK];
    out[..src.len()].copy_from_slice(src);
    out
}

/// The eight lanes added pairwise in a fixed order.
#[inline(always)]
pub(crate) fn sum_lanes(acc: &[f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Generates the public `forward`, `forward_into` and `forward_backward` methods of an
/// element-wise loss whose options type has `fn kernel<T>(&self) -> Result<K<T>>` and a
/// `mode` field.
macro_rules! pointwise_api {
    ($name:literal) => {
        /// Computes the loss, allocating the result (a scalar, or one value per element
        /// for [`Reduction::None`]).
        ///
        /// # Errors
        /// In strict mode, the errors listed in this type's docs; in both modes, a
        /// `target` whose length differs from `input`'s.
        pub fn forward<T: $crate::Float>(
            &self,
            input: &[T],
            target: &[T],
            reduction: $crate::Reduction,
        ) -> $crate::Result<$crate::Output<T>> {
            let mut out = vec![T::zero(); reduction.output_len(input.len())];
            self.forward_into(input, target, reduction, &mut out)?;
            Ok($crate::Output::from_buffer(reduction, out))
        }

        /// Computes the loss into `out` without allocating: `out` holds one value for
        /// `Mean`/`Sum` and `input.len()` values for `None`.
        ///
        /// # Errors
        /// As [`forward`](Self::forward), plus a wrongly sized `out`.
        pub fn forward_into<T: $crate::Float>(
            &self,
            input: &[T],
            target: &[T],
            reduction: $crate::Reduction,
            out: &mut [T],
        ) -> $crate::Result<()> {
            let k = self.kernel::<T>()?;
            $crate::kernel::forward(&k, self.mode, input, target, reduction, out)
        }

        /// Fused forward and backward in one pass over memory: writes the loss into `out`
        /// (as [`forward_into`](Self::forward_into)) and `upstream · ∂out/∂input` into
        /// `grad_input` (same length as `input`), allocating nothing.
        ///
        /// `upstream` is the gradient flowing into the output: one value for
        /// `Mean`/`Sum`; for `None`, one value per element, or a single value applied to
        /// every element (`&[1.0]` gives the gradient of the sum of the output).
        ///
        /// # Errors
        /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream` or
        /// `grad_input`. On error the buffers' contents are unspecified.
        pub fn forward_backward<T: $crate::Float>(
            &self,
            input: &[T],
            target: &[T],
            reduction: $crate::Reduction,
            upstream: &[T],
            out: &mut [T],
            grad_input: &mut [T],
        ) -> $crate::Result<()> {
            let k = self.kernel::<T>()?;
            $crate::kernel::forward_backward(
                &k, self.mode, input, target, reduction, upstream, out, grad_input,
            )
        }
    };
}
pub(crate) use pointwise_api;

/// Test support: runs the fused leaves (reduced and unreduced) on every instruction set
/// this CPU has — pulp's portable scalar build, and on x86-64 the AVX2+FMA and AVX-512
/// variants where available — and asserts that each gives the same bits as the first.
#[cfg(test)]
pub(crate) fn assert_same_bits_on_every_isa<T: Float, L: Pointwise<T>>(l: &L, input: &[T], target: &[T]) {
    use pulp::Simd;
    fn run<S: Simd, T: Float, L: Pointwise<T>>(s: S, l: &L, x: &[T], t: &[T]) -> (u64, Vec<T>, Vec<T>) {
        let g = T::of(0.25);
        let mut grad = vec![T::zero(); x.len()];
        let (sum, _) =
            s.vectorize(SumPart::<T, L, true, true> { l, input: x, target: t, g, grad: &mut grad });
        let (mut out, mut grad2) = (vec![T::zero(); x.len()], vec![T::zero(); x.len()]);
        let up = Some((&[][..], g));
        s.vectorize(MapPart::<T, L, true, true> {
            l,
            input: x,
            target: t,
            up,
            out: &mut out,
            grad: &mut grad2,
        });
        assert!(grad.iter().zip(&grad2).all(|(a, b)| a.f64().to_bits() == b.f64().to_bits()));
        (sum.to_bits(), out, grad)
    }
    let bits = |v: &[T]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
    let base = run(pulp::Scalar::new(), l, input, target);
    let mut variants = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(s) = pulp::x86::V3::try_new() {
            variants.push(("avx2", run(s, l, input, target)));
        }
        if let Some(s) = pulp::x86::V4::try_new() {
            variants.push(("avx512", run(s, l, input, target)));
        }
    }
    for (isa, v) in variants {
        assert_eq!(v.0, base.0, "{}: reduced sum differs on {isa}", L::LOSS);
        assert_eq!(bits(&v.1), bits(&base.1), "{}: losses differ on {isa}", L::LOSS);
        assert_eq!(bits(&v.2), bits(&base.2), "{}: gradients differ on {isa}", L::LOSS);
    }
}

/// Test support: 1000 inputs (not a multiple of the block, so the tail runs too) spread
/// over ±`scale` with exact kinks, zeros and ±1 sprinkled in, and ±1 targets.
#[cfg(test)]
pub(crate) fn isa_test_data<T: Float>(scale: f64) -> (Vec<T>, Vec<T>) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let specials = [0.0, 1.0, -1.0, 0.5, 2.0, 1e-30];
    let x = (0..1000)
        .map(|i| {
            T::of(if i % 7 == 0 { specials[i / 7 % specials.len()] } else { (next() * 2.0 - 1.0) * scale })
        })
        .collect();
    let t = (0..1000).map(|_| if next() < 0.5 { T::one() } else { -T::one() }).collect();
    (x, t)
}

/// Checks that an option is finite, in `f64` and in the compute type `T` (strict mode):
/// the kernels compute with `T::of(v)`, so `1e39` is `inf` for `f32` inputs.
pub(crate) fn finite_option<T: Float>(
    loss: &'static str,
    option: &'static str,
    v: f64,
    mode: Mode,
) -> Result<()> {
    if mode.is_strict() {
        if !v.is_finite() {
            return Err(Error::Option { loss, option, value: Value(v), expected: "finite" });
        }
        fits::<T>(loss, option, v)?;
    }
    Ok(())
}

/// Checks that a finite option stays finite in the compute type `T` (strict mode's
/// "does not fit float32" error).
pub(crate) fn fits<T: Float>(loss: &'static str, option: &'static str, v: f64) -> Result<()> {
    if T::of(v).is_finite() {
        return Ok(());
    }
    Err(Error::Option { loss, option, value: Value(v), expected: fit_phrase::<T>() })
}

/// "a number that fits float32, the inputs' dtype (…)" and the like.
pub(crate) fn fit_phrase<T: Float>() -> &'static str {
    match T::DTYPE {
        "float32" => "a number that fits float32, the inputs' dtype (magnitude at most 3.4028235e38)",
        _ => "a number that fits float64, the inputs' dtype",
    }
}

/// A quarter of `T`'s largest value, in `f64`: a row gradient whose elements are bounded by
/// a scalar below this (with a little rounding) is finite without looking at it.
#[inline(always)]
pub(crate) fn grad_limit<T: Float>() -> f64 {
    T::max_value().f64() / 4.0
}

/// Whether every element of `row` is finite, for the strict checks of rows just written
/// (in L1).
#[inline(always)]
pub(crate) fn finite_row<T: Float>(row: &[T]) -> bool {
    row.iter().fold(true, |ok, v| ok & v.is_finite())
}

/// `max(0, u)` that propagates NaN, as torch's `clamp_min`.
#[inline(always)]
pub(crate) fn relu<T: Float>(u: T) -> T {
    T::select(u <= T::zero(), T::zero(), u)
}
