//! Training: teacher-forced cross-entropy + R-Drop, AdamW with warmup and cosine decay, gradient
//! clipping, validation Recall@K through the constrained beam search, best checkpoint.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::IdAssignment;
use cart_search::{BeamSearchConfig, RetrievalMetrics, evaluate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::generator::{Generator, Pairs, check_queries, decoder_inputs, int_tensor, query_tensor};
use crate::model::{GeneratorConfig, GeneratorModel};
use crate::progress::Progress;
use crate::{Error, Result};

/// How a [`Generator`] is trained ([`GeneratorConfig::fit`]).
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training pairs. Default: 20.
    #[config(default = 20)]
    pub n_epochs: usize,
    /// Pairs per optimizer step. Default: 256.
    #[config(default = 256)]
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
    /// Add the R-Drop term (symmetric KL between two dropout passes). Default: `true`.
    #[config(default = true)]
    pub rdrop: bool,
    /// Weight `omega` of the R-Drop term. Default: 1.0.
    #[config(default = 1.0)]
    pub omega: f64,
    /// Seed for the weights, the shuffling and dropout. Default: 0.
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
    /// Draw a progress bar and per-epoch lines on stderr. Default: `true`.
    #[config(default = true)]
    pub progress: bool,
}

impl TrainConfig {
    fn validate(&self) -> Result<()> {
        let positive = [
            ("n_epochs", self.n_epochs),
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
        let non_negative = [
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
            ("omega", self.omega),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::config(field, value, "must be finite and >= 0"));
            }
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
    /// Mean training loss over the batches (cross-entropy + omega * R-Drop).
    pub loss: f64,
    /// Mean token cross-entropy.
    pub cross_entropy: f64,
    /// Mean R-Drop term (symmetric KL per token, before omega; 0 when off).
    pub rdrop: f64,
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
    /// The epoch whose model was returned (the best validation recall at the first cut-off).
    pub best_epoch: usize,
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:>3}  loss {:.4}  ce {:.4}  rdrop {:.4}  lr {:.2e}",
            self.epoch, self.loss, self.cross_entropy, self.rdrop, self.learning_rate
        )?;
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
        let mut out = String::from("epoch,loss,cross_entropy,rdrop,learning_rate,seconds");
        for k in &ks {
            out.push_str(&format!(",recall@{k},mrr@{k}"));
        }
        out.push('\n');
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{}",
                e.epoch, e.loss, e.cross_entropy, e.rdrop, e.learning_rate, e.seconds
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
}

/// Mean negative log-likelihood of `targets` (`[n, t]`) under `logp` (`[n, t, vocab]`).
fn nll(logp: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [n, t] = targets.dims();
    logp.gather(2, targets.reshape([n, t, 1])).mean().neg()
}

/// Cross-entropy, and with `rdrop` the symmetric KL `0.5 * (KL(p1||p2) + KL(p2||p1))` per token
/// between two passes with independent dropout masks (R-Drop, Liang et al., NeurIPS 2021).
/// Both passes run as one doubled batch.
pub(crate) fn loss_terms(
    model: &GeneratorModel,
    queries: Tensor<3>,
    inputs: Tensor<2, Int>,
    targets: Tensor<2, Int>,
    rdrop: bool,
    omega: f64,
) -> LossTerms {
    let [b, _] = targets.dims();
    if !rdrop {
        let ce = nll(log_softmax(model.forward(queries, inputs), 2), targets);
        return LossTerms { total: ce.clone(), rdrop: ce.zeros_like(), cross_entropy: ce };
    }
    let queries = Tensor::cat(vec![queries.clone(), queries], 0);
    let inputs = Tensor::cat(vec![inputs.clone(), inputs], 0);
    let targets = Tensor::cat(vec![targets.clone(), targets], 0);
    let logp = log_softmax(model.forward(queries, inputs), 2);
    let ce = nll(logp.clone(), targets);
    let lp1 = logp.clone().slice(s![0..b]);
    let lp2 = logp.slice(s![b..2 * b]);
    // (p1 - p2)(log p1 - log p2) >= 0 term by term, so the sum is >= 0 even in floats.
    let kl =
        ((lp1.clone().exp() - lp2.clone().exp()) * (lp1 - lp2)).sum_dim(2).mean().mul_scalar(0.5);
    LossTerms { total: ce.clone() + kl.clone().mul_scalar(omega), cross_entropy: ce, rdrop: kl }
}

/// Training pairs checked and turned into decoder inputs and targets.
pub(crate) struct Batches {
    queries: Vec<f32>,
    inputs: Vec<i32>,
    targets: Vec<i32>,
    width: usize,
    len: usize,
}

impl Batches {
    pub(crate) fn new(
        what: &'static str,
        config: &GeneratorConfig,
        pairs: Pairs<'_>,
        ids: &IdAssignment,
    ) -> Result<Self> {
        let width = config.query_width();
        let n = check_queries(what, pairs.queries, width)?;
        if n != pairs.items.len() {
            return Err(Error::DimMismatch { what, got: pairs.queries.len(), expected: width });
        }
        if n == 0 {
            return Err(Error::EmptyData { what });
        }
        let len = config.id_len;
        let mut tokens = Vec::with_capacity(n * len);
        for &item in pairs.items {
            let id = ids.id(item as usize).ok_or(Error::UnknownItem {
                what,
                item,
                n_items: ids.len(),
            })?;
            tokens.extend_from_slice(id);
        }
        let inputs = decoder_inputs(&tokens, len, config.vocab_size)?;
        let targets = tokens.iter().map(|&t| t as i32).collect();
        Ok(Self { queries: pairs.queries.to_vec(), inputs, targets, width, len })
    }

    fn len(&self) -> usize {
        self.queries.len() / self.width
    }

    /// `(queries, inputs, targets)` tensors of the rows `rows`.
    pub(crate) fn batch(
        &self,
        config: &GeneratorConfig,
        rows: &[usize],
        device: &Device,
    ) -> (Tensor<3>, Tensor<2, Int>, Tensor<2, Int>) {
        let (w, l) = (self.width, self.len);
        let mut q = Vec::with_capacity(rows.len() * w);
        let mut i = Vec::with_capacity(rows.len() * l);
        let mut t = Vec::with_capacity(rows.len() * l);
        for &r in rows {
            q.extend_from_slice(&self.queries[r * w..(r + 1) * w]);
            i.extend_from_slice(&self.inputs[r * l..(r + 1) * l]);
            t.extend_from_slice(&self.targets[r * l..(r + 1) * l]);
        }
        (
            query_tensor(config, &q, rows.len(), device),
            int_tensor(&i, [rows.len(), l], device),
            int_tensor(&t, [rows.len(), l], device),
        )
    }
}

impl GeneratorConfig {
    /// Trains a generator on `data` (query vectors and their items, whose identifiers `ids`
    /// holds) with AdamW on `device` (autodiff is enabled internally) and returns it with its
    /// per-epoch history.
    ///
    /// With `valid` pairs, every `eval_every` epochs the model searches them with the
    /// constrained beam search over `ids`' trie, the Recall@K of `train.eval_ks` is recorded,
    /// and the model with the best recall at the first cut-off is returned (and saved to
    /// `train.checkpoint`, if set). Without, the last model is returned.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for bad settings or a layout that does not match the config,
    /// [`Error::EmptyData`], [`Error::DimMismatch`], [`Error::NonFinite`] for bad queries,
    /// [`Error::UnknownItem`] for an item without identifier, [`Error::Search`] if validation
    /// fails, [`Error::Io`] if the checkpoint cannot be written.
    pub fn fit(
        &self,
        train: &TrainConfig,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        ids: &IdAssignment,
        device: &Device,
    ) -> Result<(Generator, TrainHistory)> {
        self.train_from(None, train, data, valid, ids, device)
    }

    fn train_from(
        &self,
        start: Option<&GeneratorModel>,
        train: &TrainConfig,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        ids: &IdAssignment,
        device: &Device,
    ) -> Result<(Generator, TrainHistory)> {
        self.validate()?;
        train.validate()?;
        let layout = ids.layout();
        if layout.vocab_size() != self.vocab_size || layout.id_len() != self.id_len {
            return Err(Error::config(
                "vocab_size/id_len",
                format!("{}/{}", self.vocab_size, self.id_len),
                "must match the identifier layout",
            ));
        }
        let batches = Batches::new("fit", self, data, ids)?;
        let valid = match valid {
            Some(v) => {
                let n = check_queries("fit (validation)", v.queries, self.query_width())?;
                if n != v.items.len() {
                    return Err(Error::DimMismatch {
                        what: "fit (validation)",
                        got: v.queries.len(),
                        expected: self.query_width(),
                    });
                }
                let relevant: Vec<Vec<u32>> = v.items.iter().map(|&i| vec![i]).collect();
                Some((v.queries, relevant))
            }
            None => None,
        };
        let trie = ids.to_trie()?;
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
            None => self.build(&ad),
        };
        let clip =
            (train.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(train.grad_clip as f32));
        let mut optim = AdamWConfig::new()
            .with_weight_decay(train.weight_decay as f32)
            .with_grad_clipping(clip)
            .init();

        let n = batches.len();
        let batch_size = train.batch_size.min(n);
        let n_batches = n.div_ceil(batch_size);
        let total_steps = n_batches * train.n_epochs;
        let mut order: Vec<usize> = (0..n).collect();
        let progress = Progress::new(train.progress, train.n_epochs);
        let mut history = TrainHistory::default();
        let mut best: Option<(f64, Generator)> = None;
        let mut step = 0;
        for epoch in 0..train.n_epochs {
            let start = Instant::now();
            order.shuffle(&mut rng);
            let mut sums = [0.0f64; 3];
            let mut lr = train.learning_rate;
            for (b, rows) in order.chunks(batch_size).enumerate() {
                let (q, i, t) = batches.batch(self, rows, &ad);
                let terms = loss_terms(&model, q, i, t, train.rdrop, train.omega);
                // One read-back per batch for the three terms.
                let values = Tensor::cat(
                    vec![
                        terms.total.clone().detach(),
                        terms.cross_entropy.detach(),
                        terms.rdrop.detach(),
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
                progress.batch(epoch, b, n_batches, sums[0] / (b + 1) as f64);
            }
            let last = epoch + 1 == train.n_epochs;
            let mut metrics = Vec::new();
            let mut candidate = None;
            if let Some((queries, relevant)) = &valid
                && ((epoch + 1) % train.eval_every == 0 || last)
            {
                let generator = Generator {
                    config: self.clone(),
                    model: model.clone().valid(),
                    device: plain.clone(),
                };
                let ranked = generator.search(&trie, search, queries)?;
                metrics = evaluate(&ranked, relevant, &train.eval_ks)?;
                let score = metrics.first().map_or(0.0, |m| m.recall);
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    candidate = Some((score, generator));
                }
            } else if valid.is_none() && last {
                let generator = Generator {
                    config: self.clone(),
                    model: model.clone().valid(),
                    device: plain.clone(),
                };
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
                learning_rate: lr,
                valid: metrics,
                seconds: start.elapsed().as_secs_f64(),
            };
            progress.epoch(&stats.to_string());
            history.epochs.push(stats);
        }
        let generator = match best {
            Some((_, generator)) => generator,
            None => Generator { config: self.clone(), model: model.valid(), device: plain },
        };
        Ok((generator, history))
    }
}

impl Generator {
    /// Trains this generator further, starting from its weights (e.g. one loaded from a
    /// checkpoint): the resume path. The optimizer state and the learning-rate schedule start
    /// afresh; everything else is as in [`GeneratorConfig::fit`].
    ///
    /// # Errors
    ///
    /// As [`GeneratorConfig::fit`].
    pub fn fit_more(
        &self,
        train: &TrainConfig,
        data: Pairs<'_>,
        valid: Option<Pairs<'_>>,
        ids: &IdAssignment,
    ) -> Result<(Generator, TrainHistory)> {
        self.config.train_from(Some(&self.model), train, data, valid, ids, &self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_data().try_into_vec_as::<f32>().unwrap()[0])
    }

    fn tiny(dropout: f64) -> GeneratorConfig {
        GeneratorConfig::new(6, 12, 3)
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
        let model = config.build(&device);
        let q =
            Tensor::<3>::random([4, 1, 6], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let i = int_tensor(&[1, 3, 5, 1, 4, 6, 1, 3, 7, 1, 2, 8], [4, 3], &device);
        let t = int_tensor(&[3, 5, 9, 4, 6, 10, 3, 7, 11, 2, 8, 9], [4, 3], &device);
        let terms = loss_terms(&model, q, i, t, true, 1.0);
        (scalar(terms.cross_entropy), scalar(terms.rdrop))
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

    #[test]
    fn lr_warms_up_then_decays() {
        let c = TrainConfig::new().with_warmup(0.1).with_final_lr_ratio(0.1);
        assert!(c.lr(0, 100) < c.lr(9, 100));
        assert!((c.lr(9, 100) - 1e-3).abs() < 1e-12);
        assert!(c.lr(50, 100) < 1e-3);
        assert!((c.lr(100, 100) - 1e-4).abs() < 1e-9);
    }
}
