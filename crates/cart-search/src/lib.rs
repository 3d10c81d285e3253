//! Retrieval for generative retrieval (CART, Fang et al., ACL 2025): beam search constrained by
//! the identifier trie, and the exact dense search it is measured against.
//!
//! - [`Scorer`]: what a generator implements: next-token log-probabilities for a batch of live
//!   beams, and a per-beam cache that [`Scorer::reorder`] keeps in step with the beams.
//! - [`BeamSearch`]: batched, incremental, trie-constrained beam search returning ranked
//!   [`Hit`]s; never an invalid or repeated item.
//! - [`DenseIndex`]: exact top-k by cosine or inner product (rayon), and [`DenseIndex::rerank`]
//!   to re-score a generator's beams with the original vectors.
//! - [`evaluate`]: Recall@K, hit rate, MRR@K and nDCG@K as [`RetrievalMetrics`].
//!
//! The crate knows generators only through [`Scorer`]: it has no dependency on burn.
//!
//! ```
//! use cart_ids::{IdLayout, assign_ids};
//! use cart_search::{BeamSearch, BeamSearchConfig, DenseIndex, Metric, Scorer, Step, evaluate};
//!
//! // four items in 2-d, two coarse clusters with one fine level of two codes
//! let items = vec![1.0, 0.1, 1.0, -0.1, -1.0, 0.1, -1.0, -0.1];
//! let layout = IdLayout::new(2, 1, 2, 1)?;
//! let trie = assign_ids(&layout, &[0, 0, 1, 1], &[0, 1, 0, 1])?.to_trie()?;
//!
//! // a stand-in generator that knows the query's item: it scores that item's tokens high
//! struct Oracle { targets: Vec<Vec<u32>>, vocab: usize }
//! impl Scorer for Oracle {
//!     type Error = std::convert::Infallible;
//!     fn vocab_size(&self) -> usize { self.vocab }
//!     fn n_queries(&self) -> usize { self.targets.len() }
//!     fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
//!         for (b, row) in out.chunks_mut(self.vocab).enumerate() {
//!             let want = self.targets[step.queries[b]][step.position];
//!             for (t, x) in row.iter_mut().enumerate() {
//!                 *x = if t as u32 == want { -0.1 } else { -3.0 };
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn reorder(&mut self, _parents: &[usize]) -> Result<(), Self::Error> { Ok(()) }
//! }
//! let targets = vec![trie.id_of(2)?.tokens().to_vec(), trie.id_of(1)?.tokens().to_vec()];
//! let mut oracle = Oracle { targets, vocab: layout.vocab_size() };
//! let hits = BeamSearch::new(&trie, BeamSearchConfig::default()).search(&mut oracle)?;
//! assert_eq!(hits[0][0].item, 2);
//! assert_eq!(hits[1][0].item, 1);
//!
//! // the dense baseline, and a re-rank of the beams with the original vectors
//! let dense = DenseIndex::new(ndarray::ArrayView2::from_shape((4, 2), &items)?, Metric::Cosine)?;
//! let queries = ndarray::array![[-1.0, 0.12], [1.0, -0.12]];
//! let reranked = dense.rerank(queries.view(), &hits)?;
//! let m = evaluate(&reranked, &[vec![2], vec![1]], &[1])?;
//! assert_eq!(m[0].recall, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! No optional features. Dense search uses rayon's global thread pool.

mod beam;
mod dense;
mod error;
mod metrics;
mod scorer;

pub use beam::{BeamSearch, BeamSearchConfig, Hit};
pub use dense::{DenseIndex, Metric};
pub use error::{Error, Result};
pub use metrics::{PairedComparison, RetrievalMetrics, compare_at, evaluate};
/// The matrix type of every public boundary ([`ndarray::ArrayView2`], one row per vector).
pub use ndarray;
pub use scorer::{Scorer, Step};
