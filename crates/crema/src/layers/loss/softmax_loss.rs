//! SoftmaxWithLoss: softmax over `softmax_param.axis` (default 1), then the
//! mean negative log-probability of the labelled class. Labels hold one class
//! index per position of the other axes; positions labelled `ignore_label` add
//! nothing to the loss or the gradient. An optional second top receives the
//! probabilities.
//!
//! The normalizer is `loss_param.normalization` (default VALID), unless only the
//! legacy `normalize` is set: `normalize: true` means VALID, `false` BATCH_SIZE.
use crema_proto::caffe::loss_parameter::NormalizationMode;
use crema_proto::caffe::LayerParameter;

use super::{check_loss_shapes, class_label};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::{Error, Result};
use crate::layers::common::softmax::softmax_in_place;
use crate::layers::common::{canonical_axis, check_distinct, propagates};
use crate::layers::Layer;

pub struct SoftmaxWithLossLayer {
    param: LayerParameter,
    ignore_label: Option<i32>,
    normalization: NormalizationMode,
    prob: Vec<f32>,
    outer: usize,
    channels: usize,
    inner: usize,
    /// Labels counted by the last forward (not ignored).
    valid_count: usize,
}

impl SoftmaxWithLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let lp = &param.loss_param;
        let normalization = if !lp.has_normalization() && lp.has_normalize() {
            if lp.normalize() {
                NormalizationMode::VALID
            } else {
                NormalizationMode::BATCH_SIZE
            }
        } else {
            lp.normalization()
        };
        Ok(Box::new(SoftmaxWithLossLayer {
            param: param.clone(),
            ignore_label: lp.has_ignore_label().then(|| lp.ignore_label()),
            normalization,
            prob: Vec::new(),
            outer: 0,
            channels: 0,
            inner: 0,
            valid_count: 0,
        }))
    }

    /// What the summed loss is divided by (Caffe's GetNormalizer).
    fn normalizer(&self) -> f32 {
        super::normalizer(self.normalization, self.outer, self.inner, self.valid_count)
    }
}

impl Layer for SoftmaxWithLossLayer {
    fn type_name(&self) -> &'static str {
        "SoftmaxWithLoss"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        check_loss_shapes(p, bottom)?;
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        let axis = canonical_axis(p, &x, p.softmax_param.axis() as i64)?;
        self.outer = x.count_range(0, axis);
        self.channels = x.shape()[axis];
        self.inner = x.count_from(axis + 1);
        ensure!(
            p,
            self.outer * self.inner == label.count(),
            "Number of labels must match number of predictions; e.g., if softmax axis == 1 and prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in {{0, 1, ..., C-1}}. Got predictions {} and labels {}",
            x.shape_string(),
            label.shape_string()
        );
        self.prob.resize(x.count(), 0.0);
        top[0].borrow_mut().reshape(&[]);
        if let Some(t) = top.get(1) {
            t.borrow_mut().reshape_like(&x);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (c, inner) = (self.channels, self.inner);
        self.prob.copy_from_slice(bottom[0].borrow().data());
        softmax_in_place(&mut self.prob, self.outer, c, inner);
        let label = bottom[1].borrow();
        let mut loss = 0.0f64;
        let mut count = 0;
        for i in 0..self.outer {
            for j in 0..inner {
                let Some(l) = class_label(
                    &self.param,
                    label.data(),
                    i * inner + j,
                    c,
                    self.ignore_label,
                )?
                else {
                    continue;
                };
                let p = self.prob[(i * c + l) * inner + j];
                loss -= (p.max(f32::MIN_POSITIVE) as f64).ln();
                count += 1;
            }
        }
        self.valid_count = count;
        top[0].borrow_mut().data_mut()[0] = (loss / self.normalizer() as f64) as f32;
        if let Some(t) = top.get(1) {
            t.borrow_mut().data_mut().copy_from_slice(&self.prob);
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 1) {
            return Err(Error::layer(
                &self.param,
                "SoftmaxWithLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let (c, inner) = (self.channels, self.inner);
        let scale = top[0].borrow().diff()[0] / self.normalizer();
        let label = bottom[1].borrow();
        let mut b = bottom[0].borrow_mut();
        let dx = b.diff_mut();
        dx.copy_from_slice(&self.prob);
        for i in 0..self.outer {
            for j in 0..inner {
                match class_label(
                    &self.param,
                    label.data(),
                    i * inner + j,
                    c,
                    self.ignore_label,
                )? {
                    Some(l) => dx[(i * c + l) * inner + j] -= 1.0,
                    None => (0..c).for_each(|k| dx[(i * c + k) * inner + j] = 0.0),
                }
            }
        }
        dx.iter_mut().for_each(|d| *d *= scale);
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn auto_top_blobs(&self) -> bool {
        true
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index != 1
    }
    fn default_loss_weight(&self, top_index: usize) -> f32 {
        if top_index == 0 {
            1.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crema_proto::caffe::loss_parameter::NormalizationMode;
    use crema_proto::caffe::LayerParameter;

    use super::super::fixture;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    fn softmax_loss(edit: impl FnOnce(&mut LayerParameter)) -> LayerParameter {
        param("SoftmaxWithLoss", edit)
    }

    /// Runs forward then backward with `loss_weight` as the top diff; returns
    /// (loss, bottom diff).
    fn loss_and_grad(
        p: &LayerParameter,
        x: &[f32],
        shape: &[usize],
        labels: &[f32],
        label_shape: &[usize],
        loss_weight: f32,
    ) -> (f32, Vec<f32>) {
        let (b, l, t) = (blob(shape, x), blob(label_shape, labels), empty());
        let mut layer = layer(p);
        run(&mut *layer, &[b.clone(), l.clone()], &[t.clone()]);
        t.borrow_mut().diff_mut()[0] = loss_weight;
        layer
            .backward(&[t.clone()], &[true, false], &[b.clone(), l])
            .unwrap();
        let loss = t.borrow().data()[0];
        let grad = b.borrow().diff().to_vec();
        (loss, grad)
    }

    #[test]
    fn hand_worked_loss_and_gradient() {
        // Logits [0, ln 2, ln 3] give probabilities [1/6, 2/6, 3/6].
        let (l2, l3) = (2f32.ln(), 3f32.ln());
        let x = [0.0, l2, l3, 0.0, l2, l3];
        let (loss, grad) =
            loss_and_grad(&softmax_loss(|_| {}), &x, &[2, 3], &[2.0, 0.0], &[2], 1.0);
        // (-ln(1/2) - ln(1/6)) / 2 = ln(12) / 2
        assert!((loss - 12f32.ln() / 2.0).abs() < 1e-6, "{loss}");
        let s = 1.0 / 6.0;
        assert_close(
            &grad,
            &[
                s / 2.0,
                2.0 * s / 2.0,
                (0.5 - 1.0) / 2.0,
                (s - 1.0) / 2.0,
                s,
                0.25,
            ],
            1e-6,
        );
    }

    fn normalization_case(mode: NormalizationMode, ignore: bool) -> LayerParameter {
        softmax_loss(|p| {
            let lp = p.loss_param.mut_or_insert_default();
            lp.set_normalization(mode);
            if ignore {
                lp.set_ignore_label(2);
            }
        })
    }

    #[test]
    fn every_normalization_mode_with_and_without_ignore_label_matches_numpy() {
        let (x, labels) = (fixture("x"), fixture("labels"));
        for (mode, name) in [
            (NormalizationMode::FULL, "FULL"),
            (NormalizationMode::VALID, "VALID"),
            (NormalizationMode::BATCH_SIZE, "BATCH_SIZE"),
            (NormalizationMode::NONE, "NONE"),
        ] {
            for ignore in [false, true] {
                let tag = format!("{name}_{}", if ignore { "ignore" } else { "all" });
                let (loss, grad) = loss_and_grad(
                    &normalization_case(mode, ignore),
                    &x,
                    &[2, 3, 2, 2],
                    &labels,
                    &[2, 1, 2, 2],
                    3.0,
                );
                assert!(
                    (loss - fixture(&format!("loss_{tag}"))[0]).abs() < 1e-5,
                    "{tag}: loss {loss}"
                );
                let want: Vec<f32> = fixture(&format!("grad_{tag}"))
                    .iter()
                    .map(|g| 3.0 * g)
                    .collect();
                assert_close(&grad, &want, 1e-6);
            }
        }
    }

    #[test]
    fn all_labels_ignored_gives_zero_loss_not_nan() {
        let p = normalization_case(NormalizationMode::VALID, true);
        let (loss, grad) = loss_and_grad(
            &p,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[2, 3],
            &[2.0, 2.0],
            &[2],
            1.0,
        );
        assert_eq!(loss, 0.0);
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn legacy_normalize_field_resolves_like_caffe() {
        let (x, labels) = (fixture("x"), fixture("labels"));
        let loss_of =
            |p: LayerParameter| loss_and_grad(&p, &x, &[2, 3, 2, 2], &labels, &[2, 1, 2, 2], 1.0).0;
        let with = |normalize: Option<bool>, normalization: Option<NormalizationMode>| {
            softmax_loss(|p| {
                let lp = p.loss_param.mut_or_insert_default();
                lp.set_ignore_label(2);
                if let Some(n) = normalize {
                    lp.set_normalize(n);
                }
                if let Some(m) = normalization {
                    lp.set_normalization(m);
                }
            })
        };
        let (valid, batch, none) = (
            fixture("loss_VALID_ignore")[0],
            fixture("loss_BATCH_SIZE_ignore")[0],
            fixture("loss_NONE_ignore")[0],
        );
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(loss_of(with(None, None)), valid), "default is VALID");
        assert!(
            close(loss_of(with(Some(true), None)), valid),
            "normalize: true is VALID"
        );
        assert!(
            close(loss_of(with(Some(false), None)), batch),
            "normalize: false is BATCH_SIZE"
        );
        assert!(
            close(
                loss_of(with(Some(false), Some(NormalizationMode::NONE))),
                none
            ),
            "normalization wins"
        );
    }

    #[test]
    fn second_top_holds_probabilities_and_axis_is_honoured() {
        let (x, labels) = (fixture("x"), fixture("labels"));
        let (b, l, t, prob) = (
            blob(&[2, 3, 2, 2], &x),
            blob(&[2, 2, 2], &labels),
            empty(),
            empty(),
        );
        run(
            &mut *layer(&softmax_loss(|_| {})),
            &[b, l],
            &[t.clone(), prob.clone()],
        );
        assert_eq!(prob.borrow().shape(), &[2, 3, 2, 2]);
        assert_close(prob.borrow().data(), &fixture("prob"), 1e-6);
        assert_eq!(t.borrow().shape(), &[] as &[usize]);

        // The same numbers with the class axis moved last and softmax_param.axis: -1.
        let moved: Vec<f32> = (0..24)
            .map(|k| {
                let (n, h, w, c) = (k / 12, (k / 6) % 2, (k / 3) % 2, k % 3);
                x[((n * 3 + c) * 2 + h) * 2 + w]
            })
            .collect();
        let p = softmax_loss(|p| p.softmax_param.mut_or_insert_default().set_axis(-1));
        let (loss, _) = loss_and_grad(&p, &moved, &[2, 2, 2, 3], &labels, &[2, 2, 2], 1.0);
        assert!((loss - fixture("loss_VALID_all")[0]).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn refuses_mismatched_labels_bad_labels_and_label_gradients() {
        let p = softmax_loss(|_| {});
        let msg = setup_error(
            &mut *layer(&p),
            &[Blob::shared(&[2, 3]), Blob::shared(&[3])],
            &[empty()],
        );
        assert!(msg.contains("same first dimension"), "{msg}");
        let msg = setup_error(
            &mut *layer(&p),
            &[Blob::shared(&[2, 3, 2]), Blob::shared(&[2, 1])],
            &[empty()],
        );
        assert!(msg.contains("Number of labels must match"), "{msg}");

        let mut l = layer(&p);
        let (b, lab, t) = (blob(&[1, 3], &[0.0; 3]), blob(&[1], &[3.0]), empty());
        l.setup(&[b.clone(), lab.clone()], &[t.clone()]).unwrap();
        l.reshape(&[b.clone(), lab.clone()], &[t.clone()]).unwrap();
        let msg = l
            .forward(&[b.clone(), lab.clone()], &[t.clone()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("outside [0, 3)"), "{msg}");

        lab.borrow_mut().data_mut()[0] = 1.0;
        l.forward(&[b.clone(), lab.clone()], &[t.clone()]).unwrap();
        let msg = l
            .backward(&[t], &[true, true], &[b, lab])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot backpropagate to label inputs"),
            "{msg}"
        );
        assert!(l.allow_force_backward(0) && !l.allow_force_backward(1));
        assert_eq!(
            (l.default_loss_weight(0), l.default_loss_weight(1)),
            (1.0, 0.0)
        );
    }

    #[test]
    fn softmax_loss_gradient() {
        for (axis, ignore) in [(1, None), (1, Some(1)), (2, Some(0))] {
            let p = softmax_loss(|p| {
                p.softmax_param.mut_or_insert_default().set_axis(axis);
                if let Some(i) = ignore {
                    p.loss_param.mut_or_insert_default().set_ignore_label(i);
                }
            });
            let x = Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -1.0, 1.0, 17);
            let label_shape: &[usize] = if axis == 1 { &[2, 2, 2] } else { &[2, 3, 2] };
            let n: usize = label_shape.iter().product();
            let labels: Vec<f32> = (0..n)
                .map(|k| ((k * 7) % if axis == 1 { 3 } else { 2 }) as f32)
                .collect();
            let l = blob(label_shape, &labels);
            GradientChecker::new(1e-2, 1e-2).check_gradient_exhaustive(
                &mut *layer(&p),
                &[x, l],
                &[empty()],
                Some(0),
            );
        }
    }
}
