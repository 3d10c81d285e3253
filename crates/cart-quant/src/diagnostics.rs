//! Identifier-quality diagnostics: do the codes use their codebooks, do items collide, and do the
//! decoded vectors still find their own item?
//!
//! Several generative-retrieval projects shipped quantizers that silently mapped every item onto
//! one id (`docs/method.md`); these numbers make that visible.

use std::collections::HashMap;
use std::fmt;

use burn::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};

use crate::Result;
use crate::data::{self, CHUNK_ROWS};
use crate::quantizer::Quantizer;
use crate::rqvae::{perplexity, usage};

/// Quality of a quantizer's codes on a data set. Printable with `{}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostics {
    /// Number of items measured.
    pub n_items: usize,
    /// Codebook size of each level.
    pub codebook_sizes: Vec<usize>,
    /// Fraction of each level's codes used by at least one item.
    pub usage: Vec<f64>,
    /// Perplexity (`exp` of the entropy) of each level's code distribution; at most the codebook
    /// size, and 1 when every item has the same code.
    pub perplexity: Vec<f64>,
    /// `sum ||x - decode(encode(x))||^2 / sum ||x||^2` over all items.
    pub relative_error: f64,
    /// Number of distinct full code tuples.
    pub n_unique: usize,
    /// Fraction of items whose full code tuple is shared with at least one other item.
    pub collision_rate: f64,
    /// Most items sharing one code tuple.
    pub max_per_code: usize,
    /// Fraction of the probed items whose decoded vector has the item itself as its exact
    /// nearest neighbour (squared L2) among all items.
    pub self_recall_at_1: f64,
    /// Number of items probed for `self_recall_at_1`.
    pub n_recall_probes: usize,
}

impl Diagnostics {
    /// Encodes and decodes `data` (`[n, d]`) with `quantizer` and measures the codes.
    ///
    /// Self-recall is measured on `n_probes` items spread evenly over the data (all items if
    /// `n_probes >= n`), each searched exactly against all `n` items on `device`.
    ///
    /// # Errors
    ///
    /// Whatever [`Quantizer::encode`] or [`Quantizer::decode`] return for `data`.
    pub fn compute(
        quantizer: &(impl Quantizer + ?Sized),
        data: ArrayView2<'_, f32>,
        n_probes: usize,
        device: &Device,
    ) -> Result<Self> {
        let codes = quantizer.encode(data)?;
        let decoded = quantizer.decode(codes.view())?;
        let mut diagnostics = Self::from_codes(codes.view(), &quantizer.codebook_sizes());
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for (x, y) in data.outer_iter().zip(decoded.outer_iter()) {
            for (&a, &b) in x.iter().zip(y.iter()) {
                err += f64::from(a - b).powi(2);
                norm += f64::from(a).powi(2);
            }
        }
        diagnostics.relative_error = if norm > 0.0 { err / norm } else { err };
        let (recall, probes) = self_recall(data, decoded.view(), n_probes, device)?;
        diagnostics.self_recall_at_1 = recall;
        diagnostics.n_recall_probes = probes;
        Ok(diagnostics)
    }

    /// The code-only measures (usage, perplexity, collisions) of `codes` (`[n, levels]`);
    /// `relative_error` and `self_recall_at_1` are left at NaN.
    pub fn from_codes(codes: ArrayView2<'_, u32>, codebook_sizes: &[usize]) -> Self {
        let n = codes.nrows();
        let mut usage_v = Vec::new();
        let mut perplexity_v = Vec::new();
        for (level, &size) in codebook_sizes.iter().enumerate() {
            let mut counts = vec![0usize; size];
            if level < codes.ncols() {
                for &c in codes.column(level) {
                    if let Some(slot) = counts.get_mut(c as usize) {
                        *slot += 1;
                    }
                }
            }
            usage_v.push(usage(&counts));
            perplexity_v.push(perplexity(&counts));
        }
        let mut tuples: HashMap<Vec<u32>, usize> = HashMap::with_capacity(n);
        for row in codes.axis_iter(Axis(0)) {
            *tuples.entry(row.to_vec()).or_default() += 1;
        }
        let colliding: usize = tuples.values().filter(|&&c| c > 1).sum();
        Self {
            n_items: n,
            codebook_sizes: codebook_sizes.to_vec(),
            usage: usage_v,
            perplexity: perplexity_v,
            relative_error: f64::NAN,
            n_unique: tuples.len(),
            collision_rate: colliding as f64 / n.max(1) as f64,
            max_per_code: tuples.values().copied().max().unwrap_or(0),
            self_recall_at_1: f64::NAN,
            n_recall_probes: 0,
        }
    }
}

/// Exact nearest item (squared L2) of each probed decoded vector.
fn self_recall(
    data: ArrayView2<'_, f32>,
    decoded: ArrayView2<'_, f32>,
    n_probes: usize,
    device: &Device,
) -> Result<(f64, usize)> {
    let n = data.nrows();
    let n_probes = n_probes.min(n);
    if n_probes == 0 {
        return Ok((f64::NAN, 0));
    }
    let probes: Vec<usize> = (0..n_probes).map(|i| i * n / n_probes).collect();
    let queries: Array2<f32> = decoded.select(Axis(0), &probes);
    let mut best = vec![(f32::INFINITY, usize::MAX); n_probes];
    for start in (0..n).step_by(CHUNK_ROWS) {
        let end = (start + CHUNK_ROWS).min(n);
        let items = data::rows_tensor(data, start, end, device);
        let items_sq = data::row_sq(items.clone());
        for q_start in (0..n_probes).step_by(CHUNK_ROWS) {
            let q_end = (q_start + CHUNK_ROWS).min(n_probes);
            let q = data::rows_tensor(queries.view(), q_start, q_end, device);
            let (idx, dist) = data::nearest(q, items.clone(), items_sq.clone());
            let idx = data::to_u32(idx)?;
            let dist = data::to_f32(dist)?;
            for (i, (&j, &dd)) in idx.iter().zip(&dist).enumerate() {
                let slot = &mut best[q_start + i];
                if dd < slot.0 {
                    *slot = (dd, start + j as usize);
                }
            }
        }
    }
    let hits = probes.iter().zip(&best).filter(|(p, b)| b.1 == **p).count();
    Ok((hits as f64 / n_probes as f64, n_probes))
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "items                {}", self.n_items)?;
        writeln!(f, "level  size  usage    perplexity")?;
        for (l, ((s, u), p)) in
            self.codebook_sizes.iter().zip(&self.usage).zip(&self.perplexity).enumerate()
        {
            writeln!(f, "{l:>5}  {s:>4}  {:>6.1}%  {p:>10.1}", 100.0 * u)?;
        }
        writeln!(f, "relative error       {:.4}", self.relative_error)?;
        writeln!(
            f,
            "unique code tuples   {} ({:.1}% of items collide, at most {} per tuple)",
            self.n_unique,
            100.0 * self.collision_rate,
            self.max_per_code
        )?;
        write!(
            f,
            "self-recall@1        {:.1}% ({} probes, exact search)",
            100.0 * self.self_recall_at_1,
            self.n_recall_probes
        )
    }
}
