//! Local Response Normalization: `y = x · scale^(−β)`.
//!
//! ACROSS_CHANNELS: `scale = k + α/n · Σ x²` over the n channels centred on
//! the channel (zero beyond the ends). WITHIN_CHANNEL: `scale = 1 + α/n² · Σ x²`
//! over the n×n square centred on the pixel — Caffe builds this one from
//! Power/Pooling/Eltwise layers with a shift of 1, so `k` does not enter it.
use crema_proto::caffe::lrnparameter::NormRegion;
use crema_proto::caffe::LayerParameter;
use rayon::prelude::*;

use super::conv_base::check_not_in_place;
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct LRNLayer {
    param: LayerParameter,
    size: usize,
    alpha: f32,
    beta: f32,
    k: f32,
    region: NormRegion,
    /// Image shape (channels, height, width).
    chw: (usize, usize, usize),
    /// The scale of every element, kept from forward for backward.
    scale: Vec<f32>,
    /// Backward's window sums, kept to avoid reallocating every pass.
    window: Vec<f32>,
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
            scale: Vec::new(),
            window: Vec::new(),
        }))
    }

    /// `dst = base + coeff · Σ_window src` for one image, over the region's window.
    fn window_sum(&self, src: &[f32], dst: &mut [f32], base: f32, coeff: f32) {
        let (c, h, w) = self.chw;
        let half = self.size / 2;
        let hw = h * w;
        dst.fill(base);
        match self.region {
            NormRegion::ACROSS_CHANNELS => {
                for ch in 0..c {
                    let out = &mut dst[ch * hw..(ch + 1) * hw];
                    for other in ch.saturating_sub(half)..(ch + half + 1).min(c) {
                        let s = &src[other * hw..(other + 1) * hw];
                        out.iter_mut().zip(s).for_each(|(o, &v)| *o += coeff * v);
                    }
                }
            }
            NormRegion::WITHIN_CHANNEL => {
                for ch in 0..c {
                    let (s, out) = (
                        &src[ch * hw..(ch + 1) * hw],
                        &mut dst[ch * hw..(ch + 1) * hw],
                    );
                    for y in 0..h {
                        for x in 0..w {
                            let mut acc = 0.0;
                            for yy in y.saturating_sub(half)..(y + half + 1).min(h) {
                                acc += s[yy * w + x.saturating_sub(half)
                                    ..yy * w + (x + half + 1).min(w)]
                                    .iter()
                                    .sum::<f32>();
                            }
                            out[y * w + x] += coeff * acc;
                        }
                    }
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
        self.scale.resize(shape.iter().product(), 0.0);
        self.window.resize(shape.iter().product(), 0.0);
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let dim = self.chw.0 * self.chw.1 * self.chw.2;
        if dim == 0 {
            return Ok(());
        }
        let mut scale = std::mem::take(&mut self.scale);
        let (coeff, base, beta) = (self.alpha / self.window_len(), self.base(), self.beta);
        let this = &*self;
        // Per image: squares go into the top first, then become y = x·scale^−β.
        let image = |((x, y), s): ((&[f32], &mut [f32]), &mut [f32])| {
            y.iter_mut().zip(x).for_each(|(o, &v)| *o = v * v);
            this.window_sum(y, s, base, coeff);
            y.iter_mut()
                .zip(x)
                .zip(s.iter())
                .for_each(|((o, &v), &sc)| *o = v * sc.powf(-beta));
        };
        b.data()
            .par_chunks(dim)
            .zip(t.data_mut().par_chunks_mut(dim))
            .zip(scale.par_chunks_mut(dim))
            .for_each(image);
        self.scale = scale;
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
        let dim = self.chw.0 * self.chw.1 * self.chw.2;
        if dim == 0 {
            return Ok(());
        }
        let ratio = 2.0 * self.alpha * self.beta / self.window_len();
        let beta = self.beta;
        let mut window = std::mem::take(&mut self.window);
        let this = &*self;
        let (y, g, s) = (t.data(), t.diff(), &self.scale[..]);
        // dx_j = g_j·s_j^−β − (2αβ/n)·x_j·Σ_{i: j ∈ win(i)} g_i·y_i/s_i; the
        // windows are symmetric, so the sum is a window sum around j. The
        // bottom diff holds g·y/s until its window sums are taken.
        let image = |(n, (bd, acc)): (usize, (&mut [f32], &mut [f32]))| {
            let r = n * dim..(n + 1) * dim;
            let (x, y, g, s) = (&x[r.clone()], &y[r.clone()], &g[r.clone()], &s[r]);
            bd.iter_mut()
                .zip(g.iter().zip(y).zip(s))
                .for_each(|(d, ((&g, &y), &s))| *d = g * y / s);
            this.window_sum(bd, acc, 0.0, 1.0);
            for (((d, &xv), &gv), (&sv, &av)) in
                bd.iter_mut().zip(x).zip(g).zip(s.iter().zip(acc.iter()))
            {
                *d = gv * sv.powf(-beta) - ratio * xv * av;
            }
        };
        bottom_diff
            .par_chunks_mut(dim)
            .zip(window.par_chunks_mut(dim))
            .enumerate()
            .for_each(image);
        self.window = window;
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
}
