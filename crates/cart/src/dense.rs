//! The query-space side of an index: supervised centroids, the generator's dense-head tables,
//! and the fused score.

use cart_search::{DenseIndex, Hit, RetrievalMetrics, evaluate};
use ndarray::{Array2, ArrayView2};

use crate::rows::{check_finite, expect_dim, flat};
use crate::{Error, Result};

/// `lambda` of the fused score when fit had no validation split to pick it on.
pub const DEFAULT_FUSE_LAMBDA: f64 = 0.05;

/// The values `lambda` is picked from on the validation split.
pub(crate) const LAMBDA_GRID: [f64; 11] =
    [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Each item's *supervised centroid*: its vector in the query space plus the vectors of all
/// its training queries, normalised (items are normalised first, so an item counts as one
/// more query). This is the baseline a learned retriever should beat: cosine search over these
/// centroids uses exactly the generator's training pairs.
///
/// ```
/// use ndarray::array;
///
/// let items = array![[1.0, 0.0], [0.0, 1.0]];
/// let queries = array![[0.0, 1.0], [0.0, 2.0]]; // both ask for item 0
/// let c = cart::supervised_centroids(items.view(), queries.view(), &[0, 0])?;
/// let (x, y) = (c[[0, 0]], c[[0, 1]]); // normalise([1, 0] + [0, 1] + [0, 2])
/// assert!((x - 1.0 / 10f32.sqrt()).abs() < 1e-6 && (y - 3.0 / 10f32.sqrt()).abs() < 1e-6);
/// assert_eq!(c.row(1).to_vec(), vec![0.0, 1.0]); // no query: the item's own direction
/// # Ok::<(), cart::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::DimMismatch`] if the widths differ, [`Error::LengthMismatch`] if `query_items`
/// does not match `queries`, [`Error::UnknownItem`] for an item past `items.len()`,
/// [`Error::NonFinite`] for NaN or inf.
pub fn supervised_centroids(
    items: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    query_items: &[u32],
) -> Result<Array2<f32>> {
    let width = items.ncols();
    expect_dim(queries, "training queries", width)?;
    check_finite(items, "item vectors")?;
    check_finite(queries, "training queries")?;
    let out = centroids(Some(&flat(items)), items.nrows(), &flat(queries), query_items, width)?;
    Array2::from_shape_vec((items.nrows(), width), out).map_err(|_| Error::DimMismatch {
        what: "supervised centroids",
        got: 0,
        expected: width,
    })
}

/// [`supervised_centroids`] with optional item vectors (without: the normalised mean of each
/// item's training queries; zero for an item without any).
pub(crate) fn centroids(
    items: Option<&[f32]>,
    n_items: usize,
    queries: &[f32],
    query_items: &[u32],
    width: usize,
) -> Result<Vec<f32>> {
    if queries.len() != query_items.len() * width {
        return Err(Error::LengthMismatch {
            what: "training queries and their items",
            left: queries.len() / width.max(1),
            right: query_items.len(),
        });
    }
    let mut out = match items {
        Some(v) => {
            let mut v = v.to_vec();
            v.chunks_exact_mut(width).for_each(normalise);
            v
        }
        None => vec![0.0; n_items * width],
    };
    for (q, &item) in queries.chunks_exact(width).zip(query_items) {
        let i = item as usize;
        if i >= n_items {
            return Err(Error::UnknownItem { item, n_items });
        }
        out[i * width..(i + 1) * width].iter_mut().zip(q).for_each(|(o, x)| *o += x);
    }
    out.chunks_exact_mut(width).for_each(normalise);
    Ok(out)
}

/// The fused ranking of each query's candidates: `cos(q, item) + lambda * log p`, best first,
/// at most `k`. Candidates are distinct items (the beam search's guarantee).
pub(crate) fn fuse(
    dense: &DenseIndex,
    queries: ArrayView2<'_, f32>,
    candidates: &[Vec<Hit>],
    lambda: f64,
    k: usize,
) -> Result<Vec<Vec<Hit>>> {
    let reranked = dense.rerank(queries, candidates)?;
    Ok(reranked
        .into_iter()
        .zip(candidates)
        .map(|(cos, generated)| {
            let mut hits: Vec<Hit> = cos
                .iter()
                .filter_map(|c| {
                    let lp = generated.iter().find(|g| g.item == c.item)?.score;
                    Some(Hit { item: c.item, score: c.score + (lambda * f64::from(lp)) as f32 })
                })
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
            hits.truncate(k);
            hits
        })
        .collect())
}

/// Whether the pair (`query`, `item`) measures retrieval: its query is not the item's own
/// vector in `own` (unit rows of `width`; cosine below 0.9999). An item past `own` counts as
/// informative.
pub(crate) fn informative(query: &[f32], item: u32, own: &[f32], width: usize) -> bool {
    let Some(v) = own.get(item as usize * width..(item as usize + 1) * width) else {
        return true;
    };
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = query.iter().zip(v).map(|(a, b)| a * b).sum::<f32>() / norm.max(f32::MIN_POSITIVE);
    cos < 0.9999
}

/// How fused-score metrics at k = 1 and 10 are compared: Recall@1, then MRR@10.
pub(crate) fn fused_key(m: &[RetrievalMetrics]) -> (f64, f64) {
    (m[0].recall, m[1].mrr)
}

/// What [`pick_lambda`] found: the best `lambda`, its metrics at k = 1 and 10, and the
/// Recall@1 of every `lambda` tried, in grid order.
pub(crate) struct LambdaPick {
    pub lambda: f64,
    pub metrics: Vec<RetrievalMetrics>,
    pub curve: Vec<(f64, f64)>,
}

/// The `lambda` of `grid` with the best Recall@1 (ties: MRR@10, then the smaller
/// lambda) on validation candidates.
pub(crate) fn pick_lambda(
    dense: &DenseIndex,
    queries: ArrayView2<'_, f32>,
    candidates: &[Vec<Hit>],
    items: &[u32],
    grid: &[f64],
) -> Result<LambdaPick> {
    let relevant: Vec<Vec<u32>> = items.iter().map(|&i| vec![i]).collect();
    let mut best: Option<(f64, Vec<RetrievalMetrics>)> = None;
    let mut curve = Vec::with_capacity(grid.len());
    for &lambda in grid {
        let hits = fuse(dense, queries, candidates, lambda, 10)?;
        let m = evaluate(&hits, &relevant, &[1, 10])?;
        curve.push((lambda, m[0].recall));
        if best.as_ref().is_none_or(|(_, b)| fused_key(&m) > fused_key(b)) {
            best = Some((lambda, m));
        }
    }
    let (lambda, metrics) = best.ok_or(Error::EmptyData { what: "lambda grid" })?;
    Ok(LambdaPick { lambda, metrics, curve })
}
