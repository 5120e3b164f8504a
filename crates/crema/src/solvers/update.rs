//! One parameter update, Caffe's SGDSolver::ApplyUpdate: the rate for this
//! iteration, global gradient clipping, then per parameter the iter_size
//! normalization, weight decay and the rule's step, and finally
//! `data -= diff` on every learnable parameter.
use super::{adadelta, adagrad, adam, lr_policy, nesterov, rmsprop, sgd, Solver, SolverType};
use crate::error::Result;
use crema_proto::text::format_g;

impl Solver {
    /// The learning rate for the current iteration (advancing the step
    /// counter of "step"/"multistep" as Caffe does).
    pub fn learning_rate(&mut self) -> Result<f32> {
        lr_policy::learning_rate(&self.param, self.iter, &mut self.current_step)
    }

    /// Turns the accumulated gradients into steps and applies them.
    pub fn apply_update(&mut self) -> Result<()> {
        let rate = self.learning_rate()?;
        self.last_rate = rate;
        let display = self.param.display();
        if display > 0 && self.iter % display == 0 {
            log::info!(
                "Iteration {}, lr = {}",
                self.iter,
                format_g(f64::from(rate), 6)
            );
        }
        self.clip_gradients();
        for id in 0..self.net.learnable_params().len() {
            self.normalize(id);
            self.regularize(id);
            self.compute_update_value(id, rate);
        }
        self.net.update();
        Ok(())
    }

    /// Scales all gradients down together when their global L2 norm exceeds
    /// `clip_gradients` (a negative value turns clipping off).
    fn clip_gradients(&mut self) {
        let clip = self.param.clip_gradients();
        if clip < 0.0 {
            return;
        }
        let params = self.net.learnable_params();
        let sumsq: f32 = params.iter().map(|p| p.borrow().sumsq_diff()).sum();
        let l2norm = sumsq.sqrt();
        if l2norm > clip {
            let scale = clip / l2norm;
            log::info!(
                "Gradient clipping: scaling down gradients (L2 norm {} > {}) by scale factor {}",
                format_g(f64::from(l2norm), 6),
                format_g(f64::from(clip), 6),
                format_g(f64::from(scale), 6)
            );
            for p in params {
                p.borrow_mut()
                    .diff_mut()
                    .iter_mut()
                    .for_each(|g| *g *= scale);
            }
        }
    }

    /// Divides accumulated gradients by iter_size (Caffe's Normalize).
    fn normalize(&mut self, id: usize) {
        let iter_size = self.param.iter_size();
        if iter_size == 1 {
            return;
        }
        let scale = 1.0f32 / iter_size as f32;
        let p = &self.net.learnable_params()[id];
        p.borrow_mut()
            .diff_mut()
            .iter_mut()
            .for_each(|g| *g *= scale);
    }

    /// Adds weight decay to the gradient: `decay·w` (L2) or `decay·sign(w)`
    /// (L1), with decay = weight_decay × the parameter's decay_mult.
    fn regularize(&mut self, id: usize) {
        let local_decay = self.param.weight_decay() * self.net.params_weight_decay()[id];
        if local_decay == 0.0 {
            return;
        }
        let l1 = self.param.regularization_type() == "L1";
        let mut p = self.net.learnable_params()[id].borrow_mut();
        let (data, diff) = p.data_and_diff_mut();
        for (g, &w) in diff.iter_mut().zip(data) {
            let v = if l1 { sign(w) } else { w };
            *g += local_decay * v;
        }
    }

    /// The rule's step for parameter `id`, left in its diff.
    fn compute_update_value(&mut self, id: usize, rate: f32) {
        let local_rate = rate * self.net.params_lr()[id];
        let n_params = self.net.learnable_params().len();
        let p = &self.net.learnable_params()[id];
        let mut p = p.borrow_mut();
        let diff = p.diff_mut();
        let n = diff.len();
        let s1 = &mut self.scratch[..n];
        let param = &self.param;
        let (momentum, delta) = (param.momentum(), param.delta());
        match self.kind {
            SolverType::Sgd => sgd::update(diff, self.history[id].data_mut(), local_rate, momentum),
            SolverType::Nesterov => {
                nesterov::update(diff, self.history[id].data_mut(), s1, local_rate, momentum)
            }
            SolverType::AdaGrad => {
                adagrad::update(diff, self.history[id].data_mut(), s1, local_rate, delta)
            }
            SolverType::RmsProp => rmsprop::update(
                diff,
                self.history[id].data_mut(),
                s1,
                local_rate,
                param.rms_decay(),
                delta,
            ),
            SolverType::AdaDelta => {
                let (first, second) = self.history.split_at_mut(n_params);
                adadelta::update(
                    diff,
                    first[id].data_mut(),
                    second[id].data_mut(),
                    s1,
                    local_rate,
                    momentum,
                    delta,
                )
            }
            SolverType::Adam => {
                let correction = adam::correction(self.iter, momentum, param.momentum2());
                let (first, second) = self.history.split_at_mut(n_params);
                adam::update(
                    diff,
                    first[id].data_mut(),
                    second[id].data_mut(),
                    s1,
                    local_rate,
                    correction,
                    momentum,
                    param.momentum2(),
                    delta,
                )
            }
        }
    }
}

/// Caffe's caffe_sign: -1, 0 or 1.
fn sign(x: f32) -> f32 {
    ((0.0 < x) as i32 - (x < 0.0) as i32) as f32
}
