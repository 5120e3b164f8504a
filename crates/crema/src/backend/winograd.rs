//! Winograd's minimal filtering F(m×m, r×r) (Lavin & Gray, 2016) for 2-D
//! convolutions with stride 1: every 8×8 input tile is transformed once
//! (Bᵀ d B), the filters once per weight update (G g Gᵀ), and the 64
//! transformed points become 64 independent products of the filters
//! [O × C] with the tiles [C × T]; Aᵀ M A brings each point-wise sum back to
//! an m×m output tile. For 5×5 kernels (m = 4) a channel pair costs 64
//! multiplies per 16 outputs instead of 400. The backward passes are the
//! exact adjoints: the output diff goes through A · Aᵀ into the points, the
//! products run with the filters transposed (input diff) or as sums over
//! tiles (filter diff), and B · Bᵀ (resp. Gᵀ · G) bring them back.
//!
//! Layout: a chunk is 16 images, one per vector lane (a group's channels
//! transposed into lanes and back with register transposes), so each step
//! on a tile is one instruction for all 16 and the padding and edge tests
//! are per tile. Its tiles go in blocks of 4: a block's columns are its
//! tiles' lanes side by side (`tp`, a multiple of the GEMM tile width), and
//! V[p][c][..] (the input's points) and M[p][o][..] (the output's) are rows
//! of those columns, so each point's product reads its rows in place
//! (`sgemm_packed_rows`). Each transform is one step per tile on vectors
//! of lanes and one along the rows.
//!
//! The transform matrices come from the interpolation points
//! 0, ±1, ±2, ±½ and ∞ (8 of them), built in f64: G is the Vandermonde matrix
//! of the filter's degree, Aᵀ that of the output tile's, and Bᵀ the inverse
//! transpose of the full one. In f32 the outputs stay within ~3e-6 of the
//! direct sum relative to their largest magnitude (LeNet's conv2 shape).
use super::gemm::{
    mmm_reads_rows, mmm_tile_cols, pack_a, sgemm_packed, sgemm_packed_rows, Transpose,
};
use super::im2col::ConvGeometry;
#[cfg(target_arch = "x86_64")]
use super::mmm::pack::transpose16_rows;
use super::mmm::PackedA;

/// Transformed tile side: the number of interpolation points.
const ALPHA: usize = 8;
/// Points of a 2-D tile: the products per chunk.
pub const POINTS: usize = ALPHA * ALPHA;
/// The finite interpolation points (the eighth is ∞).
const FINITE: [f64; ALPHA - 1] = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5];
/// Lanes of one vector step of the transforms.
const L: usize = 16;

thread_local! {
    /// Set by tests to run the portable paths on a CPU with AVX-512.
    static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the AVX-512 paths run: the CPU has them, and this thread's
/// tests did not ask for the portable ones.
fn fast() -> bool {
    super::shifted::fast() && !PORTABLE.with(|p| p.get())
}

/// A transform matrix as the nonzero (column, coefficient) pairs of each row.
#[derive(Clone, Debug)]
struct Sparse {
    rows: Vec<Vec<(usize, f32)>>,
    cols: usize,
}

impl Sparse {
    /// From a row-major `rows × cols` f64 matrix, rounded to f32.
    fn of(m: &[f64], rows: usize, cols: usize) -> Sparse {
        let rows = (0..rows)
            .map(|i| {
                (0..cols)
                    .filter(|&j| m[i * cols + j] != 0.0)
                    .map(|j| (j, m[i * cols + j] as f32))
                    .collect()
            })
            .collect();
        Sparse { rows, cols }
    }

    fn transposed(m: &[f64], rows: usize, cols: usize) -> Sparse {
        let t: Vec<f64> = (0..cols * rows)
            .map(|k| m[(k % rows) * cols + k / rows])
            .collect();
        Sparse::of(&t, cols, rows)
    }
}

/// The `ALPHA × cols` Vandermonde matrix of the points: row p holds the
/// powers 0..cols of point p; the point at ∞ keeps only the highest power.
fn vandermonde(cols: usize) -> Vec<f64> {
    let mut v = vec![0.0; ALPHA * cols];
    for (p, &x) in FINITE.iter().enumerate() {
        for c in 0..cols {
            v[p * cols + c] = x.powi(c as i32);
        }
    }
    v[(ALPHA - 1) * cols + cols - 1] = 1.0;
    v
}

/// Inverse of a square `n × n` matrix by Gauss-Jordan with partial pivoting.
fn inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("non-empty");
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
            inv.swap(col * n + k, pivot * n + k);
        }
        let d = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= d;
            inv[col * n + k] /= d;
        }
        for i in (0..n).filter(|&i| i != col) {
            let f = a[i * n + col];
            if f != 0.0 {
                for k in 0..n {
                    a[i * n + k] -= f * a[col * n + k];
                    inv[i * n + k] -= f * inv[col * n + k];
                }
            }
        }
    }
    inv
}

/// Aᵀ (m × α), G (α × r) and Bᵀ (α × α) of F(m, r), row-major, in f64.
fn matrices(m: usize, r: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let vm = vandermonde(m);
    let at: Vec<f64> = (0..m * ALPHA)
        .map(|k| vm[(k % ALPHA) * m + k / ALPHA])
        .collect();
    let g = vandermonde(r);
    let inv = inverse(&vandermonde(ALPHA), ALPHA);
    let bt: Vec<f64> = (0..ALPHA * ALPHA)
        .map(|k| inv[(k % ALPHA) * ALPHA + k / ALPHA])
        .collect();
    (at, g, bt)
}

/// A transform matrix, dense (`rows × cols` ≤ 8 × 8), for the per-tile
/// steps on vectors of lanes.
#[derive(Clone, Copy, Debug)]
struct Dense {
    v: [[f32; ALPHA]; ALPHA],
    rows: usize,
    cols: usize,
}

impl Dense {
    fn of(m: &[f64], rows: usize, cols: usize) -> Dense {
        let mut v = [[0.0; ALPHA]; ALPHA];
        for (i, row) in v.iter_mut().enumerate().take(rows) {
            for (j, x) in row.iter_mut().enumerate().take(cols) {
                *x = m[i * cols + j] as f32;
            }
        }
        Dense { v, rows, cols }
    }

    fn transposed(m: &[f64], rows: usize, cols: usize) -> Dense {
        let t: Vec<f64> = (0..cols * rows)
            .map(|k| m[(k % rows) * cols + k / rows])
            .collect();
        Dense::of(&t, cols, rows)
    }
}

/// One stride-1 2-D convolution's Winograd plan.
#[derive(Clone, Debug)]
pub struct Winograd {
    /// Input and output channels per group, and groups.
    c: usize,
    o: usize,
    group: usize,
    h: usize,
    w: usize,
    pad_h: usize,
    pad_w: usize,
    oh: usize,
    ow: usize,
    /// Output tile side (m) and kernel side (r): m + r − 1 = 8.
    m: usize,
    r: usize,
    /// Tiles per image along each axis.
    th: usize,
    tw: usize,
    /// Row steps (along the slower tile axis, over rows of `tp` values).
    at: Sparse,
    a: Sparse,
    bt: Sparse,
    b: Sparse,
    g: Sparse,
    gt: Sparse,
    /// Tile steps (along the faster axis, on vectors of lanes).
    bt_d: Dense,
    b_d: Dense,
    at_d: Dense,
    a_d: Dense,
}

impl Winograd {
    /// The plan for `geom` (per-image input geometry, `channels` the whole
    /// input's) with `out_channels` outputs in `group` groups, if it is 2-D
    /// with a square r×r kernel (2 ≤ r ≤ 7), stride 1 and dilation 1.
    pub fn new(geom: &ConvGeometry, group: usize, out_channels: usize) -> Option<Winograd> {
        let r = *geom.kernel.first()?;
        if geom.input.len() != 2
            || geom.kernel[1] != r
            || !(2..ALPHA).contains(&r)
            || geom.stride.iter().any(|&s| s != 1)
            || geom.dilation.iter().any(|&d| d != 1)
            || group == 0
            || !geom.channels.is_multiple_of(group)
            || !out_channels.is_multiple_of(group)
        {
            return None;
        }
        let out = geom.output()?;
        let m = ALPHA + 1 - r;
        let (at, g, bt) = matrices(m, r);
        Some(Winograd {
            c: geom.channels / group,
            o: out_channels / group,
            group,
            h: geom.input[0],
            w: geom.input[1],
            pad_h: geom.pad[0],
            pad_w: geom.pad[1],
            oh: out[0],
            ow: out[1],
            m,
            r,
            th: out[0].div_ceil(m),
            tw: out[1].div_ceil(m),
            at: Sparse::of(&at, m, ALPHA),
            a: Sparse::transposed(&at, m, ALPHA),
            bt: Sparse::of(&bt, ALPHA, ALPHA),
            b: Sparse::transposed(&bt, ALPHA, ALPHA),
            g: Sparse::of(&g, ALPHA, r),
            gt: Sparse::transposed(&g, ALPHA, r),
            bt_d: Dense::of(&bt, ALPHA, ALPHA),
            b_d: Dense::transposed(&bt, ALPHA, ALPHA),
            at_d: Dense::of(&at, m, ALPHA),
            a_d: Dense::transposed(&at, m, ALPHA),
        })
    }

    /// Whether this is the plan `new` would make for the same arguments
    /// (a net reshapes its layers before every forward).
    pub fn is_for(&self, geom: &ConvGeometry, group: usize, out_channels: usize) -> bool {
        geom.input.len() == 2
            && geom.kernel == [self.r, self.r]
            && geom.stride == [1, 1]
            && geom.dilation == [1, 1]
            && geom.input == [self.h, self.w]
            && geom.pad == [self.pad_h, self.pad_w]
            && group == self.group
            && geom.channels == self.c * group
            && out_channels == self.o * group
    }

    /// Images per chunk: one per lane.
    pub fn chunk_images(&self) -> usize {
        L
    }

    fn tiles_per_image(&self) -> usize {
        self.th * self.tw
    }

    /// Tiles per block: `BLOCK_COLUMNS` columns of lanes.
    fn block_tiles(&self) -> usize {
        (BLOCK_COLUMNS / L).min(self.tiles_per_image())
    }

    /// Columns of a block's rows, padded to whole GEMM tiles.
    fn tp(&self) -> usize {
        let q = mmm_tile_cols().max(L);
        (self.block_tiles() * L).div_ceil(q) * q
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    fn in_len(&self) -> usize {
        self.c * self.group * self.plane()
    }

    fn out_len(&self) -> usize {
        self.o * self.group * self.out_plane()
    }

    fn oc(&self) -> usize {
        self.o * self.c
    }

    /// Scratch values `forward`, `backward` and `finish_weight_grad` need.
    pub fn scratch_len(&self) -> usize {
        let tp = self.tp();
        // V, M, the step between passes, and the filter diff's transpose.
        let block = POINTS * (self.c + self.o + 1) * tp + tp * self.o.div_ceil(L) * L;
        let lanes = L * (2 * self.c * self.plane() + self.o * self.out_plane());
        (block + lanes).max((ALPHA + self.r) * self.r * self.oc())
    }

    /// Values of the transformed filter diff `backward` accumulates.
    pub fn dweights_len(&self) -> usize {
        self.group * POINTS * self.oc()
    }

    /// Values of the temporary `pack` uses.
    pub fn pack_scratch_len(&self) -> usize {
        (self.r * self.r + ALPHA * self.r + POINTS) * self.oc()
    }

    /// Transforms each group's filters (`[O][C][r][r]` per group, Caffe's
    /// layout) into 64 points and packs each point's `O × C` matrix (or its
    /// transpose, for the input diff) into `into` (group-major).
    pub fn pack(
        &self,
        weights: &[f32],
        transposed: bool,
        into: &mut Vec<PackedA>,
        tmp: &mut Vec<f32>,
    ) {
        let (oc, rr) = (self.oc(), self.r * self.r);
        tmp.resize(self.pack_scratch_len(), 0.0);
        into.resize_with(self.group * POINTS, PackedA::default);
        let (wt, rest) = tmp.split_at_mut(rr * oc);
        let (half, u) = rest.split_at_mut(ALPHA * self.r * oc);
        for g in 0..self.group {
            let wg = &weights[g * oc * rr..][..oc * rr];
            // Taps as rows: wt[(k, l)][oc].
            for (j, f) in wg.chunks_exact(rr).enumerate() {
                for (t, &x) in f.iter().enumerate() {
                    wt[t * oc + j] = x;
                }
            }
            // G along k, then along l.
            apply(&self.g, 1, self.r, oc, wt, oc, half, oc);
            apply(&self.g, ALPHA, 1, oc, half, oc, u, oc);
            for p in 0..POINTS {
                let up = &u[p * oc..][..oc];
                let dst = &mut into[g * POINTS + p];
                if transposed {
                    pack_a(Transpose::Yes, self.c, self.o, up, dst);
                } else {
                    pack_a(Transpose::No, self.o, self.c, up, dst);
                }
            }
        }
    }

    /// The scratch split: a block's points (V: c rows, M: o rows, per
    /// point), the step between transform passes, and the chunk in lanes
    /// (input, its diff, output).
    fn split<'a>(&self, buf: &'a mut [f32]) -> Parts<'a> {
        let tp = self.tp();
        let (v, rest) = buf.split_at_mut(POINTS * self.c * tp);
        let (mm, rest) = rest.split_at_mut(POINTS * self.o * tp);
        let (tmp, rest) = rest.split_at_mut(POINTS * tp);
        let (xl, rest) = rest.split_at_mut(L * self.c * self.plane());
        let (dxl, rest) = rest.split_at_mut(L * self.c * self.plane());
        let (yl, rest) = rest.split_at_mut(L * self.o * self.out_plane());
        let dmt = &mut rest[..tp * self.o.div_ceil(L) * L];
        Parts {
            v,
            mm,
            tmp,
            xl,
            dxl,
            yl,
            dmt,
        }
    }

    /// output = W ⊛ input for `imgs` consecutive images (at most
    /// `chunk_images`); `u` is `pack(.., false, ..)`.
    pub fn forward(
        &self,
        imgs: usize,
        input: &[f32],
        u: &[PackedA],
        output: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if fast() {
            // SAFETY: AVX-512F (and FMA) is present.
            return unsafe { self.forward_avx512(imgs, input, u, output, buf, offs) };
        }
        self.forward_impl::<[f32; L]>(imgs, input, u, output, buf, offs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn forward_avx512(
        &self,
        imgs: usize,
        input: &[f32],
        u: &[PackedA],
        output: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        self.forward_impl::<std::arch::x86_64::__m512>(imgs, input, u, output, buf, offs)
    }

    #[inline(always)]
    fn forward_impl<V: Lanes>(
        &self,
        imgs: usize,
        input: &[f32],
        u: &[PackedA],
        output: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        let (tp, c, o) = (self.tp(), self.c, self.o);
        let Parts {
            v, mm, tmp, xl, yl, ..
        } = self.split(buf);
        // A group at a time: its channels in lanes, its outputs back.
        let (gi, go) = (c * self.plane(), o * self.out_plane());
        for g in 0..self.group {
            to_lanes(&input[g * gi..], imgs, self.in_len(), gi, xl);
            for s0 in (0..self.tiles_per_image()).step_by(self.block_tiles()) {
                let tiles = self.block_tiles().min(self.tiles_per_image() - s0);
                self.input_points::<V>(s0, tiles, xl, v, tmp);
                for p in 0..POINTS {
                    self.product(
                        &u[g * POINTS + p],
                        &v[p * c * tp..],
                        &mut mm[p * o * tp..][..o * tp],
                        offs,
                    );
                }
                for oi in 0..o {
                    // Aᵀ along u over the rows, then along v on each tile.
                    apply(&self.at, 1, ALPHA, tp, &mm[oi * tp..], o * tp, tmp, tp);
                    let yo = &mut yl[oi * self.out_plane() * L..][..self.out_plane() * L];
                    for q in 0..tiles {
                        let (ty, tx) = ((s0 + q) / self.tw, (s0 + q) % self.tw);
                        // SAFETY: V's instructions are there (`*_avx512` alone takes
                        // __m512); the tile step asserts its bounds.
                        unsafe { self.tile_out::<V>(tmp, q, ty, tx, yo) };
                    }
                }
            }
            from_lanes(yl, imgs, self.out_len(), go, &mut output[g * go..]);
        }
    }

    /// The input diff (when `ut`, `pack(.., true, ..)`, and `dx` are given;
    /// overwritten) and the transformed filter diff (`du += `, for
    /// `finish_weight_grad`) of `imgs` consecutive images.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        imgs: usize,
        input: &[f32],
        dy: &[f32],
        ut: Option<&[PackedA]>,
        dx: Option<&mut [f32]>,
        du: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if fast() {
            // SAFETY: AVX-512F (and FMA) is present.
            return unsafe { self.backward_avx512(imgs, input, dy, ut, dx, du, buf, offs) };
        }
        self.backward_impl::<[f32; L]>(imgs, input, dy, ut, dx, du, buf, offs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn backward_avx512(
        &self,
        imgs: usize,
        input: &[f32],
        dy: &[f32],
        ut: Option<&[PackedA]>,
        dx: Option<&mut [f32]>,
        du: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        self.backward_impl::<std::arch::x86_64::__m512>(imgs, input, dy, ut, dx, du, buf, offs)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_impl<V: Lanes>(
        &self,
        imgs: usize,
        input: &[f32],
        dy: &[f32],
        ut: Option<&[PackedA]>,
        mut dx: Option<&mut [f32]>,
        du: &mut [f32],
        buf: &mut [f32],
        offs: &mut Vec<usize>,
    ) {
        let (tp, c, o, oc, m) = (self.tp(), self.c, self.o, self.oc(), self.m);
        let Parts {
            v,
            mm,
            tmp,
            xl,
            dxl,
            yl,
            dmt,
        } = self.split(buf);
        let down = ut.is_some() && dx.is_some();
        // A group at a time: its channels and output diffs in lanes, its
        // input diff back.
        let (gi, go) = (c * self.plane(), o * self.out_plane());
        for g in 0..self.group {
            to_lanes(&input[g * gi..], imgs, self.in_len(), gi, xl);
            to_lanes(&dy[g * go..], imgs, self.out_len(), go, yl);
            if down {
                dxl.fill(0.0);
            }
            for s0 in (0..self.tiles_per_image()).step_by(self.block_tiles()) {
                let tiles = self.block_tiles().min(self.tiles_per_image() - s0);
                self.input_points::<V>(s0, tiles, xl, v, tmp);
                for oi in 0..o {
                    // A along j on each tile, then along i over the rows:
                    // the adjoint of the output transform.
                    let yo = &yl[oi * self.out_plane() * L..][..self.out_plane() * L];
                    for q in 0..tiles {
                        let (ty, tx) = ((s0 + q) / self.tw, (s0 + q) % self.tw);
                        // SAFETY: V's instructions are there (`*_avx512` alone takes
                        // __m512); the tile step asserts its bounds.
                        unsafe { self.tile_dy::<V>(yo, ty, tx, tmp, q) };
                    }
                    for row in tmp[..m * ALPHA * tp].chunks_exact_mut(tp) {
                        row[tiles * L..].fill(0.0);
                    }
                    apply(&self.a, 1, ALPHA, tp, tmp, tp, &mut mm[oi * tp..], o * tp);
                }
                for p in 0..POINTS {
                    filter_diff(
                        &mm[p * o * tp..],
                        o,
                        &v[p * c * tp..],
                        c,
                        tp,
                        &mut du[(g * POINTS + p) * oc..][..oc],
                        dmt,
                    );
                }
                let Some(ut) = ut.filter(|_| down) else {
                    continue;
                };
                // The input's points are spent: their diff takes their place.
                for p in 0..POINTS {
                    self.product(
                        &ut[g * POINTS + p],
                        &mm[p * o * tp..],
                        &mut v[p * c * tp..][..c * tp],
                        offs,
                    );
                }
                for ci in 0..c {
                    // B along u' over the rows, then along v' on each tile:
                    // the adjoint of the input transform.
                    apply(&self.b, 1, ALPHA, tp, &v[ci * tp..], c * tp, tmp, tp);
                    let xo = &mut dxl[ci * self.plane() * L..][..self.plane() * L];
                    for q in 0..tiles {
                        let (ty, tx) = ((s0 + q) / self.tw, (s0 + q) % self.tw);
                        // SAFETY: V's instructions are there (`*_avx512` alone takes
                        // __m512); the tile step asserts its bounds.
                        unsafe { self.tile_dx::<V>(tmp, q, ty, tx, xo) };
                    }
                }
            }
            if let (true, Some(dx)) = (down, dx.as_deref_mut()) {
                from_lanes(dxl, imgs, self.in_len(), gi, &mut dx[g * gi..]);
            }
        }
    }

    /// wdiff += the filter diff of `du` (from `backward`), Caffe's layout.
    pub fn finish_weight_grad(&self, du: &[f32], wdiff: &mut [f32], buf: &mut [f32]) {
        let (oc, r) = (self.oc(), self.r);
        let (half, rest) = buf.split_at_mut(r * ALPHA * oc);
        let taps = &mut rest[..r * r * oc];
        for g in 0..self.group {
            // Gᵀ along u', then along v'.
            apply(&self.gt, 1, ALPHA, oc, &du[g * POINTS * oc..], oc, half, oc);
            apply(&self.gt, r, 1, oc, half, oc, taps, oc);
            // du holds input channel by input channel; the weights output
            // channel by output channel.
            let wg = &mut wdiff[g * oc * r * r..][..oc * r * r];
            for (j, f) in wg.chunks_exact_mut(r * r).enumerate() {
                let k = (j % self.c) * self.o + j / self.c;
                for (t, x) in f.iter_mut().enumerate() {
                    *x += taps[t * oc + k];
                }
            }
        }
    }

    /// V[p][ci][..] of group `g`'s channels for tiles `s0..s0 + tiles`:
    /// Bᵀ along u on each tile's window (0 in the padding), then along v
    /// over the rows; columns past the block's tiles are 0.
    #[inline(always)]
    fn input_points<V: Lanes>(
        &self,
        s0: usize,
        tiles: usize,
        xl: &[f32],
        v: &mut [f32],
        tmp: &mut [f32],
    ) {
        let (tp, c) = (self.tp(), self.c);
        for ci in 0..c {
            let xc = &xl[ci * self.plane() * L..][..self.plane() * L];
            for q in 0..tiles {
                let (ty, tx) = ((s0 + q) / self.tw, (s0 + q) % self.tw);
                // SAFETY: V's instructions are there (`*_avx512` alone takes
                // __m512); the tile step asserts its bounds.
                unsafe { self.tile_in::<V>(xc, ty, tx, tmp, q) };
            }
            for row in tmp.chunks_exact_mut(tp) {
                row[tiles * L..].fill(0.0);
            }
            apply(&self.bt, ALPHA, 1, tp, tmp, tp, &mut v[ci * tp..], c * tp);
        }
    }

    /// `input_points`' step on tile q at (ty, tx) of channel plane `xc`
    /// (lanes): Bᵀ along u on each of its 8 columns, into `tmp`'s rows
    /// (u', v).
    #[inline(always)]
    unsafe fn tile_in<V: Lanes>(
        &self,
        xc: &[f32],
        ty: usize,
        tx: usize,
        tmp: &mut [f32],
        q: usize,
    ) {
        let (tp, m, w) = (self.tp(), self.m, self.w);
        assert!(xc.len() >= self.plane() * L && tmp.len() >= POINTS * tp && (q + 1) * L <= tp);
        let (xp, tp_) = (xc.as_ptr(), tmp.as_mut_ptr().add(q * L));
        for vv in 0..ALPHA {
            let ix = (tx * m + vv).wrapping_sub(self.pad_w);
            let mut x = [V::zero(); ALPHA];
            if ix < w {
                for (uu, x) in x.iter_mut().enumerate() {
                    let y = (ty * m + uu).wrapping_sub(self.pad_h);
                    if y < self.h {
                        *x = V::load(xp.add((y * w + ix) * L));
                    }
                }
            }
            let out = step(&self.bt_d, &x);
            for (uu, o) in out.iter().enumerate() {
                o.store(tp_.add((uu * ALPHA + vv) * tp));
            }
        }
    }

    /// The forward's last step on tile q at (ty, tx): Aᵀ along v of `tmp`'s
    /// rows (i, v), each output inside the plane `yo` (lanes) written.
    #[inline(always)]
    unsafe fn tile_out<V: Lanes>(
        &self,
        tmp: &[f32],
        q: usize,
        ty: usize,
        tx: usize,
        yo: &mut [f32],
    ) {
        let (tp, m, ow) = (self.tp(), self.m, self.ow);
        assert!(yo.len() >= self.out_plane() * L && tmp.len() >= POINTS * tp && (q + 1) * L <= tp);
        let (src, yp) = (tmp.as_ptr().add(q * L), yo.as_mut_ptr());
        for i in (0..m).take_while(|&i| ty * m + i < self.oh) {
            let x: [V; ALPHA] = std::array::from_fn(|v| V::load(src.add((i * ALPHA + v) * tp)));
            let out = step(&self.at_d, &x);
            for (j, o) in out.iter().enumerate().take(m) {
                let ix = tx * m + j;
                if ix < ow {
                    o.store(yp.add(((ty * m + i) * ow + ix) * L));
                }
            }
        }
    }

    /// The backward's first step on tile q at (ty, tx) of output-diff plane
    /// `yo` (lanes, 0 past the edge): A along j, into `tmp`'s rows (i, v).
    #[inline(always)]
    unsafe fn tile_dy<V: Lanes>(
        &self,
        yo: &[f32],
        ty: usize,
        tx: usize,
        tmp: &mut [f32],
        q: usize,
    ) {
        let (tp, m, ow) = (self.tp(), self.m, self.ow);
        assert!(yo.len() >= self.out_plane() * L && tmp.len() >= POINTS * tp && (q + 1) * L <= tp);
        let (yp, dst) = (yo.as_ptr(), tmp.as_mut_ptr().add(q * L));
        for i in 0..m {
            let mut x = [V::zero(); ALPHA];
            if ty * m + i < self.oh {
                for (j, x) in x.iter_mut().enumerate().take(m) {
                    if tx * m + j < ow {
                        *x = V::load(yp.add(((ty * m + i) * ow + tx * m + j) * L));
                    }
                }
            }
            let out = step(&self.a_d, &x);
            for (v, o) in out.iter().enumerate() {
                o.store(dst.add((i * ALPHA + v) * tp));
            }
        }
    }

    /// The input diff's last step on tile q at (ty, tx): B along v' of
    /// `tmp`'s rows (u, v'), added onto the window's positions inside the
    /// plane `xo` (lanes).
    #[inline(always)]
    unsafe fn tile_dx<V: Lanes>(
        &self,
        tmp: &[f32],
        q: usize,
        ty: usize,
        tx: usize,
        xo: &mut [f32],
    ) {
        let (tp, m, w) = (self.tp(), self.m, self.w);
        assert!(xo.len() >= self.plane() * L && tmp.len() >= POINTS * tp && (q + 1) * L <= tp);
        let (src, xp) = (tmp.as_ptr().add(q * L), xo.as_mut_ptr());
        for uu in 0..ALPHA {
            let y = (ty * m + uu).wrapping_sub(self.pad_h);
            if y >= self.h {
                continue;
            }
            let x: [V; ALPHA] = std::array::from_fn(|v| V::load(src.add((uu * ALPHA + v) * tp)));
            let out = step(&self.b_d, &x);
            for (vv, o) in out.iter().enumerate() {
                let ix = (tx * m + vv).wrapping_sub(self.pad_w);
                if ix < w {
                    let p = xp.add((y * w + ix) * L);
                    V::load(p).add(*o).store(p);
                }
            }
        }
    }

    /// One point's product: `out[rows × tp] = a · b`, b's `a.k()` rows `tp`
    /// apart (read past the last row by up to a GEMM tile: `b` runs on).
    fn product(&self, a: &PackedA, b: &[f32], out: &mut [f32], offs: &mut Vec<usize>) {
        let tp = self.tp();
        if mmm_reads_rows() && fast() {
            offs.clear();
            offs.extend((0..a.k()).map(|k| k * tp));
            sgemm_packed_rows(a, b, offs, tp, out, tp);
        } else {
            sgemm_packed(a, Transpose::No, tp, 1.0, b, 0.0, out);
        }
    }
}

struct Parts<'a> {
    v: &'a mut [f32],
    mm: &'a mut [f32],
    tmp: &'a mut [f32],
    xl: &'a mut [f32],
    dxl: &'a mut [f32],
    yl: &'a mut [f32],
    dmt: &'a mut [f32],
}

/// Columns of a block: its tiles' lanes side by side.
const BLOCK_COLUMNS: usize = 64;

/// One vector of the 16 lanes (images) the tile steps work on: an AVX-512
/// register, or an array on CPUs without one.
trait Lanes: Copy {
    /// # Safety
    /// The CPU has the vector's instructions (as for every method here).
    unsafe fn zero() -> Self;
    /// # Safety
    /// `p` holds 16 readable values.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` holds 16 writable values.
    unsafe fn store(self, p: *mut f32);
    /// c·x + acc (fused on AVX-512).
    unsafe fn madd(c: f32, x: Self, acc: Self) -> Self;
    unsafe fn add(self, other: Self) -> Self;
}

impl Lanes for [f32; L] {
    #[inline(always)]
    unsafe fn zero() -> Self {
        [0.0; L]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        p.cast::<[f32; L]>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        p.cast::<[f32; L]>().write_unaligned(self)
    }
    #[inline(always)]
    unsafe fn madd(c: f32, x: Self, acc: Self) -> Self {
        std::array::from_fn(|l| madd::<false>(c, x[l], acc[l]))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        std::array::from_fn(|l| self[l] + other[l])
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m512 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        std::arch::x86_64::_mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        std::arch::x86_64::_mm512_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn madd(c: f32, x: Self, acc: Self) -> Self {
        use std::arch::x86_64::*;
        _mm512_fmadd_ps(_mm512_set1_ps(c), x, acc)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        std::arch::x86_64::_mm512_add_ps(self, other)
    }
}

/// y = mat · x on 8 vectors (the matrix padded to 8 × 8 with zeros); the
/// output tile's sides (4 of 8 rows of Aᵀ, 4 of 8 columns of A) skip the
/// padding, and fixed loop bounds keep the vectors in registers.
///
/// # Safety
/// As `Lanes`.
#[inline(always)]
unsafe fn step<V: Lanes>(mat: &Dense, x: &[V; ALPHA]) -> [V; ALPHA] {
    match (mat.rows, mat.cols) {
        (4, ALPHA) => step_fixed::<V, 4, ALPHA>(mat, x),
        (ALPHA, 4) => step_fixed::<V, ALPHA, 4>(mat, x),
        _ => step_fixed::<V, ALPHA, ALPHA>(mat, x),
    }
}

#[inline(always)]
unsafe fn step_fixed<V: Lanes, const R: usize, const C: usize>(
    mat: &Dense,
    x: &[V; ALPHA],
) -> [V; ALPHA] {
    let mut y = [V::zero(); ALPHA];
    for (y, row) in y.iter_mut().zip(&mat.v).take(R) {
        for (x, &c) in x.iter().zip(row).take(C) {
            *y = V::madd(c, *x, *y);
        }
    }
    y
}

/// dst[k][n] = src[n·stride + k] for k < `len` and images n < `imgs`, 0 in
/// the lanes past them.
fn to_lanes(src: &[f32], imgs: usize, stride: usize, len: usize, dst: &mut [f32]) {
    let dst = &mut dst[..len * L];
    #[cfg(target_arch = "x86_64")]
    if fast() {
        let zeros = [0f32; L];
        let full = len / L * L;
        for k in (0..full).step_by(L) {
            let rows = std::array::from_fn(|n| {
                if n < imgs {
                    src[n * stride + k..][..L].as_ptr()
                } else {
                    zeros.as_ptr()
                }
            });
            // SAFETY: AVX-512F is present; each row has L values, dst L rows of L.
            unsafe { transpose16_rows(rows, dst[k * L..][..L * L].as_mut_ptr(), L) };
        }
        return scalar_to_lanes(src, imgs, stride, full..len, dst);
    }
    scalar_to_lanes(src, imgs, stride, 0..len, dst)
}

fn scalar_to_lanes(
    src: &[f32],
    imgs: usize,
    stride: usize,
    ks: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    for k in ks {
        let d = &mut dst[k * L..][..L];
        for (n, x) in d.iter_mut().enumerate() {
            *x = if n < imgs { src[n * stride + k] } else { 0.0 };
        }
    }
}

/// dst[n·stride + k] = src[k][n] for k < `len` and images n < `imgs`.
fn from_lanes(src: &[f32], imgs: usize, stride: usize, len: usize, dst: &mut [f32]) {
    let src = &src[..len * L];
    #[cfg(target_arch = "x86_64")]
    if fast() {
        let mut block = [0f32; L * L];
        let full = len / L * L;
        for k in (0..full).step_by(L) {
            let rows = std::array::from_fn(|q| src[(k + q) * L..][..L].as_ptr());
            // SAFETY: AVX-512F is present; each row has L values, block L rows of L.
            unsafe { transpose16_rows(rows, block.as_mut_ptr(), L) };
            for n in 0..imgs {
                dst[n * stride + k..][..L].copy_from_slice(&block[n * L..][..L]);
            }
        }
        return scalar_from_lanes(src, imgs, stride, full..len, dst);
    }
    scalar_from_lanes(src, imgs, stride, 0..len, dst)
}

fn scalar_from_lanes(
    src: &[f32],
    imgs: usize,
    stride: usize,
    ks: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    for n in 0..imgs {
        for k in ks.clone() {
            dst[n * stride + k] = src[k * L + n];
        }
    }
}

/// out[j][i] += Σₜ dm[i][t] · v[j][t]: the filter diff at one point, with
/// `o` rows of dm and `c` of v, each `tp` apart; out is `c × o` (output
/// channels fastest). `dmt` holds dm transposed (`tp × o` padded to whole
/// vectors) on the way.
fn filter_diff(
    dm: &[f32],
    o: usize,
    v: &[f32],
    c: usize,
    tp: usize,
    out: &mut [f32],
    dmt: &mut [f32],
) {
    let opad = o.div_ceil(L) * L;
    assert!(
        dm.len() >= o * tp
            && v.len() >= c * tp
            && out.len() >= c * o
            && dmt.len() >= tp * opad
            && tp.is_multiple_of(L),
        "winograd filter diff: operand shorter than {o}x{c}x{tp}"
    );
    #[cfg(target_arch = "x86_64")]
    if fast() {
        // SAFETY: AVX-512F is present; the lengths were checked above.
        return unsafe { filter_diff_avx512(dm, o, v, c, tp, out, dmt) };
    }
    for j in 0..c {
        for i in 0..o {
            let (x, y) = (&dm[i * tp..][..tp], &v[j * tp..][..tp]);
            out[j * o + i] += x.iter().zip(y).map(|(x, y)| x * y).sum::<f32>();
        }
    }
}

/// `filter_diff` as a product with dm transposed: each step over t
/// broadcasts v's values of up to 6 rows and multiplies them into up to 4
/// vectors of output channels (24 accumulators), no sums across lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn filter_diff_avx512(
    dm: &[f32],
    o: usize,
    v: &[f32],
    c: usize,
    tp: usize,
    out: &mut [f32],
    dmt: &mut [f32],
) {
    let opad = o.div_ceil(L) * L;
    let zeros = [0f32; L];
    for o0 in (0..opad).step_by(L) {
        for t0 in (0..tp).step_by(L) {
            let rows = std::array::from_fn(|i| {
                if o0 + i < o {
                    dm.as_ptr().add((o0 + i) * tp + t0)
                } else {
                    zeros.as_ptr()
                }
            });
            transpose16_rows(rows, dmt.as_mut_ptr().add(t0 * opad + o0), opad);
        }
    }
    let (b, a, op) = (dmt.as_ptr(), v.as_ptr(), out.as_mut_ptr());
    let mut o0 = 0;
    while o0 < opad {
        let wide = opad - o0 >= 4 * L;
        let mut j0 = 0;
        while j0 < c {
            // Rows 6, 2 or 1 at a time: LeNet's 20 is 6, 6, 6, 2.
            let rows = match c - j0 {
                6.. => 6,
                2..=5 => 2,
                _ => 1,
            };
            match (rows, wide) {
                (6, true) => filter_block::<6, 4>(a, b, op, tp, opad, o, j0, o0),
                (6, false) => filter_block::<6, 1>(a, b, op, tp, opad, o, j0, o0),
                (2, true) => filter_block::<2, 4>(a, b, op, tp, opad, o, j0, o0),
                (2, false) => filter_block::<2, 1>(a, b, op, tp, opad, o, j0, o0),
                (_, true) => filter_block::<1, 4>(a, b, op, tp, opad, o, j0, o0),
                (_, false) => filter_block::<1, 1>(a, b, op, tp, opad, o, j0, o0),
            }
            j0 += rows;
        }
        o0 += if wide { 4 * L } else { L };
    }
}

/// Rows j0..j0+R of the output, its columns o0..o0+V·16 (those below `o`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn filter_block<const R: usize, const V: usize>(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    tp: usize,
    opad: usize,
    o: usize,
    j0: usize,
    o0: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for t in 0..tp {
        let bv: [__m512; V] =
            std::array::from_fn(|q| _mm512_loadu_ps(b.add(t * opad + o0 + q * L)));
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add((j0 + i) * tp + t));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(x, *bv, *acc);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        for (q, acc) in acc.iter().enumerate() {
            let col = o0 + q * L;
            let mask: __mmask16 = if o - col >= L {
                !0
            } else {
                (1 << (o - col)) - 1
            };
            let p = out.add((j0 + i) * o + col);
            _mm512_mask_storeu_ps(p, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), *acc));
        }
    }
}

/// dst row (a, j, b) = Σᵢ mat[j][i] · src row (a, i, b), rows of `len`
/// values: a < `outer`, b < `inner`, i over mat's columns and j over its
/// rows; row number n of src starts at n·`ss`, of dst at n·`ds`.
#[allow(clippy::too_many_arguments)]
fn apply(
    mat: &Sparse,
    outer: usize,
    inner: usize,
    len: usize,
    src: &[f32],
    ss: usize,
    dst: &mut [f32],
    ds: usize,
) {
    let rows_in = outer * mat.cols * inner;
    let rows_out = outer * mat.rows.len() * inner;
    assert!(
        src.len() >= (rows_in - 1) * ss + len && dst.len() >= (rows_out - 1) * ds + len,
        "winograd transform: rows out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if fast() {
        // SAFETY: AVX-512F (and FMA, which it implies) is present; bounds
        // were checked above and are checked again by the slices inside.
        return unsafe { apply_avx512(mat, outer, inner, len, src, ss, dst, ds) };
    }
    apply_body::<false>(mat, outer, inner, len, src, ss, dst, ds)
}

/// `apply` with each output row's terms as pointers, four vectors of the
/// row per pass over them (masked at the row's end).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn apply_avx512(
    mat: &Sparse,
    outer: usize,
    inner: usize,
    len: usize,
    src: &[f32],
    ss: usize,
    dst: &mut [f32],
    ds: usize,
) {
    use std::arch::x86_64::*;
    let (nout, nin) = (mat.rows.len(), mat.cols);
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let mut ptrs = [(sp, 0f32); ALPHA];
    for a in 0..outer {
        for (j, terms) in mat.rows.iter().enumerate() {
            for b in 0..inner {
                let out = dp.add(((a * nout + j) * inner + b) * ds);
                let n = terms.len();
                for (p, &(i, c)) in ptrs.iter_mut().zip(terms) {
                    *p = (sp.add(((a * nin + i) * inner + b) * ss), c);
                }
                let mut t = 0;
                while t + STEP <= len {
                    let mut acc = [_mm512_setzero_ps(); 4];
                    for &(p, c) in &ptrs[..n] {
                        let c = _mm512_set1_ps(c);
                        for (k, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(c, _mm512_loadu_ps(p.add(t + k * L)), *acc);
                        }
                    }
                    for (k, acc) in acc.iter().enumerate() {
                        _mm512_storeu_ps(out.add(t + k * L), *acc);
                    }
                    t += STEP;
                }
                while t < len {
                    let mask: __mmask16 = if len - t >= L {
                        !0
                    } else {
                        (1 << (len - t)) - 1
                    };
                    let mut acc = _mm512_setzero_ps();
                    for &(p, c) in &ptrs[..n] {
                        acc = _mm512_fmadd_ps(
                            _mm512_set1_ps(c),
                            _mm512_maskz_loadu_ps(mask, p.add(t)),
                            acc,
                        );
                    }
                    _mm512_mask_storeu_ps(out.add(t), mask, acc);
                    t += L;
                }
            }
        }
    }
}

/// c·x + acc, fused where the caller runs with FMA.
#[inline(always)]
fn madd<const F: bool>(c: f32, x: f32, acc: f32) -> f32 {
    if F {
        c.mul_add(x, acc)
    } else {
        acc + c * x
    }
}

/// Values per step of `apply`: four vectors per term.
const STEP: usize = 4 * L;

#[allow(clippy::too_many_arguments)]
fn apply_body<const F: bool>(
    mat: &Sparse,
    outer: usize,
    inner: usize,
    len: usize,
    src: &[f32],
    ss: usize,
    dst: &mut [f32],
    ds: usize,
) {
    let (nout, nin) = (mat.rows.len(), mat.cols);
    for a in 0..outer {
        for (j, terms) in mat.rows.iter().enumerate() {
            for b in 0..inner {
                let out = &mut dst[((a * nout + j) * inner + b) * ds..][..len];
                let row = |i: usize| &src[((a * nin + i) * inner + b) * ss..][..len];
                let mut t = 0;
                while t + STEP <= len {
                    let mut acc = [0.0f32; STEP];
                    for &(i, c) in terms {
                        let s: &[f32; STEP] = row(i)[t..t + STEP].try_into().expect("STEP values");
                        for l in 0..STEP {
                            acc[l] = madd::<F>(c, s[l], acc[l]);
                        }
                    }
                    out[t..t + STEP].copy_from_slice(&acc);
                    t += STEP;
                }
                for (k, x) in out.iter_mut().enumerate().skip(t) {
                    *x = terms
                        .iter()
                        .fold(0.0, |acc, &(i, c)| madd::<F>(c, row(i)[k], acc));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
