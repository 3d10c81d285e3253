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

/// Two retrievers compared query by query at one cut-off `k`, from [`compare_at`].
///
/// Two recalls a few queries apart say nothing on their own: what decides is how the queries on
/// which the two disagree split. `p_value` is McNemar's exact test: the two-sided probability,
/// were both retrievers equally good, of a split at least this uneven among the
/// `only_first + only_second` queries that only one of them gets right.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// The cut-off.
    pub k: usize,
    /// Queries compared.
    pub n_queries: usize,
    /// Queries with a relevant item in the first ranking's top `k` and none in the second's.
    pub only_first: usize,
    /// Queries with a relevant item in the second ranking's top `k` and none in the first's.
    pub only_second: usize,
    /// Two-sided exact sign-test p-value of the split (1 when they never disagree).
    pub p_value: f64,
}

impl fmt::Display for PairedComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {}: {} queries only the first finds, {} only the second (",
            self.k, self.only_first, self.only_second
        )?;
        // two decimals hide how small a small p is
        match self.p_value < 0.01 {
            true => write!(f, "p = {:.1e}", self.p_value)?,
            false => write!(f, "p = {:.2}", self.p_value)?,
        }
        write!(f, ", {} queries)", self.n_queries)
    }
}

/// Compares two rankings of the same queries at cut-off `k` (see [`PairedComparison`]).
///
/// A query counts as found when any of its relevant items is in the top `k` (the hit rate of
/// [`evaluate`]).
///
/// ```
/// use cart_search::{Hit, compare_at};
///
/// let hit = |item| Hit { item, score: 0.0 };
/// let relevant: Vec<Vec<u32>> = (0..5).map(|q| vec![q]).collect();
/// let first: Vec<Vec<Hit>> = (0..5).map(|q| vec![hit(q)]).collect();
/// let second: Vec<Vec<Hit>> = (0..5).map(|_| vec![hit(9)]).collect();
/// let c = compare_at(&first, &second, &relevant, 1)?;
/// assert_eq!((c.only_first, c.only_second), (5, 0));
/// assert!((c.p_value - 0.0625).abs() < 1e-12); // 2 / 2^5
/// # Ok::<(), cart_search::Error>(())
/// ```
///
/// # Errors
/// [`Error::LengthMismatch`] if the three lists differ in length, [`Error::NoRelevant`] for a
/// query without relevant items, [`Error::InvalidParameter`] for `k == 0` or no query at all.
pub fn compare_at<A, B, T>(
    first: &[A],
    second: &[B],
    relevant: &[T],
    k: usize,
) -> Result<PairedComparison>
where
    A: AsRef<[Hit]>,
    B: AsRef<[Hit]>,
    T: AsRef<[u32]>,
{
    if first.len() != second.len() {
        return Err(Error::LengthMismatch {
            what: "the two rankings",
            left: first.len(),
            right: second.len(),
        });
    }
    if first.len() != relevant.len() {
        return Err(Error::LengthMismatch {
            what: "rankings and relevance lists",
            left: first.len(),
            right: relevant.len(),
        });
    }
    if first.is_empty() {
        return Err(Error::InvalidParameter {
            name: "first",
            reason: "no query to compare".into(),
        });
    }
    if k == 0 {
        return Err(Error::InvalidParameter { name: "k", reason: "a cut-off of 0".into() });
    }
    let found = |hits: &[Hit], rel: &[u32]| hits.iter().take(k).any(|h| rel.contains(&h.item));
    let (mut only_first, mut only_second) = (0, 0);
    for (q, ((a, b), rel)) in first.iter().zip(second).zip(relevant).enumerate() {
        let rel = rel.as_ref();
        if rel.is_empty() {
            return Err(Error::NoRelevant { query: q });
        }
        match (found(a.as_ref(), rel), found(b.as_ref(), rel)) {
            (true, false) => only_first += 1,
            (false, true) => only_second += 1,
            _ => {}
        }
    }
    Ok(PairedComparison {
        k,
        n_queries: first.len(),
        only_first,
        only_second,
        p_value: sign_test(only_first, only_second),
    })
}

/// Two-sided exact sign test: `2 P(X <= min(a, b))` for `X ~ Binomial(a + b, 1/2)`, at most 1.
fn sign_test(a: usize, b: usize) -> f64 {
    let n = a + b;
    // in logs, so that thousands of disagreements do not underflow 2^-n
    let ln_half_n = n as f64 * 0.5f64.ln();
    let (mut ln_choose, mut tail) = (0.0f64, 0.0f64);
    for i in 0..=a.min(b) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
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

    #[test]
    fn sign_test_matches_hand_worked_binomials() {
        // 2 P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7 / 64
        assert!((sign_test(1, 5) - 14.0 / 64.0).abs() < 1e-12);
        assert!((sign_test(5, 1) - 14.0 / 64.0).abs() < 1e-12);
        assert!((sign_test(0, 10) - 2.0 / 1024.0).abs() < 1e-12);
        assert!((sign_test(3, 3) - 1.0).abs() < 1e-12);
        assert!((sign_test(0, 0) - 1.0).abs() < 1e-12);
        // thousands of disagreements: no underflow to 0, no NaN
        let p = sign_test(1000, 1200);
        assert!(p > 0.0 && p < 1e-4, "{p}");
        assert!((sign_test(1000, 1001) - 1.0).abs() < 0.05);
    }

    #[test]
    fn compare_counts_the_disagreements_at_k() {
        let relevant = [vec![1], vec![2], vec![3], vec![4, 5]];
        let first = [hits(&[1]), hits(&[9, 2]), hits(&[3]), hits(&[5])];
        let second = [hits(&[1]), hits(&[2]), hits(&[8]), hits(&[7, 4])];
        let at1 = compare_at(&first, &second, &relevant, 1).unwrap();
        assert_eq!((at1.n_queries, at1.only_first, at1.only_second), (4, 2, 1));
        assert!((at1.p_value - 1.0).abs() < 1e-12);
        let at2 = compare_at(&first, &second, &relevant, 2).unwrap();
        assert_eq!((at2.only_first, at2.only_second), (1, 0));
        // swapping the rankings swaps the counts and keeps the p-value
        let back = compare_at(&second, &first, &relevant, 1).unwrap();
        assert_eq!((back.only_first, back.only_second), (1, 2));
        assert!((back.p_value - at1.p_value).abs() < 1e-12);
        assert_eq!(
            at1.to_string(),
            "at 1: 2 queries only the first finds, 1 only the second (p = 1.00, 4 queries)"
        );
        let lopsided =
            PairedComparison { only_first: 0, only_second: 10, p_value: 2.0 / 1024.0, ..at1 };
        assert!(lopsided.to_string().contains("(p = 2.0e-3, 4 queries)"), "{lopsided}");
    }

    #[test]
    fn compare_rejects_bad_input() {
        let one = [hits(&[1])];
        assert!(compare_at(&one, &[hits(&[1]), hits(&[2])], &[vec![1]], 1).is_err());
        assert!(compare_at(&one, &one, &[vec![1], vec![2]], 1).is_err());
        assert!(compare_at(&one, &one, &[vec![1]], 0).is_err());
        assert!(matches!(
            compare_at(&one, &one, &[Vec::<u32>::new()], 1),
            Err(Error::NoRelevant { query: 0 })
        ));
        assert!(compare_at::<Vec<Hit>, Vec<Hit>, Vec<u32>>(&[], &[], &[], 1).is_err());
    }
}
