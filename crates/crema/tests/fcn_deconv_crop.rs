//! An FCN-32s-style head: a padded convolution and pooling, a score layer,
//! a Deconvolution upsampling (bilinear filler, group = channels, no bias,
//! as FCN's `upscore`) and a Crop back onto the input's grid. Checks the
//! shapes, that the deconvolution weights are the bilinear kernel computed
//! here from FCN's `upsample_filt` formula, and that the crop is the aligned
//! window of the upsampled map.
use crema::proto::caffe::NetParameter;
use crema::Net;

const NET: &str = r#"
name: "fcn-tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 10 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "upscore" type: "Deconvolution" bottom: "score" top: "upscore" param { lr_mult: 0 }
        convolution_param { num_output: 2 group: 2 kernel_size: 4 stride: 2 bias_term: false
                            weight_filler { type: "bilinear" } } }
layer { name: "crop" type: "Crop" bottom: "upscore" bottom: "data" top: "out" crop_param { axis: 2 offset: 5 } }
"#;

/// FCN's surgery.upsample_filt: the 2-D bilinear kernel of a given size.
fn upsample_filt(size: usize) -> Vec<f32> {
    let factor = size.div_ceil(2) as f64;
    let center = if size % 2 == 1 {
        factor - 1.0
    } else {
        factor - 0.5
    };
    let tap = |i: usize| 1.0 - (i as f64 - center).abs() / factor;
    (0..size * size)
        .map(|i| (tap(i / size) * tap(i % size)) as f32)
        .collect()
}

fn net(text: &str) -> Net {
    let p: NetParameter = crema::proto::text::parse(text, "fcn").unwrap();
    Net::from_param(&p).unwrap()
}

#[test]
fn fcn_head_shapes_bilinear_weights_and_crop() {
    let mut net = net(NET);
    let shape = |n: &Net, b: &str| n.blob_by_name(b).unwrap().borrow().shape().to_vec();
    // 16 + 2·10 − 2 = 34, pooled to 17, upsampled to (17 − 1)·2 + 4 = 36.
    assert_eq!(shape(&net, "conv1"), vec![1, 4, 34, 34]);
    assert_eq!(shape(&net, "score"), vec![1, 2, 17, 17]);
    assert_eq!(shape(&net, "upscore"), vec![1, 2, 36, 36]);
    assert_eq!(shape(&net, "out"), vec![1, 2, 16, 16]);
    let up = net.layer_index("upscore").unwrap();
    let w = net.layers()[up].blobs()[0].clone();
    let w = w.borrow();
    assert_eq!(net.layers()[up].blobs().len(), 1, "bias_term: false");
    // Group = channels: one 4x4 kernel per channel, [2, 1, 4, 4].
    assert_eq!(w.shape(), &[2, 1, 4, 4]);
    let k = upsample_filt(4);
    for c in 0..2 {
        let got = &w.data()[c * 16..(c + 1) * 16];
        for (g, want) in got.iter().zip(&k) {
            assert!((g - want).abs() < 1e-6, "channel {c}: {got:?} vs {k:?}");
        }
    }
    drop(w);
    let data = net.blob_by_name("data").unwrap();
    for (i, v) in data.borrow_mut().data_mut().iter_mut().enumerate() {
        *v = ((i * 37 % 101) as f32 / 50.0) - 1.0;
    }
    net.forward().unwrap();
    let (u, o) = (
        net.blob_by_name("upscore").unwrap(),
        net.blob_by_name("out").unwrap(),
    );
    let (u, o) = (u.borrow(), o.borrow());
    for c in 0..2 {
        for y in 0..16 {
            for x in 0..16 {
                let want = u.data()[(c * 36 + y + 5) * 36 + x + 5];
                assert_eq!(o.data()[(c * 16 + y) * 16 + x], want, "c{c} y{y} x{x}");
            }
        }
    }
}

#[test]
fn bilinear_deconvolution_upsamples_a_constant_to_the_same_constant() {
    let mut net = net(
        r#"layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
           layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                   convolution_param { num_output: 2 group: 2 kernel_size: 4 stride: 2 bias_term: false
                                       weight_filler { type: "bilinear" } } }"#,
    );
    net.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .data_mut()
        .fill(3.0);
    net.forward().unwrap();
    let up = net.blob_by_name("up").unwrap();
    let up = up.borrow();
    assert_eq!(up.shape(), &[1, 2, 12, 12]);
    // Away from the 2-pixel border every output gets taps summing to 1.
    for c in 0..2 {
        for y in 2..10 {
            for x in 2..10 {
                let v = up.data()[(c * 12 + y) * 12 + x];
                assert!((v - 3.0).abs() < 1e-5, "c{c} y{y} x{x}: {v}");
            }
        }
    }
}
