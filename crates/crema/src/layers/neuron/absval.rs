//! AbsVal: `|x|`, gradient `sign(x)`. Like Caffe it refuses to run in place,
//! since the sign of the input is gone once the output overwrites it.
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like, same_blob};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct AbsValLayer {
    param: LayerParameter,
}

impl AbsValLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(AbsValLayer {
            param: param.clone(),
        }))
    }
}

/// Caffe's caffe_sign: 0 at 0.
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl Layer for AbsValLayer {
    fn type_name(&self) -> &'static str {
        "AbsVal"
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        crate::ensure!(
            &self.param,
            !same_blob(&bottom[0], &top[0]),
            "AbsVal Layer does not allow in-place computation."
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        map_forward(&bottom[0], &top[0], f32::abs);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            map_backward(&top[0], &bottom[0], |dy, x, _y| dy * sign(x));
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
    fn absval_forward_and_backward_by_hand() {
        let mut l = layer(&param("AbsVal", |_| {}));
        let (b, t) = (blob(&[4], &[-2.0, -0.5, 0.0, 3.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[2.0, 0.5, 0.0, 3.0]);
        t.borrow_mut()
            .diff_mut()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[-1.0, -2.0, 0.0, 4.0]);
    }

    #[test]
    fn absval_refuses_in_place() {
        let b = blob(&[2], &[1.0, -1.0]);
        let msg = setup_error(&mut *layer(&param("AbsVal", |_| {})), &[b.clone()], &[b]);
        assert!(msg.contains("does not allow in-place"), "{msg}");
    }

    #[test]
    fn absval_gradient() {
        let b = crate::Blob::shared(&[2, 3, 2, 2]);
        fill_uniform(&b, -1.0, 1.0, 5);
        GradientChecker::new(1e-3, 1e-2)
            .with_kink(0.0, 0.01)
            .check_gradient_exhaustive(
                &mut *layer(&param("AbsVal", |_| {})),
                &[b],
                &[empty()],
                None,
            );
    }
}
