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
}
