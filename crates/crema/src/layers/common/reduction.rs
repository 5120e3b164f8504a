//! Reduction: collapses every axis from `reduction_param.axis` (default 0) on
//! into one number per leading index: SUM, ASUM (sum of |x|), SUMSQ (sum of
//! x²) or MEAN, times `coeff` (default 1). The top keeps the axes before
//! `axis` (axis 0 gives a scalar).
use crema_proto::caffe::reduction_parameter::ReductionOp;
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct ReductionLayer {
    param: LayerParameter,
    op: ReductionOp,
    /// Outputs, values reduced into each, and coeff (divided by `dim` for MEAN).
    num: usize,
    dim: usize,
    coeff: f32,
}

impl ReductionLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let rp = param.reduction_param.get_or_default();
        Ok(Box::new(ReductionLayer {
            param: param.clone(),
            op: rp.operation(),
            num: 0,
            dim: 0,
            coeff: rp.coeff(),
        }))
    }
}

impl Layer for ReductionLayer {
    fn type_name(&self) -> &'static str {
        "Reduction"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let b = bottom[0].borrow();
        let rp = p.reduction_param.get_or_default();
        let axis = canonical_axis(p, &b, rp.axis() as i64)?;
        self.num = b.count_range(0, axis);
        self.dim = b.count_from(axis);
        self.coeff = rp.coeff();
        if self.op == ReductionOp::MEAN && self.dim > 0 {
            self.coeff /= self.dim as f32;
        }
        let shape = b.shape()[..axis].to_vec();
        drop(b);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        let dim = self.dim;
        for (i, out) in y.iter_mut().enumerate().take(self.num) {
            let row = &b.data()[i * dim..(i + 1) * dim];
            let s: f32 = match self.op {
                ReductionOp::SUM | ReductionOp::MEAN => row.iter().sum(),
                ReductionOp::ASUM => row.iter().map(|v| v.abs()).sum(),
                ReductionOp::SUMSQ => row.iter().map(|v| v * v).sum(),
            };
            *out = self.coeff * s;
        }
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
        let t = top[0].borrow();
        let mut b = bottom[0].borrow_mut();
        let (x, dx) = b.data_and_diff_mut();
        let dim = self.dim;
        for i in 0..self.num {
            let g = self.coeff * t.diff()[i];
            let (xs, ds) = (&x[i * dim..(i + 1) * dim], &mut dx[i * dim..(i + 1) * dim]);
            for (d, &v) in ds.iter_mut().zip(xs) {
                *d = match self.op {
                    ReductionOp::SUM | ReductionOp::MEAN => g,
                    // Caffe's sign: 0 at 0.
                    ReductionOp::ASUM => g * ((v > 0.0) as i32 - (v < 0.0) as i32) as f32,
                    ReductionOp::SUMSQ => 2.0 * g * v,
                };
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
    use super::super::testutil::*;
    use super::ReductionOp;
    use crate::gradient_check::GradientChecker;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn reduction(op: ReductionOp, axis: i32, coeff: f32) -> crema_proto::caffe::LayerParameter {
        param("Reduction", |p| {
            let rp = p.reduction_param.mut_or_insert_default();
            rp.set_operation(op);
            rp.set_axis(axis);
            rp.set_coeff(coeff);
        })
    }

    fn x() -> crate::SharedBlob {
        blob(&[2, 3, 4], &fixture_line(TEXT, "red_x"))
    }

    #[test]
    fn reduction_matches_numpy() {
        let cases = [
            (ReductionOp::SUM, 1, 1.5, "red_sum_a1", vec![2]),
            (ReductionOp::ASUM, 1, 1.5, "red_asum_a1", vec![2]),
            (ReductionOp::SUMSQ, 1, 1.5, "red_sumsq_a1", vec![2]),
            (ReductionOp::MEAN, 1, 1.5, "red_mean_a1", vec![2]),
            (ReductionOp::SUM, 0, 1.0, "red_sum_a0", vec![]),
            (ReductionOp::MEAN, -1, 1.0, "red_mean_alast", vec![2, 3]),
        ];
        for (op, axis, coeff, key, shape) in cases {
            let t = empty();
            run(
                &mut *layer(&reduction(op, axis, coeff)),
                &[x()],
                &[t.clone()],
            );
            assert_eq!(t.borrow().shape(), shape.as_slice(), "{key}");
            assert_close(t.borrow().data(), &fixture_line(TEXT, key), 1e-4);
        }
    }

    #[test]
    fn reduction_gradients() {
        for op in [
            ReductionOp::SUM,
            ReductionOp::ASUM,
            ReductionOp::SUMSQ,
            ReductionOp::MEAN,
        ] {
            for axis in [0, 1, 2] {
                let mut l = layer(&reduction(op, axis, 1.5));
                let checker = GradientChecker::new(1e-3, 1e-2);
                checker.check_gradient_exhaustive(&mut *l, &[x()], &[empty()], None);
            }
        }
    }

    #[test]
    fn reduction_refuses_axis_out_of_range() {
        let msg = setup_error(
            &mut *layer(&reduction(ReductionOp::SUM, 3, 1.0)),
            &[x()],
            &[empty()],
        );
        assert!(msg.contains("out of range"), "{msg}");
    }
}
