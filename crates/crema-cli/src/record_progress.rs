//! Progress of the data tools (convert_*, compute_image_mean,
//! extract_features): Caffe's periodic log lines ("Processed N files.") always,
//! so logs read as Caffe's, plus a bar below them when stderr is a terminal.
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts records and reports every `every` of them.
pub struct RecordProgress {
    bar: Option<ProgressBar>,
    every: u64,
    count: u64,
    line: Box<dyn Fn(u64) -> String>,
}

impl RecordProgress {
    /// `total` records are expected (unknown: `None`); `line(n)` is the log
    /// line after `n` of them, written every `every` records and at the end.
    pub fn new(total: Option<u64>, every: u64, line: impl Fn(u64) -> String + 'static) -> Self {
        let bar =
            (std::io::stderr().is_terminal() && crema::logging::logs_to_stderr()).then(|| {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                let template = if total.is_some() {
                    "{bar:30} {pos}/{len} records, {per_sec}, eta {eta}"
                } else {
                    "{spinner} {pos} records, {per_sec}"
                };
                bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
                let printer = bar.clone();
                // Log lines print above the bar instead of through it.
                crema::logging::set_stderr_writer(Box::new(move |l: &str| {
                    printer.suspend(|| eprint!("{l}"));
                }));
                bar
            });
        RecordProgress {
            bar,
            every: every.max(1),
            count: 0,
            line: Box::new(line),
        }
    }

    /// One more record done.
    pub fn inc(&mut self) {
        self.count += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if self.count % self.every == 0 {
            log::info!("{}", (self.line)(self.count));
        }
    }

    /// Log lines only, never a bar (for a second counter running beside one
    /// that has the bar).
    pub fn log_only(every: u64, line: impl Fn(u64) -> String + 'static) -> Self {
        RecordProgress {
            bar: None,
            every: every.max(1),
            count: 0,
            line: Box::new(line),
        }
    }

    /// Records done so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Ends the bar and writes the last line unless the count just had one.
    pub fn finish(mut self) {
        self.clear();
        if self.count % self.every != 0 || self.count == 0 {
            log::info!("{}", (self.line)(self.count));
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            crema::logging::clear_stderr_writer();
            bar.finish_and_clear();
        }
    }
}

impl Drop for RecordProgress {
    fn drop(&mut self) {
        self.clear();
    }
}
