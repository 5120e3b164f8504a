//! Power: `(shift + scale x)^power`. Its derivative
//! `power scale (shift + scale x)^(power - 1)` needs the input, so in place the
//! layer keeps a copy of it. Caffe divides the output by the base instead,
//! which is NaN at a zero base; the direct form is finite there.
use crema_proto::caffe::LayerParameter;

use super::saved_input::{map_backward_with_input, save_if_in_place};
use super::{map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct PowerLayer {
    power: f32,
    scale: f32,
    shift: f32,
    saved: Vec<f32>,
}

impl PowerLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let p = &param.power_param;
        Ok(Box::new(PowerLayer {
            power: p.power(),
            scale: p.scale(),
            shift: p.shift(),
            saved: Vec::new(),
        }))
    }
}

impl Layer for PowerLayer {
    fn type_name(&self) -> &'static str {
        "Power"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (p, a, b) = (self.power, self.scale, self.shift);
        save_if_in_place(&bottom[0], &top[0], &mut self.saved);
        map_forward(&bottom[0], &top[0], |x| pow(b + a * x, p));
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
        let (p, a, b) = (self.power, self.scale, self.shift);
        let diff_scale = p * a;
        map_backward_with_input(&top[0], &bottom[0], &self.saved, |dy, x, _y| {
            if diff_scale == 0.0 {
                0.0
            } else {
                dy * diff_scale * pow(b + a * x, p - 1.0)
            }
        });
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

/// `x^p` with the exact small powers Caffe special-cases (x^0 = 1, x^1 = x).
fn pow(x: f32, p: f32) -> f32 {
    if p == 0.0 {
        1.0
    } else if p == 1.0 {
        x
    } else if p == 2.0 {
        x * x
    } else {
        x.powf(p)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;

    fn power(p: f32, a: f32, b: f32) -> crema_proto::caffe::LayerParameter {
        param("Power", |l| {
            let pp = l.power_param.mut_or_insert_default();
            pp.set_power(p);
            pp.set_scale(a);
            pp.set_shift(b);
        })
    }

    #[test]
    fn power_defaults_are_identity() {
        let mut l = layer(&param("Power", |_| {}));
        let (b, t) = (blob(&[3], &[-1.5, 0.0, 2.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[-1.5, 0.0, 2.0]);
        t.borrow_mut().diff_mut().fill(3.0);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[3.0, 3.0, 3.0]);
    }

    #[test]
    fn power_scale_shift_by_hand_and_in_place() {
        // (1 + 2x)^3 at x = 0, 0.5, 1: 1, 8, 27; derivative 6 (1 + 2x)^2: 6, 24, 54.
        for in_place in [false, true] {
            let mut l = layer(&power(3.0, 2.0, 1.0));
            let b = blob(&[3], &[0.0, 0.5, 1.0]);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            assert_close(t.borrow().data(), &[1.0, 8.0, 27.0], 1e-5);
            t.borrow_mut().diff_mut().fill(0.5);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            assert_close(b.borrow().diff(), &[3.0, 12.0, 27.0], 1e-5);
        }
    }

    #[test]
    fn power_zero_scale_is_constant_with_zero_gradient() {
        let mut l = layer(&power(2.0, 0.0, 3.0));
        let (b, t) = (blob(&[2], &[5.0, -5.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[9.0, 9.0]);
        t.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        assert_eq!(b.borrow().diff(), &[0.0, 0.0]);
    }

    #[test]
    fn power_gradient() {
        // Fractional powers need a positive base: shift 2 keeps 2 + 0.5x > 0.
        for (p, a, b, lo) in [
            (2.0, 0.83, -2.4, -1.0),
            (0.37, 0.5, 2.0, -1.0),
            (-1.5, 0.5, 2.0, -1.0),
            (3.0, 1.0, 0.0, -1.0),
        ] {
            let x = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, lo, 1.0, 13);
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&power(p, a, b)),
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
