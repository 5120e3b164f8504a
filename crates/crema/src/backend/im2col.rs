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
pub(super) fn valid_span(
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
    im2col_2d_block(g, im, 0..g.col_rows(), 0, out[0] * out[1], col, ld);
}

/// Rows `rows` and columns `j0..j1` (output positions in row-major order)
/// of `im2col_2d`, into rows `ld` values apart. Each row is zeros where a
/// tap falls in the padding and a (strided) copy of one input row in between.
fn im2col_2d_block(
    g: &ConvGeometry,
    im: &[f32],
    rows: std::ops::Range<usize>,
    j0: usize,
    j1: usize,
    col: &mut [f32],
    ld: usize,
) {
    let out = g.output().expect("im2col: kernel larger than padded input");
    let (h, w) = (g.input[0], g.input[1]);
    let (oh, ow) = (out[0], out[1]);
    let (sh, sw) = (g.stride[0], g.stride[1]);
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let width = j1 - j0;
    assert!(
        j0 < j1
            && j1 <= oh * ow
            && ld >= width
            && rows.end <= g.col_rows()
            && im.len() >= g.image_len()
            && col.len() + ld >= rows.len() * ld + width,
        "im2col: buffer too small"
    );
    for (q, r) in rows.enumerate() {
        let (c, tap) = (r / (kh * kw), r % (kh * kw));
        let (ki, kj) = (tap / kw, tap % kw);
        let plane = &im[c * h * w..(c + 1) * h * w];
        let row = &mut col[q * ld..q * ld + width];
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
            fill_run(dst, &plane[iy * w..(iy + 1) * w], xa..xb, &xs, ix0, sw);
        }
    }
}

/// Output columns `cols` of one column-buffer row inside input row `src`:
/// `dst` (one value per column) is zeros where the tap falls in the padding
/// (outside `xs`, whose first column reads `src[ix0]`) and a copy of every
/// `sw`-th input value in between.
#[inline]
fn fill_run(
    dst: &mut [f32],
    src: &[f32],
    cols: std::ops::Range<usize>,
    xs: &std::ops::Range<usize>,
    ix0: usize,
    sw: usize,
) {
    let (xa, xb) = (cols.start, cols.end);
    let (va, vb) = (xs.start.clamp(xa, xb), xs.end.clamp(xa, xb));
    if va > xa {
        dst[..va - xa].fill(0.0);
    }
    if vb < xb {
        dst[vb - xa..].fill(0.0);
    }
    let inner = &mut dst[va - xa..vb - xa];
    if inner.is_empty() {
        return;
    }
    let first = ix0 + (va - xs.start) * sw;
    if sw == 1 {
        copy_row(inner, &src[first..first + inner.len()]);
    } else {
        let taps = src[first..].iter().step_by(sw);
        inner.iter_mut().zip(taps).for_each(|(d, &v)| *d = v);
    }
}

/// A 2-D window's input, kernel, stride, pad and dilation (not its channel
/// count): what the cached strip and col2im tables depend on besides strides
/// in memory.
fn window_key(g: &ConvGeometry) -> [usize; 10] {
    [
        g.input[0],
        g.input[1],
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
        g.dilation[0],
        g.dilation[1],
    ]
}

/// One kernel tap (ky, kx) of `im2col_2d_strips`: its vertical offset, and
/// the output columns whose horizontal tap lands inside the image (from
/// input column `ix0`). Every channel's row for this tap shares it.
struct Tap {
    dy: isize,
    xs: std::ops::Range<usize>,
    ix0: usize,
}

/// A strip's run of columns `xa..xb` of output row `oy` of the image at
/// `base`, from lane `lane` of the strip on.
struct Run {
    base: usize,
    oy: usize,
    xa: usize,
    xb: usize,
    lane: usize,
}

/// One run's part of a kernel tap's strip row: the lanes it fills and the
/// offset, from its channel's plane, of the value lane 0 would read (lane l
/// reads `off + l·sw`; it may lie before the plane, masked-off lanes are
/// never read).
#[derive(Clone, Copy)]
struct Load {
    lanes: u32,
    off: isize,
}

/// What a strip fill needs to know of the geometry, worked out once per call.
struct StripGeometry<'a> {
    /// Per kernel tap, row-major over (ky, kx).
    taps: Vec<Tap>,
    /// Everything a strip's loads depend on besides its columns: the
    /// input, kernel, stride, pad and dilation, and the image stride.
    key: [usize; 12],
    /// The column-buffer rows filled: row r is channel r / taps.len(), tap
    /// r % taps.len().
    rows: std::ops::Range<usize>,
    images: &'a [f32],
    image_stride: usize,
    /// Input height and width, stride, output width and positions per image.
    h: usize,
    w: usize,
    sh: usize,
    sw: usize,
    ow: usize,
    sp: usize,
}

impl<'a> StripGeometry<'a> {
    /// The tap geometry of column-buffer rows `rows` over `images`, whose
    /// columns `cols` the caller will fill (checked to lie inside `images`).
    fn new(
        g: &ConvGeometry,
        images: &'a [f32],
        image_stride: usize,
        rows: std::ops::Range<usize>,
        cols: &std::ops::Range<usize>,
    ) -> Self {
        let out = g.output().expect("im2col: kernel larger than padded input");
        let (h, w) = (g.input[0], g.input[1]);
        let (ow, sp) = (out[1], out[0] * out[1]);
        let (kh, kw) = (g.kernel[0], g.kernel[1]);
        let last_image = cols.end.saturating_sub(1) / sp.max(1);
        assert!(
            rows.end <= g.col_rows()
                && (cols.is_empty() || images.len() >= last_image * image_stride + g.image_len()),
            "im2col: buffer too small"
        );
        let taps = (0..kh * kw)
            .map(|t| {
                let (ki, kj) = (t / kw, t % kw);
                let (xs, ix0) = valid_span(ow, kj, g.stride[1], g.pad[1], g.dilation[1], w);
                Tap {
                    dy: (ki * g.dilation[0]) as isize - g.pad[0] as isize,
                    xs,
                    ix0,
                }
            })
            .collect();
        let mut key = [0; 12];
        key[..10].copy_from_slice(&window_key(g));
        // Outputs per image follow from the rest; kept for clarity.
        (key[10], key[11]) = (image_stride, sp);
        StripGeometry {
            taps,
            key,
            rows,
            images,
            image_stride,
            h,
            w,
            sh: g.stride[0],
            sw: g.stride[1],
            ow,
            sp,
        }
    }

    /// Row r's plane (its channel's first value) and tap.
    fn row(&self, r: usize) -> (usize, &Tap) {
        let kk = self.taps.len();
        ((r / kk) * self.h * self.w, &self.taps[r % kk])
    }

    /// The runs of columns `first..first + live` (a strip's), into `runs`.
    fn runs(&self, first: usize, live: usize, runs: &mut Vec<Run>) {
        runs.clear();
        let (mut a, end) = (first, first + live);
        while a < end {
            let (img, p) = (a / self.sp, a % self.sp);
            let (oy, xa) = (p / self.ow, p % self.ow);
            let xb = self.ow.min(xa + end - a);
            runs.push(Run {
                base: img * self.image_stride,
                oy,
                xa,
                xb,
                lane: a - first,
            });
            a += xb - xa;
        }
    }

    /// The loads of each kernel tap's strip row over `runs`, tap by tap
    /// (`starts[t]..starts[t + 1]`), runs that fall wholly in the padding
    /// left out: what every channel's row of that tap repeats.
    fn loads(&self, runs: &[Run], loads: &mut Vec<Load>, starts: &mut Vec<usize>) {
        loads.clear();
        starts.clear();
        for tap in &self.taps {
            starts.push(loads.len());
            for r in runs {
                let iy = (r.oy * self.sh) as isize + tap.dy;
                let (va, vb) = (tap.xs.start.clamp(r.xa, r.xb), tap.xs.end.clamp(r.xa, r.xb));
                if iy < 0 || iy >= self.h as isize || va >= vb {
                    continue;
                }
                // Lanes l0..l1 take input columns first, first + sw, ...
                let (l0, l1) = (r.lane + va - r.xa, r.lane + vb - r.xa);
                let first = tap.ix0 + (va - tap.xs.start) * self.sw;
                let at = r.base + iy as usize * self.w + first;
                loads.push(Load {
                    lanes: ((1u64 << l1) - (1u64 << l0)) as u32,
                    off: at as isize - (l0 * self.sw) as isize,
                });
            }
        }
        starts.push(loads.len());
    }

    /// One strip: row q (`nr` values) holds row `rows.start + q` at the
    /// columns of `runs` (`live` of them), zero past them.
    /// `runs` are those of columns `first..first + live`.
    fn fill(&self, strip: &mut [f32], first: usize, runs: &[Run], nr: usize, live: usize) {
        #[cfg(target_arch = "x86_64")]
        if (nr == 16 || nr == 32) && is_x86_feature_detected!("avx512f") {
            let mut key = [0; 14];
            key[..12].copy_from_slice(&self.key);
            (key[12], key[13]) = (first, live);
            LOADS.with_borrow_mut(|cache| {
                // Products of a layer repeat the same strips (each depth
                // block of a product, each product of a batch, every
                // iteration): their tables are worked out once.
                if cache.len() >= LOADS_MAX {
                    cache.clear();
                }
                let (loads, starts) = cache.entry(key).or_insert_with(|| {
                    let (mut loads, mut starts) = (Vec::new(), Vec::new());
                    self.loads(runs, &mut loads, &mut starts);
                    (loads, starts)
                });
                // SAFETY: the CPU has AVX-512F; the strip holds a row of nr
                // per row; every load reads inside its image row (checked in
                // `new`), and the key fixes everything the table depends on.
                unsafe { strip_rows_avx512(strip, nr / 16, self, loads, starts) };
            });
            return;
        }
        for (row, r) in strip.chunks_exact_mut(nr).zip(self.rows.clone()) {
            let (plane, tap) = self.row(r);
            for run in runs {
                let dst = &mut row[run.lane..run.lane + run.xb - run.xa];
                let iy = (run.oy * self.sh) as isize + tap.dy;
                if iy < 0 || iy >= self.h as isize {
                    dst.fill(0.0);
                    continue;
                }
                let start = run.base + plane + iy as usize * self.w;
                let src = &self.images[start..start + self.w];
                fill_run(dst, src, run.xa..run.xb, &tap.xs, tap.ix0, self.sw);
            }
            row[live..].fill(0.0);
        }
    }
}

/// A strip's loads and where each tap's start, by `StripGeometry::key`,
/// first column and width.
type LoadCache = std::collections::HashMap<
    [usize; 14],
    (Vec<Load>, Vec<usize>),
    std::hash::BuildHasherDefault<KeyHasher>,
>;

/// A multiply-rotate hash for the cache's small integer keys: SipHash's
/// flood resistance buys nothing here and cost 1 % of LeNet's training.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // An array of integers arrives as its bytes in one call.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for b in words.remainder() {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// Tables kept per thread before the cache starts over (AlexNet's layers
/// take about 1,500 at batch 64).
const LOADS_MAX: usize = 1 << 13;

thread_local! {
    static LOADS: std::cell::RefCell<LoadCache> = std::cell::RefCell::new(LoadCache::default());
}

/// Rows `rows` and columns `cols` of the column buffer of several images side
/// by side (column `j·positions + p` is output position p of image j, whose
/// values start at `images[j·image_stride]`), packed as a GEMM's B operand:
/// strips of `nr` columns, each `rows.len()` steps of `nr` values, zero past
/// the last column. The per-row and per-strip geometry is worked out once per
/// call, so filling narrow strips costs no more per value than whole rows.
#[allow(clippy::too_many_arguments)]
pub fn im2col_2d_strips(
    g: &ConvGeometry,
    images: &[f32],
    image_stride: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    nr: usize,
    dst: &mut [f32],
) {
    let (kc, n) = (rows.len(), cols.len());
    assert!(
        nr > 0 && dst.len() >= n.div_ceil(nr) * nr * kc,
        "im2col: buffer too small"
    );
    let geo = StripGeometry::new(g, images, image_stride, rows, &cols);
    let mut runs: Vec<Run> = Vec::with_capacity(nr + 1);
    for (strip, s0) in dst.chunks_exact_mut(kc * nr).zip((0..n).step_by(nr)) {
        let live = nr.min(n - s0);
        geo.runs(cols.start + s0, live, &mut runs);
        geo.fill(strip, cols.start + s0, &runs, nr, live);
    }
}

thread_local! {
    /// `im2col_2d_strips_t`'s staging: every row's next 16 columns.
    static STAGE_T: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The transpose of `im2col_2d_strips`' block: the columns `cols` of the
/// buffer become the steps and its rows `rows` the strip columns, packed as a
/// GEMM's B operand for `A · colᵀ` (a convolution's weight gradient, whose
/// sum runs over output positions): strips of `nr` rows, each `cols.len()`
/// steps of `nr` values, zero past the last row. 16 columns at a time are
/// filled as 16-wide strips and transposed into place, so the column buffer
/// is never written out.
#[allow(clippy::too_many_arguments)]
pub fn im2col_2d_strips_t(
    g: &ConvGeometry,
    images: &[f32],
    image_stride: usize,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
    nr: usize,
    dst: &mut [f32],
) {
    const B: usize = 16;
    let (kc, n) = (cols.len(), rows.len());
    // Rows padded to whole strips, and to whole 16-row transposes.
    let padded = n.div_ceil(nr) * nr;
    let staged = padded.div_ceil(B) * B;
    assert!(
        nr > 0 && dst.len() >= padded * kc,
        "im2col: buffer too small"
    );
    let geo = StripGeometry::new(g, images, image_stride, rows, &cols);
    #[cfg(target_arch = "x86_64")]
    let fast = nr.is_multiple_of(B) && is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let fast = false;
    STAGE_T.with_borrow_mut(|stage| {
        if stage.len() < staged * B {
            stage.resize(staged * B, 0.0);
        }
        // Rows past the last stay zero: `fill` writes only rows with a tap.
        stage[n * B..staged * B].fill(0.0);
        let mut runs: Vec<Run> = Vec::with_capacity(B + 1);
        for p0 in (0..kc).step_by(B) {
            let live = B.min(kc - p0);
            geo.runs(cols.start + p0, live, &mut runs);
            geo.fill(&mut stage[..n * B], cols.start + p0, &runs, B, live);
            if fast && live == B {
                for j0 in (0..padded).step_by(B) {
                    let at = (j0 / nr) * kc * nr + p0 * nr + j0 % nr;
                    // SAFETY: AVX-512F is present; 16 staged rows of 16 at
                    // j0, and 16 steps of nr from `at` lie inside dst.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        super::mmm::transpose16(
                            stage.as_ptr().add(j0 * B),
                            B,
                            dst.as_mut_ptr().add(at),
                            nr,
                        )
                    };
                }
                continue;
            }
            for j in 0..padded {
                let strip = &mut dst[(j / nr) * kc * nr + j % nr..];
                for p in 0..live {
                    strip[(p0 + p) * nr] = stage[j * B + p];
                }
            }
        }
    });
}

/// The rows of one strip of 16·`regs` columns: each row is `regs` registers
/// built by one masked load per load of its tap (`loads`: a masked gather at
/// strides over 1, AlexNet conv1's 4), where lanes whose tap falls in the
/// padding, and lanes past the last column, stay zero; then stored whole.
/// The channels of one tap repeat its loads from their own planes, so the
/// window arithmetic is done once per tap and strip, not once per row.
///
/// Safety: the CPU has AVX-512F; `regs` is 1 or 2; `strip` holds a row of
/// 16·`regs` per row of `geo`; `loads`/`starts` are `geo.loads` of the
/// strip's runs, which read inside the images.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn strip_rows_avx512(
    strip: &mut [f32],
    regs: usize,
    geo: &StripGeometry,
    loads: &[Load],
    starts: &[usize],
) {
    use std::arch::x86_64::*;
    let (sw, images) = (geo.sw, geo.images);
    let width = 16 * regs;
    assert!(
        (regs == 1 || regs == 2)
            && strip.len() >= geo.rows.len() * width
            && starts.len() == geo.taps.len() + 1
            && sw * 32 < i32::MAX as usize
    );
    // Lane l of a gather reads base[l·sw].
    let lanes = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(sw as i32),
    );
    let kk = geo.taps.len();
    for (q, r) in geo.rows.clone().enumerate() {
        let (plane, t) = ((r / kk) * geo.h * geo.w, r % kk);
        let base = images.as_ptr().wrapping_add(plane);
        let mut v = [_mm512_setzero_ps(); 2];
        for ld in &loads[starts[t]..starts[t + 1]] {
            let p = base.wrapping_offset(ld.off);
            let (lo, hi) = (ld.lanes as u16, (ld.lanes >> 16) as u16);
            // Masked-off lanes are not read, so p may point before the row.
            if sw == 1 {
                v[0] = _mm512_mask_loadu_ps(v[0], lo, p);
                if regs == 2 {
                    v[1] = _mm512_mask_loadu_ps(v[1], hi, p.wrapping_add(16));
                }
            } else {
                v[0] = _mm512_mask_i32gather_ps::<4>(v[0], lo, lanes, p);
                if regs == 2 {
                    v[1] = _mm512_mask_i32gather_ps::<4>(v[1], hi, lanes, p.wrapping_add(16 * sw));
                }
            }
        }
        let d = strip.as_mut_ptr().add(q * width);
        _mm512_storeu_ps(d, v[0]);
        if regs == 2 {
            _mm512_storeu_ps(d.add(16), v[1]);
        }
    }
}

/// `dst.copy_from_slice(src)` for the short rows of small feature maps
/// (LeNet's 8, AlexNet's 13 and 27): fixed-size moves, the last one
/// overlapping the one before, where a `memcpy` call per row would cost more
/// than the copy.
#[inline]
pub(super) fn copy_row(dst: &mut [f32], src: &[f32]) {
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
    #[cfg(target_arch = "x86_64")]
    if sw == 1 && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the lengths were checked above.
        return unsafe { col2im_2d_avx512(g, col, ld, im) };
    }
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

/// One term of `col2im_2d_avx512`: a column-buffer run, from its channel's
/// first row, whose lanes land on one 16-column block of an input row.
#[derive(Clone, Copy)]
struct Term {
    off: usize,
    lanes: u16,
}

/// `col2im_2d_avx512`'s terms and block starts, and the window and row
/// stride they were worked out for: the images of a batch reuse them.
#[derive(Default)]
struct Terms {
    /// `window_key` and the row stride.
    of: Option<([usize; 10], usize)>,
    terms: Vec<Term>,
    starts: Vec<usize>,
}

thread_local! {
    static TERMS: std::cell::RefCell<Terms> = std::cell::RefCell::new(Terms::default());
}

/// `col2im_2d_ld` at stride 1 with AVX-512: every 16-column block of an
/// input row is summed in a register over the terms that reach it (one
/// masked load of a column-buffer row each, shifted into place) and stored
/// once, instead of a read-modify-write of the row per tap. The terms of
/// each block are worked out once per call, for every channel: their
/// geometry does not depend on it. A value receives its terms in the
/// scalar loop's order (vertical tap, then horizontal) from +0, so the bits
/// are the same.
///
/// Safety: the CPU has AVX-512F; the stride is 1 across; the lengths are as
/// `col2im_2d_ld` checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_2d_avx512(g: &ConvGeometry, col: &[f32], ld: usize, im: &mut [f32]) {
    use std::arch::x86_64::*;
    let (h, w) = (g.input[0], g.input[1]);
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    TERMS.with_borrow_mut(|cache| {
        // The channel count does not change the terms.
        let of = (window_key(g), ld);
        let Terms {
            of: held,
            terms,
            starts,
        } = cache;
        if held.as_ref() != Some(&of) {
            col2im_terms(g, ld, terms, starts);
            *held = Some(of);
        }
        let blocks = w.div_ceil(16);
        for c in 0..g.channels {
            let rows = col.as_ptr().add(c * kh * kw * ld);
            let plane = im.as_mut_ptr().add(c * h * w);
            for (b, span) in starts.windows(2).enumerate() {
                let (iy, x0) = (b / blocks, (b % blocks) * 16);
                let mut acc = _mm512_setzero_ps();
                for t in &terms[span[0]..span[1]] {
                    // Masked-off lanes are not read.
                    let v = _mm512_maskz_loadu_ps(t.lanes, rows.wrapping_add(t.off));
                    acc = _mm512_mask_add_ps(acc, t.lanes, acc, v);
                }
                let keep = ((1u32 << (w - x0).min(16)) - 1) as __mmask16;
                _mm512_mask_storeu_ps(plane.add(iy * w + x0), keep, acc);
            }
        }
    });
}

/// The terms of every 16-column block of every input row (`starts[b]..
/// starts[b + 1]` for block b, row-major), in the scalar loop's order.
fn col2im_terms(g: &ConvGeometry, ld: usize, terms: &mut Vec<Term>, starts: &mut Vec<usize>) {
    let out = g.output().expect("col2im: kernel larger than padded input");
    let (h, w) = (g.input[0], g.input[1]);
    let (oh, ow) = (out[0], out[1]);
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    // Per horizontal tap: the outputs inside the image and the input column
    // the first of them reads (stride 1).
    let spans: Vec<_> = (0..kw)
        .map(|kj| valid_span(ow, kj, 1, g.pad[1], g.dilation[1], w))
        .collect();
    {
        terms.clear();
        starts.clear();
        for iy in 0..h {
            for x0 in (0..w).step_by(16) {
                starts.push(terms.len());
                for ki in 0..kh {
                    // The output row whose tap ki lands on input row iy.
                    let Some(oy) = (iy + g.pad[0])
                        .checked_sub(ki * g.dilation[0])
                        .filter(|d| d % g.stride[0] == 0)
                        .map(|d| d / g.stride[0])
                        .filter(|&oy| oy < oh)
                    else {
                        continue;
                    };
                    for (kj, (xs, ix0)) in spans.iter().enumerate() {
                        let (xs, ix0) = (xs.clone(), *ix0);
                        let (lo, hi) = (ix0.max(x0), (ix0 + xs.len()).min(x0 + 16));
                        if lo >= hi {
                            continue;
                        }
                        // Lane l (column x0 + l) reads output x0 + l - ix0 + xs.start;
                        // the run starts at lane 0's, which may lie before the row.
                        terms.push(Term {
                            off: (ki * kw + kj) * ld + oy * ow + xs.start + x0 - ix0,
                            lanes: (((1u32 << (hi - x0)) - (1u32 << (lo - x0))) & 0xffff) as u16,
                        });
                    }
                }
            }
        }
        starts.push(terms.len());
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
    fn row_and_column_blocks_equal_the_whole_buffers_block() {
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
            let rows = g.col_rows();
            for (j0, j1) in [
                (0, out),
                (1, out - 1),
                (out / 3, out / 2 + 1),
                (out - 1, out),
            ] {
                for (r0, r1) in [(0, rows), (1, rows - 1), (rows / 2, rows / 2 + 1)] {
                    // Rows `ld` apart with a gap after each, as in a packed strip.
                    let (width, ld) = (j1 - j0, j1 - j0 + 3);
                    let mut part = vec![f32::NAN; (r1 - r0) * ld];
                    im2col_2d_block(&g, &im, r0..r1, j0, j1, &mut part, ld);
                    for r in r0..r1 {
                        let q = r - r0;
                        assert_eq!(
                            &part[q * ld..q * ld + width],
                            &whole[r * out + j0..r * out + j1],
                            "{input:?} k{k:?} p{p:?} s{st:?} d{d:?} row {r} cols {j0}..{j1}"
                        );
                        assert!(part[q * ld + width..(q + 1) * ld]
                            .iter()
                            .all(|v| v.is_nan()));
                    }
                }
            }
        }
    }

    /// Three images of `g`, `stride` values apart (5 past each image's
    /// end), and each one's column buffer from `im2col_2d`.
    fn images_and_columns(g: &ConvGeometry) -> (usize, usize, Vec<f32>, Vec<Vec<f32>>) {
        let sp: usize = g.output().unwrap().iter().product();
        let (imgs, stride) = (3, g.image_len() + 5);
        let images: Vec<f32> = (0..imgs * stride).map(|i| i as f32 + 1.0).collect();
        let wholes = (0..imgs)
            .map(|j| {
                let mut col = vec![0.0; g.col_rows() * sp];
                im2col_2d(g, &images[j * stride..], &mut col);
                col
            })
            .collect();
        (imgs, stride, images, wholes)
    }

    #[test]
    fn strips_equal_the_column_buffers_of_images_side_by_side() {
        for (input, k, p, st, d) in [
            ([7, 9], [3, 3], [1, 2], [1, 1], [1, 2]),
            ([11, 10], [4, 2], [0, 1], [3, 2], [1, 1]),
            ([4, 3], [3, 3], [1, 1], [1, 1], [1, 1]),
        ] {
            let g = geom(2, &input, &k, &p, &st, &d);
            let sp: usize = g.output().unwrap().iter().product();
            let (imgs, stride, images, wholes) = images_and_columns(&g);
            let rows = g.col_rows();
            for nr in [8, 32] {
                for (r0, r1, c0, c1) in [(0, rows, 0, imgs * sp), (1, rows - 1, sp - 1, 2 * sp + 3)]
                {
                    let (kc, n) = (r1 - r0, c1 - c0);
                    let mut dst = vec![f32::NAN; n.div_ceil(nr) * nr * kc];
                    im2col_2d_strips(&g, &images, stride, r0..r1, c0..c1, nr, &mut dst);
                    for (i, v) in dst.iter().enumerate() {
                        let (strip, q, lane) = (i / (kc * nr), i / nr % kc, i % nr);
                        let col = c0 + strip * nr + lane;
                        let want = if col < c1 {
                            wholes[col / sp][(r0 + q) * sp + col % sp]
                        } else {
                            0.0
                        };
                        assert_eq!(v.to_bits(), want.to_bits(), "{input:?} nr {nr} value {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn transposed_strips_equal_the_column_buffers_transpose() {
        for (ch, input, k, p, st, d) in [
            (2, [7, 9], [3, 3], [1, 2], [1, 1], [1, 2]),
            (5, [11, 10], [4, 2], [0, 1], [3, 2], [1, 1]),
            (5, [12, 12], [3, 3], [1, 1], [1, 1], [1, 1]),
            (3, [23, 23], [5, 5], [2, 2], [4, 4], [1, 1]),
        ] {
            let g = geom(ch, &input, &k, &p, &st, &d);
            let sp: usize = g.output().unwrap().iter().product();
            let (imgs, stride, images, wholes) = images_and_columns(&g);
            let rows = g.col_rows();
            for nr in [8, 16, 32] {
                // (first column, end column, first row, end row)
                for (c0, c1, r0, r1) in [(0, imgs * sp, 0, rows), (sp - 1, 2 * sp + 3, 1, rows - 1)]
                {
                    let (kc, n) = (c1 - c0, r1 - r0);
                    let mut dst = vec![f32::NAN; n.div_ceil(nr) * nr * kc];
                    im2col_2d_strips_t(&g, &images, stride, c0..c1, r0..r1, nr, &mut dst);
                    for (i, v) in dst.iter().enumerate() {
                        let (strip, q, lane) = (i / (kc * nr), i / nr % kc, i % nr);
                        let (row, col) = (r0 + strip * nr + lane, c0 + q);
                        let want = if row < r1 {
                            wholes[col / sp][row * sp + col % sp]
                        } else {
                            0.0
                        };
                        assert_eq!(v.to_bits(), want.to_bits(), "{input:?} nr {nr} value {i}");
                    }
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
    fn col2im_2d_adds_in_the_nd_walks_order_bit_for_bit() {
        // Rows wider than a register (16), padding, dilation and both
        // strides, rows `ld` apart; values that round differently in
        // another order.
        for (input, k, p, s, d) in [
            ([6, 37], [3, 5], [1, 2], [1, 1], [1, 1]),
            ([9, 20], [3, 3], [2, 4], [1, 1], [2, 3]),
            ([12, 12], [5, 5], [0, 0], [1, 1], [1, 1]),
            ([11, 33], [4, 3], [1, 1], [2, 2], [1, 1]),
            ([7, 16], [2, 2], [0, 1], [1, 1], [1, 1]),
        ] {
            let g = geom(3, &input, &k, &p, &s, &d);
            let sp: usize = g.output().unwrap().iter().product();
            let len = g.col_rows() * sp;
            let y: Vec<f32> = (0..len).map(|i| (i as f32 * 0.73).sin() * 1e3).collect();
            let (mut x2, mut xn) = (vec![7.0; g.image_len()], vec![7.0; g.image_len()]);
            col2im(&g, &y, &mut x2, false);
            col2im(&g, &y, &mut xn, true);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&x2),
                bits(&xn),
                "{input:?} k{k:?} p{p:?} s{s:?} d{d:?}"
            );
            // The same columns inside a wider buffer (rows sp + 5 apart).
            let ld = sp + 5;
            let mut wide = vec![f32::NAN; g.col_rows() * ld];
            for (r, row) in y.chunks(sp).enumerate() {
                wide[r * ld..r * ld + sp].copy_from_slice(row);
            }
            let mut xl = vec![7.0; g.image_len()];
            col2im_2d_ld(&g, &wide, ld, &mut xl);
            assert_eq!(bits(&xl), bits(&xn), "{input:?} with ld {ld}");
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
