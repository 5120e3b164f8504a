//! Packing: copies a block of op(A) or op(B) into the strip order kernels
//! read, zero-padding the last strip to a whole tile so kernels never branch
//! on edges inside their loop. Each orientation has a path that reads memory
//! contiguously; transposed operands are just the other path. The strip width
//! is a const parameter for the kernels' widths, so the copies of one step
//! compile to a few vector moves instead of a `memcpy` call.
use super::View;

/// Packs the `mc × kc` block of op(A) at `a` as strips of `mr` rows: strip s
/// holds, for each p in 0..kc, rows `s·mr..s·mr+mr` of column p.
///
/// Safety: `a` views at least mc × kc readable values and `dst` has room for
/// `mc.div_ceil(mr)·mr·kc` values.
pub unsafe fn pack_a(mr: usize, mc: usize, kc: usize, a: View, dst: *mut f32) {
    match mr {
        4 => pack::<4>(mc, kc, a, dst),
        6 => pack::<6>(mc, kc, a, dst),
        12 => pack::<12>(mc, kc, a, dst),
        _ => pack_any(mr, mc, kc, a, dst),
    }
}

/// Packs the `kc × nc` block of op(B) at `b` as strips of `nr` columns: strip
/// s holds, for each p in 0..kc, columns `s·nr..s·nr+nr` of row p.
///
/// Safety: `b` views at least kc × nc readable values and `dst` has room for
/// `nc.div_ceil(nr)·nr·kc` values.
pub unsafe fn pack_b(nr: usize, kc: usize, nc: usize, b: View, dst: *mut f32) {
    // op(B) packed by columns is op(B)ᵀ packed by rows.
    let bt = View {
        ptr: b.ptr,
        rs: b.cs,
        cs: b.rs,
    };
    match nr {
        8 => pack::<8>(nc, kc, bt, dst),
        16 => pack::<16>(nc, kc, bt, dst),
        32 => pack::<32>(nc, kc, bt, dst),
        _ => pack_any(nr, nc, kc, bt, dst),
    }
}

/// Strips of `W` rows of the `rows × depth` matrix `x`: for each p, the W
/// values `x[s·W..s·W+W][p]`, zero past the last row.
unsafe fn pack<const W: usize>(rows: usize, depth: usize, x: View, dst: *mut f32) {
    for r0 in (0..rows).step_by(W) {
        let d = dst.add(r0 * depth);
        let live = W.min(rows - r0);
        if live == W && x.rs == 1 {
            // The W values of one step are contiguous: one fixed-size copy.
            for p in 0..depth {
                let src = x.at(r0, p).ptr as *const [f32; W];
                (d.add(p * W) as *mut [f32; W]).write_unaligned(src.read_unaligned());
            }
        } else if live == W {
            // Each row is contiguous in p (or strided): gather W rows side by side.
            gather::<W>(depth, x.at(r0, 0), d);
        } else {
            pack_edge(W, live, depth, x.at(r0, 0), d);
        }
    }
}

/// One full strip from W rows that are not contiguous across the strip. When
/// each row is contiguous in p, 8 steps are read as one run per row and
/// transposed through registers, so every cache line is read once and whole.
unsafe fn gather<const W: usize>(depth: usize, x: View, d: *mut f32) {
    let mut p0 = 0;
    #[cfg(target_arch = "x86_64")]
    if x.cs == 1 && W.is_multiple_of(16) && depth >= 16 && is_x86_feature_detected!("avx512f") {
        // 16 rows × 16 steps at a time, transposed in registers.
        p0 = depth / 16 * 16;
        for half in (0..W).step_by(16) {
            for p in (0..p0).step_by(16) {
                transpose16(x.at(half, p).ptr, x.rs as usize, d.add(p * W + half), W);
            }
        }
    }
    if x.cs == 1 {
        while p0 + 8 <= depth {
            let mut block = [[0f32; 8]; W];
            for (i, row) in block.iter_mut().enumerate() {
                *row = (x.at(i, p0).ptr as *const [f32; 8]).read_unaligned();
            }
            for q in 0..8 {
                let mut strip = [0f32; W];
                for (v, row) in strip.iter_mut().zip(&block) {
                    *v = row[q];
                }
                (d.add((p0 + q) * W) as *mut [f32; W]).write_unaligned(strip);
            }
            p0 += 8;
        }
    }
    for p in p0..depth {
        let mut strip = [0f32; W];
        for (i, v) in strip.iter_mut().enumerate() {
            *v = *x.at(i, p).ptr;
        }
        (d.add(p * W) as *mut [f32; W]).write_unaligned(strip);
    }
}

/// The general case, for strip widths without a const instance.
unsafe fn pack_any(w: usize, rows: usize, depth: usize, x: View, dst: *mut f32) {
    for r0 in (0..rows).step_by(w) {
        pack_edge(w, w.min(rows - r0), depth, x.at(r0, 0), dst.add(r0 * depth));
    }
}

/// One strip of width `w` of which the first `live` rows exist: zeros, then
/// each live row walked along its own stride.
unsafe fn pack_edge(w: usize, live: usize, depth: usize, x: View, d: *mut f32) {
    std::ptr::write_bytes(d, 0, w * depth);
    for i in 0..live {
        let row = x.at(i, 0).ptr;
        for p in 0..depth {
            *d.add(p * w + i) = *row.offset(p as isize * x.cs);
        }
    }
}

/// Writes the transpose of the 16 × 16 block at `src` (rows `ld` apart) to
/// `dst` (rows `ldd` apart): row q of the output is column q of the input.
/// Three rounds of in-lane unpacks and shuffles, then two of 128-bit lane
/// shuffles; the packing test compares it with the scalar path.
///
/// Safety: the CPU has AVX-512F; both blocks are valid for 16 rows of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
    transpose16_rows(std::array::from_fn(|i| src.add(i * ld)), dst, ldd)
}

/// `transpose16` of the 16 rows of 16 at `rows` (anywhere in memory).
///
/// Safety: the CPU has AVX-512F; each row has 16 readable values, `dst` 16
/// writable rows of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16_rows(rows: [*const f32; 16], dst: *mut f32, ldd: usize) {
    use std::arch::x86_64::*;
    let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(rows[i]));
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut v = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        v[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[4 + i]);
        v[4 + i] = _mm512_shuffle_f32x4::<0xDD>(u[i], u[4 + i]);
        v[8 + i] = _mm512_shuffle_f32x4::<0x88>(u[8 + i], u[12 + i]);
        v[12 + i] = _mm512_shuffle_f32x4::<0xDD>(u[8 + i], u[12 + i]);
    }
    for i in 0..4 {
        _mm512_storeu_ps(
            dst.add(i * ldd),
            _mm512_shuffle_f32x4::<0x88>(v[i], v[8 + i]),
        );
        _mm512_storeu_ps(
            dst.add((8 + i) * ldd),
            _mm512_shuffle_f32x4::<0xDD>(v[i], v[8 + i]),
        );
        _mm512_storeu_ps(
            dst.add((4 + i) * ldd),
            _mm512_shuffle_f32x4::<0x88>(v[4 + i], v[12 + i]),
        );
        _mm512_storeu_ps(
            dst.add((12 + i) * ldd),
            _mm512_shuffle_f32x4::<0xDD>(v[4 + i], v[12 + i]),
        );
    }
}
