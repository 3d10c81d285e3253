//! RQ-VAE: an MLP auto-encoder whose latent is quantized by `M` residual codebooks.
//!
//! Method (CART, Fang et al., ACL 2025, see `docs/method.md`; RQ-VAE after Lee et al.,
//! CVPR 2022, and TIGER, Rajput et al., NeurIPS 2023): the encoder maps a vector `r` to a latent
//! `z`; level `m` picks `v_m = argmin_j ||z_{m-1} - e_m[j]||` and leaves `z_m = z_{m-1} - e_m[v_m]`;
//! the decoder reconstructs `r` from the sum of the chosen code vectors.
//!
//! Loss per batch, every term a per-item sum over dimensions averaged over the batch:
//! `||r - dec(zq)||^2 + sum_m ||sg(z_{m-1}) - e_m||^2 + beta * sum_m ||z_{m-1} - sg(e_m)||^2`,
//! with the straight-through estimator `zq = z + sg(sum_m e_m - z)`. Summing over dimensions
//! (not averaging over all elements) keeps the reconstruction term from being drowned by the
//! codebook terms, the cause of the codebook collapse reported in other projects.
//! Codebooks start as K-Means centroids of the first batch's residuals, and codes left unused
//! for an epoch are reset to random residuals of the last batch.

use std::fmt;
use std::time::Instant;

/// Most parameters an RQ-VAE config may ask for (4 GiB of `f32`): a typo in a size is a
/// typed error, not an allocation that aborts the process.
pub const MAX_PARAMS: usize = 1 << 30;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data::{self, CHUNK_ROWS};
use crate::kmeans::KMeansConfig;
use crate::quantizer::{Quantizer, check_codes};
use crate::{Error, Result};

/// Shape of an [`RqVae`]. `init` builds an untrained model, `fit` a trained one.
#[derive(Config, Debug)]
pub struct RqVaeConfig {
    /// Width of the input vectors.
    pub d_input: usize,
    /// Width of the latent that the codebooks quantize.
    #[config(default = 64)]
    pub d_latent: usize,
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    #[config(default = "vec![256, 128]")]
    pub d_hidden: Vec<usize>,
    /// Number of residual codebooks `M`.
    #[config(default = 3)]
    pub n_levels: usize,
    /// Codes per codebook `C`.
    #[config(default = 256)]
    pub codebook_size: usize,
    /// Weight of the commitment term.
    #[config(default = 0.25)]
    pub beta: f64,
}

/// How an [`RqVae`] is trained.
#[derive(Config, Debug)]
pub struct RqVaeTrainConfig {
    /// Passes over the data.
    #[config(default = 20)]
    pub n_epochs: usize,
    /// Items per Adam step.
    #[config(default = 1024)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,

    /// Seed for weights, shuffling, K-Means initialisation and dead-code resets. The weights
    /// come from burn's device RNG, which is one per process: a fit is reproducible as long as
    /// no other thread draws from that RNG while it starts.
    #[config(default = 0)]
    pub seed: u64,
    /// Initialise the codebooks by K-Means on the first batch (else: random latents).
    #[config(default = true)]
    pub kmeans_init: bool,
    /// Reset codes that no item of a window used to residuals of the batch that closes it.
    #[config(default = true)]
    pub reset_dead_codes: bool,
    /// Items per dead-code window; 0 means `32 * codebook_size` (at least one batch). Short
    /// windows catch a codebook that the moving encoder leaves behind within an epoch.
    #[config(default = 0)]
    pub dead_code_window: usize,
}

/// Where RQ-VAE training stands, reported to the observer of [`RqVaeConfig::fit_observed`]
/// (the library never prints: applications draw these as progress bars or log lines).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RqVaeEvent<'a> {
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
    /// An epoch finished.
    Epoch(&'a EpochStats),
}

/// What one training epoch did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean total loss over the batches.
    pub loss: f64,
    /// Mean reconstruction term (squared error summed over dimensions).
    pub reconstruction: f64,
    /// Mean codebook term.
    pub codebook: f64,
    /// Mean commitment term (before `beta`).
    pub commitment: f64,
    /// Fraction of each level's codes chosen by at least one item in the epoch.
    pub usage: Vec<f64>,
    /// Perplexity (`exp` of the entropy) of each level's code distribution in the epoch.
    pub perplexity: Vec<f64>,
    /// Codes reset at the end of the epoch, per level.
    pub n_reset: Vec<usize>,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// The per-epoch record of a training run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainHistory {
    /// One entry per epoch, in order.
    pub epochs: Vec<EpochStats>,
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usage: Vec<String> = self.usage.iter().map(|u| format!("{:.0}%", 100.0 * u)).collect();
        let ppl: Vec<String> = self.perplexity.iter().map(|p| format!("{p:.1}")).collect();
        write!(
            f,
            "epoch {:>3}  loss {:.5}  recon {:.5}  codebook {:.5}  commit {:.5}  usage [{}]  \
             perplexity [{}]  reset {:?}  {:.2}s",
            self.epoch,
            self.loss,
            self.reconstruction,
            self.codebook,
            self.commitment,
            usage.join(" "),
            ppl.join(" "),
            self.n_reset,
            self.seconds
        )
    }
}

impl fmt::Display for TrainHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for epoch in &self.epochs {
            writeln!(f, "{epoch}")?;
        }
        Ok(())
    }
}

/// The burn module: encoder, codebooks, decoder.
#[derive(Module, Debug)]
pub(crate) struct RqVaeModel {
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
    codebooks: Vec<Param<Tensor<2>>>,
}

/// A trained RQ-VAE and the config it was built from.
///
/// Implements [`Quantizer`]: `encode` gives the `M` codes of each vector, `decode` its
/// reconstruction.
#[derive(Debug, Clone)]
pub struct RqVae {
    config: RqVaeConfig,
    model: RqVaeModel,
    device: Device,
}

/// What a forward pass over one batch gives back.
struct Forward {
    loss: Tensor<1>,
    reconstruction: Tensor<1>,
    codebook: Tensor<1>,
    commitment: Tensor<1>,
    codes: Vec<Tensor<2, Int>>,
    residuals: Vec<Tensor<2>>,
}

fn mlp(widths: &[usize], device: &Device) -> Vec<Linear> {
    widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect()
}

fn mlp_forward(layers: &[Linear], mut x: Tensor<2>) -> Tensor<2> {
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(x);
        if i + 1 < layers.len() {
            x = relu(x);
        }
    }
    x
}

/// Touches every parameter once (see [`RqVaeModel::initialized`]).
struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

impl RqVaeModel {
    /// Draws every lazily initialised parameter now. burn initialises a parameter on its first
    /// use, from the device's RNG as it stands then; without this the weights would depend on
    /// whatever drew from that RNG between `build` and the first forward pass, not only on the
    /// seed.
    fn initialized(self) -> Self {
        self.visit(&mut Materialize);
        self
    }

    fn encode_latent(&self, x: Tensor<2>) -> Tensor<2> {
        mlp_forward(&self.encoder, x)
    }

    /// Codes (`[b, 1]` each) of a batch of latents, level by level.
    fn quantize(&self, z: Tensor<2>) -> Vec<Tensor<2, Int>> {
        let mut residual = z;
        let mut codes = Vec::with_capacity(self.codebooks.len());
        for codebook in &self.codebooks {
            let cb = codebook.val();
            let (idx, _) = data::nearest(residual.clone(), cb.clone(), data::row_sq(cb.clone()));
            let [b, _] = idx.dims();
            let e = cb.select(0, idx.clone().reshape([b]));
            residual = residual - e;
            codes.push(idx);
        }
        codes
    }

    fn decode_codes(&self, codes: &[Tensor<1, Int>]) -> Tensor<2> {
        let mut sum: Option<Tensor<2>> = None;
        for (codebook, idx) in self.codebooks.iter().zip(codes) {
            let e = codebook.val().select(0, idx.clone());
            sum = Some(match sum {
                Some(s) => s + e,
                None => e,
            });
        }
        let sum = sum.expect("an RqVae has at least one codebook (checked by its config)");
        mlp_forward(&self.decoder, sum)
    }

    /// The training forward pass with its three loss terms.
    fn forward_train(&self, x: Tensor<2>, beta: f64) -> Forward {
        let z = self.encode_latent(x.clone());
        let mut residual = z.clone();
        let mut sum = z.zeros_like();
        let mut codebook_loss: Option<Tensor<1>> = None;
        let mut commitment: Option<Tensor<1>> = None;
        let mut codes = Vec::with_capacity(self.codebooks.len());
        let mut residuals = Vec::with_capacity(self.codebooks.len());
        for codebook in &self.codebooks {
            let cb = codebook.val();
            let detached = residual.clone().detach();
            let cb_detached = cb.clone().detach();
            let (idx, _) =
                data::nearest(detached.clone(), cb_detached.clone(), data::row_sq(cb_detached));
            let [b, _] = idx.dims();
            let e = cb.select(0, idx.clone().reshape([b]));
            let cb_term = (detached.clone() - e.clone()).square().sum_dim(1).mean();
            let commit_term = (residual.clone() - e.clone().detach()).square().sum_dim(1).mean();
            codebook_loss = Some(codebook_loss.map_or(cb_term.clone(), |l| l + cb_term));
            commitment = Some(commitment.map_or(commit_term.clone(), |l| l + commit_term));
            residuals.push(detached);
            residual = residual - e.clone().detach();
            sum = sum + e.detach();
            codes.push(idx);
        }
        // Straight-through: the decoder sees the quantized latent, the encoder gets its gradient.
        let zq = z.clone() + (sum - z).detach();
        let x_hat = mlp_forward(&self.decoder, zq);
        let reconstruction = (x_hat - x).square().sum_dim(1).mean();
        let codebook = codebook_loss.expect("at least one codebook (checked by the config)");
        let commitment = commitment.expect("at least one codebook (checked by the config)");
        let loss = reconstruction.clone() + codebook.clone() + commitment.clone().mul_scalar(beta);
        Forward { loss, reconstruction, codebook, commitment, codes, residuals }
    }

    /// Replaces the values of codebook `level`, keeping its parameter id (and Adam state).
    fn set_codebook(&mut self, level: usize, values: Vec<f32>, device: &Device) {
        let old = &self.codebooks[level];
        let [c, d] = old.val().dims();
        let tensor = data::slice_tensor(&values, c, d, device).require_grad();
        self.codebooks[level] = Param::initialized(old.id, tensor);
    }
}

impl RqVaeConfig {
    fn validate(&self) -> Result<()> {
        let positive = [
            ("d_input", self.d_input),
            ("d_latent", self.d_latent),
            ("n_levels", self.n_levels),
            ("codebook_size", self.codebook_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, 0, "must be at least 1"));
            }
        }
        if self.d_hidden.contains(&0) {
            return Err(Error::config("d_hidden", format!("{:?}", self.d_hidden), "widths > 0"));
        }
        if self.codebook_size > i32::MAX as usize {
            return Err(Error::config("codebook_size", self.codebook_size, "must fit in an i32"));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config("beta", self.beta, "must be finite and >= 0"));
        }
        match self.n_params() {
            Some(n) if n <= MAX_PARAMS => Ok(()),
            n => Err(Error::config(
                "codebook_size",
                format!(
                    "{} (the model would have {} parameters)",
                    self.codebook_size,
                    n.map_or("over usize::MAX".into(), |n| n.to_string())
                ),
                "the model must stay within 2^30 parameters (see codebook_size, d_hidden, \
                 d_latent, n_levels)",
            )),
        }
    }

    /// Number of parameters of the model (encoder, decoder, codebooks); `None` on overflow.
    pub fn n_params(&self) -> Option<usize> {
        let mut widths = vec![self.d_input];
        widths.extend(&self.d_hidden);
        widths.push(self.d_latent);
        let mlp = widths.windows(2).try_fold(0usize, |acc, w| {
            acc.checked_add(w[0].checked_mul(w[1])?.checked_add(w[1])?)
        })?;
        let decoder = widths.windows(2).try_fold(0usize, |acc, w| {
            acc.checked_add(w[1].checked_mul(w[0])?.checked_add(w[0])?)
        })?;
        let codebooks =
            self.n_levels.checked_mul(self.codebook_size)?.checked_mul(self.d_latent)?;
        mlp.checked_add(decoder)?.checked_add(codebooks)
    }

    fn build(&self, device: &Device) -> RqVaeModel {
        let mut widths = vec![self.d_input];
        widths.extend(&self.d_hidden);
        widths.push(self.d_latent);
        let encoder = mlp(&widths, device);
        widths.reverse();
        let decoder = mlp(&widths, device);
        let codebooks = (0..self.n_levels)
            .map(|_| {
                let values = Tensor::random(
                    [self.codebook_size, self.d_latent],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    device,
                );
                Param::from_tensor(values)
            })
            .collect();
        RqVaeModel { encoder, decoder, codebooks }
    }

    /// An untrained model with random weights and codebooks.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero width, level count or codebook size.
    pub fn init(&self, device: &Device) -> Result<RqVae> {
        self.validate()?;
        let model = self.build(device).initialized();
        Ok(RqVae { config: self.clone(), model, device: device.clone() })
    }

    /// Trains an RQ-VAE on `data` (`[n, d_input]`) with Adam on `device` (autodiff is enabled
    /// internally) and returns it with its per-epoch history.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for bad settings, [`Error::EmptyData`], [`Error::DimMismatch`],
    /// [`Error::NonFinite`], and [`Error::TooFewPoints`] when `n < codebook_size` with
    /// K-Means initialisation.
    pub fn fit(
        &self,
        data: ArrayView2<'_, f32>,
        train: &RqVaeTrainConfig,
        device: &Device,
    ) -> Result<(RqVae, TrainHistory)> {
        self.fit_observed(data, train, device, &mut |_| {})
    }

    /// [`RqVaeConfig::fit`], reporting every batch and epoch to `observer`.
    ///
    /// # Errors
    ///
    /// As [`RqVaeConfig::fit`].
    pub fn fit_observed(
        &self,
        data: ArrayView2<'_, f32>,
        train: &RqVaeTrainConfig,
        device: &Device,
        observer: &mut dyn FnMut(RqVaeEvent<'_>),
    ) -> Result<(RqVae, TrainHistory)> {
        self.validate()?;
        train.validate()?;
        data::check_data("rq-vae fit", data, Some(self.d_input))?;
        let n = data.nrows();
        if train.kmeans_init && n < self.codebook_size {
            return Err(Error::TooFewPoints {
                what: "rq-vae codebook init",
                k: self.codebook_size,
                n,
            });
        }
        let plain = device.clone().inner();
        let ad = plain.clone().autodiff();
        ad.seed(train.seed);
        let mut rng = StdRng::seed_from_u64(train.seed);
        let mut model = self.build(&ad).initialized();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        if train.kmeans_init {
            model = self.kmeans_init(model, data, &order, train, &plain, &ad)?;
        }

        let mut optim = AdamConfig::new().init();
        let batch_size = train.batch_size.min(n);
        let n_batches = n.div_ceil(batch_size);
        let window = match train.dead_code_window {
            0 => 32 * self.codebook_size,
            w => w,
        };
        let mut window_counts = vec![vec![0usize; self.codebook_size]; self.n_levels];
        let mut window_items = 0;
        let mut history = TrainHistory::default();
        for epoch in 0..train.n_epochs {
            let start = Instant::now();
            order.shuffle(&mut rng);
            let mut counts = vec![vec![0usize; self.codebook_size]; self.n_levels];
            let mut sums = [0.0f64; 4];
            let mut n_reset = vec![0; self.n_levels];
            for (b, rows) in order.chunks(batch_size).enumerate() {
                let x = gather(data, rows, &ad);
                let out = model.forward_train(x, self.beta);
                // One read-back per batch for the four loss terms and one for all codes.
                let terms = Tensor::cat(
                    vec![
                        out.loss.clone().detach(),
                        out.reconstruction.detach(),
                        out.codebook.detach(),
                        out.commitment.detach(),
                    ],
                    0,
                );
                let terms = terms.into_data().try_into_vec_as::<f32>().map_err(Error::tensor)?;
                for (sum, term) in sums.iter_mut().zip(terms) {
                    *sum += f64::from(term);
                }
                let codes = data::to_u32(Tensor::cat(out.codes, 1))?;
                for row in codes.chunks_exact(self.n_levels) {
                    for (level, &code) in row.iter().enumerate() {
                        counts[level][code as usize] += 1;
                        window_counts[level][code as usize] += 1;
                    }
                }
                window_items += rows.len();
                let residuals = out.residuals;
                let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                model = optim.step(train.learning_rate, model, grads);
                let last_step = epoch + 1 == train.n_epochs && b + 1 == n_batches;
                if train.reset_dead_codes && window_items >= window && !last_step {
                    for (level, residual) in residuals.into_iter().enumerate() {
                        let c = &window_counts[level];
                        n_reset[level] +=
                            reset_dead(&mut model, level, c, residual, &mut rng, &ad)?;
                    }
                    window_counts.iter_mut().for_each(|c| c.fill(0));
                    window_items = 0;
                }
                observer(RqVaeEvent::Batch {
                    epoch,
                    n_epochs: train.n_epochs,
                    batch: b,
                    n_batches,
                    loss: sums[0] / (b + 1) as f64,
                });
            }
            let stats = EpochStats {
                epoch: epoch + 1,
                loss: sums[0] / n_batches as f64,
                reconstruction: sums[1] / n_batches as f64,
                codebook: sums[2] / n_batches as f64,
                commitment: sums[3] / n_batches as f64,
                usage: counts.iter().map(|c| usage(c)).collect(),
                perplexity: counts.iter().map(|c| perplexity(c)).collect(),
                n_reset,
                seconds: start.elapsed().as_secs_f64(),
            };
            observer(RqVaeEvent::Epoch(&stats));
            history.epochs.push(stats);
        }
        let model = model.valid();
        Ok((RqVae { config: self.clone(), model, device: plain }, history))
    }

    /// Sets every codebook to K-Means centroids of the first batch's residual latents.
    fn kmeans_init(
        &self,
        mut model: RqVaeModel,
        data: ArrayView2<'_, f32>,
        order: &[usize],
        train: &RqVaeTrainConfig,
        plain: &Device,
        ad: &Device,
    ) -> Result<RqVaeModel> {
        let rows = &order[..train.batch_size.max(self.codebook_size).min(order.len())];
        let x = gather(data, rows, ad);
        let z = data::to_f32(model.encode_latent(x).detach())?;
        let mut residual =
            Array2::from_shape_vec((rows.len(), self.d_latent), z).map_err(Error::tensor)?;
        for level in 0..self.n_levels {
            let kmeans = KMeansConfig::new(self.codebook_size)
                .with_n_runs(1)
                .with_max_iters(25)
                .with_seed(train.seed.wrapping_add(level as u64))
                .fit(residual.view(), plain)?;
            let (labels, _) = kmeans.assign(residual.view())?;
            crate::residual::subtract_centroids(&mut residual, &kmeans, &labels);
            model.set_codebook(level, kmeans.centroids().iter().copied().collect(), ad);
        }
        Ok(model)
    }
}

impl RqVaeTrainConfig {
    fn validate(&self) -> Result<()> {
        if self.n_epochs == 0 {
            return Err(Error::config("n_epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", 0, "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::config(
                "learning_rate",
                self.learning_rate,
                "must be finite and > 0",
            ));
        }

        Ok(())
    }
}

/// Rows `rows` of `data` as a tensor on `device`.
fn gather(data: ArrayView2<'_, f32>, rows: &[usize], device: &Device) -> Tensor<2> {
    let mut values = Vec::with_capacity(rows.len() * data.ncols());
    for &r in rows {
        values.extend(data.row(r).iter().copied());
    }
    data::vec_tensor(values, rows.len(), data.ncols(), device)
}

/// Resets the unused codes of `level` to random rows of that level's residuals; returns how many.
fn reset_dead(
    model: &mut RqVaeModel,
    level: usize,
    counts: &[usize],
    residual: Tensor<2>,
    rng: &mut StdRng,
    device: &Device,
) -> Result<usize> {
    let dead: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if dead.is_empty() {
        return Ok(0);
    }
    let [b, d] = residual.dims();
    let residual = data::to_f32(residual)?;
    let mut values = data::to_f32(model.codebooks[level].val().detach())?;
    for &c in &dead {
        let r = rng.random_range(0..b);
        values[c * d..(c + 1) * d].copy_from_slice(&residual[r * d..(r + 1) * d]);
    }
    model.set_codebook(level, values, device);
    Ok(dead.len())
}

/// Fraction of codes with a non-zero count.
pub(crate) fn usage(counts: &[usize]) -> f64 {
    counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len().max(1) as f64
}

/// `exp` of the entropy of the code distribution: the number of equally used codes it equals.
pub(crate) fn perplexity(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum();
    entropy.exp()
}

impl RqVae {
    /// The config the model was built from.
    pub fn config(&self) -> &RqVaeConfig {
        &self.config
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Codebook `level` as a `[codebook_size, d_latent]` array.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] if the values cannot be read back, [`Error::InvalidConfig`] for a level
    /// past the last.
    pub fn codebook(&self, level: usize) -> Result<Array2<f32>> {
        let cb = self
            .model
            .codebooks
            .get(level)
            .ok_or_else(|| Error::config("level", level, "past the last codebook"))?;
        let values = data::to_f32(cb.val())?;
        Array2::from_shape_vec((self.config.codebook_size, self.config.d_latent), values)
            .map_err(Error::tensor)
    }

    pub(crate) fn model(&self) -> &RqVaeModel {
        &self.model
    }

    pub(crate) fn from_model(config: RqVaeConfig, model: RqVaeModel, device: &Device) -> Self {
        Self { config, model, device: device.clone() }
    }

    /// The model of `config`, for weights of `weight_bytes` bytes: refused before anything is
    /// allocated when the config needs more parameters than the weights can hold (a forged or
    /// damaged header must not allocate gigabytes).
    pub(crate) fn build_for_load(
        config: &RqVaeConfig,
        weight_bytes: usize,
        device: &Device,
    ) -> Result<RqVaeModel> {
        config.validate()?;
        let needed = config.n_params().and_then(|n| n.checked_mul(4));
        if needed.is_none_or(|n| n > weight_bytes) {
            return Err(Error::config(
                "rq-vae config",
                format!("{weight_bytes} weight bytes"),
                "the stored config needs more parameters than the stored weights hold",
            ));
        }
        Ok(config.build(device))
    }
}

impl Quantizer for RqVae {
    fn d_input(&self) -> usize {
        self.config.d_input
    }

    fn codebook_sizes(&self) -> Vec<usize> {
        vec![self.config.codebook_size; self.config.n_levels]
    }

    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>> {
        data::check_data("rq-vae encode", data, Some(self.config.d_input))?;
        let n = data.nrows();
        let m = self.config.n_levels;
        let mut codes = Vec::with_capacity(n * m);
        for start in (0..n).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(n);
            let x = data::rows_tensor(data, start, end, &self.device);
            let levels = self.model.quantize(self.model.encode_latent(x));
            // `[b, m]`, row-major: exactly the layout of the output rows.
            codes.extend(data::to_u32(Tensor::cat(levels, 1))?);
        }
        let codes = Array2::from_shape_vec((n, m), codes)?;
        Ok(codes)
    }

    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        check_codes("rq-vae decode", codes, &self.codebook_sizes())?;
        let n = codes.nrows();
        let d = self.config.d_input;
        let mut out = Vec::with_capacity(n * d);
        for start in (0..n).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(n);
            let idx: Vec<Tensor<1, Int>> = (0..self.config.n_levels)
                .map(|level| {
                    let column: Vec<u32> = (start..end).map(|i| codes[[i, level]]).collect();
                    data::index_tensor(&column, &self.device)
                })
                .collect();
            out.extend(data::to_f32(self.model.decode_codes(&idx))?);
        }
        Array2::from_shape_vec((n, d), out).map_err(Error::tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::{perplexity, usage};

    #[test]
    fn perplexity_counts_equally_used_codes() {
        assert!((perplexity(&[5, 5, 5, 5]) - 4.0).abs() < 1e-9);
        assert!((perplexity(&[20, 0, 0, 0]) - 1.0).abs() < 1e-9);
        assert!(perplexity(&[10, 5, 0, 1]) < 3.0);
        assert!(perplexity(&[0, 0]).abs() < 1e-12);
        assert!((usage(&[1, 0, 3, 0]) - 0.5).abs() < 1e-12);
    }
}
