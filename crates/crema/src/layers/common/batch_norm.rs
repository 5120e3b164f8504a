//! BatchNorm: normalises each channel (axis 1) to zero mean and unit variance,
//! `y = (x - mean) / sqrt(var + eps)`, over the batch and spatial positions.
//!
//! In training (`use_global_stats` false, the default in phase TRAIN) the batch
//! statistics are used and folded into three blobs, Caffe's layout so ResNet
//! caffemodels load: `blobs[0] = Σ mean`, `blobs[1] = Σ unbiased var`, both
//! decayed by `moving_average_fraction` each step, and `blobs[2] = [f]` the
//! matching sum of weights. With global statistics (the default in TEST) the
//! layer uses `blobs[0] / f` and `blobs[1] / f`. The blobs are statistics, not
//! weights: backward never writes their diffs, and a ParamSpec giving them a
//! non-zero `lr_mult` is refused as Caffe refuses it.
use crema_proto::caffe::{LayerParameter, Phase};

use super::propagates;
use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::layers::neuron::reshape_like;
use crate::layers::Layer;

pub struct BatchNormLayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
    use_global_stats: bool,
    moving_average_fraction: f32,
    eps: f32,
    channels: usize,
    /// sqrt(var + eps) per channel, from the last forward.
    std: Vec<f32>,
    /// The normalised output of the last forward (the top may be overwritten in place).
    x_norm: Vec<f32>,
}

impl BatchNormLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let bp = &param.batch_norm_param;
        let use_global_stats = if bp.has_use_global_stats() {
            bp.use_global_stats()
        } else {
            param.phase() == Phase::TEST
        };
        Ok(Box::new(BatchNormLayer {
            param: param.clone(),
            blobs: Vec::new(),
            use_global_stats,
            moving_average_fraction: bp.moving_average_fraction(),
            eps: bp.eps(),
            channels: 0,
            std: Vec::new(),
            x_norm: Vec::new(),
        }))
    }

    /// (num, channels, spatial) of a bottom.
    fn geometry(&self, b: &Blob) -> (usize, usize, usize) {
        let num = b.shape()[0];
        let c = self.channels;
        (num, c, b.count().checked_div(num * c).unwrap_or(0))
    }
}

/// Per-channel sums of `f(value)` over an `[n, c, spatial]` buffer, in f64.
fn channel_sums(v: &[f32], c: usize, spatial: usize, f: impl Fn(usize, f32) -> f64) -> Vec<f64> {
    let mut s = vec![0.0f64; c];
    for (i, &x) in v.iter().enumerate() {
        s[(i / spatial) % c] += f(i, x);
    }
    s
}

impl Layer for BatchNormLayer {
    fn type_name(&self) -> &'static str {
        "BatchNorm"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        for (i, spec) in p.param.iter().enumerate() {
            crate::ensure!(
                p,
                spec.lr_mult() == 0.0,
                "Cannot configure batch normalization statistics as layer parameters (param {i} has lr_mult {}).",
                spec.lr_mult()
            );
        }
        let b = bottom[0].borrow();
        crate::ensure!(
            p,
            b.num_axes() >= 1,
            "BatchNorm needs a bottom with at least one axis"
        );
        self.channels = if b.num_axes() == 1 { 1 } else { b.shape()[1] };
        if self.blobs.is_empty() {
            let c = self.channels;
            self.blobs = vec![Blob::shared(&[c]), Blob::shared(&[c]), Blob::shared(&[1])];
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let c = if b.num_axes() == 1 { 1 } else { b.shape()[1] };
        crate::ensure!(
            &self.param,
            b.num_axes() >= 1 && c == self.channels,
            "bottom {} does not have the {} channels the statistics were made for",
            b.shape_string(),
            self.channels
        );
        drop(b);
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (num, c, spatial) = self.geometry(&bottom[0].borrow());
        let x = bottom[0].borrow().data().to_vec();
        if x.is_empty() {
            return Ok(());
        }
        let m = (num * spatial) as f64;
        let (mean, var): (Vec<f64>, Vec<f64>) = if self.use_global_stats {
            let f = self.blobs[2].borrow().data()[0];
            let k = if f == 0.0 { 0.0 } else { 1.0 / f as f64 };
            let mean = self.blobs[0]
                .borrow()
                .data()
                .iter()
                .map(|&v| v as f64 * k)
                .collect();
            let var = self.blobs[1]
                .borrow()
                .data()
                .iter()
                .map(|&v| v as f64 * k)
                .collect();
            (mean, var)
        } else {
            let mean: Vec<f64> = channel_sums(&x, c, spatial, |_, v| v as f64)
                .iter()
                .map(|s| s / m)
                .collect();
            let var: Vec<f64> = channel_sums(&x, c, spatial, |i, v| {
                let d = v as f64 - mean[(i / spatial) % c];
                d * d
            })
            .iter()
            .map(|s| s / m)
            .collect();
            // Fold the batch statistics into the running sums.
            let maf = self.moving_average_fraction;
            let bias_correction = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
            let factor = self.blobs[2].borrow().data()[0] * maf + 1.0;
            self.blobs[2].borrow_mut().data_mut()[0] = factor;
            let mut mb = self.blobs[0].borrow_mut();
            mb.data_mut()
                .iter_mut()
                .zip(&mean)
                .for_each(|(b, &v)| *b = (v + maf as f64 * *b as f64) as f32);
            let mut vb = self.blobs[1].borrow_mut();
            vb.data_mut()
                .iter_mut()
                .zip(&var)
                .for_each(|(b, &v)| *b = (bias_correction * v + maf as f64 * *b as f64) as f32);
            (mean, var)
        };
        self.std = var
            .iter()
            .map(|&v| (v + self.eps as f64).sqrt() as f32)
            .collect();
        self.x_norm.clear();
        self.x_norm.extend(x.iter().enumerate().map(|(i, &v)| {
            let ch = (i / spatial) % c;
            ((v as f64 - mean[ch]) / self.std[ch] as f64) as f32
        }));
        top[0].borrow_mut().data_mut().copy_from_slice(&self.x_norm);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let (num, c, spatial) = self.geometry(&bottom[0].borrow());
        let dy = top[0].borrow().diff().to_vec();
        let std = &self.std;
        let dx: Vec<f32> = if self.use_global_stats {
            // The statistics are constants, so y is affine in x.
            dy.iter()
                .enumerate()
                .map(|(i, &d)| d / std[(i / spatial) % c])
                .collect()
        } else {
            // dx = (dy - mean(dy) - y·mean(dy·y)) / std, means per channel.
            let m = (num * spatial) as f64;
            let y = &self.x_norm;
            let mean_dy: Vec<f64> = channel_sums(&dy, c, spatial, |_, d| d as f64)
                .iter()
                .map(|s| s / m)
                .collect();
            let mean_dyy: Vec<f64> = channel_sums(&dy, c, spatial, |i, d| d as f64 * y[i] as f64)
                .iter()
                .map(|s| s / m)
                .collect();
            dy.iter()
                .enumerate()
                .map(|(i, &d)| {
                    let ch = (i / spatial) % c;
                    ((d as f64 - mean_dy[ch] - y[i] as f64 * mean_dyy[ch]) / std[ch] as f64) as f32
                })
                .collect()
        };
        // In place the top diff was copied out above, so overwriting is safe.
        bottom[0].borrow_mut().diff_mut().copy_from_slice(&dx);
        Ok(())
    }
    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    /// The statistics are never learned: an unconfigured one gets `lr_mult: 0`.
    fn default_param_spec(&self, _param_index: usize) -> Option<crema_proto::caffe::ParamSpec> {
        let mut spec = crema_proto::caffe::ParamSpec::new();
        spec.set_lr_mult(0.0);
        Some(spec)
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::{LayerParameter, Phase};

    use crate::blob::SharedBlob;
    use crate::error::Result;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::layers::Layer;
    use crate::Blob;

    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/norm_layers.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn bn(phase: Phase, global: Option<bool>) -> LayerParameter {
        param_in("BatchNorm", phase, |p| {
            if let Some(g) = global {
                p.batch_norm_param
                    .mut_or_insert_default()
                    .set_use_global_stats(g);
            }
        })
    }

    /// Forward with `x`, backward with the fixture's `dy`; returns (y, dx).
    fn forward_backward(l: &mut dyn Layer, x: &[f32], in_place: bool) -> (Vec<f32>, Vec<f32>) {
        let b = blob(&[2, 3, 2, 2], x);
        let t = if in_place { b.clone() } else { empty() };
        l.reshape(&[b.clone()], &[t.clone()]).unwrap();
        l.forward(&[b.clone()], &[t.clone()]).unwrap();
        let y = t.borrow().data().to_vec();
        t.borrow_mut().diff_mut().copy_from_slice(&fixture("dy"));
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        let dx = b.borrow().diff().to_vec();
        (y, dx)
    }

    #[test]
    fn batch_norm_train_matches_numpy_and_keeps_caffe_running_sums() {
        for in_place in [false, true] {
            let mut l = layer(&bn(Phase::TRAIN, None));
            l.setup(&[Blob::shared(&[2, 3, 2, 2])], &[empty()]).unwrap();
            let shapes: Vec<Vec<usize>> = l
                .blobs()
                .iter()
                .map(|b| b.borrow().shape().to_vec())
                .collect();
            assert_eq!(shapes, vec![vec![3], vec![3], vec![1]]);
            let (y, dx) = forward_backward(&mut *l, &fixture("x"), in_place);
            assert_close(&y, &fixture("bn_train_y"), 1e-5);
            assert_close(&dx, &fixture("bn_train_dx"), 1e-5);
            assert_close(l.blobs()[0].borrow().data(), &fixture("bn_mean_blob"), 1e-6);
            assert_close(l.blobs()[1].borrow().data(), &fixture("bn_var_blob"), 1e-5);
            assert_eq!(l.blobs()[2].borrow().data(), &[1.0]);
            let x2: Vec<f32> = fixture("x").iter().map(|v| 2.0 * v).collect();
            forward_backward(&mut *l, &x2, in_place);
            assert_close(
                l.blobs()[0].borrow().data(),
                &fixture("bn_mean_blob_2"),
                1e-5,
            );
            assert_close(
                l.blobs()[1].borrow().data(),
                &fixture("bn_var_blob_2"),
                1e-4,
            );
            assert_close(l.blobs()[2].borrow().data(), &fixture("bn_factor_2"), 1e-6);
            assert!(
                l.blobs()
                    .iter()
                    .all(|b| b.borrow().diff().iter().all(|&d| d == 0.0)),
                "statistics get no gradient"
            );
        }
    }

    #[test]
    fn batch_norm_global_stats_divide_by_the_factor() {
        // TEST phase defaults to global statistics; TRAIN with the flag set does too.
        for p in [bn(Phase::TEST, None), bn(Phase::TRAIN, Some(true))] {
            let mut l = layer(&p);
            l.setup(&[Blob::shared(&[2, 3, 2, 2])], &[empty()]).unwrap();
            let blobs = fixture("bn_global_blobs");
            for (k, b) in l.blobs().iter().enumerate() {
                let n = b.borrow().count();
                b.borrow_mut()
                    .data_mut()
                    .copy_from_slice(&blobs[3 * k..3 * k + n]);
            }
            let (y, dx) = forward_backward(&mut *l, &fixture("x"), false);
            assert_close(&y, &fixture("bn_global_y"), 1e-5);
            assert_close(&dx, &fixture("bn_global_dx"), 1e-5);
            assert_close(l.blobs()[2].borrow().data(), &[4.0], 0.0);
        }
        // A zero factor (a fresh layer) means zero statistics, not a division by zero.
        let mut l = layer(&bn(Phase::TEST, None));
        let (b, t) = (blob(&[1, 1, 2], &[1.0, -2.0]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        let k = 1.0 / 1e-5f32.sqrt();
        assert_close(t.borrow().data(), &[k, -2.0 * k], 1e-2);
    }

    #[test]
    fn batch_norm_eps_and_fraction_are_honoured() {
        let mut l = layer(&param("BatchNorm", |p| {
            let bp = p.batch_norm_param.mut_or_insert_default();
            bp.set_eps(1.0);
            bp.set_moving_average_fraction(0.5);
        }));
        // One channel, values 1 and 3: mean 2, var 1, std sqrt(1 + 1).
        let (b, t) = (blob(&[2, 1], &[1.0, 3.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        let s = 2f32.sqrt();
        assert_close(t.borrow().data(), &[-1.0 / s, 1.0 / s], 1e-6);
        l.forward(&[b], &[t]).unwrap();
        // Second step: 2 + 0.5·2, 2·1 + 0.5·2 (unbiased var 2), factor 1.5.
        assert_close(l.blobs()[0].borrow().data(), &[3.0], 1e-6);
        assert_close(l.blobs()[1].borrow().data(), &[3.0], 1e-6);
        assert_close(l.blobs()[2].borrow().data(), &[1.5], 1e-6);
    }

    #[test]
    fn batch_norm_refuses_learnable_statistics_and_changed_channels() {
        let p = param("BatchNorm", |p| {
            p.param.push(Default::default());
            p.param[0].set_lr_mult(0.0);
            p.param.push(Default::default());
            p.param[1].set_lr_mult(1.0);
        });
        let msg = setup_error(&mut *layer(&p), &[Blob::shared(&[2, 3])], &[empty()]);
        assert!(
            msg.contains("Cannot configure batch normalization statistics"),
            "{msg}"
        );
        let mut l = layer(&bn(Phase::TRAIN, None));
        let t = empty();
        l.setup(&[Blob::shared(&[2, 3])], &[t.clone()]).unwrap();
        let msg = l
            .reshape(&[Blob::shared(&[2, 4])], &[t])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("3 channels"), "{msg}");
    }

    /// Hides the statistics from the checker: they are not differentiated.
    struct WithoutBlobs(Box<dyn Layer>);
    impl Layer for WithoutBlobs {
        fn type_name(&self) -> &'static str {
            self.0.type_name()
        }
        fn setup(&mut self, b: &[SharedBlob], t: &[SharedBlob]) -> Result<()> {
            self.0.setup(b, t)
        }
        fn reshape(&mut self, b: &[SharedBlob], t: &[SharedBlob]) -> Result<()> {
            self.0.reshape(b, t)
        }
        fn forward(&mut self, b: &[SharedBlob], t: &[SharedBlob]) -> Result<()> {
            self.0.forward(b, t)
        }
        fn backward(&mut self, t: &[SharedBlob], p: &[bool], b: &[SharedBlob]) -> Result<()> {
            self.0.backward(t, p, b)
        }
    }

    #[test]
    fn batch_norm_gradient_train_and_global() {
        for global in [false, true] {
            let x = Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -1.0, 1.0, 61);
            let mut l = WithoutBlobs(layer(&bn(Phase::TRAIN, Some(global))));
            l.setup(&[x.clone()], &[empty()]).unwrap();
            for b in l.0.blobs() {
                b.borrow_mut()
                    .data_mut()
                    .fill(if global { 0.5 } else { 0.0 });
            }
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut l,
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
