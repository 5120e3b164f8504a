//! Layers written in Python (`type: "Python"`, `python_param { module layer
//! param_str }`), as pycaffe runs them: the class is imported and instantiated
//! with the LayerParameter, gets `param_str` and `phase`, and its setup /
//! reshape / forward / backward are called with lists of Blobs.
use crema::proto::caffe::LayerParameter;
use crema::{Layer, SharedBlob};
use pyo3::prelude::*;
use pyo3::types::PyList;

use std::cell::RefCell;
use std::rc::Rc;

use crate::blob::PyBlob;
use crate::net::PyLayer;

/// Makes the crema layer for `param`, a Python one for type "Python"; nets and
/// solvers built from Python use this factory.
pub(crate) fn factory(param: &LayerParameter) -> crema::Result<Box<dyn Layer>> {
    if param.type_() == "Python" {
        Ok(Box::new(PythonLayer::new(param)?))
    } else {
        crema::create_layer(param)
    }
}

pub(crate) struct PythonLayer {
    param: LayerParameter,
    obj: Py<PyAny>,
    /// The learnable blobs the layer made with `self.blobs.add_blob` (read
    /// after setup); the net may put a shared owner's blob in their place.
    blobs: Vec<SharedBlob>,
    /// The Python object's own list (when it derives from caffe.Layer).
    py_blobs: Option<Rc<RefCell<Vec<SharedBlob>>>>,
}

/// A Python exception as a crema error (the net adds the layer's name).
fn err(py: Python<'_>, what: &str, e: PyErr) -> crema::Error {
    let tb = e
        .traceback(py)
        .and_then(|t| t.format().ok())
        .unwrap_or_default();
    crema::Error::Other(format!("{what}: {e}\n{tb}"))
}

impl PythonLayer {
    /// The Python object behind the layer (what `net.layers` shows for it).
    pub(crate) fn object(&self, py: Python<'_>) -> Py<PyAny> {
        self.obj.clone_ref(py)
    }

    pub(crate) fn new(param: &LayerParameter) -> crema::Result<Self> {
        let pp = param.python_param.clone().unwrap_or_default();
        let what = format!("Python layer {}.{}", pp.module(), pp.layer());
        Python::attach(|py| {
            let build = || -> PyResult<Py<PyAny>> {
                use protobuf::Message;
                let bytes = param
                    .write_to_bytes()
                    .map_err(|e| crate::CaffeError::new_err(e.to_string()))?;
                let pb = py
                    .import("caffe.proto.caffe_pb2")?
                    .getattr("LayerParameter")?
                    .call_method1("FromString", (pyo3::types::PyBytes::new(py, &bytes),))?;
                let cls = py.import(pp.module())?.getattr(pp.layer())?;
                let obj = cls.call1((pb,))?;
                obj.setattr("param_str", pp.param_str())?;
                obj.setattr("phase", param.phase() as i32)?;
                Ok(obj.unbind())
            };
            let obj = build().map_err(|e| err(py, &what, e))?;
            let py_blobs = obj
                .bind(py)
                .cast::<PyLayer>()
                .ok()
                .map(|l| l.borrow().blobs.clone());
            Ok(PythonLayer {
                param: param.clone(),
                obj,
                blobs: Vec::new(),
                py_blobs,
            })
        })
    }

    fn call(
        &mut self,
        method: &str,
        a: &[SharedBlob],
        flags: Option<&[bool]>,
        b: &[SharedBlob],
    ) -> crema::Result<()> {
        // The Python side sees the blobs the net holds (shared ones included).
        if let Some(list) = &self.py_blobs {
            list.borrow_mut().clone_from(&self.blobs);
        }
        Python::attach(|py| {
            let blobs = |v: &[SharedBlob]| -> PyResult<Bound<'_, PyList>> {
                let objs = v
                    .iter()
                    .map(|s| Py::new(py, PyBlob::new(s.clone())))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, objs)
            };
            let run = || -> PyResult<()> {
                let obj = self.obj.bind(py);
                match flags {
                    None => obj.call_method1(method, (blobs(a)?, blobs(b)?))?,
                    Some(f) => obj.call_method1(method, (blobs(a)?, f.to_vec(), blobs(b)?))?,
                };
                Ok(())
            };
            run().map_err(|e| err(py, &format!("{}.{method}", self.param.name()), e))
        })
    }
}

impl Layer for PythonLayer {
    fn type_name(&self) -> &'static str {
        "Python"
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        self.call("setup", bottom, None, top)?;
        if let Some(list) = &self.py_blobs {
            self.blobs = list.borrow().clone();
        }
        Ok(())
    }
    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        self.call("reshape", bottom, None, top)
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        self.call("forward", bottom, None, top)
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> crema::Result<()> {
        self.call("backward", top, Some(propagate_down), bottom)
    }
}
