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

mod generic;
mod pack;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

/// A microkernel and its register tile.
pub struct Kernel {
    /// What `caffe time`-style reports and the benchmark print.
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    run: KernelFn,
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
    let (mr, nr) = (kern.mr, kern.nr);
    let kc_blk = block_size(k, KC, 1);
    let mc_blk = block_size(m, MC, mr);
    let nc_blk = block_size(n, NC, nr);
    let run = |bufs: &mut PackBuffers| {
        let pa = aligned(&mut bufs.a, mc_blk * kc_blk);
        let pb = aligned(&mut bufs.b, nc_blk * kc_blk);
        for jc in (0..n).step_by(nc_blk) {
            let nc = nc_blk.min(n - jc);
            for pc in (0..k).step_by(kc_blk) {
                let kc = kc_blk.min(k - pc);
                // Later depth blocks add onto what the first one wrote.
                let beta = if pc == 0 { beta } else { 1.0 };
                pack::pack_b(nr, kc, nc, b.at(pc, jc), pb);
                for ic in (0..m).step_by(mc_blk) {
                    let mc = mc_blk.min(m - ic);
                    pack::pack_a(mr, mc, kc, a.at(ic, pc), pa);
                    for jr in (0..nc).step_by(nr) {
                        let cols = nr.min(nc - jr);
                        for ir in (0..mc).step_by(mr) {
                            let rows = mr.min(mc - ir);
                            (kern.run)(
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
