//! Numbers as a person reads them in messages: the shortest form that parses back to the
//! same value, written with an exponent where that is shorter and the magnitude is outside
//! [1e-4, 1e16), as Python's `repr` does (`-1e300`, `5e-324`, `2.5`, `0.001`, `1000`).

use std::fmt::{Display, LowerExp};

/// `v` in its shortest round-trip form: plain, or with an exponent when that is shorter
/// and `|v|` is below 1e-4 or at least 1e16; `NaN`, `inf` and `-inf` for the non-finite
/// values. Generic so that an
/// `f32` prints in its own shortest form (`0.1`, not `0.10000000149011612`).
pub fn show<T: Display + LowerExp + Copy + Into<f64>>(v: T) -> String {
    let plain = format!("{v}");
    if plain == "NaN" || plain.ends_with("inf") {
        return plain;
    }
    let exp = format!("{v:e}");
    let mag = v.into().abs();
    if exp.len() < plain.len() && !(1e-4..1e16).contains(&mag) {
        exp
    } else {
        plain
    }
}

/// [`show`] for a compute type: an `f32` in its own shortest form.
pub fn show_float<T: marginloss::Float>(v: T) -> String {
    if T::DTYPE == "float32" {
        // exact: v is an f32
        show(v.f64() as f32)
    } else {
        show(v.f64())
    }
}

#[cfg(test)]
mod tests {
    use super::{show, show_float};

    #[test]
    fn huge_and_tiny_values_use_an_exponent() {
        assert_eq!(show(-1e300), "-1e300");
        assert_eq!(show(5e-324), "5e-324");
        assert_eq!(show(f64::MAX), "1.7976931348623157e308");
        assert_eq!(show(1e16), "1e16");
        assert_eq!(show(1.5e-7), "1.5e-7");
    }

    #[test]
    fn ordinary_values_stay_plain() {
        assert_eq!(show(2.1), "2.1");
        assert_eq!(show(0.0), "0");
        assert_eq!(show(-0.0), "-0");
        assert_eq!(show(100.0), "100");
        assert_eq!(show(123456.0), "123456");
        assert_eq!(show(0.001), "0.001");
        assert_eq!(show(1000.0), "1000");
        assert_eq!(show(1e15), "1000000000000000");
        assert_eq!(show(0.1f32), "0.1");
        assert_eq!(show_float(0.1f32), "0.1");
        assert_eq!(show_float(f32::MAX), "3.4028235e38");
    }

    #[test]
    fn non_finite_values_have_names() {
        assert_eq!(show(f64::NAN), "NaN");
        assert_eq!(show(f64::INFINITY), "inf");
        assert_eq!(show(f32::NEG_INFINITY), "-inf");
    }

    #[test]
    fn every_form_round_trips() {
        for v in [1e300, 5e-324, 0.1, 1.0 / 3.0, -2.5e-10, 1e22, 123456789.0] {
            assert_eq!(show(v).parse::<f64>().unwrap(), v);
        }
    }
}
