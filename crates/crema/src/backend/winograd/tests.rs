//! Winograd against the direct sums in f64 (forward, input diff, filter diff)
//! on shapes with partial edge tiles, padding, groups and several images.
use rand::{Rng, SeedableRng};

use super::{matrices, Winograd, ALPHA, PORTABLE};
use crate::backend::im2col::ConvGeometry;
use crate::backend::mmm::PackedA;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.gen_range(-1.0..1.0)).collect()
}

/// Every F(m, r) the points give is the 1-D correlation exactly (in f64):
/// Σₚ Aᵀ[i][p] G[p][k] Bᵀ[p][j] = [j = i + k].
#[test]
fn transforms_compute_the_correlation() {
    for r in 2..ALPHA {
        let m = ALPHA + 1 - r;
        let (at, g, bt) = matrices(m, r);
        for i in 0..m {
            for k in 0..r {
                for j in 0..ALPHA {
                    let s: f64 = (0..ALPHA)
                        .map(|p| at[i * ALPHA + p] * g[p * r + k] * bt[p * ALPHA + j])
                        .sum();
                    let want = if j == i + k { 1.0 } else { 0.0 };
                    assert!((s - want).abs() < 1e-9, "F({m},{r}) at ({i},{k},{j}): {s}");
                }
            }
        }
    }
}

struct Case {
    imgs: usize,
    c: usize,
    o: usize,
    group: usize,
    h: usize,
    w: usize,
    r: usize,
    pad: (usize, usize),
}

impl Case {
    fn geom(&self) -> ConvGeometry {
        ConvGeometry {
            channels: self.c,
            input: vec![self.h, self.w],
            kernel: vec![self.r, self.r],
            pad: vec![self.pad.0, self.pad.1],
            stride: vec![1, 1],
            dilation: vec![1, 1],
        }
    }

    fn out(&self) -> (usize, usize) {
        let o = self.geom().output().unwrap();
        (o[0], o[1])
    }

    /// Visits every (image, output channel, input channel of its group, output
    /// position, tap) whose input position lies inside the image, with the
    /// indices of the input, weight and output values.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = self.out();
        let (cg, og) = (self.c / self.group, self.o / self.group);
        for n in 0..self.imgs {
            for o in 0..self.o {
                let g = o / og;
                for cl in 0..cg {
                    let ci = g * cg + cl;
                    for y in 0..oh {
                        for x in 0..ow {
                            for k in 0..self.r {
                                for l in 0..self.r {
                                    let iy = (y + k).wrapping_sub(self.pad.0);
                                    let ix = (x + l).wrapping_sub(self.pad.1);
                                    if iy >= self.h || ix >= self.w {
                                        continue;
                                    }
                                    let xi = ((n * self.c + ci) * self.h + iy) * self.w + ix;
                                    let wi = ((o * cg + cl) * self.r + k) * self.r + l;
                                    let yi = ((n * self.o + o) * oh + y) * ow + x;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Relative Frobenius error under 1e-5, and every entry within 1e-5 of the
/// largest reference magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    let (mut num, mut den) = (0f64, 0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = g as f64 - w;
        assert!(
            e.abs() <= 1e-5 * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
        num += e * e;
        den += w * w;
    }
    assert!(
        (num / den.max(1e-300)).sqrt() < 1e-5,
        "{what}: relative error {}",
        (num / den).sqrt()
    );
}

fn check(case: &Case) {
    let (oh, ow) = case.out();
    let cg = case.c / case.group;
    let in_len = case.c * case.h * case.w;
    let out_len = case.o * oh * ow;
    let x = random(case.imgs * in_len, 1);
    let w = random(case.o * cg * case.r * case.r, 2);
    let dy = random(case.imgs * out_len, 3);
    let (mut y_ref, mut dx_ref) = (vec![0f64; dy.len()], vec![0f64; x.len()]);
    let mut dw_ref = vec![0f64; w.len()];
    case.each(|xi, wi, yi| {
        y_ref[yi] += x[xi] as f64 * w[wi] as f64;
        dx_ref[xi] += dy[yi] as f64 * w[wi] as f64;
        dw_ref[wi] += dy[yi] as f64 * x[xi] as f64;
    });

    let wg = Winograd::new(&case.geom(), case.group, case.o).expect("a Winograd geometry");
    let (mut u, mut ut, mut tmp) = (Vec::<PackedA>::new(), Vec::<PackedA>::new(), Vec::new());
    wg.pack(&w, false, &mut u, &mut tmp);
    wg.pack(&w, true, &mut ut, &mut tmp);
    let mut buf = vec![f32::NAN; wg.scratch_len()];
    let mut offs = Vec::new();
    let (mut y, mut dx) = (vec![f32::NAN; dy.len()], vec![f32::NAN; x.len()]);
    let mut du = vec![0f32; wg.dweights_len()];
    let chunk = wg.chunk_images();
    for n0 in (0..case.imgs).step_by(chunk) {
        let imgs = chunk.min(case.imgs - n0);
        let xs = &x[n0 * in_len..(n0 + imgs) * in_len];
        let ys = &mut y[n0 * out_len..(n0 + imgs) * out_len];
        wg.forward(imgs, xs, &u, ys, &mut buf, &mut offs);
        let dys = &dy[n0 * out_len..(n0 + imgs) * out_len];
        let dxs = &mut dx[n0 * in_len..(n0 + imgs) * in_len];
        wg.backward(
            imgs,
            xs,
            dys,
            Some(&ut),
            Some(dxs),
            &mut du,
            &mut buf,
            &mut offs,
        );
    }
    // The filter diff adds onto what is there.
    let mut dw = vec![0.5f32; w.len()];
    wg.finish_weight_grad(&du, &mut dw, &mut buf);
    dw.iter_mut().for_each(|v| *v -= 0.5);
    assert_close("output", &y, &y_ref);
    assert_close("input diff", &dx, &dx_ref);
    assert_close("filter diff", &dw, &dw_ref);
}

#[test]
fn lenet_conv2_shape_matches_the_direct_sums() {
    // 20 → 50 channels, 12×12 → 8×8: whole tiles, chunks of 16 images.
    check(&Case {
        imgs: 19,
        c: 20,
        o: 50,
        group: 1,
        h: 12,
        w: 12,
        r: 5,
        pad: (0, 0),
    });
}

#[test]
fn partial_tiles_padding_and_groups_match_the_direct_sums() {
    // 13×11 with pad (2, 1): 13×9 outputs, tiles cut at both edges.
    check(&Case {
        imgs: 3,
        c: 6,
        o: 10,
        group: 2,
        h: 13,
        w: 11,
        r: 5,
        pad: (2, 1),
    });
    // One channel in, one out, an output smaller than a tile.
    check(&Case {
        imgs: 2,
        c: 1,
        o: 1,
        group: 1,
        h: 7,
        w: 5,
        r: 5,
        pad: (0, 1),
    });
    // Wide images: one image per chunk, several GEMM tiles of tiles.
    check(&Case {
        imgs: 2,
        c: 3,
        o: 7,
        group: 1,
        h: 40,
        w: 37,
        r: 5,
        pad: (2, 2),
    });
}

#[test]
fn other_kernel_sides_match_the_direct_sums() {
    for r in [2, 3, 4, 6, 7] {
        check(&Case {
            imgs: 2,
            c: 5,
            o: 3,
            group: 1,
            h: 17,
            w: 10,
            r,
            pad: (1, r / 2),
        });
    }
}

#[test]
fn portable_paths_match_the_direct_sums() {
    // The paths a CPU without AVX-512 takes (transform steps, lanes,
    // filter diff, packed products), on this thread only.
    PORTABLE.with(|p| p.set(true));
    check(&Case {
        imgs: 19,
        c: 20,
        o: 50,
        group: 1,
        h: 12,
        w: 12,
        r: 5,
        pad: (0, 0),
    });
    check(&Case {
        imgs: 3,
        c: 6,
        o: 10,
        group: 2,
        h: 13,
        w: 11,
        r: 5,
        pad: (2, 1),
    });
    check(&Case {
        imgs: 2,
        c: 5,
        o: 3,
        group: 1,
        h: 17,
        w: 10,
        r: 3,
        pad: (1, 1),
    });
    PORTABLE.with(|p| p.set(false));
}

#[test]
fn a_plan_is_for_its_own_geometry_only() {
    let case = Case {
        imgs: 1,
        c: 6,
        o: 10,
        group: 2,
        h: 13,
        w: 11,
        r: 5,
        pad: (2, 1),
    };
    let g = case.geom();
    let wg = Winograd::new(&g, 2, 10).unwrap();
    assert!(wg.is_for(&g, 2, 10));
    assert!(!wg.is_for(&g, 1, 10) && !wg.is_for(&g, 2, 12));
    let mut other = g.clone();
    other.pad = vec![1, 2];
    assert!(!wg.is_for(&other, 2, 10));
    other = g.clone();
    other.input = vec![11, 13];
    assert!(!wg.is_for(&other, 2, 10));
}
