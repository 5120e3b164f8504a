//! Solvers: build from a solver prototxt, train, restore, and reach the nets
//! (Caffe's Solver<float>; the prototxt's `type` picks the update rule).
use std::ffi::{c_char, c_int};

use crema::Solver;

use crate::error::{arg_str, call, check_file, check_index, put, CError, R};
use crate::registry::{self, Handle, Object};

fn with_solver<T>(h: Handle, f: impl FnOnce(&mut Solver) -> R<T>) -> R<T> {
    registry::with(|r| f(r.solver_mut(h)?))
}

/// Reads a solver prototxt and builds its train and test nets. Relative
/// paths inside it (net, snapshot_prefix) are taken from the working
/// directory, as Caffe does.
#[no_mangle]
pub extern "C" fn crema_solver_new(solver_file: *const c_char, out: *mut Handle) -> c_int {
    call("crema_solver_new", || {
        let path = arg_str(solver_file, "solver_file")?;
        if out.is_null() {
            return Err(CError::argument("out is NULL"));
        }
        check_file(path)?;
        let param = crema::proto::files::read_solver_text(path)?;
        let solver = Solver::new(&param)?;
        let h = registry::with(|r| Ok(r.insert_root(Object::Solver(Box::new(solver)))))?;
        put(out, "out", h)
    })
}

/// Deletes a solver with its nets and every handle taken from them.
#[no_mangle]
pub extern "C" fn crema_solver_delete(solver: Handle) -> c_int {
    call("crema_solver_delete", || {
        registry::with(|r| r.delete(solver, "solver"))
    })
}

/// The number of updates done so far.
#[no_mangle]
pub extern "C" fn crema_solver_iter(solver: Handle, out: *mut c_int) -> c_int {
    call("crema_solver_iter", || {
        let i = with_solver(solver, |s| Ok(s.iter()))?;
        put(out, "out", i)
    })
}

/// The solver's max_iter.
#[no_mangle]
pub extern "C" fn crema_solver_max_iter(solver: Handle, out: *mut c_int) -> c_int {
    call("crema_solver_max_iter", || {
        let i = with_solver(solver, |s| Ok(s.param().max_iter()))?;
        put(out, "out", i)
    })
}

/// The handle of the train net (shares the solver's memory).
#[no_mangle]
pub extern "C" fn crema_solver_net(solver: Handle, out: *mut Handle) -> c_int {
    call("crema_solver_net", || {
        let h = registry::with(|r| r.solver_net(solver, None))?;
        put(out, "out", h)
    })
}

/// How many test nets the solver has.
#[no_mangle]
pub extern "C" fn crema_solver_test_net_count(solver: Handle, out: *mut usize) -> c_int {
    call("crema_solver_test_net_count", || {
        let n = with_solver(solver, |s| Ok(s.test_nets().len()))?;
        put(out, "out", n)
    })
}

/// The handle of test net `index`.
#[no_mangle]
pub extern "C" fn crema_solver_test_net(solver: Handle, index: usize, out: *mut Handle) -> c_int {
    call("crema_solver_test_net", || {
        let h = registry::with(|r| {
            check_index(index, r.solver_mut(solver)?.test_nets().len(), "test net")?;
            r.solver_net(solver, Some(index))
        })?;
        put(out, "out", h)
    })
}

/// Runs `iters` iterations (forward, backward, update, tests, snapshots).
#[no_mangle]
pub extern "C" fn crema_solver_step(solver: Handle, iters: c_int) -> c_int {
    call("crema_solver_step", || {
        if iters < 0 {
            return Err(CError::argument(format!(
                "iters must not be negative, got {iters}"
            )));
        }
        with_solver(solver, |s| Ok(s.step(iters)?))
    })
}

/// Trains to max_iter, first restoring `resume_file` (may be NULL).
#[no_mangle]
pub extern "C" fn crema_solver_solve(solver: Handle, resume_file: *const c_char) -> c_int {
    call("crema_solver_solve", || {
        let resume = if resume_file.is_null() {
            None
        } else {
            let p = arg_str(resume_file, "resume_file")?;
            check_file(p)?;
            Some(std::path::PathBuf::from(p))
        };
        with_solver(solver, |s| Ok(s.solve(resume.as_deref())?))
    })
}

/// Restores weights, history and iteration from a .solverstate.
#[no_mangle]
pub extern "C" fn crema_solver_restore(solver: Handle, state_file: *const c_char) -> c_int {
    call("crema_solver_restore", || {
        let p = arg_str(state_file, "state_file")?;
        check_file(p)?;
        with_solver(solver, |s| Ok(s.restore(p)?))
    })
}

/// Writes `<prefix>_iter_N.caffemodel` and `.solverstate` now.
#[no_mangle]
pub extern "C" fn crema_solver_snapshot(solver: Handle) -> c_int {
    call("crema_solver_snapshot", || {
        with_solver(solver, |s| Ok(s.snapshot()?))
    })
}
