//! Split: hands one bottom to several consumers. The net inserts it wherever a
//! blob feeds more than one layer, so each consumer writes its own top diff and
//! the gradients meet here as a sum instead of overwriting each other.
use crema_proto::caffe::LayerParameter;

use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct SplitLayer {
    param: LayerParameter,
}

impl SplitLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SplitLayer {
            param: param.clone(),
        }))
    }
}

impl Layer for SplitLayer {
    fn type_name(&self) -> &'static str {
        "Split"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        for t in top {
            // In place would make every consumer read and write the same diff.
            if std::rc::Rc::ptr_eq(t, &bottom[0]) {
                return Err(Error::layer(
                    &self.param,
                    "Split Layer does not allow in-place computation.",
                ));
            }
            t.borrow_mut().reshape_like(&b);
        }
        Ok(())
    }

    // Caffe shares the bottom's memory; our blobs own theirs, so each top gets
    // a copy of the values (the diffs must stay separate either way).
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        for t in top {
            t.borrow_mut().data_mut().copy_from_slice(b.data());
        }
        Ok(())
    }

    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if !propagate_down.first().copied().unwrap_or(false) {
            return Ok(());
        }
        let mut b = bottom[0].borrow_mut();
        let diff = b.diff_mut();
        diff.copy_from_slice(top[0].borrow().diff());
        for t in &top[1..] {
            diff.iter_mut()
                .zip(t.borrow().diff())
                .for_each(|(d, g)| *d += g);
        }
        Ok(())
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;

    fn split_param() -> LayerParameter {
        let mut p = LayerParameter::new();
        p.set_name("split".into());
        p.set_type("Split".into());
        p
    }

    #[test]
    fn split_copies_values_and_sums_diffs() {
        let bottom = Blob::shared(&[2, 3]);
        bottom
            .borrow_mut()
            .data_mut()
            .copy_from_slice(&[1., 2., 3., 4., 5., 6.]);
        let tops = vec![Blob::shared(&[1]), Blob::shared(&[1]), Blob::shared(&[1])];
        let mut layer = SplitLayer::new(&split_param()).unwrap();
        let bottoms = vec![bottom.clone()];
        layer.setup(&bottoms, &tops).unwrap();
        layer.reshape(&bottoms, &tops).unwrap();
        layer.forward(&bottoms, &tops).unwrap();
        for t in &tops {
            assert_eq!(t.borrow().shape(), &[2, 3]);
            assert_eq!(t.borrow().data(), &[1., 2., 3., 4., 5., 6.]);
        }
        for (k, t) in tops.iter().enumerate() {
            t.borrow_mut()
                .diff_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d = (k * 10 + i) as f32);
        }
        layer.backward(&tops, &[true], &bottoms).unwrap();
        // top k element i holds 10k + i: the sum over k = 0,1,2 is 30 + 3i.
        assert_eq!(bottom.borrow().diff(), &[30., 33., 36., 39., 42., 45.]);
    }

    #[test]
    fn split_refuses_in_place() {
        let b = Blob::shared(&[2]);
        let mut layer = SplitLayer::new(&split_param()).unwrap();
        let err = layer
            .reshape(std::slice::from_ref(&b), std::slice::from_ref(&b))
            .unwrap_err();
        assert!(err.to_string().contains("does not allow in-place"), "{err}");
    }
}
