//! The interface between the beam search and a generator.

use cart_ids::{Node, Token};

/// One decoding step's input, as [`Scorer::score`] receives it.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// Identifier position being decoded: the number of tokens every live beam already holds.
    pub position: usize,
    /// `queries[b]`: the query (index into the scorer's batch) that live beam `b` belongs to.
    pub queries: &'a [usize],
    /// `tokens[b]`: the token beam `b` appended last ([`cart_ids::IdLayout::BOS`] at position 0).
    pub tokens: &'a [Token],
    /// `nodes[b]`: the trie node of beam `b`'s prefix ([`Node::ROOT`] at position 0), so a
    /// scorer can look at the identifiers (and, at the last position, the items) a beam can
    /// still reach.
    pub nodes: &'a [Node],
}

impl Step<'_> {
    /// Number of live beams.
    pub fn n_beams(&self) -> usize {
        self.tokens.len()
    }
}

/// A generator seen from the beam search: next-token log-probabilities for live beams, with
/// incremental state (a key/value cache) that follows the beams.
///
/// The search drives it as follows, for a batch of `n_queries` queries the scorer was prepared
/// for (e.g. whose encoder outputs it holds):
///
/// 1. position 0: one beam per query, `queries = [0, 1, .., n_queries - 1]`, every token BOS;
/// 2. [`Scorer::score`] fills `out` (`n_beams * vocab_size`, row-major) with log-probabilities;
/// 3. the search keeps the best extensions and calls [`Scorer::reorder`] with, for every new beam,
///    the old beam it extends. The scorer gathers its per-beam state accordingly (rows may repeat
///    or vanish), then step 2 runs again with the new beams' last tokens.
///
/// A scorer only ever sees one new token per beam per step, so decoding is incremental.
pub trait Scorer {
    /// The scorer's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Width of each row [`Scorer::score`] writes; must equal the layout's vocabulary size.
    fn vocab_size(&self) -> usize;

    /// Number of queries in the batch this scorer was prepared for.
    fn n_queries(&self) -> usize;

    /// Writes the next-token log-probabilities of every live beam into `out`
    /// (`step.n_beams() * vocab_size` values). It must write every value: the buffer is reused
    /// between steps. Only the tokens the trie allows are read.
    ///
    /// # Errors
    /// Whatever the model reports; the search stops and returns it as [`crate::Error::Scorer`].
    fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error>;

    /// Keeps the per-beam state of old beam `parents[i]` as new beam `i`, for every `i`.
    ///
    /// # Errors
    /// As [`Scorer::score`].
    fn reorder(&mut self, parents: &[usize]) -> Result<(), Self::Error>;
}
