//! Exp: `base^(shift + scale x)`, with `base: -1` (the default) meaning e.
//! Written as `outer e^(inner x)` with `inner = scale ln(base)` and
//! `outer = base^shift`; the derivative `inner y` needs only the output, so
//! the layer works in place.
use crema_proto::caffe::LayerParameter;

use super::{map_backward, map_forward, propagates, reshape_like};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct ExpLayer {
    inner_scale: f32,
    outer_scale: f32,
}

impl ExpLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let p = &param.exp_param;
        let base = p.base();
        crate::ensure!(
            param,
            base == -1.0 || base > 0.0,
            "base must be strictly positive, or -1 for base e; got {base}"
        );
        let ln_base = if base == -1.0 { 1.0 } else { base.ln() };
        let outer_scale = if p.shift() == 0.0 {
            1.0
        } else {
            (ln_base * p.shift()).exp()
        };
        Ok(Box::new(ExpLayer {
            inner_scale: ln_base * p.scale(),
            outer_scale,
        }))
    }
}

impl Layer for ExpLayer {
    fn type_name(&self) -> &'static str {
        "Exp"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (i, o) = (self.inner_scale, self.outer_scale);
        map_forward(&bottom[0], &top[0], |x| o * (i * x).exp());
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 0) {
            let i = self.inner_scale;
            map_backward(&top[0], &bottom[0], |dy, _x, y| dy * y * i);
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

    fn exp(base: f32, scale: f32, shift: f32) -> crema_proto::caffe::LayerParameter {
        param("Exp", |l| {
            let p = l.exp_param.mut_or_insert_default();
            p.set_base(base);
            p.set_scale(scale);
            p.set_shift(shift);
        })
    }

    #[test]
    fn exp_defaults_to_natural_base() {
        for in_place in [false, true] {
            let mut l = layer(&param("Exp", |_| {}));
            let b = blob(&[3], &[-1.0, 0.0, 1.0]);
            let t = if in_place { b.clone() } else { empty() };
            run(&mut *l, &[b.clone()], &[t.clone()]);
            let e = std::f32::consts::E;
            assert_close(t.borrow().data(), &[1.0 / e, 1.0, e], 1e-6);
            t.borrow_mut().diff_mut().fill(2.0);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            assert_close(b.borrow().diff(), &[2.0 / e, 2.0, 2.0 * e], 1e-5);
        }
    }

    #[test]
    fn exp_base_scale_shift_by_hand() {
        // 2^(1 + 3x) at x = 0, 1: 2, 16; derivative 3 ln2 y.
        let mut l = layer(&exp(2.0, 3.0, 1.0));
        let (b, t) = (blob(&[2], &[0.0, 1.0]), empty());
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert_close(t.borrow().data(), &[2.0, 16.0], 1e-5);
        t.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true], &[b.clone()]).unwrap();
        let k = 3.0 * 2f32.ln();
        assert_close(b.borrow().diff(), &[2.0 * k, 16.0 * k], 1e-4);
    }

    #[test]
    fn exp_refuses_non_positive_base() {
        let err = crate::layers::create_layer(&exp(-2.0, 1.0, 0.0))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("base must be strictly positive"), "{err}");
        assert!(crate::layers::create_layer(&exp(0.0, 1.0, 0.0)).is_err());
    }

    #[test]
    fn exp_gradient() {
        for (base, scale, shift) in [(-1.0, 1.0, 0.0), (2.0, 0.5, 1.0), (-1.0, -1.2, 0.3)] {
            let x = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -1.0, 1.0, 17);
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&exp(base, scale, shift)),
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
