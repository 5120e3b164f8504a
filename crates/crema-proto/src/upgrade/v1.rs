//! V1 → current: `layers { type: CONVOLUTION ... }` (V1LayerParameter, enum
//! types, blobs_lr/weight_decay lists) becomes `layer { type: "Convolution" }`
//! (LayerParameter, string types, one ParamSpec per parameter blob).
use crate::caffe::v1layer_parameter::{DimCheckMode as V1DimCheckMode, LayerType};
use crate::caffe::{param_spec, LayerParameter, NetParameter, ParamSpec, V1LayerParameter};
use crate::error::{ProtoError, Result};

/// True when the net has any V1 `layers` entries.
pub fn needs_v1_upgrade(net: &NetParameter) -> bool {
    !net.layers.is_empty()
}

/// The current type string for a V1 enum, spelled exactly as Caffe registers
/// the layer (NONE becomes the empty string, as in Caffe).
pub fn v1_type_name(t: LayerType) -> &'static str {
    match t {
        LayerType::NONE => "",
        LayerType::ABSVAL => "AbsVal",
        LayerType::ACCURACY => "Accuracy",
        LayerType::ARGMAX => "ArgMax",
        LayerType::BNLL => "BNLL",
        LayerType::CONCAT => "Concat",
        LayerType::CONTRASTIVE_LOSS => "ContrastiveLoss",
        LayerType::CONVOLUTION => "Convolution",
        LayerType::DECONVOLUTION => "Deconvolution",
        LayerType::DATA => "Data",
        LayerType::DROPOUT => "Dropout",
        LayerType::DUMMY_DATA => "DummyData",
        LayerType::EUCLIDEAN_LOSS => "EuclideanLoss",
        LayerType::ELTWISE => "Eltwise",
        LayerType::EXP => "Exp",
        LayerType::FLATTEN => "Flatten",
        LayerType::HDF5_DATA => "HDF5Data",
        LayerType::HDF5_OUTPUT => "HDF5Output",
        LayerType::HINGE_LOSS => "HingeLoss",
        LayerType::IM2COL => "Im2col",
        LayerType::IMAGE_DATA => "ImageData",
        LayerType::INFOGAIN_LOSS => "InfogainLoss",
        LayerType::INNER_PRODUCT => "InnerProduct",
        LayerType::LRN => "LRN",
        LayerType::MEMORY_DATA => "MemoryData",
        LayerType::MULTINOMIAL_LOGISTIC_LOSS => "MultinomialLogisticLoss",
        LayerType::MVN => "MVN",
        LayerType::POOLING => "Pooling",
        LayerType::POWER => "Power",
        LayerType::RELU => "ReLU",
        LayerType::SIGMOID => "Sigmoid",
        LayerType::SIGMOID_CROSS_ENTROPY_LOSS => "SigmoidCrossEntropyLoss",
        LayerType::SILENCE => "Silence",
        LayerType::SOFTMAX => "Softmax",
        LayerType::SOFTMAX_LOSS => "SoftmaxWithLoss",
        LayerType::SPLIT => "Split",
        LayerType::SLICE => "Slice",
        LayerType::TANH => "TanH",
        LayerType::WINDOW_DATA => "WindowData",
        LayerType::THRESHOLD => "Threshold",
    }
}

/// Replaces the net's V1 `layers` by current `layer`s; every other net field
/// is kept. The caller has already refused nets that also have `layer`s.
pub fn upgrade_v1_net(net: &mut NetParameter, source: &str) -> Result<()> {
    let v1 = std::mem::take(&mut net.layers);
    let mut layers = Vec::with_capacity(v1.len());
    for (i, l) in v1.into_iter().enumerate() {
        layers.push(upgrade_v1_layer(l, i, source)?);
    }
    net.layer = layers;
    Ok(())
}

/// The ParamSpec for blob `i`, creating the missing ones before it.
fn param_at(layer: &mut LayerParameter, i: usize) -> &mut ParamSpec {
    while layer.param.len() <= i {
        layer.param.push(ParamSpec::new());
    }
    &mut layer.param[i]
}

/// One V1 layer to a LayerParameter. Takes the V1 layer by value so the
/// weight blobs of a caffemodel move instead of being copied.
fn upgrade_v1_layer(
    mut v1: V1LayerParameter,
    index: usize,
    source: &str,
) -> Result<LayerParameter> {
    let here = match &v1.name {
        Some(n) => format!("'{n}' (#{index})"),
        None => format!("#{index}"),
    };
    let bad = |message: String| ProtoError::invalid(source, format!("layer {here}: {message}"));
    if v1.layer.is_some() {
        // Caffe logs "Input NetParameter has V0 layer -- ignoring." and drops it.
        return Err(bad(
            "still holds a V0 `layer { }` block after the V0 upgrade".into(),
        ));
    }
    let mut out = LayerParameter::new();
    out.bottom = std::mem::take(&mut v1.bottom);
    out.top = std::mem::take(&mut v1.top);
    out.name = v1.name.take();
    out.include = std::mem::take(&mut v1.include);
    out.exclude = std::mem::take(&mut v1.exclude);
    if let Some(t) = v1.type_ {
        let t = t
            .enum_value()
            .map_err(|n| bad(format!("unknown V1 layer type enum value {n}")))?;
        out.type_ = Some(v1_type_name(t).to_string());
    }
    out.blobs = std::mem::take(&mut v1.blobs);
    for (i, name) in v1.param.iter().enumerate() {
        param_at(&mut out, i).name = Some(name.clone());
    }
    for (i, mode) in v1.blob_share_mode.iter().enumerate() {
        let mode = match mode.enum_value() {
            Ok(V1DimCheckMode::STRICT) => param_spec::DimCheckMode::STRICT,
            Ok(V1DimCheckMode::PERMISSIVE) => param_spec::DimCheckMode::PERMISSIVE,
            Err(n) => return Err(bad(format!("unknown blob_share_mode {n}"))),
        };
        param_at(&mut out, i).set_share_mode(mode);
    }
    for (i, &lr) in v1.blobs_lr.iter().enumerate() {
        param_at(&mut out, i).lr_mult = Some(lr);
    }
    for (i, &decay) in v1.weight_decay.iter().enumerate() {
        param_at(&mut out, i).decay_mult = Some(decay);
    }
    out.loss_weight = std::mem::take(&mut v1.loss_weight);
    // Every *_param V1 knows has the same message type in LayerParameter.
    out.accuracy_param = v1.accuracy_param.take().into();
    out.argmax_param = v1.argmax_param.take().into();
    out.concat_param = v1.concat_param.take().into();
    out.contrastive_loss_param = v1.contrastive_loss_param.take().into();
    out.convolution_param = v1.convolution_param.take().into();
    out.data_param = v1.data_param.take().into();
    out.dropout_param = v1.dropout_param.take().into();
    out.dummy_data_param = v1.dummy_data_param.take().into();
    out.eltwise_param = v1.eltwise_param.take().into();
    out.exp_param = v1.exp_param.take().into();
    out.hdf5_data_param = v1.hdf5_data_param.take().into();
    out.hdf5_output_param = v1.hdf5_output_param.take().into();
    out.hinge_loss_param = v1.hinge_loss_param.take().into();
    out.image_data_param = v1.image_data_param.take().into();
    out.infogain_loss_param = v1.infogain_loss_param.take().into();
    out.inner_product_param = v1.inner_product_param.take().into();
    out.lrn_param = v1.lrn_param.take().into();
    out.memory_data_param = v1.memory_data_param.take().into();
    out.mvn_param = v1.mvn_param.take().into();
    out.pooling_param = v1.pooling_param.take().into();
    out.power_param = v1.power_param.take().into();
    out.relu_param = v1.relu_param.take().into();
    out.sigmoid_param = v1.sigmoid_param.take().into();
    out.softmax_param = v1.softmax_param.take().into();
    out.slice_param = v1.slice_param.take().into();
    out.tanh_param = v1.tanh_param.take().into();
    out.threshold_param = v1.threshold_param.take().into();
    out.window_data_param = v1.window_data_param.take().into();
    out.transform_param = v1.transform_param.take().into();
    out.loss_param = v1.loss_param.take().into();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Enum;

    #[test]
    fn every_v1_enum_value_has_a_caffe_type_name() {
        // 40 values, 0..=39; only NONE maps to "".
        for t in LayerType::VALUES {
            assert_eq!(v1_type_name(*t).is_empty(), *t == LayerType::NONE, "{t:?}");
        }
        assert_eq!(LayerType::VALUES.len(), 40);
        assert_eq!(v1_type_name(LayerType::SOFTMAX_LOSS), "SoftmaxWithLoss");
        assert_eq!(v1_type_name(LayerType::IM2COL), "Im2col");
    }

    #[test]
    fn blobs_lr_weight_decay_names_and_share_modes_become_param_specs() {
        let mut v1 = V1LayerParameter::new();
        v1.name = Some("fc".into());
        v1.set_type(LayerType::INNER_PRODUCT);
        v1.blobs_lr = vec![1.0, 2.0];
        v1.weight_decay = vec![1.0, 0.0];
        v1.param = vec!["w".into()];
        v1.blob_share_mode = vec![
            V1DimCheckMode::STRICT.into(),
            V1DimCheckMode::PERMISSIVE.into(),
        ];
        v1.loss_weight = vec![0.5];
        let l = upgrade_v1_layer(v1, 0, "t").unwrap();
        assert_eq!(l.type_(), "InnerProduct");
        assert_eq!(l.param.len(), 2);
        assert_eq!(
            (
                l.param[0].name(),
                l.param[0].lr_mult(),
                l.param[0].decay_mult()
            ),
            ("w", 1.0, 1.0)
        );
        assert!(!l.param[1].has_name());
        assert_eq!((l.param[1].lr_mult(), l.param[1].decay_mult()), (2.0, 0.0));
        assert_eq!(
            l.param[1].share_mode(),
            param_spec::DimCheckMode::PERMISSIVE
        );
        assert!(l.param[0].has_share_mode());
        assert_eq!(l.loss_weight, vec![0.5]);
    }

    #[test]
    fn unknown_v1_type_value_is_an_error_naming_the_layer() {
        let mut v1 = V1LayerParameter::new();
        v1.name = Some("odd".into());
        v1.type_ = Some(protobuf::EnumOrUnknown::from_i32(77));
        let e = upgrade_v1_layer(v1, 3, "net.prototxt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("net.prototxt") && e.contains("'odd' (#3)") && e.contains("77"),
            "{e}"
        );
    }
}
