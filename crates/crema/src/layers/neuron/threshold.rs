//! Threshold: 1 where `x > threshold`, else 0. A step has no useful gradient;
//! Caffe does not implement its backward, and neither do we: asking for one is
//! an error rather than a silent zero.
use crema_proto::caffe::LayerParameter;

use super::{map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct ThresholdLayer {
    param: LayerParameter,
    threshold: f32,
}

impl ThresholdLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ThresholdLayer {
            param: param.clone(),
            threshold: param.threshold_param.threshold(),
        }))
    }
}

impl Layer for ThresholdLayer {
    fn type_name(&self) -> &'static str {
        "Threshold"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let th = self.threshold;
        map_forward(&bottom[0], &top[0], |x| if x > th { 1.0 } else { 0.0 });
        Ok(())
    }
    fn backward(
        &mut self,
        _top: &[SharedBlob],
        propagate_down: &[bool],
        _bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            return Err(Error::layer(
                &self.param,
                "Threshold layer has no backward pass (its gradient is zero almost everywhere)",
            ));
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
    use crate::layers::common::testutil::*;

    #[test]
    fn threshold_is_strictly_greater_than() {
        let x = [-1.0, 0.0, 0.25, 0.5, 0.75];
        let mut l = layer(&param("Threshold", |_| {}));
        let (b, t) = (blob(&[5], &x), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[0.0, 0.0, 1.0, 1.0, 1.0]);

        let p = param("Threshold", |p| {
            p.threshold_param.mut_or_insert_default().set_threshold(0.5)
        });
        let mut l = layer(&p);
        let b = blob(&[5], &x);
        run(&mut *l, &[b.clone()], &[b.clone()]);
        assert_eq!(b.borrow().data(), &[0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn threshold_backward_is_an_error_only_when_asked_for() {
        let mut l = layer(&param("Threshold", |_| {}));
        let (b, t) = (blob(&[1], &[1.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        l.backward(&[t.clone()], &[false], &[b.clone()]).unwrap();
        let msg = l.backward(&[t], &[true], &[b]).unwrap_err().to_string();
        assert!(msg.contains("no backward"), "{msg}");
    }
}
