//! The Layer trait and the registry of layer types (Caffe's layer_factory).
//!
//! Layers live one per file, grouped as Caffe grouped its headers: `vision`
//! (convolution, pooling, LRN, inner product), `neuron` (element-wise
//! activations), `common` (softmax, concat, slice, reshape, ...), `loss` and
//! `data`. Each group exports a `REGISTRY` slice; `create_layer` looks a type
//! name up in all of them.
//!
//! Conventions every layer follows (they are Caffe's):
//! - `backward` overwrites bottom diffs where `propagate_down[i]` is true and
//!   *adds* into parameter diffs (the net zeroes them; `iter_size` relies on it).
//! - A loss layer scales its gradient by `top[0].diff()[0]`, where the net puts
//!   the top's loss weight before backward.
//! - A layer used in place gets the same `SharedBlob` as bottom and top.
use crema_proto::caffe::LayerParameter;

use crate::blob::SharedBlob;
use crate::error::{Error, Result};

pub mod common;
pub mod data;
pub mod loss;
pub mod neuron;
pub mod recurrent;
pub mod vision;

/// One layer of a net: Caffe's four verbs plus the facts the net needs.
pub trait Layer {
    /// The registered type name ("Convolution").
    fn type_name(&self) -> &'static str;

    /// Caffe's LayerSetUp: checks the parameters against the bottoms and
    /// creates (and fills) the parameter blobs. Called once.
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()>;

    /// Shapes the tops (and internal buffers) from the bottoms; called before
    /// every forward, since inputs may change size.
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()>;

    /// Computes the tops from the bottoms.
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()>;

    /// Computes bottom diffs (where `propagate_down`) and accumulates parameter
    /// diffs from the top diffs.
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()>;

    /// The learnable parameter blobs, in Caffe's order (weights, then bias).
    fn blobs(&self) -> &[SharedBlob] {
        &[]
    }
    /// Mutable access to the parameter list, so the net can share a blob between
    /// layers (ParamSpec names) by putting the owner's handle in place.
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        None
    }

    /// Applies an in-place ReLU with this negative slope to its own output
    /// from now on (`None`: stops), so the net can skip that ReLU's forward
    /// pass over memory; returns whether the layer can. Backward is
    /// unchanged: the ReLU's backward still runs on the fused output.
    fn fuse_relu(&mut self, _negative_slope: Option<f32>) -> bool {
        false
    }

    /// The concrete layer, for callers that need its own API through the net
    /// (MemoryData's `reset`): `layer.as_any_mut()?.downcast_mut::<T>()`.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }

    /// Bottom/top count rules, checked by the net with Caffe's messages.
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        None
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        None
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        None
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        None
    }
    fn min_top_blobs(&self) -> Option<usize> {
        None
    }
    fn max_top_blobs(&self) -> Option<usize> {
        None
    }
    fn equal_num_bottom_top_blobs(&self) -> bool {
        false
    }
    /// Whether the net should create anonymous tops up to the minimum count.
    fn auto_top_blobs(&self) -> bool {
        false
    }
    /// Whether force_backward may make this layer propagate to bottom `i`
    /// (false for labels of loss layers, for example).
    fn allow_force_backward(&self, _bottom_index: usize) -> bool {
        true
    }
    /// The ParamSpec of parameter `i` when the prototxt gives none: BatchNorm
    /// masks its statistics with `lr_mult: 0`, as Caffe's layer adds that spec
    /// to its own parameters. `None` means Caffe's defaults (lr and decay 1).
    fn default_param_spec(&self, _param_index: usize) -> Option<crema_proto::caffe::ParamSpec> {
        None
    }
    /// For a layer that reads a dataset in order: how many records its
    /// forward passes have taken so far (kept in crema's solverstate, so a
    /// resume reads on from the same record). `None` for every other layer.
    fn data_position(&self) -> Option<u64> {
        None
    }
    /// Continues reading after `records` records, as if forward had taken
    /// them (the resume side of `data_position`).
    fn seek_data(&mut self, _records: u64) -> Result<()> {
        Err(Error::Other(format!(
            "a {} layer has no data position to restore",
            self.type_name()
        )))
    }
    /// Loss weight of top `i` when the prototxt gives none: 1 for a loss
    /// layer's first top, 0 otherwise.
    fn default_loss_weight(&self, _top_index: usize) -> f32 {
        0.0
    }
}

/// Builds a layer from its parameters.
pub type LayerCtor = fn(&LayerParameter) -> Result<Box<dyn Layer>>;

fn all_groups() -> [&'static [(&'static str, LayerCtor)]; 6] {
    [
        vision::REGISTRY,
        neuron::REGISTRY,
        common::REGISTRY,
        loss::REGISTRY,
        data::REGISTRY,
        recurrent::REGISTRY,
    ]
}

/// Layer types added at run time, as Caffe's LayerRegistry::AddCreator does:
/// a `caffe` binary built with Python layers registers "Python" here.
static RUNTIME_REGISTRY: std::sync::RwLock<Vec<(&'static str, LayerCtor)>> =
    std::sync::RwLock::new(Vec::new());

/// Adds a layer type that `create_layer` (and every net built with it) knows
/// from now on. A name registered before, built in or not, is an error.
pub fn register_layer_type(name: &'static str, ctor: LayerCtor) -> Result<()> {
    if layer_type_list().contains(&name) {
        return Err(Error::Other(format!(
            "Layer type {name} already registered."
        )));
    }
    let mut extra = RUNTIME_REGISTRY
        .write()
        .map_err(|_| Error::Other("the layer registry is poisoned".into()))?;
    extra.push((name, ctor));
    Ok(())
}

fn runtime_layer_types() -> Vec<(&'static str, LayerCtor)> {
    RUNTIME_REGISTRY
        .read()
        .map(|r| r.clone())
        .unwrap_or_default()
}

/// Creates a layer by its type string; an unknown type lists the known ones.
pub fn create_layer(param: &LayerParameter) -> Result<Box<dyn Layer>> {
    for group in all_groups() {
        if let Some((_, ctor)) = group.iter().find(|(name, _)| *name == param.type_()) {
            return ctor(param);
        }
    }
    let extra = runtime_layer_types();
    if let Some((_, ctor)) = extra.iter().find(|(name, _)| *name == param.type_()) {
        return ctor(param);
    }
    Err(Error::layer(
        param,
        format!(
            "unknown layer type \"{}\" (known types: {})",
            param.type_(),
            layer_type_list().join(", ")
        ),
    ))
}

/// Every registered type name, sorted (pycaffe's `layer_type_list`).
pub fn layer_type_list() -> Vec<&'static str> {
    let mut v: Vec<&str> = all_groups()
        .iter()
        .flat_map(|g| g.iter().map(|(n, _)| *n))
        .collect();
    v.extend(runtime_layer_types().iter().map(|(n, _)| *n));
    v.sort_unstable();
    v
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn registering_a_known_type_again_is_an_error() {
        fn ctor(p: &LayerParameter) -> Result<Box<dyn Layer>> {
            create_layer(p)
        }
        let err = register_layer_type("ReLU", ctor).unwrap_err().to_string();
        assert!(err.contains("Layer type ReLU already registered."), "{err}");
    }
}
