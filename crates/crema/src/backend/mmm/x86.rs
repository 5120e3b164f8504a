//! x86-64 kernels: AVX2 + FMA (6 × 16 tile: 12 of the 16 ymm registers hold
//! C, two hold a B strip, one a broadcast A value) and AVX-512 (12 × 32 tile:
//! 24 of the 32 zmm registers hold C). One macro writes both, so the two
//! differ only in vector width, tile height and intrinsic names; each is
//! compiled with its target feature and only offered when the CPU reports it.
use std::arch::x86_64::*;

use super::generic::store_tile;
use super::{Kernel, RowsKernels};

/// Where a kernel reads step k's `2·lanes` values of B: a packed strip, or
/// a row of the caller's own (`rows_kernel`).
trait BSteps: Copy {
    /// Safety: k is below the kernel's kc and the step's values are readable.
    unsafe fn step(self, k: usize) -> *const f32;
}

/// Packed B: step k is `nr` values on from step k − 1.
#[derive(Clone, Copy)]
struct Packed(*const f32, usize);

impl BSteps for Packed {
    #[inline(always)]
    unsafe fn step(self, k: usize) -> *const f32 {
        self.0.add(k * self.1)
    }
}

/// B read in place: step k starts `offs[k]` values past the base.
#[derive(Clone, Copy)]
struct Offsets(*const f32, *const usize);

impl BSteps for Offsets {
    #[inline(always)]
    unsafe fn step(self, k: usize) -> *const f32 {
        self.0.add(*self.1.add(k))
    }
}

/// Defines module `$name` holding an `$mr × 2·$lanes` kernel over vector type
/// `$v` whose packed A advances `$astep` values per step (`$mr`, or a wider
/// kernel's height for the short kernels that finish its last row strip):
/// `packed` reads packed B strips (`KernelFn`), `rows` reads B's steps in
/// place (`RowsKernelFn`).
macro_rules! simd_kernel {
    ($name:ident, $feat:literal, $mr:literal, $astep:literal, $lanes:literal, $v:ty,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $mul:ident) => {
        mod $name {
            use super::*;

            /// Safety: see `KernelFn`; the CPU must have the target feature.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn packed(
                kc: usize,
                a: *const f32,
                b: *const f32,
                c: *mut f32,
                rsc: usize,
                alpha: f32,
                beta: f32,
                rows: usize,
                cols: usize,
            ) {
                let b = Packed(b, 2 * $lanes);
                tile(kc, a, b, c, rsc, alpha, beta, rows, cols)
            }

            /// Safety: see `RowsKernelFn`; the CPU must have the target feature.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments, dead_code)]
            pub(super) unsafe fn rows(
                kc: usize,
                a: *const f32,
                base: *const f32,
                offs: *const usize,
                c: *mut f32,
                rsc: usize,
                beta: f32,
                rows: usize,
                cols: usize,
            ) {
                tile(kc, a, Offsets(base, offs), c, rsc, 1.0, beta, rows, cols)
            }

            /// The kernel body, for either kind of B.
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile<B: BSteps>(
                kc: usize,
                a: *const f32,
                b: B,
                c: *mut f32,
                rsc: usize,
                alpha: f32,
                beta: f32,
                rows: usize,
                cols: usize,
            ) {
                const MR: usize = $mr;
                const ASTEP: usize = $astep;
                const L: usize = $lanes;
                const NR: usize = 2 * L;
                let mut lo: [$v; MR] = [$zero(); MR];
                let mut hi: [$v; MR] = [$zero(); MR];
                let mut a = a;
                for k in 0..kc {
                    let bk = b.step(k);
                    let b0 = $load(bk);
                    let b1 = $load(bk.add(L));
                    for i in 0..MR {
                        let ai = $set1(*a.add(i));
                        lo[i] = $fma(ai, b0, lo[i]);
                        hi[i] = $fma(ai, b1, hi[i]);
                    }
                    a = a.add(ASTEP);
                }
                let va = $set1(alpha);
                if rows == MR && cols == NR {
                    for i in 0..MR {
                        let row = c.add(i * rsc);
                        let (mut r0, mut r1) = ($mul(lo[i], va), $mul(hi[i], va));
                        if beta != 0.0 {
                            let vb = $set1(beta);
                            r0 = $fma(vb, $load(row), r0);
                            r1 = $fma(vb, $load(row.add(L)), r1);
                        }
                        $store(row, r0);
                        $store(row.add(L), r1);
                    }
                } else {
                    // Edge tile: spill the registers and store the valid corner.
                    let mut tile = [0f32; MR * NR];
                    let t = tile.as_mut_ptr();
                    for i in 0..MR {
                        $store(t.add(i * NR), lo[i]);
                        $store(t.add(i * NR + L), hi[i]);
                    }
                    store_tile(&tile, NR, c, rsc, alpha, beta, rows, cols);
                }
            }
        }
    };
}

simd_kernel!(
    avx2_6x16,
    "avx2,fma",
    6,
    6,
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_mul_ps
);

/// An AVX-512 kernel of `$mr` rows over packed A strips of `$astep`.
macro_rules! avx512_kernel {
    ($name:ident, $mr:literal, $astep:literal) => {
        simd_kernel!(
            $name,
            "avx512f",
            $mr,
            $astep,
            16,
            __m512,
            _mm512_setzero_ps,
            _mm512_loadu_ps,
            _mm512_storeu_ps,
            _mm512_set1_ps,
            _mm512_fmadd_ps,
            _mm512_mul_ps
        );
    };
}

avx512_kernel!(avx512_12x32, 12, 12);
avx512_kernel!(avx512_4x32_of12, 4, 12);
avx512_kernel!(avx512_8x32_of12, 8, 12);

static AVX2: Kernel = Kernel {
    name: "avx2",
    mr: 6,
    nr: 16,
    run: avx2_6x16::packed,
    short: &[],
    rows: None,
};

static AVX512: Kernel = Kernel {
    name: "avx512",
    mr: 12,
    nr: 32,
    run: avx512_12x32::packed,
    // LeNet's 50 and 20 rows end in strips of 2 and 8: computing 12 there
    // wasted 17 % of those products.
    short: &[(4, avx512_4x32_of12::packed), (8, avx512_8x32_of12::packed)],
    rows: Some(RowsKernels {
        run: avx512_12x32::rows,
        short: &[(4, avx512_4x32_of12::rows), (8, avx512_8x32_of12::rows)],
    }),
};

/// The kernels this CPU can run, widest first.
pub fn available() -> Vec<&'static Kernel> {
    let mut out = Vec::new();
    if is_x86_feature_detected!("avx512f") {
        out.push(&AVX512);
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        out.push(&AVX2);
    }
    out
}
