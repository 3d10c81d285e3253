//! Semantic identifiers for generative retrieval (CART, Fang et al., ACL 2025).
//!
//! Every candidate item gets one short identifier `[k, v1..vM, u]`: a coarse cluster `k`, `M`
//! fine codes, and a suffix `u` that tells apart items whose codes collide. A generator writes
//! identifiers token by token; this crate says which tokens exist and which may come next.
//!
//! - [`IdLayout`]: positions, per-position token ranges, vocabulary size and control tokens.
//! - [`assign_ids`]: one distinct identifier per item from its codes, deterministically.
//! - [`IdTrie`]: the prefix trie of all identifiers as flat arrays: allowed next tokens as a
//!   borrowed slice, identifier <-> item both ways, batch insert and remove, an atomic,
//!   checksummed binary file.
//! - [`IdDiagnostics`]: collision rate, largest collision group, items per prefix, suffix histogram.
//!
//! ```
//! use cart_ids::{IdLayout, IdTrie, assign_ids};
//!
//! // 3 items, K = 4 clusters, M = 2 levels of 8 codes, up to 4 items per code tuple
//! let layout = IdLayout::new(4, 2, 8, 4)?;
//! let coarse = [1, 1, 2];
//! let fine = [5, 3, 5, 3, 0, 7]; // items 0 and 1 collide on [1, 5, 3]
//! let ids = assign_ids(&layout, &coarse, &fine)?;
//! let trie = ids.to_trie()?;
//!
//! // decoding starts at the root: only clusters 1 and 2 are allowed
//! assert_eq!(trie.allowed(&[]), &[layout.token(0, 1)?, layout.token(0, 2)?]);
//! assert_eq!(trie.get(ids.id(1).unwrap()), Some(1));
//!
//! let report = trie.diagnostics();
//! assert_eq!(report.largest_group, 2);
//! println!("{report}");
//!
//! let path = std::env::temp_dir().join("cart-ids-doc-example.trie");
//! trie.save(&path)?;
//! assert_eq!(IdTrie::load(&path)?, trie);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), cart_ids::Error>(())
//! ```
//!
//! # File format
//! [`IdTrie::save`] writes a [`cart_format`] container of kind `cart-trie` (version
//! [`FORMAT_VERSION`]): the layout, node counts per depth and the flat arrays as little-endian
//! `u32`, checksummed by the container. Loading checks all of it, and every
//! structural invariant, before handing out a trie; a truncated, corrupt or other-version file is
//! an [`Error`], never a panic. The trie also implements `serde` (validated the same way).
//!
//! # Features
//! This crate has no optional features and no dependency on burn.

mod assign;
mod diagnostics;
mod error;
mod layout;
mod persist;
mod trie;

pub use assign::{IdAssignment, MAX_UNIQUE, assign_codes, assign_ids, split_codes};
pub use diagnostics::{DepthStats, IdDiagnostics};
pub use error::{Error, Result};
pub use layout::{IdLayout, MAX_ID_LEN, SemanticId, Token, TokenKind};
/// The matrix type of the code matrices ([`ndarray::ArrayView2`], one row per item).
pub use ndarray;
pub use persist::{FORMAT_VERSION, KIND, write_atomic};
pub use trie::{Children, IdTrie, MAX_ITEM, Node};
