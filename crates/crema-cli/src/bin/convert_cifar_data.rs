//! `convert_cifar_data [FLAGS] INPUT_FOLDER OUTPUT_FOLDER [DB_TYPE]`: the
//! CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin: records of
//! one label byte then 3x32x32 RGB planes) into OUTPUT_FOLDER/
//! cifar10_train_<db> and cifar10_test_<db>, as Caffe's example tool: Datums
//! 3 x 32 x 32 with the planes as stored, keys `%05d` numbering training
//! records batch * 10000 + item. DB_TYPE (Caffe's third argument) or
//! --backend picks lmdb or leveldb. A batch file shorter than 10000 records
//! (a subset) is converted as it is, keeping Caffe's numbering.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crema::data::{Backend, DbWriter};
use crema::proto::caffe::Datum;

use crema_cli::flags::{self, FlagSpec};
use crema_cli::record_progress::RecordProgress;

const SPECS: &[FlagSpec] = &[FlagSpec {
    name: "backend",
    boolean: false,
    default: "lmdb",
    help: "The backend {lmdb, leveldb} for storing the result (or give it as DB_TYPE)",
}];

const SIZE: usize = 32;
const IMAGE_BYTES: usize = 3 * SIZE * SIZE;
const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
const BATCH_SIZE: usize = 10000;
const TRAIN_BATCHES: usize = 5;
const COMMIT_EVERY: u64 = 1000;

fn main() -> ExitCode {
    let flags = match flags::tool_start("convert_cifar_data", SPECS) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let p = &flags.positional;
    if p.len() < 2 || p.len() > 3 {
        eprintln!(
            "This script converts the CIFAR dataset to the leveldb/lmdb format used\n\
             by caffe to perform classification.\n\
             Usage:\n    convert_cifar_data [FLAGS] input_folder output_folder [db_type]\n\
             Where the input folder should contain the binary batch files.\n{}",
            flags::usage(SPECS)
        );
        return ExitCode::from(1);
    }
    let backend = p.get(2).map(String::as_str).unwrap_or(flags.get("backend"));
    match convert(Path::new(&p[0]), Path::new(&p[1]), backend) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// A batch file's records, checked to be whole and at most one batch.
fn read_batch(path: &Path) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("Unable to open {}: {e}", path.display()))?;
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        return Err(format!(
            "{} holds {} bytes, not a whole number of {RECORD_BYTES}-byte CIFAR-10 records",
            path.display(),
            bytes.len()
        ));
    }
    if bytes.len() / RECORD_BYTES > BATCH_SIZE {
        return Err(format!(
            "{} holds {} records, more than a CIFAR-10 batch ({BATCH_SIZE})",
            path.display(),
            bytes.len() / RECORD_BYTES
        ));
    }
    Ok(bytes)
}

/// Writes `(key number, record)` pairs of the batches into a new database.
fn write_db(
    db: &Path,
    backend: Backend,
    batches: &[(usize, Vec<u8>)],
    mut progress: RecordProgress,
) -> Result<(), String> {
    let err = |e: crema::Error| e.to_string();
    let mut writer: DbWriter = backend.create_writer(db).map_err(err)?;
    let mut datum = Datum::new();
    datum.set_channels(3);
    datum.set_height(SIZE as i32);
    datum.set_width(SIZE as i32);
    for (first_key, bytes) in batches {
        for (item, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            datum.set_label(i32::from(record[0]));
            datum.set_data(record[1..].to_vec());
            let value = crema::proto::binary::encode(&datum).map_err(|e| e.to_string())?;
            writer.put(format!("{:05}", first_key + item), value);
            progress.inc();
            if progress.count() % COMMIT_EVERY == 0 {
                writer.commit().map_err(err)?;
            }
        }
    }
    writer.finish().map_err(err)?;
    progress.finish();
    Ok(())
}

fn convert(input: &Path, output: &Path, backend: &str) -> Result<(), String> {
    let backend = Backend::parse(backend).map_err(|e| e.to_string())?;
    let db_path =
        |split: &str| -> PathBuf { output.join(format!("cifar10_{split}_{}", backend.name())) };
    // All inputs are read and checked before anything is written.
    let mut train = Vec::new();
    for fileid in 0..TRAIN_BATCHES {
        let file = input.join(format!("data_batch_{}.bin", fileid + 1));
        train.push((fileid * BATCH_SIZE, read_batch(&file)?));
    }
    let test = vec![(0, read_batch(&input.join("test_batch.bin"))?)];
    let records = |b: &[(usize, Vec<u8>)]| -> u64 {
        b.iter().map(|(_, v)| (v.len() / RECORD_BYTES) as u64).sum()
    };

    log::info!("Writing Training data");
    let progress = RecordProgress::new(Some(records(&train)), COMMIT_EVERY, |n| {
        format!("Processed {n} files.")
    });
    write_db(&db_path("train"), backend, &train, progress)?;
    log::info!("Writing Testing data");
    let progress = RecordProgress::new(Some(records(&test)), COMMIT_EVERY, |n| {
        format!("Processed {n} files.")
    });
    write_db(&db_path("test"), backend, &test, progress)?;
    Ok(())
}
