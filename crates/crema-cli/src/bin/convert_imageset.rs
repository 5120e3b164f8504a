//! `convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME`: images listed as
//! `<file> <label>` lines into a database of Datums with keys
//! `%08d_<file>`, as Caffe's tool: raw BGR (or gray) pixels by default, or
//! the encoded bytes with --encoded / --encode_type. ROOTFOLDER is prefixed
//! to each file name as written (keep its trailing slash).
use std::path::Path;
use std::process::ExitCode;

use crema::data::{image_key, read_image_to_datum, Backend};

use crema_cli::flags::{self, FlagSpec, Flags};
use crema_cli::record_progress::RecordProgress;

const SPECS: &[FlagSpec] = &[
    FlagSpec {
        name: "gray",
        boolean: true,
        default: "false",
        help: "When this option is on, treat images as grayscale ones",
    },
    FlagSpec {
        name: "shuffle",
        boolean: true,
        default: "false",
        help: "Randomly shuffle the order of images and their labels",
    },
    FlagSpec {
        name: "backend",
        boolean: false,
        default: "lmdb",
        help: "The backend {lmdb, leveldb} for storing the result",
    },
    FlagSpec {
        name: "resize_width",
        boolean: false,
        default: "0",
        help: "Width images are resized to",
    },
    FlagSpec {
        name: "resize_height",
        boolean: false,
        default: "0",
        help: "Height images are resized to",
    },
    FlagSpec {
        name: "check_size",
        boolean: true,
        default: "false",
        help: "When this option is on, check that all the datum have the same size",
    },
    FlagSpec {
        name: "encoded",
        boolean: true,
        default: "false",
        help: "When this option is on, the encoded image will be save in datum",
    },
    FlagSpec {
        name: "encode_type",
        boolean: false,
        default: "",
        help: "Optional: What type should we encode the image as ('png','jpg',...).",
    },
];

const COMMIT_EVERY: usize = 1000;

fn main() -> ExitCode {
    let flags = match flags::tool_start("convert_imageset", SPECS) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if flags.positional.len() < 3 {
        eprintln!(
            "Convert a set of images to the leveldb/lmdb\nformat used as input for Caffe.\n\
             Usage:\n    convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME\n{}",
            flags::usage(SPECS)
        );
        return ExitCode::from(1);
    }
    match convert(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `<file> <label>` lines; the label follows the last space, so file names
/// may contain spaces.
fn read_list(path: &Path) -> Result<Vec<(String, i32)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read list file {}: {e}", path.display()))?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .rsplit_once(' ')
            .and_then(|(f, l)| Some((f.to_string(), l.trim().parse::<i32>().ok()?)));
        match parsed {
            Some(entry) => lines.push(entry),
            None => {
                return Err(format!(
                    "{}:{}: expected '<file> <integer label>', got '{line}'",
                    path.display(),
                    n + 1
                ))
            }
        }
    }
    Ok(lines)
}

fn convert(flags: &Flags) -> Result<(), String> {
    let (root, list, db) = (
        &flags.positional[0],
        &flags.positional[1],
        &flags.positional[2],
    );
    let is_color = !flags.get_bool("gray");
    let check_size = flags.get_bool("check_size");
    let mut encoded = flags.get_bool("encoded");
    let encode_type = flags.get("encode_type").to_string();
    let resize_height = flags.get_i64("resize_height")?.max(0) as usize;
    let resize_width = flags.get_i64("resize_width")?.max(0) as usize;
    let backend = Backend::parse(flags.get("backend")).map_err(|e| e.to_string())?;

    let mut lines = read_list(Path::new(list))?;
    if flags.get_bool("shuffle") {
        log::info!("Shuffling data");
        // Fisher-Yates on crema's generator.
        for i in (1..lines.len()).rev() {
            let j = (crema::rng::next_u64() % (i as u64 + 1)) as usize;
            lines.swap(i, j);
        }
    }
    log::info!("A total of {} images.", lines.len());
    if !encode_type.is_empty() && !encoded {
        log::info!("encode_type specified, assuming encoded=true.");
        encoded = true;
    }

    let mut writer = backend
        .create_writer(Path::new(db))
        .map_err(|e| e.to_string())?;
    let mut data_size: Option<usize> = None;
    let mut progress = RecordProgress::new(Some(lines.len() as u64), COMMIT_EVERY as u64, |n| {
        format!("Processed {n} files.")
    });
    for (line_id, (file, label)) in lines.iter().enumerate() {
        let mut enc = encode_type.clone();
        if encoded && enc.is_empty() {
            match file.rfind('.') {
                Some(p) => enc = file[p + 1..].to_ascii_lowercase(),
                None => log::warn!("Failed to guess the encoding of '{file}'"),
            }
        }
        let path = format!("{root}{file}");
        // Like Caffe, an image that cannot be read is reported and skipped.
        let datum = match read_image_to_datum(
            Path::new(&path),
            *label,
            resize_height,
            resize_width,
            is_color,
            &enc,
        ) {
            Ok(d) => d,
            Err(e) => {
                log::error!("{e}");
                continue;
            }
        };
        if check_size {
            let size = datum.data().len();
            match data_size {
                None => data_size = Some(size),
                Some(s) if s != size => {
                    return Err(format!(
                        "Incorrect data field size {size} for {path} (the first image has {s})"
                    ))
                }
                Some(_) => {}
            }
        }
        writer.put(
            image_key(line_id, file),
            crema::proto::binary::encode(&datum).map_err(|e| e.to_string())?,
        );
        progress.inc();
        if progress.count() % COMMIT_EVERY as u64 == 0 {
            writer.commit().map_err(|e| e.to_string())?;
        }
    }
    // The database appears under its name only once complete.
    writer.finish().map_err(|e| e.to_string())?;
    progress.finish();
    Ok(())
}
