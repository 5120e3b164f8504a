//! What Convolution and Deconvolution share (Caffe's BaseConvolutionLayer):
//! reading the kernel/stride/pad/dilation rules, the weight and bias blobs, and
//! the three per-image GEMM steps. Deconvolution is convolution with the roles
//! of input and output swapped ("reverse dimensions"): its forward is the
//! convolution's backward-data step and vice versa.
use std::cell::RefCell;
use std::rc::Rc;

use crema_proto::caffe::{ConvolutionParameter, LayerParameter};
use rayon::prelude::*;

use crate::backend::pool;
use crate::backend::shifted::{self, RunCols, ShiftedPlanes};
use crate::backend::winograd::Winograd;
use crate::backend::{
    col2im, col2im_2d_ld, im2col, im2col_2d_ld, mmm_reads_rows, mmm_tile_cols, pack_a, sgemm,
    sgemm_cols_t, sgemm_packed, sgemm_packed_cols, sgemm_packed_rows, Cols, ConvGeometry,
    ImplicitCols, PackedA, Transpose,
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

/// Products narrower than this many columns batch several images side by
/// side: a 13x13 output alone is 169 columns, 5.3 tiles of 32 and a weight
/// matrix streamed per image; LeNet's 8x8 is 64.
const BATCH_COLUMNS: usize = 512;
/// Output channels per group up to which the weight gradient is taken as
/// dot products over shifted planes (`ConvGemm::shifted`).
const SHIFTED_MAX_OUTPUTS: usize = 32;
/// Values of a group's shifted planes up to which the forward reads its
/// columns in place (`ConvGemm::forward_planes`): 32 KiB.
const SHIFTED_MAX_PLANES: usize = 1 << 13;
/// Values of a batched product's shifted planes up to which it packs its
/// strips from them (`ConvGemm::run_planes`): 512 KiB, LeNet conv2's 8
/// images take 300 KiB; AlexNet's conv3 takes 600 KiB an image.
const RUN_PLANES_MAX: usize = 1 << 17;
/// Input and output channels per group from which `ConvGemm::winograd`
/// takes a 5×5 convolution.
const WINOGRAD_MIN_CHANNELS: usize = 8;
/// A batched column buffer holds at most this many values (16 MiB).
const BATCH_COL_MAX: usize = 1 << 22;

impl ConvGemm {
    /// Images per product: 1 for wide outputs (and N-D geometries), else
    /// enough to reach `BATCH_COLUMNS` columns within `BATCH_COL_MAX`.
    pub fn images_per_product(&self) -> usize {
        if self.force_nd || self.geom.input.len() != 2 || self.out_spatial >= BATCH_COLUMNS {
            return 1;
        }
        let per_image = self.kernel_dim * self.group * self.out_spatial;
        let by_memory = BATCH_COL_MAX / per_image.max(1);
        BATCH_COLUMNS
            .div_ceil(self.out_spatial.max(1))
            .min(by_memory)
            .max(1)
    }

    /// Scratch lengths for products of `g` images: the column buffer and the
    /// staging buffer for their outputs side by side.
    pub fn scratch_lens(&self, g: usize) -> (usize, usize) {
        if g <= 1 {
            (self.col_len(), 0)
        } else {
            (
                self.kernel_dim * self.group * self.out_spatial * g,
                self.out_channels * self.out_spatial * g,
            )
        }
    }

    fn in_len(&self) -> usize {
        self.geom.image_len()
    }
    fn out_len(&self) -> usize {
        self.out_channels * self.out_spatial
    }

    /// `forward` for `imgs` consecutive images (at most `images_per_product`)
    /// as one product per group: their columns side by side, the outputs
    /// staged in `s.stage` and copied to each image.
    pub fn forward_many(
        &self,
        imgs: usize,
        input: &[f32],
        w: &[PackedA],
        output: &mut [f32],
        s: &mut Scratch,
    ) {
        if imgs == 1 || self.forward_planes().is_some() {
            // Over shifted planes each image is its own product.
            let (il, ol) = (self.in_len(), self.out_len());
            let images = input.chunks(il).zip(output.chunks_mut(ol)).take(imgs);
            for (im, out) in images {
                self.forward(im, w, out, &mut s.col);
            }
            return;
        }
        let n = imgs * self.out_spatial;
        if let Some(sp) = self.run_planes(imgs) {
            let (il, stage) = (self.in_len(), &mut s.stage);
            shifted::with_planes(&sp, self.group, input, il, imgs, |planes, offs, glen| {
                if !mmm_reads_rows() {
                    let cols = |g| self.run_cols(&sp, planes, offs, glen, g);
                    return self.forward_cols(cols, w, n, stage);
                }
                // Each image's column rows read in place, no strip packed:
                // LeNet conv2 0.94 → 0.83 ms against strips copied from the
                // runs (interleaved best of 8, twice).
                let (ps, plen) = (self.out_spatial, sp.image_len());
                for j in 0..imgs {
                    let out = &mut stage[j * ps..];
                    self.forward_rows(&planes[j * plen..], offs, glen, w, out, n);
                }
            });
            return self.unstage(imgs, &s.stage, output);
        }
        if let Some(gg) = self.implicit_geom() {
            self.forward_cols(|g| self.group_cols(&gg, input, g), w, n, &mut s.stage);
            return self.unstage(imgs, &s.stage, output);
        }
        self.columns(imgs, input, &mut s.col);
        let rows = self.rows_per_group();
        for (g, wg) in w.iter().enumerate() {
            let col = &s.col[g * self.kernel_dim * n..];
            sgemm_packed(
                wg,
                Transpose::No,
                n,
                1.0,
                col,
                0.0,
                &mut s.stage[g * rows * n..],
            );
        }
        self.unstage(imgs, &s.stage, output);
    }

    /// `backward_data` for `imgs` consecutive images, batched like
    /// `forward_many`.
    pub fn backward_data_many(
        &self,
        imgs: usize,
        output: &[f32],
        wt: &[PackedA],
        input: &mut [f32],
        s: &mut Scratch,
    ) {
        if imgs == 1 {
            return self.backward_data(output, wt, input, &mut s.col);
        }
        if self.reads_output_rows() {
            return self.backward_data_rows(imgs, output, wt, input, s);
        }
        let n = imgs * self.out_spatial;
        self.stage(imgs, output, &mut s.stage);
        let rows = self.rows_per_group();
        for (g, wg) in wt.iter().enumerate() {
            let col = &mut s.col[g * self.kernel_dim * n..];
            sgemm_packed(
                wg,
                Transpose::No,
                n,
                1.0,
                &s.stage[g * rows * n..],
                0.0,
                col,
            );
        }
        let (il, sp) = (self.in_len(), self.out_spatial);
        for (j, im) in input.chunks_exact_mut(il).take(imgs).enumerate() {
            col2im_2d_ld(&self.geom, &s.col[j * sp..], n, im);
        }
    }

    /// Whether `backward_data_many` reads each image's output rows in place
    /// (`backward_data_rows`): a 2-D window, not 1x1, a kernel that reads B
    /// in place, and outputs a whole number of its tiles wide, so the tile
    /// reads of the last row stay inside the blob.
    fn reads_output_rows(&self) -> bool {
        !self.is_1x1
            && !self.force_nd
            && self.geom.input.len() == 2
            && mmm_reads_rows()
            && self.out_spatial.is_multiple_of(mmm_tile_cols())
    }

    /// `backward_data_many` image by image, each group's product reading
    /// the image's output diff rows where they lie: no staging copy, no B
    /// strips packed. LeNet conv2 backward 1.98 → 1.86 and 2.00 → 1.93 ms at
    /// batch 64 against the staged product of 8 images (interleaved best
    /// of 14, twice).
    fn backward_data_rows(
        &self,
        imgs: usize,
        output: &[f32],
        wt: &[PackedA],
        input: &mut [f32],
        s: &mut Scratch,
    ) {
        let (rows, ps) = (self.rows_per_group(), self.out_spatial);
        s.offs.clear();
        s.offs.extend((0..rows).map(|k| k * ps));
        let (il, ol) = (self.in_len(), self.out_len());
        for (j, im) in input.chunks_exact_mut(il).take(imgs).enumerate() {
            for (g, wg) in wt.iter().enumerate() {
                let dy = &output[j * ol + g * rows * ps..];
                let col = &mut s.col[g * self.kernel_dim * ps..];
                sgemm_packed_rows(wg, dy, &s.offs, ps, col, ps);
            }
            col2im_2d_ld(&self.geom, &s.col, ps, im);
        }
    }

    /// `weight_grad` into `s.wdiff`, summed over `imgs` consecutive images in
    /// one product per group (the images' positions are one long K).
    pub fn weight_grad_many(&self, imgs: usize, input: &[f32], output: &[f32], s: &mut Scratch) {
        if imgs == 1 {
            return self.weight_grad(input, output, &mut s.wdiff, &mut s.col);
        }
        let n = imgs * self.out_spatial;
        self.stage(imgs, output, &mut s.stage);
        if let Some(sp) = self.run_planes(imgs) {
            let (il, stage, wdiff) = (self.in_len(), &s.stage, &mut s.wdiff);
            return shifted::with_planes(&sp, self.group, input, il, imgs, |planes, offs, glen| {
                self.weight_grad_cols(
                    |g| self.run_cols(&sp, planes, offs, glen, g),
                    stage,
                    n,
                    wdiff,
                )
            });
        }
        if let Some(gg) = self.implicit_geom() {
            let cols = |g| self.group_cols(&gg, input, g);
            return self.weight_grad_cols(cols, &s.stage, n, &mut s.wdiff);
        }
        self.columns(imgs, input, &mut s.col);
        let rows = self.rows_per_group();
        for g in 0..self.group {
            sgemm(
                Transpose::No,
                Transpose::Yes,
                rows,
                self.kernel_dim,
                n,
                1.0,
                &s.stage[g * rows * n..],
                &s.col[g * self.kernel_dim * n..],
                1.0,
                &mut s.wdiff[g * self.weight_offset()..],
            );
        }
    }

    /// The shifted planes when the weight gradient of a worker's whole run of
    /// images is better taken as dot products (`weight_grad_run`): a 2-D
    /// window with vertical stride 1, on a CPU with the vector kernel, and
    /// few output channels per group. The packed product transposes every
    /// column value once for all its output channels; at LeNet's conv1 (20)
    /// that cost 2.6x the dot products, at its conv2 (50) they break even,
    /// and at AlexNet's (128 to 384) the packed product is 1.4x faster.
    pub fn shifted(&self) -> Option<ShiftedPlanes> {
        if self.force_nd || !shifted::fast() || self.rows_per_group() > SHIFTED_MAX_OUTPUTS {
            return None;
        }
        ShiftedPlanes::new(&self.geom)
    }

    /// The Winograd plan when it is the faster way: 5×5 kernels with stride
    /// 1 and enough channels on both sides for the 64 point-wise products
    /// to be real products (LeNet's conv2: 20 → 50). `CREMA_WINOGRAD=0`
    /// turns it off (to compare).
    pub fn winograd(&self) -> Option<Winograd> {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let enabled =
            *ENABLED.get_or_init(|| std::env::var("CREMA_WINOGRAD").as_deref() != Ok("0"));
        let per_group = self.geom.channels / self.group.max(1);
        if !enabled
            || self.force_nd
            || self.geom.kernel != [5, 5]
            || per_group < WINOGRAD_MIN_CHANNELS
            || self.rows_per_group() < WINOGRAD_MIN_CHANNELS
        {
            return None;
        }
        Winograd::new(&self.geom, self.group, self.out_channels)
    }

    /// The shifted planes when the forward reads its column rows in place
    /// from them (`forward_shifted`): a 2-D window with vertical stride 1,
    /// not 1x1 (whose input already is the column buffer), on a CPU whose
    /// kernel reads rows in place, and a group's planes small enough to
    /// stay in L1 while every tile reads them. No strip is packed, but
    /// each image is its own product: LeNet's conv1 (13 KiB of planes)
    /// went 0.56-0.61 → 0.46-0.50 ms at batch 64, its conv2 (38 KiB) came
    /// out 0 to 12 % slower, and AlexNet's conv2 to conv5 (0.6 to 0.8 MiB)
    /// were 1.1 to 1.3x slower.
    fn forward_planes(&self) -> Option<ShiftedPlanes> {
        if self.force_nd || self.is_1x1 || !mmm_reads_rows() {
            return None;
        }
        ShiftedPlanes::new(&self.geom)
            .filter(|sp| sp.image_len() / self.group <= SHIFTED_MAX_PLANES)
    }

    /// output = W ⊛ input for one image, over the image's shifted planes.
    fn forward_shifted(
        &self,
        sp: &ShiftedPlanes,
        input: &[f32],
        w: &[PackedA],
        output: &mut [f32],
    ) {
        shifted::with_planes(sp, self.group, input, 0, 1, |planes, offs, group_len| {
            self.forward_rows(planes, offs, group_len, w, output, self.out_spatial)
        })
    }

    /// output = W ⊛ one image whose shifted planes are `planes` (`offs` and
    /// `group_len` from `with_planes`): each group's product reads its
    /// column rows in place, and output channel rows lie `ldc` apart.
    fn forward_rows(
        &self,
        planes: &[f32],
        offs: &[usize],
        group_len: usize,
        w: &[PackedA],
        output: &mut [f32],
        ldc: usize,
    ) {
        let (n, rows) = (self.out_spatial, self.rows_per_group());
        for (g, wg) in w.iter().enumerate() {
            let out = &mut output[g * rows * ldc..];
            sgemm_packed_rows(wg, &planes[g * group_len..], offs, n, out, ldc);
        }
    }

    /// wdiff += output ⊗ im2col(input) summed over `imgs` consecutive images,
    /// as dot products over the shifted planes `sp` (from `shifted`).
    pub fn weight_grad_run(
        &self,
        sp: &ShiftedPlanes,
        imgs: usize,
        input: &[f32],
        output: &[f32],
        wdiff: &mut [f32],
    ) {
        let (group, channels) = (self.group, self.out_channels);
        let (in_len, out_len) = (self.in_len(), self.out_len());
        shifted::weight_grad_shifted(
            sp, group, channels, input, in_len, output, out_len, imgs, wdiff,
        );
    }

    /// wdiff += output ⊗ columns for `n` columns of images side by side
    /// (`output` holds each output channel's `n` values), group g's columns
    /// `cols(g)`, packed as the product goes.
    fn weight_grad_cols<'a>(
        &self,
        cols: impl Fn(usize) -> Cols<'a>,
        output: &[f32],
        n: usize,
        wdiff: &mut [f32],
    ) {
        let rows = self.rows_per_group();
        for g in 0..self.group {
            sgemm_cols_t(
                rows,
                self.kernel_dim,
                n,
                &output[g * rows * n..],
                cols(g),
                1.0,
                &mut wdiff[g * self.weight_offset()..],
            );
        }
    }

    /// Group g's columns of the images at `input`, never stored (`gg` from
    /// `implicit_geom`).
    fn group_cols<'a>(&self, gg: &'a ConvGeometry, input: &'a [f32], g: usize) -> Cols<'a> {
        Cols::Images(ImplicitCols {
            geom: gg,
            images: &input[g * gg.image_len()..],
            image_stride: self.in_len(),
            positions: self.out_spatial,
            col0: 0,
        })
    }

    /// The shifted planes a batched product builds for its images instead
    /// of packing its strips from the images: a 2-D window with vertical
    /// stride 1, not 1x1, and the product's planes (5x LeNet conv2's input,
    /// 25x fewer values than its columns) within `RUN_PLANES_MAX`. The
    /// forward then reads each image's column rows in place (`forward_rows`;
    /// a kernel that cannot, copies them into strips: `run_cols`), and the
    /// weight gradient transposes 16 runs in registers into 16 steps of its
    /// strips, where packing from the images stages each row through masked
    /// loads first.
    fn run_planes(&self, imgs: usize) -> Option<ShiftedPlanes> {
        if self.force_nd || self.is_1x1 || imgs < 2 {
            return None;
        }
        ShiftedPlanes::new(&self.geom).filter(|sp| sp.image_len() * imgs <= RUN_PLANES_MAX)
    }

    /// Group g's columns over the planes `with_planes` built (`offs` and
    /// `group_len` from it).
    fn run_cols<'a>(
        &self,
        sp: &ShiftedPlanes,
        planes: &'a [f32],
        offs: &'a [usize],
        group_len: usize,
        g: usize,
    ) -> Cols<'a> {
        Cols::Runs(RunCols {
            planes: &planes[g * group_len..],
            image_len: sp.image_len(),
            offs,
            positions: self.out_spatial,
            col0: 0,
        })
    }

    /// One group's window, when the forward may pack its columns straight
    /// from the images (`sgemm_packed_cols`): 2-D and not 1x1 (whose input
    /// already is the column buffer).
    fn implicit_geom(&self) -> Option<ConvGeometry> {
        (!self.is_1x1 && !self.force_nd && self.geom.input.len() == 2).then(|| ConvGeometry {
            channels: self.geom.channels / self.group,
            ..self.geom.clone()
        })
    }

    /// output (`n` apart per channel) = W ⊛ images for `n` columns of
    /// images side by side, group g's columns `cols(g)`, without a column
    /// buffer.
    fn forward_cols<'a>(
        &self,
        cols: impl Fn(usize) -> Cols<'a>,
        w: &[PackedA],
        n: usize,
        output: &mut [f32],
    ) {
        let rows = self.rows_per_group();
        for (g, wg) in w.iter().enumerate() {
            sgemm_packed_cols(wg, cols(g), n, &mut output[g * rows * n..], n);
        }
    }

    /// Whether one image's im2col/col2im should split its channels over the
    /// pool: a batch of one runs on the calling thread, where the GEMMs split
    /// but a serial im2col would leave the other cores idle.
    fn split_channels(&self) -> usize {
        let threads = rayon::current_num_threads();
        if self.force_nd
            || self.geom.input.len() != 2
            || threads < 2
            || !pool::may_split()
            || self.col_len() < 1 << 16
        {
            1
        } else {
            threads.min(self.geom.channels)
        }
    }

    /// `im2col` of one image, its channels split over the pool when
    /// `split_channels` says so (channel c fills only its own rows).
    fn im2col_one(&self, input: &[f32], col: &mut [f32]) {
        let parts = self.split_channels();
        if parts == 1 {
            return im2col(&self.geom, input, col, self.force_nd);
        }
        let (per, rows, plane) = self.channel_split(parts);
        col[..self.geom.channels * rows]
            .par_chunks_mut(per * rows)
            .enumerate()
            .for_each(|(i, cc)| {
                let c0 = i * per;
                let g = ConvGeometry {
                    channels: cc.len() / rows,
                    ..self.geom.clone()
                };
                im2col(&g, &input[c0 * plane..(c0 + g.channels) * plane], cc, false);
            });
    }

    /// `col2im` of one image, split like `im2col_one` (channel c's rows
    /// write only channel c of the image).
    fn col2im_one(&self, col: &[f32], im: &mut [f32]) {
        let parts = self.split_channels();
        if parts == 1 {
            return col2im(&self.geom, col, im, self.force_nd);
        }
        let (per, rows, plane) = self.channel_split(parts);
        im[..self.geom.channels * plane]
            .par_chunks_mut(per * plane)
            .enumerate()
            .for_each(|(i, ic)| {
                let c0 = i * per;
                let g = ConvGeometry {
                    channels: ic.len() / plane,
                    ..self.geom.clone()
                };
                col2im(&g, &col[c0 * rows..(c0 + g.channels) * rows], ic, false);
            });
    }

    /// Channels per part, column values per channel, image values per channel.
    fn channel_split(&self, parts: usize) -> (usize, usize, usize) {
        let taps: usize = self.geom.kernel.iter().product();
        let plane: usize = self.geom.input.iter().product();
        (
            self.geom.channels.div_ceil(parts),
            taps * self.out_spatial,
            plane,
        )
    }

    /// im2col of `imgs` images side by side: image j's columns start at
    /// column j·out_spatial of rows `imgs·out_spatial` long.
    fn columns(&self, imgs: usize, input: &[f32], col: &mut [f32]) {
        let (il, sp) = (self.in_len(), self.out_spatial);
        for (j, im) in input.chunks_exact(il).take(imgs).enumerate() {
            im2col_2d_ld(&self.geom, im, &mut col[j * sp..], imgs * sp);
        }
    }

    /// Per-image outputs `[image][channel][position]` into the side-by-side
    /// layout `[channel][image·position]`.
    fn stage(&self, imgs: usize, output: &[f32], stage: &mut [f32]) {
        let sp = self.out_spatial;
        for (j, img) in output.chunks_exact(self.out_len()).take(imgs).enumerate() {
            for (o, plane) in img.chunks_exact(sp).enumerate() {
                stage[(o * imgs + j) * sp..][..sp].copy_from_slice(plane);
            }
        }
    }

    /// The inverse of `stage`.
    fn unstage(&self, imgs: usize, stage: &[f32], output: &mut [f32]) {
        let sp = self.out_spatial;
        for (j, img) in output
            .chunks_exact_mut(self.out_len())
            .take(imgs)
            .enumerate()
        {
            for (o, plane) in img.chunks_exact_mut(sp).enumerate() {
                plane.copy_from_slice(&stage[(o * imgs + j) * sp..][..sp]);
            }
        }
    }

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
        if let Some(sp) = self.forward_planes() {
            return self.forward_shifted(&sp, input, w, output);
        }
        if let Some(gg) = self.implicit_geom() {
            let cols = |g| self.group_cols(&gg, input, g);
            return self.forward_cols(cols, w, self.out_spatial, output);
        }
        let col: &[f32] = if self.is_1x1 {
            input
        } else {
            self.im2col_one(input, col);
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
            self.col2im_one(col, input);
        }
    }

    /// wdiff += output ⊗ im2col(input) for one image.
    pub fn weight_grad(&self, input: &[f32], output: &[f32], wdiff: &mut [f32], col: &mut [f32]) {
        if let Some(gg) = self.implicit_geom() {
            let cols = |g| self.group_cols(&gg, input, g);
            return self.weight_grad_cols(cols, output, self.out_spatial, wdiff);
        }
        let col: &[f32] = if self.is_1x1 {
            input
        } else {
            self.im2col_one(input, col);
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
    /// Outputs (or output diffs) of a batched product, side by side.
    pub stage: Vec<f32>,
    /// Where each row of a product's B starts, for products that read B in place.
    pub offs: Vec<usize>,
}

thread_local! {
    /// One set of worker scratch per thread that runs nets: the layers of a
    /// net run one at a time, so they share it instead of each holding
    /// column buffers of its own (the sum over AlexNet's five convolutions
    /// is ~80 MB, the largest one ~20 MB). Replicas on other threads get
    /// their own.
    static SCRATCH: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with `runs` scratch sets whose column, staging and weight-diff
/// buffers hold at least `col`, `stage` and `wdiff` values (grown, never
/// shrunk; contents unspecified).
pub fn with_scratch<R>(
    runs: usize,
    (col, stage, wdiff): (usize, usize, usize),
    f: impl FnOnce(&mut [Scratch]) -> R,
) -> R {
    let fit = |pool: &mut Vec<Scratch>| {
        if pool.len() < runs {
            pool.resize_with(runs, Scratch::default);
        }
        for s in pool.iter_mut().take(runs) {
            for (buf, len) in [
                (&mut s.col, col),
                (&mut s.stage, stage),
                (&mut s.wdiff, wdiff),
            ] {
                if buf.len() < len {
                    // Fresh zeroed memory: its pages are mapped as they are written.
                    *buf = vec![0.0; len];
                }
            }
        }
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pool) => {
            fit(&mut pool);
            f(&mut pool[..runs])
        }
        // A layer run from inside another's (a Python layer calling a net).
        Err(_) => {
            let mut own = Vec::new();
            fit(&mut own);
            f(&mut own)
        }
    })
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
        .for_each(|(i, (bc, s))| pool::nested(|| f(i * per, bc, s)));
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
