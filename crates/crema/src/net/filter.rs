//! Which layers a net state keeps: Caffe's FilterNet and StateMeetsRule.
use crema_proto::caffe::{LayerParameter, NetParameter, NetState, NetStateRule};
use protobuf::Enum;

use crate::error::{Error, Result};

/// Whether `state` meets `rule`: same phase (when the rule names one), level
/// within [min_level, max_level], every `stage` present and no `not_stage`.
/// Logs the first reason a rule fails, as Caffe does.
pub fn state_meets_rule(state: &NetState, rule: &NetStateRule, layer_name: &str) -> bool {
    if rule.phase.is_some() && rule.phase() != state.phase() {
        log::info!(
            "The NetState phase ({}) differed from the phase ({}) specified by a rule in layer {layer_name}",
            state.phase().value(),
            rule.phase().value()
        );
        return false;
    }
    if rule.min_level.is_some() && state.level() < rule.min_level() {
        log::info!(
            "The NetState level ({}) is above the min_level ({}) specified by a rule in layer {layer_name}",
            state.level(),
            rule.min_level()
        );
        return false;
    }
    if rule.max_level.is_some() && state.level() > rule.max_level() {
        log::info!(
            "The NetState level ({}) is above the max_level ({}) specified by a rule in layer {layer_name}",
            state.level(),
            rule.max_level()
        );
        return false;
    }
    if let Some(stage) = rule.stage.iter().find(|s| !state.stage.contains(s)) {
        log::info!("The NetState did not contain stage '{stage}' specified by a rule in layer {layer_name}");
        return false;
    }
    if let Some(stage) = rule.not_stage.iter().find(|s| state.stage.contains(s)) {
        log::info!("The NetState contained a not_stage '{stage}' specified by a rule in layer {layer_name}");
        return false;
    }
    true
}

/// Whether a layer belongs in a net of this state: with no include rules it is
/// in unless an exclude rule is met; with include rules it is in when one is met.
pub fn layer_included(state: &NetState, layer: &LayerParameter) -> Result<bool> {
    if !layer.include.is_empty() && !layer.exclude.is_empty() {
        return Err(Error::layer(
            layer,
            "Specify either include rules or exclude rules; not both.",
        ));
    }
    if layer.include.is_empty() {
        Ok(!layer
            .exclude
            .iter()
            .any(|r| state_meets_rule(state, r, layer.name())))
    } else {
        Ok(layer
            .include
            .iter()
            .any(|r| state_meets_rule(state, r, layer.name())))
    }
}

/// A copy of `param` holding only the layers its own `state` keeps.
pub fn filter_net(param: &NetParameter) -> Result<NetParameter> {
    let state = param.state.get_or_default();
    let mut filtered = param.clone();
    filtered.layer.clear();
    for layer in &param.layer {
        if layer_included(state, layer)? {
            filtered.layer.push(layer.clone());
        }
    }
    Ok(filtered)
}
