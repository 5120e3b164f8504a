use super::layout::RankDir;
use super::*;

fn parse_net_text(t: &str) -> crema::Result<NetParameter> {
    Ok(crema::proto::text::parse::<NetParameter>(
        t,
        "fan.prototxt",
    )?)
}

fn lenet() -> NetParameter {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mnist/lenet_train_test.prototxt"
    );
    crema::proto::files::read_net_text(path).unwrap()
}

fn find<'a>(g: &'a NetGraph, kind: NodeKind, name: &str) -> Vec<(usize, &'a Node)> {
    g.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == kind && n.name == name)
        .collect()
}

fn edge(g: &NetGraph, from: usize, to: usize) -> Option<&Edge> {
    g.edges.iter().find(|e| e.from == from && e.to == to)
}

#[test]
fn lenet_all_phases_merges_the_two_data_layers_and_badges_accuracy() {
    let g = from_net_param(&lenet(), None, LabelOptions::default());
    let data = find(&g, NodeKind::Layer, "mnist");
    assert_eq!(data.len(), 1, "one node for the TRAIN and TEST data layers");
    assert_eq!(data[0].1.phases, vec!["TRAIN", "TEST"]);
    let acc = find(&g, NodeKind::Layer, "accuracy");
    assert_eq!(acc[0].1.phases, vec!["TEST"]);
    assert_eq!(g.phases, vec!["TRAIN", "TEST"]);
    // The TRAIN phase alone has no accuracy layer.
    let train = from_net_param(&lenet(), Some(Phase::TRAIN), LabelOptions::default());
    assert!(find(&train, NodeKind::Layer, "accuracy").is_empty());
}

#[test]
fn in_place_relu_writes_a_new_version_of_its_blob() {
    let g = from_net_param(&lenet(), Some(Phase::TRAIN), LabelOptions::default());
    let ip1 = find(&g, NodeKind::Blob, "ip1");
    assert_eq!(ip1.len(), 2, "ip1 before and after relu1");
    let (relu, node) = find(&g, NodeKind::Layer, "relu1")[0];
    assert!(node.in_place);
    assert!(!edge(&g, ip1[0].0, relu).unwrap().in_place);
    assert!(edge(&g, relu, ip1[1].0).unwrap().in_place);
    let (ip2, _) = find(&g, NodeKind::Layer, "ip2")[0];
    assert!(
        edge(&g, ip1[1].0, ip2).is_some(),
        "ip2 reads the rectified ip1"
    );
}

#[test]
fn labels_follow_draw_net() {
    let lrm = LabelOptions {
        one_line: false,
        display_lrm: true,
    };
    let g = from_net_param(&lenet(), Some(Phase::TRAIN), lrm);
    let (conv, node) = find(&g, NodeKind::Layer, "conv1")[0];
    assert_eq!(
        node.details,
        vec!["kernel size: 5", "stride: 1", "pad: 0", "lr mult: 1, 2"]
    );
    let (blob, _) = find(&g, NodeKind::Blob, "conv1")[0];
    assert_eq!(edge(&g, conv, blob).unwrap().label, "20");
    let (data, _) = find(&g, NodeKind::Layer, "mnist")[0];
    let (d, _) = find(&g, NodeKind::Blob, "data")[0];
    assert_eq!(edge(&g, data, d).unwrap().label, "Batch 64");
    let (_, pool) = find(&g, NodeKind::Layer, "pool1")[0];
    assert_eq!(pool.details[0], "pool: MAX");
    let one = from_net_param(
        &lenet(),
        Some(Phase::TRAIN),
        LabelOptions {
            one_line: true,
            display_lrm: false,
        },
    );
    assert_eq!(
        find(&one, NodeKind::Layer, "conv1")[0].1.details,
        vec!["kernel size: 5 stride: 1 pad: 0"]
    );
}

const FANOUT: &str = r#"name: "fan"
layer { name: "in" type: "DummyData" top: "x" top: "y"
        dummy_data_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "c" top: "p" pooling_param { kernel_size: 6 } }
layer { name: "relu" type: "ReLU" bottom: "p" top: "p" }
layer { name: "flat" type: "Flatten" bottom: "p" top: "f" }
layer { name: "loss" type: "EuclideanLoss" bottom: "f" bottom: "y" top: "loss" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "f" bottom: "y" top: "loss2" }
"#;

#[test]
fn built_net_gives_shapes_and_split_edges() {
    let net = crema::net::Net::from_param(&parse_net_text(FANOUT).unwrap()).unwrap();
    let g = from_nets("fan", &[&net]);
    let (_, c) = find(&g, NodeKind::Blob, "c")[0];
    assert_eq!(c.shape, Some(vec![2, 4, 6, 6]));
    // The net splits f and y between the two losses; no Split node is drawn.
    assert!(g.nodes.iter().all(|n| n.layer_type != "Split"));
    let (f, _) = find(&g, NodeKind::Blob, "f")[0];
    let (loss2, _) = find(&g, NodeKind::Layer, "loss2")[0];
    assert!(edge(&g, f, loss2).unwrap().split);
    // A net built without a state is a TEST net, as in Caffe.
    assert_eq!(g.phases, vec!["TEST"]);
}

#[test]
fn svg_names_every_node_with_its_shape() {
    let net = crema::net::Net::from_param(&parse_net_text(FANOUT).unwrap()).unwrap();
    let g = from_nets("fan", &[&net]);
    let svg = svg::render(&g, RankDir::TB);
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(r#"data-name="conv" data-type="Convolution""#));
    assert!(svg.contains(r#"data-shape="2 4 6 6""#));
    assert!(svg.contains(">2 4 6 6 (288)</text>"));
    assert!(
        svg.contains("#FF5050"),
        "convolution drawn red as in draw_net"
    );
    assert_eq!(svg.matches("<path class=\"edge").count(), g.edges.len());
}

#[test]
fn json_round_trips_and_rejects_dangling_edges() {
    let g = from_net_param(&lenet(), None, LabelOptions::default());
    let back = NetGraph::from_json(&g.to_json()).unwrap();
    assert_eq!(back, g);
    let mut v = g.to_json();
    v["edges"][0]["to"] = serde_json::json!(10_000);
    assert!(NetGraph::from_json(&v).unwrap_err().contains("edge end"));
}

#[test]
fn a_blob_keeps_the_first_nets_shape_and_notes_another_phases() {
    let text = |batch: usize| {
        FANOUT
            .replace(
                "dim: 2 dim: 3 dim: 8",
                &format!("dim: {batch} dim: 3 dim: 8"),
            )
            .replace("dim: 2 dim: 4 }", &format!("dim: {batch} dim: 4 }}"))
    };
    let mut train_param = parse_net_text(&text(2)).unwrap();
    train_param
        .state
        .mut_or_insert_default()
        .set_phase(Phase::TRAIN);
    let train = crema::net::Net::from_param(&train_param).unwrap();
    let test = crema::net::Net::from_param(&parse_net_text(&text(5)).unwrap()).unwrap();
    let g = from_nets("fan", &[&train, &test]);
    let (_, c) = find(&g, NodeKind::Blob, "c")[0];
    assert_eq!(c.shape, Some(vec![2, 4, 6, 6]));
    assert_eq!(c.details, vec!["TEST: 5 4 6 6 (720)"]);
    assert_eq!(g.phases, vec!["TRAIN", "TEST"]);
    let (_, conv) = find(&g, NodeKind::Layer, "conv")[0];
    assert_eq!(conv.phases, vec!["TRAIN", "TEST"]);
}
