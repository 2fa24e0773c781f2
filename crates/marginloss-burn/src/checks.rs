//! The shape checks every function runs before any burn op (burn's ops panic on a shape
//! mismatch; these return the core's `Error::Shape` instead).

use burn::tensor::Tensor;
use marginloss::{Error, Result};

/// A shape-mismatch error in the core's words.
pub(crate) fn shape_err(loss: &'static str, arg: &'static str, got: &[usize], expected: String) -> Error {
    Error::Shape { loss, arg, got: got.to_vec(), expected }
}

/// Checks that `other` has `first`'s shape.
pub(crate) fn same_dims(
    loss: &'static str,
    first: (&'static str, &[usize]),
    other: (&'static str, &[usize]),
) -> Result<()> {
    if first.1 != other.1 {
        return Err(shape_err(loss, other.0, other.1, format!("{} has shape {:?}", first.0, first.1)));
    }
    Ok(())
}

/// Checks that `other` has `first`'s shape (named tensors).
pub(crate) fn same_as<const D: usize>(
    loss: &'static str,
    first: (&'static str, &Tensor<D>),
    other: (&'static str, &Tensor<D>),
) -> Result<()> {
    same_dims(loss, (first.0, &first.1.dims()), (other.0, &other.1.dims()))
}

/// Checks that `target` has `input`'s shape.
pub(crate) fn same<const D: usize>(loss: &'static str, input: &Tensor<D>, target: &Tensor<D>) -> Result<()> {
    same_as(loss, ("input", input), ("target", target))
}

/// The broadcast shape of a distance's two inputs, checked (each dimension equal, or 1 in
/// one of them; at least one dimension).
pub(crate) fn broadcast_rows<const D: usize>(loss: &'static str, d1: &[usize; D], d2: &[usize; D]) -> Result<[usize; D]> {
    if D == 0 {
        return Err(shape_err(loss, "input1", d1, "rows of at least one element".into()));
    }
    let mut out = [0; D];
    for k in 0..D {
        out[k] = match (d1[k], d2[k]) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(shape_err(loss, "input2", d2, format!("a shape that broadcasts with input1's {d1:?}")))
            }
        };
    }
    Ok(out)
}

/// Checks that a per-row target has one value per row of an `(n, classes)` input.
pub(crate) fn per_row(loss: &'static str, n: usize, classes: usize, target: &[usize]) -> Result<()> {
    if target != [n] {
        return Err(shape_err(
            loss,
            "target",
            target,
            format!("input has shape [{n}, {classes}], so target has shape [{n}]"),
        ));
    }
    Ok(())
}

/// Checks an optional per-class weight.
pub(crate) fn per_class(loss: &'static str, classes: usize, weight: Option<&Tensor<1>>) -> Result<()> {
    match weight {
        Some(w) if w.dims() != [classes] => {
            Err(shape_err(loss, "weight", &w.dims(), format!("one weight per class, shape [{classes}]")))
        }
        _ => Ok(()),
    }
}

/// Checks a pair loss's shapes: `input2` as `input1`, `target` with one value per row.
pub(crate) fn pair(loss: &'static str, x1: &[usize; 2], x2: &[usize; 2], t: &[usize; 1]) -> Result<()> {
    same_dims(loss, ("input1", x1), ("input2", x2))?;
    if t[0] != x1[0] {
        let (n, dim) = (x1[0], x1[1]);
        return Err(shape_err(loss, "target", t, format!("input1 has shape [{n}, {dim}], so target has shape [{n}]")));
    }
    Ok(())
}

/// Checks a triplet loss's shapes: all three `(N, K)` alike.
pub(crate) fn triplet(loss: &'static str, a: &[usize; 2], p: &[usize; 2], n: &[usize; 2]) -> Result<()> {
    same_dims(loss, ("anchor", a), ("positive", p))?;
    same_dims(loss, ("anchor", a), ("negative", n))
}
