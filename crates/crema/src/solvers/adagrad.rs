//! AdaGrad (Caffe's AdaGradSolver): history accumulates squared gradients and
//! the step is `local_rate · g / (sqrt(history) + delta)`.

/// Updates `history`; `scratch` is a buffer of the same length.
pub fn update(
    diff: &mut [f32],
    history: &mut [f32],
    scratch: &mut [f32],
    local_rate: f32,
    delta: f32,
) {
    for ((g, h), u) in diff
        .iter_mut()
        .zip(history.iter_mut())
        .zip(scratch.iter_mut())
    {
        *u = *g * *g;
        *h += *u;
        *u = h.sqrt() + delta;
        *u = *g / *u;
        *g = local_rate * *u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_divides_by_root_of_summed_squares() {
        let mut h = vec![5.0f32];
        let mut g = vec![2.0f32];
        let mut s = vec![0.0f32];
        update(&mut g, &mut h, &mut s, 0.1, 0.0);
        assert_eq!(h, vec![9.0]);
        assert!((g[0] - 0.1 * 2.0 / 3.0).abs() < 1e-7);
    }
}
