//! What Convolution and Deconvolution share (Caffe's BaseConvolutionLayer):
//! reading the kernel/stride/pad/dilation rules, the weight and bias blobs, and
//! the three per-image GEMM steps. Deconvolution is convolution with the roles
//! of input and output swapped ("reverse dimensions"): its forward is the
//! convolution's backward-data step and vice versa.
use std::rc::Rc;

use crema_proto::caffe::{ConvolutionParameter, LayerParameter};
use rayon::prelude::*;

use crate::backend::{
    col2im, im2col, pack_a, sgemm, sgemm_packed, ConvGeometry, PackedA, Transpose,
};
use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};
use crate::fillers;

/// The per-image GEMM plan: sizes of one group's product and where the groups
/// sit in the weights, the column buffer and the output.
#[derive(Clone, Debug, Default)]
pub struct ConvGemm {
    /// Window over the convolution's input (bottom for Convolution, top for
    /// Deconvolution); `channels` is the input's channel count.
    pub geom: ConvGeometry,
    pub group: usize,
    pub out_channels: usize,
    /// Input channels per group × kernel taps: one group's K.
    pub kernel_dim: usize,
    /// Output positions: the N of every product.
    pub out_spatial: usize,
    /// Kernel 1x1, stride 1, pad 0: the input already is the column buffer.
    pub is_1x1: bool,
    pub force_nd: bool,
}

impl ConvGemm {
    /// Length of the column buffer for one image.
    pub fn col_len(&self) -> usize {
        if self.is_1x1 {
            0
        } else {
            self.kernel_dim * self.group * self.out_spatial
        }
    }
    fn rows_per_group(&self) -> usize {
        self.out_channels / self.group
    }
    fn weight_offset(&self) -> usize {
        self.rows_per_group() * self.kernel_dim
    }
    fn col_offset(&self) -> usize {
        self.kernel_dim * self.out_spatial
    }
    fn output_offset(&self) -> usize {
        self.rows_per_group() * self.out_spatial
    }

    /// Packs each group's W (for `forward`) or Wᵀ (for `backward_data`) once,
    /// so the products of every image of a batch share one packing.
    pub fn pack_weights(&self, weights: &[f32], transposed: bool, into: &mut Vec<PackedA>) {
        into.resize_with(self.group, PackedA::default);
        let (rows, k) = (self.rows_per_group(), self.kernel_dim);
        for (g, packed) in into.iter_mut().enumerate() {
            let w = &weights[g * self.weight_offset()..];
            if transposed {
                pack_a(Transpose::Yes, k, rows, w, packed);
            } else {
                pack_a(Transpose::No, rows, k, w, packed);
            }
        }
    }

    /// output = W ⊛ input for one image (overwrites output); `w` is
    /// `pack_weights(.., false, ..)`.
    pub fn forward(&self, input: &[f32], w: &[PackedA], output: &mut [f32], col: &mut [f32]) {
        let col: &[f32] = if self.is_1x1 {
            input
        } else {
            im2col(&self.geom, input, col, self.force_nd);
            col
        };
        for (g, wg) in w.iter().enumerate() {
            sgemm_packed(
                wg,
                Transpose::No,
                self.out_spatial,
                1.0,
                &col[g * self.col_offset()..],
                0.0,
                &mut output[g * self.output_offset()..],
            );
        }
    }

    /// input = Wᵀ ⊛ output for one image (overwrites input): the adjoint of
    /// `forward`; `wt` is `pack_weights(.., true, ..)`.
    pub fn backward_data(
        &self,
        output: &[f32],
        wt: &[PackedA],
        input: &mut [f32],
        col: &mut [f32],
    ) {
        let target: &mut [f32] = if self.is_1x1 { input } else { col };
        for (g, wg) in wt.iter().enumerate() {
            sgemm_packed(
                wg,
                Transpose::No,
                self.out_spatial,
                1.0,
                &output[g * self.output_offset()..],
                0.0,
                &mut target[g * self.col_offset()..],
            );
        }
        if !self.is_1x1 {
            col2im(&self.geom, col, input, self.force_nd);
        }
    }

    /// wdiff += output ⊗ im2col(input) for one image.
    pub fn weight_grad(&self, input: &[f32], output: &[f32], wdiff: &mut [f32], col: &mut [f32]) {
        let col: &[f32] = if self.is_1x1 {
            input
        } else {
            im2col(&self.geom, input, col, self.force_nd);
            col
        };
        for g in 0..self.group {
            sgemm(
                Transpose::No,
                Transpose::Yes,
                self.rows_per_group(),
                self.kernel_dim,
                self.out_spatial,
                1.0,
                &output[g * self.output_offset()..],
                &col[g * self.col_offset()..],
                1.0,
                &mut wdiff[g * self.weight_offset()..],
            );
        }
    }
}

/// One worker's reusable buffers: a column buffer and a private weight-diff
/// accumulator, so images can be processed in parallel without sharing.
#[derive(Default)]
pub struct Scratch {
    pub col: Vec<f32>,
    pub wdiff: Vec<f32>,
}

/// Splits the batch into one contiguous run of images per worker and calls
/// `f(first_image, out, scratch)` for each, where `out` is the run's part of
/// `b` (`b_dim` values per image); `f` reads its inputs by image index. With
/// one run it stays on the calling thread, so the GEMMs inside may use the
/// whole pool themselves.
pub fn for_each_run(
    num: usize,
    scratch: &mut [Scratch],
    b: &mut [f32],
    b_dim: usize,
    f: impl Fn(usize, &mut [f32], &mut Scratch) + Sync,
) {
    let runs = scratch.len().min(num).max(1);
    let per = num.div_ceil(runs).max(1);
    if runs == 1 || b_dim == 0 {
        f(0, &mut b[..num * b_dim], &mut scratch[0]);
        return;
    }
    b[..num * b_dim]
        .par_chunks_mut(per * b_dim)
        .zip(scratch.par_iter_mut())
        .enumerate()
        .for_each(|(i, (bc, s))| f(i * per, bc, s));
}

/// Kernel, stride, pad and dilation per spatial axis, by Caffe's rules: either
/// the repeated field (once, or once per axis) or the 2-D `_h`/`_w` pair.
pub struct Window {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad: Vec<usize>,
    pub dilation: Vec<usize>,
}

/// `what` names the repeated field, `hw` the prefix of its `_h`/`_w` pair.
fn per_axis(
    lp: &LayerParameter,
    what: &str,
    hw_name: &str,
    repeated: &[u32],
    hw: Option<(u32, u32)>,
    default: Option<u32>,
    axes: usize,
) -> Result<Vec<usize>> {
    if let Some((h, w)) = hw {
        crate::ensure!(
            lp,
            axes == 2,
            "{hw_name}_h & {hw_name}_w can only be used for 2D convolution"
        );
        crate::ensure!(
            lp,
            repeated.is_empty(),
            "either {what} or {hw_name}_h/w should be specified; not both"
        );
        return Ok(vec![h as usize, w as usize]);
    }
    let n = repeated.len();
    let ok = n == 1 || n == axes || (n == 0 && default.is_some());
    crate::ensure!(
        lp,
        ok,
        "{what} must be specified once, or once per spatial dimension ({what} specified {n} times; {axes} spatial dims)"
    );
    Ok((0..axes).map(|i| if n == 0 { default.unwrap_or(0) } else { repeated[if n == 1 { 0 } else { i }] } as usize).collect())
}

impl Window {
    /// Reads the window of a ConvolutionParameter for `axes` spatial axes.
    pub fn parse(lp: &LayerParameter, cp: &ConvolutionParameter, axes: usize) -> Result<Window> {
        let pair = |has: bool, h: u32, w: u32| has.then_some((h, w));
        let kernel = per_axis(
            lp,
            "kernel_size",
            "kernel",
            &cp.kernel_size,
            pair(
                cp.has_kernel_h() || cp.has_kernel_w(),
                cp.kernel_h(),
                cp.kernel_w(),
            ),
            None,
            axes,
        )?;
        crate::ensure!(
            lp,
            kernel.iter().all(|&k| k > 0),
            "filter dimensions must be nonzero (kernel {kernel:?})"
        );
        let stride = per_axis(
            lp,
            "stride",
            "stride",
            &cp.stride,
            pair(
                cp.has_stride_h() || cp.has_stride_w(),
                cp.stride_h(),
                cp.stride_w(),
            ),
            Some(1),
            axes,
        )?;
        crate::ensure!(
            lp,
            stride.iter().all(|&s| s > 0),
            "stride dimensions must be nonzero (stride {stride:?})"
        );
        let pad = per_axis(
            lp,
            "pad",
            "pad",
            &cp.pad,
            pair(cp.has_pad_h() || cp.has_pad_w(), cp.pad_h(), cp.pad_w()),
            Some(0),
            axes,
        )?;
        let dilation = per_axis(
            lp,
            "dilation",
            "dilation",
            &cp.dilation,
            None,
            Some(1),
            axes,
        )?;
        crate::ensure!(
            lp,
            dilation.iter().all(|&d| d > 0),
            "dilation must be nonzero (dilation {dilation:?})"
        );
        Ok(Window {
            kernel,
            stride,
            pad,
            dilation,
        })
    }
}

/// Creates the weight (and bias) blobs with Caffe's shapes and fills them.
pub fn make_params(
    lp: &LayerParameter,
    weight_shape: &[usize],
    bias_len: Option<usize>,
    weight_filler: &crema_proto::caffe::FillerParameter,
    bias_filler: &crema_proto::caffe::FillerParameter,
) -> Result<Vec<SharedBlob>> {
    let wrap = |which: &str, e: Error| Error::layer(lp, format!("{which}: {e}"));
    let mut w = Blob::new(weight_shape);
    fillers::fill(weight_filler, &mut w).map_err(|e| wrap("weight_filler", e))?;
    let mut blobs = vec![Rc::new(std::cell::RefCell::new(w))];
    if let Some(n) = bias_len {
        let mut b = Blob::new(&[n]);
        fillers::fill(bias_filler, &mut b).map_err(|e| wrap("bias_filler", e))?;
        blobs.push(Rc::new(std::cell::RefCell::new(b)));
    }
    Ok(blobs)
}

/// Rejects a top that is also a bottom: these layers cannot run in place.
pub fn check_not_in_place(
    lp: &LayerParameter,
    bottom: &[SharedBlob],
    top: &[SharedBlob],
) -> Result<()> {
    for b in bottom {
        crate::ensure!(
            lp,
            !top.iter().any(|t| Rc::ptr_eq(b, t)),
            "cannot run in place (a top is also a bottom)"
        );
    }
    Ok(())
}

/// Number of workers for batch-parallel loops.
pub fn workers() -> usize {
    rayon::current_num_threads().max(1)
}
