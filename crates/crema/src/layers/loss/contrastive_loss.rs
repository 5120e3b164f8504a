//! ContrastiveLoss: for pairs `a`, `b` (`[N, C]`, any trailing 1-axes) and a
//! similarity label `y` per pair, `1/2N Σ (y ? d² : max(margin - d, 0)²)` with
//! `d = |a - b|`. `legacy_version` uses `max(margin - d², 0)` for dissimilar
//! pairs, as the first Caffe release did. Both pair inputs get gradients.
use crema_proto::caffe::LayerParameter;

use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

pub struct ContrastiveLossLayer {
    param: LayerParameter,
    margin: f32,
    legacy: bool,
    /// a - b of the last forward.
    diff: Vec<f32>,
    /// |a - b|² per pair.
    dist_sq: Vec<f32>,
    num: usize,
    channels: usize,
}

impl ContrastiveLossLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let cp = &param.contrastive_loss_param;
        Ok(Box::new(ContrastiveLossLayer {
            param: param.clone(),
            margin: cp.margin(),
            legacy: cp.legacy_version(),
            diff: Vec::new(),
            dist_sq: Vec::new(),
            num: 0,
            channels: 0,
        }))
    }
}

/// Whether every axis from `from` on is 1 (Caffe's height/width checks).
fn trailing_ones(shape: &[usize], from: usize) -> bool {
    shape.iter().skip(from).all(|&d| d == 1)
}

impl Layer for ContrastiveLossLayer {
    fn type_name(&self) -> &'static str {
        "ContrastiveLoss"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let (a, b, y) = (bottom[0].borrow(), bottom[1].borrow(), bottom[2].borrow());
        crate::ensure!(
            p,
            a.num_axes() >= 2 && a.shape() == b.shape() && trailing_ones(a.shape(), 2),
            "the two pair inputs must both be [N, C] (trailing axes 1): {} vs {}",
            a.shape_string(),
            b.shape_string()
        );
        crate::ensure!(
            p,
            y.num_axes() >= 1 && y.shape()[0] == a.shape()[0] && trailing_ones(y.shape(), 1),
            "the similarity label must be one value per pair: pairs {}, label {}",
            a.shape_string(),
            y.shape_string()
        );
        self.num = a.shape()[0];
        self.channels = a.shape()[1];
        self.diff.resize(a.count(), 0.0);
        self.dist_sq.resize(self.num, 0.0);
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (a, b, y) = (bottom[0].borrow(), bottom[1].borrow(), bottom[2].borrow());
        let c = self.channels;
        let mut loss = 0.0f64;
        for i in 0..self.num {
            let mut sq = 0.0f64;
            for k in i * c..(i + 1) * c {
                self.diff[k] = a.data()[k] - b.data()[k];
                sq += (self.diff[k] as f64).powi(2);
            }
            self.dist_sq[i] = sq as f32;
            loss += if y.data()[i] as i32 != 0 {
                sq
            } else if self.legacy {
                (self.margin as f64 - sq).max(0.0)
            } else {
                (self.margin as f64 - sq.sqrt()).max(0.0).powi(2)
            };
        }
        top[0].borrow_mut().data_mut()[0] = (loss / (2.0 * self.num.max(1) as f64)) as f32;
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if propagates(propagate_down, 2) {
            return Err(Error::layer(
                &self.param,
                "ContrastiveLoss Layer cannot backpropagate to label inputs.",
            ));
        }
        let c = self.channels;
        let weight = top[0].borrow().diff()[0] / self.num.max(1) as f32;
        let y = bottom[2].borrow();
        for (side, sign) in [(0, 1.0f32), (1, -1.0)] {
            if !propagates(propagate_down, side) {
                continue;
            }
            let alpha = sign * weight;
            let mut blob = bottom[side].borrow_mut();
            let dx = blob.diff_mut();
            for i in 0..self.num {
                // Per-pair factor on (a - b): the derivative of the pair's term.
                let f = if y.data()[i] as i32 != 0 {
                    alpha
                } else if self.legacy {
                    if self.margin - self.dist_sq[i] > 0.0 {
                        -alpha
                    } else {
                        0.0
                    }
                } else {
                    let dist = self.dist_sq[i].sqrt();
                    let mdist = self.margin - dist;
                    // Caffe's 1e-4 keeps coincident pairs from dividing by zero.
                    if mdist > 0.0 {
                        -alpha * mdist / (dist + 1e-4)
                    } else {
                        0.0
                    }
                };
                let span = i * c..(i + 1) * c;
                for (d, &v) in dx[span.clone()].iter_mut().zip(&self.diff[span]) {
                    *d = f * v;
                }
            }
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(3)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn auto_top_blobs(&self) -> bool {
        true
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index != 2
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
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    /// A line of `tests/fixtures/more_losses.txt` (made by `more_losses.py`).
    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/more_losses.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn contrastive(margin: Option<f32>, legacy: bool) -> LayerParameter {
        param("ContrastiveLoss", |p| {
            let cp = p.contrastive_loss_param.mut_or_insert_default();
            if let Some(m) = margin {
                cp.set_margin(m);
            }
            cp.set_legacy_version(legacy);
        })
    }

    #[test]
    fn contrastive_margins_and_versions_match_numpy() {
        for (margin, mtag) in [(None, "m1"), (Some(2.0), "m2")] {
            for legacy in [false, true] {
                let tag = format!("{mtag}_{}", if legacy { "legacy" } else { "new" });
                let a = blob(&[4, 3, 1, 1], &fixture("con_a"));
                let b = blob(&[4, 3, 1, 1], &fixture("con_b"));
                let (y, t) = (blob(&[4, 1], &fixture("con_y")), empty());
                let mut l = layer(&contrastive(margin, legacy));
                run(&mut *l, &[a.clone(), b.clone(), y.clone()], &[t.clone()]);
                let want = fixture(&format!("con_loss_{tag}"))[0];
                assert!(
                    (t.borrow().data()[0] - want).abs() < 1e-5,
                    "{tag}: {} vs {want}",
                    t.borrow().data()[0]
                );
                t.borrow_mut().diff_mut()[0] = 1.0;
                l.backward(&[t], &[true, true, false], &[a.clone(), b.clone(), y])
                    .unwrap();
                assert_close(
                    a.borrow().diff(),
                    &fixture(&format!("con_grad_a_{tag}")),
                    1e-5,
                );
                assert_close(
                    b.borrow().diff(),
                    &fixture(&format!("con_grad_b_{tag}")),
                    1e-5,
                );
            }
        }
    }

    #[test]
    fn contrastive_refuses_bad_shapes_and_label_gradient() {
        let p = contrastive(None, false);
        let msg = setup_error(
            &mut *layer(&p),
            &[
                Blob::shared(&[4, 3]),
                Blob::shared(&[4, 2]),
                Blob::shared(&[4]),
            ],
            &[empty()],
        );
        assert!(msg.contains("pair inputs"), "{msg}");
        let msg = setup_error(
            &mut *layer(&p),
            &[
                Blob::shared(&[4, 3]),
                Blob::shared(&[4, 3]),
                Blob::shared(&[4, 2]),
            ],
            &[empty()],
        );
        assert!(msg.contains("one value per pair"), "{msg}");
        let mut l = layer(&p);
        let (a, b, y, t) = (
            Blob::shared(&[1, 2]),
            Blob::shared(&[1, 2]),
            Blob::shared(&[1]),
            empty(),
        );
        run(&mut *l, &[a.clone(), b.clone(), y.clone()], &[t.clone()]);
        let msg = l
            .backward(&[t], &[true, true, true], &[a, b, y])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cannot backpropagate to label"), "{msg}");
        assert!(l.allow_force_backward(1) && !l.allow_force_backward(2));
    }

    #[test]
    fn contrastive_gradient() {
        for legacy in [false, true] {
            let (a, b) = (Blob::shared(&[4, 3]), Blob::shared(&[4, 3]));
            fill_uniform(&a, -1.0, 1.0, 83);
            fill_uniform(&b, -1.0, 1.0, 89);
            let y = blob(&[4], &fixture("con_y"));
            // The non-legacy gradient's 1e-4 makes it approximate; 2e-2 as Caffe's test allows.
            GradientChecker::new(1e-3, 2e-2).check_gradient_exhaustive(
                &mut *layer(&contrastive(Some(1.5), legacy)),
                &[a.clone(), b.clone(), y.clone()],
                &[empty()],
                Some(0),
            );
            GradientChecker::new(1e-3, 2e-2).check_gradient_exhaustive(
                &mut *layer(&contrastive(Some(1.5), legacy)),
                &[a, b, y],
                &[empty()],
                Some(1),
            );
        }
    }
}
