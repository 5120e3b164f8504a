//! crema's C ABI (`include/crema.h`): nets, solvers, layers and blobs behind
//! checked 64-bit handles, for any C host — the MATLAB/Octave MEX gateway in
//! `matlab/+caffe/private/caffe_.c` is one.
//!
//! Every function returns a status code (`CREMA_OK` or a `CREMA_ERR_*`) and,
//! on failure, leaves a message for `crema_last_error`. Panics are caught at
//! the boundary, so a bad call never takes the host process down. Handles are
//! ids in a per-thread registry: a deleted or reset handle is reported, never
//! dereferenced.
// The exported functions are the C ABI: a C caller cannot see `unsafe`, so
// they are safe-to-call by contract instead (pointers checked for NULL, sizes
// stated in the header and passed alongside).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, c_double, c_int};

pub mod blob;
mod error;
pub mod net;
mod registry;
pub mod solver;

pub use error::{
    CREMA_ERR_CAFFE, CREMA_ERR_FILE, CREMA_ERR_INTERNAL, CREMA_ERR_INVALID_ARGUMENT,
    CREMA_ERR_INVALID_HANDLE, CREMA_OK,
};
pub use registry::Handle;

use error::{call, put, CError};

/// crema's version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn crema_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of this thread's last failed call ("" before any failure).
#[no_mangle]
pub extern "C" fn crema_last_error() -> *const c_char {
    error::last_error_ptr()
}

/// Whether the caller asked for GPU mode (Caffe::mode); crema runs on the CPU.
static GPU_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Caffe::set_mode(CPU).
#[no_mangle]
pub extern "C" fn crema_set_mode_cpu() -> c_int {
    call("crema_set_mode_cpu", || {
        GPU_REQUESTED.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
}

/// Caffe::set_mode(GPU): recorded, but this build computes on the CPU;
/// `crema_gpu_available` says so, and hosts warn their users.
#[no_mangle]
pub extern "C" fn crema_set_mode_gpu() -> c_int {
    call("crema_set_mode_gpu", || {
        GPU_REQUESTED.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
}

/// 1 after crema_set_mode_gpu, 0 after crema_set_mode_cpu (or at start).
#[no_mangle]
pub extern "C" fn crema_mode() -> c_int {
    c_int::from(GPU_REQUESTED.load(std::sync::atomic::Ordering::Relaxed))
}

/// 0: this build has no GPU backend.
#[no_mangle]
pub extern "C" fn crema_gpu_available() -> c_int {
    0
}

/// Caffe::SetDevice: a negative id is an error; others are accepted and the
/// work stays on the CPU.
#[no_mangle]
pub extern "C" fn crema_set_device(device_id: c_int) -> c_int {
    call("crema_set_device", || {
        if device_id < 0 {
            return Err(CError::argument(format!("invalid device id {device_id}")));
        }
        Ok(())
    })
}

/// Reseeds this thread's generator (fillers, dropout, shuffling).
#[no_mangle]
pub extern "C" fn crema_set_random_seed(seed: u64) -> c_int {
    call("crema_set_random_seed", || {
        crema::rng::set_random_seed(seed);
        Ok(())
    })
}

/// The registry's current key: it changes at every crema_reset, so a host can
/// stamp its handles with it and tell stale ones apart (matcaffe's init_key).
#[no_mangle]
pub extern "C" fn crema_init_key(out: *mut c_double) -> c_int {
    call("crema_init_key", || {
        let key = registry::with(|r| Ok(r.init_key()))?;
        put(out, "out", key)
    })
}

/// Deletes every solver, net, layer and blob handle of this thread and changes
/// the init key. `solvers`/`nets` (may be NULL) receive how many solvers and
/// standalone nets were cleared.
#[no_mangle]
pub extern "C" fn crema_reset(solvers: *mut usize, nets: *mut usize) -> c_int {
    call("crema_reset", || {
        let (s, n) = registry::with(|r| Ok(r.reset()))?;
        if !solvers.is_null() {
            put(solvers, "solvers", s)?;
        }
        if !nets.is_null() {
            put(nets, "nets", n)?;
        }
        Ok(())
    })
}
