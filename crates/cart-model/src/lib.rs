//! The CART generator: a small encoder-decoder transformer that reads a query vector and writes
//! the semantic identifier `[k, v1..vM, u]` of the item to retrieve.
//!
//! Method: Fang et al., "CART: A Generative Cross-Modal Retrieval Framework With Coarse-To-Fine
//! Semantic Modeling", ACL 2025 (see `docs/method.md`). Identifiers come from
//! `cart-ids` (made from item vectors by `cart-quant`, or any quantizer); retrieval is the
//! trie-constrained beam search of `cart-search`, which this crate drives through
//! [`cart_search::Scorer`].
//!
//! - [`Generator`] ([`GeneratorConfig`] for the architecture, [`GeneratorDims`] for the sizes
//!   the data sets): the model. The query is projected into a few memory
//!   tokens and encoded by `S` layers; the decoder's cross-attention is the coarse-to-fine
//!   feature fusion over all `S` layer outputs (or plain cross-attention, for the ablation).
//! - [`GeneratorConfig::fit`] ([`TrainConfig`]): teacher-forced cross-entropy + R-Drop, AdamW
//!   with warmup and cosine decay, gradient clipping, validation Recall@K with the real
//!   constrained beam search every epoch, best checkpoint, [`TrainHistory`] (JSON or CSV).
//! - [`GeneratorScorer`] ([`Generator::scorer`]): incremental decoding with a key/value cache
//!   that follows the beams, batched over queries; [`Generator::search`] wraps it.
//! - [`Generator::save`] / [`Generator::load`]: config JSON + weights in one checksummed file.
//!
//! # Example
//!
//! ```
//! use burn::prelude::Device;
//! use cart_ids::{IdLayout, assign_ids};
//! use cart_model::{GeneratorConfig, Pairs, TrainConfig};
//! use cart_search::BeamSearchConfig;
//! use ndarray::Array2;
//!
//! let device = Device::flex();
//! // 8 items with identifiers [k, v1, u]: 2 coarse codes, one level of 4 codes.
//! let layout = IdLayout::new(2, 1, 4, 1)?;
//! let coarse: Vec<u32> = (0..8).map(|i| i / 4).collect();
//! let fine: Vec<u32> = (0..8).map(|i| i % 4).collect();
//! let ids = assign_ids(&layout, &coarse, &fine)?;
//! // One query vector of width 8 per item (bring your encoder's vectors instead).
//! let queries = Array2::from_shape_fn((8, 8), |(i, j)| if i == j { 1.0f32 } else { 0.0 });
//! let items: Vec<u32> = (0..8).collect();
//! let pairs = Pairs::new(queries.view(), &items).with_item_vectors(queries.view());
//!
//! // the architecture; the sizes (query width, vocabulary, items) come from the data
//! let config = GeneratorConfig::new()
//!     .with_d_model(32)
//!     .with_n_heads(2)
//!     .with_n_encoder_layers(1)
//!     .with_n_decoder_layers(1)
//!     .with_d_ff(64)
//!     .with_dropout(0.0);
//! let train = TrainConfig::new().with_n_epochs(3).with_batch_size(8);
//! let trie = ids.to_trie()?;
//! // the library never prints: pass an observer to see the run (here: count the epochs)
//! let mut epochs = 0;
//! let (generator, history) =
//!     config.fit_observed(pairs, Some(pairs), &trie, &train, &device, &mut |e| {
//!         if let cart_model::TrainEvent::Epoch(_) = e {
//!             epochs += 1;
//!         }
//!     })?;
//! assert_eq!((history.epochs.len(), epochs), (3, 3));
//!
//! let hits = generator.search(&trie, BeamSearchConfig::default().with_top_k(3), queries.view())?;
//! assert_eq!(hits.len(), 8); // up to 3 ranked items per query
//! # Ok::<(), cart_model::Error>(())
//! ```
//!
//! # Features
//!
//! The library picks no backend: every `init`, `fit` and `load` takes a burn
//! [`Device`](burn::prelude::Device), and the application enables the backend it wants.
//!
//! | feature | effect |
//! | --- | --- |
//! | `flex` | burn's pure-Rust CPU backend, with its SIMD kernels and threads (`Device::flex()`) |
//! | `wgpu` | burn's GPU backend through wgpu (`Device::wgpu(..)`); the same code runs on it |
//! | `ndarray` | burn's deprecated ndarray CPU backend |
//!
//! Training always runs on `device.autodiff()`; it needs no extra feature.

mod error;
mod generator;
mod io;
mod model;
mod scorer;
mod train;

pub use error::{Error, Result};
pub use generator::{Generator, Pairs};
pub use io::{FORMAT_VERSION, KIND};
pub use model::{GeneratorConfig, GeneratorDims};
/// The matrix type of every public boundary ([`ndarray::ArrayView2`], one row per vector).
pub use ndarray;
pub use scorer::GeneratorScorer;
pub use train::{EpochStats, TrainConfig, TrainEvent, TrainHistory};
