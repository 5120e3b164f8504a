//! Adam (Caffe's AdamSolver, `momentum` as β1 and `momentum2` as β2): two
//! histories per parameter, the moments `m` and `v`. Caffe folds the bias
//! correction into the rate, `sqrt(1−β2^t)/(1−β1^t)` with `t = iter + 1`,
//! and adds `delta` to `sqrt(v)` (not to the corrected one).
use super::sgd::axpby;

/// The bias correction at iteration `iter` (0-based), computed in double and
/// rounded to float as Caffe's expression is.
pub fn correction(iter: i32, beta1: f32, beta2: f32) -> f32 {
    let t = f64::from(iter) + 1.0;
    let c = (1.0 - f64::from(beta2).powf(t)).sqrt() / (1.0 - f64::from(beta1).powf(t));
    c as f32
}

/// Updates both moments; `temp` is a buffer of the same length.
#[allow(clippy::too_many_arguments)]
pub fn update(
    diff: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    temp: &mut [f32],
    local_rate: f32,
    correction: f32,
    beta1: f32,
    beta2: f32,
    eps_hat: f32,
) {
    axpby(1.0 - beta1, diff, beta1, m);
    for (t, &g) in temp.iter_mut().zip(diff.iter()) {
        *t = g * g;
    }
    axpby(1.0 - beta2, temp, beta2, v);
    let scale = local_rate * correction;
    for i in 0..diff.len() {
        temp[i] = v[i].sqrt() + eps_hat;
        temp[i] = m[i] / temp[i];
        diff[i] = scale * temp[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_is_rate_times_sign() {
        // At t = 1 with zero moments, m = (1-b1) g, v = (1-b2) g², and the
        // corrected step is local_rate · g/|g| (delta aside).
        let c = correction(0, 0.9, 0.999);
        assert!((c as f64 - (0.001f64.sqrt() / 0.1)).abs() < 1e-4);
        let (mut g, mut m, mut v, mut t) =
            (vec![-3.0f32, 0.5], vec![0.0; 2], vec![0.0; 2], vec![0.0; 2]);
        update(&mut g, &mut m, &mut v, &mut t, 0.01, c, 0.9, 0.999, 0.0);
        assert!(
            (g[0] + 0.01).abs() < 1e-6 && (g[1] - 0.01).abs() < 1e-6,
            "{g:?}"
        );
    }
}
