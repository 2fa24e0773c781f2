//! The dense products of the batch losses, through faer's matrix multiply.
//!
//! faer's API is safe (the crate forbids `unsafe`; the `gemm` crate's entry point is an
//! `unsafe fn` over raw pointers) and, for `f32`/`f64` on x86-64, runs the same family of
//! AVX2 / AVX-512 micro-kernels. Every call here is sequential (`Par::Seq`): the batch
//! drivers split the rows into a fixed tree of parts themselves, so the result does not
//! depend on the number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// A row-major operand: `rows × cols` with `stride` elements between row starts, used as
/// is or transposed.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a, T> {
    /// The elements; row `i` starts at `i · stride`.
    pub data: &'a [T],
    /// Rows of the stored matrix.
    pub rows: usize,
    /// Columns of the stored matrix.
    pub cols: usize,
    /// Elements between row starts (`>= cols`).
    pub stride: usize,
    /// Use the transpose.
    pub trans: bool,
}

impl<'a, T> Operand<'a, T> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Operand { data, rows, cols, stride: cols, trans: false }
    }
    /// Its transpose.
    pub fn t(mut self) -> Self {
        self.trans = !self.trans;
        self
    }
    fn shape(&self) -> (usize, usize) {
        if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

fn view<T>(o: Operand<'_, T>) -> MatRef<'_, T> {
    let v = if o.rows == 0 || o.cols == 0 {
        MatRef::from_row_major_slice(&o.data[..0], o.rows, o.cols)
    } else {
        MatRef::from_row_major_slice_with_stride(o.data, o.rows, o.cols, o.stride)
    };
    if o.trans {
        v.transpose()
    } else {
        v
    }
}

macro_rules! gemm_impl {
    ($name:ident, $t:ty) => {
        /// `dst = alpha · lhs · rhs` (or `dst += …` with `accumulate`); `dst` is contiguous
        /// row-major. Shapes are checked by the caller (the drivers build them from the
        /// validated sizes).
        pub(crate) fn $name(
            dst: &mut [$t],
            lhs: Operand<'_, $t>,
            rhs: Operand<'_, $t>,
            alpha: $t,
            accumulate: bool,
        ) {
            let (m, k) = lhs.shape();
            let (k2, n) = rhs.shape();
            debug_assert_eq!(k, k2);
            debug_assert_eq!(dst.len(), m * n);
            if m == 0 || n == 0 {
                return;
            }
            let d = MatMut::from_row_major_slice_mut(dst, m, n);
            let beta = if accumulate { Accum::Add } else { Accum::Replace };
            matmul(d, beta, view(lhs), view(rhs), alpha, Par::Seq);
        }
    };
}

gemm_impl!(gemm_f32, f32);
gemm_impl!(gemm_f64, f64);

macro_rules! gemm_strided_impl {
    ($name:ident, $t:ty) => {
        /// `dst = alpha · lhs · rhs` into `dst`'s first `m` rows of `n` values each, row `i`
        /// starting at `i · dst_stride` (`dst_stride >= n`; the elements between rows are
        /// left as they are).
        pub(crate) fn $name(
            dst: &mut [$t],
            dst_stride: usize,
            lhs: Operand<'_, $t>,
            rhs: Operand<'_, $t>,
            alpha: $t,
        ) {
            let (m, k) = lhs.shape();
            let (k2, n) = rhs.shape();
            debug_assert_eq!(k, k2);
            debug_assert!(m == 0 || dst.len() >= (m - 1) * dst_stride + n);
            if m == 0 || n == 0 {
                return;
            }
            // As the transposed product into a column-major view (faer 0.24's own layout:
            // a row-major destination with a row stride wider than its columns was written
            // out of bounds there).
            let d = MatMut::from_column_major_slice_with_stride_mut(dst, n, m, dst_stride);
            matmul(d, Accum::Replace, view(rhs).transpose(), view(lhs).transpose(), alpha, Par::Seq);
        }
    };
}

gemm_strided_impl!(gemm_strided_f32, f32);
gemm_strided_impl!(gemm_strided_f64, f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_destination_writes_only_its_block() {
        for (m, n, k, stride) in [
            (64, 144, 8, 144),
            (64, 144, 8, 145),
            (64, 144, 8, 200),
            (56, 200, 8, 200),
            (16, 16, 8, 16),
            (64, 200, 8, 200),
        ] {
            let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.01).collect();
            let b: Vec<f32> = (0..n * k).map(|v| v as f32 * 0.02).collect();
            let mut dst = vec![-7.0f32; (m - 1) * stride + n + 3];
            gemm_strided_f32(&mut dst, stride, Operand::new(&a, m, k), Operand::new(&b, n, k).t(), 1.0);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                    assert!(
                        (dst[i * stride + j] - want).abs() < 1e-3 * want.abs().max(1.0),
                        "{i},{j}: {} vs {want}",
                        dst[i * stride + j]
                    );
                }
            }
            assert_eq!(dst[(m - 1) * stride + n], -7.0);
        }
    }

    #[test]
    fn contiguous_destination_is_the_product() {
        for (m, n, k) in [(64, 144, 8), (56, 200, 8), (16, 16, 8), (64, 1024, 128), (1, 7, 3), (200, 3, 5)] {
            let a: Vec<f32> = (0..m * k).map(|v| (v % 17) as f32 * 0.01).collect();
            let b: Vec<f32> = (0..n * k).map(|v| (v % 13) as f32 * 0.02).collect();
            let mut dst = vec![-7.0f32; m * n + 3];
            gemm_f32(&mut dst[..m * n], Operand::new(&a, m, k), Operand::new(&b, n, k).t(), 1.0, false);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                    assert!((dst[i * n + j] - want).abs() < 1e-3 * want.abs().max(1.0), "{i},{j}");
                }
            }
            assert_eq!(dst[m * n..], [-7.0; 3]);
        }
    }
}
