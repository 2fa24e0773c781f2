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
use crate::reduction::{check_buffer, check_upstream, Reduction};

/// Lanes of independent `f64` accumulators: lets the compiler vectorise the reduction and
/// keeps the rounding error of long sums small.
pub(crate) const LANES: usize = 8;

/// An element-wise loss `l(x, t)` with derivative `∂l/∂x`.
pub(crate) trait Pointwise<T: Float> {
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
}

/// A `NonFinite` error for `v`.
#[inline]
pub(crate) fn non_finite<T: Float>(loss: &'static str, arg: &'static str, index: usize, v: T) -> Error {
    Error::NonFinite { loss, arg, index, value: Value(v.f64()) }
}

/// Locates the first invalid element (error path only).
#[cold]
fn locate<T: Float, L: Pointwise<T>>(l: &L, input: &[T], target: &[T]) -> Error {
    for (i, (&x, &t)) in input.iter().zip(target).enumerate() {
        if !x.is_finite() {
            return non_finite(L::LOSS, "input", i, x);
        }
        if !t.is_finite() {
            return non_finite(L::LOSS, "target", i, t);
        }
        if !l.valid(x, t) {
            return l.domain_error(i, x, t);
        }
    }
    // The pass said some element was invalid; `valid` is deterministic, so this is not
    // reached. Report the mismatch rather than panic.
    Error::Empty { loss: L::LOSS, arg: "input" }
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
        forward_pass::<T, L, true>(l, input, target, reduction, out)
    } else {
        forward_pass::<T, L, false>(l, input, target, reduction, out)
    };
    if ok {
        Ok(())
    } else {
        Err(locate(l, input, target))
    }
}

#[inline(always)]
fn forward_pass<T: Float, L: Pointwise<T>, const STRICT: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    out: &mut [T],
) -> bool {
    let mut ok = true;
    match reduction {
        Reduction::None => {
            for ((o, &x), &t) in out.iter_mut().zip(input).zip(target) {
                *o = l.value(x, t);
                if STRICT {
                    ok &= l.valid(x, t);
                }
            }
        }
        Reduction::Mean | Reduction::Sum => {
            let mut acc = [0.0f64; LANES];
            let xs = input.chunks_exact(LANES);
            let ts = target.chunks_exact(LANES);
            let (xr, tr) = (xs.remainder(), ts.remainder());
            for (xc, tc) in xs.zip(ts) {
                for k in 0..LANES {
                    acc[k] += l.value(xc[k], tc[k]).f64();
                    if STRICT {
                        ok &= l.valid(xc[k], tc[k]);
                    }
                }
            }
            for (k, (&x, &t)) in xr.iter().zip(tr).enumerate() {
                acc[k] += l.value(x, t).f64();
                if STRICT {
                    ok &= l.valid(x, t);
                }
            }
            out[0] = reduction.finish(sum_lanes(&acc), input.len());
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
        fused_pass::<T, L, true>(l, input, target, reduction, upstream, out, grad)
    } else {
        fused_pass::<T, L, false>(l, input, target, reduction, upstream, out, grad)
    };
    if ok {
        Ok(())
    } else {
        Err(locate(l, input, target))
    }
}

#[inline(always)]
fn fused_pass<T: Float, L: Pointwise<T>, const STRICT: bool>(
    l: &L,
    input: &[T],
    target: &[T],
    reduction: Reduction,
    upstream: &[T],
    out: &mut [T],
    grad: &mut [T],
) -> bool {
    let mut ok = true;
    match reduction {
        Reduction::None if upstream.len() != 1 => {
            for i in 0..input.len() {
                let (x, t) = (input[i], target[i]);
                let (v, d) = l.value_grad(x, t);
                out[i] = v;
                grad[i] = d * upstream[i];
                if STRICT {
                    ok &= l.valid(x, t);
                }
            }
        }
        Reduction::None => {
            let g = upstream[0];
            for i in 0..input.len() {
                let (x, t) = (input[i], target[i]);
                let (v, d) = l.value_grad(x, t);
                out[i] = v;
                grad[i] = d * g;
                if STRICT {
                    ok &= l.valid(x, t);
                }
            }
        }
        Reduction::Mean | Reduction::Sum => {
            let g = reduction.scale(upstream[0], input.len());
            let mut acc = [0.0f64; LANES];
            let xs = input.chunks_exact(LANES);
            let ts = target.chunks_exact(LANES);
            let (xr, tr) = (xs.remainder(), ts.remainder());
            let mut gs = grad.chunks_exact_mut(LANES);
            for ((xc, tc), gc) in xs.zip(ts).zip(&mut gs) {
                for k in 0..LANES {
                    let (v, d) = l.value_grad(xc[k], tc[k]);
                    acc[k] += v.f64();
                    gc[k] = d * g;
                    if STRICT {
                        ok &= l.valid(xc[k], tc[k]);
                    }
                }
            }
            let gr = gs.into_remainder();
            for k in 0..xr.len() {
                let (v, d) = l.value_grad(xr[k], tr[k]);
                acc[k] += v.f64();
                gr[k] = d * g;
                if STRICT {
                    ok &= l.valid(xr[k], tr[k]);
                }
            }
            out[0] = reduction.finish(sum_lanes(&acc), input.len());
        }
    }
    ok
}

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

/// Checks that an option is finite (strict mode).
pub(crate) fn finite_option(loss: &'static str, option: &'static str, v: f64, mode: Mode) -> Result<()> {
    if mode.is_strict() && !v.is_finite() {
        return Err(Error::Option { loss, option, value: Value(v), expected: "finite" });
    }
    Ok(())
}

/// `max(0, u)` that propagates NaN, as torch's `clamp_min`.
#[inline(always)]
pub(crate) fn relu<T: Float>(u: T) -> T {
    if u <= T::zero() {
        T::zero()
    } else {
        u
    }
}
