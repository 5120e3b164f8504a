//! BVLC's own example prototxts that use the newer layers, on real data: the
//! MNIST autoencoder (SigmoidCrossEntropyLoss with its BATCH_SIZE default) and
//! cifar10_full_sigmoid_train_test_bn (BatchNorm with lr_mult 0 statistics).
//! Data layers are swapped for Input layers of a smaller batch, filled from
//! the raw MNIST/CIFAR files.
use std::path::{Path, PathBuf};

use crema::proto::caffe::{BlobShape, NetParameter};
use crema::Net;
use crema_proto::testdata::shared_data;

fn data_dir() -> Option<PathBuf> {
    let dir = shared_data();
    if dir.is_none() {
        eprintln!("skipped: shared/data not found");
    }
    dir
}

/// Reads a prototxt and turns its Data layers into Input layers with `shapes`
/// (one per top), keeping their include rules.
fn with_inputs(path: &Path, phase: &str, shapes: &[&[i64]]) -> Net {
    let mut p: NetParameter = crema_proto::files::read_net_text(path).unwrap();
    for l in p.layer.iter_mut().filter(|l| l.type_() == "Data") {
        l.set_type("Input".into());
        l.data_param.clear();
        l.transform_param.clear();
        let ip = l.input_param.mut_or_insert_default();
        ip.shape = shapes
            .iter()
            .map(|dims| {
                let mut s = BlobShape::new();
                s.dim = dims.to_vec();
                s
            })
            .collect();
    }
    let state = p.state.mut_or_insert_default();
    state.set_phase(if phase == "TEST" {
        crema::proto::caffe::Phase::TEST
    } else {
        crema::proto::caffe::Phase::TRAIN
    });
    if phase == "TEST" {
        state.stage.push("test-on-test".into());
    }
    Net::from_param(&p).unwrap()
}

fn blob_data(net: &Net, name: &str) -> Vec<f32> {
    net.blob_by_name(name).unwrap().borrow().data().to_vec()
}

#[test]
fn mnist_autoencoder_sigmoid_cross_entropy_is_per_image_and_training_lowers_it() {
    let Some(dir) = data_dir() else { return };
    const B: usize = 20;
    let bytes = std::fs::read(dir.join("mnist/train-images-idx3-ubyte")).unwrap();
    let images: Vec<f32> = bytes[16..16 + B * 784]
        .iter()
        .map(|&v| v as f32 * 0.003_921_568_4)
        .collect();
    let mut net = with_inputs(
        &dir.join("models/bvlc_examples/mnist/mnist_autoencoder.prototxt"),
        "TRAIN",
        &[&[B as i64, 1, 28, 28]],
    );
    net.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&images);

    let sce = |net: &Net| blob_data(net, "cross_entropy_loss")[0];
    net.forward().unwrap();
    // The prototxt sets no normalization: Caffe divides this loss by the batch size.
    let (x, t) = (blob_data(&net, "decode1"), blob_data(&net, "flatdata"));
    let total: f64 = x
        .iter()
        .zip(&t)
        .map(|(&x, &t)| {
            let (x, t) = (x as f64, t as f64);
            x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
        })
        .sum();
    let first = sce(&net);
    assert!(
        (first as f64 - total / B as f64).abs() < 1e-3 * first as f64,
        "{first} vs {}",
        total / B as f64
    );

    // A few plain gradient steps (lr 0.01, the solver's base_lr) lower it.
    for _ in 0..5 {
        net.clear_param_diffs();
        net.forward_backward().unwrap();
        for p in net.learnable_params() {
            p.borrow_mut()
                .diff_mut()
                .iter_mut()
                .for_each(|d| *d *= 0.01);
        }
        net.update();
    }
    net.forward().unwrap();
    assert!(sce(&net) < first, "{} !< {first}", sce(&net));
}

#[test]
fn cifar10_batch_norm_prototxt_normalises_in_train_and_uses_stored_statistics_in_test() {
    let Some(dir) = data_dir() else { return };
    const B: usize = 10;
    let bytes = std::fs::read(dir.join("cifar10/data_batch_1_first200.bin")).unwrap();
    let mut images = Vec::with_capacity(B * 3072);
    let mut labels = Vec::with_capacity(B);
    for r in bytes.chunks(3073).take(B) {
        labels.push(r[0] as f32);
        images.extend(r[1..].iter().map(|&v| v as f32 / 255.0));
    }
    let path = dir.join("models/bvlc_examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt");
    let shapes: &[&[i64]] = &[&[B as i64, 3, 32, 32], &[B as i64]];
    let mut train = with_inputs(&path, "TRAIN", shapes);
    train
        .blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&images);
    train
        .blob_by_name("label")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&labels);
    for name in ["bn1", "bn2", "bn3"] {
        let i = train.layer_index(name).unwrap();
        let ids = train.learnable_param_ids();
        let first = train
            .param_layer_indices()
            .iter()
            .position(|&(l, _)| l == i)
            .unwrap();
        for k in 0..3 {
            assert_eq!(train.params_lr()[ids[first + k]], 0.0, "{name} param {k}");
        }
    }
    let loss = train.forward_backward().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    // bn1 = (pool1 - batch mean) / sqrt(batch variance + eps) per channel. The
    // prototxt's conv1 filler (std 1e-4) makes pool1 tiny, so eps matters here.
    let (x, y) = (blob_data(&train, "pool1"), blob_data(&train, "bn1"));
    let c = train.blob_by_name("bn1").unwrap().borrow().shape()[1];
    let spatial = y.len() / (B * c);
    for ch in 0..c {
        let idx: Vec<usize> = (0..B)
            .flat_map(|n| (0..spatial).map(move |s| (n * c + ch) * spatial + s))
            .collect();
        let m = idx.len() as f64;
        let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / m;
        let var = idx
            .iter()
            .map(|&i| (x[i] as f64 - mean).powi(2))
            .sum::<f64>()
            / m;
        for &i in idx.iter().step_by(37) {
            let want = (x[i] as f64 - mean) / (var + 1e-5).sqrt();
            assert!(
                (y[i] as f64 - want).abs() < 1e-3 * want.abs().max(1.0),
                "channel {ch} element {i}: {} vs {want}",
                y[i]
            );
        }
    }

    // The TEST net takes the statistics as weights and applies them as constants.
    let mut test = with_inputs(&path, "TEST", shapes);
    test.copy_trained_layers_from(&train.to_proto(false))
        .unwrap();
    test.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&images);
    test.forward().unwrap();
    let bn = test.layer_index("bn1").unwrap();
    let stats: Vec<Vec<f32>> = test.layers()[bn]
        .blobs()
        .iter()
        .map(|b| b.borrow().data().to_vec())
        .collect();
    assert_eq!(stats[2], vec![1.0]);
    let (x, y) = (blob_data(&test, "pool1"), blob_data(&test, "bn1"));
    for i in (0..y.len()).step_by(97) {
        let ch = (i / spatial) % c;
        let want = (x[i] - stats[0][ch]) / (stats[1][ch] + 1e-5).sqrt();
        assert!(
            (y[i] - want).abs() < 1e-4,
            "element {i}: {} vs {want}",
            y[i]
        );
    }
}
