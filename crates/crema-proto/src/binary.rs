//! Binary protobuf files: `.caffemodel` (NetParameter), `.binaryproto`
//! (BlobProto), `.solverstate` (SolverState), and atomic writes.
//!
//! Decoding is rust-protobuf's, bounded by the input (a corrupt length fails as
//! truncated instead of allocating) and by its nesting limit of 100 (as C++'s).
//! Encoding writes known fields in field-number order and then the unknown ones,
//! as C++ protobuf does, so a file Caffe wrote re-encodes to the same bytes.
use std::io::Write;
use std::path::Path;

use protobuf::reflect::{ReflectFieldRef, ReflectValueRef, RuntimeFieldType, RuntimeType};
use protobuf::{MessageDyn, MessageFull};

use crate::caffe::BlobProto;
use crate::error::{ProtoError, Result};

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ProtoError::io(path, e))
}

/// Decodes `bytes` as `M`. `expected` names the kind of file for the error
/// ("caffemodel (NetParameter)"). A known field met with the wrong wire type
/// means the file holds some other message, and is refused rather than kept as
/// an unknown field.
pub fn decode<M: MessageFull>(bytes: &[u8], path: &Path, expected: &str) -> Result<M> {
    let err = |reason: String| ProtoError::Decode {
        path: path.into(),
        expected: expected.into(),
        reason,
    };
    let mut msg = M::new();
    let mut is = protobuf::CodedInputStream::from_bytes(bytes);
    // A limit at the end of the buffer lets the packed-field readers check a
    // claimed length against what is really there before allocating.
    let parsed = is
        .push_limit(bytes.len() as u64)
        .and_then(|_| msg.merge_from(&mut is))
        .and_then(|_| msg.check_initialized());
    parsed.map_err(|e| err(e.to_string()))?;
    check_wire_types(&msg, M::descriptor().name()).map_err(err)?;
    Ok(msg)
}

/// Reads and decodes a binary protobuf file.
pub fn read_binary<M: MessageFull>(path: &Path, expected: &str) -> Result<M> {
    decode(&read_file(path)?, path, expected)
}

/// Encodes a message the way C++ protobuf's SerializeToString does.
pub fn encode<M: MessageFull>(msg: &M) -> Result<Vec<u8>> {
    msg.write_to_bytes()
        .map_err(|e| ProtoError::invalid(M::descriptor().name(), format!("cannot encode: {e}")))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over `path`, so a crash never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        ProtoError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ProtoError::io(path, e)
    })
}

/// Encodes `msg` and writes it atomically to `path`.
pub fn write_binary<M: MessageFull>(path: &Path, msg: &M) -> Result<()> {
    write_atomic(path, &encode(msg)?)
}

/// Walks a decoded message: any unknown field whose number the schema knows
/// arrived with a wire type the schema does not allow.
fn check_wire_types(msg: &dyn MessageDyn, at: &str) -> std::result::Result<(), String> {
    let desc = msg.descriptor_dyn();
    for (number, _) in msg.special_fields_dyn().unknown_fields().iter() {
        if let Some(field) = desc.field_by_number(number) {
            return Err(format!(
                "field {} ({}.{}) has the wrong wire type: the file holds some other kind of message",
                number,
                at,
                field.name()
            ));
        }
    }
    for field in desc.fields() {
        let is_message = match field.runtime_field_type() {
            RuntimeFieldType::Singular(RuntimeType::Message(_)) => true,
            RuntimeFieldType::Repeated(RuntimeType::Message(_)) => true,
            _ => false,
        };
        if !is_message {
            continue;
        }
        let here = format!("{at}.{}", field.name());
        match field.get_reflect(msg) {
            ReflectFieldRef::Optional(v) => {
                if let Some(ReflectValueRef::Message(m)) = v.value() {
                    check_wire_types(&*m, &here)?;
                }
            }
            ReflectFieldRef::Repeated(r) => {
                for v in r.into_iter() {
                    if let ReflectValueRef::Message(m) = v {
                        check_wire_types(&*m, &here)?;
                    }
                }
            }
            ReflectFieldRef::Map(_) => {}
        }
    }
    Ok(())
}

/// The shape a BlobProto declares: `shape.dim` when present, else the legacy
/// num/channels/height/width (Caffe reads those as a 4-D shape).
pub fn blob_shape(blob: &BlobProto) -> Vec<i64> {
    if let Some(shape) = blob.shape.as_ref() {
        shape.dim.clone()
    } else {
        vec![
            blob.num().into(),
            blob.channels().into(),
            blob.height().into(),
            blob.width().into(),
        ]
    }
}

/// Checks that a blob's data (float or double) holds exactly as many values as
/// its shape says, as Caffe's Blob::FromProto requires. Empty data passes: a
/// blob may carry its shape alone (a diff-free snapshot, an empty history).
pub fn check_blob(blob: &BlobProto, what: &str) -> Result<()> {
    let shape = blob_shape(blob);
    let count = shape.iter().try_fold(
        1i64,
        |acc, &d| {
            if d < 0 {
                None
            } else {
                acc.checked_mul(d)
            }
        },
    );
    let Some(count) = count else {
        return Err(ProtoError::invalid(
            what,
            format!("blob shape {shape:?} is not a valid shape"),
        ));
    };
    for (name, len) in [
        ("data", blob.data.len()),
        ("double_data", blob.double_data.len()),
        ("diff", blob.diff.len()),
        ("double_diff", blob.double_diff.len()),
    ] {
        if len != 0 && len as i64 != count {
            return Err(ProtoError::invalid(
                what,
                format!("blob shape {shape:?} holds {count} values but its {name} has {len}"),
            ));
        }
    }
    Ok(())
}

/// Reads a `.binaryproto` blob (a mean file) and checks it is consistent.
pub fn read_blob(path: &Path) -> Result<BlobProto> {
    let blob: BlobProto = read_binary(path, "binaryproto (BlobProto)")?;
    check_blob(&blob, &path.display().to_string())?;
    Ok(blob)
}
