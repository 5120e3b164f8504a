//! The run's record: one JSON object per line, appended to
//! `<snapshot_prefix>_events.jsonl` as the solver displays, tests and
//! snapshots, so a dashboard started later (or elsewhere) has the whole
//! history. The same lines go to a live server through a bounded queue that
//! drops a line rather than ever making the solver wait.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crema::solvers::{DisplayEvent, SolverHook, TestEvent};
use serde_json::{json, Value};

use super::timing::LayerClock;

/// The event file of a solver: next to its snapshots, or next to the solver
/// file when it has no snapshot_prefix.
pub fn events_path(snapshot_prefix: &str, solver_file: &Path) -> PathBuf {
    if snapshot_prefix.is_empty() {
        solver_file.with_extension("").with_file_name(format!(
            "{}_events.jsonl",
            solver_file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
        ))
    } else {
        PathBuf::from(format!("{snapshot_prefix}_events.jsonl"))
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn named(outputs: &[(String, f32)]) -> Vec<Value> {
    outputs
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect()
}

/// Where event lines go: the file (always) and a live server (if any).
pub struct EventSink {
    file: Option<File>,
    path: PathBuf,
    live: Option<SyncSender<String>>,
    /// Lines the live queue had no room for.
    pub dropped: u64,
    failed: bool,
}

impl EventSink {
    /// Opens `path` for appending (a resumed run continues the record).
    pub fn open(path: &Path, live: Option<SyncSender<String>>) -> Result<EventSink, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the event file {}: {e}", path.display()))?;
        Ok(EventSink {
            file: Some(file),
            path: path.to_path_buf(),
            live,
            dropped: 0,
            failed: false,
        })
    }

    /// A sink for the live server only (the file could not be opened).
    pub fn live_only(live: SyncSender<String>) -> EventSink {
        EventSink {
            file: None,
            path: PathBuf::new(),
            live: Some(live),
            dropped: 0,
            failed: true,
        }
    }

    /// Appends one event; a write error is logged once and never stops training.
    pub fn emit(&mut self, mut event: Value) {
        event["time"] = json!(now());
        let line = event.to_string();
        if let (Some(file), false) = (self.file.as_mut(), self.failed) {
            if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
                log::warn!("cannot write the event file {}: {e}", self.path.display());
                self.failed = true;
            }
        }
        if let Some(live) = &self.live {
            match live.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.dropped += 1,
                Err(TrySendError::Disconnected(_)) => self.live = None,
            }
        }
    }
}

/// The solver hook that writes the record.
pub struct Recorder {
    sink: EventSink,
    clock: Rc<LayerClock>,
    display: i32,
    /// Data wait since the last display, and over how many iterations.
    waited: Duration,
    iters: u32,
    wait_at_start: Duration,
}

impl Recorder {
    /// `display` is the solver's display interval: layers are timed on
    /// those iterations only.
    pub fn new(sink: EventSink, clock: Rc<LayerClock>, display: i32) -> Recorder {
        Recorder {
            sink,
            clock,
            display,
            waited: Duration::ZERO,
            iters: 0,
            wait_at_start: Duration::ZERO,
        }
    }

    pub fn emit(&mut self, event: Value) {
        self.sink.emit(event);
    }
}

impl SolverHook for Recorder {
    fn on_start(&mut self, iter: i32) -> crema::Result<()> {
        self.clock
            .set_on(self.display > 0 && iter % self.display == 0);
        self.wait_at_start = crema::data::prefetch::total_wait();
        Ok(())
    }

    fn on_gradients_ready(&mut self, _net: &mut crema::net::Net) -> crema::Result<()> {
        self.clock.set_on(false);
        self.waited += crema::data::prefetch::total_wait().saturating_sub(self.wait_at_start);
        self.iters += 1;
        Ok(())
    }

    fn on_display(&mut self, e: &DisplayEvent) {
        let layers: Vec<Value> = self
            .clock
            .ran()
            .iter()
            .map(|t| {
                json!({"name": t.name, "type": t.layer_type,
                       "forward_ms": ms(t.forward), "backward_ms": ms(t.backward)})
            })
            .collect();
        let wait = if self.iters > 0 {
            ms(self.waited) / f64::from(self.iters)
        } else {
            0.0
        };
        self.waited = Duration::ZERO;
        self.iters = 0;
        self.sink.emit(json!({
            "event": "display", "iter": e.iter, "loss": e.loss,
            "smoothed_loss": e.smoothed_loss, "lr": e.lr, "iters_per_s": e.iters_per_s,
            "data_wait_ms": wait, "outputs": named(&e.outputs), "layers": layers,
        }));
    }

    fn on_test(&mut self, e: &TestEvent) {
        self.sink.emit(json!({
            "event": "test", "iter": e.iter, "net": e.net_id,
            "loss": e.loss, "outputs": named(&e.outputs),
        }));
    }

    fn on_snapshot(&mut self, iter: i32, files: &[PathBuf]) {
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.sink
            .emit(json!({"event": "snapshot", "iter": iter, "files": files}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_file_sits_beside_the_snapshots() {
        assert_eq!(
            events_path("examples/mnist/data/lenet", Path::new("s.prototxt")),
            PathBuf::from("examples/mnist/data/lenet_events.jsonl")
        );
        assert_eq!(
            events_path("", Path::new("runs/solver.prototxt")),
            PathBuf::from("runs/solver_events.jsonl")
        );
    }

    #[test]
    fn a_full_live_queue_drops_lines_but_the_file_keeps_them() {
        let dir = std::env::temp_dir().join(format!("crema-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.jsonl");
        let _ = std::fs::remove_file(&path);
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let mut sink = EventSink::open(&path, Some(tx)).unwrap();
        for i in 0..5 {
            sink.emit(json!({"event": "display", "iter": i}));
        }
        assert_eq!(sink.dropped, 3);
        assert_eq!(rx.try_iter().count(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let iters: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["iter"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(iters, vec![0, 1, 2, 3, 4]);
        // A closed receiver does not stop the record either.
        drop(rx);
        sink.emit(json!({"event": "test", "iter": 5}));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 6);
    }
}
