//! glog-compatible logging for the `log` crate, so crema's logs read like
//! Caffe's line for line and Caffe's parse_log scripts work on them:
//! `I1128 07:35:06.045120 21638 solver.rs:218] Iteration 100, lr = 0.01`.
//!
//! Honours glog's environment: `GLOG_minloglevel` (0 INFO, 1 WARNING, 2 ERROR),
//! `GLOG_logtostderr` and `GLOG_log_dir` (when set and not logging to stderr,
//! lines also go to `<dir>/<program>.INFO`).
use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where stderr lines go instead of straight to stderr (a progress bar
/// prints them above itself).
type LineWriter = Box<dyn Fn(&str) + Send + Sync>;
static STDERR_WRITER: RwLock<Option<LineWriter>> = RwLock::new(None);
static TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
/// Set in a data-parallel replica that is not the root: its INFO lines would
/// repeat the root's, so only warnings and errors are written.
static QUIET_PROCESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
thread_local! {
    static QUIET_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Drops INFO lines from the whole process (a non-root MPI rank).
pub fn set_process_quiet(quiet: bool) {
    QUIET_PROCESS.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Drops INFO lines from this thread (a non-root worker thread).
pub fn set_thread_quiet(quiet: bool) {
    QUIET_THREAD.with(|q| q.set(quiet));
}

fn quiet() -> bool {
    QUIET_PROCESS.load(std::sync::atomic::Ordering::Relaxed) || QUIET_THREAD.with(|q| q.get())
}

/// Sends every log line meant for stderr through `writer` until cleared.
pub fn set_stderr_writer(writer: LineWriter) {
    if let Ok(mut w) = STDERR_WRITER.write() {
        *w = Some(writer);
    }
}

/// Back to writing log lines to stderr directly.
pub fn clear_stderr_writer() {
    if let Ok(mut w) = STDERR_WRITER.write() {
        *w = None;
    }
}

/// Whether the installed logger writes to stderr (not only to GLOG_log_dir).
pub fn logs_to_stderr() -> bool {
    TO_STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

struct GlogLogger {
    min_level: Level,
    file: Option<Mutex<File>>,
    to_stderr: bool,
}

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let min_level = match std::env::var("GLOG_minloglevel")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
    {
        Some(0) | None => Level::Info,
        Some(1) => Level::Warn,
        Some(_) => Level::Error,
    };
    let logtostderr = std::env::var("GLOG_logtostderr").is_ok_and(|v| v == "1" || v == "true");
    let file = match std::env::var_os("GLOG_log_dir") {
        Some(dir) if !logtostderr => {
            let prog = std::env::args()
                .next()
                .and_then(|a| {
                    std::path::Path::new(&a)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "crema".into());
            File::create(std::path::Path::new(&dir).join(format!("{prog}.INFO")))
                .ok()
                .map(Mutex::new)
        }
        _ => None,
    };
    // Caffe's tools log to stderr unless GLOG_log_dir redirects them.
    let to_stderr = logtostderr || file.is_none();
    TO_STDERR.store(to_stderr, std::sync::atomic::Ordering::Relaxed);
    let logger = GlogLogger {
        min_level,
        file,
        to_stderr,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

impl Log for GlogLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.min_level && (metadata.level() < Level::Info || !quiet())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            record.level(),
            record.file().unwrap_or("?"),
            record.line().unwrap_or(0),
            &record.args().to_string(),
        );
        if self.to_stderr {
            match STDERR_WRITER.read().as_deref() {
                Ok(Some(writer)) => writer(&line),
                _ => {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
        }
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// One glog line: severity letter, MMDD, wall time with microseconds, thread
/// id, source file basename and line, then the message.
pub fn format_line(level: Level, file: &str, line: u32, msg: &str) -> String {
    let letter = match level {
        Level::Error => 'E',
        Level::Warn => 'W',
        _ => 'I',
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (month, day, h, m, s) = civil_utc(now.as_secs());
    let base = file.rsplit('/').next().unwrap_or(file);
    format!(
        "{letter}{month:02}{day:02} {h:02}:{m:02}:{s:02}.{:06} {} {base}:{line}] {msg}\n",
        now.subsec_micros(),
        thread_id()
    )
}

fn thread_id() -> u64 {
    // The OS thread id, as glog prints; the process id stands in off Linux.
    #[cfg(target_os = "linux")]
    {
        std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(std::process::id() as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::process::id() as u64
    }
}

/// (month, day, hour, minute, second) of a Unix time, in UTC.
fn civil_utc(secs: u64) -> (u32, u32, u64, u64, u64) {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_of_known_instants() {
        assert_eq!(civil_utc(0), (1, 1, 0, 0, 0));
        // 2026-11-28 07:35:06 UTC
        assert_eq!(civil_utc(1795851306), (11, 28, 7, 35, 6));
        // 2024-02-29 23:59:59 UTC (leap day)
        assert_eq!(civil_utc(1709251199), (2, 29, 23, 59, 59));
    }

    #[test]
    fn line_has_glog_prefix() {
        let l = format_line(
            Level::Info,
            "crates/crema/src/solver.rs",
            218,
            "Iteration 100, lr = 0.01",
        );
        let re_ok = l.starts_with('I')
            && l.as_bytes()[5] == b' '
            && l.contains(" solver.rs:218] Iteration 100, lr = 0.01\n")
            && l[6..21].chars().filter(|c| *c == ':').count() == 2;
        assert!(re_ok, "{l}");
    }
}
