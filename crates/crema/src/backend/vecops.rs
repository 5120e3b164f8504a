//! Vector operations of Caffe's math_functions (`caffe_axpy`, `caffe_scal`,
//! `caffe_cpu_dot`, `caffe_mul`, ...). Loops are written over fixed-width lanes
//! or plain zips so the compiler vectorizes them; reductions keep several
//! partial sums, which is both faster and more accurate than one running sum.
//!
//! Binary element-wise helpers write into `y` and take equally long inputs
//! (checked with `assert!`: a length mismatch is a bug in the caller).

/// Partial sums kept by the reductions.
const LANES: usize = 8;

/// y += alpha·x.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    y.iter_mut().zip(x).for_each(|(yi, &xi)| *yi += alpha * xi);
}

/// x *= alpha.
pub fn scal(alpha: f32, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v *= alpha);
}

/// y = alpha·x + beta·y.
pub fn axpby(alpha: f32, x: &[f32], beta: f32, y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpby: length mismatch");
    y.iter_mut()
        .zip(x)
        .for_each(|(yi, &xi)| *yi = alpha * xi + beta * *yi);
}

/// Σ xᵢ·yᵢ.
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "dot: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if x.len() >= 64 && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F and the lengths are equal.
        return unsafe { dot_avx512(x, y) };
    }
    let mut acc = [0f32; LANES];
    let (xc, xr) = x.split_at(x.len() / LANES * LANES);
    let (yc, yr) = y.split_at(xc.len());
    for (xs, ys) in xc.chunks_exact(LANES).zip(yc.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += xs[l] * ys[l];
        }
    }
    acc.iter().sum::<f32>() + xr.iter().zip(yr).map(|(a, b)| a * b).sum::<f32>()
}

/// `dot` in 512-bit FMAs with four accumulators: the rows of a batch-1 fully
/// connected layer (fc6's 4096 rows of 9216) stream at memory speed instead
/// of waiting on one chain of adds.
///
/// Safety: the CPU has AVX-512F; `x` and `y` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(x: &[f32], y: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = x.len();
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (a, v) in acc.iter_mut().enumerate() {
            let o = i + 16 * a;
            *v = _mm512_fmadd_ps(_mm512_loadu_ps(px.add(o)), _mm512_loadu_ps(py.add(o)), *v);
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = _mm512_fmadd_ps(
            _mm512_loadu_ps(px.add(i)),
            _mm512_loadu_ps(py.add(i)),
            acc[0],
        );
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let tail: f32 = x[i..].iter().zip(&y[i..]).map(|(a, b)| a * b).sum();
    _mm512_reduce_add_ps(sum) + tail
}

/// `y[r] = dot(row r of a, x)` for the rows of row-major `a` (`x.len()`
/// columns each): a batch-1 fully connected layer. Four rows at a time share
/// each load of x and keep four weight streams in flight, which reads fc6's
/// weights at streaming speed where one row at a time fell about 15 % short;
/// every row gets `dot`'s exact bits.
pub fn dot_rows(a: &[f32], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    assert!(
        a.len() >= y.len() * cols,
        "dot_rows: matrix shorter than its rows"
    );
    if cols == 0 {
        return y.fill(0.0);
    }
    let mut rows = y.chunks_mut(4).zip(a.chunks(4 * cols));
    #[cfg(target_arch = "x86_64")]
    if cols >= 64 && is_x86_feature_detected!("avx512f") {
        for (yb, ab) in rows {
            if yb.len() == 4 {
                // SAFETY: the CPU has AVX-512F; `ab` holds 4 rows of `cols`.
                unsafe { dot4_avx512(ab, x, yb) };
            } else {
                yb.iter_mut()
                    .zip(ab.chunks(cols))
                    .for_each(|(v, r)| *v = dot(r, x));
            }
        }
        return;
    }
    for (yb, ab) in &mut rows {
        yb.iter_mut()
            .zip(ab.chunks(cols))
            .for_each(|(v, r)| *v = dot(r, x));
    }
}

/// Four rows of `dot_avx512` in step (same accumulators, same order).
///
/// Safety: the CPU has AVX-512F; `a` holds 4 rows of `x.len()`; `y` has 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot4_avx512(a: &[f32], x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len();
    assert!(a.len() >= 4 * n && y.len() >= 4);
    let (pa, px) = (a.as_ptr(), x.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let mut i = 0;
    while i + 64 <= n {
        let xv = [0, 1, 2, 3].map(|k| _mm512_loadu_ps(px.add(i + 16 * k)));
        for (r, row) in acc.iter_mut().enumerate() {
            let p = pa.add(r * n + i);
            for (k, v) in row.iter_mut().enumerate() {
                *v = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(16 * k)), xv[k], *v);
            }
        }
        i += 64;
    }
    while i + 16 <= n {
        let xv = _mm512_loadu_ps(px.add(i));
        for (r, row) in acc.iter_mut().enumerate() {
            row[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(r * n + i)), xv, row[0]);
        }
        i += 16;
    }
    for (r, row) in acc.iter().enumerate() {
        let sum = _mm512_add_ps(_mm512_add_ps(row[0], row[1]), _mm512_add_ps(row[2], row[3]));
        let ar = &a[r * n..(r + 1) * n];
        let tail: f32 = ar[i..].iter().zip(&x[i..]).map(|(u, v)| u * v).sum();
        y[r] = _mm512_reduce_add_ps(sum) + tail;
    }
}

/// Σ xᵢ, in LANES partial sums (a single running sum is one long chain of
/// dependent adds: a convolution's bias gradient over LeNet conv1's 737K
/// values took 0.7 ms that way).
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (xc, xr) = x.split_at(x.len() / LANES * LANES);
    for xs in xc.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] += xs[l];
        }
    }
    acc.iter().sum::<f32>() + xr.iter().sum::<f32>()
}

/// Σ |xᵢ|.
pub fn asum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (xc, xr) = x.split_at(x.len() / LANES * LANES);
    for xs in xc.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] += xs[l].abs();
        }
    }
    acc.iter().sum::<f32>() + xr.iter().map(|v| v.abs()).sum::<f32>()
}

/// Σ xᵢ².
pub fn sumsq(x: &[f32]) -> f32 {
    dot(x, x)
}

/// Dot product of two strided vectors of `n` elements (`caffe_cpu_strided_dot`).
pub fn strided_dot(n: usize, x: &[f32], incx: usize, y: &[f32], incy: usize) -> f32 {
    (0..n).map(|i| x[i * incx] * y[i * incy]).sum()
}

/// y = alpha·x (`caffe_cpu_scale`).
pub fn scale(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "scale: length mismatch");
    y.iter_mut().zip(x).for_each(|(yi, &xi)| *yi = alpha * xi);
}

/// x += alpha (`caffe_add_scalar`).
pub fn add_scalar(alpha: f32, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v += alpha);
}

fn zip2(a: &[f32], b: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    assert!(
        a.len() == y.len() && b.len() == y.len(),
        "element-wise op: length mismatch"
    );
    y.iter_mut()
        .zip(a.iter().zip(b))
        .for_each(|(yi, (&ai, &bi))| *yi = f(ai, bi));
}

fn map1(a: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    assert_eq!(a.len(), y.len(), "element-wise op: length mismatch");
    y.iter_mut().zip(a).for_each(|(yi, &ai)| *yi = f(ai));
}

/// y = a + b.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    zip2(a, b, y, |a, b| a + b)
}
/// y = a - b.
pub fn sub(a: &[f32], b: &[f32], y: &mut [f32]) {
    zip2(a, b, y, |a, b| a - b)
}
/// y = a · b (element-wise).
pub fn mul(a: &[f32], b: &[f32], y: &mut [f32]) {
    zip2(a, b, y, |a, b| a * b)
}
/// y = a / b (element-wise).
pub fn div(a: &[f32], b: &[f32], y: &mut [f32]) {
    zip2(a, b, y, |a, b| a / b)
}
/// y = a².
pub fn sqr(a: &[f32], y: &mut [f32]) {
    map1(a, y, |v| v * v)
}
/// y = a^p.
pub fn powx(a: &[f32], p: f32, y: &mut [f32]) {
    map1(a, y, |v| v.powf(p))
}
/// y = exp(a).
pub fn exp(a: &[f32], y: &mut [f32]) {
    map1(a, y, f32::exp)
}
/// y = ln(a).
pub fn log(a: &[f32], y: &mut [f32]) {
    map1(a, y, f32::ln)
}
/// y = |a|.
pub fn abs(a: &[f32], y: &mut [f32]) {
    map1(a, y, f32::abs)
}
/// y = sign(a) ∈ {-1, 0, 1} (`caffe_cpu_sign`: 0 maps to 0).
pub fn sign(a: &[f32], y: &mut [f32]) {
    map1(a, y, |v| ((0.0 < v) as i32 - (v < 0.0) as i32) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_sum_at_every_length_around_the_vector_blocks() {
        for n in [0, 1, 15, 16, 17, 63, 64, 65, 127, 130, 1000, 9216] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 113) as f32 / 57.0 - 1.0)
                .collect();
            let y: Vec<f32> = (0..n)
                .map(|i| ((i * 104729) % 89) as f32 / 44.0 - 1.0)
                .collect();
            let want: f64 = x.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
            let norm: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = dot(&x, &y) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * norm.max(1.0),
                "n {n}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn dot_rows_gives_each_row_dots_bits() {
        for (rows, cols) in [
            (1, 9216),
            (4, 64),
            (7, 65),
            (9, 130),
            (5, 17),
            (3, 0),
            (13, 1000),
        ] {
            let a: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919) % 113) as f32 / 57.0 - 1.0)
                .collect();
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 104729) % 89) as f32 / 44.0 - 1.0)
                .collect();
            let mut y = vec![f32::NAN; rows];
            dot_rows(&a, &x, &mut y);
            for (r, v) in y.iter().enumerate() {
                let want = dot(&a[r * cols..(r + 1) * cols], &x);
                assert_eq!(v.to_bits(), want.to_bits(), "{rows}x{cols} row {r}");
            }
        }
    }

    #[test]
    fn blas1_by_hand() {
        let x: Vec<f32> = (1..=11).map(|v| v as f32).collect(); // 11 = one full lane block + remainder
        let mut y = vec![1.0; 11];
        axpy(2.0, &x, &mut y);
        assert_eq!(y[0], 3.0);
        assert_eq!(y[10], 23.0);
        assert_eq!(dot(&x, &x), 506.0);
        assert_eq!(asum(&[-1.0, 2.0, -3.0]), 6.0);
        assert_eq!(sumsq(&[3.0, 4.0]), 25.0);
        let mut z = [1.0, 2.0];
        axpby(2.0, &[1.0, 1.0], 3.0, &mut z);
        assert_eq!(z, [5.0, 8.0]);
        scal(0.5, &mut z);
        assert_eq!(z, [2.5, 4.0]);
        assert_eq!(strided_dot(2, &[1.0, 9.0, 2.0], 2, &[3.0, 4.0], 1), 11.0);
    }

    #[test]
    fn elementwise_by_hand() {
        let a = [1.0, -2.0, 0.0];
        let b = [2.0, 4.0, 1.0];
        let mut y = [0.0; 3];
        add(&a, &b, &mut y);
        assert_eq!(y, [3.0, 2.0, 1.0]);
        sub(&a, &b, &mut y);
        assert_eq!(y, [-1.0, -6.0, -1.0]);
        mul(&a, &b, &mut y);
        assert_eq!(y, [2.0, -8.0, 0.0]);
        div(&a, &b, &mut y);
        assert_eq!(y, [0.5, -0.5, 0.0]);
        sqr(&a, &mut y);
        assert_eq!(y, [1.0, 4.0, 0.0]);
        powx(&b, 0.5, &mut y);
        assert_eq!(y, [2f32.sqrt(), 2.0, 1.0]);
        sign(&a, &mut y);
        assert_eq!(y, [1.0, -1.0, 0.0]);
        abs(&a, &mut y);
        assert_eq!(y, [1.0, 2.0, 0.0]);
        exp(&[0.0, 1.0, 0.0], &mut y);
        assert_eq!(y[1], 1f32.exp());
        log(&[1.0, 1.0, 1.0], &mut y);
        assert_eq!(y, [0.0; 3]);
        let mut s = [1.0, 2.0];
        add_scalar(1.0, &mut s);
        assert_eq!(s, [2.0, 3.0]);
        scale(3.0, &[1.0, 2.0], &mut s);
        assert_eq!(s, [3.0, 6.0]);
    }
}
