//! ArgMax: the indices of the `top_k` largest values. Without `axis`, over all
//! of each item's values (everything after axis 0), giving an N×1×K top, or
//! N×2×K with `out_max_val` (indices, then values). With `axis`, along that axis
//! only, the top keeping the bottom's shape with K at `axis`; there
//! `out_max_val` outputs the values instead of the indices.
use std::cmp::Ordering;

use crema_proto::caffe::LayerParameter;

use super::canonical_axis;
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct ArgMaxLayer {
    param: LayerParameter,
    out_max_val: bool,
    top_k: usize,
    axis: Option<usize>,
    /// Scratch (value, index) pairs for one sort, kept to avoid reallocating.
    pairs: Vec<(f32, usize)>,
}

impl ArgMaxLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let ap = &param.argmax_param;
        ensure!(param, ap.top_k() >= 1, "top k must not be less than 1.");
        Ok(Box::new(ArgMaxLayer {
            param: param.clone(),
            out_max_val: ap.out_max_val(),
            top_k: ap.top_k() as usize,
            axis: None,
            pairs: Vec::new(),
        }))
    }
}

/// Larger value first; among equal values the larger index first, the order
/// of sorting (value, index) pairs descending as Caffe does. NaN ranks above
/// every number so the order stays total (Rust's sorts require it).
fn descending(a: &(f32, usize), b: &(f32, usize)) -> Ordering {
    let by_value = match b.0.partial_cmp(&a.0) {
        Some(o) => o,
        None => a.0.is_nan().cmp(&b.0.is_nan()).reverse(),
    };
    by_value.then(b.1.cmp(&a.1))
}

impl Layer for ArgMaxLayer {
    fn type_name(&self) -> &'static str {
        "ArgMax"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let b = bottom[0].borrow();
        if p.argmax_param.has_axis() {
            let axis = canonical_axis(p, &b, p.argmax_param.axis() as i64)?;
            ensure!(
                p,
                self.top_k <= b.shape()[axis],
                "top_k ({}) must be less than or equal to the dimension of the axis ({})",
                self.top_k,
                b.shape()[axis]
            );
            self.axis = Some(axis);
        } else {
            ensure!(
                p,
                b.num_axes() >= 1,
                "ArgMax needs a bottom with at least one axis"
            );
            ensure!(p, self.top_k <= b.count_from(1), "top_k ({}) must be less than or equal to the dimension of the flattened bottom blob per instance ({})", self.top_k, b.count_from(1));
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let shape = match self.axis {
            Some(axis) => {
                ensure!(
                    &self.param,
                    axis < b.num_axes() && self.top_k <= b.shape()[axis],
                    "bottom shape {} no longer fits axis {axis} with top_k {}",
                    b.shape_string(),
                    self.top_k
                );
                let mut s = b.shape().to_vec();
                s[axis] = self.top_k;
                s
            }
            None => {
                ensure!(
                    &self.param,
                    b.num_axes() >= 1 && self.top_k <= b.count_from(1),
                    "bottom shape {} has fewer than top_k ({}) values per item",
                    b.shape_string(),
                    self.top_k
                );
                // At least 3 axes: N x (1 or 2) x K, then 1s.
                let mut s = vec![1; b.num_axes().max(3)];
                s[0] = b.shape()[0];
                s[1] = if self.out_max_val { 2 } else { 1 };
                s[2] = self.top_k;
                s
            }
        };
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let x = b.data();
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        let (dim, inner) = match self.axis {
            Some(axis) => (b.shape()[axis], b.count_from(axis + 1)),
            None => (b.count_from(1), 1),
        };
        let k = self.top_k;
        if dim == 0 {
            return Ok(());
        }
        for i in 0..b.count() / dim {
            let (o, r) = (i / inner, i % inner);
            self.pairs.clear();
            self.pairs
                .extend((0..dim).map(|j| (x[(o * dim + j) * inner + r], j)));
            self.pairs.select_nth_unstable_by(k - 1, descending);
            self.pairs[..k].sort_unstable_by(descending);
            for (j, &(val, idx)) in self.pairs[..k].iter().enumerate() {
                if self.axis.is_some() {
                    y[(o * k + j) * inner + r] = if self.out_max_val { val } else { idx as f32 };
                } else if self.out_max_val {
                    y[2 * i * k + j] = idx as f32;
                    y[2 * i * k + k + j] = val;
                } else {
                    y[i * k + j] = idx as f32;
                }
            }
        }
        Ok(())
    }
    fn backward(
        &mut self,
        _top: &[SharedBlob],
        propagate_down: &[bool],
        _bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagate_down.iter().any(|&p| p) {
            return Err(Error::layer(
                &self.param,
                "ArgMax has no gradient; it cannot propagate down",
            ));
        }
        Ok(())
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
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use super::super::testutil::*;

    fn argmax(
        out_max_val: bool,
        top_k: u32,
        axis: Option<i32>,
    ) -> crema_proto::caffe::LayerParameter {
        param("ArgMax", |p| {
            let ap = p.argmax_param.mut_or_insert_default();
            ap.set_out_max_val(out_max_val);
            ap.set_top_k(top_k);
            if let Some(a) = axis {
                ap.set_axis(a);
            }
        })
    }

    // Two items of 2 x 3 values.
    const X: [f32; 12] = [0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 5.0, 1.0, 4.0, 2.0, 3.0, 0.0];

    fn forward(p: &crema_proto::caffe::LayerParameter) -> (Vec<usize>, Vec<f32>) {
        let t = empty();
        run(&mut *layer(p), &[blob(&[2, 2, 3], &X)], &[t.clone()]);
        let t = t.borrow();
        (t.shape().to_vec(), t.data().to_vec())
    }

    #[test]
    fn argmax_over_each_item() {
        assert_eq!(
            forward(&argmax(false, 1, None)),
            (vec![2, 1, 1], vec![1.0, 0.0])
        );
        assert_eq!(
            forward(&argmax(false, 3, None)),
            (vec![2, 1, 3], vec![1.0, 5.0, 3.0, 0.0, 2.0, 4.0])
        );
    }

    #[test]
    fn out_max_val_without_axis_gives_indices_then_values() {
        let (shape, y) = forward(&argmax(true, 2, None));
        assert_eq!(shape, vec![2, 2, 2]);
        assert_close(&y, &[1.0, 5.0, 0.9, 0.8, 0.0, 2.0, 5.0, 4.0], 1e-7);
    }

    #[test]
    fn two_axis_bottom_still_gets_three_axis_top() {
        let t = empty();
        run(
            &mut *layer(&argmax(false, 1, None)),
            &[blob(&[2, 3], &[0.0, 2.0, 1.0, 5.0, 4.0, 3.0])],
            &[t.clone()],
        );
        assert_eq!(t.borrow().shape(), &[2, 1, 1]);
        assert_eq!(t.borrow().data(), &[1.0, 0.0]);
    }

    #[test]
    fn argmax_along_an_axis() {
        // Along axis 1 (size 2): per item and column, which row is larger.
        assert_eq!(
            forward(&argmax(false, 1, Some(1))),
            (vec![2, 1, 3], vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
        );
        // Along the last axis with top 2, values instead of indices.
        let (shape, y) = forward(&argmax(true, 2, Some(-1)));
        assert_eq!(shape, vec![2, 2, 2]);
        assert_close(&y, &[0.9, 0.3, 0.8, 0.7, 5.0, 4.0, 3.0, 2.0], 1e-7);
    }

    #[test]
    fn ties_go_to_the_larger_index_like_caffe() {
        let t = empty();
        run(
            &mut *layer(&argmax(false, 2, None)),
            &[blob(&[1, 3], &[1.0, 1.0, 0.0])],
            &[t.clone()],
        );
        assert_eq!(t.borrow().data(), &[1.0, 0.0]);
    }

    #[test]
    fn nan_ranks_first_without_panicking() {
        let t = empty();
        run(
            &mut *layer(&argmax(false, 3, None)),
            &[blob(&[1, 4], &[1.0, f32::NAN, 3.0, f32::NAN])],
            &[t.clone()],
        );
        assert_eq!(t.borrow().data(), &[3.0, 1.0, 2.0]);
    }

    #[test]
    fn argmax_refuses_bad_top_k_and_backward() {
        assert!(crate::layers::create_layer(&argmax(false, 0, None))
            .err()
            .unwrap()
            .to_string()
            .contains("top k must not be less than 1"));
        let msg = setup_error(
            &mut *layer(&argmax(false, 7, None)),
            &[blob(&[2, 2, 3], &X)],
            &[empty()],
        );
        assert!(msg.contains("flattened bottom blob per instance"), "{msg}");
        let msg = setup_error(
            &mut *layer(&argmax(false, 3, Some(1))),
            &[blob(&[2, 2, 3], &X)],
            &[empty()],
        );
        assert!(msg.contains("dimension of the axis"), "{msg}");
        let msg = setup_error(
            &mut *layer(&argmax(false, 1, Some(3))),
            &[blob(&[2, 2, 3], &X)],
            &[empty()],
        );
        assert!(msg.contains("out of range"), "{msg}");
        let (b, t) = (blob(&[2, 2, 3], &X), empty());
        let mut l = layer(&argmax(false, 1, None));
        run(&mut *l, &[b.clone()], &[t.clone()]);
        assert!(l.backward(&[t.clone()], &[true], &[b.clone()]).is_err());
        assert!(l.backward(&[t], &[false], &[b]).is_ok());
        assert!(!l.allow_force_backward(0));
    }
}
