//! TanH: `tanh(x)`; its derivative `1 - y²` needs only the output, so it works in place.
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct TanHLayer;

impl TanHLayer {
    /// `tanh_param` holds only the engine, which does not change the result.
    pub fn create(_param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(TanHLayer))
    }
}

impl Layer for TanHLayer {
    fn type_name(&self) -> &'static str {
        "TanH"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        map_forward(&bottom[0], &top[0], f32::tanh);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            map_backward(&top[0], &bottom[0], |dy, _x, y| dy * (1.0 - y * y));
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
    fn tanh_values_and_in_place_backward() {
        let mut l = layer(&param("TanH", |_| {}));
        let b = blob(&[3], &[0.0, 1.0, -1.0]);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        // tanh(1) = 0.7615942
        assert_close(b.borrow().data(), &[0.0, 0.761_594_2, -0.761_594_2], 1e-6);
        b.borrow_mut().diff_mut().fill(2.0);
        l.backward(&[b.clone()], &[true], &[b.clone()]).unwrap();
        let d = 2.0 * (1.0 - 0.761_594_2f32 * 0.761_594_2);
        assert_close(b.borrow().diff(), &[2.0, d, d], 1e-6);
    }

    #[test]
    fn tanh_gradient() {
        let mut l = layer(&param("TanH", |_| {}));
        let (b, t) = (crate::Blob::shared(&[2, 2, 3]), empty());
        fill_uniform(&b, -2.0, 2.0, 7);
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(&mut *l, &[b], &[t], None);
    }
}
