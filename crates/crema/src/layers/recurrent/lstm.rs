//! LSTM: Caffe's long short-term memory layer, unrolled over the T steps of its
//! input (see `recurrent.rs` for bottoms, tops and state handling). Each step
//! computes the gate inputs and runs the LSTMUnit arithmetic (`lstm_unit.rs`):
//!
//! ```text
//! gates_t = W_hc·(cont_t·h_{t−1}) + W_xc·x_t + b_c [+ W_xc_static·x_static]
//! (c_t, h_t) = LSTMUnit(c_{t−1}, gates_t, cont_t)
//! ```
//!
//! The gates are stacked i, f, o, g (Caffe's order; PyTorch's is i, f, g, o).
//! Parameters, in Caffe's order: W_xc (4H×D), b_c (4H), [W_xc_static (4H×S)],
//! W_hc (4H×H). The top is h; the recurrent states are h and c.
use super::lstm_unit::{unit_backward, unit_forward};
use super::recurrent::{scale_by_cont, Cell, Dims, RecurrentLayer};
use crate::backend::{sgemm, Transpose};
use crate::blob::SharedBlob;

/// LSTM as registered: the shared recurrent machinery around `LstmCell`.
pub type LSTMLayer = RecurrentLayer<LstmCell>;

/// The LSTM step and the buffers back-propagation through time needs.
#[derive(Default)]
pub struct LstmCell {
    /// h_0 … h_T and c_0 … c_T, (T+1)×N×H each.
    h: Vec<f32>,
    c: Vec<f32>,
    /// cont_t·h_{t−1} for each step (what W_hc multiplies), T×N×H.
    h_conted: Vec<f32>,
    /// Gate pre-activations of each step, T×N×4H.
    gates: Vec<f32>,
    /// Backward: diffs reaching h_t and c_t from step t+1, and scratch (N×H).
    dh_next: Vec<f32>,
    dc_next: Vec<f32>,
    dh_t: Vec<f32>,
    dc_prev: Vec<f32>,
}

impl Cell for LstmCell {
    const TYPE: &'static str = "LSTM";
    const STATES: &'static [&'static str] = &["h", "c"];
    const GATES: usize = 4;

    fn param_shapes(h: usize) -> Vec<(Vec<usize>, bool)> {
        vec![(vec![4 * h, h], false)]
    }

    fn reshape(&mut self, d: Dims) {
        let (s, t) = (d.state_len(), d.steps);
        self.h.resize((t + 1) * s, 0.0);
        self.c.resize((t + 1) * s, 0.0);
        self.h_conted.resize(t * s, 0.0);
        self.gates.resize(t * 4 * s, 0.0);
        for v in [
            &mut self.dh_next,
            &mut self.dc_next,
            &mut self.dh_t,
            &mut self.dc_prev,
        ] {
            v.resize(s, 0.0);
        }
    }

    fn forward(
        &mut self,
        d: Dims,
        gates_x: &[f32],
        cont: &[f32],
        params: &[SharedBlob],
        state0: &[Vec<f32>],
        out: &mut [f32],
        state_final: &mut [Vec<f32>],
    ) {
        let (n, hd, s) = (d.streams, d.hidden, d.state_len());
        let w_hc = params[0].borrow();
        self.h[..s].copy_from_slice(&state0[0]);
        self.c[..s].copy_from_slice(&state0[1]);
        for t in 0..d.steps {
            let k = &cont[t * n..(t + 1) * n];
            let hc = &mut self.h_conted[t * s..(t + 1) * s];
            hc.copy_from_slice(&self.h[t * s..(t + 1) * s]);
            scale_by_cont(k, hd, hc);
            let g = &mut self.gates[t * 4 * s..(t + 1) * 4 * s];
            g.copy_from_slice(&gates_x[t * 4 * s..(t + 1) * 4 * s]);
            sgemm(
                Transpose::No,
                Transpose::Yes,
                n,
                4 * hd,
                hd,
                1.0,
                hc,
                w_hc.data(),
                1.0,
                g,
            );
            let (c_past, c_next) = self.c.split_at_mut((t + 1) * s);
            unit_forward(
                hd,
                &c_past[t * s..],
                g,
                k,
                &mut c_next[..s],
                &mut self.h[(t + 1) * s..(t + 2) * s],
            );
        }
        out.copy_from_slice(&self.h[s..]);
        state_final[0].copy_from_slice(&self.h[d.steps * s..]);
        state_final[1].copy_from_slice(&self.c[d.steps * s..]);
    }

    fn backward(
        &mut self,
        d: Dims,
        cont: &[f32],
        params: &[SharedBlob],
        out_diff: &[f32],
        final_diff: &[Vec<f32>],
        gates_x_diff: &mut [f32],
        state0_diff: &mut [Vec<f32>],
    ) {
        let (n, hd, s) = (d.streams, d.hidden, d.state_len());
        let mut w_hc = params[0].borrow_mut();
        self.dh_next.copy_from_slice(&final_diff[0]);
        self.dc_next.copy_from_slice(&final_diff[1]);
        for t in (0..d.steps).rev() {
            let k = &cont[t * n..(t + 1) * n];
            for ((a, &y), &b) in self
                .dh_t
                .iter_mut()
                .zip(&out_diff[t * s..(t + 1) * s])
                .zip(&self.dh_next)
            {
                *a = y + b;
            }
            let dg = &mut gates_x_diff[t * 4 * s..(t + 1) * 4 * s];
            unit_backward(
                hd,
                &self.c[t * s..(t + 1) * s],
                &self.gates[t * 4 * s..(t + 1) * 4 * s],
                k,
                &self.c[(t + 1) * s..(t + 2) * s],
                &self.dc_next,
                &self.dh_t,
                Some(&mut self.dc_prev),
                Some(&mut *dg),
            );
            let hc = &self.h_conted[t * s..(t + 1) * s];
            sgemm(
                Transpose::Yes,
                Transpose::No,
                4 * hd,
                hd,
                n,
                1.0,
                dg,
                hc,
                1.0,
                w_hc.diff_mut(),
            );
            sgemm(
                Transpose::No,
                Transpose::No,
                n,
                hd,
                4 * hd,
                1.0,
                dg,
                w_hc.data(),
                0.0,
                &mut self.dh_next,
            );
            scale_by_cont(k, hd, &mut self.dh_next);
            std::mem::swap(&mut self.dc_next, &mut self.dc_prev);
        }
        state0_diff[0].copy_from_slice(&self.dh_next);
        state0_diff[1].copy_from_slice(&self.dc_next);
    }
}
