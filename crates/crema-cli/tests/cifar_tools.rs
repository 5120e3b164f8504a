//! convert_cifar_data on the real CIFAR-10 records in shared/data, both
//! backends: Caffe's keys and Datum bytes, compute_image_mean on the LevelDB,
//! and the cifar10_quick net training on it with a falling loss.
use std::path::{Path, PathBuf};
use std::process::Command;

use crema::data::Backend;
use crema::proto::caffe::{BlobProto, Datum};
use crema_proto::testdata::shared_data;

const CIFAR: &str = env!("CARGO_BIN_EXE_convert_cifar_data");
const MEAN: &str = env!("CARGO_BIN_EXE_compute_image_mean");
const CAFFE: &str = env!("CARGO_BIN_EXE_caffe");
const RECORD: usize = 3073;

fn run(exe: &str, args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("tool runs");
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema-cifar-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Caffe's input folder from the shipped subsets: the 200 training records
/// split into data_batch_1..5.bin (40 each) and the 20 test records.
/// Returns the folder and the records in key order with their keys.
fn cifar_input(data: &Path, dir: &Path) -> (PathBuf, Vec<(String, Vec<u8>)>, Vec<Vec<u8>>) {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let train = std::fs::read(data.join("cifar10/data_batch_1_first200.bin")).unwrap();
    let test = std::fs::read(data.join("cifar10/test_batch_first20.bin")).unwrap();
    assert_eq!((train.len(), test.len()), (200 * RECORD, 20 * RECORD));
    let mut keyed = Vec::new();
    for b in 0..5 {
        let part = &train[b * 40 * RECORD..(b + 1) * 40 * RECORD];
        std::fs::write(input.join(format!("data_batch_{}.bin", b + 1)), part).unwrap();
        for (i, r) in part.chunks(RECORD).enumerate() {
            keyed.push((format!("{:05}", b * 10000 + i), r.to_vec()));
        }
    }
    std::fs::write(input.join("test_batch.bin"), &test).unwrap();
    (
        input,
        keyed,
        test.chunks(RECORD).map(<[u8]>::to_vec).collect(),
    )
}

/// The bytes Caffe's Datum::SerializeToString gives for a CIFAR record:
/// fields in number order, channels 3, height 32, width 32, data, label.
fn caffe_datum_bytes(record: &[u8]) -> Vec<u8> {
    let mut b = vec![0x08, 3, 0x10, 32, 0x18, 32, 0x22, 0x80, 0x18];
    b.extend_from_slice(&record[1..]);
    b.extend_from_slice(&[0x28, record[0]]);
    b
}

fn all_records(backend: Backend, db: &Path) -> Vec<(String, Vec<u8>)> {
    let mut c = backend.open_cursor(db).unwrap();
    let mut out = Vec::new();
    while c.valid() {
        out.push((
            String::from_utf8(c.key().to_vec()).unwrap(),
            c.value().to_vec(),
        ));
        c.next().unwrap();
    }
    out
}

fn check_db(backend: Backend, db: &Path, want: &[(String, Vec<u8>)]) {
    let got = all_records(backend, db);
    assert_eq!(got.len(), want.len(), "{}", db.display());
    for ((key, value), (want_key, record)) in got.iter().zip(want) {
        assert_eq!(key, want_key, "{}", db.display());
        assert_eq!(value, &caffe_datum_bytes(record), "record {key}");
        // And through the schema: the generated Datum parsed from the raw bytes.
        let d: Datum = crema_proto::binary::decode(value, db, "Datum").unwrap();
        assert_eq!((d.channels(), d.height(), d.width()), (3, 32, 32));
        assert_eq!(d.label(), i32::from(record[0]));
        assert_eq!(d.data(), &record[1..]);
        assert!(d.float_data.is_empty() && !d.encoded());
    }
}

#[test]
fn cifar_converts_to_caffes_keys_and_datums_in_both_backends() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("convert");
    let (input, train, test) = cifar_input(&data, &dir);
    let test: Vec<_> = test
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("{i:05}"), r))
        .collect();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Caffe's positional db_type, then the --backend flag.
    let (code, log) = run(
        CIFAR,
        &[input.to_str().unwrap(), out.to_str().unwrap(), "leveldb"],
        &dir,
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Writing Training data") && log.contains("Writing Testing data"));
    assert!(
        log.contains("Processed 200 files.") && log.contains("Processed 20 files."),
        "{log}"
    );
    let (code, log) = run(
        CIFAR,
        &[
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--backend=lmdb",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{log}");
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cifar10_test_leveldb",
            "cifar10_test_lmdb",
            "cifar10_train_leveldb",
            "cifar10_train_lmdb"
        ]
    );
    for backend in [Backend::LevelDb, Backend::Lmdb] {
        let n = backend.name();
        check_db(backend, &out.join(format!("cifar10_train_{n}")), &train);
        check_db(backend, &out.join(format!("cifar10_test_{n}")), &test);
    }

    // Over an existing database: refused, and the existing one untouched.
    let (code, log) = run(
        CIFAR,
        &[input.to_str().unwrap(), out.to_str().unwrap(), "leveldb"],
        &dir,
    );
    assert_eq!(code, 1);
    assert!(log.contains("already exists"), "{log}");
    check_db(Backend::LevelDb, &out.join("cifar10_train_leveldb"), &train);

    // A truncated batch file is named, and nothing is left half-written.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for b in 1..=5 {
        std::fs::copy(
            input.join(format!("data_batch_{b}.bin")),
            bad.join(format!("data_batch_{b}.bin")),
        )
        .unwrap();
    }
    std::fs::write(bad.join("test_batch.bin"), &test[0].1[..100]).unwrap();
    let out2 = dir.join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    let (code, log) = run(
        CIFAR,
        &[bad.to_str().unwrap(), out2.to_str().unwrap()],
        &dir,
    );
    assert_eq!(code, 1);
    assert!(
        log.contains("test_batch.bin") && log.contains("3073"),
        "{log}"
    );
    assert_eq!(std::fs::read_dir(&out2).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Iteration N (...), loss = X` values of a `caffe train` log.
fn losses(log: &str) -> Vec<(u32, f32)> {
    log.lines()
        .filter_map(|l| {
            let m = l.split_once("] ")?.1;
            let rest = m.strip_prefix("Iteration ")?;
            let (iter, loss) = rest.split_once(", loss = ")?;
            let iter = iter.split(' ').next()?.parse().ok()?;
            Some((iter, loss.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn cifar10_quick_trains_on_converted_leveldb_with_its_computed_mean() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("train");
    let (input, train, _) = cifar_input(&data, &dir);
    let (code, log) = run(
        CIFAR,
        &[input.to_str().unwrap(), dir.to_str().unwrap(), "leveldb"],
        &dir,
    );
    assert_eq!(code, 0, "{log}");
    let (code, log) = run(
        MEAN,
        &[
            "--backend=leveldb",
            "cifar10_train_leveldb",
            "mean.binaryproto",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Processed 200 files."), "{log}");
    // The mean, pixel by pixel, from the raw records.
    let mean: BlobProto =
        crema::proto::files::read_mean_blob(&dir.join("mean.binaryproto")).unwrap();
    assert_eq!(
        (mean.num(), mean.channels(), mean.height(), mean.width()),
        (1, 3, 32, 32)
    );
    for p in [0usize, 1, 1023, 1024, 2047, 3071] {
        let want = train.iter().map(|(_, r)| f64::from(r[1 + p])).sum::<f64>() / 200.0;
        assert!((f64::from(mean.data[p]) - want).abs() < 1e-3, "pixel {p}");
    }

    // Caffe's example net and solver, pointed at the converted data.
    let models = data.join("models/bvlc_examples/cifar10");
    let net = std::fs::read_to_string(models.join("cifar10_quick_train_test.prototxt"))
        .unwrap()
        .replace("examples/cifar10/mean.binaryproto", "mean.binaryproto")
        .replace(
            "examples/cifar10/cifar10_train_lmdb",
            "cifar10_train_leveldb",
        )
        .replace("examples/cifar10/cifar10_test_lmdb", "cifar10_test_leveldb")
        .replace("backend: LMDB", "backend: LEVELDB")
        .replace("batch_size: 100", "batch_size: 20");
    assert_eq!(net.matches("LEVELDB").count(), 2);
    std::fs::write(dir.join("net.prototxt"), net).unwrap();
    let solver = std::fs::read_to_string(models.join("cifar10_quick_solver.prototxt"))
        .unwrap()
        .replace(
            "examples/cifar10/cifar10_quick_train_test.prototxt",
            "net.prototxt",
        )
        .replace("test_iter: 100", "test_iter: 1")
        .replace("display: 100", "display: 5")
        .replace("max_iter: 4000", "max_iter: 40")
        .replace("snapshot: 4000", "snapshot: 0")
        .replace("examples/cifar10/cifar10_quick", "quick")
        .replace("solver_mode: GPU", "solver_mode: CPU\nrandom_seed: 1");
    std::fs::write(dir.join("solver.prototxt"), solver).unwrap();
    let (code, log) = run(CAFFE, &["train", "--solver=solver.prototxt"], &dir);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("Opened leveldb cifar10_train_leveldb"),
        "{log}"
    );
    let l = losses(&log);
    eprintln!("losses: {l:?}");
    assert!(l.len() >= 8 && l[0].0 == 0, "{l:?}");
    let first = l[0].1;
    let last: f32 = l[l.len() - 3..].iter().map(|x| x.1).sum::<f32>() / 3.0;
    assert!((first - 10f32.ln()).abs() < 0.3, "starts near ln 10: {l:?}");
    assert!(last < first - 0.1, "loss falls: {l:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
