//! Who may split work over the rayon pool. A layer splits its work (images,
//! planes, a product's columns) when it runs at the top of a net, and stays
//! whole inside another's split (a worker's run of images), where the pool
//! is already busy.
//!
//! A net driven from a thread outside the pool pays for every split twice:
//! the pool's threads are woken to run the pieces while the calling thread
//! sleeps, and it is woken again at the end (9-19 µs a split on this 2-core
//! machine, against 1-6 µs between the pool's own threads). LeNet splits
//! ~25 times an iteration, so `run_on_pool` runs a whole command on a pool
//! thread, marked as the top of the net.
use std::cell::Cell;

thread_local! {
    /// This pool thread runs a net (`run_on_pool`) and is not inside one of
    /// its splits (`nested`).
    static TOP: Cell<bool> = const { Cell::new(false) };
}

/// Whether code here may split its work over the pool: on a thread outside
/// the pool, or on the pool thread that runs a net, outside its splits.
pub fn may_split() -> bool {
    rayon::current_thread_index().is_none() || TOP.get()
}

/// Runs `f` (one piece of a split) with `may_split` false on this thread,
/// so a piece the net's own thread runs stays whole like the others.
pub fn nested<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(TOP.replace(false));
    f()
}

/// Runs `f` on a thread of the global pool, as the top of a net there
/// (`may_split` true), and returns its result; on a pool thread already it
/// just calls `f`.
pub fn run_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| {
        let _restore = Restore(TOP.replace(true));
        f()
    })
}

/// Puts `TOP` back as it was, also when the body panics.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        TOP.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn only_the_top_of_a_net_on_the_pool_splits() {
        assert!(may_split(), "outside the pool");
        run_on_pool(|| {
            assert!(may_split(), "the net's own pool thread");
            let inside: Vec<bool> = (0..8).into_par_iter().map(|_| nested(may_split)).collect();
            assert_eq!(inside, [false; 8], "pieces of a split");
            assert!(may_split(), "back at the top after the split");
        });
        let other: Vec<bool> = (0..4).into_par_iter().map(|_| may_split()).collect();
        assert_eq!(other, [false; 4], "pool threads that do not run a net");
    }
}
