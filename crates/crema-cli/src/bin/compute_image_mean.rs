//! `compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]`: the mean image of a
//! database of Datums (encoded ones decoded as they are stored), written as a
//! binaryproto BlobProto 1 x C x H x W, and each channel's mean logged as
//! Caffe's tool logs it.
use std::path::Path;
use std::process::ExitCode;

use crema::data::{decode_datum, parse_datum, Backend, ColorMode};
use crema::proto::caffe::BlobProto;

use crema_cli::flags::{self, FlagSpec};
use crema_cli::record_progress::RecordProgress;

const SPECS: &[FlagSpec] = &[FlagSpec {
    name: "backend",
    boolean: false,
    default: "lmdb",
    help: "The backend {leveldb, lmdb} containing the images",
}];

fn main() -> ExitCode {
    let flags = match flags::tool_start("compute_image_mean", SPECS) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let p = &flags.positional;
    if p.is_empty() || p.len() > 2 {
        eprintln!(
            "Compute the mean_image of a set of images given by a leveldb/lmdb\n\
             Usage:\n    compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]\n{}",
            flags::usage(SPECS)
        );
        return ExitCode::from(1);
    }
    match compute(
        Path::new(&p[0]),
        p.get(1).map(Path::new),
        flags.get("backend"),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn compute(db: &Path, output: Option<&Path>, backend: &str) -> Result<(), String> {
    let backend = Backend::parse(backend).map_err(|e| e.to_string())?;
    let mut cursor = backend.open_cursor(db).map_err(|e| e.to_string())?;
    if !cursor.valid() {
        return Err(format!("database {} holds no records", db.display()));
    }
    let source = db.display().to_string();
    // Sums in f64: exact for any realistic count, where Caffe's float sums
    // start rounding past 2^24.
    let mut sum: Vec<f64> = Vec::new();
    let mut dims = (0, 0, 0);
    let mut count = 0usize;
    let mut progress = RecordProgress::new(None, 10000, |n| format!("Processed {n} files."));
    log::info!("Starting iteration");
    while cursor.valid() {
        let key = String::from_utf8_lossy(cursor.key()).into_owned();
        let datum = parse_datum(cursor.value(), &key, &source).map_err(|e| e.to_string())?;
        let raw = decode_datum(&datum, ColorMode::Native)
            .map_err(|e| format!("record {key} in {source}: {e}"))?;
        let shape = crema::data::datum::datum_dims(&raw)
            .map_err(|e| format!("record {key} in {source}: {e}"))?;
        if count == 0 {
            dims = shape;
            sum = vec![0.0; shape.0 * shape.1 * shape.2];
        } else if shape != dims {
            return Err(format!(
                "Incorrect data field size: record {key} is {}x{}x{}, the first record {}x{}x{}",
                shape.0, shape.1, shape.2, dims.0, dims.1, dims.2
            ));
        }
        if raw.data().is_empty() {
            sum.iter_mut()
                .zip(&raw.float_data)
                .for_each(|(s, &v)| *s += v as f64);
        } else {
            sum.iter_mut()
                .zip(raw.data())
                .for_each(|(s, &v)| *s += v as f64);
        }
        count += 1;
        progress.inc();
        cursor.next().map_err(|e| e.to_string())?;
    }
    progress.finish();
    let mut blob = BlobProto::new();
    blob.set_num(1);
    blob.set_channels(dims.0 as i32);
    blob.set_height(dims.1 as i32);
    blob.set_width(dims.2 as i32);
    blob.data = sum.iter().map(|s| (s / count as f64) as f32).collect();
    if let Some(out) = output {
        log::info!("Write to {}", out.display());
        crema::proto::binary::write_binary(out, &blob).map_err(|e| e.to_string())?;
    }
    let plane = dims.1 * dims.2;
    for c in 0..dims.0 {
        let m: f64 = blob.data[c * plane..(c + 1) * plane]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / plane as f64;
        log::info!("mean_value channel [{c}]: {m}");
    }
    Ok(())
}
