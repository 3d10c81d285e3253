//! The one error type of `cart`.

use std::path::PathBuf;

/// Errors returned by `cart`: its own checks, plus those of the crates it composes.
///
/// Bad data, configs, item keys and index files are reported here; the library does not panic
/// on bad input, and an operation that fails leaves the index as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or inconsistent with the data.
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value, printed.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// A vector buffer does not hold whole rows of the expected width.
    #[error("{what}: got {got} values per row (or a ragged buffer), expected {expected}")]
    DimMismatch {
        /// Which vectors.
        what: &'static str,
        /// Width (or remainder) found.
        got: usize,
        /// Width expected.
        expected: usize,
    },
    /// Two inputs that must be parallel have different lengths.
    #[error("{what}: {left} vs {right}")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// First length.
        left: usize,
        /// Second length.
        right: usize,
    },
    /// There is nothing to build from.
    #[error("{what} is empty")]
    EmptyData {
        /// What is empty.
        what: &'static str,
    },
    /// A value is NaN or infinite.
    #[error("{what}: value {index} of row {row} is not finite ({value})")]
    NonFinite {
        /// Which vectors.
        what: &'static str,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// An item key that the index does not hold.
    #[error("unknown item {item}: the index holds items 0..{n_items}")]
    UnknownItem {
        /// The key.
        item: u32,
        /// Number of items in the index.
        n_items: usize,
    },
    /// Re-ranking was asked for (or new items came without re-rank vectors) but the index has
    /// no dense vectors, or the other way round.
    #[error("re-rank vectors: {0}")]
    Rerank(&'static str),
    /// The quantizer failed (bad data or config).
    #[error(transparent)]
    Quant(#[from] cart_quant::Error),
    /// Identifier assignment or the trie failed (for example no free uniqueness suffix left).
    #[error(transparent)]
    Ids(#[from] cart_ids::Error),
    /// The generator failed (bad config, data or checkpoint).
    #[error(transparent)]
    Model(#[from] cart_model::Error),
    /// The dense search failed.
    #[error(transparent)]
    Search(#[from] cart_search::Error),
    /// Reading or writing an index directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An index directory is damaged, incomplete, from another version, or not an index.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        Self::InvalidConfig { field, value: value.to_string(), reason }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::Format { path: path.into(), reason: reason.to_string() }
    }
}
