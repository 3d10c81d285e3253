//! Shared helpers of the cart-rs examples: a small `.npy` reader (float16, float32, and
//! integer arrays, as numpy writes them) and the bundled emoji dataset.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

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

struct Header {
    descr: String,
    shape: Vec<usize>,
    offset: usize,
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header> {
    ensure!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "{}: truncated header", path.display());
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => bail!("{}: unsupported .npy version {v}", path.display()),
    };
    let text = bytes.get(start..start + len).context("truncated .npy header")?;
    let text = std::str::from_utf8(text).context("non-UTF-8 .npy header")?;
    let field = |key: &str| -> Result<&str> {
        let at =
            text.find(key).with_context(|| format!("{}: no {key} in header", path.display()))?;
        Ok(text[at + key.len()..].trim_start_matches([' ', ':']))
    };
    let descr = field("'descr'")?;
    let descr = descr.trim_start_matches('\'').split('\'').next().unwrap_or_default().to_owned();
    ensure!(field("'fortran_order'")?.starts_with("False"), "{}: Fortran order", path.display());
    let shape_text = field("'shape'")?;
    let inner = shape_text.trim_start_matches('(').split(')').next().unwrap_or_default();
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("bad shape {inner:?}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Header { descr, shape, offset: start + len })
}

fn read_raw(path: &Path) -> Result<(Header, Vec<u8>)> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let header = parse_header(&bytes, path)?;
    Ok((header, bytes))
}

fn body<'a>(h: &Header, bytes: &'a [u8], width: usize, path: &Path) -> Result<&'a [u8]> {
    let n: usize = h.shape.iter().product();
    let body = &bytes[h.offset..];
    ensure!(
        body.len() == n * width,
        "{}: {} data bytes for shape {:?} of {}",
        path.display(),
        body.len(),
        h.shape,
        h.descr
    );
    Ok(body)
}

/// Reads a float array (`<f2` or `<f4`) as `f32`.
///
/// # Errors
/// If the file is missing, not `.npy`, of another dtype, or its size does not match its shape.
pub fn read_f32(path: impl AsRef<Path>) -> Result<Array<f32>> {
    let path = path.as_ref();
    let (h, bytes) = read_raw(path)?;
    let data = match h.descr.as_str() {
        "<f4" => body(&h, &bytes, 4, path)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "<f2" => body(&h, &bytes, 2, path)?
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        d => bail!("{}: expected float16 or float32, found {d}", path.display()),
    };
    Ok(Array { data, shape: h.shape })
}

/// Reads an unsigned or signed integer array (`<u4`, `<i4`, `<i8`, `<u8`) as `u32`.
///
/// # Errors
/// As [`read_f32`], and for a value outside `u32`.
pub fn read_u32(path: impl AsRef<Path>) -> Result<Array<u32>> {
    let path = path.as_ref();
    let (h, bytes) = read_raw(path)?;
    let width = match h.descr.as_str() {
        "<u4" | "<i4" => 4,
        "<u8" | "<i8" => 8,
        d => bail!("{}: expected an integer array, found {d}", path.display()),
    };
    let signed = h.descr.starts_with("<i");
    let data = body(&h, &bytes, width, path)?
        .chunks_exact(width)
        .map(|b| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(b);
            if signed && b[width - 1] & 0x80 != 0 {
                bail!("{}: negative value", path.display());
            }
            u32::try_from(u64::from_le_bytes(w)).context("value does not fit in u32")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Array { data, shape: h.shape })
}

/// Writes a 2-d `<u4` array (for codes).
///
/// # Errors
/// On I/O failure.
pub fn write_u32(path: impl AsRef<Path>, data: &[u32], rows: usize, cols: usize) -> Result<()> {
    ensure!(data.len() == rows * cols, "{} values for shape [{rows}, {cols}]", data.len());
    let mut header =
        format!("{{'descr': '<u4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // pad so that the data starts on a 64-byte boundary, header ends with '\n'
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let path = path.as_ref();
    cart_ids::write_atomic(path, &out).with_context(|| format!("writing {}", path.display()))
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

/// One line per method of Recall@1/5/10, MRR@10 and queries per second, against one relevant
/// item per query.
#[derive(Debug)]
pub struct Report {
    relevant: Vec<Vec<u32>>,
}

impl Report {
    /// A report for queries whose relevant items are `items[q]`.
    pub fn new(items: &[u32]) -> Self {
        Self { relevant: items.iter().map(|&i| vec![i]).collect() }
    }

    /// Prints the line of `name`, whose rankings took `took`.
    ///
    /// # Errors
    /// If `ranked` has not one list per query.
    pub fn line(
        &self,
        name: &str,
        ranked: &[Vec<cart_search::Hit>],
        took: std::time::Duration,
    ) -> Result<()> {
        let m = cart_search::evaluate(ranked, &self.relevant, &[1, 5, 10])?;
        println!(
            "{name:<28} R@1 {:.4}  R@5 {:.4}  R@10 {:.4}  MRR@10 {:.4}  {:>9.1} queries/s",
            m[0].recall,
            m[1].recall,
            m[2].recall,
            m[2].mrr,
            self.relevant.len() as f64 / took.as_secs_f64()
        );
        Ok(())
    }
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

/// Draws a [`cart::CartIndex::fit_observed`] run on stderr: `indicatif` bars for the
/// quantizer's and the generator's batches, one line per stage and per generator epoch
/// (printed above the bar; plain lines when stderr is not a terminal), nothing when quiet.
/// The libraries never print: this is the application's side of their observer.
#[derive(Debug)]
pub struct FitProgress {
    quiet: bool,
    bar: Option<(&'static str, indicatif::ProgressBar)>,
}

impl FitProgress {
    /// A drawer; `quiet` draws nothing.
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: None }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some((_, bar)) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn progress(&mut self, name: &'static str, done: u64, total: u64, loss: f64) {
        let same = matches!(&self.bar, Some((n, _)) if *n == name);
        if !same {
            if let Some((_, bar)) = self.bar.take() {
                bar.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} batches {msg} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(name);
            self.bar = Some((name, bar));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }

    /// Draws one event.
    pub fn observe(&mut self, event: cart::Event<'_>) {
        use cart::Event;
        use cart::model::TrainEvent;
        use cart::quant::RqVaeEvent;
        if self.quiet {
            return;
        }
        match event {
            Event::Quantizer(RqVaeEvent::Batch { epoch, n_epochs, batch, n_batches, loss })
            | Event::Training(TrainEvent::Batch { epoch, n_epochs, batch, n_batches, loss }) => {
                let name =
                    if matches!(event, Event::Quantizer(_)) { "quantizer" } else { "generator" };
                let done = (epoch * n_batches + batch + 1) as u64;
                self.progress(name, done, (n_epochs * n_batches) as u64, loss);
            }
            Event::Quantizer(_) => {} // per-epoch quantizer lines: the bar says enough
            Event::Training(TrainEvent::Epoch(stats)) => self.line(&stats.to_string()),
            other => {
                if let Some((_, bar)) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.line(&format!("[cart] {other}"));
            }
        }
    }
}

/// The burn device an example runs on, chosen explicitly (`--device cpu|wgpu`): burn's
/// `Device::default()` would silently pick wgpu in a build with both backends.
///
/// # Errors
///
/// An unknown name, or `wgpu` in a build without the `wgpu` feature.
pub fn device(name: &str) -> Result<burn::prelude::Device> {
    match name {
        #[cfg(feature = "flex")]
        "cpu" => Ok(burn::prelude::Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(burn::prelude::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        other => bail!(
            "--device {other}: this build runs on {}",
            [cfg!(feature = "flex").then_some("cpu"), cfg!(feature = "wgpu").then_some("wgpu")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}
