//! Caffe's RecurrentLayer: the machinery RNN and LSTM share.
//!
//! Bottoms: `x` (T×N×..., T steps of N independent streams), `cont` (T×N:
//! 0 at step t starts a new sequence in stream n, so the state of step t−1 is
//! dropped), an optional `x_static` (N×..., the same for every step), and with
//! `expose_hidden` the initial states (`h_0`, plus `c_0` for LSTM; 1×N×H each).
//! Tops: the per-step output (T×N×H), and with `expose_hidden` the final states.
//!
//! Caffe builds an internal net of T copies of one step with shared weights.
//! We run the same arithmetic directly: one product for the input transform of
//! every step, then the cell's step loop (`rnn.rs`, `lstm.rs`). The parameter
//! blobs are those of Caffe's unrolled net in its order — `W_x` (G×D), `b`
//! (G), `W_x_static` (G×S) when there is a static input, then the cell's own —
//! so a Caffe-trained caffemodel loads.
//!
//! Without `expose_hidden`, one forward's final state is the next forward's
//! initial state (Caffe copies h_T into h_0), so a stream whose `cont` is 1 at
//! step 0 continues across batches. Caffe shares only the *data* of exposed
//! states, so no gradient crosses them; we also carry the diffs: the h_T/c_T
//! tops' diffs flow back and h_0/c_0 receive their gradient, which an
//! encoder–decoder wiring needs. With unconnected state tops both agree.
use crema_proto::caffe::{FillerParameter, LayerParameter};

use crate::backend::{sgemm, Transpose};
use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};
use crate::fillers;
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

/// Sizes of one unrolled pass: T steps of N streams, H hidden units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dims {
    pub steps: usize,
    pub streams: usize,
    pub hidden: usize,
}

impl Dims {
    /// Values in one step's state (N·H).
    pub fn state_len(&self) -> usize {
        self.streams * self.hidden
    }
}

/// What distinguishes RNN from LSTM: the step arithmetic and its parameters.
pub trait Cell: Default + 'static {
    /// Registered type name.
    const TYPE: &'static str;
    /// Names of the recurrent states in Caffe's order (h, then c for LSTM).
    const STATES: &'static [&'static str];
    /// Gate inputs per hidden unit: the input transform yields GATES·H values.
    const GATES: usize;

    /// Shapes of the cell's own parameters (after W_x, b and W_x_static),
    /// each flagged `true` when it takes the bias filler.
    fn param_shapes(hidden: usize) -> Vec<(Vec<usize>, bool)>;

    /// Sizes the step buffers.
    fn reshape(&mut self, d: Dims);

    /// Runs the recurrence. `gates_x` (T×N×G) holds each step's input
    /// contribution with bias and static term added; `params` are the cell's
    /// own blobs; `state0` the initial states. Writes the per-step output
    /// (T×N×H) and the final states.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        d: Dims,
        gates_x: &[f32],
        cont: &[f32],
        params: &[SharedBlob],
        state0: &[Vec<f32>],
        out: &mut [f32],
        state_final: &mut [Vec<f32>],
    );

    /// Back-propagation through time from the output diff and the final
    /// states' diffs: writes `gates_x_diff` and `state0_diff`, adds the cell's
    /// parameter gradients into their diffs.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        d: Dims,
        cont: &[f32],
        params: &[SharedBlob],
        out_diff: &[f32],
        final_diff: &[Vec<f32>],
        gates_x_diff: &mut [f32],
        state0_diff: &mut [Vec<f32>],
    );
}

/// An RNN or LSTM layer: the shared bottoms, tops, input transform and state
/// handling around a `Cell`.
pub struct RecurrentLayer<C: Cell> {
    param: LayerParameter,
    cell: C,
    blobs: Vec<SharedBlob>,
    expose_hidden: bool,
    static_input: bool,
    debug_info: bool,
    dims: Dims,
    /// Inputs per step and stream (x counted from axis 2).
    input_dim: usize,
    /// Static inputs per stream (x_static counted from axis 1).
    static_dim: usize,
    gates_x: Vec<f32>,
    gates_x_diff: Vec<f32>,
    /// W_x_static · x_static per stream, then (backward) its diff.
    static_buf: Vec<f32>,
    state0: Vec<Vec<f32>>,
    state_final: Vec<Vec<f32>>,
    final_diff: Vec<Vec<f32>>,
    state0_diff: Vec<Vec<f32>>,
}

impl<C: Cell> RecurrentLayer<C> {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let rp = param.recurrent_param.get_or_default();
        crate::ensure!(param, rp.num_output() > 0, "num_output must be positive");
        let states = C::STATES.len();
        Ok(Box::new(RecurrentLayer {
            param: param.clone(),
            cell: C::default(),
            blobs: Vec::new(),
            expose_hidden: rp.expose_hidden(),
            static_input: false,
            debug_info: rp.debug_info(),
            dims: Dims {
                hidden: rp.num_output() as usize,
                ..Dims::default()
            },
            input_dim: 0,
            static_dim: 0,
            gates_x: Vec::new(),
            gates_x_diff: Vec::new(),
            static_buf: Vec::new(),
            state0: vec![Vec::new(); states],
            state_final: vec![Vec::new(); states],
            final_diff: vec![Vec::new(); states],
            state0_diff: vec![Vec::new(); states],
        }))
    }

    fn exposed(&self) -> usize {
        if self.expose_hidden {
            C::STATES.len()
        } else {
            0
        }
    }
    /// Index of the first state bottom (h_0).
    fn first_state_bottom(&self) -> usize {
        2 + usize::from(self.static_input)
    }
    /// How many parameters the input transform owns (W_x, b, W_x_static).
    fn input_params(&self) -> usize {
        2 + usize::from(self.static_input)
    }
    fn gate_width(&self) -> usize {
        C::GATES * self.dims.hidden
    }

    fn err(&self, msg: String) -> Error {
        Error::layer(&self.param, msg)
    }

    /// Checks x, cont and x_static against the sizes fixed at setup; sets N.
    fn check_inputs(&mut self, bottom: &[SharedBlob]) -> Result<()> {
        let x = bottom[0].borrow();
        crate::ensure!(
            &self.param,
            x.num_axes() >= 3,
            "bottom[0] (x) must have at least 3 axes (#timesteps, #streams, input...), got {}",
            x.shape_string()
        );
        crate::ensure!(
            &self.param,
            x.shape()[0] == self.dims.steps,
            "input number of timesteps changed: bottom[0] (x) is {}, the layer was set up for {} timesteps",
            x.shape_string(),
            self.dims.steps
        );
        let n = x.shape()[1];
        crate::ensure!(
            &self.param,
            n > 0,
            "bottom[0] (x) {} has no streams",
            x.shape_string()
        );
        crate::ensure!(
            &self.param,
            x.count_from(2) == self.input_dim,
            "bottom[0] (x) {} gives {} inputs per step and stream; the weights expect {}",
            x.shape_string(),
            x.count_from(2),
            self.input_dim
        );
        let cont = bottom[1].borrow();
        crate::ensure!(
            &self.param,
            cont.shape() == [self.dims.steps, n],
            "bottom[1] (cont) must be #timesteps x #streams = {} x {}, got {}",
            self.dims.steps,
            n,
            cont.shape_string()
        );
        if self.static_input {
            let s = bottom[2].borrow();
            crate::ensure!(
                &self.param,
                s.num_axes() >= 2 && s.shape()[0] == n && s.count_from(1) == self.static_dim,
                "bottom[2] (x_static) must be #streams ({n}) x {} inputs, got {}",
                self.static_dim,
                s.shape_string()
            );
        }
        if n != self.dims.streams {
            // A carried state belongs to the old streams; start from zeros.
            for s in &mut self.state_final {
                s.clear();
                s.resize(n * self.dims.hidden, 0.0);
            }
        }
        self.dims.streams = n;
        Ok(())
    }

    fn fill(&self, shape: &[usize], filler: &FillerParameter, which: &str) -> Result<SharedBlob> {
        let mut b = Blob::new(shape);
        fillers::fill(filler, &mut b).map_err(|e| self.err(format!("{which}: {e}")))?;
        Ok(std::rc::Rc::new(std::cell::RefCell::new(b)))
    }

    fn debug_forward(&self, top: &[SharedBlob]) {
        let mean = |v: &[f32]| crate::backend::asum(v) / v.len().max(1) as f32;
        let name = self.param.name();
        log::info!(
            "    [Forward] Layer {name} (unrolled over {} steps), output data: {}",
            self.dims.steps,
            mean(top[0].borrow().data())
        );
        for (s, v) in C::STATES.iter().zip(&self.state_final) {
            log::info!("    [Forward] Layer {name}, {s}_T data: {}", mean(v));
        }
    }
}

impl<C: Cell> Layer for RecurrentLayer<C> {
    fn type_name(&self) -> &'static str {
        C::TYPE
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (min, tops) = (2 + self.exposed(), 1 + self.exposed());
        crate::ensure!(
            &self.param,
            (min..=min + 1).contains(&bottom.len()) && top.len() == tops,
            "takes {min} or {} bottoms (x, cont, [x_static]{}) and {tops} tops, got {} and {}",
            min + 1,
            if self.expose_hidden {
                ", initial states"
            } else {
                ""
            },
            bottom.len(),
            top.len()
        );
        check_distinct(&self.param, bottom, top)?;
        self.static_input = bottom.len() > min;
        {
            let x = bottom[0].borrow();
            crate::ensure!(
                &self.param,
                x.num_axes() >= 3,
                "bottom[0] (x) must have at least 3 axes (#timesteps, #streams, input...), got {}",
                x.shape_string()
            );
            self.dims.steps = x.shape()[0];
            self.input_dim = x.count_from(2);
            crate::ensure!(
                &self.param,
                self.dims.steps > 0 && self.input_dim > 0,
                "bottom[0] (x) {} has no timesteps or no inputs",
                x.shape_string()
            );
            log::info!(
                "Initializing recurrent layer: assuming input batch contains {} timesteps of {} independent streams.",
                self.dims.steps,
                x.shape()[1]
            );
        }
        if self.static_input {
            let s = bottom[2].borrow();
            crate::ensure!(
                &self.param,
                s.num_axes() >= 2 && s.count_from(1) > 0,
                "bottom[2] (x_static) must be #streams x inputs, got {}",
                s.shape_string()
            );
            self.static_dim = s.count_from(1);
        }
        let rp = self.param.recurrent_param.get_or_default();
        let (wf, bf) = (
            rp.weight_filler.get_or_default(),
            rp.bias_filler.get_or_default(),
        );
        let (g, h) = (self.gate_width(), self.dims.hidden);
        let mut blobs = vec![
            self.fill(&[g, self.input_dim], wf, "weight_filler")?,
            self.fill(&[g], bf, "bias_filler")?,
        ];
        if self.static_input {
            blobs.push(self.fill(&[g, self.static_dim], wf, "weight_filler")?);
        }
        for (shape, bias) in C::param_shapes(h) {
            let (f, which) = if bias {
                (bf, "bias_filler")
            } else {
                (wf, "weight_filler")
            };
            blobs.push(self.fill(&shape, f, which)?);
        }
        self.blobs = blobs;
        self.dims.streams = 0;
        Ok(())
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        self.check_inputs(bottom)?;
        let d = self.dims;
        let first = self.first_state_bottom();
        for (i, name) in C::STATES.iter().enumerate().take(self.exposed()) {
            let b = bottom[first + i].borrow();
            crate::ensure!(
                &self.param,
                b.shape() == [1, d.streams, d.hidden],
                "bottom[{}] ({name}_0) shape must match hidden state input shape: 1 {} {} ({}), got {}",
                first + i,
                d.streams,
                d.hidden,
                d.streams * d.hidden,
                b.shape_string()
            );
        }
        top[0].borrow_mut().reshape(&[d.steps, d.streams, d.hidden]);
        for t in &top[1..] {
            t.borrow_mut().reshape(&[1, d.streams, d.hidden]);
        }
        let rows = d.steps * d.streams * self.gate_width();
        self.gates_x.resize(rows, 0.0);
        self.gates_x_diff.resize(rows, 0.0);
        self.static_buf.resize(d.streams * self.gate_width(), 0.0);
        for v in self
            .state0
            .iter_mut()
            .chain(&mut self.state_final)
            .chain(&mut self.final_diff)
            .chain(&mut self.state0_diff)
        {
            v.resize(d.state_len(), 0.0);
        }
        self.cell.reshape(d);
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let d = self.dims;
        let (g, rows) = (self.gate_width(), d.steps * d.streams);
        {
            // Input transform of every step at once: W_x·x_t + b.
            let x = bottom[0].borrow();
            let w = self.blobs[0].borrow();
            let b = self.blobs[1].borrow();
            let gx = &mut self.gates_x[..rows * g];
            sgemm(
                Transpose::No,
                Transpose::Yes,
                rows,
                g,
                self.input_dim,
                1.0,
                x.data(),
                w.data(),
                0.0,
                gx,
            );
            for row in gx.chunks_exact_mut(g) {
                crate::backend::axpy(1.0, b.data(), row);
            }
        }
        if self.static_input {
            let s = bottom[2].borrow();
            let w = self.blobs[2].borrow();
            let sg = &mut self.static_buf[..d.streams * g];
            sgemm(
                Transpose::No,
                Transpose::Yes,
                d.streams,
                g,
                self.static_dim,
                1.0,
                s.data(),
                w.data(),
                0.0,
                sg,
            );
            for step in self.gates_x[..rows * g].chunks_exact_mut(d.streams * g) {
                crate::backend::axpy(1.0, sg, step);
            }
        }
        if self.expose_hidden {
            let first = self.first_state_bottom();
            for (i, s) in self.state0.iter_mut().enumerate() {
                s.copy_from_slice(bottom[first + i].borrow().data());
            }
        } else {
            // The last final state becomes this pass's initial state.
            std::mem::swap(&mut self.state0, &mut self.state_final);
        }
        let n_in = self.input_params();
        self.cell.forward(
            d,
            &self.gates_x[..rows * g],
            bottom[1].borrow().data(),
            &self.blobs[n_in..],
            &self.state0,
            top[0].borrow_mut().data_mut(),
            &mut self.state_final,
        );
        if self.expose_hidden {
            for (t, s) in top[1..].iter().zip(&self.state_final) {
                t.borrow_mut().data_mut().copy_from_slice(s);
            }
        }
        if self.debug_info {
            self.debug_forward(top);
        }
        Ok(())
    }

    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        let d = self.dims;
        let (g, rows) = (self.gate_width(), d.steps * d.streams);
        for (i, f) in self.final_diff.iter_mut().enumerate() {
            match top.get(1 + i) {
                Some(t) if self.expose_hidden => f.copy_from_slice(t.borrow().diff()),
                _ => f.fill(0.0),
            }
        }
        let n_in = self.input_params();
        self.cell.backward(
            d,
            bottom[1].borrow().data(),
            &self.blobs[n_in..],
            top[0].borrow().diff(),
            &self.final_diff,
            &mut self.gates_x_diff[..rows * g],
            &mut self.state0_diff,
        );
        let gd = &self.gates_x_diff[..rows * g];
        {
            let x = bottom[0].borrow();
            let mut w = self.blobs[0].borrow_mut();
            sgemm(
                Transpose::Yes,
                Transpose::No,
                g,
                self.input_dim,
                rows,
                1.0,
                gd,
                x.data(),
                1.0,
                w.diff_mut(),
            );
            let mut b = self.blobs[1].borrow_mut();
            let bd = b.diff_mut();
            for row in gd.chunks_exact(g) {
                crate::backend::axpy(1.0, row, bd);
            }
        }
        if propagates(propagate_down, 0) {
            let w = self.blobs[0].borrow();
            let mut x = bottom[0].borrow_mut();
            sgemm(
                Transpose::No,
                Transpose::No,
                rows,
                self.input_dim,
                g,
                1.0,
                gd,
                w.data(),
                0.0,
                x.diff_mut(),
            );
        }
        if self.static_input {
            // x_static feeds every step: its gate diff is the sum over steps.
            let sd = &mut self.static_buf[..d.streams * g];
            sd.fill(0.0);
            for step in gd.chunks_exact(d.streams * g) {
                crate::backend::axpy(1.0, step, sd);
            }
            let mut w = self.blobs[2].borrow_mut();
            {
                let s = bottom[2].borrow();
                sgemm(
                    Transpose::Yes,
                    Transpose::No,
                    g,
                    self.static_dim,
                    d.streams,
                    1.0,
                    sd,
                    s.data(),
                    1.0,
                    w.diff_mut(),
                );
            }
            if propagates(propagate_down, 2) {
                let mut s = bottom[2].borrow_mut();
                sgemm(
                    Transpose::No,
                    Transpose::No,
                    d.streams,
                    self.static_dim,
                    g,
                    1.0,
                    sd,
                    w.data(),
                    0.0,
                    s.diff_mut(),
                );
            }
        }
        let first = self.first_state_bottom();
        for i in 0..self.exposed() {
            if propagates(propagate_down, first + i) {
                bottom[first + i]
                    .borrow_mut()
                    .diff_mut()
                    .copy_from_slice(&self.state0_diff[i]);
            }
        }
        Ok(())
    }

    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(2 + self.exposed())
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        Some(3 + self.exposed())
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1 + self.exposed())
    }
    /// No gradient reaches the sequence continuation indicators.
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index != 1
    }
}

/// `dst[n·H..] *= cont[n]` for each stream: Caffe's `h_conted = cont_t · h_{t−1}`
/// (and its backward, since the map is linear).
pub(crate) fn scale_by_cont(cont: &[f32], hidden: usize, v: &mut [f32]) {
    for (row, &c) in v.chunks_exact_mut(hidden).zip(cont) {
        row.iter_mut().for_each(|x| *x *= c);
    }
}
