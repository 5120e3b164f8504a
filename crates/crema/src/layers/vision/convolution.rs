//! Convolution (and, with `reverse`, Deconvolution): im2col + GEMM per image,
//! groups as separate products, 1x1 kernels straight to GEMM, images of a
//! batch spread over the rayon pool.
//!
//! Weights are `[num_output, channels/group, k...]` for Convolution and
//! `[channels, num_output/group, k...]` for Deconvolution, bias `[num_output]`,
//! exactly as Caffe stores them. Each bottom i produces top i with the same
//! weights.
use crema_proto::caffe::LayerParameter;

use super::conv_base::{
    check_not_in_place, for_each_run, make_params, with_scratch, workers, ConvGemm, Window,
};
use crate::backend::winograd::Winograd;
use crate::backend::{ConvGeometry, PackedA};
use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::layers::neuron::relu::relu;
use crate::layers::Layer;

/// Images per worker from which a convolution may run as Winograd.
const WINOGRAD_MIN_IMAGES: usize = 8;

pub struct ConvolutionLayer {
    param: LayerParameter,
    /// Deconvolution: bottom is the convolution's output, top its input.
    reverse: bool,
    blobs: Vec<SharedBlob>,
    channel_axis: usize,
    num_axes: usize,
    window: Window,
    channels: usize,
    num_output: usize,
    bias_term: bool,
    gemm: ConvGemm,
    /// Images per bottom (product of the axes before the channel axis).
    num: usize,
    bottom_dim: usize,
    top_dim: usize,
    /// Positions per top channel (the bias is added over these).
    top_spatial: usize,
    /// Workers for batch-parallel loops, and the lengths of the column,
    /// staging and weight-diff buffers each needs (`with_scratch`).
    runs: usize,
    scratch_lens: (usize, usize, usize),
    /// The weights packed for this call's products (W, or Wᵀ for the
    /// adjoint), kept so a steady-state iteration allocates nothing.
    packed: Vec<PackedA>,
    /// What `packed` holds: the weights' data version and whether it is Wᵀ;
    /// an inference loop over unchanged weights packs them once.
    packed_of: Option<(u64, bool)>,
    /// Images per GEMM (`ConvGemm::images_per_product`, at most a run's).
    batch: usize,
    /// A following in-place ReLU's negative slope, applied with the bias
    /// while the product's output is still in cache (`fuse_relu`).
    relu: Option<f32>,
    /// The Winograd plan when this convolution runs that way
    /// (`ConvGemm::winograd`); `packed` then holds its transformed filters,
    /// and `wino_tmp` is the transform's scratch.
    wino: Option<Winograd>,
    wino_tmp: Vec<f32>,
}

impl ConvolutionLayer {
    /// Convolution from `convolution_param`; parameters are checked in `setup`,
    /// when the bottom's number of axes is known.
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Self::with_direction(param, false)))
    }

    pub(super) fn with_direction(param: &LayerParameter, reverse: bool) -> Self {
        ConvolutionLayer {
            param: param.clone(),
            reverse,
            blobs: Vec::new(),
            channel_axis: 0,
            num_axes: 0,
            window: Window {
                kernel: vec![],
                stride: vec![],
                pad: vec![],
                dilation: vec![],
            },
            channels: 0,
            num_output: 0,
            bias_term: false,
            gemm: ConvGemm::default(),
            num: 0,
            bottom_dim: 0,
            top_dim: 0,
            top_spatial: 0,
            runs: 1,
            scratch_lens: (0, 0, 0),
            packed: Vec::new(),
            packed_of: None,
            batch: 1,
            relu: None,
            wino: None,
            wino_tmp: Vec::new(),
        }
    }

    /// Spatial output extent for `input` (the bottom's spatial shape).
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let w = &self.window;
        let mut out = Vec::with_capacity(input.len());
        for (i, &x) in input.iter().enumerate() {
            let extent = w.dilation[i] * (w.kernel[i] - 1) + 1;
            let o = if self.reverse {
                (w.stride[i] * x.saturating_sub(1) + extent)
                    .checked_sub(2 * w.pad[i])
                    .filter(|&o| o > 0 && x > 0)
            } else {
                (x + 2 * w.pad[i])
                    .checked_sub(extent)
                    .filter(|_| x > 0)
                    .map(|d| d / w.stride[i] + 1)
            };
            let Some(o) = o else {
                return Err(crate::Error::layer(
                    &self.param,
                    format!(
                        "spatial axis {i} of size {x} is incompatible with kernel extent {extent}, pad {} and stride {}",
                        w.pad[i], w.stride[i]
                    ),
                ));
            };
            out.push(o);
        }
        Ok(out)
    }
}

/// Adds each channel's bias to its planes of the images in `out` and/or
/// applies a fused ReLU, in one pass: the ReLU layer's own function, so the
/// bits are those of running it after.
fn bias_and_relu(
    out: &mut [f32],
    image_len: usize,
    plane_len: usize,
    bias: Option<&[f32]>,
    relu_slope: Option<f32>,
) {
    for img in out.chunks_exact_mut(image_len) {
        for (c, plane) in img.chunks_exact_mut(plane_len).enumerate() {
            let bv = bias.map(|b| b[c]);
            match (bv, relu_slope) {
                (Some(bv), Some(s)) => plane.iter_mut().for_each(|v| *v = relu(*v + bv, s)),
                (Some(bv), None) => plane.iter_mut().for_each(|v| *v += bv),
                (None, Some(s)) => plane.iter_mut().for_each(|v| *v = relu(*v, s)),
                (None, None) => {}
            }
        }
    }
}

/// Packs `weights` (transposed or not; Winograd's transformed filters when
/// `wino` is given) into `packed` unless it already holds that packing of
/// the same data version; `held` records what it holds.
fn pack_unless_held(
    gemm: &ConvGemm,
    wino: Option<(&Winograd, &mut Vec<f32>)>,
    weights: &Blob,
    transposed: bool,
    packed: &mut Vec<PackedA>,
    held: &mut Option<(u64, bool)>,
) {
    let want = weights.data_version().map(|v| (v, transposed));
    if want.is_none() || want != *held {
        match wino {
            Some((wg, tmp)) => wg.pack(weights.data(), transposed, packed, tmp),
            None => gemm.pack_weights(weights.data(), transposed, packed),
        }
        *held = want;
    }
}

impl Layer for ConvolutionLayer {
    fn type_name(&self) -> &'static str {
        if self.reverse {
            "Deconvolution"
        } else {
            "Convolution"
        }
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let lp = &self.param;
        let cp = lp.convolution_param.get_or_default();
        let b = bottom[0].borrow();
        self.channel_axis = b
            .canonical_axis(cp.axis() as i64)
            .map_err(|e| crate::Error::layer(lp, e.to_string()))?;
        self.num_axes = b.num_axes();
        let spatial_axes = self.num_axes - self.channel_axis - 1;
        self.window = Window::parse(lp, cp, spatial_axes)?;
        self.channels = b.shape()[self.channel_axis];
        self.num_output = cp.num_output() as usize;
        let group = cp.group() as usize;
        crate::ensure!(lp, self.num_output > 0, "num_output must be positive");
        crate::ensure!(lp, group > 0, "group must be positive");
        crate::ensure!(
            lp,
            self.channels > 0,
            "bottom has no channels on axis {}",
            self.channel_axis
        );
        crate::ensure!(
            lp,
            self.channels.is_multiple_of(group),
            "channels ({}) must be a multiple of group ({group})",
            self.channels
        );
        crate::ensure!(
            lp,
            self.num_output.is_multiple_of(group),
            "number of output ({}) should be multiples of group ({group})",
            self.num_output
        );
        check_not_in_place(lp, bottom, top)?;
        let (out_ch, in_ch) = if self.reverse {
            (self.channels, self.num_output)
        } else {
            (self.num_output, self.channels)
        };
        let w = &self.window;
        let is_1x1 =
            (0..spatial_axes).all(|i| w.kernel[i] == 1 && w.stride[i] == 1 && w.pad[i] == 0);
        let mut weight_shape = vec![out_ch, in_ch / group];
        weight_shape.extend_from_slice(&w.kernel);
        self.bias_term = cp.bias_term();
        self.gemm = ConvGemm {
            geom: ConvGeometry {
                channels: in_ch,
                input: vec![],
                kernel: w.kernel.clone(),
                pad: w.pad.clone(),
                stride: w.stride.clone(),
                dilation: w.dilation.clone(),
            },
            group,
            out_channels: out_ch,
            kernel_dim: weight_shape[1..].iter().product(),
            out_spatial: 0,
            is_1x1,
            force_nd: cp.force_nd_im2col(),
        };
        let bias_len = self.bias_term.then_some(self.num_output);
        self.blobs = make_params(
            lp,
            &weight_shape,
            bias_len,
            cp.weight_filler.get_or_default(),
            cp.bias_filler.get_or_default(),
        )?;
        Ok(())
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let lp = &self.param;
        let shape = bottom[0].borrow().shape().to_vec();
        crate::ensure!(
            lp,
            shape.len() == self.num_axes,
            "bottom num_axes may not change ({} → {})",
            self.num_axes,
            shape.len()
        );
        crate::ensure!(
            lp,
            shape[self.channel_axis] == self.channels,
            "input size incompatible with convolution kernel: {} channels, expected {}",
            shape[self.channel_axis],
            self.channels
        );
        for b in &bottom[1..] {
            crate::ensure!(
                lp,
                b.borrow().shape() == shape.as_slice(),
                "all inputs must have the same shape"
            );
        }
        check_not_in_place(lp, bottom, top)?;
        let first_spatial = self.channel_axis + 1;
        let input_spatial = &shape[first_spatial..];
        let output_spatial = self.output_shape(input_spatial)?;
        let mut top_shape = shape[..self.channel_axis].to_vec();
        top_shape.push(self.num_output);
        top_shape.extend_from_slice(&output_spatial);
        for t in top {
            t.borrow_mut().reshape(&top_shape);
        }
        self.num = shape[..self.channel_axis].iter().product();
        self.bottom_dim = shape[self.channel_axis..].iter().product();
        self.top_dim = top_shape[self.channel_axis..].iter().product();
        self.top_spatial = output_spatial.iter().product();
        // The GEMM runs from the convolution's input to its output.
        let (conv_in, conv_out) = if self.reverse {
            (&output_spatial[..], input_spatial)
        } else {
            (input_spatial, &output_spatial[..])
        };
        self.gemm.geom.input = conv_in.to_vec();
        self.gemm.out_spatial = conv_out.iter().product();
        let runs = workers().min(self.num).max(1);
        // Winograd runs 16 images side by side in vector lanes: a worker
        // with fewer than half of them would mostly multiply zeros
        // (AlexNet's conv2 at batch 1: 2.5 -> 23 ms).
        let per_run = self.num.div_ceil(runs);
        let (g, had) = (&self.gemm, self.wino.is_some());
        let wino = match self.wino.take() {
            _ if self.reverse || per_run < WINOGRAD_MIN_IMAGES => None,
            // The same geometry as the last pass: its plan still holds.
            Some(wg) if wg.is_for(&g.geom, g.group, g.out_channels) => Some(wg),
            _ => g.winograd(),
        };
        if wino.is_some() != had {
            // The packing held is the other path's.
            self.packed_of = None;
        }
        let per_product = match &wino {
            Some(wg) => wg.chunk_images(),
            None => self.gemm.images_per_product(),
        };
        self.batch = per_product.min(self.num.div_ceil(runs)).max(1);
        let (mut col_len, stage_len) = self.gemm.scratch_lens(self.batch);
        self.runs = runs;
        // Each worker's accumulator: the weight diff, the bias diff, then
        // Winograd's transformed filter diff.
        let mut param_len = self.blobs.iter().map(|b| b.borrow().count()).sum();
        if let Some(wg) = &wino {
            col_len = col_len.max(wg.scratch_len());
            param_len += wg.dweights_len();
        }
        self.wino = wino;
        self.scratch_lens = (col_len, stage_len, param_len);
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let weight_blob = self.blobs[0].borrow();
        let bias = self.bias_term.then(|| self.blobs[1].borrow());
        let (gemm, reverse, spatial) = (&self.gemm, self.reverse, self.top_spatial);
        let (bottom_dim, top_dim, batch) = (self.bottom_dim, self.top_dim, self.batch);
        // Deconvolution's forward is the convolution's adjoint: it takes Wᵀ.
        let wino = self.wino.as_ref();
        pack_unless_held(
            gemm,
            wino.map(|wg| (wg, &mut self.wino_tmp)),
            &weight_blob,
            reverse,
            &mut self.packed,
            &mut self.packed_of,
        );
        let (packed, num, relu_slope) = (&self.packed, self.num, self.relu);
        with_scratch(self.runs, self.scratch_lens, |scratch| {
            for (b, t) in bottom.iter().zip(top) {
                let b = b.borrow();
                let mut t = t.borrow_mut();
                let bias = bias.as_ref().map(|b| b.data());
                let bottom_data = b.data();
                for_each_run(num, scratch, t.data_mut(), top_dim, |first, ts, s| {
                    for (j, tc) in ts.chunks_mut(batch * top_dim).enumerate() {
                        let imgs = tc.len() / top_dim;
                        let n0 = first + j * batch;
                        let bc = &bottom_data[n0 * bottom_dim..(n0 + imgs) * bottom_dim];
                        if let Some(wg) = wino {
                            wg.forward(imgs, bc, packed, tc, &mut s.col, &mut s.offs);
                        } else if reverse {
                            gemm.backward_data_many(imgs, bc, packed, tc, s);
                        } else {
                            gemm.forward_many(imgs, bc, packed, tc, s);
                        }
                        bias_and_relu(tc, top_dim, spatial, bias, relu_slope);
                    }
                });
            }
        });
        Ok(())
    }

    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let (gemm, reverse, spatial, top_dim, batch) = (
            &self.gemm,
            self.reverse,
            self.top_spatial,
            self.top_dim,
            self.batch,
        );
        // Each worker's accumulator holds the weight diff, then the bias diff.
        let wlen = self.blobs[0].borrow().count();
        let plen: usize = self.blobs.iter().map(|b| b.borrow().count()).sum();
        let (runs, lens, num, bottom_dim) =
            (self.runs, self.scratch_lens, self.num, self.bottom_dim);
        let wino = self.wino.as_ref();
        if propagate_down.iter().any(|&d| d) {
            let weights = self.blobs[0].borrow();
            pack_unless_held(
                gemm,
                wino.map(|wg| (wg, &mut self.wino_tmp)),
                &weights,
                !reverse,
                &mut self.packed,
                &mut self.packed_of,
            );
        }
        let packed = &self.packed;
        let blobs = &self.blobs;
        let bias_term = self.bias_term;
        with_scratch(runs, lens, |scratch| {
            for s in scratch.iter_mut() {
                s.wdiff[..lens.2].fill(0.0);
            }
            for (i, (t, b)) in top.iter().zip(bottom).enumerate() {
                let t = t.borrow();
                let top_diff = t.diff();
                let down = propagate_down.get(i).copied().unwrap_or(false);
                let mut b = b.borrow_mut();
                // Bottom data is read and bottom diff written in the same pass.
                let (bottom_data, bottom_diff) = b.data_and_diff_mut();
                let shifted = if wino.is_some() { None } else { gemm.shifted() };
                for_each_run(num, scratch, bottom_diff, bottom_dim, |first, diffs, s| {
                    if let Some(sp) = &shifted {
                        // The whole run's weight gradient at once.
                        let imgs = diffs.len() / bottom_dim;
                        let td = &top_diff[first * top_dim..(first + imgs) * top_dim];
                        let bd = &bottom_data[first * bottom_dim..(first + imgs) * bottom_dim];
                        let (input, output) = if reverse { (td, bd) } else { (bd, td) };
                        gemm.weight_grad_run(sp, imgs, input, output, &mut s.wdiff[..wlen]);
                    }
                    for (j, dc) in diffs.chunks_mut(batch * bottom_dim).enumerate() {
                        let imgs = dc.len() / bottom_dim;
                        let n0 = first + j * batch;
                        let td = &top_diff[n0 * top_dim..(n0 + imgs) * top_dim];
                        let bd = &bottom_data[n0 * bottom_dim..(n0 + imgs) * bottom_dim];
                        if bias_term {
                            let acc = &mut s.wdiff[wlen..wlen + top_dim / spatial];
                            for img in td.chunks_exact(top_dim) {
                                for (plane, a) in img.chunks_exact(spatial).zip(acc.iter_mut()) {
                                    *a += crate::backend::sum(plane);
                                }
                            }
                        }
                        if let Some(wg) = wino {
                            let du = &mut s.wdiff[plen..lens.2];
                            let (pk, dx) = if down {
                                (Some(&packed[..]), Some(&mut *dc))
                            } else {
                                (None, None)
                            };
                            wg.backward(imgs, bd, td, pk, dx, du, &mut s.col, &mut s.offs);
                            continue;
                        }
                        // Deconvolution: its input (for the GEMM) is the top.
                        let (input, output) = if reverse { (td, bd) } else { (bd, td) };
                        if shifted.is_none() {
                            gemm.weight_grad_many(imgs, input, output, s);
                        }
                        if down && reverse {
                            gemm.forward_many(imgs, td, packed, dc, s);
                        } else if down {
                            gemm.backward_data_many(imgs, td, packed, dc, s);
                        }
                    }
                });
            }
            if let Some(wg) = wino {
                for s in scratch.iter_mut() {
                    let (wd, du) = s.wdiff.split_at_mut(plen);
                    wg.finish_weight_grad(&du[..lens.2 - plen], &mut wd[..wlen], &mut s.col);
                }
            }
            // Sum the workers' accumulators in a fixed order into the diffs.
            for (blob, at) in blobs.iter().zip([0, wlen]) {
                let mut p = blob.borrow_mut();
                let d = p.diff_mut();
                for s in scratch.iter() {
                    crate::backend::axpy(1.0, &s.wdiff[at..at + d.len()], d);
                }
            }
        });
        Ok(())
    }

    fn fuse_relu(&mut self, negative_slope: Option<f32>) -> bool {
        self.relu = negative_slope;
        true
    }

    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn equal_num_bottom_top_blobs(&self) -> bool {
        true
    }
}
