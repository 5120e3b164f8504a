//! SPP (spatial pyramid pooling, He et al. 2014): pools the whole image at
//! `pyramid_height` levels, level l into 2^l × 2^l bins, with `spp_param.pool`
//! (MAX, AVE or STOCHASTIC), and joins the levels into one N × (C·Σ4^l)
//! vector per item. Level l pools with kernel ⌈size / 2^l⌉, stride = kernel
//! and pad ⌈(kernel·2^l − size) / 2⌉, so the bins tile the image. As in Caffe
//! the layer is built from Pooling layers; the split (sum of the levels'
//! gradients), flatten and concat are done here directly. With one level the
//! top is the pooling's N × C × 1 × 1.
use crema_proto::caffe::pooling_parameter::PoolMethod;
use crema_proto::caffe::sppparameter::PoolMethod as SppPool;
use crema_proto::caffe::LayerParameter;

use super::pooling::PoolingLayer;
use crate::blob::{Blob, SharedBlob};
use crate::ensure;
use crate::error::Result;
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

pub struct SPPLayer {
    param: LayerParameter,
    height: usize,
    /// Shape the levels were built for (N, C, H, W).
    built_for: Vec<usize>,
    levels: Vec<Box<dyn Layer>>,
    /// Each level's pooled output (N × C × bins × bins).
    pooled: Vec<SharedBlob>,
    /// Sum of the levels' bottom gradients during backward.
    grad_sum: Vec<f32>,
}

impl SPPLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let sp = param.spp_param.get_or_default();
        ensure!(
            param,
            sp.pyramid_height() >= 1,
            "spp_param.pyramid_height must be at least 1 (got {})",
            sp.pyramid_height()
        );
        ensure!(
            param,
            sp.pyramid_height() <= 16,
            "spp_param.pyramid_height {} is beyond any image",
            sp.pyramid_height()
        );
        Ok(Box::new(SPPLayer {
            param: param.clone(),
            height: sp.pyramid_height() as usize,
            built_for: Vec::new(),
            levels: Vec::new(),
            pooled: Vec::new(),
            grad_sum: Vec::new(),
        }))
    }

    /// The Pooling parameters of one level for an h × w input.
    fn level_param(&self, level: usize, h: usize, w: usize) -> LayerParameter {
        let bins = 1usize << level;
        let (kh, kw) = (h.div_ceil(bins), w.div_ceil(bins));
        let (ph, pw) = ((kh * bins - h).div_ceil(2), (kw * bins - w).div_ceil(2));
        let mut p = LayerParameter::new();
        p.set_name(format!("{} level {level}", self.param.name()));
        p.set_type("Pooling".into());
        p.set_phase(self.param.phase());
        let pp = p.pooling_param.mut_or_insert_default();
        pp.set_kernel_h(kh as u32);
        pp.set_kernel_w(kw as u32);
        pp.set_stride_h(kh as u32);
        pp.set_stride_w(kw as u32);
        pp.set_pad_h(ph as u32);
        pp.set_pad_w(pw as u32);
        pp.set_pool(match self.param.spp_param.get_or_default().pool() {
            SppPool::MAX => PoolMethod::MAX,
            SppPool::AVE => PoolMethod::AVE,
            SppPool::STOCHASTIC => PoolMethod::STOCHASTIC,
        });
        p
    }
}

impl Layer for SPPLayer {
    fn type_name(&self) -> &'static str {
        "SPP"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        self.built_for.clear();
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let shape = bottom[0].borrow().shape().to_vec();
        ensure!(
            p,
            shape.len() == 4,
            "Input must have 4 axes, corresponding to (num, channels, height, width); got {:?}",
            shape
        );
        ensure!(
            p,
            shape[2] > 0 && shape[3] > 0,
            "Input dimensions cannot be zero (bottom {:?}).",
            shape
        );
        if shape != self.built_for {
            // The windows depend on the input size: rebuild the levels.
            self.levels.clear();
            self.pooled.clear();
            for level in 0..self.height {
                let mut pool = PoolingLayer::new(&self.level_param(level, shape[2], shape[3]))?;
                let out = Blob::shared(&[]);
                let pool_top = if self.height == 1 {
                    top[0].clone()
                } else {
                    out.clone()
                };
                pool.setup(bottom, &[pool_top])?;
                self.levels.push(pool);
                self.pooled.push(out);
            }
            self.built_for = shape.clone();
        }
        if self.height == 1 {
            return self.levels[0].reshape(bottom, &top[..1]);
        }
        let mut width = 0;
        for (pool, out) in self.levels.iter_mut().zip(&self.pooled) {
            pool.reshape(bottom, std::slice::from_ref(out))?;
            width += out.borrow().count_from(1);
        }
        top[0].borrow_mut().reshape(&[shape[0], width]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if self.height == 1 {
            return self.levels[0].forward(bottom, &top[..1]);
        }
        let mut t = top[0].borrow_mut();
        let row = t.count_from(1);
        let y = t.data_mut();
        let mut off = 0;
        for (pool, out) in self.levels.iter_mut().zip(&self.pooled) {
            pool.forward(bottom, std::slice::from_ref(out))?;
            // Flatten + concat along axis 1: each item's level values side by side.
            let o = out.borrow();
            let dim = o.count_from(1);
            for (n, chunk) in o.data().chunks_exact(dim).enumerate() {
                y[n * row + off..n * row + off + dim].copy_from_slice(chunk);
            }
            off += dim;
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
        if self.height == 1 {
            return self.levels[0].backward(&top[..1], &[true], bottom);
        }
        self.grad_sum.clear();
        self.grad_sum.resize(bottom[0].borrow().count(), 0.0);
        let t = top[0].borrow();
        let row = t.count_from(1);
        let mut off = 0;
        for (pool, out) in self.levels.iter_mut().zip(&self.pooled) {
            let dim = {
                let mut o = out.borrow_mut();
                let dim = o.count_from(1);
                for (n, chunk) in o.diff_mut().chunks_exact_mut(dim).enumerate() {
                    chunk.copy_from_slice(&t.diff()[n * row + off..n * row + off + dim]);
                }
                dim
            };
            off += dim;
            // Each level overwrites the bottom diff; the split sums them.
            pool.backward(std::slice::from_ref(out), &[true], bottom)?;
            let b = bottom[0].borrow();
            self.grad_sum
                .iter_mut()
                .zip(b.diff())
                .for_each(|(s, d)| *s += d);
        }
        bottom[0]
            .borrow_mut()
            .diff_mut()
            .copy_from_slice(&self.grad_sum);
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
    use crema_proto::caffe::sppparameter::PoolMethod;

    use crate::gradient_check::GradientChecker;
    use crate::layers::common::testutil::*;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn spp(height: u32, pool: PoolMethod) -> crema_proto::caffe::LayerParameter {
        param("SPP", |p| {
            let sp = p.spp_param.mut_or_insert_default();
            sp.set_pyramid_height(height);
            sp.set_pool(pool);
        })
    }

    fn x() -> crate::SharedBlob {
        blob(&[2, 2, 7, 6], &fixture_line(TEXT, "spp_x"))
    }

    #[test]
    fn spp_matches_numpy_pyramid() {
        for (h, pool, key, shape) in [
            (3, PoolMethod::MAX, "spp_max_3", vec![2, 42]),
            (3, PoolMethod::AVE, "spp_ave_3", vec![2, 42]),
            (1, PoolMethod::MAX, "spp_max_1", vec![2, 2, 1, 1]),
        ] {
            let t = empty();
            run(&mut *layer(&spp(h, pool)), &[x()], &[t.clone()]);
            assert_eq!(t.borrow().shape(), shape.as_slice(), "{key}");
            assert_close(t.borrow().data(), &fixture_line(TEXT, key), 1e-5);
        }
    }

    #[test]
    fn spp_follows_a_new_input_size() {
        let (l, t) = (&mut *layer(&spp(2, PoolMethod::MAX)), empty());
        run(l, &[x()], &[t.clone()]);
        let b = crate::Blob::shared(&[1, 3, 9, 4]);
        l.reshape(&[b.clone()], &[t.clone()]).unwrap();
        l.forward(&[b], &[t.clone()]).unwrap();
        assert_eq!(t.borrow().shape(), &[1, 15]);
    }

    #[test]
    fn spp_gradient() {
        for pool in [PoolMethod::MAX, PoolMethod::AVE] {
            let mut l = layer(&spp(3, pool));
            GradientChecker::new(1e-4, 1e-2).check_gradient_exhaustive(
                &mut *l,
                &[x()],
                &[empty()],
                None,
            );
        }
    }

    #[test]
    fn spp_refuses_non_4d_input_and_zero_height() {
        let msg = setup_error(
            &mut *layer(&spp(2, PoolMethod::MAX)),
            &[crate::Blob::shared(&[2, 3, 4])],
            &[empty()],
        );
        assert!(msg.contains("4 axes"), "{msg}");
        assert!(crate::layers::create_layer(&spp(0, PoolMethod::MAX)).is_err());
    }
}
