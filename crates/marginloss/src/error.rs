//! The error type every fallible call returns.

use std::fmt;

/// A value that failed validation, kept as `f64` and printed for a person: the shortest
/// form that reads back as the same number (an `f32` input prints as `0.1`, not
/// `0.10000000149011612`), with an exponent outside `1e-4 ≤ |v| < 1e16` as Python's
/// `repr` does (`-1e300`, not 301 digits; the smallest denormal is `5e-324`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value(pub f64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "inf" } else { "-inf" });
        }
        // Rust's `{}` and `{:e}` are both shortest round-trip; pick by magnitude.
        let plain = v == 0.0 || (1e-4..1e16).contains(&v.abs());
        let narrow = f64::from(v as f32) == v;
        match (narrow, plain) {
            (true, true) => write!(f, "{}", v as f32),
            (true, false) => write!(f, "{:e}", v as f32),
            (false, true) => write!(f, "{v}"),
            (false, false) => write!(f, "{v:e}"),
        }
    }
}

/// Why a loss refused its inputs.
///
/// Every variant names the loss and the argument (as PyTorch's functional API names it:
/// `input`, `target`, `input1`, …); element errors also carry the flat (row-major) index
/// and the offending value. The `Display` text is one line meant for a person, and says
/// what to use instead when the mistake is a known one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An element lies outside the loss's domain (a negative distance, a target that is
    /// not in the label encoding, …).
    #[error("{loss} expects {expected}, got {value} at {arg}[{index}]{}", hint_suffix(.hint))]
    Domain {
        /// The loss or distance that refused the input.
        loss: &'static str,
        /// The argument, e.g. `"input"` or `"target"`.
        arg: &'static str,
        /// Flat row-major index of the first offending element.
        index: usize,
        /// The offending element.
        value: Value,
        /// What the loss expects, e.g. `"distances >= 0"`.
        expected: &'static str,
        /// What to do instead, when the mistake is a known one.
        hint: Option<&'static str>,
    },
    /// NaN or ±Inf in an input (strict mode only).
    #[error(
        "{loss} got {value} at {arg}[{index}]; strict mode rejects NaN and infinities \
         (torch-compat mode propagates them as PyTorch does)"
    )]
    NonFinite {
        /// The loss or distance that refused the input.
        loss: &'static str,
        /// The argument holding the element.
        arg: &'static str,
        /// Flat row-major index of the first non-finite element.
        index: usize,
        /// The element (NaN or ±Inf).
        value: Value,
    },
    /// An empty input (strict mode only).
    #[error(
        "{loss} got an empty {arg}; strict mode rejects it because the mean of nothing is \
         undefined (torch-compat mode gives NaN for mean, 0 for sum)"
    )]
    Empty {
        /// The loss or distance that refused the input.
        loss: &'static str,
        /// The empty argument.
        arg: &'static str,
    },
    /// Two arguments whose shapes must agree do not.
    #[error("{loss}: {arg} has shape {got:?} but {expected}")]
    Shape {
        /// The loss or distance that refused the input.
        loss: &'static str,
        /// The argument whose shape is wrong.
        arg: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// What it should have been, in words (e.g. `"input has shape [3]"`).
        expected: String,
    },
    /// A class index outside `0..classes`.
    #[error(
        "{loss}: class index {value} at {arg}[{index}] is out of range for {classes} classes \
         (expected 0..={max})", max = *classes as i64 - 1
    )]
    ClassIndex {
        /// The loss that refused the input.
        loss: &'static str,
        /// The argument holding the index.
        arg: &'static str,
        /// Flat index of the offending element.
        index: usize,
        /// The offending class index.
        value: i64,
        /// The number of classes C.
        classes: usize,
    },
    /// An option (margin, p, eps, …) outside its domain.
    #[error("{loss}: option {option} must be {expected}, got {value}")]
    Option {
        /// The loss or distance that refused the option.
        loss: &'static str,
        /// The option's name, e.g. `"margin"`.
        option: &'static str,
        /// Its value.
        value: Value,
        /// The domain, in words.
        expected: &'static str,
    },
    /// Finite inputs whose loss or gradient is not finite in the compute type: the loss's
    /// own arithmetic overflowed (strict mode only; torch-compat returns the `inf` or NaN
    /// as PyTorch does).
    #[error(
        "{loss}: the {quantity} overflows {dtype} {}; strict mode refuses a non-finite result \
         from finite input (scale the input down or use float64; torch-compat mode returns \
         inf/NaN as PyTorch does)", at(.arg, .index)
    )]
    Overflow {
        /// The loss or distance.
        loss: &'static str,
        /// `"loss"` or `"gradient"` (or, for the batch losses, `"distance"`: then `arg` is
        /// `"distances"` and the index is flat in the row-major `N × M` distance matrix).
        quantity: &'static str,
        /// Where the index points: the argument whose gradient overflowed, or `"output"`
        /// (one loss per element, row or sample) for a loss.
        arg: &'static str,
        /// Flat index of the first offending element; `None` when every element's loss is
        /// finite and only their reduction is not.
        index: Option<usize>,
        /// The compute type, `"float32"` or `"float64"`.
        dtype: &'static str,
    },
    /// A batch the loss cannot learn from, or cannot compute on (strict mode only for the
    /// degenerate batches): no positive pair, no negative, zero rows under the cosine
    /// distance, `D = 0`.
    #[error("{loss}: {problem}; {fix}")]
    Batch {
        /// The loss that refused the batch.
        loss: &'static str,
        /// What is wrong with it, with the evidence.
        problem: String,
        /// What to change.
        fix: &'static str,
    },
    /// A caller-provided output or gradient buffer has the wrong length.
    #[error("{loss}: the {buffer} buffer has length {got}, expected {expected}")]
    Buffer {
        /// The loss or distance.
        loss: &'static str,
        /// Which buffer: `"output"`, `"upstream gradient"`, `"grad input"`, …
        buffer: &'static str,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
}

fn at(arg: &str, index: &Option<usize>) -> String {
    match index {
        Some(i) => format!("at {arg}[{i}]"),
        None => "in the reduction (every element's loss is finite)".into(),
    }
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    match hint {
        Some(h) => format!("; {h}"),
        None => String::new(),
    }
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_values_print_in_their_shortest_form() {
        assert_eq!(Value(f64::from(0.1f32)).to_string(), "0.1");
        assert_eq!(Value(0.1).to_string(), "0.1");
        assert_eq!(Value(-0.5).to_string(), "-0.5");
        assert_eq!(Value(f64::NAN).to_string(), "NaN");
        assert_eq!(Value(f64::NEG_INFINITY).to_string(), "-inf");
    }

    #[test]
    fn huge_tiny_and_denormal_values_print_with_an_exponent() {
        assert_eq!(Value(-1e300).to_string(), "-1e300");
        assert_eq!(Value(5e-324).to_string(), "5e-324");
        assert_eq!(Value(f64::MAX).to_string(), "1.7976931348623157e308");
        assert_eq!(Value(f64::from(f32::MAX)).to_string(), "3.4028235e38");
        assert_eq!(Value(f64::from(f32::from_bits(1))).to_string(), "1e-45");
        assert_eq!(Value(1e39).to_string(), "1e39");
        assert_eq!(Value(1.5e-7).to_string(), "1.5e-7");
        // Ordinary magnitudes stay plain, in the shortest form of their type.
        assert_eq!(Value(123456.0).to_string(), "123456");
        assert_eq!(Value(1e15).to_string(), "1000000000000000");
        assert_eq!(Value(1e16).to_string(), "1e16");
        assert_eq!(Value(0.0001).to_string(), "0.0001");
        assert_eq!(Value(0.00001).to_string(), "1e-5");
        assert_eq!(Value(f64::from(0.3f32)).to_string(), "0.3");
        assert_eq!(Value(0.3).to_string(), "0.3");
        assert_eq!(Value(-0.0).to_string(), "-0");
        // Every printed value reads back as the same number.
        for v in [-1e300, 5e-324, 0.1, 1e-5, 9.999e15, 1.0 / 3.0, f64::MIN_POSITIVE] {
            assert_eq!(Value(v).to_string().parse::<f64>().unwrap(), v, "{v:e}");
        }
    }

    #[test]
    fn domain_error_names_loss_argument_index_value_and_fix() {
        let e = Error::Domain {
            loss: "hinge_embedding",
            arg: "input",
            index: 1,
            value: Value(-0.5),
            expected: "distances >= 0",
            hint: Some("for classifier scores use hinge"),
        };
        assert_eq!(
            e.to_string(),
            "hinge_embedding expects distances >= 0, got -0.5 at input[1]; for classifier scores use hinge"
        );
    }

    #[test]
    fn class_index_error_states_the_valid_range() {
        let e = Error::ClassIndex { loss: "multi_margin", arg: "target", index: 2, value: 5, classes: 3 };
        assert_eq!(
            e.to_string(),
            "multi_margin: class index 5 at target[2] is out of range for 3 classes (expected 0..=2)"
        );
    }
}
