//! `caffe._caffe.Net` and `caffe._caffe.Layer`: the engine's Net with the
//! primitive methods pycaffe's Python layer is written against.
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use crema::proto::caffe::Phase;
use crema::Net;
use protobuf::Enum;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

use crate::blob::{PyBlob, PyBlobVec};
use crate::py_err;
use crate::solver::PySolver;

/// Who owns the Rust Net behind a Python Net.
pub(crate) enum NetOwner {
    /// Built by `caffe.Net(...)`.
    Own(Box<Net>),
    /// A solver's train net (`test: None`) or one of its test nets.
    Solver {
        solver: Py<PySolver>,
        test: Option<usize>,
    },
}

/// A network built from a prototxt (Caffe's Net<float>).
#[pyclass(unsendable, name = "Net", module = "caffe._caffe")]
pub struct PyNet {
    pub(crate) owner: NetOwner,
}

pub(crate) fn phase_from(phase: i32) -> PyResult<Phase> {
    Phase::from_i32(phase).ok_or_else(|| {
        PyValueError::new_err(format!(
            "phase must be caffe.TRAIN (0) or caffe.TEST (1), not {phase}"
        ))
    })
}

impl PyNet {
    /// Runs `f` on the Net, wherever it lives.
    pub(crate) fn with_net<R>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut Net) -> R,
    ) -> PyResult<R> {
        match &mut self.owner {
            NetOwner::Own(net) => Ok(f(net)),
            NetOwner::Solver { solver, test } => {
                let mut s = solver.bind(py).try_borrow_mut().map_err(|_| {
                    crate::CaffeError::new_err(
                        "the solver is running (this is a solver callback?) or already in use: \
                         its nets cannot be used now; keep the blobs you need from before the step",
                    )
                })?;
                let net = match test {
                    None => s.solver.net_mut(),
                    Some(i) => &mut s.solver.test_nets_mut()[*i],
                };
                Ok(f(net))
            }
        }
    }

    fn check_layer(net: &Net, i: usize) -> PyResult<()> {
        let n = net.layers().len();
        if i >= n {
            return Err(PyIndexError::new_err(format!(
                "layer index {i} is outside the net's {n} layers"
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl PyNet {
    /// `Net(model, phase, level, stages, weights)`: reads the prototxt (legacy
    /// formats upgraded), builds the net in that state and copies the trained
    /// layers of `weights` (a .caffemodel) when given.
    #[new]
    #[pyo3(signature = (model, phase, level = 0, stages = Vec::new(), weights = None))]
    fn py_new(
        model: PathBuf,
        phase: i32,
        level: i32,
        stages: Vec<String>,
        weights: Option<PathBuf>,
    ) -> PyResult<Self> {
        let phase = phase_from(phase)?;
        // Net::from_file's steps, with a factory that also makes Python layers.
        let mut param = crema::proto::files::read_net_text(&model).map_err(|e| py_err(e.into()))?;
        let state = param.state.mut_or_insert_default();
        state.set_phase(phase);
        state.stage.extend(stages);
        state.set_level(level);
        let mut net =
            Net::from_param_with(&param, &crate::python_layer::factory).map_err(py_err)?;
        if let Some(w) = weights {
            net.copy_trained_layers_from_file(&w).map_err(py_err)?;
        }
        Ok(PyNet {
            owner: NetOwner::Own(Box::new(net)),
        })
    }

    /// Runs layers `start..=end` forward; returns the weighted loss.
    fn _forward(&mut self, py: Python<'_>, start: usize, end: usize) -> PyResult<f32> {
        self.with_net(py, |n| n.forward_from_to(start, end))?
            .map_err(py_err)
    }

    /// Runs layers `start` down to `end` backward (`start >= end`).
    fn _backward(&mut self, py: Python<'_>, start: usize, end: usize) -> PyResult<()> {
        self.with_net(py, |n| n.backward_from_to(start, end))?
            .map_err(py_err)
    }

    /// Reshapes every layer after an input blob changed shape. Arrays taken
    /// from blobs that grew must be taken again.
    fn reshape(&mut self, py: Python<'_>) -> PyResult<()> {
        self.with_net(py, |n| n.reshape())?.map_err(py_err)
    }

    /// Copies the parameters of same-named layers from a .caffemodel.
    fn copy_from(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.with_net(py, |n| n.copy_trained_layers_from_file(&path))?
            .map_err(py_err)
    }

    /// Writes the net's parameters as a binary .caffemodel.
    fn save(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.with_net(py, |n| n.save(&path))?.map_err(py_err)
    }

    /// Zeroes the diffs of every parameter blob.
    fn clear_param_diffs(&mut self, py: Python<'_>) -> PyResult<()> {
        self.with_net(py, |n| n.clear_param_diffs())
    }

    #[getter]
    fn name(&mut self, py: Python<'_>) -> PyResult<String> {
        self.with_net(py, |n| n.name().to_string())
    }

    #[getter]
    fn phase(&mut self, py: Python<'_>) -> PyResult<i32> {
        self.with_net(py, |n| n.phase() as i32)
    }

    #[getter]
    fn _blob_names(&mut self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_net(py, |n| n.blob_names().to_vec())
    }

    #[getter]
    fn _layer_names(&mut self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_net(py, |n| n.layer_names().to_vec())
    }

    /// The net's blobs, in blob-name order.
    #[getter]
    fn _blobs(&mut self, py: Python<'_>) -> PyResult<Vec<PyBlob>> {
        self.with_net(py, |n| {
            n.blobs().iter().map(|b| PyBlob::new(b.clone())).collect()
        })
    }

    /// The layers: crema's as Layer objects, Python layers as their own objects.
    #[getter]
    fn layers(&mut self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        use crate::python_layer::PythonLayer;
        let (names, mut out) = self.with_net(py, |n| (n.layer_names().to_vec(), Vec::new()))?;
        self.with_net(py, |n| {
            for (l, name) in n.layers_mut().iter_mut().zip(&names) {
                let kind = l.type_name().to_string();
                let blobs = Rc::new(RefCell::new(l.blobs().to_vec()));
                let obj = match l.as_any_mut().and_then(|a| a.downcast_mut::<PythonLayer>()) {
                    Some(p) => p.object(py),
                    None => Py::new(
                        py,
                        PyLayer {
                            name: name.clone(),
                            kind,
                            blobs,
                        },
                    )?
                    .into_any(),
                };
                out.push(obj);
            }
            Ok(out)
        })?
    }

    /// Indices (into `_blob_names`) of the net's input blobs.
    #[getter]
    fn _inputs(&mut self, py: Python<'_>) -> PyResult<Vec<usize>> {
        self.with_net(py, |n| n.input_blob_indices().to_vec())
    }

    /// Indices (into `_blob_names`) of the net's output blobs.
    #[getter]
    fn _outputs(&mut self, py: Python<'_>) -> PyResult<Vec<usize>> {
        self.with_net(py, |n| n.output_blob_indices().to_vec())
    }

    /// Each blob's loss weight, in blob order.
    #[getter]
    fn _blob_loss_weights(&mut self, py: Python<'_>) -> PyResult<Vec<f32>> {
        self.with_net(py, |n| n.blob_loss_weights().to_vec())
    }

    /// Feeds `data` (N x C x H x W) and `labels` (N) to the net's first layer,
    /// which must be MemoryData; N must be a multiple of its batch size. The
    /// arrays are copied, so they may be freed or changed afterwards.
    fn _set_input_arrays(
        &mut self,
        py: Python<'_>,
        data: numpy::PyReadonlyArray4<'_, f32>,
        labels: numpy::PyReadonlyArray1<'_, f32>,
    ) -> PyResult<()> {
        use crema::layers::data::memory_data::MemoryDataLayer;
        let n = data.as_array().shape()[0];
        let n_labels = labels.as_array().len();
        if n_labels != n {
            return Err(PyValueError::new_err(format!(
                "{n} data items but {n_labels} labels"
            )));
        }
        let data = data.as_array().iter().copied().collect::<Vec<f32>>();
        let labels = labels.as_array().iter().copied().collect::<Vec<f32>>();
        self.with_net(py, |net| {
            let layer = net
                .layers_mut()
                .first_mut()
                .and_then(|l| l.as_any_mut())
                .and_then(|l| l.downcast_mut::<MemoryDataLayer>())
                .ok_or_else(|| {
                    PyValueError::new_err(
                        "set_input_arrays needs a net whose first layer is MemoryData",
                    )
                })?;
            layer.reset(data, labels, n).map_err(py_err)
        })?
    }

    /// Makes this net use `other`'s parameter blobs in every layer the two
    /// share by name (Caffe's ShareTrainedLayersWith): training `other` is
    /// then seen here without copying. Diffs are shared too.
    fn share_with(&mut self, py: Python<'_>, other: &Bound<'_, PyNet>) -> PyResult<()> {
        let mut other = other
            .try_borrow_mut()
            .map_err(|_| PyValueError::new_err("share_with: a net cannot share with itself"))?;
        other
            .with_net(py, |o| {
                self.with_net(py, |n| n.share_trained_layers_with(o).map_err(py_err))
            })?
            .and_then(|r| r)
    }

    /// Blob indices of layer `i`'s bottoms.
    fn _bottom_ids(&mut self, py: Python<'_>, i: usize) -> PyResult<Vec<usize>> {
        self.with_net(py, |n| {
            PyNet::check_layer(n, i).map(|_| n.bottom_ids(i).to_vec())
        })?
    }

    /// Blob indices of layer `i`'s tops.
    fn _top_ids(&mut self, py: Python<'_>, i: usize) -> PyResult<Vec<usize>> {
        self.with_net(py, |n| {
            PyNet::check_layer(n, i).map(|_| n.top_ids(i).to_vec())
        })?
    }
}

/// One layer of a net: its type and its parameter blobs.
#[pyclass(unsendable, subclass, name = "Layer", module = "caffe._caffe")]
pub struct PyLayer {
    name: String,
    kind: String,
    /// Shared with the BlobVecs handed out, so a Python layer's `add_blob`
    /// lands here, where the engine's side of the layer reads it.
    pub(crate) blobs: Rc<RefCell<Vec<crema::SharedBlob>>>,
}

#[pymethods]
impl PyLayer {
    /// The base of Python layers: crema calls `cls(layer_param)`; subclasses
    /// define setup, reshape, forward and backward.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> Self {
        PyLayer {
            name: String::new(),
            kind: "Python".to_string(),
            blobs: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// The layer's type string ("Convolution", "InnerProduct", ...).
    #[getter]
    fn r#type(&self) -> &str {
        &self.kind
    }

    /// The layer's parameter blobs (weights, then bias), sharing memory with
    /// the net; a Python layer adds its own with `self.blobs.add_blob(*shape)`.
    #[getter]
    fn blobs(&self) -> PyBlobVec {
        PyBlobVec {
            blobs: self.blobs.clone(),
        }
    }

    fn __repr__(&self) -> String {
        format!("<caffe Layer {} ({})>", self.name, self.kind)
    }
}
