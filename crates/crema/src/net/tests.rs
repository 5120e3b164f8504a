//! Small layers for net tests, so the net's wiring is checked against values
//! computed by hand, independently of the real layer implementations.
use crema_proto::caffe::{LayerParameter, NetParameter};

use super::Net;
use crate::blob::{Blob, SharedBlob};
use crate::error::Result;
use crate::layers::{create_layer, Layer};

/// y[n, o] = Σ_i W[o, i] x[n, i] + b[o]; W filled with weight_filler.value,
/// b with bias_filler.value; num_output from inner_product_param.
pub struct Affine {
    out: usize,
    bias: bool,
    blobs: Vec<SharedBlob>,
    weight_value: f32,
    bias_value: f32,
}

impl Layer for Affine {
    fn type_name(&self) -> &'static str {
        "TestAffine"
    }
    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let inp = bottom[0].borrow().count_from(1);
        let w = Blob::shared(&[self.out, inp]);
        w.borrow_mut().data_mut().fill(self.weight_value);
        self.blobs.push(w);
        if self.bias {
            let b = Blob::shared(&[self.out]);
            b.borrow_mut().data_mut().fill(self.bias_value);
            self.blobs.push(b);
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let n = bottom[0].borrow().shape()[0];
        top[0].borrow_mut().reshape(&[n, self.out]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let x = bottom[0].borrow();
        let w = self.blobs[0].borrow();
        let (n, inp) = (x.shape()[0], x.count_from(1));
        let mut y = top[0].borrow_mut();
        for s in 0..n {
            for o in 0..self.out {
                let mut acc: f32 = (0..inp)
                    .map(|i| w.data()[o * inp + i] * x.data()[s * inp + i])
                    .sum();
                if self.bias {
                    acc += self.blobs[1].borrow().data()[o];
                }
                y.data_mut()[s * self.out + o] = acc;
            }
        }
        Ok(())
    }
    fn backward(&mut self, top: &[SharedBlob], down: &[bool], bottom: &[SharedBlob]) -> Result<()> {
        let dy = top[0].borrow().diff().to_vec();
        let x = bottom[0].borrow().data().to_vec();
        let inp = x.len() / (dy.len() / self.out);
        let n = dy.len() / self.out;
        {
            let mut w = self.blobs[0].borrow_mut();
            for s in 0..n {
                for o in 0..self.out {
                    for i in 0..inp {
                        w.diff_mut()[o * inp + i] += dy[s * self.out + o] * x[s * inp + i];
                    }
                }
            }
        }
        if self.bias {
            let mut b = self.blobs[1].borrow_mut();
            for s in 0..n {
                for o in 0..self.out {
                    b.diff_mut()[o] += dy[s * self.out + o];
                }
            }
        }
        if down[0] {
            let w = self.blobs[0].borrow().data().to_vec();
            let mut xb = bottom[0].borrow_mut();
            for s in 0..n {
                for i in 0..inp {
                    xb.diff_mut()[s * inp + i] = (0..self.out)
                        .map(|o| dy[s * self.out + o] * w[o * inp + i])
                        .sum();
                }
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

/// loss = ½ Σ (a - b)², b = 0 with one bottom. The second bottom is a label:
/// force_backward leaves it alone.
pub struct SquareLoss;

impl Layer for SquareLoss {
    fn type_name(&self) -> &'static str {
        "TestLoss"
    }
    fn setup(&mut self, _b: &[SharedBlob], _t: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, _b: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        top[0].borrow_mut().reshape(&[]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let d = residual(bottom);
        top[0].borrow_mut().data_mut()[0] = 0.5 * d.iter().map(|v| v * v).sum::<f32>();
        Ok(())
    }
    fn backward(&mut self, top: &[SharedBlob], down: &[bool], bottom: &[SharedBlob]) -> Result<()> {
        let scale = top[0].borrow().diff()[0];
        let d = residual(bottom);
        for (k, b) in bottom.iter().enumerate() {
            if down[k] {
                let sign = if k == 0 { 1.0 } else { -1.0 };
                b.borrow_mut()
                    .diff_mut()
                    .iter_mut()
                    .zip(&d)
                    .for_each(|(g, v)| *g = sign * scale * v);
            }
        }
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn allow_force_backward(&self, i: usize) -> bool {
        i == 0
    }
    fn default_loss_weight(&self, i: usize) -> f32 {
        if i == 0 {
            1.0
        } else {
            0.0
        }
    }
}

fn residual(bottom: &[SharedBlob]) -> Vec<f32> {
    let a = bottom[0].borrow().data().to_vec();
    match bottom.get(1) {
        Some(b) => a
            .iter()
            .zip(b.borrow().data())
            .map(|(x, y)| x - y)
            .collect(),
        None => a,
    }
}

/// y = 2x, in place or not.
pub struct Double;

impl Layer for Double {
    fn type_name(&self) -> &'static str {
        "TestDouble"
    }
    fn setup(&mut self, _b: &[SharedBlob], _t: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if !std::rc::Rc::ptr_eq(&bottom[0], &top[0]) {
            let shape = bottom[0].borrow().shape().to_vec();
            top[0].borrow_mut().reshape(&shape);
        }
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let x = bottom[0].borrow().data().to_vec();
        top[0]
            .borrow_mut()
            .data_mut()
            .iter_mut()
            .zip(x)
            .for_each(|(y, v)| *y = 2.0 * v);
        Ok(())
    }
    fn backward(&mut self, top: &[SharedBlob], down: &[bool], bottom: &[SharedBlob]) -> Result<()> {
        if down[0] {
            let dy = top[0].borrow().diff().to_vec();
            bottom[0]
                .borrow_mut()
                .diff_mut()
                .iter_mut()
                .zip(dy)
                .for_each(|(g, v)| *g = 2.0 * v);
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

/// The registry plus the test layers above.
pub fn test_factory(p: &LayerParameter) -> Result<Box<dyn Layer>> {
    match p.type_() {
        "TestAffine" => {
            let ip = p.inner_product_param.get_or_default();
            Ok(Box::new(Affine {
                out: ip.num_output() as usize,
                bias: ip.bias_term(),
                blobs: Vec::new(),
                weight_value: ip.weight_filler.get_or_default().value(),
                bias_value: ip.bias_filler.get_or_default().value(),
            }))
        }
        "TestLoss" => Ok(Box::new(SquareLoss)),
        "TestDouble" => Ok(Box::new(Double)),
        _ => create_layer(p),
    }
}

pub fn parse(text: &str) -> NetParameter {
    protobuf::text_format::parse_from_str(text).expect("test prototxt parses")
}

/// Asserts that two nets' parameter gradients are equal bit for bit; `what`
/// names the difference between them in the message.
pub fn assert_same_param_diffs(a: &Net, b: &Net, what: &str) {
    for (k, (x, y)) in a.params().iter().zip(b.params()).enumerate() {
        let (x, y) = (x.borrow(), y.borrow());
        assert!(
            x.diff()
                .iter()
                .zip(y.diff())
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{what}: param {k}'s gradient differs"
        );
    }
}

pub fn build(text: &str) -> Result<Net> {
    Net::from_param_with(&parse(text), &test_factory)
}

/// Sets a blob's values.
pub fn set(net: &Net, blob: &str, values: &[f32]) {
    net.blob_by_name(blob)
        .unwrap()
        .borrow_mut()
        .data_mut()
        .copy_from_slice(values);
}

pub fn data(net: &Net, blob: &str) -> Vec<f32> {
    net.blob_by_name(blob).unwrap().borrow().data().to_vec()
}
pub fn diff(net: &Net, blob: &str) -> Vec<f32> {
    net.blob_by_name(blob).unwrap().borrow().diff().to_vec()
}

pub fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}
