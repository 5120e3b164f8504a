//! Legacy data-transformation fields: `scale`, `mean_file`, `crop_size` and
//! `mirror` once lived in data_param, image_data_param and window_data_param;
//! they now belong to the layer's transform_param.
//!
//! Like Caffe, this looks at V1 `layers` of types DATA, IMAGE_DATA and
//! WINDOW_DATA only (V0 layers get the same move in the V0 step).
use crate::caffe::v1layer_parameter::LayerType;
use crate::caffe::{NetParameter, TransformationParameter, V1LayerParameter};

/// The four legacy fields of one data-layer parameter, as options.
struct Legacy {
    scale: Option<f32>,
    mean_file: Option<String>,
    crop_size: Option<u32>,
    mirror: Option<bool>,
}

impl Legacy {
    fn any(&self) -> bool {
        self.scale.is_some()
            || self.mean_file.is_some()
            || self.crop_size.is_some()
            || self.mirror.is_some()
    }
}

/// Builds a `Legacy` from a data/image_data/window_data parameter.
macro_rules! legacy_of {
    ($p:expr) => {
        Legacy {
            scale: $p.scale,
            mean_file: $p.mean_file.clone(),
            crop_size: $p.crop_size,
            mirror: $p.mirror,
        }
    };
}

/// Clears the four legacy fields of a data/image_data/window_data parameter.
macro_rules! clear_legacy {
    ($p:expr) => {{
        $p.scale = None;
        $p.mean_file = None;
        $p.crop_size = None;
        $p.mirror = None;
    }};
}

fn v1_type(layer: &V1LayerParameter) -> Option<LayerType> {
    layer.type_.and_then(|t| t.enum_value().ok())
}

/// The legacy fields a V1 data layer carries, if it is one of the three types.
fn legacy_fields(layer: &V1LayerParameter) -> Option<Legacy> {
    match v1_type(layer)? {
        LayerType::DATA => layer.data_param.as_ref().map(|p| legacy_of!(p)),
        LayerType::IMAGE_DATA => layer.image_data_param.as_ref().map(|p| legacy_of!(p)),
        LayerType::WINDOW_DATA => layer.window_data_param.as_ref().map(|p| legacy_of!(p)),
        _ => None,
    }
}

/// True when a V1 data layer still carries transformation fields in its
/// data parameter.
pub fn needs_data_upgrade(net: &NetParameter) -> bool {
    net.layers
        .iter()
        .any(|l| legacy_fields(l).is_some_and(|f| f.any()))
}

/// Moves the legacy fields into transform_param; a value already in
/// transform_param is overwritten by the legacy one, as in Caffe.
pub fn upgrade_data_transformation(net: &mut NetParameter) {
    for layer in &mut net.layers {
        let Some(f) = legacy_fields(layer).filter(Legacy::any) else {
            continue;
        };
        match v1_type(layer) {
            Some(LayerType::DATA) => layer.data_param.as_mut().map(|p| clear_legacy!(p)),
            Some(LayerType::IMAGE_DATA) => {
                layer.image_data_param.as_mut().map(|p| clear_legacy!(p))
            }
            _ => layer.window_data_param.as_mut().map(|p| clear_legacy!(p)),
        };
        let tp: &mut TransformationParameter = layer.transform_param.mut_or_insert_default();
        if f.scale.is_some() {
            tp.scale = f.scale;
        }
        if f.mean_file.is_some() {
            tp.mean_file = f.mean_file;
        }
        if f.crop_size.is_some() {
            tp.crop_size = f.crop_size;
        }
        if f.mirror.is_some() {
            tp.mirror = f.mirror;
        }
    }
}
