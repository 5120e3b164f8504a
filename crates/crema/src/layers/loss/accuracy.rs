//! Accuracy: the fraction of labelled positions whose true class is among the
//! `top_k` highest scores along `axis` (default 1); positions labelled
//! `ignore_label` are skipped. A second top gets the accuracy per class.
//! Like Caffe, a class tied with the true one counts as ranked above it.
use crema_proto::caffe::LayerParameter;

use super::class_label;
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::{Error, Result};
use crate::layers::common::{canonical_axis, check_distinct};
use crate::layers::Layer;

pub struct AccuracyLayer {
    param: LayerParameter,
    top_k: usize,
    ignore_label: Option<i32>,
    outer: usize,
    classes: usize,
    inner: usize,
    /// Per class: labelled positions and hits in the last forward.
    seen: Vec<u32>,
    hits: Vec<u32>,
}

impl AccuracyLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let ap = &param.accuracy_param;
        Ok(Box::new(AccuracyLayer {
            param: param.clone(),
            top_k: ap.top_k() as usize,
            ignore_label: ap.has_ignore_label().then(|| ap.ignore_label()),
            outer: 0,
            classes: 0,
            inner: 0,
            seen: Vec::new(),
            hits: Vec::new(),
        }))
    }
}

impl Layer for AccuracyLayer {
    fn type_name(&self) -> &'static str {
        "Accuracy"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        ensure!(p, label.count() > 0 && self.top_k <= x.count() / label.count(), "top_k ({}) must be less than or equal to the number of classes ({} predictions for {} labels)", self.top_k, x.count(), label.count());
        let axis = canonical_axis(p, &x, p.accuracy_param.axis() as i64)?;
        self.outer = x.count_range(0, axis);
        self.classes = x.shape()[axis];
        self.inner = x.count_from(axis + 1);
        ensure!(
            p,
            self.outer * self.inner == label.count(),
            "Number of labels must match number of predictions; e.g., if label axis == 1 and prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in {{0, 1, ..., C-1}}. Got predictions {} and labels {}",
            x.shape_string(),
            label.shape_string()
        );
        top[0].borrow_mut().reshape(&[]);
        if let Some(t) = top.get(1) {
            t.borrow_mut().reshape(&[self.classes]);
        }
        self.seen.resize(self.classes, 0);
        self.hits.resize(self.classes, 0);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        let (x, labels) = (x.data(), label.data());
        let (c, inner) = (self.classes, self.inner);
        self.seen.fill(0);
        self.hits.fill(0);
        for i in 0..self.outer {
            for j in 0..inner {
                let Some(l) =
                    class_label(&self.param, labels, i * inner + j, c, self.ignore_label)?
                else {
                    continue;
                };
                let truth = x[(i * c + l) * inner + j];
                // Classes scoring at least the true one, the true one excluded.
                let better = (0..c)
                    .filter(|&k| x[(i * c + k) * inner + j] >= truth)
                    .count()
                    - 1;
                self.seen[l] += 1;
                if better < self.top_k {
                    self.hits[l] += 1;
                }
            }
        }
        let (hits, count): (u32, u32) = (self.hits.iter().sum(), self.seen.iter().sum());
        top[0].borrow_mut().data_mut()[0] = if count == 0 {
            0.0
        } else {
            hits as f32 / count as f32
        };
        if let Some(t) = top.get(1) {
            let mut t = t.borrow_mut();
            for ((o, &h), &n) in t.data_mut().iter_mut().zip(&self.hits).zip(&self.seen) {
                *o = if n == 0 { 0.0 } else { h as f32 / n as f32 };
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
                "Accuracy Layer cannot backpropagate; it has no gradient.",
            ));
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
    /// Neither the scores nor the labels can receive a gradient.
    fn allow_force_backward(&self, _bottom_index: usize) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crema_proto::caffe::LayerParameter;

    use super::super::fixture;
    use crate::layers::common::testutil::*;
    use crate::Blob;

    fn accuracy(top_k: u32, ignore: Option<i32>, axis: Option<i32>) -> LayerParameter {
        param("Accuracy", |p| {
            let ap = p.accuracy_param.mut_or_insert_default();
            ap.set_top_k(top_k);
            if let Some(i) = ignore {
                ap.set_ignore_label(i);
            }
            if let Some(a) = axis {
                ap.set_axis(a);
            }
        })
    }

    #[test]
    fn top_1_accuracy_hand_worked() {
        // Rows predict 2, 0, 1; labels 2, 1, 1 -> 2 of 3.
        let x = [0.1, 0.2, 0.7, 0.5, 0.3, 0.2, 0.0, 0.9, 0.1];
        let (b, l, t, per) = (
            blob(&[3, 3], &x),
            blob(&[3], &[2.0, 1.0, 1.0]),
            empty(),
            empty(),
        );
        let mut layer = layer(&accuracy(1, None, None));
        run(&mut *layer, &[b, l], &[t.clone(), per.clone()]);
        assert_close(t.borrow().data(), &[2.0 / 3.0], 1e-7);
        assert_eq!(per.borrow().shape(), &[3]);
        assert_close(per.borrow().data(), &[0.0, 0.5, 1.0], 1e-7);
        assert_eq!(layer.default_loss_weight(0), 0.0);
    }

    #[test]
    fn ties_with_the_true_class_count_against_it() {
        let (t, l) = (empty(), blob(&[1], &[1.0]));
        run(
            &mut *layer(&accuracy(1, None, None)),
            &[blob(&[1, 3], &[0.5, 0.5, 0.0]), l],
            &[t.clone()],
        );
        assert_eq!(t.borrow().data(), &[0.0]);
    }

    #[test]
    fn top_k_ignore_label_and_per_class_match_numpy() {
        let (x, labels) = (fixture("x"), fixture("labels"));
        for k in [1, 2] {
            for ignore in [false, true] {
                let tag = format!("top{k}_{}", if ignore { "ignore" } else { "all" });
                let (t, per) = (empty(), empty());
                let p = accuracy(k, ignore.then_some(2), None);
                run(
                    &mut *layer(&p),
                    &[blob(&[2, 3, 2, 2], &x), blob(&[2, 2, 2], &labels)],
                    &[t.clone(), per.clone()],
                );
                assert_close(
                    t.borrow().data(),
                    &fixture(&format!("accuracy_{tag}")),
                    1e-6,
                );
                assert_close(
                    per.borrow().data(),
                    &fixture(&format!("per_class_{tag}")),
                    1e-6,
                );
            }
        }
    }

    #[test]
    fn accuracy_axis_selects_the_class_axis() {
        // Classes along axis 0 of a 3 x 2 blob: columns predict 0 and 2.
        let x = [0.9, 0.1, 0.0, 0.2, 0.1, 0.7];
        let t = empty();
        run(
            &mut *layer(&accuracy(1, None, Some(0))),
            &[blob(&[3, 2], &x), blob(&[2], &[0.0, 1.0])],
            &[t.clone()],
        );
        assert_eq!(t.borrow().data(), &[0.5]);
    }

    #[test]
    fn accuracy_refuses_bad_shapes_labels_and_backward() {
        let msg = setup_error(
            &mut *layer(&accuracy(4, None, None)),
            &[Blob::shared(&[2, 3]), Blob::shared(&[2])],
            &[empty()],
        );
        assert!(msg.contains("top_k (4)"), "{msg}");
        let msg = setup_error(
            &mut *layer(&accuracy(1, None, None)),
            &[Blob::shared(&[2, 3, 2]), Blob::shared(&[2, 3])],
            &[empty()],
        );
        assert!(msg.contains("Number of labels must match"), "{msg}");
        let (b, l, t) = (blob(&[1, 2], &[0.0, 1.0]), blob(&[1], &[5.0]), empty());
        let mut a = layer(&accuracy(1, None, None));
        a.setup(&[b.clone(), l.clone()], &[t.clone()]).unwrap();
        a.reshape(&[b.clone(), l.clone()], &[t.clone()]).unwrap();
        assert!(a
            .forward(&[b.clone(), l.clone()], &[t.clone()])
            .unwrap_err()
            .to_string()
            .contains("outside [0, 2)"));
        assert!(a
            .backward(&[t.clone()], &[true, false], &[b.clone(), l.clone()])
            .is_err());
        assert!(a.backward(&[t], &[false, false], &[b, l]).is_ok());
        assert!(!a.allow_force_backward(0) && !a.allow_force_backward(1));
    }
}
