//! convert_mnist_data and convert_imageset with `--backend=leveldb` write the
//! same records, key for key and byte for byte, as with `--backend=lmdb`, and
//! compute_image_mean reads either.
use std::path::{Path, PathBuf};
use std::process::Command;

use crema::data::Backend;
use crema_proto::testdata::shared_data;

const MNIST: &str = env!("CARGO_BIN_EXE_convert_mnist_data");
const IMAGESET: &str = env!("CARGO_BIN_EXE_convert_imageset");
const MEAN: &str = env!("CARGO_BIN_EXE_compute_image_mean");

fn run(exe: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(exe).args(args).output().expect("tool runs");
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema-ldb-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn records(backend: Backend, db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = backend.open_cursor(db).unwrap();
    let mut out = Vec::new();
    while c.valid() {
        out.push((c.key().to_vec(), c.value().to_vec()));
        c.next().unwrap();
    }
    out
}

/// Runs `exe` with `args` and `--backend=<b>` into `<dir>/<b>` for both
/// backends; returns the two paths after checking the records are equal.
fn both(exe: &str, args: &[&str], dir: &Path) -> (PathBuf, PathBuf) {
    let mut paths = Vec::new();
    for b in [Backend::Lmdb, Backend::LevelDb] {
        let db = dir.join(b.name());
        let flag = format!("--backend={}", b.name());
        let mut a: Vec<&str> = args.to_vec();
        a.push(db.to_str().unwrap());
        a.push(&flag);
        let (code, log) = run(exe, &a);
        assert_eq!(code, 0, "{log}");
        paths.push(db);
    }
    let lmdb = records(Backend::Lmdb, &paths[0]);
    let leveldb = records(Backend::LevelDb, &paths[1]);
    assert!(!lmdb.is_empty());
    assert!(lmdb == leveldb, "the two backends hold different records");
    (paths[0].clone(), paths[1].clone())
}

#[test]
fn mnist_and_imageset_write_the_same_records_to_leveldb_as_to_lmdb() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("mnist");
    let images = data.join("mnist/t10k-images-idx3-ubyte");
    let labels = data.join("mnist/t10k-labels-idx1-ubyte");
    let (_, ldb) = both(
        MNIST,
        &[images.to_str().unwrap(), labels.to_str().unwrap()],
        &dir,
    );
    let recs = records(Backend::LevelDb, &ldb);
    assert_eq!(recs.len(), 10000);
    assert_eq!(recs[9999].0, b"00009999");

    let dir = temp("imageset");
    let list = dir.join("list.txt");
    std::fs::write(&list, "cat.jpg 281\nfish-bike.jpg 671\ncat_gray.jpg 282\n").unwrap();
    let root = format!("{}/", data.join("images").display());
    let (lmdb, ldb) = both(
        IMAGESET,
        &[
            "--resize_height=32",
            "--resize_width=32",
            &root,
            list.to_str().unwrap(),
        ],
        &dir,
    );
    let keys: Vec<_> = records(Backend::LevelDb, &ldb)
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "00000000_cat.jpg",
            "00000001_fish-bike.jpg",
            "00000002_cat_gray.jpg"
        ]
    );
    // The mean of either database is the same file.
    let mut means = Vec::new();
    for (b, db) in [("lmdb", &lmdb), ("leveldb", &ldb)] {
        let out = dir.join(format!("mean_{b}.binaryproto"));
        let flag = format!("--backend={b}");
        let (code, log) = run(MEAN, &[&flag, db.to_str().unwrap(), out.to_str().unwrap()]);
        assert_eq!(code, 0, "{log}");
        assert!(log.contains("Processed 3 files."), "{log}");
        means.push(std::fs::read(out).unwrap());
    }
    assert_eq!(means[0], means[1]);
    // The wrong backend is named, not misread.
    let (code, log) = run(MEAN, &["--backend=lmdb", ldb.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(log.contains("LevelDB"), "{log}");
    let _ = std::fs::remove_dir_all(
        dir.parent()
            .unwrap()
            .join(format!("crema-ldb-tools-{}-mnist", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
