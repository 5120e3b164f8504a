//! One suite for every kernel this CPU offers: each product is checked against
//! a naive f64 triple loop at sizes that hit edge tiles (primes, 1, sizes just
//! off the vector width) and block boundaries (k past KC, m past MC, n past
//! NC), for all four transpose combinations.
use rand::{Rng, SeedableRng};

use super::{
    gemm_packed_a, gemm_packed_a_rows, kernels, sgemm_with, Kernel, PackedA, View, KC, MC, NC,
};
use crate::backend::gemm::Transpose;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.gen_range(-1.0..1.0)).collect()
}

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
) -> Vec<f64> {
    let at = |i: usize, p: usize| match ta {
        Transpose::No => a[i * k + p],
        Transpose::Yes => a[p * m + i],
    } as f64;
    let bt = |p: usize, j: usize| match tb {
        Transpose::No => b[p * n + j],
        Transpose::Yes => b[j * k + p],
    } as f64;
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            let prev = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * n + j] as f64
            };
            out[i * n + j] = alpha as f64 * s + prev;
        }
    }
    out
}

/// Runs one shape through `kern` with every transpose pair and checks the
/// relative Frobenius error against the naive product (< 1e-5) and each entry
/// within a bound that grows with k like f32 rounding does.
fn check(kern: &'static Kernel, m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    for ta in [Transpose::No, Transpose::Yes] {
        for tb in [Transpose::No, Transpose::Yes] {
            let a = random(m * k, 1 + m as u64);
            let b = random(k * n, 2 + n as u64);
            let c0 = random(m * n, 3 + k as u64);
            let want = naive(ta, tb, m, n, k, alpha, &a, &b, beta, &c0);
            let mut c = c0.clone();
            if beta == 0.0 {
                c.fill(f32::NAN); // beta 0 must not read C
            }
            sgemm_with(kern, ta, tb, m, n, k, alpha, &a, &b, beta, &mut c);
            let (mut err, mut norm) = (0f64, 0f64);
            for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * (1.0 + k as f64),
                    "{} {ta:?}{tb:?} {m}x{n}x{k} alpha {alpha} beta {beta} [{i}]: {g} vs {w}",
                    kern.name
                );
                err += (g as f64 - w).powi(2);
                norm += w * w;
            }
            let rel = (err / norm.max(1e-30)).sqrt();
            assert!(
                rel < 1e-5,
                "{} {ta:?}{tb:?} {m}x{n}x{k}: relative error {rel}",
                kern.name
            );
            // A packed once ahead must give the per-call packing's bits.
            let mut c2 = c0.clone();
            if beta == 0.0 {
                c2.fill(f32::NAN);
            }
            let av = View::of(&a, ta, if ta == Transpose::No { k } else { m });
            let bv = View::of(&b, tb, if tb == Transpose::No { n } else { k });
            // SAFETY: the operands hold m·k, k·n and m·n values.
            unsafe {
                let packed = PackedA::pack(kern, m, k, av);
                gemm_packed_a(&packed, n, alpha, bv, beta, c2.as_mut_ptr(), n);
            }
            let same = c.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{} {ta:?}{tb:?} {m}x{n}x{k}: prepacked A differs",
                kern.name
            );
        }
    }
}

#[test]
fn every_kernel_matches_naive_product_at_awkward_sizes() {
    for kern in kernels() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 17, 3),
            (7, 1, 5),
            (2, 3, 1),
            (5, 7, 11),
            (6, 16, 8),
            (12, 32, 4),
            (13, 31, 17),
            (11, 33, 7),
            (23, 29, 37),
            (kern.mr + 1, kern.nr - 1, 9),
            // Last row strips of 3, 4, 5 and 8 rows (the short kernels).
            (15, 20, 9),
            (16, 33, 6),
            (29, 20, 9),
            (20, 40, 13),
            (3 * kern.mr - 1, 2 * kern.nr + 1, 2),
        ] {
            check(kern, m, n, k, 1.0, 0.0);
            check(kern, m, n, k, -0.5, 1.0);
            check(kern, m, n, k, 2.0, 0.75);
        }
    }
}

#[test]
fn every_kernel_matches_naive_product_across_block_boundaries() {
    for kern in kernels() {
        check(kern, 19, 23, KC + 3, 1.0, 0.0); // two depth blocks
        check(kern, 19, 23, 2 * KC + 1, 1.0, 0.5); // three, tail of one
        check(kern, MC + 7, 41, 29, 1.0, 1.0); // two row blocks
        check(kern, 3, NC + 5, 2, 1.5, 0.0); // two column blocks
        check(kern, MC + 1, 67, KC + 1, 0.5, -1.0); // all at once
                                                    // Transposed B in whole 16 × 16 blocks plus a tail (the AVX-512
                                                    // register transpose in packing), for strips of 16 and 32.
        check(kern, 5, 64, 48, 1.0, 0.0);
        check(kern, 7, 96, 53, 1.0, 0.5);
    }
}

#[test]
fn k_zero_and_alpha_zero_only_scale_c() {
    for kern in kernels() {
        let mut c = vec![2.0; 6];
        sgemm_with(
            kern,
            Transpose::No,
            Transpose::No,
            2,
            3,
            0,
            1.0,
            &[],
            &[],
            0.5,
            &mut c,
        );
        assert_eq!(c, [1.0; 6]);
        let (a, b) = (vec![f32::NAN; 4], vec![1.0; 6]);
        let mut c = vec![f32::NAN; 6];
        sgemm_with(
            kern,
            Transpose::No,
            Transpose::No,
            2,
            3,
            2,
            0.0,
            &a,
            &b,
            0.0,
            &mut c,
        );
        assert_eq!(c, [0.0; 6], "{}", kern.name);
    }
}

#[test]
fn portable_kernel_is_always_offered_last() {
    let all = kernels();
    assert_eq!(all.last().unwrap().name, "generic");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(all.iter().any(|k| k.name == "avx2"));
    }
}

#[test]
fn rows_read_in_place_give_the_packed_products_bits() {
    // B's rows at scattered, overlapping, unaligned offsets into one buffer;
    // the same B copied out row by row and multiplied the packed way must
    // give the same bits. Sizes: edge tiles, the short kernels, two depth
    // blocks, two row blocks.
    for kern in kernels().into_iter().filter(|k| k.reads_rows()) {
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 7, 11),
            (12, 32, 4),
            (20, 64, 25),
            (50, 576, 25),
            (29, 33, KC + 3),
            (MC + 7, 45, 2 * KC + 1),
        ] {
            let base = random(3 * k + n + kern.nr + 5, 7);
            let offs: Vec<usize> = (0..k).map(|p| (p * 7 + p / 3) % (2 * k + 5)).collect();
            let mut b = vec![0f32; k * n];
            for (row, &o) in b.chunks_exact_mut(n).zip(&offs) {
                row.copy_from_slice(&base[o..o + n]);
            }
            let a = random(m * k, 8);
            let (mut want, mut got) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            // SAFETY: A is m × k, B k × n, C m × n; every offset leaves n
            // plus a tile's width of values in `base`.
            unsafe {
                let packed = PackedA::pack(kern, m, k, View::of(&a, Transpose::No, k));
                let bv = View::of(&b, Transpose::No, n);
                gemm_packed_a(&packed, n, 1.0, bv, 0.0, want.as_mut_ptr(), n);
                gemm_packed_a_rows(&packed, n, base.as_ptr(), &offs, got.as_mut_ptr(), n);
            }
            let same = want
                .iter()
                .zip(&got)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{} {m}x{n}x{k}: rows in place differ", kern.name);
        }
    }
}

#[test]
fn strips_packed_from_shifted_planes_equal_strips_packed_from_the_images() {
    use crate::backend::im2col::ConvGeometry;
    use crate::backend::shifted::{with_planes, RunCols, ShiftedPlanes};
    use crate::backend::ImplicitCols;

    use super::Cols;
    // (channels, input, kernel, pad, stride, dilation, group): padding,
    // a horizontal stride, dilation, two groups; 35 and 63 positions an
    // image put image edges inside 16-step chunks and 32-column strips.
    let cases = [
        (3, [7, 9], [3, 3], [1, 1], [1, 1], [1, 1], 1),
        (2, [6, 11], [2, 3], [0, 2], [1, 2], [1, 1], 1),
        (4, [9, 9], [3, 2], [1, 0], [1, 1], [2, 2], 2),
        (20, [12, 12], [5, 5], [0, 0], [1, 1], [1, 1], 1),
    ];
    let imgs = 3;
    for (ci, &(channels, input, kernel, pad, stride, dilation, group)) in cases.iter().enumerate() {
        let g = ConvGeometry {
            channels,
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            pad: pad.to_vec(),
            stride: stride.to_vec(),
            dilation: dilation.to_vec(),
        };
        let sp = ShiftedPlanes::new(&g).unwrap();
        let out = g.output().unwrap();
        let positions = out[0] * out[1];
        let in_len = g.image_len();
        let images = random(imgs * in_len, 40 + ci as u64);
        let gg = ConvGeometry {
            channels: channels / group,
            ..g.clone()
        };
        let (rows, cols) = (gg.col_rows(), imgs * positions);
        with_planes(&sp, group, &images, in_len, imgs, |planes, offs, glen| {
            for grp in 0..group {
                let from_images = |col0| {
                    Cols::Images(ImplicitCols {
                        geom: &gg,
                        images: &images[grp * gg.image_len()..],
                        image_stride: in_len,
                        positions,
                        col0,
                    })
                };
                let from_runs = |col0| {
                    Cols::Runs(RunCols {
                        planes: &planes[grp * glen..],
                        image_len: sp.image_len(),
                        offs,
                        positions,
                        col0,
                    })
                };
                let nr = 32;
                // (col0, k0, kc, j0, nc) for the forward strips: rows are
                // taps, columns positions across images.
                for (col0, k0, kc, j0, nc) in [
                    (0, 0, rows, 0, cols),
                    (3, 1, rows - 1, 2, cols - 5),
                    (positions, 0, rows.min(7), 0, positions + 1),
                ] {
                    let len = nc.div_ceil(nr) * nr * kc;
                    let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    // SAFETY: each buffer holds the packed block's values.
                    unsafe {
                        from_images(col0).pack(nr, k0, kc, j0, nc, a.as_mut_ptr());
                        from_runs(col0).pack(nr, k0, kc, j0, nc, b.as_mut_ptr());
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&a), bits(&b), "case {ci} group {grp} pack {col0} {k0}");
                }
                // (col0, row0, k0, kc, j0, nc) for the weight gradient's
                // transposed strips: steps are positions, columns taps.
                for (col0, row0, k0, kc, j0, nc) in [
                    (0, 0, 0, cols, 0, rows),
                    (0, 1, 16, cols - 16, 3, rows - 4),
                    (5, 0, 1, cols - 6, 0, rows.min(17)),
                ] {
                    let len = nc.div_ceil(nr) * nr * kc;
                    let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    // SAFETY: each buffer holds the packed block's values.
                    unsafe {
                        from_images(col0).pack_t(row0, nr, k0, kc, j0, nc, a.as_mut_ptr());
                        from_runs(col0).pack_t(row0, nr, k0, kc, j0, nc, b.as_mut_ptr());
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&a),
                        bits(&b),
                        "case {ci} group {grp} pack_t {col0} {row0} {k0}"
                    );
                }
            }
        });
    }
}
