//! MultinomialLogisticLoss: the mean negative log of the labelled class's
//! probability, for inputs that already are probabilities `[N, K]` (every axis
//! after the first counts as a class). Probabilities are floored at 1e-20, as
//! in Caffe, so a zero gives a large finite loss rather than infinity.
use crema_proto::caffe::LayerParameter;

use super::{check_loss_shapes, class_label};
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

const LOG_THRESHOLD: f32 = 1e-20;

pub struct MultinomialLogisticLossLayer {
    param: LayerParameter,
    num: usize,
    dim: usize,
}

impl MultinomialLogisticLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(MultinomialLogisticLossLayer {
            param: param.clone(),
            num: 0,
            dim: 0,
        }))
    }
}

impl Layer for MultinomialLogisticLossLayer {
    fn type_name(&self) -> &'static str {
        "MultinomialLogisticLoss"
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
        self.dim = x.count().checked_div(self.num).unwrap_or(0);
        crate::ensure!(
            p,
            label.count() == self.num,
            "MultinomialLogisticLoss needs one label per row: probabilities {}, labels {}",
            x.shape_string(),
            label.shape_string()
        );
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        let mut loss = 0.0f64;
        for i in 0..self.num {
            let l = class_label(&self.param, label.data(), i, self.dim, None)?
                .expect("no ignore label");
            loss -= (x.data()[i * self.dim + l].max(LOG_THRESHOLD) as f64).ln();
        }
        top[0].borrow_mut().data_mut()[0] = (loss / self.num.max(1) as f64) as f32;
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
                "MultinomialLogisticLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let scale = -top[0].borrow().diff()[0] / self.num.max(1) as f32;
        let label = bottom[1].borrow();
        let mut b = bottom[0].borrow_mut();
        let (x, dx) = b.data_and_diff_mut();
        dx.fill(0.0);
        for i in 0..self.num {
            let l = class_label(&self.param, label.data(), i, self.dim, None)?
                .expect("no ignore label");
            let k = i * self.dim + l;
            dx[k] = scale / x[k].max(LOG_THRESHOLD);
        }
        Ok(())
    }
    super::loss_layer_facts!();
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    /// A line of `tests/fixtures/more_losses.txt` (made by `more_losses.py`).
    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/more_losses.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    #[test]
    fn mll_matches_numpy_including_the_floor_at_zero() {
        let (x, l, t) = (
            blob(&[3, 4], &fixture("mll_p")),
            blob(&[3, 1, 1, 1], &fixture("mll_labels")),
            empty(),
        );
        let mut layer = layer(&param("MultinomialLogisticLoss", |_| {}));
        run(&mut *layer, &[x.clone(), l.clone()], &[t.clone()]);
        let want = fixture("mll_loss")[0];
        assert!(
            (t.borrow().data()[0] - want).abs() < 1e-5 * want,
            "{}",
            t.borrow().data()[0]
        );
        t.borrow_mut().diff_mut()[0] = 1.0;
        layer
            .backward(&[t], &[true, false], &[x.clone(), l])
            .unwrap();
        let got = x.borrow().diff().to_vec();
        let want = fixture("mll_grad");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn mll_refuses_label_count_mismatch() {
        let msg = setup_error(
            &mut *layer(&param("MultinomialLogisticLoss", |_| {})),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2, 3])],
            &[empty()],
        );
        assert!(msg.contains("one label per row"), "{msg}");
    }

    #[test]
    fn mll_gradient() {
        let x = Blob::shared(&[3, 4]);
        fill_uniform(&x, 0.2, 1.0, 79);
        let l = blob(&[3], &fixture("mll_labels"));
        GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
            &mut *layer(&param("MultinomialLogisticLoss", |_| {})),
            &[x, l],
            &[empty()],
            Some(0),
        );
    }
}
