//! Any bytes given to the binary reader as a caffemodel, a binaryproto or a
//! solverstate decode or fail cleanly; what decodes re-encodes, and a decoded
//! net survives the upgrade chain. Findings are panics, OOMs and timeouts.
#![no_main]
use crema_proto::binary::{check_blob, decode, encode};
use crema_proto::caffe::{BlobProto, NetParameter, SolverState};
use crema_proto::upgrade;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.bin");
    if let Ok(mut net) = decode::<NetParameter>(data, p, "caffemodel") {
        let _ = encode(&net);
        let _ = upgrade::upgrade_net(&mut net, "fuzz.caffemodel");
    }
    if let Ok(blob) = decode::<BlobProto>(data, p, "binaryproto") {
        let _ = check_blob(&blob, "fuzz.binaryproto");
        let _ = encode(&blob);
    }
    if let Ok(state) = decode::<SolverState>(data, p, "solverstate") {
        let _ = encode(&state);
    }
});
