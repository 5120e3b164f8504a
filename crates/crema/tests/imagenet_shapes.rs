//! BVLC's ImageNet deploy nets build with exactly Caffe's top shapes.
use crema::proto::caffe::Phase;
use crema::proto::files::read_net_text;
use crema::proto::testdata::shared_data;
use crema::Net;

fn build(rel: &str) -> Option<Net> {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return None;
    };
    let mut param = read_net_text(data.join("models/bvlc_reference_prototxt").join(rel)).unwrap();
    param.state.mut_or_insert_default().set_phase(Phase::TEST);
    Some(Net::from_param(&param).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn assert_shapes(net: &Net, expected: &[(&str, &[usize])]) {
    for (blob, shape) in expected {
        let b = net
            .blob_by_name(blob)
            .unwrap_or_else(|| panic!("no blob {blob}"));
        assert_eq!(b.borrow().shape(), *shape, "blob {blob}");
    }
}

#[test]
fn alexnet_deploy_has_caffes_shapes() {
    let Some(net) = build("bvlc_alexnet/deploy.prototxt") else {
        return;
    };
    assert_shapes(
        &net,
        &[
            ("data", &[10, 3, 227, 227]),
            ("conv1", &[10, 96, 55, 55]),
            ("norm1", &[10, 96, 55, 55]),
            ("pool1", &[10, 96, 27, 27]),
            ("conv2", &[10, 256, 27, 27]),
            ("pool2", &[10, 256, 13, 13]),
            ("conv3", &[10, 384, 13, 13]),
            ("conv5", &[10, 256, 13, 13]),
            ("pool5", &[10, 256, 6, 6]),
            ("fc6", &[10, 4096]),
            ("fc7", &[10, 4096]),
            ("fc8", &[10, 1000]),
            ("prob", &[10, 1000]),
        ],
    );
    // Grouped convolution (group 2) halves the input channels of the weights.
    let conv2 = net.layer_by_name("conv2").unwrap();
    assert_eq!(conv2.blobs()[0].borrow().shape(), &[256, 48, 5, 5]);
    assert_eq!(
        net.layer_by_name("fc6").unwrap().blobs()[0]
            .borrow()
            .shape(),
        &[4096, 9216]
    );
}

#[test]
fn caffenet_deploy_has_caffes_shapes() {
    let Some(net) = build("bvlc_reference_caffenet/deploy.prototxt") else {
        return;
    };
    // CaffeNet pools before normalizing.
    assert_shapes(
        &net,
        &[
            ("conv1", &[10, 96, 55, 55]),
            ("pool1", &[10, 96, 27, 27]),
            ("norm1", &[10, 96, 27, 27]),
            ("conv2", &[10, 256, 27, 27]),
            ("pool5", &[10, 256, 6, 6]),
            ("fc6", &[10, 4096]),
            ("prob", &[10, 1000]),
        ],
    );
}

#[test]
fn googlenet_deploy_has_caffes_shapes() {
    let Some(net) = build("bvlc_googlenet/deploy.prototxt") else {
        return;
    };
    assert_shapes(
        &net,
        &[
            ("data", &[10, 3, 224, 224]),
            ("conv1/7x7_s2", &[10, 64, 112, 112]),
            ("pool1/3x3_s2", &[10, 64, 56, 56]),
            ("inception_3a/output", &[10, 256, 28, 28]),
            ("inception_4e/output", &[10, 832, 14, 14]),
            ("inception_5b/output", &[10, 1024, 7, 7]),
            ("pool5/7x7_s1", &[10, 1024, 1, 1]),
            ("loss3/classifier", &[10, 1000]),
            ("prob", &[10, 1000]),
        ],
    );
}

#[test]
fn rcnn_and_flickr_deploy_nets_build() {
    let Some(net) = build("bvlc_reference_rcnn_ilsvrc13/deploy.prototxt") else {
        return;
    };
    assert_eq!(
        net.blob_by_name("fc-rcnn").unwrap().borrow().shape(),
        &[10, 200]
    );
    let net = build("finetune_flickr_style/deploy.prototxt").unwrap();
    assert_eq!(
        net.blob_by_name("fc8_flickr").unwrap().borrow().shape(),
        &[10, 20]
    );
}
