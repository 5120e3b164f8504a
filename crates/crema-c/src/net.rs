//! Nets and their layers: build from a prototxt, run, load and save weights,
//! and list the layers and blobs (Caffe's Net<float> and Layer<float>).
use std::ffi::{c_char, c_float, c_int};

use crema::proto::caffe::Phase;
use crema::Net;

use crate::error::{arg_str, call, check_file, check_index, put, put_str, CError, R};
use crate::registry::{self, Handle, NetSlot, Object};

fn with_net<T>(h: Handle, f: impl FnOnce(&mut Net) -> R<T>) -> R<T> {
    registry::with(|r| f(r.net_mut(h)?))
}

/// Builds a net from a prototxt in phase "train" or "test".
#[no_mangle]
pub extern "C" fn crema_net_new(
    model_file: *const c_char,
    phase: *const c_char,
    out: *mut Handle,
) -> c_int {
    call("crema_net_new", || {
        let model = arg_str(model_file, "model_file")?;
        let phase = match arg_str(phase, "phase")? {
            "train" => Phase::TRAIN,
            "test" => Phase::TEST,
            other => {
                return Err(CError::argument(format!(
                    "unknown phase '{other}' (use 'train' or 'test')"
                )))
            }
        };
        if out.is_null() {
            return Err(CError::argument("out is NULL"));
        }
        check_file(model)?;
        let net = Net::from_file(model, phase, 0, &[])?;
        let h = registry::with(|r| Ok(r.insert_root(Object::Net(NetSlot::Own(Box::new(net))))))?;
        put(out, "out", h)
    })
}

/// Deletes a net made by crema_net_new, with its layer and blob handles. A
/// solver's net is left to its solver (no error).
#[no_mangle]
pub extern "C" fn crema_net_delete(net: Handle) -> c_int {
    call("crema_net_delete", || {
        registry::with(|r| r.delete(net, "net"))
    })
}

/// The net's name from its prototxt.
#[no_mangle]
pub extern "C" fn crema_net_name(net: Handle, out: *mut *const c_char) -> c_int {
    call("crema_net_name", || {
        let name = with_net(net, |n| Ok(n.name().to_string()))?;
        put_str(out, "out", &name)
    })
}

/// ForwardPrefilled: runs every layer on what the input blobs hold; `loss`
/// (may be NULL) receives the weighted loss.
#[no_mangle]
pub extern "C" fn crema_net_forward(net: Handle, loss: *mut c_float) -> c_int {
    call("crema_net_forward", || {
        let l = with_net(net, |n| Ok(n.forward()?))?;
        if !loss.is_null() {
            put(loss, "loss", l)?;
        }
        Ok(())
    })
}

/// Backward from the losses (or from the output diffs the host set).
#[no_mangle]
pub extern "C" fn crema_net_backward(net: Handle) -> c_int {
    call("crema_net_backward", || {
        with_net(net, |n| Ok(n.backward()?))
    })
}

/// Reshapes every layer after an input blob changed shape.
#[no_mangle]
pub extern "C" fn crema_net_reshape(net: Handle) -> c_int {
    call("crema_net_reshape", || with_net(net, |n| Ok(n.reshape()?)))
}

/// CopyTrainedLayersFrom: loads same-named layers' weights from a .caffemodel.
#[no_mangle]
pub extern "C" fn crema_net_copy_from(net: Handle, weights_file: *const c_char) -> c_int {
    call("crema_net_copy_from", || {
        let path = arg_str(weights_file, "weights_file")?;
        check_file(path)?;
        with_net(net, |n| Ok(n.copy_trained_layers_from_file(path)?))
    })
}

/// Writes the net's parameters as a binary .caffemodel.
#[no_mangle]
pub extern "C" fn crema_net_save(net: Handle, weights_file: *const c_char) -> c_int {
    call("crema_net_save", || {
        let path = arg_str(weights_file, "weights_file")?;
        with_net(net, |n| Ok(n.save(path)?))
    })
}

/// How many layers the net has.
#[no_mangle]
pub extern "C" fn crema_net_layer_count(net: Handle, out: *mut usize) -> c_int {
    call("crema_net_layer_count", || {
        let n = with_net(net, |n| Ok(n.layers().len()))?;
        put(out, "out", n)
    })
}

/// The handle of layer `index` (0-based, in the net's order).
#[no_mangle]
pub extern "C" fn crema_net_layer(net: Handle, index: usize, out: *mut Handle) -> c_int {
    call("crema_net_layer", || {
        let h = registry::with(|r| {
            check_index(index, r.net_mut(net)?.layers().len(), "layer")?;
            r.layer_handle(net, index)
        })?;
        put(out, "out", h)
    })
}

/// The name of layer `index`.
#[no_mangle]
pub extern "C" fn crema_net_layer_name(
    net: Handle,
    index: usize,
    out: *mut *const c_char,
) -> c_int {
    call("crema_net_layer_name", || {
        let name = with_net(net, |n| {
            check_index(index, n.layer_names().len(), "layer")?;
            Ok(n.layer_names()[index].clone())
        })?;
        put_str(out, "out", &name)
    })
}

/// How many blobs (activations) the net has.
#[no_mangle]
pub extern "C" fn crema_net_blob_count(net: Handle, out: *mut usize) -> c_int {
    call("crema_net_blob_count", || {
        let n = with_net(net, |n| Ok(n.blobs().len()))?;
        put(out, "out", n)
    })
}

/// The handle of blob `index` (0-based, in the net's blob order).
#[no_mangle]
pub extern "C" fn crema_net_blob(net: Handle, index: usize, out: *mut Handle) -> c_int {
    call("crema_net_blob", || {
        let h = registry::with(|r| {
            let blobs = r.net_mut(net)?.blobs();
            check_index(index, blobs.len(), "blob")?;
            let b = blobs[index].clone();
            r.blob_handle(net, b)
        })?;
        put(out, "out", h)
    })
}

/// The name of blob `index`.
#[no_mangle]
pub extern "C" fn crema_net_blob_name(net: Handle, index: usize, out: *mut *const c_char) -> c_int {
    call("crema_net_blob_name", || {
        let name = with_net(net, |n| {
            check_index(index, n.blob_names().len(), "blob")?;
            Ok(n.blob_names()[index].clone())
        })?;
        put_str(out, "out", &name)
    })
}

/// The handle of the blob called `name`.
#[no_mangle]
pub extern "C" fn crema_net_blob_by_name(
    net: Handle,
    name: *const c_char,
    out: *mut Handle,
) -> c_int {
    call("crema_net_blob_by_name", || {
        let name = arg_str(name, "name")?;
        let h = registry::with(|r| {
            let n = r.net_mut(net)?;
            let b = n.blob_by_name(name).ok_or_else(|| {
                CError::argument(format!(
                    "net {} has no blob named '{name}' (its blobs: {})",
                    n.name(),
                    n.blob_names().join(", ")
                ))
            })?;
            r.blob_handle(net, b)
        })?;
        put(out, "out", h)
    })
}

/// How many input blobs the net has.
#[no_mangle]
pub extern "C" fn crema_net_input_count(net: Handle, out: *mut usize) -> c_int {
    call("crema_net_input_count", || {
        let n = with_net(net, |n| Ok(n.input_blob_indices().len()))?;
        put(out, "out", n)
    })
}

/// The blob index (into the net's blobs) of input `i`.
#[no_mangle]
pub extern "C" fn crema_net_input_index(net: Handle, i: usize, out: *mut usize) -> c_int {
    call("crema_net_input_index", || {
        let v = with_net(net, |n| {
            check_index(i, n.input_blob_indices().len(), "input")?;
            Ok(n.input_blob_indices()[i])
        })?;
        put(out, "out", v)
    })
}

/// How many output blobs (tops no layer consumes) the net has.
#[no_mangle]
pub extern "C" fn crema_net_output_count(net: Handle, out: *mut usize) -> c_int {
    call("crema_net_output_count", || {
        let n = with_net(net, |n| Ok(n.output_blob_indices().len()))?;
        put(out, "out", n)
    })
}

/// The blob index (into the net's blobs) of output `i`.
#[no_mangle]
pub extern "C" fn crema_net_output_index(net: Handle, i: usize, out: *mut usize) -> c_int {
    call("crema_net_output_index", || {
        let v = with_net(net, |n| {
            check_index(i, n.output_blob_indices().len(), "output")?;
            Ok(n.output_blob_indices()[i])
        })?;
        put(out, "out", v)
    })
}

fn with_layer<T>(layer: Handle, f: impl FnOnce(&mut Net, usize) -> R<T>) -> R<T> {
    registry::with(|r| {
        let (net, index) = r.layer(layer)?;
        f(r.net_mut(net)?, index)
    })
}

/// The layer's type string ("Convolution", "InnerProduct", ...).
#[no_mangle]
pub extern "C" fn crema_layer_type(layer: Handle, out: *mut *const c_char) -> c_int {
    call("crema_layer_type", || {
        let t = with_layer(layer, |n, i| Ok(n.layers()[i].type_name().to_string()))?;
        put_str(out, "out", &t)
    })
}

/// The layer's name.
#[no_mangle]
pub extern "C" fn crema_layer_name(layer: Handle, out: *mut *const c_char) -> c_int {
    call("crema_layer_name", || {
        let t = with_layer(layer, |n, i| Ok(n.layer_names()[i].clone()))?;
        put_str(out, "out", &t)
    })
}

/// How many parameter blobs (weights, bias, ...) the layer has.
#[no_mangle]
pub extern "C" fn crema_layer_blob_count(layer: Handle, out: *mut usize) -> c_int {
    call("crema_layer_blob_count", || {
        let n = with_layer(layer, |n, i| Ok(n.layers()[i].blobs().len()))?;
        put(out, "out", n)
    })
}

/// The handle of the layer's parameter blob `index` (0: weights, 1: bias).
#[no_mangle]
pub extern "C" fn crema_layer_blob(layer: Handle, index: usize, out: *mut Handle) -> c_int {
    call("crema_layer_blob", || {
        let h = registry::with(|r| {
            let (net, li) = r.layer(layer)?;
            let blobs = r.net_mut(net)?.layers()[li].blobs();
            check_index(index, blobs.len(), "parameter blob")?;
            let b = blobs[index].clone();
            r.blob_handle(layer, b)
        })?;
        put(out, "out", h)
    })
}
