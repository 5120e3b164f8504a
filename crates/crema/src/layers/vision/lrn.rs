//! Local Response Normalization: `y = x · scale^(−β)`.
//!
//! ACROSS_CHANNELS: `scale = k + α/n · Σ x²` over the n channels centred on
//! the channel (zero beyond the ends). WITHIN_CHANNEL: `scale = 1 + α/n² · Σ x²`
//! over the n×n square centred on the pixel — Caffe builds this one from
//! Power/Pooling/Eltwise layers with a shift of 1, so `k` does not enter it.
//!
//! Window sums are running sums (two vector operations per value for any n;
//! the square window is separable into a row pass and a column pass), and the
//! usual β of 0.75 is taken by square roots rather than `powf`. Backward
//! recomputes the scale (one more running sum) instead of keeping it from
//! forward, so the layer holds one image's worth of scratch per worker rather
//! than two copies of its top (245 MB for AlexNet at batch 64).
use crema_proto::caffe::lrnparameter::NormRegion;
use crema_proto::caffe::LayerParameter;
use rayon::prelude::*;

use super::conv_base::{check_not_in_place, workers};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

/// Runs `$body` with `$p` bound to `s ↦ s^−β`, specialised for the β values
/// nets use (AlexNet and GoogLeNet: 0.75) so the loop in `$body` vectorizes.
macro_rules! with_neg_pow {
    ($beta:expr, $p:ident => $body:expr) => {{
        let beta: f32 = $beta;
        if beta == 0.75 {
            let $p = |s: f32| {
                let r = 1.0 / s.sqrt();
                r * r.sqrt()
            };
            $body
        } else if beta == 0.5 {
            let $p = |s: f32| 1.0 / s.sqrt();
            $body
        } else if beta == 1.0 {
            let $p = |s: f32| 1.0 / s;
            $body
        } else {
            let $p = |s: f32| s.powf(-beta);
            $body
        }
    }};
}

pub struct LRNLayer {
    param: LayerParameter,
    size: usize,
    alpha: f32,
    beta: f32,
    k: f32,
    region: NormRegion,
    /// Image shape (channels, height, width).
    chw: (usize, usize, usize),
    /// Images per worker run.
    per_run: usize,
    /// One per worker run, kept between passes.
    scratch: Vec<Scratch>,
}

/// A worker's buffers. Within a channel: two images (the scale and a window
/// sum) and one h·w plane for the separable square window. Across channels:
/// the scale, the window sum and `band`, one band of positions each
/// (channels × `band_len` values).
#[derive(Default)]
struct Scratch {
    scale: Vec<f32>,
    sum: Vec<f32>,
    plane: Vec<f32>,
    band: Vec<f32>,
}

/// Values (channels × positions) of one band of an image across channels:
/// the band's buffers and its rows of x, y and the diffs stay in L2 (128 KiB
/// each), where AlexNet's norm1 image (96 × 55 × 55, 1.1 MiB an array) did
/// not. Alone, norm1's forward at batch 64 went 15.8 → 14.0 ms this way; the
/// AVX-512 build (`forward_positions`) took it to 10.5-11.2 ms.
const BAND_VALUES: usize = 1 << 15;

impl LRNLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let lp = param.lrn_param.get_or_default();
        let size = lp.local_size() as usize;
        crate::ensure!(
            param,
            size % 2 == 1,
            "LRN only supports odd values for local_size (got {size})"
        );
        Ok(Box::new(LRNLayer {
            param: param.clone(),
            size,
            alpha: lp.alpha(),
            beta: lp.beta(),
            k: lp.k(),
            region: lp.norm_region(),
            chw: (0, 0, 0),
            per_run: 1,
            scratch: Vec::new(),
        }))
    }

    /// `dst = Σ_window src` for one image over the region's window (zero
    /// outside the image), with `plane` (h·w values) as scratch.
    fn window_sum(&self, src: &[f32], dst: &mut [f32], plane: &mut [f32]) {
        let (c, h, w) = self.chw;
        let half = self.size / 2;
        match self.region {
            NormRegion::ACROSS_CHANNELS => slide_rows(src, dst, c, h * w, half),
            NormRegion::WITHIN_CHANNEL => {
                for (s, d) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
                    for (sr, pr) in s.chunks_exact(w).zip(plane.chunks_exact_mut(w)) {
                        slide_along(sr, pr, half);
                    }
                    slide_rows(plane, d, h, w, half);
                }
            }
        }
    }

    /// Elements each scale sums over (n, or n² within a channel).
    fn window_len(&self) -> f32 {
        match self.region {
            NormRegion::ACROSS_CHANNELS => self.size as f32,
            NormRegion::WITHIN_CHANNEL => (self.size * self.size) as f32,
        }
    }

    fn base(&self) -> f32 {
        match self.region {
            NormRegion::ACROSS_CHANNELS => self.k,
            NormRegion::WITHIN_CHANNEL => 1.0,
        }
    }

    /// Bands of positions each image's forward splits into: across channels
    /// every position is independent, so when there are fewer images than
    /// workers (a batch of one) the positions are shared out instead.
    fn bands(&self, num: usize) -> usize {
        let (c, h, w) = self.chw;
        let threads = workers();
        if self.region == NormRegion::ACROSS_CHANNELS
            && num < threads
            && crate::backend::pool::may_split()
            && c * h * w >= 1 << 15
        {
            threads.min(h * w)
        } else {
            1
        }
    }

    /// Positions per band of an image across channels (`BAND_VALUES`), a
    /// multiple of 16 unless it is the whole plane.
    fn band_len(&self) -> usize {
        let (c, h, w) = self.chw;
        let len = (BAND_VALUES / c.max(1)).max(16) / 16 * 16;
        len.min(h * w)
    }

    /// Forward of one image, its positions in `bands` bands on the pool. Each
    /// position sees the same operations as in the whole-image pass.
    fn forward_in_bands(&mut self, x: &[f32], y: &mut [f32]) {
        let (c, h, w) = self.chw;
        let hw = h * w;
        let parts = self.bands(1);
        let bw = hw.div_ceil(parts);
        let out = SendPtr(y.as_mut_ptr());
        assert!(x.len() >= c * hw && y.len() >= c * hw);
        let mut scratch = std::mem::take(&mut self.scratch);
        let this = &*self;
        scratch
            .par_iter_mut()
            .take(parts)
            .enumerate()
            .for_each(|(i, s)| {
                let p0 = i * bw;
                let end = (p0 + bw).min(hw);
                // SAFETY: part i alone writes positions p0..end of every
                // channel of y, which holds c·hw values.
                unsafe { this.forward_positions(x, &out, p0, end, s) };
            });
        self.scratch = scratch;
    }

    /// Forward (across channels) of positions `p0..end` of one image `x`
    /// into the image at `y`, band by band.
    ///
    /// # Safety
    /// `y` holds c·h·w values and nothing else reads or writes those
    /// positions of it meanwhile.
    #[inline(always)]
    unsafe fn forward_body(&self, x: &[f32], y: &SendPtr, p0: usize, end: usize, s: &mut Scratch) {
        let (c, h, w) = self.chw;
        let (hw, half, beta) = (h * w, self.size / 2, self.beta);
        let (coeff, base) = (self.alpha / self.window_len(), self.base());
        let band = self.band_len();
        for b0 in (p0..end).step_by(band.max(1)) {
            let len = band.min(end - b0);
            let (sq, sc) = (&mut s.sum[..c * len], &mut s.scale[..c * len]);
            for (ch, o) in sq.chunks_exact_mut(len).enumerate() {
                let xs = &x[ch * hw + b0..][..len];
                o.iter_mut().zip(xs).for_each(|(o, &v)| *o = v * v);
            }
            slide_rows(sq, sc, c, len, half);
            sc.iter_mut().for_each(|v| *v = base + coeff * *v);
            with_neg_pow!(beta, pow => {
                for (ch, scs) in sc.chunks_exact(len).enumerate() {
                    let at = ch * hw + b0;
                    let ys = std::slice::from_raw_parts_mut(y.get().add(at), len);
                    for ((o, &v), &scv) in ys.iter_mut().zip(&x[at..at + len]).zip(scs) {
                        *o = v * pow(scv);
                    }
                }
            });
        }
    }

    /// Backward (across channels) of one image, band by band: the same
    /// operations per position as `backward`'s whole-image passes.
    #[inline(always)]
    fn backward_body(&self, x: &[f32], y: &[f32], g: &[f32], bd: &mut [f32], s: &mut Scratch) {
        let (c, h, w) = self.chw;
        let (hw, half, beta) = (h * w, self.size / 2, self.beta);
        let (coeff, base) = (self.alpha / self.window_len(), self.base());
        let ratio = 2.0 * self.alpha * self.beta / self.window_len();
        let band = self.band_len();
        for b0 in (0..hw).step_by(band.max(1)) {
            let len = band.min(hw - b0);
            let n = c * len;
            let (sq, sc, t) = (&mut s.sum[..n], &mut s.scale[..n], &mut s.band[..n]);
            let rows = |ch: usize| ch * hw + b0..ch * hw + b0 + len;
            for (ch, o) in sq.chunks_exact_mut(len).enumerate() {
                o.iter_mut()
                    .zip(&x[rows(ch)])
                    .for_each(|(o, &v)| *o = v * v);
            }
            slide_rows(sq, sc, c, len, half);
            sc.iter_mut().for_each(|v| *v = base + coeff * *v);
            for (ch, (o, scs)) in t
                .chunks_exact_mut(len)
                .zip(sc.chunks_exact(len))
                .enumerate()
            {
                let r = rows(ch);
                o.iter_mut()
                    .zip(g[r.clone()].iter().zip(&y[r]).zip(scs))
                    .for_each(|(d, ((&g, &y), &s))| *d = g * y / s);
            }
            slide_rows(t, sq, c, len, half);
            with_neg_pow!(beta, pow => {
                for (ch, (scs, av)) in sc.chunks_exact(len).zip(sq.chunks_exact(len)).enumerate() {
                    let r = rows(ch);
                    for (((d, &xv), &gv), (&sv, &av)) in bd[r.clone()]
                        .iter_mut()
                        .zip(&x[r.clone()])
                        .zip(&g[r])
                        .zip(scs.iter().zip(av))
                    {
                        *d = gv * pow(sv) - ratio * xv * av;
                    }
                }
            });
        }
    }

    /// `forward_body`, compiled for AVX-512 where the CPU has it: the square
    /// roots and divisions of s^−β then take 16 values an instruction instead
    /// of 4 (same bits: both round correctly). norm1 of AlexNet at batch 64
    /// in its net: forward 19.6 → 15.9 ms, backward 32.5 → 26.2 ms with the
    /// bands (interleaved best of 2 to 3; alone 1.7x).
    ///
    /// # Safety
    /// As for `forward_body`.
    unsafe fn forward_positions(
        &self,
        x: &[f32],
        y: &SendPtr,
        p0: usize,
        end: usize,
        s: &mut Scratch,
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            return self.forward_avx512(x, y, p0, end, s);
        }
        self.forward_body(x, y, p0, end, s)
    }

    /// `backward_body`, compiled for AVX-512 where the CPU has it.
    fn backward_positions(&self, x: &[f32], y: &[f32], g: &[f32], bd: &mut [f32], s: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { self.backward_avx512(x, y, g, bd, s) };
        }
        self.backward_body(x, y, g, bd, s)
    }

    /// Safety: as for `forward_body`, and the CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_avx512(
        &self,
        x: &[f32],
        y: &SendPtr,
        p0: usize,
        end: usize,
        s: &mut Scratch,
    ) {
        self.forward_body(x, y, p0, end, s)
    }

    /// Safety: the CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn backward_avx512(
        &self,
        x: &[f32],
        y: &[f32],
        g: &[f32],
        bd: &mut [f32],
        s: &mut Scratch,
    ) {
        self.backward_body(x, y, g, bd, s)
    }

    /// `scale = base + α/len · Σ_window x²` for one image; `sq` receives x².
    fn scale_of(&self, x: &[f32], sq: &mut [f32], scale: &mut [f32], plane: &mut [f32]) {
        let (coeff, base) = (self.alpha / self.window_len(), self.base());
        sq.iter_mut().zip(x).for_each(|(o, &v)| *o = v * v);
        self.window_sum(sq, scale, plane);
        scale.iter_mut().for_each(|s| *s = base + coeff * *s);
    }
}

/// The top's values, written by disjoint bands from the pool's threads.
struct SendPtr(*mut f32);
// SAFETY: each thread writes only its own band of positions.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Window sums over the outer axis of `count` rows of `len` values: row i of
/// `dst` is the sum of the rows i−half..=i+half of `src` that exist. Each row
/// is the previous one plus the row entering and minus the row leaving.
#[inline(always)]
fn slide_rows(src: &[f32], dst: &mut [f32], count: usize, len: usize, half: usize) {
    if len == 0 || count == 0 {
        return;
    }
    let row = |i: usize| &src[i * len..(i + 1) * len];
    let first = &mut dst[..len];
    first.copy_from_slice(row(0));
    for i in 1..=half.min(count - 1) {
        first.iter_mut().zip(row(i)).for_each(|(d, &v)| *d += v);
    }
    for i in 1..count {
        let (done, rest) = dst.split_at_mut(i * len);
        let (prev, cur) = (&done[(i - 1) * len..], &mut rest[..len]);
        let enter = (i + half < count).then(|| row(i + half));
        let leave = (i > half).then(|| row(i - half - 1));
        match (enter, leave) {
            (Some(e), Some(l)) => {
                for (((d, &p), &e), &l) in cur.iter_mut().zip(prev).zip(e).zip(l) {
                    *d = p + e - l;
                }
            }
            (Some(e), None) => {
                for ((d, &p), &e) in cur.iter_mut().zip(prev).zip(e) {
                    *d = p + e;
                }
            }
            (None, Some(l)) => {
                for ((d, &p), &l) in cur.iter_mut().zip(prev).zip(l) {
                    *d = p - l;
                }
            }
            (None, None) => cur.copy_from_slice(prev),
        }
    }
}

/// The same running sum along one row: `dst[x] = Σ src[x−half..=x+half]`.
fn slide_along(src: &[f32], dst: &mut [f32], half: usize) {
    let w = src.len();
    let mut acc: f32 = src[..(half + 1).min(w)].iter().sum();
    for x in 0..w {
        dst[x] = acc;
        if x + half + 1 < w {
            acc += src[x + half + 1];
        }
        if x >= half {
            acc -= src[x - half];
        }
    }
}

/// Whether this CPU runs the AVX-512 builds of the band passes.
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    is_x86_feature_detected!("avx512f")
}

impl Layer for LRNLayer {
    fn type_name(&self) -> &'static str {
        "LRN"
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        check_not_in_place(&self.param, bottom, top)
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let shape = bottom[0].borrow().shape().to_vec();
        crate::ensure!(
            &self.param,
            shape.len() == 4,
            "input must have 4 axes, corresponding to (num, channels, height, width); got {shape:?}"
        );
        self.chw = (shape[1], shape[2], shape[3]);
        top[0].borrow_mut().reshape(&shape);
        let runs = workers().min(shape[0]).max(1);
        self.per_run = shape[0].div_ceil(runs).max(1);
        let dim = shape[1] * shape[2] * shape[3];
        self.scratch
            .resize_with(runs.max(self.bands(shape[0])), Scratch::default);
        // Across channels the passes go band by band; within a channel,
        // image by image with a plane for the separable window.
        let (whole, plane, band) = if self.region == NormRegion::ACROSS_CHANNELS {
            let band = shape[1] * self.band_len();
            (band, 0, band)
        } else {
            (dim, shape[2] * shape[3], 0)
        };
        for s in &mut self.scratch {
            s.scale.resize(whole, 0.0);
            s.sum.resize(whole, 0.0);
            s.plane.resize(plane, 0.0);
            s.band.resize(band, 0.0);
        }
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let (c, h, w) = self.chw;
        let dim = c * h * w;
        if dim == 0 {
            return Ok(());
        }
        let num = b.count() / dim;
        if self.bands(num) > 1 {
            for (x, y) in b
                .data()
                .chunks_exact(dim)
                .zip(t.data_mut().chunks_exact_mut(dim))
            {
                self.forward_in_bands(x, y);
            }
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let (this, beta, run) = (&*self, self.beta, self.per_run * dim);
        // Per image: the squares go into the top first, then the top becomes
        // y = x·scale^−β.
        b.data()
            .par_chunks(run)
            .zip(t.data_mut().par_chunks_mut(run))
            .zip(scratch.par_iter_mut())
            .for_each(|((xs, ys), s)| {
                for (x, y) in xs.chunks_exact(dim).zip(ys.chunks_exact_mut(dim)) {
                    if this.region == NormRegion::ACROSS_CHANNELS {
                        // SAFETY: y is this image's own c·h·w values.
                        unsafe { this.forward_positions(x, &SendPtr(y.as_mut_ptr()), 0, h * w, s) };
                        continue;
                    }
                    this.scale_of(x, y, &mut s.scale, &mut s.plane);
                    with_neg_pow!(beta, pow => {
                        for ((o, &v), &sc) in y.iter_mut().zip(x).zip(s.scale.iter()) {
                            *o = v * pow(sc);
                        }
                    });
                }
            });
        self.scratch = scratch;
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
        let (x, bottom_diff) = b.data_and_diff_mut();
        let (c, h, w) = self.chw;
        let dim = c * h * w;
        if dim == 0 {
            return Ok(());
        }
        let ratio = 2.0 * self.alpha * self.beta / self.window_len();
        let mut scratch = std::mem::take(&mut self.scratch);
        let (this, beta, per) = (&*self, self.beta, self.per_run);
        let (y, g) = (t.data(), t.diff());
        // dx_j = g_j·s_j^−β − (2αβ/n)·x_j·Σ_{i: j ∈ win(i)} g_i·y_i/s_i; the
        // windows are symmetric, so the sum is a window sum around j. The
        // bottom diff holds the squares, then g·y/s, until it takes dx.
        bottom_diff
            .par_chunks_mut(per * dim)
            .zip(scratch.par_iter_mut())
            .enumerate()
            .for_each(|(r, (bds, s))| {
                for (j, bd) in bds.chunks_exact_mut(dim).enumerate() {
                    let n = r * per + j;
                    let span = n * dim..(n + 1) * dim;
                    let (x, y, g) = (&x[span.clone()], &y[span.clone()], &g[span]);
                    if this.region == NormRegion::ACROSS_CHANNELS {
                        this.backward_positions(x, y, g, bd, s);
                        continue;
                    }
                    this.scale_of(x, bd, &mut s.scale, &mut s.plane);
                    bd.iter_mut()
                        .zip(g.iter().zip(y).zip(&s.scale))
                        .for_each(|(d, ((&g, &y), &s))| *d = g * y / s);
                    this.window_sum(bd, &mut s.sum, &mut s.plane);
                    with_neg_pow!(beta, pow => {
                        for (((d, &xv), &gv), (&sv, &av)) in
                            bd.iter_mut().zip(x).zip(g).zip(s.scale.iter().zip(s.sum.iter()))
                        {
                            *d = gv * pow(sv) - ratio * xv * av;
                        }
                    });
                }
            });
        self.scratch = scratch;
        Ok(())
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crema_proto::caffe::lrnparameter::NormRegion;
    use crema_proto::caffe::LayerParameter;

    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn lrn(region: NormRegion, size: u32, alpha: f32, beta: f32, k: Option<f32>) -> LayerParameter {
        param("LRN", |p| {
            let lp = p.lrn_param.mut_or_insert_default();
            lp.set_norm_region(region);
            lp.set_local_size(size);
            lp.set_alpha(alpha);
            lp.set_beta(beta);
            if let Some(k) = k {
                lp.set_k(k);
            }
        })
    }

    #[test]
    fn across_channels_matches_numpy() {
        let (x, t) = (fixture_blob("lrn_across.x"), empty());
        run(
            layer(&lrn(NormRegion::ACROSS_CHANNELS, 5, 0.3, 0.75, Some(2.0))).as_mut(),
            &[x],
            &[t.clone()],
        );
        assert_matches(&t, "lrn_across.y", 1e-5);
    }

    #[test]
    fn within_channel_matches_numpy() {
        let (x, t) = (fixture_blob("lrn_within.x"), empty());
        run(
            layer(&lrn(NormRegion::WITHIN_CHANNEL, 3, 0.4, 0.6, None)).as_mut(),
            &[x],
            &[t.clone()],
        );
        assert_matches(&t, "lrn_within.y", 1e-5);
    }

    #[test]
    fn across_channels_by_hand_with_defaults() {
        // Defaults: local_size 5, alpha 1, beta 0.75, k 1. Two channels of one pixel (3, 4):
        // both windows cover both channels, so scale = 1 + (9 + 16)/5 = 6.
        let (x, t) = (blob(&[1, 2, 1, 1], &[3.0, 4.0]), empty());
        run(layer(&param("LRN", |_| {})).as_mut(), &[x], &[t.clone()]);
        let want = [3.0 * 6f32.powf(-0.75), 4.0 * 6f32.powf(-0.75)];
        for (g, w) in t.borrow().data().iter().zip(want) {
            assert!((g - w).abs() < 1e-6);
        }
    }

    fn grad(p: &LayerParameter, shape: &[usize]) {
        let b = Blob::shared(shape);
        fill_uniform(&b, -1.0, 1.0, 11);
        GradientChecker::new(1e-2, 1e-2).check_gradient_exhaustive(
            layer(p).as_mut(),
            &[b],
            &[empty()],
            None,
        );
    }

    #[test]
    fn a_batch_of_one_split_in_bands_gives_the_whole_image_bits() {
        // One image (positions shared out over the pool) against the same
        // image inside a batch of three (one image per worker run).
        for beta in [0.75, 0.6] {
            let p = lrn(NormRegion::ACROSS_CHANNELS, 5, 0.3, beta, Some(2.0));
            let (one, many) = (
                Blob::shared(&[1, 16, 46, 47]),
                Blob::shared(&[3, 16, 46, 47]),
            );
            fill_uniform(&many, -3.0, 3.0, 5);
            let dim = one.borrow().count();
            one.borrow_mut()
                .data_mut()
                .copy_from_slice(&many.borrow().data()[dim..2 * dim]);
            let (t1, t3) = (empty(), empty());
            run(layer(&p).as_mut(), &[one], &[t1.clone()]);
            run(layer(&p).as_mut(), &[many], &[t3.clone()]);
            let (t1, t3) = (t1.borrow(), t3.borrow());
            let whole = &t3.data()[dim..2 * dim];
            assert!(t1
                .data()
                .iter()
                .zip(whole)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn images_of_several_bands_match_a_direct_sum_forward_and_backward() {
        // 8 channels of 70x70: 4900 positions in bands of 4096. The reference
        // sums each window directly in f64 (no running sums, no bands).
        let (n, c, hw, size) = (2, 8, 70 * 70, 5usize);
        let (alpha, beta, k) = (0.3f64, 0.75f64, 2.0f64);
        let p = lrn(
            NormRegion::ACROSS_CHANNELS,
            size as u32,
            0.3,
            0.75,
            Some(2.0),
        );
        let (b, t) = (Blob::shared(&[n, c, 70, 70]), empty());
        fill_uniform(&b, -3.0, 3.0, 17);
        let mut l = layer(&p);
        run(l.as_mut(), &[b.clone()], &[t.clone()]);
        for (i, d) in t.borrow_mut().diff_mut().iter_mut().enumerate() {
            *d = ((i * 7919) % 2001) as f32 / 1000.0 - 1.0;
        }
        l.backward(&[t.clone()], &[true], &[b.clone()]).unwrap();
        let (b, t) = (b.borrow(), t.borrow());
        let (x, y, g, dx) = (b.data(), t.data(), t.diff(), b.diff());
        let at = |img: usize, ch: usize, p: usize| (img * c + ch) * hw + p;
        let win = |ch: usize| ch.saturating_sub(size / 2)..(ch + size / 2 + 1).min(c);
        let scale = |img, ch, p| {
            k + alpha / size as f64
                * win(ch)
                    .map(|i| (x[at(img, i, p)] as f64).powi(2))
                    .sum::<f64>()
        };
        let y_of = |q: usize, s: f64| x[q] as f64 * s.powf(-beta);
        let mut worst = (0f64, 0f64);
        for img in 0..n {
            for ch in 0..c {
                for p in 0..hw {
                    let j = at(img, ch, p);
                    let s = scale(img, ch, p);
                    let want_y = y_of(j, s);
                    let around: f64 = win(ch)
                        .map(|i| {
                            let q = at(img, i, p);
                            let si = scale(img, i, p);
                            g[q] as f64 * y_of(q, si) / si
                        })
                        .sum();
                    let want_dx = g[j] as f64 * s.powf(-beta)
                        - 2.0 * alpha * beta / size as f64 * x[j] as f64 * around;
                    worst.0 = worst
                        .0
                        .max((y[j] as f64 - want_y).abs() / want_y.abs().max(1e-3));
                    worst.1 = worst
                        .1
                        .max((dx[j] as f64 - want_dx).abs() / want_dx.abs().max(1e-3));
                }
            }
        }
        assert!(
            worst.0 < 1e-5 && worst.1 < 1e-4,
            "relative errors {worst:?}"
        );
    }

    #[test]
    fn gradient_across_channels() {
        grad(
            &lrn(NormRegion::ACROSS_CHANNELS, 3, 0.8, 0.75, Some(1.5)),
            &[2, 5, 2, 2],
        );
    }

    #[test]
    fn gradient_within_channel() {
        grad(
            &lrn(NormRegion::WITHIN_CHANNEL, 3, 0.8, 0.75, None),
            &[2, 2, 3, 3],
        );
    }

    #[test]
    fn even_local_size_and_wrong_axes_are_errors() {
        let e = crate::layers::create_layer(&lrn(NormRegion::ACROSS_CHANNELS, 4, 1.0, 0.75, None))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("odd values for local_size"), "{e}");
        let mut l = layer(&param("LRN", |_| {}));
        let e = setup_error(l.as_mut(), &[Blob::shared(&[2, 3])], &[empty()]);
        assert!(e.contains("4 axes"), "{e}");
    }

    #[test]
    fn running_window_sums_equal_direct_sums_for_windows_wider_than_the_axis() {
        // 3 rows of 4 values; half-widths 0..=4 cover windows from one row to
        // wider than the whole axis, where every row sums everything.
        let src: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
        for half in 0..=4usize {
            let mut got = vec![f32::NAN; 12];
            super::slide_rows(&src, &mut got, 3, 4, half);
            for i in 0..3usize {
                for j in 0..4 {
                    let want: f32 = (i.saturating_sub(half)..(i + half + 1).min(3))
                        .map(|r| src[r * 4 + j])
                        .sum();
                    assert!(
                        (got[i * 4 + j] - want).abs() < 1e-6,
                        "half {half} [{i},{j}]"
                    );
                }
            }
            let mut row = vec![f32::NAN; 4];
            super::slide_along(&src[..4], &mut row, half);
            for (j, &g) in row.iter().enumerate() {
                let want: f32 = src[j.saturating_sub(half)..(j + half + 1).min(4)]
                    .iter()
                    .sum();
                assert!((g - want).abs() < 1e-6, "row half {half} [{j}]");
            }
        }
    }

    #[test]
    fn specialised_powers_agree_with_powf() {
        for beta in [0.75f32, 0.5, 1.0, 0.6] {
            for s in [1.0f32, 1.5, 2.0, 7.25, 1e3] {
                let got = with_neg_pow!(beta, pow => pow(s));
                let want = s.powf(-beta);
                assert!(
                    (got - want).abs() <= 2e-7 * want.abs().max(1.0),
                    "{s}^-{beta}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn gradient_within_channel_wide_window_general_beta() {
        grad(
            &lrn(NormRegion::WITHIN_CHANNEL, 5, 0.8, 0.6, None),
            &[2, 2, 3, 4],
        );
        grad(
            &lrn(NormRegion::ACROSS_CHANNELS, 7, 0.5, 1.0, Some(1.0)),
            &[1, 3, 2, 2],
        );
    }
}
