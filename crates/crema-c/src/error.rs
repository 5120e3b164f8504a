//! Errors at the C boundary: a status code for the host to branch on, and a
//! message (what failed and where) kept per thread for `crema_last_error`.
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub const CREMA_OK: c_int = 0;
/// Unknown, deleted, reset or wrong-kind handle.
pub const CREMA_ERR_INVALID_HANDLE: c_int = 1;
/// A null pointer, a bad string, an index out of range, a size mismatch.
pub const CREMA_ERR_INVALID_ARGUMENT: c_int = 2;
/// A file that is missing or cannot be read or written.
pub const CREMA_ERR_FILE: c_int = 3;
/// crema refused the request (bad prototxt, shape mismatch in a layer, ...).
pub const CREMA_ERR_CAFFE: c_int = 4;
/// A bug inside crema, caught at the boundary instead of unwinding into C.
pub const CREMA_ERR_INTERNAL: c_int = 5;

pub struct CError {
    pub code: c_int,
    pub message: String,
}

pub type R<T> = Result<T, CError>;

impl CError {
    pub fn handle(message: impl Into<String>) -> Self {
        CError {
            code: CREMA_ERR_INVALID_HANDLE,
            message: message.into(),
        }
    }
    pub fn argument(message: impl Into<String>) -> Self {
        CError {
            code: CREMA_ERR_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
    pub fn file(message: impl Into<String>) -> Self {
        CError {
            code: CREMA_ERR_FILE,
            message: message.into(),
        }
    }
}

impl From<crema::Error> for CError {
    fn from(e: crema::Error) -> Self {
        let code = match &e {
            crema::Error::Proto(crema::proto::ProtoError::Io { .. }) => CREMA_ERR_FILE,
            _ => CREMA_ERR_CAFFE,
        };
        CError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<crema::proto::ProtoError> for CError {
    fn from(e: crema::proto::ProtoError) -> Self {
        crema::Error::from(e).into()
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Backing store for strings handed out by `crema_*` getters.
    static LAST_STRING: RefCell<CString> = RefCell::new(CString::default());
}

fn c_string(s: &str) -> CString {
    // Interior NULs cannot cross as C strings; show them instead of truncating.
    CString::new(s.replace('\0', "\\0")).expect("NULs replaced")
}

fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| *e.borrow_mut() = c_string(message));
}

/// The last error message of this thread; valid until the next failing call.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs one exported function's body: errors and panics become a status code
/// and a message prefixed with the function's name.
pub fn call(what: &str, body: impl FnOnce() -> R<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CREMA_OK,
        Ok(Err(e)) => {
            set_last_error(&format!("{what}: {}", e.message));
            e.code
        }
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("{what}: internal error in crema: {detail}"));
            CREMA_ERR_INTERNAL
        }
    }
}

/// Reads a C string argument; `name` says which in the error.
pub fn arg_str<'a>(p: *const c_char, name: &str) -> R<&'a str> {
    if p.is_null() {
        return Err(CError::argument(format!("{name} is NULL")));
    }
    // SAFETY: the header requires a NUL-terminated string that stays valid
    // for the duration of the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| CError::argument(format!("{name} is not valid UTF-8")))
}

/// Writes `value` through an out-pointer, refusing NULL.
pub fn put<T>(out: *mut T, name: &str, value: T) -> R<()> {
    if out.is_null() {
        return Err(CError::argument(format!("{name} is NULL")));
    }
    // SAFETY: non-null, and the header requires it to point at a writable T.
    unsafe { out.write(value) };
    Ok(())
}

/// Hands a string to C: `*out` stays valid until the next crema call that
/// returns a string on this thread.
pub fn put_str(out: *mut *const c_char, name: &str, value: &str) -> R<()> {
    if out.is_null() {
        return Err(CError::argument(format!("{name} is NULL")));
    }
    let ptr = LAST_STRING.with(|s| {
        *s.borrow_mut() = c_string(value);
        s.borrow().as_ptr()
    });
    put(out, name, ptr)
}

/// An index checked against a length, with a message naming both.
pub fn check_index(i: usize, len: usize, what: &str) -> R<()> {
    if i >= len {
        return Err(CError::argument(format!(
            "{what} index {i} is out of range (there are {len})"
        )));
    }
    Ok(())
}

/// Caffe's own check before opening a file, with its wording.
pub fn check_file(path: &str) -> R<()> {
    if std::fs::File::open(path).is_err() {
        return Err(CError::file(format!("Could not open file {path}")));
    }
    Ok(())
}
