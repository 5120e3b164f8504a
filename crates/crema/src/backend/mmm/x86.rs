//! x86-64 kernels: AVX2 + FMA (6 × 16 tile: 12 of the 16 ymm registers hold
//! C, two hold a B strip, one a broadcast A value) and AVX-512 (12 × 32 tile:
//! 24 of the 32 zmm registers hold C). One macro writes both, so the two
//! differ only in vector width, tile height and intrinsic names; each is
//! compiled with its target feature and only offered when the CPU reports it.
use std::arch::x86_64::*;

use super::generic::store_tile;
use super::Kernel;

/// Defines `$name`, an `$mr × 2·$lanes` kernel over vector type `$v` whose
/// packed A advances `$astep` values per step (`$mr`, or a wider kernel's
/// height for the short kernels that finish its last row strip).
macro_rules! simd_kernel {
    ($name:ident, $feat:literal, $mr:literal, $astep:literal, $lanes:literal, $v:ty,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $mul:ident) => {
        /// Safety: see `KernelFn`; the CPU must have the target feature.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
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
            const MR: usize = $mr;
            const L: usize = $lanes;
            const NR: usize = 2 * L;
            let mut lo: [$v; MR] = [$zero(); MR];
            let mut hi: [$v; MR] = [$zero(); MR];
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let b0 = $load(b);
                let b1 = $load(b.add(L));
                for i in 0..MR {
                    let ai = $set1(*a.add(i));
                    lo[i] = $fma(ai, b0, lo[i]);
                    hi[i] = $fma(ai, b1, hi[i]);
                }
                a = a.add($astep);
                b = b.add(NR);
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
    run: avx2_6x16,
    short: &[],
};

static AVX512: Kernel = Kernel {
    name: "avx512",
    mr: 12,
    nr: 32,
    run: avx512_12x32,
    // LeNet's 50 and 20 rows end in strips of 2 and 8: computing 12 there
    // wasted 17 % of those products.
    short: &[(4, avx512_4x32_of12), (8, avx512_8x32_of12)],
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
