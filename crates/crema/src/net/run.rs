//! Running a built net: forward, backward, update (Caffe's Net methods of the
//! same names), with the `debug_info` log lines.
use super::Net;
use crate::error::{Error, Result};

/// A float as iostream prints it (6 significant digits), like Caffe's logs.
fn g(v: f32) -> String {
    crema_proto::text::format_g(f64::from(v), 6)
}

impl Net {
    fn check_range(&self, what: &str, first: usize, last: usize) -> Result<()> {
        let n = self.layers.len();
        if n == 0 || first >= n || last >= n {
            return Err(Error::Net {
                net: self.name.clone(),
                message: format!(
                    "{what}: layer range {first}..={last} is outside the net's {n} layers"
                ),
            });
        }
        Ok(())
    }

    /// Errors a layer reports without naming itself get its name and type.
    fn in_layer(&self, i: usize, e: Error) -> Error {
        match e {
            Error::Other(message) => Error::layer(&self.layer_params[i], message),
            e => e,
        }
    }

    /// Runs layers `start..=end` (each reshaped first, as Caffe's Layer::Forward
    /// does) and returns their weighted loss: Σ loss_weight · Σ top data. Each
    /// weighted top's diff holds its loss weight afterwards, which is where a
    /// loss layer's backward reads its scale.
    pub fn forward_from_to(&mut self, start: usize, end: usize) -> Result<f32> {
        self.check_range("forward", start, end)?;
        let mut loss = 0.0f32;
        for i in start..=end {
            let (bottom, top) = (&self.bottom_vecs[i], &self.top_vecs[i]);
            let layer = &mut self.layers[i];
            // A fused ReLU's work was done by the layer before it.
            let fused = self.fused.get(i).copied().unwrap_or(false);
            let r = layer.reshape(bottom, top).and_then(|_| {
                if fused {
                    Ok(())
                } else {
                    layer.forward(bottom, top)
                }
            });
            r.map_err(|e| self.in_layer(i, e))?;
            for (k, t) in self.top_vecs[i].iter().enumerate() {
                let w = self.top_loss_weights[i][k];
                if w != 0.0 {
                    let mut t = t.borrow_mut();
                    loss += w * t.data().iter().sum::<f32>();
                    t.diff_mut().fill(w);
                }
            }
            if self.debug_info {
                self.forward_debug_info(i);
            }
        }
        Ok(loss)
    }

    /// Runs the whole net forward; returns the weighted loss.
    pub fn forward(&mut self) -> Result<f32> {
        let last = self.layers.len().saturating_sub(1);
        if self.layers.is_empty() {
            return Ok(0.0);
        }
        self.forward_from_to(0, last)
    }
    pub fn forward_from(&mut self, start: usize) -> Result<f32> {
        let last = self.layers.len().saturating_sub(1);
        self.forward_from_to(start, last)
    }
    pub fn forward_to(&mut self, end: usize) -> Result<f32> {
        self.forward_from_to(0, end)
    }

    /// Runs backward from layer `start` down to layer `end` (start >= end),
    /// skipping layers that need no backward.
    pub fn backward_from_to(&mut self, start: usize, end: usize) -> Result<()> {
        self.check_range("backward", end, start)?;
        for i in (end..=start).rev() {
            if !self.layer_need_backward[i] {
                continue;
            }
            if let Some(sharing) = self.diff_sharing.as_mut() {
                sharing.before_backward(i, &self.blobs);
            }
            let (top, bottom) = (&self.top_vecs[i], &self.bottom_vecs[i]);
            let r = self.layers[i].backward(top, &self.bottom_need_backward[i], bottom);
            r.map_err(|e| self.in_layer(i, e))?;
            if self.debug_info {
                self.backward_debug_info(i);
            }
            if let Some(observe) = self.backward_observer.as_mut() {
                observe(i);
            }
            if let Some(sharing) = self.diff_sharing.as_mut() {
                sharing.after_backward(i, &self.blobs);
            }
        }
        Ok(())
    }

    /// Runs the whole net backward. Parameter diffs accumulate; call
    /// `clear_param_diffs` first for a fresh gradient.
    pub fn backward(&mut self) -> Result<()> {
        if self.layers.is_empty() {
            return Ok(());
        }
        let last = self.layers.len() - 1;
        self.backward_from_to(last, 0)?;
        if self.debug_info {
            let (mut asum_data, mut asum_diff, mut sumsq_data, mut sumsq_diff) =
                (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for p in &self.learnable_params {
                let p = p.borrow();
                asum_data += p.asum_data();
                asum_diff += p.asum_diff();
                sumsq_data += p.data().iter().map(|v| v * v).sum::<f32>();
                sumsq_diff += p.sumsq_diff();
            }
            log::error!(
                "    [Backward] All net params (data, diff): L1 norm = ({}, {}); L2 norm = ({}, {})",
                g(asum_data),
                g(asum_diff),
                g(sumsq_data.sqrt()),
                g(sumsq_diff.sqrt())
            );
        }
        Ok(())
    }
    pub fn backward_from(&mut self, start: usize) -> Result<()> {
        self.backward_from_to(start, 0)
    }
    pub fn backward_to(&mut self, end: usize) -> Result<()> {
        let last = self.layers.len().saturating_sub(1);
        self.backward_from_to(last, end)
    }

    /// Forward then backward; returns the loss.
    pub fn forward_backward(&mut self) -> Result<f32> {
        let loss = self.forward()?;
        self.backward()?;
        Ok(loss)
    }

    /// Reshapes every layer in order, after inputs change size.
    pub fn reshape(&mut self) -> Result<()> {
        for i in 0..self.layers.len() {
            let (bottom, top) = (&self.bottom_vecs[i], &self.top_vecs[i]);
            let r = self.layers[i].reshape(bottom, top);
            r.map_err(|e| self.in_layer(i, e))?;
        }
        Ok(())
    }

    /// Zeroes the diff of every learnable parameter.
    pub fn clear_param_diffs(&mut self) {
        for p in &self.learnable_params {
            p.borrow_mut().diff_mut().fill(0.0);
        }
    }

    /// data -= diff for every learnable parameter (each shared blob once).
    pub fn update(&mut self) {
        for p in &self.learnable_params {
            p.borrow_mut().update();
        }
    }

    fn forward_debug_info(&self, layer_id: usize) {
        let name = &self.layer_names[layer_id];
        for (k, t) in self.top_vecs[layer_id].iter().enumerate() {
            let t = t.borrow();
            let blob_name = &self.blob_names[self.top_id_vecs[layer_id][k]];
            log::info!(
                "    [Forward] Layer {name}, top blob {blob_name} data: {}",
                g(t.asum_data() / t.count() as f32)
            );
        }
        for (k, p) in self.layers[layer_id].blobs().iter().enumerate() {
            let p = p.borrow();
            let display = &self.param_display_names[self.param_id_vecs[layer_id][k]];
            log::info!(
                "    [Forward] Layer {name}, param blob {display} data: {}",
                g(p.asum_data() / p.count() as f32)
            );
        }
    }

    fn backward_debug_info(&self, layer_id: usize) {
        let name = &self.layer_names[layer_id];
        for (k, b) in self.bottom_vecs[layer_id].iter().enumerate() {
            if !self.bottom_need_backward[layer_id][k] {
                continue;
            }
            let b = b.borrow();
            let blob_name = &self.blob_names[self.bottom_id_vecs[layer_id][k]];
            log::info!(
                "    [Backward] Layer {name}, bottom blob {blob_name} diff: {}",
                g(b.asum_diff() / b.count() as f32)
            );
        }
        for (k, p) in self.layers[layer_id].blobs().iter().enumerate() {
            if !self.param_propagate_down[layer_id][k] {
                continue;
            }
            let p = p.borrow();
            log::info!(
                "    [Backward] Layer {name}, param blob {k} diff: {}",
                g(p.asum_diff() / p.count() as f32)
            );
        }
    }

    /// The solver's `[Update]` debug line for net param `param_id`.
    pub fn update_debug_info(&self, param_id: usize) {
        let p = self.params[param_id].borrow();
        let layer_name = &self.layer_names[self.param_layer_indices[param_id].0];
        let display = &self.param_display_names[param_id];
        let diff = g(p.asum_diff() / p.count() as f32);
        match self.param_owners[param_id] {
            None => {
                let data = g(p.asum_data() / p.count() as f32);
                log::info!(
                    "    [Update] Layer {layer_name}, param {display} data: {data}; diff: {diff}"
                );
            }
            Some(owner) => {
                let owner_layer = &self.layer_names[self.param_layer_indices[owner].0];
                let owner_display = &self.param_display_names[owner];
                log::info!(
                    "    [Update] Layer {layer_name}, param blob {display} (owned by layer {owner_layer}, param {owner_display}) diff: {diff}"
                );
            }
        }
    }
}
