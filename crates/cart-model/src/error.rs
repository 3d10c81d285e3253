//! The one error type of `cart-model`.

use std::path::PathBuf;

/// Errors returned by `cart-model`.
///
/// Bad query vectors, tokens, configs and checkpoint files are reported here; the library does
/// not panic on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its valid range.
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field name.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// A query buffer's length is not a multiple of the query width the model expects.
    #[error("{what}: {got} values do not make whole queries of {expected} values each")]
    DimMismatch {
        /// What was being run.
        what: &'static str,
        /// Number of values given.
        got: usize,
        /// Values per query (`n_query_vectors * d_query`).
        expected: usize,
    },
    /// There is nothing to train on or to search for.
    #[error("{what}: no data")]
    EmptyData {
        /// What was being run.
        what: &'static str,
    },
    /// A query vector holds NaN or an infinity.
    #[error("{what}: value {index} of query {query} is not finite ({value})")]
    NonFinite {
        /// What was being run.
        what: &'static str,
        /// The query.
        query: usize,
        /// Position of the bad value inside the query.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// A token is outside the model's vocabulary, or an identifier has the wrong length.
    #[error(
        "{what}: token {token} at position {position} is out of range (vocabulary {vocab_size})"
    )]
    UnknownToken {
        /// What was being run.
        what: &'static str,
        /// The bad token.
        token: u32,
        /// Its position.
        position: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A training pair names an item that has no identifier.
    #[error("{what}: item {item} has no identifier ({n_items} items)")]
    UnknownItem {
        /// What was being run.
        what: &'static str,
        /// The item.
        item: u32,
        /// Number of items with an identifier.
        n_items: usize,
    },
    /// The beam search drove the scorer in a way it cannot follow (a broken caller).
    #[error("scorer protocol: {reason}")]
    Protocol {
        /// What went wrong.
        reason: String,
    },
    /// A tensor could not be read back from the device.
    #[error("tensor read-back failed: {message}")]
    Tensor {
        /// The backend's message.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is corrupt, truncated, of another kind or of another version, or its
    /// weights do not match its config.
    #[error("bad checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A config or history could not be turned into or read from JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// An identifier or trie operation failed.
    #[error(transparent)]
    Ids(#[from] cart_ids::Error),
    /// The beam search failed.
    #[error(transparent)]
    Search(#[from] cart_search::Error),
}

/// `Result` with this crate's [`Error`] as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn tensor(err: impl std::fmt::Display) -> Self {
        Self::Tensor { message: err.to_string() }
    }

    pub(crate) fn config(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        Self::InvalidConfig { field, value: value.to_string(), reason }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        Self::Protocol { reason: reason.into() }
    }
}
