//! The training progress bar: on a terminal, one line below the log showing
//! iteration, loss, learning rate and time left. Log lines are printed above
//! it through the bar, so the two never interleave. Never drawn when stderr
//! is not a terminal, so log files stay exactly Caffe's lines.
use std::io::IsTerminal;

use crema::solvers::{DisplayEvent, SolverHook};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Updates the bar from the solver loop.
pub struct ProgressHook {
    bar: ProgressBar,
}

impl ProgressHook {
    /// A bar for `max_iter` iterations when stderr is a terminal that the log
    /// also goes to; `None` otherwise. Routes the log through the bar.
    pub fn for_terminal(max_iter: i32) -> Option<ProgressHook> {
        if !std::io::stderr().is_terminal() || !crema::logging::logs_to_stderr() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(
            Some(max_iter.max(0) as u64),
            ProgressDrawTarget::stderr(),
        );
        let style = ProgressStyle::with_template(
            "{bar:20} iter {pos}/{len} {msg} eta {eta}",
        )
        .expect("the progress template is valid");
        bar.set_style(style);
        let printer = bar.clone();
        crema::logging::set_stderr_writer(Box::new(move |line: &str| {
            printer.suspend(|| eprint!("{line}"));
        }));
        Some(ProgressHook { bar })
    }
}

impl SolverHook for ProgressHook {
    fn on_start(&mut self, iter: i32) -> crema::Result<()> {
        self.bar.set_position(iter.max(0) as u64);
        Ok(())
    }

    fn on_display(&mut self, e: &DisplayEvent) {
        self.bar.set_message(format!(
            "loss {:.4} lr {}",
            e.smoothed_loss,
            crema::proto::text::format_g(f64::from(e.lr), 4)
        ));
    }
}

impl Drop for ProgressHook {
    fn drop(&mut self) {
        crema::logging::clear_stderr_writer();
        self.bar.finish_and_clear();
    }
}
