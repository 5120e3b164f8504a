//! Recurrent layers inside nets: an LSTM learns a sine wave through the
//! Solver, and weights stored in Caffe's LSTM blob layout load by layer name.
use crema::proto::caffe::{BlobProto, BlobShape, LayerParameter, NetParameter, SolverParameter};
use crema::{Net, Solver};

const T: usize = 12;
const N: usize = 4;

/// Predict the next sample of a sine from the current one. One sample alone
/// cannot tell a rising wave from a falling one, so the net needs its memory.
fn sine_net(hidden: usize) -> String {
    format!(
        r#"name: "sine_lstm"
        layer {{ name: "input" type: "Input" top: "x" top: "cont" top: "y"
          input_param {{ shape {{ dim: {T} dim: {N} dim: 1 }} shape {{ dim: {T} dim: {N} }}
                         shape {{ dim: {T} dim: {N} dim: 1 }} }} }}
        layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
          recurrent_param {{ num_output: {hidden}
            weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }}
            bias_filler {{ type: "constant" value: 0 }} }} }}
        layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "pred"
          inner_product_param {{ num_output: 1 axis: 2 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
        layer {{ name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "y" top: "loss" }}"#
    )
}

/// Fills x (sin at step t), cont (0 at step 0) and y (sin at step t + 1) for
/// N streams of different phases.
fn fill_sine(net: &Net) {
    let (mut xs, mut ys, mut cont) = (vec![], vec![], vec![]);
    for t in 0..T {
        for n in 0..N {
            let phase = 0.4 + 1.3 * n as f32;
            xs.push((0.5 * t as f32 + phase).sin());
            ys.push((0.5 * (t + 1) as f32 + phase).sin());
            cont.push(if t == 0 { 0.0 } else { 1.0 });
        }
    }
    for (name, v) in [("x", xs), ("cont", cont), ("y", ys)] {
        let b = net.blob_by_name(name).unwrap();
        b.borrow_mut().data_mut().copy_from_slice(&v);
    }
}

#[test]
fn lstm_learns_a_sine_sequence_through_the_solver() {
    let text = format!(
        "net_param {{ {} }} type: \"Adam\" base_lr: 0.02 momentum: 0.9 momentum2: 0.999 \
         lr_policy: \"fixed\" max_iter: 300 display: 0 random_seed: 7",
        sine_net(8)
    );
    let param: SolverParameter = crema::proto::text::parse(&text, "sine").unwrap();
    let mut s = Solver::new(&param).unwrap();
    fill_sine(s.net());
    let before = s.net_mut().forward().unwrap();
    s.step(300).unwrap();
    let after = s.net_mut().forward().unwrap();
    println!("sine LSTM: loss {before} before, {after} after 300 Adam steps");
    assert!(before > 0.05, "the untrained net should be wrong: {before}");
    assert!(
        after < 0.1 * before,
        "loss fell only from {before} to {after}"
    );
}

fn blob_proto(shape: &[i64], start: f32) -> BlobProto {
    let mut b = BlobProto::new();
    let mut s = BlobShape::new();
    s.dim = shape.to_vec();
    b.shape = Some(s).into();
    let n: i64 = shape.iter().product();
    b.data = (0..n).map(|i| start + i as f32 * 1e-3).collect();
    b
}

#[test]
fn weights_in_caffes_lstm_layout_load_by_layer_name() {
    let net_param: NetParameter = crema::proto::text::parse(&sine_net(5), "sine").unwrap();
    let mut net = Net::from_param(&net_param).unwrap();
    let shapes: Vec<Vec<usize>> = net
        .learnable_params()
        .iter()
        .map(|p| p.borrow().shape().to_vec())
        .collect();
    // W_xc, b_c, W_hc, then the InnerProduct's weight and bias.
    assert_eq!(
        shapes,
        [vec![20, 1], vec![20], vec![20, 5], vec![1, 5], vec![1]]
    );

    let mut stored = NetParameter::new();
    let mut lstm = LayerParameter::new();
    lstm.set_name("lstm".into());
    lstm.set_type("LSTM".into());
    lstm.blobs = vec![
        blob_proto(&[20, 1], 1.0),
        blob_proto(&[20], 2.0),
        blob_proto(&[20, 5], 3.0),
    ];
    stored.layer.push(lstm.clone());
    net.copy_trained_layers_from(&stored).unwrap();
    for (i, start) in [1.0f32, 2.0, 3.0].iter().enumerate() {
        let p = net.learnable_params()[i].borrow();
        assert_eq!(p.data()[0], *start);
        assert!((p.data()[p.count() - 1] - (start + (p.count() - 1) as f32 * 1e-3)).abs() < 1e-6);
    }

    // A recurrent weight stored transposed is refused, naming the layer.
    stored.layer[0].blobs[2] = blob_proto(&[5, 20], 0.0);
    let e = net
        .copy_trained_layers_from(&stored)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Cannot copy param 2 weights from layer 'lstm'"),
        "{e}"
    );
}
