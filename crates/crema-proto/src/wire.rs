//! Bulk readers for packed float and double fields.
//!
//! rust-protobuf decodes packed fixed-width fields one element at a time with a
//! bounds check each; a caffemodel is almost entirely such fields. These read the
//! whole payload as bytes (which rust-protobuf bounds by the remaining input, so a
//! corrupt length cannot make us allocate more than the file holds) and convert
//! it in one pass.
use protobuf::CodedInputStream;

fn read_packed<T, const N: usize>(
    is: &mut CodedInputStream<'_>,
    target: &mut Vec<T>,
    from_le: fn([u8; N]) -> T,
) -> protobuf::Result<()> {
    let len = is.read_raw_varint64()?;
    if len % N as u64 != 0 || len > u32::MAX as u64 {
        return Err(protobuf::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("packed field of {len} bytes is not a whole number of {N}-byte values"),
        )));
    }
    let mut bytes = Vec::new();
    is.read_raw_bytes_into(len as u32, &mut bytes)?;
    target.reserve(bytes.len() / N);
    target.extend(bytes.chunks_exact(N).map(|c| from_le(c.try_into().unwrap())));
    Ok(())
}

/// Reads one packed `repeated float` payload (tag already consumed) into `target`.
pub(crate) fn read_packed_f32(is: &mut CodedInputStream<'_>, target: &mut Vec<f32>) -> protobuf::Result<()> {
    read_packed::<f32, 4>(is, target, f32::from_le_bytes)
}

/// Reads one packed `repeated double` payload (tag already consumed) into `target`.
pub(crate) fn read_packed_f64(is: &mut CodedInputStream<'_>, target: &mut Vec<f64>) -> protobuf::Result<()> {
    read_packed::<f64, 8>(is, target, f64::from_le_bytes)
}

/// Writes unknown fields sorted by field number (stable within a number), the
/// order in which a C++ fork of Caffe that knew them serialized them.
pub(crate) fn write_unknown_fields_in_order(
    os: &mut protobuf::CodedOutputStream<'_>,
    fields: &protobuf::UnknownFields,
) -> protobuf::Result<()> {
    let mut all: Vec<_> = fields.iter().collect();
    all.sort_by_key(|(number, _)| *number);
    for (number, value) in all {
        os.write_unknown(number, value)?;
    }
    Ok(())
}
