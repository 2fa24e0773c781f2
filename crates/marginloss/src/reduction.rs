//! Reductions with PyTorch semantics, and the shape of a loss's result.

use crate::error::{Error, Result};
use crate::float::Float;

/// How per-element (or per-sample) losses are combined, as PyTorch's `reduction=`.
///
/// | variant | result | empty input (torch-compat) |
/// |---|---|---|
/// | `None` | one value per element / sample | empty |
/// | `Mean` (default) | sum / count | NaN |
/// | `Sum` | sum | 0 |
///
/// Sums are accumulated in `f64` whatever the element type, then rounded once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Keep one value per element (per sample for losses over rows).
    None,
    /// The arithmetic mean.
    #[default]
    Mean,
    /// The sum.
    Sum,
}

impl Reduction {
    /// Length of the output buffer for `count` per-element losses: `count` for `None`,
    /// 1 otherwise.
    pub fn output_len(self, count: usize) -> usize {
        match self {
            Reduction::None => count,
            Reduction::Mean | Reduction::Sum => 1,
        }
    }

    /// Parses `"none"`, `"mean"` or `"sum"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Reduction::None),
            "mean" => Some(Reduction::Mean),
            "sum" => Some(Reduction::Sum),
            _ => None,
        }
    }

    /// The name PyTorch uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }

    /// The reduced value of an accumulated `sum` over `count` elements, rounded to `T`.
    #[inline]
    pub(crate) fn finish<T: Float>(self, sum: f64, count: usize) -> T {
        match self {
            Reduction::Mean => T::of(sum / count as f64),
            _ => T::of(sum),
        }
    }

    /// The upstream gradient each element receives for a reduced output with upstream
    /// gradient `g`: `g / count` for `Mean` (computed in `T`, as PyTorch's mean backward),
    /// `g` otherwise.
    #[inline]
    pub(crate) fn scale<T: Float>(self, g: T, count: usize) -> T {
        match self {
            Reduction::Mean => g / T::of(count as f64),
            _ => g,
        }
    }
}

/// The result of a convenience `forward`: a scalar for `Mean`/`Sum`, one value per
/// element or sample for `None`.
#[derive(Clone, Debug, PartialEq)]
pub enum Output<T> {
    /// A reduced loss.
    Scalar(T),
    /// Unreduced losses.
    Elements(Vec<T>),
}

impl<T: Copy> Output<T> {
    /// The scalar, or `None` for an unreduced output.
    pub fn scalar(&self) -> Option<T> {
        match self {
            Output::Scalar(v) => Some(*v),
            Output::Elements(_) => None,
        }
    }

    /// The values as a slice (one element for a scalar).
    pub fn as_slice(&self) -> &[T] {
        match self {
            Output::Scalar(v) => std::slice::from_ref(v),
            Output::Elements(v) => v,
        }
    }

    /// The values as a vector (one element for a scalar).
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Output::Scalar(v) => vec![v],
            Output::Elements(v) => v,
        }
    }

    pub(crate) fn from_buffer(reduction: Reduction, buf: Vec<T>) -> Self {
        match reduction {
            Reduction::None => Output::Elements(buf),
            _ => Output::Scalar(buf[0]),
        }
    }
}

/// Checks a caller-provided buffer's length.
#[inline]
pub(crate) fn check_buffer(
    loss: &'static str,
    buffer: &'static str,
    got: usize,
    expected: usize,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Buffer { loss, buffer, got, expected })
    }
}

/// Checks the upstream gradient: one value for a reduced output, one value per element
/// (or a single value broadcast to all) for `Reduction::None`.
#[inline]
pub(crate) fn check_upstream(
    loss: &'static str,
    reduction: Reduction,
    upstream_len: usize,
    count: usize,
) -> Result<()> {
    let ok = match reduction {
        Reduction::None => upstream_len == count || upstream_len == 1,
        _ => upstream_len == 1,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Buffer {
            loss,
            buffer: "upstream gradient",
            got: upstream_len,
            expected: reduction.output_len(count),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_torch_names() {
        for r in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            assert_eq!(Reduction::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reduction::parse("elementwise_mean"), None);
        assert_eq!(Reduction::default(), Reduction::Mean);
    }

    #[test]
    fn mean_of_nothing_is_nan_and_sum_is_zero() {
        assert!(Reduction::Mean.finish::<f32>(0.0, 0).is_nan());
        assert_eq!(Reduction::Sum.finish::<f32>(0.0, 0), 0.0);
    }
}
