//! [`IndexConfig`]: everything [`CartIndex::fit`](crate::CartIndex::fit) needs besides data.

use burn::prelude::*;
use cart_model::{GeneratorConfig, TrainConfig};
use cart_quant::{
    CoarseToFineConfig, KMeansConfig, ResidualQuantizerConfig, RqVaeConfig, RqVaeTrainConfig,
};
use cart_search::Metric;

use crate::{Error, Result};

/// Which quantizer turns item vectors into the codes `[k, v1..vM]`.
#[derive(Config, Debug)]
pub enum QuantizerConfig {
    /// CART's coarse-to-fine quantizer: K-Means for `k`, an RQ-VAE on the residual for
    /// `v1..vM`.
    CoarseToFine(CoarseToFineConfig),
    /// Residual K-Means for every level (no neural network): faster to fit, the paper's
    /// "without RQ-VAE" ablation. Fine levels must share one codebook size.
    Residual(ResidualQuantizerConfig),
}

/// Settings of a [`CartIndex`](crate::CartIndex).
///
/// The generator's `d_query`, `vocab_size` and `id_len` are filled in by the index (from the
/// training queries and the identifier layout); its other fields (width, depth, fusion, ...)
/// are used as given.
#[derive(Config, Debug)]
pub struct IndexConfig {
    /// The quantizer of the item vectors.
    pub quantizer: QuantizerConfig,
    /// Shape of the generator (its `d_query`, `vocab_size` and `id_len` are set by the index).
    /// Default: d_model 128, 4 heads, 2 + 2 layers, d_ff 512, dropout 0.1, fusion on.
    #[config(default = "default_generator()")]
    pub generator: GeneratorConfig,
    /// How the generator is trained. Default: [`TrainConfig::new`] with 20 epochs, batch 128.
    #[config(default = "TrainConfig::new().with_batch_size(128)")]
    pub train: TrainConfig,
    /// Room for later items in the uniqueness token: `U = ceil(largest group x headroom)`, at
    /// least the largest group. `U` is part of the vocabulary, so it is fixed at fit time; items
    /// added later must fit in it. Default: 2.0.
    #[config(default = 2.0)]
    pub unique_headroom: f64,
    /// Share of the training pairs held out to pick the best epoch (by Recall@1 through the
    /// constrained search). 0 trains on every pair and keeps the last epoch. Default: 0.1.
    #[config(default = 0.1)]
    pub validation_fraction: f64,
    /// Beam width of [`CartIndex::search`](crate::CartIndex::search) (at least `k` is used).
    /// Default: 10.
    #[config(default = 10)]
    pub beam_width: usize,
    /// Similarity of the optional dense re-rank. Default: cosine.
    #[config(default = "Metric::Cosine")]
    pub rerank_metric: Metric,
    /// Seed of the train/validation split (the quantizer and training configs carry their
    /// own; [`IndexConfig::with_seed_everywhere`] sets them all). Default: 0.
    #[config(default = 0)]
    pub seed: u64,
    /// Report each stage on stderr (the quantizer and training progress follow their own
    /// configs). Default: true.
    #[config(default = true)]
    pub progress: bool,
}

/// The default generator shape: small enough to train on a laptop CPU in minutes.
pub fn default_generator() -> GeneratorConfig {
    GeneratorConfig::new(0, 0, 0)
        .with_d_model(128)
        .with_n_heads(4)
        .with_n_encoder_layers(2)
        .with_n_decoder_layers(2)
        .with_d_ff(512)
}

impl IndexConfig {
    /// CART's layout for `d_item`-wide item vectors: `n_coarse` K-Means clusters, then an
    /// RQ-VAE with `n_levels` codebooks of `codebook_size` codes (latent 32, 100 epochs), and
    /// the default generator.
    pub fn coarse_to_fine(
        d_item: usize,
        n_coarse: usize,
        n_levels: usize,
        codebook_size: usize,
    ) -> Self {
        Self::new(QuantizerConfig::CoarseToFine(
            CoarseToFineConfig::new(
                KMeansConfig::new(n_coarse),
                RqVaeConfig::new(d_item)
                    .with_n_levels(n_levels)
                    .with_codebook_size(codebook_size)
                    .with_d_latent(32),
            )
            .with_train(RqVaeTrainConfig::new().with_n_epochs(100).with_batch_size(256)),
        ))
    }

    /// Residual K-Means codes: `n_coarse`, then `n_levels` levels of `codebook_size`.
    pub fn residual(n_coarse: usize, n_levels: usize, codebook_size: usize) -> Self {
        let sizes =
            std::iter::once(n_coarse).chain(std::iter::repeat_n(codebook_size, n_levels)).collect();
        Self::new(QuantizerConfig::Residual(ResidualQuantizerConfig::new(sizes)))
    }

    /// Sets one seed for the split, the K-Means, the RQ-VAE and the generator's training.
    pub fn with_seed_everywhere(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.train.seed = seed;
        match &mut self.quantizer {
            QuantizerConfig::CoarseToFine(c) => {
                c.coarse.seed = seed;
                c.train.seed = seed;
            }
            QuantizerConfig::Residual(r) => r.seed = seed,
        }
        self
    }

    /// Turns every progress report (stages, quantizer, training) on or off.
    pub fn with_progress_everywhere(mut self, on: bool) -> Self {
        self.progress = on;
        self.train.progress = on;
        if let QuantizerConfig::CoarseToFine(c) = &mut self.quantizer {
            c.train.progress = on;
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.unique_headroom.is_finite() && self.unique_headroom >= 1.0) {
            return Err(Error::config("unique_headroom", self.unique_headroom, "finite and >= 1"));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::config(
                "validation_fraction",
                self.validation_fraction,
                "must be in [0, 1)",
            ));
        }
        if self.beam_width == 0 {
            return Err(Error::config("beam_width", 0, "must be at least 1"));
        }
        Ok(())
    }
}

/// How one [`CartIndex::search_with`](crate::CartIndex::search_with) call searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Items returned per query.
    pub k: usize,
    /// Beam width; `None` uses the index's `beam_width`. At least `k` is used.
    pub beam_width: Option<usize>,
    /// Re-score the generator's beams (all of them, not only the top `k`) by dense similarity
    /// to the item vectors given for re-ranking.
    pub rerank: bool,
}

impl SearchOptions {
    /// Top `k`, the index's beam width, no re-rank.
    pub fn new(k: usize) -> Self {
        Self { k, beam_width: None, rerank: false }
    }

    /// With this beam width.
    pub fn with_beam_width(mut self, beam_width: usize) -> Self {
        self.beam_width = Some(beam_width);
        self
    }

    /// With or without the dense re-rank.
    pub fn with_rerank(mut self, rerank: bool) -> Self {
        self.rerank = rerank;
        self
    }
}
