//! `caffe._caffe`: pycaffe's native module on crema. It exposes the engine's
//! nouns (Net, Blob, Layer, Solver) with small primitive methods; the
//! pure-Python package `caffe` (python/caffe) builds pycaffe's friendlier API
//! (OrderedDicts of blobs, keyword forward/backward, forward_all) on top.
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;

mod blob;
mod net;
mod python_layer;
mod solver;

pyo3::create_exception!(
    _caffe,
    CaffeError,
    PyRuntimeError,
    "An error reported by crema (bad prototxt, shape mismatch, unknown layer ...)."
);

/// Turns a crema error into a Python exception carrying crema's message, which
/// names the file and line of a bad prototxt and the layer of a bad net.
pub(crate) fn py_err(e: crema::Error) -> PyErr {
    use crema::proto::ProtoError;
    let msg = e.to_string();
    match &e {
        crema::Error::Proto(ProtoError::Io { source, .. }) => {
            if source.kind() == std::io::ErrorKind::NotFound {
                PyFileNotFoundError::new_err(msg)
            } else {
                PyOSError::new_err(msg)
            }
        }
        _ => CaffeError::new_err(msg),
    }
}

/// Whether the caller asked for GPU mode; crema has no GPU backend yet, so this
/// only records the request (Caffe::mode()).
static GPU_REQUESTED: AtomicBool = AtomicBool::new(false);

fn warn_no_gpu(py: Python<'_>, what: &str) -> PyResult<()> {
    let msg = format!("{what}: this crema build has no GPU backend; running on the CPU");
    let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
    py.import("warnings")?
        .call_method1("warn", (msg, category, 2))?;
    Ok(())
}

/// Runs on the CPU (the only backend crema has).
#[pyfunction]
fn set_mode_cpu() {
    GPU_REQUESTED.store(false, Ordering::Relaxed);
}

/// Caffe's GPU mode: warns that there is no GPU backend and stays on the CPU.
#[pyfunction]
fn set_mode_gpu(py: Python<'_>) -> PyResult<()> {
    GPU_REQUESTED.store(true, Ordering::Relaxed);
    warn_no_gpu(py, "set_mode_gpu")
}

/// Caffe's device selection: warns (no GPU backend) and keeps the CPU.
#[pyfunction]
fn set_device(py: Python<'_>, device_id: i32) -> PyResult<()> {
    if device_id < 0 {
        return Err(CaffeError::new_err(format!(
            "set_device: invalid device id {device_id}"
        )));
    }
    warn_no_gpu(py, "set_device")
}

/// Seeds crema's RNG (fillers, dropout, shuffling), as Caffe::set_random_seed.
#[pyfunction]
fn set_random_seed(seed: u64) {
    crema::rng::set_random_seed(seed);
}

/// Starts glog-style logging to stderr; `level` is glog's minimum level
/// (0 INFO, 1 WARNING, 2 ERROR). The level may be changed by later calls.
#[pyfunction]
#[pyo3(signature = (level = None))]
fn init_log(level: Option<i32>) {
    crema::logging::init();
    if let Some(level) = level {
        log::set_max_level(match level {
            i32::MIN..=0 => log::LevelFilter::Info,
            1 => log::LevelFilter::Warn,
            _ => log::LevelFilter::Error,
        });
    }
}

/// Writes one INFO line through crema's logger (after init_log).
#[pyfunction(name = "log")]
fn log_info(message: &str) {
    log::info!("{message}");
}

/// The registered layer type names, sorted (LayerRegistry::LayerTypeList).
#[pyfunction]
fn layer_type_list() -> Vec<&'static str> {
    crema::layer_type_list()
}

/// The serialized FileDescriptorProto of our caffe.proto, from which
/// `caffe.proto.caffe_pb2` builds its message classes: the Python messages are
/// then always the schema the engine was built with.
#[pyfunction]
fn _caffe_proto_descriptor<'py>(py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    use protobuf::Message;
    let fd = crema::proto::caffe::file_descriptor().proto();
    let bytes = fd
        .write_to_bytes()
        .map_err(|e| CaffeError::new_err(e.to_string()))?;
    Ok(pyo3::types::PyBytes::new(py, &bytes))
}

/// Decodes a JPEG or PNG into an H x W x K uint8 array in Caffe's C++ channel
/// order (BGR, or one gray channel when `color` is false); caffe.io.load_image
/// turns it into pycaffe's RGB floats.
#[pyfunction]
fn _read_image<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    color: bool,
) -> PyResult<Bound<'py, numpy::PyArray3<u8>>> {
    use crema::data::{ColorMode, Image};
    use numpy::PyArrayMethods;
    if !path.is_file() {
        return Err(PyFileNotFoundError::new_err(format!(
            "{}: no such image file",
            path.display()
        )));
    }
    let img = Image::read(&path, ColorMode::from_is_color(color)).map_err(py_err)?;
    let (h, w, c) = (img.height, img.width, img.channels);
    numpy::PyArray1::from_vec(py, img.data).reshape([h, w, c])
}

/// Registers the layer type "Python" in crema's layer registry, for a program
/// that embeds Python (the `caffe` binary built with the `python-layer`
/// feature, as Caffe's WITH_PYTHON_LAYER). The interpreter starts with the
/// first Python layer; the layers' modules and `caffe`'s Python files come
/// from PYTHONPATH.
pub fn register_python_layer() -> crema::Result<()> {
    crema::layers::register_layer_type("Python", embedded_python_layer)
}

fn embedded_python_layer(
    param: &crema::proto::caffe::LayerParameter,
) -> crema::Result<Box<dyn crema::Layer>> {
    embed_caffe_module()?;
    Ok(Box::new(python_layer::PythonLayer::new(param)?))
}

/// Starts the interpreter (once) and puts this program's own native module in
/// `sys.modules` as `caffe._caffe` before anything imports `caffe`: the
/// package's Python files then run on this engine, so the blobs a layer gets
/// are the net's own, not those of a separately loaded extension.
fn embed_caffe_module() -> crema::Result<()> {
    static EMBEDDED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    EMBEDDED
        .get_or_init(|| {
            Python::initialize();
            Python::attach(|py| -> PyResult<()> {
                let module = _caffe::_PYO3_DEF.make_module(py)?;
                py.import("sys")?
                    .getattr("modules")?
                    .set_item("caffe._caffe", module)
            })
            .map_err(|e| format!("cannot start Python for Python layers: {e}"))
        })
        .clone()
        .map_err(crema::Error::Other)
}

#[pymodule]
fn _caffe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TRAIN", crema::proto::caffe::Phase::TRAIN as i32)?;
    m.add("TEST", crema::proto::caffe::Phase::TEST as i32)?;
    m.add("CaffeError", m.py().get_type::<CaffeError>())?;
    m.add_function(wrap_pyfunction!(set_mode_cpu, m)?)?;
    m.add_function(wrap_pyfunction!(set_mode_gpu, m)?)?;
    m.add_function(wrap_pyfunction!(set_device, m)?)?;
    m.add_function(wrap_pyfunction!(set_random_seed, m)?)?;
    m.add_function(wrap_pyfunction!(init_log, m)?)?;
    m.add_function(wrap_pyfunction!(log_info, m)?)?;
    m.add_function(wrap_pyfunction!(layer_type_list, m)?)?;
    m.add_function(wrap_pyfunction!(_caffe_proto_descriptor, m)?)?;
    m.add_function(wrap_pyfunction!(_read_image, m)?)?;
    m.add_class::<blob::PyBlob>()?;
    m.add_class::<blob::PyBlobVec>()?;
    m.add_class::<net::PyLayer>()?;
    m.add_class::<net::PyNet>()?;
    m.add_class::<solver::PySolver>()?;
    m.add_class::<solver::IterCell>()?;
    Ok(())
}
