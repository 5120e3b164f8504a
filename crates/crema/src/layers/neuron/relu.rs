//! ReLU: `max(x, 0) + negative_slope * min(x, 0)` (leaky when the slope is set).
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

/// The ReLU of one value; layers that fuse a ReLU (Convolution) call this
/// so their bits are the ReLU layer's.
#[inline]
pub fn relu(x: f32, negative_slope: f32) -> f32 {
    x.max(0.0) + negative_slope * x.min(0.0)
}

pub struct ReLULayer {
    negative_slope: f32,
}

impl ReLULayer {
    /// Reads `relu_param.negative_slope`; the engine choice does not change the result.
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ReLULayer {
            negative_slope: param.relu_param.negative_slope(),
        }))
    }
}

impl Layer for ReLULayer {
    fn type_name(&self) -> &'static str {
        "ReLU"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let s = self.negative_slope;
        map_forward(&bottom[0], &top[0], |x| relu(x, s));
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            let s = self.negative_slope;
            // Caffe reads the bottom's sign; in place that is the output's sign,
            // the same thing for any slope >= 0.
            map_backward(
                &top[0],
                &bottom[0],
                |dy, x, _y| if x > 0.0 { dy } else { dy * s },
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
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;

    fn relu(slope: Option<f32>) -> crema_proto::caffe::LayerParameter {
        param("ReLU", |p| {
            if let Some(s) = slope {
                p.relu_param.mut_or_insert_default().set_negative_slope(s);
            }
        })
    }

    #[test]
    fn relu_zeroes_negatives() {
        let mut l = layer(&relu(None));
        let (b, t) = (blob(&[1, 5], &[-2.0, -0.5, 0.0, 0.5, 3.0]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[0.0, 0.0, 0.0, 0.5, 3.0]);
        assert_eq!(t.borrow().shape(), &[1, 5]);
    }

    #[test]
    fn leaky_relu_scales_negatives_by_negative_slope() {
        let mut l = layer(&relu(Some(0.1)));
        let (b, t) = (blob(&[4], &[-2.0, -0.5, 1.0, 3.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_close(t.borrow().data(), &[-0.2, -0.05, 1.0, 3.0], 1e-7);
        t.borrow_mut()
            .diff_mut()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_close(b.borrow().diff(), &[0.1, 0.2, 3.0, 4.0], 1e-7);
    }

    #[test]
    fn in_place_relu_matches_separate_blobs() {
        let mut l = layer(&relu(Some(0.25)));
        let b = blob(&[2, 2], &[-4.0, 1.0, 2.0, -1.0]);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        assert_close(b.borrow().data(), &[-1.0, 1.0, 2.0, -0.25], 1e-7);
        b.borrow_mut()
            .diff_mut()
            .copy_from_slice(&[1.0, 1.0, 2.0, 2.0]);
        l.backward(&[b.clone()], &[true], &[b.clone()]).unwrap();
        assert_close(b.borrow().diff(), &[0.25, 1.0, 2.0, 0.5], 1e-7);
    }

    #[test]
    fn no_propagate_down_leaves_bottom_diff() {
        let mut l = layer(&relu(None));
        let (b, t) = (blob(&[2], &[-1.0, 1.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        b.borrow_mut().diff_mut().fill(7.0);
        l.backward(&[t], &[false], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[7.0, 7.0]);
    }

    #[test]
    fn relu_gradient_away_from_kink() {
        for slope in [None, Some(0.01)] {
            let mut l = layer(&relu(slope));
            let (b, t) = (crate::Blob::shared(&[2, 3, 2, 2]), empty());
            fill_uniform(&b, -1.0, 1.0, 3);
            GradientChecker::new(1e-2, 1e-3)
                .with_kink(0.0, 0.01)
                .check_gradient_exhaustive(&mut *l, &[b], &[t], None);
        }
    }
}
