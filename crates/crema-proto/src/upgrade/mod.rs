//! Caffe's upgrade chain for legacy nets and solvers, applied in Caffe's
//! order: V0 → V1 (`v0`), data-transformation fields (`data`), V1 → current
//! (`v1`), net-level inputs → Input layer and the BatchNorm fix-up (`input`);
//! and for solvers, the `solver_type` enum → `type` string (`solver`).
//!
//! Log lines use Caffe's words so logs of old models read the same.
mod data;
mod input;
mod solver;
mod v0;
mod v1;

use crate::caffe::NetParameter;
use crate::error::{ProtoError, Result};

pub use solver::{solver_needs_upgrade, solver_type_name, upgrade_solver};
pub use v1::v1_type_name;

/// True when any step of the chain would change `net`.
pub fn needs_upgrade(net: &NetParameter) -> bool {
    v0::needs_v0_upgrade(net)
        || data::needs_data_upgrade(net)
        || v1::needs_v1_upgrade(net)
        || input::needs_input_upgrade(net)
        || input::needs_batch_norm_upgrade(net)
}

/// Upgrades `net` in place to the current format; `source_name` (the file)
/// is used in logs and errors. Returns whether anything changed. A net that
/// mixes current `layer` and V1 `layers` blocks is refused: Caffe would drop
/// the `layer` blocks, which is never what the author meant. After an error,
/// `net` may be partly upgraded; callers discard it.
pub fn upgrade_net(net: &mut NetParameter, source_name: &str) -> Result<bool> {
    if !net.layer.is_empty() && !net.layers.is_empty() {
        return Err(ProtoError::invalid(
            source_name,
            format!(
                "the net mixes {} current-format `layer` blocks with {} deprecated V1 `layers` blocks; \
                 write every layer in one format (upgrade the V1 part with upgrade_net_proto_text first)",
                net.layer.len(),
                net.layers.len()
            ),
        ));
    }
    let mut changed = false;
    if v0::needs_v0_upgrade(net) {
        log::info!("Attempting to upgrade input file specified using deprecated V0LayerParameter: {source_name}");
        *net = v0::upgrade_v0_net(net, source_name)?;
        log::info!("Successfully upgraded file specified using deprecated V0LayerParameter");
        log::warn!(
            "Note that future Caffe releases will not support V0NetParameter; use ./build/tools/upgrade_net_proto_text \
             for prototxt and ./build/tools/upgrade_net_proto_binary for model weights upgrade this and any other net \
             protos to the new format."
        );
        changed = true;
    }
    if data::needs_data_upgrade(net) {
        log::info!(
            "Attempting to upgrade input file specified using deprecated transformation parameters: {source_name}"
        );
        data::upgrade_data_transformation(net);
        log::info!(
            "Successfully upgraded file specified using deprecated data transformation parameters."
        );
        log::warn!("Note that future Caffe releases will only support transform_param messages for transformation fields.");
        changed = true;
    }
    if v1::needs_v1_upgrade(net) {
        log::info!("Attempting to upgrade input file specified using deprecated V1LayerParameter: {source_name}");
        v1::upgrade_v1_net(net, source_name)?;
        log::info!("Successfully upgraded file specified using deprecated V1LayerParameter");
        changed = true;
    }
    if input::needs_input_upgrade(net) {
        log::info!("Attempting to upgrade input file specified using deprecated input fields: {source_name}");
        input::upgrade_net_input(net, source_name)?;
        log::info!("Successfully upgraded file specified using deprecated input fields.");
        log::warn!(
            "Note that future Caffe releases will only support input layers and not input fields."
        );
        changed = true;
    }
    if input::needs_batch_norm_upgrade(net) {
        log::info!(
            "Attempting to upgrade batch norm layers using deprecated params: {source_name}"
        );
        input::upgrade_net_batch_norm(net);
        log::info!("Successfully upgraded batch norm layers using deprecated params.");
        changed = true;
    }
    Ok(changed)
}
