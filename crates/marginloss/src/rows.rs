//! [`Rows`]: the shape-carrying input of every loss and distance on rows — a row-major
//! `rows × cols` view of a slice, with both counts stated by the caller and checked
//! against the slice's length when the view is made.

use crate::error::{Error, Result};

/// A row-major matrix view: `rows` rows of `cols` elements each, stored contiguously in
/// `data` (`data.len() == rows · cols`, checked by [`new`](Self::new)).
///
/// Every loss and distance on rows takes its row arguments as `Rows`: triplet anchors,
/// positives and negatives, cosine-embedding pairs, class scores `(N, C)`, batch
/// embeddings `(N, D)`. Stating both counts is what keeps a wrong row length from turning
/// into a silently different loss: 16 triplets of 8 elements given as 8 rows of 16 is a
/// different shape, and a loss that receives it next to a 16 × 8 argument, or next to a
/// target of 16 labels, says so.
///
/// Making a view is O(1) (one checked multiplication), so adapters that already know
/// their tensors' shapes pass them at no cost.
///
/// ```
/// use marginloss::{Rows, TripletMargin, Reduction};
/// let (a, p, n) = ([0.0f64; 16 * 8], [1.0; 16 * 8], [3.0; 16 * 8]);
/// let anchor = Rows::new(&a, 16, 8)?;
/// assert_eq!(anchor.shape(), [16, 8]);
/// let l = TripletMargin::new().forward(anchor, Rows::new(&p, 16, 8)?, Rows::new(&n, 16, 8)?, Reduction::Mean)?;
/// assert!(l.scalar().unwrap() < 1e-12); // ‖a − p‖ ≈ √8 < ‖a − n‖ − 1 ≈ 3√8 − 1
/// // the same buffer stated as 8 rows of 16 is another shape, and the loss refuses the mix
/// let wrong = Rows::new(&p, 8, 16)?;
/// let e = TripletMargin::new().forward(anchor, wrong, Rows::new(&n, 16, 8)?, Reduction::Mean).unwrap_err();
/// assert_eq!(e.to_string(), "triplet_margin: positive has shape [8, 16] but anchor has shape [16, 8]");
/// // a length that is not rows × cols is refused when the view is made
/// let e = Rows::new(&a[..100], 16, 8).unwrap_err();
/// assert_eq!(e.to_string(), "rows: data has shape [100] but 16 rows of 8 elements are 128 elements");
/// # Ok::<(), marginloss::Error>(())
/// ```
///
/// With the cargo feature `ndarray`, a standard-layout `ndarray::ArrayView2` converts with
/// `Rows::try_from(view)`.
#[derive(Debug)]
pub struct Rows<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<T> Clone for Rows<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Rows<'_, T> {}

impl<'a, T> Rows<'a, T> {
    /// Views `data` as `rows` rows of `cols` elements.
    ///
    /// # Errors
    /// [`Error::Shape`] when `data.len()` is not `rows · cols` (including when the product
    /// overflows).
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        match rows.checked_mul(cols) {
            Some(len) if len == data.len() => Ok(Rows { data, rows, cols }),
            _ => Err(Error::Shape {
                loss: "rows",
                arg: "data",
                got: vec![data.len()],
                expected: format!(
                    "{rows} rows of {cols} elements are {} elements",
                    rows as u128 * cols as u128
                ),
            }),
        }
    }

    /// Views `data` as a single row (shape `[1, data.len()]`): PyTorch's 1-D `(C,)` or
    /// `(D,)` input.
    pub fn single(data: &'a [T]) -> Self {
        Rows { data, rows: 1, cols: data.len() }
    }

    /// The number of rows.
    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The row length.
    #[inline]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `[rows, cols]`.
    #[inline]
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The elements, row-major.
    #[inline]
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// Whether the view has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`, or `None` past the last row.
    pub fn row(&self, i: usize) -> Option<&'a [T]> {
        if i >= self.rows {
            return None;
        }
        self.data.get(i * self.cols..(i + 1) * self.cols)
    }
}

#[cfg(feature = "ndarray")]
impl<'a, T> TryFrom<ndarray::ArrayView2<'a, T>> for Rows<'a, T> {
    type Error = Error;

    /// The view's elements as rows, when they are contiguous in row-major order.
    ///
    /// # Errors
    /// [`Error::Shape`] for a view that is not in standard (C) layout, e.g. a transposed
    /// or strided one; `.as_standard_layout()` makes one that is.
    fn try_from(view: ndarray::ArrayView2<'a, T>) -> Result<Self> {
        let (rows, cols) = view.dim();
        match view.to_slice() {
            Some(data) => Ok(Rows { data, rows, cols }),
            None => Err(Error::Shape {
                loss: "rows",
                arg: "array",
                got: vec![rows, cols],
                expected: "an array in standard (row-major, contiguous) layout; call \
                           .as_standard_layout() first"
                    .into(),
            }),
        }
    }
}

/// The shape `(N, D)` shared by a loss's row arguments: each later argument must have the
/// first one's shape; the error names the first that does not.
pub(crate) fn same_shape<T>(loss: &'static str, args: &[(&'static str, Rows<'_, T>)]) -> Result<[usize; 2]> {
    let Some(&(first, x)) = args.first() else {
        return Ok([0, 0]);
    };
    for &(name, y) in &args[1..] {
        if y.shape() != x.shape() {
            return Err(Error::Shape {
                loss,
                arg: name,
                got: y.shape().to_vec(),
                expected: format!("{first} has shape {:?}", x.shape()),
            });
        }
    }
    Ok(x.shape())
}

/// Checks that a per-row argument `arg` (a target, labels) has one entry per row of `x`.
pub(crate) fn per_row(
    loss: &'static str,
    arg: &'static str,
    len: usize,
    x: (&'static str, [usize; 2]),
) -> Result<()> {
    if len != x.1[0] {
        return Err(Error::Shape {
            loss,
            arg,
            got: vec![len],
            expected: format!("{} has shape {:?}, so {arg} has shape [{}]", x.0, x.1, x.1[0]),
        });
    }
    Ok(())
}

/// Test support: `x` as rows of `cols` elements (as many rows as fit).
#[cfg(test)]
pub(crate) fn mat<T>(x: &[T], cols: usize) -> Rows<'_, T> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    Rows::new(x, rows, cols).expect("a whole number of rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_states_both_counts_and_checks_the_length() {
        let d = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let r = Rows::new(&d, 2, 3).unwrap();
        assert_eq!((r.rows(), r.cols(), r.shape()), (2, 3, [2, 3]));
        assert_eq!(r.row(1), Some(&d[3..]));
        assert_eq!(r.row(2), None);
        assert!(Rows::new(&d, 3, 3).is_err());
        assert!(Rows::new(&d, usize::MAX, 2).is_err());
        let e = Rows::new(&d, usize::MAX, 2).unwrap_err().to_string();
        assert!(e.contains("36893488147419103230 elements"), "{e}");
        assert_eq!(Rows::single(&d).shape(), [1, 6]);
        let empty: [f64; 0] = [];
        assert_eq!(Rows::new(&empty, 0, 5).unwrap().shape(), [0, 5]);
        assert_eq!(Rows::new(&empty, 4, 0).unwrap().shape(), [4, 0]);
    }

    #[test]
    fn arguments_of_different_shapes_name_the_offender_and_the_shape_expected() {
        let d = [0.0f64; 8];
        let (a, b) = (Rows::new(&d, 2, 4).unwrap(), Rows::new(&d, 4, 2).unwrap());
        let e = same_shape("l", &[("x1", a), ("x2", a), ("x3", b)]).unwrap_err();
        assert_eq!(e.to_string(), "l: x3 has shape [4, 2] but x1 has shape [2, 4]");
        let e = per_row("l", "target", 3, ("x1", a.shape())).unwrap_err();
        assert_eq!(e.to_string(), "l: target has shape [3] but x1 has shape [2, 4], so target has shape [2]");
    }
}
