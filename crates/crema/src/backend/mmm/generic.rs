//! The portable kernel (any CPU): a 4 × 8 tile of plain f32 arithmetic that
//! the compiler vectorizes with whatever the baseline target offers. Also
//! holds the scalar tile store every kernel uses on edge tiles.
use super::Kernel;

const MR: usize = 4;
const NR: usize = 8;

pub static KERNEL: Kernel = Kernel {
    name: "generic",
    mr: MR,
    nr: NR,
    run: kernel,
    short: &[],
    rows: None,
};

/// Safety: see `KernelFn`.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    alpha: f32,
    beta: f32,
    rows: usize,
    cols: usize,
) {
    let mut acc = [[0f32; NR]; MR];
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x += ai * bj;
            }
        }
    }
    store_tile(acc.as_flattened(), NR, c, rsc, alpha, beta, rows, cols);
}

/// Writes the `rows × cols` corner of a row-major tile (row length `nr`) into
/// C: `alpha·tile + beta·C`, where beta 0 ignores what C held (even NaN).
///
/// Safety: `c` is a writable rows × cols tile with row stride `rsc`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn store_tile(
    tile: &[f32],
    nr: usize,
    c: *mut f32,
    rsc: usize,
    alpha: f32,
    beta: f32,
    rows: usize,
    cols: usize,
) {
    for i in 0..rows {
        let t = &tile[i * nr..i * nr + cols];
        let dst = std::slice::from_raw_parts_mut(c.add(i * rsc), cols);
        if beta == 0.0 {
            dst.iter_mut().zip(t).for_each(|(d, &v)| *d = alpha * v);
        } else {
            dst.iter_mut()
                .zip(t)
                .for_each(|(d, &v)| *d = alpha * v + beta * *d);
        }
    }
}
