//! Filtering by net state, split insertion, weights in and out, and the
//! construction log.
use super::tests::{assert_close, build, parse, set};
use super::{filter_net, insert_splits, Net};

fn names(p: &crema_proto::caffe::NetParameter) -> Vec<String> {
    p.layer.iter().map(|l| l.name().to_string()).collect()
}

#[test]
fn filter_keeps_layers_by_phase_level_and_stage() {
    let p = parse(
        r#"state { phase: TEST level: 2 stage: "a" }
        layer { name: "always" type: "Input" }
        layer { name: "train" type: "Input" include { phase: TRAIN } }
        layer { name: "test" type: "Input" include { phase: TEST } }
        layer { name: "not_test" type: "Input" exclude { phase: TEST } }
        layer { name: "min3" type: "Input" include { min_level: 3 } }
        layer { name: "max2" type: "Input" include { max_level: 2 } }
        layer { name: "a_and_b" type: "Input" include { stage: "a" stage: "b" } }
        layer { name: "a" type: "Input" include { stage: "a" } }
        layer { name: "not_a" type: "Input" include { not_stage: "a" } }
        layer { name: "train_or_a" type: "Input" include { phase: TRAIN } include { stage: "a" } }
        layer { name: "excluded_unless_zzz" type: "Input" exclude { not_stage: "zzz" } }"#,
    );
    let kept = names(&filter_net(&p).unwrap());
    assert_eq!(kept, ["always", "test", "max2", "a", "train_or_a"]);
    let mut p2 = p.clone();
    p2.state
        .mut_or_insert_default()
        .set_phase(crema_proto::caffe::Phase::TRAIN);
    p2.state.mut_or_insert_default().stage.clear();
    p2.state.mut_or_insert_default().set_level(3);
    let kept = names(&filter_net(&p2).unwrap());
    assert_eq!(
        kept,
        ["always", "train", "not_test", "min3", "not_a", "train_or_a"]
    );
    let bad = parse(
        r#"layer { name: "x" type: "Input" include { phase: TRAIN } exclude { phase: TEST } }"#,
    );
    let e = filter_net(&bad).unwrap_err().to_string();
    assert!(
        e.contains("Specify either include rules or exclude rules; not both."),
        "{e}"
    );
}

#[test]
fn from_file_sets_phase_level_and_stages() {
    let dir = std::env::temp_dir().join(format!("crema_net_from_file_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.prototxt");
    std::fs::write(
        &path,
        r#"name: "staged"
        layer { name: "train" type: "Input" top: "a" include { phase: TRAIN } input_param { shape { dim: 1 } } }
        layer { name: "deep" type: "Input" top: "b" include { min_level: 1 stage: "s" } input_param { shape { dim: 1 } } }
        layer { name: "test" type: "Input" top: "c" include { phase: TEST } input_param { shape { dim: 1 } } }"#,
    )
    .unwrap();
    use crema_proto::caffe::Phase;
    let net = Net::from_file(&path, Phase::TRAIN, 0, &[]).unwrap();
    assert_eq!(net.layer_names(), ["train"]);
    assert_eq!(net.phase(), Phase::TRAIN);
    assert_eq!(net.layer_params()[0].phase(), Phase::TRAIN);
    let net = Net::from_file(&path, Phase::TEST, 1, &["s".to_string()]).unwrap();
    assert_eq!(net.layer_names(), ["deep", "test"]);
    assert!(Net::from_file(dir.join("missing.prototxt"), Phase::TEST, 0, &[]).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn splits_follow_caffes_naming_and_carry_the_loss_on_their_first_top() {
    let p = parse(
        r#"name: "s"
        layer { name: "data" type: "Input" top: "data" }
        layer { name: "a" type: "X" bottom: "data" top: "a" }
        layer { name: "b" type: "X" bottom: "data" top: "b" }
        layer { name: "c" type: "X" bottom: "data" bottom: "a" top: "c" loss_weight: 2 }
        layer { name: "d" type: "X" bottom: "c" top: "d" }
        layer { name: "relu" type: "X" bottom: "d" top: "d" }
        layer { name: "e" type: "X" bottom: "d" }
        layer { name: "f" type: "X" bottom: "d" }"#,
    );
    let out = insert_splits(&p).unwrap();
    assert_eq!(
        names(&out),
        [
            "data",
            "data_data_0_split",
            "a",
            "b",
            "c",
            "c_c_0_split",
            "d",
            "relu",
            "d_relu_0_split",
            "e",
            "f"
        ]
    );
    let l = |n: &str| out.layer.iter().find(|l| l.name() == n).unwrap().clone();
    assert_eq!(l("data_data_0_split").type_(), "Split");
    assert_eq!(l("data_data_0_split").bottom, ["data"]);
    assert_eq!(
        l("data_data_0_split").top,
        [
            "data_data_0_split_0",
            "data_data_0_split_1",
            "data_data_0_split_2"
        ]
    );
    assert_eq!(l("a").bottom, ["data_data_0_split_0"]);
    assert_eq!(l("b").bottom, ["data_data_0_split_1"]);
    assert_eq!(l("c").bottom, ["data_data_0_split_2", "a"]);
    // c's loss moves to the split's first top, which nobody reads.
    assert_eq!(l("c_c_0_split").top, ["c_c_0_split_0", "c_c_0_split_1"]);
    assert_eq!(l("c_c_0_split").loss_weight, [2.0, 0.0]);
    assert_eq!(l("c").loss_weight, [0.0]);
    assert_eq!(l("d").bottom, ["c_c_0_split_1"]);
    // In place: the split follows the last writer of "d".
    assert_eq!(l("relu").bottom, ["d"]);
    assert_eq!(l("e").bottom, ["d_relu_0_split_0"]);
    assert_eq!(l("f").bottom, ["d_relu_0_split_1"]);
    // A net without fan-out is left as it is.
    let single = parse(
        r#"layer { name: "data" type: "Input" top: "data" } layer { name: "a" type: "X" bottom: "data" }"#,
    );
    assert_eq!(insert_splits(&single).unwrap(), single);
}

const NET: &str = r#"name: "io"
  layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
  layer { name: "ip" type: "TestAffine" bottom: "data" top: "ip"
          inner_product_param { num_output: 1 weight_filler { value: 0.5 } } }"#;

#[test]
fn caffemodel_round_trip_and_copy_errors() {
    let net = build(NET).unwrap();
    let ipl = net.layer_by_name("ip").unwrap();
    ipl.blobs()[0]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&[1.0, 2.0, 3.0]);
    ipl.blobs()[1].borrow_mut().data_mut()[0] = 4.0;
    let proto = net.to_proto(false);
    assert_eq!(names(&proto), ["data", "ip"]);
    assert_eq!(proto.layer[1].blobs.len(), 2);
    assert_eq!(proto.layer[1].blobs[0].shape.dim, [1, 3]);
    assert!(proto.layer[1].blobs[0].diff.is_empty());
    assert_eq!(net.to_proto(true).layer[1].blobs[0].diff.len(), 3);

    let dir = std::env::temp_dir().join(format!("crema_net_io_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.caffemodel");
    net.save(&path).unwrap();
    let mut fresh = build(NET).unwrap();
    fresh.copy_trained_layers_from_file(&path).unwrap();
    set(&fresh, "data", &[1.0, 1.0, 1.0]);
    // 1 + 2 + 3 + 4.
    fresh.forward().unwrap();
    assert_close(fresh.blob_by_name("ip").unwrap().borrow().data(), &[10.0]);
    assert!(fresh
        .copy_trained_layers_from_file(dir.join("missing.caffemodel"))
        .is_err());

    let wider = NET.replace("num_output: 1", "num_output: 2");
    let mut other = build(&wider).unwrap();
    let e = other
        .copy_trained_layers_from(&proto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "Cannot copy param 0 weights from layer 'ip'; shape mismatch.  Source param shape is 1 3 (3); \
             target param shape is 2 3 (6). To learn this layer's parameters from scratch rather than copying \
             from a saved net, rename the layer."
        ),
        "{e}"
    );
    let mut short = proto.clone();
    short.layer[1].blobs.truncate(1);
    let e = fresh
        .copy_trained_layers_from(&short)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Incompatible number of blobs for layer ip"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn legacy_four_d_blob_shapes_are_accepted_and_unknown_layers_ignored() {
    let mut src = parse(
        r#"layer { name: "gone" type: "X" }
        layer { name: "ip" blobs { num: 1 channels: 1 height: 1 width: 3 data: 7 data: 8 data: 9 }
                           blobs { num: 1 channels: 1 height: 1 width: 1 data: -1 } }"#,
    );
    let mut net = build(NET).unwrap();
    net.copy_trained_layers_from(&src).unwrap();
    assert_close(
        net.layer_by_name("ip").unwrap().blobs()[0].borrow().data(),
        &[7.0, 8.0, 9.0],
    );
    src.layer[1].blobs[0].set_height(3);
    src.layer[1].blobs[0].set_width(1);
    let e = net.copy_trained_layers_from(&src).unwrap_err().to_string();
    assert!(
        e.contains("Source param shape is 1 1 3 1 (3); target param shape is 1 3 (3)"),
        "{e}"
    );
}

/// Captures this thread's log lines while a closure runs.
mod capture {
    use std::cell::RefCell;

    thread_local!(static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) });
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            LINES.with(|l| {
                if let Some(v) = l.borrow_mut().as_mut() {
                    v.push(r.args().to_string());
                }
            });
        }
        fn flush(&self) {}
    }
    static LOGGER: Capture = Capture;

    /// None when another logger owns the process (then the test is skipped).
    pub fn lines(f: impl FnOnce()) -> Option<Vec<String>> {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
        f();
        let got = LINES.with(|l| l.borrow_mut().take()).unwrap();
        if got.is_empty() {
            None
        } else {
            Some(got)
        }
    }
}

#[test]
fn construction_logs_read_like_caffes() {
    let text = r#"name: "tiny"
      layer { name: "data" type: "Input" top: "data" top: "label"
              input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
      layer { name: "ip" type: "TestAffine" bottom: "data" top: "ip" inner_product_param { num_output: 1 } }
      layer { name: "relu" type: "TestDouble" bottom: "ip" top: "ip" }
      layer { name: "loss" type: "TestLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: 0.5 }
      layer { name: "skip" type: "Input" top: "x" include { phase: TRAIN } }"#;
    let Some(lines) = capture::lines(|| {
        build(text).unwrap();
    }) else {
        println!("skipped: another logger is installed in this test process");
        return;
    };
    assert_eq!(
        lines[0],
        "The NetState phase (1) differed from the phase (0) specified by a rule in layer skip"
    );
    assert!(
        lines[1].starts_with("Initializing net from parameters: \n"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("name: \"relu\"") && !lines[1].contains("skip"));
    let expected = [
        "Creating Layer data",
        "data -> data",
        "data -> label",
        "Setting up data",
        "Top shape: 2 3 (6)",
        "Top shape: 2 1 (2)",
        "Memory required for data: 32",
        "Creating Layer ip",
        "ip <- data",
        "ip -> ip",
        "Setting up ip",
        "Top shape: 2 1 (2)",
        "Memory required for data: 40",
        "Creating Layer relu",
        "relu <- ip",
        "relu -> ip (in-place)",
        "Setting up relu",
        "Top shape: 2 1 (2)",
        "Memory required for data: 48",
        "Creating Layer loss",
        "loss <- ip",
        "loss <- label",
        "loss -> loss",
        "Setting up loss",
        "Top shape: (1)",
        "    with loss weight 0.5",
        "Memory required for data: 52",
        "loss needs backward computation.",
        "relu needs backward computation.",
        "ip needs backward computation.",
        "data does not need backward computation.",
        "This network produces output loss",
        "Network initialization done.",
    ];
    assert_eq!(&lines[2..], &expected[..]);
}

#[test]
fn legacy_net_inputs_in_memory_become_an_input_layer() {
    let p = parse(
        r#"name: "old" input: "data" input_shape { dim: 2 dim: 3 }
        layer { name: "ip" type: "TestAffine" bottom: "data" top: "ip"
                inner_product_param { num_output: 1 weight_filler { value: 1 } } }"#,
    );
    let mut net = Net::from_param_with(&p, &super::tests::test_factory).unwrap();
    assert_eq!(net.layer_params()[0].type_(), "Input");
    assert_eq!(net.input_blobs().len(), 1);
    assert_eq!(net.input_blobs()[0].borrow().shape(), &[2, 3]);
    set(&net, "data", &[1., 2., 3., 4., 5., 6.]);
    net.forward().unwrap();
    assert_close(
        net.blob_by_name("ip").unwrap().borrow().data(),
        &[6.0, 15.0],
    );
}

#[test]
fn lenet_train_test_filters_to_caffes_train_and_test_nets() {
    let Some(root) = crema_proto::testdata::shared_data() else {
        println!("skipped: shared data not found");
        return;
    };
    use crema_proto::caffe::Phase;
    let path = root.join("models/lenet_summerlife/lenet_train_test.prototxt");
    let mut p = crema_proto::files::read_net_text(&path).unwrap();
    p.state.mut_or_insert_default().set_phase(Phase::TRAIN);
    let train = filter_net(&p).unwrap();
    let expected = [
        "mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss",
    ];
    assert_eq!(names(&train), expected);
    p.state.mut_or_insert_default().set_phase(Phase::TEST);
    let test = filter_net(&p).unwrap();
    let expected = [
        "mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "accuracy", "loss",
    ];
    assert_eq!(names(&test), expected);
    assert_eq!(test.layer[0].include[0].phase(), Phase::TEST);
    // In TEST, ip2 feeds both accuracy and loss, and the label too: two splits.
    let split = insert_splits(&test).unwrap();
    let splits: Vec<String> = names(&split)
        .into_iter()
        .filter(|n| n.ends_with("_split"))
        .collect();
    assert_eq!(splits, ["label_mnist_1_split", "ip2_ip2_0_split"]);
}
