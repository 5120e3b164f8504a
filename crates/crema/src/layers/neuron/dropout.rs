//! Dropout: at train time each input survives with probability `1 - dropout_ratio`.
//!
//! With `scale_train` (the default) survivors are scaled by `1 / (1 - ratio)` at
//! train time and the test-time layer is the identity; without it, training
//! leaves survivors as they are and the test-time output is scaled by
//! `1 - ratio` instead. Either way the expected output is the same in both
//! phases. The phase is the LayerParameter's `phase`, which the net sets.
use crema_proto::caffe::{LayerParameter, Phase};

use super::{propagates, reshape_like, same_blob};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;
use crate::{ensure, rng};

pub struct DropoutLayer {
    ratio: f32,
    scale_train: bool,
    train: bool,
    /// Per element: 0 when dropped, else the train-time multiplier.
    mask: Vec<f32>,
}

impl DropoutLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let dp = &param.dropout_param;
        let ratio = dp.dropout_ratio();
        ensure!(
            param,
            (0.0..1.0).contains(&ratio),
            "dropout_ratio must be in [0, 1), got {ratio}"
        );
        Ok(Box::new(DropoutLayer {
            ratio,
            scale_train: dp.scale_train(),
            train: param.phase() == Phase::TRAIN,
            mask: Vec::new(),
        }))
    }

    /// What a surviving element is multiplied by at train time.
    fn train_scale(&self) -> f32 {
        if self.scale_train {
            1.0 / (1.0 - self.ratio)
        } else {
            1.0
        }
    }
    /// What every element is multiplied by at test time.
    fn test_scale(&self) -> f32 {
        if self.scale_train {
            1.0
        } else {
            1.0 - self.ratio
        }
    }
}

/// `dst[i] = src[i] * m(i)`, where `src` is `dst` when top and bottom are one blob.
fn scale_into(src: &SharedBlob, dst: &SharedBlob, use_diff: bool, m: impl Fn(usize) -> f32) {
    if same_blob(src, dst) {
        let mut b = dst.borrow_mut();
        let v = if use_diff { b.diff_mut() } else { b.data_mut() };
        v.iter_mut().enumerate().for_each(|(i, x)| *x *= m(i));
    } else {
        let s = src.borrow();
        let mut d = dst.borrow_mut();
        let (sv, dv) = if use_diff {
            (s.diff(), d.diff_mut())
        } else {
            (s.data(), d.data_mut())
        };
        dv.iter_mut()
            .zip(sv)
            .enumerate()
            .for_each(|(i, (o, &x))| *o = x * m(i));
    }
}

impl Layer for DropoutLayer {
    fn type_name(&self) -> &'static str {
        "Dropout"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        let n = bottom[0].borrow().count();
        self.mask.resize(n, 0.0);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if self.train {
            let keep = 1.0 - self.ratio;
            let scale = self.train_scale();
            // One draw per value, made in bulk; each is what `r.gen::<f32>()`
            // makes of it: its top 24 bits over 2^24.
            rng::with_rng(|r| rng::fill_u32(r, rng::as_words(&mut self.mask)));
            for m in self.mask.iter_mut() {
                let u = (m.to_bits() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
                *m = if u < keep { scale } else { 0.0 };
            }
            let mask = &self.mask;
            scale_into(&bottom[0], &top[0], false, |i| mask[i]);
        } else {
            let s = self.test_scale();
            scale_into(&bottom[0], &top[0], false, |_| s);
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            if self.train {
                let mask = &self.mask;
                scale_into(&top[0], &bottom[0], true, |i| mask[i]);
            } else {
                let s = self.test_scale();
                scale_into(&top[0], &bottom[0], true, |_| s);
            }
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crema_proto::caffe::Phase;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::rng;

    fn dropout(
        phase: Phase,
        ratio: Option<f32>,
        scale_train: Option<bool>,
    ) -> crema_proto::caffe::LayerParameter {
        param_in("Dropout", phase, |p| {
            let dp = p.dropout_param.mut_or_insert_default();
            if let Some(r) = ratio {
                dp.set_dropout_ratio(r);
            }
            if let Some(s) = scale_train {
                dp.set_scale_train(s);
            }
        })
    }

    #[test]
    fn train_drops_about_ratio_and_scales_survivors() {
        rng::set_random_seed(11);
        let mut l = layer(&dropout(Phase::TRAIN, Some(0.3), None));
        let n = 10000;
        let (b, t) = (blob(&[n], &vec![2.0; n]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        let t = t.borrow();
        let kept = t.data().iter().filter(|&&v| v != 0.0).count();
        assert!(t
            .data()
            .iter()
            .all(|&v| v == 0.0 || (v - 2.0 / 0.7).abs() < 1e-6));
        let frac = kept as f32 / n as f32;
        assert!((frac - 0.7).abs() < 0.02, "kept fraction {frac}");
    }

    #[test]
    fn same_seed_same_mask() {
        let mut l = layer(&dropout(Phase::TRAIN, None, None));
        let b = blob(&[64], &[1.0; 64]);
        let (t1, t2) = (empty(), empty());
        rng::set_random_seed(5);
        run(&mut *l, &[b.clone()], &[t1.clone()]);
        rng::set_random_seed(5);
        l.reshape(&[b.clone()], &[t2.clone()]).unwrap();
        l.forward(&[b], &[t2.clone()]).unwrap();
        assert_eq!(t1.borrow().data(), t2.borrow().data());
    }

    #[test]
    fn the_mask_keeps_where_one_draw_per_value_falls_below_keep() {
        // The reference draws `gen::<f32>()` value by value from the same
        // seed; the layer draws in bulk, over the pool for this size.
        use rand::Rng;
        let n = 200_003;
        rng::set_random_seed(21);
        let scale = 1.0 / (1.0 - 0.4f32);
        let want: Vec<f32> = rng::with_rng(|r| {
            (0..n)
                .map(|_| {
                    if r.gen::<f32>() < 1.0 - 0.4f32 {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect()
        });
        let next = rng::with_rng(|r| r.gen::<u32>());
        rng::set_random_seed(21);
        let mut l = layer(&dropout(Phase::TRAIN, Some(0.4), None));
        let (b, t) = (blob(&[n], &vec![1.0; n]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        assert!(
            t.borrow().data() == want,
            "mask differs from the value-by-value draws"
        );
        assert_eq!(
            rng::with_rng(|r| r.gen::<u32>()),
            next,
            "generator left elsewhere"
        );
    }

    #[test]
    fn test_phase_is_identity_with_scale_train() {
        let mut l = layer(&dropout(Phase::TEST, Some(0.5), None));
        let (b, t) = (blob(&[3], &[1.0, -2.0, 3.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[1.0, -2.0, 3.0]);
        t.borrow_mut().diff_mut().copy_from_slice(&[4.0, 5.0, 6.0]);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[4.0, 5.0, 6.0]);
    }

    #[test]
    fn without_scale_train_test_phase_scales_by_keep_probability() {
        let mut l = layer(&dropout(Phase::TEST, Some(0.25), Some(false)));
        let b = blob(&[2], &[4.0, -8.0]);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        assert_eq!(b.borrow().data(), &[3.0, -6.0]);
        b.borrow_mut().diff_mut().copy_from_slice(&[1.0, 2.0]);
        l.backward(&[b.clone()], &[true], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[0.75, 1.5]);

        // ... and train time leaves survivors unscaled.
        rng::set_random_seed(3);
        let mut l = layer(&dropout(Phase::TRAIN, Some(0.25), Some(false)));
        let (b, t) = (blob(&[100], &[3.0; 100]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        assert!(t.borrow().data().iter().all(|&v| v == 0.0 || v == 3.0));
    }

    #[test]
    fn in_place_train_backward_uses_forward_mask() {
        rng::set_random_seed(9);
        let mut l = layer(&dropout(Phase::TRAIN, Some(0.5), None));
        let b = blob(&[50], &[1.0; 50]);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        let out = b.borrow().data().to_vec();
        b.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[b.clone()], &[true], &[b.clone()]).unwrap();
        // Input was all ones, so the output is the mask itself.
        assert_eq!(b.borrow().diff(), &out[..]);
        assert!(out.contains(&0.0) && out.contains(&2.0));
    }

    #[test]
    fn bad_ratio_is_refused() {
        for r in [1.0, -0.1, 1.5] {
            let err = crate::layers::create_layer(&dropout(Phase::TRAIN, Some(r), None))
                .err()
                .expect("refused");
            assert!(err.to_string().contains("dropout_ratio"), "{err}");
        }
    }

    #[test]
    fn dropout_gradient_train_and_test() {
        for phase in [Phase::TRAIN, Phase::TEST] {
            for st in [true, false] {
                let mut l = layer(&dropout(phase, Some(0.4), Some(st)));
                let (b, t) = (crate::Blob::shared(&[2, 3, 2]), empty());
                fill_uniform(&b, -1.0, 1.0, 2);
                GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
                    &mut *l,
                    &[b],
                    &[t],
                    None,
                );
            }
        }
    }
}
