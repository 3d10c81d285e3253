//! The error type of `cart-search`.

/// Errors returned by `cart-search`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scorer's vocabulary is not the trie's.
    #[error("scorer vocabulary has {got} tokens, the identifier layout has {expected}")]
    VocabMismatch {
        /// The layout's vocabulary size.
        expected: usize,
        /// The scorer's.
        got: usize,
    },
    /// The scorer gave NaN for an allowed token.
    #[error("scorer returned NaN for token {token} of beam {beam} at position {position}")]
    NanScore {
        /// Position being decoded.
        position: usize,
        /// Beam index in the step's batch.
        beam: usize,
        /// The token.
        token: u32,
    },
    /// The scorer failed.
    #[error("scorer failed: {0}")]
    Scorer(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A parameter is out of range (beam width 0, top-k 0, ...).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A vector's length does not match the index dimension.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The index dimension (or a multiple of it).
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A vector holds NaN or infinity.
    #[error("{what} {index} holds a NaN or infinite value")]
    NonFinite {
        /// `"item"` or `"query"`.
        what: &'static str,
        /// Its row.
        index: usize,
    },
    /// A vector has zero norm, so its cosine is undefined.
    #[error("{what} {index} has zero norm (cosine undefined)")]
    ZeroVector {
        /// `"item"` or `"query"`.
        what: &'static str,
        /// Its row.
        index: usize,
    },
    /// The index holds no vector.
    #[error("the dense index is empty")]
    EmptyIndex,
    /// An item key outside the index.
    #[error("item {item} is not in the index ({n_items} items)")]
    UnknownItem {
        /// The key.
        item: u32,
        /// Items in the index.
        n_items: usize,
    },
    /// Two lists that must be parallel have different lengths.
    #[error("{what}: {left} vs {right} entries")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// One length.
        left: usize,
        /// The other.
        right: usize,
    },
    /// A query in an evaluation has no relevant item.
    #[error("query {query} has no relevant item")]
    NoRelevant {
        /// The query.
        query: usize,
    },
}

/// `Result` with this crate's [`Error`] as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
