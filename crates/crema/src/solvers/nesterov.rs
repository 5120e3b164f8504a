//! Nesterov's accelerated gradient as Caffe's NesterovSolver does it: keep
//! the old history, update it like SGD, then step `(1+μ)·h_new − μ·h_old`
//! (step back to where momentum alone would land, then over-step).
use super::sgd::axpby;

/// Updates `history`; `scratch` (same length) holds the previous history.
pub fn update(
    diff: &mut [f32],
    history: &mut [f32],
    scratch: &mut [f32],
    local_rate: f32,
    momentum: f32,
) {
    scratch.copy_from_slice(history);
    axpby(local_rate, diff, momentum, history);
    axpby(1.0 + momentum, history, -momentum, scratch);
    diff.copy_from_slice(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_is_momentum_lookahead() {
        // h_old = 1, g = 2, rate 0.5, mu 0.5: h = 1 + 0.5 = 1.5; step = 1.5*1.5 - 0.5*1 = 1.75
        let mut h = vec![1.0f32];
        let mut g = vec![2.0f32];
        let mut s = vec![0.0f32];
        update(&mut g, &mut h, &mut s, 0.5, 0.5);
        assert_eq!(h, vec![1.5]);
        assert_eq!(g, vec![1.75]);
    }
}
