//! BVLC's siamese MNIST net (ContrastiveLoss on two LeNet towers sharing
//! their parameters by name) and the MNIST autoencoder
//! (SigmoidCrossEntropyLoss, with EuclideanLoss as a weight-0 monitor) train
//! with their own solver files on LMDBs written here from the real MNIST
//! training images, and their smoothed loss falls.
//!
//! The siamese records are made as Caffe's convert_mnist_siamese_data makes
//! them: a 2-channel 28x28 datum holding two randomly drawn images, label 1
//! when their digits agree and 0 otherwise.
use std::path::Path;

use crema::data::{index_key, LmdbWriter};
use crema::proto::caffe::{data_parameter::DB, Datum, NetParameter, SolverParameter};
use crema::proto::files;
use crema::Solver;
use crema_proto::testdata::shared_data;
use rand::{Rng, SeedableRng};

const N: usize = 2000;

struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Mnist {
    fn read(dir: &Path) -> Mnist {
        let images = std::fs::read(dir.join("mnist/train-images-idx3-ubyte")).unwrap();
        let labels = std::fs::read(dir.join("mnist/train-labels-idx1-ubyte")).unwrap();
        Mnist {
            images: images[16..16 + N * 784].to_vec(),
            labels: labels[8..8 + N].to_vec(),
        }
    }
    fn image(&self, i: usize) -> &[u8] {
        &self.images[i * 784..(i + 1) * 784]
    }
}

fn write_db(path: &Path, records: impl Iterator<Item = Datum>) {
    let mut w = LmdbWriter::create(path).unwrap();
    for (i, d) in records.enumerate() {
        w.put(index_key(i), crema::proto::binary::encode(&d).unwrap());
    }
    w.commit().unwrap();
}

fn datum(channels: i32, data: Vec<u8>, label: i32) -> Datum {
    let mut d = Datum::new();
    d.set_channels(channels);
    d.set_height(28);
    d.set_width(28);
    d.set_data(data);
    d.set_label(label);
    d
}

/// The net with every Data layer reading `db` (LMDB) in batches of `batch`.
fn net_on(path: &Path, db: &Path, batch: u32) -> NetParameter {
    let mut p = files::read_net_text(path).unwrap();
    for l in p.layer.iter_mut().filter(|l| l.type_() == "Data") {
        let dp = l.data_param.mut_or_insert_default();
        dp.set_source(db.to_string_lossy().into_owned());
        dp.set_backend(DB::LMDB);
        dp.set_batch_size(batch);
    }
    p
}

/// BVLC's solver file with `net` replaced by `net`, on the CPU, without test
/// nets or snapshots, the loss smoothed over 10 iterations.
fn solver(path: &Path, net: NetParameter) -> Solver {
    let mut s: SolverParameter = files::read_solver_text(path).unwrap();
    s.clear_net();
    s.net_param = Some(net).into();
    s.test_iter.clear();
    s.test_state.clear();
    s.clear_test_interval();
    s.set_snapshot(0);
    s.set_snapshot_after_train(false);
    s.set_display(0);
    s.set_average_loss(10);
    s.set_random_seed(1701);
    s.set_solver_mode(crema::proto::caffe::solver_parameter::SolverMode::CPU);
    Solver::new(&s).unwrap()
}

/// Smoothed loss after the first 10 iterations and after `iters` in all.
fn train(solver: &mut Solver, iters: i32) -> (f32, f32) {
    solver.step(10).unwrap();
    let first = solver.smoothed_loss();
    solver.step(iters - 10).unwrap();
    (first, solver.smoothed_loss())
}

#[test]
fn siamese_mnist_contrastive_loss_falls() {
    let Some(dir) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let mnist = Mnist::read(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("pairs_lmdb");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    write_db(
        &db,
        (0..N).map(|_| {
            let (i, j) = (rng.gen_range(0..N), rng.gen_range(0..N));
            let pair = [mnist.image(i), mnist.image(j)].concat();
            datum(2, pair, (mnist.labels[i] == mnist.labels[j]) as i32)
        }),
    );
    let models = dir.join("models/bvlc_examples/siamese");
    let net = net_on(&models.join("mnist_siamese_train_test.prototxt"), &db, 32);
    let mut s = solver(&models.join("mnist_siamese_solver.prototxt"), net);
    // The two towers (conv1, conv2, ip1, ip2, feat: weights and biases)
    // share every parameter by name: 20 blobs, 10 of them learnable.
    assert_eq!(s.net().params().len(), 20);
    assert_eq!(s.net().learnable_params().len(), 10);
    let (first, last) = train(&mut s, 80);
    eprintln!("siamese contrastive loss: {first} -> {last}");
    assert!(last.is_finite() && last < 0.7 * first, "{first} -> {last}");
}

#[test]
fn mnist_autoencoder_cross_entropy_falls() {
    let Some(dir) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let mnist = Mnist::read(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("mnist_lmdb");
    write_db(
        &db,
        (0..N).map(|i| datum(1, mnist.image(i).to_vec(), mnist.labels[i] as i32)),
    );
    let models = dir.join("models/bvlc_examples/mnist");
    let net = net_on(&models.join("mnist_autoencoder.prototxt"), &db, 25);
    let mut s = solver(&models.join("mnist_autoencoder_solver.prototxt"), net);
    let (first, last) = train(&mut s, 120);
    eprintln!("autoencoder cross-entropy loss: {first} -> {last}");
    assert!(last.is_finite() && last < 0.8 * first, "{first} -> {last}");
}
