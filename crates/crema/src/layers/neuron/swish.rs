//! Swish: `x σ(βx)`. Its derivative `βy + σ(βx)(1 - βy)` is written through the
//! output and the stored sigmoid, as Caffe does, so the layer works in place.
use crema_proto::caffe::LayerParameter;

use super::{propagates, reshape_like, same_blob};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct SwishLayer {
    beta: f32,
    /// σ(βx) of the last forward.
    sigmoid: Vec<f32>,
}

impl SwishLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SwishLayer {
            beta: param.swish_param.beta(),
            sigmoid: Vec::new(),
        }))
    }
}

/// Through tanh, as the Sigmoid layer, so large |x| does not overflow.
fn sigmoid(x: f32) -> f32 {
    0.5 * (0.5 * x).tanh() + 0.5
}

impl Layer for SwishLayer {
    fn type_name(&self) -> &'static str {
        "Swish"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let beta = self.beta;
        self.sigmoid.clear();
        self.sigmoid
            .extend(bottom[0].borrow().data().iter().map(|&x| sigmoid(beta * x)));
        let s = &self.sigmoid;
        if same_blob(&bottom[0], &top[0]) {
            let mut b = bottom[0].borrow_mut();
            b.data_mut().iter_mut().zip(s).for_each(|(y, &si)| *y *= si);
        } else {
            let b = bottom[0].borrow();
            let mut t = top[0].borrow_mut();
            for ((y, &x), &si) in t.data_mut().iter_mut().zip(b.data()).zip(s) {
                *y = x * si;
            }
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
        let (beta, s) = (self.beta, &self.sigmoid);
        let g = |dy: f32, y: f32, si: f32| dy * (beta * y + si * (1.0 - beta * y));
        if same_blob(&bottom[0], &top[0]) {
            let mut b = bottom[0].borrow_mut();
            let (y, d) = b.data_and_diff_mut();
            for i in 0..d.len() {
                d[i] = g(d[i], y[i], s[i]);
            }
        } else {
            let t = top[0].borrow();
            let mut b = bottom[0].borrow_mut();
            for (i, d) in b.diff_mut().iter_mut().enumerate() {
                *d = g(t.diff()[i], t.data()[i], s[i]);
            }
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

    fn swish(beta: Option<f32>) -> crema_proto::caffe::LayerParameter {
        param("Swish", |p| {
            if let Some(b) = beta {
                p.swish_param.mut_or_insert_default().set_beta(b);
            }
        })
    }

    #[test]
    fn swish_by_hand_with_beta_and_in_place() {
        // Worked in f64: y = x / (1 + e^-βx), dy/dx = s + βx s (1 - s).
        for beta in [1.0f64, 2.0] {
            let x = [-2.0f64, 0.0, 0.5, 3.0];
            let s: Vec<f64> = x.iter().map(|v| 1.0 / (1.0 + (-beta * v).exp())).collect();
            let y: Vec<f32> = x.iter().zip(&s).map(|(v, s)| (v * s) as f32).collect();
            let d: Vec<f32> = x
                .iter()
                .zip(&s)
                .map(|(v, s)| (s + beta * v * s * (1.0 - s)) as f32)
                .collect();
            for in_place in [false, true] {
                let mut l = layer(&swish((beta != 1.0).then_some(beta as f32)));
                let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let b = blob(&[4], &xs);
                let t = if in_place { b.clone() } else { empty() };
                run(&mut *l, &[b.clone()], &[t.clone()]);
                assert_close(t.borrow().data(), &y, 1e-6);
                t.borrow_mut().diff_mut().fill(1.0);
                l.backward(&[t], &[true], &[b.clone()]).unwrap();
                assert_close(b.borrow().diff(), &d, 1e-6);
            }
        }
    }

    #[test]
    fn swish_gradient() {
        for beta in [None, Some(1.5)] {
            let x = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -2.0, 2.0, 29);
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&swish(beta)),
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
