//! Net construction, step by step as Caffe's Net::Init, with its log lines.
use std::collections::{BTreeSet, HashMap};

use crema_proto::caffe::param_spec::DimCheckMode;
use crema_proto::caffe::{LayerParameter, NetParameter, ParamSpec};

use super::{filter, split, Net};
use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::layers::{create_layer, Layer};

/// Makes a layer from its parameters; `create_layer` (the registry) by default.
pub type LayerFactory<'a> = &'a dyn Fn(&LayerParameter) -> Result<Box<dyn Layer>>;

/// Blob bookkeeping that only lives while the net is being built.
struct Wiring {
    blob_name_to_idx: HashMap<String, usize>,
    available: BTreeSet<String>,
}

impl Net {
    /// Builds a net from `param`, using `param.state` (phase, level, stages)
    /// to choose its layers, with layers from the registry.
    pub fn from_param(param: &NetParameter) -> Result<Net> {
        Net::from_param_with(param, &create_layer)
    }

    /// Like `from_param`, with layers made by `factory` (layers outside the
    /// registry: tests, experiments).
    pub fn from_param_with(in_param: &NetParameter, factory: LayerFactory) -> Result<Net> {
        // Legacy nets given in memory (V0/V1 layers, net-level inputs) get
        // the upgrade that reading them from a file would have applied.
        let upgraded;
        let in_param = if crema_proto::upgrade::needs_upgrade(in_param) {
            let mut p = in_param.clone();
            crema_proto::upgrade::upgrade_net(&mut p, &format!("net '{}'", in_param.name()))?;
            upgraded = p;
            &upgraded
        } else {
            in_param
        };
        let phase = in_param.state.get_or_default().phase();
        let filtered = filter::filter_net(in_param)?;
        log::info!(
            "Initializing net from parameters: \n{}",
            super::weights::print_param(&filtered)
        );
        let mut param = split::insert_splits(&filtered)?;
        let mut net = Net::empty(param.name().to_string(), phase);
        let mut wiring = Wiring {
            blob_name_to_idx: HashMap::new(),
            available: BTreeSet::new(),
        };
        for layer_id in 0..param.layer.len() {
            if !param.layer[layer_id].has_phase() {
                param.layer[layer_id].set_phase(phase);
            }
            net.add_layer(&param.layer[layer_id], factory, &mut wiring)?;
        }
        net.prune_backward();
        if param.force_backward() {
            net.force_backward();
        }
        for name in &wiring.available {
            log::info!("This network produces output {name}");
            net.output_blob_ids.push(wiring.blob_name_to_idx[name]);
        }
        for (i, name) in net.blob_names.iter().enumerate() {
            net.blob_names_index.insert(name.clone(), i);
        }
        for (i, name) in net.layer_names.iter().enumerate() {
            net.layer_names_index.insert(name.clone(), i);
        }
        net.debug_info = param.debug_info();
        log::info!("Network initialization done.");
        Ok(net)
    }

    fn net_error(&self, message: String) -> Error {
        Error::Net {
            net: self.name.clone(),
            message,
        }
    }

    /// Creates, connects and sets up one layer (the body of Caffe's Init loop).
    fn add_layer(
        &mut self,
        lp: &LayerParameter,
        factory: LayerFactory,
        w: &mut Wiring,
    ) -> Result<()> {
        let layer_id = self.layers.len();
        if !lp.propagate_down.is_empty() && lp.propagate_down.len() != lp.bottom.len() {
            return Err(Error::layer(
                lp,
                "propagate_down param must be specified either 0 or bottom_size times ",
            ));
        }
        let mut layer = factory(lp)?;
        log::info!("Creating Layer {}", lp.name());
        self.layer_names.push(lp.name().to_string());
        self.layer_params.push(lp.clone());
        let (mut bottoms, mut bottom_ids, mut bottom_need) = (Vec::new(), Vec::new(), Vec::new());
        let mut need_backward = false;
        for (bottom_id, name) in lp.bottom.iter().enumerate() {
            if !w.available.remove(name) {
                return Err(self.net_error(format!(
                    "Unknown bottom blob '{name}' (layer '{}', bottom index {bottom_id})",
                    lp.name()
                )));
            }
            let blob_id = w.blob_name_to_idx[name];
            log::info!("{} <- {name}", lp.name());
            bottoms.push(self.blobs[blob_id].clone());
            bottom_ids.push(blob_id);
            // An explicit propagate_down overrides what the blob needs.
            bottom_need.push(
                lp.propagate_down
                    .get(bottom_id)
                    .copied()
                    .unwrap_or(self.blob_need_backward[blob_id]),
            );
            need_backward |= self.blob_need_backward[blob_id];
        }
        let (mut tops, mut top_ids) = (Vec::new(), Vec::new());
        for (top_id, name) in lp.top.iter().enumerate() {
            let blob_id = if lp.bottom.get(top_id) == Some(name) {
                log::info!("{} -> {name} (in-place)", lp.name());
                w.blob_name_to_idx[name]
            } else if w.blob_name_to_idx.contains_key(name) {
                return Err(
                    self.net_error(format!("Top blob '{name}' produced by multiple sources."))
                );
            } else {
                log::info!("{} -> {name}", lp.name());
                let id = self.new_blob(name);
                w.blob_name_to_idx.insert(name.clone(), id);
                id
            };
            w.available.insert(name.clone());
            tops.push(self.blobs[blob_id].clone());
            top_ids.push(blob_id);
            if lp.type_() == "Input" {
                self.input_blob_ids.push(blob_id);
            }
        }
        if layer.auto_top_blobs() {
            let needed = layer
                .min_top_blobs()
                .unwrap_or(0)
                .max(layer.exact_num_top_blobs().unwrap_or(0));
            // Anonymous tops: not registered by name, so no layer can read them.
            for _ in tops.len()..needed {
                log::info!("{} -> (automatic)", lp.name());
                let id = self.new_blob("(automatic)");
                tops.push(self.blobs[id].clone());
                top_ids.push(id);
            }
        }
        check_blob_counts(lp, layer.as_ref(), bottoms.len(), tops.len())?;
        layer.setup(&bottoms, &tops)?;
        layer.reshape(&bottoms, &tops)?;
        log::info!("Setting up {}", lp.name());
        let loss_weights = loss_weights(lp, layer.as_ref(), tops.len())?;
        for (k, top) in tops.iter().enumerate() {
            let mut t = top.borrow_mut();
            self.blob_loss_weights[top_ids[k]] = loss_weights[k];
            log::info!("Top shape: {}", t.shape_string());
            if loss_weights[k] != 0.0 {
                log::info!("    with loss weight {}", loss_weights[k]);
                t.diff_mut().fill(loss_weights[k]);
            }
            self.memory_used += t.count();
        }
        log::info!("Memory required for data: {}", self.memory_used_bytes());
        let num_param_blobs = layer.blobs().len();
        if lp.param.len() > num_param_blobs {
            return Err(Error::layer(
                lp,
                format!("Too many params specified for layer {}", lp.name()),
            ));
        }
        let default_spec = ParamSpec::new();
        let spec = |i: usize| lp.param.get(i).unwrap_or(&default_spec);
        let param_down: Vec<bool> = (0..num_param_blobs)
            .map(|i| spec(i).lr_mult() != 0.0)
            .collect();
        need_backward |= param_down.iter().any(|&d| d);
        self.layers.push(layer);
        self.param_id_vecs.push(Vec::new());
        for param_id in 0..num_param_blobs {
            self.append_param(layer_id, param_id)?;
        }
        if need_backward {
            top_ids
                .iter()
                .for_each(|&id| self.blob_need_backward[id] = true);
        }
        self.layer_need_backward.push(need_backward);
        self.param_propagate_down.push(param_down);
        self.top_loss_weights.push(loss_weights);
        self.bottom_vecs.push(bottoms);
        self.bottom_id_vecs.push(bottom_ids);
        self.bottom_need_backward.push(bottom_need);
        self.top_vecs.push(tops);
        self.top_id_vecs.push(top_ids);
        Ok(())
    }

    fn new_blob(&mut self, name: &str) -> usize {
        self.blobs.push(Blob::shared(&[]));
        self.blob_names.push(name.to_string());
        self.blob_need_backward.push(false);
        self.blob_loss_weights.push(0.0);
        self.blobs.len() - 1
    }

    /// Registers parameter `param_id` of a layer: as a new learnable blob, or,
    /// when its ParamSpec name was seen before, as a share of the owner's blob.
    fn append_param(&mut self, layer_id: usize, param_id: usize) -> Result<()> {
        let lp = &self.layer_params[layer_id];
        let spec = lp
            .param
            .get(param_id)
            .cloned()
            .or_else(|| self.layers[layer_id].default_param_spec(param_id))
            .unwrap_or_else(ParamSpec::new);
        let name = spec.name().to_string();
        self.param_display_names.push(if name.is_empty() {
            param_id.to_string()
        } else {
            name.clone()
        });
        let net_param_id = self.params.len();
        self.params
            .push(self.layers[layer_id].blobs()[param_id].clone());
        self.param_id_vecs[layer_id].push(net_param_id);
        self.param_layer_indices.push((layer_id, param_id));
        let owner = if name.is_empty() {
            None
        } else {
            self.param_names_index.get(&name).copied()
        };
        let Some(owner_id) = owner else {
            self.param_owners.push(None);
            if !name.is_empty() {
                self.param_names_index.insert(name, net_param_id);
            }
            self.learnable_param_ids.push(self.learnable_params.len());
            self.learnable_params
                .push(self.params[net_param_id].clone());
            self.has_params_lr.push(spec.lr_mult.is_some());
            self.has_params_decay.push(spec.decay_mult.is_some());
            self.params_lr.push(spec.lr_mult());
            self.params_weight_decay.push(spec.decay_mult());
            return Ok(());
        };
        self.param_owners.push(Some(owner_id));
        let (owner_layer, owner_param) = self.param_layer_indices[owner_id];
        let owner_name = self.layer_names[owner_layer].clone();
        let this_name = self.layer_names[layer_id].clone();
        log::info!(
            "Sharing parameters '{name}' owned by layer '{owner_name}', param index {owner_param}"
        );
        let owner_blob = self.params[owner_id].clone();
        {
            let (this, owner) = (self.params[net_param_id].borrow(), owner_blob.borrow());
            if spec.share_mode() == DimCheckMode::PERMISSIVE {
                if this.count() != owner.count() {
                    return Err(self.net_error(format!(
                        "Cannot share param '{name}' owned by layer '{owner_name}' with layer '{this_name}'; count mismatch.  \
                         Owner layer param shape is {}; sharing layer shape is {}",
                        owner.shape_string(),
                        this.shape_string()
                    )));
                }
            } else if this.shape() != owner.shape() {
                return Err(self.net_error(format!(
                    "Cannot share param '{name}' owned by layer '{owner_name}' with layer '{this_name}'; shape mismatch.  \
                     Owner layer param shape is {}; sharing layer expects shape {}",
                    owner.shape_string(),
                    this.shape_string()
                )));
            }
        }
        let learnable_id = self.learnable_param_ids[owner_id];
        self.learnable_param_ids.push(learnable_id);
        if spec.lr_mult.is_some() {
            if self.has_params_lr[learnable_id] && self.params_lr[learnable_id] != spec.lr_mult() {
                return Err(
                    self.net_error(format!("Shared param '{name}' has mismatched lr_mult."))
                );
            }
            self.has_params_lr[learnable_id] = true;
            self.params_lr[learnable_id] = spec.lr_mult();
        }
        if spec.decay_mult.is_some() {
            if self.has_params_decay[learnable_id]
                && self.params_weight_decay[learnable_id] != spec.decay_mult()
            {
                return Err(
                    self.net_error(format!("Shared param '{name}' has mismatched decay_mult."))
                );
            }
            self.has_params_decay[learnable_id] = true;
            self.params_weight_decay[learnable_id] = spec.decay_mult();
        }
        // Sharing: the layer now holds the owner's blob, data and diff alike
        // (Caffe's ShareData + ShareDiff). A permissive share of another shape
        // sees the owner's shape; the count is the same.
        let Some(list) = self.layers[layer_id].blobs_mut() else {
            return Err(self.net_error(format!(
                "layer '{this_name}' cannot share parameter '{name}': its type does not expose its parameter list"
            )));
        };
        list[param_id] = owner_blob.clone();
        self.params[net_param_id] = owner_blob;
        Ok(())
    }

    /// Walks the net backwards: layers whose tops reach no loss, and layers
    /// whose every top skips backpropagation, need no backward.
    fn prune_backward(&mut self) {
        let mut under_loss: BTreeSet<usize> = BTreeSet::new();
        let mut skip_backp: BTreeSet<usize> = BTreeSet::new();
        for layer_id in (0..self.layers.len()).rev() {
            let tops = &self.top_id_vecs[layer_id];
            let contributes = tops.iter().enumerate().any(|(k, id)| {
                self.top_loss_weights[layer_id][k] != 0.0 || under_loss.contains(id)
            });
            let skip_propagate = tops.iter().all(|id| skip_backp.contains(id));
            if self.layer_need_backward[layer_id] && skip_propagate {
                self.layer_need_backward[layer_id] = false;
                self.bottom_need_backward[layer_id]
                    .iter_mut()
                    .for_each(|b| *b = false);
            }
            if !contributes {
                self.layer_need_backward[layer_id] = false;
            }
            if self.layer_need_backward[layer_id] {
                log::info!("{} needs backward computation.", self.layer_names[layer_id]);
            } else {
                log::info!(
                    "{} does not need backward computation.",
                    self.layer_names[layer_id]
                );
            }
            for (b, &id) in self.bottom_id_vecs[layer_id].iter().enumerate() {
                if contributes {
                    under_loss.insert(id);
                } else {
                    self.bottom_need_backward[layer_id][b] = false;
                }
                if !self.bottom_need_backward[layer_id][b] {
                    skip_backp.insert(id);
                }
            }
        }
    }

    /// force_backward: every layer runs backward, to every bottom that allows it.
    fn force_backward(&mut self) {
        for layer_id in 0..self.layers.len() {
            self.layer_need_backward[layer_id] = true;
            for b in 0..self.bottom_need_backward[layer_id].len() {
                let need = self.bottom_need_backward[layer_id][b]
                    || self.layers[layer_id].allow_force_backward(b);
                self.bottom_need_backward[layer_id][b] = need;
                let id = self.bottom_id_vecs[layer_id][b];
                self.blob_need_backward[id] |= need;
            }
            self.param_propagate_down[layer_id]
                .iter_mut()
                .for_each(|p| *p = true);
        }
    }
}

/// Caffe's Layer::CheckBlobCounts, with its messages.
fn check_blob_counts(lp: &LayerParameter, layer: &dyn Layer, nb: usize, nt: usize) -> Result<()> {
    let ty = layer.type_name();
    let fail = |m: String| Err(Error::layer(lp, m));
    if let Some(n) = layer.exact_num_bottom_blobs().filter(|&n| n != nb) {
        return fail(format!("{ty} Layer takes {n} bottom blob(s) as input."));
    }
    if let Some(n) = layer.min_bottom_blobs().filter(|&n| nb < n) {
        return fail(format!(
            "{ty} Layer takes at least {n} bottom blob(s) as input."
        ));
    }
    if let Some(n) = layer.max_bottom_blobs().filter(|&n| nb > n) {
        return fail(format!(
            "{ty} Layer takes at most {n} bottom blob(s) as input."
        ));
    }
    if let Some(n) = layer.exact_num_top_blobs().filter(|&n| n != nt) {
        return fail(format!("{ty} Layer produces {n} top blob(s) as output."));
    }
    if let Some(n) = layer.min_top_blobs().filter(|&n| nt < n) {
        return fail(format!(
            "{ty} Layer produces at least {n} top blob(s) as output."
        ));
    }
    if let Some(n) = layer.max_top_blobs().filter(|&n| nt > n) {
        return fail(format!(
            "{ty} Layer produces at most {n} top blob(s) as output."
        ));
    }
    if layer.equal_num_bottom_top_blobs() && nb != nt {
        return fail(format!(
            "{ty} Layer produces one top blob as output for each bottom blob input."
        ));
    }
    Ok(())
}

/// The loss weight of each top: the prototxt's (once per top), else the layer's default.
fn loss_weights(lp: &LayerParameter, layer: &dyn Layer, num_top: usize) -> Result<Vec<f32>> {
    if lp.loss_weight.is_empty() {
        return Ok((0..num_top).map(|k| layer.default_loss_weight(k)).collect());
    }
    if lp.loss_weight.len() != num_top {
        return Err(Error::layer(
            lp,
            "loss_weight must be unspecified or specified once per top blob.",
        ));
    }
    Ok(lp.loss_weight.clone())
}
