//! One parameter update, Caffe's SGDSolver::ApplyUpdate: the rate for this
//! iteration, global gradient clipping, then per parameter the iter_size
//! normalization, weight decay and the rule's step, and finally
//! `data -= diff` on every learnable parameter.
use super::{adadelta, adagrad, adam, lr_policy, nesterov, rmsprop, sgd, Solver, SolverType};
use crate::error::Result;
use crema_proto::text::format_g;
use rayon::prelude::*;

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
        if self.kind == SolverType::Sgd {
            for id in 0..self.net.learnable_params().len() {
                self.sgd_step(id, rate);
            }
        } else {
            self.update_in_passes(rate);
        }
        Ok(())
    }

    /// Caffe's update pass by pass: per parameter the iter_size
    /// normalization, weight decay and the rule's step, then `data -= diff`.
    fn update_in_passes(&mut self, rate: f32) {
        for id in 0..self.net.learnable_params().len() {
            self.normalize(id);
            self.regularize(id);
            self.compute_update_value(id, rate);
        }
        self.net.update();
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

    /// Plain SGD's whole update of parameter `id` in one pass, split over the
    /// pool: `normalize`, `regularize`, `sgd::update` and the net's `data -=
    /// diff`, element by element in the same float operations (bit for bit),
    /// where four passes on one thread took 3 % of LeNet's training.
    fn sgd_step(&mut self, id: usize, rate: f32) {
        // Scaling by 1 (iter_size 1) leaves every gradient's bits as they are.
        let scale = 1.0f32 / self.param.iter_size() as f32;
        let decay = self.param.weight_decay() * self.net.params_weight_decay()[id];
        let l1 = self.param.regularization_type() == "L1";
        let k = SgdStep {
            scale,
            decay,
            rate: rate * self.net.params_lr()[id],
            momentum: self.param.momentum(),
        };
        let mut p = self.net.learnable_params()[id].borrow_mut();
        let (data, diff) = p.data_and_diff_both_mut();
        let history = self.history[id].data_mut();
        let step = |(data, (diff, history)): (&mut [f32], (&mut [f32], &mut [f32]))| {
            // One loop per decay kind, so each compiles without branches.
            match (decay != 0.0, l1) {
                (false, _) => k.run::<false, false>(data, diff, history),
                (true, false) => k.run::<true, false>(data, diff, history),
                (true, true) => k.run::<true, true>(data, diff, history),
            }
        };
        // Small parameters stay on this thread; chunks of 16K values (three
        // arrays of 64 KiB) are worth a task.
        const CHUNK: usize = 1 << 14;
        if data.len() < 2 * CHUNK {
            return step((data, (diff, history)));
        }
        data.par_chunks_mut(CHUNK)
            .zip(
                diff.par_chunks_mut(CHUNK)
                    .zip(history.par_chunks_mut(CHUNK)),
            )
            .for_each(step);
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

/// One parameter's plain SGD step (`Solver::sgd_step`).
#[derive(Clone, Copy)]
struct SgdStep {
    scale: f32,
    decay: f32,
    rate: f32,
    momentum: f32,
}

impl SgdStep {
    /// Over one stretch of a parameter: the gradient normalized and decayed
    /// (L2, or L1 with `L1`, when `DECAY`), the momentum step into history
    /// and diff, and the weights moved by it.
    fn run<const DECAY: bool, const L1: bool>(
        self,
        data: &mut [f32],
        diff: &mut [f32],
        history: &mut [f32],
    ) {
        for ((w, g), h) in data.iter_mut().zip(diff).zip(history) {
            let mut grad = *g * self.scale;
            if DECAY {
                grad += self.decay * if L1 { sign(*w) } else { *w };
            }
            let scaled = self.momentum * *h;
            *h = self.rate * grad + scaled;
            *g = *h;
            *w -= *h;
        }
    }
}

/// Caffe's caffe_sign: -1, 0 or 1.
fn sign(x: f32) -> f32 {
    ((0.0 < x) as i32 - (x < 0.0) as i32) as f32
}

#[cfg(test)]
mod tests {
    use crate::Solver;

    /// A 300 → 200 InnerProduct (60,200 parameters: the weights split over
    /// the pool, the bias stays on the caller) on Gaussian DummyData.
    fn solver(extra: &str) -> Solver {
        let text = format!(
            r#"net_param {{ name: "wide"
                 layer {{ name: "data" type: "DummyData" top: "x" top: "y"
                         dummy_data_param {{ shape {{ dim: 4 dim: 300 }} shape {{ dim: 4 dim: 200 }}
                                             data_filler {{ type: "gaussian" }} data_filler {{ type: "gaussian" }} }} }}
                 layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "z"
                         inner_product_param {{ num_output: 200 weight_filler {{ type: "gaussian" std: 0.1 }}
                                                bias_filler {{ type: "constant" value: 0.1 }} }} }}
                 layer {{ name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" top: "loss" }} }}
               base_lr: 0.01 momentum: 0.9 lr_policy: "fixed" random_seed: 3 {extra}"#
        );
        Solver::new(&crate::proto::text::parse(&text, "sgd test solver").unwrap()).unwrap()
    }

    fn bits(s: &Solver) -> Vec<u32> {
        let params = s.net().learnable_params();
        let blobs = params.iter().map(|p| {
            let p = p.borrow();
            [p.data().to_vec(), p.diff().to_vec()].concat()
        });
        let history = s.history.iter().map(|h| h.data().to_vec());
        blobs.chain(history).flatten().map(f32::to_bits).collect()
    }

    /// Gradients for one more update after two steps (so the history holds
    /// something), then that update fused or in passes: the weights, diffs
    /// and history before and after, as bits.
    fn run(extra: &str, fused: bool) -> (Vec<u32>, Vec<u32>) {
        // DummyData draws from the global generator: each run starts it over.
        crate::rng::set_random_seed(7);
        let mut s = solver(extra);
        s.step(2).unwrap();
        s.net_mut().clear_param_diffs();
        for _ in 0..s.param.iter_size() {
            s.net_mut().forward_backward().unwrap();
        }
        let before = bits(&s);
        if fused {
            s.apply_update().unwrap();
        } else {
            let rate = s.learning_rate().unwrap();
            s.update_in_passes(rate);
        }
        (before, bits(&s))
    }

    #[test]
    fn fused_sgd_step_equals_the_passes_bit_for_bit() {
        for extra in [
            "weight_decay: 0.0005",
            "iter_size: 2 weight_decay: 0.0005",
            r#"regularization_type: "L1" weight_decay: 0.01"#,
        ] {
            let ((b1, a1), (b2, a2)) = (run(extra, true), run(extra, false));
            assert!(b1 == b2, "{extra}: the runs differ before the update");
            let differ = a1.iter().zip(&a2).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "{extra}: values differ after the update");
            assert_ne!(a1, b1, "{extra}: the update changed nothing");
        }
    }
}
