//! Benchmark: decoding a large caffemodel against reading its bytes from disk.
//!
//! Writes a caffemodel with BVLC AlexNet's parameter shapes (61M floats, about
//! 233 MiB), then times, best of N runs: reading the file into memory, and
//! reading plus decoding it into a NetParameter. Prints both and their ratio
//! (the target is under 2x). Run with:
//! `cargo run --release -p crema-proto --example decode_bench [-- PATH_OR_DIR [RUNS]]`
use std::time::Instant;

use crema_proto::binary::{decode, encode, write_atomic};
use crema_proto::caffe::{BlobProto, BlobShape, LayerParameter, NetParameter};

const ALEXNET: &[(&str, &[i64], &[i64])] = &[
    ("conv1", &[96, 3, 11, 11], &[96]),
    ("conv2", &[256, 48, 5, 5], &[256]),
    ("conv3", &[384, 256, 3, 3], &[384]),
    ("conv4", &[384, 192, 3, 3], &[384]),
    ("conv5", &[256, 192, 3, 3], &[256]),
    ("fc6", &[4096, 9216], &[4096]),
    ("fc7", &[4096, 4096], &[4096]),
    ("fc8", &[1000, 4096], &[1000]),
];

fn blob(dims: &[i64], seed: &mut u32) -> BlobProto {
    let mut b = BlobProto::new();
    let mut s = BlobShape::new();
    s.dim = dims.to_vec();
    b.shape = Some(s).into();
    let n: i64 = dims.iter().product();
    b.data = (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect();
    b
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let path = dir.join("crema_decode_bench_alexnet.caffemodel");

    let mut net = NetParameter::new();
    net.set_name("AlexNet".into());
    let mut seed = 1u32;
    for (name, w, b) in ALEXNET {
        let mut l = LayerParameter::new();
        l.set_name(name.to_string());
        l.set_type(
            if name.starts_with("conv") {
                "Convolution"
            } else {
                "InnerProduct"
            }
            .into(),
        );
        l.blobs.push(blob(w, &mut seed));
        l.blobs.push(blob(b, &mut seed));
        net.layer.push(l);
    }
    let bytes = encode(&net).expect("encode");
    let t_encode = best_of(runs, || encode(&net).unwrap());
    write_atomic(&path, &bytes).expect("write");
    drop(net);
    let mb = bytes.len() as f64 / (1 << 20) as f64;

    // Warm the page cache, then time each step.
    let _ = std::fs::read(&path).unwrap();
    let t_read = best_of(runs, || std::fs::read(&path).unwrap());
    let t_decode = best_of(runs, || {
        let b = std::fs::read(&path).unwrap();
        decode::<NetParameter>(&b, &path, "caffemodel").unwrap()
    });
    let again =
        decode::<NetParameter>(&std::fs::read(&path).unwrap(), &path, "caffemodel").unwrap();
    assert_eq!(
        encode(&again).unwrap(),
        bytes,
        "decode/encode must round-trip"
    );

    println!(
        "caffemodel: {mb:.1} MiB ({} layers, {} floats)",
        again.layer.len(),
        (bytes.len() - 200) / 4
    );
    println!(
        "read file:          {:8.1} ms  ({:.0} MiB/s)",
        t_read * 1e3,
        mb / t_read
    );
    println!(
        "read + decode:      {:8.1} ms  ({:.0} MiB/s)",
        t_decode * 1e3,
        mb / t_decode
    );
    println!(
        "encode:             {:8.1} ms  ({:.0} MiB/s)",
        t_encode * 1e3,
        mb / t_encode
    );
    println!(
        "ratio decode/read:  {:8.2}x  (target < 2x)",
        t_decode / t_read
    );
    let _ = std::fs::remove_file(&path);
}
