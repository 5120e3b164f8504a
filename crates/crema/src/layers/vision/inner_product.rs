//! InnerProduct (fully connected): the bottom is flattened from `axis` on into
//! K inputs per row (M rows), and `top[M×N] = bottom·Wᵀ + bias`.
//!
//! Weights are `[N, K]`, or `[K, N]` with `transpose: true` (then top =
//! bottom·W), and the bias is `[N]` — Caffe's shapes, so caffemodels load.
use crema_proto::caffe::LayerParameter;

use super::conv_base::{check_not_in_place, make_params};
use crate::backend::{sgemm, Transpose};
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct InnerProductLayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
    num_output: usize,
    bias_term: bool,
    transpose: bool,
    axis: usize,
    /// Inputs per row, fixed at setup.
    k: usize,
    /// Rows (product of the axes before `axis`).
    m: usize,
}

impl InnerProductLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let ip = param.inner_product_param.get_or_default();
        crate::ensure!(param, ip.num_output() > 0, "num_output must be positive");
        Ok(Box::new(InnerProductLayer {
            param: param.clone(),
            blobs: Vec::new(),
            num_output: ip.num_output() as usize,
            bias_term: ip.bias_term(),
            transpose: ip.transpose(),
            axis: 0,
            k: 0,
            m: 0,
        }))
    }
}

impl Layer for InnerProductLayer {
    fn type_name(&self) -> &'static str {
        "InnerProduct"
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let lp = &self.param;
        let ip = lp.inner_product_param.get_or_default();
        check_not_in_place(lp, bottom, top)?;
        let b = bottom[0].borrow();
        self.axis = b
            .canonical_axis(ip.axis() as i64)
            .map_err(|e| Error::layer(lp, e.to_string()))?;
        self.k = b.count_from(self.axis);
        crate::ensure!(
            lp,
            self.k > 0,
            "bottom {} has no inputs from axis {}",
            b.shape_string(),
            self.axis
        );
        let weight_shape = if self.transpose {
            [self.k, self.num_output]
        } else {
            [self.num_output, self.k]
        };
        let bias = self.bias_term.then_some(self.num_output);
        self.blobs = make_params(
            lp,
            &weight_shape,
            bias,
            ip.weight_filler.get_or_default(),
            ip.bias_filler.get_or_default(),
        )?;
        Ok(())
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        crate::ensure!(
            &self.param,
            b.num_axes() > self.axis && b.count_from(self.axis) == self.k,
            "input size incompatible with inner product parameters: bottom {} gives {} inputs from axis {}, weights expect {}",
            b.shape_string(),
            if b.num_axes() > self.axis { b.count_from(self.axis) } else { 0 },
            self.axis,
            self.k
        );
        self.m = b.count_range(0, self.axis);
        let mut shape = b.shape()[..self.axis].to_vec();
        shape.push(self.num_output);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (m, n, k) = (self.m, self.num_output, self.k);
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let w = self.blobs[0].borrow();
        let tw = if self.transpose {
            Transpose::No
        } else {
            Transpose::Yes
        };
        sgemm(
            Transpose::No,
            tw,
            m,
            n,
            k,
            1.0,
            b.data(),
            w.data(),
            0.0,
            t.data_mut(),
        );
        if self.bias_term {
            let bias = self.blobs[1].borrow();
            for row in t.data_mut().chunks_exact_mut(n) {
                row.iter_mut()
                    .zip(bias.data())
                    .for_each(|(y, &bv)| *y += bv);
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
        let (m, n, k) = (self.m, self.num_output, self.k);
        let t = top[0].borrow();
        let top_diff = t.diff();
        {
            let b = bottom[0].borrow();
            let mut w = self.blobs[0].borrow_mut();
            if self.transpose {
                // W[K×N] += bottomᵀ · top_diff
                sgemm(
                    Transpose::Yes,
                    Transpose::No,
                    k,
                    n,
                    m,
                    1.0,
                    b.data(),
                    top_diff,
                    1.0,
                    w.diff_mut(),
                );
            } else {
                // W[N×K] += top_diffᵀ · bottom
                sgemm(
                    Transpose::Yes,
                    Transpose::No,
                    n,
                    k,
                    m,
                    1.0,
                    top_diff,
                    b.data(),
                    1.0,
                    w.diff_mut(),
                );
            }
        }
        if self.bias_term {
            let mut bias = self.blobs[1].borrow_mut();
            let bd = bias.diff_mut();
            for row in top_diff.chunks_exact(n) {
                crate::backend::axpy(1.0, row, bd);
            }
        }
        if propagate_down.first().copied().unwrap_or(false) {
            let w = self.blobs[0].borrow();
            let mut b = bottom[0].borrow_mut();
            let tw = if self.transpose {
                Transpose::Yes
            } else {
                Transpose::No
            };
            sgemm(
                Transpose::No,
                tw,
                m,
                k,
                n,
                1.0,
                top_diff,
                w.data(),
                0.0,
                b.diff_mut(),
            );
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
}

#[cfg(test)]
mod tests {
    use crema_proto::caffe::{InnerProductParameter, LayerParameter};

    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn ip(edit: impl FnOnce(&mut InnerProductParameter)) -> LayerParameter {
        param("InnerProduct", |p| {
            let ip = p.inner_product_param.mut_or_insert_default();
            ip.weight_filler
                .mut_or_insert_default()
                .set_type("gaussian".into());
            ip.bias_filler
                .mut_or_insert_default()
                .set_type("gaussian".into());
            edit(ip)
        })
    }

    #[test]
    fn forward_matches_numpy_plain_and_transposed() {
        let (wshape, w) = fixture("ip.w");
        for transpose in [false, true] {
            let mut l = layer(&ip(|p| {
                p.set_num_output(5);
                p.set_transpose(transpose);
            }));
            let (x, t) = (fixture_blob("ip.x"), empty());
            l.setup(&[x.clone()], &[t.clone()]).unwrap();
            let weights = if transpose {
                // Store Wᵀ: [K, N].
                (0..wshape[1])
                    .flat_map(|kk| (0..wshape[0]).map(move |nn| (kk, nn)))
                    .map(|(kk, nn)| w[nn * wshape[1] + kk])
                    .collect()
            } else {
                w.clone()
            };
            let expect_shape: &[usize] = if transpose { &[12, 5] } else { &[5, 12] };
            assert_eq!(l.blobs()[0].borrow().shape(), expect_shape);
            l.blobs()[0]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(&weights);
            load_param(l.as_ref(), 1, "ip.b");
            l.reshape(&[x.clone()], &[t.clone()]).unwrap();
            l.forward(&[x], &[t.clone()]).unwrap();
            assert_matches(&t, "ip.y", 1e-5);
        }
    }

    #[test]
    fn axis_two_keeps_leading_axes_and_single_row_uses_gemv_by_hand() {
        let mut l = layer(&ip(|p| {
            p.set_num_output(1);
            p.set_axis(2);
            p.set_bias_term(false);
            p.weight_filler
                .mut_or_insert_default()
                .set_type("constant".into());
            p.weight_filler.mut_or_insert_default().set_value(1.0);
        }));
        let (x, t) = (blob(&[1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), empty());
        run(l.as_mut(), &[x], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[1, 2, 1]);
        assert_eq!(t.borrow().data(), &[6.0, 15.0]);
        // M = 1: one row of K = 6.
        let mut l = layer(&ip(|p| {
            p.set_num_output(2);
            p.weight_filler
                .mut_or_insert_default()
                .set_type("constant".into());
            p.weight_filler.mut_or_insert_default().set_value(0.5);
            p.bias_filler
                .mut_or_insert_default()
                .set_type("constant".into());
            p.bias_filler.mut_or_insert_default().set_value(1.0);
        }));
        let (x, t) = (blob(&[1, 6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), empty());
        run(l.as_mut(), &[x], &[t.clone()]);
        assert_eq!(t.borrow().data(), &[11.5, 11.5]);
    }

    fn grad(p: &LayerParameter, shape: &[usize]) {
        let b = Blob::shared(shape);
        fill_uniform(&b, -1.0, 1.0, 21);
        crate::rng::set_random_seed(3);
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            layer(p).as_mut(),
            &[b],
            &[empty()],
            None,
        );
    }

    #[test]
    fn gradient_plain_transposed_and_without_bias() {
        grad(&ip(|p| p.set_num_output(4)), &[3, 2, 2, 2]);
        grad(
            &ip(|p| {
                p.set_num_output(3);
                p.set_transpose(true);
            }),
            &[2, 5],
        );
        grad(
            &ip(|p| {
                p.set_num_output(3);
                p.set_bias_term(false);
                p.set_axis(-1);
            }),
            &[2, 2, 3],
        );
        grad(&ip(|p| p.set_num_output(3)), &[1, 4]);
    }

    #[test]
    fn changed_input_size_and_zero_outputs_are_errors() {
        let mut l = layer(&ip(|p| p.set_num_output(3)));
        let t = empty();
        l.setup(&[Blob::shared(&[2, 4, 2])], &[t.clone()]).unwrap();
        l.reshape(&[Blob::shared(&[5, 4, 2])], &[t.clone()])
            .unwrap();
        assert_eq!(t.borrow().shape(), &[5, 3], "batch size may change");
        let e = l
            .reshape(&[Blob::shared(&[2, 3, 2])], &[t])
            .unwrap_err()
            .to_string();
        assert!(e.contains("incompatible with inner product"), "{e}");
        let e = crate::layers::create_layer(&ip(|_| {}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("num_output must be positive"), "{e}");
    }
}
