//! The one error type of `cart-quant`.

use std::path::PathBuf;

/// Errors returned by `cart-quant`.
///
/// Every problem in data, configs or files is reported here; the library does not panic on bad
/// input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data has no rows or no columns.
    #[error("{what}: the data is empty ({n_rows} rows x {n_cols} columns)")]
    EmptyData {
        /// What was being fitted or encoded.
        what: &'static str,
        /// Number of rows given.
        n_rows: usize,
        /// Number of columns given.
        n_cols: usize,
    },
    /// A value in the data is NaN or infinite.
    #[error("{what}: value at row {row}, column {col} is not finite ({value})")]
    NonFinite {
        /// What was being fitted or encoded.
        what: &'static str,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
        /// The bad value.
        value: f32,
    },
    /// A value is finite but so large that squared distances overflow `f32` (the codes would
    /// be meaningless): magnitudes up to [`MAX_ABS_VALUE`](crate::MAX_ABS_VALUE) are taken.
    #[error(
        "{what}: value at row {row}, column {col} is {value}, beyond +-1e16 where squared \
         distances overflow f32; scale the vectors down (e.g. normalise them)"
    )]
    TooLarge {
        /// What was being fitted or encoded.
        what: &'static str,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
        /// The bad value.
        value: f32,
    },
    /// The vectors have a different width than the quantizer expects.
    #[error("{what}: vectors have {got} dimensions, expected {expected}")]
    DimMismatch {
        /// What was being encoded or decoded.
        what: &'static str,
        /// Width given.
        got: usize,
        /// Width the quantizer was fitted on.
        expected: usize,
    },
    /// More clusters (codes) were asked for than there are points to fit them on.
    #[error("{what}: asked for {k} clusters but there are only {n} points")]
    TooFewPoints {
        /// What was being fitted.
        what: &'static str,
        /// Number of clusters asked for.
        k: usize,
        /// Number of points available.
        n: usize,
    },
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
    /// A code is outside its codebook, or a code row has the wrong number of levels.
    #[error(
        "{what}: code {code} at row {row}, level {level} is out of range (codebook size {size})"
    )]
    CodeOutOfRange {
        /// What was being decoded.
        what: &'static str,
        /// Row of the bad code.
        row: usize,
        /// Level (column) of the bad code.
        level: usize,
        /// The bad code.
        code: u32,
        /// Size of that level's codebook.
        size: usize,
    },
    /// The linfa K-Means engine failed.
    #[error("linfa k-means failed: {0}")]
    Linfa(#[from] linfa_clustering::KMeansError),
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
    /// A checkpoint file is corrupt, truncated, of another kind or of another version.
    #[error("bad checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A config could not be turned into or read from JSON.
    #[error("config json: {0}")]
    Json(#[from] serde_json::Error),
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
}

// Shape errors only arise from broken internal invariants; report them like a backend failure.
impl From<ndarray::ShapeError> for Error {
    fn from(err: ndarray::ShapeError) -> Self {
        Error::tensor(err)
    }
}
