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

/// Which vectors the quantizer turns into identifiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdVectors {
    /// The item vectors as given (`corpus.items`).
    #[default]
    Items,
    /// *Relevance-aware identifiers*: each item's supervised centroid, its vector plus the
    /// vectors of its training queries, normalised, so that prefixes group items the way
    /// queries see them (RIPOR, GENIUS and IRGen gain from relevance-trained identifiers).
    /// Needs items and queries in one space (`corpus.items` as wide as the queries, as with
    /// CLIP). Items added later have no queries yet: their own normalised vectors are encoded.
    Supervised,
}

/// Settings of a [`CartIndex`](crate::CartIndex).
///
/// Every default is the leaf crates' own ([`GeneratorConfig::new`], [`TrainConfig::new`]):
/// one source of CART's defaults. The generator's sizes (query width, vocabulary, items) come
/// from the data.
#[derive(Config, Debug)]
pub struct IndexConfig {
    /// The quantizer of the item vectors.
    pub quantizer: QuantizerConfig,
    /// Architecture of the generator. Default: [`GeneratorConfig::new`] (d_model 128, 4
    /// heads, 2 + 2 layers, d_ff 512, dropout 0.1, fusion on, dense head on).
    #[config(default = "GeneratorConfig::new()")]
    pub generator: GeneratorConfig,
    /// How the generator is trained. Default: [`TrainConfig::new`] (batch 128, 4 epochs,
    /// item-as-query rows 1.0, interpolation 0.5, ranking loss 0.1 with one negative per
    /// query from the model's own beams, R-Drop off).
    #[config(default = "TrainConfig::new()")]
    pub train: TrainConfig,
    /// Which vectors build the identifiers. Default: [`IdVectors::Items`].
    #[config(default = "IdVectors::Items")]
    pub id_vectors: IdVectors,
    /// Room for later items in the uniqueness token: `U = ceil(largest group x headroom)`, at
    /// least the largest group. `U` is part of the vocabulary, so it is fixed at fit time; items
    /// added later must fit in it. Default: 2.0.
    #[config(default = 2.0)]
    pub unique_headroom: f64,
    /// Share of the training pairs held out to pick the best epoch (by Recall@1 through the
    /// constrained search), the re-rank vectors and `lambda`. 0 trains on every pair and keeps
    /// the last epoch. With re-rank vectors, a pair whose query is its item's own re-rank
    /// vector (an item-as-query pseudo-query) always trains, and the share is of the other
    /// pairs: in validation such a pair would measure whether a table holds the vector, not
    /// retrieval. Default: 0.1.
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
    /// With the generator's dense head: build its output tables and the augmentations'
    /// item vectors from each item's *supervised centroid* (`Some(true)`: its re-rank vector
    /// plus the vectors of its training queries, normalised) or from the re-rank vector alone
    /// (`Some(false)`). `None`: the one whose training-free generator retrieves better on the
    /// validation split (pairs whose query is its item's own re-rank vector left out: they
    /// would always favour the raw vectors); the fitted index stores the choice. Without
    /// re-rank vectors the centroid of the training queries is used either way.
    /// Default: `Some(true)`. The centroid is the estimator of the supervised-dense bar and
    /// the safer one when future queries differ from the training ones; pick `None` when the
    /// validation split is like the queries to come (docs/results.md: on the bundled set,
    /// whose test languages the training pairs never use, validation picks the raw vectors
    /// and test R@1 drops; on the synthetic corpus, with noise-free item vectors, it picks
    /// them and gains).
    #[config(default = "Some(true)")]
    pub supervised_targets: Option<bool>,
    /// Re-rank and fuse against the supervised centroids (`Some(true)`) or the raw re-rank
    /// vectors (`Some(false)`). `None`: picked with `fuse_lambda` by the fused score's
    /// validation Recall@1 (the same pairs as `supervised_targets`). Fitted once and stored in
    /// the index. Default: `Some(true)` (as `supervised_targets`).
    #[config(default = "Some(true)")]
    pub rerank_supervised: Option<bool>,
    /// Once the choices above are made on the validation split, refit the supervised re-rank
    /// vectors on *every* training pair, the validation pairs included, before they are
    /// stored. The centroid is a closed form with nothing left to select, so holding pairs
    /// out of it only throws data away (on the bundled set the held-out tenth costs the
    /// stored vectors about a point of R@1 against supervised dense; docs/results.md).
    /// `false` keeps the training split's centroids, as the choices saw them. Without a
    /// validation split, or with the raw vectors chosen, it changes nothing. Default: `true`.
    #[config(default = true)]
    pub rerank_all_pairs: bool,
    /// The dense head's subtree prior ([`GeneratorConfig::subtree_prior`]; this field sets
    /// it). `None`: on or off, whichever training-free generator retrieves better on the
    /// validation split (the pairs of `supervised_targets`; off without a validation split);
    /// the fitted index stores the choice. The prior helps where the trie's subtrees hold
    /// items evenly and the query noise is large (the synthetic corpus: floor 0.25 -> 0.37)
    /// and costs a little where a few coarse clusters hold many items (the bundled set).
    /// Default: `None`.
    #[config(default = "None")]
    pub subtree_prior: Option<bool>,
    /// Candidates (beam width) of the re-ranked and fused searches. Default: 50.
    #[config(default = 50)]
    pub fuse_candidates: usize,
    /// Weight `lambda` of the fused score `cos(q, item) + lambda * log p(id | q)`. `None`:
    /// picked on the validation split during fit (and stored). Default: `None`.
    #[config(default = "None")]
    pub fuse_lambda: Option<f64>,
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
        if self.fuse_candidates == 0 {
            return Err(Error::config("fuse_candidates", 0, "must be at least 1"));
        }
        if let Some(l) = self.fuse_lambda
            && !(l.is_finite() && l >= 0.0)
        {
            return Err(Error::config("fuse_lambda", l, "finite and >= 0"));
        }
        Ok(())
    }
}

/// How [`CartIndex::search_with`](crate::CartIndex::search_with) ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// The generator alone: identifiers by trie-constrained beam search, scored by their
    /// log-probability.
    #[default]
    Generated,
    /// The generator's candidates re-scored by dense similarity alone.
    Reranked,
    /// The generator's candidates re-scored by `cos(q, item) + lambda * log p(id | q)`.
    Fused,
}

/// How one [`CartIndex::search_with`](crate::CartIndex::search_with) call searches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOptions {
    /// Items returned per query.
    pub k: usize,
    /// Beam width; `None` uses the index's `beam_width` ([`SearchMode::Generated`]) or
    /// `fuse_candidates` (the other modes). At least `k` is used.
    pub beam_width: Option<usize>,
    /// How the candidates are ranked.
    pub mode: SearchMode,
    /// `lambda` of [`SearchMode::Fused`]; `None` uses the index's (picked at fit).
    pub lambda: Option<f64>,
}

impl SearchOptions {
    /// Top `k`, the generator alone, the index's beam width.
    pub fn new(k: usize) -> Self {
        Self { k, beam_width: None, mode: SearchMode::Generated, lambda: None }
    }

    /// With this beam width (candidates).
    #[must_use]
    pub fn with_beam_width(mut self, beam_width: usize) -> Self {
        self.beam_width = Some(beam_width);
        self
    }

    /// With this ranking.
    #[must_use]
    pub fn with_mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// With or without the dense re-rank ([`SearchMode::Reranked`] or
    /// [`SearchMode::Generated`]).
    #[must_use]
    pub fn with_rerank(self, rerank: bool) -> Self {
        self.with_mode(if rerank { SearchMode::Reranked } else { SearchMode::Generated })
    }

    /// With this fusion weight.
    #[must_use]
    pub fn with_lambda(mut self, lambda: f64) -> Self {
        self.lambda = Some(lambda);
        self
    }
}
