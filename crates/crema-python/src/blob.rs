//! `caffe._caffe.Blob`: a handle on one of the net's blobs whose `data` and
//! `diff` are numpy arrays over the blob's own memory.
use crema::blob::MAX_BLOB_AXES;
use crema::SharedBlob;
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::PyArrayDyn;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::cell::RefCell;
use std::rc::Rc;

/// One of a net's blobs (or a layer's parameter blob). Holding it keeps the
/// blob's memory alive even after its net is gone.
#[pyclass(unsendable, name = "Blob", module = "caffe._caffe")]
pub struct PyBlob {
    pub(crate) blob: SharedBlob,
}

impl PyBlob {
    pub(crate) fn new(blob: SharedBlob) -> Self {
        PyBlob { blob }
    }

    /// A numpy array over the data (or diff) buffer. Its base object is this
    /// Blob, whose Rc keeps the buffer alive as long as the array lives.
    fn array<'py>(this: &Bound<'py, Self>, diff: bool) -> Bound<'py, PyArrayDyn<f32>> {
        let (ptr, shape) = {
            let me = this.borrow();
            let mut b = me.blob.borrow_mut();
            // The array may outlive a later reshape that grows the blob; the
            // engine then keeps this buffer alive instead of freeing it.
            b.keep_host_buffers_alive();
            let shape = b.shape().to_vec();
            let ptr = if diff {
                b.diff_mut().as_mut_ptr()
            } else {
                b.data_mut().as_mut_ptr()
            };
            (ptr, shape)
        };
        // SAFETY: `ptr` points at `product(shape)` initialized f32s owned by the
        // blob; the array's base holds this Blob (and so the Rc), and the blob
        // keeps every buffer it has handed out (keep_host_buffers_alive), so
        // the memory outlives the array even when a later reshape grows the
        // blob: the array then reads the old values, as in pycaffe one takes
        // `data` again after a reshape. Access is single-threaded under the GIL
        // (the classes are unsendable).
        unsafe {
            let view = ArrayViewD::from_shape_ptr(IxDyn(&shape), ptr as *const f32);
            PyArrayDyn::borrow_from_array(&view, this.clone().into_any())
        }
    }

    fn legacy_dim(&self, i: usize) -> PyResult<usize> {
        let b = self.blob.borrow();
        if b.num_axes() > 4 {
            return Err(PyValueError::new_err(format!(
                "num/channels/height/width need a blob of at most 4 axes; this one has shape ({})",
                b.shape_string()
            )));
        }
        Ok(b.shape().get(i).copied().unwrap_or(1))
    }
}

#[pymethods]
impl PyBlob {
    /// The data as a writable numpy array sharing the blob's memory.
    #[getter]
    fn data<'py>(this: &Bound<'py, Self>) -> Bound<'py, PyArrayDyn<f32>> {
        PyBlob::array(this, false)
    }

    /// The gradient as a writable numpy array sharing the blob's memory.
    #[getter]
    fn diff<'py>(this: &Bound<'py, Self>) -> Bound<'py, PyArrayDyn<f32>> {
        PyBlob::array(this, true)
    }

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.blob.borrow().shape())
    }

    #[getter]
    fn count(&self) -> usize {
        self.blob.borrow().count()
    }

    #[getter]
    fn num(&self) -> PyResult<usize> {
        self.legacy_dim(0)
    }
    #[getter]
    fn channels(&self) -> PyResult<usize> {
        self.legacy_dim(1)
    }
    #[getter]
    fn height(&self) -> PyResult<usize> {
        self.legacy_dim(2)
    }
    #[getter]
    fn width(&self) -> PyResult<usize> {
        self.legacy_dim(3)
    }

    /// Reshapes the blob to `dims` (e.g. `blob.reshape(100, 1, 28, 28)`). Take
    /// `data`/`diff` again afterwards: arrays taken before a growth stay valid
    /// but keep the old buffer.
    #[pyo3(signature = (*dims))]
    fn reshape(&self, dims: &Bound<'_, PyTuple>) -> PyResult<()> {
        let mut shape = Vec::with_capacity(dims.len());
        for d in dims.iter() {
            let d: i64 = d
                .extract()
                .map_err(|_| PyTypeError::new_err("Blob.reshape takes integer dimensions"))?;
            if d < 0 {
                return Err(PyValueError::new_err(format!(
                    "Blob.reshape: negative dimension {d}"
                )));
            }
            shape.push(d as usize);
        }
        if shape.len() > MAX_BLOB_AXES {
            return Err(PyValueError::new_err(format!(
                "Blob.reshape: {} axes exceed Caffe's limit of {MAX_BLOB_AXES}",
                shape.len()
            )));
        }
        // Caffe's limit on a blob's element count (it indexes with int).
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count.is_none_or(|c| c > i32::MAX as usize) {
            return Err(PyValueError::new_err(format!(
                "Blob.reshape: {shape:?} has more than {} elements",
                i32::MAX
            )));
        }
        self.blob.borrow_mut().reshape(&shape);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<caffe Blob ({})>", self.blob.borrow().shape_string())
    }
}

/// The parameter blobs of a layer (pycaffe's BlobVec): a sequence of Blobs, and
/// `add_blob(*shape)` for Python layers that learn, whose blobs the solver
/// then updates like any layer's.
#[pyclass(unsendable, sequence, name = "BlobVec", module = "caffe._caffe")]
pub struct PyBlobVec {
    pub(crate) blobs: Rc<RefCell<Vec<SharedBlob>>>,
}

#[pymethods]
impl PyBlobVec {
    fn __len__(&self) -> usize {
        self.blobs.borrow().len()
    }

    fn __getitem__(&self, index: isize) -> PyResult<PyBlob> {
        let blobs = self.blobs.borrow();
        let n = blobs.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if !(0..n).contains(&i) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "blob index {index} is outside the layer's {n} blobs"
            )));
        }
        Ok(PyBlob::new(blobs[i as usize].clone()))
    }

    /// Appends a zero-filled blob of shape `dims` (only meaningful in a Python
    /// layer's setup: the net registers a layer's parameters after setup).
    #[pyo3(signature = (*dims))]
    fn add_blob(&self, dims: &Bound<'_, PyTuple>) -> PyResult<()> {
        let blob = crema::Blob::shared(&[]);
        PyBlob::new(blob.clone()).reshape(dims)?;
        self.blobs.borrow_mut().push(blob);
        Ok(())
    }

    fn __repr__(&self) -> String {
        let shapes: Vec<String> = self
            .blobs
            .borrow()
            .iter()
            .map(|b| format!("({})", b.borrow().shape_string()))
            .collect();
        format!("<caffe BlobVec [{}]>", shapes.join(", "))
    }
}
