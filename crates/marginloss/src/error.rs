//! The error type every fallible call returns.

use std::fmt;

/// A value that failed validation, kept as `f64` and printed in the shortest form that
/// identifies the original element (an `f32` input prints as `0.1`, not `0.10000000149011612`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value(pub f64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "inf" } else { "-inf" })
        } else if f64::from(v as f32) == v {
            write!(f, "{}", v as f32)
        } else {
            write!(f, "{v}")
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
