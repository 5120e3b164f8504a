//! crema: Caffe rebuilt in Rust — Blob, Layer, Net, Solver, configured by
//! Caffe's own files.

pub mod backend;
pub mod blob;
pub mod data;
pub mod error;
pub mod fillers;
pub mod gradient_check;
pub mod hdf5;
pub mod layers;
pub mod logging;
pub mod net;
pub mod parallel;
pub mod rng;
pub mod solvers;

pub use blob::{Blob, SharedBlob};
pub use crema_proto as proto;
pub use error::{Error, Result};
pub use layers::{create_layer, layer_type_list, Layer};
pub use net::Net;
pub use solvers::Solver;
