//! The one random generator behind fillers, dropout masks, shuffling and crops.
//!
//! Like Caffe's `Caffe::rng_stream()`, it is per thread and reseeded by
//! `set_random_seed`, so a fixed `random_seed` in the solver fixes a whole run.
use std::cell::RefCell;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

thread_local! {
    static RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::from_entropy());
}

/// Reseeds this thread's generator (Caffe::set_random_seed).
pub fn set_random_seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// Runs `f` with this thread's generator.
pub fn with_rng<T>(f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// A fresh 64-bit value, e.g. to seed a data-loading thread deterministically.
pub fn next_u64() -> u64 {
    with_rng(|r| r.next_u64())
}

/// The generator's full state, for snapshots that must resume bit for bit.
pub fn state() -> ChaCha8Rng {
    RNG.with(|r| r.borrow().clone())
}

/// Restores a state taken with `state`.
pub fn restore(state: ChaCha8Rng) {
    RNG.with(|r| *r.borrow_mut() = state);
}
