//! [`GeneratorScorer`]: incremental decoding with a key/value cache that follows the beams.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::IdTrie;
use cart_search::{Scorer, Step};

use crate::generator::{Generator, int_tensor, to_f32};
use crate::model::{CrossKv, Kv};
use crate::{Error, Result};

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
    /// The dense head's projected queries, `[n_queries, width]`.
    projected: Option<Tensor<2>>,
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

impl<'g> GeneratorScorer<'g> {
    pub(crate) fn new(
        generator: &'g Generator,
        trie: &'g IdTrie,
        queries: &[f32],
        n: usize,
    ) -> Self {
        let n_layers = generator.config.n_decoder_layers;
        let (query_cross, projected) = if n == 0 {
            (Vec::new(), None)
        } else {
            let q = generator.query_tensor(queries, n);
            let projected = generator.model.dense().map(|h| h.project(q.clone()));
            let layers = generator.model.encode(q);
            (generator.model.cross(&layers), projected)
        };
        Self {
            generator,
            trie,
            projected,
            n_queries: n,
            query_cross,
            beam_cross: Vec::new(),
            caches: vec![None; n_layers],
            n_beams: 0,
            position: 0,
        }
    }

    fn rows(&self, rows: &[usize]) -> Tensor<1, Int> {
        let values: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        int_tensor(&values, [rows.len()], &self.generator.device)
    }
}

impl GeneratorScorer<'_> {
    /// The last position with the dense head: each beam's children are items; their scores
    /// are the decoder's plus `scale * (W q) . e_item`, normalised over the children.
    fn score_items(
        &self,
        step: &Step<'_>,
        projected: Tensor<2>,
        head: &crate::model::DenseHead,
        logits: Tensor<3>,
        out: &mut [f32],
    ) -> Result<()> {
        let vocab = self.generator.config.vocab_size;
        let n_items = self.generator.config.n_items;
        let raw = to_f32(logits)?;
        let mut beams = Vec::new();
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for (b, &node) in step.nodes.iter().enumerate() {
            let kids = self.trie.children(node);
            for (j, &t) in kids.tokens().iter().enumerate() {
                if let Some(item) = self.trie.item(kids.node(j))
                    && (item as usize) < n_items
                {
                    beams.push(b as i32);
                    items.push(item as i32);
                    slots.push(b * vocab + t as usize);
                }
            }
        }
        out.fill(f32::NEG_INFINITY);
        if slots.is_empty() {
            return Ok(());
        }
        let device = &self.generator.device;
        let q = projected.select(0, int_tensor(&beams, [beams.len()], device));
        let v = head.item_table().select(0, int_tensor(&items, [items.len()], device));
        let dots = to_f32((q * v).sum_dim(1))?;
        for (&slot, dot) in slots.iter().zip(dots) {
            out[slot] = raw[slot] + dot;
        }
        // log-softmax over each beam's children
        let mut start = 0;
        while start < slots.len() {
            let b = beams[start];
            let mut end = start;
            while end < slots.len() && beams[end] == b {
                end += 1;
            }
            let max = slots[start..end].iter().map(|&s| out[s]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = slots[start..end].iter().map(|&s| (out[s] - max).exp()).sum();
            let lse = max + sum.ln();
            for &s in &slots[start..end] {
                out[s] -= lse;
            }
            start = end;
        }
        Ok(())
    }
}

impl Scorer for GeneratorScorer<'_> {
    type Error = Error;

    fn vocab_size(&self) -> usize {
        self.generator.config.vocab_size
    }

    fn n_queries(&self) -> usize {
        self.n_queries
    }

    fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<()> {
        let vocab = self.generator.config.vocab_size;
        let n_beams = step.n_beams();
        if step.queries.len() != n_beams || out.len() != n_beams * vocab {
            return Err(Error::protocol(format!(
                "{} beams, {} query indices, output of {} values (vocabulary {vocab})",
                n_beams,
                step.queries.len(),
                out.len()
            )));
        }
        if step.position >= self.generator.config.id_len {
            return Err(Error::protocol(format!(
                "position {} past the identifier length {}",
                step.position, self.generator.config.id_len
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
        let query_rows = self.rows(step.queries);
        let projected = self.projected.as_ref().map(|p| p.clone().select(0, query_rows));
        let logits = self.generator.model.finish_logits(logits, projected.as_ref(), step.position);
        let last = step.position + 1 == self.generator.config.id_len;
        match (last, projected, self.generator.model.dense()) {
            (true, Some(projected), Some(head)) => {
                self.score_items(step, projected, head, logits, out)?
            }
            _ => out.copy_from_slice(&to_f32(log_softmax(logits, 2))?),
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
