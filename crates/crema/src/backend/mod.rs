//! The math layers need, behind one thin interface (Caffe's math_functions and
//! im2col): GEMM/GEMV, BLAS-1 and element-wise vector ops, im2col/col2im.
//!
//! Everything here is the CPU path, working on host slices; a device backend
//! will sit beside it with the same verbs.
pub mod gemm;
pub mod im2col;
pub mod mmm;
pub mod pool;
pub mod shifted;
pub mod vecops;
pub mod winograd;

pub use gemm::{
    mmm_reads_rows, mmm_tile_cols, pack_a, sgemm, sgemm_cols_t, sgemm_packed, sgemm_packed_cols,
    sgemm_packed_rows, sgemv, PackedA, Transpose,
};
pub use im2col::{col2im, col2im_2d_ld, im2col, im2col_2d_ld, ConvGeometry};
pub use mmm::{Cols, ImplicitCols};
pub use vecops::*;
