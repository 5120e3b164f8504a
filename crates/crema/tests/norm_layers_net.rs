//! BatchNorm + Scale + ReLU in place, the way ResNet prototxts wire them: the
//! statistics train in TRAIN, travel through a caffemodel-style NetParameter,
//! and drive the TEST-phase net's output.
use crema::proto::caffe::NetParameter;
use crema::Net;

fn net(text: &str, phase: &str) -> Net {
    let text = format!("name: \"bn\" state {{ phase: {phase} }} {text}");
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    Net::from_param(&p).unwrap()
}

const BLOCK: &str = r#"
  layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 1 dim: 2 } } }
  layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data"
          param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } }
  layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
  layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }"#;

#[test]
fn batch_norm_statistics_train_save_and_drive_the_test_net() {
    // Channel 0 holds 1, 3, 5, 7 (mean 4, var 5), channel 1 holds 0, 0, 2, 2 (mean 1, var 1).
    let x = [1.0f32, 3.0, 0.0, 0.0, 5.0, 7.0, 2.0, 2.0];
    let mut train = net(BLOCK, "TRAIN");
    let bn = train.layer_index("bn").unwrap();
    let shapes: Vec<Vec<usize>> = train.layers()[bn]
        .blobs()
        .iter()
        .map(|b| b.borrow().shape().to_vec())
        .collect();
    assert_eq!(shapes, vec![vec![2], vec![2], vec![1]]);
    assert_eq!(&train.params_lr()[..3], &[0.0, 0.0, 0.0]);
    train
        .blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&x);
    train.forward().unwrap();
    // Batch statistics: (x - mean) / sqrt(var + 1e-5), then scale 1, bias 0, ReLU.
    let y = train.blob_by_name("data").unwrap().borrow().data().to_vec();
    let (s0, s1) = ((5.0f32 + 1e-5).sqrt(), (1.0f32 + 1e-5).sqrt());
    let want = [0.0, 0.0, 0.0, 0.0, 1.0 / s0, 3.0 / s0, 1.0 / s1, 1.0 / s1];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{y:?} vs {want:?}");
    }
    let stats: Vec<Vec<f32>> = train.layers()[bn]
        .blobs()
        .iter()
        .map(|b| b.borrow().data().to_vec())
        .collect();
    // Unbiased variance with m = 4: 5·4/3 and 1·4/3.
    assert_eq!(stats[0], vec![4.0, 1.0]);
    assert!((stats[1][0] - 20.0 / 3.0).abs() < 1e-5 && (stats[1][1] - 4.0 / 3.0).abs() < 1e-6);
    assert_eq!(stats[2], vec![1.0]);

    // Give Scale non-trivial weights, then carry everything over as a caffemodel would.
    let sc = train.layer_index("scale").unwrap();
    train.layers()[sc].blobs()[0]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&[2.0, -1.0]);
    train.layers()[sc].blobs()[1]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&[0.5, 3.0]);
    let saved = train.to_proto(false);
    let mut test = net(BLOCK, "TEST");
    test.copy_trained_layers_from(&saved).unwrap();
    test.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&x);
    test.forward().unwrap();
    // Global statistics: mean 4 / 1, var (20/3) / 1 for channel 0; 1 and 4/3 for channel 1.
    let (g0, g1) = ((20.0f32 / 3.0 + 1e-5).sqrt(), (4.0f32 / 3.0 + 1e-5).sqrt());
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / 2) % 2;
            let z = if c == 0 {
                2.0 * (v - 4.0) / g0 + 0.5
            } else {
                -(v - 1.0) / g1 + 3.0
            };
            z.max(0.0)
        })
        .collect();
    let y = test.blob_by_name("data").unwrap().borrow().data().to_vec();
    for (g, w) in y.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{y:?} vs {want:?}");
    }
    // The TEST forward leaves the statistics alone.
    let after: Vec<f32> = test.layers()[test.layer_index("bn").unwrap()].blobs()[0]
        .borrow()
        .data()
        .to_vec();
    assert_eq!(after, vec![4.0, 1.0]);
}

#[test]
fn batch_norm_statistics_without_param_specs_are_not_learned() {
    // ResNet-style prototxts often give BatchNorm no `param` lines: the layer
    // itself masks its three statistics blobs with lr_mult 0, as Caffe's does,
    // while the Scale layer's weights keep the default lr_mult 1.
    let block = r#"
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 1 dim: 2 } } }
      layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
      layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }"#;
    let train = net(block, "TRAIN");
    assert_eq!(train.params_lr(), &[0.0, 0.0, 0.0, 1.0, 1.0]);
    assert_eq!(&train.has_params_lr()[..3], &[true, true, true]);
}
