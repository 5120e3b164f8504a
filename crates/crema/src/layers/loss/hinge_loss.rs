//! HingeLoss: one-vs-all hinge on scores `[N, K]` (every axis after the first
//! counts as a score) with one class label per row. The margin of score k is
//! `max(0, 1 + δ_k x_k)` with `δ = -1` for the labelled class and +1 for the
//! others; the loss sums margins (L1, default) or squared margins (L2) and
//! divides by N.
use crema_proto::caffe::hinge_loss_parameter::Norm;
use crema_proto::caffe::LayerParameter;

use super::{check_loss_shapes, class_label};
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

pub struct HingeLossLayer {
    param: LayerParameter,
    norm: Norm,
    /// Signed margins `δ_k max(0, 1 + δ_k x_k)` of the last forward.
    margins: Vec<f32>,
    num: usize,
}

impl HingeLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(HingeLossLayer {
            param: param.clone(),
            norm: param.hinge_loss_param.norm(),
            margins: Vec::new(),
            num: 0,
        }))
    }
}

impl Layer for HingeLossLayer {
    fn type_name(&self) -> &'static str {
        "HingeLoss"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        check_loss_shapes(p, bottom)?;
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        self.num = x.shape()[0];
        crate::ensure!(
            p,
            label.count() == self.num,
            "HingeLoss needs one label per row: {} scores, {} labels",
            x.shape_string(),
            label.shape_string()
        );
        self.margins.resize(x.count(), 0.0);
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        let num = self.num;
        let dim = x.count().checked_div(num).unwrap_or(0);
        let mut loss = 0.0f64;
        for i in 0..num {
            let l = class_label(&self.param, label.data(), i, dim, None)?.expect("no ignore label");
            for k in 0..dim {
                let sign = if k == l { -1.0 } else { 1.0 };
                let m = (1.0 + sign * x.data()[i * dim + k]).max(0.0);
                self.margins[i * dim + k] = sign * m;
                loss += match self.norm {
                    Norm::L1 => m as f64,
                    Norm::L2 => (m * m) as f64,
                };
            }
        }
        top[0].borrow_mut().data_mut()[0] = (loss / num.max(1) as f64) as f32;
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
                "HingeLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let scale = top[0].borrow().diff()[0] / self.num.max(1) as f32;
        let mut b = bottom[0].borrow_mut();
        for (d, &m) in b.diff_mut().iter_mut().zip(&self.margins) {
            *d = scale
                * match self.norm {
                    // Caffe's sign: 0 where the margin is inactive.
                    Norm::L1 => {
                        if m > 0.0 {
                            1.0
                        } else if m < 0.0 {
                            -1.0
                        } else {
                            0.0
                        }
                    }
                    Norm::L2 => 2.0 * m,
                };
        }
        Ok(())
    }
    super::loss_layer_facts!();
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::hinge_loss_parameter::Norm;
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    /// A line of `tests/fixtures/more_losses.txt` (made by `more_losses.py`).
    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/more_losses.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn hinge(norm: Option<Norm>) -> LayerParameter {
        param("HingeLoss", |p| {
            if let Some(n) = norm {
                p.hinge_loss_param.mut_or_insert_default().set_norm(n);
            }
        })
    }

    #[test]
    fn hinge_l1_default_and_l2_match_numpy() {
        for (norm, tag) in [(None, "L1"), (Some(Norm::L1), "L1"), (Some(Norm::L2), "L2")] {
            let (x, l, t) = (
                blob(&[3, 4], &fixture("hinge_x")),
                blob(&[3], &fixture("hinge_labels")),
                empty(),
            );
            let mut layer = layer(&hinge(norm));
            run(&mut *layer, &[x.clone(), l.clone()], &[t.clone()]);
            assert!(
                (t.borrow().data()[0] - fixture(&format!("hinge_loss_{tag}"))[0]).abs() < 1e-5,
                "{tag}"
            );
            t.borrow_mut().diff_mut()[0] = 0.5;
            layer
                .backward(&[t], &[true, false], &[x.clone(), l])
                .unwrap();
            let want: Vec<f32> = fixture(&format!("hinge_grad_{tag}"))
                .iter()
                .map(|g| 0.5 * g)
                .collect();
            assert_close(x.borrow().diff(), &want, 1e-6);
        }
    }

    #[test]
    fn hinge_refuses_bad_labels() {
        let msg = setup_error(
            &mut *layer(&hinge(None)),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2, 2])],
            &[empty()],
        );
        assert!(msg.contains("one label per row"), "{msg}");
        let mut l = layer(&hinge(None));
        let (x, lab, t) = (Blob::shared(&[1, 3]), blob(&[1], &[3.0]), empty());
        l.setup(&[x.clone(), lab.clone()], &[t.clone()]).unwrap();
        l.reshape(&[x.clone(), lab.clone()], &[t.clone()]).unwrap();
        let msg = l.forward(&[x, lab], &[t]).unwrap_err().to_string();
        assert!(msg.contains("outside [0, 3)"), "{msg}");
    }

    #[test]
    fn hinge_gradient() {
        for norm in [Norm::L1, Norm::L2] {
            let x = Blob::shared(&[3, 4]);
            fill_uniform(&x, -2.0, 2.0, 73);
            // Keep scores off the hinge points ±1, where the L1 gradient jumps.
            for v in x.borrow_mut().data_mut() {
                if (v.abs() - 1.0).abs() < 0.05 {
                    *v += 0.1;
                }
            }
            let l = blob(&[3], &fixture("hinge_labels"));
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&hinge(Some(norm))),
                &[x, l],
                &[empty()],
                Some(0),
            );
        }
    }
}
