//! Options shared by several losses: validation mode, label encoding, kink subgradient.

use crate::float::Float;

/// How a loss treats input outside its domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reject it with an [`Error`](crate::Error) naming the loss, argument, index and
    /// value: NaN/±Inf, empty input, targets outside the encoding, negative distances,
    /// class indices out of range, non-finite options. The checks ride along in the
    /// kernel's single pass; an error is located only after the pass has failed.
    #[default]
    Strict,
    /// Reproduce PyTorch 2.15 exactly, quirks included (a target outside {−1, 1}, a
    /// negative distance, NaN and empty input are accepted and give torch's result).
    TorchCompat,
}

impl Mode {
    #[inline]
    pub(crate) fn is_strict(self) -> bool {
        matches!(self, Mode::Strict)
    }
}

/// The encoding of binary targets. It is always chosen explicitly, never guessed from
/// the data (Keras's guess silently changes a loss when one label in the batch differs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Labels {
    /// Targets are −1 and +1 (PyTorch's convention).
    #[default]
    PlusMinusOne,
    /// Targets are 0 and 1; 0 is read as −1 and 1 as +1 (`y = 2t − 1`).
    ZeroOne,
}

impl Labels {
    /// Maps a stored target to the ±1 value the formula uses.
    #[inline(always)]
    pub(crate) fn decode<T: Float>(self, t: T) -> T {
        // A blend rather than a `match`: the element loops stay branch-free and vectorise.
        T::select(self == Labels::ZeroOne, t + t - T::one(), t)
    }

    /// Whether `t` is a valid stored label in this encoding.
    #[inline(always)]
    pub(crate) fn accepts<T: Float>(self, t: T) -> bool {
        let other = T::select(self == Labels::ZeroOne, T::zero(), -T::one());
        (t == T::one()) | (t == other)
    }

    /// The expected-values phrase used in error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Labels::PlusMinusOne => "target in {-1, 1}",
            Labels::ZeroOne => "target in {0, 1} (Labels::ZeroOne)",
        }
    }

    /// The hint for a target outside the encoding.
    pub(crate) fn hint<T: Float>(self, t: T) -> Option<&'static str> {
        match self {
            Labels::PlusMinusOne if t == T::zero() => {
                Some("for {0, 1} labels choose Labels::ZeroOne (CLI: --labels 01)")
            }
            Labels::ZeroOne if t == -T::one() => {
                Some("for {-1, 1} labels choose Labels::PlusMinusOne (CLI: --labels pm1)")
            }
            _ => None,
        }
    }
}

/// The subgradient a hinge `max(0, u)` takes exactly at its kink `u = 0`.
///
/// Frameworks disagree: torch 2.15 uses 0 (its `clamp_min` is strict since the mid-2026
/// change), older torch, TensorFlow's `maximum` and scikit-learn's SGD use 1, and jax,
/// Keras and optax (`maximum`) split it, 0.5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kink {
    /// Zero gradient at the kink: torch 2.15 (the default).
    #[default]
    Zero = 0,
    /// Half the active gradient: jax / Keras / optax `maximum`.
    Half = 1,
    /// The full active gradient: torch before 2.15, TensorFlow, scikit-learn SGD.
    One = 2,
}

impl Kink {
    /// d max(0, u) / du with this convention.
    #[inline(always)]
    pub(crate) fn step<T: Float>(self, u: T) -> T {
        // 0, 1/2 or 1 by arithmetic on the discriminant, not a `match`: a switch inside
        // an element loop keeps the optimiser from vectorising it.
        let at_kink = T::of(f64::from(self as u8) * 0.5);
        T::select(u > T::zero(), T::one(), T::select(u == T::zero(), at_kink, T::zero()))
    }
}
