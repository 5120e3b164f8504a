//! The training loop, Caffe's Solver::Solve / Step / TestAll / Test, with
//! its log lines word for word and its numbers as iostream prints floats.
use std::path::Path;
use std::time::Instant;

use crema_proto::text::format_g;

use super::{DisplayEvent, Solver, SolverAction, TestEvent};
use crate::error::{Error, Result};
use crate::net::Net;

fn g(v: f32) -> String {
    format_g(f64::from(v), 6)
}

/// ` (* w = w·v loss)` after an output with a loss weight, as Caffe logs it.
fn loss_suffix(weight: f32, value: f32) -> String {
    if weight != 0.0 {
        format!(" (* {} = {} loss)", g(weight), g(weight * value))
    } else {
        String::new()
    }
}

impl Solver {
    /// Trains to `max_iter` (from the restored iteration when `resume_file`
    /// is given), snapshots after training unless told not to, and runs the
    /// final display/test pass.
    pub fn solve(&mut self, resume_file: Option<&Path>) -> Result<()> {
        log::info!("Solving {}", self.net.name());
        log::info!("Learning Rate Policy: {}", self.param.lr_policy());
        self.requested_early_exit = false;
        if let Some(f) = resume_file {
            log::info!("Restoring previous solver status from {}", f.display());
            self.restore(f)?;
        }
        let start_iter = self.iter;
        self.step(self.param.max_iter() - self.iter)?;
        let snapshot = self.param.snapshot();
        if self.root
            && self.param.snapshot_after_train()
            && (snapshot == 0 || self.iter % snapshot != 0)
        {
            self.snapshot()?;
        }
        if self.requested_early_exit {
            log::info!("Optimization stopped early.");
            return Ok(());
        }
        if !self.root {
            return Ok(());
        }
        // One more forward for the display and a last test, as Caffe does:
        // the parameters have been updated max_iter times by now.
        let display = self.param.display();
        if display > 0 && self.iter % display == 0 {
            let loss = self.net.forward()?;
            self.update_smoothed_loss(loss, start_iter);
            log::info!("Iteration {}, loss = {}", self.iter, g(self.smoothed_loss));
        }
        let interval = self.param.test_interval();
        if interval > 0 && self.iter % interval == 0 {
            self.test_all()?;
        }
        log::info!("Optimization Done.");
        Ok(())
    }

    /// Runs `iters` iterations: test when due, forward/backward `iter_size`
    /// times, display, update, snapshot when due, honour stop/snapshot requests.
    pub fn step(&mut self, iters: i32) -> Result<()> {
        let start_iter = self.iter;
        let stop_iter = self.iter + iters;
        self.losses.clear();
        self.smoothed_loss = 0.0;
        self.iterations_last = self.iter;
        let mut timer = Instant::now();
        let mut wait_mark = crate::data::prefetch::total_wait();
        for h in &mut self.hooks {
            h.on_train_start(&mut self.net)?;
        }
        while self.iter < stop_iter {
            self.net.clear_param_diffs();
            let interval = self.param.test_interval();
            if interval > 0
                && self.iter % interval == 0
                && (self.iter > 0 || self.param.test_initialization())
            {
                if self.root {
                    self.test_all()?;
                }
                // A stop asked for during the root's test stops every replica.
                let local = if self.requested_early_exit {
                    SolverAction::Stop
                } else {
                    SolverAction::None
                };
                if self.sync_action(local)? == SolverAction::Stop {
                    self.requested_early_exit = true;
                    break;
                }
            }
            let display =
                self.root && self.param.display() > 0 && self.iter % self.param.display() == 0;
            self.net.set_debug_info(display && self.param.debug_info());
            for h in &mut self.hooks {
                h.on_start(self.iter)?;
            }
            let iter_size = self.param.iter_size();
            let mut loss = 0.0f32;
            for _ in 0..iter_size {
                loss += self.net.forward_backward()?;
            }
            loss /= iter_size as f32;
            if !loss.is_finite() {
                return Err(Error::Other(format!(
                    "Iteration {}: the training loss is {}{}; training diverged, stopping without writing a model (try a lower base_lr, gradient clipping, or check the data)",
                    self.iter,
                    g(loss),
                    first_non_finite(&self.net)
                        .map(|w| format!(", first produced by {w}"))
                        .unwrap_or_default()
                )));
            }
            self.update_smoothed_loss(loss, start_iter);
            let mut per_s = 0.0;
            if display {
                let lapse = timer.elapsed().as_secs_f32();
                per_s = (self.iter - self.iterations_last) as f32
                    / if lapse != 0.0 { lapse } else { 1.0 };
                log::info!(
                    "Iteration {} ({} iter/s, {}s/{} iters), loss = {}",
                    self.iter,
                    g(per_s),
                    g(lapse),
                    self.param.display(),
                    g(self.smoothed_loss)
                );
                let waited = crate::data::prefetch::total_wait();
                let new_wait = waited.saturating_sub(wait_mark).as_secs_f32();
                wait_mark = waited;
                let steps = self.iter - self.iterations_last;
                timer = Instant::now();
                self.iterations_last = self.iter;
                log_outputs(&self.net, "Train");
                // How long forward sat waiting for prefetched batches (only
                // for nets that prefetch): zero when loading keeps up.
                if !waited.is_zero() && steps > 0 {
                    log::info!(
                        "    Data wait: {} ms per iteration ({}% of the time)",
                        g(1000.0 * new_wait / steps as f32),
                        g(100.0 * new_wait / if lapse != 0.0 { lapse } else { 1.0 })
                    );
                }
            }
            for h in &mut self.hooks {
                h.on_gradients_ready(&mut self.net)?;
            }
            self.apply_update()?;
            if display && !self.hooks.is_empty() {
                let event = DisplayEvent {
                    iter: self.iter,
                    loss,
                    smoothed_loss: self.smoothed_loss,
                    lr: self.last_rate,
                    iters_per_s: per_s,
                    outputs: named_outputs(&self.net),
                };
                for h in &mut self.hooks {
                    h.on_display(&event);
                }
            }
            self.iter += 1;
            let local = self.requested_action();
            let request = self.sync_action(local)?;
            let snapshot = self.param.snapshot();
            let due =
                (snapshot > 0 && self.iter % snapshot == 0) || request == SolverAction::Snapshot;
            if due && self.root {
                self.snapshot()?;
            }
            if request == SolverAction::Stop {
                self.requested_early_exit = true;
                break;
            }
        }
        Ok(())
    }

    /// The action every replica takes: the hooks' agreement on `local`.
    fn sync_action(&mut self, local: SolverAction) -> Result<SolverAction> {
        let mut action = local;
        for h in &mut self.hooks {
            action = h.sync_action(action)?;
        }
        Ok(action)
    }

    fn requested_action(&mut self) -> SolverAction {
        match self.action.as_mut() {
            Some(f) => f(),
            None => SolverAction::None,
        }
    }

    /// Caffe's running mean of the last `average_loss` losses.
    fn update_smoothed_loss(&mut self, loss: f32, start_iter: i32) {
        let average_loss = self.param.average_loss().max(1) as usize;
        if self.losses.len() < average_loss {
            self.losses.push(loss);
            let size = self.losses.len() as f32;
            self.smoothed_loss = (self.smoothed_loss * (size - 1.0) + loss) / size;
        } else {
            let idx = (self.iter - start_iter) as usize % average_loss;
            self.smoothed_loss += (loss - self.losses[idx]) / average_loss as f32;
            self.losses[idx] = loss;
        }
    }

    /// Tests every test net, unless a stop was requested.
    pub fn test_all(&mut self) -> Result<()> {
        for id in 0..self.test_nets.len() {
            if self.requested_early_exit {
                break;
            }
            self.test(id)?;
        }
        Ok(())
    }

    /// Runs test net `id` for its test_iter batches with the train net's
    /// current weights and logs the mean of every output.
    pub fn test(&mut self, id: usize) -> Result<()> {
        log::info!("Iteration {}, Testing net (#{id})", self.iter);
        share_trained_layers(&self.net, &mut self.test_nets[id])?;
        let test_iter = self.param.test_iter.get(id).copied().unwrap_or(0);
        let mut scores: Vec<f32> = Vec::new();
        let mut score_output: Vec<usize> = Vec::new();
        let mut loss = 0.0f32;
        for i in 0..test_iter {
            let mut request = self.requested_action();
            while request != SolverAction::None {
                match request {
                    SolverAction::Snapshot => self.snapshot()?,
                    SolverAction::Stop => self.requested_early_exit = true,
                    SolverAction::None => {}
                }
                request = self.requested_action();
            }
            if self.requested_early_exit {
                break;
            }
            let net = &mut self.test_nets[id];
            let iter_loss = net.forward()?;
            if self.param.test_compute_loss() {
                loss += iter_loss;
            }
            let mut idx = 0;
            for (j, b) in net.output_blobs().iter().enumerate() {
                for &v in b.borrow().data() {
                    if i == 0 {
                        scores.push(v);
                        score_output.push(j);
                    } else {
                        scores[idx] += v;
                    }
                    idx += 1;
                }
            }
        }
        if self.requested_early_exit {
            log::info!("Test interrupted.");
            return Ok(());
        }
        if self.param.test_compute_loss() {
            loss /= test_iter as f32;
            log::info!("Test loss: {}", g(loss));
        }
        let net = &self.test_nets[id];
        let mean_scores = &mut self.mean_scores[id];
        mean_scores.clear();
        let mut named = Vec::with_capacity(scores.len());
        for (i, (&score, &j)) in scores.iter().zip(&score_output).enumerate() {
            let blob_id = net.output_blob_indices()[j];
            let mean = score / test_iter as f32;
            mean_scores.push(mean);
            named.push((net.blob_names()[blob_id].clone(), mean));
            log::info!(
                "    Test net output #{i}: {} = {}{}",
                net.blob_names()[blob_id],
                g(mean),
                loss_suffix(net.blob_loss_weights()[blob_id], mean)
            );
        }
        let event = TestEvent {
            iter: self.iter,
            net_id: id,
            outputs: named,
            loss: self.param.test_compute_loss().then_some(loss),
        };
        for h in &mut self.hooks {
            h.on_test(&event);
        }
        Ok(())
    }
}

/// The first layer, in forward order, whose parameters or outputs hold a
/// NaN or an infinity: where a diverging run went wrong.
fn first_non_finite(net: &Net) -> Option<String> {
    let bad = |v: &[f32]| v.iter().any(|x| !x.is_finite());
    for (i, name) in net.layer_names().iter().enumerate() {
        for (k, p) in net.layers()[i].blobs().iter().enumerate() {
            if bad(p.borrow().data()) {
                return Some(format!("layer {name} (its parameter blob {k})"));
            }
        }
        for (k, t) in net.top_vecs()[i].iter().enumerate() {
            if bad(t.borrow().data()) {
                let blob = &net.blob_names()[net.top_ids(i)[k]];
                return Some(format!("layer {name} (its top blob {blob})"));
            }
        }
    }
    None
}

/// Every value of every output blob with its blob's name, in log order.
fn named_outputs(net: &Net) -> Vec<(String, f32)> {
    let mut out = Vec::new();
    for &blob_id in net.output_blob_indices() {
        let name = &net.blob_names()[blob_id];
        for &v in net.blobs()[blob_id].borrow().data() {
            out.push((name.clone(), v));
        }
    }
    out
}

/// Logs every value of every output blob, `    Train net output #k: name = v`.
pub(crate) fn log_outputs(net: &Net, which: &str) {
    let mut score_index = 0;
    for &blob_id in net.output_blob_indices() {
        let name = &net.blob_names()[blob_id];
        let weight = net.blob_loss_weights()[blob_id];
        for &v in net.blobs()[blob_id].borrow().data() {
            log::info!(
                "    {which} net output #{score_index}: {name} = {}{}",
                g(v),
                loss_suffix(weight, v)
            );
            score_index += 1;
        }
    }
}

/// Gives a test net the train net's current weights, layer by layer by name
/// (Caffe's ShareTrainedLayersWith; copied here, which reads the same).
fn share_trained_layers(source: &Net, target: &mut Net) -> Result<()> {
    for (i, name) in source.layer_names().iter().enumerate() {
        let Some(t) = target.layer_index(name) else {
            continue;
        };
        let src = source.layers()[i].blobs();
        let dst = target.layers()[t].blobs();
        if src.len() != dst.len() {
            return Err(Error::Net {
                net: target.name().to_string(),
                message: format!(
                    "Incompatible number of blobs for layer {name}: the train net has {}, the test net {}",
                    src.len(),
                    dst.len()
                ),
            });
        }
        for (j, (s, d)) in src.iter().zip(dst).enumerate() {
            if std::rc::Rc::ptr_eq(s, d) {
                continue;
            }
            let s = s.borrow();
            let mut d = d.borrow_mut();
            if s.shape() != d.shape() {
                return Err(Error::Net {
                    net: target.name().to_string(),
                    message: format!(
                        "Cannot share param {j} weights from layer '{name}'; shape mismatch. Source param shape is {}; target param shape is {}",
                        s.shape_string(),
                        d.shape_string()
                    ),
                });
            }
            d.data_mut().copy_from_slice(s.data());
        }
    }
    Ok(())
}
