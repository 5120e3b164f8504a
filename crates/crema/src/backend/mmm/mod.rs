//! Our packed single-precision matrix product (the GotoBLAS/BLIS scheme).
//!
//! The contract, as in tract's `frame/mmm`: a microkernel multiplies an
//! `mr × kc` panel of A by a `kc × nr` panel of B, both packed so that every
//! step of k reads one contiguous strip, and writes `alpha·AB + beta·C` into
//! (part of) an `mr × nr` tile of row-major C. The driver here cuts the
//! product into blocks that keep a B panel in L1, an A block in L2 and a B
//! block in L3, packs them (transposes are absorbed by the packing, so kernels
//! never see them) and walks the tiles. Kernels live per ISA (`x86.rs`: AVX2 +
//! FMA and AVX-512) beside a portable one (`generic.rs`); `kernel()` picks the
//! best the running CPU has, and `tests.rs` runs every kernel against a naive
//! product.
use std::cell::RefCell;
use std::sync::OnceLock;

use super::gemm::Transpose;
use super::im2col::{im2col_2d_strips, im2col_2d_strips_t, ConvGeometry};
use super::shifted::RunCols;

mod generic;
pub(crate) mod pack;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
pub(super) use pack::{transpose16, transpose16_rows};

/// A microkernel and its register tile.
pub struct Kernel {
    /// What `caffe time`-style reports and the benchmark print.
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    run: KernelFn,
    /// Shorter kernels for a last row strip of at most that many rows (same
    /// packed A, same bits), shortest first.
    short: &'static [(usize, KernelFn)],
    /// The same kernels reading B in place (`gemm_packed_a_rows`), where
    /// the ISA has them.
    rows: Option<RowsKernels>,
}

/// A kernel family's in-place-B kernels, like `Kernel::run` and `short`.
pub struct RowsKernels {
    run: RowsKernelFn,
    short: &'static [(usize, RowsKernelFn)],
}

/// The kernel of `short` for a tile of `rows` rows, else `run`.
fn for_rows<F: Copy>(run: F, short: &[(usize, F)], rows: usize) -> F {
    short
        .iter()
        .find(|&&(r, _)| rows <= r)
        .map_or(run, |&(_, f)| f)
}

impl Kernel {
    /// The kernel for a tile of `rows` rows.
    fn for_rows(&self, rows: usize) -> KernelFn {
        for_rows(self.run, self.short, rows)
    }

    /// Whether this kernel can read B in place (`gemm_packed_a_rows`).
    pub fn reads_rows(&self) -> bool {
        self.rows.is_some()
    }
}

/// `c[0..rows][0..cols] = alpha·(a·b) + beta·c` (beta 0 overwrites), where `a`
/// is `kc` steps of `mr` values and `b` is `kc` steps of `nr` values, and `c`
/// has row stride `rsc` and column stride 1.
///
/// Safety: `a` and `b` hold `kc·mr` and `kc·nr` readable values, `c` the
/// `rows × cols` tile (`rows ≤ mr`, `cols ≤ nr`), and the kernel's ISA is
/// present (the constructors in `kernels()` check it).
type KernelFn = unsafe fn(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    alpha: f32,
    beta: f32,
    rows: usize,
    cols: usize,
);

/// `c[0..rows][0..cols] = a·b + beta·c` like `KernelFn` with alpha 1, where
/// B's step k is the `nr` values from `base + offs[k]`, read where they lie.
///
/// Safety: as for `KernelFn`, with `offs` holding `kc` offsets and `nr`
/// values readable from `base` at each (past `cols`, they are read but not
/// used).
type RowsKernelFn = unsafe fn(
    kc: usize,
    a: *const f32,
    base: *const f32,
    offs: *const usize,
    c: *mut f32,
    rsc: usize,
    beta: f32,
    rows: usize,
    cols: usize,
);

/// Depth of one packed block: a kc × nr B panel (16 KiB at nr 16) stays in L1.
const KC: usize = 256;
/// Rows of one packed A block: mc × kc (up to 120 KiB) stays in L2.
const MC: usize = 120;
/// Columns of one packed B block: kc × nc (4 MiB) stays in L3.
const NC: usize = 4096;

/// Every kernel this CPU can run, best first; the last is the portable one.
pub fn kernels() -> Vec<&'static Kernel> {
    let mut all = Vec::new();
    #[cfg(target_arch = "x86_64")]
    all.extend(x86::available());
    all.push(&generic::KERNEL);
    all
}

/// The kernel `sgemm` uses: the best available, or the one named by the
/// environment variable `CREMA_GEMM_KERNEL` (for benchmarks) if it is
/// available.
pub fn kernel() -> &'static Kernel {
    static CHOSEN: OnceLock<&'static Kernel> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let all = kernels();
        std::env::var("CREMA_GEMM_KERNEL")
            .ok()
            .and_then(|want| all.iter().copied().find(|k| k.name == want))
            .unwrap_or(all[0])
    })
}

/// Row-major view of op(X): element (i, j) is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// The view of op(X) for X stored row-major as `rows × cols` (before the
    /// transpose).
    pub fn of(x: &[f32], t: Transpose, cols: usize) -> View {
        let (rs, cs) = match t {
            Transpose::No => (cols as isize, 1),
            Transpose::Yes => (1, cols as isize),
        };
        View {
            ptr: x.as_ptr(),
            rs,
            cs,
        }
    }

    /// The view starting at element (i, j).
    ///
    /// # Safety
    /// (i, j) lies inside the viewed matrix.
    pub unsafe fn at(self, i: usize, j: usize) -> View {
        View {
            ptr: self.ptr.offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

/// Splits `total` into equal blocks of at most `max`, rounded up to `unit`, so
/// a product just over a block size does not end in a sliver.
fn block_size(total: usize, max: usize, unit: usize) -> usize {
    let blocks = total.div_ceil(max).max(1);
    total.div_ceil(blocks).div_ceil(unit) * unit
}

/// This thread's packing buffers, kept between calls so a steady-state
/// iteration allocates nothing.
#[derive(Default)]
struct PackBuffers {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<PackBuffers> = RefCell::new(PackBuffers::default());
}

/// A 64-byte aligned run of `len` values inside `buf` (grown when needed).
fn aligned(buf: &mut Vec<f32>, len: usize) -> *mut f32 {
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let p = buf.as_mut_ptr();
    // SAFETY: the offset is at most 15 values and the buffer has 16 spare.
    unsafe { p.add(p.align_offset(64)) }
}

/// `C[m×n] = alpha·op(A)·op(B) + beta·C` on this thread, with C row-major at
/// `c` with row stride `ldc`.
///
/// # Safety
/// `a` and `b` view m×k and k×n readable matrices, `c` an m×n writable one
/// that nothing else touches during the call; m, n, k > 0.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_serial(
    kern: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: View,
    b: View,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    drive(
        kern,
        m,
        n,
        k,
        alpha,
        Source::View(a),
        BSource::View(b),
        beta,
        c,
        ldc,
    )
}

/// Like `gemm_serial` with A already packed (`PackedA::pack`): a product
/// repeated over many B's (a convolution's weights over the images of a
/// batch) packs its A once instead of once per product.
///
/// # Safety
/// As for `gemm_serial`, with `b` viewing `a.k() × n` values and `c` holding
/// `a.m() × n`.
pub unsafe fn gemm_packed_a(
    a: &PackedA,
    n: usize,
    alpha: f32,
    b: View,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    drive(
        a.kern,
        a.m,
        n,
        a.k,
        alpha,
        Source::Packed(a),
        BSource::View(b),
        beta,
        c,
        ldc,
    )
}

/// `gemm_packed_a` with op(B) the im2col columns `b` (`b.col0..b.col0 + n`),
/// packed straight from the images: a convolution's product without its
/// column buffer ever being written out and read back.
///
/// # Safety
/// As for `gemm_packed_a`, with `a.k()` equal to the columns' row count.
pub unsafe fn gemm_packed_a_cols(
    a: &PackedA,
    n: usize,
    alpha: f32,
    b: Cols,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let k = a.k;
    assert_eq!(k, b.rows(), "gemm: weights and columns differ in depth");
    drive(
        a.kern,
        a.m,
        n,
        k,
        alpha,
        Source::Packed(a),
        BSource::Cols(b),
        beta,
        c,
        ldc,
    )
}

/// `C[m×n] = alpha·op(A)·colsᵀ + beta·C` on this thread, where `b` gives
/// the im2col columns `b.col0..b.col0 + k` (the depth: output positions) and
/// `n` of its rows from `row0` (kernel taps), packed straight from the
/// images: a convolution's weight gradient without its column buffer.
///
/// # Safety
/// As for `gemm_serial`, with `row0 + n` at most the columns' row count.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_cols_t(
    kern: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: View,
    b: Cols,
    row0: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    assert!(
        row0 + n <= b.rows(),
        "gemm: more rows than the columns have"
    );
    drive(
        kern,
        m,
        n,
        k,
        alpha,
        Source::View(a),
        BSource::ColsT(b, row0),
        beta,
        c,
        ldc,
    )
}

/// `C[m×n] = op(A)·B` on this thread with A packed, where row k of B is the
/// `n` values from `base + offs[k]`, read in place: a convolution over
/// shifted planes (`shifted`), whose every column-buffer row is a run of
/// them, with no B packed at all.
///
/// # Safety
/// `a.kern` has `rows` kernels; `offs` holds `a.k()` offsets, and `base`
/// has `n` rounded up to the kernel's `nr`, readable, from each; `c` holds
/// `a.m() × n` values `ldc` apart that nothing else touches during the call.
pub unsafe fn gemm_packed_a_rows(
    a: &PackedA,
    n: usize,
    base: *const f32,
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
) {
    let rk = a
        .kern
        .rows
        .as_ref()
        .expect("gemm: kernel reads no rows in place");
    assert_eq!(offs.len(), a.k, "gemm: one offset per step");
    let (mr, nr) = (a.kern.mr, a.kern.nr);
    for pc in (0..a.k).step_by(a.kc_blk) {
        let kc = a.kc_blk.min(a.k - pc);
        // Later depth blocks add onto what the first one wrote.
        let beta = if pc == 0 { 0.0 } else { 1.0 };
        for ic in (0..a.m).step_by(a.mc_blk) {
            let mc = a.mc_blk.min(a.m - ic);
            let pa = a.buf.as_ptr().add(a.start + a.offset(pc, ic));
            for jr in (0..n).step_by(nr) {
                let cols = nr.min(n - jr);
                for ir in (0..mc).step_by(mr) {
                    let rows = mr.min(mc - ir);
                    (for_rows(rk.run, rk.short, rows))(
                        kc,
                        pa.add(ir * kc),
                        base.add(jr),
                        offs[pc..].as_ptr(),
                        c.add((ic + ir) * ldc + jr),
                        ldc,
                        beta,
                        rows,
                        cols,
                    );
                }
            }
        }
    }
}

/// The im2col column buffer of several 2-D convolution inputs side by side
/// (column `j·positions + p` is output position p of image j), never stored:
/// `pack` fills packed strips from the images directly.
#[derive(Clone, Copy)]
pub struct ImplicitCols<'a> {
    /// One image's window (its channels: one group's).
    pub geom: &'a ConvGeometry,
    /// Image 0's first value; image j starts `j·image_stride` values later.
    pub images: &'a [f32],
    pub image_stride: usize,
    /// Output positions per image.
    pub positions: usize,
    /// The first column this operand starts at.
    pub col0: usize,
}

impl ImplicitCols<'_> {
    /// Rows `k0..k0 + kc`, columns `j0..j0 + nc` (from `col0`) packed like
    /// `pack::pack_b`, straight from the images.
    ///
    /// Safety: `dst` has room for `nc.div_ceil(nr)·nr·kc` values.
    unsafe fn pack(&self, nr: usize, k0: usize, kc: usize, j0: usize, nc: usize, dst: *mut f32) {
        let dst = std::slice::from_raw_parts_mut(dst, nc.div_ceil(nr) * nr * kc);
        let first = self.col0 + j0;
        im2col_2d_strips(
            self.geom,
            self.images,
            self.image_stride,
            k0..k0 + kc,
            first..first + nc,
            nr,
            dst,
        );
    }

    /// Steps `k0..k0 + kc` and columns `j0..j0 + nc` of op(B) = colsᵀ from
    /// row `row0`, packed like `pack::pack_b`, straight from the images.
    ///
    /// Safety: `dst` has room for `nc.div_ceil(nr)·nr·kc` values.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_t(
        &self,
        row0: usize,
        nr: usize,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        dst: *mut f32,
    ) {
        let dst = std::slice::from_raw_parts_mut(dst, nc.div_ceil(nr) * nr * kc);
        let first = self.col0 + k0;
        im2col_2d_strips_t(
            self.geom,
            self.images,
            self.image_stride,
            first..first + kc,
            row0 + j0..row0 + j0 + nc,
            nr,
            dst,
        );
    }
}

/// A convolution's column buffer, never stored, that the driver packs B
/// strips from: straight from the images, or from their shifted planes.
#[derive(Clone, Copy)]
pub enum Cols<'a> {
    Images(ImplicitCols<'a>),
    Runs(RunCols<'a>),
}

impl<'a> From<ImplicitCols<'a>> for Cols<'a> {
    fn from(c: ImplicitCols<'a>) -> Self {
        Cols::Images(c)
    }
}

impl<'a> From<RunCols<'a>> for Cols<'a> {
    fn from(c: RunCols<'a>) -> Self {
        Cols::Runs(c)
    }
}

impl Cols<'_> {
    /// Rows of the column buffer.
    pub fn rows(&self) -> usize {
        match self {
            Cols::Images(c) => c.geom.col_rows(),
            Cols::Runs(r) => r.rows(),
        }
    }

    /// Output positions per image.
    pub fn positions(&self) -> usize {
        match self {
            Cols::Images(c) => c.positions,
            Cols::Runs(r) => r.positions,
        }
    }

    /// The same columns from `c0` columns further on.
    pub fn from_col(self, c0: usize) -> Self {
        match self {
            Cols::Images(c) => Cols::Images(ImplicitCols {
                col0: c.col0 + c0,
                ..c
            }),
            Cols::Runs(r) => Cols::Runs(RunCols {
                col0: r.col0 + c0,
                ..r
            }),
        }
    }

    /// `ImplicitCols::pack` or `RunCols::pack`.
    ///
    /// Safety: `dst` has room for `nc.div_ceil(nr)·nr·kc` values.
    unsafe fn pack(&self, nr: usize, k0: usize, kc: usize, j0: usize, nc: usize, dst: *mut f32) {
        match self {
            Cols::Images(c) => c.pack(nr, k0, kc, j0, nc, dst),
            Cols::Runs(r) => {
                let dst = std::slice::from_raw_parts_mut(dst, nc.div_ceil(nr) * nr * kc);
                r.pack(nr, k0, kc, j0, nc, dst)
            }
        }
    }

    /// `ImplicitCols::pack_t` or `RunCols::pack_t`.
    ///
    /// Safety: `dst` has room for `nc.div_ceil(nr)·nr·kc` values.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_t(
        &self,
        row0: usize,
        nr: usize,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        dst: *mut f32,
    ) {
        match self {
            Cols::Images(c) => c.pack_t(row0, nr, k0, kc, j0, nc, dst),
            Cols::Runs(r) => {
                let dst = std::slice::from_raw_parts_mut(dst, nc.div_ceil(nr) * nr * kc);
                r.pack_t(row0, nr, k0, kc, j0, nc, dst)
            }
        }
    }
}

/// Where the driver gets its B blocks from.
#[derive(Clone, Copy)]
enum BSource<'a> {
    View(View),
    Cols(Cols<'a>),
    /// The transposed columns, from this row of the column buffer on.
    ColsT(Cols<'a>, usize),
}

/// Where the driver gets its A blocks from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Packed block by block into this thread's buffer.
    View(View),
    /// Read from blocks packed before the call.
    Packed(&'a PackedA),
}

/// op(A) (m×k) packed once in the driver's block order, for any number of
/// products with it. Blocks of `mc_blk` rows by `kc_blk` steps sit at a
/// fixed stride, ordered by depth block then row block.
pub struct PackedA {
    kern: &'static Kernel,
    m: usize,
    k: usize,
    kc_blk: usize,
    mc_blk: usize,
    buf: Vec<f32>,
    /// Index of the first value of block 0 in `buf` (64-byte aligned).
    start: usize,
}

impl PackedA {
    /// Packs the m×k matrix op(A) viewed by `a` for `kern`.
    ///
    /// # Safety
    /// `a` views at least m×k readable values; m, k > 0.
    pub unsafe fn pack(kern: &'static Kernel, m: usize, k: usize, a: View) -> PackedA {
        let mut p = PackedA::empty(kern);
        p.repack(kern, m, k, a);
        p
    }

    /// Nothing packed yet; `repack` fills it.
    pub fn empty(kern: &'static Kernel) -> PackedA {
        PackedA {
            kern,
            m: 0,
            k: 0,
            kc_blk: 0,
            mc_blk: 0,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `pack` into this value's buffer, reusing its memory.
    ///
    /// # Safety
    /// As for `pack`.
    pub unsafe fn repack(&mut self, kern: &'static Kernel, m: usize, k: usize, a: View) {
        let kc_blk = block_size(k, KC, 1);
        let mc_blk = block_size(m, MC, kern.mr);
        let blocks = k.div_ceil(kc_blk) * m.div_ceil(mc_blk);
        let base = aligned(&mut self.buf, blocks * mc_blk * kc_blk);
        self.start = base.offset_from(self.buf.as_ptr()) as usize;
        (self.kern, self.m, self.k, self.kc_blk, self.mc_blk) = (kern, m, k, kc_blk, mc_blk);
        for pc in (0..k).step_by(kc_blk) {
            let kc = kc_blk.min(k - pc);
            for ic in (0..m).step_by(mc_blk) {
                let mc = mc_blk.min(m - ic);
                pack::pack_a(kern.mr, mc, kc, a.at(ic, pc), base.add(self.offset(pc, ic)));
            }
        }
    }

    pub fn m(&self) -> usize {
        self.m
    }
    pub fn k(&self) -> usize {
        self.k
    }

    /// Where the block starting at step `pc` and row `ic` begins in `buf`.
    fn offset(&self, pc: usize, ic: usize) -> usize {
        let row_blocks = self.m.div_ceil(self.mc_blk);
        ((pc / self.kc_blk) * row_blocks + ic / self.mc_blk) * self.mc_blk * self.kc_blk
    }
}

/// The blocked loop nest shared by both entry points: B blocks (L3) → depth
/// blocks (B packed) → row blocks (A packed or looked up, L2) → tiles.
#[allow(clippy::too_many_arguments)]
unsafe fn drive(
    kern: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Source,
    b: BSource,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let (kc_blk, mc_blk) = match a {
        Source::View(_) => (block_size(k, KC, 1), block_size(m, MC, mr)),
        Source::Packed(p) => (p.kc_blk, p.mc_blk),
    };
    let nc_blk = block_size(n, NC, nr);
    let run = |bufs: &mut PackBuffers| {
        let pa = match a {
            Source::View(_) => aligned(&mut bufs.a, mc_blk * kc_blk),
            Source::Packed(_) => std::ptr::null_mut(),
        };
        let pb = aligned(&mut bufs.b, nc_blk * kc_blk);
        for jc in (0..n).step_by(nc_blk) {
            let nc = nc_blk.min(n - jc);
            for pc in (0..k).step_by(kc_blk) {
                let kc = kc_blk.min(k - pc);
                // Later depth blocks add onto what the first one wrote.
                let beta = if pc == 0 { beta } else { 1.0 };
                match b {
                    BSource::View(v) => pack::pack_b(nr, kc, nc, v.at(pc, jc), pb),
                    BSource::Cols(cols) => cols.pack(nr, pc, kc, jc, nc, pb),
                    BSource::ColsT(cols, row0) => cols.pack_t(row0, nr, pc, kc, jc, nc, pb),
                }
                for ic in (0..m).step_by(mc_blk) {
                    let mc = mc_blk.min(m - ic);
                    let pa: *const f32 = match a {
                        Source::View(v) => {
                            pack::pack_a(mr, mc, kc, v.at(ic, pc), pa);
                            pa
                        }
                        Source::Packed(p) => p.buf.as_ptr().add(p.start + p.offset(pc, ic)),
                    };
                    for jr in (0..nc).step_by(nr) {
                        let cols = nr.min(nc - jr);
                        for ir in (0..mc).step_by(mr) {
                            let rows = mr.min(mc - ir);
                            (kern.for_rows(rows))(
                                kc,
                                pa.add(ir * kc),
                                pb.add(jr * kc),
                                c.add((ic + ir) * ldc + jc + jr),
                                ldc,
                                alpha,
                                beta,
                                rows,
                                cols,
                            );
                        }
                    }
                }
            }
        }
    };
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => run(&mut bufs),
        // Only reachable if a kernel re-entered sgemm on this thread; fresh
        // buffers keep that correct.
        Err(_) => run(&mut PackBuffers::default()),
    })
}

/// Safe single-threaded product with `kern`, same semantics as
/// `backend::sgemm` (row-major, op(A) m×k, op(B) k×n, beta 0 overwrites);
/// the benchmark and the kernel tests call it to pick a kernel.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    kern: &Kernel,
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
    if k == 0 || alpha == 0.0 {
        super::gemm::scale_c(beta, &mut c[..m * n]);
        return;
    }
    let av = View::of(a, trans_a, if trans_a == Transpose::No { k } else { m });
    let bv = View::of(b, trans_b, if trans_b == Transpose::No { n } else { k });
    // SAFETY: the lengths were checked above and C is borrowed mutably.
    unsafe { gemm_serial(kern, m, n, k, alpha, av, bv, beta, c.as_mut_ptr(), n) }
}
