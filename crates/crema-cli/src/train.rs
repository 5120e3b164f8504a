//! `caffe train`: train from a solver prototxt, optionally finetuning from
//! `--weights` or resuming from `--snapshot`, with Caffe's signal handling
//! (`--sigint_effect`, `--sighup_effect`) checked between iterations.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crema::proto::caffe::solver_parameter::SolverMode;
use crema::proto::files;
use crema::solvers::SolverAction;
use crema::Solver;

use crema_cli::dashboard;
use crema_cli::dashboard::timing::{timed_factory, LayerClock};

use crate::flags::Flags;
use crate::netload::stages_from_flag;

/// Caffe's spelling of a signal effect.
fn effect_from_flag(value: &str) -> Result<SolverAction, String> {
    match value {
        "stop" => Ok(SolverAction::Stop),
        "snapshot" => Ok(SolverAction::Snapshot),
        "none" => Ok(SolverAction::None),
        other => Err(format!(
            "Invalid signal effect \"{other}\" was specified (use snapshot, stop or none)"
        )),
    }
}

/// Flags set by the signal handlers; each request is taken once, SIGHUP first,
/// as Caffe's SignalHandler::CheckForSignals does.
struct SignalFlags {
    sigint: Arc<AtomicBool>,
    sighup: Arc<AtomicBool>,
}

impl SignalFlags {
    fn install() -> Result<SignalFlags, String> {
        let flags = SignalFlags {
            sigint: Arc::new(AtomicBool::new(false)),
            sighup: Arc::new(AtomicBool::new(false)),
        };
        let err = |e: std::io::Error| format!("cannot install the signal handlers: {e}");
        signal_hook::flag::register(signal_hook::consts::SIGINT, flags.sigint.clone())
            .map_err(err)?;
        #[cfg(unix)]
        signal_hook::flag::register(signal_hook::consts::SIGHUP, flags.sighup.clone())
            .map_err(err)?;
        Ok(flags)
    }

    fn action_fn(
        &self,
        on_sigint: SolverAction,
        on_sighup: SolverAction,
    ) -> crema::solvers::ActionFn {
        let (sigint, sighup) = (self.sigint.clone(), self.sighup.clone());
        Box::new(move || {
            if sighup.swap(false, Ordering::SeqCst) {
                return on_sighup;
            }
            if sigint.swap(false, Ordering::SeqCst) {
                return on_sigint;
            }
            SolverAction::None
        })
    }
}

pub fn run(flags: &Flags) -> Result<(), String> {
    let solver_file = flags.get("solver");
    if solver_file.is_empty() {
        return Err("Need a solver definition to train.".into());
    }
    let (snapshot, weights) = (flags.get("snapshot"), flags.get("weights"));
    if !snapshot.is_empty() && !weights.is_empty() {
        return Err(
            "Give a snapshot to resume training or weights to finetune but not both.".into(),
        );
    }
    let on_sigint = effect_from_flag(flags.get("sigint_effect"))?;
    let on_sighup = effect_from_flag(flags.get("sighup_effect"))?;
    let level = flags.get_i64("level")? as i32;
    let err = |e: crema::Error| e.to_string();

    let mut param = files::read_solver_text(solver_file).map_err(|e| e.to_string())?;
    let train_state = param.train_state.mut_or_insert_default();
    train_state.set_level(level);
    train_state
        .stage
        .extend(stages_from_flag(flags.get("stage")));
    let wants_gpu = !flags.get("gpu").is_empty()
        || (param.has_solver_mode() && param.solver_mode() == SolverMode::GPU);
    if wants_gpu {
        log::warn!("This build of crema has no GPU backend; training on the CPU.");
    }
    log::info!("Use CPU.");
    let signals = SignalFlags::install()?;

    // --snapshot ignores the solver's weights; --weights replaces them.
    if !snapshot.is_empty() {
        param.weights.clear();
    } else if !weights.is_empty() {
        param.weights.clear();
        param.weights.push(weights.to_string());
    }
    // Layers are timed for the event record on display iterations.
    let clock = std::rc::Rc::new(LayerClock::default());
    let mut solver = Solver::with_factory(&param, &timed_factory(clock.clone())).map_err(err)?;
    solver.set_action_function(signals.action_fn(on_sigint, on_sighup));
    if let Some(bar) = crate::progress::ProgressHook::for_terminal(param.max_iter()) {
        solver.add_hook(Box::new(bar));
    }
    if !snapshot.is_empty() {
        log::info!("Resuming from {snapshot}");
        solver.restore(Path::new(snapshot)).map_err(err)?;
    }
    let dashboard = Some(flags.get("dashboard")).filter(|d| !d.is_empty());
    let _server = dashboard::attach(&mut solver, &param, Path::new(solver_file), dashboard, clock)?;
    log::info!("Starting Optimization");
    solver.solve(None).map_err(err)?;
    log::info!("Optimization Done.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_effects_take_caffe_names() {
        assert_eq!(effect_from_flag("stop").unwrap(), SolverAction::Stop);
        assert_eq!(
            effect_from_flag("snapshot").unwrap(),
            SolverAction::Snapshot
        );
        assert_eq!(effect_from_flag("none").unwrap(), SolverAction::None);
        assert!(effect_from_flag("halt")
            .unwrap_err()
            .contains("Invalid signal effect \"halt\""));
    }
}
