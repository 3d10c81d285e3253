//! Vector quantizers that turn item vectors into semantic identifiers.
//!
//! This crate is the quantizer of CART (Fang et al., "CART: A Generative Cross-Modal Retrieval
//! Framework With Coarse-To-Fine Semantic Modeling", ACL 2025): every item vector `x` gets the
//! codes `[k, v1, .., vM]`, where `k` is its nearest K-Means centroid and `v1..vM` are the codes
//! an RQ-VAE gives the residual `x - c_k`. It stands alone: use it for semantic ids in a
//! recommender, for compression, or for any retrieval system that needs discrete codes.
//!
//! - [`KMeans`] ([`KMeansConfig`]): k-means++ and Lloyd on burn tensors (CPU or GPU), with
//!   `linfa-clustering` as a selectable reference engine ([`KMeansEngine`]).
//! - [`RqVae`] ([`RqVaeConfig`], [`RqVaeTrainConfig`]): MLP encoder, `M` residual codebooks of
//!   `C` codes and MLP decoder, trained with Adam; returns a per-epoch [`TrainHistory`].
//! - [`CoarseToFine`] ([`CoarseToFineConfig`]): K-Means coarse code, RQ-VAE on the residual.
//! - [`ResidualQuantizer`] ([`ResidualQuantizerConfig`]): residual K-Means, no neural network;
//!   the cheap alternative and the paper's "without RQ-VAE" ablation.
//!
//! All of them implement [`Quantizer`] (`encode`: `[n, d]` -> `[n, levels]` codes, `decode`: the
//! way back), save to and load from one checksummed file each, and can be measured with
//! [`Diagnostics`] (code usage, perplexity, collisions, reconstruction error, self-recall).
//! Data comes in as `ndarray` 0.16 views (the version `linfa` uses, so nothing is copied at that
//! boundary); bad data, configs and files give an [`Error`], never a panic.
//!
//! # Example
//!
//! ```
//! use burn::prelude::Device;
//! use cart_quant::{
//!     CoarseToFineConfig, Diagnostics, KMeansConfig, Quantizer, RqVaeConfig, RqVaeTrainConfig,
//! };
//! use ndarray::Array2;
//!
//! let device = Device::flex();
//! // 64 item vectors of width 8; bring your encoder's vectors instead.
//! let data = Array2::from_shape_fn((64, 8), |(i, j)| ((i * 7 + j * 3) % 17) as f32 / 17.0);
//! let config = CoarseToFineConfig::new(
//!     KMeansConfig::new(4).with_seed(1),
//!     RqVaeConfig::new(8).with_d_hidden(vec![16]).with_d_latent(4).with_codebook_size(8),
//! )
//! .with_train(RqVaeTrainConfig::new().with_n_epochs(2).with_batch_size(32));
//! let (quantizer, history) = config.fit(data.view(), &device)?;
//! assert_eq!(history.epochs.len(), 2);
//!
//! let codes = quantizer.encode(data.view())?; // one row [k, v1, v2, v3] per item
//! assert_eq!(codes.dim(), (64, 4));
//! let vectors = quantizer.decode(codes.view())?; // the vectors the codes stand for
//! assert_eq!(vectors.dim(), (64, 8));
//! println!("{}", Diagnostics::compute(&quantizer, data.view(), 64, &device)?);
//! # Ok::<(), cart_quant::Error>(())
//! ```
//!
//! # Features
//!
//! The library picks no backend: every fit and load takes a burn [`Device`](burn::prelude::Device),
//! and the application enables the backend it wants.
//!
//! | feature | effect |
//! | --- | --- |
//! | `flex` | burn's pure-Rust CPU backend, with its SIMD kernels and threads (`Device::flex()`) |
//! | `wgpu` | burn's GPU backend through wgpu (`Device::wgpu(..)`); the same code runs on it |
//! | `cuda` | burn's CUDA backend (`Device::cuda(0)`) |
//! | `ndarray` | burn's deprecated ndarray CPU backend |
//!
//! Training always runs on `device.autodiff()`; it needs no extra feature.

mod coarse;
mod data;
mod diagnostics;
mod error;
mod io;
mod kmeans;
mod quantizer;
mod residual;
mod rqvae;

pub use coarse::{CoarseToFine, CoarseToFineConfig};
pub use data::MAX_ABS_VALUE;
pub use diagnostics::Diagnostics;
pub use error::{Error, Result};
pub use io::{AnyQuantizer, FORMAT_VERSION, KIND};
pub use kmeans::{KMeans, KMeansConfig, KMeansEngine};
pub use quantizer::Quantizer;
pub use residual::{ResidualQuantizer, ResidualQuantizerConfig};
pub use rqvae::{
    EpochStats, MAX_PARAMS, RqVae, RqVaeConfig, RqVaeEvent, RqVaeTrainConfig, TrainHistory,
};
