//! Checks on the [`ArrayView2`] matrices the index takes (one row per vector), and the
//! row-major buffers it keeps internally.

use std::borrow::Cow;

use ndarray::ArrayView2;

use crate::{Error, Result};

/// `values` as `[len / width, width]` rows.
pub(crate) fn rows(values: &[f32], width: usize) -> Result<ArrayView2<'_, f32>> {
    let bad = || Error::DimMismatch {
        what: "row-major buffer",
        got: if width == 0 { 0 } else { values.len() % width },
        expected: width,
    };
    if width == 0 {
        return Err(bad());
    }
    ArrayView2::from_shape((values.len() / width, width), values).map_err(|_| bad())
}

/// The values of `view` row-major, borrowed when it is contiguous.
pub(crate) fn flat<'a>(view: ArrayView2<'a, f32>) -> Cow<'a, [f32]> {
    match view.to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(view.iter().copied().collect()),
    }
}

/// Fails with [`Error::DimMismatch`] unless rows are `expected` wide.
pub(crate) fn expect_dim(
    view: ArrayView2<'_, f32>,
    what: &'static str,
    expected: usize,
) -> Result<()> {
    if view.ncols() == expected {
        Ok(())
    } else {
        Err(Error::DimMismatch { what, got: view.ncols(), expected })
    }
}

/// Fails with [`Error::NonFinite`] at the first NaN or infinite value.
pub(crate) fn check_finite(view: ArrayView2<'_, f32>, what: &'static str) -> Result<()> {
    match view.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some(((row, index), &value)) => Err(Error::NonFinite { what, row, index, value }),
    }
}
