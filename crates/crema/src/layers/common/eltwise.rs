//! Eltwise: combines equally shaped bottoms element by element: `SUM` (each
//! bottom weighted by its `coeff`, default 1), `PROD`, or `MAX` (the gradient
//! goes to the bottom that won, remembered per element).
use crema_proto::caffe::eltwise_parameter::EltwiseOp;
use crema_proto::caffe::LayerParameter;

use super::{check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct EltwiseLayer {
    param: LayerParameter,
    op: EltwiseOp,
    coeffs: Vec<f32>,
    /// PROD: recompute the product of the other bottoms rather than divide the
    /// output by this bottom (which fails where it is zero).
    stable_prod_grad: bool,
    /// MAX: which bottom gave each output element.
    argmax: Vec<usize>,
}

impl EltwiseLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let ep = &param.eltwise_param;
        Ok(Box::new(EltwiseLayer {
            param: param.clone(),
            op: ep.operation(),
            coeffs: Vec::new(),
            stable_prod_grad: ep.stable_prod_grad(),
            argmax: Vec::new(),
        }))
    }
}

impl Layer for EltwiseLayer {
    fn type_name(&self) -> &'static str {
        "Eltwise"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let coeff = &p.eltwise_param.coeff;
        ensure!(
            p,
            coeff.is_empty() || coeff.len() == bottom.len(),
            "Eltwise Layer takes one coefficient per bottom blob ({} coeff for {} bottoms).",
            coeff.len(),
            bottom.len()
        );
        ensure!(
            p,
            self.op != EltwiseOp::PROD || coeff.is_empty(),
            "Eltwise layer only takes coefficients for summation."
        );
        self.coeffs = if coeff.is_empty() {
            vec![1.0; bottom.len()]
        } else {
            coeff.clone()
        };
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        ensure!(
            p,
            bottom.len() >= 2,
            "Eltwise needs at least 2 bottoms, got {}",
            bottom.len()
        );
        check_distinct(p, bottom, top)?;
        let b0 = bottom[0].borrow();
        for (i, b) in bottom.iter().enumerate().skip(1) {
            let b = b.borrow();
            ensure!(
                p,
                b.shape() == b0.shape(),
                "bottom[0]: {}, bottom[{i}]: {}; all bottoms must have the same shape",
                b0.shape_string(),
                b.shape_string()
            );
        }
        top[0].borrow_mut().reshape_like(&b0);
        if self.op == EltwiseOp::MAX {
            self.argmax.resize(b0.count(), 0);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        match self.op {
            EltwiseOp::SUM => {
                y.fill(0.0);
                for (b, &c) in bottom.iter().zip(&self.coeffs) {
                    y.iter_mut()
                        .zip(b.borrow().data())
                        .for_each(|(o, &x)| *o += c * x);
                }
            }
            EltwiseOp::PROD => {
                y.copy_from_slice(bottom[0].borrow().data());
                for b in &bottom[1..] {
                    y.iter_mut()
                        .zip(b.borrow().data())
                        .for_each(|(o, &x)| *o *= x);
                }
            }
            EltwiseOp::MAX => {
                // Ties keep the earlier bottom, as Caffe's strict comparison does.
                y.copy_from_slice(bottom[0].borrow().data());
                self.argmax.fill(0);
                for (k, b) in bottom.iter().enumerate().skip(1) {
                    for ((o, m), &x) in y
                        .iter_mut()
                        .zip(self.argmax.iter_mut())
                        .zip(b.borrow().data())
                    {
                        if x > *o {
                            *o = x;
                            *m = k;
                        }
                    }
                }
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
        let t = top[0].borrow();
        let dy = t.diff();
        for (i, bi) in bottom.iter().enumerate() {
            if !propagates(propagate_down, i) {
                continue;
            }
            match self.op {
                EltwiseOp::SUM => {
                    let c = self.coeffs[i];
                    bi.borrow_mut()
                        .diff_mut()
                        .iter_mut()
                        .zip(dy)
                        .for_each(|(d, &g)| *d = c * g);
                }
                EltwiseOp::PROD if self.stable_prod_grad => {
                    let mut b = bi.borrow_mut();
                    let dx = b.diff_mut();
                    dx.copy_from_slice(dy);
                    for (j, bj) in bottom.iter().enumerate() {
                        if j != i {
                            dx.iter_mut()
                                .zip(bj.borrow().data())
                                .for_each(|(d, &x)| *d *= x);
                        }
                    }
                }
                EltwiseOp::PROD => {
                    let mut b = bi.borrow_mut();
                    let (x, dx) = b.data_and_diff_mut();
                    for k in 0..dx.len() {
                        dx[k] = dy[k] * t.data()[k] / x[k];
                    }
                }
                EltwiseOp::MAX => {
                    let mut b = bi.borrow_mut();
                    for ((d, &g), &m) in b.diff_mut().iter_mut().zip(dy).zip(&self.argmax) {
                        *d = if m == i { g } else { 0.0 };
                    }
                }
            }
        }
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use crema_proto::caffe::eltwise_parameter::EltwiseOp;

    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn eltwise(
        op: EltwiseOp,
        coeff: &[f32],
        stable: Option<bool>,
    ) -> crema_proto::caffe::LayerParameter {
        param("Eltwise", |p| {
            let ep = p.eltwise_param.mut_or_insert_default();
            ep.set_operation(op);
            ep.coeff = coeff.to_vec();
            if let Some(s) = stable {
                ep.set_stable_prod_grad(s);
            }
        })
    }

    fn three() -> [crate::SharedBlob; 3] {
        [
            blob(&[2, 2], &[1.0, -2.0, 3.0, 0.5]),
            blob(&[2, 2], &[2.0, 5.0, -1.0, 0.5]),
            blob(&[2, 2], &[0.5, 1.0, 4.0, 2.0]),
        ]
    }

    #[test]
    fn sum_with_coefficients() {
        let (b, t) = (three(), empty());
        let mut l = layer(&eltwise(EltwiseOp::SUM, &[1.0, -0.5, 2.0], None));
        run(&mut *l, &b, &[t.clone()]);
        // 1 - 1 + 1, -2 - 2.5 + 2, 3 + 0.5 + 8, 0.5 - 0.25 + 4
        assert_close(t.borrow().data(), &[1.0, -2.5, 11.5, 4.25], 1e-6);
        t.borrow_mut()
            .diff_mut()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        l.backward(&[t], &[true, true, true], &b).unwrap();
        assert_close(b[1].borrow().diff(), &[-0.5, -1.0, -1.5, -2.0], 1e-6);
        assert_close(b[2].borrow().diff(), &[2.0, 4.0, 6.0, 8.0], 1e-6);
    }

    #[test]
    fn prod_and_its_gradient_with_zeros() {
        let b = [blob(&[3], &[2.0, 0.0, -1.0]), blob(&[3], &[3.0, 4.0, 0.5])];
        let t = empty();
        let mut l = layer(&eltwise(EltwiseOp::PROD, &[], None));
        run(&mut *l, &b, &[t.clone()]);
        assert_eq!(t.borrow().data(), &[6.0, 0.0, -0.5]);
        t.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true, true], &b).unwrap();
        // d/dx0 = x1 even where x0 is 0: the stable gradient needs no division.
        assert_eq!(b[0].borrow().diff(), &[3.0, 4.0, 0.5]);
        assert_eq!(b[1].borrow().diff(), &[2.0, 0.0, -1.0]);
    }

    #[test]
    fn max_routes_gradient_to_the_winner() {
        let (b, t) = (three(), empty());
        let mut l = layer(&eltwise(EltwiseOp::MAX, &[], None));
        run(&mut *l, &b, &[t.clone()]);
        assert_eq!(t.borrow().data(), &[2.0, 5.0, 4.0, 2.0]);
        t.borrow_mut()
            .diff_mut()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        l.backward(&[t], &[true, true, true], &b).unwrap();
        assert_eq!(b[0].borrow().diff(), &[0.0, 0.0, 0.0, 0.0]);
        assert_eq!(b[1].borrow().diff(), &[1.0, 2.0, 0.0, 0.0]);
        assert_eq!(b[2].borrow().diff(), &[0.0, 0.0, 3.0, 4.0]);
    }

    #[test]
    fn eltwise_refuses_bad_parameters() {
        let msg = setup_error(
            &mut *layer(&eltwise(EltwiseOp::SUM, &[1.0], None)),
            &three(),
            &[empty()],
        );
        assert!(msg.contains("one coefficient per bottom"), "{msg}");
        let msg = setup_error(
            &mut *layer(&eltwise(EltwiseOp::PROD, &[1.0, 1.0, 1.0], None)),
            &three(),
            &[empty()],
        );
        assert!(
            msg.contains("only takes coefficients for summation"),
            "{msg}"
        );
        let msg = setup_error(
            &mut *layer(&eltwise(EltwiseOp::SUM, &[], None)),
            &[Blob::shared(&[2, 2]), Blob::shared(&[4])],
            &[empty()],
        );
        assert!(msg.contains("same shape"), "{msg}");
        let a = Blob::shared(&[2]);
        let msg = setup_error(
            &mut *layer(&eltwise(EltwiseOp::SUM, &[], None)),
            &[a.clone(), Blob::shared(&[2])],
            &[a],
        );
        assert!(msg.contains("in-place"), "{msg}");
    }

    #[test]
    fn eltwise_gradients() {
        let cases = [
            eltwise(EltwiseOp::SUM, &[], None),
            eltwise(EltwiseOp::SUM, &[1.5, -0.5, 2.0], None),
            eltwise(EltwiseOp::PROD, &[], Some(true)),
            eltwise(EltwiseOp::PROD, &[], Some(false)),
            eltwise(EltwiseOp::MAX, &[], None),
        ];
        for p in cases {
            let b: Vec<_> = (0..3).map(|_| Blob::shared(&[2, 3, 2])).collect();
            for (k, x) in b.iter().enumerate() {
                // Positive, so PROD's unstable gradient never divides by zero;
                // overlapping ranges, so MAX's winner varies by element.
                fill_uniform(x, 0.2, 1.5, 10 + k as u64);
            }
            GradientChecker::new(1e-3, 1e-2).check_gradient_exhaustive(
                &mut *layer(&p),
                &b,
                &[empty()],
                None,
            );
        }
    }
}
