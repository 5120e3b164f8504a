//! End-to-end check of the vision layers on real Caffe weights: LeNet from a
//! trained `.caffemodel`, built layer by layer from the layer parameters stored
//! in the model itself (Convolution, Pooling, InnerProduct, ReLU), classifies
//! the MNIST test set. The weights load only if our blob shapes are Caffe's,
//! and the accuracy (99.12% per the data manifest, from an independent numpy
//! forward pass) holds only if the layers compute what Caffe's do.
use crema::proto::binary::read_binary;
use crema::proto::caffe::NetParameter;
use crema::proto::testdata::shared_data;
use crema::{create_layer, Blob, Layer, SharedBlob};

const BATCH: usize = 500;

fn idx_payload(bytes: &[u8], header: usize) -> &[u8] {
    &bytes[header..]
}

#[test]
fn lenet_caffemodel_classifies_mnist_test_set() {
    let Some(data) = shared_data() else {
        println!("skipped: shared data not found");
        return;
    };
    let model_path = data.join("models/lenet_summerlife/lenet_iter_10000.caffemodel");
    let images = std::fs::read(data.join("mnist/t10k-images-idx3-ubyte"));
    let labels = std::fs::read(data.join("mnist/t10k-labels-idx1-ubyte"));
    let (Ok(images), Ok(labels), true) = (images, labels, model_path.exists()) else {
        println!("skipped: LeNet model or MNIST test files missing");
        return;
    };
    let (images, labels) = (idx_payload(&images, 16), idx_payload(&labels, 8));
    let model: NetParameter = read_binary(&model_path, "caffemodel (NetParameter)").unwrap();

    // The inference chain: every compute layer of the stored net, in order.
    let input = Blob::shared(&[BATCH, 1, 28, 28]);
    let mut chain: Vec<(Box<dyn Layer>, SharedBlob, SharedBlob)> = Vec::new();
    let mut current = input.clone();
    for lp in &model.layer {
        if !["Convolution", "Pooling", "InnerProduct", "ReLU"].contains(&lp.type_()) {
            continue;
        }
        let mut layer = create_layer(lp).unwrap();
        // ReLU runs in place, as the prototxt says.
        let top = if lp.type_() == "ReLU" {
            current.clone()
        } else {
            Blob::shared(&[])
        };
        layer.setup(&[current.clone()], &[top.clone()]).unwrap();
        assert_eq!(
            layer.blobs().len(),
            lp.blobs.len(),
            "{}: parameter count",
            lp.name()
        );
        for (blob, stored) in layer.blobs().iter().zip(&lp.blobs) {
            blob.borrow_mut()
                .from_proto(stored, false)
                .unwrap_or_else(|e| panic!("{}: {e}", lp.name()));
        }
        layer.reshape(&[current.clone()], &[top.clone()]).unwrap();
        chain.push((layer, current, top.clone()));
        current = top;
    }
    assert_eq!(current.borrow().shape(), &[BATCH, 10]);

    let n = labels.len();
    let mut correct = 0;
    for start in (0..n).step_by(BATCH) {
        {
            let mut x = input.borrow_mut();
            // The Data layer's transform_param scale: 1/256.
            for (v, &p) in x
                .data_mut()
                .iter_mut()
                .zip(&images[start * 784..(start + BATCH) * 784])
            {
                *v = p as f32 * 0.00390625;
            }
        }
        for (layer, bottom, top) in &mut chain {
            layer.forward(&[bottom.clone()], &[top.clone()]).unwrap();
        }
        let scores = current.borrow();
        for (i, row) in scores.data().chunks_exact(10).enumerate() {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            correct += (best == labels[start + i] as usize) as usize;
        }
    }
    let accuracy = correct as f64 / n as f64;
    println!("LeNet iter 10000 on MNIST t10k: {correct}/{n} = {accuracy:.4}");
    assert!((0.990..=0.993).contains(&accuracy), "accuracy {accuracy}");
}
