//! EuclideanLoss: `Σ (a - b)² / (2 N)` with N the size of axis 0. Both bottoms
//! may receive a gradient (neither is a label).
use crema_proto::caffe::LayerParameter;

use super::check_loss_shapes;
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

pub struct EuclideanLossLayer {
    param: LayerParameter,
    /// a - b from the last forward.
    diff: Vec<f32>,
}

impl EuclideanLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(EuclideanLossLayer {
            param: param.clone(),
            diff: Vec::new(),
        }))
    }
}

impl Layer for EuclideanLossLayer {
    fn type_name(&self) -> &'static str {
        "EuclideanLoss"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        check_loss_shapes(p, bottom)?;
        let (a, b) = (bottom[0].borrow(), bottom[1].borrow());
        ensure!(
            p,
            a.count_from(1) == b.count_from(1),
            "Inputs must have the same dimension: {} vs {}",
            a.shape_string(),
            b.shape_string()
        );
        self.diff.resize(a.count(), 0.0);
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (a, b) = (bottom[0].borrow(), bottom[1].borrow());
        let mut sum = 0.0f64;
        for ((d, &x), &y) in self.diff.iter_mut().zip(a.data()).zip(b.data()) {
            *d = x - y;
            sum += (*d as f64) * (*d as f64);
        }
        let n = a.shape()[0].max(1) as f64;
        top[0].borrow_mut().data_mut()[0] = (sum / n / 2.0) as f32;
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let weight = top[0].borrow().diff()[0];
        for (i, sign) in [(0, 1.0f32), (1, -1.0)] {
            if propagates(propagate_down, i) {
                let mut b = bottom[i].borrow_mut();
                let alpha = sign * weight / b.shape()[0].max(1) as f32;
                b.diff_mut()
                    .iter_mut()
                    .zip(&self.diff)
                    .for_each(|(g, &d)| *g = alpha * d);
            }
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn auto_top_blobs(&self) -> bool {
        true
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
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    #[test]
    fn euclidean_loss_hand_worked() {
        // Differences 1, -2 | 0, 3: squares sum to 14; N = 2 -> 14 / 4.
        let (a, b, t) = (
            blob(&[2, 2], &[1.0, 0.0, 2.0, 3.0]),
            blob(&[2, 2], &[0.0, 2.0, 2.0, 0.0]),
            empty(),
        );
        let mut l = layer(&param("EuclideanLoss", |_| {}));
        run(&mut *l, &[a.clone(), b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[3.5]);
        assert_eq!(t.borrow().shape(), &[] as &[usize]);
        t.borrow_mut().diff_mut()[0] = 2.0;
        l.backward(&[t], &[true, true], &[a.clone(), b.clone()])
            .unwrap();
        assert_eq!(a.borrow().diff(), &[1.0, -2.0, 0.0, 3.0]);
        assert_eq!(b.borrow().diff(), &[-1.0, 2.0, 0.0, -3.0]);
        assert!(l.allow_force_backward(1));
        assert_eq!(l.default_loss_weight(0), 1.0);
    }

    #[test]
    fn euclidean_loss_refuses_mismatched_inputs() {
        let p = param("EuclideanLoss", |_| {});
        let msg = setup_error(
            &mut *layer(&p),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2, 4])],
            &[empty()],
        );
        assert!(msg.contains("same dimension"), "{msg}");
        let msg = setup_error(
            &mut *layer(&p),
            &[Blob::shared(&[2, 3]), Blob::shared(&[3, 3])],
            &[empty()],
        );
        assert!(msg.contains("same first dimension"), "{msg}");
        // Same count per item in another shape is accepted, as in Caffe.
        let t = empty();
        run(
            &mut *layer(&p),
            &[Blob::shared(&[2, 6]), Blob::shared(&[2, 2, 3])],
            &[t],
        );
    }

    #[test]
    fn euclidean_loss_gradient() {
        let (a, b) = (Blob::shared(&[2, 3, 2]), Blob::shared(&[2, 3, 2]));
        fill_uniform(&a, -1.0, 1.0, 21);
        fill_uniform(&b, -1.0, 1.0, 22);
        GradientChecker::new(1e-2, 1e-2).check_gradient_exhaustive(
            &mut *layer(&param("EuclideanLoss", |_| {})),
            &[a, b],
            &[empty()],
            None,
        );
    }
}
