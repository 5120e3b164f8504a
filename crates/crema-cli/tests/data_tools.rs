//! convert_mnist_data, convert_imageset and compute_image_mean run as Caffe
//! users run them, on the real MNIST files and photos in shared/data.
use std::path::{Path, PathBuf};
use std::process::Command;

use crema::data::{parse_datum, Image, LmdbCursor, LmdbWriter};
use crema::proto::caffe::{BlobProto, Datum};
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

/// A fresh directory for one test.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema-data-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn records(db: &Path) -> Vec<(String, Datum)> {
    let mut c = LmdbCursor::open(db).unwrap();
    let mut out = Vec::new();
    while c.valid() {
        let key = String::from_utf8_lossy(c.key()).into_owned();
        out.push((key.clone(), parse_datum(c.value(), &key, "test").unwrap()));
        c.next().unwrap();
    }
    out
}

#[test]
fn mnist_t10k_converts_to_10000_datums_matching_the_idx_bytes() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let images = data.join("mnist/t10k-images-idx3-ubyte");
    let labels = data.join("mnist/t10k-labels-idx1-ubyte");
    let dir = temp("mnist");
    let db = dir.join("mnist_test_lmdb");
    let (code, log) = run(
        MNIST,
        &[
            images.to_str().unwrap(),
            labels.to_str().unwrap(),
            db.to_str().unwrap(),
            "--backend=lmdb",
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("A total of 10000 items.") && log.contains("Rows: 28 Cols: 28"),
        "{log}"
    );

    let img_bytes = std::fs::read(&images).unwrap();
    let lab_bytes = std::fs::read(&labels).unwrap();
    let recs = records(&db);
    assert_eq!(recs.len(), 10000);
    for i in [0usize, 1, 4321, 9999] {
        let (key, d) = &recs[i];
        assert_eq!(key, &format!("{i:08}"));
        assert_eq!((d.channels(), d.height(), d.width()), (1, 28, 28));
        // IDX: 16-byte image header, 8-byte label header.
        assert_eq!(
            d.data(),
            &img_bytes[16 + i * 784..16 + (i + 1) * 784],
            "image {i}"
        );
        assert_eq!(d.label(), lab_bytes[8 + i] as i32, "label {i}");
        assert!(!d.encoded());
    }
    // The t10k set famously starts with a 7, a 2 and a 1, and ends with a 6.
    assert_eq!(
        [
            recs[0].1.label(),
            recs[1].1.label(),
            recs[2].1.label(),
            recs[9999].1.label()
        ],
        [7, 2, 1, 6]
    );

    // Converting over an existing database is refused, as Caffe refuses.
    let (code, log) = run(
        MNIST,
        &[
            images.to_str().unwrap(),
            labels.to_str().unwrap(),
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(log.contains("already exists"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_inputs_are_named_and_exit_1() {
    let dir = temp("missing");
    let nope = dir.join("nope-idx3-ubyte");
    let (code, log) = run(
        MNIST,
        &[
            nope.to_str().unwrap(),
            "x",
            dir.join("db").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(log.contains("nope-idx3-ubyte"), "{log}");
    let (code, log) = run(MEAN, &[dir.join("no_db").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(log.contains("no_db"), "{log}");
    let (code, log) = run(
        IMAGESET,
        &[
            "/",
            dir.join("no_list.txt").to_str().unwrap(),
            dir.join("db").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(log.contains("no_list.txt"), "{log}");
    let (code, log) = run(IMAGESET, &["a"]);
    assert_eq!(code, 1);
    assert!(log.contains("Usage"), "{log}");
}

#[test]
fn compute_image_mean_averages_each_pixel_and_logs_channel_means() {
    let dir = temp("mean");
    let db = dir.join("db");
    let mut w = LmdbWriter::create(&db).unwrap();
    // Three 2-channel 1x2 images; the third stored as float_data.
    let raws: [[u8; 4]; 2] = [[0, 10, 100, 200], [30, 20, 50, 0]];
    for (i, r) in raws.iter().enumerate() {
        let mut d = Datum::new();
        d.set_channels(2);
        d.set_height(1);
        d.set_width(2);
        d.set_data(r.to_vec());
        w.put(format!("{i:08}"), crema::proto::binary::encode(&d).unwrap());
    }
    let mut f = Datum::new();
    f.set_channels(2);
    f.set_height(1);
    f.set_width(2);
    f.float_data = vec![3.0, 0.0, 0.0, 100.0];
    w.put("00000002", crema::proto::binary::encode(&f).unwrap());
    w.commit().unwrap();
    drop(w);
    let out = dir.join("mean.binaryproto");
    let (code, log) = run(MEAN, &[db.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{log}");
    // Per pixel: (0+30+3)/3 = 11, (10+20+0)/3 = 10, (100+50+0)/3 = 50, (200+0+100)/3 = 100.
    let blob: BlobProto = crema::proto::files::read_mean_blob(&out).unwrap();
    assert_eq!(
        (blob.num(), blob.channels(), blob.height(), blob.width()),
        (1, 2, 1, 2)
    );
    assert_eq!(blob.data, vec![11.0, 10.0, 50.0, 100.0]);
    // Channel means: (11+10)/2 = 10.5 and (50+100)/2 = 75.
    assert!(log.contains("mean_value channel [0]: 10.5"), "{log}");
    assert!(log.contains("mean_value channel [1]: 75"), "{log}");
    assert!(log.contains("Processed 3 files."), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn convert_imageset_stores_photos_raw_resized_gray_or_encoded() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("imageset");
    let root = format!("{}/", data.join("images").display());
    let list = dir.join("list.txt");
    std::fs::write(&list, "cat.jpg 281\nfish-bike.jpg 671\ncat_gray.jpg 282\n").unwrap();
    let list = list.to_str().unwrap();

    // Raw, resized to 24x32 (height x width), colour.
    let raw = dir.join("raw");
    let (code, log) = run(
        IMAGESET,
        &[
            "--resize_height=24",
            "--resize_width=32",
            "--check_size",
            &root,
            list,
            raw.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("A total of 3 images.") && log.contains("Processed 3 files."),
        "{log}"
    );
    let recs = records(&raw);
    let keys: Vec<&str> = recs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "00000000_cat.jpg",
            "00000001_fish-bike.jpg",
            "00000002_cat_gray.jpg"
        ]
    );
    for ((_, d), label) in recs.iter().zip([281, 671, 282]) {
        assert_eq!(
            (d.channels(), d.height(), d.width(), d.label()),
            (3, 24, 32, label)
        );
        assert_eq!(d.data().len(), 3 * 24 * 32);
    }
    // The stored planes are the decoded, resized photo in CHW order.
    let cat = Image::read(&data.join("images/cat.jpg"), crema::data::ColorMode::Color)
        .unwrap()
        .resize(24, 32);
    assert_eq!(recs[0].1.data(), cat.to_datum(281).data());
    // A gray photo read as colour has three equal planes.
    let g = recs[2].1.data();
    assert_eq!(&g[..768], &g[768..1536]);

    // --gray gives one channel.
    let gray = dir.join("gray");
    let (code, log) = run(
        IMAGESET,
        &[
            "--gray",
            "--resize_height=8",
            "--resize_width=8",
            &root,
            list,
            gray.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(records(&gray)
        .iter()
        .all(|(_, d)| d.channels() == 1 && d.data().len() == 64));

    // --encoded without resizing keeps each file's own bytes.
    let enc = dir.join("enc");
    let (code, log) = run(IMAGESET, &["--encoded", &root, list, enc.to_str().unwrap()]);
    assert_eq!(code, 0, "{log}");
    for (key, d) in records(&enc) {
        let file = key.split_once('_').unwrap().1;
        assert!(d.encoded());
        assert_eq!(
            d.data(),
            std::fs::read(data.join("images").join(file)).unwrap(),
            "{key}"
        );
    }

    // --encode_type=png re-encodes; decoding gives back the same pixels.
    let png = dir.join("png");
    let (code, log) = run(
        IMAGESET,
        &[
            "--encode_type=png",
            "--resize_height=24",
            "--resize_width=32",
            &root,
            list,
            png.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("assuming encoded=true"), "{log}");
    let first = &records(&png)[0].1;
    assert!(first.data().starts_with(b"\x89PNG"));
    let decoded = Image::decode(first.data(), crema::data::ColorMode::Color).unwrap();
    assert_eq!(decoded, cat);

    // --check_size stops at an image of another size; unreadable files are skipped.
    std::fs::write(
        dir.join("list2.txt"),
        "cat.jpg 1\nmissing.jpg 2\nfish-bike.jpg 3\n",
    )
    .unwrap();
    let sized = dir.join("sized");
    let (code, log) = run(
        IMAGESET,
        &[
            "--check_size",
            &root,
            dir.join("list2.txt").to_str().unwrap(),
            sized.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        log.contains("missing.jpg") && log.contains("Incorrect data field size"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn convert_imageset_shuffle_keeps_each_file_with_its_label() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("shuffle");
    let root = format!("{}/", data.join("images/foolbox_imagenet").display());
    let mut files: Vec<String> = std::fs::read_dir(data.join("images/foolbox_imagenet"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".jpg") || f.ends_with(".png"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let list: String = files
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{f} {i}\n"))
        .collect();
    std::fs::write(dir.join("list.txt"), list).unwrap();
    let db = dir.join("db");
    let list = dir.join("list.txt");
    let args = [
        "--shuffle",
        "--resize_height=4",
        "--resize_width=4",
        &root,
        list.to_str().unwrap(),
        db.to_str().unwrap(),
    ];
    let (code, log) = run(IMAGESET, &args);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Shuffling data"), "{log}");
    let recs = records(&db);
    assert_eq!(recs.len(), files.len());
    let mut seen = Vec::new();
    for (i, (key, d)) in recs.iter().enumerate() {
        let (index, file) = key.split_once('_').unwrap();
        assert_eq!(index, format!("{i:08}"));
        // The label still belongs to the file it was listed with.
        assert_eq!(files[d.label() as usize], file);
        seen.push(file.to_string());
    }
    seen.sort();
    assert_eq!(seen, files);
    let _ = std::fs::remove_dir_all(&dir);
}
