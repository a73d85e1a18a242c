//! The progress line of a long wait: a spinner on a terminal, drawn by
//! `indicatif`; anywhere else (a pipe, a log file, a test) `indicatif`
//! draws nothing and each new state is one plain line, so a captured
//! stderr holds no control characters and no repeated lines.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinner turns while nothing else changes.
const TICK: Duration = Duration::from_millis(120);

pub(super) struct Progress {
    bar: ProgressBar,
    last: String,
}

impl Progress {
    /// A progress line on stderr, saying `first` until [`Progress::set`].
    pub(super) fn on_stderr(first: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        // The template is a constant; should it ever fail to parse, the
        // default spinner shows the same message.
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        if !bar.is_hidden() {
            bar.set_message(first.to_string());
            bar.enable_steady_tick(TICK);
        }
        Self {
            bar,
            last: String::new(),
        }
    }

    /// Shows `line`: as the spinner's message, or printed once when it
    /// differs from the previous one.
    pub(super) fn set(&mut self, line: String) {
        if self.bar.is_hidden() {
            if line != self.last {
                eprintln!("{line}");
            }
        } else {
            self.bar.set_message(line.clone());
        }
        self.last = line;
    }

    /// Stops the spinner and leaves its last state as a plain line, so
    /// that what is printed next starts on a line of its own.
    pub(super) fn finish(&self) {
        if self.bar.is_finished() {
            return;
        }
        self.bar.finish_and_clear();
        if !self.bar.is_hidden() && !self.last.is_empty() {
            eprintln!("{}", self.last);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
