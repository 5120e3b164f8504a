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

/// A worker's buffers: two images (the scale and a window sum) and one h·w
/// plane for the separable square window.
#[derive(Default)]
struct Scratch {
    scale: Vec<f32>,
    sum: Vec<f32>,
    plane: Vec<f32>,
}

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

    /// Forward of one image, its positions in `bands` bands on the pool. Each
    /// position sees the same operations as in the whole-image pass.
    fn forward_in_bands(&mut self, x: &[f32], y: &mut [f32]) {
        let (c, h, w) = self.chw;
        let (hw, half, beta) = (h * w, self.size / 2, self.beta);
        let (coeff, base) = (self.alpha / self.window_len(), self.base());
        let parts = self.bands(1);
        let bw = hw.div_ceil(parts);
        let out = SendPtr(y.as_mut_ptr());
        assert!(x.len() >= c * hw && y.len() >= c * hw);
        self.scratch
            .par_iter_mut()
            .take(parts)
            .enumerate()
            .for_each(|(i, s)| {
                let p0 = i * bw;
                if p0 >= hw {
                    return;
                }
                let len = bw.min(hw - p0);
                let (sq, sc) = (&mut s.sum[..c * len], &mut s.scale[..c * len]);
                for (ch, o) in sq.chunks_exact_mut(len).enumerate() {
                    let xs = &x[ch * hw + p0..][..len];
                    o.iter_mut().zip(xs).for_each(|(o, &v)| *o = v * v);
                }
                slide_rows(sq, sc, c, len, half);
                sc.iter_mut().for_each(|v| *v = base + coeff * *v);
                with_neg_pow!(beta, pow => {
                    for (ch, scs) in sc.chunks_exact(len).enumerate() {
                        let at = ch * hw + p0;
                        // SAFETY: band i alone writes positions p0..p0+len of
                        // every channel of y, which holds c·hw values.
                        let ys = unsafe { std::slice::from_raw_parts_mut(out.get().add(at), len) };
                        for ((o, &v), &scv) in ys.iter_mut().zip(&x[at..at + len]).zip(scs) {
                            *o = v * pow(scv);
                        }
                    }
                });
            });
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
        for s in &mut self.scratch {
            s.scale.resize(dim, 0.0);
            s.sum.resize(dim, 0.0);
            s.plane.resize(shape[2] * shape[3], 0.0);
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
