//! Generative cross-modal retrieval: CART (Fang et al., "CART: A Generative Cross-Modal
//! Retrieval Framework With Coarse-To-Fine Semantic Modeling", ACL 2025) in one index type.
//!
//! Classic retrieval scores a query against every candidate. CART gives every candidate (an
//! image, an audio clip, a video: in practice its embedding vector) a short semantic
//! identifier `[k, v1..vM, u]` and trains a small seq2seq model to *generate* the identifier
//! from the query; a beam search constrained to the identifiers that exist returns the top
//! items.
//!
//! [`CartIndex::fit`] does all of it from item vectors and (query vector, item) training pairs:
//!
//! 1. the quantizer ([`cart_quant`]) gives each item codes `[k, v1..vM]`: a K-Means cluster
//!    and RQ-VAE codes of the residual;
//! 2. [`cart_ids`] adds the suffix `u` that makes colliding codes unique and builds the prefix
//!    trie of valid identifiers;
//! 3. [`cart_model`] trains the generator (encoder-decoder transformer with coarse-to-fine
//!    fusion, cross-entropy + R-Drop);
//! 4. [`CartIndex::search`] runs [`cart_search`]'s constrained beam search with the generator
//!    as scorer, optionally re-ranking the beams by dense similarity.
//!
//! The four crates are re-exported ([`ids`], [`quant`], [`model`], [`search`]) for everything
//! the index does not wrap. [`synthetic`] draws seeded clustered corpora for benches and scale
//! tests.
//!
//! # Example
//!
//! ```
//! use burn::prelude::Device;
//! use cart::synthetic::SyntheticConfig;
//! use cart::{CartIndex, Corpus, IndexConfig, SearchOptions};
//!
//! // 200 synthetic items with 3 training queries each (bring your encoders' vectors instead).
//! let data = SyntheticConfig::new(200).with_dims(16, 16).generate()?;
//! // each matrix is an `ndarray::ArrayView2<f32>`, one row per vector
//! let corpus = Corpus::new(data.items.view(), data.train_queries.view(), &data.train_items)
//!     .with_rerank(data.items_in_query_space.view());
//!
//! let mut config = IndexConfig::residual(8, 2, 8);
//! config.train = config.train.with_n_epochs(2);
//! config.generator = config.generator.with_d_model(32).with_d_ff(64);
//! let index = CartIndex::fit(&config, corpus, &Device::flex())?;
//!
//! let hits = index.search_with(data.test_queries.view(), SearchOptions::new(5).with_rerank(true))?;
//! assert_eq!(hits.len(), data.test_items.len());
//! println!("{}", index.diagnostics());
//! # Ok::<(), cart::Error>(())
//! ```
//!
//! # Features
//!
//! | feature | effect |
//! | --- | --- |
//! | `flex` (default) | burn's pure-Rust CPU backend, with SIMD kernels and threads (`Device::flex()`) |
//! | `wgpu` | burn's GPU backend through wgpu (`Device::wgpu(..)`): the same code on a GPU |
//! | `ndarray` | burn's deprecated ndarray CPU backend |
//!
//! Every `fit` and `load` takes a burn [`Device`](burn::prelude::Device); training runs on its
//! autodiff form internally.

mod config;
mod dense;
mod error;
mod events;
mod index;
mod rows;
mod store;
pub mod synthetic;

pub use cart_ids::MAX_UNIQUE;
pub use config::{IdVectors, IndexConfig, QuantizerConfig, SearchMode, SearchOptions};
pub use dense::{DEFAULT_FUSE_LAMBDA, supervised_centroids};
pub use error::{Error, Result};
pub use events::Event;
pub use index::{CartIndex, Corpus, FineTune, IndexQuantizer, NewItems};
pub use store::{FORMAT, FORMAT_VERSION};

pub use cart_ids as ids;
pub use cart_model as model;
pub use cart_quant as quant;
pub use cart_search as search;

pub use cart_search::Hit;
/// The matrix type of every public boundary: [`ndarray::ArrayView2`], one row per vector.
pub use ndarray;

/// The README's Rust snippets, compiled as doctests (`cargo test --doc -p cart`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
