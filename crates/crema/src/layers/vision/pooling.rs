//! Pooling over 2-D windows: MAX (optionally exposing the argmax as a second
//! top), AVE, and STOCHASTIC (training samples one activation per window with
//! probability proportional to its value; testing takes the value-weighted
//! average). Output size rounds up by default (Caffe's CEIL round_mode) and a
//! last window that would start inside the bottom/right padding is dropped.
//! AVE divides by the window size counted with padding (but not past it), as
//! Caffe does.
use crema_proto::caffe::pooling_parameter::{PoolMethod, RoundMode};
use crema_proto::caffe::{LayerParameter, Phase};
use std::cell::RefCell;
use std::ops::Range;

use rand::Rng;
use rayon::prelude::*;

use super::conv_base::check_not_in_place;
use crate::backend::pool::may_split;
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::rng::with_rng;

/// Caffe's max pooling starts from -FLT_MAX, so a window of -inf yields -FLT_MAX.
const MAX_START: f32 = -f32::MAX;
/// Planes below this many values are pooled on one thread.
const PARALLEL_MIN: usize = 1 << 14;

/// One plane's (bottom diff, bottom data), top diff and mask, as zipped for backward.
type PlaneGrads<'a> = (((&'a mut [f32], &'a [f32]), &'a [f32]), &'a [f32]);

/// One plane's pooling geometry.
#[derive(Clone, Copy, Debug, Default)]
struct Win {
    height: usize,
    width: usize,
    pooled_h: usize,
    pooled_w: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
}

impl Win {
    /// Rows/columns of window (ph, pw), clipped to the image, and the divisor
    /// AVE uses (the window clipped only at the far padding edge).
    fn window(
        &self,
        ph: usize,
        pw: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>, usize) {
        let (rows, cols) = (self.row_span(ph), self.col_span(pw));
        (rows.taps, cols.taps, rows.extent * cols.extent)
    }
    fn row_span(&self, ph: usize) -> Span {
        Span::along(ph, self.stride.0, self.pad.0, self.kernel.0, self.height)
    }
    fn col_span(&self, pw: usize) -> Span {
        Span::along(pw, self.stride.1, self.pad.1, self.kernel.1, self.width)
    }
    fn plane(&self) -> usize {
        self.height * self.width
    }
    fn pooled(&self) -> usize {
        self.pooled_h * self.pooled_w
    }
}

/// One output row's or column's window along one axis: the taps inside the
/// image and the extent AVE divides by (clipped only at the far padding).
#[derive(Clone, Debug)]
struct Span {
    taps: Range<usize>,
    extent: usize,
}

impl Span {
    /// The window of output `o` on an axis of `size` inputs.
    fn along(o: usize, stride: usize, pad: usize, kernel: usize, size: usize) -> Span {
        let start = (o * stride) as isize - pad as isize;
        let end = (start + kernel as isize).min((size + pad) as isize);
        Span {
            taps: start.max(0) as usize..(end as usize).min(size),
            extent: (end - start) as usize,
        }
    }
}

/// Window spans per output row and column, computed once per reshape so the
/// per-plane loops do no window arithmetic.
#[derive(Clone, Debug, Default)]
struct Plan {
    rows: Vec<Span>,
    cols: Vec<Span>,
    /// Output columns whose windows lie wholly inside the image: these run
    /// as contiguous, branch-free (vectorisable) loops over whole output rows.
    inner: Range<usize>,
    /// When every window lies wholly inside the plane and an output row is
    /// shorter than a register: each output's first tap (its offset in the
    /// plane), padded with zeros to whole registers, so MAX pools the plane
    /// 16 outputs at a time across its rows (`max_plane_avx512`). Empty
    /// otherwise. One plane at a time (batch 64, one thread), against the
    /// row-by-row path: LeNet's pool2 (8x8 → 4x4) 0.25 → 0.085 ms, its pool1
    /// (24x24 → 12x12) 0.30 → 0.21 ms, AlexNet's pool5 at batch 16 (13x13 →
    /// 6x6) 0.62 → 0.38 ms; its pool1 (27 outputs a row) was 7 % slower.
    starts: Vec<i32>,
}

impl Plan {
    fn new(win: &Win) -> Plan {
        let rows: Vec<Span> = (0..win.pooled_h).map(|ph| win.row_span(ph)).collect();
        let cols: Vec<Span> = (0..win.pooled_w).map(|pw| win.col_span(pw)).collect();
        let full = |pw: &usize| {
            let w0 = (pw * win.stride.1) as isize - win.pad.1 as isize;
            w0 >= 0 && w0 as usize + win.kernel.1 <= win.width
        };
        // Window starts grow with pw, so the full windows form one run.
        let lo = (0..win.pooled_w).find(full).unwrap_or(win.pooled_w);
        let hi = (lo..win.pooled_w)
            .find(|pw| !full(pw))
            .unwrap_or(win.pooled_w);
        let whole = |s: &Span, k: usize| s.taps.len() == k && s.extent == k;
        let mut starts = Vec::new();
        if win.pooled_w < 16
            && rows.iter().all(|s| whole(s, win.kernel.0))
            && cols.iter().all(|s| whole(s, win.kernel.1))
            && win.plane() < i32::MAX as usize
        {
            for r in &rows {
                starts.extend(
                    cols.iter()
                        .map(|c| (r.taps.start * win.width + c.taps.start) as i32),
                );
            }
            starts.resize(starts.len().div_ceil(16) * 16, 0);
        }
        Plan {
            rows,
            cols,
            inner: lo..hi,
            starts,
        }
    }
}

thread_local! {
    /// One input row split by column phase (x mod stride), kept between calls
    /// so a steady-state pass allocates nothing.
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `v > best ? v : best`, and the same choice for `arg`, without a branch:
/// a data-dependent branch here mispredicts on real activations.
#[inline(always)]
fn take_max(v: f32, off: f32, best: &mut f32, arg: &mut f32) {
    let m = ((v > *best) as u32).wrapping_neg();
    *best = f32::from_bits((v.to_bits() & m) | (best.to_bits() & !m));
    *arg = f32::from_bits((off.to_bits() & m) | (arg.to_bits() & !m));
}

/// Splits `row` by column phase into `out`: phase r holds row[r], row[r + s], ...
/// at out[r * m..], so strided taps become contiguous runs.
#[inline(always)]
fn split_phases(row: &[f32], s: usize, m: usize, out: &mut [f32]) {
    if s == 1 {
        out[..row.len()].copy_from_slice(row);
    } else if s == 2 {
        let (even, odd) = out.split_at_mut(m);
        for ((e, o), c) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
            (*e, *o) = (c[0], c[1]);
        }
        if row.len() % 2 == 1 {
            even[row.len() / 2] = row[row.len() - 1];
        }
    } else {
        for (j, c) in row.chunks(s).enumerate() {
            for (r, &v) in c.iter().enumerate() {
                out[r * m + j] = v;
            }
        }
    }
}

/// For each inner output column of one output row, the taps of tap column
/// `kx` on input row `row`: contiguous in the phase split when s > 1.
#[inline(always)]
fn inner_taps<'a>(row: &'a [f32], phases: &'a [f32], s: usize, c: usize, n: usize) -> &'a [f32] {
    if s == 1 {
        &row[c..c + n]
    } else {
        let m = row.len().div_ceil(s);
        &phases[(c % s) * m + c / s..][..n]
    }
}

/// Output columns pooled together in registers by MAX.
const LANES: usize = 8;

/// MAX over one plane. Taps are visited in row-major order with a strict `>`,
/// so the argmax is the first maximum, as Caffe's loop finds it. Windows
/// clipped by the image edge go one by one; the inner output columns of a row
/// go many at a time (`max_inner`).
fn max_plane(win: &Win, plan: &Plan, bp: &[f32], tp: &mut [f32], mp: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if !plan.starts.is_empty() && is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected; `starts` holds whole windows of this plane.
        return unsafe { max_plane_avx512(win, &plan.starts, bp, tp, mp) };
    }
    let w = win.width;
    let inner = plan.inner.clone();
    #[cfg(target_arch = "x86_64")]
    let wide = !inner.is_empty() && win.stride.1 <= 2 && is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    PHASES.with_borrow_mut(|phases| {
        for ((span, t), mk) in plan
            .rows
            .iter()
            .zip(tp.chunks_exact_mut(win.pooled_w))
            .zip(mp.chunks_exact_mut(win.pooled_w))
        {
            let rows = span.taps.clone();
            for pw in (0..inner.start).chain(inner.end..win.pooled_w) {
                let cols = plan.cols[pw].taps.clone();
                let (mut best, mut arg) = (MAX_START, (rows.start * w + cols.start) as f32);
                for y in rows.clone() {
                    for (x, &v) in bp[y * w..][cols.clone()].iter().enumerate() {
                        take_max(v, (y * w + cols.start + x) as f32, &mut best, &mut arg);
                    }
                }
                (t[pw], mk[pw]) = (best, arg);
            }
            if inner.is_empty() {
                continue;
            }
            let (best, arg) = (&mut t[inner.clone()], &mut mk[inner.clone()]);
            if wide {
                // SAFETY: AVX-512F was detected above; the stride is 1 or 2.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    max_inner_avx512(win, inner.start, rows, bp, best, arg)
                };
            } else {
                max_inner(win, inner.start, rows, bp, phases, best, arg);
            }
        }
    });
}

/// The inner output columns `first..first + best.len()` of one output row,
/// whose windows cover input rows `rows`: LANES columns at a time with their
/// best value and argmax in registers, reading the rows split by phase
/// (padded by LANES so a last partial block reads in bounds; its extra lanes
/// are dropped).
fn max_inner(
    win: &Win,
    first: usize,
    rows: Range<usize>,
    bp: &[f32],
    phases: &mut Vec<f32>,
    best: &mut [f32],
    arg: &mut [f32],
) {
    let (w, s, kw) = (win.width, win.stride.1, win.kernel.1);
    let x0 = (first * s).wrapping_sub(win.pad.1);
    let m = w.div_ceil(s) + LANES;
    phases.resize(m * s * win.kernel.0, 0.0);
    let n = best.len();
    for (r, y) in rows.clone().enumerate() {
        split_phases(&bp[y * w..][..w], s, m, &mut phases[r * m * s..][..m * s]);
    }
    let mut j0 = 0;
    while j0 < n {
        let mut b = [MAX_START; LANES];
        // Argmax relative to the window's first column; the default is its first tap.
        let mut a = [(rows.start * w) as f32; LANES];
        for (r, y) in rows.clone().enumerate() {
            let ph = &phases[r * m * s..][..m * s];
            for kx in 0..kw {
                let c = x0 + kx;
                let taps: &[f32; LANES] =
                    ph[(c % s) * m + c / s + j0..][..LANES].try_into().unwrap();
                let off = (y * w + kx) as f32;
                for l in 0..LANES {
                    take_max(taps[l], off, &mut b[l], &mut a[l]);
                }
            }
        }
        let base = (x0 + j0 * s) as f32;
        let lanes = LANES.min(n - j0);
        for l in 0..lanes {
            best[j0 + l] = b[l];
            arg[j0 + l] = a[l] + base + (l * s) as f32;
        }
        j0 += LANES;
    }
}

/// `max_inner` for strides 1 and 2 with AVX-512: 16 output columns per
/// register. A tap's 16 inputs are one masked load at stride 1, and the even
/// lanes of two masked loads at stride 2; lanes past the row are never read.
/// Indices are small integers, exact in f32, so the argmax equals the
/// scalar path's bit for bit.
///
/// Safety: the CPU has AVX-512F, the stride is 1 or 2, and `first..` are
/// inner columns (their windows lie inside the row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_inner_avx512(
    win: &Win,
    first: usize,
    rows: Range<usize>,
    bp: &[f32],
    best: &mut [f32],
    arg: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (w, s, kw) = (win.width, win.stride.1, win.kernel.1);
    let x0 = first * s - win.pad.1;
    let n = best.len();
    let lane_step = _mm512_mul_ps(
        _mm512_setr_ps(
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
        ),
        _mm512_set1_ps(s as f32),
    );
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // The first `count` values at `at` (at most 16 are used), the rest zero.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(at: *const f32, count: usize) -> __m512 {
        _mm512_maskz_loadu_ps(((1u32 << count.min(16)) - 1) as __mmask16, at)
    }
    for j0 in (0..n).step_by(16) {
        let lanes = 16.min(n - j0);
        let mut b = _mm512_set1_ps(MAX_START);
        // Until a tap wins, the argmax is the window's first tap.
        let first_tap = _mm512_set1_ps((rows.start * w + x0 + j0 * s) as f32);
        let mut a = _mm512_add_ps(first_tap, lane_step);
        for y in rows.clone() {
            let row = bp[y * w..][..w].as_ptr();
            for kx in 0..kw {
                let x = x0 + j0 * s + kx;
                // Inputs this block's lanes read: x, x + s, .., x + (lanes - 1)·s.
                let span = (lanes - 1) * s + 1;
                let taps = if s == 1 {
                    load(row.add(x), span)
                } else {
                    let lo = load(row.add(x), span);
                    let hi = load(row.add(x + 16), span.saturating_sub(16));
                    _mm512_permutex2var_ps(lo, even, hi)
                };
                let idx = _mm512_add_ps(_mm512_set1_ps((y * w + x) as f32), lane_step);
                let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(taps, b);
                b = _mm512_mask_blend_ps(gt, b, taps);
                a = _mm512_mask_blend_ps(gt, a, idx);
            }
        }
        let keep = ((1u32 << lanes) - 1) as __mmask16;
        _mm512_mask_storeu_ps(best.as_mut_ptr().add(j0), keep, b);
        _mm512_mask_storeu_ps(arg.as_mut_ptr().add(j0), keep, a);
    }
}

/// MAX over a plane whose windows all lie inside it, 16 outputs per
/// register in plane order (across output rows): each tap is a gather at
/// the outputs' first taps plus the tap's offset. Taps go in row-major
/// order with a strict `>`, so the argmax is the first maximum, as in
/// `max_plane`'s other paths, bit for bit.
///
/// Safety: the CPU has AVX-512F; `starts` (from `Plan`) holds each
/// output's first tap in `bp`, whose whole window lies inside `bp`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_avx512(win: &Win, starts: &[i32], bp: &[f32], tp: &mut [f32], mp: &mut [f32]) {
    use std::arch::x86_64::*;
    let (w, q) = (win.width, tp.len());
    assert!(starts.len() >= q && mp.len() >= q && bp.len() >= win.plane());
    for j0 in (0..q).step_by(16) {
        let lanes = 16.min(q - j0);
        let live = ((1u32 << lanes) - 1) as __mmask16;
        let idx = _mm512_loadu_si512(starts.as_ptr().add(j0).cast());
        let first = _mm512_cvtepi32_ps(idx);
        let (mut b, mut a) = (_mm512_set1_ps(MAX_START), first);
        for dy in 0..win.kernel.0 {
            for dx in 0..win.kernel.1 {
                let off = dy * w + dx;
                let taps = _mm512_mask_i32gather_ps::<4>(b, live, idx, bp.as_ptr().add(off));
                let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(taps, b);
                b = _mm512_mask_blend_ps(gt, b, taps);
                a = _mm512_mask_blend_ps(gt, a, _mm512_add_ps(first, _mm512_set1_ps(off as f32)));
            }
        }
        _mm512_mask_storeu_ps(tp.as_mut_ptr().add(j0), live, b);
        _mm512_mask_storeu_ps(mp.as_mut_ptr().add(j0), live, a);
    }
}

/// AVE over one plane: taps summed in row-major order from -0.0 (as
/// `Iterator::sum` does), so results match the plain window loop bit for bit.
fn ave_plane(win: &Win, plan: &Plan, bp: &[f32], tp: &mut [f32]) {
    let (w, s, kw) = (win.width, win.stride.1, win.kernel.1);
    let inner = plan.inner.clone();
    let x0 = (inner.start * s).wrapping_sub(win.pad.1);
    PHASES.with_borrow_mut(|phases| {
        if s > 1 {
            phases.resize(w.div_ceil(s) * s, 0.0);
        }
        for (span, t) in plan.rows.iter().zip(tp.chunks_exact_mut(win.pooled_w)) {
            let rows = span.taps.clone();
            for pw in (0..inner.start).chain(inner.end..win.pooled_w) {
                let cols = &plan.cols[pw];
                let sum: f32 = rows
                    .clone()
                    .flat_map(|y| bp[y * w..][cols.taps.clone()].iter())
                    .sum();
                t[pw] = sum / (span.extent * cols.extent) as f32;
            }
            if inner.is_empty() {
                continue;
            }
            let sums = &mut t[inner.clone()];
            sums.fill(-0.0);
            for y in rows {
                let row = &bp[y * w..][..w];
                if s > 1 {
                    split_phases(row, s, w.div_ceil(s), phases);
                }
                for kx in 0..kw {
                    let taps = inner_taps(row, phases, s, x0 + kx, sums.len());
                    sums.iter_mut().zip(taps).for_each(|(a, &v)| *a += v);
                }
            }
            let area = (span.extent * kw) as f32;
            sums.iter_mut().for_each(|a| *a /= area);
        }
    });
}

/// MAX backward for windows that never overlap: each output's gradient
/// stored at its argmax, 16 at a time (one scatter; distinct targets, so
/// stores equal the scalar loop's adds onto zero).
///
/// Safety: the CPU has AVX-512F; every index in `mask` lies in `bd` and no
/// two are equal.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_disjoint_avx512(td: &[f32], mask: &[f32], bd: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(mask.len() >= td.len() && bd.len() < i32::MAX as usize);
    let zero = _mm512_setzero_ps();
    for (g, m) in td.chunks(16).zip(mask.chunks(16)) {
        let lanes = ((1u32 << g.len()) - 1) as __mmask16;
        let idx = _mm512_cvttps_epi32(_mm512_maskz_loadu_ps(lanes, m.as_ptr()));
        debug_assert!(m.iter().all(|&i| (i as usize) < bd.len()));
        // 0 + g, as the scalar loop adds onto the zeroed plane (-0 → +0).
        let v = _mm512_add_ps(zero, _mm512_maskz_loadu_ps(lanes, g.as_ptr()));
        _mm512_mask_i32scatter_ps::<4>(bd.as_mut_ptr(), lanes, idx, v);
    }
}

pub struct PoolingLayer {
    param: LayerParameter,
    method: PoolMethod,
    global: bool,
    win: Win,
    plan: Plan,
    channels: usize,
    num: usize,
    /// MAX: argmax per output (index in the plane); STOCHASTIC training: the
    /// uniform draws, then the sampled index.
    mask: Vec<f32>,
}

impl PoolingLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let pp = param.pooling_param.get_or_default();
        let err = |m: &str| Err(Error::layer(param, m));
        let global = pp.global_pooling();
        let has_k = pp.has_kernel_size() || pp.has_kernel_h() || pp.has_kernel_w();
        if global && has_k {
            return err("with global_pooling: true filter size cannot be specified");
        }
        if !global {
            if pp.has_kernel_size() && (pp.has_kernel_h() || pp.has_kernel_w()) {
                return err("filter size is kernel_size OR kernel_h and kernel_w; not both");
            }
            if !(pp.has_kernel_size() || (pp.has_kernel_h() && pp.has_kernel_w())) {
                return err("for non-square filters both kernel_h and kernel_w are required");
            }
        }
        let pair = |has: bool, one: u32, has_h: bool, has_w: bool, h: u32, w: u32, what: &str| {
            if has_h || has_w {
                if has || !(has_h && has_w) {
                    return Err(Error::layer(
                        param,
                        format!("{what} is {what} OR {what}_h and {what}_w are required"),
                    ));
                }
                Ok((h as usize, w as usize))
            } else {
                Ok((one as usize, one as usize))
            }
        };
        let pad = pair(
            pp.has_pad(),
            pp.pad(),
            pp.has_pad_h(),
            pp.has_pad_w(),
            pp.pad_h(),
            pp.pad_w(),
            "pad",
        )?;
        let stride = pair(
            pp.has_stride(),
            pp.stride(),
            pp.has_stride_h(),
            pp.has_stride_w(),
            pp.stride_h(),
            pp.stride_w(),
            "stride",
        )?;
        let kernel = if global {
            (0, 0)
        } else if pp.has_kernel_size() {
            (pp.kernel_size() as usize, pp.kernel_size() as usize)
        } else {
            (pp.kernel_h() as usize, pp.kernel_w() as usize)
        };
        if global && (pad != (0, 0) || stride != (1, 1)) {
            return err("with global_pooling: true only pad = 0 and stride = 1 are allowed");
        }
        if !global && (kernel.0 == 0 || kernel.1 == 0) {
            return err("filter dimensions cannot be zero");
        }
        if stride.0 == 0 || stride.1 == 0 {
            return err("stride must be nonzero");
        }
        let method = pp.pool();
        if pad != (0, 0) {
            if method == PoolMethod::STOCHASTIC {
                return err("padding implemented only for average and max pooling");
            }
            if pad.0 >= kernel.0 || pad.1 >= kernel.1 {
                return Err(Error::layer(
                    param,
                    format!("pad {pad:?} must be smaller than the kernel {kernel:?}"),
                ));
            }
        }
        let win = Win {
            kernel,
            stride,
            pad,
            ..Win::default()
        };
        Ok(Box::new(PoolingLayer {
            param: param.clone(),
            method,
            global,
            win,
            plan: Plan::default(),
            channels: 0,
            num: 0,
            mask: Vec::new(),
        }))
    }

    fn pooled_extent(
        &self,
        size: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<usize> {
        let span = (size + 2 * pad) as f64 - kernel as f64;
        let steps = span / stride as f64;
        let steps = match self.param.pooling_param.round_mode() {
            RoundMode::CEIL => steps.ceil(),
            RoundMode::FLOOR => steps.floor(),
        };
        let mut pooled = steps as i64 + 1;
        // Drop a last window that would start in the padding.
        if pad > 0 && (pooled - 1) * stride as i64 >= (size + pad) as i64 {
            pooled -= 1;
        }
        if pooled < 1 {
            return Err(Error::layer(
                &self.param,
                format!("kernel {kernel} does not fit an input of {size} with pad {pad}"),
            ));
        }
        Ok(pooled as usize)
    }
}

/// Runs `f(bottom_plane, top_plane, mask_plane)` for every (n, c) plane, on the
/// pool when there is enough work.
fn for_planes<F>(win: &Win, bottom: &[f32], top: &mut [f32], mask: &mut [f32], f: F)
where
    F: Fn(&[f32], &mut [f32], &mut [f32]) + Sync,
{
    let (p, q) = (win.plane(), win.pooled());
    let it = |(b, (t, m)): (&[f32], (&mut [f32], &mut [f32]))| f(b, t, m);
    if bottom.len() >= PARALLEL_MIN && may_split() {
        bottom
            .par_chunks(p)
            .zip(top.par_chunks_mut(q).zip(mask.par_chunks_mut(q)))
            .for_each(it);
    } else {
        bottom
            .chunks(p)
            .zip(top.chunks_mut(q).zip(mask.chunks_mut(q)))
            .for_each(it);
    }
}

impl Layer for PoolingLayer {
    fn type_name(&self) -> &'static str {
        "Pooling"
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if top.len() > 1 && self.method != PoolMethod::MAX {
            return Err(Error::layer(
                &self.param,
                "only MAX pooling has a second (mask) top",
            ));
        }
        check_not_in_place(&self.param, bottom, top)
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let shape = bottom[0].borrow().shape().to_vec();
        crate::ensure!(
            &self.param,
            shape.len() == 4,
            "input must have 4 axes, corresponding to (num, channels, height, width); got {shape:?}"
        );
        let (num, channels, height, width) = (shape[0], shape[1], shape[2], shape[3]);
        crate::ensure!(
            &self.param,
            height > 0 && width > 0,
            "cannot pool an empty {height}x{width} image"
        );
        if self.global {
            self.win.kernel = (height, width);
        }
        let w = self.win;
        let pooled_h = self.pooled_extent(height, w.kernel.0, w.stride.0, w.pad.0)?;
        let pooled_w = self.pooled_extent(width, w.kernel.1, w.stride.1, w.pad.1)?;
        self.win = Win {
            height,
            width,
            pooled_h,
            pooled_w,
            ..w
        };
        self.plan = Plan::new(&self.win);
        self.num = num;
        self.channels = channels;
        let top_shape = [num, channels, pooled_h, pooled_w];
        for t in top {
            t.borrow_mut().reshape(&top_shape);
        }
        self.mask.resize(top_shape.iter().product(), 0.0);
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let win = self.win;
        let train = self.param.phase() == Phase::TRAIN;
        match self.method {
            PoolMethod::MAX => {
                let plan = &self.plan;
                for_planes(
                    &win,
                    b.data(),
                    t.data_mut(),
                    &mut self.mask,
                    |bp, tp, mp| max_plane(&win, plan, bp, tp, mp),
                )
            }
            PoolMethod::AVE => {
                let plan = &self.plan;
                for_planes(&win, b.data(), t.data_mut(), &mut self.mask, |bp, tp, _| {
                    ave_plane(&win, plan, bp, tp)
                })
            }
            PoolMethod::STOCHASTIC => {
                if train {
                    // Draw all uniforms first, in order, so the seed fixes the samples.
                    with_rng(|r| self.mask.iter_mut().for_each(|u| *u = r.gen::<f32>()));
                }
                for_planes(
                    &win,
                    b.data(),
                    t.data_mut(),
                    &mut self.mask,
                    |bp, tp, mp| {
                        for ph in 0..win.pooled_h {
                            for pw in 0..win.pooled_w {
                                let (rows, cols, _) = win.window(ph, pw);
                                let o = ph * win.pooled_w + pw;
                                let idx = || {
                                    rows.clone()
                                        .flat_map(|y| cols.clone().map(move |x| y * win.width + x))
                                };
                                if train {
                                    let total: f32 = idx().map(|i| bp[i]).sum();
                                    let threshold = mp[o] * total;
                                    let mut run = 0.0;
                                    // Rounding may leave the threshold unreached: keep the last tap then.
                                    let mut pick = idx().last().expect("windows are never empty");
                                    for i in idx() {
                                        run += bp[i];
                                        if run >= threshold {
                                            pick = i;
                                            break;
                                        }
                                    }
                                    tp[o] = bp[pick];
                                    mp[o] = pick as f32;
                                } else {
                                    // Starting from FLT_MIN keeps an all-zero window at 0, not NaN.
                                    let (s, q) = idx()
                                        .fold((f32::MIN_POSITIVE, 0.0), |(s, q), i| {
                                            (s + bp[i], q + bp[i] * bp[i])
                                        });
                                    tp[o] = q / s;
                                }
                            }
                        }
                    },
                )
            }
        }
        if let Some(m) = top.get(1) {
            m.borrow_mut().data_mut().copy_from_slice(&self.mask);
        }
        Ok(())
    }

    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if !propagate_down.first().copied().unwrap_or(false) {
            return Ok(());
        }
        let t = top[0].borrow();
        let mut b = bottom[0].borrow_mut();
        let (bottom_data, bottom_diff) = b.data_and_diff_mut();
        let win = self.win;
        let (p, q) = (win.plane(), win.pooled());
        let method = self.method;
        let train = self.param.phase() == Phase::TRAIN;
        let plan = &self.plan;
        // Windows that never overlap (stride ≥ kernel, LeNet's 2x2/2) hand
        // each input at most one gradient.
        let disjoint = win.stride.0 >= win.kernel.0 && win.stride.1 >= win.kernel.1;
        let plane = |(((bd, x), td), mp): PlaneGrads| {
            bd.fill(0.0);
            match method {
                // The argmax / sampled tap takes the whole gradient; no window needed.
                PoolMethod::MAX => {
                    #[cfg(target_arch = "x86_64")]
                    if disjoint && is_x86_feature_detected!("avx512f") {
                        // SAFETY: AVX-512F is present; the windows do not
                        // overlap, so no two outputs share an argmax.
                        return unsafe { scatter_disjoint_avx512(td, mp, bd) };
                    }
                    for (&g, &i) in td.iter().zip(mp) {
                        bd[i as usize] += g;
                    }
                }
                PoolMethod::STOCHASTIC if train => {
                    for (&g, &i) in td.iter().zip(mp) {
                        bd[i as usize] += g;
                    }
                }
                // Outputs in order, as Caffe adds them, so overlaps sum identically.
                PoolMethod::AVE => {
                    for (span, td) in plan.rows.iter().zip(td.chunks_exact(win.pooled_w)) {
                        for (cols, &g) in plan.cols.iter().zip(td) {
                            let d = g / (span.extent * cols.extent) as f32;
                            for y in span.taps.clone() {
                                bd[y * win.width..][cols.taps.clone()]
                                    .iter_mut()
                                    .for_each(|v| *v += d);
                            }
                        }
                    }
                }
                PoolMethod::STOCHASTIC => {
                    for ph in 0..win.pooled_h {
                        for pw in 0..win.pooled_w {
                            let g = td[ph * win.pooled_w + pw];
                            let (rows, cols, _) = win.window(ph, pw);
                            // d(Σx²/Σx)/dxᵢ = (2xᵢ·S − Q) / S².
                            let idx = || {
                                rows.clone()
                                    .flat_map(|y| cols.clone().map(move |c| y * win.width + c))
                            };
                            let (s, qs) = idx().fold((f32::MIN_POSITIVE, 0.0), |(s, qs), i| {
                                (s + x[i], qs + x[i] * x[i])
                            });
                            for i in idx() {
                                bd[i] += g * (2.0 * x[i] * s - qs) / (s * s);
                            }
                        }
                    }
                }
            }
        };
        if bottom_data.len() >= PARALLEL_MIN && may_split() {
            bottom_diff
                .par_chunks_mut(p)
                .zip(bottom_data.par_chunks(p))
                .zip(t.diff().par_chunks(q))
                .zip(self.mask.par_chunks(q))
                .for_each(plane);
        } else {
            bottom_diff
                .chunks_mut(p)
                .zip(bottom_data.chunks(p))
                .zip(t.diff().chunks(q))
                .zip(self.mask.chunks(q))
                .for_each(plane);
        }
        Ok(())
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_top_blobs(&self) -> Option<usize> {
        Some(if self.method == PoolMethod::MAX { 2 } else { 1 })
    }
}
