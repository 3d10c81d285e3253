//! Training: teacher-forced cross-entropy + R-Drop, AdamW with warmup and cosine decay, gradient
//! clipping, validation Recall@K through the constrained beam search, best checkpoint.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::{IdAssignment, IdTrie};
use cart_search::{BeamSearchConfig, RetrievalMetrics, evaluate};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::generator::{Generator, Pairs, check_queries, decoder_inputs, int_tensor};
use crate::model::{GeneratorConfig, GeneratorDims, GeneratorModel, Groups};
use crate::{Error, Result};

/// How a [`Generator`] is trained ([`GeneratorConfig::fit`]).
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training pairs. Default: 4 (with the dense head, validation R@1 on the
    /// bundled set peaks at epoch 3 of 4 and at 5 of 6, docs/results.md; the best epoch is
    /// kept).
    #[config(default = 4)]
    pub n_epochs: usize,
    /// Pairs per optimizer step. Default: 128.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Peak learning rate (after warmup). Default: 1e-3.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Fraction of all steps spent warming the learning rate up linearly from 0. Default: 0.05.
    #[config(default = 0.05)]
    pub warmup: f64,
    /// Learning rate at the last step, as a fraction of the peak (cosine decay). Default: 0.05.
    #[config(default = 0.05)]
    pub final_lr_ratio: f64,
    /// AdamW decoupled weight decay. Default: 0.01.
    #[config(default = 0.01)]
    pub weight_decay: f64,
    /// Clip the gradient to this global L2 norm; 0 turns clipping off. Default: 1.0.
    #[config(default = 1.0)]
    pub grad_clip: f64,
    /// Add the R-Drop term (symmetric KL between two dropout passes). It doubles the cost of
    /// every step: on a CPU the same minutes buy more from more epochs (measured,
    /// docs/results.md), so it is off by default; turn it on for GPU runs. Default: `false`.
    #[config(default = false)]
    pub rdrop: bool,
    /// Weight `omega` of the R-Drop term. Default: 1.0.
    #[config(default = 1.0)]
    pub omega: f64,
    /// Seed for the weights, the shuffling and dropout. Default: 0. The weights and dropout
    /// masks come from burn's device RNG, which is one per process: a fit is reproducible as
    /// long as no other thread draws from that RNG (another fit, a model's `init`) while it
    /// runs.
    #[config(default = 0)]
    pub seed: u64,
    /// Beam width of the validation search. Default: 10.
    #[config(default = 10)]
    pub beam_width: usize,
    /// Cut-offs of the validation Recall@K; the first one picks the best epoch. Default: 1, 5, 10.
    #[config(default = "vec![1, 5, 10]")]
    pub eval_ks: Vec<usize>,
    /// Validate every this many epochs (and after the last). Default: 1.
    #[config(default = 1)]
    pub eval_every: usize,
    /// Save the best model (by validation recall; the last one without validation data) to this
    /// file after each improvement.
    #[config(default = "None")]
    pub checkpoint: Option<String>,
    /// Item-as-query pairs per epoch, as a share of the items (DSI's indexing task): item `i`'s
    /// vector in the query space ([`Pairs::with_item_vectors`]) -> its identifier. Drawn
    /// afresh every epoch (seeded). 0 turns it off. Default: 1.0.
    #[config(default = 1.0)]
    pub item_queries: f64,
    /// Share of the training queries replaced, every epoch, by a query-target interpolation
    /// (GENIUS): `z = sqrt(s) q + sqrt(1 - s) p` with `p` the target item's vector in the
    /// query space and `s ~ Beta(2, 2)` drawn per dimension, re-normalised. 0 turns it off.
    /// Default: 0.5.
    #[config(default = 0.5)]
    pub interpolation: f64,
    /// Weight of the prefix-level ranking loss (LTRGR, RIPOR); 0 turns it off. At the start of
    /// every epoch the model searches a share ([`TrainConfig::rank_rows`]) of its training
    /// queries, and its best answers that are other items become each query's negatives. At
    /// every identifier position the loss is a softmax cross-entropy of the target's prefix
    /// score (the sum of its tokens' log-probabilities so far) against the negatives'
    /// prefixes that differ from it there: what the beam compares when it prunes. It is added
    /// to the token cross-entropy; the negatives run in the same forward pass as the batch.
    /// Default: 0.1, picked on the bundled set's validation split (two seeds: +1.1 and +2.7
    /// points of R@1 over 0; 1.0 loses 6 points; docs/results.md). It costs about 1.7x the
    /// training time of 0.
    #[config(default = 0.1)]
    pub rank_weight: f64,
    /// Share of the training queries given negatives each epoch (drawn afresh, seeded): the
    /// mining search and the negatives' rows cost time in proportion. Default: 1.0.
    #[config(default = 1.0)]
    pub rank_rows: f64,
    /// Negatives per training query for the ranking loss ([`TrainConfig::rank_weight`]): the
    /// model's best `rank_negatives` answers other than the target, from a beam of
    /// [`TrainConfig::beam_width`]. Default: 1 (on the bundled set, 2 and 4 negatives gain no
    /// more on validation and cost more time; docs/results.md).
    #[config(default = 1)]
    pub rank_negatives: usize,
}

/// Where generator training stands, reported to the observer of
/// [`GeneratorConfig::fit_observed`] and [`Generator::fit_more_observed`] (the library never
/// prints: applications draw these as progress bars or log lines).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TrainEvent<'a> {
    /// The starting model was measured on the validation pairs (the training-free floor).
    Start(&'a [RetrievalMetrics]),
    /// A batch finished.
    Batch {
        /// Epoch, from 0.
        epoch: usize,
        /// Epochs in the run.
        n_epochs: usize,
        /// Batch in the epoch, from 0.
        batch: usize,
        /// Batches per epoch.
        n_batches: usize,
        /// Mean loss of the epoch's batches so far.
        loss: f64,
    },
    /// An epoch finished (with its validation metrics, when it was validated).
    Epoch(&'a EpochStats),
}

impl TrainConfig {
    /// Checks every field (sizes at least 1, rates finite and in range).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("beam_width", self.beam_width),
            ("eval_every", self.eval_every),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, 0, "must be at least 1"));
            }
        }
        if self.eval_ks.is_empty() || self.eval_ks.contains(&0) {
            return Err(Error::config("eval_ks", format!("{:?}", self.eval_ks), "cut-offs >= 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::config("learning_rate", self.learning_rate, "finite and > 0"));
        }
        let unit = [("warmup", self.warmup), ("final_lr_ratio", self.final_lr_ratio)];
        for (field, value) in unit {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::config(field, value, "must be in [0, 1]"));
            }
        }
        if !(0.0..=1.0).contains(&self.rank_rows) {
            return Err(Error::config("rank_rows", self.rank_rows, "must be in [0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.interpolation) {
            return Err(Error::config("interpolation", self.interpolation, "must be in [0, 1]"));
        }
        if !(self.item_queries.is_finite() && (0.0..=100.0).contains(&self.item_queries)) {
            return Err(Error::config("item_queries", self.item_queries, "must be in [0, 100]"));
        }
        let non_negative = [
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
            ("omega", self.omega),
            ("rank_weight", self.rank_weight),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::config(field, value, "must be finite and >= 0"));
            }
        }
        if self.rank_weight > 0.0 && self.rank_negatives == 0 {
            return Err(Error::config("rank_negatives", 0, "must be at least 1 with rank_weight"));
        }
        Ok(())
    }

    /// Learning rate at optimizer step `step` of `total`: linear warmup, then cosine decay.
    fn lr(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup * total as f64).ceil() as usize;
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).max(1) as f64;
        let t = ((step - warmup) as f64 / span).min(1.0);
        let floor = self.learning_rate * self.final_lr_ratio;
        floor + (self.learning_rate - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// What one training epoch did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the batches (cross-entropy + omega * R-Drop + rank_weight *
    /// ranking loss).
    pub loss: f64,
    /// Mean token cross-entropy.
    pub cross_entropy: f64,
    /// Mean R-Drop term (symmetric KL per token, before omega; 0 when off).
    pub rdrop: f64,
    /// Mean prefix-level ranking loss (before `rank_weight`; 0 when off).
    #[serde(default)]
    pub rank: f64,
    /// Learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Validation metrics at each cut-off (empty when not validated this epoch).
    pub valid: Vec<RetrievalMetrics>,
    /// Wall time of the epoch (training and validation) in seconds.
    pub seconds: f64,
}

/// The per-epoch record of a training run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainHistory {
    /// One entry per epoch, in order.
    pub epochs: Vec<EpochStats>,
    /// The epoch whose model was returned (the best validation recall at the first cut-off);
    /// 0 for the starting model.
    pub best_epoch: usize,
    /// Validation metrics of the starting model, before the first step (empty without
    /// validation data). With the dense head this is the training-free floor.
    #[serde(default)]
    pub start_valid: Vec<RetrievalMetrics>,
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:>3}  loss {:.4}  ce {:.4}  rdrop {:.4}  lr {:.2e}",
            self.epoch, self.loss, self.cross_entropy, self.rdrop, self.learning_rate
        )?;
        if self.rank > 0.0 {
            write!(f, "  rank {:.4}", self.rank)?;
        }
        for m in &self.valid {
            write!(f, "  R@{} {:.4}", m.k, m.recall)?;
        }
        if let Some(m) = self.valid.last() {
            write!(f, "  MRR@{} {:.4}", m.k, m.mrr)?;
        }
        write!(f, "  {:.1}s", self.seconds)
    }
}

impl fmt::Display for TrainHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.start_valid.is_empty() {
            write!(f, "start    ")?;
            for m in &self.start_valid {
                write!(f, "  R@{} {:.4}", m.k, m.recall)?;
            }
            writeln!(f)?;
        }
        for epoch in &self.epochs {
            writeln!(f, "{epoch}")?;
        }
        write!(f, "best epoch: {}", self.best_epoch)
    }
}

impl TrainHistory {
    /// The history as CSV: one row per epoch with loss terms, learning rate, and recall and MRR
    /// at each cut-off (empty cells where an epoch was not validated).
    pub fn to_csv(&self) -> String {
        let ks: Vec<usize> = self
            .epochs
            .iter()
            .find(|e| !e.valid.is_empty())
            .map(|e| e.valid.iter().map(|m| m.k).collect())
            .unwrap_or_default();
        let mut out = String::from("epoch,loss,cross_entropy,rdrop,rank,learning_rate,seconds");
        for k in &ks {
            out.push_str(&format!(",recall@{k},mrr@{k}"));
        }
        out.push('\n');
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}",
                e.epoch, e.loss, e.cross_entropy, e.rdrop, e.rank, e.learning_rate, e.seconds
            ));
            for i in 0..ks.len() {
                match e.valid.get(i) {
                    Some(m) => out.push_str(&format!(",{},{}", m.recall, m.mrr)),
                    None => out.push_str(",,"),
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes the history atomically: CSV if `path` ends in `.csv`, JSON otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written, [`Error::Json`] if serializing fails.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            self.to_csv().into_bytes()
        } else {
            serde_json::to_vec_pretty(self)?
        };
        crate::io::write_file(path, &bytes)
    }
}

/// Loss terms of one batch, each a `[1]` tensor.
pub(crate) struct LossTerms {
    pub(crate) total: Tensor<1>,
    pub(crate) cross_entropy: Tensor<1>,
    pub(crate) rdrop: Tensor<1>,
    pub(crate) rank: Tensor<1>,
}

/// A batch's negatives for the ranking loss ([`RankLists::batch`]): `n` identifiers for each
/// of `m` batch rows, as extra decoder rows that run in the same forward pass as the batch.
pub(crate) struct Negatives {
    /// `[m]`: the batch rows that have negatives.
    pub(crate) rows: Tensor<1, Int>,
    /// `[m * n, ..]`: each such row's query, `n` times.
    pub(crate) queries: Tensor<3>,
    pub(crate) inputs: Tensor<2, Int>,
    pub(crate) targets: Tensor<2, Int>,
    pub(crate) groups: Option<Groups>,
    /// `[m, n, len]`: 1 where the negative's prefix differs from the target's (a competitor
    /// of the target's prefix at that position), 0 where it is the same prefix or padding.
    pub(crate) mask: Tensor<3>,
}

/// `[rows, len]` log-probabilities of `targets` under `logp` (`[rows, len, vocab]`).
fn token_log_probs(logp: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [n, t] = targets.dims();
    logp.gather(2, targets.reshape([n, t, 1])).reshape([n, t])
}

/// The prefix-level ranking loss: at every position, the softmax cross-entropy of the target's
/// prefix score (`pos`, `[m, len]` token log-probabilities) against its negatives' (`neg`,
/// `[m * n, len]`) where `mask` marks them as competitors.
fn rank_loss(pos: Tensor<2>, neg: Tensor<2>, mask: Tensor<3>) -> Tensor<1> {
    let [m, n, len] = mask.dims();
    let pos = pos.cumsum(1).reshape([m, 1, len]);
    let neg = neg.reshape([m, n, len]).cumsum(2);
    // Masked negatives sink far below any log-probability, so they add nothing to the sum.
    let neg = neg + mask.sub_scalar(1.0).mul_scalar(1e4);
    let scores = Tensor::cat(vec![pos.clone(), neg], 1);
    let top = scores.clone().max_dim(1).detach();
    let lse = (scores - top.clone()).exp().sum_dim(1).log() + top;
    (lse - pos).mean()
}

/// Cross-entropy; with `rdrop` the symmetric KL `0.5 * (KL(p1||p2) + KL(p2||p1))` per token
/// between two passes with independent dropout masks (R-Drop, Liang et al., NeurIPS 2021);
/// with `negatives` the prefix-level ranking loss ([`TrainConfig::rank_weight`]), whose
/// targets' scores are the batch rows' own. The batch, its negatives and (with R-Drop) the
/// second pass run as one forward pass.
#[allow(clippy::too_many_arguments, reason = "one batch's tensors and the loss weights")]
pub(crate) fn loss_terms(
    model: &GeneratorModel,
    queries: Tensor<3>,
    inputs: Tensor<2, Int>,
    targets: Tensor<2, Int>,
    groups: Option<&Groups>,
    rdrop: bool,
    omega: f64,
    negatives: Option<Negatives>,
    rank_weight: f64,
) -> LossTerms {
    let [b, _] = targets.dims();
    // R-Drop's second pass needs the batch rows only, not the negatives.
    let second = rdrop.then(|| (queries.clone(), inputs.clone(), targets.clone(), groups.cloned()));
    let (mut queries, mut inputs, mut targets, mut groups) =
        (queries, inputs, targets, groups.cloned());
    let mut extra = 0;
    let mut rank_parts = None;
    if let Some(neg) = negatives {
        extra = neg.targets.dims()[0];
        queries = Tensor::cat(vec![queries, neg.queries], 0);
        inputs = Tensor::cat(vec![inputs, neg.inputs], 0);
        targets = Tensor::cat(vec![targets, neg.targets], 0);
        groups = match (groups, neg.groups) {
            (Some(a), Some(n)) => Some(a.concat(&n)),
            _ => None,
        };
        rank_parts = Some((neg.rows, neg.mask));
    }
    let rows = b + extra;
    if let Some((q2, i2, t2, g2)) = second {
        queries = Tensor::cat(vec![queries, q2], 0);
        inputs = Tensor::cat(vec![inputs, i2], 0);
        targets = Tensor::cat(vec![targets, t2], 0);
        groups = match (groups, g2) {
            (Some(a), Some(g)) => Some(a.concat(&g)),
            _ => None,
        };
    }
    let logp = log_softmax(model.forward_groups(queries, inputs, groups.as_ref()), 2);
    let tokens = token_log_probs(logp.clone(), targets);
    let ce = if rdrop {
        let halves = vec![tokens.clone().narrow(0, 0, b), tokens.clone().narrow(0, rows, b)];
        Tensor::cat(halves, 0).mean().neg()
    } else {
        tokens.clone().narrow(0, 0, b).mean().neg()
    };
    let mut total = ce.clone();
    let kl = if rdrop {
        let lp1 = logp.clone().narrow(0, 0, b);
        let lp2 = logp.narrow(0, rows, b);
        // (p1 - p2)(log p1 - log p2) >= 0 term by term, so the sum is >= 0 even in floats.
        let kl = ((lp1.clone().exp() - lp2.clone().exp()) * (lp1 - lp2))
            .sum_dim(2)
            .mean()
            .mul_scalar(0.5);
        total = total + kl.clone().mul_scalar(omega);
        kl
    } else {
        ce.zeros_like()
    };
    let rank = match rank_parts {
        Some((picked, mask)) => {
            let pos = tokens.clone().narrow(0, 0, b).select(0, picked);
            let rank = rank_loss(pos, tokens.narrow(0, b, extra), mask);
            total = total + rank.clone().mul_scalar(rank_weight);
            rank
        }
        None => ce.zeros_like(),
    };
    LossTerms { total, cross_entropy: ce, rdrop: kl, rank }
}

/// Training pairs checked and turned into decoder inputs and targets: the query rows first,
/// then (with item vectors) one item-as-query row per item.
pub(crate) struct Batches {
    queries: Vec<f32>,
    inputs: Vec<i32>,
    targets: Vec<i32>,
    /// The target item of every row.
    row_items: Vec<u32>,
    /// Every item's vector in the query space (for interpolation), if given.
    item_vectors: Option<Vec<f32>>,
    /// Per row, the dense head's groups (the children of its prefixes).
    groups: Option<crate::generator::HostGroups>,
    width: usize,
    /// `[n_query_vectors, d_query]`: the shape of one query row.
    query_shape: [usize; 2],
    len: usize,
    /// Number of query rows (the item rows follow).
    n_queries: usize,
}

/// A draw from Beta(2, 2): the median of three uniforms.
fn beta22(rng: &mut StdRng) -> f32 {
    let (a, b, c): (f32, f32, f32) = (rng.random(), rng.random(), rng.random());
    a.max(b).min(a.min(b).max(c))
}

impl Batches {
    pub(crate) fn new(
        what: &'static str,
        config: &GeneratorConfig,
        dims: &GeneratorDims,
        pairs: Pairs<'_>,
        ids: &IdAssignment,
        trie: &IdTrie,
    ) -> Result<Self> {
        let width = dims.query_width;
        let mut queries = check_queries(what, pairs.queries, width)?.into_owned();
        let n = pairs.queries.nrows();
        if n != pairs.items.len() {
            return Err(Error::DimMismatch { what, got: pairs.items.len(), expected: n });
        }
        if n == 0 {
            return Err(Error::EmptyData { what });
        }
        let mut row_items = pairs.items.to_vec();
        let mut item_vectors = None;
        if let Some(v) = pairs.item_vectors {
            let values = check_queries("item vectors (query space)", v, width)?;
            if v.nrows() != ids.len() {
                return Err(Error::DimMismatch {
                    what: "item vectors (query space): one row per item",
                    got: v.nrows(),
                    expected: ids.len(),
                });
            }
            queries.extend_from_slice(&values);
            row_items.extend(0..v.nrows() as u32);
            item_vectors = Some(values.into_owned());
        }
        let len = dims.id_len;
        let mut tokens = Vec::with_capacity(row_items.len() * len);
        for &item in &row_items {
            let id = ids.id(item as usize).ok_or(Error::UnknownItem {
                what,
                item,
                n_items: ids.len(),
            })?;
            tokens.extend_from_slice(id);
        }
        let inputs = decoder_inputs(&tokens, len, dims.vocab_size)?;
        let targets = tokens.iter().map(|&t| t as i32).collect();
        let groups = crate::generator::groups_host(config, dims, trie, &tokens);
        Ok(Self {
            queries,
            inputs,
            targets,
            row_items,
            item_vectors,
            groups,
            width,
            query_shape: [config.n_query_vectors, config.d_query(dims)],
            len,
            n_queries: n,
        })
    }

    /// Number of query rows.
    fn n_queries(&self) -> usize {
        self.n_queries
    }

    /// Number of item rows.
    fn n_item_rows(&self) -> usize {
        self.row_items.len() - self.n_queries
    }

    /// `(queries, inputs, targets, groups)` tensors of the rows `rows`; each query row is
    /// replaced by an interpolation toward its item with probability `interpolation`.
    pub(crate) fn batch(
        &self,
        rows: &[usize],
        interpolation: f64,
        rng: &mut StdRng,
        device: &Device,
    ) -> (Tensor<3>, Tensor<2, Int>, Tensor<2, Int>, Option<Groups>) {
        let (w, l) = (self.width, self.len);
        let mut q = Vec::with_capacity(rows.len() * w);
        let mut i = Vec::with_capacity(rows.len() * l);
        let mut t = Vec::with_capacity(rows.len() * l);
        for &r in rows {
            let query = &self.queries[r * w..(r + 1) * w];
            match &self.item_vectors {
                Some(items) if r < self.n_queries && rng.random::<f64>() < interpolation => {
                    let item = self.row_items[r] as usize;
                    let p = &items[item * w..(item + 1) * w];
                    let start = q.len();
                    for (&a, &b) in query.iter().zip(p) {
                        let s = beta22(rng);
                        q.push(s.sqrt() * a + (1.0 - s).sqrt() * b);
                    }
                    let norm = q[start..].iter().map(|x| x * x).sum::<f32>().sqrt();
                    if norm > 0.0 {
                        q[start..].iter_mut().for_each(|x| *x /= norm);
                    }
                }
                _ => q.extend_from_slice(query),
            }
            i.extend_from_slice(&self.inputs[r * l..(r + 1) * l]);
            t.extend_from_slice(&self.targets[r * l..(r + 1) * l]);
        }
        let groups = self.groups.as_ref().map(|g| g.select(rows, device));
        (
            Tensor::from_data(
                TensorData::new(q, [rows.len(), self.query_shape[0], self.query_shape[1]]),
                device,
            ),
            int_tensor(&i, [rows.len(), l], device),
            int_tensor(&t, [rows.len(), l], device),
            groups,
        )
    }

    /// One epoch's rows, shuffled: every query row, plus `item_queries * n_items` item rows.
    fn epoch_rows(&self, item_queries: f64, rng: &mut StdRng) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..self.n_queries).collect();
        let n_items = self.n_item_rows();
        if n_items > 0 && item_queries > 0.0 {
            let m = (item_queries * n_items as f64).round() as usize;
            let mut perm: Vec<usize> = (0..n_items).collect();
            perm.shuffle(rng);
            rows.extend((0..m).map(|i| self.n_queries + perm[i % n_items]));
        }
        rows.shuffle(rng);
        rows
    }
}

/// The ranking loss's negatives, mined from the model's own beams: per query row, `n` other
/// items' identifiers (the best the beams returned; padding, masked, where they held fewer) as
/// decoder inputs, targets and groups, and a mask per negative and position that is 1 where
/// its prefix differs from the target's (equal prefixes are no competitors there).
struct RankLists {
    n: usize,
    len: usize,
    inputs: Vec<i32>,
    targets: Vec<i32>,
    mask: Vec<f32>,
    groups: Option<crate::generator::HostGroups>,
    /// Per query row, its negatives' place in the tables (`None`: not drawn this epoch, or
    /// the beams held no other item).
    slot: Vec<Option<usize>>,
}

impl RankLists {
    /// Draws `train.rank_rows` of the query rows of `batches`, searches them with `generator`
    /// (beam `train.beam_width`) and keeps the best `train.rank_negatives` hits that are
    /// not the row's target.
    #[allow(clippy::too_many_arguments, reason = "the training loop's state, passed through")]
    fn mine(
        generator: &Generator,
        config: &GeneratorConfig,
        dims: &GeneratorDims,
        trie: &IdTrie,
        ids: &IdAssignment,
        batches: &Batches,
        train: &TrainConfig,
        rng: &mut StdRng,
    ) -> Result<Self> {
        let (w, len) = (batches.width, batches.len);
        // This epoch's share of the query rows, drawn from the seed.
        let chosen: Vec<usize> =
            (0..batches.n_queries).filter(|_| rng.random::<f64>() < train.rank_rows).collect();
        let mut values = Vec::with_capacity(chosen.len() * w);
        for &r in &chosen {
            values.extend_from_slice(&batches.queries[r * w..(r + 1) * w]);
        }
        let n = train.rank_negatives;
        let mut slot = vec![None; batches.n_queries];
        let (mut tokens, mut mask) = (Vec::new(), Vec::new());
        if !chosen.is_empty() {
            let queries =
                ndarray::ArrayView2::from_shape((chosen.len(), w), &values).map_err(|_| {
                    Error::DimMismatch {
                        what: "ranking loss: query rows",
                        got: values.len(),
                        expected: chosen.len() * w,
                    }
                })?;
            // The model's own best answers, from the beam it validates with (measured on the
            // bundled set: negatives from a beam of `n + 1` gain about half as much).
            let search = BeamSearchConfig::default()
                .with_beam_width(train.beam_width.max(n + 1))
                .with_top_k(n + 1);
            let hits = generator.search(trie, search, queries)?;
            let lookup = |item: u32| {
                ids.id(item as usize).ok_or(Error::UnknownItem {
                    what: "ranking loss",
                    item,
                    n_items: ids.len(),
                })
            };
            for (&r, row) in chosen.iter().zip(&hits) {
                let target = batches.row_items[r];
                let pos = lookup(target)?;
                let start = (tokens.len(), mask.len());
                let mut found = 0;
                for hit in row.iter().filter(|h| h.item != target).take(n) {
                    let neg = lookup(hit.item)?;
                    tokens.extend_from_slice(neg);
                    let first = pos.iter().zip(neg).position(|(a, b)| a != b).unwrap_or(len);
                    mask.extend((0..len).map(|p| if p >= first { 1.0 } else { 0.0 }));
                    found += 1;
                }
                if found == 0 {
                    tokens.truncate(start.0);
                    mask.truncate(start.1);
                    continue;
                }
                for _ in found..n {
                    tokens.extend_from_slice(pos);
                    mask.extend(std::iter::repeat_n(0.0, len));
                }
                slot[r] = Some(tokens.len() / (n * len) - 1);
            }
        }
        let inputs = decoder_inputs(&tokens, len, dims.vocab_size)?;
        let targets = tokens.iter().map(|&t| t as i32).collect();
        let groups = crate::generator::groups_host(config, dims, trie, &tokens);
        Ok(Self { n, len, inputs, targets, mask, groups, slot })
    }

    /// The negatives of the batch whose row `j` is `batch_rows[j]` and whose queries are
    /// `queries`; `None` when none of its rows has any.
    fn batch(
        &self,
        queries: &Tensor<3>,
        batch_rows: &[usize],
        device: &Device,
    ) -> Option<Negatives> {
        let picked: Vec<(usize, usize)> = batch_rows
            .iter()
            .enumerate()
            .filter_map(|(j, &r)| self.slot.get(r).copied().flatten().map(|s| (j, s)))
            .collect();
        if picked.is_empty() {
            return None;
        }
        let (n, len, m) = (self.n, self.len, picked.len());
        let rows: Vec<usize> = picked.iter().flat_map(|&(_, r)| r * n..(r + 1) * n).collect();
        let repeat: Vec<i32> =
            picked.iter().flat_map(|&(j, _)| std::iter::repeat_n(j as i32, n)).collect();
        let own: Vec<i32> = picked.iter().map(|&(j, _)| j as i32).collect();
        fn gather<T: Copy>(table: &[T], rows: &[usize], len: usize) -> Vec<T> {
            rows.iter().flat_map(|&row| table[row * len..(row + 1) * len].iter().copied()).collect()
        }
        let mask = gather(&self.mask, &rows, len);
        Some(Negatives {
            rows: int_tensor(&own, [m], device),
            queries: queries.clone().select(0, int_tensor(&repeat, [m * n], device)),
            inputs: int_tensor(&gather(&self.inputs, &rows, len), [m * n, len], device),
            targets: int_tensor(&gather(&self.targets, &rows, len), [m * n, len], device),
            groups: self.groups.as_ref().map(|g| g.select(&rows, device)),
            mask: Tensor::from_data(TensorData::new(mask, [m, n, len]), device),
        })
    }
}

impl GeneratorConfig {
    /// Trains a generator on `data` (query vectors and their items, whose identifiers `trie`
    /// holds) with AdamW on `device` (autodiff is enabled internally) and returns it with its
    /// per-epoch history. The sizes ([`GeneratorDims`]) come from the data: the query width
    /// from `data.queries`, the vocabulary, identifier length and items from `trie`.
    ///
    /// With the dense head ([`GeneratorConfig::dense_head`]), its item table starts at
    /// `data.item_vectors` (each item's vector in the query space), so training starts from
    /// a tree search by subtree centroids; without item vectors it starts at zero.
    ///
    /// With `valid` pairs, every `eval_every` epochs the model searches them with the
    /// constrained beam search over `trie`, the Recall@K of `train.eval_ks` is recorded, and
    /// the model with the best recall at the first cut-off is returned (and saved to
    /// `train.checkpoint`, if set); the untrained model is a candidate too. Without, the last
    /// model is returned.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for bad settings,
    /// [`Error::EmptyData`], [`Error::DimMismatch`], [`Error::NonFinite`] for bad queries,
    /// [`Error::UnknownItem`] for an item without identifier, [`Error::Search`] if validation
    /// fails, [`Error::Io`] if the checkpoint cannot be written.
    pub fn fit(
        &self,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        trie: &IdTrie,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<(Generator, TrainHistory)> {
        self.fit_observed(data, valid, trie, train, device, &mut |_| {})
    }

    /// [`GeneratorConfig::fit`], reporting every batch and epoch to `observer`.
    ///
    /// # Errors
    ///
    /// As [`GeneratorConfig::fit`].
    pub fn fit_observed(
        &self,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        trie: &IdTrie,
        train: &TrainConfig,
        device: &Device,
        observer: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<(Generator, TrainHistory)> {
        let dims = GeneratorDims::for_trie(data.queries.ncols(), trie);
        if !self.dense_head {
            return self.train_from(None, &dims, data, valid, trie, train, device, observer);
        }
        train.validate()?;
        device.seed(train.seed);
        let mut start = self.init(&dims, device)?;
        if let Some(items) = data.item_vectors {
            start.set_dense_tables(items)?;
        }
        start.fit_more_observed(data, valid, trie, train, observer)
    }

    #[allow(clippy::too_many_arguments, reason = "the private core of the four public fits")]
    fn train_from(
        &self,
        start: Option<&GeneratorModel>,
        dims: &GeneratorDims,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        trie: &IdTrie,
        train: &TrainConfig,
        device: &Device,
        observer: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<(Generator, TrainHistory)> {
        self.validate(dims)?;
        train.validate()?;
        let layout = trie.layout();
        if layout.vocab_size() != dims.vocab_size || layout.id_len() != dims.id_len {
            return Err(Error::config(
                "vocab_size/id_len",
                format!("{}/{}", dims.vocab_size, dims.id_len),
                "must match the identifier layout",
            ));
        }
        if data.queries.ncols() != dims.query_width {
            return Err(Error::DimMismatch {
                what: "fit: query width",
                got: data.queries.ncols(),
                expected: dims.query_width,
            });
        }
        let ids = IdAssignment::from_trie(trie)?;
        let batches = Batches::new("fit", self, dims, data, &ids, trie)?;
        let valid = match valid {
            Some(v) => {
                check_queries("fit (validation)", v.queries, dims.query_width)?;
                if v.queries.nrows() != v.items.len() {
                    return Err(Error::DimMismatch {
                        what: "fit (validation): one item per query",
                        got: v.items.len(),
                        expected: v.queries.nrows(),
                    });
                }
                let relevant: Vec<Vec<u32>> = v.items.iter().map(|&i| vec![i]).collect();
                Some((v.queries, relevant))
            }
            None => None,
        };
        let top_k = train.eval_ks.iter().copied().max().unwrap_or(1);
        let search =
            BeamSearchConfig::default().with_beam_width(train.beam_width).with_top_k(top_k);

        let plain = device.clone().inner();
        let ad = plain.clone().autodiff();
        ad.seed(train.seed);
        let mut rng = StdRng::seed_from_u64(train.seed);
        let mut model = match start {
            // A fork gets its own autodiff graph on the training device; `train` undoes `valid`.
            Some(model) => model.clone().fork(&ad).train(),
            None => self.build(dims, &ad).initialized(),
        };
        let clip =
            (train.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(train.grad_clip as f32));
        let mut optim = AdamWConfig::new()
            .with_weight_decay(train.weight_decay as f32)
            .with_grad_clipping(clip)
            .init();

        let item_queries = if batches.n_item_rows() > 0 { train.item_queries } else { 0.0 };
        let n =
            batches.n_queries() + (item_queries * batches.n_item_rows() as f64).round() as usize;
        let batch_size = train.batch_size.min(n);
        let n_batches = n.div_ceil(batch_size);
        let total_steps = n_batches * train.n_epochs;
        let mut history = TrainHistory::default();
        let mut best: Option<(f64, Generator)> = None;
        // The starting model is a candidate too: training must not end below it.
        if let Some((queries, relevant)) = &valid {
            let generator = Generator::from_parts(self, dims, model.valid(), &plain);
            let ranked = generator.search(trie, search, *queries)?;
            history.start_valid = evaluate(&ranked, relevant, &train.eval_ks)?;
            observer(TrainEvent::Start(&history.start_valid));
            let score = history.start_valid.first().map_or(0.0, |m| m.recall);
            best = Some((score, generator));
        } else if train.n_epochs == 0 {
            let generator = Generator::from_parts(self, dims, model.valid(), &plain);
            best = Some((0.0, generator));
        }
        let mut step = 0;
        for epoch in 0..train.n_epochs {
            let start = Instant::now();
            // The ranking loss's negatives come from the model as it stands at the epoch's
            // start (the untrained tree search's beams in the first epoch).
            let lists = if train.rank_weight > 0.0 {
                let generator = Generator::from_parts(self, dims, model.clone().valid(), &plain);
                Some(RankLists::mine(
                    &generator, self, dims, trie, &ids, &batches, train, &mut rng,
                )?)
            } else {
                None
            };
            let order = batches.epoch_rows(item_queries, &mut rng);
            let mut sums = [0.0f64; 4];
            let mut lr = train.learning_rate;
            for (b, rows) in order.chunks(batch_size).enumerate() {
                let (q, i, t, g) = batches.batch(rows, train.interpolation, &mut rng, &ad);
                let negatives = lists.as_ref().and_then(|l| l.batch(&q, rows, &ad));
                let terms = loss_terms(
                    &model,
                    q,
                    i,
                    t,
                    g.as_ref(),
                    train.rdrop,
                    train.omega,
                    negatives,
                    train.rank_weight,
                );
                // One read-back per batch for the four terms.
                let values = Tensor::cat(
                    vec![
                        terms.total.clone().detach(),
                        terms.cross_entropy.detach(),
                        terms.rdrop.detach(),
                        terms.rank.detach(),
                    ],
                    0,
                );
                let values = values.into_data().try_into_vec_as::<f32>().map_err(Error::tensor)?;
                for (sum, v) in sums.iter_mut().zip(values) {
                    *sum += f64::from(v);
                }
                lr = train.lr(step, total_steps);
                let grads = GradientsParams::from_grads(terms.total.backward(), &model);
                model = optim.step(lr, model, grads);
                step += 1;
                observer(TrainEvent::Batch {
                    epoch,
                    n_epochs: train.n_epochs,
                    batch: b,
                    n_batches,
                    loss: sums[0] / (b + 1) as f64,
                });
            }
            let last = epoch + 1 == train.n_epochs;
            let mut metrics = Vec::new();
            let mut candidate = None;
            if let Some((queries, relevant)) = &valid
                && ((epoch + 1) % train.eval_every == 0 || last)
            {
                let generator = Generator::from_parts(self, dims, model.clone().valid(), &plain);
                let ranked = generator.search(trie, search, *queries)?;
                metrics = evaluate(&ranked, relevant, &train.eval_ks)?;
                let score = metrics.first().map_or(0.0, |m| m.recall);
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    candidate = Some((score, generator));
                }
            } else if valid.is_none() && last {
                let generator = Generator::from_parts(self, dims, model.clone().valid(), &plain);
                candidate = Some((0.0, generator));
            }
            if let Some((score, generator)) = candidate {
                if let Some(path) = &train.checkpoint {
                    generator.save(path)?;
                }
                history.best_epoch = epoch + 1;
                best = Some((score, generator));
            }
            let stats = EpochStats {
                epoch: epoch + 1,
                loss: sums[0] / n_batches as f64,
                cross_entropy: sums[1] / n_batches as f64,
                rdrop: sums[2] / n_batches as f64,
                rank: sums[3] / n_batches as f64,
                learning_rate: lr,
                valid: metrics,
                seconds: start.elapsed().as_secs_f64(),
            };
            observer(TrainEvent::Epoch(&stats));
            history.epochs.push(stats);
        }
        let generator = match best {
            Some((_, generator)) => generator,
            None => Generator::from_parts(self, dims, model.valid(), &plain),
        };
        Ok((generator, history))
    }
}

impl Generator {
    /// Trains this generator further, starting from its weights (e.g. one loaded from a
    /// checkpoint): the resume path. The optimizer state and the learning-rate schedule start
    /// afresh; everything else is as in [`GeneratorConfig::fit`] (the dense head's table is
    /// kept as it is).
    ///
    /// # Errors
    ///
    /// As [`GeneratorConfig::fit`], and [`Error::InvalidConfig`] if `trie` holds more items
    /// than the dense head's table.
    pub fn fit_more(
        &self,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        trie: &IdTrie,
        train: &TrainConfig,
    ) -> Result<(Generator, TrainHistory)> {
        self.fit_more_observed(data, valid, trie, train, &mut |_| {})
    }

    /// [`Generator::fit_more`], reporting every batch and epoch to `observer`.
    ///
    /// # Errors
    ///
    /// As [`Generator::fit_more`].
    pub fn fit_more_observed(
        &self,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        trie: &IdTrie,
        train: &TrainConfig,
        observer: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<(Generator, TrainHistory)> {
        let model = Some(&self.model);
        let (config, dims) = (&self.config, &self.dims);
        config.train_from(model, dims, data, valid, trie, train, &self.device, observer)
    }

    pub(crate) fn from_parts(
        config: &GeneratorConfig,
        dims: &GeneratorDims,
        model: GeneratorModel,
        device: &Device,
    ) -> Self {
        Generator { config: config.clone(), dims: dims.clone(), model, device: device.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_data().try_into_vec_as::<f32>().unwrap()[0])
    }

    fn tiny(dropout: f64) -> GeneratorConfig {
        GeneratorConfig::new()
            .with_dense_head(false)
            .with_d_model(16)
            .with_n_heads(2)
            .with_n_encoder_layers(2)
            .with_n_decoder_layers(1)
            .with_d_ff(32)
            .with_dropout(dropout)
    }

    fn terms(dropout: f64) -> (f64, f64) {
        let device = Device::flex().autodiff();
        device.seed(3);
        let config = tiny(dropout);
        let model = config.build(&GeneratorDims::new(6, 12, 3), &device);
        let q =
            Tensor::<3>::random([4, 1, 6], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let i = int_tensor(&[1, 3, 5, 1, 4, 6, 1, 3, 7, 1, 2, 8], [4, 3], &device);
        let t = int_tensor(&[3, 5, 9, 4, 6, 10, 3, 7, 11, 2, 8, 9], [4, 3], &device);
        let terms = loss_terms(&model, q, i, t, None, true, 1.0, None, 0.0);
        (scalar(terms.cross_entropy), scalar(terms.rdrop))
    }

    /// The ranking loss by hand: one target with two-token prefixes and two negatives, the
    /// first sharing the target's first token (so it competes only at the second position).
    #[test]
    fn rank_loss_is_the_prefix_softmax_cross_entropy() {
        let device = Device::flex();
        let (a, b, c) = ([-0.5f32, -1.0], [-0.2f32, -2.0], [-1.5f32, -0.1]);
        let pos = Tensor::<2>::from_data(TensorData::new(a.to_vec(), [1, 2]), &device);
        let neg = Tensor::<2>::from_data(TensorData::new([b, c].concat(), [2, 2]), &device);
        let mask =
            Tensor::<3>::from_data(TensorData::new(vec![0.0, 1.0, 1.0, 1.0], [1, 2, 2]), &device);
        let got = scalar(rank_loss(pos.clone(), neg.clone(), mask));
        let lse = |xs: &[f64]| xs.iter().map(|x| x.exp()).sum::<f64>().ln();
        let (a, b, c) = (a.map(f64::from), b.map(f64::from), c.map(f64::from));
        let first = lse(&[a[0], c[0]]) - a[0];
        let second = lse(&[a[0] + a[1], b[0] + b[1], c[0] + c[1]]) - (a[0] + a[1]);
        let want = 0.5 * (first + second);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let none = Tensor::<3>::zeros([1, 2, 2], &device);
        assert!(scalar(rank_loss(pos, neg, none)).abs() < 1e-6, "no competitors, no loss");
    }

    /// The batch, its negatives and R-Drop's second pass share one forward pass: without
    /// dropout, each term must equal the term computed on its own.
    #[test]
    fn negatives_and_rdrop_in_one_pass_give_the_separate_terms() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let model = tiny(0.0).build(&GeneratorDims::new(6, 12, 3), &device);
        let q =
            Tensor::<3>::random([4, 1, 6], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let i = int_tensor(&[1, 3, 5, 1, 4, 6, 1, 3, 7, 1, 2, 8], [4, 3], &device);
        let t = int_tensor(&[3, 5, 9, 4, 6, 10, 3, 7, 11, 2, 8, 9], [4, 3], &device);
        // rows 1 and 3 get one negative each: row 3's target, and row 0's
        let negatives = || Negatives {
            rows: int_tensor(&[1, 3], [2], &device),
            queries: q.clone().select(0, int_tensor(&[1, 3], [2], &device)),
            inputs: int_tensor(&[1, 2, 8, 1, 3, 5], [2, 3], &device),
            targets: int_tensor(&[2, 8, 9, 3, 5, 9], [2, 3], &device),
            groups: None,
            mask: Tensor::ones([2, 1, 3], &device),
        };
        let plain =
            loss_terms(&model, q.clone(), i.clone(), t.clone(), None, false, 1.0, None, 0.0);
        let ranked = |rdrop| {
            loss_terms(
                &model,
                q.clone(),
                i.clone(),
                t.clone(),
                None,
                rdrop,
                1.0,
                Some(negatives()),
                0.5,
            )
        };
        let (one, two) = (ranked(false), ranked(true));
        let ce = scalar(plain.cross_entropy);
        assert!((scalar(one.cross_entropy) - ce).abs() < 1e-5);
        assert!((scalar(two.cross_entropy) - ce).abs() < 1e-5);
        let rank = scalar(one.rank);
        assert!(rank > 0.0 && (scalar(two.rank) - rank).abs() < 1e-5, "{rank}");
        assert!((scalar(one.total) - (ce + 0.5 * rank)).abs() < 1e-5);
        assert!(scalar(two.rdrop).abs() < 1e-6, "no dropout, identical passes");
    }

    #[test]
    fn rdrop_term_is_positive_with_dropout_and_zero_without() {
        let (ce, kl) = terms(0.3);
        assert!(ce > 0.0 && ce.is_finite());
        assert!(kl > 1e-6, "two dropout masks must give different outputs: {kl}");
        let (ce, kl) = terms(0.0);
        assert!(ce > 0.0);
        assert!(kl.abs() < 1e-7, "no dropout, identical passes: {kl}");
    }

    /// The epoch's rows (item-as-query included) and the interpolated queries are drawn from
    /// the seed: the same seed draws the same, another seed draws differently.
    #[test]
    fn augmentation_is_deterministic_given_the_seed() {
        let layout = cart_ids::IdLayout::new(4, 1, 4, 2).unwrap();
        let ids = cart_ids::assign_ids(&layout, &[0, 1, 2, 3, 0], &[0, 1, 2, 3, 1]).unwrap();
        let trie = ids.to_trie().unwrap();
        let config = GeneratorConfig::new();
        let dims = GeneratorDims::for_trie(6, &trie);
        let queries: Vec<f32> = (0..8 * 6).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.4).collect();
        let items = [0u32, 1, 2, 3, 4, 0, 1, 2];
        let vectors: Vec<f32> = (0..5 * 6).map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5).collect();
        let q_view = ndarray::ArrayView2::from_shape((8, 6), &queries).unwrap();
        let v_view = ndarray::ArrayView2::from_shape((5, 6), &vectors).unwrap();
        let pairs = Pairs::new(q_view, &items).with_item_vectors(v_view);
        let batches = Batches::new("test", &config, &dims, pairs, &ids, &trie).unwrap();
        let device = Device::flex();
        let draw = |seed: u64| {
            let mut rng = StdRng::seed_from_u64(seed);
            let rows = batches.epoch_rows(1.0, &mut rng);
            let (q, _, t, _) = batches.batch(&rows, 0.5, &mut rng, &device);
            let q = q.into_data().try_into_vec_as::<f32>().unwrap();
            let t = t.into_data().try_into_vec_as::<i32>().unwrap();
            (rows, q, t)
        };
        let (rows, q, _) = draw(7);
        assert_eq!(rows.len(), 8 + 5, "every query row and every item once");
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7).1, draw(8).1);
        // interpolated rows are unit vectors; untouched rows are the query as given
        let mut interpolated = 0;
        for (r, z) in rows.iter().zip(q.chunks(6)) {
            let src = if *r < 8 {
                &queries[r * 6..(r + 1) * 6]
            } else {
                &vectors[(r - 8) * 6..(r - 7) * 6]
            };
            if z != src {
                interpolated += 1;
                assert!(*r < 8, "only query rows are interpolated");
                let norm = z.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5);
            }
        }
        assert!(interpolated > 0);
    }

    #[test]
    fn lr_warms_up_then_decays() {
        let c = TrainConfig::new().with_warmup(0.1).with_final_lr_ratio(0.1);
        assert!(c.lr(0, 100) < c.lr(9, 100));
        assert!((c.lr(9, 100) - 1e-3).abs() < 1e-12);
        assert!(c.lr(50, 100) < 1e-3);
        assert!((c.lr(100, 100) - 1e-4).abs() < 1e-9);
    }
}
