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
