//! examples/resnet50/deploy.prototxt (written by make_deploy.py from the
//! paper's Table 1) builds with ResNet-50's published shapes and size.
use crema::proto::caffe::NetParameter;
use crema::proto::files;
use crema::Net;

fn resnet50() -> (NetParameter, Net) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/resnet50/deploy.prototxt"
    );
    let p = files::read_net_text(path).unwrap();
    let net = Net::from_param(&p).unwrap();
    (p, net)
}

fn shape(net: &Net, blob: &str) -> Vec<usize> {
    net.blob_by_name(blob)
        .unwrap_or_else(|| panic!("no blob {blob}"))
        .borrow()
        .shape()
        .to_vec()
}

#[test]
fn resnet50_deploy_has_the_published_shapes() {
    let (p, net) = resnet50();
    let want: [(&str, [usize; 4]); 9] = [
        ("conv1", [1, 64, 112, 112]),
        ("pool1", [1, 64, 56, 56]),
        ("res2a_branch1", [1, 256, 56, 56]),
        ("res2c", [1, 256, 56, 56]),
        ("res3a_branch2a", [1, 128, 28, 28]),
        ("res3d", [1, 512, 28, 28]),
        ("res4f", [1, 1024, 14, 14]),
        ("res5c", [1, 2048, 7, 7]),
        ("pool5", [1, 2048, 1, 1]),
    ];
    for (blob, s) in want {
        assert_eq!(shape(&net, blob), s.to_vec(), "{blob}");
    }
    assert_eq!(shape(&net, "prob"), vec![1, 1000]);
    // 53 convolutions: conv1, 16 blocks of three, 4 projection shortcuts;
    // each followed by BatchNorm and Scale.
    let count = |ty: &str| p.layer.iter().filter(|l| l.type_() == ty).count();
    assert_eq!(count("Convolution"), 53);
    assert_eq!(count("BatchNorm"), 53);
    assert_eq!(count("Scale"), 53);
    assert_eq!(count("Eltwise"), 16);
    assert_eq!(net.output_blobs().len(), 1);
}

#[test]
fn resnet50_deploy_has_the_published_parameter_count() {
    let (_, net) = resnet50();
    // 25,557,032 weights as usually counted (convolutions, BatchNorm's affine
    // part = our Scale layers, fc1000 with bias), plus the 64 biases of the
    // BVLC-style conv1. BatchNorm's running statistics are not weights.
    let mut total = 0;
    for (l, p) in net.layers().iter().zip(net.layer_params()) {
        if p.type_() != "BatchNorm" {
            total += l.blobs().iter().map(|b| b.borrow().count()).sum::<usize>();
        }
    }
    assert_eq!(total, 25_557_032 + 64);
}
