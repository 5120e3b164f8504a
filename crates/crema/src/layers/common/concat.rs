//! Concat: joins its bottoms along one axis (`concat_param.axis`, default 1, or
//! the legacy `concat_dim`); every other axis must agree.
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, copy_along_axis, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct ConcatLayer {
    param: LayerParameter,
    /// Size of the concat axis in each bottom, and in the top.
    dims: Vec<usize>,
    top_dim: usize,
    outer: usize,
    inner: usize,
}

impl ConcatLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ConcatLayer {
            param: param.clone(),
            dims: Vec::new(),
            top_dim: 0,
            outer: 0,
            inner: 0,
        }))
    }
}

impl Layer for ConcatLayer {
    fn type_name(&self) -> &'static str {
        "Concat"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let cp = &self.param.concat_param;
        ensure!(
            &self.param,
            !(cp.has_axis() && cp.has_concat_dim()),
            "Either axis or concat_dim should be specified; not both."
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        ensure!(p, !bottom.is_empty(), "Concat needs at least one bottom");
        check_distinct(p, bottom, top)?;
        let b0 = bottom[0].borrow();
        let num_axes = b0.num_axes();
        let cp = &p.concat_param;
        let axis = if cp.has_concat_dim() {
            let dim = cp.concat_dim() as usize;
            ensure!(
                p,
                dim < num_axes,
                "concat_dim {dim} out of range for a {num_axes}-D bottom"
            );
            dim
        } else {
            canonical_axis(p, &b0, cp.axis() as i64)?
        };
        let mut top_shape = b0.shape().to_vec();
        self.dims.clear();
        self.dims.push(b0.shape()[axis]);
        for (i, b) in bottom.iter().enumerate().skip(1) {
            let b = b.borrow();
            ensure!(
                p,
                b.num_axes() == num_axes,
                "All inputs must have the same #axes: bottom[0] is {}, bottom[{i}] is {}",
                b0.shape_string(),
                b.shape_string()
            );
            let same = (0..num_axes).all(|j| j == axis || b.shape()[j] == top_shape[j]);
            ensure!(p, same, "All inputs must have the same shape, except at concat_axis ({axis}): bottom[0] is {}, bottom[{i}] is {}", b0.shape_string(), b.shape_string());
            self.dims.push(b.shape()[axis]);
            top_shape[axis] += b.shape()[axis];
        }
        self.top_dim = top_shape[axis];
        self.outer = b0.count_range(0, axis);
        self.inner = b0.count_from(axis + 1);
        top[0].borrow_mut().reshape(&top_shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let mut t = top[0].borrow_mut();
        let out = t.data_mut();
        let mut off = 0;
        for (b, &d) in bottom.iter().zip(&self.dims) {
            copy_along_axis(
                b.borrow().data(),
                d,
                0,
                out,
                self.top_dim,
                off,
                d,
                self.outer,
                self.inner,
            );
            off += d;
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let t = top[0].borrow();
        let mut off = 0;
        for (i, (b, &d)) in bottom.iter().zip(&self.dims).enumerate() {
            if propagates(propagate_down, i) {
                copy_along_axis(
                    t.diff(),
                    self.top_dim,
                    off,
                    b.borrow_mut().diff_mut(),
                    d,
                    0,
                    d,
                    self.outer,
                    self.inner,
                );
            }
            off += d;
        }
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn concat(axis: Option<i32>, concat_dim: Option<u32>) -> crema_proto::caffe::LayerParameter {
        param("Concat", |p| {
            let cp = p.concat_param.mut_or_insert_default();
            if let Some(a) = axis {
                cp.set_axis(a);
            }
            if let Some(d) = concat_dim {
                cp.set_concat_dim(d);
            }
        })
    }

    #[test]
    fn concat_on_axis_1_interleaves_per_item() {
        let a = blob(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = blob(
            &[2, 2, 2],
            &[10.0, 11.0, 12.0, 13.0, 20.0, 21.0, 22.0, 23.0],
        );
        let t = empty();
        let mut l = layer(&concat(None, None));
        run(&mut *l, &[a.clone(), b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[2, 3, 2]);
        assert_eq!(
            t.borrow().data(),
            &[1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 3.0, 4.0, 20.0, 21.0, 22.0, 23.0]
        );

        let dy: Vec<f32> = (0..12).map(|i| i as f32).collect();
        t.borrow_mut().diff_mut().copy_from_slice(&dy);
        b.borrow_mut().diff_mut().fill(-1.0);
        l.backward(&[t], &[true, false], &[a.clone(), b.clone()])
            .unwrap();
        assert_eq!(a.borrow().diff(), &[0.0, 1.0, 6.0, 7.0]);
        assert!(
            b.borrow().diff().iter().all(|&v| v == -1.0),
            "bottom 1 was not asked for"
        );
    }

    #[test]
    fn concat_on_axis_0_and_legacy_concat_dim_0_stack_items() {
        for p in [concat(Some(0), None), concat(None, Some(0))] {
            let a = blob(&[1, 2], &[1.0, 2.0]);
            let b = blob(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
            let t = empty();
            run(&mut *layer(&p), &[a, b], &[t.clone()]);
            assert_eq!(t.borrow().shape(), &[3, 2]);
            assert_eq!(t.borrow().data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        }
    }

    #[test]
    fn concat_negative_axis_counts_from_the_end() {
        let t = empty();
        run(
            &mut *layer(&concat(Some(-1), None)),
            &[blob(&[2, 1], &[1.0, 2.0]), blob(&[2, 1], &[3.0, 4.0])],
            &[t.clone()],
        );
        assert_eq!(t.borrow().shape(), &[2, 2]);
        assert_eq!(t.borrow().data(), &[1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn concat_refuses_bad_parameters_and_shapes() {
        let two = || [blob(&[2, 2], &[0.0; 4]), blob(&[2, 2], &[0.0; 4])];
        let msg = setup_error(&mut *layer(&concat(Some(1), Some(1))), &two(), &[empty()]);
        assert!(msg.contains("not both"), "{msg}");
        let msg = setup_error(&mut *layer(&concat(None, Some(2))), &two(), &[empty()]);
        assert!(msg.contains("concat_dim 2 out of range"), "{msg}");
        let msg = setup_error(&mut *layer(&concat(Some(3), None)), &two(), &[empty()]);
        assert!(msg.contains("out of range"), "{msg}");
        let msg = setup_error(
            &mut *layer(&concat(None, None)),
            &[blob(&[2, 2], &[0.0; 4]), blob(&[3, 2], &[0.0; 6])],
            &[empty()],
        );
        assert!(msg.contains("except at concat_axis"), "{msg}");
        let msg = setup_error(
            &mut *layer(&concat(None, None)),
            &[blob(&[2, 2], &[0.0; 4]), blob(&[2, 2, 1], &[0.0; 4])],
            &[empty()],
        );
        assert!(msg.contains("#axes"), "{msg}");
        let a = blob(&[2, 2], &[0.0; 4]);
        let msg = setup_error(
            &mut *layer(&concat(None, None)),
            &[a.clone(), blob(&[2, 2], &[0.0; 4])],
            &[a],
        );
        assert!(msg.contains("in-place"), "{msg}");
    }

    #[test]
    fn concat_gradient() {
        for axis in [0, 1, 2] {
            let a = Blob::shared(&[2, 3, 2]);
            let mut shape = [2, 3, 2];
            shape[axis] = 1;
            let b = Blob::shared(&shape);
            fill_uniform(&a, -1.0, 1.0, 1);
            fill_uniform(&b, -1.0, 1.0, 2);
            let mut l = layer(&concat(Some(axis as i32), None));
            GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
                &mut *l,
                &[a, b],
                &[empty()],
                None,
            );
        }
    }
}
