//! Observers of a training run, called by the solver loop at fixed points:
//! the dashboard's event file, the data-parallel gradient exchange and
//! pycaffe's `Solver.add_callback` all hang off this one trait.
use std::path::PathBuf;

use super::SolverAction;
use crate::error::Result;
use crate::net::Net;

/// A display step: what Caffe logs as `Iteration N (... iter/s ...), loss = L`
/// and the `Train net output` lines after it.
#[derive(Clone, Debug)]
pub struct DisplayEvent {
    pub iter: i32,
    /// This iteration's loss (mean over iter_size passes).
    pub loss: f32,
    /// The average_loss-smoothed loss that Caffe logs.
    pub smoothed_loss: f32,
    pub lr: f32,
    pub iters_per_s: f32,
    /// Each train net output value, named as Caffe logs it.
    pub outputs: Vec<(String, f32)>,
}

/// A finished test pass of test net `net_id`: the mean of every output.
#[derive(Clone, Debug)]
pub struct TestEvent {
    pub iter: i32,
    pub net_id: usize,
    pub outputs: Vec<(String, f32)>,
    /// The mean test loss, when test_compute_loss is set.
    pub loss: Option<f32>,
}

/// Hooks into the training loop; every method has a do-nothing default.
pub trait SolverHook {
    /// When `step` begins, before any iteration: a data-parallel replica
    /// takes the root's weights here.
    fn on_train_start(&mut self, _net: &mut Net) -> Result<()> {
        Ok(())
    }
    /// Before an iteration's first forward pass (Caffe's Callback::on_start).
    fn on_start(&mut self, _iter: i32) -> Result<()> {
        Ok(())
    }
    /// After all iter_size forward/backward passes, before the update: the
    /// place to all-reduce gradients (Caffe's Callback::on_gradients_ready).
    fn on_gradients_ready(&mut self, _net: &mut Net) -> Result<()> {
        Ok(())
    }
    fn on_display(&mut self, _event: &DisplayEvent) {}
    fn on_test(&mut self, _event: &TestEvent) {}
    /// After a snapshot's files are written.
    fn on_snapshot(&mut self, _iter: i32, _files: &[PathBuf]) {}
    /// Between iterations, given the action this process would take (a
    /// signal's, or Stop after an interrupted test); returns the one to take.
    /// Data-parallel replicas all take the root's, so they stop together.
    fn sync_action(&mut self, action: SolverAction) -> Result<SolverAction> {
        Ok(action)
    }
}
