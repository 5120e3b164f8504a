//! Benchmark (not a test) for scripts/bench-data: ImageData's per-image work
//! on one thread — JPEG decode, resize to 256 x 256, random 227 crop and
//! mirror into a float CHW buffer — over the given photos, files read into
//! memory first so only the pipeline is timed.
//!   image_pipeline_bench PASSES PHOTO...
use std::time::Instant;

use crema::data::{ColorMode, DataTransformer, Image};
use crema::proto::caffe::{Phase, TransformationParameter};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((passes, files)) = args.split_first() else {
        eprintln!("usage: image_pipeline_bench PASSES PHOTO...");
        std::process::exit(1);
    };
    let passes: usize = passes.parse().expect("PASSES is a number");
    let photos: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let mut tp = TransformationParameter::new();
    tp.set_crop_size(227);
    tp.set_mirror(true);
    let mut transformer = DataTransformer::new(&tp, Phase::TRAIN).expect("transformer");
    let mut out = vec![0f32; 3 * 227 * 227];
    let mut checksum = 0f64;
    // Seconds in decode, resize, and crop + mirror + float conversion.
    let mut stages = [0f64; 3];
    let start = Instant::now();
    for _ in 0..passes {
        for bytes in &photos {
            let t0 = Instant::now();
            let img = Image::decode(bytes, ColorMode::Color).expect("photo decodes");
            let t1 = Instant::now();
            let resized = img.resize(256, 256);
            let t2 = Instant::now();
            transformer
                .transform(&resized.to_datum(0), &mut out)
                .expect("transform");
            let t3 = Instant::now();
            stages[0] += (t1 - t0).as_secs_f64();
            stages[1] += (t2 - t1).as_secs_f64();
            stages[2] += (t3 - t2).as_secs_f64();
            checksum += f64::from(out[0]);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = passes * photos.len();
    let ms = |s: f64| 1e3 * s / n as f64;
    println!(
        "crema {n} {secs:.3} {:.1} ms/image: decode {:.2} resize {:.2} crop+mirror {:.2} (checksum {checksum})",
        n as f64 / secs,
        ms(stages[0]),
        ms(stages[1]),
        ms(stages[2])
    );
}
