//! Setting up one replica, and running N of them as threads.
use super::{set_data_shard, thread_group, Communicator, DataShard, GradientSync};
use crate::error::{Error, Result};
use crate::solvers::Solver;

/// Call on the replica's thread before building its solver: its data layers
/// take shard `rank` of `size`, and only the root logs INFO lines.
pub fn enter_replica(rank: usize, size: usize, quiet: impl FnOnce(bool)) {
    set_data_shard(DataShard { rank, count: size });
    quiet(rank > 0);
}

/// Makes a freshly built solver replica `comm.rank()` of `comm.size()`:
/// only rank 0 tests, displays and snapshots; every update uses the mean
/// gradient of all replicas; all start from rank 0's weights. Other ranks
/// draw from `random_seed + rank` from here on (dropout masks differ per
/// replica, as they differ per pass with iter_size), having drawn the same
/// data-layer start as the root while their nets were built.
///
/// With `overlap` (and iter_size 1), each layer's gradients start their
/// exchange as soon as its backward is done, on a thread of their own.
pub fn join_replica(solver: &mut Solver, comm: Box<dyn Communicator>, overlap: bool) -> Result<()> {
    let rank = comm.rank();
    solver.set_root(rank == 0);
    let seed = solver.param().random_seed();
    if seed >= 0 && rank > 0 {
        crate::rng::set_random_seed(seed as u64 + rank as u64);
    }
    if rank == 0 && comm.size() > 1 {
        for (layer, name) in solver.net().layers().iter().zip(solver.net().layer_names()) {
            let kind = layer.type_name();
            if matches!(kind, "HDF5Data" | "MemoryData" | "WindowData" | "Python") {
                log::warn!(
                    "layer {name} ({kind}) does not split its data between replicas: every replica reads the same records (Data and ImageData layers do split)"
                );
            }
        }
    }
    let sync = if overlap && solver.param().iter_size() == 1 && comm.size() > 1 {
        GradientSync::overlapped(comm, solver.net_mut())?
    } else {
        GradientSync::new(comm)
    };
    solver.add_hook(Box::new(sync));
    Ok(())
}

/// Trains `workers` replicas on threads of this process (`caffe train
/// --workers N`). `work(rank, comm)` runs on each replica's thread after
/// `enter_replica`: it builds the solver, hands it `comm` with
/// `join_replica`, and trains. Returns each rank's result, or the first
/// error: a failing worker drops its communicator, which stops the others
/// at their next exchange. Kernels of all workers share rayon's pool.
pub fn train_on_threads<T: Send>(
    workers: usize,
    work: impl Fn(usize, Box<dyn Communicator>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if workers == 0 {
        return Err(Error::Other("--workers must be at least 1".into()));
    }
    let work = &work;
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = thread_group(workers)
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                std::thread::Builder::new()
                    .name(format!("worker-{rank}"))
                    .spawn_scoped(scope, move || {
                        enter_replica(rank, workers, crate::logging::set_thread_quiet);
                        work(rank, Box::new(comm))
                    })
                    .map_err(|e| Error::Other(format!("cannot start worker {rank}: {e}")))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(rank, h)| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Other(format!("worker {rank} panicked")))),
                Err(e) => Err(e),
            })
            .collect()
    });
    // The first worker to fail for its own reason, not because another did.
    let mut own_error = None;
    let mut any_error = None;
    let mut out = Vec::with_capacity(workers);
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                let msg = e.to_string();
                if own_error.is_none() && !(msg.starts_with("worker ") && msg.contains(" stopped"))
                {
                    own_error = Some(e);
                } else if any_error.is_none() {
                    any_error = Some(e);
                }
            }
        }
    }
    match own_error.or(any_error) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
