//! `caffe._caffe.Solver`: the engine's Solver with its train and test nets.
use std::path::PathBuf;

use crema::Solver;
use pyo3::prelude::*;

use crate::net::{NetOwner, PyNet};
use crate::py_err;

/// A solver built from a solver prototxt (Caffe's Solver<float>).
#[pyclass(unsendable, name = "Solver", module = "caffe._caffe")]
pub struct PySolver {
    pub(crate) solver: Solver,
}

#[pymethods]
impl PySolver {
    /// Reads the solver prototxt and builds its nets. `type` ("SGD", "Adam",
    /// ...) overrides the file's, as pycaffe's SGDSolver(file) etc. do.
    #[new]
    #[pyo3(signature = (filename, r#type = None))]
    fn py_new(filename: PathBuf, r#type: Option<String>) -> PyResult<Self> {
        let mut param = crema::proto::files::read_solver_text(&filename).map_err(|e| py_err(e.into()))?;
        if let Some(t) = r#type {
            param.set_type(t);
        }
        let solver = Solver::with_factory(&param, &crate::python_layer::factory).map_err(py_err)?;
        Ok(PySolver { solver })
    }

    /// The solver type that runs ("SGD", "Nesterov", ...).
    #[getter]
    fn r#type(&self) -> String {
        self.solver.param().type_().to_string()
    }

    /// The solver's parameters, serialized (caffe.Solver.param parses them).
    fn _param_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        use protobuf::Message;
        let bytes = self.solver.param().write_to_bytes().map_err(|e| crate::CaffeError::new_err(e.to_string()))?;
        Ok(pyo3::types::PyBytes::new(py, &bytes))
    }

    /// The number of updates done so far.
    #[getter]
    fn iter(&self) -> i32 {
        self.solver.iter()
    }

    /// The train net (shares the solver's memory; a forward on it is a forward of the solver's net).
    #[getter]
    fn net(this: &Bound<'_, Self>) -> PyResult<Py<PyNet>> {
        Py::new(this.py(), PyNet { owner: NetOwner::Solver { solver: this.clone().unbind(), test: None } })
    }

    /// The test nets, in the order of the solver's test_net/test_net_param entries.
    #[getter]
    fn test_nets(this: &Bound<'_, Self>) -> PyResult<Vec<Py<PyNet>>> {
        let n = this.borrow().solver.test_nets().len();
        (0..n)
            .map(|i| Py::new(this.py(), PyNet { owner: NetOwner::Solver { solver: this.clone().unbind(), test: Some(i) } }))
            .collect()
    }

    /// Runs `iters` iterations (forward, backward, update, tests, snapshots).
    fn step(&mut self, iters: i32) -> PyResult<()> {
        self.solver.step(iters).map_err(py_err)
    }

    /// Trains to max_iter, first restoring `resume` (a .solverstate) when given.
    #[pyo3(signature = (resume = None))]
    fn solve(&mut self, resume: Option<PathBuf>) -> PyResult<()> {
        self.solver.solve(resume.as_deref()).map_err(py_err)
    }

    /// Restores the weights and history of a .solverstate.
    fn restore(&mut self, path: PathBuf) -> PyResult<()> {
        self.solver.restore(&path).map_err(py_err)
    }

    /// Writes `<prefix>_iter_N.caffemodel` and `.solverstate` now.
    fn snapshot(&mut self) -> PyResult<()> {
        self.solver.snapshot().map_err(py_err)
    }
}
