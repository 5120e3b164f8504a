//! Parameter: exposes one learnable blob of `parameter_param.shape` as its top,
//! so other layers can take a learned tensor as a bottom. Caffe shares the
//! blob's memory with the top; we copy it forward and add the top's diff back
//! into the parameter's diff (parameter diffs accumulate).
use crema_proto::caffe::LayerParameter;

use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::layers::Layer;

pub struct ParameterLayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
}

impl ParameterLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ParameterLayer {
            param: param.clone(),
            blobs: Vec::new(),
        }))
    }

    fn shape(&self) -> Result<Vec<usize>> {
        let dims = &self.param.parameter_param.shape.dim;
        for &d in dims {
            crate::ensure!(
                &self.param,
                d >= 0,
                "parameter_param.shape has a negative dimension {d}"
            );
        }
        Ok(dims.iter().map(|&d| d as usize).collect())
    }
}

impl Layer for ParameterLayer {
    fn type_name(&self) -> &'static str {
        "Parameter"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        if self.blobs.is_empty() {
            self.blobs = vec![Blob::shared(&self.shape()?)];
        }
        Ok(())
    }
    fn reshape(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let shape = self.blobs[0].borrow().shape().to_vec();
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        top[0]
            .borrow_mut()
            .data_mut()
            .copy_from_slice(self.blobs[0].borrow().data());
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        _propagate_down: &[bool],
        _bottom: &[SharedBlob],
    ) -> Result<()> {
        let t = top[0].borrow();
        let mut p = self.blobs[0].borrow_mut();
        p.diff_mut()
            .iter_mut()
            .zip(t.diff())
            .for_each(|(d, &g)| *d += g);
        Ok(())
    }
    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(0)
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

    fn parameter(dims: &[i64]) -> crema_proto::caffe::LayerParameter {
        param("Parameter", |p| {
            p.parameter_param
                .mut_or_insert_default()
                .shape
                .mut_or_insert_default()
                .dim = dims.to_vec()
        })
    }

    #[test]
    fn parameter_exposes_its_blob_and_collects_the_gradient() {
        let mut l = layer(&parameter(&[2, 3]));
        let t = empty();
        run(&mut *l, &[], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[2, 3]);
        assert_eq!(l.blobs()[0].borrow().shape(), &[2, 3]);
        l.blobs()[0]
            .borrow_mut()
            .data_mut()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        l.forward(&[], &[t.clone()]).unwrap();
        assert_eq!(t.borrow().data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        t.borrow_mut().diff_mut().fill(0.5);
        l.blobs()[0].borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[], &[]).unwrap();
        assert_eq!(l.blobs()[0].borrow().diff(), &[1.5; 6]);
    }

    #[test]
    fn parameter_refuses_negative_dims() {
        let msg = setup_error(&mut *layer(&parameter(&[2, -1])), &[], &[empty()]);
        assert!(msg.contains("negative dimension"), "{msg}");
    }

    #[test]
    fn parameter_gradient() {
        let mut l = layer(&parameter(&[2, 3]));
        let t = empty();
        run(&mut *l, &[], &[t.clone()]);
        fill_uniform(&l.blobs()[0], -1.0, 1.0, 59);
        GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(&mut *l, &[], &[t], None);
    }
}
