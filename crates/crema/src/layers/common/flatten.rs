//! Flatten: merges axes `axis..=end_axis` (defaults 1 and -1) into one, so an
//! N×C×H×W blob becomes N×(C·H·W). The values do not move; forward copies the
//! data and backward the diff, since our blobs do not share buffers.
use std::rc::Rc;

use crema_proto::caffe::LayerParameter;

use super::canonical_axis;
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct FlattenLayer {
    param: LayerParameter,
}

impl FlattenLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(FlattenLayer {
            param: param.clone(),
        }))
    }
}

impl Layer for FlattenLayer {
    fn type_name(&self) -> &'static str {
        "Flatten"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        ensure!(
            p,
            !Rc::ptr_eq(&bottom[0], &top[0]),
            "Flatten layer does not allow in-place computation."
        );
        let b = bottom[0].borrow();
        let fp = &p.flatten_param;
        let start = canonical_axis(p, &b, fp.axis() as i64)?;
        let end = canonical_axis(p, &b, fp.end_axis() as i64)?;
        ensure!(
            p,
            start <= end,
            "axis {} comes after end_axis {} for bottom shape {}",
            fp.axis(),
            fp.end_axis(),
            b.shape_string()
        );
        let mut shape = b.shape()[..start].to_vec();
        shape.push(b.count_range(start, end + 1));
        shape.extend_from_slice(&b.shape()[end + 1..]);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        super::pass_through_forward(bottom, top);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        super::pass_through_backward(top, propagate_down, bottom);
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
    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn flatten(axis: Option<i32>, end_axis: Option<i32>) -> crema_proto::caffe::LayerParameter {
        param("Flatten", |p| {
            let fp = p.flatten_param.mut_or_insert_default();
            if let Some(a) = axis {
                fp.set_axis(a);
            }
            if let Some(e) = end_axis {
                fp.set_end_axis(e);
            }
        })
    }

    fn shape_of(p: &crema_proto::caffe::LayerParameter, shape: &[usize]) -> Vec<usize> {
        let b = Blob::shared(shape);
        let t = empty();
        run(&mut *layer(p), &[b], &[t.clone()]);
        let s = t.borrow().shape().to_vec();
        s
    }

    #[test]
    fn flatten_shapes_follow_axis_and_end_axis() {
        assert_eq!(shape_of(&flatten(None, None), &[2, 3, 6, 5]), vec![2, 90]);
        assert_eq!(
            shape_of(&flatten(Some(2), None), &[2, 3, 6, 5]),
            vec![2, 3, 30]
        );
        assert_eq!(
            shape_of(&flatten(None, Some(-2)), &[2, 3, 6, 5]),
            vec![2, 18, 5]
        );
        assert_eq!(shape_of(&flatten(Some(0), None), &[2, 3, 6, 5]), vec![180]);
        assert_eq!(shape_of(&flatten(Some(1), Some(1)), &[2, 3]), vec![2, 3]);
    }

    #[test]
    fn flatten_keeps_values_in_order() {
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let t = empty();
        run(
            &mut *layer(&flatten(None, None)),
            &[blob(&[2, 3, 2], &data)],
            &[t.clone()],
        );
        assert_eq!(t.borrow().data(), &data[..]);
    }

    #[test]
    fn flatten_refuses_in_place_and_bad_axes() {
        let b = Blob::shared(&[2, 3]);
        let msg = setup_error(&mut *layer(&flatten(None, None)), &[b.clone()], &[b]);
        assert!(msg.contains("in-place"), "{msg}");
        let msg = setup_error(
            &mut *layer(&flatten(Some(3), None)),
            &[Blob::shared(&[2, 3])],
            &[empty()],
        );
        assert!(msg.contains("out of range"), "{msg}");
        let msg = setup_error(
            &mut *layer(&flatten(Some(2), Some(1))),
            &[Blob::shared(&[2, 3, 4])],
            &[empty()],
        );
        assert!(msg.contains("after end_axis"), "{msg}");
    }

    #[test]
    fn flatten_gradient() {
        let b = Blob::shared(&[2, 2, 3]);
        fill_uniform(&b, -1.0, 1.0, 9);
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *layer(&flatten(None, None)),
            &[b],
            &[empty()],
            None,
        );
    }
}
