//! Slice: cuts its bottom along one axis (`slice_param.axis`, default 1, or the
//! legacy `slice_dim`) at `slice_point`s, or into equal parts, one per top,
//! when no points are given.
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, copy_along_axis, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct SliceLayer {
    param: LayerParameter,
    /// Size of the slice axis in each top, and in the bottom.
    dims: Vec<usize>,
    bottom_dim: usize,
    outer: usize,
    inner: usize,
}

impl SliceLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SliceLayer {
            param: param.clone(),
            dims: Vec::new(),
            bottom_dim: 0,
            outer: 0,
            inner: 0,
        }))
    }
}

impl Layer for SliceLayer {
    fn type_name(&self) -> &'static str {
        "Slice"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let sp = &self.param.slice_param;
        ensure!(
            &self.param,
            !(sp.has_axis() && sp.has_slice_dim()),
            "Either axis or slice_dim should be specified; not both."
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        ensure!(p, !top.is_empty(), "Slice needs at least one top");
        check_distinct(p, bottom, top)?;
        let b = bottom[0].borrow();
        let sp = &p.slice_param;
        let axis = if sp.has_slice_dim() {
            let dim = sp.slice_dim() as usize;
            ensure!(
                p,
                dim < b.num_axes(),
                "slice_dim {dim} out of range for a {}-D bottom",
                b.num_axes()
            );
            dim
        } else {
            canonical_axis(p, &b, sp.axis() as i64)?
        };
        let dim = b.shape()[axis];
        self.dims.clear();
        if !sp.slice_point.is_empty() {
            ensure!(
                p,
                sp.slice_point.len() + 1 == top.len(),
                "{} slice_point(s) given for {} tops; give one fewer than the tops",
                sp.slice_point.len(),
                top.len()
            );
            ensure!(
                p,
                top.len() <= dim,
                "{} tops cannot slice an axis of {dim} (bottom shape {})",
                top.len(),
                b.shape_string()
            );
            let mut prev = 0usize;
            for &pt in &sp.slice_point {
                let pt = pt as usize;
                ensure!(
                    p,
                    pt > prev,
                    "slice points must be strictly increasing and positive, got {:?}",
                    sp.slice_point
                );
                self.dims.push(pt - prev);
                prev = pt;
            }
            ensure!(
                p,
                prev <= dim,
                "slice point {prev} is beyond the slice axis of {dim} (bottom shape {})",
                b.shape_string()
            );
            self.dims.push(dim - prev);
        } else {
            ensure!(
                p,
                dim / top.len() * top.len() == dim,
                "Number of top blobs ({}) should evenly divide input slice axis ({dim})",
                top.len()
            );
            self.dims.resize(top.len(), dim / top.len());
        }
        self.bottom_dim = dim;
        self.outer = b.count_range(0, axis);
        self.inner = b.count_from(axis + 1);
        let mut shape = b.shape().to_vec();
        for (t, &d) in top.iter().zip(&self.dims) {
            shape[axis] = d;
            t.borrow_mut().reshape(&shape);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut off = 0;
        for (t, &d) in top.iter().zip(&self.dims) {
            copy_along_axis(
                b.data(),
                self.bottom_dim,
                off,
                t.borrow_mut().data_mut(),
                d,
                0,
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
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let mut b = bottom[0].borrow_mut();
        let dx = b.diff_mut();
        let mut off = 0;
        for (t, &d) in top.iter().zip(&self.dims) {
            copy_along_axis(
                t.borrow().diff(),
                d,
                0,
                dx,
                self.bottom_dim,
                off,
                d,
                self.outer,
                self.inner,
            );
            off += d;
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn slice(
        axis: Option<i32>,
        slice_dim: Option<u32>,
        points: &[u32],
    ) -> crema_proto::caffe::LayerParameter {
        param("Slice", |p| {
            let sp = p.slice_param.mut_or_insert_default();
            if let Some(a) = axis {
                sp.set_axis(a);
            }
            if let Some(d) = slice_dim {
                sp.set_slice_dim(d);
            }
            sp.slice_point = points.to_vec();
        })
    }

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    #[test]
    fn slice_points_cut_channels() {
        // 2 items x 5 channels; points 1, 3 give 1, 2 and 2 channels.
        let b = blob(&[2, 5], &iota(10));
        let tops = [empty(), empty(), empty()];
        let mut l = layer(&slice(None, None, &[1, 3]));
        run(&mut *l, &[b.clone()], &tops);
        assert_eq!(tops[0].borrow().shape(), &[2, 1]);
        assert_eq!(tops[1].borrow().shape(), &[2, 2]);
        assert_eq!(tops[0].borrow().data(), &[0.0, 5.0]);
        assert_eq!(tops[1].borrow().data(), &[1.0, 2.0, 6.0, 7.0]);
        assert_eq!(tops[2].borrow().data(), &[3.0, 4.0, 8.0, 9.0]);

        for (k, t) in tops.iter().enumerate() {
            t.borrow_mut().diff_mut().fill(k as f32 + 1.0);
        }
        l.backward(&tops, &[true], &[b.clone()]).unwrap();
        assert_eq!(
            b.borrow().diff(),
            &[1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 2.0, 2.0, 3.0, 3.0]
        );
    }

    #[test]
    fn slice_without_points_splits_equally_and_legacy_slice_dim_works() {
        let tops = [empty(), empty()];
        run(
            &mut *layer(&slice(None, Some(0), &[])),
            &[blob(&[4, 1], &iota(4))],
            &tops,
        );
        assert_eq!(tops[0].borrow().data(), &[0.0, 1.0]);
        assert_eq!(tops[1].borrow().data(), &[2.0, 3.0]);
        assert_eq!(tops[1].borrow().shape(), &[2, 1]);
        let tops = [empty(), empty(), empty()];
        run(
            &mut *layer(&slice(Some(-1), None, &[])),
            &[blob(&[1, 1, 3], &iota(3))],
            &tops,
        );
        assert_eq!(tops[2].borrow().data(), &[2.0]);
    }

    #[test]
    fn slice_refuses_bad_points_and_counts() {
        let b = || blob(&[2, 6], &[0.0; 12]);
        let cases: &[(crema_proto::caffe::LayerParameter, usize, &str)] = &[
            (slice(Some(1), Some(1), &[]), 2, "not both"),
            (slice(None, None, &[]), 4, "should evenly divide"),
            (slice(None, None, &[2, 3]), 2, "one fewer than the tops"),
            (slice(None, None, &[3, 2]), 3, "strictly increasing"),
            (slice(None, None, &[7]), 2, "beyond the slice axis"),
            (slice(None, Some(2), &[]), 2, "slice_dim 2 out of range"),
        ];
        for (p, ntop, want) in cases {
            let tops: Vec<_> = (0..*ntop).map(|_| empty()).collect();
            let msg = setup_error(&mut *layer(p), &[b()], &tops);
            assert!(msg.contains(want), "{msg} (wanted {want})");
        }
        let too_many: Vec<_> = (0..3).map(|_| empty()).collect();
        let msg = setup_error(
            &mut *layer(&slice(None, None, &[1, 2])),
            &[blob(&[1, 2], &[0.0; 2])],
            &too_many,
        );
        assert!(msg.contains("cannot slice"), "{msg}");
    }

    #[test]
    fn slice_gradient() {
        for (axis, points) in [(0, vec![1]), (1, vec![1, 2]), (2, vec![])] {
            let b = Blob::shared(&[2, 3, 2]);
            fill_uniform(&b, -1.0, 1.0, 6);
            let ntop = if points.is_empty() {
                2
            } else {
                points.len() + 1
            };
            let tops: Vec<_> = (0..ntop).map(|_| empty()).collect();
            let mut l = layer(&slice(Some(axis), None, &points));
            GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(&mut *l, &[b], &tops, None);
        }
    }
}
