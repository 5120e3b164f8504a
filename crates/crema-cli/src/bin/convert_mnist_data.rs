//! `convert_mnist_data [FLAGS] IMAGES LABELS DB`: the MNIST IDX files into a
//! database of 1 x rows x cols Datums with keys `%08d`, as Caffe's example
//! tool (`--backend=lmdb` or `--backend=leveldb`).
use std::path::Path;
use std::process::ExitCode;

use crema::data::{index_key, Backend};
use crema::proto::caffe::Datum;

use crema_cli::flags::{self, FlagSpec};
use crema_cli::record_progress::RecordProgress;

const SPECS: &[FlagSpec] = &[FlagSpec {
    name: "backend",
    boolean: false,
    default: "lmdb",
    help: "The backend {lmdb, leveldb} for storing the result",
}];

/// Records per write transaction, as Caffe.
const COMMIT_EVERY: usize = 1000;

fn main() -> ExitCode {
    let flags = match flags::tool_start("convert_mnist_data", SPECS) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if flags.positional.len() != 3 {
        eprintln!(
            "This script converts the MNIST dataset to the lmdb format used by Caffe to load data.\n\
             Usage:\n    convert_mnist_data [FLAGS] input_image_file input_label_file output_db_file\n{}",
            flags::usage(SPECS)
        );
        return ExitCode::from(1);
    }
    let p = &flags.positional;
    match convert(
        Path::new(&p[0]),
        Path::new(&p[1]),
        Path::new(&p[2]),
        flags.get("backend"),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// An IDX file's magic check and big-endian header fields.
fn read_idx(
    path: &Path,
    magic: u32,
    what: &str,
    header_words: usize,
) -> Result<(Vec<u32>, Vec<u8>), String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))?;
    let header_len = 4 * (1 + header_words);
    if bytes.len() < header_len {
        return Err(format!(
            "{what} file {} is too short for an IDX header",
            path.display()
        ));
    }
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    if word(0) != magic {
        return Err(format!(
            "Incorrect {what} file magic in {}: {:#x}, expected {magic:#x}",
            path.display(),
            word(0)
        ));
    }
    let header = (1..=header_words).map(word).collect();
    Ok((header, bytes[header_len..].to_vec()))
}

fn convert(images: &Path, labels: &Path, db: &Path, backend: &str) -> Result<(), String> {
    let backend = Backend::parse(backend).map_err(|e| e.to_string())?;
    let (ih, pixels) = read_idx(images, 2051, "image", 3)?;
    let (lh, label_bytes) = read_idx(labels, 2049, "label", 1)?;
    let (num_items, rows, cols) = (ih[0] as usize, ih[1] as usize, ih[2] as usize);
    if num_items != lh[0] as usize {
        return Err(format!(
            "{} holds {num_items} images but {} holds {} labels",
            images.display(),
            labels.display(),
            lh[0]
        ));
    }
    let size = rows * cols;
    if pixels.len() < num_items * size || label_bytes.len() < num_items {
        return Err(format!(
            "{} or {} is truncated: {num_items} items of {rows}x{cols} announced",
            images.display(),
            labels.display()
        ));
    }
    let mut writer = backend.create_writer(db).map_err(|e| e.to_string())?;
    log::info!("A total of {num_items} items.");
    log::info!("Rows: {rows} Cols: {cols}");
    let mut datum = Datum::new();
    datum.set_channels(1);
    datum.set_height(rows as i32);
    datum.set_width(cols as i32);
    // Caffe's tool logs the count once, at the end.
    let mut progress = RecordProgress::new(Some(num_items as u64), u64::MAX, |n| {
        format!("Processed {n} files.")
    });
    for i in 0..num_items {
        datum.set_data(pixels[i * size..(i + 1) * size].to_vec());
        datum.set_label(label_bytes[i] as i32);
        writer.put(
            index_key(i),
            crema::proto::binary::encode(&datum).map_err(|e| e.to_string())?,
        );
        progress.inc();
        if (i + 1) % COMMIT_EVERY == 0 {
            writer.commit().map_err(|e| e.to_string())?;
        }
    }
    // The database appears under its name only once complete.
    writer.finish().map_err(|e| e.to_string())?;
    progress.finish();
    Ok(())
}
