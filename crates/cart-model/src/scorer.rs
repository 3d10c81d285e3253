//! [`GeneratorScorer`]: incremental decoding with a key/value cache that follows the beams.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::IdTrie;
use cart_search::{BeamSearch, BeamSearchConfig, Hit, Scorer, Step};
use ndarray::ArrayView2;

use crate::generator::{
    Generator, check_queries, host_running_sums, int_tensor, leaf_items, to_f32,
};
use crate::model::{CrossKv, Kv};
use crate::{Error, Result};

/// Queries per batch in [`Generator::search`]: bounds the memory of the beams' caches.
const SEARCH_CHUNK: usize = 256;

impl Generator {
    /// The top `config.top_k` items for each query (one row each), by beam search over `trie`
    /// constrained to valid identifiers. Queries run in batches of 256.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::InvalidConfig`] if `trie`'s vocabulary is not the model's,
    /// [`Error::Search`] if the search fails.
    pub fn search(
        &self,
        trie: &IdTrie,
        config: BeamSearchConfig,
        queries: ArrayView2<'_, f32>,
    ) -> Result<Vec<Vec<Hit>>> {
        let width = self.dims.query_width;
        let values = check_queries("search", queries, width)?;
        self.check_trie(trie)?;
        let search = BeamSearch::new(trie, config);
        let mut out = Vec::with_capacity(queries.nrows());
        let sums = self.dense_sums(trie)?;
        for chunk in values.chunks(SEARCH_CHUNK * width) {
            let mut scorer =
                GeneratorScorer::new(self, trie, chunk, chunk.len() / width, sums.clone())?;
            out.extend(search.search(&mut scorer)?);
        }
        Ok(out)
    }

    /// A [`cart_search::Scorer`] for a batch of queries (one row each): runs the encoder once,
    /// then decodes one token per beam per step with a key/value cache.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::InvalidConfig`] if `trie`'s vocabulary is not the model's.
    pub fn scorer<'g>(
        &'g self,
        trie: &'g IdTrie,
        queries: ArrayView2<'_, f32>,
    ) -> Result<GeneratorScorer<'g>> {
        let values = check_queries("scorer", queries, self.dims.query_width)?;
        self.check_trie(trie)?;
        GeneratorScorer::new(self, trie, &values, queries.nrows(), self.dense_sums(trie)?)
    }

    fn check_trie(&self, trie: &IdTrie) -> Result<()> {
        let layout = trie.layout();
        if layout.vocab_size() != self.dims.vocab_size || layout.id_len() != self.dims.id_len {
            return Err(Error::config(
                "trie",
                format!("vocabulary {} / length {}", layout.vocab_size(), layout.id_len()),
                "must match the generator's vocabulary and identifier length",
            ));
        }
        Ok(())
    }

    /// The dense head's running sums over `trie`'s leaves on the host, if the model has one.
    fn dense_sums(&self, trie: &IdTrie) -> Result<Option<Arc<Vec<f32>>>> {
        let Some(head) = self.model.dense() else { return Ok(None) };
        let table = to_f32(head.item_table())?;
        let leaves = leaf_items(trie, self.dims.n_items);
        Ok(Some(Arc::new(host_running_sums(&table, self.dims.query_width, &leaves))))
    }
}

/// A [`Scorer`] over one batch of queries, from [`Generator::scorer`].
///
/// The encoder runs once, when the scorer is made; the cross-attention keys and values of every
/// decoder layer are computed once per query. Each [`Scorer::score`] call then feeds one token
/// per live beam through the decoder, appending that token's self-attention keys and values to a
/// per-beam cache; [`Scorer::reorder`] gathers the cache rows (and the beams' query memory) of
/// the surviving beams, so a beam's state follows it as beams are pruned or split. All beams of
/// all queries go through the decoder as one batch.
///
/// The log-probabilities equal those of recomputing the whole prefix with
/// [`Generator::log_probs`] (up to float rounding; tested).
#[derive(Debug)]
pub struct GeneratorScorer<'g> {
    generator: &'g Generator,
    trie: &'g IdTrie,
    n_queries: usize,
    /// The dense head on the host: projected queries `[n_queries, width]`, the item vectors'
    /// running sums in leaf order, and the scale.
    dense: Option<HostDense>,
    /// Cross-attention keys/values per decoder layer, one row per query.
    query_cross: Vec<CrossKv>,
    /// The same, one row per live beam.
    beam_cross: Vec<CrossKv>,
    /// Self-attention cache per decoder layer, one row per live beam.
    caches: Vec<Option<Kv>>,
    /// Number of live beams the state holds rows for.
    n_beams: usize,
    /// Next position the state expects.
    position: usize,
}

#[derive(Debug)]
struct HostDense {
    projected: Vec<f32>,
    sums: Arc<Vec<f32>>,
    scale: f32,
    subtree_prior: bool,
}

impl<'g> GeneratorScorer<'g> {
    pub(crate) fn new(
        generator: &'g Generator,
        trie: &'g IdTrie,
        queries: &[f32],
        n: usize,
        sums: Option<Arc<Vec<f32>>>,
    ) -> Result<Self> {
        let n_layers = generator.config.n_decoder_layers;
        let (query_cross, dense) = if n == 0 {
            (Vec::new(), None)
        } else {
            let q = generator.query_tensor(queries, n);
            let dense = match (generator.model.dense(), sums) {
                (Some(head), Some(sums)) => Some(HostDense {
                    projected: to_f32(head.project(q.clone()))?,
                    sums,
                    scale: to_f32(head.scale())?[0],
                    subtree_prior: head.subtree_prior,
                }),
                _ => None,
            };
            let layers = generator.model.encode(q);
            (generator.model.cross(&layers), dense)
        };
        Ok(Self {
            generator,
            trie,
            dense,
            n_queries: n,
            query_cross,
            beam_cross: Vec::new(),
            caches: vec![None; n_layers],
            n_beams: 0,
            position: 0,
        })
    }

    fn rows(&self, rows: &[usize]) -> Tensor<1, Int> {
        let values: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        int_tensor(&values, [rows.len()], &self.generator.device)
    }
}

impl GeneratorScorer<'_> {
    /// A position with the dense head: each beam's children gain their subtree-centroid scores
    /// `(scale W q) . m - scale |m|^2 / 2` and are normalised among themselves, as in training.
    fn score_children(
        &self,
        step: &Step<'_>,
        dense: &HostDense,
        logits: Tensor<3>,
        out: &mut [f32],
    ) -> Result<()> {
        let vocab = self.generator.dims.vocab_size;
        let width = self.generator.dims.query_width;
        let raw = to_f32(logits)?;
        out.fill(f32::NEG_INFINITY);
        let mut mean = vec![0.0f32; width];
        for (b, &node) in step.nodes.iter().enumerate() {
            let q = &dense.projected[step.queries[b] * width..(step.queries[b] + 1) * width];
            let kids = self.trie.children(node);
            let row = &mut out[b * vocab..(b + 1) * vocab];
            let mut max = f32::NEG_INFINITY;
            for (j, &t) in kids.tokens().iter().enumerate() {
                let leaves = self.trie.leaf_range(kids.node(j));
                let count = leaves.len().max(1) as f32;
                let hi = &dense.sums[leaves.end * width..(leaves.end + 1) * width];
                let lo = &dense.sums[leaves.start * width..(leaves.start + 1) * width];
                mean.iter_mut().zip(hi.iter().zip(lo)).for_each(|(m, (h, l))| *m = (h - l) / count);
                let dot: f32 = mean.iter().zip(q).map(|(m, x)| m * x).sum();
                let norm: f32 = mean.iter().map(|m| m * m).sum();
                let prior = if dense.subtree_prior { count.ln() } else { 0.0 };
                let score = raw[b * vocab + t as usize] + dot - 0.5 * dense.scale * norm + prior;
                row[t as usize] = score;
                max = max.max(score);
            }
            // log-softmax over the beam's children
            let sum: f32 = kids.tokens().iter().map(|&t| (row[t as usize] - max).exp()).sum();
            let lse = max + sum.ln();
            for &t in kids.tokens() {
                row[t as usize] -= lse;
            }
        }
        Ok(())
    }
}

impl Scorer for GeneratorScorer<'_> {
    type Error = Error;

    fn vocab_size(&self) -> usize {
        self.generator.dims.vocab_size
    }

    fn n_queries(&self) -> usize {
        self.n_queries
    }

    fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<()> {
        let vocab = self.generator.dims.vocab_size;
        let n_beams = step.n_beams();
        if step.queries.len() != n_beams || out.len() != n_beams * vocab {
            return Err(Error::protocol(format!(
                "{} beams, {} query indices, output of {} values (vocabulary {vocab})",
                n_beams,
                step.queries.len(),
                out.len()
            )));
        }
        if step.position >= self.generator.dims.id_len {
            return Err(Error::protocol(format!(
                "position {} past the identifier length {}",
                step.position, self.generator.dims.id_len
            )));
        }
        if let Some(&q) = step.queries.iter().find(|&&q| q >= self.n_queries) {
            return Err(Error::protocol(format!("query {q} of a batch of {}", self.n_queries)));
        }
        if let Some(&token) = step.tokens.iter().find(|t| **t as usize >= vocab) {
            return Err(Error::UnknownToken {
                what: "scorer step",
                token,
                position: step.position,
                vocab_size: vocab,
            });
        }
        if step.nodes.len() != n_beams {
            return Err(Error::protocol(format!(
                "{} beams but {} trie nodes",
                n_beams,
                step.nodes.len()
            )));
        }
        if n_beams == 0 {
            return Ok(());
        }
        if step.position == 0 {
            // A new search: every beam starts from its query's memory and an empty cache.
            let rows = self.rows(step.queries);
            self.beam_cross = self.query_cross.iter().map(|c| c.select(&rows)).collect();
            self.caches.iter_mut().for_each(|c| *c = None);
        } else if step.position != self.position || n_beams != self.n_beams {
            return Err(Error::protocol(format!(
                "step at position {} with {n_beams} beams, but the cache holds position {} with {} beams",
                step.position, self.position, self.n_beams
            )));
        }
        let tokens: Vec<i32> = step.tokens.iter().map(|&t| t as i32).collect();
        let tokens = int_tensor(&tokens, [n_beams, 1], &self.generator.device);
        let logits = self.generator.model.decode_step(
            &self.beam_cross,
            tokens,
            step.position,
            &mut self.caches,
        );
        let logits = self.generator.model.finish_logits(logits, step.position);
        match &self.dense {
            Some(dense) => self.score_children(step, dense, logits, out)?,
            None => out.copy_from_slice(&to_f32(log_softmax(logits, 2))?),
        }
        self.n_beams = n_beams;
        self.position = step.position + 1;
        Ok(())
    }

    fn reorder(&mut self, parents: &[usize]) -> Result<()> {
        if let Some(&p) = parents.iter().find(|&&p| p >= self.n_beams) {
            return Err(Error::protocol(format!("parent {p} of {} live beams", self.n_beams)));
        }
        if parents.is_empty() {
            self.beam_cross.clear();
            self.caches.iter_mut().for_each(|c| *c = None);
            self.n_beams = 0;
            return Ok(());
        }
        let rows = self.rows(parents);
        self.beam_cross = self.beam_cross.iter().map(|c| c.select(&rows)).collect();
        for cache in &mut self.caches {
            *cache = cache.as_ref().map(|kv| kv.select(&rows));
        }
        self.n_beams = parents.len();
        Ok(())
    }
}
