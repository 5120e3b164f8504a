//! Net: a graph of layers built from a NetParameter with Caffe's semantics.
//!
//! Construction (`build.rs`) follows Caffe's Net::Init: layers filtered by the
//! net state's include/exclude rules (`filter.rs`), Split layers inserted for
//! blobs read more than once (`split.rs`), tops connected by name (in place
//! when a top repeats the bottom at its index), parameters shared by ParamSpec
//! name, loss weights assigned, and the layers that need backward worked out.
//! Running (`run.rs`) is Forward/Backward/Update; `weights.rs` moves trained
//! parameters between the net and `.caffemodel` files.
use std::collections::HashMap;

use crema_proto::caffe::{LayerParameter, Phase};

use crate::blob::SharedBlob;
use crate::layers::Layer;

mod build;
mod diff_share;
mod fuse;
pub mod filter;
mod run;
mod share;
pub mod split;
mod weights;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_build;
#[cfg(test)]
mod tests_diff_share;
#[cfg(test)]
mod tests_graph;

pub use build::LayerFactory;
pub use filter::{filter_net, state_meets_rule};
pub use split::insert_splits;

/// A built network: layers, the blobs between them, and their parameters.
pub struct Net {
    name: String,
    phase: Phase,
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's parameters as built (phase set, splits applied); `to_proto` writes them.
    layer_params: Vec<LayerParameter>,
    layer_names: Vec<String>,
    layer_names_index: HashMap<String, usize>,
    blobs: Vec<SharedBlob>,
    blob_names: Vec<String>,
    blob_names_index: HashMap<String, usize>,
    blob_need_backward: Vec<bool>,
    blob_loss_weights: Vec<f32>,
    bottom_vecs: Vec<Vec<SharedBlob>>,
    top_vecs: Vec<Vec<SharedBlob>>,
    bottom_id_vecs: Vec<Vec<usize>>,
    top_id_vecs: Vec<Vec<usize>>,
    bottom_need_backward: Vec<Vec<bool>>,
    layer_need_backward: Vec<bool>,
    /// Loss weight of each top of each layer (0: not a loss).
    top_loss_weights: Vec<Vec<f32>>,
    /// Whether each layer's parameter blobs get gradients (lr_mult != 0 or force_backward).
    param_propagate_down: Vec<Vec<bool>>,
    params: Vec<SharedBlob>,
    param_id_vecs: Vec<Vec<usize>>,
    /// For a shared parameter, the net param id of its owner.
    param_owners: Vec<Option<usize>>,
    param_layer_indices: Vec<(usize, usize)>,
    param_display_names: Vec<String>,
    param_names_index: HashMap<String, usize>,
    learnable_params: Vec<SharedBlob>,
    learnable_param_ids: Vec<usize>,
    params_lr: Vec<f32>,
    has_params_lr: Vec<bool>,
    params_weight_decay: Vec<f32>,
    has_params_decay: Vec<bool>,
    input_blob_ids: Vec<usize>,
    output_blob_ids: Vec<usize>,
    memory_used: usize,
    debug_info: bool,
    /// Told each layer's index right after its backward (see
    /// `set_backward_observer`).
    backward_observer: Option<Box<dyn FnMut(usize)>>,
    /// Activation diffs share buffers through backward (`share_activation_diffs`).
    diff_sharing: Option<diff_share::DiffSharing>,
    /// Layers whose forward another layer does (`fuse_relus`).
    fused: Vec<bool>,
}

impl Net {
    fn empty(name: String, phase: Phase) -> Net {
        Net {
            name,
            phase,
            layers: Vec::new(),
            layer_params: Vec::new(),
            layer_names: Vec::new(),
            layer_names_index: HashMap::new(),
            blobs: Vec::new(),
            blob_names: Vec::new(),
            blob_names_index: HashMap::new(),
            blob_need_backward: Vec::new(),
            blob_loss_weights: Vec::new(),
            bottom_vecs: Vec::new(),
            top_vecs: Vec::new(),
            bottom_id_vecs: Vec::new(),
            top_id_vecs: Vec::new(),
            bottom_need_backward: Vec::new(),
            layer_need_backward: Vec::new(),
            top_loss_weights: Vec::new(),
            param_propagate_down: Vec::new(),
            params: Vec::new(),
            param_id_vecs: Vec::new(),
            param_owners: Vec::new(),
            param_layer_indices: Vec::new(),
            param_display_names: Vec::new(),
            param_names_index: HashMap::new(),
            learnable_params: Vec::new(),
            learnable_param_ids: Vec::new(),
            params_lr: Vec::new(),
            has_params_lr: Vec::new(),
            params_weight_decay: Vec::new(),
            has_params_decay: Vec::new(),
            input_blob_ids: Vec::new(),
            output_blob_ids: Vec::new(),
            memory_used: 0,
            debug_info: false,
            backward_observer: None,
            diff_sharing: None,
            fused: Vec::new(),
        }
    }

    /// The net's name from its prototxt.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The phase the net was built for (from its NetState).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The layers in execution order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }
    pub fn layer_names(&self) -> &[String] {
        &self.layer_names
    }
    /// The parameters each layer was built from (phase filled in, splits applied).
    pub fn layer_params(&self) -> &[LayerParameter] {
        &self.layer_params
    }
    pub fn has_layer(&self, name: &str) -> bool {
        self.layer_names_index.contains_key(name)
    }
    /// The index of a layer by name.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layer_names_index.get(name).copied()
    }
    /// A layer by name; None (with Caffe's warning) when there is none.
    pub fn layer_by_name(&self, name: &str) -> Option<&dyn Layer> {
        match self.layer_names_index.get(name) {
            Some(&i) => Some(self.layers[i].as_ref()),
            None => {
                log::warn!("Unknown layer name {name}");
                None
            }
        }
    }

    /// Every blob of the net, in creation order (inputs and tops; in-place tops once).
    pub fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    pub fn blob_names(&self) -> &[String] {
        &self.blob_names
    }
    pub fn has_blob(&self, name: &str) -> bool {
        self.blob_names_index.contains_key(name)
    }
    /// A blob by name; None (with Caffe's warning) when there is none.
    pub fn blob_by_name(&self, name: &str) -> Option<SharedBlob> {
        match self.blob_names_index.get(name) {
            Some(&i) => Some(self.blobs[i].clone()),
            None => {
                log::warn!("Unknown blob name {name}");
                None
            }
        }
    }
    /// Loss weight of each blob (0 for blobs that are not losses).
    pub fn blob_loss_weights(&self) -> &[f32] {
        &self.blob_loss_weights
    }
    /// Whether a gradient flows into each blob.
    pub fn blob_need_backward(&self) -> &[bool] {
        &self.blob_need_backward
    }

    /// The tops of Input layers, which callers fill before forward.
    pub fn input_blobs(&self) -> Vec<SharedBlob> {
        self.input_blob_ids
            .iter()
            .map(|&i| self.blobs[i].clone())
            .collect()
    }
    pub fn input_blob_indices(&self) -> &[usize] {
        &self.input_blob_ids
    }
    /// Blobs no layer reads, sorted by name as Caffe's std::set leaves them.
    pub fn output_blobs(&self) -> Vec<SharedBlob> {
        self.output_blob_ids
            .iter()
            .map(|&i| self.blobs[i].clone())
            .collect()
    }
    pub fn output_blob_indices(&self) -> &[usize] {
        &self.output_blob_ids
    }

    /// Blob ids a layer reads and writes.
    pub fn bottom_ids(&self, layer_id: usize) -> &[usize] {
        &self.bottom_id_vecs[layer_id]
    }
    pub fn top_ids(&self, layer_id: usize) -> &[usize] {
        &self.top_id_vecs[layer_id]
    }
    pub fn bottom_vecs(&self) -> &[Vec<SharedBlob>] {
        &self.bottom_vecs
    }
    pub fn top_vecs(&self) -> &[Vec<SharedBlob>] {
        &self.top_vecs
    }
    pub fn layer_need_backward(&self) -> &[bool] {
        &self.layer_need_backward
    }
    pub fn bottom_need_backward(&self) -> &[Vec<bool>] {
        &self.bottom_need_backward
    }
    /// Whether layer `layer_id` computes gradients for its parameter blobs.
    pub fn param_propagate_down(&self, layer_id: usize) -> &[bool] {
        &self.param_propagate_down[layer_id]
    }
    /// Loss weight of each top of layer `layer_id`.
    pub fn top_loss_weights(&self, layer_id: usize) -> &[f32] {
        &self.top_loss_weights[layer_id]
    }

    /// Every parameter blob, one entry per (layer, param) pair, shared ones included.
    pub fn params(&self) -> &[SharedBlob] {
        &self.params
    }
    /// The owner's net param id for each shared parameter (None: owns itself).
    pub fn param_owners(&self) -> &[Option<usize>] {
        &self.param_owners
    }
    /// Param name from the ParamSpec, or its index within the layer.
    pub fn param_display_names(&self) -> &[String] {
        &self.param_display_names
    }
    /// (layer id, param index within the layer) of each net param.
    pub fn param_layer_indices(&self) -> &[(usize, usize)] {
        &self.param_layer_indices
    }
    /// Maps each net param to its learnable param (its owner's for shared ones).
    /// Net param ids of each layer's parameter blobs, layer by layer.
    pub fn param_id_vecs(&self) -> &[Vec<usize>] {
        &self.param_id_vecs
    }
    /// Sets (or clears) a function told each layer's index as soon as that
    /// layer's backward has run (Caffe's after-backward callbacks): data-
    /// parallel training starts exchanging its gradients while the layers
    /// below still compute.
    pub fn set_backward_observer(&mut self, observer: Option<Box<dyn FnMut(usize)>>) {
        self.backward_observer = observer;
    }
    pub fn learnable_param_ids(&self) -> &[usize] {
        &self.learnable_param_ids
    }
    /// The parameter blobs the solver updates: each owner once.
    pub fn learnable_params(&self) -> &[SharedBlob] {
        &self.learnable_params
    }
    /// lr_mult of each learnable param (ParamSpec, default 1).
    pub fn params_lr(&self) -> &[f32] {
        &self.params_lr
    }
    pub fn has_params_lr(&self) -> &[bool] {
        &self.has_params_lr
    }
    /// decay_mult of each learnable param (ParamSpec, default 1).
    pub fn params_weight_decay(&self) -> &[f32] {
        &self.params_weight_decay
    }
    pub fn has_params_decay(&self) -> &[bool] {
        &self.has_params_decay
    }
    /// Bytes of top data Caffe would report ("Memory required for data").
    pub fn memory_used_bytes(&self) -> usize {
        self.memory_used * std::mem::size_of::<f32>()
    }
    pub fn debug_info(&self) -> bool {
        self.debug_info
    }
    pub fn set_debug_info(&mut self, on: bool) {
        self.debug_info = on;
    }

    /// Turns diff sharing on or off (see `diff_share`): activation diffs
    /// borrow from a few buffers during backward, so training needs about
    /// two activations' worth of diff memory instead of one per blob. While
    /// on, the diffs of intermediate blobs cannot be read between passes (a
    /// read panics); loss tops and the net's inputs and outputs are unaffected.
    pub fn share_activation_diffs(&mut self, on: bool) {
        if let Some(mut sharing) = self.diff_sharing.take() {
            sharing.return_all(&self.blobs);
        }
        if !on {
            return;
        }
        let mut sharing = diff_share::DiffSharing::plan(&diff_share::Wiring {
            blobs: self.blobs.len(),
            layer_need_backward: &self.layer_need_backward,
            top_ids: &self.top_id_vecs,
            bottom_ids: &self.bottom_id_vecs,
            bottom_need_backward: &self.bottom_need_backward,
            blob_loss_weights: &self.blob_loss_weights,
            inputs: &self.input_blob_ids,
            outputs: &self.output_blob_ids,
        });
        sharing.start(&self.blobs);
        self.diff_sharing = Some(sharing);
    }
}
