//! The solver hook that makes replicas train as one: the root's weights at
//! the start, summed-and-averaged gradients before every update, and the
//! root's stop/snapshot decisions.
//!
//! Two ways to exchange gradients. Blocking: after backward, one all-reduce
//! of every gradient. Overlapped (Caffe's layer-wise reduce): as backward
//! finishes each layer, its gradients go into a bucket, and a full bucket is
//! reduced on the exchange thread while the layers below still compute;
//! before the update only the last bucket's exchange is waited for.
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::exchange_thread::{ExchangeThread, Request};
use super::Communicator;
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::net::Net;
use crate::solvers::{DisplayEvent, SolverAction, SolverHook};

/// Gradients of small layers travel together in buckets of at least this
/// many values (1 MiB), so no exchange is too small to be worth its latency.
const BUCKET_VALUES: usize = 256 * 1024;

/// Gradient exchange for one replica (Caffe's NCCL callback: all-reduce, then
/// scale by 1/N, so the update sees the mean gradient over replicas).
pub struct GradientSync {
    mode: Mode,
    rank: usize,
    size: usize,
    flat: Vec<f32>,
    /// Time the training thread spent waiting on exchanges.
    comm_time: Duration,
    /// `comm_time` and the iteration at the last display.
    shown: (Duration, i32),
}

enum Mode {
    Blocking(Box<dyn Communicator>),
    Overlapped(Rc<RefCell<Overlap>>),
}

/// The overlapped exchange's state, shared with the net's backward observer.
struct Overlap {
    thread: ExchangeThread,
    params: Vec<SharedBlob>,
    /// Learnable params whose gradient is final once backward has run the
    /// layer: those the layer uses, less any a lower layer also uses.
    final_after: Vec<Vec<usize>>,
    /// Gradients are collected between `on_start` and `on_gradients_ready`
    /// only (not on a pycaffe `net.backward()` outside the solver).
    armed: bool,
    bucket: Vec<f32>,
    bucket_ids: Vec<usize>,
    /// Param ids of each bucket in flight, oldest first.
    in_flight: Vec<Vec<usize>>,
    sent: Vec<bool>,
    error: Option<Error>,
}

impl Overlap {
    fn layer_done(&mut self, layer: usize) {
        if !self.armed || self.error.is_some() {
            return;
        }
        for k in 0..self.final_after.get(layer).map_or(0, Vec::len) {
            let id = self.final_after[layer][k];
            self.add(id);
        }
        if self.bucket.len() >= BUCKET_VALUES {
            self.flush();
        }
    }

    fn add(&mut self, id: usize) {
        if !self.sent[id] {
            self.sent[id] = true;
            self.bucket
                .extend_from_slice(self.params[id].borrow().diff());
            self.bucket_ids.push(id);
        }
    }

    fn flush(&mut self) {
        if self.bucket_ids.is_empty() {
            return;
        }
        let bucket = std::mem::take(&mut self.bucket);
        match self.thread.send(Request::AllReduce(bucket)) {
            Ok(()) => self.in_flight.push(std::mem::take(&mut self.bucket_ids)),
            Err(e) => self.error = Some(e),
        }
    }
}

/// Packs every learnable parameter's data (or diff) into `flat`.
fn gather(flat: &mut Vec<f32>, net: &Net, diff: bool) {
    flat.clear();
    for p in net.learnable_params() {
        let p = p.borrow();
        flat.extend_from_slice(if diff { p.diff() } else { p.data() });
    }
}

/// Unpacks `flat` into every learnable parameter's data (or diff), scaled.
fn scatter(flat: &[f32], net: &Net, diff: bool, scale: f32) {
    let mut at = 0;
    for p in net.learnable_params() {
        let mut p = p.borrow_mut();
        let dst = if diff { p.diff_mut() } else { p.data_mut() };
        at += write_scaled(dst, &flat[at..], scale);
    }
}

/// dst = scale * src[..dst.len()]; returns dst.len().
fn write_scaled(dst: &mut [f32], src: &[f32], scale: f32) -> usize {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s * scale;
    }
    dst.len()
}

impl GradientSync {
    /// A blocking exchange on `comm`.
    pub fn new(comm: Box<dyn Communicator>) -> GradientSync {
        GradientSync {
            rank: comm.rank(),
            size: comm.size(),
            mode: Mode::Blocking(comm),
            flat: Vec::new(),
            comm_time: Duration::ZERO,
            shown: (Duration::ZERO, 0),
        }
    }

    /// An exchange overlapped with `net`'s backward, on its own thread.
    /// Only for nets updated after every backward (iter_size 1).
    pub fn overlapped(comm: Box<dyn Communicator>, net: &mut Net) -> Result<GradientSync> {
        let (rank, size) = (comm.rank(), comm.size());
        let params = net.learnable_params().to_vec();
        // The lowest layer using a param (by index) runs its backward last.
        let mut last_user = vec![usize::MAX; params.len()];
        for (layer, ids) in net.param_id_vecs().iter().enumerate() {
            for &pid in ids {
                let id = net.learnable_param_ids()[pid];
                last_user[id] = last_user[id].min(layer);
            }
        }
        let mut final_after = vec![Vec::new(); net.layers().len()];
        for (id, &layer) in last_user.iter().enumerate() {
            if layer != usize::MAX {
                final_after[layer].push(id);
            }
        }
        let overlap = Rc::new(RefCell::new(Overlap {
            thread: ExchangeThread::start(comm)?,
            sent: vec![false; params.len()],
            params,
            final_after,
            armed: false,
            bucket: Vec::new(),
            bucket_ids: Vec::new(),
            in_flight: Vec::new(),
            error: None,
        }));
        let weak: Weak<RefCell<Overlap>> = Rc::downgrade(&overlap);
        net.set_backward_observer(Some(Box::new(move |layer| {
            if let Some(o) = weak.upgrade() {
                o.borrow_mut().layer_done(layer);
            }
        })));
        Ok(GradientSync {
            rank,
            size,
            mode: Mode::Overlapped(overlap),
            flat: Vec::new(),
            comm_time: Duration::ZERO,
            shown: (Duration::ZERO, 0),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn size(&self) -> usize {
        self.size
    }
    /// Total time the training thread waited for exchanges so far.
    pub fn comm_time(&self) -> Duration {
        self.comm_time
    }

    /// Broadcasts `buf` from `root`, on whichever side holds the communicator.
    fn broadcast(&mut self, buf: Vec<f32>, root: usize) -> Result<Vec<f32>> {
        match &mut self.mode {
            Mode::Blocking(comm) => {
                let mut buf = buf;
                comm.broadcast(&mut buf, root)?;
                Ok(buf)
            }
            Mode::Overlapped(o) => o.borrow().thread.call(Request::Broadcast(buf, root)),
        }
    }

    /// Waits for every bucket of this iteration and writes the mean
    /// gradients back; sends whatever backward did not (layers without a
    /// backward, shared blobs) in a last bucket first.
    fn finish_overlapped(o: &Rc<RefCell<Overlap>>, n: usize) -> Result<()> {
        let mut o = o.borrow_mut();
        o.armed = false;
        for id in 0..o.params.len() {
            o.add(id);
        }
        o.flush();
        let in_flight = std::mem::take(&mut o.in_flight);
        o.sent.iter_mut().for_each(|s| *s = false);
        if let Some(e) = o.error.take() {
            return Err(e);
        }
        let scale = 1.0 / n as f32;
        for ids in in_flight {
            let sums = o.thread.receive()?;
            let mut at = 0;
            for id in ids {
                at += write_scaled(o.params[id].borrow_mut().diff_mut(), &sums[at..], scale);
            }
        }
        Ok(())
    }
}

impl SolverHook for GradientSync {
    fn on_train_start(&mut self, net: &mut Net) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let t = Instant::now();
        gather(&mut self.flat, net, false);
        let flat = std::mem::take(&mut self.flat);
        self.flat = self.broadcast(flat, 0)?;
        scatter(&self.flat, net, false, 1.0);
        self.comm_time += t.elapsed();
        Ok(())
    }

    fn on_start(&mut self, _iter: i32) -> Result<()> {
        if let Mode::Overlapped(o) = &self.mode {
            o.borrow_mut().armed = self.size > 1;
        }
        Ok(())
    }

    fn on_gradients_ready(&mut self, net: &mut Net) -> Result<()> {
        let n = self.size;
        if n == 1 {
            return Ok(());
        }
        let t = Instant::now();
        match &mut self.mode {
            Mode::Blocking(comm) => {
                gather(&mut self.flat, net, true);
                comm.all_reduce_sum(&mut self.flat)?;
                scatter(&self.flat, net, true, 1.0 / n as f32);
            }
            Mode::Overlapped(o) => GradientSync::finish_overlapped(o, n)?,
        }
        self.comm_time += t.elapsed();
        Ok(())
    }

    /// Logs the exchange's share of the time beside Caffe's display lines.
    fn on_display(&mut self, event: &DisplayEvent) {
        let (before, at) = self.shown;
        self.shown = (self.comm_time, event.iter);
        let steps = event.iter - at;
        if self.size == 1 || steps <= 0 || event.iters_per_s <= 0.0 {
            return;
        }
        let per_iter = (self.comm_time - before).as_secs_f32() / steps as f32;
        let how = match self.mode {
            Mode::Blocking(_) => "",
            Mode::Overlapped(_) => ", overlapped with backward",
        };
        log::info!(
            "    Gradient exchange ({} replicas{how}): {:.1} ms per iteration waited ({:.1}% of the time)",
            self.size,
            1000.0 * per_iter,
            100.0 * per_iter * event.iters_per_s
        );
    }

    fn sync_action(&mut self, action: SolverAction) -> Result<SolverAction> {
        if self.size == 1 {
            return Ok(action);
        }
        let code = match action {
            SolverAction::None => 0.0,
            SolverAction::Stop => 1.0,
            SolverAction::Snapshot => 2.0,
        };
        let buf = self.broadcast(vec![code], 0)?;
        Ok(match buf[0] as i32 {
            1 => SolverAction::Stop,
            2 => SolverAction::Snapshot,
            _ => SolverAction::None,
        })
    }
}
