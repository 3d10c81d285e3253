//! Trie-constrained beam search over identifier tokens.

use std::cmp::Ordering;

use cart_ids::{IdLayout, IdTrie, Node, Token};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scorer::{Scorer, Step};

/// A retrieved item with its score (summed log-probability for the generator, similarity for
/// dense search).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The item key.
    pub item: u32,
    /// Its score; higher is better.
    pub score: f32,
}

/// Settings of [`BeamSearch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeamSearchConfig {
    /// Beams kept per query at every inner position. Default: 10.
    pub beam_width: usize,
    /// Items returned per query. The last position keeps the best `top_k` complete identifiers
    /// over all extensions of the live beams, so `top_k` may exceed `beam_width`. Default: 10.
    pub top_k: usize,
}

impl Default for BeamSearchConfig {
    fn default() -> Self {
        Self { beam_width: 10, top_k: 10 }
    }
}

impl BeamSearchConfig {
    /// Sets [`BeamSearchConfig::beam_width`].
    #[must_use]
    pub fn with_beam_width(mut self, beam_width: usize) -> Self {
        self.beam_width = beam_width;
        self
    }

    /// Sets [`BeamSearchConfig::top_k`].
    #[must_use]
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    fn validate(&self) -> Result<()> {
        let zero =
            |name| Err(Error::InvalidParameter { name, reason: "must be at least 1".into() });
        if self.beam_width == 0 {
            return zero("beam_width");
        }
        if self.top_k == 0 {
            return zero("top_k");
        }
        Ok(())
    }
}

/// Beam search constrained by an [`IdTrie`]: batched over queries, incremental (the scorer's
/// cache follows the beams), and exact about validity.
///
/// At every position each live beam may only be extended by a token its trie node allows, so
/// every returned item is a complete identifier of the trie, and as distinct beams are distinct
/// prefixes, no item is returned twice. A query whose trie holds fewer than `top_k` reachable
/// identifiers gets fewer hits; that is not an error.
///
/// ```
/// use cart_ids::{IdLayout, assign_ids};
/// use cart_search::{BeamSearch, BeamSearchConfig, Scorer, Step};
///
/// // a toy scorer that prefers high token numbers, the same for every query
/// struct Greedy(usize);
/// impl Scorer for Greedy {
///     type Error = std::convert::Infallible;
///     fn vocab_size(&self) -> usize { self.0 }
///     fn n_queries(&self) -> usize { 2 }
///     fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
///         for row in out.chunks_mut(self.0) {
///             for (t, x) in row.iter_mut().enumerate() { *x = -1.0 / (1.0 + t as f32); }
///         }
///         Ok(())
///     }
///     fn reorder(&mut self, _parents: &[usize]) -> Result<(), Self::Error> { Ok(()) }
/// }
///
/// let layout = IdLayout::new(4, 2, 8, 2)?;
/// let ids = assign_ids(&layout, &[0, 3, 3], &[1, 2, 7, 7, 0, 0])?;
/// let trie = ids.to_trie()?;
/// let search = BeamSearch::new(&trie, BeamSearchConfig::default().with_top_k(2));
/// let hits = search.search(&mut Greedy(layout.vocab_size()))?;
/// assert_eq!(hits.len(), 2); // one list per query
/// assert_eq!(hits[0].iter().map(|h| h.item).collect::<Vec<_>>(), vec![1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BeamSearch<'t> {
    trie: &'t IdTrie,
    config: BeamSearchConfig,
}

/// The live beams of one step, as parallel arrays grouped by query.
#[derive(Debug, Default)]
struct Beams {
    queries: Vec<usize>,
    tokens: Vec<Token>,
    nodes: Vec<Node>,
    scores: Vec<f32>,
    /// `starts[q]..starts[q + 1]`: the beams of query `q`.
    starts: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    parent: u32,
    child: u32,
}

/// Best first; ties by parent beam then child order, so results are deterministic.
fn better(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.parent.cmp(&b.parent)).then(a.child.cmp(&b.child))
}

impl<'t> BeamSearch<'t> {
    /// A search over `trie`'s identifiers.
    pub fn new(trie: &'t IdTrie, config: BeamSearchConfig) -> Self {
        Self { trie, config }
    }

    /// The settings.
    pub fn config(&self) -> &BeamSearchConfig {
        &self.config
    }

    /// Decodes every query of `scorer`'s batch; one ranked hit list per query, best first.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero beam width or top-k, [`Error::VocabMismatch`] if
    /// the scorer's vocabulary is not the layout's, [`Error::NanScore`] if it scores an allowed
    /// token NaN, [`Error::Scorer`] if it fails.
    pub fn search<S: Scorer>(&self, scorer: &mut S) -> Result<Vec<Vec<Hit>>> {
        self.config.validate()?;
        let layout = self.trie.layout();
        let vocab = layout.vocab_size();
        if scorer.vocab_size() != vocab {
            return Err(Error::VocabMismatch { expected: vocab, got: scorer.vocab_size() });
        }
        let n_queries = scorer.n_queries();
        let id_len = layout.id_len();
        let mut beams = Beams {
            queries: (0..n_queries).collect(),
            tokens: vec![IdLayout::BOS; n_queries],
            nodes: vec![Node::ROOT; n_queries],
            scores: vec![0.0; n_queries],
            starts: (0..=n_queries).collect(),
        };
        let mut logp: Vec<f32> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut next = Beams::default();
        let mut parents: Vec<usize> = Vec::new();
        let mut results: Vec<Vec<Hit>> = vec![Vec::new(); n_queries];

        for position in 0..id_len {
            let last = position + 1 == id_len;
            // no step can keep more candidates than the trie has identifiers: clamping keeps the
            // buffer arithmetic below from overflowing for absurd widths (e.g. usize::MAX)
            let keep = if last { self.config.top_k } else { self.config.beam_width };
            let keep = keep.min(self.trie.len().max(1));
            let n_beams = beams.tokens.len();
            if n_beams == 0 {
                break; // an empty trie
            }
            // grown, never refilled: the scorer writes every value (no per-step memset)
            if logp.len() < n_beams * vocab {
                logp.resize(n_beams * vocab, f32::NEG_INFINITY);
            }
            let step = Step {
                position,
                queries: &beams.queries,
                tokens: &beams.tokens,
                nodes: &beams.nodes,
            };
            let out = &mut logp[..n_beams * vocab];
            scorer.score(&step, out).map_err(|e| Error::Scorer(Box::new(e)))?;

            next.clear();
            parents.clear();
            next.starts.push(0);
            for (q, found) in results.iter_mut().enumerate() {
                candidates.clear();
                // streaming top-`keep`: once the buffer has been cut, candidates below the
                // `keep`-th best so far are skipped without being stored
                let mut floor = f32::NEG_INFINITY;
                let cap = keep.saturating_mul(4).max(64);
                for b in beams.starts[q]..beams.starts[q + 1] {
                    let kids = self.trie.children(beams.nodes[b]);
                    let row = &logp[b * vocab..(b + 1) * vocab];
                    let base = beams.scores[b];
                    for (j, &t) in kids.tokens().iter().enumerate() {
                        let lp = row[t as usize];
                        if lp.is_nan() {
                            return Err(Error::NanScore { position, beam: b, token: t });
                        }
                        let score = base + lp;
                        if score < floor {
                            continue;
                        }
                        candidates.push(Candidate { score, parent: b as u32, child: j as u32 });
                        if candidates.len() == cap {
                            candidates.select_nth_unstable_by(keep - 1, better);
                            candidates.truncate(keep);
                            floor =
                                candidates.iter().map(|c| c.score).fold(f32::INFINITY, f32::min);
                        }
                    }
                }
                if candidates.len() > keep {
                    candidates.select_nth_unstable_by(keep - 1, better);
                    candidates.truncate(keep);
                }
                candidates.sort_unstable_by(better);
                for c in &candidates {
                    let b = c.parent as usize;
                    let kids = self.trie.children(beams.nodes[b]);
                    let node = kids.node(c.child as usize);
                    if last {
                        if let Some(item) = self.trie.item(node) {
                            found.push(Hit { item, score: c.score });
                        }
                    } else {
                        next.queries.push(q);
                        next.tokens.push(kids.tokens()[c.child as usize]);
                        next.nodes.push(node);
                        next.scores.push(c.score);
                        parents.push(b);
                    }
                }
                next.starts.push(next.tokens.len());
            }
            if last {
                break;
            }
            scorer.reorder(&parents).map_err(|e| Error::Scorer(Box::new(e)))?;
            std::mem::swap(&mut beams, &mut next);
        }
        Ok(results)
    }
}

impl Beams {
    fn clear(&mut self) {
        self.queries.clear();
        self.tokens.clear();
        self.nodes.clear();
        self.scores.clear();
        self.starts.clear();
    }
}
