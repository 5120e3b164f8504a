//! Pooling over 2-D windows: MAX (optionally exposing the argmax as a second
//! top), AVE, and STOCHASTIC (training samples one activation per window with
//! probability proportional to its value; testing takes the value-weighted
//! average). Output size rounds up by default (Caffe's CEIL round_mode) and a
//! last window that would start inside the bottom/right padding is dropped.
//! AVE divides by the window size counted with padding (but not past it), as
//! Caffe does.
use crema_proto::caffe::pooling_parameter::{PoolMethod, RoundMode};
use crema_proto::caffe::{LayerParameter, Phase};
use rand::Rng;
use rayon::prelude::*;

use super::conv_base::check_not_in_place;
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
        let h0 = (ph * self.stride.0) as isize - self.pad.0 as isize;
        let w0 = (pw * self.stride.1) as isize - self.pad.1 as isize;
        let h1 = (h0 + self.kernel.0 as isize).min((self.height + self.pad.0) as isize);
        let w1 = (w0 + self.kernel.1 as isize).min((self.width + self.pad.1) as isize);
        let area = ((h1 - h0) * (w1 - w0)) as usize;
        let rows = h0.max(0) as usize..(h1 as usize).min(self.height);
        let cols = w0.max(0) as usize..(w1 as usize).min(self.width);
        (rows, cols, area)
    }
    fn plane(&self) -> usize {
        self.height * self.width
    }
    fn pooled(&self) -> usize {
        self.pooled_h * self.pooled_w
    }
}

pub struct PoolingLayer {
    param: LayerParameter,
    method: PoolMethod,
    global: bool,
    win: Win,
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
    if bottom.len() >= PARALLEL_MIN && rayon::current_thread_index().is_none() {
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
            PoolMethod::MAX => for_planes(
                &win,
                b.data(),
                t.data_mut(),
                &mut self.mask,
                |bp, tp, mp| {
                    for ph in 0..win.pooled_h {
                        for pw in 0..win.pooled_w {
                            let (rows, cols, _) = win.window(ph, pw);
                            let (mut best, mut arg) =
                                (MAX_START, rows.start * win.width + cols.start);
                            for y in rows {
                                for x in cols.clone() {
                                    let v = bp[y * win.width + x];
                                    if v > best {
                                        (best, arg) = (v, y * win.width + x);
                                    }
                                }
                            }
                            tp[ph * win.pooled_w + pw] = best;
                            mp[ph * win.pooled_w + pw] = arg as f32;
                        }
                    }
                },
            ),
            PoolMethod::AVE => {
                for_planes(&win, b.data(), t.data_mut(), &mut self.mask, |bp, tp, _| {
                    for ph in 0..win.pooled_h {
                        for pw in 0..win.pooled_w {
                            let (rows, cols, area) = win.window(ph, pw);
                            let sum: f32 = rows
                                .flat_map(|y| bp[y * win.width..][cols.clone()].iter())
                                .sum();
                            tp[ph * win.pooled_w + pw] = sum / area as f32;
                        }
                    }
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
        let plane = |(((bd, x), td), mp): PlaneGrads| {
            bd.fill(0.0);
            for ph in 0..win.pooled_h {
                for pw in 0..win.pooled_w {
                    let o = ph * win.pooled_w + pw;
                    let g = td[o];
                    let (rows, cols, area) = win.window(ph, pw);
                    match method {
                        // The argmax / sampled tap takes the whole gradient.
                        PoolMethod::MAX => bd[mp[o] as usize] += g,
                        PoolMethod::STOCHASTIC if train => bd[mp[o] as usize] += g,
                        PoolMethod::AVE => {
                            for y in rows {
                                bd[y * win.width..][cols.clone()]
                                    .iter_mut()
                                    .for_each(|v| *v += g / area as f32);
                            }
                        }
                        PoolMethod::STOCHASTIC => {
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
        if bottom_data.len() >= PARALLEL_MIN && rayon::current_thread_index().is_none() {
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
