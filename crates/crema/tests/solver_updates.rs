//! Every solver type's updates on a least-squares model against float32
//! values computed independently (tests/fixtures/solver_updates.py): plain
//! and momentum SGD, L2 and L1 decay, per-parameter lr/decay multipliers,
//! iter_size accumulation, gradient clipping, the step and inv policies,
//! Nesterov, AdaGrad, RMSProp, AdaDelta and Adam, and the history each
//! keeps in Caffe's order.
mod solver_support;

use solver_support::{fixture, floats, linreg_solver};

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 2e-6 + 2e-5 * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

#[test]
fn every_solver_case_matches_the_numpy_reference() {
    let f = fixture();
    assert!(f.cases.len() >= 13, "fixture has {} cases", f.cases.len());
    for (name, case) in &f.cases {
        let bm = floats(&case["bias_mult"]);
        let mut solver = linreg_solver(&case["solver"], (bm[0], bm[1]), &f);
        let iters: usize = case["iters"].parse().unwrap();
        for it in 1..=iters {
            solver.step(1).unwrap();
            let params = solver.net().learnable_params();
            assert_close(
                params[0].borrow().data(),
                &floats(&case[&format!("w{it}")]),
                &format!("{name} w after {it}"),
            );
            assert_close(
                params[1].borrow().data(),
                &floats(&case[&format!("b{it}")]),
                &format!("{name} b after {it}"),
            );
        }
        let history = solver.history();
        let stored: Vec<&String> = (0..)
            .map_while(|i| case.get(&format!("history{i}")))
            .collect();
        assert_eq!(history.len(), stored.len(), "{name}: history blob count");
        for (i, (h, want)) in history.iter().zip(stored).enumerate() {
            assert_close(h.data(), &floats(want), &format!("{name} history {i}"));
        }
    }
}

#[test]
fn adadelta_and_adam_keep_two_history_sets_in_caffe_order() {
    let f = fixture();
    for (kind, sets) in [
        ("SGD", 1),
        ("Nesterov", 1),
        ("AdaGrad", 1),
        ("RMSProp", 1),
        ("AdaDelta", 2),
        ("Adam", 2),
    ] {
        let s = linreg_solver(
            &format!("type: \"{kind}\" base_lr: 0.1 lr_policy: \"fixed\""),
            (1.0, 1.0),
            &f,
        );
        let h = s.history();
        assert_eq!(h.len(), 2 * sets, "{kind}");
        // weights, bias, then (for two sets) weights, bias again.
        for (i, blob) in h.iter().enumerate() {
            let want: &[usize] = if i % 2 == 0 { &[1, 2, 2, 2] } else { &[1] };
            assert_eq!(blob.shape(), want, "{kind} history {i}");
        }
    }
}

#[test]
fn bad_solver_settings_are_errors_not_panics() {
    let f = fixture();
    let make = |text: &str| {
        let text = format!(
            "{text} net_param {{ {} }}",
            solver_support::linreg_net(1.0, 1.0)
        );
        let p: crema::proto::caffe::SolverParameter =
            crema::proto::text::parse(&text, "t").unwrap();
        crema::Solver::new(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let _ = &f;
    assert!(
        make("type: \"Momentum\" lr_policy: \"fixed\"").contains("Unknown solver type: Momentum")
    );
    assert!(make("type: \"AdaGrad\" lr_policy: \"fixed\" momentum: 0.9")
        .contains("Momentum cannot be used with AdaGrad."));
    assert!(make("lr_policy: \"fixed\" regularization_type: \"L3\"")
        .contains("Unknown regularization type: L3"));
    assert!(make("lr_policy: \"fixed\" rms_decay: 1.5 type: \"RMSProp\"").contains("rms_decay"));
    assert!(make("lr_policy: \"fixed\" snapshot: 10").contains("snapshot_prefix"));
    let e = make("lr_policy: \"fixed\" snapshot: 10 snapshot_prefix: \"/nonexistent/dir/x\"");
    assert!(
        e.contains("Cannot write to snapshot prefix '/nonexistent/dir/x'"),
        "{e}"
    );
    let p: crema::proto::caffe::SolverParameter =
        crema::proto::text::parse("lr_policy: \"fixed\"", "t").unwrap();
    let e = crema::Solver::new(&p).err().unwrap().to_string();
    assert!(e.contains("must specify a train net"), "{e}");
}
