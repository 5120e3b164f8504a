//! `caffe train` and `caffe test` through the binary: Caffe's log lines,
//! snapshots, resuming bit for bit, flag errors, and SIGINT/SIGHUP on a
//! real training process.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NET: &str = r#"name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "target"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 dim: 2 dim: 1 dim: 1 }
                           data_filler { type: "gaussian" std: 1 } } }
layer { name: "ip" type: "Convolution" bottom: "data" top: "pred"
        convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }
"#;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crema-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("net.prototxt"), NET).unwrap();
    d
}

fn write_solver(d: &Path, file: &str, max_iter: u32, prefix: &str, extra: &str) {
    let display = if extra.contains("display") {
        ""
    } else {
        "display: 5\n"
    };
    let text = format!(
        "net: \"net.prototxt\"\ntest_iter: 2\ntest_interval: 10\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: \"fixed\"\n\
         {display}max_iter: {max_iter}\nsnapshot_prefix: \"{prefix}\"\nrandom_seed: 7\nsolver_mode: CPU\n{extra}"
    );
    std::fs::write(d.join(file), text).unwrap();
}

fn caffe(d: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_caffe"))
        .args(args)
        .current_dir(d)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The message part of every glog line.
fn messages(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("] ").map(|(_, m)| m.to_string()))
        .collect()
}

#[test]
fn train_logs_like_caffe_and_snapshots_at_the_end() {
    let d = dir("train");
    write_solver(&d, "solver.prototxt", 20, "tiny", "");
    let (ok, log) = caffe(&d, &["train", "--solver=solver.prototxt"]);
    assert!(ok, "{log}");
    let m = messages(&log);
    let has = |s: &str| m.iter().any(|l| l == s);
    let starts = |s: &str| m.iter().any(|l| l.starts_with(s));
    for line in [
        "Use CPU.",
        "Creating training net from net file: net.prototxt",
        "Creating test net (#0) specified by net file: net.prototxt",
        "Solver scaffolding done.",
        "Starting Optimization",
        "Solving tiny",
        "Learning Rate Policy: fixed",
        "Iteration 0, Testing net (#0)",
        "Iteration 0, lr = 0.01",
        "Iteration 10, Testing net (#0)",
        "Snapshotting to binary proto file tiny_iter_20.caffemodel",
        "Snapshotting solver state to binary proto file tiny_iter_20.solverstate",
        "Iteration 20, Testing net (#0)",
        "Optimization Done.",
    ] {
        assert!(has(line), "missing {line:?} in\n{log}");
    }
    assert!(starts("Initializing solver from parameters: "), "{log}");
    assert!(
        starts("Iteration 5 (")
            && m.iter()
                .any(|l| l.contains(" iter/s, ") && l.contains("s/5 iters), loss = "))
    );
    assert!(
        starts("Iteration 20, loss = "),
        "final display forward: {log}"
    );
    // The train output line carries its loss weight as Caffe prints it.
    let out = m
        .iter()
        .find(|l| l.starts_with("    Train net output #0: loss = "))
        .expect("train output");
    let v = out
        .trim_start_matches("    Train net output #0: loss = ")
        .split(' ')
        .next()
        .unwrap();
    assert!(out.ends_with(&format!(" (* 1 = {v} loss)")), "{out}");
    assert!(starts("    Test net output #0: loss = "), "{log}");
    assert_eq!(
        m.iter().filter(|l| *l == "Optimization Done.").count(),
        2,
        "solver and tool both say it"
    );
    assert!(
        d.join("tiny_iter_20.caffemodel").is_file() && d.join("tiny_iter_20.solverstate").is_file()
    );
    assert!(
        !log.lines().any(|l| l.starts_with('W')),
        "no warning for solver_mode: CPU\n{log}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resumed_training_writes_the_same_model_as_an_uninterrupted_run() {
    let d = dir("resume");
    write_solver(&d, "full.prototxt", 20, "full", "");
    write_solver(&d, "half.prototxt", 10, "half", "");
    write_solver(&d, "rest.prototxt", 20, "rest", "");
    assert!(caffe(&d, &["train", "--solver=full.prototxt"]).0);
    assert!(caffe(&d, &["train", "-solver", "half.prototxt"]).0);
    let (ok, log) = caffe(
        &d,
        &[
            "train",
            "--solver=rest.prototxt",
            "--snapshot=half_iter_10.solverstate",
        ],
    );
    assert!(ok, "{log}");
    assert!(messages(&log)
        .iter()
        .any(|l| l == "Resuming from half_iter_10.solverstate"));
    let a = std::fs::read(d.join("full_iter_20.caffemodel")).unwrap();
    let b = std::fs::read(d.join("rest_iter_20.caffemodel")).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn train_flag_errors_are_caffes() {
    let d = dir("flags");
    write_solver(&d, "solver.prototxt", 2, "x", "");
    let (ok, log) = caffe(&d, &["train"]);
    assert!(
        !ok && log.contains("Need a solver definition to train."),
        "{log}"
    );
    let (ok, log) = caffe(
        &d,
        &[
            "train",
            "--solver=solver.prototxt",
            "--weights=a.caffemodel",
            "--snapshot=b.solverstate",
        ],
    );
    assert!(
        !ok && log
            .contains("Give a snapshot to resume training or weights to finetune but not both."),
        "{log}"
    );
    let (ok, log) = caffe(
        &d,
        &["train", "--solver=solver.prototxt", "--sigint_effect=halt"],
    );
    assert!(
        !ok && log.contains("Invalid signal effect \"halt\""),
        "{log}"
    );
    let (ok, log) = caffe(
        &d,
        &[
            "train",
            "--solver=solver.prototxt",
            "--weights=missing.caffemodel",
        ],
    );
    assert!(!ok && log.contains("missing.caffemodel"), "{log}");
    let (ok, log) = caffe(&d, &["train", "--solver=solver.prototxt", "--gpu=0"]);
    assert!(ok, "{log}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with('W')).count(),
        1,
        "one GPU warning\n{log}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn finetuning_copies_weights_by_layer_name() {
    let d = dir("finetune");
    write_solver(
        &d,
        "solver.prototxt",
        0,
        "ft",
        "test_initialization: false\n",
    );
    // Weights for "ip" written by hand: the solver with max_iter 0 must save exactly them.
    let mut p = crema::proto::caffe::NetParameter::new();
    let mut layer = crema::proto::caffe::LayerParameter::new();
    layer.set_name("ip".into());
    let mut w = crema::Blob::new(&[2, 3, 2, 2]);
    w.data_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = i as f32 * 0.01);
    let mut b = crema::Blob::new(&[2]);
    b.data_mut().copy_from_slice(&[0.5, -0.5]);
    layer.blobs = vec![w.to_proto(false), b.to_proto(false)];
    p.layer.push(layer);
    crema::proto::files::write_net_binary(d.join("init.caffemodel"), &p).unwrap();
    let (ok, log) = caffe(
        &d,
        &[
            "train",
            "--solver=solver.prototxt",
            "--weights=init.caffemodel",
        ],
    );
    assert!(ok, "{log}");
    assert!(
        messages(&log)
            .iter()
            .any(|l| l == "Finetuning from init.caffemodel"),
        "{log}"
    );
    let saved = crema::proto::files::read_net_binary(d.join("ft_iter_0.caffemodel")).unwrap();
    let ip = saved.layer.iter().find(|l| l.name() == "ip").unwrap();
    assert_eq!(ip.blobs[0].data, w.data());
    assert_eq!(ip.blobs[1].data, vec![0.5, -0.5]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn test_scores_batches_and_means_like_caffe() {
    let d = dir("score");
    // Constant data 1 and target 3 through a 1x1 convolution w=0.5, b=0.25:
    // every prediction is 0.75, loss = (0.75-3)² / 2 = 2.53125 on every batch.
    let net = r#"name: "const"
      layer { name: "data" type: "DummyData" top: "data" top: "target"
              dummy_data_param { shape { dim: 2 dim: 1 dim: 1 dim: 1 }
                                 data_filler { type: "constant" value: 1 } data_filler { type: "constant" value: 3 } } }
      layer { name: "ip" type: "Convolution" bottom: "data" top: "pred" convolution_param { num_output: 1 kernel_size: 1 } }
      layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }"#;
    std::fs::write(d.join("const.prototxt"), net).unwrap();
    let mut p = crema::proto::caffe::NetParameter::new();
    let mut layer = crema::proto::caffe::LayerParameter::new();
    layer.set_name("ip".into());
    let mut w = crema::Blob::new(&[1, 1, 1, 1]);
    w.data_mut()[0] = 0.5;
    let mut b = crema::Blob::new(&[1]);
    b.data_mut()[0] = 0.25;
    layer.blobs = vec![w.to_proto(false), b.to_proto(false)];
    p.layer.push(layer);
    crema::proto::files::write_net_binary(d.join("w.caffemodel"), &p).unwrap();
    let (ok, log) = caffe(
        &d,
        &[
            "test",
            "--model=const.prototxt",
            "--weights=w.caffemodel",
            "--iterations=3",
        ],
    );
    assert!(ok, "{log}");
    let m = messages(&log);
    for line in [
        "Running for 3 iterations.",
        "Batch 0, loss = 2.53125",
        "Batch 2, loss = 2.53125",
        "Loss: 2.53125",
        "loss = 2.53125 (* 1 = 2.53125 loss)",
    ] {
        assert!(m.iter().any(|l| l == line), "missing {line:?} in\n{log}");
    }
    let (ok, log) = caffe(&d, &["test", "--model=const.prototxt"]);
    assert!(!ok && log.contains("Need model weights to score."), "{log}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A training process whose stderr is collected as it runs.
struct Training {
    child: std::process::Child,
    log: Arc<Mutex<String>>,
}

impl Training {
    fn start(d: &Path, args: &[&str]) -> Training {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caffe"))
            .args(args)
            .current_dir(d)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Training { child, log }
    }

    fn wait_for(&mut self, needle: &str) {
        let t = Instant::now();
        while !self.log.lock().unwrap().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "exited ({status}) before {needle:?}:\n{}",
                    self.log.lock().unwrap()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no {needle:?} in\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status.success(), log)
    }
}

/// The iteration of the last `<prefix>_iter_N.solverstate` the log names.
fn last_snapshot(log: &str) -> u32 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Snapshotting solver state to binary proto file"))
        .expect("a snapshot");
    let name = line.rsplit(' ').next().unwrap();
    name.trim_end_matches(".solverstate")
        .rsplit('_')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn sigint_stops_with_a_snapshot_that_resumes_and_sighup_snapshots() {
    let d = dir("signals");
    write_solver(&d, "long.prototxt", 100_000_000, "sig", "display: 100\n");
    let mut run = Training::start(&d, &["train", "--solver=long.prototxt"]);
    run.wait_for("Iteration 100 (");
    run.signal("-HUP");
    run.wait_for("Snapshotting solver state");
    run.wait_for("Iteration 300 (");
    run.signal("-INT");
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    assert!(log.contains("Optimization stopped early."), "{log}");
    let n = last_snapshot(&log);
    assert!(n >= 300, "stop snapshot at {n}");
    let state = format!("sig_iter_{n}.solverstate");
    assert!(d.join(&state).is_file());

    // The stop snapshot resumes: five more iterations to a final snapshot.
    write_solver(&d, "resume.prototxt", n + 5, "sig", "display: 100\n");
    let (ok, log) = caffe(
        &d,
        &[
            "train",
            "--solver=resume.prototxt",
            &format!("--snapshot={state}"),
        ],
    );
    assert!(ok, "{log}");
    let want = format!(
        "Snapshotting solver state to binary proto file sig_iter_{}.solverstate",
        n + 5
    );
    assert!(log.contains(&want), "{log}");
    let _ = std::fs::remove_dir_all(&d);
}
