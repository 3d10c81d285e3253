//! The error type of `cart-ids`.

use std::path::PathBuf;

/// Errors returned by `cart-ids`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layout parameter is zero or the vocabulary does not fit in `u32`.
    #[error("invalid identifier layout: {reason}")]
    InvalidLayout {
        /// What is wrong with it.
        reason: String,
    },
    /// A code value is outside the range of its position.
    #[error(
        "value {value} at position {position} is out of range (this position takes 0..{limit})"
    )]
    ValueOutOfRange {
        /// Position in the identifier (0 = coarse, 1..=M fine, M+1 uniqueness).
        position: usize,
        /// The offending value.
        value: u32,
        /// Exclusive upper bound for values at this position.
        limit: u32,
    },
    /// A token does not belong to the position it was found at.
    #[error("token {token} is not valid at position {position}")]
    TokenOutOfRange {
        /// Position in the identifier.
        position: usize,
        /// The offending token.
        token: u32,
    },
    /// An identifier or a code row has the wrong number of entries.
    #[error("expected {expected} entries, got {got}")]
    LengthMismatch {
        /// Entries expected.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// More items share one `[k, v1..vM]` tuple than the uniqueness position can tell apart.
    #[error(
        "{needed} items share the codes {codes:?}, but the uniqueness position holds only \
         {available} values: raise `n_unique` to at least {needed}"
    )]
    UniqueOverflow {
        /// Size of the largest colliding group (the `n_unique` that would be needed).
        needed: usize,
        /// Values the uniqueness position has (`n_unique`).
        available: u32,
        /// The codes `[k, v1..vM]` of (one of) the largest groups.
        codes: Vec<u32>,
    },
    /// The same identifier was given to two items.
    #[error("identifier {id:?} is given to both item {first} and item {second}")]
    DuplicateId {
        /// The identifier tokens.
        id: Vec<u32>,
        /// One item holding it.
        first: u32,
        /// The other item.
        second: u32,
    },
    /// The same item was given twice.
    #[error("item {item} appears more than once")]
    DuplicateItem {
        /// The item key.
        item: u32,
    },
    /// An item key is reserved or too large.
    #[error("item key {item} is not allowed (keys must be below {limit})")]
    InvalidItem {
        /// The item key.
        item: u32,
        /// Exclusive upper bound for keys.
        limit: u32,
    },
    /// The item is not in the trie.
    #[error("item {item} is not in the trie")]
    UnknownItem {
        /// The item key.
        item: u32,
    },
    /// The uniqueness values of a code tuple are all taken.
    #[error("every uniqueness value for the codes {codes:?} is taken ({available} values)")]
    NoFreeUnique {
        /// The codes `[k, v1..vM]`.
        codes: Vec<u32>,
        /// Values the uniqueness position has.
        available: u32,
    },
    /// The trie would hold more nodes than `u32` can index.
    #[error("the trie would exceed u32::MAX nodes at one depth")]
    TooLarge,
    /// An I/O error while reading or writing `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid trie file: bad magic, truncated, checksum mismatch or inconsistent.
    #[error("corrupt trie file {path}: {reason}")]
    Corrupt {
        /// The file (empty when decoding from memory).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A trie file written by an incompatible format version.
    #[error("trie file {path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
}

/// `Result` with this crate's [`Error`] as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
