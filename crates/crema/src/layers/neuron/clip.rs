//! Clip: `max(min, min(x, max))`; the gradient passes where `min <= x <= max`.
//! That test needs the input (the output is always inside the range), so in
//! place the layer keeps a copy of it.
use crema_proto::caffe::LayerParameter;

use super::saved_input::{map_backward_with_input, save_if_in_place};
use super::{map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct ClipLayer {
    param: LayerParameter,
    min: f32,
    max: f32,
    saved: Vec<f32>,
}

impl ClipLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let p = &param.clip_param;
        Ok(Box::new(ClipLayer {
            param: param.clone(),
            min: p.min(),
            max: p.max(),
            saved: Vec::new(),
        }))
    }
}

impl Layer for ClipLayer {
    fn type_name(&self) -> &'static str {
        "Clip"
    }
    /// `clip_param.min` and `max` are required fields in Caffe's schema.
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let (lp, p) = (&self.param, &self.param.clip_param);
        crate::ensure!(
            lp,
            p.has_min() && p.has_max(),
            "clip_param needs both min and max"
        );
        crate::ensure!(
            lp,
            p.min() <= p.max(),
            "clip_param.min {} exceeds max {}",
            p.min(),
            p.max()
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (lo, hi) = (self.min, self.max);
        save_if_in_place(&bottom[0], &top[0], &mut self.saved);
        map_forward(&bottom[0], &top[0], |x| x.min(hi).max(lo));
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            let (lo, hi) = (self.min, self.max);
            map_backward_with_input(&top[0], &bottom[0], &self.saved, |dy, x, _y| {
                if x >= lo && x <= hi {
                    dy
                } else {
                    0.0
                }
            });
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

    fn clip(min: f32, max: f32) -> crema_proto::caffe::LayerParameter {
        param("Clip", |l| {
            let p = l.clip_param.mut_or_insert_default();
            p.set_min(min);
            p.set_max(max);
        })
    }

    #[test]
    fn clip_by_hand_separate_and_in_place() {
        for in_place in [false, true] {
            let mut l = layer(&clip(-1.0, 2.0));
            let b = blob(&[5], &[-3.0, -1.0, 0.5, 2.0, 7.0]);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            assert_eq!(t.borrow().data(), &[-1.0, -1.0, 0.5, 2.0, 2.0]);
            t.borrow_mut()
                .diff_mut()
                .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            assert_eq!(b.borrow().diff(), &[0.0, 2.0, 3.0, 4.0, 0.0]);
        }
    }

    #[test]
    fn clip_needs_min_and_max_in_order() {
        let err = |p| setup_error(&mut *layer(&p), &[blob(&[1], &[0.0])], &[empty()]);
        assert!(err(param("Clip", |_| {})).contains("needs both min and max"));
        assert!(err(clip(1.0, -1.0)).contains("exceeds max"));
    }

    #[test]
    fn clip_gradient() {
        let x = crate::Blob::shared(&[2, 3, 2, 2]);
        fill_uniform(&x, -2.0, 2.0, 23);
        // Skip the two kinks by keeping inputs off them: none lands within 0.01 here.
        let mut l = layer(&clip(-1.0, 1.0));
        for v in x.borrow_mut().data_mut() {
            if (v.abs() - 1.0).abs() < 0.02 {
                *v += 0.05;
            }
        }
        GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(&mut *l, &[x], &[empty()], None);
    }
}
