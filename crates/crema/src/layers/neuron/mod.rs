//! Neuron layers: element-wise functions of one bottom, usable in place (the
//! net may hand the same blob as bottom and top) except AbsVal, which refuses
//! it as Caffe's does.
use std::rc::Rc;

use super::LayerCtor;
use crate::blob::SharedBlob;

pub mod absval;
pub mod bnll;
pub mod clip;
pub mod dropout;
pub mod elu;
pub mod exp;
pub mod log;
pub mod power;
pub mod prelu;
pub mod relu;
pub(crate) mod saved_input;
pub mod sigmoid;
pub mod swish;
pub mod tanh;
pub mod threshold;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("AbsVal", absval::AbsValLayer::create),
    ("BNLL", bnll::BNLLLayer::create),
    ("Clip", clip::ClipLayer::create),
    ("Dropout", dropout::DropoutLayer::create),
    ("ELU", elu::ELULayer::create),
    ("Exp", exp::ExpLayer::create),
    ("Log", log::LogLayer::create),
    ("Power", power::PowerLayer::create),
    ("PReLU", prelu::PReLULayer::create),
    ("ReLU", relu::ReLULayer::create),
    ("Sigmoid", sigmoid::SigmoidLayer::create),
    ("Swish", swish::SwishLayer::create),
    ("TanH", tanh::TanHLayer::create),
    ("Threshold", threshold::ThresholdLayer::create),
];

/// Whether two handles are one blob (an in-place layer).
pub(crate) fn same_blob(a: &SharedBlob, b: &SharedBlob) -> bool {
    Rc::ptr_eq(a, b)
}

/// `propagate_down[i]`, false when the net passed a shorter list.
pub(crate) fn propagates(propagate_down: &[bool], i: usize) -> bool {
    propagate_down.get(i).copied().unwrap_or(false)
}

/// Gives `top` the bottom's shape; nothing to do in place.
pub(crate) fn reshape_like(bottom: &SharedBlob, top: &SharedBlob) {
    if !same_blob(bottom, top) {
        let shape = bottom.borrow().shape().to_vec();
        top.borrow_mut().reshape(&shape);
    }
}

/// `top = f(bottom)` element-wise, in place when they are one blob.
pub(crate) fn map_forward(bottom: &SharedBlob, top: &SharedBlob, f: impl Fn(f32) -> f32) {
    if same_blob(bottom, top) {
        bottom
            .borrow_mut()
            .data_mut()
            .iter_mut()
            .for_each(|v| *v = f(*v));
    } else {
        let b = bottom.borrow();
        let mut t = top.borrow_mut();
        t.data_mut()
            .iter_mut()
            .zip(b.data())
            .for_each(|(y, &x)| *y = f(x));
    }
}

/// `bottom_diff = g(top_diff, bottom_data, top_data)` element-wise. In place the
/// bottom's data has been overwritten, so `g` then sees the output twice.
pub(crate) fn map_backward(
    top: &SharedBlob,
    bottom: &SharedBlob,
    g: impl Fn(f32, f32, f32) -> f32,
) {
    if same_blob(bottom, top) {
        let mut b = bottom.borrow_mut();
        let (data, diff) = b.data_and_diff_mut();
        diff.iter_mut()
            .zip(data)
            .for_each(|(d, &y)| *d = g(*d, y, y));
    } else {
        let t = top.borrow();
        let mut b = bottom.borrow_mut();
        let (x, dx) = b.data_and_diff_mut();
        for (i, d) in dx.iter_mut().enumerate() {
            *d = g(t.diff()[i], x[i], t.data()[i]);
        }
    }
}
