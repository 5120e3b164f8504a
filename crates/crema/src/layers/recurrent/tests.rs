//! RNN and LSTM against PyTorch (`tests/fixtures/recurrent_fixture.py`), by
//! finite differences, and on their shape rules.
use crema_proto::caffe::{LayerParameter, Phase};

use crate::blob::{Blob, SharedBlob};
use crate::gradient_check::{fill_uniform, GradientChecker};
use crate::layers::common::testutil::{
    assert_close, blob, empty, fixture_line, layer, param_in, setup_error,
};
use crate::layers::Layer;

const FIXTURE: &str = include_str!("../../../tests/fixtures/recurrent.txt");

fn fx(key: &str) -> Vec<f32> {
    fixture_line(FIXTURE, key)
}

/// An LSTM or RNN layer with H hidden units and gaussian fillers.
fn recurrent(type_: &str, hidden: u32, expose: bool) -> LayerParameter {
    param_in(type_, Phase::TRAIN, |p| {
        let rp = p.recurrent_param.mut_or_insert_default();
        rp.set_num_output(hidden);
        rp.set_expose_hidden(expose);
        let w = rp.weight_filler.mut_or_insert_default();
        w.set_type("gaussian".into());
        w.set_std(0.5);
        let b = rp.bias_filler.mut_or_insert_default();
        b.set_type("gaussian".into());
        b.set_std(0.2);
    })
}

/// Fixture geometry (see the script): T = 5, N = 2, D = 3, H = 4, S = 2.
const T: usize = 5;
const N: usize = 2;

/// The fixture's key prefix and the keys of the cell's own parameters.
fn cell_keys(type_: &str) -> (&'static str, &'static [&'static str]) {
    if type_ == "LSTM" {
        ("lstm", &["p0"])
    } else {
        ("rnn", &["p0", "p1", "p2"])
    }
}

/// Loads the fixture's weights into the layer's blobs (Caffe's order).
fn load_weights(l: &dyn Layer, type_: &str, with_static: bool) {
    let (pre, cell) = cell_keys(type_);
    let mut keys = vec!["w_x", "b"];
    if with_static {
        keys.push("w_s");
    }
    keys.extend_from_slice(cell);
    assert_eq!(l.blobs().len(), keys.len(), "{type_} parameter count");
    for (b, k) in l.blobs().iter().zip(keys) {
        b.borrow_mut()
            .data_mut()
            .copy_from_slice(&fx(&format!("{pre}.{k}")));
    }
}

fn forward(l: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) {
    l.reshape(bottom, top).unwrap();
    l.forward(bottom, top).unwrap();
}

fn check_forward_matches_pytorch(type_: &str) {
    let (pre, _) = cell_keys(type_);
    let k = |s: &str| fx(&format!("{pre}.{s}"));
    let x1 = blob(&[T, N, 3], &k("x1"));
    let c1 = blob(&[T, N], &k("cont1"));
    let top = [empty()];

    // Two batches through one layer: stream 0 carries its state into the
    // second, stream 1 restarts (cont 0) in both.
    let mut l = layer(&recurrent(type_, 4, false));
    l.setup(&[x1.clone(), c1.clone()], &top).unwrap();
    load_weights(l.as_ref(), type_, false);
    forward(l.as_mut(), &[x1.clone(), c1.clone()], &top);
    assert_eq!(top[0].borrow().shape(), &[T, N, 4]);
    assert_close(top[0].borrow().data(), &k("y1"), 1e-5);
    let (x2, c2) = (blob(&[T, N, 3], &k("x2")), blob(&[T, N], &k("cont2")));
    forward(l.as_mut(), &[x2, c2], &top);
    assert_close(top[0].borrow().data(), &k("y2"), 1e-5);

    // Static input.
    let xs = blob(&[N, 2], &k("xs"));
    let bottom = [x1.clone(), c1, xs];
    let mut l = layer(&recurrent(type_, 4, false));
    l.setup(&bottom, &top).unwrap();
    load_weights(l.as_ref(), type_, true);
    forward(l.as_mut(), &bottom, &top);
    assert_close(top[0].borrow().data(), &k("ys"), 1e-5);

    // Exposed initial and final states.
    let states = if type_ == "LSTM" { 2 } else { 1 };
    let mut bottom = vec![x1, blob(&[T, N], &k("cont_e"))];
    let mut tops = vec![empty()];
    for s in 0..states {
        bottom.push(blob(&[1, N, 4], &k(&format!("s0_{s}"))));
        tops.push(empty());
    }
    let mut l = layer(&recurrent(type_, 4, true));
    l.setup(&bottom, &tops).unwrap();
    load_weights(l.as_ref(), type_, false);
    for _ in 0..2 {
        // Exposed states are not carried: a second pass gives the same values.
        forward(l.as_mut(), &bottom, &tops);
        assert_close(tops[0].borrow().data(), &k("ye"), 1e-5);
        for s in 0..states {
            assert_eq!(tops[1 + s].borrow().shape(), &[1, N, 4]);
            assert_close(tops[1 + s].borrow().data(), &k(&format!("sT_{s}")), 1e-5);
        }
    }
}

#[test]
fn lstm_forward_matches_pytorch_with_resets_carried_static_and_exposed_state() {
    check_forward_matches_pytorch("LSTM");
}

#[test]
fn rnn_forward_matches_pytorch_with_resets_carried_static_and_exposed_state() {
    check_forward_matches_pytorch("RNN");
}

fn shapes(l: &dyn Layer) -> Vec<Vec<usize>> {
    l.blobs()
        .iter()
        .map(|b| b.borrow().shape().to_vec())
        .collect()
}

#[test]
fn parameters_have_caffes_count_order_and_shapes() {
    let x = Blob::shared(&[4, 2, 3, 2]);
    let cont = Blob::shared(&[4, 2]);
    let xs = Blob::shared(&[2, 5]);
    let mut l = layer(&recurrent("LSTM", 7, false));
    l.setup(&[x.clone(), cont.clone()], &[empty()]).unwrap();
    assert_eq!(shapes(l.as_ref()), [vec![28, 6], vec![28], vec![28, 7]]);
    let mut l = layer(&recurrent("LSTM", 7, false));
    l.setup(&[x.clone(), cont.clone(), xs.clone()], &[empty()])
        .unwrap();
    let want = [vec![28, 6], vec![28], vec![28, 5], vec![28, 7]];
    assert_eq!(shapes(l.as_ref()), want);
    let mut l = layer(&recurrent("RNN", 7, false));
    l.setup(&[x.clone(), cont.clone()], &[empty()]).unwrap();
    let want = [vec![7, 6], vec![7], vec![7, 7], vec![7, 7], vec![7]];
    assert_eq!(shapes(l.as_ref()), want);
    let mut l = layer(&recurrent("RNN", 7, false));
    let top = [empty()];
    l.setup(&[x.clone(), cont.clone(), xs], &top).unwrap();
    let want = [
        vec![7, 6],
        vec![7],
        vec![7, 5],
        vec![7, 7],
        vec![7, 7],
        vec![7],
    ];
    assert_eq!(shapes(l.as_ref()), want);
    l.reshape(&[x, cont, Blob::shared(&[2, 5])], &top).unwrap();
    assert_eq!(top[0].borrow().shape(), &[4, 2, 7]);
}

/// T = 3 steps, N = 2 streams: stream 0 restarts at the last step, stream 1
/// at the middle one. Without exposed states step 0 restarts too, since the
/// state carried between forwards would otherwise change every evaluation.
fn grad_bottoms(expose_states: usize, with_static: bool) -> Vec<SharedBlob> {
    let x = Blob::shared(&[3, 2, 3]);
    fill_uniform(&x, -1.0, 1.0, 11);
    let cont = if expose_states > 0 {
        [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    } else {
        [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    };
    let mut b = vec![x, blob(&[3, 2], &cont)];
    if with_static {
        let s = Blob::shared(&[2, 2]);
        fill_uniform(&s, -1.0, 1.0, 12);
        b.push(s);
    }
    for i in 0..expose_states {
        let h = Blob::shared(&[1, 2, 3]);
        fill_uniform(&h, -1.0, 1.0, 13 + i as u64);
        b.push(h);
    }
    b
}

fn check_gradient(type_: &str, expose: bool, with_static: bool, check: &[usize]) {
    let states = match (expose, type_) {
        (false, _) => 0,
        (true, "LSTM") => 2,
        (true, _) => 1,
    };
    for &c in check {
        let bottom = grad_bottoms(states, with_static);
        let top: Vec<SharedBlob> = (0..1 + states).map(|_| empty()).collect();
        crate::rng::set_random_seed(1701);
        let mut l = layer(&recurrent(type_, 3, expose));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            l.as_mut(),
            &bottom,
            &top,
            Some(c),
        );
    }
}

#[test]
fn lstm_gradient_over_three_steps_with_resets() {
    check_gradient("LSTM", false, false, &[0]);
}

#[test]
fn lstm_gradient_with_static_input() {
    check_gradient("LSTM", false, true, &[2]);
}

#[test]
fn lstm_exposed_states_get_and_give_gradient() {
    // The objective covers the h_T and c_T tops; h_0 and c_0 are checked.
    check_gradient("LSTM", true, false, &[0, 2, 3]);
}

#[test]
fn rnn_gradient_over_three_steps_with_resets() {
    check_gradient("RNN", false, false, &[0]);
}

#[test]
fn rnn_gradient_with_static_input_and_exposed_state() {
    check_gradient("RNN", false, true, &[2]);
    check_gradient("RNN", true, false, &[0, 2]);
}

#[test]
fn batch_size_may_change_and_restarts_the_carried_state() {
    let mut l = layer(&recurrent("LSTM", 2, false));
    let top = [empty()];
    let x = Blob::shared(&[2, 3, 1]);
    fill_uniform(&x, -1.0, 1.0, 3);
    let cont = blob(&[2, 3], &[1.0; 6]);
    l.setup(&[x.clone(), cont.clone()], &top).unwrap();
    forward(l.as_mut(), &[x.clone(), cont.clone()], &top);
    let first = top[0].borrow().data().to_vec();
    forward(l.as_mut(), &[x.clone(), cont.clone()], &top);
    assert_ne!(
        top[0].borrow().data(),
        &first[..],
        "cont 1 at step 0 continues the carried state"
    );
    let x1 = Blob::shared(&[2, 1, 1]);
    x1.borrow_mut()
        .data_mut()
        .copy_from_slice(&[x.borrow().data()[0], x.borrow().data()[3]]);
    forward(l.as_mut(), &[x1, blob(&[2, 1], &[1.0, 1.0])], &top);
    assert_eq!(top[0].borrow().shape(), &[2, 1, 2]);
    assert_close(
        top[0].borrow().data(),
        &[first[0], first[1], first[6], first[7]],
        1e-6,
    );
}

#[test]
fn bad_inputs_are_errors_naming_the_bottom() {
    let e = crate::layers::create_layer(&recurrent("LSTM", 0, false))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("num_output must be positive"), "{e}");
    let case = |type_: &str, expose: bool, bottom: Vec<SharedBlob>, tops: usize| {
        let mut l = layer(&recurrent(type_, 4, expose));
        let top: Vec<SharedBlob> = (0..tops).map(|_| empty()).collect();
        setup_error(l.as_mut(), &bottom, &top)
    };
    let sh = Blob::shared;
    let e = case("RNN", false, vec![sh(&[5, 2]), sh(&[5, 2])], 1);
    assert!(e.contains("bottom[0] (x) must have at least 3 axes"), "{e}");
    let e = case("RNN", false, vec![sh(&[5, 2, 3]), sh(&[5, 3])], 1);
    assert!(
        e.contains("bottom[1] (cont) must be #timesteps x #streams"),
        "{e}"
    );
    let e = case("RNN", false, vec![sh(&[5, 0, 3]), sh(&[5, 0])], 1);
    assert!(e.contains("has no streams"), "{e}");
    let e = case(
        "LSTM",
        false,
        vec![sh(&[5, 2, 3]), sh(&[5, 2]), sh(&[3, 2])],
        1,
    );
    assert!(e.contains("bottom[2] (x_static)"), "{e}");
    let e = case(
        "LSTM",
        true,
        vec![sh(&[5, 2, 3]), sh(&[5, 2]), sh(&[1, 2, 4]), sh(&[1, 2, 3])],
        3,
    );
    assert!(e.contains("bottom[3] (c_0) shape must match"), "{e}");
    let e = case("LSTM", true, vec![sh(&[5, 2, 3]), sh(&[5, 2])], 3);
    assert!(e.contains("takes 4 or 5 bottoms"), "{e}");
    let e = case("RNN", false, vec![sh(&[5, 2, 3]), sh(&[5, 2])], 2);
    assert!(e.contains("and 1 tops"), "{e}");

    let mut l = layer(&recurrent("LSTM", 4, false));
    let top = [empty()];
    l.setup(&[sh(&[5, 2, 3]), sh(&[5, 2])], &top).unwrap();
    let e = l
        .reshape(&[sh(&[4, 2, 3]), sh(&[4, 2])], &top)
        .unwrap_err()
        .to_string();
    assert!(e.contains("input number of timesteps changed"), "{e}");
    let e = l
        .reshape(&[sh(&[5, 2, 4]), sh(&[5, 2])], &top)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the weights expect 3"), "{e}");
    assert!(!l.allow_force_backward(1) && l.allow_force_backward(0));
}
