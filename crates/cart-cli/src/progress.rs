//! Progress drawn from the library's events: the libraries never print, they report
//! [`cart::Event`]s to an observer; this module is the application side, with `indicatif`.
//! Bars are hidden when stderr is not a terminal (indicatif's own check); the stage and epoch
//! lines are then printed plainly, so a log keeps them. `quiet` draws nothing.

use std::ops::Range;

use cart::Hit;

/// Draws a [`cart::CartIndex::fit_observed`] run on stderr: `indicatif` bars for the
/// quantizer's and the generator's batches, one line per stage and per generator epoch
/// (printed above the bar; plain lines when stderr is not a terminal), nothing when quiet.
/// The libraries never print: this is the application's side of their observer.
#[derive(Debug)]
pub struct FitProgress {
    quiet: bool,
    bar: Option<(&'static str, indicatif::ProgressBar)>,
}

impl FitProgress {
    /// A drawer; `quiet` draws nothing.
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: None }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some((_, bar)) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn progress(&mut self, name: &'static str, done: u64, total: u64, loss: f64) {
        let same = matches!(&self.bar, Some((n, _)) if *n == name);
        if !same {
            if let Some((_, bar)) = self.bar.take() {
                bar.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} batches {msg} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(name);
            self.bar = Some((name, bar));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }

    /// Draws one event.
    pub fn observe(&mut self, event: cart::Event<'_>) {
        use cart::Event;
        use cart::model::TrainEvent;
        use cart::quant::RqVaeEvent;
        if self.quiet {
            return;
        }
        match event {
            Event::Quantizer(RqVaeEvent::Batch { epoch, n_epochs, batch, n_batches, loss })
            | Event::Training(TrainEvent::Batch { epoch, n_epochs, batch, n_batches, loss }) => {
                let name =
                    if matches!(event, Event::Quantizer(_)) { "quantizer" } else { "generator" };
                let done = (epoch * n_batches + batch + 1) as u64;
                self.progress(name, done, (n_epochs * n_batches) as u64, loss);
            }
            Event::Quantizer(_) => {} // per-epoch quantizer lines: the bar says enough
            Event::Training(TrainEvent::Epoch(stats)) => self.line(&stats.to_string()),
            other => {
                if let Some((_, bar)) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.line(&format!("[cart] {other}"));
            }
        }
    }
}

/// Runs `search` over `n` queries in chunks of `chunk`, drawing a bar labelled `label`, and
/// concatenates the results in order.
///
/// # Errors
///
/// The first error of `search`.
pub fn chunked<E>(
    n: usize,
    chunk: usize,
    label: &str,
    quiet: bool,
    mut search: impl FnMut(Range<usize>) -> Result<Vec<Vec<Hit>>, E>,
) -> Result<Vec<Vec<Hit>>, E> {
    let bar = match quiet {
        true => indicatif::ProgressBar::hidden(),
        false => indicatif::ProgressBar::new(n as u64),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} queries {per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let mut out = Vec::with_capacity(n);
    let chunk = chunk.max(1);
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        out.extend(search(start..end)?);
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Queries per search call of [`search`]: the unit of its progress bar. Results do not
/// depend on it (every query is searched on its own).
pub const SEARCH_CHUNK: usize = 256;

/// [`cart::CartIndex::search_with`] over every query, in chunks of [`SEARCH_CHUNK`], with a
/// progress bar labelled `label` (none when `quiet` or stderr is not a terminal).
///
/// # Errors
///
/// As [`cart::CartIndex::search_with`].
pub fn search(
    index: &cart::CartIndex,
    queries: ndarray::ArrayView2<'_, f32>,
    options: cart::SearchOptions,
    label: &str,
    quiet: bool,
) -> cart::Result<Vec<Vec<Hit>>> {
    chunked(queries.nrows(), SEARCH_CHUNK, label, quiet, |r| {
        index.search_with(queries.slice_axis(ndarray::Axis(0), ndarray::Slice::from(r)), options)
    })
}
