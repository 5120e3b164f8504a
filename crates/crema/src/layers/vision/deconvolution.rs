//! Deconvolution (transposed convolution): the convolution layer run with input
//! and output swapped. Top spatial size is `stride·(in−1) + dil·(k−1)+1 − 2·pad`;
//! weights are `[channels, num_output/group, k...]`, as Caffe stores them.
use crema_proto::caffe::LayerParameter;

use super::convolution::ConvolutionLayer;
use crate::error::Result;
use crate::layers::Layer;

pub struct DeconvolutionLayer;

impl DeconvolutionLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ConvolutionLayer::with_direction(param, true)))
    }
}

#[cfg(test)]
mod tests {
    use crema_proto::caffe::{ConvolutionParameter, LayerParameter};

    use super::super::testutil::*;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::Blob;

    fn deconv(edit: impl FnOnce(&mut ConvolutionParameter)) -> LayerParameter {
        param("Deconvolution", |p| {
            let cp = p.convolution_param.mut_or_insert_default();
            cp.weight_filler
                .mut_or_insert_default()
                .set_type("gaussian".into());
            cp.bias_filler
                .mut_or_insert_default()
                .set_type("gaussian".into());
            edit(cp)
        })
    }

    fn grouped(cp: &mut ConvolutionParameter) {
        cp.set_num_output(6);
        cp.set_group(2);
        cp.kernel_size = vec![3];
        cp.stride = vec![2];
        cp.pad = vec![1];
    }

    #[test]
    fn deconv_matches_numpy_scatter_reference() {
        let mut l = layer(&deconv(grouped));
        let (b, t) = (fixture_blob("deconv.x"), empty());
        l.setup(&[b.clone()], &[t.clone()]).unwrap();
        assert_eq!(
            l.blobs()[0].borrow().shape(),
            &[4, 3, 3, 3],
            "weights are [channels, num_output/group, k, k]"
        );
        load_param(l.as_ref(), 0, "deconv.w");
        load_param(l.as_ref(), 1, "deconv.b");
        l.reshape(&[b.clone()], &[t.clone()]).unwrap();
        l.forward(&[b], &[t.clone()]).unwrap();
        assert_matches(&t, "deconv.y", 1e-5);
    }

    #[test]
    fn bilinear_upsampling_doubles_size_and_keeps_constant_images_constant() {
        // FCN's upsampling: kernel 4, stride 2, pad 1, group = channels, bilinear weights.
        let p = param("Deconvolution", |p| {
            let cp = p.convolution_param.mut_or_insert_default();
            cp.set_num_output(2);
            cp.set_group(2);
            cp.set_bias_term(false);
            cp.kernel_size = vec![4];
            cp.stride = vec![2];
            cp.pad = vec![1];
            cp.weight_filler
                .mut_or_insert_default()
                .set_type("bilinear".into());
        });
        let mut l = layer(&p);
        let b = Blob::shared(&[1, 2, 7, 7]);
        b.borrow_mut().data_mut().fill(3.0);
        let t = empty();
        run(l.as_mut(), &[b], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[1, 2, 14, 14]);
        let t = t.borrow();
        // Away from the border every output pixel gets weights summing to 1.
        for c in 0..2 {
            for y in 1..13 {
                for x in 1..13 {
                    assert!((t.data()[(c * 14 + y) * 14 + x] - 3.0).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn gradient_grouped_strided_padded_deconv() {
        crate::rng::set_random_seed(1701);
        let b = Blob::shared(&[2, 4, 2, 2]);
        fill_uniform(&b, -1.0, 1.0, 3);
        let mut l = layer(&deconv(grouped));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            l.as_mut(),
            &[b],
            &[empty()],
            None,
        );
    }

    #[test]
    fn gradient_deconv_with_dilation_and_1x1() {
        crate::rng::set_random_seed(1701);
        let b = Blob::shared(&[1, 2, 3, 2]);
        fill_uniform(&b, -1.0, 1.0, 4);
        let mut l = layer(&deconv(|cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![2];
            cp.dilation = vec![2];
        }));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            l.as_mut(),
            &[b.clone()],
            &[empty()],
            None,
        );
        let mut l = layer(&deconv(|cp| {
            cp.set_num_output(3);
            cp.kernel_size = vec![1];
        }));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            l.as_mut(),
            &[b],
            &[empty()],
            None,
        );
    }

    #[test]
    fn deconv_output_that_would_vanish_is_an_error() {
        // stride 1, kernel 1, pad 1 on a 1x1 input: 1 + 1 - 1 - 2 < 1.
        let mut l = layer(&deconv(|cp| {
            cp.set_num_output(1);
            cp.kernel_size = vec![1];
            cp.pad = vec![1];
        }));
        let e = setup_error(l.as_mut(), &[Blob::shared(&[1, 1, 1, 1])], &[empty()]);
        assert!(e.contains("incompatible with kernel extent"), "{e}");
    }
}
