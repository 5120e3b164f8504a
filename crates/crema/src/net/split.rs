//! Automatic Split layers (Caffe's insert_splits): a top read by several
//! bottoms (or read once and also weighted as a loss) goes through a Split
//! layer, so each reader gets its own blob and the gradients add up.
use std::collections::HashMap;

use crema_proto::caffe::{LayerParameter, NetParameter};

use crate::error::{Error, Result};

/// `<blob>_<layer>_<top index>_split`, Caffe's name for the inserted layer.
pub fn split_layer_name(layer_name: &str, blob_name: &str, blob_idx: usize) -> String {
    format!("{blob_name}_{layer_name}_{blob_idx}_split")
}

/// `<blob>_<layer>_<top index>_split_<k>`, the k-th top of that layer.
pub fn split_blob_name(
    layer_name: &str,
    blob_name: &str,
    blob_idx: usize,
    split_idx: usize,
) -> String {
    format!("{blob_name}_{layer_name}_{blob_idx}_split_{split_idx}")
}

fn split_layer(
    layer_name: &str,
    blob_name: &str,
    blob_idx: usize,
    count: usize,
    loss_weight: f32,
) -> LayerParameter {
    let mut p = LayerParameter::new();
    p.bottom.push(blob_name.to_string());
    p.set_name(split_layer_name(layer_name, blob_name, blob_idx));
    p.set_type("Split".into());
    for k in 0..count {
        p.top
            .push(split_blob_name(layer_name, blob_name, blob_idx, k));
        // The loss stays on the first top, which no layer reads.
        if loss_weight != 0.0 {
            p.loss_weight.push(if k == 0 { loss_weight } else { 0.0 });
        }
    }
    p
}

/// Returns `param` with Split layers inserted after every multiply-read top.
pub fn insert_splits(param: &NetParameter) -> Result<NetParameter> {
    type TopIdx = (usize, usize); // (layer, top index)
    let mut last_top: HashMap<&str, TopIdx> = HashMap::new();
    let mut bottom_source: HashMap<TopIdx, TopIdx> = HashMap::new(); // (layer, bottom index) -> producer
    let mut reads: HashMap<TopIdx, usize> = HashMap::new();
    let mut loss_weight: HashMap<TopIdx, f32> = HashMap::new();
    for (i, layer) in param.layer.iter().enumerate() {
        for (j, name) in layer.bottom.iter().enumerate() {
            let Some(&src) = last_top.get(name.as_str()) else {
                return Err(Error::Net {
                    net: param.name().to_string(),
                    message: format!(
                        "Unknown bottom blob '{name}' (layer '{}', bottom index {j})",
                        layer.name()
                    ),
                });
            };
            bottom_source.insert((i, j), src);
            *reads.entry(src).or_default() += 1;
        }
        for (j, name) in layer.top.iter().enumerate() {
            last_top.insert(name.as_str(), (i, j));
        }
        // A weighted loss counts as one more reader of its top.
        for (j, &w) in layer.loss_weight.iter().enumerate().take(layer.top.len()) {
            let src = last_top[layer.top[j].as_str()];
            loss_weight.insert(src, w);
            if w != 0.0 {
                *reads.entry(src).or_default() += 1;
            }
        }
    }
    let mut out = param.clone();
    out.layer.clear();
    let mut next_split: HashMap<TopIdx, usize> = HashMap::new();
    for (i, src_layer) in param.layer.iter().enumerate() {
        let mut layer = src_layer.clone();
        for j in 0..layer.bottom.len() {
            let src = bottom_source[&(i, j)];
            if reads[&src] > 1 {
                let k = next_split.entry(src).or_default();
                layer.bottom[j] =
                    split_blob_name(param.layer[src.0].name(), &layer.bottom[j], src.1, *k);
                *k += 1;
            }
        }
        let mut splits = Vec::new();
        for j in 0..layer.top.len() {
            let count = reads.get(&(i, j)).copied().unwrap_or(0);
            if count > 1 {
                let w = loss_weight.get(&(i, j)).copied().unwrap_or(0.0);
                splits.push(split_layer(layer.name(), &layer.top[j], j, count, w));
                if w != 0.0 {
                    // The split's top 0 now carries the loss; readers start at 1.
                    // Caffe clears all the layer's weights, which drops the other
                    // tops' losses and lets a loss layer's default of 1 count this
                    // one twice; zeroing this top's weight alone counts each once.
                    layer.loss_weight[j] = 0.0;
                    *next_split.entry((i, j)).or_default() += 1;
                }
            }
        }
        out.layer.push(layer);
        out.layer.extend(splits);
    }
    Ok(out)
}
