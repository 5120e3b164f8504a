//! LSTMUnit: one LSTM step for N streams, without weights (the gate inputs
//! come precomputed). Bottoms `c_prev` (1×N×H), `X` (1×N×4H: the gate inputs
//! in Caffe's order i, f, o, g) and `cont` (1×N); tops `c` and `h` (1×N×H):
//!
//! ```text
//! i = σ(X_i)   f = cont·σ(X_f)   o = σ(X_o)   g = tanh(X_g)
//! c = f·c_prev + i·g             h = o·tanh(c)
//! ```
//!
//! The LSTM layer runs this same arithmetic at every step (`lstm.rs`).
use crema_proto::caffe::LayerParameter;

use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::common::{check_distinct, propagates};
use crate::layers::Layer;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The forget gate: 0 where the sequence restarts. Caffe multiplies a
/// non-binary `cont` into the gate too (and its backward then treats the
/// product as the sigmoid's output, which we keep).
fn forget(x: f32, cont: f32) -> f32 {
    if cont == 0.0 {
        0.0
    } else {
        cont * sigmoid(x)
    }
}

/// One step for every stream: `x` holds N rows of 4H gate inputs; `cont` one
/// value per stream. Writes `c` and `h` (N×H).
pub(crate) fn unit_forward(
    hidden: usize,
    c_prev: &[f32],
    x: &[f32],
    cont: &[f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    let rows = c_prev
        .chunks_exact(hidden)
        .zip(x.chunks_exact(4 * hidden))
        .zip(cont)
        .zip(c.chunks_exact_mut(hidden).zip(h.chunks_exact_mut(hidden)));
    for (((cp, xr), &k), (cr, hr)) in rows {
        for d in 0..hidden {
            let i = sigmoid(xr[d]);
            let f = forget(xr[hidden + d], k);
            let o = sigmoid(xr[2 * hidden + d]);
            let g = (xr[3 * hidden + d]).tanh();
            cr[d] = f * cp[d] + i * g;
            hr[d] = o * cr[d].tanh();
        }
    }
}

/// The step's gradient from the diffs of `c` and `h`: writes `dc_prev` (N×H)
/// and `dx` (N×4H) where given. `c` is the forward's output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn unit_backward(
    hidden: usize,
    c_prev: &[f32],
    x: &[f32],
    cont: &[f32],
    c: &[f32],
    dc: &[f32],
    dh: &[f32],
    mut dc_prev: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
) {
    let n = cont.len();
    for s in 0..n {
        let (xr, k) = (&x[s * 4 * hidden..(s + 1) * 4 * hidden], cont[s]);
        for d in 0..hidden {
            let j = s * hidden + d;
            let i = sigmoid(xr[d]);
            let f = forget(xr[hidden + d], k);
            let o = sigmoid(xr[2 * hidden + d]);
            let g = (xr[3 * hidden + d]).tanh();
            let tanh_c = c[j].tanh();
            // Gradient reaching c through both tops.
            let dc_total = dc[j] + dh[j] * o * (1.0 - tanh_c * tanh_c);
            if let Some(p) = dc_prev.as_deref_mut() {
                p[j] = dc_total * f;
            }
            if let Some(dx) = dx.as_deref_mut() {
                let r = &mut dx[s * 4 * hidden..(s + 1) * 4 * hidden];
                r[d] = dc_total * g * i * (1.0 - i);
                r[hidden + d] = dc_total * c_prev[j] * f * (1.0 - f);
                r[2 * hidden + d] = dh[j] * tanh_c * o * (1.0 - o);
                r[3 * hidden + d] = dc_total * i * (1.0 - g * g);
            }
        }
    }
}

pub struct LSTMUnitLayer {
    param: LayerParameter,
    hidden: usize,
}

impl LSTMUnitLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(LSTMUnitLayer {
            param: param.clone(),
            hidden: 0,
        }))
    }
}

impl Layer for LSTMUnitLayer {
    fn type_name(&self) -> &'static str {
        "LSTMUnit"
    }

    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        crate::ensure!(
            &self.param,
            bottom.len() == 3 && top.len() == 2,
            "takes 3 bottoms (c_prev, X, cont) and 2 tops (c, h), got {} and {}",
            bottom.len(),
            top.len()
        );
        check_distinct(&self.param, bottom, top)
    }

    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let names = ["c_prev", "X", "cont"];
        let n = bottom[0].borrow().shape().get(1).copied().unwrap_or(0);
        for (i, name) in names.iter().enumerate() {
            let b = bottom[i].borrow();
            let axes = if i == 2 { 2 } else { 3 };
            crate::ensure!(
                &self.param,
                b.num_axes() == axes && b.shape()[0] == 1 && b.shape()[1] == n,
                "bottom[{i}] ({name}) must be 1 x #streams{} with #streams = {n}, got {}",
                if i == 2 { "" } else { " x dim" },
                b.shape_string()
            );
        }
        let c_prev = bottom[0].borrow();
        self.hidden = c_prev.shape()[2];
        crate::ensure!(
            &self.param,
            self.hidden > 0,
            "bottom[0] (c_prev) {} has no cells",
            c_prev.shape_string()
        );
        let x = bottom[1].borrow();
        crate::ensure!(
            &self.param,
            x.shape()[2] == 4 * self.hidden,
            "bottom[1] (X) must hold 4 gate inputs per cell: {} is not 4 x {}",
            x.shape()[2],
            self.hidden
        );
        for t in top {
            t.borrow_mut().reshape_like(&c_prev);
        }
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        unit_forward(
            self.hidden,
            bottom[0].borrow().data(),
            bottom[1].borrow().data(),
            bottom[2].borrow().data(),
            top[0].borrow_mut().data_mut(),
            top[1].borrow_mut().data_mut(),
        );
        Ok(())
    }

    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        crate::ensure!(
            &self.param,
            !propagates(propagate_down, 2),
            "cannot backpropagate to sequence indicators (bottom[2], cont)"
        );
        let (pd_c, pd_x) = (propagates(propagate_down, 0), propagates(propagate_down, 1));
        if !pd_c && !pd_x {
            return Ok(());
        }
        let (c, h) = (top[0].borrow(), top[1].borrow());
        let mut c_prev = bottom[0].borrow_mut();
        let mut x = bottom[1].borrow_mut();
        let (c_prev_data, c_prev_diff) = c_prev.data_and_diff_mut();
        let (x_data, x_diff) = x.data_and_diff_mut();
        unit_backward(
            self.hidden,
            c_prev_data,
            x_data,
            bottom[2].borrow().data(),
            c.data(),
            c.diff(),
            h.diff(),
            pd_c.then_some(c_prev_diff),
            pd_x.then_some(x_diff),
        );
        Ok(())
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(3)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        bottom_index != 2
    }
}

#[cfg(test)]
mod tests {
    use crate::blob::Blob;
    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;

    fn bottoms(n: usize, hidden: usize, cont: &[f32]) -> Vec<crate::SharedBlob> {
        let c_prev = Blob::shared(&[1, n, hidden]);
        let x = Blob::shared(&[1, n, 4 * hidden]);
        fill_uniform(&c_prev, -1.0, 1.0, 5);
        fill_uniform(&x, -1.0, 1.0, 6);
        vec![c_prev, x, blob(&[1, n], cont)]
    }

    #[test]
    fn forward_is_the_lstm_step_with_gates_in_caffe_order() {
        // One stream, one cell: X = (i, f, o, g) pre-activations.
        let b = vec![
            blob(&[1, 2, 1], &[0.5, 2.0]),
            blob(&[1, 2, 4], &[0.1, 0.2, 0.3, 0.4, -1.0, 1.0, 0.5, -0.5]),
            blob(&[1, 2], &[1.0, 0.0]),
        ];
        let (c, h) = (empty(), empty());
        let mut l = layer(&param("LSTMUnit", |_| {}));
        run(l.as_mut(), &b, &[c.clone(), h.clone()]);
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let c0 = s(0.2) * 0.5 + s(0.1) * 0.4f64.tanh();
        // cont = 0: the forget gate is closed, c_prev (2.0) is dropped.
        let c1 = s(-1.0) * (-0.5f64).tanh();
        let want_c = [c0 as f32, c1 as f32];
        let want_h = [(s(0.3) * c0.tanh()) as f32, (s(0.5) * c1.tanh()) as f32];
        assert_eq!(c.borrow().shape(), &[1, 2, 1]);
        assert_close(c.borrow().data(), &want_c, 1e-6);
        assert_close(h.borrow().data(), &want_h, 1e-6);
    }

    #[test]
    fn gradient_wrt_c_prev_and_gates_with_a_reset_stream() {
        for cont in [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]] {
            for check in [0, 1] {
                let b = bottoms(3, 4, &cont);
                let mut l = layer(&param("LSTMUnit", |_| {}));
                GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
                    l.as_mut(),
                    &b,
                    &[empty(), empty()],
                    Some(check),
                );
            }
        }
    }

    #[test]
    fn a_reset_stream_passes_no_gradient_to_c_prev() {
        let b = bottoms(2, 3, &[1.0, 0.0]);
        let (c, h) = (empty(), empty());
        let mut l = layer(&param("LSTMUnit", |_| {}));
        run(l.as_mut(), &b, &[c.clone(), h.clone()]);
        c.borrow_mut().diff_mut().fill(1.0);
        h.borrow_mut().diff_mut().fill(1.0);
        l.backward(&[c, h], &[true, true, false], &b).unwrap();
        let d = b[0].borrow().diff().to_vec();
        assert!(d[..3].iter().all(|&v| v != 0.0), "{d:?}");
        assert_eq!(&d[3..], &[0.0; 3]);
    }

    #[test]
    fn mismatched_shapes_and_backward_to_cont_are_errors() {
        let mut l = layer(&param("LSTMUnit", |_| {}));
        let bad = vec![
            Blob::shared(&[1, 2, 3]),
            Blob::shared(&[1, 2, 10]),
            Blob::shared(&[1, 2]),
        ];
        let e = setup_error(l.as_mut(), &bad, &[empty(), empty()]);
        assert!(e.contains("4 gate inputs per cell"), "{e}");
        let bad = vec![
            Blob::shared(&[1, 2, 3]),
            Blob::shared(&[1, 3, 12]),
            Blob::shared(&[1, 2]),
        ];
        let e = setup_error(l.as_mut(), &bad, &[empty(), empty()]);
        assert!(e.contains("bottom[1] (X)"), "{e}");
        let bad = vec![
            Blob::shared(&[1, 2, 0]),
            Blob::shared(&[1, 2, 0]),
            Blob::shared(&[1, 2]),
        ];
        let e = setup_error(l.as_mut(), &bad, &[empty(), empty()]);
        assert!(e.contains("has no cells"), "{e}");
        let b = bottoms(2, 3, &[1.0, 1.0]);
        let t = [empty(), empty()];
        run(l.as_mut(), &b, &t);
        let e = l
            .backward(&t, &[true, true, true], &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sequence indicators"), "{e}");
    }
}
