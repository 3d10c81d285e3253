//! Shared helpers of the cart-rs examples: the bundled emoji dataset, read with
//! [`cart_cli::npy`] (the command line's `.npy` reader, float16 included), and a few
//! readable queries. Progress bars, the evaluation table, plots and the device by name come
//! from [`cart_cli`] too.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

/// A dense array read from `.npy`: values in row-major order and the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// Values, row-major.
    pub data: Vec<T>,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
}

impl<T> Array<T> {
    /// Rows (the first dimension; 1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row (product of the other dimensions).
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values as `[rows, cols]`, the matrix type the crates take.
    ///
    /// # Panics
    ///
    /// If the data does not hold `rows * cols` values (the reader guarantees it does).
    pub fn view(&self) -> ndarray::ArrayView2<'_, T> {
        ndarray::ArrayView2::from_shape((self.rows(), self.cols()), &self.data)
            .expect("the reader checks the length against the shape")
    }
}

/// Row-major `values` as rows of `width`.
///
/// # Panics
///
/// When the length is not a multiple of `width` (a broken example).
pub fn rows(values: &[f32], width: usize) -> ndarray::ArrayView2<'_, f32> {
    ndarray::ArrayView2::from_shape((values.len() / width, width), values)
        .expect("a whole number of rows")
}

/// Reads a float matrix (`float16`, `float32` or `float64`) as `f32`, through
/// [`cart_cli::npy::read_matrix`].
///
/// # Errors
/// If the file is missing, not `.npy`, of another dtype or rank, or holds NaN or inf.
pub fn read_f32(path: impl AsRef<Path>) -> Result<Array<f32>> {
    let m = cart_cli::npy::read_matrix(path)?;
    let shape = m.shape().to_vec();
    Ok(Array { data: m.into_iter().collect(), shape })
}

/// Reads a 1-d or 2-d integer array as `u32`, through [`cart_cli::npy`].
///
/// # Errors
/// As [`read_f32`], and for a negative value or one past `u32::MAX`.
pub fn read_u32(path: impl AsRef<Path>) -> Result<Array<u32>> {
    let path = path.as_ref();
    match cart_cli::npy::read_indices(path) {
        Ok(v) => Ok(Array { shape: vec![v.len()], data: v }),
        Err(_) => {
            let m = cart_cli::npy::read_codes(path)?;
            let shape = m.shape().to_vec();
            Ok(Array { data: m.into_iter().collect(), shape })
        }
    }
}

/// Writes a 2-d `uint32` array (for codes), atomically.
///
/// # Errors
/// On I/O failure, or when `data` does not hold `rows * cols` values.
pub fn write_u32(path: impl AsRef<Path>, data: &[u32], rows: usize, cols: usize) -> Result<()> {
    let view = ndarray::ArrayView2::from_shape((rows, cols), data)
        .with_context(|| format!("{} values for shape [{rows}, {cols}]", data.len()))?;
    cart_cli::npy::write_codes(path, view)
}

/// The bundled emoji retrieval set (`examples/data/emoji`, see its README).
#[derive(Clone, Debug)]
pub struct EmojiData {
    /// Candidate vectors (MiniLM or the encoder the manifest names), `[n_items, d_item]`.
    pub items: Array<f32>,
    /// e5 vectors of the items' English names, for the dense baseline, `[n_items, 384]`.
    pub items_e5: Array<f32>,
    /// Training pseudo-query vectors (e5), `[n_train, 384]`.
    pub train_queries: Array<f32>,
    /// Item of each training query.
    pub train_items: Vec<u32>,
    /// Held-out test query vectors (e5), `[n_test, 384]`.
    pub test_queries: Array<f32>,
    /// Item of each test query.
    pub test_items: Vec<u32>,
    /// `(emoji, English name)` of every item.
    pub labels: Vec<(String, String)>,
    /// `(language, text)` of every test query.
    pub test_texts: Vec<(String, String)>,
}

/// The bundled dataset's folder, from the workspace root or from `examples/`.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("emoji")
}

impl EmojiData {
    /// Loads the set from `dir` and checks that its parts agree.
    ///
    /// # Errors
    /// If a file is missing or malformed, or the parts disagree in size.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let items = read_f32(dir.join("items.npy"))?;
        let items_e5 = read_f32(dir.join("items_e5.npy"))?;
        let train_queries = read_f32(dir.join("train_queries.npy"))?;
        let train_items = read_u32(dir.join("train_items.npy"))?.data;
        let test_queries = read_f32(dir.join("test_queries.npy"))?;
        let test_items = read_u32(dir.join("test_items.npy"))?.data;
        let labels = read_tsv(&dir.join("items.tsv"))?
            .into_iter()
            .map(|r| Ok((r.get(1).context("emoji")?.clone(), r.get(3).context("name")?.clone())))
            .collect::<Result<Vec<_>>>()?;
        let test_texts = read_tsv(&dir.join("test.tsv"))?
            .into_iter()
            .map(|r| Ok((r.get(1).context("lang")?.clone(), r.get(2).context("text")?.clone())))
            .collect::<Result<Vec<_>>>()?;
        let n = items.rows();
        ensure!(items_e5.rows() == n && labels.len() == n, "item files disagree in length");
        ensure!(train_queries.rows() == train_items.len(), "training queries and items disagree");
        ensure!(test_queries.rows() == test_items.len(), "test queries and items disagree");
        ensure!(test_texts.len() == test_items.len(), "test.tsv and test_items disagree");
        ensure!(
            train_items.iter().chain(&test_items).all(|&i| (i as usize) < n),
            "a query points past the last item"
        );
        Ok(Self {
            items,
            items_e5,
            train_queries,
            train_items,
            test_queries,
            test_items,
            labels,
            test_texts,
        })
    }
}

fn read_tsv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().skip(1).map(|l| l.split('\t').map(str::to_owned).collect()).collect())
}

/// Prints `count` test queries spread over the set, with the top 3 of each named ranking.
pub fn show_examples(
    data: &EmojiData,
    rankings: &[(&str, &[Vec<cart_search::Hit>])],
    count: usize,
) {
    let label = |item: u32| {
        let (emoji, name) = &data.labels[item as usize];
        format!("{emoji} {name}")
    };
    let n = data.test_items.len();
    for q in (0..n).step_by(n.div_ceil(count.max(1)).max(1)) {
        let (lang, text) = &data.test_texts[q];
        println!("[{lang}] \"{text}\" -> wanted {}", label(data.test_items[q]));
        for (name, ranked) in rankings {
            let top: Vec<String> = ranked[q].iter().take(3).map(|h| label(h.item)).collect();
            println!("    {name:<10} {}", top.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_round_trip_and_bundled_data_load() {
        let dir = std::env::temp_dir().join(format!("cart-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("codes.npy");
        write_u32(&p, &[1, 2, 3, 4, 5, 6], 2, 3).unwrap();
        let a = read_u32(&p).unwrap();
        assert_eq!((a.data, a.shape), (vec![1, 2, 3, 4, 5, 6], vec![2, 3]));
        std::fs::remove_dir_all(&dir).unwrap();

        let data = EmojiData::load(default_data_dir()).unwrap();
        assert!(data.items.rows() > 1000);
        assert!(data.items.data.iter().all(|x| x.is_finite()));
        assert_eq!(data.test_queries.cols(), 384);
    }
}
