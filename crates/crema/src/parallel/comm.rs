//! The collectives data-parallel training needs, whatever carries them.
use crate::error::Result;

/// One replica's end of a group of `size()` replicas. Every replica must make
/// the same calls in the same order (as with MPI collectives); a replica that
/// fails or dies makes the others' calls return an error naming it.
pub trait Communicator: Send {
    /// This replica's index, 0 being the root.
    fn rank(&self) -> usize;
    /// Number of replicas.
    fn size(&self) -> usize;
    /// Sums `buf` element-wise over all replicas; every replica gets the sum,
    /// bit for bit the same everywhere.
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()>;
    /// Copies `root`'s `buf` into every replica's `buf`.
    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Tells the others this replica is stopping on an error (no-op where the
    /// transport notices by itself).
    fn abort(&mut self, _reason: &str) {}
}
