//! Shifted planes: a convolution input laid out so that every row of its
//! column buffer is one contiguous run, for windows with vertical stride 1.
//! The weight gradient becomes dot products of runs (no column buffer, no
//! transposes, no packing), and the forward a product that reads B's rows
//! in place (`with_planes`, `gemm::sgemm_packed_rows`), and batched
//! products pack their strips by copying or transposing runs (`RunCols`).
//! `ConvGemm::shifted` and `ConvGemm::forward_planes` take them where that
//! wins (few output channels, small planes: LeNet's conv1).
//!
//! Per image, `ShiftedPlanes` copies each channel once per kernel column kx,
//! shifted by kx (and by the padding), `OW` values wide and `H + 2·pad_h` rows
//! tall. Then the column-buffer row of tap (c, ky, kx), over all `OH·OW`
//! output positions, is one contiguous run of those planes starting `ky·dh`
//! rows down, and
//!
//! `dW[o][c, ky, kx] += Σ_images Σ_q dy[o][q] · planes[kx][c][ky·dh·OW + q]`
//!
//! is a dot product of two contiguous runs. The GEMM form of the same sum
//! (K = output positions) has to transpose one of its operands into steps;
//! here 16 positions sit in a register and 5 output channels × 5 taps are
//! summed at once (25 of the 32 registers), each product a multiply-add.
use super::im2col::{copy_row, valid_span, ConvGeometry};

/// The shifted planes' geometry for one convolution input.
#[derive(Clone, Copy, Debug)]
pub struct ShiftedPlanes {
    channels: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    pad_h: usize,
    pad_w: usize,
    dil_h: usize,
    dil_w: usize,
    stride_w: usize,
    /// Rows per plane: the padded input height.
    rows: usize,
    oh: usize,
    ow: usize,
}

/// Output channels and taps summed per block (5 × 5 accumulators).
const MB: usize = 5;
const NB: usize = 5;
/// Positions per register.
const L: usize = 16;
/// Values of one channel's planes and a block's dy rows that a pass over a
/// block of images keeps in L1 (24 KiB of the 48).
const L1_VALUES: usize = 6 << 10;

impl ShiftedPlanes {
    /// The planes for `g`, if it is 2-D with vertical stride 1 and has output.
    pub fn new(g: &ConvGeometry) -> Option<Self> {
        if g.input.len() != 2 || g.stride[0] != 1 {
            return None;
        }
        let out = g.output()?;
        Some(ShiftedPlanes {
            channels: g.channels,
            h: g.input[0],
            w: g.input[1],
            kh: g.kernel[0],
            kw: g.kernel[1],
            pad_h: g.pad[0],
            pad_w: g.pad[1],
            dil_h: g.dilation[0],
            dil_w: g.dilation[1],
            stride_w: g.stride[1],
            rows: g.input[0] + 2 * g.pad[0],
            oh: out[0],
            ow: out[1],
        })
    }

    /// Values of one channel's planes (one per kernel column).
    fn channel_len(&self) -> usize {
        self.kw * self.rows * self.ow
    }

    /// Output positions per image: the length of every dot product.
    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Values of one image's planes (all channels, channel by channel).
    pub fn image_len(&self) -> usize {
        self.channels * self.channel_len()
    }

    /// Where tap (ky, kx) of a channel starts in the channel's planes.
    fn tap_offset(&self, ky: usize, kx: usize) -> usize {
        (kx * self.rows + ky * self.dil_h) * self.ow
    }

    /// Writes the planes of one `h × w` input channel `src` into `dst`: plane
    /// kx, row r, column x holds input (r − pad_h, x·stride_w + kx·dil_w −
    /// pad_w), or 0 in the padding.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        let (ow, plane) = (self.ow, self.rows * self.ow);
        let src = &src[..self.h * self.w];
        #[cfg(target_arch = "x86_64")]
        if self.stride_w == 1 && fast() {
            let dst = &mut dst[..self.channel_len()];
            // SAFETY: AVX-512F is present; the slices are the lengths asserted there.
            return unsafe { self.fill_avx512(src, dst) };
        }
        for (kx, p) in dst[..self.channel_len()]
            .chunks_exact_mut(plane)
            .enumerate()
        {
            let (xs, ix0) = valid_span(ow, kx, self.stride_w, self.pad_w, self.dil_w, self.w);
            for (r, row) in p.chunks_exact_mut(ow).enumerate() {
                let iy = r as isize - self.pad_h as isize;
                if iy < 0 || iy >= self.h as isize {
                    row.fill(0.0);
                    continue;
                }
                let line = &src[iy as usize * self.w..][..self.w];
                row[..xs.start].fill(0.0);
                row[xs.end..].fill(0.0);
                let inner = &mut row[xs.clone()];
                if self.stride_w == 1 {
                    copy_row(inner, &line[ix0..ix0 + inner.len()]);
                } else {
                    let taps = line[ix0..].iter().step_by(self.stride_w);
                    inner.iter_mut().zip(taps).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }
}

impl ShiftedPlanes {
    /// `fill` at horizontal stride 1: each row of 16 plane values is one
    /// masked load (lanes in the padding not read, left zero) and one store.
    /// The row loop with its slice copies and zero fills cost 2.4x as much:
    /// 11 % of LeNet conv2's time at one thread, this 5 %.
    ///
    /// Safety: the CPU has AVX-512F; `src` is one `h × w` channel and `dst`
    /// its `channel_len()` plane values.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_avx512(&self, src: &[f32], dst: &mut [f32]) {
        use std::arch::x86_64::*;
        assert!(self.stride_w == 1 && src.len() == self.h * self.w);
        assert_eq!(dst.len(), self.channel_len());
        let ow = self.ow;
        let d = dst.as_mut_ptr();
        for kx in 0..self.kw {
            let (xs, ix0) = valid_span(ow, kx, 1, self.pad_w, self.dil_w, self.w);
            // Plane column x reads input column x + shift (inside xs only).
            let shift = ix0 as isize - xs.start as isize;
            for x0 in (0..ow).step_by(16) {
                let lanes = 16.min(ow - x0);
                let store = ((1u32 << lanes) - 1) as __mmask16;
                let (lo, hi) = (xs.start.clamp(x0, x0 + lanes), xs.end.clamp(x0, x0 + lanes));
                let live = (((1u32 << (hi - x0)) - 1) & !((1u32 << (lo - x0)) - 1)) as __mmask16;
                for r in 0..self.rows {
                    let at = d.add((kx * self.rows + r) * ow + x0);
                    let iy = r as isize - self.pad_h as isize;
                    let v = if iy < 0 || iy >= self.h as isize {
                        _mm512_setzero_ps()
                    } else {
                        // Masked-off lanes are not read, so this may point
                        // before the row.
                        let p = src
                            .as_ptr()
                            .wrapping_offset(iy * self.w as isize + shift + x0 as isize);
                        _mm512_maskz_loadu_ps(live, p)
                    };
                    _mm512_mask_storeu_ps(at, store, v);
                }
            }
        }
    }
}

/// This thread's buffers, kept between calls: one channel's planes for a
/// block of images (or one image's, all channels), the partial sums (16
/// lanes per weight) of the channel's weights, and the taps' offsets.
#[derive(Default)]
struct Buffers {
    planes: Vec<f32>,
    partials: Vec<f32>,
    offsets: Vec<usize>,
}

/// Values read past the last plane: a product over the planes reads whole
/// register tiles (`gemm::sgemm_packed_rows`).
const SLACK: usize = 64;

/// Calls `f(planes, offsets, group_len)` with the planes of `imgs`
/// `channels × h × w` images, image j at `images[j·in_stride..]` (their
/// column buffers, every row of one image's a run of `OH·OW` values): image
/// j's planes start at `j·sp.image_len()`, `offsets` says where each tap of
/// one group's channels starts, in the weights' order (c, ky, kx), from its
/// group's first plane, and group g's planes start at `g·group_len` within
/// an image's.
pub fn with_planes<R>(
    sp: &ShiftedPlanes,
    group: usize,
    images: &[f32],
    in_stride: usize,
    imgs: usize,
    f: impl FnOnce(&[f32], &[usize], usize) -> R,
) -> R {
    let (clen, plane_len) = (sp.channel_len(), sp.h * sp.w);
    assert!(
        imgs > 0 && images.len() >= (imgs - 1) * in_stride + sp.channels * plane_len,
        "shifted planes: images too small"
    );
    BUFFERS.with_borrow_mut(|bufs| {
        let Buffers {
            planes, offsets, ..
        } = bufs;
        let len = imgs * sp.image_len() + SLACK;
        if planes.len() < len {
            planes.resize(len, 0.0);
        }
        for j in 0..imgs {
            let (im, dst) = (&images[j * in_stride..], &mut planes[j * sp.image_len()..]);
            for c in 0..sp.channels {
                sp.fill(&im[c * plane_len..], &mut dst[c * clen..]);
            }
        }
        let cg = sp.channels / group;
        offsets.clear();
        for c in 0..cg {
            for ky in 0..sp.kh {
                for kx in 0..sp.kw {
                    offsets.push(c * clen + sp.tap_offset(ky, kx));
                }
            }
        }
        f(&planes[..len], offsets, cg * clen)
    })
}

/// A convolution's column buffer over shifted planes (`with_planes`),
/// images side by side: row k of image i's columns is the run of
/// `positions` values at `planes[i·image_len + offs[k]..]`. The GEMM packs
/// its B strips from it by copying runs (`pack`: the forward, where the
/// kernel cannot read the rows in place) or transposing 16 of them at a
/// time (`pack_t`: the weight gradient), where the image-side packing
/// (`ImplicitCols`) masks and stages every row.
#[derive(Clone, Copy)]
pub struct RunCols<'a> {
    pub planes: &'a [f32],
    /// Values of one image's planes.
    pub image_len: usize,
    /// Where each row's run starts in an image's planes (one per row).
    pub offs: &'a [usize],
    /// Output positions per image: the length of every run.
    pub positions: usize,
    /// The first column this operand starts at.
    pub col0: usize,
}

/// Sixteen zeros: the row a transpose reads for strip columns past the last.
static ZEROS: [f32; 16] = [0.0; 16];

impl RunCols<'_> {
    /// Rows of the column buffer.
    pub fn rows(&self) -> usize {
        self.offs.len()
    }

    /// Whether the planes hold columns `col0..col0 + cols` of every row.
    pub fn covers(&self, cols: usize) -> bool {
        let last = (self.col0 + cols).saturating_sub(1) / self.positions.max(1);
        let reach = self.offs.iter().max().map_or(0, |&o| o + self.positions);
        self.positions > 0 && self.planes.len() >= last * self.image_len + reach
    }

    /// Index in `planes` of row k, column j (from `col0`).
    fn at(&self, k: usize, j: usize) -> usize {
        let c = self.col0 + j;
        (c / self.positions) * self.image_len + self.offs[k] + c % self.positions
    }

    /// Rows `k0..k0 + kc`, columns `j0..j0 + nc` packed like `pack_b`:
    /// strips of `nr` columns, each `kc` steps of `nr` values, zero past
    /// the last column. A strip inside one image copies each row's run.
    pub fn pack(&self, nr: usize, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        assert!(dst.len() >= nc.div_ceil(nr) * nr * kc && self.covers(j0 + nc));
        for (s, strip) in dst
            .chunks_exact_mut(kc * nr)
            .take(nc.div_ceil(nr))
            .enumerate()
        {
            let j = j0 + s * nr;
            let w = nr.min(j0 + nc - j);
            let whole = w == nr && (self.col0 + j) % self.positions + nr <= self.positions;
            // Column j's offset in its image's planes, less its row's run start.
            let base = self.at(0, j) - self.offs[0];
            let offs = &self.offs[k0..k0 + kc];
            for (r, row) in strip.chunks_exact_mut(nr).enumerate() {
                if whole {
                    let at = base + offs[r];
                    copy_row(row, &self.planes[at..at + nr]);
                } else {
                    for (jj, v) in row.iter_mut().enumerate() {
                        *v = if jj < w {
                            self.planes[self.at(k0 + r, j + jj)]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    /// Steps `k0..k0 + kc` and columns `j0..j0 + nc` of op(B) = colsᵀ from
    /// row `row0` (a weight gradient's B: steps are positions, columns are
    /// taps), packed like `pack_b`. Where 16 steps lie in one image, 16 taps'
    /// runs are transposed in registers.
    #[allow(clippy::too_many_arguments)]
    pub fn pack_t(
        &self,
        row0: usize,
        nr: usize,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        dst: &mut [f32],
    ) {
        let padded = nc.div_ceil(nr) * nr;
        assert!(dst.len() >= padded * kc && row0 + j0 + nc <= self.rows() && self.covers(k0 + kc));
        #[cfg(target_arch = "x86_64")]
        let fast = nr % 16 == 0 && is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        let mut p = 0;
        while p < kc {
            let c = self.col0 + k0 + p;
            if fast && p + 16 <= kc && c % self.positions + 16 <= self.positions {
                // The 16 steps' offset in their image's planes, less a run start.
                let base = self.at(0, k0 + p) - self.offs[0];
                let offs = &self.offs[row0 + j0..row0 + j0 + nc];
                let planes = &self.planes[base..];
                for t0 in (0..padded).step_by(16) {
                    let rows: [*const f32; 16] = std::array::from_fn(|t| match offs.get(t0 + t) {
                        Some(&o) => planes[o..o + 16].as_ptr(),
                        None => ZEROS.as_ptr(),
                    });
                    let at = (t0 / nr) * kc * nr + p * nr + t0 % nr;
                    // SAFETY: AVX-512F is present; each row pointer has 16
                    // values (the 16 steps lie in one image's runs, or ZEROS);
                    // 16 rows of nr from `at` lie inside dst (asserted above).
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        crate::backend::mmm::transpose16_rows(rows, dst[at..].as_mut_ptr(), nr)
                    };
                }
                p += 16;
                continue;
            }
            for t in 0..padded {
                dst[(t / nr) * kc * nr + p * nr + t % nr] = if t < nc {
                    self.planes[self.at(row0 + j0 + t, k0 + p)]
                } else {
                    0.0
                };
            }
            p += 1;
        }
    }
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// `wdiff += dy ⊗ columns(input)` for `imgs` images: the weight gradient of a
/// convolution with `group` groups over the window `g` (whose `channels` is
/// all groups' input channels), where image j's input starts at
/// `input[j·in_stride]` and its output diff (`out_channels × OH·OW`) at
/// `dy[j·dy_stride]`; `wdiff` is `[out_channels][channels/group · kh · kw]`.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad_shifted(
    sp: &ShiftedPlanes,
    group: usize,
    out_channels: usize,
    input: &[f32],
    in_stride: usize,
    dy: &[f32],
    dy_stride: usize,
    imgs: usize,
    wdiff: &mut [f32],
) {
    let args = (group, out_channels, input, in_stride, dy, dy_stride, imgs);
    weight_grad_with(kernel(), sp, args, wdiff)
}

/// `weight_grad_shifted`'s arguments after the planes, before the diff.
type GradArgs<'a> = (usize, usize, &'a [f32], usize, &'a [f32], usize, usize);

/// `weight_grad_shifted` with the kernel `kernel`. Channel by channel: its
/// weights' partial sums stay in a buffer while the images pass in blocks
/// whose planes and dy rows fit in L1, and are summed across lanes once.
fn weight_grad_with(kernel: DotsFn, sp: &ShiftedPlanes, args: GradArgs, wdiff: &mut [f32]) {
    let (group, out_channels, input, in_stride, dy, dy_stride, imgs) = args;
    let s = sp.positions();
    let (og, cg, kk) = (out_channels / group, sp.channels / group, sp.kh * sp.kw);
    let plane_len = sp.h * sp.w;
    assert!(
        imgs == 0
            || (input.len() >= (imgs - 1) * in_stride + sp.channels * plane_len
                && dy.len() >= (imgs - 1) * dy_stride + out_channels * s
                && wdiff.len() >= out_channels * cg * kk),
        "weight gradient: buffer too small"
    );
    let clen = sp.channel_len();
    let block = (L1_VALUES / (clen + MB * s).max(1)).clamp(1, imgs.max(1));
    BUFFERS.with_borrow_mut(|bufs| {
        // The kernels read each run exactly (tails masked): no slack.
        if bufs.planes.len() < block * clen {
            bufs.planes.resize(block * clen, 0.0);
        }
        if bufs.partials.len() < og * kk * L {
            bufs.partials.resize(og * kk * L, 0.0);
        }
        let Buffers {
            planes, partials, ..
        } = bufs;
        for g in 0..group {
            for c in g * cg..(g + 1) * cg {
                partials[..og * kk * L].fill(0.0);
                for j0 in (0..imgs).step_by(block) {
                    let n = block.min(imgs - j0);
                    for j in 0..n {
                        let src = &input[(j0 + j) * in_stride + c * plane_len..];
                        sp.fill(src, &mut planes[j * clen..]);
                    }
                    for o0 in (0..og).step_by(MB) {
                        for t0 in (0..kk).step_by(NB) {
                            let nb = NB.min(kk - t0);
                            let mut offs = [0usize; NB];
                            for (k, o) in offs.iter_mut().take(nb).enumerate() {
                                *o = sp.tap_offset((t0 + k) / sp.kw, (t0 + k) % sp.kw);
                            }
                            let run = Runs {
                                dy: dy[j0 * dy_stride + (g * og + o0) * s..].as_ptr(),
                                dy_row: s,
                                dy_img: dy_stride,
                                planes: planes.as_ptr(),
                                offs,
                                p_img: clen,
                                imgs: n,
                                len: s,
                            };
                            let acc = partials[(o0 * kk + t0) * L..].as_mut_ptr();
                            // SAFETY: the assert above bounds every run of dy;
                            // every tap's run lies in its image's planes; the
                            // partials hold MB rows of kk·L from (o0, t0).
                            unsafe { kernel(&run, MB.min(og - o0), nb, acc, kk * L) };
                        }
                    }
                }
                let cols = (c - g * cg) * kk;
                for (o, sums) in partials[..og * kk * L].chunks_exact(kk * L).enumerate() {
                    let row = &mut wdiff[(g * og + o) * cg * kk + cols..][..kk];
                    for (w, lanes) in row.iter_mut().zip(sums.chunks_exact(L)) {
                        *w += lanes.iter().sum::<f32>();
                    }
                }
            }
        }
    });
}

/// One block's operands: `mb` rows of dy (`dy_row` apart, `dy_img` per image)
/// and `nb` taps' runs (`offs` into each image's planes, `p_img` apart), each
/// `len` values long, over `imgs` images.
struct Runs {
    dy: *const f32,
    dy_row: usize,
    dy_img: usize,
    planes: *const f32,
    offs: [usize; NB],
    p_img: usize,
    imgs: usize,
    len: usize,
}

/// `acc[i·ld + k·16 + l] += Σ lane l of dy row i · tap k's run` for i < mb,
/// k < nb: 16 partial sums per pair, by position mod 16.
type DotsFn = unsafe fn(&Runs, usize, usize, *mut f32, usize);

/// The AVX-512 kernel where the CPU has it, else the portable one.
fn kernel() -> DotsFn {
    #[cfg(target_arch = "x86_64")]
    if fast() {
        return dots_avx512;
    }
    dots_portable
}

/// Whether this CPU runs the vector kernel (where the shifted path beats the
/// packed GEMM).
pub fn fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return true;
    }
    false
}

/// The portable kernel: the same sums in the same lanes.
///
/// Safety: as `DotsFn` (see `weight_grad_with`).
unsafe fn dots_portable(r: &Runs, mb: usize, nb: usize, acc: *mut f32, ld: usize) {
    for i in 0..mb {
        for k in 0..nb {
            let lanes = std::slice::from_raw_parts_mut(acc.add(i * ld + k * L), L);
            for j in 0..r.imgs {
                let d = std::slice::from_raw_parts(r.dy.add(j * r.dy_img + i * r.dy_row), r.len);
                let p = std::slice::from_raw_parts(r.planes.add(j * r.p_img + r.offs[k]), r.len);
                for (q, (a, b)) in d.iter().zip(p).enumerate() {
                    lanes[q % L] = a.mul_add(*b, lanes[q % L]);
                }
            }
        }
    }
}

/// Picks the AVX-512 instance for the block's height and width.
///
/// Safety: as `DotsFn`, on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
unsafe fn dots_avx512(r: &Runs, mb: usize, nb: usize, acc: *mut f32, ld: usize) {
    macro_rules! pick {
        ($($m:literal),*; $ns:tt) => {
            match mb {
                $($m => pick!(@n $m; $ns),)*
                _ => unreachable!("block height"),
            }
        };
        (@n $m:literal; [$($n:literal),*]) => {
            match nb {
                $($n => dots_avx512_block::<$m, $n>(r, acc, ld),)*
                _ => unreachable!("block width"),
            }
        };
    }
    pick!(1, 2, 3, 4, 5; [1, 2, 3, 4, 5])
}

/// M rows of dy against N taps: M·N registers of partial sums, loaded from
/// and stored back to `acc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512_block<const M: usize, const N: usize>(r: &Runs, acc: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    let mut sum: [[__m512; N]; M] =
        std::array::from_fn(|i| std::array::from_fn(|k| _mm512_loadu_ps(acc.add(i * ld + k * L))));
    let full = r.len / L * L;
    let tail = ((1u32 << (r.len - full)) - 1) as u16;
    for j in 0..r.imgs {
        let d0 = r.dy.add(j * r.dy_img);
        let p0 = r.planes.add(j * r.p_img);
        let rows: [*const f32; M] = std::array::from_fn(|i| d0.add(i * r.dy_row));
        let runs: [*const f32; N] = std::array::from_fn(|k| p0.add(r.offs[k]));
        let mut q = 0;
        while q < full {
            let d: [__m512; M] = std::array::from_fn(|i| _mm512_loadu_ps(rows[i].add(q)));
            for k in 0..N {
                let p = _mm512_loadu_ps(runs[k].add(q));
                for i in 0..M {
                    sum[i][k] = _mm512_fmadd_ps(d[i], p, sum[i][k]);
                }
            }
            q += L;
        }
        if tail != 0 {
            // Masked-off lanes are not read: the last dy row may end the buffer.
            let d: [__m512; M] =
                std::array::from_fn(|i| _mm512_maskz_loadu_ps(tail, rows[i].add(q)));
            for k in 0..N {
                let p = _mm512_maskz_loadu_ps(tail, runs[k].add(q));
                for i in 0..M {
                    sum[i][k] = _mm512_fmadd_ps(d[i], p, sum[i][k]);
                }
            }
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (k, &v) in row.iter().enumerate() {
            _mm512_storeu_ps(acc.add(i * ld + k * L), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    /// The weight gradient straight from its definition, in f64.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        g: &ConvGeometry,
        group: usize,
        out_channels: usize,
        input: &[f32],
        dy: &[f32],
        imgs: usize,
        wdiff0: &[f32],
    ) -> Vec<f64> {
        let out = g.output().unwrap();
        let (oh, ow) = (out[0], out[1]);
        let (h, w) = (g.input[0], g.input[1]);
        let (kh, kw) = (g.kernel[0], g.kernel[1]);
        let (cg, og) = (g.channels / group, out_channels / group);
        let taps = cg * kh * kw;
        let in_len = g.channels * h * w;
        let mut wd: Vec<f64> = wdiff0.iter().map(|&v| v as f64).collect();
        for j in 0..imgs {
            for o in 0..out_channels {
                let gi = o / og;
                for t in 0..taps {
                    let (c, ky, kx) = (gi * cg + t / (kh * kw), t % (kh * kw) / kw, t % kw);
                    let mut s = 0f64;
                    for y in 0..oh {
                        for x in 0..ow {
                            let iy =
                                (y * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                            let ix =
                                (x * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = input[j * in_len + c * h * w + iy as usize * w + ix as usize];
                            s +=
                                v as f64 * dy[(j * out_channels + o) * oh * ow + y * ow + x] as f64;
                        }
                    }
                    wd[o * taps + t] += s;
                }
            }
        }
        wd
    }

    fn geom(
        c: usize,
        hw: [usize; 2],
        k: [usize; 2],
        pad: [usize; 2],
        sw: usize,
        dil: [usize; 2],
    ) -> ConvGeometry {
        ConvGeometry {
            channels: c,
            input: hw.to_vec(),
            kernel: k.to_vec(),
            pad: pad.to_vec(),
            stride: vec![1, sw],
            dilation: dil.to_vec(),
        }
    }

    #[test]
    fn shifted_weight_gradient_equals_the_definition() {
        // (geometry, groups, output channels, images): LeNet's two layers,
        // padding, a horizontal stride, dilation, groups, block edges (7
        // outputs, 3·3·3 taps), rows that are not whole registers, one image.
        let cases = [
            (geom(1, [28, 28], [5, 5], [0, 0], 1, [1, 1]), 1, 20, 3),
            (geom(20, [12, 12], [5, 5], [0, 0], 1, [1, 1]), 1, 50, 4),
            (geom(3, [9, 11], [3, 3], [1, 2], 1, [1, 1]), 1, 7, 2),
            (geom(4, [10, 13], [3, 2], [1, 0], 3, [1, 1]), 2, 6, 3),
            (geom(2, [11, 9], [3, 3], [2, 1], 1, [2, 3]), 1, 4, 1),
            (geom(6, [7, 7], [1, 1], [0, 0], 1, [1, 1]), 3, 9, 5),
        ];
        for (g, group, oc, imgs) in cases {
            let sp = ShiftedPlanes::new(&g).unwrap();
            let out = g.output().unwrap();
            let in_len = g.channels * g.input[0] * g.input[1];
            let dy_len = oc * out[0] * out[1];
            let input = random(imgs * in_len, 1);
            let dy = random(imgs * dy_len, 2);
            let taps = g.channels / group * g.kernel[0] * g.kernel[1];
            let wdiff0 = random(oc * taps, 3);
            let want = naive(&g, group, oc, &input, &dy, imgs, &wdiff0);
            let mut kernels: Vec<(&str, DotsFn)> = vec![("portable", dots_portable)];
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", dots_avx512));
            }
            for (name, k) in kernels {
                let mut got = wdiff0.clone();
                let args = (group, oc, &input[..], in_len, &dy[..], dy_len, imgs);
                weight_grad_with(k, &sp, args, &mut got);
                let (mut err, mut norm) = (0f64, 0f64);
                for (a, b) in got.iter().zip(&want) {
                    err += (*a as f64 - b).powi(2);
                    norm += b * b;
                }
                assert!(
                    (err / norm).sqrt() < 1e-6,
                    "{name} {g:?} groups {group}: relative error {}",
                    (err / norm).sqrt()
                );
            }
        }
    }
}
