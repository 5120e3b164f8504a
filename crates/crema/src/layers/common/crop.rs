//! Crop: cuts `bottom[0]` down to the shape of `bottom[1]` on every axis from
//! `crop_param.axis` (default 2) on, starting at `offset` (none: 0 on each;
//! one value: the same on each; else one per cropped axis). Axes before
//! `axis` keep their size. FCN uses it to align an upsampled score map with
//! the input image. `bottom[1]` only lends its shape and gets no gradient.
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct CropLayer {
    param: LayerParameter,
    /// Start of the kept window on each axis of bottom[0] (0 before `axis`).
    offsets: Vec<usize>,
}

impl CropLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(CropLayer {
            param: param.clone(),
            offsets: Vec::new(),
        }))
    }
}

/// Visits every innermost row of the top: calls `f(top_start, bottom_start,
/// row_len)` with flat offsets, the bottom's shifted by the crop offsets.
fn for_each_row(
    bottom_shape: &[usize],
    top_shape: &[usize],
    offsets: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let n = top_shape.len();
    let row = *top_shape.last().unwrap_or(&1);
    let rows: usize = top_shape[..n.saturating_sub(1)].iter().product();
    if row == 0 || rows == 0 {
        return;
    }
    let mut idx = vec![0usize; n.saturating_sub(1)];
    for r in 0..rows {
        // Bottom offset of (idx + offsets, offsets[last]).
        let mut b = 0;
        for (i, &v) in idx.iter().enumerate() {
            b = b * bottom_shape[i] + v + offsets[i];
        }
        b = b * bottom_shape.get(n.wrapping_sub(1)).copied().unwrap_or(1)
            + offsets.last().copied().unwrap_or(0);
        f(r * row, b, row);
        // Next multi-index, last axis fastest.
        for i in (0..idx.len()).rev() {
            idx[i] += 1;
            if idx[i] < top_shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

impl Layer for CropLayer {
    fn type_name(&self) -> &'static str {
        "Crop"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let cp = p.crop_param.get_or_default();
        let b0 = bottom[0].borrow();
        let start = canonical_axis(p, &b0, cp.axis() as i64)?;
        if cp.offset.len() > 1 {
            ensure!(
                p,
                start + cp.offset.len() == b0.num_axes(),
                "number of offset values specified ({}) must be equal to the number of dimensions following axis {start} ({})",
                cp.offset.len(),
                b0.num_axes() - start
            );
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let cp = p.crop_param.get_or_default();
        let (b0, b1) = (bottom[0].borrow(), bottom[1].borrow());
        ensure!(
            p,
            b0.num_axes() == b1.num_axes(),
            "bottom[0] {} and bottom[1] {} must have the same number of axes",
            b0.shape_string(),
            b1.shape_string()
        );
        let start = canonical_axis(p, &b0, cp.axis() as i64)?;
        let mut shape = b0.shape().to_vec();
        self.offsets = vec![0; shape.len()];
        // Several arrays share the axis index here.
        #[allow(clippy::needless_range_loop)]
        for i in start..shape.len() {
            let off = match cp.offset.len() {
                0 => 0,
                1 => cp.offset[0] as usize,
                _ => cp.offset[i - start] as usize,
            };
            ensure!(
                p,
                b0.shape()[i] >= off + b1.shape()[i],
                "invalid crop parameters in dimension {i}: offset {off} + size {} exceeds the input's {} (bottom[0] {})",
                b1.shape()[i],
                b0.shape()[i],
                b0.shape_string()
            );
            shape[i] = b1.shape()[i];
            self.offsets[i] = off;
        }
        drop((b0, b1));
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let top_shape = t.shape().to_vec();
        let y = t.data_mut();
        let x = b.data();
        for_each_row(b.shape(), &top_shape, &self.offsets, |ti, bi, n| {
            y[ti..ti + n].copy_from_slice(&x[bi..bi + n])
        });
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
        let t = top[0].borrow();
        let mut b = bottom[0].borrow_mut();
        let bottom_shape = b.shape().to_vec();
        let dx = b.diff_mut();
        dx.fill(0.0);
        let dy = t.diff();
        for_each_row(&bottom_shape, t.shape(), &self.offsets, |ti, bi, n| {
            dx[bi..bi + n].copy_from_slice(&dy[ti..ti + n])
        });
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index == 0
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::GradientChecker;
    use crate::Blob;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn crop(axis: Option<i32>, offset: &[u32]) -> crema_proto::caffe::LayerParameter {
        param("Crop", |p| {
            let cp = p.crop_param.mut_or_insert_default();
            if let Some(a) = axis {
                cp.set_axis(a);
            }
            cp.offset = offset.to_vec();
        })
    }

    fn forward(p: &crema_proto::caffe::LayerParameter, like: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let x = blob(&[2, 3, 5, 6], &fixture_line(TEXT, "crop_x"));
        let t = empty();
        run(&mut *layer(p), &[x, Blob::shared(like)], &[t.clone()]);
        let t = t.borrow();
        (t.shape().to_vec(), t.data().to_vec())
    }

    #[test]
    fn crop_matches_numpy_slices() {
        let (s, y) = forward(&crop(None, &[1, 2]), &[2, 3, 3, 4]);
        assert_eq!(s, vec![2, 3, 3, 4]);
        assert_close(&y, &fixture_line(TEXT, "crop_axis2_off12"), 1e-6);
        let (_, y) = forward(&crop(None, &[]), &[2, 3, 3, 4]);
        assert_close(&y, &fixture_line(TEXT, "crop_axis2_default"), 1e-6);
        // One offset for every axis from 1 on; axis 0 keeps bottom[0]'s 2.
        let (s, y) = forward(&crop(Some(1), &[1]), &[7, 2, 3, 4]);
        assert_eq!(s, vec![2, 2, 3, 4]);
        assert_close(&y, &fixture_line(TEXT, "crop_axis1_off1"), 1e-6);
    }

    #[test]
    fn crop_gradient() {
        let x = blob(&[2, 3, 5, 6], &fixture_line(TEXT, "crop_x"));
        let mut l = layer(&crop(Some(2), &[1, 2]));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *l,
            &[x, Blob::shared(&[1, 1, 3, 4])],
            &[empty()],
            Some(0),
        );
    }

    #[test]
    fn crop_refuses_bad_offsets_and_shapes() {
        let x = || blob(&[2, 3, 5, 6], &fixture_line(TEXT, "crop_x"));
        let msg = setup_error(
            &mut *layer(&crop(None, &[3, 3])),
            &[x(), Blob::shared(&[2, 3, 3, 4])],
            &[empty()],
        );
        assert!(
            msg.contains("invalid crop parameters in dimension 2"),
            "{msg}"
        );
        let msg = setup_error(
            &mut *layer(&crop(Some(1), &[0, 0])),
            &[x(), Blob::shared(&[2, 3, 3, 4])],
            &[empty()],
        );
        assert!(msg.contains("number of offset values"), "{msg}");
        let msg = setup_error(
            &mut *layer(&crop(None, &[])),
            &[x(), Blob::shared(&[2, 3, 3])],
            &[empty()],
        );
        assert!(msg.contains("same number of axes"), "{msg}");
    }
}
