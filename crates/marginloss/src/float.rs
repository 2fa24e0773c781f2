//! The floating-point element types the kernels are generic over.

use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type: implemented for `f32` and `f64` only (sealed).
///
/// Every kernel computes each element in `Self`, exactly as PyTorch computes in the
/// tensor's dtype (a scalar option such as `margin` is cast to `Self` first), and
/// accumulates reductions in `f64`.
pub trait Float:
    num_traits::Float + Debug + Display + Default + Send + Sync + sealed::Sealed + 'static
{
    /// The dtype name as PyTorch and NumPy spell it: `"float32"` or `"float64"`.
    const DTYPE: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn of(v: f64) -> Self;

    /// Converts to `f64` exactly.
    fn f64(self) -> f64;

    /// `if c { a } else { b }` without a branch (a bitwise blend), so that kernels whose
    /// lanes take different sides stay vectorised.
    fn select(c: bool, a: Self, b: Self) -> Self;

    /// `e^x` for `x ≤ 0` (NaN propagates, `−∞` gives 0). For `f32` a branch-free
    /// polynomial that vectorises (relative error below 2e-7); for `f64` the libm `exp`.
    #[doc(hidden)]
    fn exp_nonpos(self) -> Self;

    /// `ln(1 + x)` for `x ∈ [0, 1]`, accurate for tiny `x` (NaN propagates). For `f32` a
    /// branch-free series that vectorises (relative error below 2e-7); for `f64` libm.
    #[doc(hidden)]
    fn ln_1p_unit(self) -> Self;

    /// For `a = self ≥ 0`: `(ln(1 + e), e, 1/(1 + e))` with `e = e^(−a)` — what the
    /// softplus losses need for the value and `σ`, with a single division for `f32`.
    #[doc(hidden)]
    #[inline(always)]
    fn softplus_parts(self) -> (Self, Self, Self) {
        let e = (-self).exp_nonpos();
        (e.ln_1p_unit(), e, Self::one() / (Self::one() + e))
    }

    /// `dst = alpha · lhs · rhs` (`+=` with `accumulate`) through faer: the batch losses'
    /// distance matrix and dense backward.
    #[doc(hidden)]
    fn gemm(
        dst: &mut [Self],
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
        accumulate: bool,
    );

    /// The two slices as `f32` when `Self` is `f32` (the kernels with a hand-vectorised
    /// `f32` path), `None` otherwise.
    #[doc(hidden)]
    #[inline(always)]
    fn f32_pair<'a>(
        _a: &'a mut [Self],
        _b: Option<&'a mut [Self]>,
    ) -> Option<(&'a mut [f32], Option<&'a mut [f32]>)> {
        None
    }

    /// The slice as `f32` when `Self` is `f32`, `None` otherwise.
    #[doc(hidden)]
    #[inline(always)]
    fn f32_ref(_a: &[Self]) -> Option<&[f32]> {
        None
    }

    /// [`gemm`](Self::gemm) into a row-major destination whose rows start `dst_stride`
    /// elements apart (`dst = alpha · lhs · rhs`).
    #[doc(hidden)]
    fn gemm_strided(
        dst: &mut [Self],
        dst_stride: usize,
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
    );
}

/// `2^n · p(r)` with `x = n·ln 2 + r`: f32 exp for `x ≤ 0`, without branches.
#[inline(always)]
fn exp_nonpos_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so that n·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting rounds to an integer
                                     // Below −87.3 the result is (nearly) subnormal: flush to 0 (NaN compares false and
                                     // stays NaN).
    let flush = x < -87.3;
    let xc = f32::select(flush, -87.3, x);
    // k holds n = round(x·log2 e) in its low mantissa bits; reading them with integer
    // ops (instead of a saturating float-to-int cast) keeps the loop vectorised.
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Taylor to degree 7 on |r| ≤ ln2/2: truncation error below 3e-9 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let ni = k.to_bits().wrapping_sub(ROUND.to_bits()); // n as two's complement
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    f32::select(flush, 0.0, p * scale)
}

/// f32 `ln(1 + x)` for `x ∈ [0, 1]`: `2·atanh(s)`, `s = x/(2 + x) ≤ 1/3`, by its series.
#[inline(always)]
fn ln_1p_unit_f32(x: f32) -> f32 {
    ln_1p_from_s(x / (2.0 + x))
}

/// `2·atanh(s)` for `s ∈ [0, 1/3]`, i.e. `ln(1 + x)` with `s = x/(2 + x)`.
#[inline(always)]
fn ln_1p_from_s(s: f32) -> f32 {
    let s2 = s * s;
    // Σ s^(2k+1)/(2k+1) up to k = 7: remainder below (1/9)^8/17 ≈ 1.4e-9 relative, far
    // under f32's 6e-8. Only multiplications and additions: a division here (even by a
    // constant) costs as much as the rest of the series in vector code.
    let q = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * q
}

impl Float for f32 {
    const DTYPE: &'static str = "float32";
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn select(c: bool, a: Self, b: Self) -> Self {
        let m = u32::from(c).wrapping_neg();
        f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
    #[inline(always)]
    fn exp_nonpos(self) -> Self {
        exp_nonpos_f32(self)
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        ln_1p_unit_f32(self)
    }
    fn gemm(
        dst: &mut [Self],
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
        accumulate: bool,
    ) {
        crate::batch::gemm::gemm_f32(dst, lhs, rhs, alpha, accumulate)
    }
    #[inline]
    fn gemm_strided(
        dst: &mut [Self],
        dst_stride: usize,
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
    ) {
        crate::batch::gemm::gemm_strided_f32(dst, dst_stride, lhs, rhs, alpha)
    }
    #[inline(always)]
    fn f32_pair<'a>(
        a: &'a mut [Self],
        b: Option<&'a mut [Self]>,
    ) -> Option<(&'a mut [f32], Option<&'a mut [f32]>)> {
        Some((a, b))
    }
    #[inline(always)]
    fn f32_ref(a: &[Self]) -> Option<&[f32]> {
        Some(a)
    }
    #[inline(always)]
    fn softplus_parts(self) -> (Self, Self, Self) {
        let e = exp_nonpos_f32(-self);
        // One division: r = 1/((1 + e)(2 + e)) gives both e/(2 + e) and 1/(1 + e).
        let (p1, p2) = (1.0 + e, 2.0 + e);
        let r = 1.0 / (p1 * p2);
        (ln_1p_from_s(e * p1 * r), e, p2 * r)
    }
}

impl Float for f64 {
    const DTYPE: &'static str = "float64";
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn select(c: bool, a: Self, b: Self) -> Self {
        let m = u64::from(c).wrapping_neg();
        f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
    #[inline(always)]
    fn exp_nonpos(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        self.ln_1p()
    }
    fn gemm(
        dst: &mut [Self],
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
        accumulate: bool,
    ) {
        crate::batch::gemm::gemm_f64(dst, lhs, rhs, alpha, accumulate)
    }
    #[inline]
    fn gemm_strided(
        dst: &mut [Self],
        dst_stride: usize,
        lhs: crate::batch::gemm::Operand<'_, Self>,
        rhs: crate::batch::gemm::Operand<'_, Self>,
        alpha: Self,
    ) {
        crate::batch::gemm::gemm_strided_f64(dst, dst_stride, lhs, rhs, alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_exp_of_non_positive_arguments_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > -88.0 {
            let want = f64::from(x).exp();
            let got = f64::from(x.exp_nonpos());
            if x >= -87.3 {
                worst = worst.max(((got - want) / want).abs());
            }
            x -= 0.001_37;
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!((-100.0f32).exp_nonpos(), 0.0);
        assert_eq!(f32::NEG_INFINITY.exp_nonpos(), 0.0);
        assert!(f32::NAN.exp_nonpos().is_nan());
        assert_eq!(0.0f32.exp_nonpos(), 1.0);
    }

    #[test]
    fn f32_ln_1p_on_the_unit_interval_is_accurate_for_tiny_arguments() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let x = i as f32 / 100_000.0;
            let want = f64::from(x).ln_1p();
            let got = f64::from(x.ln_1p_unit());
            if want > 0.0 {
                worst = worst.max(((got - want) / want).abs());
            }
        }
        for x in [1e-30f32, 1e-10, 3e-8, 1e-5] {
            let want = f64::from(x).ln_1p();
            worst = worst.max(((f64::from(x.ln_1p_unit()) - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert!(f32::NAN.ln_1p_unit().is_nan());
        assert_eq!(0.0f32.ln_1p_unit(), 0.0);
    }
}
