//! The upgrade chain and the file loaders against Caffe's own files: V1 nets
//! and caffemodels against their current-format twins, every prototxt in
//! shared/data, and hand-worked V0/input/BatchNorm cases.
use std::path::{Path, PathBuf};

use crema_proto::caffe::{BlobProto, LayerParameter, NetParameter};
use crema_proto::testdata::{files_with_suffix, shared_data};
use crema_proto::{binary, files, text, upgrade, ProtoError};

fn data_dir() -> Option<PathBuf> {
    let d = shared_data();
    if d.is_none() {
        println!("skipped: shared/data not found");
    }
    d
}

fn parse_net(text: &str) -> NetParameter {
    text::parse(text, "test.prototxt").unwrap()
}

/// Upgrades a hand-written net, expecting success.
fn upgraded(text: &str) -> NetParameter {
    let mut net = parse_net(text);
    assert!(upgrade::upgrade_net(&mut net, "test.prototxt").unwrap());
    assert!(
        !upgrade::needs_upgrade(&net),
        "an upgraded net must read as current"
    );
    net
}

/// Asserts two nets have the same layers, field by field, blobs aside.
fn assert_same_layers(got: &NetParameter, want: &NetParameter, what: &str) {
    let names = |n: &NetParameter| {
        n.layer
            .iter()
            .map(|l| l.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(got), names(want), "{what}: layer names");
    for (g, w) in got.layer.iter().zip(&want.layer) {
        assert_eq!(g.type_(), w.type_(), "{what}: type of {}", w.name());
        assert_eq!(g.bottom, w.bottom, "{what}: bottoms of {}", w.name());
        assert_eq!(g.top, w.top, "{what}: tops of {}", w.name());
    }
}

/// Caffe's Blob::ShapeEquals for a legacy 4-D blob: the current shape, padded
/// on the left with 1s to four axes, must equal num/channels/height/width.
fn legacy_shape_matches(legacy: &BlobProto, current: &BlobProto) -> bool {
    let cur = binary::blob_shape(current);
    if cur.len() > 4 {
        return false;
    }
    let mut padded = vec![1i64; 4 - cur.len()];
    padded.extend(cur);
    padded == binary::blob_shape(legacy)
}

#[test]
fn v1_lenet_prototxt_upgrades_to_its_current_twin() {
    let Some(d) = data_dir() else { return };
    let v1_path = d.join("models/lenet_v1_everpeace/lenet_train_test.prototxt");
    let raw = files::read_net_text_as_is(&v1_path).unwrap();
    assert!(
        raw.layer.is_empty() && raw.layers.len() == 11,
        "the fixture is a V1 net"
    );
    assert!(upgrade::needs_upgrade(&raw));
    let got = files::read_net_text(&v1_path).unwrap();
    assert!(got.layers.is_empty());
    let want = files::read_net_text(d.join("models/bvlc_examples/mnist/lenet_train_test.prototxt"))
        .unwrap();
    assert_same_layers(&got, &want, "lenet");
    // blobs_lr 1/2 → param { lr_mult: 1 } param { lr_mult: 2 }, as the twin says.
    for (g, w) in got.layer.iter().zip(&want.layer) {
        assert_eq!(g.param, w.param, "param specs of {}", w.name());
        assert_eq!(g.include, w.include, "include of {}", w.name());
        assert_eq!(
            g.transform_param,
            w.transform_param,
            "transform_param of {}",
            w.name()
        );
        assert_eq!(
            g.convolution_param,
            w.convolution_param,
            "convolution_param of {}",
            w.name()
        );
        assert_eq!(
            g.inner_product_param,
            w.inner_product_param,
            "inner_product_param of {}",
            w.name()
        );
        assert_eq!(
            g.pooling_param,
            w.pooling_param,
            "pooling_param of {}",
            w.name()
        );
    }
    assert_eq!(got.layer[2].param[1].lr_mult(), 2.0);
}

#[test]
fn v1_cifar10_quick_prototxt_upgrades_to_its_current_twin() {
    let Some(d) = data_dir() else { return };
    let got = files::read_net_text(
        d.join("models/cifar10_quick_v1_everpeace/cifar10_quick_train_test.prototxt"),
    )
    .unwrap();
    let want = files::read_net_text(
        d.join("models/bvlc_examples/cifar10/cifar10_quick_train_test.prototxt"),
    )
    .unwrap();
    assert_same_layers(&got, &want, "cifar10_quick");
    for (g, w) in got.layer.iter().zip(&want.layer) {
        assert_eq!(
            g.convolution_param,
            w.convolution_param,
            "convolution_param of {}",
            w.name()
        );
        assert_eq!(
            g.pooling_param,
            w.pooling_param,
            "pooling_param of {}",
            w.name()
        );
        let lrs = |l: &LayerParameter| l.param.iter().map(|p| p.lr_mult()).collect::<Vec<_>>();
        assert_eq!(lrs(g), lrs(w), "lr_mults of {}", w.name());
    }
}

/// A V1 caffemodel and a current one of the same architecture: same layer
/// names and types, and parameter blobs of matching shapes.
fn check_v1_caffemodel(v1: &Path, current: &Path) {
    let raw = files::read_net_binary_as_is(v1).unwrap();
    assert!(
        !raw.layers.is_empty() && raw.layer.is_empty(),
        "{} is a V1 caffemodel",
        v1.display()
    );
    let got = files::read_net_binary(v1).unwrap();
    let want = files::read_net_binary(current).unwrap();
    assert!(!upgrade::needs_upgrade(&want));
    assert_same_layers(&got, &want, &v1.display().to_string());
    let mut learned = 0;
    for (g, w) in got.layer.iter().zip(&want.layer) {
        assert_eq!(g.blobs.len(), w.blobs.len(), "blob count of {}", w.name());
        for (i, (gb, wb)) in g.blobs.iter().zip(&w.blobs).enumerate() {
            assert!(
                legacy_shape_matches(gb, wb),
                "{} blob {i}: {:?} vs {:?}",
                w.name(),
                binary::blob_shape(gb),
                binary::blob_shape(wb)
            );
            assert_eq!(gb.data.len(), wb.data.len());
            learned += 1;
        }
    }
    assert!(learned >= 8, "conv/ip weights and biases were compared");
    // The weights moved with their layers: same bytes as the V1 file held.
    let raw_conv1 = raw.layers.iter().find(|l| l.name() == "conv1").unwrap();
    let conv1 = got.layer.iter().find(|l| l.name() == "conv1").unwrap();
    assert_eq!(raw_conv1.blobs, conv1.blobs);
}

#[test]
fn v1_lenet_caffemodel_upgrades_to_the_current_layout() {
    let Some(d) = data_dir() else { return };
    check_v1_caffemodel(
        &d.join("models/lenet_v1_everpeace/lenet_iter_10000.caffemodel"),
        &d.join("models/lenet_summerlife/lenet_iter_10000.caffemodel"),
    );
}

#[test]
fn v1_cifar10_quick_caffemodel_upgrades_to_the_current_layout() {
    let Some(d) = data_dir() else { return };
    check_v1_caffemodel(
        &d.join("models/cifar10_quick_v1_everpeace/cifar10_quick_iter_4000.caffemodel"),
        &d.join("models/cifar10_quick_bxuan/cifar10_quick_iter_4000.caffemodel"),
    );
}

#[test]
fn every_prototxt_in_shared_data_loads_and_upgrades() {
    let Some(d) = data_dir() else { return };
    let all = files_with_suffix(&d, &[".prototxt"]);
    assert!(all.len() >= 60, "found {} prototxts", all.len());
    let (mut nets, mut solvers) = (0, 0);
    for p in &all {
        let is_solver = p.file_name().unwrap().to_string_lossy().contains("solver");
        if is_solver {
            let s = files::read_solver_text(p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!upgrade::solver_needs_upgrade(&s));
            solvers += 1;
        } else {
            let n = files::read_net_text(p).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !upgrade::needs_upgrade(&n),
                "{} still needs an upgrade",
                p.display()
            );
            assert!(n.layers.is_empty() && n.input.is_empty() && !n.layer.is_empty());
            nets += 1;
        }
    }
    assert!(
        nets >= 30 && solvers >= 20,
        "{nets} nets, {solvers} solvers"
    );
}

#[test]
fn input_dim_deploy_net_gets_an_input_layer_matching_its_twin() {
    let Some(d) = data_dir() else { return };
    let got = files::read_net_text(d.join("models/lenet_v1_everpeace/lenet.prototxt")).unwrap();
    let first = &got.layer[0];
    assert_eq!((first.name(), first.type_()), ("input", "Input"));
    assert_eq!(first.top, vec!["data".to_string()]);
    assert_eq!(first.input_param.shape.len(), 1);
    assert_eq!(first.input_param.shape[0].dim, vec![64, 1, 28, 28]);
    assert!(got.input.is_empty() && got.input_dim.is_empty());
    // The current deploy net declares the same shape in its own Input layer.
    let twin = files::read_net_text(d.join("models/bvlc_examples/mnist/lenet.prototxt")).unwrap();
    assert_eq!(twin.layer[0].input_param.shape, first.input_param.shape);
    let rest = |n: &NetParameter| {
        n.layer[1..]
            .iter()
            .map(|l| (l.name().to_string(), l.type_().to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rest(&got), rest(&twin));
    let cifar =
        files::read_net_text(d.join("models/cifar10_quick_v1_everpeace/cifar10_quick.prototxt"))
            .unwrap();
    assert_eq!(cifar.layer[0].input_param.shape[0].dim, vec![1, 3, 32, 32]);
}

#[test]
fn input_shape_inputs_become_one_input_layer_in_order() {
    let net = upgraded(
        r#"input: "a" input_shape { dim: 2 dim: 3 } input: "b" input_shape { dim: 5 }
           layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "c" }"#,
    );
    assert_eq!(net.layer.len(), 2);
    let l = &net.layer[0];
    assert_eq!((l.name(), l.type_()), ("input", "Input"));
    assert_eq!(l.top, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(l.input_param.shape[0].dim, vec![2, 3]);
    assert_eq!(l.input_param.shape[1].dim, vec![5]);
    assert!(net.input_shape.is_empty());
}

#[test]
fn input_without_a_shape_is_dropped_like_an_old_caffemodel() {
    let net = upgraded(r#"input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "r" }"#);
    assert_eq!(net.layer.len(), 1);
    assert!(net.input.is_empty());
}

#[test]
fn wrong_number_of_input_dims_is_an_error_naming_the_file() {
    let mut net = parse_net(r#"input: "data" input_dim: 1 input_dim: 3 input_dim: 32"#);
    let e = upgrade::upgrade_net(&mut net, "deploy.prototxt")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("deploy.prototxt:") && e.contains("4 per input"),
        "{e}"
    );
}

#[test]
fn net_mixing_layer_and_layers_is_refused() {
    let mut net = parse_net(
        r#"layer { name: "a" type: "ReLU" bottom: "x" top: "a" }
           layers { name: "b" type: RELU bottom: "a" top: "b" }"#,
    );
    assert!(upgrade::needs_upgrade(&net));
    let e = upgrade::upgrade_net(&mut net, "mixed.prototxt").unwrap_err();
    assert!(matches!(e, ProtoError::Invalid { .. }));
    let e = e.to_string();
    assert!(
        e.starts_with("mixed.prototxt:") && e.contains("`layer`") && e.contains("`layers`"),
        "{e}"
    );
}

/// A 2013-style net worked by hand through Caffe's rules:
/// - the padding layer (pad 2) disappears; conv1 gets pad [2] and reads "data";
/// - data's scale/meanfile/cropsize/mirror go to transform_param, its source
///   and batchsize to data_param;
/// - conv's num_output/kernelsize/stride/group/biasterm to convolution_param,
///   pool's pool/kernelsize/stride to pooling_param (scalars), lrn's fields
///   to lrn_param, innerproduct's num_output to inner_product_param;
/// - blobs_lr/weight_decay become ParamSpecs in the V1 → current step.
const V0_NET: &str = r#"
name: "v0net"
layers { layer { name: "data" type: "data" source: "train_db" batchsize: 32
                 scale: 0.00390625 meanfile: "mean.binaryproto" cropsize: 227 mirror: true rand_skip: 7 }
         top: "data" top: "label" }
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 96 kernelsize: 11 stride: 4 group: 2 biasterm: false
                 weight_filler { type: "gaussian" std: 0.01 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 5 alpha: 0.0001 beta: 0.75 } bottom: "pool1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 } bottom: "norm1" top: "fc" }
layers { layer { name: "loss" type: "softmax_loss" } bottom: "fc" bottom: "label" }
"#;

#[test]
fn v0_net_with_padding_and_data_fields_upgrades_by_caffes_rules() {
    let net = upgraded(V0_NET);
    assert_eq!(net.name(), "v0net");
    let names: Vec<_> = net.layer.iter().map(|l| (l.name(), l.type_())).collect();
    assert_eq!(
        names,
        [
            ("data", "Data"),
            ("conv1", "Convolution"),
            ("relu1", "ReLU"),
            ("pool1", "Pooling"),
            ("norm1", "LRN"),
            ("fc", "InnerProduct"),
            ("loss", "SoftmaxWithLoss")
        ]
    );
    let data = &net.layer[0];
    assert_eq!(data.data_param.source(), "train_db");
    assert_eq!(data.data_param.batch_size(), 32);
    assert_eq!(data.data_param.rand_skip(), 7);
    assert!(!data.data_param.has_scale() && !data.data_param.has_mean_file());
    let tp = &data.transform_param;
    assert_eq!(
        (tp.scale(), tp.mean_file(), tp.crop_size(), tp.mirror()),
        (0.00390625, "mean.binaryproto", 227, true)
    );

    let conv = &net.layer[1];
    assert_eq!(
        conv.bottom,
        vec!["data".to_string()],
        "the padding layer is bypassed"
    );
    let cp = &conv.convolution_param;
    assert_eq!(
        (cp.num_output(), cp.group(), cp.bias_term()),
        (96, 2, false)
    );
    assert_eq!(
        (cp.pad.clone(), cp.kernel_size.clone(), cp.stride.clone()),
        (vec![2], vec![11], vec![4])
    );
    assert_eq!(
        (cp.weight_filler.type_(), cp.weight_filler.std()),
        ("gaussian", 0.01)
    );
    let specs: Vec<_> = conv
        .param
        .iter()
        .map(|p| (p.lr_mult(), p.decay_mult()))
        .collect();
    assert_eq!(specs, [(1.0, 1.0), (2.0, 0.0)]);

    let pp = &net.layer[3].pooling_param;
    assert_eq!(
        pp.pool(),
        crema_proto::caffe::pooling_parameter::PoolMethod::AVE
    );
    assert_eq!((pp.kernel_size(), pp.stride(), pp.has_pad()), (3, 2, false));
    let lrn = &net.layer[4].lrn_param;
    assert_eq!(
        (lrn.local_size(), lrn.alpha(), lrn.beta()),
        (5, 0.0001, 0.75)
    );
    assert_eq!(net.layer[5].inner_product_param.num_output(), 10);
    assert_eq!(
        net.layer[6].bottom,
        vec!["fc".to_string(), "label".to_string()]
    );
}

#[test]
fn v0_padding_before_a_non_conv_layer_is_an_error_naming_the_layer() {
    let mut net = parse_net(
        r#"input: "x" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" }
           layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }"#,
    );
    let e = upgrade::upgrade_net(&mut net, "old.prototxt")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("old.prototxt:") && e.contains("'r'") && e.contains("padding"),
        "{e}"
    );
}

#[test]
fn v0_unknown_type_and_misplaced_field_are_errors() {
    let mut net = parse_net(r#"layers { layer { name: "q" type: "quantum" } }"#);
    let e = upgrade::upgrade_net(&mut net, "a.prototxt")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'q'") && e.contains("unknown V0 layer type 'quantum'"),
        "{e}"
    );
    let mut net = parse_net(r#"layers { layer { name: "r" type: "relu" num_output: 3 } }"#);
    let e = upgrade::upgrade_net(&mut net, "b.prototxt")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'r'") && e.contains("num_output") && e.contains("relu"),
        "{e}"
    );
}

#[test]
fn v1_data_layer_transform_fields_move_to_transform_param() {
    let net = upgraded(
        r#"layers { name: "d" type: IMAGE_DATA top: "d"
                    image_data_param { source: "list.txt" scale: 0.5 crop_size: 8 mirror: true mean_file: "m" }
                    transform_param { scale: 2 mean_value: 104 } }"#,
    );
    let l = &net.layer[0];
    assert_eq!(l.type_(), "ImageData");
    let p = &l.image_data_param;
    assert_eq!(p.source(), "list.txt");
    assert!(!p.has_scale() && !p.has_crop_size() && !p.has_mirror() && !p.has_mean_file());
    let tp = &l.transform_param;
    // The legacy value wins over transform_param's own, as in Caffe.
    assert_eq!(
        (tp.scale(), tp.crop_size(), tp.mirror(), tp.mean_file()),
        (0.5, 8, true, "m")
    );
    assert_eq!(tp.mean_value, vec![104.0]);
}

#[test]
fn batch_norm_param_specs_are_frozen_not_learned() {
    let Some(d) = data_dir() else { return };
    let path = d.join("models/bvlc_examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt");
    let raw = files::read_net_text_as_is(&path).unwrap();
    assert!(
        upgrade::needs_upgrade(&raw),
        "three param specs with the default decay_mult 1"
    );
    let net = files::read_net_text(&path).unwrap();
    let bns: Vec<_> = net
        .layer
        .iter()
        .filter(|l| l.type_() == "BatchNorm")
        .collect();
    assert_eq!(bns.len(), 3);
    for bn in bns {
        assert_eq!(bn.param.len(), 3);
        assert!(bn
            .param
            .iter()
            .all(|p| p.lr_mult() == 0.0 && p.decay_mult() == 0.0));
    }
    let mut again = net.clone();
    assert!(!upgrade::upgrade_net(&mut again, "x").unwrap());
    assert_eq!(again, net);
}

#[test]
fn current_net_is_unchanged_by_the_upgrade() {
    let Some(d) = data_dir() else { return };
    let path = d.join("models/bvlc_reference_prototxt/bvlc_alexnet/train_val.prototxt");
    let raw = files::read_net_text_as_is(&path).unwrap();
    let mut net = raw.clone();
    assert!(!upgrade::needs_upgrade(&net));
    assert!(!upgrade::upgrade_net(&mut net, "x").unwrap());
    assert_eq!(net, raw);
}

#[test]
fn upgraded_v1_net_prints_as_current_prototxt_that_parses_back_identically() {
    let Some(d) = data_dir() else { return };
    let net = files::read_net_text(
        d.join("models/cifar10_quick_v1_everpeace/cifar10_quick_train_test.prototxt"),
    )
    .unwrap();
    let printed = text::print(&net);
    assert!(printed.contains("layer {") && !printed.contains("layers {"));
    assert!(printed.contains("type: \"Convolution\""));
    let back: NetParameter = text::parse(&printed, "printed").unwrap();
    assert_eq!(back, net);
    let out = std::env::temp_dir().join(format!("crema-upgrade-{}.prototxt", std::process::id()));
    files::write_net_text(&out, &net).unwrap();
    assert_eq!(files::read_net_text(&out).unwrap(), net);
    std::fs::remove_file(&out).ok();
}

#[test]
fn solver_files_load_as_solvers_and_states_and_means_load() {
    let Some(d) = data_dir() else { return };
    let s =
        files::read_solver_text(d.join("models/lenet_v1_everpeace/lenet_solver.prototxt")).unwrap();
    assert_eq!((s.type_(), s.base_lr(), s.max_iter()), ("SGD", 0.01, 10000));
    assert_eq!(s.snapshot_prefix(), "examples/mnist/lenet");
    let st =
        files::read_solver_state(d.join("models/lenet_v1_everpeace/lenet_iter_10000.solverstate"))
            .unwrap();
    assert_eq!(st.iter(), 10000);
    assert_eq!(
        st.history.len(),
        8,
        "conv1, conv2, ip1, ip2: weight and bias each"
    );
    let mean = files::read_mean_blob(d.join("ilsvrc12/imagenet_mean.binaryproto")).unwrap();
    assert_eq!(binary::blob_shape(&mean), vec![1, 3, 256, 256]);
    // A caffemodel is not a solver state: refused with the file and the kind named.
    let e = files::read_solver_state(d.join("models/lenet_summerlife/lenet_iter_5000.caffemodel"))
        .unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("lenet_iter_5000.caffemodel") && e.contains("solverstate"),
        "{e}"
    );
}

#[test]
fn binary_round_trip_of_an_upgraded_caffemodel() {
    let Some(d) = data_dir() else { return };
    let net =
        files::read_net_binary(d.join("models/lenet_v1_everpeace/lenet_iter_10000.caffemodel"))
            .unwrap();
    let out = std::env::temp_dir().join(format!("crema-upgrade-{}.caffemodel", std::process::id()));
    files::write_net_binary(&out, &net).unwrap();
    let back = files::read_net_binary_as_is(&out).unwrap();
    assert!(!upgrade::needs_upgrade(&back));
    assert_eq!(back, net);
    std::fs::remove_file(&out).ok();
}
