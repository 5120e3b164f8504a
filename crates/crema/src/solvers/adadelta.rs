//! AdaDelta (Caffe's AdaDeltaSolver, `momentum` as the decay): two histories
//! per parameter, squared gradients `hg` and squared updates `hu`:
//! `hg = (1−μ)·g² + μ·hg`; `step = g · sqrt((hu + δ) / (hg + δ))`;
//! `hu = (1−μ)·step² + μ·hu`; the applied step is `local_rate · step`.
use super::sgd::axpby;

/// Updates both histories; `update_buf` is a buffer of the same length.
pub fn update(
    diff: &mut [f32],
    grad_history: &mut [f32],
    update_history: &mut [f32],
    update_buf: &mut [f32],
    local_rate: f32,
    momentum: f32,
    delta: f32,
) {
    for (u, &g) in update_buf.iter_mut().zip(diff.iter()) {
        *u = g * g;
    }
    axpby(1.0 - momentum, update_buf, momentum, grad_history);
    for i in 0..diff.len() {
        let u = delta + update_history[i];
        let t = delta + grad_history[i];
        diff[i] *= (u / t).sqrt();
        update_buf[i] = diff[i] * diff[i];
    }
    axpby(1.0 - momentum, update_buf, momentum, update_history);
    for g in diff.iter_mut() {
        *g *= local_rate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_scales_by_ratio_of_rms_values() {
        // mu = 0.5, delta = 0: hg = 0.5*4 + 0.5*0 = 2; step = 2*sqrt(8/2) = 4; hu = 0.5*16 + 0.5*8 = 12
        let (mut g, mut hg, mut hu) = (vec![2.0f32], vec![0.0f32], vec![8.0f32]);
        let mut u = vec![0.0f32];
        update(&mut g, &mut hg, &mut hu, &mut u, 0.25, 0.5, 0.0);
        assert_eq!(hg, vec![2.0]);
        assert_eq!(hu, vec![12.0]);
        assert_eq!(g, vec![1.0]);
    }
}
