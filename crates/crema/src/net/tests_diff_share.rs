//! Diff sharing must not change a single gradient bit: nets with chains,
//! in-place layers, branches (splits), concat and eltwise train side by side
//! with and without it.
use super::tests::{assert_same_param_diffs, parse};
use super::Net;

/// An AlexNet-shaped chain: grouped conv, in-place ReLU, LRN, max and average
/// pooling, fully connected layers, loss and accuracy.
const CHAIN: &str = r#"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 4 dim: 15 dim: 15 } shape { dim: 3 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 8 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: AVE kernel_size: 2 stride: 1 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool2" top: "fc1"
  inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }
layer { name: "tanh" type: "TanH" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc2" bottom: "label" top: "acc" }
"#;

/// An inception-shaped net: one blob read by three branches (a split), the
/// branches concatenated, an eltwise sum, and a second weighted loss.
const BRANCHES: &str = r#"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }
layer { name: "stem" type: "Convolution" bottom: "data" top: "stem"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "b1" type: "Convolution" bottom: "stem" top: "b1"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b3" type: "Convolution" bottom: "stem" top: "b3"
  convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu_b3" type: "ReLU" bottom: "b3" top: "b3" }
layer { name: "bp" type: "Pooling" bottom: "stem" top: "bp"
  pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "cat" type: "Concat" bottom: "b1" bottom: "b3" bottom: "bp" top: "cat" }
layer { name: "mix" type: "Convolution" bottom: "cat" top: "mix"
  convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "sum" type: "Eltwise" bottom: "mix" bottom: "stem" top: "sum" }
layer { name: "sig" type: "Sigmoid" bottom: "sum" top: "sig" }
layer { name: "fc" type: "InnerProduct" bottom: "sig" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "aux" type: "InnerProduct" bottom: "cat" top: "aux"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "aux_loss" type: "SoftmaxWithLoss" bottom: "aux" bottom: "label" top: "aux_loss"
  loss_weight: 0.3 }
"#;

/// Two copies of a net with equal weights, the second sharing its diffs.
fn twins(text: &str) -> (Net, Net) {
    let plain = Net::from_param(&parse(text)).unwrap();
    let mut shared = Net::from_param(&parse(text)).unwrap();
    for (a, b) in plain.params().iter().zip(shared.params()) {
        b.borrow_mut().copy_from(&a.borrow(), false).unwrap();
    }
    shared.share_activation_diffs(true);
    (plain, shared)
}

/// Fills the inputs with values that change with `step`.
fn feed(net: &Net, step: usize, classes: usize) {
    let data = net.blob_by_name("data").unwrap();
    for (k, v) in data.borrow_mut().data_mut().iter_mut().enumerate() {
        *v = (((k * 37 + step * 11) % 23) as f32 - 11.0) / 7.0;
    }
    let label = net.blob_by_name("label").unwrap();
    for (k, v) in label.borrow_mut().data_mut().iter_mut().enumerate() {
        *v = ((k + step) % classes) as f32;
    }
}

/// Trains both twins a few steps; every loss and parameter gradient must be
/// bitwise equal.
fn train_side_by_side(text: &str, classes: usize) -> Net {
    let (mut plain, mut shared) = twins(text);
    for step in 0..3 {
        for net in [&mut plain, &mut shared] {
            feed(net, step, classes);
            net.clear_param_diffs();
        }
        let loss = plain.forward_backward().unwrap();
        assert_eq!(loss.to_bits(), shared.forward_backward().unwrap().to_bits());
        assert_same_param_diffs(&plain, &shared, &format!("step {step}, shared diffs"));
        plain.update();
        shared.update();
    }
    shared
}

#[test]
fn chain_trains_bit_for_bit_with_shared_diffs() {
    let net = train_side_by_side(CHAIN, 5);
    // The intermediate diffs are lent out; the loss top keeps its own.
    for name in ["conv1", "norm1", "pool1", "conv2", "pool2", "fc1", "fc2"] {
        let blob = net.blob_by_name(name).unwrap();
        assert!(blob.borrow().diff_is_lent(), "{name}'s diff was not shared");
    }
    assert_eq!(net.blob_by_name("loss").unwrap().borrow().diff(), [1.0]);
    // A chain lends two buffers to and fro: that is the whole point.
    assert_eq!(net.diff_sharing.as_ref().unwrap().pooled(), 2);
}

#[test]
fn branches_train_bit_for_bit_with_shared_diffs() {
    train_side_by_side(BRANCHES, 4);
}

#[test]
fn turning_sharing_off_gives_every_diff_back_zeroed() {
    let mut net = train_side_by_side(CHAIN, 5);
    net.share_activation_diffs(false);
    for name in ["conv1", "norm1", "pool1", "fc2"] {
        let blob = net.blob_by_name(name).unwrap();
        let blob = blob.borrow();
        assert!(!blob.diff_is_lent());
        assert!(blob.diff().iter().all(|&v| v == 0.0), "{name}");
    }
    // And a plain backward works again, writing readable diffs.
    feed(&net, 0, 5);
    net.forward_backward().unwrap();
    let fc2 = net.blob_by_name("fc2").unwrap();
    assert!(fc2.borrow().diff().iter().any(|&v| v != 0.0));
}

#[test]
fn backward_started_below_the_writer_sees_zero_diffs() {
    let (mut plain, mut shared) = twins(CHAIN);
    let pool2 = shared.layer_index("pool2").unwrap();
    for net in [&mut plain, &mut shared] {
        // A full pass first, so the pool holds buffers with stale values.
        feed(net, 0, 5);
        net.forward_backward().unwrap();
        feed(net, 1, 5);
        net.forward().unwrap();
        net.clear_param_diffs();
    }
    // pool2's diff is written by fc1's backward, which does not run: shared's
    // is lent and must come back zeroed, like plain's zeroed by hand.
    let stale = plain.blob_by_name("pool2").unwrap();
    assert!(stale.borrow().diff().iter().any(|&v| v != 0.0));
    stale.borrow_mut().diff_mut().fill(0.0);
    plain.backward_from_to(pool2, 0).unwrap();
    shared.backward_from_to(pool2, 0).unwrap();
    for (a, b) in plain.params().iter().zip(shared.params()) {
        assert_eq!(a.borrow().diff(), b.borrow().diff());
    }
}
