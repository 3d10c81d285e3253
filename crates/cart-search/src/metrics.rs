//! Retrieval metrics: Recall@K, hit rate, MRR@K and nDCG@K with one or many relevant items.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::beam::Hit;
use crate::error::{Error, Result};

/// Mean retrieval metrics at one cut-off `k`, from [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// The cut-off.
    pub k: usize,
    /// Queries averaged over.
    pub n_queries: usize,
    /// Recall@K: share of a query's relevant items found in its top `k`, averaged over queries.
    /// With one relevant item per query this is the R@K of the retrieval literature.
    pub recall: f64,
    /// Share of queries with at least one relevant item in the top `k` (equal to `recall` with one
    /// relevant item per query; the R@K of image-to-text retrieval with several captions).
    pub hit_rate: f64,
    /// MRR@K: mean of 1 / rank of the first relevant item, 0 if none is in the top `k`.
    pub mrr: f64,
    /// nDCG@K with binary gains: DCG over the top `k`, divided by the DCG of a perfect ranking.
    pub ndcg: f64,
}

impl fmt::Display for RetrievalMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "R@{k} {:.4}  hit@{k} {:.4}  MRR@{k} {:.4}  nDCG@{k} {:.4}  ({} queries)",
            self.recall,
            self.hit_rate,
            self.mrr,
            self.ndcg,
            self.n_queries,
            k = self.k
        )
    }
}

/// Scores ranked hit lists against the relevant items of each query, at every cut-off in `ks`.
///
/// `ranked[q]` is query `q`'s result, best first; `relevant[q]` its relevant items (order does
/// not matter). A repeated item in a ranking counts once, at its first rank.
///
/// ```
/// use cart_search::{Hit, evaluate};
///
/// let hit = |item| Hit { item, score: 0.0 };
/// let ranked = vec![vec![hit(3), hit(1)], vec![hit(5), hit(4)]];
/// let relevant = vec![vec![1], vec![9]];
/// let m = &evaluate(&ranked, &relevant, &[1, 2])?;
/// assert_eq!((m[0].recall, m[1].recall), (0.0, 0.5));
/// assert_eq!(m[1].mrr, 0.25); // (1/2 + 0) / 2
/// # Ok::<(), cart_search::Error>(())
/// ```
///
/// # Errors
/// [`Error::LengthMismatch`] if the two lists differ in length, [`Error::NoRelevant`] for a query
/// without relevant items, [`Error::InvalidParameter`] for `k == 0` or no query at all.
pub fn evaluate<R, T>(ranked: &[R], relevant: &[T], ks: &[usize]) -> Result<Vec<RetrievalMetrics>>
where
    R: AsRef<[Hit]>,
    T: AsRef<[u32]>,
{
    if ranked.len() != relevant.len() {
        return Err(Error::LengthMismatch {
            what: "rankings and relevance lists",
            left: ranked.len(),
            right: relevant.len(),
        });
    }
    if ranked.is_empty() {
        return Err(Error::InvalidParameter {
            name: "ranked",
            reason: "no query to evaluate".into(),
        });
    }
    if ks.contains(&0) {
        return Err(Error::InvalidParameter { name: "ks", reason: "a cut-off of 0".into() });
    }
    let mut sums = vec![[0.0f64; 4]; ks.len()];
    let mut rel_sorted: Vec<u32> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    for (q, (hits, rel)) in ranked.iter().zip(relevant).enumerate() {
        rel_sorted.clear();
        rel_sorted.extend_from_slice(rel.as_ref());
        rel_sorted.sort_unstable();
        rel_sorted.dedup();
        if rel_sorted.is_empty() {
            return Err(Error::NoRelevant { query: q });
        }
        // ranks (0-based) of first occurrences of relevant items
        seen.clear();
        let mut rel_ranks: Vec<usize> = Vec::new();
        let mut rank = 0;
        for h in hits.as_ref() {
            if seen.contains(&h.item) {
                continue;
            }
            seen.push(h.item);
            if rel_sorted.binary_search(&h.item).is_ok() {
                rel_ranks.push(rank);
            }
            rank += 1;
        }
        for (s, &k) in sums.iter_mut().zip(ks) {
            let found: Vec<usize> = rel_ranks.iter().copied().filter(|&r| r < k).collect();
            let dcg: f64 = found.iter().map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
            let idcg: f64 =
                (0..rel_sorted.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
            s[0] += found.len() as f64 / rel_sorted.len() as f64;
            s[1] += f64::from(u8::from(!found.is_empty()));
            s[2] += found.first().map_or(0.0, |&r| 1.0 / (r + 1) as f64);
            s[3] += dcg / idcg;
        }
    }
    let n = ranked.len() as f64;
    Ok(ks
        .iter()
        .zip(sums)
        .map(|(&k, s)| RetrievalMetrics {
            k,
            n_queries: ranked.len(),
            recall: s[0] / n,
            hit_rate: s[1] / n,
            mrr: s[2] / n,
            ndcg: s[3] / n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(items: &[u32]) -> Vec<Hit> {
        items.iter().map(|&item| Hit { item, score: 0.0 }).collect()
    }

    #[test]
    fn hand_worked_many_relevant() {
        // relevant {1, 2}; ranking 1, 7, 2: found ranks 0 and 2
        let m = evaluate(&[hits(&[1, 7, 2])], &[vec![2, 1]], &[1, 3]).unwrap();
        assert!((m[0].recall - 0.5).abs() < 1e-12);
        assert!((m[0].ndcg - 1.0).abs() < 1e-12);
        assert!((m[1].recall - 1.0).abs() < 1e-12);
        assert!((m[1].mrr - 1.0).abs() < 1e-12);
        let idcg = 1.0 + 1.0 / 3f64.log2();
        let dcg = 1.0 + 1.0 / 4f64.log2();
        assert!((m[1].ndcg - dcg / idcg).abs() < 1e-12);
    }

    #[test]
    fn repeated_items_count_once() {
        let m = evaluate(&[hits(&[7, 7, 1])], &[vec![1]], &[2]).unwrap();
        assert!((m[0].recall - 1.0).abs() < 1e-12);
        assert!((m[0].mrr - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            evaluate(&[hits(&[1])], &[Vec::<u32>::new()], &[1]),
            Err(Error::NoRelevant { query: 0 })
        ));
        assert!(evaluate(&[hits(&[1])], &[vec![1], vec![2]], &[1]).is_err());
        assert!(evaluate(&[hits(&[1])], &[vec![1]], &[0]).is_err());
        assert!(evaluate::<Vec<Hit>, Vec<u32>>(&[], &[], &[1]).is_err());
    }
}
