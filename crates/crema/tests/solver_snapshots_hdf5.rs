//! `snapshot_format: HDF5`: Caffe's `.caffemodel.h5` / `.solverstate.h5`
//! names and layout, 10 + resume-from-.h5 10 == 20 bit for bit, and a
//! Caffe-written HDF5 solver state restoring iter, history and weights.
#![cfg(feature = "hdf5")]
mod solver_support;

use std::path::Path;

use crema::hdf5::H5Reader;
use crema::proto::caffe::SolverParameter;
use crema::Solver;
use solver_support::scratch_dir;

/// Random data, random initial weights and a dropout mask: every source of
/// randomness a resumed run must reproduce (as in solver_snapshots.rs).
const RANDOM_NET: &str = r#"name: "noisy"
  layer { name: "data" type: "DummyData" top: "data" top: "target"
          dummy_data_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 dim: 2 dim: 1 dim: 1 }
                             data_filler { type: "gaussian" std: 1 } } }
  layer { name: "ip" type: "Convolution" bottom: "data" top: "pred"
          convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 0.3 } } }
  layer { name: "drop" type: "Dropout" bottom: "pred" top: "pred" dropout_param { dropout_ratio: 0.3 } }
  layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }"#;

fn solver_param(rule: &str, max_iter: i32, prefix: &Path, extra: &str) -> SolverParameter {
    let text = format!(
        "net_param {{ {RANDOM_NET} }} {rule} max_iter: {max_iter} random_seed: 1701 \
         display: 3 snapshot_format: HDF5 snapshot_prefix: \"{}\" {extra}",
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

fn resume_from_h5_is_bit_exact(rule: &str, name: &str) {
    let dir = scratch_dir(&format!("h5-{name}"));
    let no_snap = "snapshot_after_train: false";
    let mut full = Solver::new(&solver_param(rule, 20, &dir.join("full"), no_snap)).unwrap();
    full.solve(None).unwrap();

    let mut first = Solver::new(&solver_param(rule, 10, &dir.join("half"), "")).unwrap();
    first.solve(None).unwrap();
    let state = dir.join("half_iter_10.solverstate.h5");
    assert!(state.is_file() && dir.join("half_iter_10.caffemodel.h5").is_file());

    let mut resumed = Solver::new(&solver_param(rule, 20, &dir.join("resumed"), no_snap)).unwrap();
    resumed.solve(Some(&state)).unwrap();
    assert_eq!(resumed.iter(), 20);
    assert_eq!(resumed.current_step(), full.current_step(), "{rule}");
    let (fw, fh) = weights_and_history(&full);
    let (rw, rh) = weights_and_history(&resumed);
    assert_eq!(fw, rw, "{rule}: weights differ after resuming from HDF5");
    assert_eq!(fh, rh, "{rule}: history differs after resuming from HDF5");
    assert_ne!(weights_and_history(&first).0, fw, "the second half trained");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ten_plus_resumed_from_h5_ten_equals_twenty_for_sgd_with_multistep() {
    resume_from_h5_is_bit_exact(
        "type: \"SGD\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 lr_policy: \"multistep\" gamma: 0.5 stepvalue: 4 stepvalue: 12",
        "sgd",
    );
}

#[test]
fn ten_plus_resumed_from_h5_ten_equals_twenty_for_adam() {
    resume_from_h5_is_bit_exact(
        "type: \"Adam\" base_lr: 0.01 momentum: 0.9 momentum2: 0.999 lr_policy: \"fixed\" iter_size: 2",
        "adam",
    );
}

#[test]
fn hdf5_snapshots_have_caffes_names_and_layout() {
    let dir = scratch_dir("h5-layout");
    let prefix = dir.join("net");
    let rule = "type: \"AdaDelta\" base_lr: 1 momentum: 0.9 lr_policy: \"fixed\"";
    let mut s = Solver::new(&solver_param(
        rule,
        6,
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
            "net_iter_4.caffemodel.h5",
            "net_iter_4.solverstate.h5",
            "net_iter_6.caffemodel.h5",
            "net_iter_6.solverstate.h5"
        ]
    );

    let state = H5Reader::open(dir.join("net_iter_6.solverstate.h5")).unwrap();
    assert_eq!(state.read_i32("iter").unwrap(), 6);
    assert_eq!(state.read_i32("current_step").unwrap(), 0);
    assert_eq!(
        state.read_string("learned_net").unwrap(),
        format!("{}_iter_6.caffemodel.h5", prefix.display())
    );
    // AdaDelta keeps two history sets; Caffe names them 0..3 in order.
    assert_eq!(state.member_names("history").unwrap(), ["0", "1", "2", "3"]);
    for (i, h) in s.history().iter().enumerate() {
        let (shape, data) = state.read_f32(&format!("history/{i}")).unwrap();
        assert_eq!(
            (shape.as_slice(), data.as_slice()),
            (h.shape(), h.data()),
            "history {i}"
        );
    }

    let model = H5Reader::open(dir.join("net_iter_6.caffemodel.h5")).unwrap();
    assert_eq!(model.member_names("").unwrap(), ["data", "diff"]);
    // One group per layer, parameters or not.
    assert_eq!(
        model.member_names("data").unwrap(),
        ["data", "drop", "ip", "loss"]
    );
    assert_eq!(model.member_names("data/ip").unwrap(), ["0", "1"]);
    assert!(model.member_names("data/drop").unwrap().is_empty());
    let weights = s.net().learnable_params()[0].borrow();
    let (shape, data) = model.read_f32("data/ip/0").unwrap();
    assert_eq!(
        (shape.as_slice(), data.as_slice()),
        (weights.shape(), weights.data())
    );
    let (_, diff) = model.read_f32("diff/ip/0").unwrap();
    assert_eq!(
        diff.as_slice(),
        weights.diff(),
        "snapshot_diff writes diffs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn caffe_written_hdf5_solverstate_restores_iter_history_and_weights() {
    let Some(data) = crema::proto::testdata::shared_data() else {
        eprintln!("skipped: shared data not found");
        return;
    };
    // cifar10_quick_solver_lr1 (fixed lr 1e-4, momentum 0.9, weight_decay
    // 0.004, snapshot_format: HDF5) wrote these at iteration 5000. Its
    // learned_net points into the trainer's checkout, so the file beside the
    // state is used.
    let dir = data.join("models/cifar10_quick_bxuan");
    let text = format!(
        "net: \"{}\" base_lr: 0.0001 momentum: 0.9 weight_decay: 0.004 lr_policy: \"fixed\" \
         max_iter: 5001 snapshot_after_train: false",
        dir.join("cifar10_quick.prototxt").display()
    );
    let param: SolverParameter = crema::proto::text::parse(&text, "t").unwrap();
    let mut s = Solver::new(&param).unwrap();
    let state_path = dir.join("cifar10_quick_iter_5000.solverstate.h5");
    s.restore(&state_path).unwrap();
    assert_eq!((s.iter(), s.current_step()), (5000, 0));

    let state = H5Reader::open(&state_path).unwrap();
    assert_eq!(
        state.read_string("learned_net").unwrap(),
        "examples/cifar10/cifar10_quick_iter_5000.caffemodel.h5"
    );
    assert_eq!(s.history().len(), 10, "five layers, weights and bias");
    for (i, h) in s.history().iter().enumerate() {
        let (shape, values) = state.read_f32(&format!("history/{i}")).unwrap();
        assert_eq!(
            (h.shape(), h.data()),
            (shape.as_slice(), values.as_slice()),
            "history {i}"
        );
    }
    let model = H5Reader::open(dir.join("cifar10_quick_iter_5000.caffemodel.h5")).unwrap();
    let (_, conv1) = model.read_f32("data/conv1/0").unwrap();
    let w0: Vec<f32> = s.net().learnable_params()[0].borrow().data().to_vec();
    assert_eq!(w0, conv1);

    // One more step: this deploy net has no loss, so the gradient is weight
    // decay alone and the step is Caffe's momentum update from the stored
    // history (conv1's weights have lr_mult 1).
    s.step(1).unwrap();
    let (_, h0) = state.read_f32("history/0").unwrap();
    let got = s.net().learnable_params()[0].borrow().data().to_vec();
    for (i, &w) in w0.iter().enumerate().step_by(23) {
        let want = w - (0.0001 * (0.004 * w) + 0.9 * h0[i]);
        assert!(
            (got[i] - want).abs() <= 1e-7 + 1e-5 * want.abs(),
            "conv1 w[{i}]: {} vs {want}",
            got[i]
        );
    }
}

#[test]
fn restoring_an_hdf5_state_checks_history_count_and_shapes_first() {
    let dir = scratch_dir("h5-mismatch");
    let sgd = "type: \"SGD\" base_lr: 0.01 lr_policy: \"fixed\"";
    let mut s = Solver::new(&solver_param(sgd, 2, &dir.join("sgd"), "")).unwrap();
    s.solve(None).unwrap();
    let adam = "type: \"Adam\" base_lr: 0.01 lr_policy: \"fixed\"";
    let mut a = Solver::new(&solver_param(adam, 2, &dir.join("adam"), "")).unwrap();
    let e = a
        .restore(dir.join("sgd_iter_2.solverstate.h5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Incorrect length of history blobs: the file has 2, the Adam solver on this net needs 4"), "{e}");
    assert_eq!(a.iter(), 0, "nothing restored");
    let e = a
        .restore(dir.join("missing.solverstate.h5"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Couldn't open HDF5 file") && e.contains("missing.solverstate.h5"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
