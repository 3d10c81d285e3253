//! [`CartIndex`]: quantizer, identifiers, trie, generator and optional dense re-rank in one.

use std::ops::Range;
use std::time::Instant;

use burn::prelude::Device;
use cart_ids::{IdDiagnostics, IdLayout, IdTrie, assign_codes, split_codes};
use cart_model::{Generator, Pairs, TrainConfig, TrainHistory};
use cart_quant::{AnyQuantizer, Quantizer};
use cart_search::{BeamSearchConfig, DenseIndex, Hit};
use ndarray::ArrayView2;

use crate::config::{IdVectors, IndexConfig, QuantizerConfig, SearchMode, SearchOptions};
use crate::dense::{
    DEFAULT_FUSE_LAMBDA, LAMBDA_GRID, LambdaPick, centroids, fuse, fused_key, informative,
    pick_lambda,
};
use crate::events::Event;
use crate::rows::{check_finite, expect_dim, flat, rows};
use crate::{Error, Result};

/// The fitted quantizer of an index: [`cart_quant::AnyQuantizer`] (coarse-to-fine or
/// residual; its file names its kind).
pub type IndexQuantizer = AnyQuantizer;

/// What an index is built from: item vectors, training queries paired with items, and
/// optionally the item vectors in the query space for the dense re-rank. Every matrix is an
/// [`ArrayView2`] with one row per vector.
#[derive(Clone, Copy, Debug)]
pub struct Corpus<'a> {
    /// Item vectors (item `i` is row `i`): the quantizer turns them into identifiers.
    pub items: ArrayView2<'a, f32>,
    /// Training query vectors (captions, pseudo-queries, ...).
    pub queries: ArrayView2<'a, f32>,
    /// `query_items[q]`: the item training query `q` should retrieve.
    pub query_items: &'a [u32],
    /// Item vectors in the query space (for CLIP-style models the item vectors themselves),
    /// kept for [`SearchOptions::mode`] and [`CartIndex::dense`].
    pub rerank: Option<ArrayView2<'a, f32>>,
}

impl<'a> Corpus<'a> {
    /// Items and their training pairs, no re-rank vectors.
    pub fn new(
        items: ArrayView2<'a, f32>,
        queries: ArrayView2<'a, f32>,
        query_items: &'a [u32],
    ) -> Self {
        Self { items, queries, query_items, rerank: None }
    }

    /// With item vectors in the query space for the dense re-rank (row `i` is item `i`).
    #[must_use]
    pub fn with_rerank(mut self, vectors: ArrayView2<'a, f32>) -> Self {
        self.rerank = Some(vectors);
        self
    }
}

/// A training run that continues from the generator's weights: after
/// [`CartIndex::add_items`] (pairs that cover the new items and, to keep what the generator
/// knows, a sample of the old ones), or through [`CartIndex::fine_tune`] to resume training.
#[derive(Clone, Debug)]
pub struct FineTune<'a> {
    /// Query vectors.
    pub queries: ArrayView2<'a, f32>,
    /// `items[q]`: the item (old or new key) of query `q`.
    pub items: &'a [u32],
    /// The run (epochs, learning rate, ...); no validation is done.
    pub train: TrainConfig,
}

impl<'a> FineTune<'a> {
    /// Queries and their items, trained with the default [`TrainConfig`].
    pub fn new(queries: ArrayView2<'a, f32>, items: &'a [u32]) -> Self {
        Self { queries, items, train: TrainConfig::new() }
    }

    /// With this run (epochs, learning rate, seed, ...).
    #[must_use]
    pub fn with_train(mut self, train: TrainConfig) -> Self {
        self.train = train;
        self
    }
}

/// Items to append with [`CartIndex::add_items`]: their vectors, and what the index needs
/// with them.
///
/// ```no_run
/// # fn main() -> cart::Result<()> {
/// # let (mut index, new, new_q, queries, items): (cart::CartIndex, ndarray::Array2<f32>, ndarray::Array2<f32>, ndarray::Array2<f32>, Vec<u32>) = todo!();
/// let fine_tune = cart::FineTune::new(queries.view(), &items)
///     .with_train(cart::model::TrainConfig::new().with_n_epochs(2));
/// let keys = index.add_items(
///     cart::NewItems::new(new.view()).with_rerank(new_q.view()).with_fine_tune(fine_tune),
/// )?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct NewItems<'a> {
    /// The new items' vectors, as wide as the index's item vectors.
    pub items: ArrayView2<'a, f32>,
    /// Their vectors in the query space: required when the index has re-rank vectors,
    /// refused when it has none.
    pub rerank: Option<ArrayView2<'a, f32>>,
    /// An optional short training run so the generator learns the new identifiers. Without
    /// it, new items are reachable by search through their prefixes and, with the dense
    /// head, their table rows (set from their re-rank vectors).
    pub fine_tune: Option<FineTune<'a>>,
}

impl<'a> NewItems<'a> {
    /// The new items' vectors, no re-rank vectors, no training.
    pub fn new(items: ArrayView2<'a, f32>) -> Self {
        Self { items, rerank: None, fine_tune: None }
    }

    /// With their vectors in the query space.
    #[must_use]
    pub fn with_rerank(mut self, vectors: ArrayView2<'a, f32>) -> Self {
        self.rerank = Some(vectors);
        self
    }

    /// With a training run after the insert.
    #[must_use]
    pub fn with_fine_tune(mut self, fine_tune: FineTune<'a>) -> Self {
        self.fine_tune = Some(fine_tune);
        self
    }
}

/// A CART index: generative cross-modal retrieval in one value.
///
/// [`CartIndex::fit`] quantizes the item vectors into codes `[k, v1..vM]`
/// ([`IndexQuantizer`]), gives every item a unique identifier `[k, v1..vM, u]`, builds the
/// prefix trie of valid identifiers and trains the generator on (query, identifier) pairs.
/// [`CartIndex::search`] then *generates* the identifiers of the best items for each query by
/// beam search constrained to the trie; no item vector is scored. Optionally the beams are
/// re-ranked by dense similarity ([`SearchOptions::mode`]).
///
/// Items are keyed `0..len()` in the order they were given; [`CartIndex::add_items`] appends.
/// [`CartIndex::save`] / [`CartIndex::load`] write and read a versioned index directory.
///
/// ```no_run
/// use burn::prelude::Device;
/// use cart::{CartIndex, Corpus, IndexConfig, SearchMode, SearchOptions};
/// use ndarray::Array2;
///
/// # fn main() -> cart::Result<()> {
/// # let (items, queries, query_items, test): (Array2<f32>, Array2<f32>, Vec<u32>, Array2<f32>) = todo!();
/// let device = Device::flex();
/// let corpus = Corpus::new(items.view(), queries.view(), &query_items)
///     .with_rerank(items.view()); // CLIP: items and queries share one space
/// let index = CartIndex::fit(&IndexConfig::coarse_to_fine(512, 64, 3, 32), corpus, &device)?;
/// let hits = index.search_with(test.view(), SearchOptions::new(10).with_mode(SearchMode::Fused))?;
/// index.save("my-index")?;
/// let again = CartIndex::load("my-index", &device)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CartIndex {
    pub(crate) config: IndexConfig,
    pub(crate) quantizer: IndexQuantizer,
    pub(crate) trie: IdTrie,
    pub(crate) generator: Generator,
    pub(crate) dense: Option<DenseIndex>,
    pub(crate) history: TrainHistory,
}

impl CartIndex {
    /// Builds an index: fits the quantizer on `corpus.items` (or their supervised centroids,
    /// [`IndexConfig::id_vectors`]), assigns identifiers, builds the
    /// trie, and trains the generator on `corpus.queries` / `corpus.query_items` (holding out
    /// `config.validation_fraction` of them to pick the best epoch).
    ///
    /// Deterministic given the seeds in `config`, provided nothing else draws from the
    /// backend's random state meanwhile (burn keeps one per backend, shared by all threads).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for bad settings or codebook sizes that do not form an
    /// identifier layout, [`Error::EmptyData`], [`Error::DimMismatch`],
    /// [`Error::LengthMismatch`], [`Error::NonFinite`] and [`Error::UnknownItem`] for bad data,
    /// and the errors of the quantizer, the identifier assignment and training.
    pub fn fit(config: &IndexConfig, corpus: Corpus<'_>, device: &Device) -> Result<Self> {
        Self::fit_observed(config, corpus, device, &mut |_| {})
    }

    /// [`CartIndex::fit`], reporting every stage, quantizer and training batch, epoch and
    /// validation to `observer` ([`Event`]; its `Display` gives one readable line each). The
    /// library never prints.
    ///
    /// ```no_run
    /// # fn main() -> cart::Result<()> {
    /// # let (config, corpus, device): (cart::IndexConfig, cart::Corpus<'_>, burn::prelude::Device) = todo!();
    /// let index = cart::CartIndex::fit_observed(&config, corpus, &device, &mut |e| match e {
    ///     cart::Event::Training(cart::model::TrainEvent::Batch { .. }) => {} // draw a bar here
    ///     other => eprintln!("{other}"),
    /// })?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`CartIndex::fit`].
    pub fn fit_observed(
        config: &IndexConfig,
        corpus: Corpus<'_>,
        device: &Device,
        observer: &mut dyn FnMut(Event<'_>),
    ) -> Result<Self> {
        config.validate()?;
        let Corpus { items, queries, query_items, rerank } = corpus;
        let n = items.nrows();
        if n == 0 || items.ncols() == 0 {
            return Err(Error::EmptyData { what: "item vectors" });
        }
        let n32 = u32::try_from(n).map_err(|_| Error::config("items", n, "at most u32::MAX"))?;
        if queries.nrows() == 0 || queries.ncols() == 0 {
            return Err(Error::EmptyData { what: "training queries" });
        }
        if queries.nrows() != query_items.len() {
            return Err(Error::LengthMismatch {
                what: "training queries and their items",
                left: queries.nrows(),
                right: query_items.len(),
            });
        }
        if let Some(&item) = query_items.iter().find(|&&i| i >= n32) {
            return Err(Error::UnknownItem { item, n_items: n });
        }
        check_finite(items, "item vectors")?;
        check_finite(queries, "training queries")?;
        let per_query = config.generator.n_query_vectors.max(1);
        if !queries.ncols().is_multiple_of(per_query) {
            return Err(Error::DimMismatch {
                what: "training queries (n_query_vectors vectors each)",
                got: queries.ncols() % per_query,
                expected: per_query,
            });
        }
        if let Some(r) = rerank {
            if r.nrows() != n {
                return Err(Error::LengthMismatch {
                    what: "items and their re-rank vectors",
                    left: n,
                    right: r.nrows(),
                });
            }
            expect_dim(r, "re-rank vectors (must be in the query space)", queries.ncols())?;
            check_finite(r, "re-rank vectors")?;
        }

        // The validation pairs are held out of everything fitted on queries. A pair whose
        // query *is* its item's re-rank vector (an item-as-query pseudo-query, such as a name
        // embedded by the query encoder) always trains: the index has that vector anyway, and
        // in validation it would measure whether a table holds it, not retrieval.
        let width = queries.ncols();
        let raw = rerank.map(flat);
        let raw = raw.as_deref();
        let own = raw.map(|r| centroids(Some(r), n, &[], &[], width)).transpose()?;
        let (train, valid) = split_pairs(queries, query_items, config, own.as_deref());

        // 1. Codes [k, v1..vM] for every item.
        let t = Instant::now();
        let pulled;
        let id_input = match config.id_vectors {
            IdVectors::Items => items.view(),
            IdVectors::Supervised => {
                expect_dim(
                    items,
                    "item vectors (relevance-aware identifiers need them in the query space)",
                    queries.ncols(),
                )?;
                let width = items.ncols();
                pulled = centroids(Some(&flat(items)), n, &train.0, &train.1, width)?;
                rows(&pulled, width)?
            }
        };
        observer(Event::QuantizerStarted { n_items: n });
        let quantizer = match &config.quantizer {
            QuantizerConfig::CoarseToFine(c) => AnyQuantizer::from(
                c.fit_observed(id_input, device, &mut |e| observer(Event::Quantizer(e)))?.0,
            ),
            QuantizerConfig::Residual(c) => AnyQuantizer::from(c.fit(id_input, device)?),
        };
        let codes = quantizer.encode(id_input)?;

        // 2. Identifiers [k, v1..vM, u], with room in u for later items.
        let ids = assign_codes(&quantizer.codebook_sizes(), codes.view(), config.unique_headroom)?;
        let layout = *ids.layout();
        let trie = ids.to_trie()?;
        observer(Event::Identifiers {
            id_len: layout.id_len(),
            vocab_size: layout.vocab_size(),
            collision_rate: ids.collision_rate(),
            largest_group: ids.largest_group(),
            n_unique: layout.n_unique() as usize,
            seconds: t.elapsed().as_secs_f64(),
        });

        // 3. The generator, trained on (query, identifier) pairs. Every item in the query
        // space, from the training split only: its re-rank vector, its supervised centroid,
        // or (without re-rank vectors) its queries' centroid.
        let supervised = centroids(raw, n, &train.0, &train.1, width)?;
        let valid_queries = rows(&valid.0, width)?;
        let mut config = config.clone();
        // The dense head's tables and its subtree prior, where the config leaves them open:
        // the pair whose training-free generator retrieves best on the validation pairs.
        let target_choices = match (&own, config.supervised_targets) {
            (Some(_), None) => vec![true, false],
            (Some(_), Some(choice)) => vec![choice],
            (None, _) => vec![true],
        };
        let prior_choices = match config.subtree_prior {
            None => vec![false, true],
            Some(prior) => vec![prior],
        };
        let open = target_choices.len() * prior_choices.len() > 1;
        let (supervised_targets, subtree_prior) =
            if open && config.generator.dense_head && !valid.1.is_empty() {
                let dims = cart_model::GeneratorDims::for_trie(width, &trie);
                let search = BeamSearchConfig::default()
                    .with_beam_width(config.train.beam_width)
                    .with_top_k(1);
                let relevant: Vec<Vec<u32>> = valid.1.iter().map(|&i| vec![i]).collect();
                let mut best: Option<(f64, bool, bool)> = None;
                for &targets in &target_choices {
                    let table = match (&own, targets) {
                        (Some(own), false) => own,
                        _ => &supervised,
                    };
                    for &prior in &prior_choices {
                        let head = config.generator.clone().with_subtree_prior(prior);
                        let mut generator = head.init(&dims, device)?;
                        generator.set_dense_tables(rows(table, width)?)?;
                        let hits = generator.search(&trie, search, valid_queries)?;
                        let recall = cart_search::evaluate(&hits, &relevant, &[1])?[0].recall;
                        observer(Event::DenseHeadFloor {
                            supervised_targets: targets,
                            subtree_prior: prior,
                            recall,
                            n_pairs: valid.1.len(),
                        });
                        if best.is_none_or(|(r, _, _)| recall > r) {
                            best = Some((recall, targets, prior));
                        }
                    }
                }
                best.map_or((target_choices[0], prior_choices[0]), |(_, t, p)| (t, p))
            } else {
                (target_choices[0], prior_choices[0])
            };
        config.subtree_prior = Some(subtree_prior);
        config.generator.subtree_prior = subtree_prior;
        config.supervised_targets = Some(supervised_targets);
        let targets = match &own {
            Some(own) if !supervised_targets => own.clone(),
            _ => supervised.clone(),
        };
        observer(Event::TrainingStarted {
            n_train: train.1.len(),
            n_valid: valid.1.len(),
            n_epochs: config.train.n_epochs,
        });
        let t = Instant::now();
        let valid_pairs = (!valid.1.is_empty()).then(|| Pairs::new(valid_queries, &valid.1));
        let pairs =
            Pairs::new(rows(&train.0, width)?, &train.1).with_item_vectors(rows(&targets, width)?);
        let (generator, history) = config.generator.fit_observed(
            pairs,
            valid_pairs,
            &trie,
            &config.train,
            device,
            &mut |e| observer(Event::Training(e)),
        )?;
        observer(Event::Trained {
            n_params: generator.n_params(),
            seconds: t.elapsed().as_secs_f64(),
            best_epoch: history.best_epoch,
        });
        // The re-rank vectors (supervised centroids or the raw vectors) and the fused score's
        // lambda, picked together on the validation pairs where the config leaves them open.
        let dense = match own {
            None => None,
            Some(own) => {
                let choices: Vec<(bool, Vec<f32>)> = match config.rerank_supervised {
                    Some(true) => vec![(true, supervised)],
                    Some(false) => vec![(false, own)],
                    None => vec![(true, supervised), (false, own)],
                };
                let lambdas = match config.fuse_lambda {
                    Some(l) => vec![l],
                    None => LAMBDA_GRID.to_vec(),
                };
                let mut dense = Vec::with_capacity(choices.len());
                for (choice, vectors) in choices {
                    dense.push((
                        choice,
                        DenseIndex::new(rows(&vectors, width)?, config.rerank_metric)?,
                    ));
                }
                let picked = if valid.1.is_empty() || (dense.len() == 1 && lambdas.len() == 1) {
                    None
                } else {
                    let beam = config.fuse_candidates;
                    let search = BeamSearchConfig::default().with_beam_width(beam).with_top_k(beam);
                    let candidates = generator.search(&trie, search, valid_queries)?;
                    let relevant: Vec<Vec<u32>> = valid.1.iter().map(|&i| vec![i]).collect();
                    let alone = cart_search::evaluate(&candidates, &relevant, &[1])?[0].recall;
                    let mut best: Option<(usize, LambdaPick)> = None;
                    for (j, (_, d)) in dense.iter().enumerate() {
                        let pick = pick_lambda(d, valid_queries, &candidates, &valid.1, &lambdas)?;
                        if best
                            .as_ref()
                            .is_none_or(|(_, b)| fused_key(&pick.metrics) > fused_key(&b.metrics))
                        {
                            best = Some((j, pick));
                        }
                    }
                    best.map(|(j, pick)| (j, pick, alone))
                };
                let (j, lambda) = match picked {
                    Some((j, pick, alone)) => {
                        observer(Event::RerankPicked {
                            supervised: dense[j].0,
                            lambda: pick.lambda,
                            recall: pick.metrics[0].recall,
                            generator_recall: alone,
                            recall_by_lambda: &pick.curve,
                            n_pairs: valid.1.len(),
                        });
                        (j, pick.lambda)
                    }
                    None => (0, config.fuse_lambda.unwrap_or(DEFAULT_FUSE_LAMBDA)),
                };
                let (choice, mut d) = dense.swap_remove(j);
                if choice && config.rerank_all_pairs && !valid.1.is_empty() {
                    // the choices are made; the stored centroids use every pair
                    let all = centroids(raw, n, &flat(queries), query_items, width)?;
                    d = DenseIndex::new(rows(&all, width)?, config.rerank_metric)?;
                }
                config.rerank_supervised = Some(choice);
                config.fuse_lambda = Some(lambda);
                Some(d)
            }
        };
        if config.fuse_lambda.is_none() {
            config.fuse_lambda = Some(DEFAULT_FUSE_LAMBDA);
        }
        Ok(Self { config, quantizer, trie, generator, dense, history })
    }

    /// The `k` best items for each query (one row of [`CartIndex::query_dim`] values each),
    /// generated by the constrained beam search, best first.
    ///
    /// # Errors
    ///
    /// As [`CartIndex::search_with`].
    pub fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<Hit>>> {
        self.search_with(queries, SearchOptions::new(k))
    }

    /// Search with explicit options: beam width and the dense re-rank.
    ///
    /// Scores are the generator's identifier log-probabilities, or the dense similarities
    /// after a re-rank. A query can get fewer than `k` hits when the beams hold fewer items.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for `k == 0` or a zero beam width, [`Error::Rerank`] when
    /// re-ranking without re-rank vectors, and the model's errors for bad query vectors
    /// (wrong width, NaN or inf).
    pub fn search_with(
        &self,
        queries: ArrayView2<'_, f32>,
        options: SearchOptions,
    ) -> Result<Vec<Vec<Hit>>> {
        if options.k == 0 {
            return Err(Error::config("k", 0, "must be at least 1"));
        }
        let default = match options.mode {
            SearchMode::Generated => self.config.beam_width,
            _ => self.config.fuse_candidates,
        };
        let beam = options.beam_width.unwrap_or(default);
        if beam == 0 {
            return Err(Error::config("beam_width", 0, "must be at least 1"));
        }
        // more beams than identifiers buy nothing, and bound the search's buffers
        let beam = beam.max(options.k).min(self.len().max(1));
        let lambda = options.lambda.or(self.config.fuse_lambda).unwrap_or(DEFAULT_FUSE_LAMBDA);
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(Error::config("lambda", lambda, "finite and >= 0"));
        }
        let dense = match (options.mode, &self.dense) {
            (SearchMode::Generated, _) => None,
            (_, Some(d)) => Some(d),
            (_, None) => return Err(Error::Rerank("the index was built without them")),
        };
        // With a re-rank every beam is a candidate; without, the top k are the answer.
        let top = if dense.is_some() { beam } else { options.k.min(beam) };
        let search = BeamSearchConfig::default().with_beam_width(beam).with_top_k(top);
        let hits = self.generator.search(&self.trie, search, queries)?;
        match (options.mode, dense) {
            (SearchMode::Fused, Some(d)) => fuse(d, queries, &hits, lambda, options.k),
            (SearchMode::Reranked, Some(d)) => {
                let mut hits = d.rerank(queries, &hits)?;
                hits.iter_mut().for_each(|h| h.truncate(options.k));
                Ok(hits)
            }
            _ => Ok(hits),
        }
    }

    /// Gives identifiers to new items with the frozen quantizer, inserts them into the trie
    /// and returns their keys (`len()..len() + n`). [`NewItems`] says what comes with them:
    /// their re-rank vectors (required when the index has them) and an optional training run.
    ///
    /// Everything is computed first; on any error the index is unchanged. The config and
    /// [`CartIndex::history`] stay those of [`CartIndex::fit`].
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad vectors, [`Error::Rerank`],
    /// [`Error::Ids`] with `NoFreeUnique` when a code tuple has no free uniqueness suffix left
    /// (fit with a larger [`IndexConfig::unique_headroom`]), and training errors.
    pub fn add_items(&mut self, new: NewItems<'_>) -> Result<Range<u32>> {
        let NewItems { items, rerank, fine_tune } = new;
        let old = self.len();
        expect_dim(items, "new item vectors", self.quantizer.d_input())?;
        if items.nrows() == 0 {
            return Err(Error::EmptyData { what: "new item vectors" });
        }
        check_finite(items, "new item vectors")?;
        let total = old + items.nrows();
        let end =
            u32::try_from(total).map_err(|_| Error::config("items", total, "at most u32::MAX"))?;
        let keys = old as u32..end;

        let dense = match (&self.dense, rerank) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::Rerank("the index re-ranks: give the new items' vectors"));
            }
            (None, Some(_)) => return Err(Error::Rerank("the index was built without them")),
            (Some(d), Some(r)) => {
                if r.nrows() != items.nrows() {
                    return Err(Error::LengthMismatch {
                        what: "new items and their re-rank vectors",
                        left: items.nrows(),
                        right: r.nrows(),
                    });
                }
                expect_dim(r, "new re-rank vectors", d.dim())?;
                // only the new rows are checked and normalised; appended at commit time
                Some(DenseIndex::new(r, d.metric())?)
            }
        };

        let pulled;
        let id_input = match self.config.id_vectors {
            IdVectors::Items => items.view(),
            IdVectors::Supervised => {
                // no queries yet: the supervised centroid of a new item is its own direction
                let width = items.ncols();
                pulled = centroids(Some(&flat(items)), items.nrows(), &[], &[], width)?;
                rows(&pulled, width)?
            }
        };
        let codes = self.quantizer.encode(id_input)?;
        let (coarse, fine) = split_codes(codes.view())?;
        let mut trie = self.trie.clone();
        let keys_vec: Vec<u32> = keys.clone().collect();
        trie.insert_codes(&keys_vec, &coarse, &fine)?;

        // The dense head's rows for the new items: their (normalised) re-rank vectors, or zero
        // without re-rank vectors (the items' prefixes still lead to them).
        let width = self.query_dim();
        let base = match self.generator.dense_tables()? {
            None => self.generator.clone(),
            Some(_) => {
                let n = items.nrows();
                let targets = match rerank {
                    Some(r) => centroids(Some(&flat(r)), n, &[], &[], width)?,
                    None => vec![0.0; n * width],
                };
                self.generator.with_more_items(rows(&targets, width)?)?
            }
        };
        let generator = match &fine_tune {
            None => base,
            Some(ft) => self.trained(&base, &trie, ft)?.0,
        };

        // Commit: the append is the only step that can fail, and it comes first.
        if let (Some(all), Some(new)) = (self.dense.as_mut(), dense) {
            all.append(new)?;
        }
        self.trie = trie;
        self.generator = generator;
        Ok(keys)
    }

    /// Trains the generator further on `pairs`, starting from its current weights: the way
    /// to resume a run (fit with few epochs, [`save`](CartIndex::save), later
    /// [`load`](CartIndex::load) and go on) or to adapt to new queries. The optimizer state
    /// and learning-rate schedule start afresh. Returns the run's history; on error the index
    /// is unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`], [`Error::LengthMismatch`], [`Error::UnknownItem`] for bad
    /// pairs, and training errors.
    pub fn fine_tune(&mut self, pairs: &FineTune<'_>) -> Result<TrainHistory> {
        let (generator, history) = self.trained(&self.generator, &self.trie, pairs)?;
        self.generator = generator;
        Ok(history)
    }

    /// [`CartIndex::resume_observed`] without an observer.
    ///
    /// # Errors
    ///
    /// As [`CartIndex::resume_observed`].
    pub fn resume(
        &mut self,
        queries: ArrayView2<'_, f32>,
        query_items: &[u32],
        n_epochs: usize,
    ) -> Result<TrainHistory> {
        self.resume_observed(queries, query_items, n_epochs, &mut |_| {})
    }

    /// Continues [`CartIndex::fit`]'s training for `n_epochs` more epochs, from the
    /// generator's current weights: the way to resume a fit that was stopped (or saved early)
    /// and loaded back. Give the pairs the index was fitted on: they are split into training
    /// and validation with the index's seed and `validation_fraction`, exactly as `fit` split
    /// them, so the held-out pairs stay held out. The run keeps its best epoch by validation
    /// Recall@1, the starting model included (a resumed index never validates worse than
    /// before), and its epochs are appended to [`CartIndex::history`] (numbered on from the
    /// last). The optimizer state and the learning-rate schedule start afresh; the fused
    /// score's `lambda` is kept. On error the index is unchanged.
    ///
    /// # Errors
    ///
    /// As [`CartIndex::fine_tune`], and [`Error::InvalidConfig`] for `n_epochs == 0`.
    pub fn resume_observed(
        &mut self,
        queries: ArrayView2<'_, f32>,
        query_items: &[u32],
        n_epochs: usize,
        observer: &mut dyn FnMut(Event<'_>),
    ) -> Result<TrainHistory> {
        if n_epochs == 0 {
            return Err(Error::config("n_epochs", 0, "must be at least 1"));
        }
        expect_dim(queries, "training queries", self.query_dim())?;
        if queries.nrows() != query_items.len() {
            return Err(Error::LengthMismatch {
                what: "training queries and their items",
                left: queries.nrows(),
                right: query_items.len(),
            });
        }
        if queries.nrows() == 0 {
            return Err(Error::EmptyData { what: "training queries" });
        }
        let n = self.len();
        if let Some(&item) = query_items.iter().find(|&&i| i as usize >= n) {
            return Err(Error::UnknownItem { item, n_items: n });
        }
        check_finite(queries, "training queries")?;
        let width = self.query_dim();
        // as in `fit`: pseudo-queries always train, where the stored vectors are the raw ones
        // (supervised centroids are not any query, so none is recognised)
        let own = match (&self.dense, self.config.rerank_supervised) {
            (Some(d), Some(false)) if d.len() == n => {
                Some(centroids(Some(&flat(d.vectors())), n, &[], &[], width)?)
            }
            _ => None,
        };
        let (train, valid) = split_pairs(queries, query_items, &self.config, own.as_deref());
        // the augmentations' item vectors, as in `fine_tune`: the stored re-rank vectors, or
        // without them the training queries' centroids
        let targets = match self.dense.as_ref().filter(|d| d.len() == n) {
            Some(d) => flat(d.vectors()).into_owned(),
            None => centroids(None, n, &train.0, &train.1, width)?,
        };
        let valid_pairs = match valid.1.is_empty() {
            true => None,
            false => Some(Pairs::new(rows(&valid.0, width)?, &valid.1)),
        };
        let pairs =
            Pairs::new(rows(&train.0, width)?, &train.1).with_item_vectors(rows(&targets, width)?);
        let train_config = self.config.train.clone().with_n_epochs(n_epochs);
        observer(Event::TrainingStarted {
            n_train: train.1.len(),
            n_valid: valid.1.len(),
            n_epochs,
        });
        let t = Instant::now();
        let (generator, run) = self.generator.fit_more_observed(
            pairs,
            valid_pairs,
            &self.trie,
            &train_config,
            &mut |e| observer(Event::Training(e)),
        )?;
        let offset = self.history.epochs.len();
        observer(Event::Trained {
            n_params: generator.n_params(),
            seconds: t.elapsed().as_secs_f64(),
            best_epoch: match run.best_epoch {
                0 => self.history.best_epoch,
                best => offset + best,
            },
        });
        if run.best_epoch != 0 {
            self.history.best_epoch = offset + run.best_epoch;
        }
        self.history.epochs.extend(run.epochs.iter().cloned().map(|mut e| {
            e.epoch += offset;
            e
        }));
        self.generator = generator;
        Ok(run)
    }

    /// The generator trained further on `ft` against the identifiers in `trie`.
    fn trained(
        &self,
        base: &Generator,
        trie: &IdTrie,
        ft: &FineTune<'_>,
    ) -> Result<(Generator, TrainHistory)> {
        expect_dim(ft.queries, "fine-tune queries", self.query_dim())?;
        if ft.queries.nrows() != ft.items.len() {
            return Err(Error::LengthMismatch {
                what: "fine-tune queries and their items",
                left: ft.queries.nrows(),
                right: ft.items.len(),
            });
        }
        if let Some(&item) = ft.items.iter().find(|&&i| i as usize >= trie.len()) {
            return Err(Error::UnknownItem { item, n_items: trie.len() });
        }
        check_finite(ft.queries, "fine-tune queries")?;
        // the augmentations draw on the items' stored query-space vectors, as at fit time
        let mut pairs = Pairs::new(ft.queries.view(), ft.items);
        if let Some(d) = self.dense.as_ref().filter(|d| d.len() == trie.len()) {
            pairs = pairs.with_item_vectors(d.vectors());
        }
        Ok(base.fit_more(pairs, None, trie, &ft.train)?)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// Whether the index holds no item (never, for a fitted or loaded index).
    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }

    /// Width of the item vectors the quantizer takes.
    pub fn item_dim(&self) -> usize {
        self.quantizer.d_input()
    }

    /// Width of a query ([`cart_model::GeneratorDims::query_width`]).
    pub fn query_dim(&self) -> usize {
        self.generator.query_width()
    }

    /// The settings the index was fitted with (the lambda picked at fit filled in).
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// The identifier layout.
    pub fn layout(&self) -> &IdLayout {
        self.trie.layout()
    }

    /// The fitted quantizer (frozen: [`CartIndex::add_items`] encodes with it).
    pub fn quantizer(&self) -> &IndexQuantizer {
        &self.quantizer
    }

    /// The trie of valid identifiers.
    pub fn trie(&self) -> &IdTrie {
        &self.trie
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The exact dense index over the re-rank vectors, if the index has them: the baseline to
    /// compare against, and the re-ranker.
    pub fn dense(&self) -> Option<&DenseIndex> {
        self.dense.as_ref()
    }

    /// The generator's training history (from [`CartIndex::fit`]).
    pub fn history(&self) -> &TrainHistory {
        &self.history
    }

    /// Identifier statistics: collisions, items per prefix, uniqueness values, memory.
    pub fn diagnostics(&self) -> IdDiagnostics {
        self.trie.diagnostics()
    }

    /// The identifier of `item`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownItem`].
    pub fn id_of(&self, item: u32) -> Result<cart_ids::SemanticId> {
        self.trie.id_of(item).map_err(|_| Error::UnknownItem { item, n_items: self.len() })
    }
}

type Split = (Vec<f32>, Vec<u32>);

/// A seeded shuffle of the pairs, cut into training and validation (row-major queries).
/// With `own` (unit item vectors in the query space), a pair whose query is its item's own
/// vector ([`informative`] says no) always trains, and `validation_fraction` is a share of the
/// other pairs.
fn split_pairs(
    queries: ArrayView2<'_, f32>,
    items: &[u32],
    config: &IndexConfig,
    own: Option<&[f32]>,
) -> (Split, Split) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let n = items.len();
    let width = queries.ncols();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(config.seed));
    let measures: Vec<bool> = (0..n)
        .map(|r| own.is_none_or(|own| informative(&queries.row(r).to_vec(), items[r], own, width)))
        .collect();
    let n_informative = measures.iter().filter(|&&m| m).count();
    let n_valid =
        ((n_informative as f64 * config.validation_fraction) as usize).min(n.saturating_sub(1));
    let (mut valid, mut train) = (Vec::with_capacity(n_valid), Vec::with_capacity(n - n_valid));
    for r in order {
        match valid.len() < n_valid && measures[r] {
            true => valid.push(r),
            false => train.push(r),
        }
    }
    let take = |rows: &[usize]| -> Split {
        let mut q = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            q.extend(queries.row(r).iter().copied());
        }
        (q, rows.iter().map(|&r| items[r]).collect())
    };
    (take(&train), take(&valid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
    use ndarray::Array2;

    use super::*;

    /// 40 items in 4 dimensions; pairs 0..40 are each item's own vector (pseudo-queries), the
    /// 60 after them real queries: the item's vector plus an offset.
    fn pairs() -> (Array2<f32>, Vec<u32>, Vec<f32>) {
        let own: Vec<f32> = (0..40)
            .flat_map(|i| {
                let v = [(i as f32).sin(), (i as f32).cos(), 0.5, (i % 3) as f32];
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.map(|x| x / n)
            })
            .collect();
        let mut q = own.clone();
        let mut items: Vec<u32> = (0..40).collect();
        for j in 0..60u32 {
            let i = j % 40;
            let v = &own[i as usize * 4..i as usize * 4 + 4];
            q.extend(v.iter().enumerate().map(|(d, x)| x + 0.3 * ((j + d as u32) as f32).sin()));
            items.push(i);
        }
        (Array2::from_shape_vec((100, 4), q).unwrap(), items, own)
    }

    #[test]
    fn pseudo_queries_always_train_and_the_split_is_seeded() {
        let (q, items, own) = pairs();
        let mut config = IndexConfig::residual(4, 1, 4);
        config.validation_fraction = 0.25;
        let (train, valid) = split_pairs(q.view(), &items, &config, Some(&own));
        // a quarter of the 60 real queries, none of them an item's own vector
        assert_eq!((train.1.len(), valid.1.len()), (85, 15));
        let is_own = |split: &Split| {
            split
                .0
                .chunks_exact(4)
                .zip(&split.1)
                .filter(|(q, i)| !informative(q, **i, &own, 4))
                .count()
        };
        assert_eq!((is_own(&train), is_own(&valid)), (40, 0));
        // without the item vectors the same fraction of all pairs, pseudo-queries included
        let (_, blind) = split_pairs(q.view(), &items, &config, None);
        assert_eq!(blind.1.len(), 25);
        assert!(is_own(&blind) > 0, "the seed-0 shuffle puts some pseudo-query in validation");
        // the same seed, the same split; another seed, another one
        assert_eq!(split_pairs(q.view(), &items, &config, Some(&own)), (train, valid.clone()));
        config.seed = 1;
        assert_ne!(split_pairs(q.view(), &items, &config, Some(&own)).1, valid);
    }
}
