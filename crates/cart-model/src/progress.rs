//! A minimal progress bar on stderr (no dependency): redrawn in place on a terminal, one line per
//! epoch otherwise, silent when switched off.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub(crate) struct Progress {
    enabled: bool,
    tty: bool,
    n_epochs: usize,
    start: Instant,
}

impl Progress {
    pub(crate) fn new(enabled: bool, n_epochs: usize) -> Self {
        Self { enabled, tty: std::io::stderr().is_terminal(), n_epochs, start: Instant::now() }
    }

    /// Redraws the bar after `batch` of `n_batches` in `epoch` (0-based).
    pub(crate) fn batch(&self, epoch: usize, batch: usize, n_batches: usize, loss: f64) {
        if !self.enabled || !self.tty {
            return;
        }
        let total = self.n_epochs * n_batches;
        let done = epoch * n_batches + batch + 1;
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let bar: String = (0..width).map(|i| if i < filled { '#' } else { '-' }).collect();
        let mut err = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr must not stop training.
        let _ = write!(
            err,
            "\rgenerator [{bar}] epoch {}/{} batch {}/{} loss {loss:.4} {:.0}s ",
            epoch + 1,
            self.n_epochs,
            batch + 1,
            n_batches,
            self.start.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    /// Prints the summary line of a finished epoch.
    pub(crate) fn epoch(&self, line: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { writeln!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
    }
}
