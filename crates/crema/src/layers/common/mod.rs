//! Common layers: softmax and the layers that move data between blobs without
//! arithmetic on it (concat, slice, flatten, reshape), plus eltwise, argmax and
//! silence.
use std::rc::Rc;

use crema_proto::caffe::LayerParameter;

use super::LayerCtor;
use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};

pub mod argmax;
pub mod batch_norm;
pub mod batch_reindex;
pub mod bias;
pub mod concat;
pub mod crop;
pub mod eltwise;
pub mod embed;
pub mod filter;
pub mod flatten;
pub mod im2col;
pub mod mvn;
pub mod parameter;
pub mod reduction;
pub mod reshape;
pub mod scale;
pub mod silence;
pub mod slice;
pub mod softmax;
pub mod tile;

#[cfg(test)]
pub(crate) mod testutil;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("ArgMax", argmax::ArgMaxLayer::create),
    ("BatchNorm", batch_norm::BatchNormLayer::create),
    ("BatchReindex", batch_reindex::BatchReindexLayer::create),
    ("Bias", bias::BiasLayer::create),
    ("Concat", concat::ConcatLayer::create),
    ("Crop", crop::CropLayer::create),
    ("Eltwise", eltwise::EltwiseLayer::create),
    ("Embed", embed::EmbedLayer::create),
    ("Filter", filter::FilterLayer::create),
    ("Flatten", flatten::FlattenLayer::create),
    ("Im2col", im2col::Im2colLayer::create),
    ("MVN", mvn::MVNLayer::create),
    ("Parameter", parameter::ParameterLayer::create),
    ("Reduction", reduction::ReductionLayer::create),
    ("Reshape", reshape::ReshapeLayer::create),
    ("Scale", scale::ScaleLayer::create),
    ("Silence", silence::SilenceLayer::create),
    ("Slice", slice::SliceLayer::create),
    ("Softmax", softmax::SoftmaxLayer::create),
    ("Tile", tile::TileLayer::create),
];

/// A possibly negative axis made absolute, with the layer named in the error.
pub(crate) fn canonical_axis(param: &LayerParameter, blob: &Blob, axis: i64) -> Result<usize> {
    blob.canonical_axis(axis)
        .map_err(|e| Error::layer(param, e.to_string()))
}

/// Refuses a blob that appears twice among `bottom` and `top`. Layers that read
/// one blob while writing another need them apart; the net's automatic Split
/// layers normally guarantee it, and this turns a misuse into an error rather
/// than a RefCell panic.
pub(crate) fn check_distinct(
    param: &LayerParameter,
    bottom: &[SharedBlob],
    top: &[SharedBlob],
) -> Result<()> {
    let all: Vec<&SharedBlob> = bottom.iter().chain(top).collect();
    for (i, a) in all.iter().enumerate() {
        if all[..i].iter().any(|b| Rc::ptr_eq(a, b)) {
            return Err(Error::layer(
                param,
                format!(
                    "{} layer does not allow in-place computation or a blob used twice",
                    param.type_()
                ),
            ));
        }
    }
    Ok(())
}

/// `propagate_down[i]`, false when the net passed a shorter list.
pub(crate) fn propagates(propagate_down: &[bool], i: usize) -> bool {
    propagate_down.get(i).copied().unwrap_or(false)
}

/// Copies `n` positions along one axis, in each of `outer` slabs: positions
/// `src_off..src_off + n` of a source whose axis has `src_dim` entries go to
/// `dst_off..` of a destination whose axis has `dst_dim`; `inner` values follow
/// each position. Concat and Slice are this copy in opposite directions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_along_axis(
    src: &[f32],
    src_dim: usize,
    src_off: usize,
    dst: &mut [f32],
    dst_dim: usize,
    dst_off: usize,
    n: usize,
    outer: usize,
    inner: usize,
) {
    let len = n * inner;
    for o in 0..outer {
        let s = (o * src_dim + src_off) * inner;
        let d = (o * dst_dim + dst_off) * inner;
        dst[d..d + len].copy_from_slice(&src[s..s + len]);
    }
}

/// Forward and backward of a layer that only changes the shape (Flatten,
/// Reshape): the values pass through unchanged. They are copied because our
/// blobs own their memory, where Caffe shares it.
pub(crate) fn pass_through_forward(bottom: &[SharedBlob], top: &[SharedBlob]) {
    top[0]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(bottom[0].borrow().data());
}

/// See `pass_through_forward`.
pub(crate) fn pass_through_backward(
    top: &[SharedBlob],
    propagate_down: &[bool],
    bottom: &[SharedBlob],
) {
    if propagates(propagate_down, 0) {
        bottom[0]
            .borrow_mut()
            .diff_mut()
            .copy_from_slice(top[0].borrow().diff());
    }
}
