//! For element-wise layers whose gradient needs the input `x` but cannot be
//! recovered from the output: used in place, the forward overwrites `x`, so
//! the layer keeps a copy of it (as Caffe's PReLU does with bottom_memory_).
use super::same_blob;
use crate::blob::SharedBlob;

/// Copies the bottom's data into `saved` when bottom and top are one blob;
/// call at the start of forward.
pub(crate) fn save_if_in_place(bottom: &SharedBlob, top: &SharedBlob, saved: &mut Vec<f32>) {
    if same_blob(bottom, top) {
        saved.clear();
        saved.extend_from_slice(bottom.borrow().data());
    }
}

/// `bottom_diff = g(top_diff, x, y)` element-wise, with `x` taken from `saved`
/// when the layer runs in place.
pub(crate) fn map_backward_with_input(
    top: &SharedBlob,
    bottom: &SharedBlob,
    saved: &[f32],
    g: impl Fn(f32, f32, f32) -> f32,
) {
    if same_blob(bottom, top) {
        let mut b = bottom.borrow_mut();
        let (y, dy) = b.data_and_diff_mut();
        for (i, d) in dy.iter_mut().enumerate() {
            *d = g(*d, saved[i], y[i]);
        }
    } else {
        let t = top.borrow();
        let mut b = bottom.borrow_mut();
        let (x, dx) = b.data_and_diff_mut();
        for (i, d) in dx.iter_mut().enumerate() {
            *d = g(t.diff()[i], x[i], t.data()[i]);
        }
    }
}
