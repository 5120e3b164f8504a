//! The three upgrade tools run as Caffe users run them: argument order, exit
//! status, log lines, and output files that read back as the library's upgrade.
use std::path::PathBuf;
use std::process::{Command, Output};

use crema_proto::caffe::{NetParameter, SolverParameter};
use crema_proto::testdata::shared_data;
use crema_proto::{files, text};

fn run(exe: &str, args: &[&str]) -> (i32, String) {
    let Output { status, stderr, .. } = Command::new(exe).args(args).output().expect("tool runs");
    (
        status.code().expect("exited normally"),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema-upgrade-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const NET_TEXT: &str = env!("CARGO_BIN_EXE_upgrade_net_proto_text");
const NET_BINARY: &str = env!("CARGO_BIN_EXE_upgrade_net_proto_binary");
const SOLVER_TEXT: &str = env!("CARGO_BIN_EXE_upgrade_solver_proto_text");

#[test]
fn wrong_argument_count_prints_usage_and_exits_1() {
    for (exe, name) in [
        (NET_TEXT, "upgrade_net_proto_text"),
        (NET_BINARY, "upgrade_net_proto_binary"),
        (SOLVER_TEXT, "upgrade_solver_proto_text"),
    ] {
        let (code, err) = run(exe, &["only_one"]);
        assert_eq!(code, 1);
        assert!(err.contains(&format!("Usage: {name}")), "{err}");
    }
}

#[test]
fn v1_prototxt_becomes_current_prototxt_that_parses_to_the_library_upgrade() {
    let Some(d) = shared_data() else {
        println!("skipped: shared/data not found");
        return;
    };
    let input = d.join("models/cifar10_quick_v1_everpeace/cifar10_quick_train_test.prototxt");
    let out = temp("cifar10_quick_upgraded.prototxt");
    let (code, err) = run(NET_TEXT, &[input.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "Attempting to upgrade input file specified using deprecated V1LayerParameter"
        ),
        "{err}"
    );
    assert!(
        err.contains("Successfully upgraded file specified using deprecated V1LayerParameter"),
        "{err}"
    );
    assert!(
        err.contains("Wrote upgraded NetParameter text proto to"),
        "{err}"
    );
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(printed.contains("layer {") && !printed.contains("layers {"));
    let back: NetParameter = text::parse(&printed, "out").unwrap();
    assert_eq!(back, files::read_net_text(&input).unwrap());

    // Run again on the output: nothing to do, and the file is written unchanged.
    let again = temp("cifar10_quick_again.prototxt");
    let (code, err) = run(NET_TEXT, &[out.to_str().unwrap(), again.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("File already in latest proto format"), "{err}");
    assert_eq!(std::fs::read(&again).unwrap(), printed.as_bytes());
}

#[test]
fn solver_passed_to_the_net_tool_fails_with_status_2_naming_the_kind() {
    let Some(d) = shared_data() else {
        println!("skipped: shared/data not found");
        return;
    };
    let input = d.join("models/lenet_v1_everpeace/lenet_solver.prototxt");
    let out = temp("never_written.prototxt");
    let (code, err) = run(NET_TEXT, &[input.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("Failed to parse input text file as NetParameter"),
        "{err}"
    );
    assert!(err.contains("expected a net (NetParameter)"), "{err}");
    assert!(!out.exists());
}

#[test]
fn v1_caffemodel_is_rewritten_with_current_layers_and_the_same_weights() {
    let Some(d) = shared_data() else {
        println!("skipped: shared/data not found");
        return;
    };
    let input = d.join("models/lenet_v1_everpeace/lenet_iter_10000.caffemodel");
    let out = temp("lenet_upgraded.caffemodel");
    let (code, err) = run(
        NET_BINARY,
        &[input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let got = files::read_net_binary_as_is(&out).unwrap();
    assert!(got.layers.is_empty() && !got.layer.is_empty());
    assert_eq!(got, files::read_net_binary(&input).unwrap());
    let conv1 = got.layer.iter().find(|l| l.name() == "conv1").unwrap();
    assert_eq!(conv1.type_(), "Convolution");
    assert_eq!(conv1.blobs[0].data.len(), 20 * 5 * 5);
}

#[test]
fn solver_type_enum_is_rewritten_as_the_type_string() {
    let input = temp("old_solver.prototxt");
    std::fs::write(
        &input,
        "net: \"train_val.prototxt\"\nbase_lr: 0.01\nsolver_type: NESTEROV\n",
    )
    .unwrap();
    let out = temp("new_solver.prototxt");
    let (code, err) = run(
        SOLVER_TEXT,
        &[input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "Successfully upgraded file specified using deprecated 'solver_type' field (enum)"
        ),
        "{err}"
    );
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        printed.contains("type: \"Nesterov\"") && !printed.contains("solver_type"),
        "{printed}"
    );
    let s: SolverParameter = text::parse(&printed, "out").unwrap();
    assert_eq!((s.net(), s.base_lr()), ("train_val.prototxt", 0.01));
    // The tool does not invent a snapshot_prefix; only the solver loader does.
    assert!(!s.has_snapshot_prefix());

    let both = temp("both_solver.prototxt");
    std::fs::write(&both, "solver_type: ADAM\ntype: \"Adam\"\n").unwrap();
    let (code, err) = run(
        SOLVER_TEXT,
        &[both.to_str().unwrap(), temp("x.prototxt").to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot both be specified"), "{err}");
}
