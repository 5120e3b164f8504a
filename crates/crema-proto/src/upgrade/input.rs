//! Net-level `input` fields → an Input layer, and the BatchNorm fix-up.
use crate::caffe::{BlobShape, InputParameter, LayerParameter, NetParameter};
use crate::error::{ProtoError, Result};

/// True when the net declares inputs with the deprecated `input` field.
pub fn needs_input_upgrade(net: &NetParameter) -> bool {
    !net.input.is_empty()
}

/// Turns `input` + `input_shape` (or 4 `input_dim`s per input) into one layer
/// named "input" of type "Input", placed first so it precedes its consumers.
/// Inputs with no shape at all (old caffemodels) are simply dropped, as Caffe
/// does: the weights file never needed them.
pub fn upgrade_net_input(net: &mut NetParameter, source: &str) -> Result<()> {
    let has_shape = !net.input_shape.is_empty();
    let has_dim = !net.input_dim.is_empty();
    if has_shape || has_dim {
        let n = net.input.len();
        let shapes: Vec<BlobShape> = if has_shape {
            if has_dim {
                log::warn!("{source}: both input_shape and input_dim are given; using input_shape as Caffe does");
            }
            if net.input_shape.len() != n {
                return Err(ProtoError::invalid(
                    source,
                    format!(
                        "{n} net input(s) but {} input_shape entries; give one shape per input",
                        net.input_shape.len()
                    ),
                ));
            }
            net.input_shape.clone()
        } else {
            if net.input_dim.len() != 4 * n {
                return Err(ProtoError::invalid(
                    source,
                    format!(
                        "{n} net input(s) need {} input_dim values (4 per input), found {}",
                        4 * n,
                        net.input_dim.len()
                    ),
                ));
            }
            net.input_dim
                .chunks(4)
                .map(|d| {
                    let mut s = BlobShape::new();
                    s.dim = d.iter().map(|&v| i64::from(v)).collect();
                    s
                })
                .collect()
        };
        let mut layer = LayerParameter::new();
        layer.name = Some("input".into());
        layer.type_ = Some("Input".into());
        layer.top = net.input.clone();
        let mut param = InputParameter::new();
        param.shape = shapes;
        layer.input_param = Some(param).into();
        net.layer.insert(0, layer);
    }
    net.input.clear();
    net.input_shape.clear();
    net.input_dim.clear();
    Ok(())
}

/// The old BatchNorm definition declared three `param { lr_mult: 0 }` specs
/// for its statistics (mean, variance, scale factor). Caffe's upgrade keeps
/// the three specs (their names still drive sharing) but forces lr_mult and
/// decay_mult to 0, since the statistics are not learned by the solver.
fn is_old_batch_norm(layer: &LayerParameter) -> bool {
    layer.type_() == "BatchNorm" && layer.param.len() == 3
}

/// True when a BatchNorm layer has three param specs that are not all frozen.
/// (Caffe tests only the count, which stays true after its own upgrade; we
/// also look at the values so an upgraded net reads as current.)
pub fn needs_batch_norm_upgrade(net: &NetParameter) -> bool {
    net.layer.iter().any(|l| {
        is_old_batch_norm(l)
            && l.param
                .iter()
                .any(|p| p.lr_mult() != 0.0 || p.decay_mult() != 0.0)
    })
}

/// Sets lr_mult and decay_mult to 0 on the three specs of old BatchNorm layers.
pub fn upgrade_net_batch_norm(net: &mut NetParameter) {
    for layer in net.layer.iter_mut().filter(|l| is_old_batch_norm(l)) {
        for p in &mut layer.param {
            p.lr_mult = Some(0.0);
            p.decay_mult = Some(0.0);
        }
    }
}
