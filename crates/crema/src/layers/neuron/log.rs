//! Log: `log_base(shift + scale x)`, with `base: -1` (the default) meaning e.
//! The derivative `scale / ((shift + scale x) ln base)` needs the input, so in
//! place the layer keeps a copy of it.
use crema_proto::caffe::LayerParameter;

use super::saved_input::{map_backward_with_input, save_if_in_place};
use super::{map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct LogLayer {
    /// 1 / ln(base).
    base_scale: f32,
    scale: f32,
    shift: f32,
    saved: Vec<f32>,
}

impl LogLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let p = &param.log_param;
        let base = p.base();
        crate::ensure!(
            param,
            base == -1.0 || (base > 0.0 && base != 1.0),
            "base must be strictly positive and not 1, or -1 for base e; got {base}"
        );
        let base_scale = if base == -1.0 { 1.0 } else { 1.0 / base.ln() };
        Ok(Box::new(LogLayer {
            base_scale,
            scale: p.scale(),
            shift: p.shift(),
            saved: Vec::new(),
        }))
    }
}

impl Layer for LogLayer {
    fn type_name(&self) -> &'static str {
        "Log"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (k, a, b) = (self.base_scale, self.scale, self.shift);
        save_if_in_place(&bottom[0], &top[0], &mut self.saved);
        map_forward(&bottom[0], &top[0], |x| k * (b + a * x).ln());
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            let (k, a, b) = (self.base_scale, self.scale, self.shift);
            map_backward_with_input(&top[0], &bottom[0], &self.saved, |dy, x, _y| {
                dy * a * k / (b + a * x)
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

    fn log(base: f32, scale: f32, shift: f32) -> crema_proto::caffe::LayerParameter {
        param("Log", |l| {
            let p = l.log_param.mut_or_insert_default();
            p.set_base(base);
            p.set_scale(scale);
            p.set_shift(shift);
        })
    }

    #[test]
    fn log_defaults_to_natural_log() {
        let e = std::f32::consts::E;
        let mut l = layer(&param("Log", |_| {}));
        let (b, t) = (blob(&[3], &[1.0, e, 0.5]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_close(
            t.borrow().data(),
            &[0.0, 1.0, -std::f32::consts::LN_2],
            1e-6,
        );
        t.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_close(b.borrow().diff(), &[1.0, 1.0 / e, 2.0], 1e-6);
    }

    #[test]
    fn log_base_scale_shift_by_hand_and_in_place() {
        // log2(1 + 3x) at x = 1, 5: 2, 4; derivative 3 / ((1 + 3x) ln 2).
        for in_place in [false, true] {
            let mut l = layer(&log(2.0, 3.0, 1.0));
            let b = blob(&[2], &[1.0, 5.0]);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            assert_close(t.borrow().data(), &[2.0, 4.0], 1e-5);
            t.borrow_mut().diff_mut().fill(1.0);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            let ln2 = std::f32::consts::LN_2;
            assert_close(
                b.borrow().diff(),
                &[3.0 / (4.0 * ln2), 3.0 / (16.0 * ln2)],
                1e-5,
            );
        }
    }

    #[test]
    fn log_refuses_bad_base() {
        for base in [0.0, -3.0, 1.0] {
            let err = crate::layers::create_layer(&log(base, 1.0, 0.0))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("base must be strictly positive"), "{err}");
        }
    }

    #[test]
    fn log_gradient() {
        for (base, scale, shift) in [(-1.0, 1.0, 0.0), (2.0, 0.5, 1.0), (10.0, -0.4, 1.5)] {
            let x = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, 0.1, 1.0, 19);
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&log(base, scale, shift)),
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
