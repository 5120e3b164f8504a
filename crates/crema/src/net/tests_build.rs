//! Net construction and running, in the manner of Caffe's test_net.cpp.
use super::tests::{assert_close, build, data, diff, set};

const INPUT: &str = r#"
  name: "tiny"
  layer { name: "data" type: "Input" top: "data" top: "label"
          input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
"#;

fn ip(name: &str, bottom: &str, extra: &str) -> String {
    format!(
        r#"layer {{ name: "{name}" type: "TestAffine" bottom: "{bottom}" top: "{name}" {extra}
           inner_product_param {{ num_output: 1 weight_filler {{ value: 0.5 }} bias_filler {{ value: 1 }} }} }}"#
    )
}

/// data [[1,2,3],[4,5,6]] -> ip (W = 0.5, b = 1) = [4, 8.5]; label [1, 2];
/// loss = ½((4-1)² + (8.5-2)²) = 25.625.
fn tiny(loss_extra: &str, ip_extra: &str, net_extra: &str) -> String {
    format!(
        "{net_extra}{INPUT}{}\nlayer {{ name: \"loss\" type: \"TestLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" {loss_extra} }}",
        ip("ip", "data", ip_extra)
    )
}

fn fill_tiny(net: &super::Net) {
    set(net, "data", &[1., 2., 3., 4., 5., 6.]);
    set(net, "label", &[1., 2.]);
}

#[test]
fn forward_backward_through_a_small_net_matches_hand_values() {
    let mut net = build(&tiny("", "", "")).unwrap();
    fill_tiny(&net);
    let loss = net.forward().unwrap();
    assert!((loss - 25.625).abs() < 1e-5, "{loss}");
    assert_close(&data(&net, "ip"), &[4.0, 8.5]);
    net.clear_param_diffs();
    net.backward().unwrap();
    let w = net.layer_by_name("ip").unwrap().blobs()[0].clone();
    let b = net.layer_by_name("ip").unwrap().blobs()[1].clone();
    // dW = 3·[1,2,3] + 6.5·[4,5,6]; db = 3 + 6.5.
    assert_close(w.borrow().diff(), &[29.0, 38.5, 48.0]);
    assert_close(b.borrow().diff(), &[9.5]);
    assert_eq!(net.layer_need_backward(), &[false, true, true]);
    // The data has no gradient to receive: nothing asked for it.
    assert_eq!(net.bottom_need_backward()[1], vec![false]);
    assert_close(&diff(&net, "data"), &[0.0; 6]);
    net.update();
    assert_close(w.borrow().data(), &[0.5 - 29.0, 0.5 - 38.5, 0.5 - 48.0]);
    assert_eq!(net.learnable_params().len(), 2);
    assert_eq!(net.params_lr(), &[1.0, 1.0]);
    assert_eq!(net.params_weight_decay(), &[1.0, 1.0]);
}

#[test]
fn loss_weight_scales_the_loss_and_the_gradient() {
    let mut net = build(&tiny("loss_weight: 2", "", "")).unwrap();
    fill_tiny(&net);
    assert!((net.forward().unwrap() - 51.25).abs() < 1e-4);
    assert_eq!(net.blob_loss_weights()[net.top_ids(2)[0]], 2.0);
    assert_eq!(diff(&net, "loss"), vec![2.0]);
    net.clear_param_diffs();
    net.backward().unwrap();
    assert_close(
        net.learnable_params()[0].borrow().diff(),
        &[58.0, 77.0, 96.0],
    );
    // Any layer may carry a loss: a weight on ip adds 0.5·(4 + 8.5).
    let mut net = build(&tiny("", "loss_weight: 0.5", "")).unwrap();
    fill_tiny(&net);
    assert!((net.forward().unwrap() - (25.625 + 6.25)).abs() < 1e-4);
    // loss_weight 0 on a loss layer: nothing reaches the loss, nothing runs backward.
    let net = build(&tiny("loss_weight: 0", "", "")).unwrap();
    assert_eq!(net.layer_need_backward(), &[false, false, false]);
}

#[test]
fn lr_mult_zero_params_need_no_backward() {
    let frozen = "param { lr_mult: 0 } param { lr_mult: 0 }";
    let net = build(&tiny("", frozen, "")).unwrap();
    assert_eq!(net.layer_need_backward(), &[false, false, false]);
    assert_eq!(net.param_propagate_down(1), &[false, false]);
    let net = build(&tiny(
        "",
        "param { lr_mult: 0 } param { lr_mult: 2 decay_mult: 0 }",
        "",
    ))
    .unwrap();
    assert_eq!(net.layer_need_backward(), &[false, true, true]);
    assert_eq!(net.params_lr(), &[0.0, 2.0]);
    assert_eq!(net.params_weight_decay(), &[1.0, 0.0]);
    assert_eq!(net.has_params_lr(), &[true, true]);
    assert_eq!(net.has_params_decay(), &[false, true]);
}

#[test]
fn force_backward_reaches_the_data_but_not_the_label() {
    let mut net = build(&tiny(
        "",
        "param { lr_mult: 0 } param { lr_mult: 0 }",
        "force_backward: true\n",
    ))
    .unwrap();
    assert_eq!(net.layer_need_backward(), &[true, true, true]);
    assert_eq!(net.bottom_need_backward()[2], vec![true, false]);
    fill_tiny(&net);
    net.forward().unwrap();
    net.backward().unwrap();
    // d data = dy · W = [3·0.5 ×3, 6.5·0.5 ×3].
    assert_close(&diff(&net, "data"), &[1.5, 1.5, 1.5, 3.25, 3.25, 3.25]);
    assert_close(&diff(&net, "label"), &[0.0, 0.0]);
}

#[test]
fn propagate_down_false_skips_the_layers_below() {
    // As in Caffe, the loss layer itself still runs (to no bottom); the layers
    // below, whose every top skips backpropagation, do not.
    let net = build(&tiny("propagate_down: false propagate_down: false", "", "")).unwrap();
    assert_eq!(net.layer_need_backward(), &[false, false, true]);
    assert_eq!(net.bottom_need_backward()[2], vec![false, false]);
    let err = build(&tiny("propagate_down: false", "", ""))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("propagate_down param must be specified either 0 or bottom_size times"),
        "{err}"
    );
}

#[test]
fn blobs_read_twice_get_a_split_and_gradients_add_up() {
    let text = format!(
        "{INPUT}{}\nlayer {{ name: \"d1\" type: \"TestDouble\" bottom: \"ip\" top: \"d1\" }}\n\
         layer {{ name: \"loss\" type: \"TestLoss\" bottom: \"ip\" bottom: \"d1\" top: \"loss\" }}",
        ip("ip", "data", "")
    );
    let mut net = build(&text).unwrap();
    let names: Vec<&str> = net.layer_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["data", "ip", "ip_ip_0_split", "d1", "loss"]);
    let blobs: Vec<&str> = net.blob_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(
        blobs,
        [
            "data",
            "label",
            "ip",
            "ip_ip_0_split_0",
            "ip_ip_0_split_1",
            "d1",
            "loss"
        ]
    );
    assert_eq!(net.layer_params()[3].bottom, ["ip_ip_0_split_0"]);
    assert_eq!(net.layer_params()[4].bottom, ["ip_ip_0_split_1", "d1"]);
    // The unread label is an output, alongside the loss (sorted by name).
    let outputs: Vec<&str> = net
        .output_blob_indices()
        .iter()
        .map(|&i| net.blob_names()[i].as_str())
        .collect();
    assert_eq!(outputs, ["label", "loss"]);
    fill_tiny(&net);
    // loss = ½(ip - 2ip)² = ½ip²: d loss / d ip = ip, arriving as -ip + 2ip.
    let loss = net.forward().unwrap();
    assert!((loss - 0.5 * (16.0 + 72.25)).abs() < 1e-4);
    net.clear_param_diffs();
    net.backward().unwrap();
    assert_close(&diff(&net, "ip"), &[4.0, 8.5]);
    assert_close(net.learnable_params()[1].borrow().diff(), &[12.5]);
}

#[test]
fn in_place_tops_share_the_bottom_blob() {
    let text = format!(
        "{INPUT}{}\nlayer {{ name: \"d\" type: \"TestDouble\" bottom: \"ip\" top: \"ip\" }}\n\
         layer {{ name: \"loss\" type: \"TestLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }}",
        ip("ip", "data", "")
    );
    let mut net = build(&text).unwrap();
    assert_eq!(net.bottom_ids(2), net.top_ids(2));
    assert_eq!(net.blob_names().len(), 4);
    fill_tiny(&net);
    // ip doubled to [8, 17]; loss = ½(7² + 15²) = 137.
    assert!((net.forward().unwrap() - 137.0).abs() < 1e-4);
    assert_close(&data(&net, "ip"), &[8.0, 17.0]);
    net.clear_param_diffs();
    net.backward().unwrap();
    // db = 2·(7 + 15).
    assert_close(net.learnable_params()[1].borrow().diff(), &[44.0]);
}

fn shared_net(extra1: &str, extra2: &str, out2: u32) -> String {
    format!(
        r#"{INPUT}
        layer {{ name: "ip1" type: "TestAffine" bottom: "data" top: "ip1" {extra1}
                inner_product_param {{ num_output: 1 bias_term: false weight_filler {{ value: 0.5 }} }} }}
        layer {{ name: "ip2" type: "TestAffine" bottom: "data" top: "ip2" {extra2}
                inner_product_param {{ num_output: {out2} bias_term: false weight_filler {{ value: 0.25 }} }} }}
        layer {{ name: "loss1" type: "TestLoss" bottom: "ip1" top: "loss1" }}
        layer {{ name: "loss2" type: "TestLoss" bottom: "ip2" top: "loss2" }}"#
    )
}

#[test]
fn shared_params_use_the_owner_blob_and_accumulate_gradients() {
    let mut net = build(&shared_net(
        "param { name: \"w\" }",
        "param { name: \"w\" }",
        1,
    ))
    .unwrap();
    assert_eq!(net.params().len(), 2);
    assert_eq!(net.learnable_params().len(), 1);
    assert_eq!(net.param_owners(), &[None, Some(0)]);
    assert_eq!(net.learnable_param_ids(), &[0, 0]);
    assert_eq!(net.param_display_names(), &["w", "w"]);
    fill_tiny(&net);
    // Both layers use the owner's W = 0.5: ip = [3, 7.5] twice; loss = 3² + 7.5².
    assert!((net.forward().unwrap() - 65.25).abs() < 1e-4);
    assert_close(&data(&net, "ip2"), &[3.0, 7.5]);
    net.clear_param_diffs();
    net.backward().unwrap();
    let w = net.learnable_params()[0].clone();
    assert_close(w.borrow().diff(), &[66.0, 87.0, 108.0]);
    net.update();
    assert_close(
        net.layer_by_name("ip2").unwrap().blobs()[0].borrow().data(),
        &[-65.5, -86.5, -107.5],
    );
}

#[test]
fn strict_sharing_needs_equal_shapes_permissive_equal_counts() {
    let err = build(&shared_net(
        "param { name: \"w\" }",
        "param { name: \"w\" }",
        2,
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains(
            "Cannot share param 'w' owned by layer 'ip1' with layer 'ip2'; shape mismatch.  \
             Owner layer param shape is 1 3 (3); sharing layer expects shape 2 3 (6)"
        ),
        "{err}"
    );
    let permissive = "param { name: \"w\" share_mode: PERMISSIVE }";
    let err = build(&shared_net("param { name: \"w\" }", permissive, 2))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(
            "count mismatch.  Owner layer param shape is 1 3 (3); sharing layer shape is 2 3 (6)"
        ),
        "{err}"
    );
    // Same count, other shape: [1,3] shared as [3,1] through a 1-wide input.
    let text = format!(
        r#"{INPUT}
        layer {{ name: "ip1" type: "TestAffine" bottom: "data" top: "ip1" param {{ name: "w" }}
                inner_product_param {{ num_output: 1 bias_term: false weight_filler {{ value: 0.5 }} }} }}
        layer {{ name: "ip2" type: "TestAffine" bottom: "label" top: "ip2" {permissive}
                inner_product_param {{ num_output: 3 bias_term: false }} }}"#
    );
    let net = build(&text).unwrap();
    assert_eq!(net.learnable_params().len(), 1);
    let err = build(&shared_net(
        "param { name: \"w\" lr_mult: 1 }",
        "param { name: \"w\" lr_mult: 2 }",
        1,
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("Shared param 'w' has mismatched lr_mult."),
        "{err}"
    );
    let net = build(&shared_net(
        "param { name: \"w\" }",
        "param { name: \"w\" decay_mult: 3 }",
        1,
    ))
    .unwrap();
    assert_eq!(net.params_weight_decay(), &[3.0]);
}

#[test]
fn layers_that_reach_no_loss_skip_backward() {
    let text = format!(
        "{INPUT}{}\nlayer {{ name: \"side\" type: \"TestDouble\" bottom: \"ip\" top: \"side\" }}\n\
         layer {{ name: \"loss\" type: \"TestLoss\" bottom: \"ip\" top: \"loss\" }}",
        ip("ip", "data", "")
    );
    let net = build(&text).unwrap();
    let need: Vec<(&str, bool)> = net
        .layer_names()
        .iter()
        .map(|s| s.as_str())
        .zip(net.layer_need_backward().iter().copied())
        .collect();
    assert_eq!(
        need,
        [
            ("data", false),
            ("ip", true),
            ("ip_ip_0_split", true),
            ("side", false),
            ("loss", true)
        ]
    );
}

#[test]
fn lookup_by_name_and_ranges() {
    let mut net = build(&tiny("", "", "")).unwrap();
    assert_eq!(net.name(), "tiny");
    assert!(net.has_blob("ip") && !net.has_blob("nope"));
    assert!(net.blob_by_name("nope").is_none());
    assert!(net.layer_by_name("nope").is_none());
    assert_eq!(net.layer_by_name("ip").unwrap().type_name(), "TestAffine");
    assert_eq!(net.layer_index("loss"), Some(2));
    assert_eq!(net.input_blobs().len(), 2);
    assert_eq!(net.input_blob_indices(), &[0, 1]);
    assert_eq!(net.output_blobs()[0].borrow().count(), 1);
    assert_eq!(net.bottom_ids(2), &[2, 1]);
    assert_eq!(net.memory_used_bytes(), 44);
    // Layers inherit the net's phase (TEST unless the state says otherwise).
    assert_eq!(
        net.layer_params()[1].phase(),
        crema_proto::caffe::Phase::TEST
    );
    fill_tiny(&net);
    assert_eq!(net.forward_to(1).unwrap(), 0.0);
    assert!((net.forward_from(2).unwrap() - 25.625).abs() < 1e-4);
    assert!(net.forward_from_to(1, 3).is_err());
    assert!(net.backward_from_to(5, 0).is_err());
    // A larger batch flows through after a reshape.
    net.blob_by_name("data")
        .unwrap()
        .borrow_mut()
        .reshape(&[3, 3]);
    net.blob_by_name("label")
        .unwrap()
        .borrow_mut()
        .reshape(&[3, 1]);
    net.reshape().unwrap();
    assert_eq!(net.blob_by_name("ip").unwrap().borrow().shape(), &[3, 1]);
}

#[test]
fn structural_errors_use_caffes_messages() {
    let err = |t: &str| build(t).err().expect("net must be refused").to_string();
    let e = err(&format!("{INPUT}{}", ip("ip", "nope", "")));
    assert!(
        e.contains("Unknown bottom blob 'nope' (layer 'ip', bottom index 0)"),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}{}{}",
        ip("ip", "data", ""),
        ip("ip", "label", "")
    ));
    assert!(
        e.contains("Top blob 'ip' produced by multiple sources."),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}layer {{ name: \"ip\" type: \"TestAffine\" bottom: \"data\" bottom: \"label\" top: \"ip\" }}"
    ));
    assert!(
        e.contains("TestAffine Layer takes 1 bottom blob(s) as input."),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}layer {{ name: \"in2\" type: \"Input\" bottom: \"data\" top: \"x\" }}"
    ));
    assert!(
        e.contains("Input Layer takes 0 bottom blob(s) as input."),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}layer {{ name: \"l\" type: \"TestLoss\" bottom: \"data\" top: \"a\" top: \"b\" }}"
    ));
    assert!(
        e.contains("TestLoss Layer produces 1 top blob(s) as output."),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}layer {{ name: \"bad\" type: \"Nope\" bottom: \"data\" top: \"x\" }}"
    ));
    assert!(
        e.contains("unknown layer type \"Nope\"") && e.contains("Input") && e.contains("Split"),
        "{e}"
    );
    let e = err(&format!(
        "{INPUT}{}",
        ip("ip", "data", "param { } param { } param { }")
    ));
    assert!(e.contains("Too many params specified for layer ip"), "{e}");
    let e = err(&tiny("loss_weight: 1 loss_weight: 2", "", ""));
    assert!(
        e.contains("loss_weight must be unspecified or specified once per top blob."),
        "{e}"
    );
    let e = err(r#"layer { name: "s" type: "Split" top: "x" }"#);
    assert!(
        e.contains("Split Layer takes 1 bottom blob(s) as input."),
        "{e}"
    );
}
