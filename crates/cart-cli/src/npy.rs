//! `.npy` files in and out, through [`npyz`]: float16/32/64 matrices as `f32`, integer item
//! indices as `u32`, and the search results as `int64` ids and `float32` scores (faiss'
//! convention: `-1` and `-inf` pad a row with fewer hits than `k`).
//!
//! Every error names the file and the problem in one line (`{path}: {problem}`), and every
//! write is atomic and durable ([`cart::ids::write_atomic`]).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use cart::Hit;
use ndarray::Array2;
use npyz::{DType, NpyFile, Order, TypeChar, WriterBuilder};

fn open(path: &Path) -> Result<NpyFile<std::io::Cursor<Vec<u8>>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: no such file", path.display())
        }
        Err(e) => bail!("{}: cannot be read: {e}", path.display()),
    };
    let file = NpyFile::new(std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("{}: not a readable .npy file ({e})", path.display()))?;
    if file.order() == Order::Fortran && file.shape().len() > 1 {
        bail!(
            "{}: stored in Fortran order; save it C-ordered (np.save(path, np.ascontiguousarray(a)))",
            path.display()
        );
    }
    Ok(file)
}

/// `(type character, bytes per value)` of a plain dtype, with its numpy name for messages.
fn plain(dtype: &DType, path: &Path) -> Result<(TypeChar, usize, String)> {
    match dtype {
        DType::Plain(t) => Ok((t.type_char(), t.num_bytes().unwrap_or(0), t.to_string())),
        other => bail!(
            "{}: a structured array ({}); expected plain numbers",
            path.display(),
            other.descr()
        ),
    }
}

fn usize_shape(file: &NpyFile<std::io::Cursor<Vec<u8>>>) -> Vec<usize> {
    file.shape().iter().map(|&d| d as usize).collect()
}

fn data<T: npyz::Deserialize>(
    file: NpyFile<std::io::Cursor<Vec<u8>>>,
    path: &Path,
) -> Result<Vec<T>> {
    file.into_vec::<T>()
        .map_err(|e| anyhow::anyhow!("{}: truncated or damaged data ({e})", path.display()))
}

/// Reads a 2-d float matrix (`float16`, `float32` or `float64`, C order), one row per vector,
/// as `f32`, and checks that it has rows, columns, and only finite values.
///
/// # Errors
///
/// A missing or unreadable file, another dtype or rank, an empty matrix, NaN or inf; the
/// message names the file.
pub fn read_matrix(path: impl AsRef<Path>) -> Result<Array2<f32>> {
    let path = path.as_ref();
    let file = open(path)?;
    let shape = usize_shape(&file);
    let (kind, bytes, name) = plain(&file.dtype(), path)?;
    let [rows, cols] = shape[..] else {
        bail!(
            "{}: shape {shape:?}; expected a 2-d matrix [vectors, dimensions]{}",
            path.display(),
            if shape.len() == 1 { " (reshape a single vector with a[None, :])" } else { "" }
        );
    };
    let values: Vec<f32> = match (kind, bytes) {
        (TypeChar::Float, 2) => {
            data::<half::f16>(file, path)?.into_iter().map(half::f16::to_f32).collect()
        }
        (TypeChar::Float, 4) => data::<f32>(file, path)?,
        (TypeChar::Float, 8) => data::<f64>(file, path)?.into_iter().map(|x| x as f32).collect(),
        _ => {
            bail!("{}: dtype {name}; expected float16, float32 or float64 vectors", path.display())
        }
    };
    if rows == 0 || cols == 0 {
        bail!("{}: shape [{rows}, {cols}] holds no vectors", path.display());
    }
    if let Some(at) = values.iter().position(|x| !x.is_finite()) {
        bail!(
            "{}: row {} column {} is {} (every value must be finite)",
            path.display(),
            at / cols,
            at % cols,
            values[at]
        );
    }
    Array2::from_shape_vec((rows, cols), values)
        .with_context(|| format!("{}: data does not fill shape [{rows}, {cols}]", path.display()))
}

fn read_ints(path: &Path) -> Result<(Vec<usize>, Vec<u32>)> {
    let file = open(path)?;
    let shape = usize_shape(&file);
    let (kind, bytes, name) = plain(&file.dtype(), path)?;
    let wide: Vec<i128> = match (kind, bytes) {
        (TypeChar::Uint, 1) => data::<u8>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Uint, 2) => data::<u16>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Uint, 4) => data::<u32>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Uint, 8) => data::<u64>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Int, 1) => data::<i8>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Int, 2) => data::<i16>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Int, 4) => data::<i32>(file, path)?.into_iter().map(i128::from).collect(),
        (TypeChar::Int, 8) => data::<i64>(file, path)?.into_iter().map(i128::from).collect(),
        _ => bail!("{}: dtype {name}; expected integers (uint32, int64, ...)", path.display()),
    };
    if wide.is_empty() {
        bail!("{}: holds no values", path.display());
    }
    let values = wide
        .iter()
        .enumerate()
        .map(|(at, &v)| {
            u32::try_from(v).map_err(|_| {
                anyhow::anyhow!("{}: entry {at} is {v}, not an index in 0..2^32", path.display())
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((shape, values))
}

/// Reads item indices: a 1-d (or `[n, 1]`) array of any integer dtype, as `u32`.
///
/// # Errors
///
/// A missing or unreadable file, a float or other dtype, another shape, a negative value or
/// one past `u32::MAX`; the message names the file.
pub fn read_indices(path: impl AsRef<Path>) -> Result<Vec<u32>> {
    let path = path.as_ref();
    let (shape, values) = read_ints(path)?;
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        bail!("{}: shape {shape:?}; expected a 1-d array of item indices", path.display());
    }
    Ok(values)
}

/// Reads a 2-d integer matrix (e.g. codes `[n_items, 1 + M]`) as `u32`.
///
/// # Errors
///
/// As [`read_indices`], for a 2-d shape.
pub fn read_codes(path: impl AsRef<Path>) -> Result<Array2<u32>> {
    let path = path.as_ref();
    let (shape, values) = read_ints(path)?;
    let [rows, cols] = shape[..] else {
        bail!("{}: shape {shape:?}; expected a 2-d matrix", path.display());
    };
    Array2::from_shape_vec((rows, cols), values)
        .with_context(|| format!("{}: data does not fill shape [{rows}, {cols}]", path.display()))
}

/// Checks that `indices` (read from `path`) has one entry per row of `rows` (read from
/// `rows_path`) and that every entry is below `n_items` (the rows of `items_path`).
///
/// # Errors
///
/// The first mismatch, naming both files.
pub fn check_pairs(
    rows_path: &Path,
    rows: usize,
    path: &Path,
    indices: &[u32],
    items_path: &Path,
    n_items: usize,
) -> Result<()> {
    check_len(rows_path, rows, path, indices.len())?;
    if let Some((at, &item)) = indices.iter().enumerate().find(|(_, i)| **i as usize >= n_items) {
        bail!(
            "{}: entry {at} is item {item}, but {} has {n_items} items",
            path.display(),
            items_path.display()
        );
    }
    Ok(())
}

/// Checks that an item-index file of `len` entries at `path` has one entry per row of the
/// `rows`-row matrix at `rows_path`.
pub fn check_len(rows_path: &Path, rows: usize, path: &Path, len: usize) -> Result<()> {
    if len != rows {
        bail!(
            "{}: {len} entries, but {} has {rows} rows (one item per query)",
            path.display(),
            rows_path.display()
        );
    }
    Ok(())
}

fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    values: &[T],
) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            .writer(&mut bytes)
            .begin_nd()
            .with_context(|| format!("{}: encoding", path.display()))?;
        writer
            .extend(values.iter().copied())
            .with_context(|| format!("{}: encoding", path.display()))?;
        writer.finish().with_context(|| format!("{}: encoding", path.display()))?;
    }
    cart::ids::write_atomic(path, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: cannot be written: {e}", path.display()))
}

/// Writes a float32 matrix (atomically).
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_matrix(path: impl AsRef<Path>, matrix: ndarray::ArrayView2<'_, f32>) -> Result<()> {
    let values: Vec<f32> = matrix.iter().copied().collect();
    write_npy(path.as_ref(), &[matrix.nrows(), matrix.ncols()], &values)
}

/// Writes item indices as a 1-d `uint32` array (atomically).
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_indices(path: impl AsRef<Path>, indices: &[u32]) -> Result<()> {
    write_npy(path.as_ref(), &[indices.len()], indices)
}

/// Writes a `uint32` matrix such as codes (atomically).
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_codes(path: impl AsRef<Path>, codes: ndarray::ArrayView2<'_, u32>) -> Result<()> {
    let values: Vec<u32> = codes.iter().copied().collect();
    write_npy(path.as_ref(), &[codes.nrows(), codes.ncols()], &values)
}

/// Search results as two `[n_queries, k]` matrices: item ids (`int64`, `-1` where a query got
/// fewer than `k` hits) and scores (`float32`, `-inf` there).
pub fn hits_to_arrays(hits: &[Vec<Hit>], k: usize) -> (Array2<i64>, Array2<f32>) {
    let mut ids = Array2::from_elem((hits.len(), k), -1i64);
    let mut scores = Array2::from_elem((hits.len(), k), f32::NEG_INFINITY);
    for (q, row) in hits.iter().enumerate() {
        for (j, h) in row.iter().take(k).enumerate() {
            ids[[q, j]] = i64::from(h.item);
            scores[[q, j]] = h.score;
        }
    }
    (ids, scores)
}

/// Writes `hits` as `path` (ids) and its `_scores.npy` sibling (scores); returns the
/// sibling's path.
///
/// # Errors
///
/// If a file cannot be written.
pub fn write_hits(path: &Path, hits: &[Vec<Hit>], k: usize) -> Result<std::path::PathBuf> {
    let (ids, scores) = hits_to_arrays(hits, k);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let scores_path = path.with_file_name(format!("{stem}_scores.npy"));
    let flat_ids: Vec<i64> = ids.iter().copied().collect();
    write_npy(&scores_path, &[hits.len(), k], &scores.iter().copied().collect::<Vec<f32>>())?;
    write_npy(path, &[hits.len(), k], &flat_ids)?;
    Ok(scores_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cart-cli-npy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn raw<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], values: &[T]) {
        let mut bytes = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn reads_every_float_width_and_integer_kind() {
        let dir = scratch("widths");
        let m = [1.0f32, -2.5, 0.125, 4.0, 5.0, 6.0];
        raw(&dir.join("a.npy"), &[2, 3], &m);
        raw(&dir.join("h.npy"), &[2, 3], &m.map(half::f16::from_f32));
        raw(&dir.join("d.npy"), &[2, 3], &m.map(f64::from));
        for f in ["a.npy", "h.npy", "d.npy"] {
            let got = read_matrix(dir.join(f)).unwrap();
            assert_eq!(got.shape(), &[2, 3]);
            assert_eq!(got.iter().copied().collect::<Vec<_>>(), m, "{f}");
        }
        raw(&dir.join("i.npy"), &[3], &[0i64, 7, 2]);
        raw(&dir.join("u.npy"), &[3, 1], &[0u32, 7, 2]);
        raw(&dir.join("b.npy"), &[3], &[0u8, 7, 2]);
        for f in ["i.npy", "u.npy", "b.npy"] {
            assert_eq!(read_indices(dir.join(f)).unwrap(), vec![0, 7, 2], "{f}");
        }
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let dir = scratch("bad");
        let err = |r: Result<Array2<f32>>| format!("{:#}", r.unwrap_err());
        assert!(err(read_matrix(dir.join("missing.npy"))).ends_with("missing.npy: no such file"));
        fs::write(dir.join("text.npy"), b"hello").unwrap();
        assert!(err(read_matrix(dir.join("text.npy"))).contains("text.npy: not a readable .npy"));
        raw(&dir.join("int.npy"), &[2, 2], &[1i32, 2, 3, 4]);
        assert!(
            err(read_matrix(dir.join("int.npy"))).contains("int.npy: dtype <i4; expected float")
        );
        raw(&dir.join("vec.npy"), &[4], &[1f32, 2., 3., 4.]);
        assert!(
            err(read_matrix(dir.join("vec.npy"))).contains("vec.npy: shape [4]; expected a 2-d")
        );
        raw(&dir.join("nan.npy"), &[2, 2], &[1f32, 2., f32::NAN, 4.]);
        assert!(err(read_matrix(dir.join("nan.npy"))).contains("nan.npy: row 1 column 0 is NaN"));
        raw(&dir.join("inf.npy"), &[1, 2], &[1f32, f32::INFINITY]);
        assert!(err(read_matrix(dir.join("inf.npy"))).contains("row 0 column 1 is inf"));
        // truncated: the header promises more values than the file holds
        let full = fs::read(dir.join("nan.npy")).unwrap();
        fs::write(dir.join("cut.npy"), &full[..full.len() - 3]).unwrap();
        assert!(err(read_matrix(dir.join("cut.npy"))).contains("cut.npy: truncated or damaged"));

        let ierr = |r: Result<Vec<u32>>| format!("{:#}", r.unwrap_err());
        raw(&dir.join("neg.npy"), &[2], &[3i64, -1]);
        assert!(ierr(read_indices(dir.join("neg.npy"))).contains("neg.npy: entry 1 is -1"));
        raw(&dir.join("f.npy"), &[2], &[3f32, 1.]);
        assert!(
            ierr(read_indices(dir.join("f.npy"))).contains("f.npy: dtype <f4; expected integers")
        );
        let e =
            check_pairs(Path::new("q.npy"), 3, Path::new("qi.npy"), &[0, 1], Path::new("i.npy"), 5);
        assert!(
            format!("{:#}", e.unwrap_err()).contains("qi.npy: 2 entries, but q.npy has 3 rows")
        );
        let e =
            check_pairs(Path::new("q.npy"), 2, Path::new("qi.npy"), &[0, 9], Path::new("i.npy"), 5);
        assert!(
            format!("{:#}", e.unwrap_err()).contains("qi.npy: entry 1 is item 9, but i.npy has 5")
        );
    }

    #[test]
    fn hits_round_trip_with_padding() {
        let dir = scratch("hits");
        let hits = vec![
            vec![Hit { item: 4, score: -0.5 }, Hit { item: 1, score: -1.0 }],
            vec![Hit { item: 2, score: 0.25 }],
        ];
        let scores_path = write_hits(&dir.join("hits.npy"), &hits, 2).unwrap();
        assert_eq!(scores_path, dir.join("hits_scores.npy"));
        let bytes = fs::read(dir.join("hits.npy")).unwrap();
        let ids = NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(ids.shape(), &[2, 2]);
        assert_eq!(ids.into_vec::<i64>().unwrap(), vec![4, 1, 2, -1]);
        let scores = read_matrix(&scores_path);
        // -inf pads the short row: the reader refuses non-finite input, as it should
        assert!(format!("{:#}", scores.unwrap_err()).contains("row 1 column 1 is -inf"));
        let m = read_matrix(dir.join("hits.npy"));
        assert!(m.is_err(), "int64 ids are not vectors");
    }
}
