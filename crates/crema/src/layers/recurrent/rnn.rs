//! RNN: Caffe's simple (Elman) recurrent layer, unrolled over the T steps of
//! its input (see `recurrent.rs` for bottoms, tops and state handling):
//!
//! ```text
//! h_t = tanh(W_hh·(cont_t·h_{t−1}) + W_xh·x_t + b_h [+ W_xh_static·x_static])
//! o_t = tanh(W_ho·h_t + b_o)
//! ```
//!
//! Parameters, in Caffe's order: W_xh (H×D), b_h (H), [W_xh_static (H×S)],
//! W_hh (H×H), W_ho (H×H), b_o (H). The top is o; the recurrent state is h.
use super::recurrent::{scale_by_cont, Cell, Dims, RecurrentLayer};
use crate::backend::{axpy, sgemm, Transpose};
use crate::blob::SharedBlob;

/// RNN as registered: the shared recurrent machinery around `RnnCell`.
pub type RNNLayer = RecurrentLayer<RnnCell>;

/// The RNN step and the buffers back-propagation through time needs.
#[derive(Default)]
pub struct RnnCell {
    /// h_0 … h_T, (T+1)×N×H.
    h: Vec<f32>,
    /// cont_t·h_{t−1} for each step (what W_hh multiplies), T×N×H.
    h_conted: Vec<f32>,
    /// o_1 … o_T.
    o: Vec<f32>,
    /// Backward: diff of W_ho·h_t + b_o, then of h_t from the outputs.
    d_o: Vec<f32>,
    d_h: Vec<f32>,
    /// Diff reaching h_t from step t+1 (N×H).
    dh_next: Vec<f32>,
}

impl Cell for RnnCell {
    const TYPE: &'static str = "RNN";
    const STATES: &'static [&'static str] = &["h"];
    const GATES: usize = 1;

    fn param_shapes(h: usize) -> Vec<(Vec<usize>, bool)> {
        vec![(vec![h, h], false), (vec![h, h], false), (vec![h], true)]
    }

    fn reshape(&mut self, d: Dims) {
        let (s, t) = (d.state_len(), d.steps);
        self.h.resize((t + 1) * s, 0.0);
        for v in [
            &mut self.h_conted,
            &mut self.o,
            &mut self.d_o,
            &mut self.d_h,
        ] {
            v.resize(t * s, 0.0);
        }
        self.dh_next.resize(s, 0.0);
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
        let w_hh = params[0].borrow();
        self.h[..s].copy_from_slice(&state0[0]);
        for t in 0..d.steps {
            let (past, next) = self.h.split_at_mut((t + 1) * s);
            let hc = &mut self.h_conted[t * s..(t + 1) * s];
            hc.copy_from_slice(&past[t * s..]);
            scale_by_cont(&cont[t * n..(t + 1) * n], hd, hc);
            let h_t = &mut next[..s];
            h_t.copy_from_slice(&gates_x[t * s..(t + 1) * s]);
            sgemm(
                Transpose::No,
                Transpose::Yes,
                n,
                hd,
                hd,
                1.0,
                hc,
                w_hh.data(),
                1.0,
                h_t,
            );
            h_t.iter_mut().for_each(|v| *v = v.tanh());
        }
        state_final[0].copy_from_slice(&self.h[d.steps * s..]);
        // The output layer has no recurrence: all steps in one product.
        let (w_ho, b_o) = (params[1].borrow(), params[2].borrow());
        let rows = d.steps * n;
        sgemm(
            Transpose::No,
            Transpose::Yes,
            rows,
            hd,
            hd,
            1.0,
            &self.h[s..],
            w_ho.data(),
            0.0,
            &mut self.o,
        );
        for row in self.o.chunks_exact_mut(hd) {
            axpy(1.0, b_o.data(), row);
            row.iter_mut().for_each(|v| *v = v.tanh());
        }
        out.copy_from_slice(&self.o);
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
        let rows = d.steps * n;
        for ((g, &y), &o) in self.d_o.iter_mut().zip(out_diff).zip(&self.o) {
            *g = y * (1.0 - o * o);
        }
        {
            let mut w_ho = params[1].borrow_mut();
            sgemm(
                Transpose::Yes,
                Transpose::No,
                hd,
                hd,
                rows,
                1.0,
                &self.d_o,
                &self.h[s..],
                1.0,
                w_ho.diff_mut(),
            );
            sgemm(
                Transpose::No,
                Transpose::No,
                rows,
                hd,
                hd,
                1.0,
                &self.d_o,
                w_ho.data(),
                0.0,
                &mut self.d_h,
            );
            let mut b_o = params[2].borrow_mut();
            let bd = b_o.diff_mut();
            for row in self.d_o.chunks_exact(hd) {
                axpy(1.0, row, bd);
            }
        }
        let mut w_hh = params[0].borrow_mut();
        self.dh_next.copy_from_slice(&final_diff[0]);
        for t in (0..d.steps).rev() {
            let range = t * s..(t + 1) * s;
            let dpre = &mut gates_x_diff[range.clone()];
            let h_t = &self.h[(t + 1) * s..(t + 2) * s];
            for (((g, &a), &b), &h) in dpre
                .iter_mut()
                .zip(&self.d_h[range.clone()])
                .zip(&self.dh_next)
                .zip(h_t)
            {
                *g = (a + b) * (1.0 - h * h);
            }
            sgemm(
                Transpose::Yes,
                Transpose::No,
                hd,
                hd,
                n,
                1.0,
                dpre,
                &self.h_conted[range],
                1.0,
                w_hh.diff_mut(),
            );
            sgemm(
                Transpose::No,
                Transpose::No,
                n,
                hd,
                hd,
                1.0,
                dpre,
                w_hh.data(),
                0.0,
                &mut self.dh_next,
            );
            scale_by_cont(&cont[t * n..(t + 1) * n], hd, &mut self.dh_next);
        }
        state0_diff[0].copy_from_slice(&self.dh_next);
    }
}
