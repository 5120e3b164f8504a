//! Solver upgrade: the `solver_type` enum became the `type` string.
use crate::caffe::solver_parameter::SolverType;
use crate::caffe::SolverParameter;
use crate::error::{ProtoError, Result};

/// True when the solver still uses the deprecated `solver_type` enum.
pub fn solver_needs_upgrade(solver: &SolverParameter) -> bool {
    solver.solver_type.is_some()
}

/// The `type` string Caffe's solver registry knows for each old enum value.
pub fn solver_type_name(t: SolverType) -> &'static str {
    match t {
        SolverType::SGD => "SGD",
        SolverType::NESTEROV => "Nesterov",
        SolverType::ADAGRAD => "AdaGrad",
        SolverType::RMSPROP => "RMSProp",
        SolverType::ADADELTA => "AdaDelta",
        SolverType::ADAM => "Adam",
    }
}

/// Moves `solver_type` into `type`; returns whether anything changed. Like
/// Caffe, a file that sets both fields is refused, even when they agree,
/// since one of them would be silently ignored.
pub fn upgrade_solver(solver: &mut SolverParameter, source_name: &str) -> Result<bool> {
    let Some(old) = solver.solver_type else {
        return Ok(false);
    };
    log::info!(
        "Attempting to upgrade input file specified using deprecated 'solver_type' field (enum)': {source_name}"
    );
    if solver.type_.is_some() {
        return Err(ProtoError::invalid(
            source_name,
            format!(
                "failed to upgrade solver: the old solver_type field (enum, here {}) and the new type field \
                 (string, here \"{}\") cannot both be specified; keep only `type`",
                old.enum_value().map(|t| format!("{t:?}")).unwrap_or_else(|n| n.to_string()),
                solver.type_()
            ),
        ));
    }
    let t = old.enum_value().map_err(|n| {
        ProtoError::invalid(source_name, format!("unknown solver_type enum value {n}"))
    })?;
    solver.type_ = Some(solver_type_name(t).to_string());
    solver.solver_type = None;
    log::info!("Successfully upgraded file specified using deprecated 'solver_type' field (enum) to 'type' field (string).");
    log::warn!("Note that future Caffe releases will only support 'type' field (string) for a solver's type.");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_solver_type_enum_maps_to_its_registry_name() {
        let expected = [
            (SolverType::SGD, "SGD"),
            (SolverType::NESTEROV, "Nesterov"),
            (SolverType::ADAGRAD, "AdaGrad"),
            (SolverType::RMSPROP, "RMSProp"),
            (SolverType::ADADELTA, "AdaDelta"),
            (SolverType::ADAM, "Adam"),
        ];
        for (t, name) in expected {
            let mut s = SolverParameter::new();
            s.set_solver_type(t);
            assert!(solver_needs_upgrade(&s));
            assert!(upgrade_solver(&mut s, "s.prototxt").unwrap());
            assert_eq!(s.type_(), name);
            assert!(!s.has_solver_type());
            assert!(!solver_needs_upgrade(&s));
        }
    }

    #[test]
    fn current_solver_is_left_alone() {
        let mut s = SolverParameter::new();
        s.set_type("Adam".into());
        assert!(!solver_needs_upgrade(&s));
        assert!(!upgrade_solver(&mut s, "s").unwrap());
        assert_eq!(s.type_(), "Adam");
    }

    #[test]
    fn solver_with_both_type_fields_is_refused() {
        let mut s = SolverParameter::new();
        s.set_solver_type(SolverType::NESTEROV);
        s.set_type("Adam".into());
        let e = upgrade_solver(&mut s, "solver.prototxt")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("solver.prototxt:") && e.contains("NESTEROV") && e.contains("Adam"),
            "{e}"
        );
    }
}
