//! Im2col: lays every receptive field of a convolution window out as a
//! channel, the first step of convolution as a product. Reads the window from
//! `convolution_param` (kernel, stride, pad, dilation per spatial axis or as
//! `_h`/`_w`, `axis` of the channels, `force_nd_im2col`): the top has
//! `channels × ∏kernel` channels over the convolution's output positions. The
//! gradient is col2im, which adds each entry back onto the pixel it came from.
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, propagates};
use crate::backend::{col2im, im2col, ConvGeometry};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::vision::conv_base::Window;
use crate::layers::Layer;

pub struct Im2colLayer {
    param: LayerParameter,
    channel_axis: usize,
    window: Option<Window>,
    geom: ConvGeometry,
    /// Images (the product of the axes before the channel axis).
    num: usize,
    force_nd: bool,
}

impl Im2colLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Im2colLayer {
            param: param.clone(),
            channel_axis: 0,
            window: None,
            geom: ConvGeometry::default(),
            num: 0,
            force_nd: param.convolution_param.get_or_default().force_nd_im2col(),
        }))
    }
}

impl Layer for Im2colLayer {
    fn type_name(&self) -> &'static str {
        "Im2col"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let cp = p.convolution_param.get_or_default();
        let b = bottom[0].borrow();
        self.channel_axis = canonical_axis(p, &b, cp.axis() as i64)?;
        let spatial = b.num_axes() - self.channel_axis - 1;
        ensure!(
            p,
            spatial >= 1,
            "Im2col needs at least one spatial axis after the channel axis {} (bottom {})",
            self.channel_axis,
            b.shape_string()
        );
        self.window = Some(Window::parse(p, cp, spatial)?);
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let Some(w) = self.window.as_ref() else {
            return Err(crate::Error::layer(p, "reshape before setup"));
        };
        let b = bottom[0].borrow();
        let first = self.channel_axis + 1;
        ensure!(
            p,
            b.num_axes() == first + w.kernel.len(),
            "bottom num_axes may not change: {} has {} axes, setup saw {}",
            b.shape_string(),
            b.num_axes(),
            first + w.kernel.len()
        );
        self.geom = ConvGeometry {
            channels: b.shape()[self.channel_axis],
            input: b.shape()[first..].to_vec(),
            kernel: w.kernel.clone(),
            pad: w.pad.clone(),
            stride: w.stride.clone(),
            dilation: w.dilation.clone(),
        };
        let Some(out) = self.geom.output() else {
            return Err(crate::Error::layer(
                p,
                format!(
                    "the dilated kernel {:?} (dilation {:?}) does not fit the padded input {}",
                    w.kernel,
                    w.dilation,
                    b.shape_string()
                ),
            ));
        };
        self.num = b.count_range(0, self.channel_axis);
        let mut shape = b.shape()[..first].to_vec();
        shape[self.channel_axis] = self.geom.col_rows();
        shape.extend(out);
        drop(b);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let mut t = top[0].borrow_mut();
        let (bdim, tdim) = (
            b.count_from(self.channel_axis),
            t.count_from(self.channel_axis),
        );
        let y = t.data_mut();
        for n in 0..self.num {
            im2col(
                &self.geom,
                &b.data()[n * bdim..(n + 1) * bdim],
                &mut y[n * tdim..(n + 1) * tdim],
                self.force_nd,
            );
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
        let (bdim, tdim) = (
            b.count_from(self.channel_axis),
            t.count_from(self.channel_axis),
        );
        let dx = b.diff_mut();
        for n in 0..self.num {
            col2im(
                &self.geom,
                &t.diff()[n * tdim..(n + 1) * tdim],
                &mut dx[n * bdim..(n + 1) * bdim],
                self.force_nd,
            );
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
    use crate::gradient_check::GradientChecker;
    use crema_proto::caffe::LayerParameter;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn x() -> crate::SharedBlob {
        blob(&[2, 2, 5, 5], &fixture_line(TEXT, "im2col_x"))
    }

    fn im2col(edit: impl FnOnce(&mut crema_proto::caffe::ConvolutionParameter)) -> LayerParameter {
        param("Im2col", |p| {
            edit(p.convolution_param.mut_or_insert_default())
        })
    }

    fn cases() -> Vec<(LayerParameter, &'static str, Vec<usize>)> {
        vec![
            (
                im2col(|c| {
                    c.kernel_size = vec![3];
                    c.stride = vec![2];
                    c.pad = vec![1];
                }),
                "im2col_k3_s2_p1",
                vec![2, 18, 3, 3],
            ),
            (
                im2col(|c| {
                    c.kernel_size = vec![2];
                    c.dilation = vec![2];
                }),
                "im2col_k2_d2",
                vec![2, 8, 3, 3],
            ),
            (
                im2col(|c| {
                    c.set_kernel_h(3);
                    c.set_kernel_w(2);
                    c.set_stride_h(1);
                    c.set_stride_w(2);
                    c.set_pad_h(0);
                    c.set_pad_w(1);
                }),
                "im2col_k3x2_s1x2_p0x1",
                vec![2, 12, 3, 3],
            ),
        ]
    }

    #[test]
    fn im2col_matches_numpy_2d_and_nd() {
        for force_nd in [false, true] {
            for (mut p, key, shape) in cases() {
                p.convolution_param
                    .mut_or_insert_default()
                    .set_force_nd_im2col(force_nd);
                let t = empty();
                run(&mut *layer(&p), &[x()], &[t.clone()]);
                assert_eq!(t.borrow().shape(), shape.as_slice(), "{key}");
                assert_close(t.borrow().data(), &fixture_line(TEXT, key), 1e-7);
            }
        }
    }

    #[test]
    fn im2col_gradient() {
        for (p, _, _) in cases() {
            GradientChecker::new(1e-2, 1e-2).check_gradient(
                &mut *layer(&p),
                &[x()],
                &[empty()],
                None,
            );
        }
    }

    #[test]
    fn im2col_refuses_bad_windows() {
        let msg = setup_error(
            &mut *layer(&im2col(|c| c.kernel_size = vec![7])),
            &[x()],
            &[empty()],
        );
        assert!(msg.contains("does not fit"), "{msg}");
        let msg = setup_error(&mut *layer(&im2col(|_| {})), &[x()], &[empty()]);
        assert!(msg.contains("kernel_size"), "{msg}");
    }
}
