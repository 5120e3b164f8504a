//! Sigmoid: `1 / (1 + e^-x)`; its derivative `y (1 - y)` needs only the output,
//! so it works in place.
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct SigmoidLayer;

impl SigmoidLayer {
    /// `sigmoid_param` holds only the engine, which does not change the result.
    pub fn create(_param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SigmoidLayer))
    }
}

/// Written through tanh, as Caffe does, so large |x| neither overflows nor loses precision.
fn sigmoid(x: f32) -> f32 {
    0.5 * (0.5 * x).tanh() + 0.5
}

impl Layer for SigmoidLayer {
    fn type_name(&self) -> &'static str {
        "Sigmoid"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        map_forward(&bottom[0], &top[0], sigmoid);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            map_backward(&top[0], &bottom[0], |dy, _x, y| dy * y * (1.0 - y));
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
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;

    #[test]
    fn sigmoid_values() {
        let mut l = layer(&param("Sigmoid", |_| {}));
        let (b, t) = (blob(&[3], &[0.0, 2.0, -100.0]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        // 1 / (1 + e^-2) = 0.880797...
        assert_close(t.borrow().data(), &[0.5, 0.880_797_1, 0.0], 1e-6);
    }

    #[test]
    fn in_place_sigmoid_backward_uses_output() {
        let mut l = layer(&param("Sigmoid", |_| {}));
        let b = blob(&[2], &[0.0, 2.0]);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        b.borrow_mut().diff_mut().copy_from_slice(&[1.0, 2.0]);
        l.backward(&[b.clone()], &[true], &[b.clone()]).unwrap();
        let y = 0.880_797_1f32;
        assert_close(b.borrow().diff(), &[0.25, 2.0 * y * (1.0 - y)], 1e-6);
    }

    #[test]
    fn sigmoid_gradient() {
        let mut l = layer(&param("Sigmoid", |_| {}));
        let (b, t) = (crate::Blob::shared(&[2, 3, 2]), empty());
        fill_uniform(&b, -3.0, 3.0, 5);
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(&mut *l, &[b], &[t], None);
    }
}
