//! The solver hook that makes replicas train as one: the root's weights at
//! the start, summed-and-averaged gradients before every update, and the
//! root's stop/snapshot decisions.
use std::time::{Duration, Instant};

use super::Communicator;
use crate::error::Result;
use crate::net::Net;
use crate::solvers::{DisplayEvent, SolverAction, SolverHook};

/// Gradient exchange for one replica (Caffe's NCCL callback: all-reduce, then
/// scale by 1/N, so the update sees the mean gradient over replicas).
pub struct GradientSync {
    comm: Box<dyn Communicator>,
    flat: Vec<f32>,
    /// Time spent in collectives, for the benchmark's report.
    comm_time: Duration,
    /// `comm_time` and the iteration at the last display.
    shown: (Duration, i32),
}

impl GradientSync {
    pub fn new(comm: Box<dyn Communicator>) -> GradientSync {
        GradientSync {
            comm,
            flat: Vec::new(),
            comm_time: Duration::ZERO,
            shown: (Duration::ZERO, 0),
        }
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }
    pub fn size(&self) -> usize {
        self.comm.size()
    }
    /// Total time spent exchanging weights and gradients so far.
    pub fn comm_time(&self) -> Duration {
        self.comm_time
    }
    /// The communicator, to tell the others about an error.
    pub fn comm_mut(&mut self) -> &mut dyn Communicator {
        self.comm.as_mut()
    }

    /// Packs every learnable parameter's data (or diff) into `self.flat`.
    fn gather(&mut self, net: &Net, diff: bool) {
        self.flat.clear();
        for p in net.learnable_params() {
            let p = p.borrow();
            self.flat
                .extend_from_slice(if diff { p.diff() } else { p.data() });
        }
    }

    fn scatter(&self, net: &Net, diff: bool, scale: f32) {
        let mut at = 0;
        for p in net.learnable_params() {
            let mut p = p.borrow_mut();
            let dst = if diff { p.diff_mut() } else { p.data_mut() };
            for (d, s) in dst.iter_mut().zip(&self.flat[at..]) {
                *d = s * scale;
            }
            at += dst.len();
        }
    }
}

impl SolverHook for GradientSync {
    fn on_train_start(&mut self, net: &mut Net) -> Result<()> {
        if self.comm.size() == 1 {
            return Ok(());
        }
        let t = Instant::now();
        self.gather(net, false);
        self.comm.broadcast(&mut self.flat, 0)?;
        self.scatter(net, false, 1.0);
        self.comm_time += t.elapsed();
        Ok(())
    }

    fn on_gradients_ready(&mut self, net: &mut Net) -> Result<()> {
        let n = self.comm.size();
        if n == 1 {
            return Ok(());
        }
        let t = Instant::now();
        self.gather(net, true);
        self.comm.all_reduce_sum(&mut self.flat)?;
        self.scatter(net, true, 1.0 / n as f32);
        self.comm_time += t.elapsed();
        Ok(())
    }

    /// Logs the exchange's share of the time beside Caffe's display lines.
    fn on_display(&mut self, event: &DisplayEvent) {
        let (before, at) = self.shown;
        self.shown = (self.comm_time, event.iter);
        let steps = event.iter - at;
        if self.comm.size() == 1 || steps <= 0 || event.iters_per_s <= 0.0 {
            return;
        }
        let per_iter = (self.comm_time - before).as_secs_f32() / steps as f32;
        log::info!(
            "    Gradient exchange ({} replicas): {:.1} ms per iteration ({:.1}% of the time)",
            self.comm.size(),
            1000.0 * per_iter,
            100.0 * per_iter * event.iters_per_s
        );
    }

    fn sync_action(&mut self, action: SolverAction) -> Result<SolverAction> {
        if self.comm.size() == 1 {
            return Ok(action);
        }
        let code = match action {
            SolverAction::None => 0.0,
            SolverAction::Stop => 1.0,
            SolverAction::Snapshot => 2.0,
        };
        let mut buf = [code];
        self.comm.broadcast(&mut buf, 0)?;
        Ok(match buf[0] as i32 {
            1 => SolverAction::Stop,
            2 => SolverAction::Snapshot,
            _ => SolverAction::None,
        })
    }
}
