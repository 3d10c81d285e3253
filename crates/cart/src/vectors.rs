//! [`Vectors`]: a borrowed row-major matrix, the boundary type of the index.

use ndarray::ArrayView2;

use crate::{Error, Result};

/// Borrowed row-major vectors: `data.len() / dim` rows of `dim` values.
///
/// The index takes every matrix this way (plain `&[f32]` plus a width), so vectors can come
/// from `.npy` files, an embedding server or another tensor library without a copy.
///
/// ```
/// use cart::Vectors;
///
/// let v = Vectors::new(&[1.0, 0.0, 0.0, 1.0, 0.5, 0.5], 2)?;
/// assert_eq!((v.len(), v.dim()), (3, 2));
/// assert_eq!(v.row(2), Some(&[0.5, 0.5][..]));
/// assert!(Vectors::new(&[1.0, 2.0, 3.0], 2).is_err()); // ragged
/// # Ok::<(), cart::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Vectors<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> Vectors<'a> {
    /// Rows of `dim` values from `data`.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] for `dim == 0` or a length that is not a multiple of `dim`.
    /// Values are checked for NaN/inf where they are used.
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::DimMismatch {
                what: "vectors",
                got: if dim == 0 { 0 } else { data.len() % dim },
                expected: dim,
            });
        }
        Ok(Self { data, dim })
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i`, if there is one.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        self.data.get(i * self.dim..(i + 1) * self.dim)
    }

    /// The same values as an `ndarray` view (`[len, dim]`).
    pub fn view(&self) -> ArrayView2<'a, f32> {
        ArrayView2::from_shape((self.len(), self.dim), self.data)
            .expect("Vectors::new checked that the length is a multiple of dim")
    }

    /// Fails with [`Error::DimMismatch`] unless rows are `expected` wide.
    pub(crate) fn expect_dim(&self, what: &'static str, expected: usize) -> Result<()> {
        if self.dim == expected {
            Ok(())
        } else {
            Err(Error::DimMismatch { what, got: self.dim, expected })
        }
    }

    /// Fails with [`Error::NonFinite`] at the first NaN or infinite value.
    pub(crate) fn check_finite(&self, what: &'static str) -> Result<()> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(i) => Err(Error::NonFinite {
                what,
                row: i / self.dim,
                index: i % self.dim,
                value: self.data[i],
            }),
        }
    }
}
