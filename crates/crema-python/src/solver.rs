//! `caffe._caffe.Solver`: the engine's Solver with its train and test nets.
use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use crema::solvers::SolverHook;
use crema::Solver;
use pyo3::prelude::*;

use crate::net::{NetOwner, PyNet};
use crate::py_err;

/// A solver built from a solver prototxt (Caffe's Solver<float>).
#[pyclass(unsendable, name = "Solver", module = "caffe._caffe")]
pub struct PySolver {
    pub(crate) solver: Solver,
    /// The iteration in progress, kept by the callbacks: a callback cannot
    /// borrow the running solver, so `Solver.iter` reads this instead.
    running_iter: Py<IterCell>,
}

/// The iteration a running solver is at, readable while it runs.
#[pyclass(unsendable, name = "_IterCell", module = "caffe._caffe")]
pub struct IterCell {
    value: Rc<Cell<i32>>,
}

#[pymethods]
impl IterCell {
    #[getter]
    fn value(&self) -> i32 {
        self.value.get()
    }
}

#[pymethods]
impl PySolver {
    /// Reads the solver prototxt and builds its nets. `type` ("SGD", "Adam",
    /// ...) overrides the file's, as pycaffe's SGDSolver(file) etc. do.
    #[new]
    #[pyo3(signature = (filename, r#type = None))]
    fn py_new(py: Python<'_>, filename: PathBuf, r#type: Option<String>) -> PyResult<Self> {
        let mut param =
            crema::proto::files::read_solver_text(&filename).map_err(|e| py_err(e.into()))?;
        if let Some(t) = r#type {
            param.set_type(t);
        }
        let solver = Solver::with_factory(&param, &crate::python_layer::factory).map_err(py_err)?;
        let running_iter = Py::new(
            py,
            IterCell {
                value: Rc::new(Cell::new(0)),
            },
        )?;
        Ok(PySolver {
            solver,
            running_iter,
        })
    }

    /// The solver type that runs ("SGD", "Nesterov", ...).
    #[getter]
    fn r#type(&self) -> String {
        self.solver.param().type_().to_string()
    }

    /// The solver's parameters, serialized (caffe.Solver.param parses them).
    fn _param_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        use protobuf::Message;
        let bytes = self
            .solver
            .param()
            .write_to_bytes()
            .map_err(|e| crate::CaffeError::new_err(e.to_string()))?;
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
        Py::new(
            this.py(),
            PyNet {
                owner: NetOwner::Solver {
                    solver: this.clone().unbind(),
                    test: None,
                },
            },
        )
    }

    /// The test nets, in the order of the solver's test_net/test_net_param entries.
    #[getter]
    fn test_nets(this: &Bound<'_, Self>) -> PyResult<Vec<Py<PyNet>>> {
        let n = this.borrow().solver.test_nets().len();
        (0..n)
            .map(|i| {
                Py::new(
                    this.py(),
                    PyNet {
                        owner: NetOwner::Solver {
                            solver: this.clone().unbind(),
                            test: Some(i),
                        },
                    },
                )
            })
            .collect()
    }

    /// Calls `on_start()` before each iteration's first forward pass and
    /// `on_gradients()` once its gradients are ready, before the update
    /// (Caffe's Solver::Callback). An exception stops the step with it.
    fn add_callback(&mut self, py: Python<'_>, on_start: Py<PyAny>, on_gradients: Py<PyAny>) {
        let iter = self.running_iter.borrow(py).value.clone();
        self.solver.add_hook(Box::new(PyCallback {
            on_start,
            on_gradients,
            iter,
        }));
    }

    /// The cell that holds the running iteration (read by `Solver.iter`).
    #[getter]
    fn _iter_cell(&self, py: Python<'_>) -> Py<IterCell> {
        self.running_iter.clone_ref(py)
    }

    /// Applies the accumulated gradients once, as one iteration's update does
    /// (rate, clipping, regularization, the rule), without advancing `iter`.
    fn apply_update(&mut self) -> PyResult<()> {
        self.solver.apply_update().map_err(py_err)
    }

    /// Makes `net` use the train net's weights (pycaffe's share_weights).
    fn share_weights(&mut self, py: Python<'_>, net: &Bound<'_, PyNet>) -> PyResult<()> {
        let source = self.solver.net();
        net.try_borrow_mut()
            .map_err(|_| crate::CaffeError::new_err("share_weights: the net is in use"))?
            .with_net(py, |n| n.share_trained_layers_with(source))?
            .map_err(py_err)
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

/// Python callables run by the training loop.
struct PyCallback {
    on_start: Py<PyAny>,
    on_gradients: Py<PyAny>,
    iter: Rc<Cell<i32>>,
}

impl PyCallback {
    fn run(f: &Py<PyAny>, what: &str) -> crema::Result<()> {
        Python::attach(|py| {
            f.call0(py)
                .map(|_| ())
                .map_err(|e| crema::Error::Other(format!("solver callback {what} raised {e}")))
        })
    }
}

impl SolverHook for PyCallback {
    fn on_start(&mut self, iter: i32) -> crema::Result<()> {
        self.iter.set(iter);
        PyCallback::run(&self.on_start, "on_start")
    }
    fn on_gradients_ready(&mut self, _net: &mut crema::Net) -> crema::Result<()> {
        PyCallback::run(&self.on_gradients, "on_gradients")
    }
}
