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
    let overlap = match flags.get("exchange_overlap") {
        "true" => Some(true),
        "false" => Some(false),
        "auto" => None,
        other => {
            return Err(format!(
                "Invalid --exchange_overlap \"{other}\" (use true, false or auto)"
            ))
        }
    };
    let job = Job {
        flags,
        param: &param,
        solver_file,
        snapshot,
        signals: &signals,
        on_sigint,
        on_sighup,
        overlap: overlap.unwrap_or(false),
    };
    let workers = flags.get_i64("workers")?;
    if workers < 1 {
        return Err(format!("--workers must be at least 1, got {workers}"));
    }
    if under_mpirun() {
        if workers > 1 {
            return Err("under mpirun each rank is one worker; drop --workers".into());
        }
        return train_mpi(job, overlap);
    }
    if workers == 1 {
        // On a pool thread, so the layers' splits do not wake the pool from outside.
        return crema::backend::pool::run_on_pool(|| job.train_replica(0, None));
    }
    log::info!("Training data-parallel on {workers} worker threads");
    crema::parallel::train_on_threads(workers as usize, |rank, comm| {
        job.train_replica(rank, Some(comm))
            .map_err(crema::Error::Other)
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// What every replica of one `caffe train` needs.
struct Job<'a> {
    flags: &'a Flags,
    param: &'a crema::proto::caffe::SolverParameter,
    solver_file: &'a str,
    snapshot: &'a str,
    signals: &'a SignalFlags,
    on_sigint: SolverAction,
    on_sighup: SolverAction,
    /// Exchange each layer's gradients as its backward finishes.
    overlap: bool,
}

impl Job<'_> {
    /// Builds and trains one replica (the only one when `comm` is None). The
    /// root alone takes signals, draws the progress bar and feeds the dashboard.
    fn train_replica(
        &self,
        rank: usize,
        comm: Option<Box<dyn crema::parallel::Communicator>>,
    ) -> Result<(), String> {
        let err = |e: crema::Error| e.to_string();
        // Layers are timed for the event record on display iterations.
        let clock = std::rc::Rc::new(LayerClock::default());
        let mut solver =
            Solver::with_factory(self.param, &timed_factory(clock.clone())).map_err(err)?;
        crate::netload::optimize_for_whole_passes(solver.net_mut());
        if let Some(comm) = comm {
            crema::parallel::join_replica(&mut solver, comm, self.overlap).map_err(err)?;
        }
        let root = rank == 0;
        if root {
            solver.set_action_function(self.signals.action_fn(self.on_sigint, self.on_sighup));
            if let Some(bar) = crate::progress::ProgressHook::for_terminal(self.param.max_iter()) {
                solver.add_hook(Box::new(bar));
            }
        }
        if !self.snapshot.is_empty() {
            log::info!("Resuming from {}", self.snapshot);
            solver.restore(Path::new(self.snapshot)).map_err(err)?;
        }
        let _server = if root {
            let dashboard = Some(self.flags.get("dashboard")).filter(|d| !d.is_empty());
            dashboard::attach(
                &mut solver,
                self.param,
                Path::new(self.solver_file),
                dashboard,
                clock,
            )?
        } else {
            None
        };
        log::info!("Starting Optimization");
        solver.solve(None).map_err(err)?;
        log::info!("Optimization Done.");
        Ok(())
    }
}

/// Whether mpirun started this process (then it is one rank of a job).
fn under_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

#[cfg(not(feature = "mpi"))]
fn train_mpi(_job: Job, _overlap: Option<bool>) -> Result<(), String> {
    Err("this caffe was started by mpirun but built without MPI support; build crema-cli with `--features mpi` (needs libopenmpi-dev), or run it without mpirun".into())
}

/// One rank of `mpirun -np N caffe train`: rank 0 logs, tests, snapshots and
/// takes signals; every rank trains on its share of the data. `overlap`
/// None (auto) overlaps the exchange only across machines, where it waits on
/// the network, not on the cores the math needs.
#[cfg(feature = "mpi")]
fn train_mpi(mut job: Job, overlap: Option<bool>) -> Result<(), String> {
    use crema::parallel::Communicator;
    let (mpi, comm, any_thread) = crate::mpi_comm::Mpi::init()?;
    let (rank, size) = (comm.rank(), comm.size());
    crema::logging::set_process_quiet(rank > 0);
    // Ranks on one machine split its cores rather than each taking all
    // (set before the kernels' thread pool starts; no other thread runs yet).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / crate::mpi_comm::local_size()).max(1);
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let timeout = job.flags.get_i64("exchange_timeout")?.max(1) as u64;
    comm.watch(std::time::Duration::from_secs(timeout));
    log::info!("MPI: {size} ranks; rank 0 tests, displays and snapshots");
    crema::parallel::enter_replica(rank, size, |_| {});
    job.overlap = overlap.unwrap_or_else(crate::mpi_comm::spans_machines);
    if job.overlap && !any_thread {
        log::warn!("this MPI library does not allow calls from a second thread; the gradient exchange will not overlap backward");
        job.overlap = false;
    }
    match job.train_replica(rank, Some(Box::new(comm))) {
        Ok(()) => {
            drop(mpi);
            Ok(())
        }
        Err(e) => {
            // Not MPI_Finalize: the others may be inside a collective.
            // Exiting makes mpirun stop the job and name this rank.
            log::error!("rank {rank} of {size}: {e}");
            std::mem::forget(mpi);
            std::process::exit(1);
        }
    }
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
