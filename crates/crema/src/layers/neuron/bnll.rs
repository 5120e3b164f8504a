//! BNLL (binomial normal log-likelihood), the softplus `ln(1 + e^x)`.
//! Its derivative is the logistic `σ(x) = 1 - e^-y`, which needs only the
//! output, so the layer works in place.
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct BNLLLayer;

impl BNLLLayer {
    pub fn create(_param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(BNLLLayer))
    }
}

/// Written so neither branch overflows: `x + ln(1 + e^-x)` for positive x.
fn softplus(x: f32) -> f32 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

impl Layer for BNLLLayer {
    fn type_name(&self) -> &'static str {
        "BNLL"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        map_forward(&bottom[0], &top[0], softplus);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            // expm1 keeps precision where y (and the gradient) is tiny.
            map_backward(&top[0], &bottom[0], |dy, _x, y| -dy * (-y).exp_m1());
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

    #[test]
    fn bnll_is_softplus_with_logistic_gradient() {
        let x = [-100.0f32, -1.0, 0.0, 2.0, 100.0];
        // ln(1+e^x) and 1/(1+e^-x), worked in f64.
        let y: Vec<f32> = x
            .iter()
            .map(|&v| (1.0 + (v as f64).exp()).ln() as f32)
            .collect();
        let s: Vec<f32> = x
            .iter()
            .map(|&v| (1.0 / (1.0 + (-v as f64).exp())) as f32)
            .collect();
        for in_place in [false, true] {
            let mut l = layer(&param("BNLL", |_| {}));
            let b = blob(&[5], &x);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            assert_close(t.borrow().data(), &y, 1e-6);
            assert_eq!(t.borrow().data()[4], 100.0);
            t.borrow_mut().diff_mut().fill(2.0);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            let want: Vec<f32> = s.iter().map(|v| 2.0 * v).collect();
            assert_close(b.borrow().diff(), &want, 1e-6);
        }
    }

    #[test]
    fn bnll_gradient() {
        let b = crate::Blob::shared(&[2, 3, 2, 2]);
        fill_uniform(&b, -2.0, 2.0, 7);
        GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
            &mut *layer(&param("BNLL", |_| {})),
            &[b],
            &[empty()],
            None,
        );
    }
}
