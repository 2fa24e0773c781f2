//! The integer types that hold class indices.

mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for i32 {}
    impl Sealed for u32 {}
    impl Sealed for usize {}
}

/// An integer type for class-index targets: `i64` (torch's `LongTensor`), `i32`, `u32`
/// or `usize`, so that labels can be passed in the type they already have.
///
/// Every value is checked against the number of classes in both modes; an index outside
/// `0..C` is an [`Error::ClassIndex`](crate::Error::ClassIndex) naming it (as an `i64`; a
/// `usize` above `i64::MAX` is reported as `i64::MAX`, out of range for every C). The
/// trait is sealed: it is implemented for exactly these four types.
///
/// ```
/// use marginloss::{multi_margin, Reduction, Rows};
/// let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0];
/// let x = Rows::new(&x, 2, 4)?; // 2 rows of 4 class scores
/// let a = multi_margin(x, &[3i64, 0], Reduction::Mean)?.scalar();
/// assert_eq!(multi_margin(x, &[3i32, 0], Reduction::Mean)?.scalar(), a);
/// assert_eq!(multi_margin(x, &[3u32, 0], Reduction::Mean)?.scalar(), a);
/// assert_eq!(multi_margin(x, &[3usize, 0], Reduction::Mean)?.scalar(), a);
/// let e = multi_margin(x, &[4u32, 0], Reduction::Mean).unwrap_err();
/// assert!(e.to_string().contains("class index 4 at target[0] is out of range for 4 classes"));
/// # Ok::<(), marginloss::Error>(())
/// ```
pub trait ClassIndex: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The value as an `i64` (saturating at `i64::MAX` for a larger `usize`).
    fn as_i64(self) -> i64;
}

/// A signed [`ClassIndex`] type (`i64` or `i32`): one that can hold the `−1` that ends a
/// row's label list in [`MultilabelMargin`](crate::MultilabelMargin) targets.
pub trait SignedClassIndex: ClassIndex {}

impl ClassIndex for i64 {
    #[inline(always)]
    fn as_i64(self) -> i64 {
        self
    }
}

impl ClassIndex for i32 {
    #[inline(always)]
    fn as_i64(self) -> i64 {
        i64::from(self)
    }
}

impl ClassIndex for u32 {
    #[inline(always)]
    fn as_i64(self) -> i64 {
        i64::from(self)
    }
}

impl ClassIndex for usize {
    #[inline(always)]
    fn as_i64(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}

impl SignedClassIndex for i64 {}
impl SignedClassIndex for i32 {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::mat;

    #[test]
    fn every_index_type_converts_exactly_and_usize_saturates() {
        assert_eq!((-1i64).as_i64(), -1);
        assert_eq!(i32::MIN.as_i64(), i64::from(i32::MIN));
        assert_eq!(u32::MAX.as_i64(), 4_294_967_295);
        assert_eq!(7usize.as_i64(), 7);
        assert_eq!(usize::MAX.as_i64(), i64::MAX);
    }

    #[test]
    fn the_class_losses_give_the_same_bits_for_every_index_type() {
        use crate::{MultiMargin, MulticlassHinge, MultilabelMargin, Reduction};
        let x = [0.1f64, 0.2, 0.4, 0.8, 0.5, 0.1, 0.3, 0.0, -0.2, 0.9, 0.9, 0.1];
        let y = [3i64, 0, 2];
        let r = Reduction::Mean;
        let run = |f: &dyn Fn(&mut [f64], &mut [f64])| {
            let (mut out, mut g) = (vec![0.0], vec![0.0; x.len()]);
            f(&mut out, &mut g);
            (out, g)
        };
        macro_rules! class_losses {
            ($t:ty) => {{
                let y: Vec<$t> = y.iter().map(|&v| v as $t).collect();
                (
                    run(&|o, g| {
                        MultiMargin::new().forward_backward(mat(&x, 4), &y, None, r, &[1.0], o, g).unwrap()
                    }),
                    run(&|o, g| {
                        MulticlassHinge::new().forward_backward(mat(&x, 4), &y, r, &[1.0], o, g).unwrap()
                    }),
                )
            }};
        }
        let want = class_losses!(i64);
        assert_eq!(class_losses!(i32), want);
        assert_eq!(class_losses!(u32), want);
        assert_eq!(class_losses!(usize), want);
        let ml = [3i64, 0, -1, 1, 1, -1, 2, 2, 2, 1, 0, 3];
        let ml32: Vec<i32> = ml.iter().map(|&v| v as i32).collect();
        let a =
            run(&|o, g| MultilabelMargin::new().forward_backward(mat(&x, 4), &ml, r, &[1.0], o, g).unwrap());
        let b = run(&|o, g| {
            MultilabelMargin::new().forward_backward(mat(&x, 4), &ml32, r, &[1.0], o, g).unwrap()
        });
        assert_eq!(a, b);
        assert!(a.0[0] > 0.0);
    }

    #[test]
    fn out_of_range_indices_of_every_type_are_class_index_errors() {
        use crate::{multi_margin, multiclass_hinge, multilabel_margin, Reduction};
        let x = [0.0f32; 4];
        let r = Reduction::Sum;
        let msg = |e: crate::Error| e.to_string();
        assert_eq!(
            msg(multi_margin(mat(&x, 2), &[-1i32, 0], r).unwrap_err()),
            "multi_margin: class index -1 at target[0] is out of range for 2 classes (expected 0..=1)"
        );
        assert_eq!(
            msg(multi_margin(mat(&x, 2), &[0u32, 2], r).unwrap_err()),
            "multi_margin: class index 2 at target[1] is out of range for 2 classes (expected 0..=1)"
        );
        assert_eq!(
            msg(multiclass_hinge(mat(&x, 2), &[1usize, usize::MAX], r).unwrap_err()),
            format!(
                "multiclass_hinge: class index {} at target[1] is out of range for 2 classes (expected 0..=1)",
                i64::MAX
            )
        );
        assert!(msg(multilabel_margin(mat(&x, 2), &[0i32, 2, -1, -1], r).unwrap_err())
            .contains("class index 2 at target[1] is out of range for 2 classes"));
        assert!(msg(multilabel_margin(mat(&x, 2), &[0i32, -2, -1, -1], r).unwrap_err()).contains("target[1]"));
    }
}
