//! Scale: `top = bottom[0] * s (+ b)`, with `s` broadcast over bottom[0]'s axes
//! `axis .. axis + s.num_axes()` exactly as Bias broadcasts (see bias.rs).
//! `s` is a learnable blob (one bottom; filler default constant 1) or the
//! second bottom. With `bias_term` a learnable bias of the same shape follows
//! (filler `bias_filler`, default constant 0): blobs are `[s, b]`, or `[b]`
//! when `s` is a bottom — Caffe's order, so caffemodels load. Works in place,
//! keeping a copy of the input for the gradient of `s`.
use crema_proto::caffe::{FillerParameter, LayerParameter};

use super::bias::{
    broadcast, check_operand_apart, filled_blob, param_shape, sum_to_operand, Broadcast,
};
use super::propagates;
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::neuron::{reshape_like, same_blob};
use crate::layers::Layer;

pub struct ScaleLayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
    /// Index of the bias in `blobs`, when there is one.
    bias_index: Option<usize>,
    geometry: Broadcast,
    /// The input of an in-place forward.
    saved: Vec<f32>,
}

impl ScaleLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ScaleLayer {
            param: param.clone(),
            blobs: Vec::new(),
            bias_index: None,
            geometry: Broadcast::default(),
            saved: Vec::new(),
        }))
    }

    fn scale_blob<'a>(&'a self, bottom: &'a [SharedBlob]) -> &'a SharedBlob {
        bottom.get(1).unwrap_or_else(|| &self.blobs[0])
    }
}

impl Layer for ScaleLayer {
    fn type_name(&self) -> &'static str {
        "Scale"
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let sp = &p.scale_param;
        check_operand_apart(p, bottom, top)?;
        let b = bottom[0].borrow();
        let mut blobs = Vec::new();
        let shape = if bottom.len() == 1 {
            let shape = param_shape(p, &b, sp.axis(), sp.num_axes())?;
            let filler = if sp.filler.is_some() {
                sp.filler.get_or_default().clone()
            } else {
                let mut f = FillerParameter::new();
                f.set_type("constant".into());
                f.set_value(1.0);
                f
            };
            blobs.push(filled_blob(p, &shape, &filler)?);
            shape
        } else {
            bottom[1].borrow().shape().to_vec()
        };
        if sp.bias_term() {
            self.bias_index = Some(blobs.len());
            blobs.push(filled_blob(p, &shape, sp.bias_filler.get_or_default())?);
        }
        self.blobs = blobs;
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let shape = self.scale_blob(bottom).borrow().shape().to_vec();
        self.geometry = broadcast(
            &self.param,
            &bottom[0].borrow(),
            &shape,
            self.param.scale_param.axis(),
        )?;
        if let Some(bi) = self.bias_index {
            let n = self.blobs[bi].borrow().count();
            crate::ensure!(
                &self.param,
                n == self.geometry.dim,
                "bias has {n} values but the scale has {}",
                self.geometry.dim
            );
        }
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let g = self.geometry;
        let s = self.scale_blob(bottom).borrow().data().to_vec();
        let bias = self
            .bias_index
            .map(|bi| self.blobs[bi].borrow().data().to_vec());
        let f = |i: usize, x: f32| {
            let d = g.operand_index(i);
            x * s[d] + bias.as_ref().map_or(0.0, |b| b[d])
        };
        if same_blob(&bottom[0], &top[0]) {
            let mut t = top[0].borrow_mut();
            self.saved.clear();
            self.saved.extend_from_slice(t.data());
            t.data_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, y)| *y = f(i, *y));
        } else {
            let x = bottom[0].borrow();
            let mut t = top[0].borrow_mut();
            t.data_mut()
                .iter_mut()
                .zip(x.data())
                .enumerate()
                .for_each(|(i, (y, &xi))| *y = f(i, xi));
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let g = self.geometry;
        let in_place = same_blob(&bottom[0], &top[0]);
        let is_param = bottom.len() == 1;
        // Parameter gradients first: in place, the bottom diff below overwrites the top diff.
        if let Some(bi) = self.bias_index {
            let t = top[0].borrow();
            sum_to_operand(t.diff(), g, self.blobs[bi].borrow_mut().diff_mut(), true);
        }
        if is_param || propagates(propagate_down, 1) {
            let t = top[0].borrow();
            let x_owned;
            let x: &[f32] = if in_place {
                &self.saved
            } else {
                x_owned = bottom[0].borrow();
                x_owned.data()
            };
            let prod: Vec<f32> = t.diff().iter().zip(x).map(|(dy, x)| dy * x).collect();
            sum_to_operand(
                &prod,
                g,
                self.scale_blob(bottom).borrow_mut().diff_mut(),
                is_param,
            );
        }
        if propagates(propagate_down, 0) {
            let s = self.scale_blob(bottom).borrow().data().to_vec();
            let dy = top[0].borrow().diff().to_vec();
            let mut b = bottom[0].borrow_mut();
            for (i, d) in b.diff_mut().iter_mut().enumerate() {
                *d = dy[i] * s[g.operand_index(i)];
            }
        }
        Ok(())
    }
    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    fn scale(edit: impl FnOnce(&mut crema_proto::caffe::ScaleParameter)) -> LayerParameter {
        param("Scale", |p| edit(p.scale_param.mut_or_insert_default()))
    }

    #[test]
    fn scale_defaults_to_ones_and_bias_to_zeros_in_caffe_order() {
        let mut l = layer(&scale(|s| s.set_bias_term(true)));
        let t = empty();
        run(
            &mut *l,
            &[blob(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0])],
            &[t.clone()],
        );
        assert_eq!(l.blobs().len(), 2);
        assert_eq!(l.blobs()[0].borrow().data(), &[1.0, 1.0]);
        assert_eq!(l.blobs()[1].borrow().data(), &[0.0, 0.0]);
        assert_eq!(t.borrow().data(), &[1.0, 2.0, 3.0, 4.0]);
        // The bottom form has only the bias.
        let mut l = layer(&scale(|s| s.set_bias_term(true)));
        run(
            &mut *l,
            &[Blob::shared(&[1, 2, 2]), Blob::shared(&[2])],
            &[empty()],
        );
        assert_eq!(l.blobs().len(), 1);
        assert_eq!(l.blobs()[0].borrow().shape(), &[2]);
    }

    #[test]
    fn scale_and_bias_by_hand_separate_and_in_place() {
        // x [2, 2, 1] along axis 1 with s = [2, -1], b = [0.5, 1].
        for in_place in [false, true] {
            let mut l = layer(&scale(|s| s.set_bias_term(true)));
            let x = blob(&[2, 2, 1], &[1.0, 2.0, 3.0, 4.0]);
            let t = if in_place { x.clone() } else { empty() };
            l.setup(&[x.clone()], &[t.clone()]).unwrap();
            l.blobs()[0]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(&[2.0, -1.0]);
            l.blobs()[1]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(&[0.5, 1.0]);
            l.reshape(&[x.clone()], &[t.clone()]).unwrap();
            l.forward(&[x.clone()], &[t.clone()]).unwrap();
            assert_eq!(t.borrow().data(), &[2.5, -1.0, 6.5, -3.0]);
            t.borrow_mut()
                .diff_mut()
                .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
            for b in l.blobs() {
                b.borrow_mut().diff_mut().fill(1.0);
            }
            l.backward(&[t], &[true], &[x.clone()]).unwrap();
            assert_eq!(x.borrow().diff(), &[2.0, -2.0, 6.0, -4.0]);
            // ds = 1 + Σ dy·x: 1 + 1·1 + 3·3, 1 + 2·2 + 4·4; db = 1 + Σ dy.
            assert_eq!(l.blobs()[0].borrow().diff(), &[11.0, 21.0]);
            assert_eq!(l.blobs()[1].borrow().diff(), &[5.0, 7.0]);
        }
    }

    #[test]
    fn scale_second_bottom_diff_is_overwritten() {
        let mut l = layer(&scale(|s| s.set_axis(0)));
        let (x, s, t) = (
            blob(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            blob(&[2], &[10.0, 100.0]),
            empty(),
        );
        run(&mut *l, &[x.clone(), s.clone()], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[10.0, 20.0, 300.0, 400.0]);
        t.borrow_mut().diff_mut().fill(1.0);
        s.borrow_mut().diff_mut().fill(9.0);
        l.backward(&[t], &[true, true], &[x.clone(), s.clone()])
            .unwrap();
        assert_eq!(s.borrow().diff(), &[3.0, 7.0]);
        assert_eq!(x.borrow().diff(), &[10.0, 10.0, 100.0, 100.0]);
    }

    #[test]
    fn scale_refuses_bad_operands() {
        let msg = setup_error(
            &mut *layer(&scale(|_| {})),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2])],
            &[empty()],
        );
        assert!(msg.contains("does not match"), "{msg}");
        let msg = setup_error(
            &mut *layer(&scale(|s| s.set_num_axes(-3))),
            &[Blob::shared(&[2, 3])],
            &[empty()],
        );
        assert!(msg.contains("num_axes must be"), "{msg}");
        let x = Blob::shared(&[2, 3]);
        let msg = setup_error(
            &mut *layer(&scale(|_| {})),
            &[x.clone(), x.clone()],
            &[empty()],
        );
        assert!(msg.contains("second bottom"), "{msg}");
    }

    #[test]
    fn scale_gradient_param_bottom_and_scalar_forms() {
        let x = Blob::shared(&[2, 3, 2, 2]);
        fill_uniform(&x, -1.0, 1.0, 47);
        let checker = GradientChecker::new(1e-3, 1e-2);
        let gaussian = |s: &mut crema_proto::caffe::ScaleParameter| {
            s.filler.mut_or_insert_default().set_type("gaussian".into());
            s.set_bias_term(true);
            s.bias_filler
                .mut_or_insert_default()
                .set_type("gaussian".into());
        };
        checker.check_gradient_exhaustive(
            &mut *layer(&scale(gaussian)),
            &[x.clone()],
            &[empty()],
            None,
        );
        checker.check_gradient_exhaustive(
            &mut *layer(&scale(|s| {
                s.set_axis(2);
                s.set_num_axes(-1);
                gaussian(s)
            })),
            &[x.clone()],
            &[empty()],
            None,
        );
        let s = Blob::shared(&[2, 3]);
        fill_uniform(&s, -1.0, 1.0, 53);
        checker.check_gradient_exhaustive(
            &mut *layer(&scale(|s| {
                s.set_axis(0);
                s.set_bias_term(true)
            })),
            &[x.clone(), s],
            &[empty()],
            None,
        );
        checker.check_gradient_exhaustive(
            &mut *layer(&scale(|_| {})),
            &[x, blob(&[], &[0.7])],
            &[empty()],
            None,
        );
    }
}
