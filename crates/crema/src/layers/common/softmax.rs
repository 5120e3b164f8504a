//! Softmax over one axis (`softmax_param.axis`, default 1):
//! `y_c = exp(x_c - max) / Σ_k exp(x_k - max)`, independently for every
//! position of the other axes. Works in place.
use std::rc::Rc;

use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, propagates};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct SoftmaxLayer {
    param: LayerParameter,
    /// Sizes before, along and after the softmax axis.
    outer: usize,
    channels: usize,
    inner: usize,
}

impl SoftmaxLayer {
    /// Reads `softmax_param.axis`; the engine choice does not change the result.
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SoftmaxLayer {
            param: param.clone(),
            outer: 0,
            channels: 0,
            inner: 0,
        }))
    }
}

/// Softmax of `v` in place (laid out as outer × channels × inner).
/// Subtracting the maximum first keeps `exp` from overflowing.
pub(crate) fn softmax_in_place(v: &mut [f32], outer: usize, channels: usize, inner: usize) {
    for o in 0..outer {
        let base = o * channels * inner;
        for i in 0..inner {
            let at = |c: usize| base + c * inner + i;
            let max = (0..channels)
                .map(|c| v[at(c)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for c in 0..channels {
                let e = (v[at(c)] - max).exp();
                v[at(c)] = e;
                sum += e;
            }
            for c in 0..channels {
                v[at(c)] /= sum;
            }
        }
    }
}

/// `dx = y ⊙ (dy - Σ_c dy·y)` along the softmax axis; `dx` may start as a copy
/// of `dy` (in place), so it is read before being written.
fn softmax_backward(y: &[f32], dx: &mut [f32], outer: usize, channels: usize, inner: usize) {
    for o in 0..outer {
        let base = o * channels * inner;
        for i in 0..inner {
            let at = |c: usize| base + c * inner + i;
            let dot: f32 = (0..channels).map(|c| dx[at(c)] * y[at(c)]).sum();
            for c in 0..channels {
                dx[at(c)] = (dx[at(c)] - dot) * y[at(c)];
            }
        }
    }
}

impl Layer for SoftmaxLayer {
    fn type_name(&self) -> &'static str {
        "Softmax"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let axis = canonical_axis(&self.param, &b, self.param.softmax_param.axis() as i64)?;
        self.outer = b.count_range(0, axis);
        self.channels = b.shape()[axis];
        self.inner = b.count_from(axis + 1);
        if !Rc::ptr_eq(&bottom[0], &top[0]) {
            top[0].borrow_mut().reshape_like(&b);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (o, c, i) = (self.outer, self.channels, self.inner);
        if !Rc::ptr_eq(&bottom[0], &top[0]) {
            top[0]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(bottom[0].borrow().data());
        }
        softmax_in_place(top[0].borrow_mut().data_mut(), o, c, i);
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
        let (o, c, i) = (self.outer, self.channels, self.inner);
        if Rc::ptr_eq(&bottom[0], &top[0]) {
            let mut b = bottom[0].borrow_mut();
            let (y, dx) = b.data_and_diff_mut();
            softmax_backward(y, dx, o, c, i);
        } else {
            let t = top[0].borrow();
            let mut b = bottom[0].borrow_mut();
            let dx = b.diff_mut();
            dx.copy_from_slice(t.diff());
            softmax_backward(t.data(), dx, o, c, i);
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
    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};

    fn softmax_param(axis: Option<i32>) -> crema_proto::caffe::LayerParameter {
        param("Softmax", |p| {
            if let Some(a) = axis {
                p.softmax_param.mut_or_insert_default().set_axis(a);
            }
        })
    }

    #[test]
    fn softmax_over_channels_by_default() {
        // Two rows, three classes; [0, ln 2, ln 3] -> [1, 2, 3] / 6.
        let (l2, l3) = (2f32.ln(), 3f32.ln());
        let mut l = layer(&softmax_param(None));
        let (b, t) = (
            blob(&[2, 3], &[0.0, l2, l3, 1000.0, 1000.0, 1000.0]),
            empty(),
        );
        run(&mut *l, &[b], &[t.clone()]);
        let third = 1.0 / 3.0;
        assert_close(
            t.borrow().data(),
            &[1.0 / 6.0, 2.0 / 6.0, 0.5, third, third, third],
            1e-6,
        );
    }

    #[test]
    fn softmax_axis_selects_the_normalized_axis() {
        // Shape 2x2; axis 0 normalizes each column, axis -1 each row.
        let x = [0.0, 1.0, 0.0, 3.0];
        let mut l = layer(&softmax_param(Some(0)));
        let t = empty();
        run(&mut *l, &[blob(&[2, 2], &x)], &[t.clone()]);
        let e2 = 1.0 / (1.0 + (-2f32).exp()); // exp(3) / (exp(1) + exp(3))
        assert_close(t.borrow().data(), &[0.5, 1.0 - e2, 0.5, e2], 1e-6);
        let mut l = layer(&softmax_param(Some(-1)));
        run(&mut *l, &[blob(&[2, 2], &x)], &[t.clone()]);
        let e1 = 1.0 / (1.0 + (-1f32).exp());
        let e3 = 1.0 / (1.0 + (-3f32).exp());
        assert_close(t.borrow().data(), &[1.0 - e1, e1, 1.0 - e3, e3], 1e-6);
    }

    #[test]
    fn softmax_bad_axis_is_an_error() {
        let mut l = layer(&softmax_param(Some(2)));
        let msg = setup_error(&mut *l, &[blob(&[2, 2], &[0.0; 4])], &[empty()]);
        assert!(
            msg.contains("axis 2 out of range") && msg.contains("Softmax"),
            "{msg}"
        );
    }

    #[test]
    fn in_place_softmax_matches_separate_blobs() {
        let b = crate::Blob::shared(&[2, 4, 3]);
        fill_uniform(&b, -2.0, 2.0, 4);
        let x = b.borrow().data().to_vec();
        let mut l = layer(&softmax_param(None));
        let t = empty();
        run(&mut *l, &[b.clone()], &[t.clone()]);
        let dy: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        t.borrow_mut().diff_mut().copy_from_slice(&dy);
        l.backward(&[t.clone()], &[true], &[b.clone()]).unwrap();

        let c = blob(&[2, 4, 3], &x);
        let mut l2 = layer(&softmax_param(None));
        run(&mut *l2, &[c.clone()], &[c.clone()]);
        assert_close(c.borrow().data(), t.borrow().data(), 1e-7);
        c.borrow_mut().diff_mut().copy_from_slice(&dy);
        l2.backward(&[c.clone()], &[true], &[c.clone()]).unwrap();
        assert_close(c.borrow().diff(), b.borrow().diff(), 1e-7);
    }

    #[test]
    fn softmax_gradient() {
        for axis in [None, Some(2)] {
            let mut l = layer(&softmax_param(axis));
            let (b, t) = (crate::Blob::shared(&[2, 3, 2, 2]), empty());
            fill_uniform(&b, -1.0, 1.0, 8);
            GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(&mut *l, &[b], &[t], None);
        }
    }
}
