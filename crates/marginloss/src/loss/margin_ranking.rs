//! PyTorch's `MarginRankingLoss`: a hinge on the difference of two scores.

use crate::error::{Error, Result, Value};
use crate::float::Float;
use crate::kernel::reduced_ok;
use crate::kernel::{add_block, finite_option, non_finite, padded, relu, sum_lanes, BLOCK, LANES};
use crate::options::{Kink, Labels, Mode};
use crate::parts;
use crate::reduction::{check_buffer, check_upstream, Output, Reduction};

const LOSS: &str = "margin_ranking";

/// PyTorch's `MarginRankingLoss` on pairs of **scores** `(x1_i, x2_i)` with a target
/// `y_i ∈ {−1, +1}` saying which of the two should rank higher:
///
/// ```text
/// l_i = max(0, −y_i · (x1_i − x2_i) + margin)        margin = 0 by default
/// ```
///
/// then reduced by [`Reduction`] (mean by default). `y = 1` asks for `x1 ≥ x2 + margin`,
/// `y = −1` for `x2 ≥ x1 + margin`. With [`Labels::ZeroOne`] the stored target `t` is read
/// as `y = 2t − 1`. Computed in `T` as torch does: `(−y)·(x1 − x2) + margin`.
///
/// * **Shapes:** `input1`, `input2` and `target` have the same number of elements (any
///   shape, flattened row-major; torch's same-ndim broadcasting is not reproduced: expand
///   the arguments first). The output has one element per pair, or one value.
/// * **Gradient:** with `a_i = [−y_i·(x1_i − x2_i) + margin > 0]`,
///   `∂l_i/∂x1_i = −y_i·a_i` and `∂l_i/∂x2_i = +y_i·a_i`. **At the kink** (the argument is
///   exactly 0) it is 0 by default, as torch 2.15's `clamp_min` gives (1 in older torch);
///   see [`Kink`]. Torch also differentiates the target (`∂l/∂y = −(x1 − x2)·a`); this
///   crate treats the target as a label and computes no gradient for it.
/// * **Errors (strict):** NaN/±Inf in any argument (`margin_ranking got NaN at
///   input2[3]; …`), a target outside the encoding (with a hint to use
///   [`Labels::ZeroOne`] when it is 0), empty input, a non-finite margin; in both modes,
///   arguments of different lengths.
/// * **Torch-compat** reproduces torch 2.15: any real target is used as a multiplier
///   (`y = 0` gives `max(0, margin)` and gradient 0, `y = 2` doubles the slope), NaN
///   propagates (its gradient is 0, as `clamp_min`'s), empty input gives NaN (mean) or
///   0 (sum).
/// * **Options in the dtype (strict):** `margin` must be finite in the inputs' type too:
///   `1e39` with `f32` inputs is an [`Error::Option`](crate::Error::Option) ("… fits float32"),
///   where torch-compat computes with the `inf` it becomes.
/// * **Overflow (strict):** a loss or gradient that is not finite although every input
///   is (the arithmetic overflowed the dtype, e.g. a squared distance of `f32` rows beyond
///   `3.4e38`) is an [`Error::Overflow`](crate::Error::Overflow) naming the first output or
///   gradient index (no index when only the reduction overflows); a non-finite `upstream`
///   is a `NonFinite` error. Torch-compat returns torch's `inf`/NaN there.
///
/// | framework | equivalent |
/// |---|---|
/// | PyTorch | `nn.MarginRankingLoss(margin)`, `F.margin_ranking_loss` |
/// | Keras | none |
/// | scikit-learn | none |
/// | optax | none (`optax.losses.hinge_loss(x1 - x2, y)` is the margin-1 case) |
///
/// ```
/// use marginloss::{MarginRanking, Reduction};
/// // torch 2.15 (fixture kink_margin_0): the first two pairs sit exactly on the kink.
/// let (x1, x2, y) = ([1.0f64, -0.5, 2.0], [1.0, -0.5, 3.0], [1.0, -1.0, 1.0]);
/// let (mut out, mut g1, mut g2) = ([0.0; 3], [0.0; 3], [0.0; 3]);
/// MarginRanking::new().forward_backward(
///     &x1, &x2, &y, Reduction::None, &[1.0], &mut out, &mut g1, &mut g2,
/// )?;
/// assert_eq!(out, [0.0, 0.0, 1.0]);
/// assert_eq!((g1, g2), ([0.0, 0.0, -1.0], [0.0, 0.0, 1.0]));
/// # Ok::<(), marginloss::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MarginRanking {
    /// The margin (default 0.0, as torch).
    pub margin: f64,
    /// The target encoding (default ±1).
    pub labels: Labels,
    /// Strict (default) or torch-compat.
    pub mode: Mode,
    /// The subgradient at the kink (default 0, torch 2.15).
    pub kink: Kink,
}

impl Default for MarginRanking {
    fn default() -> Self {
        MarginRanking { margin: 0.0, labels: Labels::PlusMinusOne, mode: Mode::Strict, kink: Kink::Zero }
    }
}

impl MarginRanking {
    /// The loss with its defaults: margin 0, ±1 labels, strict, kink gradient 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }
    /// Sets the target encoding.
    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
    /// Sets the validation mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets the kink convention.
    pub fn kink(mut self, kink: Kink) -> Self {
        self.kink = kink;
        self
    }

    fn kernel<T: Float>(&self) -> Result<Kernel<T>> {
        finite_option::<T>(LOSS, "margin", self.margin, self.mode)?;
        Ok(Kernel { margin: T::of(self.margin), labels: self.labels, kink: self.kink })
    }

    /// The number of pairs, after checking that the three arguments have equal lengths
    /// (and, in strict mode, that there is at least one pair).
    fn pairs<T: Float>(&self, input1: &[T], input2: &[T], target: &[T]) -> Result<usize> {
        let n = input1.len();
        for (arg, len) in [("input2", input2.len()), ("target", target.len())] {
            if len != n {
                return Err(Error::Shape {
                    loss: LOSS,
                    arg,
                    got: vec![len],
                    expected: format!("input1 has shape [{n}]"),
                });
            }
        }
        if n == 0 && self.mode.is_strict() {
            return Err(Error::Empty { loss: LOSS, arg: "input1" });
        }
        Ok(n)
    }

    /// Computes the loss, allocating the result (a scalar, or one value per pair for
    /// [`Reduction::None`]).
    ///
    /// # Errors
    /// In strict mode, the errors listed in this type's docs; in both modes, arguments
    /// of different lengths.
    pub fn forward<T: Float>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
    ) -> Result<Output<T>> {
        let mut out = vec![T::zero(); reduction.output_len(input1.len())];
        self.forward_into(input1, input2, target, reduction, &mut out)?;
        Ok(Output::from_buffer(reduction, out))
    }

    /// Computes the loss into `out` without allocating: `out` holds one value for
    /// `Mean`/`Sum` and `input1.len()` values for `None`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), plus a wrongly sized `out`.
    pub fn forward_into<T: Float>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        out: &mut [T],
    ) -> Result<()> {
        let k = self.kernel::<T>()?;
        let n = self.pairs(input1, input2, target)?;
        check_buffer(LOSS, "output", out.len(), reduction.output_len(n))?;
        let ok = if self.mode.is_strict() {
            k.forward::<true>(input1, input2, target, reduction, out) && reduced_ok(reduction, out, &[])
        } else {
            k.forward::<false>(input1, input2, target, reduction, out)
        };
        if ok {
            Ok(())
        } else {
            Err(k.error(input1, input2, target, reduction, &[], out, &[]))
        }
    }

    /// Fused forward and backward in one pass over memory: writes the loss into `out` (as
    /// [`forward_into`](Self::forward_into)), `upstream · ∂out/∂input1` into `grad_input1`
    /// and `upstream · ∂out/∂input2` into `grad_input2` (each as long as `input1`),
    /// allocating nothing. The gradient buffers are overwritten.
    ///
    /// `upstream` is the gradient flowing into the output: one value for `Mean`/`Sum`;
    /// for `None`, one value per pair, or a single value applied to every pair (`&[1.0]`
    /// gives the gradient of the sum of the output).
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), plus wrongly sized `upstream`,
    /// `grad_input1` or `grad_input2`. On error the buffers' contents are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward<T: Float>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        upstream: &[T],
        out: &mut [T],
        grad_input1: &mut [T],
        grad_input2: &mut [T],
    ) -> Result<()> {
        let k = self.kernel::<T>()?;
        let n = self.pairs(input1, input2, target)?;
        check_buffer(LOSS, "output", out.len(), reduction.output_len(n))?;
        check_buffer(LOSS, "grad input1", grad_input1.len(), n)?;
        check_buffer(LOSS, "grad input2", grad_input2.len(), n)?;
        check_upstream(LOSS, reduction, upstream.len(), n)?;
        let ok = if self.mode.is_strict() {
            let bufs = (&mut *out, &mut *grad_input1, &mut *grad_input2);
            // The gradient, ±upstream or 0, is finite with the upstream (checked per pair
            // for `None`, once by `reduced_ok` otherwise).
            k.fused::<true>(input1, input2, target, reduction, upstream, bufs)
                && reduced_ok(reduction, out, upstream)
        } else {
            k.fused::<false>(input1, input2, target, reduction, upstream, (out, grad_input1, grad_input2))
        };
        if ok {
            Ok(())
        } else {
            let grads = [("input1", &*grad_input1), ("input2", &*grad_input2)];
            Err(k.error(input1, input2, target, reduction, upstream, out, &grads))
        }
    }
}

/// [`MarginRanking`] with its defaults (margin 0) on `f32` or `f64` slices.
///
/// ```
/// use marginloss::{margin_ranking, Reduction};
/// // max(0, −y·(x1 − x2) + 0): x1 should rank higher (y = 1); the second pair is 0.5 wrong
/// let (x1, x2, y) = ([1.0f64, 0.2], [0.5, 0.7], [1.0, 1.0]);
/// let l = margin_ranking(&x1, &x2, &y, Reduction::None)?.into_vec();
/// assert!(l[0] == 0.0 && (l[1] - 0.5).abs() < 1e-15);
/// assert!((margin_ranking(&x1, &x2, &y, Reduction::Mean)?.scalar().unwrap() - 0.25).abs() < 1e-15);
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// # Errors
/// As [`MarginRanking::forward`].
pub fn margin_ranking<T: Float>(
    input1: &[T],
    input2: &[T],
    target: &[T],
    reduction: Reduction,
) -> Result<Output<T>> {
    MarginRanking::new().forward(input1, input2, target, reduction)
}

#[derive(Clone, Copy)]
struct Kernel<T> {
    margin: T,
    labels: Labels,
    kink: Kink,
}

impl<T: Float> Kernel<T> {
    #[inline(always)]
    fn valid(&self, a: T, b: T, t: T) -> bool {
        a.is_finite() & b.is_finite() & self.labels.accepts(t)
    }

    /// The hinge argument `(−y)·(x1 − x2) + margin` and the decoded target `y`.
    #[inline(always)]
    fn arg(&self, a: T, b: T, t: T) -> (T, T) {
        let y = self.labels.decode(t);
        (-y * (a - b) + self.margin, y)
    }

    /// The error of a failed strict pass (error path only): the first offending input
    /// element, else the overflow (`grads` empty for a forward pass).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn error(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        upstream: &[T],
        out: &[T],
        grads: &[(&'static str, &[T])],
    ) -> Error {
        if let Some(e) = self.locate(input1, input2, target) {
            return e;
        }
        let losses: Box<dyn Iterator<Item = T>> = match reduction {
            Reduction::None => Box::new(out.iter().copied()),
            _ => Box::new(
                input1.iter().zip(input2).zip(target).map(|((&a, &b), &t)| relu(self.arg(a, b, t).0)),
            ),
        };
        crate::kernel::locate_overflow(LOSS, upstream, losses.map(|v| v.is_finite()), grads)
    }

    /// The first offending element (error path only).
    #[cold]
    fn locate(&self, input1: &[T], input2: &[T], target: &[T]) -> Option<Error> {
        for (i, ((&a, &b), &t)) in input1.iter().zip(input2).zip(target).enumerate() {
            for (arg, v) in [("input1", a), ("input2", b), ("target", t)] {
                if !v.is_finite() {
                    return Some(non_finite(LOSS, arg, i, v));
                }
            }
            if !self.labels.accepts(t) {
                return Some(Error::Domain {
                    loss: LOSS,
                    arg: "target",
                    index: i,
                    value: Value(t.f64()),
                    expected: self.labels.expected(),
                    hint: self.labels.hint(t),
                });
            }
        }
        None
    }

    fn forward<const STRICT: bool>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        out: &mut [T],
    ) -> bool {
        self.pass::<STRICT, false>(input1, input2, target, reduction, &[], (out, &mut [], &mut []))
    }

    fn fused<const STRICT: bool>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        upstream: &[T],
        bufs: (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        self.pass::<STRICT, true>(input1, input2, target, reduction, upstream, bufs)
    }

    /// One pass over all pairs in the fixed tree of parts ([`crate::parts`]), each part
    /// run through [`crate::simd::vectorize`]: losses into `out` (or their sum) and, with
    /// `GRAD`, the gradients into `grad1`/`grad2`.
    #[allow(clippy::too_many_arguments)]
    fn pass<const STRICT: bool, const GRAD: bool>(
        &self,
        input1: &[T],
        input2: &[T],
        target: &[T],
        reduction: Reduction,
        upstream: &[T],
        (out, grad1, grad2): (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let n = input1.len();
        let k = *self;
        match reduction {
            Reduction::None => {
                // A single upstream value applies to every pair (empty only for n = 0).
                let g = upstream.first().copied().unwrap_or(T::zero());
                let ups = if upstream.len() == 1 { &[][..] } else { upstream };
                parts::run(
                    n,
                    1,
                    (input1, input2, target, ups, out, grad1, grad2),
                    &|(a, b, t, ups, out, g1, g2)| {
                        let (out, grads) = (Some(out), (g1, g2));
                        crate::simd::vectorize(Part::<T, STRICT, GRAD> { k, a, b, t, ups, g, out, grads }).1
                    },
                    &|x, y| x & y,
                )
            }
            Reduction::Mean | Reduction::Sum => {
                let g = if GRAD { reduction.scale(upstream[0], n) } else { T::zero() };
                let (sum, ok) = parts::run(
                    n,
                    1,
                    (input1, input2, target, grad1, grad2),
                    &|(a, b, t, g1, g2)| {
                        let (ups, grads) = (&[][..], (g1, g2));
                        crate::simd::vectorize(Part::<T, STRICT, GRAD> {
                            k,
                            a,
                            b,
                            t,
                            ups,
                            g,
                            out: None,
                            grads,
                        })
                    },
                    &|(x, okx), (y, oky)| (x + y, okx & oky),
                );
                out[0] = reduction.finish(sum, n);
                ok
            }
        }
    }
}

/// One block of pairs: losses into `vals` and, with `GRAD`, `∂loss/∂input1` (times
/// `ups[i]` with `PER`, else `g`) into `d1`; returns whether every pair was valid. Fixed
/// length and local outputs (which cannot overlap the inputs): a plain map that the
/// optimiser vectorises at any width.
#[inline(always)]
fn block<T: Float, const STRICT: bool, const GRAD: bool, const PER: bool>(
    k: &Kernel<T>,
    (a, b, t): (&[T; BLOCK], &[T; BLOCK], &[T; BLOCK]),
    (ups, g): (&[T; BLOCK], T),
    vals: &mut [T; BLOCK],
    d1: &mut [T; BLOCK],
) -> bool {
    for i in 0..BLOCK {
        let (u, y) = k.arg(a[i], b[i], t[i]);
        vals[i] = relu(u);
        if GRAD {
            let gi = if PER { ups[i] } else { g };
            d1[i] = -y * k.kink.step(u) * gi;
        }
    }
    // The checks in a loop of their own (the block is in L1 by now): folded into the
    // loop above they keep it from vectorising.
    let mut oks = [true; BLOCK];
    if STRICT {
        for i in 0..BLOCK {
            oks[i] = k.valid(a[i], b[i], t[i]);
        }
    }
    oks.iter().fold(true, |x, &y| x & y)
}

/// One part of a pass: pairs `a[i], b[i], t[i]`, the upstream gradient per pair (`ups`)
/// or for all (`g`), the per-pair losses (`out`, else their sum is returned) and the
/// gradient buffers (empty without `GRAD`).
struct Part<'a, T, const STRICT: bool, const GRAD: bool> {
    k: Kernel<T>,
    a: &'a [T],
    b: &'a [T],
    t: &'a [T],
    ups: &'a [T],
    g: T,
    out: Option<&'a mut [T]>,
    grads: (&'a mut [T], &'a mut [T]),
}

impl<T: Float, const STRICT: bool, const GRAD: bool> pulp::WithSimd for Part<'_, T, STRICT, GRAD> {
    type Output = (f64, bool);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, bool) {
        let Part { k, a, b, t, ups, g, mut out, grads: (g1, g2) } = self;
        let n = a.len();
        let mut acc = [0.0f64; LANES];
        let mut ok = true;
        let (mut vals, mut d1) = ([T::zero(); BLOCK], [T::zero(); BLOCK]);
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let len = end - start;
            let (a, b, t) = (&a[start..end], &b[start..end], &t[start..end]);
            let ups = if ups.is_empty() { ups } else { &ups[start..end] };
            let valid = match (a.try_into(), b.try_into(), t.try_into(), ups.try_into()) {
                (Ok(a), Ok(b), Ok(t), Ok(ups)) => {
                    block::<T, STRICT, GRAD, true>(&k, (a, b, t), (ups, g), &mut vals, &mut d1)
                }
                (Ok(a), Ok(b), Ok(t), Err(_)) if ups.is_empty() => block::<T, STRICT, GRAD, false>(
                    &k,
                    (a, b, t),
                    (&[T::zero(); BLOCK], g),
                    &mut vals,
                    &mut d1,
                ),
                _ => {
                    // The short last block, padded with valid pairs whose results are
                    // dropped.
                    let (a, b, t) = (padded(a, T::zero()), padded(b, T::zero()), padded(t, T::one()));
                    let per = padded(ups, T::zero());
                    if ups.is_empty() {
                        block::<T, STRICT, GRAD, false>(&k, (&a, &b, &t), (&per, g), &mut vals, &mut d1)
                    } else {
                        block::<T, STRICT, GRAD, true>(&k, (&a, &b, &t), (&per, g), &mut vals, &mut d1)
                    }
                }
            };
            ok &= valid;
            if STRICT && out.is_some() {
                // Unreduced: every loss (and with a per-pair upstream every gradient) must
                // be finite; a reduced pass checks its sum instead.
                ok &= vals[..len].iter().fold(true, |a, v| a & v.is_finite());
                if GRAD && !ups.is_empty() {
                    ok &= d1[..len].iter().fold(true, |a, v| a & v.is_finite());
                }
            }
            if GRAD {
                g1[start..end].copy_from_slice(&d1[..len]);
                for (g2, &d) in g2[start..end].iter_mut().zip(&d1[..len]) {
                    *g2 = -d;
                }
            }
            match out.as_deref_mut() {
                Some(out) => out[start..end].copy_from_slice(&vals[..len]),
                None if len == BLOCK => add_block(&mut acc, &vals),
                None => {
                    for (i, v) in vals[..len].iter().enumerate() {
                        acc[i % LANES] += v.f64();
                    }
                }
            }
            start = end;
        }
        (sum_lanes(&acc), ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        use pulp::Simd;
        fn run<S: Simd>(s: S, k: Kernel<f32>, a: &[f32], b: &[f32], t: &[f32]) -> Vec<u32> {
            let n = a.len();
            let (mut out, mut g1, mut g2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let grads = (&mut g1[..], &mut g2[..]);
            let (sum, _) =
                s.vectorize(Part::<f32, true, true> { k, a, b, t, ups: &[], g: 0.5, out: None, grads });
            let grads = (&mut g1[..], &mut g2[..]);
            s.vectorize(Part::<f32, true, true> { k, a, b, t, ups: b, g: 0.5, out: Some(&mut out), grads });
            let bits = [sum as f32].into_iter().chain(out).chain(g1).chain(g2);
            bits.map(f32::to_bits).collect()
        }
        let (a, t) = crate::kernel::isa_test_data::<f32>(3.0);
        let (b, _) = crate::kernel::isa_test_data::<f32>(2.0);
        for kink in [Kink::Zero, Kink::Half, Kink::One] {
            let k = MarginRanking::new().margin(0.5).kink(kink).kernel::<f32>().unwrap();
            let base = run(pulp::Scalar::new(), k, &a, &b, &t);
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(s) = pulp::x86::V3::try_new() {
                    assert_eq!(run(s, k, &a, &b, &t), base, "avx2, {kink:?}");
                }
                if let Some(s) = pulp::x86::V4::try_new() {
                    assert_eq!(run(s, k, &a, &b, &t), base, "avx512, {kink:?}");
                }
            }
        }
    }

    fn fb(
        l: MarginRanking,
        x1: &[f64],
        x2: &[f64],
        y: &[f64],
        r: Reduction,
    ) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let n = x1.len();
        let (mut out, mut g1, mut g2) = (vec![0.0; r.output_len(n)], vec![9.0; n], vec![9.0; n]);
        l.forward_backward(x1, x2, y, r, &[1.0], &mut out, &mut g1, &mut g2)?;
        Ok((out, g1, g2))
    }

    #[test]
    fn loss_is_the_hinge_of_the_signed_difference() {
        // y = 1 wants x1 ≥ x2 + margin, y = −1 wants x2 ≥ x1 + margin.
        let (out, g1, g2) = fb(
            MarginRanking::new().margin(0.5),
            &[1.0, 1.0, 3.0],
            &[2.0, 2.0, 0.0],
            &[1.0, -1.0, 1.0],
            Reduction::None,
        )
        .unwrap();
        assert_eq!(out, [1.5, 0.0, 0.0]);
        assert_eq!(g1, [-1.0, 0.0, 0.0]);
        assert_eq!(g2, [1.0, 0.0, 0.0]);
    }

    #[test]
    fn kink_gradient_follows_the_chosen_convention() {
        // −y·(x1 − x2) + margin = −(1 − 0.5) + 0.5 = 0 exactly.
        for (kink, want) in [(Kink::Zero, 0.0), (Kink::Half, -0.5), (Kink::One, -1.0)] {
            let l = MarginRanking::new().margin(0.5).kink(kink);
            let (out, g1, g2) = fb(l, &[1.0], &[0.5], &[1.0], Reduction::Sum).unwrap();
            assert_eq!((out[0], g1[0], g2[0]), (0.0, want, -want), "{kink:?}");
        }
    }

    #[test]
    fn zero_one_labels_decode_zero_as_minus_one() {
        let l = MarginRanking::new().labels(Labels::ZeroOne);
        let out = l.forward(&[1.0f32, 1.0], &[2.0, 2.0], &[0.0, 1.0], Reduction::None).unwrap().into_vec();
        assert_eq!(out, [0.0, 1.0]);
    }

    #[test]
    fn strict_zero_target_suggests_zero_one_labels() {
        let e = margin_ranking(&[1.0f32, 2.0], &[0.0, 0.0], &[1.0, 0.0], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "margin_ranking expects target in {-1, 1}, got 0 at target[1]; for {0, 1} labels choose \
             Labels::ZeroOne (CLI: --labels 01)"
        );
    }

    #[test]
    fn strict_rejects_non_finite_naming_the_argument() {
        let e = margin_ranking(&[1.0f64, 2.0], &[0.0, f64::NAN], &[1.0, 1.0], Reduction::Sum).unwrap_err();
        assert_eq!(
            e.to_string(),
            "margin_ranking got NaN at input2[1]; strict mode rejects NaN and infinities \
             (torch-compat mode propagates them as PyTorch does)"
        );
        let e = MarginRanking::new().margin(f64::NAN).forward(&[1.0f32], &[0.0], &[1.0], Reduction::Sum);
        assert_eq!(e.unwrap_err().to_string(), "margin_ranking: option margin must be finite, got NaN");
    }

    #[test]
    fn strict_rejects_empty_input() {
        let e = margin_ranking::<f32>(&[], &[], &[], Reduction::Mean).unwrap_err();
        assert_eq!(
            e.to_string(),
            "margin_ranking got an empty input1; strict mode rejects it because the mean of nothing is \
             undefined (torch-compat mode gives NaN for mean, 0 for sum)"
        );
    }

    #[test]
    fn mismatched_lengths_are_a_shape_error_in_both_modes() {
        for mode in [Mode::Strict, Mode::TorchCompat] {
            let l = MarginRanking::new().mode(mode);
            let e = l.forward(&[1.0f64, 2.0], &[0.0, 1.0], &[1.0], Reduction::Mean).unwrap_err();
            assert_eq!(e.to_string(), "margin_ranking: target has shape [1] but input1 has shape [2]");
            let (mut out, mut g1, mut g2) = ([0.0], [0.0; 2], [0.0; 3]);
            let e = l
                .forward_backward(
                    &[1.0, 2.0],
                    &[0.0, 1.0],
                    &[1.0, 1.0],
                    Reduction::Sum,
                    &[1.0],
                    &mut out,
                    &mut g1,
                    &mut g2,
                )
                .unwrap_err();
            assert_eq!(e.to_string(), "margin_ranking: the grad input2 buffer has length 3, expected 2");
        }
    }

    /* torch 2.15 (fixture target_zero):
    F.margin_ranking_loss(x1, x2, y, margin=0.5, reduction="none") with
    x1 = [1, 0.3, -2], x2 = [0.5, 0.6, 1], y = [0, 1, 0]  ->  [0.5, 0.8, 0.5]
    */
    #[test]
    fn torch_compat_uses_any_target_as_a_multiplier() {
        let l = MarginRanking::new().margin(0.5).mode(Mode::TorchCompat);
        let (out, g1, g2) =
            fb(l, &[1.0, 0.3, -2.0], &[0.5, 0.6, 1.0], &[0.0, 1.0, 0.0], Reduction::None).unwrap();
        assert_eq!(out[0], 0.5);
        assert!((out[1] - 0.8).abs() < 1e-15);
        assert_eq!(out[2], 0.5);
        assert_eq!((g1, g2), (vec![0.0, -1.0, 0.0], vec![0.0, 1.0, 0.0]));
        // y = 2 doubles the slope.
        let (out, g1, _) = fb(l, &[0.0], &[1.0], &[2.0], Reduction::Sum).unwrap();
        assert_eq!((out[0], g1[0]), (2.5, -2.0));
    }

    #[test]
    fn torch_compat_propagates_nan_with_zero_gradient_and_empty_gives_nan_mean() {
        let l = MarginRanking::new().mode(Mode::TorchCompat);
        let (out, g1, g2) = fb(l, &[f64::NAN, 1.0], &[0.0, 0.0], &[1.0, -1.0], Reduction::None).unwrap();
        assert!(out[0].is_nan());
        assert_eq!(out[1], 1.0);
        assert_eq!((g1, g2), (vec![0.0, 1.0], vec![0.0, -1.0]));
        assert!(l.forward::<f32>(&[], &[], &[], Reduction::Mean).unwrap().scalar().unwrap().is_nan());
        assert_eq!(l.forward::<f32>(&[], &[], &[], Reduction::Sum).unwrap().scalar(), Some(0.0));
        let (out, _, _) = fb(l, &[], &[], &[], Reduction::None).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn per_pair_upstream_scales_each_gradient() {
        let (mut out, mut g1, mut g2) = ([0.0f64; 2], [0.0; 2], [0.0; 2]);
        MarginRanking::new()
            .margin(1.0)
            .forward_backward(
                &[0.0, 0.0],
                &[0.0, 0.0],
                &[1.0, -1.0],
                Reduction::None,
                &[2.0, 3.0],
                &mut out,
                &mut g1,
                &mut g2,
            )
            .unwrap();
        assert_eq!(out, [1.0, 1.0]);
        assert_eq!(g1, [-2.0, 3.0]);
        assert_eq!(g2, [2.0, -3.0]);
    }
}
