//! What a slow command is doing, on stderr: a spinner on a terminal, one
//! plain line otherwise (logs, CI), then how long it took and whether the
//! compiled component came from the cache.
//!
//! Compiling an 18 MB Python component takes seconds; loading its compiled
//! form from the cache takes milliseconds. Stdout is untouched, so it stays
//! the command's machine-readable output.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runtime::CacheOutcome;

/// One step in progress; clears its spinner when dropped.
pub struct Progress {
    spinner: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// Shows `what` (e.g. "loading plugin `hello` (1.2 MB component)").
    pub fn start(what: impl Into<String>) -> Progress {
        let what = what.into();
        let spinner = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            errln!("{what}...");
            None
        };
        Progress {
            spinner,
            started: Instant::now(),
        }
    }

    /// Time since [`Progress::start`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Replaces the spinner with `line`.
    pub fn finish(mut self, line: impl AsRef<str>) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        errln!("{}", line.as_ref());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }
}

/// "loading plugin `name` (18.2 MB component)".
pub fn loading(name: &str, wasm_bytes: usize) -> String {
    format!(
        "loading plugin `{name}` ({:.1} MB component)",
        wasm_bytes as f64 / 1e6
    )
}

/// How the component was obtained: "compiled `x` in 7.4 s (cached for next
/// time)", "loaded `x` from cache in 3.4 ms", "compiled `x` in 7.4 s (no cache)".
pub fn loaded(name: &str, outcome: CacheOutcome, took: Duration) -> String {
    let took = human(took);
    match outcome {
        CacheOutcome::Hit => format!("loaded `{name}` from cache in {took}"),
        CacheOutcome::Compiled => format!("compiled `{name}` in {took} (cached for next time)"),
        CacheOutcome::Uncached => format!("compiled `{name}` in {took} (not cached)"),
    }
}

/// "0.4 ms", "38 ms", "7.4 s".
pub fn human(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(
            loaded("py", CacheOutcome::Compiled, Duration::from_millis(7420)),
            "compiled `py` in 7.4 s (cached for next time)"
        );
        assert_eq!(
            loaded("py", CacheOutcome::Hit, Duration::from_micros(3400)),
            "loaded `py` from cache in 3.4 ms"
        );
        assert_eq!(
            loading("py", 18_200_000),
            "loading plugin `py` (18.2 MB component)"
        );
    }
}
