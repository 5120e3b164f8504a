//! MVN (mean-variance normalisation): subtracts the mean of each row and, with
//! `normalize_variance` (default), divides by `std + eps` — Caffe adds eps to
//! the standard deviation, not the variance. A row is one channel of one image,
//! or the whole image with `across_channels`. Works in place.
use crema_proto::caffe::LayerParameter;

use super::propagates;
use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::layers::neuron::reshape_like;
use crate::layers::Layer;

pub struct MVNLayer {
    param: LayerParameter,
    normalize_variance: bool,
    across_channels: bool,
    eps: f32,
    /// `std + eps` per row from the last forward.
    scale: Vec<f64>,
    /// The output of the last forward (a later in-place layer may change the top).
    y: Vec<f32>,
}

impl MVNLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let mp = &param.mvn_param;
        Ok(Box::new(MVNLayer {
            param: param.clone(),
            normalize_variance: mp.normalize_variance(),
            across_channels: mp.across_channels(),
            eps: mp.eps(),
            scale: Vec::new(),
            y: Vec::new(),
        }))
    }

    /// (rows, values per row).
    fn rows(&self, b: &Blob) -> (usize, usize) {
        let n = b.shape().first().copied().unwrap_or(1);
        let c = b.shape().get(1).copied().unwrap_or(1);
        let rows = if self.across_channels { n } else { n * c };
        (rows, b.count().checked_div(rows).unwrap_or(0))
    }
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

impl Layer for MVNLayer {
    fn type_name(&self) -> &'static str {
        "MVN"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        crate::ensure!(
            &self.param,
            bottom[0].borrow().num_axes() >= 1,
            "MVN needs a bottom with at least one axis"
        );
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (rows, dim) = self.rows(&bottom[0].borrow());
        let x = bottom[0].borrow().data().to_vec();
        self.y.resize(x.len(), 0.0);
        self.scale.clear();
        for r in 0..rows {
            let (xs, ys) = (
                &x[r * dim..(r + 1) * dim],
                &mut self.y[r * dim..(r + 1) * dim],
            );
            let m = mean(xs);
            let s = if self.normalize_variance {
                let var = xs.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / dim as f64;
                var.sqrt() + self.eps as f64
            } else {
                1.0
            };
            self.scale.push(s);
            ys.iter_mut()
                .zip(xs)
                .for_each(|(y, &v)| *y = ((v as f64 - m) / s) as f32);
        }
        top[0].borrow_mut().data_mut().copy_from_slice(&self.y);
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let (rows, dim) = self.rows(&bottom[0].borrow());
        let dy = top[0].borrow().diff().to_vec();
        let mut b = bottom[0].borrow_mut();
        let dx = b.diff_mut();
        for r in 0..rows {
            let span = r * dim..(r + 1) * dim;
            let (dys, ys) = (&dy[span.clone()], &self.y[span.clone()]);
            let mean_dy = mean(dys);
            // Caffe's gradient: (dy - mean(dy) - y·mean(dy·y)) / (std + eps),
            // which treats eps as part of the scale (exact as eps -> 0).
            let mean_dyy = if self.normalize_variance {
                dys.iter()
                    .zip(ys)
                    .map(|(&d, &y)| d as f64 * y as f64)
                    .sum::<f64>()
                    / dim as f64
            } else {
                0.0
            };
            for (k, d) in dx[span].iter_mut().enumerate() {
                *d = ((dys[k] as f64 - mean_dy - ys[k] as f64 * mean_dyy) / self.scale[r]) as f32;
            }
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
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

    fn fixture(key: &str) -> Vec<f32> {
        const TEXT: &str = include_str!("../../../tests/fixtures/norm_layers.txt");
        crate::layers::common::testutil::fixture_line(TEXT, key)
    }

    fn mvn(normalize_variance: bool, across: bool, eps: Option<f32>) -> LayerParameter {
        param("MVN", |p| {
            let mp = p.mvn_param.mut_or_insert_default();
            mp.set_normalize_variance(normalize_variance);
            mp.set_across_channels(across);
            if let Some(e) = eps {
                mp.set_eps(e);
            }
        })
    }

    #[test]
    fn mvn_every_mode_matches_numpy_separate_and_in_place() {
        for across in [false, true] {
            let tag = if across { "across" } else { "within" };
            for (nv, y_key, dx_key) in [
                (true, format!("mvn_{tag}"), format!("mvn_dx_{tag}")),
                (
                    false,
                    format!("mvn_mean_only_{tag}"),
                    format!("mvn_mean_only_dx_{tag}"),
                ),
            ] {
                for in_place in [false, true] {
                    let mut l = layer(&mvn(nv, across, None));
                    let b = blob(&[2, 3, 2, 2], &fixture("x"));
                    let t = if in_place { b.clone() } else { empty() };
                    run(&mut *l, &[b.clone()], &[t.clone()]);
                    assert_close(t.borrow().data(), &fixture(&y_key), 1e-5);
                    t.borrow_mut().diff_mut().copy_from_slice(&fixture("dy"));
                    l.backward(&[t], &[true], &[b.clone()]).unwrap();
                    assert_close(b.borrow().diff(), &fixture(&dx_key), 1e-5);
                }
            }
        }
    }

    #[test]
    fn mvn_eps_is_added_to_the_standard_deviation() {
        for across in [false, true] {
            let tag = if across { "across" } else { "within" };
            let t = empty();
            run(
                &mut *layer(&mvn(true, across, Some(0.5))),
                &[blob(&[2, 3, 2, 2], &fixture("x"))],
                &[t.clone()],
            );
            assert_close(
                t.borrow().data(),
                &fixture(&format!("mvn_eps_half_{tag}")),
                1e-5,
            );
        }
    }

    #[test]
    fn mvn_gradient_every_mode() {
        for (nv, across) in [(true, false), (true, true), (false, false), (false, true)] {
            let x = crate::Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -1.0, 1.0, 67);
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&mvn(nv, across, None)),
                &[x],
                &[empty()],
                None,
            );
        }
    }
}
