//! Replicas as MPI ranks (`mpirun -np N caffe train`): crema's Communicator
//! on Open MPI's collectives, through the `mpi` crate.
//!
//! MPI has no timeouts: a rank that dies inside a collective is noticed by
//! mpirun, which ends the job, but one that hangs is not. A watchdog thread
//! ends this rank when a collective has waited longer than the timeout,
//! naming what it waited for, and mpirun then stops the rest.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};

use crema::parallel::Communicator;

/// Ranks sharing this machine (for sizing each rank's thread pool).
pub fn local_size() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Whether the job's ranks run on more than one machine.
pub fn spans_machines() -> bool {
    let world: Option<usize> = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok());
    world.is_some_and(|w| local_size() < w)
}

/// MPI, initialized for the life of the value (finalized on drop).
pub struct Mpi {
    _universe: Universe,
}

impl Mpi {
    /// Initializes MPI for calls from any one thread at a time (the
    /// overlapped exchange makes them from its own thread). Also says
    /// whether the library granted that.
    pub fn init() -> Result<(Mpi, MpiComm, bool), String> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or("MPI was already initialized")?;
        let any_thread = level >= Threading::Serialized;
        let world = universe.world();
        let comm = MpiComm::new(world);
        Ok((
            Mpi {
                _universe: universe,
            },
            comm,
            any_thread,
        ))
    }
}

/// This rank's end of MPI_COMM_WORLD.
pub struct MpiComm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    scratch: Vec<f32>,
    /// Milliseconds since `epoch` when the current collective began; 0 when
    /// none is in progress.
    busy_since: Arc<AtomicU64>,
    epoch: Instant,
}

// SAFETY: the communicator is only ever used by one thread at a time (the
// training thread, or the exchange thread it hands the communicator to);
// MPI is initialized with MPI_THREAD_SERIALIZED for that, and the overlap is
// only used when the library grants it.
unsafe impl Send for MpiComm {}

impl MpiComm {
    fn new(world: SimpleCommunicator) -> MpiComm {
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        MpiComm {
            world,
            rank,
            size,
            scratch: Vec::new(),
            busy_since: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    /// Starts the watchdog: a collective that waits longer than `timeout`
    /// ends this process with a message naming the rank.
    pub fn watch(&self, timeout: Duration) {
        let (busy, epoch, rank, size) = (self.busy_since.clone(), self.epoch, self.rank, self.size);
        std::thread::Builder::new()
            .name("mpi-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500).min(timeout));
                let since = busy.load(Ordering::Relaxed);
                if since == 0 {
                    continue;
                }
                let waited = epoch.elapsed().saturating_sub(Duration::from_millis(since));
                if waited > timeout {
                    eprintln!(
                        "rank {rank} of {size}: no answer from the other ranks for {:.0} s in a gradient exchange; \
                         another rank has died or hangs. Stopping this rank (the last snapshot stays resumable).",
                        waited.as_secs_f64()
                    );
                    std::process::exit(3);
                }
            })
            .expect("cannot start the MPI watchdog thread");
    }

    fn enter(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.busy_since.store(ms.max(1), Ordering::Relaxed);
    }

    fn leave(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> crema::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(buf);
        self.enter();
        self.world
            .all_reduce_into(&self.scratch[..], buf, SystemOperation::sum());
        self.leave();
        Ok(())
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> crema::Result<()> {
        self.enter();
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        self.leave();
        Ok(())
    }

    fn abort(&mut self, reason: &str) {
        eprintln!(
            "rank {} of {}: {reason}; ending the job",
            self.rank, self.size
        );
        self.world.abort(1);
    }
}
