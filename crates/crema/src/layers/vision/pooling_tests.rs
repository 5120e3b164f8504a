//! Pooling tests: numpy fixtures (Caffe's rounding and AVE divisor), shapes,
//! stochastic pooling, gradient checks and parameter errors.
use crema_proto::caffe::pooling_parameter::{PoolMethod, RoundMode};
use crema_proto::caffe::{LayerParameter, Phase, PoolingParameter};

use super::testutil::*;
use crate::gradient_check::{fill_uniform, GradientChecker};
use crate::Blob;

fn pool(method: PoolMethod, edit: impl FnOnce(&mut PoolingParameter)) -> LayerParameter {
    param("Pooling", |p| {
        let pp = p.pooling_param.mut_or_insert_default();
        pp.set_pool(method);
        edit(pp)
    })
}

fn square(k: u32, s: u32, p: u32) -> impl FnOnce(&mut PoolingParameter) {
    move |pp| {
        pp.set_kernel_size(k);
        pp.set_stride(s);
        if p > 0 {
            pp.set_pad(p);
        }
    }
}

fn check_fixture(case: &str, k: u32, s: u32, p: u32) {
    let x = fixture_blob(&format!("{case}.x"));
    let (t, m) = (empty(), empty());
    run(
        layer(&pool(PoolMethod::MAX, square(k, s, p))).as_mut(),
        &[x.clone()],
        &[t.clone(), m.clone()],
    );
    assert_matches(&t, &format!("{case}.max"), 0.0);
    assert_matches(&m, &format!("{case}.mask"), 0.0);
    let t = empty();
    run(
        layer(&pool(PoolMethod::AVE, square(k, s, p))).as_mut(),
        &[x],
        &[t.clone()],
    );
    assert_matches(&t, &format!("{case}.ave"), 1e-6);
}

#[test]
fn max_and_ave_match_numpy_with_padding() {
    check_fixture("pool_pad", 3, 2, 1); // 7 → 4
}

#[test]
fn last_window_starting_in_padding_is_dropped() {
    check_fixture("pool_clip", 2, 2, 1); // ceil gives 4, the clip leaves 3
}

#[test]
fn max_pool_output_rounds_up_like_caffe() {
    check_fixture("pool_nopad", 3, 2, 0); // 6 → 3, the last window clipped to 2 columns
}

#[test]
fn rectangular_kernel_stride_and_pad() {
    let rect = |pp: &mut PoolingParameter| {
        pp.set_kernel_h(3);
        pp.set_kernel_w(2);
        pp.set_stride_h(1);
        pp.set_stride_w(2);
        pp.set_pad_h(1);
        pp.set_pad_w(0);
    };
    let x = fixture_blob("pool_rect.x");
    let t = empty();
    run(
        layer(&pool(PoolMethod::MAX, rect)).as_mut(),
        &[x.clone()],
        &[t.clone()],
    );
    assert_matches(&t, "pool_rect.max", 0.0);
    run(
        layer(&pool(PoolMethod::AVE, rect)).as_mut(),
        &[x],
        &[t.clone()],
    );
    assert_matches(&t, "pool_rect.ave", 1e-6);
}

fn top_shape(p: &LayerParameter, shape: &[usize]) -> Vec<usize> {
    let mut l = layer(p);
    let t = empty();
    l.setup(&[Blob::shared(shape)], &[t.clone()]).unwrap();
    l.reshape(&[Blob::shared(shape)], &[t.clone()]).unwrap();
    let s = t.borrow().shape().to_vec();
    s
}

#[test]
fn alexnet_pool_shapes_and_floor_round_mode() {
    assert_eq!(
        top_shape(&pool(PoolMethod::MAX, square(3, 2, 0)), &[1, 96, 55, 55]),
        [1, 96, 27, 27]
    );
    assert_eq!(
        top_shape(&pool(PoolMethod::MAX, square(3, 2, 0)), &[1, 256, 13, 13]),
        [1, 256, 6, 6]
    );
    assert_eq!(
        top_shape(&pool(PoolMethod::MAX, square(3, 2, 0)), &[1, 1, 6, 6]),
        [1, 1, 3, 3]
    );
    let floor = pool(PoolMethod::MAX, |pp| {
        square(3, 2, 0)(pp);
        pp.set_round_mode(RoundMode::FLOOR);
    });
    assert_eq!(top_shape(&floor, &[1, 1, 6, 6]), [1, 1, 2, 2]);
    let global = pool(PoolMethod::AVE, |pp| pp.set_global_pooling(true));
    assert_eq!(top_shape(&global, &[2, 3, 7, 5]), [2, 3, 1, 1]);
}

#[test]
fn global_average_by_hand() {
    let x = blob(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 4.0, -1.0, -1.0, 0.0, 6.0]);
    let t = empty();
    run(
        layer(&pool(PoolMethod::AVE, |pp| pp.set_global_pooling(true))).as_mut(),
        &[x.clone()],
        &[t.clone()],
    );
    assert_eq!(t.borrow().data(), &[2.5, 1.0]);
    run(
        layer(&pool(PoolMethod::MAX, |pp| pp.set_global_pooling(true))).as_mut(),
        &[x],
        &[t.clone()],
    );
    assert_eq!(t.borrow().data(), &[4.0, 6.0]);
}

fn stochastic(phase: Phase) -> LayerParameter {
    let mut p = pool(PoolMethod::STOCHASTIC, square(2, 2, 0));
    p.set_phase(phase);
    p
}

#[test]
fn stochastic_test_phase_is_value_weighted_average() {
    // Window (1, 2, 3, 0): Σx²/Σx = 14/6; an all-zero window gives 0.
    let x = blob(&[1, 1, 2, 4], &[1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
    let t = empty();
    run(layer(&stochastic(Phase::TEST)).as_mut(), &[x], &[t.clone()]);
    let t = t.borrow();
    assert!((t.data()[0] - 14.0 / 6.0).abs() < 1e-6);
    assert_eq!(t.data()[1], 0.0);
}

#[test]
fn stochastic_training_samples_in_proportion_to_value() {
    // One window (1, 3, 0, 0): 3 should win three times out of four.
    let x = blob(&[1, 1, 2, 2], &[1.0, 3.0, 0.0, 0.0]);
    let t = empty();
    let mut l = layer(&stochastic(Phase::TRAIN));
    l.setup(&[x.clone()], &[t.clone()]).unwrap();
    l.reshape(&[x.clone()], &[t.clone()]).unwrap();
    crate::rng::set_random_seed(5);
    let mut threes = 0;
    for _ in 0..4000 {
        l.forward(&[x.clone()], &[t.clone()]).unwrap();
        let v = t.borrow().data()[0];
        assert!(v == 1.0 || v == 3.0, "sampled a zero-weight tap: {v}");
        threes += (v == 3.0) as usize;
    }
    let frac = threes as f64 / 4000.0;
    assert!((frac - 0.75).abs() < 0.03, "fraction of 3s: {frac}");
}

fn grad(p: &LayerParameter, shape: &[usize], lo: f32, hi: f32, tops: usize) {
    let b = Blob::shared(shape);
    fill_uniform(&b, lo, hi, 77);
    let t: Vec<_> = (0..tops).map(|_| empty()).collect();
    GradientChecker::new(1e-4, 1e-2).check_gradient_exhaustive(layer(p).as_mut(), &[b], &t, None);
}

#[test]
fn gradient_max_with_padding_and_mask_top() {
    grad(
        &pool(PoolMethod::MAX, square(3, 2, 1)),
        &[2, 2, 5, 5],
        -1.0,
        1.0,
        2,
    );
    grad(
        &pool(PoolMethod::MAX, square(2, 1, 0)),
        &[1, 2, 3, 4],
        -1.0,
        1.0,
        1,
    );
}

#[test]
fn gradient_ave_with_padding_and_global() {
    grad(
        &pool(PoolMethod::AVE, square(3, 2, 1)),
        &[2, 2, 5, 5],
        -1.0,
        1.0,
        1,
    );
    grad(
        &pool(PoolMethod::AVE, |pp| pp.set_global_pooling(true)),
        &[2, 3, 3, 2],
        -1.0,
        1.0,
        1,
    );
}

#[test]
fn gradient_stochastic_train_and_test() {
    grad(&stochastic(Phase::TRAIN), &[1, 2, 4, 4], 0.1, 1.0, 1);
    grad(&stochastic(Phase::TEST), &[1, 2, 4, 4], 0.1, 1.0, 1);
}

fn error_of(p: &LayerParameter, shape: &[usize], tops: usize) -> String {
    match crate::layers::create_layer(p) {
        Err(e) => e.to_string(),
        Ok(mut l) => {
            let t: Vec<_> = (0..tops).map(|_| empty()).collect();
            setup_error(l.as_mut(), &[Blob::shared(shape)], &t)
        }
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    let s = [1, 1, 5, 5];
    let e = error_of(
        &pool(PoolMethod::MAX, |pp| {
            pp.set_kernel_size(2);
            pp.set_kernel_h(2);
        }),
        &s,
        1,
    );
    assert!(e.contains("not both"), "{e}");
    let e = error_of(&pool(PoolMethod::MAX, |pp| pp.set_kernel_h(2)), &s, 1);
    assert!(e.contains("both kernel_h and kernel_w are required"), "{e}");
    let e = error_of(
        &pool(PoolMethod::MAX, |pp| {
            pp.set_global_pooling(true);
            pp.set_kernel_size(2);
        }),
        &s,
        1,
    );
    assert!(e.contains("global_pooling"), "{e}");
    let e = error_of(&pool(PoolMethod::MAX, square(2, 1, 2)), &s, 1);
    assert!(e.contains("smaller than the kernel"), "{e}");
    let e = error_of(&pool(PoolMethod::STOCHASTIC, square(3, 1, 1)), &s, 1);
    assert!(e.contains("padding implemented only"), "{e}");
    let e = error_of(&pool(PoolMethod::MAX, square(2, 0, 0)), &s, 1);
    assert!(e.contains("stride must be nonzero"), "{e}");
    let e = error_of(
        &pool(PoolMethod::MAX, |pp| {
            pp.set_kernel_size(2);
            pp.set_pad(1);
            pp.set_pad_h(1);
        }),
        &s,
        1,
    );
    assert!(e.contains("pad is pad OR pad_h and pad_w"), "{e}");
    let e = error_of(&pool(PoolMethod::MAX, square(2, 1, 0)), &[1, 5, 5], 1);
    assert!(e.contains("4 axes"), "{e}");
    let e = error_of(&pool(PoolMethod::AVE, square(2, 1, 0)), &s, 2);
    assert!(e.contains("only MAX pooling"), "{e}");
    let e = error_of(&pool(PoolMethod::MAX, square(7, 1, 0)), &s, 1);
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn parallel_planes_agree_with_serial() {
    // 2·8·64·64 values take the rayon path; inside a pool worker the same layer runs serially.
    let x = Blob::shared(&[2, 8, 64, 64]);
    fill_uniform(&x, -1.0, 1.0, 3);
    let data = x.borrow().data().to_vec();
    for method in [PoolMethod::MAX, PoolMethod::AVE] {
        // Blobs are Rc-based, so each run builds its own from plain data.
        let go = |data: &[f32]| {
            let x = blob(&[2, 8, 64, 64], data);
            let (t, mut l) = (empty(), layer(&pool(method, square(3, 2, 1))));
            run(l.as_mut(), &[x.clone()], &[t.clone()]);
            t.borrow_mut()
                .diff_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i % 7) as f32);
            l.backward(&[t.clone()], &[true], &[x.clone()]).unwrap();
            let out = (t.borrow().data().to_vec(), x.borrow().diff().to_vec());
            out
        };
        let parallel = go(&data);
        let serial = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| go(&data));
        assert_eq!(parallel, serial, "{method:?}");
    }
}
