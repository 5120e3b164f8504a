//! `caffe time` on examples/resnet50/deploy.prototxt (batch 1, one
//! iteration): the deploy net loads, runs forward through all 53
//! convolutions, calls every layer's backward (nearly free here: a deploy net
//! has no loss, so, as in Caffe, no layer needs gradients) and prints Caffe's
//! per-layer and summary lines.
use std::process::Command;

#[test]
fn caffe_time_runs_resnet50_deploy() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/resnet50/deploy.prototxt"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_caffe"))
        .args(["time", &format!("--model={model}"), "--iterations=1"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "caffe time failed:\n{log}");
    for want in [
        "Performing Forward",
        "*** Benchmark begins ***",
        "Testing for 1 iterations.",
        "res5c_branch2b\tforward:",
        "fc1000\tbackward:",
        "Average Forward-Backward:",
        "*** Benchmark ends ***",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
}
