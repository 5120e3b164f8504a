//! Replicas as threads of one process: collectives through shared memory.
//!
//! An all-reduce publishes each replica's buffer, then replica r sums chunk r
//! of every buffer (in rank order, so all get the same bits) and writes the
//! sum back into chunk r of every buffer: the work is split N ways and no
//! extra copy of the gradients is made.
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::Communicator;
use crate::error::{Error, Result};

/// A barrier that can be broken: when a replica stops on an error, everyone
/// waiting (or arriving later) gets that error instead of waiting forever.
struct Rendezvous {
    state: Mutex<RendezvousState>,
    wake: Condvar,
}

struct RendezvousState {
    arrived: usize,
    generation: u64,
    broken: Option<String>,
}

impl Rendezvous {
    fn wait(&self, n: usize) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &s.broken {
            return Err(Error::Other(why.clone()));
        }
        let generation = s.generation;
        s.arrived += 1;
        if s.arrived == n {
            s.arrived = 0;
            s.generation += 1;
            self.wake.notify_all();
            return Ok(());
        }
        while s.generation == generation {
            if let Some(why) = &s.broken {
                return Err(Error::Other(why.clone()));
            }
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    fn break_with(&self, why: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.broken.get_or_insert(why);
        self.wake.notify_all();
    }
}

struct Shared {
    size: usize,
    rendezvous: Rendezvous,
    buffers: Vec<AtomicPtr<f32>>,
    lens: Vec<AtomicUsize>,
}

/// One worker thread's end of a `thread_group`.
pub struct ThreadComm {
    rank: usize,
    shared: Arc<Shared>,
    finished: bool,
}

/// `size` connected communicators, one to move into each worker thread.
pub fn thread_group(size: usize) -> Vec<ThreadComm> {
    assert!(size > 0, "a thread group needs at least one thread");
    let shared = Arc::new(Shared {
        size,
        rendezvous: Rendezvous {
            state: Mutex::new(RendezvousState {
                arrived: 0,
                generation: 0,
                broken: None,
            }),
            wake: Condvar::new(),
        },
        buffers: (0..size)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        lens: (0..size).map(|_| AtomicUsize::new(0)).collect(),
    });
    (0..size)
        .map(|rank| ThreadComm {
            rank,
            shared: shared.clone(),
            finished: false,
        })
        .collect()
}

impl ThreadComm {
    /// Marks a clean end: dropping the communicator then breaks nothing.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    fn sync(&self) -> Result<()> {
        self.shared.rendezvous.wait(self.shared.size)
    }

    /// Publishes `buf` and checks every replica published the same length.
    fn publish(&self, buf: &mut [f32], what: &str) -> Result<*mut f32> {
        let ptr = buf.as_mut_ptr();
        self.shared.buffers[self.rank].store(ptr, Ordering::Release);
        self.shared.lens[self.rank].store(buf.len(), Ordering::Release);
        self.sync()?;
        for (r, len) in self.shared.lens.iter().enumerate() {
            let len = len.load(Ordering::Acquire);
            if len != buf.len() {
                let why = format!(
                    "{what}: worker {r} has {len} values, worker {} has {}; the replicas' nets differ",
                    self.rank,
                    buf.len()
                );
                self.shared.rendezvous.break_with(why.clone());
                return Err(Error::Other(why));
            }
        }
        Ok(ptr)
    }
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        let n = self.shared.size;
        if n == 1 {
            return Ok(());
        }
        let len = buf.len();
        self.publish(buf, "all-reduce")?;
        let chunk = len.div_ceil(n);
        let (lo, hi) = (
            (self.rank * chunk).min(len),
            ((self.rank + 1) * chunk).min(len),
        );
        let ptrs: Vec<*mut f32> = self
            .shared
            .buffers
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .collect();
        // SAFETY: between the two rendezvous every replica's buffer stays
        // alive and untouched by its owner (each is blocked in this call),
        // and only this replica reads or writes the chunk [lo, hi) of any.
        unsafe {
            let sum = std::slice::from_raw_parts_mut(ptrs[0].add(lo), hi - lo);
            for &p in &ptrs[1..] {
                let other = std::slice::from_raw_parts(p.add(lo), hi - lo);
                for (s, o) in sum.iter_mut().zip(other) {
                    *s += o;
                }
            }
            for &p in &ptrs[1..] {
                std::ptr::copy_nonoverlapping(ptrs[0].add(lo), p.add(lo), hi - lo);
            }
        }
        self.sync()
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<()> {
        if self.shared.size == 1 {
            return Ok(());
        }
        let mine = self.publish(buf, "broadcast")?;
        if self.rank != root {
            let src = self.shared.buffers[root].load(Ordering::Acquire);
            // SAFETY: the root's buffer is alive and only read until the
            // second rendezvous; `mine` is this replica's own buffer.
            unsafe { std::ptr::copy_nonoverlapping(src, mine, buf.len()) };
        }
        self.sync()
    }

    fn abort(&mut self, reason: &str) {
        self.shared
            .rendezvous
            .break_with(format!("worker {} stopped: {reason}", self.rank));
    }
}

impl Drop for ThreadComm {
    fn drop(&mut self) {
        // A worker that unwinds or returns early must not leave the others
        // waiting for it at the next collective.
        if !self.finished {
            self.shared.rendezvous.break_with(format!(
                "worker {} stopped before the others (see its error above)",
                self.rank
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: Send + 'static>(n: usize, f: fn(ThreadComm) -> T) -> Vec<T> {
        let handles: Vec<_> = thread_group(n)
            .into_iter()
            .map(|c| std::thread::spawn(move || f(c)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn all_reduce_sums_every_element_for_every_worker() {
        for n in [1, 2, 3, 5] {
            let results = run(n, |mut c| {
                let r = c.rank() as f32;
                // 11 values: chunks of unequal length, one possibly empty.
                let mut buf: Vec<f32> = (0..11).map(|i| i as f32 * 10.0 + r).collect();
                c.all_reduce_sum(&mut buf).unwrap();
                c.finish();
                buf
            });
            let ranks: f32 = (0..n).map(|r| r as f32).sum();
            let want: Vec<f32> = (0..11)
                .map(|i| n as f32 * i as f32 * 10.0 + ranks)
                .collect();
            for got in results {
                assert_eq!(got, want, "{n} workers");
            }
        }
    }

    #[test]
    fn broadcast_copies_the_roots_buffer() {
        let results = run(3, |mut c| {
            let mut buf = vec![c.rank() as f32; 4];
            c.broadcast(&mut buf, 1).unwrap();
            c.finish();
            buf
        });
        assert!(results.iter().all(|b| b == &[1.0; 4]));
    }

    #[test]
    fn a_worker_that_stops_early_breaks_the_others_wait() {
        let results = run(2, |mut c| {
            if c.rank() == 1 {
                c.abort("its data ran out");
                return Ok(());
            }
            let mut buf = vec![1.0; 3];
            c.all_reduce_sum(&mut buf)
        });
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("worker 1 stopped: its data ran out"), "{err}");
    }

    #[test]
    fn mismatched_lengths_are_an_error_not_a_wrong_sum() {
        let results = run(2, |mut c| {
            let mut buf = vec![1.0; 3 + c.rank()];
            let r = c.all_reduce_sum(&mut buf);
            c.finish();
            r
        });
        for r in results {
            let err = r.unwrap_err().to_string();
            assert!(err.contains("the replicas' nets differ"), "{err}");
        }
    }
}
