//! Caffe's own lenet_train_test.prototxt, its Data layers pointed at an LMDB
//! of the real MNIST t10k set, with the trained SummerLife weights: the TEST
//! net scores the accuracy measured independently for those weights (99.12%),
//! and the TRAIN net's Data layer serves 64-image batches scaled to [0, 1].
mod solver_support;

use std::path::Path;

use crema::proto::caffe::Phase;
use crema::proto::files;
use crema::Net;
use crema_proto::testdata::shared_data;

fn lenet(models: &Path, db: &Path, phase: Phase) -> Net {
    let mut p = files::read_net_text(models.join("lenet_train_test.prototxt")).unwrap();
    for l in p.layer.iter_mut().filter(|l| l.type_() == "Data") {
        l.data_param
            .mut_or_insert_default()
            .set_source(db.to_string_lossy().into_owned());
    }
    p.state.mut_or_insert_default().set_phase(phase);
    Net::from_param(&p).unwrap()
}

#[test]
fn lenet_test_net_on_lmdb_scores_the_known_accuracy() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mnist_test_lmdb");
    let mnist = data.join("mnist");
    solver_support::write_mnist_lmdb(
        &mnist.join("t10k-images-idx3-ubyte"),
        &mnist.join("t10k-labels-idx1-ubyte"),
        10000,
        &db,
    );
    let models = data.join("models/lenet_summerlife");

    let mut test = lenet(&models, &db, Phase::TEST);
    test.copy_trained_layers_from_file(models.join("lenet_iter_10000.caffemodel"))
        .unwrap();
    let mut correct = 0.0f64;
    for _ in 0..100 {
        test.forward().unwrap();
        correct += test.blob_by_name("accuracy").unwrap().borrow().data()[0] as f64 * 100.0;
    }
    let accuracy = correct / 10000.0;
    assert!((accuracy - 0.9912).abs() < 1e-4, "accuracy {accuracy}");

    // TRAIN: batch 64 of 1x28x28, pixels scaled by 1/256, labels as stored.
    let images = std::fs::read(data.join("mnist/t10k-images-idx3-ubyte")).unwrap();
    let mut train = lenet(&models, &db, Phase::TRAIN);
    train.forward().unwrap();
    let blob = train.blob_by_name("data").unwrap();
    let blob = blob.borrow();
    assert_eq!(blob.shape(), &[64, 1, 28, 28]);
    let want: Vec<f32> = images[16..16 + 64 * 784]
        .iter()
        .map(|&b| b as f32 * 0.00390625)
        .collect();
    assert_eq!(blob.data(), &want[..]);
}
