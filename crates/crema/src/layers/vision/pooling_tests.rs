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

/// Caffe's pooling loops, written plainly: one window per output, clipped
/// to the image, taps in row-major order.
struct Naive {
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    /// (height, width) of the bottom and of the top.
    hw: (usize, usize),
    pooled: (usize, usize),
}

impl Naive {
    /// (rows, cols, AVE divisor) of output (ph, pw).
    fn window(
        &self,
        ph: usize,
        pw: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>, usize) {
        let (h, w) = (self.hw.0 as isize, self.hw.1 as isize);
        let h0 = (ph * self.s.0) as isize - self.p.0 as isize;
        let w0 = (pw * self.s.1) as isize - self.p.1 as isize;
        let h1 = (h0 + self.k.0 as isize).min(h + self.p.0 as isize);
        let w1 = (w0 + self.k.1 as isize).min(w + self.p.1 as isize);
        let area = ((h1 - h0) * (w1 - w0)) as usize;
        let rows = h0.max(0) as usize..h1.min(h) as usize;
        let cols = w0.max(0) as usize..w1.min(w) as usize;
        (rows, cols, area)
    }

    /// Per plane: MAX top and mask, and AVE top.
    fn forward(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (plane, w) = (self.hw.0 * self.hw.1, self.hw.1);
        let (mut max, mut mask, mut ave) = (vec![], vec![], vec![]);
        for bp in x.chunks(plane) {
            for ph in 0..self.pooled.0 {
                for pw in 0..self.pooled.1 {
                    let (rows, cols, area) = self.window(ph, pw);
                    let (mut best, mut arg) = (-f32::MAX, rows.start * w + cols.start);
                    let mut sum = -0.0f32;
                    for y in rows {
                        for xx in cols.clone() {
                            let v = bp[y * w + xx];
                            sum += v;
                            if v > best {
                                (best, arg) = (v, y * w + xx);
                            }
                        }
                    }
                    max.push(best);
                    mask.push(arg as f32);
                    ave.push(sum / area as f32);
                }
            }
        }
        (max, mask, ave)
    }

    /// Bottom diffs for MAX (through `mask`) and AVE, from top diff `g`.
    fn backward(&self, g: &[f32], mask: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (plane, w) = (self.hw.0 * self.hw.1, self.hw.1);
        let q = self.pooled.0 * self.pooled.1;
        let n = g.len() / q;
        let (mut dmax, mut dave) = (vec![0.0; n * plane], vec![0.0; n * plane]);
        for i in 0..n {
            for ph in 0..self.pooled.0 {
                for pw in 0..self.pooled.1 {
                    let o = i * q + ph * self.pooled.1 + pw;
                    dmax[i * plane + mask[o] as usize] += g[o];
                    let (rows, cols, area) = self.window(ph, pw);
                    for y in rows {
                        for xx in cols.clone() {
                            dave[i * plane + y * w + xx] += g[o] / area as f32;
                        }
                    }
                }
            }
        }
        (dmax, dave)
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The layer's MAX (top, mask, bottom diff) and AVE (top, bottom diff) on `x`.
fn layer_max_ave(
    edit: impl Fn(&mut PoolingParameter) + Copy,
    shape: &[usize],
    x: &[f32],
    g: &[f32],
) -> [Vec<f32>; 5] {
    let go = |method, tops: usize| {
        let b = blob(shape, x);
        let t: Vec<_> = (0..tops).map(|_| empty()).collect();
        let mut l = layer(&pool(method, edit));
        run(l.as_mut(), std::slice::from_ref(&b), &t);
        let q = t[0].borrow().count();
        t[0].borrow_mut().diff_mut().copy_from_slice(&g[..q]);
        l.backward(&t[..1], &[true], std::slice::from_ref(&b))
            .unwrap();
        let out: Vec<Vec<f32>> = t.iter().map(|t| t.borrow().data().to_vec()).collect();
        let diff = b.borrow().diff().to_vec();
        (out, diff)
    };
    let (mut max, dmax) = go(PoolMethod::MAX, 2);
    let (mut ave, dave) = go(PoolMethod::AVE, 1);
    [max.remove(0), max.remove(0), dmax, ave.remove(0), dave]
}

#[test]
fn fast_paths_match_naive_windows_on_awkward_shapes() {
    // (kernel, stride, pad, input shape, floor rounding)
    type Case = (
        (usize, usize),
        (usize, usize),
        (usize, usize),
        [usize; 4],
        bool,
    );
    let cases: &[Case] = &[
        ((3, 3), (2, 2), (0, 0), [2, 3, 13, 11], false), // CEIL clips the last window
        ((2, 2), (2, 2), (0, 0), [1, 2, 7, 5], false),
        ((3, 3), (1, 1), (1, 1), [1, 3, 5, 7], false),
        ((2, 2), (3, 3), (0, 0), [1, 2, 11, 13], false), // stride > kernel
        ((5, 3), (2, 1), (2, 1), [1, 2, 7, 11], false),  // rectangular
        ((3, 2), (2, 3), (2, 1), [1, 2, 9, 10], false),
        ((3, 3), (2, 2), (1, 1), [2, 2, 1, 1], false), // 1x1 planes
        ((1, 1), (1, 1), (0, 0), [1, 2, 3, 5], false),
        ((4, 4), (1, 1), (0, 0), [1, 2, 6, 7], false), // four windows overlap per tap
        ((3, 3), (2, 2), (0, 0), [1, 1, 8, 8], true),
        ((5, 5), (3, 3), (2, 2), [1, 2, 17, 19], false),
        ((3, 3), (2, 2), (0, 0), [2, 8, 37, 31], false), // takes the rayon path
        // Rows of more than 16 inner windows: whole and partial register blocks.
        ((2, 2), (2, 2), (0, 0), [1, 2, 6, 71], false),
        ((3, 3), (1, 1), (1, 1), [1, 2, 4, 40], false),
        ((3, 3), (2, 2), (1, 1), [1, 1, 5, 67], false),
        ((2, 3), (1, 2), (0, 1), [1, 1, 3, 35], false),
        // Whole windows, rows shorter than a register: pooled across rows.
        ((2, 2), (2, 2), (0, 0), [2, 3, 8, 8], false),
        ((2, 2), (2, 2), (0, 0), [1, 2, 10, 14], false), // 35 outputs a plane
        ((3, 3), (2, 2), (0, 0), [2, 2, 13, 13], false),
        ((2, 3), (3, 2), (0, 0), [1, 2, 11, 9], true),
    ];
    for (ci, &(k, s, p, shape, floor)) in cases.iter().enumerate() {
        let b = Blob::shared(&shape);
        fill_uniform(&b, -1.0, 1.0, 100 + ci as u64);
        // Five levels make ties common, so the first-maximum rule decides the mask;
        // a few -inf and NaN taps must never win.
        let x: Vec<f32> = b
            .borrow()
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| match i % 23 {
                7 => f32::NEG_INFINITY,
                13 if i % 3 == 0 => f32::NAN,
                _ => (v * 2.0).round() / 2.0,
            })
            .collect();
        let edit = move |pp: &mut PoolingParameter| {
            pp.set_kernel_h(k.0 as u32);
            pp.set_kernel_w(k.1 as u32);
            pp.set_stride_h(s.0 as u32);
            pp.set_stride_w(s.1 as u32);
            pp.set_pad_h(p.0 as u32);
            pp.set_pad_w(p.1 as u32);
            if floor {
                pp.set_round_mode(RoundMode::FLOOR);
            }
        };
        let top = top_shape(&pool(PoolMethod::MAX, edit), &shape);
        let naive = Naive {
            k,
            s,
            p,
            hw: (shape[2], shape[3]),
            pooled: (top[2], top[3]),
        };
        let g: Vec<f32> = (0..top.iter().product::<usize>())
            .map(|i| ((i * 7919) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let [max, mask, dmax, ave, dave] = layer_max_ave(edit, &shape, &x, &g);
        let (want_max, want_mask, want_ave) = naive.forward(&x);
        let (want_dmax, want_dave) = naive.backward(&g, &want_mask);
        let case = format!("case {ci}: k {k:?} s {s:?} p {p:?} {shape:?}");
        assert_eq!(bits(&max), bits(&want_max), "MAX top, {case}");
        assert_eq!(mask, want_mask, "MAX mask, {case}");
        assert_eq!(bits(&dmax), bits(&want_dmax), "MAX bottom diff, {case}");
        assert_eq!(bits(&ave), bits(&want_ave), "AVE top, {case}");
        assert_eq!(bits(&dave), bits(&want_dave), "AVE bottom diff, {case}");
    }
}

#[test]
fn max_window_of_only_neg_inf_and_nan_keeps_first_tap() {
    // Caffe starts at -FLT_MAX: such a window outputs -FLT_MAX with the argmax
    // at its first in-image tap, on the inner and the clipped paths alike.
    let x = blob(
        &[1, 1, 2, 5],
        &[
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::MAX,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::NAN,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::NAN,
            f32::NEG_INFINITY,
        ],
    );
    let (t, m) = (empty(), empty());
    run(
        layer(&pool(PoolMethod::MAX, square(2, 2, 0))).as_mut(),
        &[x],
        &[t.clone(), m.clone()],
    );
    assert_eq!(t.borrow().data(), &[-f32::MAX; 3]);
    assert_eq!(m.borrow().data(), &[0.0, 2.0, 4.0]);
}
