//! `caffe train`'s progress bar: drawn below the log on a terminal (a real
//! pseudo-terminal from util-linux `script`), never in a log file.
use std::path::PathBuf;
use std::process::Command;

const NET: &str = r#"name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "target"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 dim: 2 dim: 1 dim: 1 }
                           data_filler { type: "gaussian" std: 1 } } }
layer { name: "ip" type: "Convolution" bottom: "data" top: "pred"
        convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }
"#;

const SOLVER: &str = "net: \"net.prototxt\"\nbase_lr: 0.01\nlr_policy: \"fixed\"\ndisplay: 100\n\
                      max_iter: 1500\nsnapshot_prefix: \"t\"\nsnapshot_after_train: false\nrandom_seed: 3\n";

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("crema-progress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("net.prototxt"), NET).unwrap();
    std::fs::write(d.join("solver.prototxt"), SOLVER).unwrap();
    d
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let d = dir();
    let caffe = env!("CARGO_BIN_EXE_caffe");

    // Not a terminal: stderr is exactly the glog lines, no bar, no escapes.
    let out = Command::new(caffe)
        .args(["train", "--solver=solver.prototxt"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("] Optimization Done."), "{log}");
    assert!(!log.contains('\x1b') && !log.contains(" eta "), "{log}");
    // Iteration lines come out whole, one per line, as parse_log reads them.
    assert!(log
        .lines()
        .any(|l| l.starts_with('I') && l.ends_with("] Iteration 1400, lr = 0.01")));

    // A pseudo-terminal: the bar shows iteration, loss, rate and time left,
    // and the log lines still come through whole.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed (needed for a pseudo-terminal)");
        return;
    }
    let out = Command::new("script")
        .args(["-qec", &format!("{caffe} train --solver=solver.prototxt"), "/dev/null"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("iter ") && tty.contains("/1500"), "{tty}");
    assert!(tty.contains("loss ") && tty.contains("lr 0.01") && tty.contains(" eta "));
    assert!(tty.contains("] Iteration 1400, lr = 0.01"));
    assert!(tty.contains("] Optimization Done."));
}
