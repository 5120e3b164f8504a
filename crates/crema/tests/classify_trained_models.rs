//! Trained Caffe models, loaded from their caffemodels into nets built from
//! their deploy prototxts, classify real data as they did in Caffe: the counts
//! below come from the model authors' logs and a reference forward pass.
use std::path::{Path, PathBuf};

use crema::proto::caffe::Phase;
use crema::proto::testdata::shared_data;
use crema::Net;

/// How many images one forward pass takes.
const BATCH: usize = 500;

fn data_dir() -> Option<PathBuf> {
    let dir = shared_data();
    if dir.is_none() {
        println!("skipped: shared data not found");
    }
    dir
}

/// An IDX file's dimensions and payload (big-endian u32 header, u8 data).
fn read_idx(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ndim = bytes[3] as usize;
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let data = bytes[4 + 4 * ndim..].to_vec();
    assert_eq!(
        data.len(),
        dims.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (dims, data)
}

/// Runs `images` (each `per_image` values, laid out as the input blob wants)
/// through the net in batches and returns the argmax of `output` per image.
fn classify(net: &mut Net, images: &[f32], per_image_shape: &[usize], output: &str) -> Vec<usize> {
    let per_image: usize = per_image_shape.iter().product();
    let input = net.input_blobs()[0].clone();
    let mut predictions = Vec::new();
    for chunk in images.chunks(BATCH * per_image) {
        let n = chunk.len() / per_image;
        let mut shape = vec![n];
        shape.extend_from_slice(per_image_shape);
        input.borrow_mut().reshape(&shape);
        input.borrow_mut().data_mut().copy_from_slice(chunk);
        net.reshape().unwrap();
        net.forward().unwrap();
        let out = net.blob_by_name(output).unwrap();
        let out = out.borrow();
        let classes = out.count() / n;
        for row in out.data().chunks(classes) {
            let best = (0..classes).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            predictions.push(best);
        }
    }
    predictions
}

fn correct(predictions: &[usize], labels: &[u8]) -> usize {
    assert_eq!(predictions.len(), labels.len());
    predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count()
}

/// MNIST t10k through a LeNet deploy net with trained weights.
fn lenet_t10k_correct(model_dir: &str, weights: &str) -> Option<usize> {
    let root = data_dir()?;
    let (dims, pixels) = read_idx(&root.join("mnist/t10k-images-idx3-ubyte"));
    let (_, labels) = read_idx(&root.join("mnist/t10k-labels-idx1-ubyte"));
    assert_eq!(dims, [10000, 28, 28]);
    let models = root.join("models").join(model_dir);
    let mut net = Net::from_file(models.join("lenet.prototxt"), Phase::TEST, 0, &[]).unwrap();
    net.copy_trained_layers_from_file(models.join(weights))
        .unwrap();
    // The scale of Caffe's lenet data layer.
    let images: Vec<f32> = pixels.iter().map(|&p| p as f32 * 0.00390625).collect();
    let predictions = classify(&mut net, &images, &[1, 28, 28], "prob");
    Some(correct(&predictions, &labels))
}

fn assert_near(got: usize, want: usize, slack: usize, what: &str) {
    assert!(
        got.abs_diff(want) <= slack,
        "{what}: {got} correct, expected {want} ± {slack}"
    );
    println!("{what}: {got} correct (reference {want})");
}

#[test]
fn lenet_summerlife_iter_5000_classifies_mnist_t10k() {
    if let Some(n) = lenet_t10k_correct("lenet_summerlife", "lenet_iter_5000.caffemodel") {
        assert_near(n, 9889, 3, "lenet_summerlife iter 5000");
    }
}

#[test]
fn lenet_summerlife_iter_10000_classifies_mnist_t10k() {
    if let Some(n) = lenet_t10k_correct("lenet_summerlife", "lenet_iter_10000.caffemodel") {
        assert_near(n, 9912, 3, "lenet_summerlife iter 10000");
    }
}

#[test]
fn lenet_v1_everpeace_iter_10000_classifies_mnist_t10k() {
    // A V1 prototxt (net-level input, `layers` blocks) and a V1 caffemodel.
    if let Some(n) = lenet_t10k_correct("lenet_v1_everpeace", "lenet_iter_10000.caffemodel") {
        assert_near(n, 9905, 3, "lenet_v1_everpeace iter 10000");
    }
}

#[test]
fn cifar10_quick_v1_everpeace_classifies_the_first_train_records() {
    let Some(root) = data_dir() else { return };
    let bytes = std::fs::read(root.join("cifar10/data_batch_1_first200.bin")).unwrap();
    const RECORD: usize = 1 + 3072;
    assert_eq!(bytes.len(), 200 * RECORD);
    let labels: Vec<u8> = bytes.chunks(RECORD).map(|r| r[0]).collect();
    // Caffe's convert_cifar_data keeps the R, G, B planes in file order; the
    // mean image is the per-pixel mean of these same records.
    let mut mean = vec![0f64; 3072];
    for r in bytes.chunks(RECORD) {
        mean.iter_mut()
            .zip(&r[1..])
            .for_each(|(m, &p)| *m += p as f64);
    }
    mean.iter_mut().for_each(|m| *m /= 200.0);
    let images: Vec<f32> = bytes
        .chunks(RECORD)
        .flat_map(|r| {
            r[1..]
                .iter()
                .zip(&mean)
                .map(|(&p, &m)| (p as f64 - m) as f32)
        })
        .collect();
    let models = root.join("models/cifar10_quick_v1_everpeace");
    let mut net =
        Net::from_file(models.join("cifar10_quick.prototxt"), Phase::TEST, 0, &[]).unwrap();
    net.copy_trained_layers_from_file(models.join("cifar10_quick_iter_4000.caffemodel"))
        .unwrap();
    let predictions = classify(&mut net, &images, &[3, 32, 32], "prob");
    assert_near(
        correct(&predictions, &labels),
        142,
        2,
        "cifar10_quick_v1_everpeace iter 4000",
    );
}

#[test]
fn trained_lenet_round_trips_through_save() {
    let Some(root) = data_dir() else { return };
    let models = root.join("models/lenet_summerlife");
    let mut net = Net::from_file(models.join("lenet.prototxt"), Phase::TEST, 0, &[]).unwrap();
    net.copy_trained_layers_from_file(models.join("lenet_iter_5000.caffemodel"))
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "crema_lenet_round_trip_{}.caffemodel",
        std::process::id()
    ));
    net.save(&path).unwrap();
    let mut again = Net::from_file(models.join("lenet.prototxt"), Phase::TEST, 0, &[]).unwrap();
    again.copy_trained_layers_from_file(&path).unwrap();
    std::fs::remove_file(&path).ok();
    for (a, b) in net.learnable_params().iter().zip(again.learnable_params()) {
        assert_eq!(a.borrow().shape(), b.borrow().shape());
        assert_eq!(a.borrow().data(), b.borrow().data());
    }
    assert_eq!(net.learnable_params().len(), 8);
}
