//! The solver loop's files and resumption: snapshot names and cadence,
//! 10 + resume 10 == 20 bit for bit (weights, history, random draws), stop
//! and snapshot requests, a diverging loss, and a Caffe-written
//! `.solverstate` restoring iter and history.
mod solver_support;

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use crema::proto::caffe::SolverParameter;
use crema::solvers::SolverAction;
use crema::Solver;
use solver_support::{fixture, linreg_solver, scratch_dir};

/// Random data and targets on every forward, random initial weights and a
/// dropout mask: every source of randomness a resumed run must reproduce.
const RANDOM_NET: &str = r#"name: "noisy"
  layer { name: "data" type: "DummyData" top: "data" top: "target"
          dummy_data_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 dim: 2 dim: 1 dim: 1 }
                             data_filler { type: "gaussian" std: 1 } } }
  layer { name: "ip" type: "Convolution" bottom: "data" top: "pred"
          convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 0.3 } } }
  layer { name: "drop" type: "Dropout" bottom: "pred" top: "pred" dropout_param { dropout_ratio: 0.3 } }
  layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }"#;

fn solver_param(rule: &str, max_iter: i32, prefix: &Path, extra: &str) -> SolverParameter {
    let testing = if extra.contains("test_interval") {
        ""
    } else {
        "test_interval: 5"
    };
    let text = format!(
        "net_param {{ {RANDOM_NET} }} {rule} max_iter: {max_iter} random_seed: 1701 \
         test_iter: 2 {testing} display: 3 average_loss: 4 snapshot_prefix: \"{}\" {extra}",
        prefix.display()
    );
    crema::proto::text::parse(&text, "test solver").unwrap()
}

fn weights_and_history(s: &Solver) -> (Vec<u32>, Vec<u32>) {
    let w = s
        .net()
        .learnable_params()
        .iter()
        .flat_map(|p| p.borrow().data().to_vec())
        .map(f32::to_bits)
        .collect();
    let h = s
        .history()
        .iter()
        .flat_map(|b| b.data().to_vec())
        .map(f32::to_bits)
        .collect();
    (w, h)
}

fn resume_is_bit_exact(rule: &str, name: &str) {
    let dir = scratch_dir(name);
    let mut full = Solver::new(&solver_param(
        rule,
        20,
        &dir.join("full"),
        "snapshot_after_train: false",
    ))
    .unwrap();
    full.solve(None).unwrap();

    let mut first = Solver::new(&solver_param(rule, 10, &dir.join("half"), "")).unwrap();
    first.solve(None).unwrap();
    let state = dir.join("half_iter_10.solverstate");
    assert!(state.is_file() && dir.join("half_iter_10.caffemodel").is_file());

    let mut resumed = Solver::new(&solver_param(
        rule,
        20,
        &dir.join("resumed"),
        "snapshot_after_train: false",
    ))
    .unwrap();
    resumed.solve(Some(&state)).unwrap();
    assert_eq!(resumed.iter(), 20);
    assert_eq!(resumed.current_step(), full.current_step(), "{rule}");
    let (fw, fh) = weights_and_history(&full);
    let (rw, rh) = weights_and_history(&resumed);
    assert_eq!(fw, rw, "{rule}: weights differ after resuming");
    assert_eq!(fh, rh, "{rule}: history differs after resuming");
    // The run really trained: the weights moved from the first half's.
    assert_ne!(weights_and_history(&first).0, fw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ten_plus_resumed_ten_equals_twenty_for_sgd_with_multistep() {
    resume_is_bit_exact(
        "type: \"SGD\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 lr_policy: \"multistep\" gamma: 0.5 stepvalue: 4 stepvalue: 12",
        "sgd",
    );
}

#[test]
fn ten_plus_resumed_ten_equals_twenty_for_adam_with_iter_size() {
    resume_is_bit_exact(
        "type: \"Adam\" base_lr: 0.01 momentum: 0.9 momentum2: 0.999 lr_policy: \"fixed\" iter_size: 2",
        "adam",
    );
}

#[test]
fn snapshots_follow_cadence_and_names_and_hold_the_state() {
    let dir = scratch_dir("cadence");
    let prefix = dir.join("net");
    let rule = "type: \"AdaDelta\" base_lr: 1 momentum: 0.9 lr_policy: \"fixed\"";
    let mut s = Solver::new(&solver_param(
        rule,
        10,
        &prefix,
        "snapshot: 4 snapshot_diff: true",
    ))
    .unwrap();
    s.solve(None).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "net_iter_10.caffemodel",
            "net_iter_10.solverstate",
            "net_iter_4.caffemodel",
            "net_iter_4.solverstate",
            "net_iter_8.caffemodel",
            "net_iter_8.solverstate"
        ]
    );
    let state = crema::proto::files::read_solver_state(dir.join("net_iter_8.solverstate")).unwrap();
    assert_eq!(state.iter(), 8);
    assert_eq!(
        state.learned_net(),
        format!("{}_iter_8.caffemodel", prefix.display())
    );
    assert_eq!(
        state.history.len(),
        4,
        "AdaDelta stores two sets for weights and bias"
    );
    let model = crema::proto::files::read_net_binary(dir.join("net_iter_10.caffemodel")).unwrap();
    let ip = model.layer.iter().find(|l| l.name() == "ip").unwrap();
    assert_eq!(ip.blobs.len(), 2);
    assert_eq!(
        ip.blobs[0].data,
        s.net().learnable_params()[0].borrow().data()
    );
    assert!(!ip.blobs[0].diff.is_empty(), "snapshot_diff writes diffs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stop_and_snapshot_requests_act_between_iterations() {
    let dir = scratch_dir("actions");
    let prefix = dir.join("net");
    let rule = "type: \"SGD\" base_lr: 0.01 lr_policy: \"fixed\"";
    let mut s = Solver::new(&solver_param(
        rule,
        100,
        &prefix,
        "test_interval: 1000 test_initialization: false",
    ))
    .unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    s.set_action_function(Box::new(move || {
        c.set(c.get() + 1);
        match c.get() {
            2 => SolverAction::Snapshot,
            3 => SolverAction::Stop,
            _ => SolverAction::None,
        }
    }));
    s.solve(None).unwrap();
    assert!(s.requested_early_exit());
    assert_eq!(s.iter(), 3);
    // A snapshot on request at 2; on stop, snapshot_after_train writes 3.
    for it in [2, 3] {
        assert!(
            dir.join(format!("net_iter_{it}.solverstate")).is_file(),
            "iter {it}"
        );
    }
    assert!(!dir.join("net_iter_1.solverstate").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diverging_loss_stops_with_the_iteration_named() {
    let f = fixture();
    let mut s = linreg_solver(
        "type: \"SGD\" base_lr: 1e18 lr_policy: \"fixed\" max_iter: 50",
        (1.0, 1.0),
        &f,
    );
    let e = s.solve(None).unwrap_err().to_string();
    assert!(
        e.starts_with("Iteration ") && e.contains("training loss is"),
        "{e}"
    );
    assert!(e.contains(", first produced by layer "), "{e}");
    // No model was written for the diverged run.
    assert!(!std::path::Path::new(&format!("{}_iter_50.caffemodel", s.param().snapshot_prefix())).exists());
}

#[test]
fn restore_rejects_mismatched_history_and_hdf5() {
    let dir = scratch_dir("mismatch");
    let rule = "type: \"SGD\" base_lr: 0.01 lr_policy: \"fixed\"";
    let mut s = Solver::new(&solver_param(rule, 2, &dir.join("sgd"), "")).unwrap();
    s.solve(None).unwrap();
    let adam = "type: \"Adam\" base_lr: 0.01 lr_policy: \"fixed\"";
    let mut a = Solver::new(&solver_param(adam, 2, &dir.join("adam"), "")).unwrap();
    let e = a
        .restore(dir.join("sgd_iter_2.solverstate"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Incorrect length of history blobs: the file has 2, the Adam solver on this net needs 4"), "{e}");
    let e = a
        .restore(dir.join("x.solverstate.h5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HDF5"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn caffe_written_solverstates_restore_iter_history_and_weights() {
    let Some(data) = crema::proto::testdata::shared_data() else {
        eprintln!("skipped: shared data not found");
        return;
    };
    if !crema::layer_type_list().contains(&"InnerProduct") {
        eprintln!("skipped: LeNet needs the InnerProduct layer, not registered yet");
        return;
    }
    // A 2018 Caffe snapshot (current format) and a 2014 one (V1 net, legacy
    // 4-D history shapes); their learned_net paths point into the trainer's
    // checkout, so the caffemodel beside the state is used.
    for (folder, iter) in [("lenet_summerlife", 5000), ("lenet_v1_everpeace", 10000)] {
        let dir = data.join("models").join(folder);
        let text = format!(
            "net: \"{}\" base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: \"inv\" gamma: 0.0001 \
             power: 0.75 max_iter: {} snapshot_after_train: false",
            dir.join("lenet.prototxt").display(),
            iter + 1
        );
        let param: SolverParameter = crema::proto::text::parse(&text, "t").unwrap();
        let mut s = Solver::new(&param).unwrap();
        let state_path = dir.join(format!("lenet_iter_{iter}.solverstate"));
        s.restore(&state_path).unwrap();
        assert_eq!(s.iter(), iter, "{folder}");
        let state = crema::proto::files::read_solver_state(&state_path).unwrap();
        assert_eq!(s.history().len(), 8);
        for (h, stored) in s.history().iter().zip(&state.history) {
            assert_eq!(h.data(), &stored.data[..], "{folder}");
        }
        let model =
            crema::proto::files::read_net_binary(dir.join(format!("lenet_iter_{iter}.caffemodel")))
                .unwrap();
        let conv1 = model.layer.iter().find(|l| l.name() == "conv1").unwrap();
        let w0: Vec<f32> = s.net().learnable_params()[0].borrow().data().to_vec();
        assert_eq!(w0, conv1.blobs[0].data, "{folder}");
        // One more step: this deploy net has no loss, so the gradient is
        // weight decay alone and the step is Caffe's momentum update from
        // its stored history at the restored iteration's inv rate.
        s.step(1).unwrap();
        let rate = (0.01f64 * (1.0f64 + 0.0001 * f64::from(iter)).powf(-0.75)) as f32;
        let h0 = &state.history[0].data;
        let got = s.net().learnable_params()[0].borrow().data().to_vec();
        for (i, &w) in w0.iter().enumerate().step_by(37) {
            let want = w - (rate * (0.0005 * w) + 0.9 * h0[i]);
            assert!(
                (got[i] - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{folder} conv1 w[{i}]: {} vs {want}",
                got[i]
            );
        }
    }
}

/// Records what the loop reports to a hook.
#[derive(Default)]
struct Seen {
    starts: Vec<i32>,
    gradients: usize,
    displays: Vec<(i32, f32, f32, usize)>,
    tests: Vec<(i32, usize, Vec<String>)>,
    snapshots: Vec<(i32, usize)>,
}

struct Recorder(Rc<std::cell::RefCell<Seen>>);

impl crema::solvers::SolverHook for Recorder {
    fn on_start(&mut self, iter: i32) -> crema::Result<()> {
        self.0.borrow_mut().starts.push(iter);
        Ok(())
    }
    fn on_gradients_ready(&mut self, net: &mut crema::Net) -> crema::Result<()> {
        // The gradients are there to exchange: some diff is non-zero.
        let any = net
            .learnable_params()
            .iter()
            .any(|p| p.borrow().diff().iter().any(|&d| d != 0.0));
        assert!(any, "on_gradients_ready came before backward");
        self.0.borrow_mut().gradients += 1;
        Ok(())
    }
    fn on_display(&mut self, e: &crema::solvers::DisplayEvent) {
        self.0
            .borrow_mut()
            .displays
            .push((e.iter, e.smoothed_loss, e.lr, e.outputs.len()));
    }
    fn on_test(&mut self, e: &crema::solvers::TestEvent) {
        let names = e.outputs.iter().map(|(n, _)| n.clone()).collect();
        self.0.borrow_mut().tests.push((e.iter, e.net_id, names));
    }
    fn on_snapshot(&mut self, iter: i32, files: &[std::path::PathBuf]) {
        assert!(files.iter().all(|f| f.is_file()));
        self.0.borrow_mut().snapshots.push((iter, files.len()));
    }
}

#[test]
fn hooks_see_every_step_display_test_and_snapshot() {
    let dir = scratch_dir("hooks");
    let param = solver_param(
        "base_lr: 0.01 lr_policy: \"fixed\"",
        7,
        &dir.join("h"),
        "snapshot: 4",
    );
    let mut s = Solver::new(&param).unwrap();
    let seen = Rc::new(std::cell::RefCell::new(Seen::default()));
    s.add_hook(Box::new(Recorder(seen.clone())));
    s.solve(None).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.starts, (0..7).collect::<Vec<_>>());
    assert_eq!(seen.gradients, 7);
    // display: 3 -> iterations 0, 3, 6; one output ("loss") each; lr fixed.
    let iters: Vec<i32> = seen.displays.iter().map(|d| d.0).collect();
    assert_eq!(iters, vec![0, 3, 6]);
    assert!(seen
        .displays
        .iter()
        .all(|d| d.2 == 0.01 && d.3 == 1 && d.1 > 0.0));
    // test_interval: 5 -> test at 0 (test_initialization) and 5.
    let tests: Vec<(i32, usize)> = seen.tests.iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(tests, vec![(0, 0), (5, 0)]);
    assert_eq!(seen.tests[0].2, vec!["loss".to_string()]);
    // snapshot: 4 -> iteration 4, then snapshot_after_train at 7.
    assert_eq!(seen.snapshots, vec![(4, 2), (7, 2)]);
}
