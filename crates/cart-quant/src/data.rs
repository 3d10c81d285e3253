//! Checks on input data and the `ndarray` <-> burn tensor boundary.
//!
//! The public API takes `ndarray` views (the version linfa uses, so the linfa engine reads them
//! without a copy); tensors are built from row-major `f32` slices in chunks of
//! [`CHUNK_ROWS`] rows so that an `n x k` distance matrix never has to fit in memory at once.

use burn::prelude::*;
use ndarray::{ArrayView2, Axis, Slice};

use crate::{Error, Result};

/// Largest magnitude of an input value: `(1e16)^2` times a width of up to a million still fits
/// in `f32`, so squared distances cannot overflow.
pub const MAX_ABS_VALUE: f32 = 1e16;

/// Rows per tensor chunk in assignment and encoding.
pub(crate) const CHUNK_ROWS: usize = 16_384;

/// Checks that `data` is non-empty, `expected` wide (when given) and finite.
pub(crate) fn check_data(
    what: &'static str,
    data: ArrayView2<'_, f32>,
    expected: Option<usize>,
) -> Result<()> {
    let (n_rows, n_cols) = data.dim();
    if n_rows == 0 || n_cols == 0 {
        return Err(Error::EmptyData { what, n_rows, n_cols });
    }
    if let Some(expected) = expected
        && n_cols != expected
    {
        return Err(Error::DimMismatch { what, got: n_cols, expected });
    }
    for (row, values) in data.outer_iter().enumerate() {
        if let Some((col, &value)) =
            values.iter().enumerate().find(|(_, v)| !v.is_finite() || v.abs() > MAX_ABS_VALUE)
        {
            return Err(match value.is_finite() {
                false => Error::NonFinite { what, row, col, value },
                true => Error::TooLarge { what, row, col, value },
            });
        }
    }
    Ok(())
}

/// Copies rows `start..end` of `data` into a `[end - start, d]` tensor on `device`.
pub(crate) fn rows_tensor(
    data: ArrayView2<'_, f32>,
    start: usize,
    end: usize,
    device: &Device,
) -> Tensor<2> {
    // `slice_axis`, not `s![..]`: the macro expands to an `allow(unsafe_code)` our `forbid` rejects.
    let view = data.slice_axis(Axis(0), Slice::from(start..end));
    let values: Vec<f32> = match view.as_slice() {
        Some(slice) => slice.to_vec(),
        None => view.iter().copied().collect(),
    };
    vec_tensor(values, end - start, data.ncols(), device)
}

/// Builds a `[rows, cols]` tensor from a row-major slice.
pub(crate) fn slice_tensor(values: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    vec_tensor(values.to_vec(), rows, cols, device)
}

/// Builds a `[rows, cols]` tensor from row-major values, without a copy on the host.
pub(crate) fn vec_tensor(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// Reads a float tensor back as `f32` values.
pub(crate) fn to_f32(tensor: Tensor<2>) -> Result<Vec<f32>> {
    tensor.into_data().try_into_vec_as::<f32>().map_err(Error::tensor)
}

/// Reads an int tensor back as `u32` values (indices are never negative).
pub(crate) fn to_u32<const D: usize>(tensor: Tensor<D, Int>) -> Result<Vec<u32>> {
    let values = tensor.into_data().try_into_vec_as::<i64>().map_err(Error::tensor)?;
    Ok(values.into_iter().map(|v| u32::try_from(v).unwrap_or(u32::MAX)).collect())
}

/// Builds an int index tensor on `device`.
pub(crate) fn index_tensor(indices: &[u32], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i32> = indices.iter().map(|&v| i32::try_from(v).unwrap_or(i32::MAX)).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

/// Nearest row of `codebook` (`[k, d]`, with `codebook_sq` = its squared norms as `[1, k]`)
/// for every row of `x` (`[b, d]`): the indices and the squared distances.
///
/// Uses `||x||^2 - 2 x c^T + ||c||^2`, one matmul per chunk.
pub(crate) fn nearest(
    x: Tensor<2>,
    codebook: Tensor<2>,
    codebook_sq: Tensor<2>,
) -> (Tensor<2, Int>, Tensor<2>) {
    let x_sq = x.clone().square().sum_dim(1);
    let dots = x.matmul(codebook.transpose());
    let dist = dots.mul_scalar(-2.0).add(x_sq).add(codebook_sq);
    let (min, idx) = dist.min_dim_with_indices(1);
    (idx, min.clamp_min(0.0))
}

/// Squared norms of the rows of `codebook` as a `[1, k]` tensor.
pub(crate) fn row_sq(codebook: Tensor<2>) -> Tensor<2> {
    codebook.square().sum_dim(1).transpose()
}
