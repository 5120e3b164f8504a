//! A thread that loads batches ahead of the net (Caffe's
//! BasePrefetchingDataLayer): a fixed pool of batches cycles between a free
//! queue, the loader thread and a full queue, so steady state allocates
//! nothing and the math only waits when loading is slower than compute.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Time every `pop` in the process has spent waiting for its loader, so a
/// training monitor can show how long forward waited for data.
static WAITED_NS: AtomicU64 = AtomicU64::new(0);

/// The total time forward passes have waited for prefetched batches.
pub fn total_wait() -> Duration {
    Duration::from_nanos(WAITED_NS.load(Ordering::Relaxed))
}

/// One batch: data values in NCHW order with their shape, and labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
    pub label: Vec<f32>,
}

/// Something that fills batches, one after another, in order.
pub trait BatchLoader: Send + 'static {
    /// Fills `batch` (reshaping its buffers as needed) with the next batch.
    fn load(&mut self, batch: &mut Batch) -> Result<()>;
}

/// Batches loaded ahead on a thread of their own.
pub struct PrefetchQueue {
    full: Receiver<Result<Batch>>,
    free: Option<Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

impl PrefetchQueue {
    /// Starts the loader thread with `count` batches in flight (at least 1).
    /// `name` (the layer's) labels the thread and errors.
    pub fn start(name: &str, count: usize, mut loader: impl BatchLoader) -> Result<PrefetchQueue> {
        let (free_tx, free_rx) = channel::<Batch>();
        let (full_tx, full_rx) = channel::<Result<Batch>>();
        for _ in 0..count.max(1) {
            free_tx.send(Batch::default()).expect("receiver alive");
        }
        let thread = std::thread::Builder::new()
            .name(format!("prefetch {name}"))
            .spawn(move || {
                lower_priority();
                // Ends when the queue is dropped (free sender gone) or after
                // reporting the first error.
                while let Ok(mut batch) = free_rx.recv() {
                    let result = loader.load(&mut batch).map(|_| batch);
                    let failed = result.is_err();
                    if full_tx.send(result).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Other(format!("{name}: cannot start the prefetch thread: {e}")))?;
        Ok(PrefetchQueue {
            full: full_rx,
            free: Some(free_tx),
            thread: Some(thread),
            name: name.to_string(),
        })
    }

    /// The next batch, waiting for it if the loader is behind. A loader
    /// error comes back here, once; afterwards the queue reports it stopped.
    pub fn pop(&self) -> Result<Batch> {
        let start = Instant::now();
        let next = self.full.recv();
        WAITED_NS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match next {
            Ok(r) => r,
            Err(_) => Err(Error::Other(format!(
                "{}: the prefetch thread has stopped after an error",
                self.name
            ))),
        }
    }

    /// Hands a used batch back to the loader for refilling.
    pub fn recycle(&self, batch: Batch) {
        if let Some(free) = &self.free {
            // A stopped loader no longer wants batches; nothing to do then.
            let _ = free.send(batch);
        }
    }
}

impl Drop for PrefetchQueue {
    fn drop(&mut self) {
        // Closing the free queue ends the loader after its current batch.
        self.free = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter {
        next: usize,
        fail_at: Option<usize>,
    }

    impl BatchLoader for Counter {
        fn load(&mut self, batch: &mut Batch) -> Result<()> {
            if Some(self.next) == self.fail_at {
                return Err(Error::Other(format!("record {} is corrupt", self.next)));
            }
            batch.shape = vec![2];
            batch.data.clear();
            batch
                .data
                .extend([self.next as f32, self.next as f32 + 0.5]);
            batch.label = vec![self.next as f32];
            self.next += 1;
            Ok(())
        }
    }

    #[test]
    fn batches_arrive_in_order_and_buffers_are_reused() {
        let q = PrefetchQueue::start(
            "t",
            3,
            Counter {
                next: 0,
                fail_at: None,
            },
        )
        .unwrap();
        for i in 0..20 {
            let b = q.pop().unwrap();
            assert_eq!(b.data, vec![i as f32, i as f32 + 0.5]);
            assert_eq!(b.label, vec![i as f32]);
            q.recycle(b);
        }
    }

    #[test]
    fn a_loader_error_reaches_the_caller() {
        let q = PrefetchQueue::start(
            "layer x",
            2,
            Counter {
                next: 0,
                fail_at: Some(1),
            },
        )
        .unwrap();
        let b = q.pop().unwrap();
        q.recycle(b);
        assert!(q
            .pop()
            .unwrap_err()
            .to_string()
            .contains("record 1 is corrupt"));
        assert!(q.pop().unwrap_err().to_string().contains("layer x"));
    }

    #[test]
    fn dropping_the_queue_stops_the_thread() {
        let q = PrefetchQueue::start(
            "t",
            4,
            Counter {
                next: 0,
                fail_at: None,
            },
        )
        .unwrap();
        let _ = q.pop().unwrap();
        drop(q); // joins; hangs here if the thread did not stop
    }

    struct Slow;

    impl BatchLoader for Slow {
        fn load(&mut self, batch: &mut Batch) -> Result<()> {
            std::thread::sleep(Duration::from_millis(30));
            batch.data = vec![1.0];
            Ok(())
        }
    }

    #[test]
    fn waiting_for_a_slow_loader_is_counted() {
        let before = total_wait();
        let q = PrefetchQueue::start("slow", 1, Slow).unwrap();
        let b = q.pop().unwrap();
        q.recycle(b);
        let _ = q.pop().unwrap();
        // Two pops each waited for a 30 ms load (other tests only add).
        assert!(total_wait() - before >= Duration::from_millis(40));
    }
}

/// Loading runs at the lowest CPU priority (nice 19, this thread only; the
/// `CREMA_PREFETCH_NICE` variable sets another). On a machine whose cores
/// the math keeps busy, a loader at equal priority takes a core from a
/// parallel kernel, whose other half then waits for it: the whole decode
/// time lands on the iteration. At low priority it fills the kernels' idle
/// gaps instead, and when it falls behind, forward waits, the cores go
/// idle, and it runs.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let nice = std::env::var("CREMA_PREFETCH_NICE")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(19);
        // SAFETY: plain syscalls on this thread's own id.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
}
