//! GEMM and convolution throughput on the shapes Caffe nets produce.
//!
//!     cargo run --release -p crema --example gemm_bench
//!
//! For each shape it prints GFLOP/s of `backend::sgemm` on one thread (run
//! inside a one-thread rayon pool, where sgemm never splits) and on the whole
//! pool, with the ratio; the peers, timed in the same run, are the
//! `matrixmultiply` crate (the packed GEMM crema used before its own) on one
//! thread and a plain i-k-j loop (what a compiler makes of the textbook
//! product). Then every kernel the CPU offers, one thread, on SGEMM 1024³, and
//! Convolution forward+backward on AlexNet conv2 and LeNet conv2.
use std::time::Instant;

use crema::backend::{mmm, sgemm, sgemv, Transpose};
use crema::proto::caffe::LayerParameter;
use crema::{create_layer, Blob};

/// Seconds per call of `f`, best of a few batches spanning ~0.5 s.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let (t, mut n) = (Instant::now(), 0);
        while t.elapsed().as_secs_f64() < 0.15 || n == 0 {
            f();
            n += 1;
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    best
}

fn naive_ikj(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    c.fill(0.0);
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * k + p];
            row.iter_mut()
                .zip(&b[p * n..(p + 1) * n])
                .for_each(|(c, &b)| *c += av * b);
        }
    }
}

fn main() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let threads = rayon::current_num_threads();
    println!(
        "rayon pool: {threads} threads; kernel {}",
        mmm::kernel().name
    );
    println!(
        "{:<40} {:>9} {:>9} {:>6} {:>9} {:>6} {:>9} {:>7}",
        "shape (M N K)", "1 thread", "pool", "ratio", "mm crate", "vs mm", "naive", "vs 1t"
    );
    let shapes: &[(&str, usize, usize, usize)] = &[
        ("AlexNet conv2/group", 128, 729, 1200),
        ("AlexNet conv1", 96, 3025, 363),
        ("AlexNet conv3", 384, 169, 2304),
        ("AlexNet fc6 batch 256", 256, 4096, 9216),
        ("AlexNet fc6 batch 1 (gemv)", 1, 4096, 9216),
        ("LeNet conv2", 50, 64, 500),
        ("ResNet 3x3 64ch 56x56", 64, 3136, 576),
        ("square", 1024, 1024, 1024),
    ];
    for &(name, m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 11) as f32 * 0.01).collect();
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let mut run = || {
            sgemm(
                Transpose::No,
                Transpose::No,
                m,
                n,
                k,
                1.0,
                &a,
                &b,
                0.0,
                &mut c,
            )
        };
        let t1 = one.install(|| time(&mut run));
        let tp = time(&mut run);
        let mut c2 = vec![0f32; m * n];
        // SAFETY: the pointers and strides describe the row-major slices above.
        let tm = one.install(|| {
            time(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c2.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        let tn = if flops < 2e9 {
            time(|| naive_ikj(m, n, k, &a, &b, &mut c2))
        } else {
            f64::NAN
        };
        let g = |t: f64| flops / t / 1e9;
        println!(
            "{:<40} {:>8.1}G {:>8.1}G {:>5.2}x {:>8.1}G {:>5.2}x {:>8.1}G {:>6.1}x",
            format!("{name} ({m} {n} {k})"),
            g(t1),
            g(tp),
            t1 / tp,
            g(tm),
            tm / t1,
            g(tn),
            tn / t1
        );
    }

    // A batch-1 fully connected layer streams its weights once: GB/s of W
    // read by the row-dot gemv InnerProduct uses (y = W·x, W 4096 x 9216).
    let (rows, cols) = (4096, 9216);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7) % 13) as f32 * 0.01)
        .collect();
    let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut y = vec![0f32; rows];
    let mut gemv = || sgemv(Transpose::No, rows, cols, 1.0, &w, &x, 0.0, &mut y);
    let gb = (rows * cols * 4) as f64 / 1e9;
    let (t1, tp) = (one.install(|| time(&mut gemv)), time(&mut gemv));
    println!(
        "\nfc6 batch 1 as InnerProduct runs it (row dots, 151 MB of weights): 1 thread {:.1} GB/s, pool {:.1} GB/s",
        gb / t1,
        gb / tp
    );

    println!("\nEach kernel on one thread, SGEMM 1024^3 (A, B as stored / both transposed):");
    let s = 1024;
    let a: Vec<f32> = (0..s * s).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..s * s).map(|i| ((i * 3) % 11) as f32 * 0.01).collect();
    let mut c = vec![0f32; s * s];
    for kern in mmm::kernels() {
        let g = |ta, tb, c: &mut [f32]| {
            let t = time(|| mmm::sgemm_with(kern, ta, tb, s, s, s, 1.0, &a, &b, 0.0, c));
            2.0 * (s * s * s) as f64 / t / 1e9
        };
        let nn = g(Transpose::No, Transpose::No, &mut c);
        let tt = g(Transpose::Yes, Transpose::Yes, &mut c);
        println!(
            "  {:<8} {}x{} tile: {nn:.1} / {tt:.1} GFLOP/s",
            kern.name, kern.mr, kern.nr
        );
    }

    println!("\nConvolution layer, forward and backward (GFLOP/s counts the GEMM work):");
    for (name, shape, out, k, pad, group) in [
        ("AlexNet conv2, batch 16", [16, 96, 27, 27], 256, 5, 2, 2),
        ("LeNet conv2, batch 64", [64, 20, 12, 12], 50, 5, 0, 1),
    ] {
        let mut p = LayerParameter::new();
        p.set_name("conv".into());
        p.set_type("Convolution".into());
        let cp = p.convolution_param.mut_or_insert_default();
        cp.set_num_output(out);
        cp.kernel_size = vec![k];
        cp.pad = vec![pad];
        cp.set_group(group);
        cp.weight_filler
            .mut_or_insert_default()
            .set_type("xavier".into());
        let mut layer = create_layer(&p).unwrap();
        let (bottom, top) = (Blob::shared(&shape), Blob::shared(&[]));
        bottom
            .borrow_mut()
            .data_mut()
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i % 17) as f32 * 0.1);
        layer.setup(&[bottom.clone()], &[top.clone()]).unwrap();
        layer.reshape(&[bottom.clone()], &[top.clone()]).unwrap();
        let ts = top.borrow().shape().to_vec();
        let spatial: usize = ts[2..].iter().product();
        let gemm_flops = 2.0
            * (shape[0] * out as usize * spatial * shape[1] / group as usize * (k * k) as usize)
                as f64;
        let tf = time(|| layer.forward(&[bottom.clone()], &[top.clone()]).unwrap());
        let tb = time(|| {
            layer
                .backward(&[top.clone()], &[true], &[bottom.clone()])
                .unwrap()
        });
        println!(
            "{name:<26} top {ts:?}: forward {:.2} ms ({:.1} GFLOP/s), backward {:.2} ms ({:.1} GFLOP/s)",
            tf * 1e3,
            gemm_flops / tf / 1e9,
            tb * 1e3,
            2.0 * gemm_flops / tb / 1e9
        );
    }
}
