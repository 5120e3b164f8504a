//! InfogainLoss: a SoftmaxWithLoss whose target is a row of an infogain matrix
//! `H` (`[K, K]`, any shape of K² values): softmax over `infogain_loss_param.axis`
//! (default 1), then `-Σ_l H[label, l] ln p_l` at each position, divided by
//! the normalizer (`loss_param.normalization`, default VALID; the legacy
//! `normalize` is refused, as Caffe refuses it here). `H` comes from a third
//! bottom or from the binaryproto at `infogain_loss_param.source`. With H = I
//! this is SoftmaxWithLoss. An optional second top receives the probabilities.
use crema_proto::caffe::loss_parameter::NormalizationMode;
use crema_proto::caffe::LayerParameter;

use super::{check_loss_shapes, class_label};
use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};
use crate::layers::common::softmax::softmax_in_place;
use crate::layers::common::{canonical_axis, check_distinct, propagates};
use crate::layers::Layer;

pub struct InfogainLossLayer {
    param: LayerParameter,
    ignore_label: Option<i32>,
    normalization: NormalizationMode,
    /// H read from `source` when there is no third bottom.
    infogain: Option<Blob>,
    prob: Vec<f32>,
    outer: usize,
    labels: usize,
    inner: usize,
    valid_count: usize,
}

impl InfogainLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let lp = &param.loss_param;
        Ok(Box::new(InfogainLossLayer {
            param: param.clone(),
            ignore_label: lp.has_ignore_label().then(|| lp.ignore_label()),
            normalization: lp.normalization(),
            infogain: None,
            prob: Vec::new(),
            outer: 0,
            labels: 0,
            inner: 0,
            valid_count: 0,
        }))
    }

    /// What the summed loss is divided by (Caffe's GetNormalizer).
    fn normalizer(&self) -> f32 {
        super::normalizer(self.normalization, self.outer, self.inner, self.valid_count)
    }

    /// H's values: the third bottom's, or the matrix read at setup.
    fn matrix(&self, bottom: &[SharedBlob]) -> Vec<f32> {
        match bottom.get(2) {
            Some(h) => h.borrow().data().to_vec(),
            None => self
                .infogain
                .as_ref()
                .expect("read at setup")
                .data()
                .to_vec(),
        }
    }

    /// Calls `f(position index, offset of class 0, class stride, label)` for
    /// every position that is not ignored; returns how many there were.
    fn for_each_labelled(
        &self,
        labels: &[f32],
        mut f: impl FnMut(usize, usize, usize, usize),
    ) -> Result<usize> {
        let (k, inner) = (self.labels, self.inner);
        let mut count = 0;
        for i in 0..self.outer {
            for j in 0..inner {
                let pos = i * inner + j;
                if let Some(l) = class_label(&self.param, labels, pos, k, self.ignore_label)? {
                    f(pos, i * k * inner + j, inner, l);
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

impl Layer for InfogainLossLayer {
    fn type_name(&self) -> &'static str {
        "InfogainLoss"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        crate::ensure!(
            p,
            !p.loss_param.has_normalize(),
            "normalize is deprecated. use \"normalization\""
        );
        if bottom.len() < 3 {
            let ip = &p.infogain_loss_param;
            crate::ensure!(
                p,
                ip.has_source(),
                "Infogain matrix source must be specified."
            );
            let proto = crema_proto::files::read_mean_blob(ip.source())
                .map_err(|e| Error::layer(p, format!("reading the infogain matrix: {e}")))?;
            let mut h = Blob::default();
            h.from_proto(&proto, true)
                .map_err(|e| Error::layer(p, format!("infogain matrix {}: {e}", ip.source())))?;
            self.infogain = Some(h);
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        check_loss_shapes(p, bottom)?;
        let (x, label) = (bottom[0].borrow(), bottom[1].borrow());
        let axis = canonical_axis(p, &x, p.infogain_loss_param.axis() as i64)?;
        self.outer = x.count_range(0, axis);
        self.labels = x.shape()[axis];
        self.inner = x.count_from(axis + 1);
        crate::ensure!(
            p,
            self.outer * self.inner == label.count(),
            "Number of labels must match number of predictions; e.g., if infogain axis == 1 and prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in {{0, 1, ..., C-1}}. Got predictions {} and labels {}",
            x.shape_string(),
            label.shape_string()
        );
        let h_count = match bottom.get(2) {
            Some(h) => h.borrow().count(),
            None => self.infogain.as_ref().map_or(0, |h| h.count()),
        };
        crate::ensure!(
            p,
            h_count == self.labels * self.labels,
            "the infogain matrix must be {k}x{k} ({} values) for {k} classes; it has {h_count}",
            self.labels * self.labels,
            k = self.labels
        );
        self.prob.resize(x.count(), 0.0);
        top[0].borrow_mut().reshape(&[]);
        if let Some(t) = top.get(1) {
            t.borrow_mut().reshape_like(&x);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        self.prob.copy_from_slice(bottom[0].borrow().data());
        softmax_in_place(&mut self.prob, self.outer, self.labels, self.inner);
        let h = self.matrix(bottom);
        let k = self.labels;
        let mut loss = 0.0f64;
        let prob = &self.prob;
        let count = self.for_each_labelled(bottom[1].borrow().data(), |_, base, stride, l| {
            for c in 0..k {
                let p = prob[base + c * stride].max(f32::MIN_POSITIVE);
                loss -= h[l * k + c] as f64 * (p as f64).ln();
            }
        })?;
        self.valid_count = count;
        top[0].borrow_mut().data_mut()[0] = (loss / self.normalizer() as f64) as f32;
        if let Some(t) = top.get(1) {
            t.borrow_mut().data_mut().copy_from_slice(&self.prob);
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
                "InfogainLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        if propagates(propagate_down, 2) {
            return Err(Error::layer(
                &self.param,
                "InfogainLoss Layer cannot backpropagate to infogain inputs.",
            ));
        }
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let h = self.matrix(bottom);
        let k = self.labels;
        let row_sums: Vec<f32> = h.chunks(k.max(1)).map(|r| r.iter().sum()).collect();
        // d/dx_c of -Σ_l H[y,l] ln p_l = p_c Σ_l H[y,l] - H[y,c]; ignored positions get 0.
        let mut dx = vec![0.0f32; self.prob.len()];
        let prob = &self.prob;
        self.for_each_labelled(bottom[1].borrow().data(), |_, base, stride, l| {
            for c in 0..k {
                let i = base + c * stride;
                dx[i] = prob[i] * row_sums[l] - h[l * k + c];
            }
        })?;
        let scale = top[0].borrow().diff()[0] / self.normalizer();
        let mut b = bottom[0].borrow_mut();
        b.diff_mut()
            .iter_mut()
            .zip(&dx)
            .for_each(|(d, &g)| *d = g * scale);
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        Some(3)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn auto_top_blobs(&self) -> bool {
        true
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index == 0
    }
    fn default_loss_weight(&self, top_index: usize) -> f32 {
        if top_index == 0 {
            1.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::loss_parameter::NormalizationMode;
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    /// A line of `tests/fixtures/more_losses.txt` (made by `more_losses.py`).
    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/more_losses.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn infogain(edit: impl FnOnce(&mut LayerParameter)) -> LayerParameter {
        param("InfogainLoss", edit)
    }

    /// Forward and backward with H as the third bottom and `weight` as top diff.
    fn loss_and_grad(p: &LayerParameter, weight: f32) -> (f32, Vec<f32>) {
        let x = blob(&[2, 3, 2, 2], &fixture("ig_x"));
        let l = blob(&[2, 2, 2], &fixture("ig_labels"));
        let h = blob(&[3, 3], &fixture("ig_H"));
        let t = empty();
        let mut layer = layer(p);
        run(
            &mut *layer,
            &[x.clone(), l.clone(), h.clone()],
            &[t.clone()],
        );
        t.borrow_mut().diff_mut()[0] = weight;
        layer
            .backward(&[t.clone()], &[true, false, false], &[x.clone(), l, h])
            .unwrap();
        let loss = t.borrow().data()[0];
        let grad = x.borrow().diff().to_vec();
        (loss, grad)
    }

    #[test]
    fn infogain_every_normalization_with_and_without_ignore_matches_numpy() {
        for (mode, name) in [
            (None, "VALID"),
            (Some(NormalizationMode::FULL), "FULL"),
            (Some(NormalizationMode::VALID), "VALID"),
            (Some(NormalizationMode::BATCH_SIZE), "BATCH_SIZE"),
            (Some(NormalizationMode::NONE), "NONE"),
        ] {
            for ignore in [false, true] {
                let tag = format!("{name}_{}", if ignore { "ignore" } else { "all" });
                let p = infogain(|p| {
                    let lp = p.loss_param.mut_or_insert_default();
                    if let Some(m) = mode {
                        lp.set_normalization(m);
                    }
                    if ignore {
                        lp.set_ignore_label(2);
                    }
                });
                let (loss, grad) = loss_and_grad(&p, 2.0);
                assert!(
                    (loss - fixture(&format!("ig_loss_{tag}"))[0]).abs() < 1e-5,
                    "{tag}: {loss}"
                );
                let want: Vec<f32> = fixture(&format!("ig_grad_{tag}"))
                    .iter()
                    .map(|g| 2.0 * g)
                    .collect();
                assert_close(&grad, &want, 1e-5);
            }
        }
    }

    #[test]
    fn infogain_reads_source_binaryproto_and_fills_the_probability_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("H.binaryproto");
        let h = blob(&[1, 1, 3, 3], &fixture("ig_H"));
        crema_proto::binary::write_binary(&path, &h.borrow().to_proto(false)).unwrap();
        let p = infogain(|p| {
            p.infogain_loss_param
                .mut_or_insert_default()
                .set_source(path.to_str().unwrap().into())
        });
        let x = blob(&[2, 3, 2, 2], &fixture("ig_x"));
        let (l, t, prob) = (blob(&[2, 1, 2, 2], &fixture("ig_labels")), empty(), empty());
        run(&mut *layer(&p), &[x, l], &[t.clone(), prob.clone()]);
        assert!((t.borrow().data()[0] - fixture("ig_loss_VALID_all")[0]).abs() < 1e-5);
        assert_close(prob.borrow().data(), &fixture("ig_prob"), 1e-6);
    }

    #[test]
    fn infogain_axis_is_honoured() {
        // The class axis moved last, with infogain_loss_param.axis: -1.
        let x = fixture("ig_x");
        let moved: Vec<f32> = (0..24)
            .map(|k| {
                let (n, h, w, c) = (k / 12, (k / 6) % 2, (k / 3) % 2, k % 3);
                x[((n * 3 + c) * 2 + h) * 2 + w]
            })
            .collect();
        let p = infogain(|p| p.infogain_loss_param.mut_or_insert_default().set_axis(-1));
        let (xb, l, h, t) = (
            blob(&[2, 2, 2, 3], &moved),
            blob(&[2, 2, 2], &fixture("ig_labels")),
            blob(&[3, 3], &fixture("ig_H")),
            empty(),
        );
        run(&mut *layer(&p), &[xb, l, h], &[t.clone()]);
        assert!((t.borrow().data()[0] - fixture("ig_loss_VALID_all")[0]).abs() < 1e-5);
    }

    #[test]
    fn infogain_refuses_bad_configuration() {
        let x = || Blob::shared(&[2, 3]);
        let msg = setup_error(
            &mut *layer(&infogain(|_| {})),
            &[x(), Blob::shared(&[2])],
            &[empty()],
        );
        assert!(msg.contains("source must be specified"), "{msg}");
        let p = infogain(|p| p.loss_param.mut_or_insert_default().set_normalize(true));
        let msg = setup_error(
            &mut *layer(&p),
            &[x(), Blob::shared(&[2]), Blob::shared(&[3, 3])],
            &[empty()],
        );
        assert!(msg.contains("normalize is deprecated"), "{msg}");
        let msg = setup_error(
            &mut *layer(&infogain(|_| {})),
            &[x(), Blob::shared(&[2]), Blob::shared(&[2, 2])],
            &[empty()],
        );
        assert!(msg.contains("must be 3x3"), "{msg}");
        let p = infogain(|p| {
            p.infogain_loss_param
                .mut_or_insert_default()
                .set_source("/nonexistent/H.binaryproto".into())
        });
        let msg = setup_error(&mut *layer(&p), &[x(), Blob::shared(&[2])], &[empty()]);
        assert!(msg.contains("infogain matrix"), "{msg}");

        let mut l = layer(&infogain(|_| {}));
        let (xb, lab, h, t) = (x(), Blob::shared(&[2]), blob(&[3, 3], &[1.0; 9]), empty());
        run(&mut *l, &[xb.clone(), lab.clone(), h.clone()], &[t.clone()]);
        let msg = l
            .backward(
                &[t.clone()],
                &[true, false, true],
                &[xb.clone(), lab.clone(), h.clone()],
            )
            .unwrap_err()
            .to_string();
        assert!(msg.contains("infogain inputs"), "{msg}");
        let msg = l
            .backward(&[t], &[true, true, false], &[xb, lab, h])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("label inputs"), "{msg}");
        assert!(
            l.allow_force_backward(0) && !l.allow_force_backward(1) && !l.allow_force_backward(2)
        );
    }

    #[test]
    fn infogain_gradient() {
        for ignore in [None, Some(1)] {
            let x = Blob::shared(&[2, 3, 2]);
            fill_uniform(&x, -1.0, 1.0, 97);
            let l = blob(&[2, 2], &[0.0, 1.0, 2.0, 1.0]);
            let h = blob(&[3, 3], &fixture("ig_H"));
            let p = infogain(|p| {
                if let Some(i) = ignore {
                    p.loss_param.mut_or_insert_default().set_ignore_label(i);
                }
            });
            GradientChecker::new(1e-2, 1e-2).check_gradient_exhaustive(
                &mut *layer(&p),
                &[x, l, h],
                &[empty()],
                Some(0),
            );
        }
    }
}
