//! Reshape: gives the bottom's values a new shape. In `reshape_param.shape`, 0
//! copies the bottom's dimension at that position and -1 (at most one) is
//! inferred from the count. `axis` and `num_axes` select the range of bottom
//! axes that the new dims replace (default: all of them). Forward copies the
//! data and backward the diff, since our blobs do not share buffers.
use std::rc::Rc;

use crema_proto::caffe::LayerParameter;

use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct ReshapeLayer {
    param: LayerParameter,
    /// Positions in `shape` holding 0 (copied) and the one holding -1 (inferred).
    copy_axes: Vec<usize>,
    inferred_axis: Option<usize>,
    /// Product of the explicitly given dims.
    constant_count: usize,
}

impl ReshapeLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let mut copy_axes = Vec::new();
        let mut inferred_axis = None;
        let mut constant_count = 1usize;
        for (i, &d) in param.reshape_param.shape.dim.iter().enumerate() {
            match d {
                0 => copy_axes.push(i),
                -1 => {
                    ensure!(param, inferred_axis.is_none(), "new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified");
                    inferred_axis = Some(i);
                }
                d if d > 0 => constant_count *= d as usize,
                d => {
                    return Err(crate::Error::layer(
                        param,
                        format!(
                            "shape dim {i} is {d}; dims must be positive, 0 (copy) or -1 (infer)"
                        ),
                    ))
                }
            }
        }
        Ok(Box::new(ReshapeLayer {
            param: param.clone(),
            copy_axes,
            inferred_axis,
            constant_count,
        }))
    }
}

impl Layer for ReshapeLayer {
    fn type_name(&self) -> &'static str {
        "Reshape"
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        ensure!(
            &self.param,
            !Rc::ptr_eq(&bottom[0], &top[0]),
            "Reshape layer does not allow in-place computation."
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        ensure!(
            p,
            !Rc::ptr_eq(&bottom[0], &top[0]),
            "Reshape layer does not allow in-place computation."
        );
        let b = bottom[0].borrow();
        let rp = &p.reshape_param;
        let n = b.num_axes() as i64;
        let input_start = rp.axis() as i64;
        // A negative axis counts from past the last axis: -1 appends the new dims.
        let start = if input_start >= 0 {
            input_start
        } else {
            n + input_start + 1
        };
        ensure!(
            p,
            (0..=n).contains(&start),
            "axis {input_start} out of range for {n}-D input blob"
        );
        let num_axes = rp.num_axes() as i64;
        ensure!(p, num_axes >= -1, "num_axes must be >= 0, or -1 for all");
        let end = if num_axes == -1 { n } else { start + num_axes };
        ensure!(
            p,
            end <= n,
            "end_axis = axis + num_axes ({end}) is out of range for {n}-D input blob"
        );
        let (start, end) = (start as usize, end as usize);

        let dims = &rp.shape.dim;
        let mut shape = b.shape()[..start].to_vec();
        shape.extend(dims.iter().map(|&d| d.max(0) as usize));
        shape.extend_from_slice(&b.shape()[end..]);
        for &i in &self.copy_axes {
            ensure!(
                p,
                start + i < b.num_axes(),
                "new shape contains a 0, but there was no corresponding bottom axis to copy"
            );
            shape[start + i] = b.shape()[start + i];
        }
        if let Some(i) = self.inferred_axis {
            let mut explicit = self.constant_count * b.count_range(0, start) * b.count_from(end);
            for &c in &self.copy_axes {
                explicit *= shape[start + c];
            }
            let inferred = b.count().checked_div(explicit).unwrap_or(0);
            ensure!(
                p,
                explicit != 0 && inferred * explicit == b.count(),
                "bottom count ({}) must be divisible by the product of the specified dimensions ({explicit})",
                b.count()
            );
            shape[start + i] = inferred;
        }
        let count: usize = shape.iter().product();
        ensure!(
            p,
            count == b.count(),
            "output count must match input count: bottom {} reshaped to {shape:?} ({count})",
            b.shape_string()
        );
        ensure!(
            p,
            shape.len() <= crate::blob::MAX_BLOB_AXES,
            "reshaped blob would have {} axes, more than {}",
            shape.len(),
            crate::blob::MAX_BLOB_AXES
        );
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
    use crate::layers::create_layer;
    use crate::Blob;

    fn reshape(
        dims: &[i64],
        axis: Option<i32>,
        num_axes: Option<i32>,
    ) -> crema_proto::caffe::LayerParameter {
        param("Reshape", |p| {
            let rp = p.reshape_param.mut_or_insert_default();
            rp.shape.mut_or_insert_default().dim = dims.to_vec();
            if let Some(a) = axis {
                rp.set_axis(a);
            }
            if let Some(n) = num_axes {
                rp.set_num_axes(n);
            }
        })
    }

    fn top_shape(
        p: &crema_proto::caffe::LayerParameter,
        shape: &[usize],
    ) -> Result<Vec<usize>, String> {
        let mut l = create_layer(p).map_err(|e| e.to_string())?;
        let (b, t) = (Blob::shared(shape), empty());
        l.setup(&[b.clone()], &[t.clone()])
            .map_err(|e| e.to_string())?;
        l.reshape(&[b], &[t.clone()]).map_err(|e| e.to_string())?;
        let s = t.borrow().shape().to_vec();
        Ok(s)
    }

    #[test]
    fn zero_and_minus_one_examples_from_caffes_docs() {
        // caffe.proto: a 2 x 8 input; all of these give 2 x 2 x 4.
        for dims in [&[2, 2, 4][..], &[0, 2, 4], &[0, 2, -1], &[0, -1, 4]] {
            assert_eq!(
                top_shape(&reshape(dims, None, None), &[2, 8]).unwrap(),
                vec![2, 2, 4],
                "{dims:?}"
            );
        }
        // Caffe's standard use: flatten everything after the batch axis.
        assert_eq!(
            top_shape(&reshape(&[0, -1], None, None), &[2, 3, 4, 5]).unwrap(),
            vec![2, 60]
        );
    }

    #[test]
    fn axis_and_num_axes_examples_from_caffes_docs() {
        let b = [2, 8];
        assert_eq!(
            top_shape(&reshape(&[2, 4], Some(1), None), &b).unwrap(),
            vec![2, 2, 4]
        );
        // A negative axis counts from past the last axis: -2 replaces only the
        // last one. (The proto's comment says -3 here, but Caffe's code makes
        // that start at axis 0 and fail on the count, as we do.)
        assert_eq!(
            top_shape(&reshape(&[2, 4], Some(-2), None), &b).unwrap(),
            vec![2, 2, 4]
        );
        assert!(top_shape(&reshape(&[2, 4], Some(-3), None), &b)
            .unwrap_err()
            .contains("count must match"));
        // 1 x 2 x 8:
        assert_eq!(
            top_shape(&reshape(&[1, 2, 8], None, None), &b).unwrap(),
            vec![1, 2, 8]
        );
        assert_eq!(
            top_shape(&reshape(&[1, 2], None, Some(1)), &b).unwrap(),
            vec![1, 2, 8]
        );
        assert_eq!(
            top_shape(&reshape(&[1], None, Some(0)), &b).unwrap(),
            vec![1, 2, 8]
        );
        // 2 x 1 x 8:
        assert_eq!(
            top_shape(&reshape(&[2, 1, 8], None, None), &b).unwrap(),
            vec![2, 1, 8]
        );
        assert_eq!(
            top_shape(&reshape(&[1], Some(1), Some(0)), &b).unwrap(),
            vec![2, 1, 8]
        );
        // -1 appends after the last axis.
        assert_eq!(
            top_shape(&reshape(&[1, 1], Some(-1), None), &b).unwrap(),
            vec![2, 8, 1, 1]
        );
        // Inference counts the retained axes too.
        assert_eq!(
            top_shape(&reshape(&[-1, 2], Some(1), Some(1)), &[3, 8, 5]).unwrap(),
            vec![3, 4, 2, 5]
        );
    }

    #[test]
    fn reshape_errors_match_caffes() {
        let b = [2, 8];
        // (shape dims, axis, num_axes, expected message)
        type Case<'a> = (&'a [i64], Option<i32>, Option<i32>, &'a str);
        let cases: &[Case] = &[
            (&[-1, -1], None, None, "multiple -1"),
            (&[2, -2], None, None, "dims must be positive"),
            (&[3, -1], None, None, "must be divisible"),
            (&[4, 5], None, None, "count must match"),
            (&[2, 8], Some(3), None, "axis 3 out of range"),
            (&[2, 8], Some(-4), None, "axis -4 out of range"),
            (&[2, 8], None, Some(-2), "num_axes must be >= 0"),
            (&[16], Some(1), Some(2), "out of range"),
            (&[0, 0, 0], None, None, "no corresponding bottom axis"),
        ];
        for (dims, axis, num_axes, want) in cases {
            let msg = top_shape(&reshape(dims, *axis, *num_axes), &b).unwrap_err();
            assert!(msg.contains(want), "{dims:?}: {msg} (wanted {want})");
        }
        let b = Blob::shared(&[2, 8]);
        let msg = setup_error(&mut *layer(&reshape(&[16], None, None)), &[b.clone()], &[b]);
        assert!(msg.contains("in-place"), "{msg}");
    }

    #[test]
    fn reshape_copies_values_and_gradients() {
        let data: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let (b, t) = (blob(&[2, 3], &data), empty());
        let mut l = layer(&reshape(&[3, 2], None, None));
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &data[..]);
        let b = Blob::shared(&[2, 3, 2]);
        fill_uniform(&b, -1.0, 1.0, 4);
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *layer(&reshape(&[0, -1], None, None)),
            &[b],
            &[empty()],
            None,
        );
    }
}
