//! The one trait every quantizer implements.

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};

/// Maps vectors to tuples of codes, one code per level, and back.
///
/// Implemented by [`KMeans`](crate::KMeans) (one level), [`ResidualQuantizer`](crate::ResidualQuantizer),
/// [`RqVae`](crate::RqVae) and [`CoarseToFine`](crate::CoarseToFine). Level `l` takes codes in
/// `0..codebook_sizes()[l]`.
pub trait Quantizer {
    /// Width of the vectors this quantizer takes.
    fn d_input(&self) -> usize;

    /// Codebook size of every level, in code order.
    fn codebook_sizes(&self) -> Vec<usize>;

    /// Number of codes per vector.
    fn n_levels(&self) -> usize {
        self.codebook_sizes().len()
    }

    /// Codes of every row of `data`.
    ///
    /// # Shapes
    ///
    /// `data`: `[n, d_input]` -> `[n, n_levels]`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`], [`Error::DimMismatch`] or [`Error::NonFinite`] for bad data.
    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>>;

    /// The vectors the codes stand for.
    ///
    /// # Shapes
    ///
    /// `codes`: `[n, n_levels]` -> `[n, d_input]`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`], [`Error::DimMismatch`] (wrong number of levels) or
    /// [`Error::CodeOutOfRange`].
    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>>;
}

/// Checks the shape and range of a code matrix.
pub(crate) fn check_codes(
    what: &'static str,
    codes: ArrayView2<'_, u32>,
    sizes: &[usize],
) -> Result<()> {
    let (n_rows, n_cols) = codes.dim();
    if n_rows == 0 || n_cols == 0 {
        return Err(Error::EmptyData { what, n_rows, n_cols });
    }
    if n_cols != sizes.len() {
        return Err(Error::DimMismatch { what, got: n_cols, expected: sizes.len() });
    }
    for (row, values) in codes.outer_iter().enumerate() {
        for (level, (&code, &size)) in values.iter().zip(sizes).enumerate() {
            if code as usize >= size {
                return Err(Error::CodeOutOfRange { what, row, level, code, size });
            }
        }
    }
    Ok(())
}
