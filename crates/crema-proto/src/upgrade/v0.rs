//! V0 → V1: the 2013 nets, whose layers are `layers { layer { ... } bottom top }`
//! with a flat V0LayerParameter and lower-case type strings.
//!
//! Two steps, as Caffe does them: standalone "padding" layers are folded into
//! the conv/pool layer they feed, then every V0 field moves to its V1 home
//! (`convolution_param`, `pooling_param`, `transform_param`, ...).
use std::collections::HashMap;

use crate::caffe::v1layer_parameter::LayerType;
use crate::caffe::{
    pooling_parameter, v0layer_parameter, NetParameter, V0LayerParameter, V1LayerParameter,
};
use crate::error::{ProtoError, Result};

/// True when some `layers` entry still holds a V0 `layer { }` block.
pub fn needs_v0_upgrade(net: &NetParameter) -> bool {
    net.layers.iter().any(|l| l.layer.is_some())
}

/// Rewrites a V0 net as a V1 net (still in `layers`). Like Caffe, only the
/// net's name, inputs, input_dim and force_backward survive besides the layers.
pub fn upgrade_v0_net(net: &NetParameter, source: &str) -> Result<NetParameter> {
    if let Some((i, l)) = net
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.layer.is_none())
    {
        // Caffe would keep only such a layer's bottoms and tops; refuse rather
        // than silently drop its V1 settings.
        return Err(ProtoError::invalid(
            source,
            format!(
                "layer {} mixes formats: it has no V0 `layer {{ }}` block while other layers do",
                describe_v1(l, i)
            ),
        ));
    }
    let folded = fold_padding_layers(net, source)?;
    let mut out = NetParameter::new();
    out.name = net.name.clone();
    for (i, l) in folded.iter().enumerate() {
        out.layers.push(upgrade_v0_layer(l, i, source)?);
    }
    out.input = net.input.clone();
    out.input_dim = net.input_dim.clone();
    out.force_backward = net.force_backward;
    Ok(out)
}

/// "name" (#index) for messages; V0 names live inside the `layer` block.
fn describe_v1(l: &V1LayerParameter, index: usize) -> String {
    let name = l
        .layer
        .as_ref()
        .and_then(|v0| v0.name.clone())
        .or_else(|| l.name.clone());
    match name {
        Some(n) => format!("'{n}' (#{index})"),
        None => format!("#{index}"),
    }
}

/// Drops every V0 "padding" layer and moves its `pad` onto the conv or pool
/// layer that reads its output, rewiring that layer to the padding's input.
fn fold_padding_layers(net: &NetParameter, source: &str) -> Result<Vec<V1LayerParameter>> {
    let is_padding =
        |l: &V1LayerParameter| l.layer.as_ref().is_some_and(|v0| v0.type_() == "padding");
    // Which layer last produced each blob; net inputs come from no layer.
    let mut producer: HashMap<&str, Option<usize>> =
        net.input.iter().map(|b| (b.as_str(), None)).collect();
    let mut out: Vec<V1LayerParameter> = Vec::with_capacity(net.layers.len());
    for (i, conn) in net.layers.iter().enumerate() {
        let v0_type = conn.layer.as_ref().map(|v0| v0.type_()).unwrap_or("");
        if !is_padding(conn) {
            out.push(conn.clone());
        }
        for (j, bottom) in conn.bottom.iter().enumerate() {
            let Some(&from) = producer.get(bottom.as_str()) else {
                return Err(ProtoError::invalid(
                    source,
                    format!("layer {}: unknown bottom blob '{bottom}' (no earlier layer or input produces it)", describe_v1(conn, i)),
                ));
            };
            let Some(from) = from else { continue };
            let pad_layer = &net.layers[from];
            if !is_padding(pad_layer) {
                continue;
            }
            let here = describe_v1(conn, i);
            if v0_type != "conv" && v0_type != "pool" {
                return Err(ProtoError::invalid(
                    source,
                    format!("layer {here}: a padding layer feeds a '{v0_type}' layer; only conv and pool layers can absorb padding"),
                ));
            }
            if conn.bottom.len() != 1 {
                return Err(ProtoError::invalid(
                    source,
                    format!("layer {here}: a padded conv/pool layer takes a single bottom blob"),
                ));
            }
            if pad_layer.bottom.len() != 1 || pad_layer.top.len() != 1 {
                return Err(ProtoError::invalid(
                    source,
                    format!(
                        "padding layer {}: must have exactly one bottom and one top",
                        describe_v1(pad_layer, from)
                    ),
                ));
            }
            let target = out
                .last_mut()
                .expect("the current non-padding layer was just pushed");
            let pad = pad_layer.layer.as_ref().map(|v0| v0.pad()).unwrap_or(0);
            target.layer.mut_or_insert_default().pad = Some(pad);
            target.bottom[j] = pad_layer.bottom[0].clone();
        }
        for top in &conn.top {
            producer.insert(top.as_str(), Some(i));
        }
    }
    Ok(out)
}

/// The V1 enum for a V0 type string.
fn v0_layer_type(t: &str) -> Option<LayerType> {
    Some(match t {
        "accuracy" => LayerType::ACCURACY,
        "bnll" => LayerType::BNLL,
        "concat" => LayerType::CONCAT,
        "conv" => LayerType::CONVOLUTION,
        "data" => LayerType::DATA,
        "dropout" => LayerType::DROPOUT,
        "euclidean_loss" => LayerType::EUCLIDEAN_LOSS,
        "flatten" => LayerType::FLATTEN,
        "hdf5_data" => LayerType::HDF5_DATA,
        "hdf5_output" => LayerType::HDF5_OUTPUT,
        "im2col" => LayerType::IM2COL,
        "images" => LayerType::IMAGE_DATA,
        "infogain_loss" => LayerType::INFOGAIN_LOSS,
        "innerproduct" => LayerType::INNER_PRODUCT,
        "lrn" => LayerType::LRN,
        "multinomial_logistic_loss" => LayerType::MULTINOMIAL_LOGISTIC_LOSS,
        "pool" => LayerType::POOLING,
        "relu" => LayerType::RELU,
        "sigmoid" => LayerType::SIGMOID,
        "softmax" => LayerType::SOFTMAX,
        "softmax_loss" => LayerType::SOFTMAX_LOSS,
        "split" => LayerType::SPLIT,
        "tanh" => LayerType::TANH,
        "window_data" => LayerType::WINDOW_DATA,
        _ => return None,
    })
}

/// Moves one V0 layer's fields to their V1 places. A field set on a layer
/// type that has no use for it is an error (Caffe logs it and drops it).
fn upgrade_v0_layer(
    conn: &V1LayerParameter,
    index: usize,
    source: &str,
) -> Result<V1LayerParameter> {
    let mut out = V1LayerParameter::new();
    out.bottom = conn.bottom.clone();
    out.top = conn.top.clone();
    let Some(v0) = conn.layer.as_ref() else {
        return Ok(out);
    };
    let here = describe_v1(conn, index);
    out.name = v0.name.clone();
    let t = v0.type_();
    if v0.type_.is_some() {
        let mapped = v0_layer_type(t).ok_or_else(|| {
            ProtoError::invalid(source, format!("layer {here}: unknown V0 layer type '{t}'"))
        })?;
        out.set_type(mapped);
    }
    out.blobs = v0.blobs.clone();
    out.blobs_lr = v0.blobs_lr.clone();
    out.weight_decay = v0.weight_decay.clone();
    let ctx = Ctx {
        source,
        here: &here,
        t,
    };
    let misplaced = |field: &str| ctx.misplaced(field);
    map_learned_fields(v0, &mut out, &ctx)?;
    map_spatial_fields(v0, &mut out, &ctx)?;
    map_data_fields(v0, &mut out, &ctx)?;
    if let Some(x) = v0.dropout_ratio {
        match t {
            "dropout" => out.dropout_param.mut_or_insert_default().dropout_ratio = Some(x),
            _ => return misplaced("dropout_ratio"),
        }
    }
    let lrn_fields = [
        ("local_size", v0.local_size.is_some()),
        ("alpha", v0.alpha.is_some()),
        ("beta", v0.beta.is_some()),
        ("k", v0.k.is_some()),
    ];
    if let Some((field, _)) = lrn_fields.iter().find(|(_, set)| *set) {
        if t != "lrn" {
            return misplaced(field);
        }
        let lrn = out.lrn_param.mut_or_insert_default();
        lrn.local_size = v0.local_size.or(lrn.local_size);
        lrn.alpha = v0.alpha.or(lrn.alpha);
        lrn.beta = v0.beta.or(lrn.beta);
        lrn.k = v0.k.or(lrn.k);
    }
    if let Some(x) = v0.concat_dim {
        match t {
            "concat" => out.concat_param.mut_or_insert_default().concat_dim = Some(x),
            _ => return misplaced("concat_dim"),
        }
    }
    if let Some(p) = v0.hdf5_output_param.as_ref() {
        match t {
            "hdf5_output" => out.hdf5_output_param = Some(p.clone()).into(),
            _ => return misplaced("hdf5_output_param"),
        }
    }
    if v0.new_num.is_some() || v0.new_channels.is_some() {
        log::warn!(
            "layer {here}: V0 fields new_num/new_channels have no V1 equivalent and are dropped"
        );
    }
    Ok(out)
}

/// Where a V0 layer is, for errors.
struct Ctx<'a> {
    source: &'a str,
    here: &'a str,
    t: &'a str,
}

impl Ctx<'_> {
    fn bad<T>(&self, message: String) -> Result<T> {
        Err(ProtoError::invalid(
            self.source,
            format!("layer {}: {message}", self.here),
        ))
    }
    fn misplaced<T>(&self, field: &str) -> Result<T> {
        self.bad(format!(
            "V0 field '{field}' has no meaning for layer type '{}'",
            self.t
        ))
    }
}

/// num_output, biasterm, fillers, group: conv and inner product settings.
fn map_learned_fields(v0: &V0LayerParameter, out: &mut V1LayerParameter, ctx: &Ctx) -> Result<()> {
    let (t, misplaced) = (ctx.t, |field: &str| ctx.misplaced(field));
    if let Some(n) = v0.num_output {
        match t {
            "conv" => out.convolution_param.mut_or_insert_default().num_output = Some(n),
            "innerproduct" => out.inner_product_param.mut_or_insert_default().num_output = Some(n),
            _ => return misplaced("num_output"),
        }
    }
    if let Some(b) = v0.biasterm {
        match t {
            "conv" => out.convolution_param.mut_or_insert_default().bias_term = Some(b),
            "innerproduct" => out.inner_product_param.mut_or_insert_default().bias_term = Some(b),
            _ => return misplaced("biasterm"),
        }
    }
    for (field, filler) in [
        ("weight_filler", &v0.weight_filler),
        ("bias_filler", &v0.bias_filler),
    ] {
        let Some(f) = filler.as_ref() else { continue };
        let slot = match (t, field) {
            ("conv", "weight_filler") => {
                &mut out.convolution_param.mut_or_insert_default().weight_filler
            }
            ("conv", _) => &mut out.convolution_param.mut_or_insert_default().bias_filler,
            ("innerproduct", "weight_filler") => {
                &mut out
                    .inner_product_param
                    .mut_or_insert_default()
                    .weight_filler
            }
            ("innerproduct", _) => &mut out.inner_product_param.mut_or_insert_default().bias_filler,
            _ => return misplaced(field),
        };
        *slot = Some(f.clone()).into();
    }
    if let Some(g) = v0.group {
        match t {
            "conv" => out.convolution_param.mut_or_insert_default().group = Some(g),
            _ => return misplaced("group"),
        }
    }
    Ok(())
}

/// pad, kernelsize, stride, pool: conv and pooling geometry.
fn map_spatial_fields(v0: &V0LayerParameter, out: &mut V1LayerParameter, ctx: &Ctx) -> Result<()> {
    let (t, misplaced) = (ctx.t, |field: &str| ctx.misplaced(field));
    for (field, value) in [
        ("pad", v0.pad),
        ("kernelsize", v0.kernelsize),
        ("stride", v0.stride),
    ] {
        let Some(v) = value else { continue };
        match t {
            "conv" => {
                let c = out.convolution_param.mut_or_insert_default();
                match field {
                    "pad" => c.pad.push(v),
                    "kernelsize" => c.kernel_size.push(v),
                    _ => c.stride.push(v),
                }
            }
            "pool" => {
                let p = out.pooling_param.mut_or_insert_default();
                match field {
                    "pad" => p.pad = Some(v),
                    "kernelsize" => p.kernel_size = Some(v),
                    _ => p.stride = Some(v),
                }
            }
            _ => return misplaced(field),
        }
    }
    if let Some(pool) = v0.pool {
        if t != "pool" {
            return misplaced("pool");
        }
        let method = match pool.enum_value() {
            Ok(v0layer_parameter::PoolMethod::MAX) => pooling_parameter::PoolMethod::MAX,
            Ok(v0layer_parameter::PoolMethod::AVE) => pooling_parameter::PoolMethod::AVE,
            Ok(v0layer_parameter::PoolMethod::STOCHASTIC) => {
                pooling_parameter::PoolMethod::STOCHASTIC
            }
            Err(n) => return ctx.bad(format!("unknown V0 pool method {n}")),
        };
        out.pooling_param.mut_or_insert_default().set_pool(method);
    }
    Ok(())
}

/// Data-layer fields: source, batch size, skipping, image and window options;
/// the transformation fields go to transform_param whatever the type.
fn map_data_fields(v0: &V0LayerParameter, out: &mut V1LayerParameter, ctx: &Ctx) -> Result<()> {
    let (t, misplaced) = (ctx.t, |field: &str| ctx.misplaced(field));
    if let Some(s) = v0.source.as_ref() {
        match t {
            "data" => out.data_param.mut_or_insert_default().source = Some(s.clone()),
            "hdf5_data" => out.hdf5_data_param.mut_or_insert_default().source = Some(s.clone()),
            "images" => out.image_data_param.mut_or_insert_default().source = Some(s.clone()),
            "window_data" => out.window_data_param.mut_or_insert_default().source = Some(s.clone()),
            "infogain_loss" => {
                out.infogain_loss_param.mut_or_insert_default().source = Some(s.clone())
            }
            _ => return misplaced("source"),
        }
    }
    if let Some(n) = v0.batchsize {
        match t {
            "data" => out.data_param.mut_or_insert_default().batch_size = Some(n),
            "hdf5_data" => out.hdf5_data_param.mut_or_insert_default().batch_size = Some(n),
            "images" => out.image_data_param.mut_or_insert_default().batch_size = Some(n),
            "window_data" => out.window_data_param.mut_or_insert_default().batch_size = Some(n),
            _ => return misplaced("batchsize"),
        }
    }
    if v0.scale.is_some() || v0.meanfile.is_some() || v0.cropsize.is_some() || v0.mirror.is_some() {
        let tp = out.transform_param.mut_or_insert_default();
        if v0.scale.is_some() {
            tp.scale = v0.scale;
        }
        if v0.meanfile.is_some() {
            tp.mean_file = v0.meanfile.clone();
        }
        if v0.cropsize.is_some() {
            tp.crop_size = v0.cropsize;
        }
        if v0.mirror.is_some() {
            tp.mirror = v0.mirror;
        }
    }
    if let Some(n) = v0.rand_skip {
        match t {
            "data" => out.data_param.mut_or_insert_default().rand_skip = Some(n),
            "images" => out.image_data_param.mut_or_insert_default().rand_skip = Some(n),
            _ => return misplaced("rand_skip"),
        }
    }
    let image_fields = [
        ("shuffle_images", v0.shuffle_images.is_some()),
        ("new_height", v0.new_height.is_some()),
        ("new_width", v0.new_width.is_some()),
    ];
    if let Some((field, _)) = image_fields.iter().find(|(_, set)| *set) {
        if t != "images" {
            return misplaced(field);
        }
        let size = |field: &str, v: Option<i32>| -> Result<Option<u32>> {
            v.map(|v| {
                u32::try_from(v)
                    .or_else(|_| ctx.bad(format!("V0 field '{field}' is negative ({v})")))
            })
            .transpose()
        };
        let (h, w) = (
            size("new_height", v0.new_height)?,
            size("new_width", v0.new_width)?,
        );
        let p = out.image_data_param.mut_or_insert_default();
        p.shuffle = v0.shuffle_images.or(p.shuffle);
        p.new_height = h.or(p.new_height);
        p.new_width = w.or(p.new_width);
    }
    let window_fields = [
        ("det_fg_threshold", v0.det_fg_threshold.is_some()),
        ("det_bg_threshold", v0.det_bg_threshold.is_some()),
        ("det_fg_fraction", v0.det_fg_fraction.is_some()),
        ("det_context_pad", v0.det_context_pad.is_some()),
        ("det_crop_mode", v0.det_crop_mode.is_some()),
    ];
    if let Some((field, _)) = window_fields.iter().find(|(_, set)| *set) {
        if t != "window_data" {
            return misplaced(field);
        }
        let w = out.window_data_param.mut_or_insert_default();
        w.fg_threshold = v0.det_fg_threshold.or(w.fg_threshold);
        w.bg_threshold = v0.det_bg_threshold.or(w.bg_threshold);
        w.fg_fraction = v0.det_fg_fraction.or(w.fg_fraction);
        w.context_pad = v0.det_context_pad.or(w.context_pad);
        w.crop_mode = v0.det_crop_mode.clone().or(w.crop_mode.take());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v0_net(text: &str) -> NetParameter {
        crate::text::parse(text, "v0.prototxt").unwrap()
    }

    #[test]
    fn image_window_concat_and_hdf5_fields_find_their_v1_params() {
        let net = v0_net(
            r#"layers { layer { name: "img" type: "images" source: "list" batchsize: 4 shuffle_images: true
                                new_height: 256 new_width: 128 rand_skip: 3 } top: "img" top: "lbl" }
               layers { layer { name: "win" type: "window_data" source: "w" det_fg_threshold: 0.6
                                det_bg_threshold: 0.4 det_fg_fraction: 0.3 det_context_pad: 16
                                det_crop_mode: "square" } top: "win" top: "wl" }
               layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "img" bottom: "win" top: "cat" }
               layers { layer { name: "out" type: "hdf5_output" hdf5_output_param { file_name: "o.h5" } }
                        bottom: "cat" bottom: "lbl" }
               layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "cat" top: "cat" }"#,
        );
        let v1 = upgrade_v0_net(&net, "v0.prototxt").unwrap();
        let [img, win, cat, out, drop] = &v1.layers[..] else {
            panic!("five layers")
        };
        assert_eq!(img.type_(), LayerType::IMAGE_DATA);
        let p = &img.image_data_param;
        assert_eq!(
            (
                p.source(),
                p.batch_size(),
                p.shuffle(),
                p.new_height(),
                p.new_width()
            ),
            ("list", 4, true, 256, 128)
        );
        assert_eq!(p.rand_skip(), 3);
        assert_eq!(win.type_(), LayerType::WINDOW_DATA);
        let w = &win.window_data_param;
        assert_eq!(
            (w.fg_threshold(), w.bg_threshold(), w.fg_fraction()),
            (0.6, 0.4, 0.3)
        );
        assert_eq!(
            (w.context_pad(), w.crop_mode(), w.source()),
            (16, "square", "w")
        );
        assert_eq!(
            (cat.type_(), cat.concat_param.concat_dim()),
            (LayerType::CONCAT, 0)
        );
        assert_eq!(
            (out.type_(), out.hdf5_output_param.file_name()),
            (LayerType::HDF5_OUTPUT, "o.h5")
        );
        assert_eq!(
            (drop.type_(), drop.dropout_param.dropout_ratio()),
            (LayerType::DROPOUT, 0.3)
        );
        assert!(v1.layers.iter().all(|l| l.layer.is_none()));
    }

    #[test]
    fn padding_fed_by_a_net_input_pads_the_pooling_layer() {
        let net = v0_net(
            r#"input: "x" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
               layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "px" }
               layers { layer { name: "pool" type: "pool" pool: STOCHASTIC kernelsize: 2 } bottom: "px" top: "y" }"#,
        );
        let v1 = upgrade_v0_net(&net, "v0.prototxt").unwrap();
        assert_eq!(v1.layers.len(), 1);
        let pool = &v1.layers[0];
        assert_eq!(pool.bottom, vec!["x".to_string()]);
        let pp = &pool.pooling_param;
        assert_eq!(
            (pp.pad(), pp.kernel_size(), pp.pool()),
            (1, 2, pooling_parameter::PoolMethod::STOCHASTIC)
        );
        assert_eq!(
            (v1.input.clone(), v1.input_dim.clone()),
            (vec!["x".to_string()], vec![1, 1, 4, 4])
        );
    }

    #[test]
    fn unknown_bottom_and_mixed_v0_v1_layers_are_errors() {
        let net = v0_net(r#"layers { layer { name: "r" type: "relu" } bottom: "ghost" top: "r" }"#);
        let e = upgrade_v0_net(&net, "v0.prototxt").unwrap_err().to_string();
        assert!(e.contains("'r'") && e.contains("ghost"), "{e}");
        let net = v0_net(
            r#"layers { layer { name: "a" type: "relu" } bottom: "x" top: "a" }
               layers { name: "b" type: RELU bottom: "a" top: "b" }"#,
        );
        let e = upgrade_v0_net(&net, "v0.prototxt").unwrap_err().to_string();
        assert!(e.contains("'b' (#1)") && e.contains("mixes formats"), "{e}");
    }
}
