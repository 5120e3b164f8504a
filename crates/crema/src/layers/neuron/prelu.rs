//! PReLU: `max(x, 0) + a_c min(x, 0)` with a learnable slope per channel
//! (axis 1), or one slope for all when `channel_shared`. The slope blob is
//! `[C]`, or a scalar `[]` when shared (Caffe's shapes, so caffemodels load);
//! its filler defaults to constant 0.25. Both gradients need the input, so in
//! place the layer keeps a copy of it.
use crema_proto::caffe::{FillerParameter, LayerParameter};

use super::saved_input::save_if_in_place;
use super::{propagates, reshape_like, same_blob};
use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::fillers;
use crate::layers::Layer;

pub struct PReLULayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
    channel_shared: bool,
    channels: usize,
    saved: Vec<f32>,
}

impl PReLULayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(PReLULayer {
            param: param.clone(),
            blobs: Vec::new(),
            channel_shared: param.prelu_param.channel_shared(),
            channels: 0,
            saved: Vec::new(),
        }))
    }

    /// (channels, values per channel) of the current bottom.
    fn geometry(&self, b: &Blob) -> (usize, usize) {
        (self.channels, b.count_from(2))
    }
}

impl Layer for PReLULayer {
    fn type_name(&self) -> &'static str {
        "PReLU"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        let b = bottom[0].borrow();
        crate::ensure!(
            p,
            b.num_axes() >= 2,
            "Number of axes of bottom blob must be >=2; got {}",
            b.shape_string()
        );
        self.channels = b.shape()[1];
        let shape: &[usize] = if self.channel_shared {
            &[]
        } else {
            &[self.channels]
        };
        let slope = Blob::shared(shape);
        let filler = if p.prelu_param.filler.is_some() {
            p.prelu_param.filler.get_or_default().clone()
        } else {
            let mut f = FillerParameter::new();
            f.set_type("constant".into());
            f.set_value(0.25);
            f
        };
        fillers::fill(&filler, &mut slope.borrow_mut())
            .map_err(|e| crate::Error::layer(p, e.to_string()))?;
        self.blobs = vec![slope];
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        crate::ensure!(
            &self.param,
            b.num_axes() >= 2 && b.shape()[1] == self.channels,
            "bottom {} no longer has the {} channels the slopes were made for",
            b.shape_string(),
            self.channels
        );
        drop(b);
        reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        save_if_in_place(&bottom[0], &top[0], &mut self.saved);
        let (c, dim) = self.geometry(&bottom[0].borrow());
        let slope = self.blobs[0].borrow();
        let a = slope.data();
        let shared = self.channel_shared;
        let f = |i: usize, x: f32| {
            let s = a[if shared { 0 } else { (i / dim) % c }];
            x.max(0.0) + s * x.min(0.0)
        };
        if same_blob(&bottom[0], &top[0]) {
            let mut b = bottom[0].borrow_mut();
            b.data_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = f(i, *v));
        } else {
            let b = bottom[0].borrow();
            let mut t = top[0].borrow_mut();
            t.data_mut()
                .iter_mut()
                .zip(b.data())
                .enumerate()
                .for_each(|(i, (y, &x))| *y = f(i, x));
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let in_place = same_blob(&bottom[0], &top[0]);
        let (c, dim) = self.geometry(&bottom[0].borrow());
        let shared = self.channel_shared;
        let ch = |i: usize| if shared { 0 } else { (i / dim) % c };
        // Top diff and input, copied out so the in-place case can overwrite the diff.
        let dy = top[0].borrow().diff().to_vec();
        let x: Vec<f32> = if in_place {
            self.saved.clone()
        } else {
            bottom[0].borrow().data().to_vec()
        };
        {
            // Slope gradient: Σ dy·x over the non-positive inputs, accumulated.
            let mut s = self.blobs[0].borrow_mut();
            let ds = s.diff_mut();
            for i in 0..x.len() {
                if x[i] <= 0.0 {
                    ds[ch(i)] += dy[i] * x[i];
                }
            }
        }
        if propagates(propagate_down, 0) {
            let a = self.blobs[0].borrow().data().to_vec();
            let mut b = bottom[0].borrow_mut();
            for (i, d) in b.diff_mut().iter_mut().enumerate() {
                *d = if x[i] > 0.0 { dy[i] } else { dy[i] * a[ch(i)] };
            }
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
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    fn prelu(shared: bool, filler: Option<f32>) -> crema_proto::caffe::LayerParameter {
        param("PReLU", |p| {
            let pp = p.prelu_param.mut_or_insert_default();
            pp.set_channel_shared(shared);
            if let Some(v) = filler {
                let f = pp.filler.mut_or_insert_default();
                f.set_type("constant".into());
                f.set_value(v);
            }
        })
    }

    #[test]
    fn prelu_default_slope_is_quarter_and_blob_shapes_match_caffe() {
        let mut l = layer(&prelu(false, None));
        let (b, t) = (blob(&[1, 2, 2], &[-4.0, 1.0, 2.0, -8.0]), empty());
        run(&mut *l, &[b], &[t.clone()]);
        assert_eq!(l.blobs()[0].borrow().shape(), &[2]);
        assert_eq!(l.blobs()[0].borrow().data(), &[0.25, 0.25]);
        assert_eq!(t.borrow().data(), &[-1.0, 1.0, 2.0, -2.0]);
        let mut l = layer(&prelu(true, None));
        run(&mut *l, &[Blob::shared(&[1, 3])], &[empty()]);
        assert_eq!(l.blobs()[0].borrow().shape(), &[] as &[usize]);
    }

    #[test]
    fn prelu_per_channel_by_hand_separate_and_in_place() {
        // Channels 0 and 1 get slopes 0.5 and -1; shape [2, 2, 1] so channel = (i / 1) % 2.
        for in_place in [false, true] {
            let mut l = layer(&prelu(false, None));
            let b = blob(&[2, 2, 1], &[-2.0, -3.0, 4.0, -1.0]);
            let t = if in_place { b.clone() } else { empty() };
            l.setup(&[b.clone()], &[t.clone()]).unwrap();
            l.blobs()[0]
                .borrow_mut()
                .data_mut()
                .copy_from_slice(&[0.5, -1.0]);
            l.reshape(&[b.clone()], &[t.clone()]).unwrap();
            l.forward(&[b.clone()], &[t.clone()]).unwrap();
            assert_eq!(t.borrow().data(), &[-1.0, 3.0, 4.0, 1.0]);
            t.borrow_mut()
                .diff_mut()
                .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
            l.blobs()[0].borrow_mut().diff_mut().fill(10.0);
            l.backward(&[t], &[true], &[b.clone()]).unwrap();
            assert_eq!(b.borrow().diff(), &[0.5, -2.0, 3.0, -4.0]);
            // slope diffs accumulate: 10 + 1·(-2); 10 + 2·(-3) + 4·(-1)
            assert_eq!(l.blobs()[0].borrow().diff(), &[8.0, 0.0]);
        }
    }

    #[test]
    fn prelu_refuses_one_axis_and_changed_channels() {
        let msg = setup_error(
            &mut *layer(&prelu(false, None)),
            &[Blob::shared(&[3])],
            &[empty()],
        );
        assert!(msg.contains(">=2"), "{msg}");
        let mut l = layer(&prelu(false, None));
        let t = empty();
        l.setup(&[Blob::shared(&[1, 3])], &[t.clone()]).unwrap();
        let msg = l
            .reshape(&[Blob::shared(&[1, 4])], &[t])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("3 channels"), "{msg}");
    }

    #[test]
    fn prelu_gradient_for_input_and_slopes() {
        for shared in [false, true] {
            let x = Blob::shared(&[2, 3, 2, 2]);
            fill_uniform(&x, -1.0, 1.0, 31);
            let p = param("PReLU", |p| {
                let pp = p.prelu_param.mut_or_insert_default();
                pp.set_channel_shared(shared);
                let f = pp.filler.mut_or_insert_default();
                f.set_type("uniform".into());
                f.set_min(-0.5);
                f.set_max(0.5);
            });
            GradientChecker::new(1e-3, 1e-2)
                .with_kink(0.0, 0.01)
                .check_gradient_exhaustive(&mut *layer(&p), &[x], &[empty()], None);
        }
    }

    #[test]
    fn prelu_filler_is_honoured() {
        let mut l = layer(&prelu(true, Some(0.1)));
        run(&mut *l, &[blob(&[1, 2], &[-1.0, 1.0])], &[empty()]);
        assert_eq!(l.blobs()[0].borrow().data(), &[0.1]);
    }
}
