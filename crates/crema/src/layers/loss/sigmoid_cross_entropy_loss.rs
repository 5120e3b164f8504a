//! SigmoidCrossEntropyLoss: the logistic loss of logits `x` against targets
//! `t` in [0, 1], `Σ max(x, 0) - x t + ln(1 + e^-|x|)` (the overflow-free form
//! of `-t ln σ(x) - (1 - t) ln(1 - σ(x))`), over every element.
//!
//! Positions whose target (truncated to an integer) equals `ignore_label` add
//! nothing. The normalizer is `loss_param.normalization` when set, else the
//! legacy `normalize` (true: VALID, false: BATCH_SIZE), else BATCH_SIZE — this
//! layer's default differs from SoftmaxWithLoss's, as in Caffe.
use crema_proto::caffe::loss_parameter::NormalizationMode;
use crema_proto::caffe::LayerParameter;

use super::check_loss_shapes;
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

pub struct SigmoidCrossEntropyLossLayer {
    param: LayerParameter,
    ignore_label: Option<i32>,
    normalization: NormalizationMode,
    /// σ(x) of the last forward.
    sigmoid: Vec<f32>,
    outer: usize,
    /// Targets not ignored in the last forward.
    valid_count: usize,
}

impl SigmoidCrossEntropyLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let lp = &param.loss_param;
        let normalization = if lp.has_normalization() {
            lp.normalization()
        } else if lp.has_normalize() {
            if lp.normalize() {
                NormalizationMode::VALID
            } else {
                NormalizationMode::BATCH_SIZE
            }
        } else {
            NormalizationMode::BATCH_SIZE
        };
        Ok(Box::new(SigmoidCrossEntropyLossLayer {
            param: param.clone(),
            ignore_label: lp.has_ignore_label().then(|| lp.ignore_label()),
            normalization,
            sigmoid: Vec::new(),
            outer: 0,
            valid_count: 0,
        }))
    }

    fn ignored(&self, t: f32) -> bool {
        self.ignore_label == Some(t as i32)
    }

    /// What the summed loss is divided by (Caffe's GetNormalizer).
    fn normalizer(&self) -> f32 {
        super::normalizer(
            self.normalization,
            self.outer,
            self.sigmoid.len() / self.outer.max(1),
            self.valid_count,
        )
    }
}

impl Layer for SigmoidCrossEntropyLossLayer {
    fn type_name(&self) -> &'static str {
        "SigmoidCrossEntropyLoss"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        check_loss_shapes(p, bottom)?;
        let (x, t) = (bottom[0].borrow(), bottom[1].borrow());
        crate::ensure!(
            p,
            x.count() == t.count(),
            "SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count: {} vs {}",
            x.shape_string(),
            t.shape_string()
        );
        self.outer = x.shape()[0];
        self.sigmoid.resize(x.count(), 0.0);
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (x, t) = (bottom[0].borrow(), bottom[1].borrow());
        let mut loss = 0.0f64;
        let mut valid = 0;
        for (i, (&xi, &ti)) in x.data().iter().zip(t.data()).enumerate() {
            self.sigmoid[i] = 0.5 * (0.5 * xi).tanh() + 0.5;
            if self.ignored(ti) {
                continue;
            }
            let (xi, ti) = (xi as f64, ti as f64);
            loss += xi.max(0.0) - xi * ti + (-xi.abs()).exp().ln_1p();
            valid += 1;
        }
        self.valid_count = valid;
        top[0].borrow_mut().data_mut()[0] = (loss / self.normalizer() as f64) as f32;
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
                "SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let scale = top[0].borrow().diff()[0] / self.normalizer();
        let t = bottom[1].borrow();
        let mut b = bottom[0].borrow_mut();
        for (i, d) in b.diff_mut().iter_mut().enumerate() {
            let ti = t.data()[i];
            *d = if self.ignored(ti) {
                0.0
            } else {
                (self.sigmoid[i] - ti) * scale
            };
        }
        Ok(())
    }
    super::loss_layer_facts!();
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::loss_parameter::NormalizationMode;
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    /// A line of `tests/fixtures/more_losses.txt` (made by `more_losses.py`).
    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/more_losses.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn sce(edit: impl FnOnce(&mut crema_proto::caffe::LossParameter)) -> LayerParameter {
        param("SigmoidCrossEntropyLoss", |p| {
            edit(p.loss_param.mut_or_insert_default())
        })
    }

    fn loss_and_grad(p: &LayerParameter, weight: f32) -> (f32, Vec<f32>) {
        let (x, t, top) = (
            blob(&[2, 3, 2], &fixture("sce_x")),
            blob(&[2, 3, 2], &fixture("sce_t")),
            empty(),
        );
        let mut l = layer(p);
        run(&mut *l, &[x.clone(), t.clone()], &[top.clone()]);
        top.borrow_mut().diff_mut()[0] = weight;
        l.backward(&[top.clone()], &[true, false], &[x.clone(), t])
            .unwrap();
        let loss = top.borrow().data()[0];
        let grad = x.borrow().diff().to_vec();
        (loss, grad)
    }

    #[test]
    fn sce_every_normalization_with_and_without_ignore_matches_numpy() {
        for (mode, name) in [
            (NormalizationMode::FULL, "FULL"),
            (NormalizationMode::VALID, "VALID"),
            (NormalizationMode::BATCH_SIZE, "BATCH_SIZE"),
            (NormalizationMode::NONE, "NONE"),
        ] {
            for ignore in [false, true] {
                let tag = format!("{name}_{}", if ignore { "ignore" } else { "all" });
                let p = sce(|lp| {
                    lp.set_normalization(mode);
                    if ignore {
                        lp.set_ignore_label(-1);
                    }
                });
                let (loss, grad) = loss_and_grad(&p, 2.0);
                assert!(
                    (loss - fixture(&format!("sce_loss_{tag}"))[0]).abs() < 1e-5,
                    "{tag}: {loss}"
                );
                let want: Vec<f32> = fixture(&format!("sce_grad_{tag}"))
                    .iter()
                    .map(|g| 2.0 * g)
                    .collect();
                assert_close(&grad, &want, 1e-6);
            }
        }
    }

    #[test]
    fn sce_normalization_defaults_to_batch_size_and_legacy_normalize_resolves() {
        let want = |k: &str| fixture(&format!("sce_loss_{k}_ignore"))[0];
        let close = |p: LayerParameter, k: &str| (loss_and_grad(&p, 1.0).0 - want(k)).abs() < 1e-5;
        assert!(close(sce(|lp| lp.set_ignore_label(-1)), "BATCH_SIZE"));
        assert!(close(
            sce(|lp| {
                lp.set_ignore_label(-1);
                lp.set_normalize(true)
            }),
            "VALID"
        ));
        assert!(close(
            sce(|lp| {
                lp.set_ignore_label(-1);
                lp.set_normalize(false)
            }),
            "BATCH_SIZE"
        ));
        assert!(close(
            sce(|lp| {
                lp.set_ignore_label(-1);
                lp.set_normalize(true);
                lp.set_normalization(NormalizationMode::NONE)
            }),
            "NONE"
        ));
    }

    #[test]
    fn sce_refuses_count_mismatch_and_label_gradient() {
        let p = sce(|_| {});
        let msg = setup_error(
            &mut *layer(&p),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2, 2])],
            &[empty()],
        );
        assert!(msg.contains("must have the same count"), "{msg}");
        let mut l = layer(&p);
        let (x, t, top) = (Blob::shared(&[1, 2]), Blob::shared(&[1, 2]), empty());
        run(&mut *l, &[x.clone(), t.clone()], &[top.clone()]);
        let msg = l
            .backward(&[top], &[true, true], &[x, t])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot backpropagate to label inputs"),
            "{msg}"
        );
        assert!(!l.allow_force_backward(1) && l.default_loss_weight(0) == 1.0);
    }

    #[test]
    fn sce_gradient() {
        for ignore in [false, true] {
            let x = Blob::shared(&[2, 3, 2]);
            fill_uniform(&x, -2.0, 2.0, 71);
            let t = blob(&[2, 3, 2], &fixture("sce_t"));
            let p = sce(|lp| {
                if ignore {
                    lp.set_ignore_label(-1);
                }
            });
            GradientChecker::new(1e-2, 1e-2).check_gradient_exhaustive(
                &mut *layer(&p),
                &[x, t],
                &[empty()],
                Some(0),
            );
        }
    }
}
