//! RMSProp (Caffe's RMSPropSolver): history is a running mean of squared
//! gradients, `h = (1−rms_decay)·g² + rms_decay·h`, and the step is
//! `local_rate · g / (sqrt(h) + delta)`.
use super::sgd::axpby;

/// Updates `history`; `scratch` is a buffer of the same length.
pub fn update(
    diff: &mut [f32],
    history: &mut [f32],
    scratch: &mut [f32],
    local_rate: f32,
    rms_decay: f32,
    delta: f32,
) {
    for (u, &g) in scratch.iter_mut().zip(diff.iter()) {
        *u = g * g;
    }
    axpby(1.0 - rms_decay, scratch, rms_decay, history);
    for ((g, &h), u) in diff.iter_mut().zip(history.iter()).zip(scratch.iter_mut()) {
        *u = h.sqrt() + delta;
        *u = *g / *u;
        *g = local_rate * *u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_a_decaying_mean_of_squares() {
        let mut h = vec![1.0f32];
        let mut g = vec![3.0f32];
        let mut s = vec![0.0f32];
        update(&mut g, &mut h, &mut s, 0.5, 0.5, 0.0);
        assert_eq!(h, vec![5.0]);
        assert!((g[0] - 0.5 * 3.0 / 5.0f32.sqrt()).abs() < 1e-7);
    }
}
