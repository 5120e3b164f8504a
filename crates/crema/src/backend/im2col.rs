//! im2col / col2im: lay out every receptive field of an image as a column so
//! convolution becomes one GEMM (Caffe's util/im2col).
//!
//! The column buffer is `[channels·∏kernel, ∏output]`, row-major: row
//! `(c, k₀, k₁, ...)` holds, for every output position, the input value the
//! kernel tap `(k₀, k₁, ...)` of channel `c` sees there, or 0 where it falls in
//! the padding. `col2im` is the adjoint: it adds every column entry back onto
//! the pixel it came from (the image must be zeroed by the caller's contract,
//! which these functions honour by clearing it first).

/// Shape of one convolution's sliding window over a `channels × input...`
/// image; all per-axis vectors have one entry per spatial axis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvGeometry {
    pub channels: usize,
    pub input: Vec<usize>,
    pub kernel: Vec<usize>,
    pub pad: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilation: Vec<usize>,
}

impl ConvGeometry {
    /// Output extent per spatial axis: `(in + 2·pad − (dil·(k−1)+1)) / stride + 1`,
    /// or `None` where the dilated kernel is larger than the padded input (or a
    /// kernel, stride or dilation is 0, which layers reject earlier).
    pub fn output(&self) -> Option<Vec<usize>> {
        (0..self.input.len())
            .map(|i| {
                if self.kernel[i] == 0 || self.stride[i] == 0 || self.dilation[i] == 0 {
                    return None;
                }
                let extent = self.dilation[i] * (self.kernel[i] - 1) + 1;
                let padded = self.input[i] + 2 * self.pad[i];
                (padded >= extent).then(|| (padded - extent) / self.stride[i] + 1)
            })
            .collect()
    }

    /// Values in one image (`channels·∏input`).
    pub fn image_len(&self) -> usize {
        self.channels * self.input.iter().product::<usize>()
    }

    /// Rows of the column buffer (`channels·∏kernel`).
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel.iter().product::<usize>()
    }
}

/// Fills `col` from `im`; 2-D geometries take the specialized path unless
/// `force_nd` (Caffe's force_nd_im2col) asks for the general one.
pub fn im2col(g: &ConvGeometry, im: &[f32], col: &mut [f32], force_nd: bool) {
    if g.input.len() == 2 && !force_nd {
        im2col_2d(g, im, col)
    } else {
        im2col_nd(g, im, col)
    }
}

/// Writes the adjoint of `im2col` into `im` (overwriting it).
pub fn col2im(g: &ConvGeometry, col: &[f32], im: &mut [f32], force_nd: bool) {
    if g.input.len() == 2 && !force_nd {
        col2im_2d(g, col, im)
    } else {
        col2im_nd(g, col, im)
    }
}

/// Input coordinate of output `o` under kernel tap `k` on one axis, or `None`
/// in the padding.
#[inline]
fn input_coord(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
) -> Option<usize> {
    let x = (o * stride + k * dil).checked_sub(pad)?;
    (x < size).then_some(x)
}

fn checked_output(g: &ConvGeometry, im: &[f32], col: &[f32]) -> Vec<usize> {
    let out = g
        .output()
        .expect("im2col: kernel larger than padded input (checked by the layer)");
    let out_len: usize = out.iter().product();
    assert!(
        im.len() >= g.image_len() && col.len() >= g.col_rows() * out_len,
        "im2col: buffer too small"
    );
    out
}

/// Outputs `x` in `0..out` whose tap `k` lands inside `0..size`, and the input
/// coordinate of the first of them (the rest follow every `stride`).
fn valid_span(
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
) -> (std::ops::Range<usize>, usize) {
    let shift = k * dil;
    let lo = pad.saturating_sub(shift).div_ceil(stride).min(out);
    let hi = (size + pad)
        .saturating_sub(shift)
        .div_ceil(stride)
        .min(out)
        .max(lo);
    (lo..hi, (lo * stride + shift).saturating_sub(pad))
}

/// The 2-D case, row by row: each column-buffer row is zeros at the padded
/// ends and a (strided) copy of one input row in between.
pub fn im2col_2d(g: &ConvGeometry, im: &[f32], col: &mut [f32]) {
    let out = checked_output(g, im, col);
    im2col_2d_ld(g, im, col, out[0] * out[1]);
}

/// `im2col_2d` into a column buffer whose rows are `ld` values apart: the
/// columns of one image inside a buffer that holds several side by side
/// (`col` starts at the image's first column).
pub fn im2col_2d_ld(g: &ConvGeometry, im: &[f32], col: &mut [f32], ld: usize) {
    let out = g.output().expect("im2col: kernel larger than padded input");
    im2col_2d_range(g, im, 0, out[0] * out[1], col, ld);
}

/// The columns `j0..j1` (output positions in row-major order) of
/// `im2col_2d`, as rows of `j1 − j0` values: a slice of the column buffer
/// small enough to stay in L2 while the GEMM packs it.
pub fn im2col_2d_cols(g: &ConvGeometry, im: &[f32], j0: usize, j1: usize, col: &mut [f32]) {
    im2col_2d_range(g, im, j0, j1, col, j1 - j0);
}

/// Columns `j0..j1` of `im2col_2d` into rows `ld` values apart. Each row is
/// zeros where a tap falls in the padding and a (strided) copy of one input
/// row in between.
fn im2col_2d_range(g: &ConvGeometry, im: &[f32], j0: usize, j1: usize, col: &mut [f32], ld: usize) {
    let out = g.output().expect("im2col: kernel larger than padded input");
    let (h, w) = (g.input[0], g.input[1]);
    let (oh, ow) = (out[0], out[1]);
    let (sh, sw) = (g.stride[0], g.stride[1]);
    let width = j1 - j0;
    assert!(
        j0 < j1
            && j1 <= oh * ow
            && ld >= width
            && im.len() >= g.image_len()
            && col.len() + ld >= g.col_rows() * ld + width,
        "im2col: buffer too small"
    );
    let mut r = 0;
    for c in 0..g.channels {
        let plane = &im[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kernel[0] {
            for kj in 0..g.kernel[1] {
                let row = &mut col[r * ld..r * ld + width];
                r += 1;
                let (xs, ix0) = valid_span(ow, kj, sw, g.pad[1], g.dilation[1], w);
                // Output rows oy that the range touches, each from xa to xb.
                for oy in j0 / ow..=(j1 - 1) / ow {
                    let xa = if oy == j0 / ow { j0 % ow } else { 0 };
                    let xb = if oy == (j1 - 1) / ow {
                        (j1 - 1) % ow + 1
                    } else {
                        ow
                    };
                    let dst = &mut row[oy * ow + xa - j0..oy * ow + xb - j0];
                    let Some(iy) = input_coord(oy, ki, sh, g.pad[0], g.dilation[0], h) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * w..(iy + 1) * w];
                    // Valid taps of this row, clipped to xa..xb.
                    let (va, vb) = (xs.start.clamp(xa, xb), xs.end.clamp(xa, xb));
                    if va > xa {
                        dst[..va - xa].fill(0.0);
                    }
                    if vb < xb {
                        dst[vb - xa..].fill(0.0);
                    }
                    let inner = &mut dst[va - xa..vb - xa];
                    if inner.is_empty() {
                        continue;
                    }
                    let first = ix0 + (va - xs.start) * sw;
                    if sw == 1 {
                        copy_row(inner, &src[first..first + inner.len()]);
                    } else {
                        let taps = src[first..].iter().step_by(sw);
                        inner.iter_mut().zip(taps).for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short rows of small feature maps
/// (LeNet's 8, AlexNet's 13 and 27): fixed-size moves, the last one
/// overlapping the one before, where a `memcpy` call per row would cost more
/// than the copy.
#[inline]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_row: lengths differ");
    #[inline(always)]
    fn block<const V: usize>(dst: &mut [f32], src: &[f32], at: usize) {
        let v: [f32; V] = src[at..at + V].try_into().expect("V values");
        dst[at..at + V].copy_from_slice(&v);
    }
    match n {
        0..=3 => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s),
        4..=7 => {
            block::<4>(dst, src, 0);
            block::<4>(dst, src, n - 4);
        }
        8..=15 => {
            block::<8>(dst, src, 0);
            block::<8>(dst, src, n - 8);
        }
        16..=64 => {
            for at in (0..n - 16).step_by(16) {
                block::<16>(dst, src, at);
            }
            block::<16>(dst, src, n - 16);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Adjoint of `im2col_2d`.
pub fn col2im_2d(g: &ConvGeometry, col: &[f32], im: &mut [f32]) {
    let out = checked_output(g, im, col);
    col2im_2d_ld(g, col, out[0] * out[1], im);
}

/// Adjoint of `im2col_2d_ld`: reads column rows `ld` values apart.
pub fn col2im_2d_ld(g: &ConvGeometry, col: &[f32], ld: usize, im: &mut [f32]) {
    let out = g.output().expect("col2im: kernel larger than padded input");
    let (h, w) = (g.input[0], g.input[1]);
    let (oh, ow) = (out[0], out[1]);
    let sw = g.stride[1];
    assert!(
        im.len() >= g.image_len() && ld >= oh * ow && col.len() + ld >= g.col_rows() * ld + oh * ow,
        "col2im: buffer too small"
    );
    im[..g.image_len()].fill(0.0);
    let mut r = 0;
    for c in 0..g.channels {
        let plane = &mut im[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kernel[0] {
            for kj in 0..g.kernel[1] {
                let row = &col[r * ld..r * ld + oh * ow];
                r += 1;
                let (xs, ix0) = valid_span(ow, kj, sw, g.pad[1], g.dilation[1], w);
                for (y, src) in row.chunks_exact(ow).enumerate() {
                    let Some(iy) = input_coord(y, ki, g.stride[0], g.pad[0], g.dilation[0], h)
                    else {
                        continue;
                    };
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let inner = &src[xs.clone()];
                    if sw == 1 {
                        dst[ix0..ix0 + inner.len()]
                            .iter_mut()
                            .zip(inner)
                            .for_each(|(d, &v)| *d += v);
                    } else {
                        inner
                            .iter()
                            .enumerate()
                            .for_each(|(i, &v)| dst[ix0 + i * sw] += v);
                    }
                }
            }
        }
    }
}

/// Walks every (column row, output position) pair of an N-D geometry and calls
/// `f(col_index, Some(image_index))`, or `None` for padding.
fn for_each_tap(g: &ConvGeometry, out: &[usize], mut f: impl FnMut(usize, Option<usize>)) {
    let nd = g.input.len();
    let out_len: usize = out.iter().product();
    let kernel_len: usize = g.kernel.iter().product();
    let spatial: usize = g.input.iter().product();
    let mut k_idx = vec![0usize; nd];
    let mut o_idx = vec![0usize; nd];
    for row in 0..g.col_rows() {
        let c = row / kernel_len;
        let mut rem = row % kernel_len;
        for a in (0..nd).rev() {
            k_idx[a] = rem % g.kernel[a];
            rem /= g.kernel[a];
        }
        o_idx.fill(0);
        for o in 0..out_len {
            let mut offset = Some(0usize);
            for a in 0..nd {
                offset = match (
                    offset,
                    input_coord(
                        o_idx[a],
                        k_idx[a],
                        g.stride[a],
                        g.pad[a],
                        g.dilation[a],
                        g.input[a],
                    ),
                ) {
                    (Some(off), Some(x)) => Some(off * g.input[a] + x),
                    _ => None,
                };
            }
            f(row * out_len + o, offset.map(|off| c * spatial + off));
            // Odometer increment over the output grid, last axis fastest.
            for a in (0..nd).rev() {
                o_idx[a] += 1;
                if o_idx[a] < out[a] {
                    break;
                }
                o_idx[a] = 0;
            }
        }
    }
}

/// Any number of spatial axes (including 0 and 1) — Caffe's im2col_nd.
pub fn im2col_nd(g: &ConvGeometry, im: &[f32], col: &mut [f32]) {
    let out = checked_output(g, im, col);
    for_each_tap(g, &out, |ci, ii| col[ci] = ii.map_or(0.0, |i| im[i]));
}

/// Adjoint of `im2col_nd`.
pub fn col2im_nd(g: &ConvGeometry, col: &[f32], im: &mut [f32]) {
    let out = checked_output(g, im, col);
    im[..g.image_len()].fill(0.0);
    for_each_tap(g, &out, |ci, ii| {
        if let Some(i) = ii {
            im[i] += col[ci];
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(
        channels: usize,
        input: &[usize],
        kernel: &[usize],
        pad: &[usize],
        stride: &[usize],
        dil: &[usize],
    ) -> ConvGeometry {
        ConvGeometry {
            channels,
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            pad: pad.to_vec(),
            stride: stride.to_vec(),
            dilation: dil.to_vec(),
        }
    }

    #[test]
    fn column_ranges_equal_the_whole_buffers_columns() {
        // Padding, stride and dilation, ranges that start and end mid-row.
        for (input, k, p, st, d) in [
            ([7, 9], [3, 3], [1, 2], [2, 1], [1, 2]),
            ([11, 10], [4, 2], [0, 1], [3, 2], [1, 1]),
            ([5, 6], [1, 1], [0, 0], [1, 1], [1, 1]),
        ] {
            let g = geom(2, &input, &k, &p, &st, &d);
            let out: usize = g.output().unwrap().iter().product();
            let im: Vec<f32> = (0..g.image_len()).map(|i| i as f32 + 1.0).collect();
            let mut whole = vec![0.0; g.col_rows() * out];
            im2col_2d(&g, &im, &mut whole);
            for (j0, j1) in [
                (0, out),
                (1, out - 1),
                (out / 3, out / 2 + 1),
                (out - 1, out),
            ] {
                let width = j1 - j0;
                let mut part = vec![f32::NAN; g.col_rows() * width];
                im2col_2d_cols(&g, &im, j0, j1, &mut part);
                for r in 0..g.col_rows() {
                    assert_eq!(
                        &part[r * width..(r + 1) * width],
                        &whole[r * out + j0..r * out + j1],
                        "{input:?} k{k:?} p{p:?} s{st:?} d{d:?} row {r} cols {j0}..{j1}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_row_copies_every_length() {
        let src: Vec<f32> = (0..80).map(|i| i as f32 + 0.5).collect();
        for n in 0..80 {
            let mut dst = vec![-1.0; n + 1];
            copy_row(&mut dst[..n], &src[..n]);
            assert_eq!(&dst[..n], &src[..n], "length {n}");
            assert_eq!(dst[n], -1.0, "length {n} wrote past its end");
        }
    }

    #[test]
    fn im2col_2d_by_hand_with_padding() {
        // 1 channel 2x2 image, 2x2 kernel, pad 1, stride 2 → 2x2 output.
        let g = geom(1, &[2, 2], &[2, 2], &[1, 1], &[2, 2], &[1, 1]);
        assert_eq!(g.output().unwrap(), vec![2, 2]);
        let im = [1.0, 2.0, 3.0, 4.0];
        let mut col = vec![9.0; 16];
        im2col(&g, &im, &mut col, false);
        // Tap (0,0) sees image (-1,-1),(−1,1),(1,−1),(1,1): only (1,1)=4 is inside.
        assert_eq!(&col[0..4], &[0.0, 0.0, 0.0, 4.0]);
        assert_eq!(&col[4..8], &[0.0, 0.0, 3.0, 0.0]);
        assert_eq!(&col[8..12], &[0.0, 2.0, 0.0, 0.0]);
        assert_eq!(&col[12..16], &[1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn dilation_spreads_the_taps() {
        // 1x5 image, kernel 1x2 with dilation 3: taps at x and x+3 → 2 outputs.
        let g = geom(1, &[1, 5], &[1, 2], &[0, 0], &[1, 1], &[1, 3]);
        let mut col = vec![0.0; 4];
        im2col(&g, &[1.0, 2.0, 3.0, 4.0, 5.0], &mut col, false);
        assert_eq!(col, [1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn nd_path_agrees_with_2d_path_and_col2im_is_the_adjoint() {
        let g = geom(2, &[5, 6], &[3, 2], &[1, 2], &[2, 1], &[1, 2]);
        let out: usize = g.output().unwrap().iter().product();
        let im: Vec<f32> = (0..g.image_len())
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let mut a = vec![0.0; g.col_rows() * out];
        let mut b = a.clone();
        im2col(&g, &im, &mut a, false);
        im2col(&g, &im, &mut b, true);
        assert_eq!(a, b);
        // <im2col(x), y> == <x, col2im(y)> for any y.
        let y: Vec<f32> = (0..a.len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut back2 = vec![7.0; g.image_len()];
        let mut backn = back2.clone();
        col2im(&g, &y, &mut back2, false);
        col2im(&g, &y, &mut backn, true);
        for (p, q) in back2.iter().zip(&backn) {
            assert!((p - q).abs() < 1e-5);
        }
        let lhs: f64 = a.iter().zip(&y).map(|(p, q)| (p * q) as f64).sum();
        let rhs: f64 = im.iter().zip(&back2).map(|(p, q)| (p * q) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn nd_handles_three_spatial_axes() {
        // 1 channel 2x2x2 cube, 2x2x2 kernel → a single column holding the cube.
        let g = geom(1, &[2, 2, 2], &[2, 2, 2], &[0; 3], &[1; 3], &[1; 3]);
        let im: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut col = vec![0.0; 8];
        im2col(&g, &im, &mut col, false);
        assert_eq!(col, im);
        let mut back = vec![0.0; 8];
        col2im(&g, &col, &mut back, false);
        assert_eq!(back, im);
    }

    #[test]
    fn row_copy_fast_path_agrees_with_nd_walk_over_many_geometries() {
        // The 2-D path computes valid spans in closed form; the N-D walk checks
        // every tap, so they must agree for every pad/stride/dilation mix.
        for (k, p, s, d) in [
            (1, 0, 1, 1),
            (3, 1, 1, 1),
            (3, 2, 2, 1),
            (2, 0, 3, 2),
            (3, 2, 1, 3),
            (5, 4, 2, 1),
            (1, 1, 2, 1),
        ] {
            let g = geom(2, &[5, 7], &[k, k], &[p, p], &[s, s], &[d, d]);
            let Some(out) = g.output() else { continue };
            let len = g.col_rows() * out.iter().product::<usize>();
            let im: Vec<f32> = (0..g.image_len()).map(|i| i as f32 + 1.0).collect();
            let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            im2col(&g, &im, &mut a, false);
            im2col(&g, &im, &mut b, true);
            assert_eq!(a, b, "im2col k{k} p{p} s{s} d{d}");
            let y: Vec<f32> = (0..len).map(|i| (i % 13) as f32).collect();
            let (mut x1, mut x2) = (vec![0.0; im.len()], vec![0.0; im.len()]);
            col2im(&g, &y, &mut x1, false);
            col2im(&g, &y, &mut x2, true);
            assert_eq!(x1, x2, "col2im k{k} p{p} s{s} d{d}");
        }
    }

    #[test]
    fn oversized_kernel_has_no_output() {
        assert!(geom(1, &[3, 3], &[5, 5], &[0, 0], &[1, 1], &[1, 1])
            .output()
            .is_none());
        assert_eq!(
            geom(1, &[3, 3], &[5, 5], &[1, 1], &[1, 1], &[1, 1])
                .output()
                .unwrap(),
            vec![1, 1]
        );
    }
}
