//! [`Event`]: what [`CartIndex::fit_observed`](crate::CartIndex::fit_observed) reports. The
//! library never prints; an application passes an observer and draws what it wants (the
//! quickstart: progress bars and log lines with `indicatif`).

use std::fmt;

use cart_model::TrainEvent;
use cart_quant::RqVaeEvent;

/// One step of a fit, in the order they happen.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The quantizer starts on `n_items` vectors.
    QuantizerStarted {
        /// Items being quantized.
        n_items: usize,
    },
    /// A batch or epoch of the RQ-VAE (coarse-to-fine quantizer only).
    Quantizer(RqVaeEvent<'a>),
    /// Every item has its identifier.
    Identifiers {
        /// Tokens per identifier (`M + 2`).
        id_len: usize,
        /// The generator's vocabulary.
        vocab_size: usize,
        /// Share of items whose codes `[k, v1..vM]` another item shares.
        collision_rate: f64,
        /// Items in the largest group of equal codes.
        largest_group: usize,
        /// Uniqueness values `U` (the largest group times the headroom).
        n_unique: usize,
        /// Seconds since the fit started.
        seconds: f64,
    },
    /// The generator starts training.
    TrainingStarted {
        /// Training pairs.
        n_train: usize,
        /// Pairs held out for validation.
        n_valid: usize,
        /// Epochs in the run.
        n_epochs: usize,
    },
    /// A measurement, batch or epoch of the generator's training.
    Training(TrainEvent<'a>),
    /// The generator is trained.
    Trained {
        /// Its parameters.
        n_params: usize,
        /// Seconds of training.
        seconds: f64,
        /// The epoch kept (0: the starting model).
        best_epoch: usize,
    },
    /// The training-free generator's validation Recall@1 with one setting of the dense head,
    /// measured where [`IndexConfig::supervised_targets`](crate::IndexConfig::supervised_targets)
    /// or [`IndexConfig::subtree_prior`](crate::IndexConfig::subtree_prior) is left open (the
    /// best is kept; ties keep the first).
    DenseHeadFloor {
        /// Tables from the supervised centroids (`true`) or the raw re-rank vectors.
        supervised_targets: bool,
        /// With the subtree prior.
        subtree_prior: bool,
        /// Validation Recall@1 before training.
        recall: f64,
        /// Validation pairs measured (those whose query is not its item's own vector).
        n_pairs: usize,
    },
    /// The re-rank vectors and the fused score's `lambda` were picked on the validation split.
    RerankPicked {
        /// Supervised centroids (`true`) or the raw re-rank vectors.
        supervised: bool,
        /// The `lambda` picked.
        lambda: f64,
        /// Validation Recall@1 of the fused score with them.
        recall: f64,
        /// Validation Recall@1 of the generator's own ranking of the same candidates: what
        /// the fused score is weighed against.
        generator_recall: f64,
        /// Validation Recall@1 of the fused score at every `lambda` tried (`(lambda,
        /// recall)`, in the order tried; one entry when the config fixes `lambda`). The entry
        /// at `lambda` 0 is the re-rank vectors alone over the candidates.
        recall_by_lambda: &'a [(f64, f64)],
        /// Validation pairs measured.
        n_pairs: usize,
    },
}

/// One readable line per event (batches included: an application that draws bars uses the
/// fields instead).
impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::QuantizerStarted { n_items } => {
                write!(f, "fitting the quantizer on {n_items} items")
            }
            Event::Quantizer(RqVaeEvent::Epoch(stats)) => write!(f, "{stats}"),
            Event::Quantizer(RqVaeEvent::Batch { epoch, n_epochs, batch, n_batches, loss })
            | Event::Training(TrainEvent::Batch { epoch, n_epochs, batch, n_batches, loss }) => {
                write!(
                    f,
                    "epoch {}/{n_epochs} batch {}/{n_batches} loss {loss:.4}",
                    epoch + 1,
                    batch + 1
                )
            }
            Event::Identifiers {
                id_len,
                vocab_size,
                collision_rate,
                largest_group,
                n_unique,
                seconds,
            } => write!(
                f,
                "identifiers: {id_len} tokens, vocabulary {vocab_size}, {:.1}% of items share \
                 their codes, largest group {largest_group} (U = {n_unique}); {seconds:.1} s",
                100.0 * collision_rate
            ),
            Event::TrainingStarted { n_train, n_valid, n_epochs } => write!(
                f,
                "training the generator for {n_epochs} epochs on {n_train} pairs ({n_valid} held \
                 out for validation)"
            ),
            Event::Training(TrainEvent::Start(metrics)) => match metrics.first() {
                Some(m) => write!(f, "before training: validation R@1 {:.4}", m.recall),
                None => write!(f, "before training"),
            },
            Event::Training(TrainEvent::Epoch(stats)) => write!(f, "{stats}"),
            Event::Trained { n_params, seconds, best_epoch } => write!(
                f,
                "trained {n_params} parameters in {seconds:.1} s (best epoch {best_epoch})"
            ),
            Event::DenseHeadFloor { supervised_targets, subtree_prior, recall, n_pairs } => {
                write!(
                    f,
                    "dense head, {} tables, subtree prior {}: training-free validation R@1 \
                     {recall:.4} ({n_pairs} pairs)",
                    if *supervised_targets { "supervised" } else { "raw" },
                    if *subtree_prior { "on" } else { "off" }
                )
            }
            Event::RerankPicked {
                supervised,
                lambda,
                recall,
                generator_recall,
                recall_by_lambda,
                n_pairs,
            } => {
                write!(
                    f,
                    "fused score: {} re-rank vectors, lambda {lambda} (validation R@1 {recall:.4}, \
                     the generator alone {generator_recall:.4}; {n_pairs} pairs)",
                    if *supervised { "supervised" } else { "raw" }
                )?;
                if recall_by_lambda.len() > 1 {
                    write!(f, "; R@1 by lambda:")?;
                    for (l, r) in *recall_by_lambda {
                        write!(f, " {l} {r:.4}")?;
                    }
                }
                Ok(())
            }
            _ => write!(f, "{self:?}"),
        }
    }
}
