//! Caffe's learning-rate policies (SGDSolver::GetLearningRate), with the
//! precision Caffe's expressions have: the parameters are floats, `pow` and
//! `exp` run in double, and the result is rounded to float.
use crema_proto::caffe::SolverParameter;

use crate::error::{Error, Result};

/// The policies Caffe knows, by their `lr_policy` names.
pub const POLICIES: &[&str] = &[
    "fixed",
    "step",
    "exp",
    "inv",
    "multistep",
    "poly",
    "sigmoid",
];

/// Checks once, at solver construction, what Caffe checks on every call, so
/// a bad solver file fails before training starts.
pub fn validate(param: &SolverParameter) -> Result<()> {
    let policy = param.lr_policy();
    let bad = |m: String| Err(Error::Other(format!("lr_policy \"{policy}\": {m}")));
    if !POLICIES.contains(&policy) {
        return Err(Error::Other(format!(
            "Unknown learning rate policy: \"{policy}\" (known: {})",
            POLICIES.join(", ")
        )));
    }
    if matches!(policy, "step" | "sigmoid") && param.stepsize() <= 0 {
        return bad(format!(
            "stepsize must be positive, got {}",
            param.stepsize()
        ));
    }
    if policy != "fixed" && policy != "poly" && param.gamma() < 0.0 {
        return bad(format!("gamma must be non-negative, got {}", param.gamma()));
    }
    if policy == "poly" && param.max_iter() <= 0 {
        return bad(format!(
            "max_iter must be positive, got {}",
            param.max_iter()
        ));
    }
    Ok(())
}

/// The rate at iteration `iter`. `current_step` is the solver's step counter:
/// "step" recomputes it, "multistep" advances it (logging as Caffe does),
/// so a restored counter carries on where the snapshot left it.
pub fn learning_rate(param: &SolverParameter, iter: i32, current_step: &mut i32) -> Result<f32> {
    let base = f64::from(param.base_lr());
    let gamma = param.gamma();
    let rate = match param.lr_policy() {
        "fixed" => base,
        "step" => {
            let stepsize = param.stepsize();
            if stepsize <= 0 {
                return Err(Error::Other(format!(
                    "lr_policy \"step\" needs a positive stepsize, got {stepsize}"
                )));
            }
            *current_step = iter / stepsize;
            base * f64::from(gamma).powf(f64::from(*current_step))
        }
        "exp" => base * f64::from(gamma).powf(f64::from(iter)),
        "inv" => {
            let b = 1.0f32 + gamma * iter as f32;
            base * f64::from(b).powf(f64::from(-param.power()))
        }
        "multistep" => {
            let steps = &param.stepvalue;
            if let Some(&next) = steps.get(*current_step as usize) {
                if *current_step >= 0 && iter >= next {
                    *current_step += 1;
                    log::info!("MultiStep Status: Iteration {iter}, step = {current_step}");
                }
            }
            base * f64::from(gamma).powf(f64::from(*current_step))
        }
        "poly" => {
            let frac = 1.0f32 - iter as f32 / param.max_iter() as f32;
            base * f64::from(frac).powf(f64::from(param.power()))
        }
        "sigmoid" => {
            let x = -gamma * (iter as f32 - param.stepsize() as f32);
            base * (1.0 / (1.0 + f64::from(x).exp()))
        }
        other => {
            return Err(Error::Other(format!(
                "Unknown learning rate policy: \"{other}\""
            )))
        }
    };
    Ok(rate as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solver(text: &str) -> SolverParameter {
        crema_proto::text::parse(text, "test").unwrap()
    }

    fn rates(p: &SolverParameter, iters: &[i32]) -> Vec<f32> {
        let mut step = 0;
        iters
            .iter()
            .map(|&i| learning_rate(p, i, &mut step).unwrap())
            .collect()
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                ((*x as f64) - y).abs() <= 1e-6 * y.abs().max(1e-12),
                "{a:?} vs {b:?}"
            );
        }
    }

    // Expected values worked out by hand from the formulas in Caffe's sgd_solver.cpp comments.
    #[test]
    fn fixed_step_exp_follow_their_formulas() {
        close(
            &rates(&solver("base_lr: 0.01 lr_policy: 'fixed'"), &[0, 7, 1000]),
            &[0.01, 0.01, 0.01],
        );
        let p = solver("base_lr: 0.01 lr_policy: 'step' gamma: 0.1 stepsize: 10");
        close(
            &rates(&p, &[0, 9, 10, 19, 20, 35]),
            &[0.01, 0.01, 0.001, 0.001, 0.0001, 0.00001],
        );
        let p = solver("base_lr: 0.5 lr_policy: 'exp' gamma: 0.5");
        close(&rates(&p, &[0, 1, 3]), &[0.5, 0.25, 0.0625]);
    }

    #[test]
    fn inv_matches_lenet_schedule() {
        // LeNet's: 0.01 * (1 + 0.0001 * iter) ^ -0.75
        let p = solver("base_lr: 0.01 lr_policy: 'inv' gamma: 0.0001 power: 0.75");
        let expect = |i: f64| 0.01 * (1.0 + 0.0001 * i).powf(-0.75);
        close(
            &rates(&p, &[0, 100, 5000, 10000]),
            &[expect(0.0), expect(100.0), expect(5000.0), expect(10000.0)],
        );
        // The value Caffe logs at iteration 100 of LeNet.
        assert_eq!(
            crema_proto::text::format_g(rates(&p, &[100])[0] as f64, 6),
            "0.00992565"
        );
    }

    #[test]
    fn multistep_advances_once_per_call_and_holds() {
        let p = solver("base_lr: 1 lr_policy: 'multistep' gamma: 0.5 stepvalue: 3 stepvalue: 5");
        close(
            &rates(&p, &[0, 1, 2, 3, 4, 5, 6, 100]),
            &[1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25],
        );
        // A restored step counter continues: resuming at iteration 6 with step 2.
        let mut step = 2;
        assert_eq!(learning_rate(&p, 6, &mut step).unwrap(), 0.25);
    }

    #[test]
    fn poly_and_sigmoid_follow_their_formulas() {
        let p = solver("base_lr: 0.1 lr_policy: 'poly' power: 2 max_iter: 10");
        close(&rates(&p, &[0, 5, 9, 10]), &[0.1, 0.025, 0.001, 0.0]);
        let p = solver("base_lr: 1 lr_policy: 'sigmoid' gamma: 0.5 stepsize: 4");
        let s = |i: f64| 1.0 / (1.0 + (-0.5 * (i - 4.0)).exp());
        close(&rates(&p, &[0, 4, 8]), &[s(0.0), 0.5, s(8.0)]);
    }

    #[test]
    fn bad_policies_are_named() {
        let e = validate(&solver("lr_policy: 'cosine'"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Unknown learning rate policy: \"cosine\""),
            "{e}"
        );
        let e = validate(&solver("lr_policy: 'step' gamma: 0.1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stepsize must be positive"), "{e}");
        assert!(validate(&solver("")).is_err());
    }
}
