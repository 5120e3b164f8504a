//! BatchReindex: `top[i] = bottom[0][perm[i]]` along axis 0, where `perm` is
//! `bottom[1]` (one axis, any length, indices may repeat or be left out). The
//! gradient adds each top item's diff back onto the item it came from; the
//! index bottom gets none.
use crema_proto::caffe::LayerParameter;

use super::{check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct BatchReindexLayer {
    param: LayerParameter,
    /// The permutation as checked indices, read at forward.
    perm: Vec<usize>,
}

impl BatchReindexLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(BatchReindexLayer {
            param: param.clone(),
            perm: Vec::new(),
        }))
    }

    /// Reads `bottom[1]`, refusing an index that is not a whole number in
    /// `0..num` (Caffe checks the same at forward).
    fn read_perm(&mut self, idx: &[f32], num: usize) -> Result<()> {
        self.perm.clear();
        for (i, &v) in idx.iter().enumerate() {
            ensure!(
                &self.param,
                v >= 0.0,
                "Index specified for reindex layer was negative: bottom[1][{i}] = {v}"
            );
            ensure!(
                &self.param,
                (v as usize) < num && v.fract() == 0.0,
                "Index specified for reindex layer was greater than batch size (or not whole): bottom[1][{i}] = {v}, batch size {num}"
            );
            self.perm.push(v as usize);
        }
        Ok(())
    }
}

impl Layer for BatchReindexLayer {
    fn type_name(&self) -> &'static str {
        "BatchReindex"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let (b, idx) = (bottom[0].borrow(), bottom[1].borrow());
        ensure!(
            p,
            idx.num_axes() == 1,
            "the index bottom must have one axis, got {}",
            idx.shape_string()
        );
        ensure!(p, b.num_axes() >= 1, "bottom[0] needs an item axis");
        let mut shape = b.shape().to_vec();
        shape[0] = idx.shape()[0];
        drop((b, idx));
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (b, idx) = (bottom[0].borrow(), bottom[1].borrow());
        self.read_perm(idx.data(), b.shape()[0])?;
        let dim = b.count_from(1);
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        for (i, &src) in self.perm.iter().enumerate() {
            y[i * dim..(i + 1) * dim].copy_from_slice(&b.data()[src * dim..(src + 1) * dim]);
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 1) {
            return Err(Error::layer(
                &self.param,
                "Cannot backprop to index (bottom[1]).",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let t = top[0].borrow();
        let mut b = bottom[0].borrow_mut();
        let dim = b.count_from(1);
        let dx = b.diff_mut();
        dx.fill(0.0);
        for (i, &src) in self.perm.iter().enumerate() {
            dx[src * dim..(src + 1) * dim]
                .iter_mut()
                .zip(&t.diff()[i * dim..(i + 1) * dim])
                .for_each(|(d, g)| *d += g);
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index == 0
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::GradientChecker;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn bottoms() -> Vec<crate::SharedBlob> {
        vec![
            blob(&[3, 2, 2], &fixture_line(TEXT, "reindex_x")),
            blob(&[4], &fixture_line(TEXT, "reindex_perm")),
        ]
    }

    #[test]
    fn reindex_forward_and_backward_match_numpy() {
        let (b, t) = (bottoms(), empty());
        let mut l = layer(&param("BatchReindex", |_| {}));
        run(&mut *l, &b, &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[4, 2, 2]);
        assert_close(t.borrow().data(), &fixture_line(TEXT, "reindex_y"), 1e-7);
        t.borrow_mut()
            .diff_mut()
            .copy_from_slice(&fixture_line(TEXT, "reindex_dy"));
        l.backward(&[t.clone()], &[true, false], &b).unwrap();
        assert_close(
            b[0].borrow().diff(),
            &fixture_line(TEXT, "reindex_dx"),
            1e-6,
        );
    }

    #[test]
    fn reindex_gradient() {
        let mut l = layer(&param("BatchReindex", |_| {}));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *l,
            &bottoms(),
            &[empty()],
            Some(0),
        );
    }

    #[test]
    fn reindex_refuses_bad_indices() {
        for bad in [-1.0, 3.0, 0.5] {
            let b = vec![
                blob(&[3, 2, 2], &fixture_line(TEXT, "reindex_x")),
                blob(&[2], &[0.0, bad]),
            ];
            let mut l = layer(&param("BatchReindex", |_| {}));
            l.setup(&b, &[empty()]).unwrap();
            l.reshape(&b, &[empty()]).unwrap();
            let msg = l.forward(&b, &[empty()]).unwrap_err().to_string();
            assert!(msg.contains("Index specified for reindex layer"), "{msg}");
        }
        let b = bottoms();
        let (t, mut l) = (empty(), layer(&param("BatchReindex", |_| {})));
        run(&mut *l, &b, &[t.clone()]);
        assert!(l
            .backward(&[t], &[true, true], &b)
            .unwrap_err()
            .to_string()
            .contains("Cannot backprop to index"));
    }
}
