//! Small helpers shared by the unit tests of the neuron, common and loss layers.
use crema_proto::caffe::{LayerParameter, Phase};

use crate::blob::{Blob, SharedBlob};
use crate::layers::{create_layer, Layer};

/// A LayerParameter of `type_` named "test"; `edit` sets the layer's fields.
pub fn param(type_: &str, edit: impl FnOnce(&mut LayerParameter)) -> LayerParameter {
    let mut p = LayerParameter::new();
    p.set_name("test".into());
    p.set_type(type_.into());
    edit(&mut p);
    p
}

/// Same as `param` with the phase set.
pub fn param_in(
    type_: &str,
    phase: Phase,
    edit: impl FnOnce(&mut LayerParameter),
) -> LayerParameter {
    param(type_, |p| {
        p.set_phase(phase);
        edit(p)
    })
}

/// Builds the layer through the registry, as the net does.
pub fn layer(p: &LayerParameter) -> Box<dyn Layer> {
    create_layer(p).expect("create_layer")
}

/// A blob of `shape` holding `data`.
pub fn blob(shape: &[usize], data: &[f32]) -> SharedBlob {
    let b = Blob::shared(shape);
    assert_eq!(
        b.borrow().count(),
        data.len(),
        "test data does not fit shape {shape:?}"
    );
    b.borrow_mut().data_mut().copy_from_slice(data);
    b
}

/// An empty blob for a top.
pub fn empty() -> SharedBlob {
    Blob::shared(&[])
}

/// setup + reshape + forward, with errors turned into panics (tests only).
pub fn run(layer: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) {
    layer.setup(bottom, top).expect("setup");
    layer.reshape(bottom, top).expect("reshape");
    layer.forward(bottom, top).expect("forward");
}

/// The error message of setup or reshape (whichever fails first).
pub fn setup_error(layer: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) -> String {
    match layer
        .setup(bottom, top)
        .and_then(|_| layer.reshape(bottom, top))
    {
        Ok(()) => panic!("expected {} to refuse its input", layer.type_name()),
        Err(e) => e.to_string(),
    }
}

/// Element-wise comparison with an absolute tolerance.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "element {i}: got {g}, want {w} (got {got:?})"
        );
    }
}

/// The numbers on the line of a fixture file (`key v1 v2 ...`, written by the
/// numpy scripts in `tests/fixtures/`) that starts with `key`.
pub fn fixture_line(text: &str, key: &str) -> Vec<f32> {
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(key))
        .unwrap_or_else(|| panic!("fixture {key} missing"));
    line.split(' ')
        .skip(1)
        .map(|v| v.parse().expect("fixture number"))
        .collect()
}
