//! Loss layers (and Accuracy, which reads the same predictions and labels).
//! A loss layer's first top is a scalar whose default loss weight is 1; labels
//! never receive a gradient.
use crema_proto::caffe::LayerParameter;

use super::LayerCtor;
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;

pub mod accuracy;
pub mod contrastive_loss;
pub mod euclidean_loss;
pub mod hinge_loss;
pub mod infogain_loss;
pub mod multinomial_logistic_loss;
pub mod sigmoid_cross_entropy_loss;
pub mod softmax_loss;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("Accuracy", accuracy::AccuracyLayer::create),
    (
        "ContrastiveLoss",
        contrastive_loss::ContrastiveLossLayer::create,
    ),
    ("EuclideanLoss", euclidean_loss::EuclideanLossLayer::create),
    ("HingeLoss", hinge_loss::HingeLossLayer::create),
    ("InfogainLoss", infogain_loss::InfogainLossLayer::create),
    (
        "MultinomialLogisticLoss",
        multinomial_logistic_loss::MultinomialLogisticLossLayer::create,
    ),
    (
        "SigmoidCrossEntropyLoss",
        sigmoid_cross_entropy_loss::SigmoidCrossEntropyLossLayer::create,
    ),
    (
        "SoftmaxWithLoss",
        softmax_loss::SoftmaxWithLossLayer::create,
    ),
];

/// The check every Caffe loss layer makes first: both bottoms share axis 0.
pub(crate) fn check_loss_shapes(param: &LayerParameter, bottom: &[SharedBlob]) -> Result<()> {
    let (a, b) = (bottom[0].borrow(), bottom[1].borrow());
    ensure!(
        param,
        a.num_axes() >= 1 && b.num_axes() >= 1 && a.shape()[0] == b.shape()[0],
        "The data and label should have the same first dimension: {} vs {}",
        a.shape_string(),
        b.shape_string()
    );
    Ok(())
}

/// The class stored at `labels[k]` (truncated to an integer, as Caffe casts),
/// or None for the ignore label; a class outside `0..classes` is an error.
pub(crate) fn class_label(
    param: &LayerParameter,
    labels: &[f32],
    k: usize,
    classes: usize,
    ignore: Option<i32>,
) -> Result<Option<usize>> {
    let v = labels[k] as i32;
    if ignore == Some(v) {
        return Ok(None);
    }
    ensure!(
        param,
        v >= 0 && (v as usize) < classes,
        "label {} at position {k} is outside [0, {classes})",
        labels[k]
    );
    Ok(Some(v as usize))
}

/// What a loss summed over `outer * inner` positions is divided by, Caffe's
/// LossLayer::GetNormalizer: every position (FULL), the positions not carrying
/// the ignore label (VALID), the batch (BATCH_SIZE) or nothing (NONE); never
/// less than 1, so an all-ignored batch gives loss 0 rather than NaN.
pub(crate) fn normalizer(
    mode: crema_proto::caffe::loss_parameter::NormalizationMode,
    outer: usize,
    inner: usize,
    valid_count: usize,
) -> f32 {
    use crema_proto::caffe::loss_parameter::NormalizationMode;
    let n = match mode {
        NormalizationMode::FULL => outer * inner,
        NormalizationMode::VALID => valid_count,
        NormalizationMode::BATCH_SIZE => outer,
        NormalizationMode::NONE => 1,
    };
    (n as f32).max(1.0)
}

/// The facts of Caffe's LossLayer base class, for a loss with bottoms
/// (prediction, label) and one top: two bottoms, one top made automatically,
/// no forced gradient into the label, and a loss weight of 1 on the top.
macro_rules! loss_layer_facts {
    () => {
        fn exact_num_bottom_blobs(&self) -> Option<usize> {
            Some(2)
        }
        fn exact_num_top_blobs(&self) -> Option<usize> {
            Some(1)
        }
        fn auto_top_blobs(&self) -> bool {
            true
        }
        fn allow_force_backward(&self, bottom_index: usize) -> bool {
            bottom_index != 1
        }
        fn default_loss_weight(&self, top_index: usize) -> f32 {
            if top_index == 0 {
                1.0
            } else {
                0.0
            }
        }
    };
}
pub(crate) use loss_layer_facts;

/// A line of `tests/fixtures/loss_layers.txt` (made by `loss_layers.py`).
#[cfg(test)]
pub(crate) fn fixture(key: &str) -> Vec<f32> {
    const TEXT: &str = include_str!("../../../tests/fixtures/loss_layers.txt");
    crate::layers::common::testutil::fixture_line(TEXT, key)
}

#[cfg(test)]
mod tests {
    use crate::layers::common::testutil::param;
    use crate::layers::{common, create_layer, layer_type_list, loss, neuron};

    #[test]
    fn every_registered_type_builds_and_reports_its_name() {
        for (name, _) in neuron::REGISTRY
            .iter()
            .chain(common::REGISTRY)
            .chain(loss::REGISTRY)
        {
            let layer = create_layer(&param(name, |_| {})).expect(name);
            assert_eq!(layer.type_name(), *name);
            assert!(layer_type_list().contains(name));
        }
    }
}
