//! Exact dense top-k search: the baseline generative retrieval is compared against, and the
//! re-ranker of its beams.

use std::cmp::Ordering;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::beam::Hit;
use crate::error::{Error, Result};

/// Similarity of [`DenseIndex`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cosine similarity: vectors are L2-normalised once, then compared by inner product.
    #[default]
    Cosine,
    /// Plain inner product.
    InnerProduct,
}

/// Exact top-k search over an item matrix, multi-threaded with rayon.
///
/// Items are the rows of an `[n_items, dim]` matrix; item keys are row numbers. Queries are
/// scored in blocks against every item, each item row read once per block.
///
/// ```
/// use cart_search::{DenseIndex, Metric};
/// use ndarray::array;
///
/// let items = array![[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]; // 3 items, dim 2
/// let index = DenseIndex::new(items.view(), Metric::Cosine)?;
/// let hits = index.search(array![[0.9, 0.1]].view(), 2)?;
/// assert_eq!(hits[0].iter().map(|h| h.item).collect::<Vec<_>>(), vec![0, 2]);
/// # Ok::<(), cart_search::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseIndex {
    dim: usize,
    metric: Metric,
    vectors: Vec<f32>,
}

/// Queries scored together against each item row.
const QUERY_BLOCK: usize = 8;

impl DenseIndex {
    /// An index over `vectors` (`[n_items, dim]`, copied).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `dim == 0`, [`Error::EmptyIndex`],
    /// [`Error::NonFinite`], and for cosine [`Error::ZeroVector`].
    pub fn new(vectors: ArrayView2<'_, f32>, metric: Metric) -> Result<Self> {
        let dim = vectors.ncols();
        let mut vectors: Vec<f32> = vectors.iter().copied().collect();
        check_shape(&vectors, dim)?;
        prepare(&mut vectors, dim, metric, "item")?;
        Ok(Self { dim, metric, vectors })
    }

    /// An index over vectors as [`DenseIndex::vector`] hands them out (for cosine: already
    /// normalised), taken as they are: a stored index reloads bit-identical, where
    /// [`DenseIndex::new`] would normalise every row again (and move it by an ulp).
    ///
    /// # Errors
    /// As [`DenseIndex::new`], and for cosine [`Error::InvalidParameter`] when a row's norm is
    /// not 1 (within 1e-3): the vectors were not prepared by a `DenseIndex`.
    pub fn from_prepared(vectors: Array2<f32>, metric: Metric) -> Result<Self> {
        let dim = vectors.ncols();
        let vectors: Vec<f32> = if vectors.is_standard_layout() {
            // contiguous from the first element's offset (an array sliced in place keeps the
            // dropped values in its buffer)
            let n = vectors.len();
            let (mut raw, offset) = vectors.into_raw_vec_and_offset();
            let start = offset.unwrap_or(0);
            raw.truncate(start + n);
            raw.drain(..start);
            raw
        } else {
            vectors.iter().copied().collect()
        };
        check_shape(&vectors, dim)?;
        for (index, row) in vectors.chunks_exact(dim).enumerate() {
            if row.iter().any(|x| !x.is_finite()) {
                return Err(Error::NonFinite { what: "item", index });
            }
            if metric == Metric::Cosine && (dot(row, row).sqrt() - 1.0).abs() > 1e-3 {
                return Err(Error::InvalidParameter {
                    name: "vectors",
                    reason: format!("row {index} is not normalised"),
                });
            }
        }
        Ok(Self { dim, metric, vectors })
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    /// Always false: an index holds at least one item.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The similarity.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The stored (for cosine: normalised) vector of `item`.
    pub fn vector(&self, item: u32) -> Option<&[f32]> {
        let i = item as usize;
        self.vectors.get(i * self.dim..(i + 1) * self.dim)
    }

    /// All stored (for cosine: normalised) vectors, `[len, dim]`.
    pub fn vectors(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.len(), self.dim), &self.vectors)
            .expect("the length is a multiple of dim (checked when built)")
    }

    /// The `k` best items of every query (`[n_queries, dim]`), best first; ties go to the
    /// lower item key. Fewer than `k` items gives them all.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`], [`Error::NonFinite`], [`Error::ZeroVector`] (cosine).
    pub fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<Hit>>> {
        let queries = self.prepare_queries(queries)?;
        let k = k.min(self.len());
        if k == 0 {
            return Ok(vec![Vec::new(); queries.len() / self.dim]);
        }
        let n_blocks = (queries.len() / self.dim).div_ceil(QUERY_BLOCK);
        // few queries: split the items too, so every core has work
        let n_shards = (rayon::current_num_threads() * 2).div_ceil(n_blocks.max(1)).min(self.len());
        let shard_len = self.len().div_ceil(n_shards);
        let per_block: Vec<Vec<Vec<Hit>>> = queries
            .par_chunks(QUERY_BLOCK * self.dim)
            .map(|block| {
                let shards: Vec<Vec<TopK>> = (0..n_shards)
                    .into_par_iter()
                    .map(|s| {
                        self.scan(block, s * shard_len, ((s + 1) * shard_len).min(self.len()), k)
                    })
                    .collect();
                let mut merged: Vec<TopK> =
                    (0..block.len() / self.dim).map(|_| TopK::new(k)).collect();
                for shard in shards {
                    for (m, t) in merged.iter_mut().zip(shard) {
                        for h in t.buf {
                            m.push(h.score, h.item);
                        }
                    }
                }
                merged.into_iter().map(TopK::into_sorted).collect()
            })
            .collect();
        Ok(per_block.into_iter().flatten().collect())
    }

    /// Scores items `lo..hi` against a block of queries.
    fn scan(&self, block: &[f32], lo: usize, hi: usize, k: usize) -> Vec<TopK> {
        let d = self.dim;
        let mut tops: Vec<TopK> = (0..block.len() / d).map(|_| TopK::new(k)).collect();
        for i in lo..hi {
            let item = &self.vectors[i * d..(i + 1) * d];
            for (q, top) in block.chunks_exact(d).zip(tops.iter_mut()) {
                top.push(dot(q, item), i as u32);
            }
        }
        tops
    }

    /// Appends the items of `other` (keys continue after this index's): `O(other)`, nothing
    /// is normalised again. Build `other` with [`DenseIndex::new`] first to validate new
    /// vectors without touching this index.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another width, [`Error::InvalidParameter`] for another
    /// metric or more than `u32::MAX` items; the index is then unchanged.
    pub fn append(&mut self, other: DenseIndex) -> Result<()> {
        if other.dim != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: other.dim });
        }
        if other.metric != self.metric {
            return Err(Error::InvalidParameter {
                name: "metric",
                reason: format!("{:?} index cannot take {:?} vectors", self.metric, other.metric),
            });
        }
        if u32::try_from(self.len() + other.len()).is_err() {
            return Err(Error::InvalidParameter {
                name: "vectors",
                reason: "more than u32::MAX items".into(),
            });
        }
        self.vectors.extend_from_slice(&other.vectors);
        Ok(())
    }

    /// Re-scores `hits` (for example a generator's beams) by this index's similarity to the
    /// queries, best first.
    ///
    /// # Errors
    /// As [`DenseIndex::search`], [`Error::LengthMismatch`] if `hits` has not one list per query,
    /// and [`Error::UnknownItem`] for an item outside the index.
    pub fn rerank(&self, queries: ArrayView2<'_, f32>, hits: &[Vec<Hit>]) -> Result<Vec<Vec<Hit>>> {
        let queries = self.prepare_queries(queries)?;
        let n_queries = queries.len() / self.dim;
        if hits.len() != n_queries {
            return Err(Error::LengthMismatch {
                what: "queries and hit lists",
                left: n_queries,
                right: hits.len(),
            });
        }
        hits.par_iter()
            .zip(queries.par_chunks(self.dim))
            .map(|(list, q)| {
                let mut out = list
                    .iter()
                    .map(|h| {
                        let v = self
                            .vector(h.item)
                            .ok_or(Error::UnknownItem { item: h.item, n_items: self.len() })?;
                        Ok(Hit { item: h.item, score: dot(q, v) })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.sort_by(rank);
                Ok(out)
            })
            .collect()
    }

    fn prepare_queries(&self, queries: ArrayView2<'_, f32>) -> Result<Vec<f32>> {
        if queries.ncols() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: queries.ncols() });
        }
        let mut q: Vec<f32> = queries.iter().copied().collect();
        prepare(&mut q, self.dim, self.metric, "query")?;
        Ok(q)
    }
}

/// A non-empty `[n, dim]` matrix with at most `u32::MAX` rows.
fn check_shape(vectors: &[f32], dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(Error::InvalidParameter { name: "dim", reason: "must be at least 1".into() });
    }
    if !vectors.len().is_multiple_of(dim) {
        return Err(Error::DimensionMismatch { expected: dim, got: vectors.len() % dim });
    }
    if vectors.is_empty() {
        return Err(Error::EmptyIndex);
    }
    u32::try_from(vectors.len() / dim).map_err(|_| Error::InvalidParameter {
        name: "vectors",
        reason: "more than u32::MAX items".into(),
    })?;
    Ok(())
}

/// Checks rows for non-finite values and, for cosine, normalises them.
fn prepare(rows: &mut [f32], dim: usize, metric: Metric, what: &'static str) -> Result<()> {
    for (index, row) in rows.chunks_exact_mut(dim).enumerate() {
        if row.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite { what, index });
        }
        if metric == Metric::Cosine {
            let norm = dot(row, row).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(Error::ZeroVector { what, index });
            }
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    Ok(())
}

/// Inner product with 8 independent accumulators, so the compiler vectorises it.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Best first, ties to the lower item.
fn rank(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

/// Streaming top-k: a buffer of up to `4k` hits, cut back to the best `k` when full.
struct TopK {
    k: usize,
    buf: Vec<Hit>,
    /// Score a hit must beat once the buffer has been cut (k-th best so far).
    floor: f32,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self { k, buf: Vec::with_capacity(4 * k), floor: f32::NEG_INFINITY }
    }

    #[inline]
    fn push(&mut self, score: f32, item: u32) {
        // equal scores may still win on the lower item key, so only strictly worse ones are cut
        if score < self.floor {
            return;
        }
        self.buf.push(Hit { item, score });
        if self.buf.len() == 4 * self.k {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, rank);
            self.buf.truncate(self.k);
            self.floor = self.buf.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        }
    }

    fn into_sorted(mut self) -> Vec<Hit> {
        self.cut();
        self.buf.sort_by(rank);
        self.buf
    }
}
