//! Bulk readers for packed float and double fields.
//!
//! rust-protobuf decodes packed fixed-width fields one element at a time with a
//! bounds check each; a caffemodel is almost entirely such fields. These copy the
//! whole little-endian payload straight into the vector in one read.
use protobuf::CodedInputStream;

/// Bytes read per step when a payload's length cannot be checked up front.
const CHUNK: usize = 1 << 24;

fn read_packed<T: Copy, const N: usize>(
    is: &mut CodedInputStream<'_>,
    target: &mut Vec<T>,
    from_le: fn([u8; N]) -> T,
) -> protobuf::Result<()> {
    let len = is.read_raw_varint64()?;
    let invalid = |msg: String| {
        protobuf::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
    };
    if len % N as u64 != 0 {
        return Err(invalid(format!(
            "packed field of {len} bytes is not a whole number of {N}-byte values"
        )));
    }
    // Allocate no more than the input can still hold: the whole payload at once
    // when the length fits within the current limit (binary::decode sets one
    // for the whole buffer), otherwise chunk by chunk, so a corrupt length fails
    // as truncated input instead of reserving gigabytes.
    let mut left = (len / N as u64) as usize;
    let old = target.len();
    while left > 0 {
        let n = if len <= is.bytes_until_limit() {
            left
        } else {
            left.min(CHUNK / N)
        };
        target.reserve(n);
        let spare = &mut target.spare_capacity_mut()[..n];
        // SAFETY: n MaybeUninit<T> are n*N bytes (T is a plain N-byte float and
        // u8 has alignment 1), so viewing them as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                spare.as_mut_ptr() as *mut std::mem::MaybeUninit<u8>,
                n * N,
            )
        };
        is.read_exact(bytes)?;
        // SAFETY: read_exact wrote all n elements past the current length.
        unsafe { target.set_len(target.len() + n) };
        left -= n;
    }
    if cfg!(target_endian = "big") {
        for v in &mut target[old..] {
            let mut b = [0u8; N];
            // SAFETY: T is an N-byte plain float; reinterpret its bytes.
            unsafe { std::ptr::copy_nonoverlapping(v as *const T as *const u8, b.as_mut_ptr(), N) };
            *v = from_le(b);
        }
    }
    Ok(())
}

/// Reads one packed `repeated float` payload (tag already consumed) into `target`.
pub(crate) fn read_packed_f32(
    is: &mut CodedInputStream<'_>,
    target: &mut Vec<f32>,
) -> protobuf::Result<()> {
    read_packed::<f32, 4>(is, target, f32::from_le_bytes)
}

/// Reads one packed `repeated double` payload (tag already consumed) into `target`.
pub(crate) fn read_packed_f64(
    is: &mut CodedInputStream<'_>,
    target: &mut Vec<f64>,
) -> protobuf::Result<()> {
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
