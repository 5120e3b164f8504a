//! Caffe's Net::ShareTrainedLayersWith: a net takes another net's parameter
//! blobs, layer by layer by name, so that training one is seen by the other
//! (pycaffe's `Net.share_with` and `Solver.share_weights`).
use std::rc::Rc;

use super::Net;
use crate::blob::SharedBlob;
use crate::error::{Error, Result};

impl Net {
    /// Makes every layer that `other` also has (by name) use `other`'s
    /// parameter blobs. Caffe shares the data only; crema's blobs carry data
    /// and diff together, so the diffs are shared as well, which changes
    /// nothing for a net that is only run forward (the usual test net).
    /// Counts and shapes are checked for every layer before anything changes.
    pub fn share_trained_layers_with(&mut self, other: &Net) -> Result<()> {
        let mut plan: Vec<(usize, Vec<SharedBlob>)> = Vec::new();
        for (i, name) in other.layer_names.iter().enumerate() {
            let Some(&t) = self.layer_names_index.get(name) else {
                log::debug!("Ignoring source layer {name}");
                continue;
            };
            let src = other.layers[i].blobs();
            let dst = self.layers[t].blobs();
            if src.len() != dst.len() {
                return Err(self.share_error(format!(
                    "Incompatible number of blobs for layer {name}: the source has {}, this net {}",
                    src.len(),
                    dst.len()
                )));
            }
            for (j, (s, d)) in src.iter().zip(dst).enumerate() {
                let (s, d) = (s.borrow(), d.borrow());
                if s.shape() != d.shape() {
                    return Err(self.share_error(format!(
                        "Cannot share param {j} weights from layer '{name}'; shape mismatch.  \
                         Source param shape is {}; target param shape is {}",
                        s.shape_string(),
                        d.shape_string()
                    )));
                }
            }
            if !src.is_empty() {
                if self.layers[t].blobs_mut().is_none() {
                    return Err(self.share_error(format!(
                        "layer '{name}' cannot share its parameters: its type does not expose its parameter list"
                    )));
                }
                plan.push((t, src.to_vec()));
            }
        }
        for (t, src) in plan {
            let old = self.layers[t].blobs().to_vec();
            for (old, new) in old.iter().zip(&src) {
                self.replace_blob(old, new);
            }
        }
        Ok(())
    }

    fn share_error(&self, message: String) -> Error {
        Error::Net {
            net: self.name.clone(),
            message,
        }
    }

    /// Puts `new` wherever this net holds `old`: in every layer's parameter
    /// list (ParamSpec sharers included) and in the net's parameter lists.
    fn replace_blob(&mut self, old: &SharedBlob, new: &SharedBlob) {
        if Rc::ptr_eq(old, new) {
            return;
        }
        let swap = |b: &mut SharedBlob| {
            if Rc::ptr_eq(b, old) {
                *b = new.clone();
            }
        };
        for layer in &mut self.layers {
            if let Some(list) = layer.blobs_mut() {
                list.iter_mut().for_each(swap);
            }
        }
        self.params.iter_mut().for_each(swap);
        self.learnable_params.iter_mut().for_each(swap);
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::super::tests::{build, data, set};

    const NET: &str = r#"
      name: "pair"
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
      layer { name: "ip" type: "TestAffine" bottom: "data" top: "ip"
              inner_product_param { num_output: 1 weight_filler { value: 0.5 } bias_filler { value: 1 } } }
    "#;

    #[test]
    fn shared_layers_see_the_source_weights_and_later_changes() {
        let source = build(NET).unwrap();
        let mut target = build(NET).unwrap();
        source.layers()[1].blobs()[0]
            .borrow_mut()
            .data_mut()
            .copy_from_slice(&[2.0, 3.0]);
        target.share_trained_layers_with(&source).unwrap();
        let (s, t) = (
            &source.layers()[1].blobs()[0],
            &target.layers()[1].blobs()[0],
        );
        assert!(Rc::ptr_eq(s, t));
        assert!(Rc::ptr_eq(&target.learnable_params()[0], s));
        assert!(Rc::ptr_eq(&target.params()[0], s));
        set(&target, "data", &[1.0, 1.0]);
        target.forward().unwrap();
        assert_eq!(data(&target, "ip"), vec![6.0]); // 2 + 3 + bias 1
        s.borrow_mut().data_mut()[0] = 10.0;
        target.forward().unwrap();
        assert_eq!(data(&target, "ip"), vec![14.0]);
    }

    #[test]
    fn a_shape_mismatch_is_an_error_and_changes_nothing() {
        let source = build(NET).unwrap();
        let mut target = build(&NET.replace("dim: 2", "dim: 3")).unwrap();
        let err = target
            .share_trained_layers_with(&source)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Cannot share param 0 weights from layer 'ip'; shape mismatch."),
            "{err}"
        );
        assert!(!Rc::ptr_eq(
            &source.layers()[1].blobs()[0],
            &target.layers()[1].blobs()[0]
        ));
    }
}
