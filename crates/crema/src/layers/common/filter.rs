//! Filter: the last bottom is a selector with one value per item (shape N,
//! then 1s); every other bottom passes on only the items whose selector is
//! nonzero, in order, to the top of the same index. The gradient goes back
//! to the selected items (others get 0); the selector gets none.
use crema_proto::caffe::LayerParameter;

use super::{check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct FilterLayer {
    param: LayerParameter,
    /// Items (index along axis 0) whose selector is nonzero.
    selected: Vec<usize>,
    /// The first reshape keeps every item: at net setup the selector holds no
    /// data yet, so the tops start at full size (as in Caffe).
    first_reshape: bool,
}

impl FilterLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(FilterLayer {
            param: param.clone(),
            selected: Vec::new(),
            first_reshape: true,
        }))
    }
}

impl Layer for FilterLayer {
    fn type_name(&self) -> &'static str {
        "Filter"
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        ensure!(
            &self.param,
            top.len() + 1 == bottom.len(),
            "Filter needs one top per bottom except the selector (the last bottom): {} bottoms, {} tops",
            bottom.len(),
            top.len()
        );
        self.first_reshape = true;
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let last = bottom.len() - 1;
        let sel = bottom[last].borrow();
        ensure!(
            p,
            sel.num_axes() >= 1,
            "the selector (bottom[{last}]) needs an item axis"
        );
        ensure!(
            p,
            sel.shape()[1..].iter().all(|&d| d == 1),
            "Selector blob dimensions must be singletons (1), except the first (bottom[{last}] is {})",
            sel.shape_string()
        );
        for (i, b) in bottom[..last].iter().enumerate() {
            let b = b.borrow();
            ensure!(
                p,
                b.num_axes() >= 1 && b.shape()[0] == sel.shape()[0],
                "Each bottom should have the same 0th dimension as the selector blob: bottom[{i}] is {}, selector {}",
                b.shape_string(),
                sel.shape_string()
            );
        }
        self.selected = (0..sel.shape()[0])
            .filter(|&i| sel.data()[i] != 0.0)
            .collect();
        let rows = if self.first_reshape {
            sel.shape()[0]
        } else {
            self.selected.len()
        };
        self.first_reshape = false;
        drop(sel);
        for (b, t) in bottom.iter().zip(top) {
            let mut shape = b.borrow().shape().to_vec();
            shape[0] = rows;
            t.borrow_mut().reshape(&shape);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        for (b, t) in bottom.iter().zip(top) {
            let b = b.borrow();
            let dim = b.count_from(1);
            let mut t = t.borrow_mut();
            let y = t.data_mut();
            for (n, &item) in self.selected.iter().enumerate() {
                y[n * dim..(n + 1) * dim].copy_from_slice(&b.data()[item * dim..(item + 1) * dim]);
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
        let last = bottom.len() - 1;
        if propagates(propagate_down, last) {
            return Err(Error::layer(
                &self.param,
                "Filter Layer cannot backpropagate to filter index inputs",
            ));
        }
        for (i, (t, b)) in top.iter().zip(bottom).enumerate() {
            if !propagates(propagate_down, i) {
                continue;
            }
            let t = t.borrow();
            let mut b = b.borrow_mut();
            let dim = b.count_from(1);
            let dx = b.diff_mut();
            dx.fill(0.0);
            for (n, &item) in self.selected.iter().enumerate() {
                dx[item * dim..(item + 1) * dim].copy_from_slice(&t.diff()[n * dim..(n + 1) * dim]);
            }
        }
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        // Only the selector is last; the net asks with the real bottom count
        // through propagate_down, so refuse indices past the data bottoms.
        bottom_index + 1 < self.param.bottom.len()
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
            blob(&[4, 3], &fixture_line(TEXT, "filter_a")),
            blob(&[4, 2, 2], &fixture_line(TEXT, "filter_b")),
            blob(&[4, 1], &fixture_line(TEXT, "filter_sel")),
        ]
    }

    fn filter() -> crema_proto::caffe::LayerParameter {
        param("Filter", |p| {
            p.bottom = vec!["a".into(), "b".into(), "sel".into()];
        })
    }

    #[test]
    fn filter_keeps_selected_items() {
        let (b, t) = (bottoms(), vec![empty(), empty()]);
        let mut l = layer(&filter());
        l.setup(&b, &t).unwrap();
        l.reshape(&b, &t).unwrap();
        // Setup's reshape keeps every item; the next one filters.
        assert_eq!(t[0].borrow().shape(), &[4, 3]);
        l.reshape(&b, &t).unwrap();
        l.forward(&b, &t).unwrap();
        assert_eq!(t[0].borrow().shape(), &[3, 3]);
        assert_eq!(t[1].borrow().shape(), &[3, 2, 2]);
        assert_close(
            t[0].borrow().data(),
            &fixture_line(TEXT, "filter_a_out"),
            1e-7,
        );
        assert_close(
            t[1].borrow().data(),
            &fixture_line(TEXT, "filter_b_out"),
            1e-7,
        );
    }

    #[test]
    fn filter_gradient_reaches_selected_items_only() {
        for which in [0, 1] {
            let mut l = layer(&filter());
            GradientChecker::new(1e-2, 1e-3).check_gradient(
                &mut *l,
                &bottoms(),
                &[empty(), empty()],
                Some(which),
            );
        }
    }

    #[test]
    fn filter_refuses_selector_gradient_and_bad_shapes() {
        let (b, t) = (bottoms(), vec![empty(), empty()]);
        let mut l = layer(&filter());
        run(&mut *l, &b, &t);
        let msg = l
            .backward(&t, &[true, true, true], &b)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot backpropagate to filter index inputs"),
            "{msg}"
        );
        assert!(!l.allow_force_backward(2) && l.allow_force_backward(1));
        let bad = vec![
            blob(&[4, 3], &fixture_line(TEXT, "filter_a")),
            blob(&[2, 2], &[1.0, 0.0, 1.0, 1.0]),
        ];
        let msg = setup_error(&mut *layer(&filter()), &bad, &[empty()]);
        assert!(
            msg.contains("Selector blob dimensions must be singletons"),
            "{msg}"
        );
        let bad = vec![
            blob(&[4, 3], &fixture_line(TEXT, "filter_a")),
            blob(&[2], &[1.0, 0.0]),
        ];
        let msg = setup_error(&mut *layer(&filter()), &bad, &[empty()]);
        assert!(msg.contains("same 0th dimension"), "{msg}");
    }
}
