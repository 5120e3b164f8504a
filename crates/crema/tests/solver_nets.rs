//! How the solver builds and uses its nets: train_state / test_state pick
//! layers by stage, the test phase runs the test net with the train net's
//! current weights and reports the mean of its outputs, and `weights`
//! finetunes every net by layer name.
mod solver_support;

use crema::proto::caffe::{Phase, SolverParameter};
use crema::Solver;
use solver_support::{fixture, floats, linreg_solver, scratch_dir};

#[test]
fn train_and_test_states_choose_layers_by_stage() {
    let text = r#"
      net_param { name: "staged"
        layer { name: "data" type: "DummyData" top: "x" top: "y"
                dummy_data_param { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data_filler { type: "constant" value: 1 } } }
        layer { name: "ip" type: "Convolution" bottom: "x" top: "p" convolution_param { num_output: 1 kernel_size: 1 } }
        layer { name: "only_a" type: "ReLU" bottom: "p" top: "p" include { stage: "a" } }
        layer { name: "only_b" type: "ReLU" bottom: "p" top: "p" include { stage: "b" } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" } }
      base_lr: 0.1 lr_policy: "fixed" test_iter: 1 test_iter: 1 test_interval: 1
      train_state { stage: "a" } test_state { stage: "b" } test_state { stage: "a" }"#;
    let param: SolverParameter = crema::proto::text::parse(text, "t").unwrap();
    let s = Solver::new(&param).unwrap();
    assert_eq!(s.net().phase(), Phase::TRAIN);
    assert!(s.net().has_layer("only_a") && !s.net().has_layer("only_b"));
    let t = s.test_nets();
    assert_eq!(t.len(), 2, "one generic test net per test_iter");
    assert!(t.iter().all(|n| n.phase() == Phase::TEST));
    assert!(t[0].has_layer("only_b") && !t[0].has_layer("only_a"));
    assert!(t[1].has_layer("only_a") && !t[1].has_layer("only_b"));

    let mut bad = param.clone();
    bad.test_state.pop();
    let e = Solver::new(&bad).err().unwrap().to_string();
    assert!(
        e.contains("test_state must be unspecified or specified once per test net"),
        "{e}"
    );
    let mut bad = param.clone();
    bad.set_test_interval(0);
    assert!(Solver::new(&bad)
        .err()
        .unwrap()
        .to_string()
        .contains("test_interval"));
}

/// Mean EuclideanLoss over the fixture's two batches of four, with w and b.
fn fixture_loss(f: &solver_support::Fixture, w: &[f32], b: f32) -> f64 {
    let (x, y) = (floats(&f.header["data"]), floats(&f.header["target"]));
    let mut total = 0.0f64;
    for batch in 0..2 {
        let mut sum = 0.0f64;
        for n in batch * 4..batch * 4 + 4 {
            let pred: f64 = (0..8)
                .map(|d| f64::from(x[n * 8 + d]) * f64::from(w[d]))
                .sum::<f64>()
                + f64::from(b);
            sum += (pred - f64::from(y[n])).powi(2);
        }
        total += sum / (2.0 * 4.0);
    }
    total / 2.0
}

#[test]
fn test_phase_scores_the_test_net_with_the_current_train_weights() {
    let f = fixture();
    let mut s = linreg_solver(
        "type: \"SGD\" base_lr: 0.1 momentum: 0.9 lr_policy: \"fixed\" test_iter: 2 test_interval: 100 \
         test_initialization: false test_compute_loss: true",
        (1.0, 1.0),
        &f,
    );
    s.step(3).unwrap();
    s.test(0).unwrap();
    let w = s.net().learnable_params()[0].borrow().data().to_vec();
    let b = s.net().learnable_params()[1].borrow().data()[0];
    let want = fixture_loss(&f, &w, b);
    let got = f64::from(s.mean_scores(0)[0]);
    assert!(
        (got - want).abs() < 1e-5 * want.max(1.0),
        "test loss {got} vs {want}"
    );
    // The weights moved, so this is not the initial loss.
    let w0 = floats(&f.header["w0"]);
    assert!((fixture_loss(&f, &w0, floats(&f.header["b0"])[0]) - want).abs() > 1e-3);
}

#[test]
fn weights_field_finetunes_train_and_test_nets_by_layer_name() {
    let f = fixture();
    let dir = scratch_dir("weights");
    let mut p = crema::proto::caffe::NetParameter::new();
    let mut layer = crema::proto::caffe::LayerParameter::new();
    layer.set_name("ip".into());
    let mut w = crema::Blob::new(&[1, 2, 2, 2]);
    w.data_mut()
        .copy_from_slice(&[1., 2., 3., 4., 5., 6., 7., 8.]);
    let mut b = crema::Blob::new(&[1]);
    b.data_mut()[0] = -1.0;
    layer.blobs = vec![w.to_proto(false), b.to_proto(false)];
    p.layer.push(layer);
    let mut other = crema::proto::caffe::LayerParameter::new();
    other.set_name("not_in_this_net".into());
    p.layer.push(other);
    let model = dir.join("init.caffemodel");
    crema::proto::files::write_net_binary(&model, &p).unwrap();
    let s = linreg_solver(
        &format!("type: \"SGD\" base_lr: 0.1 lr_policy: \"fixed\" test_iter: 1 test_interval: 5 weights: \"{}\"", model.display()),
        (1.0, 1.0),
        &f,
    );
    let test_ip = &s.test_nets()[0].layer_by_name("ip").unwrap().blobs()[0];
    assert_eq!(test_ip.borrow().data(), w.data());
    let _ = std::fs::remove_dir_all(&dir);
}
