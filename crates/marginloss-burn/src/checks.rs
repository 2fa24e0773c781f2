//! The one shape rule burn needs beyond the core's ([`marginloss::op::Signature::geometry`]):
//! the distances broadcast their two inputs, as torch's `cosine_similarity` and
//! `pairwise_distance` do. Checked before any burn op, since burn's ops panic on a shape
//! mismatch; these return the core's `Error::Shape` instead.

use burn::tensor::Tensor;
use marginloss::{Error, Result};

/// The broadcast shape of a distance's two inputs, checked (each dimension equal, or 1 in
/// one of them; at least one dimension).
fn broadcast_shape<const D: usize>(
    loss: &'static str,
    d1: &[usize; D],
    d2: &[usize; D],
) -> Result<[usize; D]> {
    if D == 0 {
        let expected = "rows of at least one element".into();
        return Err(Error::Shape { loss, arg: "input1", got: d1.to_vec(), expected });
    }
    let mut out = [0; D];
    for k in 0..D {
        out[k] = match (d1[k], d2[k]) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                let expected = format!("a shape that broadcasts with input1's {d1:?}");
                return Err(Error::Shape { loss, arg: "input2", got: d2.to_vec(), expected });
            }
        };
    }
    Ok(out)
}

/// A distance's inputs broadcast to one shape (`expand`, differentiable; a no-op when the
/// shapes agree).
pub(crate) fn broadcast<const D: usize>(
    loss: &'static str,
    x1: Tensor<D>,
    x2: Tensor<D>,
) -> Result<(Tensor<D>, Tensor<D>)> {
    let shape = broadcast_shape(loss, &x1.dims(), &x2.dims())?;
    let x1 = if x1.dims() == shape { x1 } else { x1.expand(shape) };
    let x2 = if x2.dims() == shape { x2 } else { x2.expand(shape) };
    Ok((x1, x2))
}
