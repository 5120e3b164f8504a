//! Matrix products with the semantics of Caffe's `caffe_cpu_gemm` and
//! `caffe_cpu_gemv`: row-major, optional transposes, `C = alpha·op(A)·op(B) +
//! beta·C`, and `beta == 0` overwrites C (NaN or garbage in C is ignored).
//!
//! The packed product is our own (`mmm`: packing plus per-ISA microkernels,
//! single threaded); we split large products into column or row blocks over
//! the rayon pool, so there is one pool for all math and a product called from
//! inside a batch-parallel loop stays on its thread. Vector-shaped products
//! (M or N equal to 1) go to `sgemv`, which packing would only slow down.
use rayon::prelude::*;

use super::mmm::{self, Cols, View};
use super::vecops::{axpy, dot_rows, scal};

/// Whether an operand is used as stored or transposed (CblasNoTrans/CblasTrans).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

/// Below this many multiply-adds a product runs on one thread: splitting costs
/// more than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 21;
/// Column bands of a transposed gemv keep this multiple of columns.
const COLUMN_GRAIN: usize = 16;
/// Rows per task of a row-dot gemv (a multiple of `dot_rows`' four).
const ROW_BAND: usize = 16;

/// Row-major `C[M×N] = alpha·op(A)·op(B) + beta·C`, where op(A) is M×K and
/// op(B) is K×N; A is stored M×K (or K×M when transposed), B K×N (or N×K).
///
/// Panics if a slice is shorter than its shape needs (a bug in the caller, not
/// user input).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    trans_a: Transpose,
    trans_b: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm: operand shorter than {m}x{n}x{k}"
    );
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 || alpha == 0.0 {
        scale_c(beta, c);
        return;
    }
    if n == 1 {
        // op(A)·b; b is K contiguous values whether or not it is "transposed".
        let (rows, cols, t) = match trans_a {
            Transpose::No => (m, k, Transpose::No),
            Transpose::Yes => (k, m, Transpose::Yes),
        };
        return sgemv(t, rows, cols, alpha, &a[..m * k], &b[..k], beta, c);
    }
    if m == 1 {
        // a·op(B) = op(B)ᵀ·a.
        let (rows, cols, t) = match trans_b {
            Transpose::No => (k, n, Transpose::Yes),
            Transpose::Yes => (n, k, Transpose::No),
        };
        return sgemv(t, rows, cols, alpha, &b[..k * n], &a[..k], beta, c);
    }
    let av = View::of(a, trans_a, if trans_a == Transpose::No { k } else { m });
    let bv = View::of(b, trans_b, if trans_b == Transpose::No { n } else { k });
    let kern = mmm::kernel();
    let threads = rayon::current_num_threads();
    let parallel = worth_splitting(m * n * k);
    let c_ptr = SendPtr(c.as_mut_ptr());
    let (av, bv) = (SendView(av), SendView(bv));
    // One block of C: rows r0..r0+mr, columns c0..c0+nc.
    let block = move |r0: usize, mr: usize, c0: usize, nc: usize| {
        // SAFETY: the shapes were checked against the slice lengths above, the
        // offsets stay inside op(A)/op(B)/C, and the blocks handed to
        // different threads cover disjoint parts of C, which no one else
        // borrows while this function runs. A and B are only read.
        unsafe {
            mmm::gemm_serial(
                kern,
                mr,
                nc,
                k,
                alpha,
                av.get().at(r0, 0),
                bv.get().at(0, c0),
                beta,
                c_ptr.get().add(r0 * n + c0),
                n,
            )
        }
    };
    if !parallel {
        block(0, m, 0, n);
    } else if n >= m && n >= threads * kern.nr {
        split_over_pool(n, kern.nr, |c0, nc| block(0, m, c0, nc));
    } else {
        split_over_pool(m, kern.mr, |r0, mc| block(r0, mc, 0, n));
    }
}

/// Whether a product of `madds` multiply-adds should split over the pool:
/// large enough to pay for it, and not inside another split (a worker's run
/// of images, `pool::may_split`), where it stays whole.
fn worth_splitting(madds: usize) -> bool {
    rayon::current_num_threads() > 1 && super::pool::may_split() && madds >= PARALLEL_MIN_FLOPS
}

/// `f(start, len)` on one block of `0..total` per pool thread, each a
/// multiple of `unit` long but the last.
fn split_over_pool(total: usize, unit: usize, f: impl Fn(usize, usize) + Sync) {
    let per = total.div_ceil(rayon::current_num_threads()).div_ceil(unit) * unit;
    (0..total.div_ceil(per)).into_par_iter().for_each(|i| {
        let start = i * per;
        f(start, per.min(total - start))
    });
}

/// `f(c0, nc)` over the columns of a product of `madds` multiply-adds: one
/// block of whole `nr`-strips per pool thread when it is worth splitting and
/// every thread gets a strip, else all `n` columns on this thread.
fn split_columns(madds: usize, n: usize, nr: usize, f: impl Fn(usize, usize) + Sync) {
    if worth_splitting(madds) && n >= rayon::current_num_threads() * nr {
        split_over_pool(n, nr, f);
    } else {
        f(0, n);
    }
}

/// op(A) packed once for many products with `sgemm_packed` (the same
/// weights over every image of a batch).
pub use super::mmm::PackedA;

impl Default for PackedA {
    fn default() -> Self {
        PackedA::empty(mmm::kernel())
    }
}

/// Packs op(A) (m×k; A stored m×k, or k×m when transposed) into `into`,
/// reusing its memory. Panics if `a` is shorter than m·k.
pub fn pack_a(trans_a: Transpose, m: usize, k: usize, a: &[f32], into: &mut PackedA) {
    assert!(a.len() >= m * k, "pack_a: operand shorter than {m}x{k}");
    if m == 0 || k == 0 {
        *into = PackedA::default();
        return;
    }
    let av = View::of(a, trans_a, if trans_a == Transpose::No { k } else { m });
    // SAFETY: the length was checked above; the view is only read.
    unsafe { into.repack(mmm::kernel(), m, k, av) }
}

/// `sgemm` with op(A) taken from `a` (see `pack_a`): `C[M×N] = alpha·op(A)·op(B)
/// + beta·C` with M and K those of `a`. Large products split their columns
/// over the pool, like `sgemm`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed(
    a: &PackedA,
    trans_b: Transpose,
    n: usize,
    alpha: f32,
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    // C's rows are n apart.
    let ldc = n;
    let (m, k) = (a.m(), a.k());
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && b.len() >= k * n && c.len() >= (m - 1) * ldc + n,
        "sgemm_packed: operand shorter than {m}x{n}x{k}"
    );
    if k == 0 || alpha == 0.0 {
        for row in c.chunks_mut(ldc).take(m) {
            scale_c(beta, &mut row[..n]);
        }
        return;
    }
    let bv = SendView(View::of(
        b,
        trans_b,
        if trans_b == Transpose::No { n } else { k },
    ));
    let c_ptr = SendPtr(c.as_mut_ptr());
    let nr = mmm::kernel().nr;
    // Columns c0..c0+nc of C.
    let block = move |c0: usize, nc: usize| {
        // SAFETY: as in `sgemm`: shapes checked above, disjoint column blocks
        // of C per thread, A and B only read.
        unsafe {
            mmm::gemm_packed_a(
                a,
                nc,
                alpha,
                bv.get().at(0, c0),
                beta,
                c_ptr.get().add(c0),
                ldc,
            )
        }
    };
    split_columns(m * n * k, n, nr, block);
}

/// `C[M×n] = op(A)·cols` (rows `ldc` apart) with `cols` the im2col columns
/// `cols.col0..cols.col0 + n` of convolution inputs, packed straight from the
/// images (`mmm::ImplicitCols`): the bits of `im2col` + `sgemm_packed` without
/// the column buffer. Large products split their columns over the pool.
pub fn sgemm_packed_cols<'a>(
    a: &PackedA,
    cols: impl Into<Cols<'a>>,
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let cols = cols.into();
    let (m, k) = (a.m(), a.k());
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n && covers(&cols, n),
        "sgemm_packed_cols: operand shorter than {m}x{n}x{k}"
    );
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    let c_ptr = SendPtr(c.as_mut_ptr());
    let nr = mmm::kernel().nr;
    let block = move |c0: usize, nc: usize| {
        let part = cols.from_col(c0);
        // SAFETY: shapes checked above; disjoint column blocks of C per
        // thread; A and the images only read.
        unsafe { mmm::gemm_packed_a_cols(a, nc, 1.0, part, 0.0, c_ptr.get().add(c0), ldc) }
    };
    split_columns(m * n * k, n, nr, block);
}

/// Whether `cols` holds its first `n` columns (of every row).
fn covers(cols: &Cols, n: usize) -> bool {
    match cols {
        Cols::Images(c) => {
            let images = (c.col0 + n).div_ceil(c.positions.max(1));
            c.geom.input.len() == 2
                && c.positions == c.geom.output().map_or(0, |o| o[0] * o[1])
                && c.images.len() >= (images - 1) * c.image_stride + c.geom.image_len()
        }
        Cols::Runs(r) => r.covers(n),
    }
}

/// Whether `sgemm_packed_rows` runs here: the kernel `sgemm` uses reads B
/// in place.
pub fn mmm_reads_rows() -> bool {
    mmm::kernel().reads_rows()
}

/// Columns of a tile of the kernel `sgemm` uses: `sgemm_packed_rows` reads
/// each row of B in whole tiles.
pub fn mmm_tile_cols() -> usize {
    mmm::kernel().nr
}

/// `C[m×n] = A·B` with A packed and row p of B the `n` values at
/// `base[offs[p]..]`, read in place (`mmm::gemm_packed_a_rows`); large
/// products split their columns over the pool. `base` must hold a kernel
/// tile's width past every row.
pub fn sgemm_packed_rows(
    a: &PackedA,
    base: &[f32],
    offs: &[usize],
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, k) = (a.m(), a.k());
    if m == 0 || n == 0 {
        return;
    }
    let nr = mmm::kernel().nr;
    let reach = offs.iter().max().map_or(0, |&o| o + n.div_ceil(nr) * nr);
    assert!(
        offs.len() == k && ldc >= n && c.len() >= (m - 1) * ldc + n && base.len() >= reach,
        "sgemm_packed_rows: operand shorter than {m}x{n}x{k}"
    );
    let c_ptr = SendPtr(c.as_mut_ptr());
    let block = move |c0: usize, nc: usize| {
        // SAFETY: shapes checked above; disjoint column blocks of C per
        // thread; A and B only read.
        unsafe {
            mmm::gemm_packed_a_rows(a, nc, base.as_ptr().add(c0), offs, c_ptr.get().add(c0), ldc)
        }
    };
    split_columns(m * n * k, n, nr, block);
}

/// `C[m×n] = A·colsᵀ + beta·C` with A `m × k` row-major and `cols` the
/// im2col columns `cols.col0..cols.col0 + k` of convolution inputs, whose
/// first `n` rows are packed straight from the images: a convolution's weight
/// gradient (the sum over output positions) with the bits of `im2col` +
/// `sgemm(No, Yes)` and no column buffer. Large products split their columns
/// over the pool.
pub fn sgemm_cols_t<'a>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    cols: impl Into<Cols<'a>>,
    beta: f32,
    c: &mut [f32],
) {
    let cols = cols.into();
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        a.len() >= m * k && c.len() >= m * n && n <= cols.rows() && covers(&cols, k),
        "sgemm_cols_t: operand shorter than {m}x{n}x{k}"
    );
    let c = &mut c[..m * n];
    if k == 0 {
        scale_c(beta, c);
        return;
    }
    let kern = mmm::kernel();
    let av = SendView(View::of(a, Transpose::No, k));
    let c_ptr = SendPtr(c.as_mut_ptr());
    let block = move |c0: usize, nc: usize| {
        // SAFETY: shapes checked above (the images in the strip packing);
        // disjoint column blocks of C per thread; A and the images only read.
        unsafe {
            mmm::gemm_cols_t(
                kern,
                m,
                nc,
                k,
                1.0,
                av.get(),
                cols,
                c0,
                beta,
                c_ptr.get().add(c0),
                n,
            )
        }
    };
    split_columns(m * n * k, n, kern.nr, block);
}

/// `y = alpha·op(A)·x + beta·y` with A stored row-major as `rows × cols`
/// (Caffe's `caffe_cpu_gemv(TransA, M=rows, N=cols, ...)`): op(A) = A takes x
/// of length `cols`; op(A) = Aᵀ takes x of length `rows`.
#[allow(clippy::too_many_arguments)]
pub fn sgemv(
    trans: Transpose,
    rows: usize,
    cols: usize,
    alpha: f32,
    a: &[f32],
    x: &[f32],
    beta: f32,
    y: &mut [f32],
) {
    let (xl, yl) = match trans {
        Transpose::No => (cols, rows),
        Transpose::Yes => (rows, cols),
    };
    assert!(
        a.len() >= rows * cols && x.len() >= xl && y.len() >= yl,
        "sgemv: operand shorter than {rows}x{cols}"
    );
    let (a, x, y) = (&a[..rows * cols], &x[..xl], &mut y[..yl]);
    let parallel = worth_splitting(rows * cols);
    match trans {
        Transpose::No => {
            // Bands of rows (multiples of dot_rows' four) per task.
            let band = |(yb, ab): (&mut [f32], &[f32])| {
                if beta == 0.0 && alpha == 1.0 {
                    return dot_rows(ab, x, yb);
                }
                let mut d = [0f32; ROW_BAND];
                dot_rows(ab, x, &mut d[..yb.len()]);
                for (yi, v) in yb.iter_mut().zip(d) {
                    *yi = if beta == 0.0 {
                        alpha * v
                    } else {
                        alpha * v + beta * *yi
                    };
                }
            };
            if cols == 0 {
                scale_c(beta, y);
            } else if parallel {
                y.par_chunks_mut(ROW_BAND)
                    .zip(a.par_chunks(ROW_BAND * cols))
                    .for_each(band);
            } else {
                y.chunks_mut(ROW_BAND)
                    .zip(a.chunks(ROW_BAND * cols))
                    .for_each(band);
            }
        }
        Transpose::Yes => {
            // Column j of the result reads column j of A: give each thread a
            // band of columns and let it sweep all rows (axpy per row).
            let band = |c0: usize, yb: &mut [f32]| {
                scale_c(beta, yb);
                for (i, &xi) in x.iter().enumerate() {
                    let start = i * cols + c0;
                    axpy(alpha * xi, &a[start..start + yb.len()], yb);
                }
            };
            if parallel && cols >= 2 * COLUMN_GRAIN {
                let per = cols
                    .div_ceil(rayon::current_num_threads())
                    .div_ceil(COLUMN_GRAIN)
                    * COLUMN_GRAIN;
                y.par_chunks_mut(per)
                    .enumerate()
                    .for_each(|(i, yb)| band(i * per, yb));
            } else {
                band(0, y);
            }
        }
    }
}

/// C = beta·C, where beta == 0 clears C even if it holds NaN (BLAS semantics).
pub(crate) fn scale_c(beta: f32, c: &mut [f32]) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        scal(beta, c);
    }
}

/// A raw pointer that may cross to rayon workers; see the SAFETY note in
/// `sgemm` for why sharing it is sound there.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used by `sgemm`, whose threads write disjoint blocks of C and
// only read A and B.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
/// A view of A or B shared the same way (read only).
#[derive(Clone, Copy)]
struct SendView(View);
// SAFETY: as for SendPtr; the viewed operands are only read.
unsafe impl Send for SendView {}
unsafe impl Sync for SendView {}
impl SendView {
    fn get(self) -> View {
        self.0
    }
}
impl SendPtr {
    /// Taking the pointer through a method makes closures capture the whole
    /// wrapper (edition 2021 would otherwise capture the bare field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The textbook triple loop, in f64, as the reference.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        ta: Transpose,
        tb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let av = if ta == Transpose::No {
                        a[i * k + p]
                    } else {
                        a[p * m + i]
                    };
                    let bv = if tb == Transpose::No {
                        b[p * n + j]
                    } else {
                        b[j * k + p]
                    };
                    s += av as f64 * bv as f64;
                }
                let prev = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * c[i * n + j] as f64
                };
                out[i * n + j] = (alpha as f64 * s + prev) as f32;
            }
        }
        out
    }

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    fn check(m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
        for ta in [Transpose::No, Transpose::Yes] {
            for tb in [Transpose::No, Transpose::Yes] {
                let a = random(m * k, 1);
                let b = random(k * n, 2);
                let c0 = random(m * n, 3);
                let want = naive(ta, tb, m, n, k, alpha, &a, &b, beta, &c0);
                let mut c = c0.clone();
                sgemm(ta, tb, m, n, k, alpha, &a, &b, beta, &mut c);
                // The same product with A packed ahead (as convolutions do).
                let mut packed = PackedA::default();
                pack_a(ta, m, k, &a, &mut packed);
                let mut c2 = c0.clone();
                sgemm_packed(&packed, tb, n, alpha, &b, beta, &mut c2);
                for (i, ((g, g2), w)) in c.iter().zip(&c2).zip(&want).enumerate() {
                    for (path, g) in [("sgemm", g), ("sgemm_packed", g2)] {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + k as f32).sqrt(),
                            "{path} {ta:?}{tb:?} {m}x{n}x{k} [{i}]: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_matches_naive_product_for_all_transposes() {
        check(3, 5, 4, 1.0, 0.0);
        check(7, 1, 9, 0.5, 2.0); // gemv path, N = 1
        check(1, 8, 6, -1.5, 1.0); // gemv path, M = 1
        check(1, 1, 5, 1.0, 0.5);
        check(33, 17, 65, 2.0, -0.5);
    }

    #[test]
    fn gemm_splits_large_products_across_threads_and_stays_exact() {
        check(64, 300, 120, 1.0, 1.0); // split along N
        check(300, 40, 200, 1.0, 0.0); // split along M
    }

    #[test]
    fn beta_zero_ignores_nan_in_c_and_k_zero_scales_c() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 0.0, 0.0, 1.0];
        let mut c = [f32::NAN; 4];
        sgemm(
            Transpose::No,
            Transpose::No,
            2,
            2,
            2,
            1.0,
            &a,
            &b,
            0.0,
            &mut c,
        );
        assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
        sgemm(
            Transpose::No,
            Transpose::No,
            2,
            2,
            0,
            1.0,
            &[],
            &[],
            3.0,
            &mut c,
        );
        assert_eq!(c, [3.0, 6.0, 9.0, 12.0]);
    }

    #[test]
    fn gemv_both_orientations_by_hand() {
        // A = [[1,2,3],[4,5,6]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = [1.0, 1.0];
        sgemv(Transpose::No, 2, 3, 2.0, &a, &[1.0, 0.0, -1.0], 1.0, &mut y);
        assert_eq!(y, [-3.0, -3.0]);
        let mut y = [f32::NAN; 3];
        sgemv(Transpose::Yes, 2, 3, 1.0, &a, &[1.0, 1.0], 0.0, &mut y);
        assert_eq!(y, [5.0, 7.0, 9.0]);
    }
}
