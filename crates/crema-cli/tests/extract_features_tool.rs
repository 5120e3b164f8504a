//! extract_features on the trained LeNet from shared/data: every image's
//! ip1 and ip2 values land in their databases under Caffe's keys, equal to a
//! forward pass of the same net.
use std::path::PathBuf;
use std::process::Command;

use crema::data::{index_key, Backend};
use crema::proto::caffe::{Datum, Phase};
use crema_cli::netload::load_net;
use crema_proto::testdata::shared_data;

const EXTRACT: &str = env!("CARGO_BIN_EXE_extract_features");
const BATCH: usize = 50;
const BATCHES: usize = 3;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema-extract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(EXTRACT)
        .args(args)
        .output()
        .expect("tool runs");
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lenet_features_equal_a_forward_pass_under_caffes_keys() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("lenet");
    // The first BATCH * BATCHES MNIST test digits as an LMDB, as
    // convert_mnist_data writes them.
    let images = std::fs::read(data.join("mnist/t10k-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(data.join("mnist/t10k-labels-idx1-ubyte")).unwrap();
    let n = BATCH * BATCHES;
    let source = dir.join("mnist_lmdb");
    let mut w = Backend::Lmdb.create_writer(&source).unwrap();
    for i in 0..n {
        let mut d = Datum::new();
        d.set_channels(1);
        d.set_height(28);
        d.set_width(28);
        d.set_data(images[16 + i * 784..16 + (i + 1) * 784].to_vec());
        d.set_label(i32::from(labels[8 + i]));
        w.put(index_key(i), crema::proto::binary::encode(&d).unwrap());
    }
    w.finish().unwrap();

    let models = data.join("models/lenet_summerlife");
    let net = std::fs::read_to_string(models.join("lenet_train_test.prototxt"))
        .unwrap()
        .replace("examples/mnist/mnist_test_lmdb", source.to_str().unwrap())
        .replace("batch_size: 100", &format!("batch_size: {BATCH}"));
    let net_path = dir.join("lenet.prototxt");
    std::fs::write(&net_path, net).unwrap();
    let weights = models.join("lenet_iter_10000.caffemodel");
    let (db_ip2, db_ip1) = (dir.join("ip2_leveldb"), dir.join("ip1_leveldb"));
    let dbs = format!("{},{}", db_ip2.display(), db_ip1.display());
    let (code, log) = run(&[
        weights.to_str().unwrap(),
        net_path.to_str().unwrap(),
        "ip2,ip1",
        &dbs,
        &BATCHES.to_string(),
        "leveldb",
        "CPU",
    ]);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!(
            "Extracted features of {n} query images for feature blob ip1"
        )) && log.contains("Successfully extracted the features!"),
        "{log}"
    );

    // The same net, forward BATCHES times in this process.
    let mut reference = load_net(net_path.to_str().unwrap(), Phase::TEST, 0, &[]).unwrap();
    reference.copy_trained_layers_from_file(&weights).unwrap();
    let mut want: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..BATCHES {
        reference.forward().unwrap();
        for (blob, out) in ["ip2", "ip1"].iter().zip(want.iter_mut()) {
            out.extend_from_slice(reference.blob_by_name(blob).unwrap().borrow().data());
        }
    }

    let mut correct = 0;
    for ((db, dim), want) in [(&db_ip2, 10usize), (&db_ip1, 500)].iter().zip(&want) {
        let mut c = Backend::LevelDb.open_cursor(db).unwrap();
        for i in 0..n {
            assert!(c.valid(), "{} ends at {i}", db.display());
            assert_eq!(c.key(), format!("{i:010}").as_bytes());
            let d: Datum = crema_proto::binary::decode(c.value(), db, "Datum").unwrap();
            // An N x dim blob's legacy shape: channels dim, height and width 1.
            assert_eq!((d.channels(), d.height(), d.width()), (*dim as i32, 1, 1));
            assert!(d.data().is_empty());
            let expect = &want[i * dim..(i + 1) * dim];
            for (g, e) in d.float_data.iter().zip(expect) {
                assert!(
                    (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                    "image {i}: {g} vs {e}"
                );
            }
            assert_eq!(d.float_data.len(), *dim);
            if *dim == 10 {
                let best = (0..10)
                    .max_by(|&a, &b| d.float_data[a].total_cmp(&d.float_data[b]))
                    .unwrap();
                correct += usize::from(best == labels[8 + i] as usize);
            }
            c.next().unwrap();
        }
        assert!(!c.valid(), "{} holds more than {n} records", db.display());
    }
    // The trained LeNet scores ~99% on MNIST: the features are the real ones.
    assert!(correct >= n * 95 / 100, "{correct}/{n} correct");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_named_and_leave_no_database() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = temp("bad");
    let (code, log) = run(&["a", "b"]);
    assert_eq!(code, 1);
    assert!(log.contains("Usage: extract_features"), "{log}");
    let models = data.join("models/lenet_summerlife");
    let weights = models.join("lenet_iter_10000.caffemodel");
    let deploy = models.join("lenet.prototxt");
    let db = dir.join("feat");
    let (code, log) = run(&[
        weights.to_str().unwrap(),
        deploy.to_str().unwrap(),
        "fc9",
        db.to_str().unwrap(),
        "1",
        "lmdb",
    ]);
    assert_eq!(code, 1);
    assert!(log.contains("Unknown feature blob name fc9"), "{log}");
    let (code, log) = run(&[
        weights.to_str().unwrap(),
        deploy.to_str().unwrap(),
        "ip1,ip2",
        db.to_str().unwrap(),
        "1",
        "lmdb",
    ]);
    assert_eq!(code, 1);
    assert!(log.contains("must be equal"), "{log}");
    let (code, log) = run(&[
        weights.to_str().unwrap(),
        deploy.to_str().unwrap(),
        "ip1",
        db.to_str().unwrap(),
        "1",
        "rocksdb",
    ]);
    assert_eq!(code, 1);
    assert!(log.contains("rocksdb"), "{log}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
