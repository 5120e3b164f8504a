//! The net with the registry's real layers: loss weights reach the loss
//! layers' gradients, force_backward spares labels, DummyData feeds a net.
use crema::proto::caffe::NetParameter;
use crema::Net;

fn net(text: &str) -> Net {
    let p: NetParameter = crema::proto::text::parse(text, "test").unwrap();
    Net::from_param(&p).unwrap()
}

const SOFTMAX_NET: &str = r#"name: "sm" force_backward: true
  layer { name: "data" type: "Input" top: "data" top: "label"
          input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" loss_weight: 2 }"#;

#[test]
fn softmax_loss_weight_scales_loss_and_gradient_and_labels_get_none() {
    let mut net = net(SOFTMAX_NET);
    let x = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
    let label = [2.0f32, 0.0];
    net.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&x);
    net.blob_by_name("label")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&label);
    // Softmax rows by hand: [e^1, e^2, e^3] / Σ and [1/3; 3].
    let z: f32 = (1f32).exp() + (2f32).exp() + (3f32).exp();
    let p0 = [(1f32).exp() / z, (2f32).exp() / z, (3f32).exp() / z];
    let expected_loss = 2.0 * (-(p0[2]).ln() - (1.0f32 / 3.0).ln()) / 2.0;
    let loss = net.forward().unwrap();
    assert!(
        (loss - expected_loss).abs() < 1e-5,
        "{loss} vs {expected_loss}"
    );
    net.backward().unwrap();
    // d/dx = weight · (p - onehot) / batch, with weight 2 and batch 2.
    let want = [
        p0[0],
        p0[1],
        p0[2] - 1.0,
        1.0 / 3.0 - 1.0,
        1.0 / 3.0,
        1.0 / 3.0,
    ];
    let got = net.blob_by_name("data").unwrap().borrow().diff().to_vec();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    assert_eq!(net.bottom_need_backward()[1], vec![true, false]);
    assert!(net
        .blob_by_name("label")
        .unwrap()
        .borrow()
        .diff()
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn dummy_data_feeds_a_net_and_split_fans_it_out() {
    let mut net = net(r#"name: "dummy"
        layer { name: "data" type: "DummyData" top: "data"
                dummy_data_param { shape { dim: 2 dim: 4 } data_filler { value: -1.5 } } }
        layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }
        layer { name: "sm" type: "Softmax" bottom: "data" top: "p" }"#);
    assert_eq!(
        net.layer_names(),
        ["data", "data_data_0_split", "relu", "sm"]
    );
    net.forward().unwrap();
    assert!(net
        .blob_by_name("r")
        .unwrap()
        .borrow()
        .data()
        .iter()
        .all(|&v| v == 0.0));
    assert!(net
        .blob_by_name("p")
        .unwrap()
        .borrow()
        .data()
        .iter()
        .all(|&v| (v - 0.25).abs() < 1e-6));
    let outputs: Vec<&str> = net
        .output_blob_indices()
        .iter()
        .map(|&i| net.blob_names()[i].as_str())
        .collect();
    assert_eq!(outputs, ["p", "r"]);
}

fn shared_weights_net(name1: &str, name2: &str) -> String {
    let ip = |n: &str, p: &str| {
        format!(
            r#"layer {{ name: "{n}" type: "InnerProduct" bottom: "data" top: "{n}" param {{ name: "{p}" }}
               inner_product_param {{ num_output: 10 bias_term: false weight_filler {{ type: "gaussian" std: 10 }} }} }}"#
        )
    };
    format!(
        r#"name: "shared" force_backward: true
        layer {{ name: "data" type: "DummyData" top: "data"
                dummy_data_param {{ shape {{ dim: 4 dim: 5 }} data_filler {{ type: "gaussian" std: 1 }} }} }}
        {}
        {}
        layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "ip2" top: "loss" }}"#,
        ip("ip1", name1),
        ip("ip2", name2)
    )
}

#[test]
fn shared_inner_product_weights_make_identical_outputs() {
    // Caffe's TestSharedWeightsDataNet: one weight blob, so the loss is 0.
    crema::rng::set_random_seed(1701);
    let mut shared = net(&shared_weights_net("w", "w"));
    assert_eq!(shared.learnable_params().len(), 1);
    assert_eq!(shared.forward().unwrap(), 0.0);
    shared.backward().unwrap();
    // A zero residual leaves the shared gradient zero.
    let w = shared.learnable_params()[0].borrow();
    assert!(
        w.diff().iter().all(|&g| g.abs() < 1e-4),
        "{:?}",
        &w.diff()[..5]
    );
    drop(w);
    let mut unshared = net(&shared_weights_net("w1", "w2"));
    assert_eq!(unshared.learnable_params().len(), 2);
    assert!(unshared.forward().unwrap() > 1.0);
}
