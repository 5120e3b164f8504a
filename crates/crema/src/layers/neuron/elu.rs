//! ELU: `x` for positive x, `alpha (e^x - 1)` otherwise. The negative branch's
//! derivative is `y + alpha`, so only the sign of x is needed and the layer
//! works in place for alpha >= 0 (the output keeps the input's sign).
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct ELULayer {
    alpha: f32,
}

impl ELULayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ELULayer {
            alpha: param.elu_param.alpha(),
        }))
    }
}

impl Layer for ELULayer {
    fn type_name(&self) -> &'static str {
        "ELU"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let a = self.alpha;
        map_forward(&bottom[0], &top[0], |x| {
            if x > 0.0 {
                x
            } else {
                a * x.exp_m1()
            }
        });
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            let a = self.alpha;
            map_backward(
                &top[0],
                &bottom[0],
                |dy, x, y| if x > 0.0 { dy } else { dy * (y + a) },
            );
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
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;

    fn elu(alpha: Option<f32>) -> crema_proto::caffe::LayerParameter {
        param("ELU", |p| {
            if let Some(a) = alpha {
                p.elu_param.mut_or_insert_default().set_alpha(a);
            }
        })
    }

    #[test]
    fn elu_by_hand_default_alpha_and_in_place() {
        // alpha 1: ELU(-1) = e^-1 - 1 = -0.6321206, slope there e^-1 = 0.3678794.
        for in_place in [false, true] {
            let mut l = layer(&elu(None));
            let b = blob(&[3], &[-1.0, 0.0, 2.0]);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            assert_close(t.borrow().data(), &[-0.632_120_6, 0.0, 2.0], 1e-6);
            t.borrow_mut().diff_mut().copy_from_slice(&[1.0, 1.0, 3.0]);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            assert_close(b.borrow().diff(), &[0.367_879_4, 1.0, 3.0], 1e-6);
        }
    }

    #[test]
    fn elu_alpha_scales_negative_branch() {
        let mut l = layer(&elu(Some(0.5)));
        let (b, t) = (blob(&[2], &[-2.0, 1.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        // 0.5 (e^-2 - 1) = -0.4323324
        assert_close(t.borrow().data(), &[-0.432_332_4, 1.0], 1e-6);
        t.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        // 0.5 e^-2 = 0.0676676
        assert_close(b.borrow().diff(), &[0.067_667_6, 1.0], 1e-6);
    }

    #[test]
    fn elu_gradient() {
        for alpha in [None, Some(0.5)] {
            let b = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&b, -2.0, 2.0, 11);
            GradientChecker::new(1e-3, 1e-2)
                .with_kink(0.0, 0.01)
                .check_gradient_exhaustive(&mut *layer(&elu(alpha)), &[b], &[empty()], None);
        }
    }
}
