//! Helpers for the vision layers' unit tests: building layers and blobs, and
//! reading the numpy fixtures in `tests/fixtures/vision.txt`.
use std::collections::HashMap;
use std::sync::OnceLock;

use crema_proto::caffe::LayerParameter;

use crate::blob::{Blob, SharedBlob};
use crate::layers::{create_layer, Layer};

/// A LayerParameter of `type_`; `edit` sets its fields.
pub fn param(type_: &str, edit: impl FnOnce(&mut LayerParameter)) -> LayerParameter {
    let mut p = LayerParameter::new();
    p.set_name("test".into());
    p.set_type(type_.into());
    edit(&mut p);
    p
}

/// The layer, built through the registry as the net builds it.
pub fn layer(p: &LayerParameter) -> Box<dyn Layer> {
    create_layer(p).expect("create_layer")
}

pub fn blob(shape: &[usize], data: &[f32]) -> SharedBlob {
    let b = Blob::shared(shape);
    b.borrow_mut().data_mut().copy_from_slice(data);
    b
}

pub fn empty() -> SharedBlob {
    Blob::shared(&[])
}

/// Setup + reshape + forward.
pub fn run(l: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) {
    l.setup(bottom, top).expect("setup");
    l.reshape(bottom, top).expect("reshape");
    l.forward(bottom, top).expect("forward");
}

/// The message of the first failing step of setup + reshape.
pub fn setup_error(l: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) -> String {
    match l.setup(bottom, top).and_then(|_| l.reshape(bottom, top)) {
        Ok(()) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// One array of the fixture file: shape and values.
pub fn fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    static TABLE: OnceLock<HashMap<String, (Vec<usize>, Vec<f32>)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vision.txt"
        ));
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut parts = l.split('|');
                let name = parts.next().unwrap().to_string();
                let dims = parts
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(|d| d.parse().unwrap())
                    .collect();
                let vals = parts
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect();
                (name, (dims, vals))
            })
            .collect()
    });
    table
        .get(name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .clone()
}

/// A blob holding a fixture array.
pub fn fixture_blob(name: &str) -> SharedBlob {
    let (shape, data) = fixture(name);
    blob(&shape, &data)
}

/// Copies a fixture into a parameter blob (whose shape must match).
pub fn load_param(l: &dyn Layer, index: usize, name: &str) {
    let (shape, data) = fixture(name);
    let mut p = l.blobs()[index].borrow_mut();
    assert_eq!(
        p.shape(),
        shape.as_slice(),
        "param {index} shape vs fixture {name}"
    );
    p.data_mut().copy_from_slice(&data);
}

/// Asserts a top equals a fixture (shape and values within `tol`).
pub fn assert_matches(top: &SharedBlob, name: &str, tol: f32) {
    let (shape, want) = fixture(name);
    let t = top.borrow();
    assert_eq!(t.shape(), shape.as_slice(), "shape of {name}");
    for (i, (g, w)) in t.data().iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}
