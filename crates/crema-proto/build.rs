//! Generates the Rust types for Caffe's schema with rust-protobuf's pure-Rust
//! .proto parser, so building crema needs no `protoc` binary.
//!
//! One edit follows: the readers of packed float/double fields (the weights of
//! every caffemodel) are pointed at `crate::wire`, which copies the payload in
//! bulk instead of decoding one element at a time; this is what lets a large
//! caffemodel decode close to the speed of reading it from disk. And unknown
//! fields are written in field-number order (rust-protobuf keeps them in a hash
//! map), which is the order a C++ writer of a Caffe fork put them in.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=proto/caffe.proto");
    println!("cargo:rerun-if-changed=build.rs");
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .input("proto/caffe.proto")
        .cargo_out_dir("generated")
        .run_from_script();

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("generated/caffe.rs");
    let code = fs::read_to_string(&out).expect("generated caffe.rs");
    let patched = code
        .replace(
            "is.read_repeated_packed_float_into(",
            "crate::wire::read_packed_f32(is, ",
        )
        .replace(
            "is.read_repeated_packed_double_into(",
            "crate::wire::read_packed_f64(is, ",
        )
        .replace(
            "os.write_unknown_fields(",
            "crate::wire::write_unknown_fields_in_order(os, ",
        );
    assert!(
        patched.contains("crate::wire::read_packed_f32"),
        "packed float readers not found in generated code"
    );
    fs::write(&out, patched).expect("write patched caffe.rs");
}
