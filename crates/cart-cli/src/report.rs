//! The evaluation table of the quickstart and `cart eval`: Recall@1/5/10, MRR@10 and queries
//! per second of each method against one relevant item per query, and Recall@k curves for
//! the plots.

use std::fmt;
use std::time::Duration;

use anyhow::Result;
use cart::Hit;
use serde::Serialize;

/// One method's line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// What was measured.
    pub method: String,
    /// Queries evaluated.
    pub n_queries: usize,
    /// Recall@1.
    pub recall_at_1: f64,
    /// Recall@5.
    pub recall_at_5: f64,
    /// Recall@10.
    pub recall_at_10: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
    /// Queries answered per second (wall time of the whole batch).
    pub queries_per_second: f64,
}

/// The quickstart's line: name, R@1/5/10, MRR@10, queries/s.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<36} R@1 {:.4}  R@5 {:.4}  R@10 {:.4}  MRR@10 {:.4}  {:>9.1} queries/s",
            self.method,
            self.recall_at_1,
            self.recall_at_5,
            self.recall_at_10,
            self.mrr_at_10,
            self.queries_per_second
        )
    }
}

/// Scores rankings against the relevant item of each query.
#[derive(Clone, Debug)]
pub struct Evaluation {
    relevant: Vec<Vec<u32>>,
}

impl Evaluation {
    /// For queries whose relevant item is `items[q]`.
    pub fn new(items: &[u32]) -> Self {
        Self { relevant: items.iter().map(|&i| vec![i]).collect() }
    }

    /// Queries evaluated.
    pub fn len(&self) -> usize {
        self.relevant.len()
    }

    /// Whether there is no query.
    pub fn is_empty(&self) -> bool {
        self.relevant.is_empty()
    }

    /// The line of `method`, whose rankings took `took`.
    ///
    /// # Errors
    ///
    /// If `ranked` has not one list per query.
    pub fn row(&self, method: &str, ranked: &[Vec<Hit>], took: Duration) -> Result<Row> {
        let m = cart::search::evaluate(ranked, &self.relevant, &[1, 5, 10])?;
        Ok(Row {
            method: method.to_owned(),
            n_queries: self.relevant.len(),
            recall_at_1: m[0].recall,
            recall_at_5: m[1].recall,
            recall_at_10: m[2].recall,
            mrr_at_10: m[2].mrr,
            queries_per_second: self.relevant.len() as f64 / took.as_secs_f64().max(1e-9),
        })
    }

    /// `first` against `second`, query by query, at cut-off `k`: how many queries only one of
    /// them finds, and whether that split could be chance (see
    /// [`cart::search::PairedComparison`]).
    ///
    /// # Errors
    ///
    /// If either ranking has not one list per query, or `k` is 0.
    pub fn compare(
        &self,
        first: &[Vec<Hit>],
        second: &[Vec<Hit>],
        k: usize,
    ) -> Result<cart::search::PairedComparison> {
        Ok(cart::search::compare_at(first, second, &self.relevant, k)?)
    }

    /// Recall@k for `k = 1..=max_k`.
    ///
    /// # Errors
    ///
    /// If `ranked` has not one list per query.
    pub fn recall_curve(&self, ranked: &[Vec<Hit>], max_k: usize) -> Result<Vec<f64>> {
        let ks: Vec<usize> = (1..=max_k).collect();
        let m = cart::search::evaluate(ranked, &self.relevant, &ks)?;
        Ok(m.iter().map(|m| m.recall).collect())
    }
}
