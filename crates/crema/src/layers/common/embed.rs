//! Embed: a lookup table. Each bottom value is an index in `0..input_dim`; the
//! top gains a last axis of `num_output` holding that row of the
//! `input_dim × num_output` weights, plus the bias when `bias_term` (default
//! true). Equivalent to InnerProduct on one-hot inputs, so the gradient goes
//! to the weights (and bias) only; the indices get none.
use std::cell::RefCell;
use std::rc::Rc;

use crema_proto::caffe::LayerParameter;

use super::{check_distinct, propagates};
use crate::blob::{Blob, SharedBlob};
use crate::ensure;
use crate::error::{Error, Result};
use crate::fillers;
use crate::layers::Layer;

pub struct EmbedLayer {
    param: LayerParameter,
    num_output: usize,
    input_dim: usize,
    bias_term: bool,
    blobs: Vec<SharedBlob>,
}

impl EmbedLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let ep = param.embed_param.get_or_default();
        Ok(Box::new(EmbedLayer {
            param: param.clone(),
            num_output: ep.num_output() as usize,
            input_dim: ep.input_dim() as usize,
            bias_term: ep.bias_term(),
            blobs: Vec::new(),
        }))
    }

    /// The row index a bottom value names; anything but a whole number in
    /// `0..input_dim` is an error naming the position.
    fn index(&self, v: f32, at: usize) -> Result<usize> {
        if v >= 0.0 && v.fract() == 0.0 && (v as usize) < self.input_dim {
            Ok(v as usize)
        } else {
            Err(Error::layer(
                &self.param,
                format!(
                    "bottom[0][{at}] = {v} is not an index in 0..{} (input_dim)",
                    self.input_dim
                ),
            ))
        }
    }
}

impl Layer for EmbedLayer {
    fn type_name(&self) -> &'static str {
        "Embed"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let ep = self.param.embed_param.get_or_default();
        ensure!(
            &self.param,
            ep.num_output() > 0,
            "EmbedLayer num_output must be positive."
        );
        ensure!(
            &self.param,
            ep.input_dim() > 0,
            "EmbedLayer input_dim must be positive."
        );
        let wrap = |which: &str, e: Error| Error::layer(&self.param, format!("{which}: {e}"));
        let mut w = Blob::new(&[self.input_dim, self.num_output]);
        fillers::fill(ep.weight_filler.get_or_default(), &mut w)
            .map_err(|e| wrap("weight_filler", e))?;
        self.blobs = vec![Rc::new(RefCell::new(w))];
        if self.bias_term {
            let mut b = Blob::new(&[self.num_output]);
            fillers::fill(ep.bias_filler.get_or_default(), &mut b)
                .map_err(|e| wrap("bias_filler", e))?;
            self.blobs.push(Rc::new(RefCell::new(b)));
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        check_distinct(&self.param, bottom, top)?;
        let mut shape = bottom[0].borrow().shape().to_vec();
        shape.push(self.num_output);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let w = self.blobs[0].borrow();
        let bias = self.blobs.get(1).map(|b| b.borrow());
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        let n = self.num_output;
        for (m, &v) in b.data().iter().enumerate() {
            let row = self.index(v, m)?;
            let out = &mut y[m * n..(m + 1) * n];
            out.copy_from_slice(&w.data()[row * n..(row + 1) * n]);
            if let Some(bias) = &bias {
                out.iter_mut().zip(bias.data()).for_each(|(o, b)| *o += b);
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
        ensure!(
            &self.param,
            !propagates(propagate_down, 0),
            "Can't backpropagate to EmbedLayer input."
        );
        let b = bottom[0].borrow();
        let t = top[0].borrow();
        let n = self.num_output;
        {
            let mut w = self.blobs[0].borrow_mut();
            let wd = w.diff_mut();
            for (m, &v) in b.data().iter().enumerate() {
                let row = self.index(v, m)?;
                wd[row * n..(row + 1) * n]
                    .iter_mut()
                    .zip(&t.diff()[m * n..(m + 1) * n])
                    .for_each(|(d, g)| *d += g);
            }
        }
        if let Some(bias) = self.blobs.get(1) {
            let mut bias = bias.borrow_mut();
            let bd = bias.diff_mut();
            for g in t.diff().chunks_exact(n) {
                bd.iter_mut().zip(g).for_each(|(d, g)| *d += g);
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
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn allow_force_backward(&self, _bottom_index: usize) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::GradientChecker;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn embed(bias: bool) -> crema_proto::caffe::LayerParameter {
        param("Embed", |p| {
            let ep = p.embed_param.mut_or_insert_default();
            ep.set_num_output(3);
            ep.set_input_dim(5);
            ep.set_bias_term(bias);
            let f = ep.weight_filler.mut_or_insert_default();
            f.set_type("uniform".into());
            f.set_min(-1.0);
            f.set_max(1.0);
            let f = ep.bias_filler.mut_or_insert_default();
            f.set_type("uniform".into());
            f.set_min(-1.0);
            f.set_max(1.0);
        })
    }

    fn idx() -> crate::SharedBlob {
        blob(&[2, 2], &fixture_line(TEXT, "embed_idx"))
    }

    #[test]
    fn embed_looks_up_rows_like_numpy() {
        for (bias, key) in [(true, "embed_y"), (false, "embed_y_nobias")] {
            let (b, t) = (idx(), empty());
            let mut l = layer(&embed(bias));
            l.setup(&[b.clone()], &[t.clone()]).unwrap();
            assert_eq!(l.blobs().len(), if bias { 2 } else { 1 });
            assert_eq!(l.blobs()[0].borrow().shape(), &[5, 3]);
            l.blobs()[0]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(&fixture_line(TEXT, "embed_w"));
            if bias {
                l.blobs()[1]
                    .borrow_mut()
                    .data_mut()
                    .copy_from_slice(&fixture_line(TEXT, "embed_b"));
            }
            l.reshape(&[b.clone()], &[t.clone()]).unwrap();
            l.forward(&[b], &[t.clone()]).unwrap();
            assert_eq!(t.borrow().shape(), &[2, 2, 3]);
            assert_close(t.borrow().data(), &fixture_line(TEXT, key), 1e-6);
        }
    }

    #[test]
    fn embed_gradient_to_weights_and_bias() {
        let mut l = layer(&embed(true));
        // check_bottom past the last bottom: parameters only, as Caffe's test.
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *l,
            &[idx()],
            &[empty()],
            Some(1),
        );
    }

    #[test]
    fn embed_refuses_bad_index_params_and_input_gradient() {
        for bad in [5.0, -1.0, 1.5] {
            let (b, t) = (blob(&[2], &[0.0, bad]), empty());
            let mut l = layer(&embed(true));
            l.setup(&[b.clone()], &[t.clone()]).unwrap();
            l.reshape(&[b.clone()], &[t.clone()]).unwrap();
            let msg = l.forward(&[b], &[t]).unwrap_err().to_string();
            assert!(
                msg.contains("bottom[0][1]") && msg.contains("0..5"),
                "{msg}"
            );
        }
        let p = param("Embed", |p| {
            p.embed_param.mut_or_insert_default().set_input_dim(3);
        });
        let msg = setup_error(&mut *layer(&p), &[idx()], &[empty()]);
        assert!(msg.contains("num_output must be positive"), "{msg}");
        let (b, t) = (idx(), empty());
        let mut l = layer(&embed(true));
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert!(l
            .backward(&[t], &[true], &[b])
            .unwrap_err()
            .to_string()
            .contains("Can't backpropagate"));
    }
}
