//! Blobs: shape, reshape, and copies of data and diff in and out.
//!
//! Values cross in Caffe's row-major order (N, C, H, W with W fastest). A
//! column-major host such as MATLAB sees the same memory as a (W, H, C, N)
//! array, which is why matcaffe reverses the dimensions and copies nothing else.
use std::ffi::{c_char, c_float, c_int};

use crema::blob::MAX_BLOB_AXES;
use crema::{Blob, SharedBlob};

use crate::error::{arg_str, call, check_file, put, CError, R};
use crate::registry::{self, Handle, Object};

/// Caffe's limit on the number of axes (the header's CREMA_MAX_AXES).
pub const CREMA_MAX_AXES: usize = MAX_BLOB_AXES;

fn blob(h: Handle) -> R<SharedBlob> {
    registry::with(|r| r.blob(h))
}

/// A shape from C, checked as Caffe's Blob::Reshape checks it.
fn shape_arg(dims: *const usize, num_axes: usize) -> R<Vec<usize>> {
    if num_axes > MAX_BLOB_AXES {
        return Err(CError::argument(format!(
            "{num_axes} axes exceed Caffe's limit of {MAX_BLOB_AXES}"
        )));
    }
    if num_axes > 0 && dims.is_null() {
        return Err(CError::argument("dims is NULL"));
    }
    let shape = if num_axes == 0 {
        Vec::new()
    } else {
        // SAFETY: non-null, and the header requires `num_axes` readable values.
        unsafe { std::slice::from_raw_parts(dims, num_axes) }.to_vec()
    };
    // Caffe indexes a blob with int.
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count.is_none_or(|c| c > i32::MAX as usize) {
        return Err(CError::argument(format!(
            "shape {shape:?} has more than {} elements",
            i32::MAX
        )));
    }
    Ok(shape)
}

/// Makes a standalone blob of the given shape, zero-filled.
#[no_mangle]
pub extern "C" fn crema_blob_new(dims: *const usize, num_axes: usize, out: *mut Handle) -> c_int {
    call("crema_blob_new", || {
        let shape = shape_arg(dims, num_axes)?;
        if out.is_null() {
            return Err(CError::argument("out is NULL"));
        }
        let h = registry::with(|r| Ok(r.insert_root(Object::Blob(Blob::shared(&shape)))))?;
        put(out, "out", h)
    })
}

/// Deletes a standalone blob (from crema_blob_new or crema_blob_read_proto).
/// A net's blob is an error: it lives as long as its net.
#[no_mangle]
pub extern "C" fn crema_blob_delete(blob: Handle) -> c_int {
    call("crema_blob_delete", || {
        registry::with(|r| r.delete(blob, "blob"))
    })
}

/// Reads a BlobProto file (a mean `.binaryproto`) into a standalone blob.
#[no_mangle]
pub extern "C" fn crema_blob_read_proto(path: *const c_char, out: *mut Handle) -> c_int {
    call("crema_blob_read_proto", || {
        let path = arg_str(path, "path")?;
        if out.is_null() {
            return Err(CError::argument("out is NULL"));
        }
        check_file(path)?;
        let proto = crema::proto::files::read_mean_blob(path)?;
        let mut b = Blob::new(&[]);
        b.from_proto(&proto, true)
            .map_err(|e| CError::argument(format!("{path}: {e}")))?;
        let h = registry::with(|r| {
            Ok(r.insert_root(Object::Blob(std::rc::Rc::new(std::cell::RefCell::new(b)))))
        })?;
        put(out, "out", h)
    })
}

/// Writes the blob's shape and data as a BlobProto file (a mean file).
#[no_mangle]
pub extern "C" fn crema_blob_write_proto(blob: Handle, path: *const c_char) -> c_int {
    call("crema_blob_write_proto", || {
        let path = arg_str(path, "path")?;
        let proto = self::blob(blob)?.borrow().to_proto(false);
        crema::proto::binary::write_binary(std::path::Path::new(path), &proto)?;
        Ok(())
    })
}

/// How many axes the blob has.
#[no_mangle]
pub extern "C" fn crema_blob_num_axes(blob: Handle, out: *mut usize) -> c_int {
    call("crema_blob_num_axes", || {
        let n = self::blob(blob)?.borrow().num_axes();
        put(out, "out", n)
    })
}

/// How many values the blob holds (the product of its shape).
#[no_mangle]
pub extern "C" fn crema_blob_count(blob: Handle, out: *mut usize) -> c_int {
    call("crema_blob_count", || {
        let n = self::blob(blob)?.borrow().count();
        put(out, "out", n)
    })
}

/// Writes the blob's shape (Caffe's order, N first) into `dims`, which has
/// room for `capacity` values; `num_axes` receives the number of axes.
#[no_mangle]
pub extern "C" fn crema_blob_shape(
    blob: Handle,
    dims: *mut usize,
    capacity: usize,
    num_axes: *mut usize,
) -> c_int {
    call("crema_blob_shape", || {
        let shape = self::blob(blob)?.borrow().shape().to_vec();
        if shape.len() > capacity {
            return Err(CError::argument(format!(
                "the blob has {} axes but dims has room for {capacity}",
                shape.len()
            )));
        }
        if !shape.is_empty() {
            if dims.is_null() {
                return Err(CError::argument("dims is NULL"));
            }
            // SAFETY: non-null with room for `capacity >= shape.len()` values.
            unsafe { std::slice::from_raw_parts_mut(dims, shape.len()) }.copy_from_slice(&shape);
        }
        put(num_axes, "num_axes", shape.len())
    })
}

/// Reshapes the blob (Caffe's order, N first). Its values are kept only
/// where the count is unchanged; call crema_net_reshape after reshaping an
/// input blob of a net.
#[no_mangle]
pub extern "C" fn crema_blob_reshape(blob: Handle, dims: *const usize, num_axes: usize) -> c_int {
    call("crema_blob_reshape", || {
        let shape = shape_arg(dims, num_axes)?;
        self::blob(blob)?.borrow_mut().reshape(&shape);
        Ok(())
    })
}

fn count_matches(b: &Blob, count: usize, what: &str) -> R<()> {
    if b.count() != count {
        return Err(CError::argument(format!(
            "the blob has shape ({}) = {} values but {count} {what} given",
            b.shape_string(),
            b.count()
        )));
    }
    Ok(())
}

fn copy_out(blob: Handle, out: *mut c_float, count: usize, diff: bool) -> R<()> {
    let b = self::blob(blob)?;
    let b = b.borrow();
    count_matches(&b, count, "were asked for")?;
    if count == 0 {
        return Ok(());
    }
    if out.is_null() {
        return Err(CError::argument("out is NULL"));
    }
    let src = if diff { b.diff() } else { b.data() };
    // SAFETY: non-null with room for `count` floats (the header's contract).
    unsafe { std::slice::from_raw_parts_mut(out, count) }.copy_from_slice(src);
    Ok(())
}

fn copy_in(blob: Handle, values: *const c_float, count: usize, diff: bool) -> R<()> {
    let b = self::blob(blob)?;
    let mut b = b.borrow_mut();
    count_matches(&b, count, "were given")?;
    if count == 0 {
        return Ok(());
    }
    if values.is_null() {
        return Err(CError::argument("values is NULL"));
    }
    // SAFETY: non-null with `count` readable floats (the header's contract).
    let src = unsafe { std::slice::from_raw_parts(values, count) };
    let dst = if diff { b.diff_mut() } else { b.data_mut() };
    dst.copy_from_slice(src);
    Ok(())
}

/// Copies the blob's data (`count` must equal the blob's count) into `out`.
#[no_mangle]
pub extern "C" fn crema_blob_get_data(blob: Handle, out: *mut c_float, count: usize) -> c_int {
    call("crema_blob_get_data", || copy_out(blob, out, count, false))
}

/// Copies the blob's diff (`count` must equal the blob's count) into `out`.
#[no_mangle]
pub extern "C" fn crema_blob_get_diff(blob: Handle, out: *mut c_float, count: usize) -> c_int {
    call("crema_blob_get_diff", || copy_out(blob, out, count, true))
}

/// Overwrites the blob's data with `count` values (must equal its count).
#[no_mangle]
pub extern "C" fn crema_blob_set_data(blob: Handle, values: *const c_float, count: usize) -> c_int {
    call("crema_blob_set_data", || {
        copy_in(blob, values, count, false)
    })
}

/// Overwrites the blob's diff with `count` values (must equal its count).
#[no_mangle]
pub extern "C" fn crema_blob_set_diff(blob: Handle, values: *const c_float, count: usize) -> c_int {
    call("crema_blob_set_diff", || copy_in(blob, values, count, true))
}
