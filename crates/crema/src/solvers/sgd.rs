//! SGD with momentum (Caffe's SGDSolver::ComputeUpdateValue):
//! `h = local_rate·g + momentum·h`, and the step applied is `h`.
//!
//! Every rule in this folder works on plain slices in f32 and in the order
//! Caffe's CPU path does its BLAS calls (scale then add), so results match
//! Caffe's float arithmetic rather than a fused or reordered form.

/// Caffe's `caffe_cpu_axpby`: `y = alpha·x + beta·y`, as a scal then an axpy.
pub(crate) fn axpby(alpha: f32, x: &[f32], beta: f32, y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        let scaled = beta * *y;
        *y = alpha * x + scaled;
    }
}

/// Updates `history` and leaves the step to apply in `diff`.
pub fn update(diff: &mut [f32], history: &mut [f32], local_rate: f32, momentum: f32) {
    axpby(local_rate, diff, momentum, history);
    diff.copy_from_slice(history);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_accumulates_scaled_gradients() {
        let mut h = vec![0.0f32, 1.0];
        let mut g = vec![2.0f32, -4.0];
        update(&mut g, &mut h, 0.5, 0.9);
        assert_eq!(h, vec![1.0, 0.9 - 2.0]);
        assert_eq!(g, h);
        let mut g = vec![2.0f32, 0.0];
        update(&mut g, &mut h, 0.5, 0.9);
        assert_eq!(g, vec![0.9 * 1.0 + 1.0, 0.9f32 * (0.9 - 2.0)]);
    }
}
