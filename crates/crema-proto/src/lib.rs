//! Caffe's files: the schema (`caffe`), prototxt text format, binary protobuf
//! files (`.caffemodel`, `.binaryproto`, `.solverstate`) and the upgrades of
//! legacy V0/V1 nets and solvers to today's format.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated/mod.rs"));
}
pub mod binary;
pub mod error;
pub mod files;
pub mod testdata;
pub mod text;
pub mod upgrade;
mod wire;

pub use error::{ProtoError, Result};
pub use generated::caffe;
pub use protobuf::{Message, MessageDyn, MessageField, MessageFull};
