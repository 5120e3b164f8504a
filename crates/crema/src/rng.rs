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

/// Fills `words` with the generator's next `words.len()` 32-bit draws: what
/// as many `next_u32` calls return, and the generator left where they leave
/// it. Large fills split over the pool: ChaCha's stream is addressable by
/// word, so each part runs its own copy of the generator from its first word.
pub fn fill_u32(r: &mut ChaCha8Rng, words: &mut [u32]) {
    use rayon::prelude::*;
    const PART: usize = 1 << 16;
    let bytes = |w: &mut [u32]| {
        // SAFETY: the byte view covers exactly the words' memory.
        unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), w.len() * 4) }
    };
    let start = r.get_word_pos();
    if words.len() > PART && crate::backend::pool::may_split() {
        words
            .par_chunks_mut(PART)
            .enumerate()
            .for_each(|(i, part)| {
                let mut rng = r.clone();
                rng.set_word_pos(start + (i * PART) as u128);
                rng.fill_bytes(bytes(part));
            });
        r.set_word_pos(start + words.len() as u128);
    } else {
        r.fill_bytes(bytes(words));
    }
    // Each word's bytes came little-endian.
    words.iter_mut().for_each(|w| *w = u32::from_le(*w));
}

/// `values` viewed as the 32-bit words that `fill_u32` fills and the caller
/// then turns into values in place.
pub fn as_words(values: &mut [f32]) -> &mut [u32] {
    // SAFETY: f32 and u32 have the same size and alignment; any bits are a valid u32.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u32>(), values.len()) }
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
