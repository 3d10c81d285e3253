//! Saving and loading a [`CartIndex`] as a versioned directory.
//!
//! ```text
//! my-index/
//!   index.json       manifest: format name and version, the IndexConfig, sizes, and the
//!                    length and CRC-32 of every other file
//!   quantizer.bin    the fitted quantizer (cart-quant's CARTQNT1 file)
//!   trie.bin         identifiers and the prefix trie (cart-ids' CARTTRIE file)
//!   generator.bin    generator config and weights (cart-model's checksummed file)
//!   rerank.bin       re-rank vectors (CARTVEC1, below), only if the index has them
//!   history.json     the generator's training history
//! ```
//!
//! `rerank.bin`, all integers little-endian: magic `CARTVEC1`, version `u32` (1), metric `u32`
//! (0 cosine, 1 inner product), rows `u64`, width `u64`, `rows * width` `f32` values (for
//! cosine already normalised), CRC-32 `u32` of everything before it.
//!
//! A save writes a complete new directory next to the target (`.NAME.tmp-*`), `fsync`s every
//! file, then swaps it in with two renames (old index to `.NAME.old-*`, new one into place,
//! then the old one is deleted): a reader never sees a mix of two saves. A crash between the
//! two renames leaves no `NAME`, and the previous index whole in `.NAME.old-*`. A load
//! checks the manifest's version, every file's length and checksum, and that the parts agree
//! (layout vs generator vocabulary, quantizer codebooks vs layout, item counts, widths).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use cart_ids::{IdAssignment, IdTrie, write_atomic};
use cart_model::{Generator, TrainHistory};
use cart_quant::{CoarseToFine, Quantizer, ResidualQuantizer};
use cart_search::{DenseIndex, Metric};
use serde::{Deserialize, Serialize};

use crate::config::IndexConfig;
use crate::index::{CartIndex, IndexQuantizer, layout};
use crate::{Error, Result};

/// Name in the manifest's `format` field.
pub const FORMAT: &str = "cart-index";
/// Version of the index directory layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST: &str = "index.json";
const QUANTIZER: &str = "quantizer.bin";
const TRIE: &str = "trie.bin";
const GENERATOR: &str = "generator.bin";
const RERANK: &str = "rerank.bin";
const HISTORY: &str = "history.json";

const VEC_MAGIC: &[u8; 8] = b"CARTVEC1";
const VEC_VERSION: u32 = 1;
const VEC_HEADER: usize = 8 + 4 + 4 + 8 + 8;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    crate_version: String,
    n_items: usize,
    item_dim: usize,
    query_dim: usize,
    quantizer: String,
    config: IndexConfig,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    bytes: u64,
    crc32: u32,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

fn entry(bytes: &[u8]) -> FileEntry {
    FileEntry { bytes: bytes.len() as u64, crc32: crc32fast::hash(bytes) }
}

/// A sibling of `dir` named `.{name}.{tag}-{pid}-{nanos}`.
fn sibling(dir: &Path, tag: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::format(dir, "an index directory path needs a final name"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{tag}-{}-{nanos}", std::process::id()));
    Ok(dir.with_file_name(s))
}

impl CartIndex {
    /// Saves every part to the directory `dir` (created if needed), atomically: the complete
    /// new index is written beside it, then swapped in. An existing `dir` must be empty or a
    /// cart index directory holding nothing but index files (it is then replaced); anything
    /// else is refused, so a wrong path cannot destroy unrelated files.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if `dir` holds something that is not an index; [`Error::Io`],
    /// [`Error::Ids`], [`Error::Quant`] or [`Error::Model`] (each carrying the I/O error) if
    /// a file cannot be written. The previous index, if any, is then left in place.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if dir.exists() && !is_replaceable(dir)? {
            return Err(Error::format(
                dir,
                "exists and is not a cart index directory (or holds other files); refusing to \
                 replace it",
            ));
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let tmp = sibling(dir, "tmp")?;
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = self.write_files(&tmp).and_then(|()| swap_in(&tmp, dir));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_files(&self, tmp: &Path) -> Result<()> {
        let mut files = BTreeMap::new();
        let quantizer_path = tmp.join(QUANTIZER);
        match &self.quantizer {
            IndexQuantizer::CoarseToFine(q) => q.save(&quantizer_path)?,
            IndexQuantizer::Residual(q) => q.save(&quantizer_path)?,
        }
        files.insert(QUANTIZER.to_owned(), entry(&read(&quantizer_path)?));
        let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
            write_atomic(&tmp.join(name), &bytes)?;
            files.insert(name.to_owned(), entry(&bytes));
            Ok(())
        };
        put(TRIE, self.trie.to_bytes())?;
        put(GENERATOR, self.generator.to_bytes()?)?;
        put(
            HISTORY,
            serde_json::to_vec_pretty(&self.history)
                .map_err(|e| Error::format(tmp.join(HISTORY), e))?,
        )?;
        if let Some(dense) = &self.dense {
            put(RERANK, vectors_to_bytes(dense))?;
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            n_items: self.len(),
            item_dim: self.item_dim(),
            query_dim: self.query_dim(),
            quantizer: quantizer_kind(&self.quantizer).to_owned(),
            config: self.config.clone(),
            files,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::format(tmp.join(MANIFEST), e))?;
        write_atomic(&tmp.join(MANIFEST), &json)?;
        Ok(())
    }

    /// Loads an index saved by [`CartIndex::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a missing or unreadable file, [`Error::Format`] for an unknown format
    /// or version, a file whose length or checksum differs from the manifest, or parts that do
    /// not fit together; the parts' own errors for damaged contents.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let manifest_path = dir.join(MANIFEST);
        let json: serde_json::Value = serde_json::from_slice(&read(&manifest_path)?)
            .map_err(|e| Error::format(&manifest_path, format!("not JSON: {e}")))?;
        // Format and version first, so a newer layout gets a version error, not a parse error.
        if json.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Error::format(&manifest_path, "not a cart index manifest"));
        }
        let version = json.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(Error::format(
                &manifest_path,
                format!(
                    "format version {} (this build reads version {FORMAT_VERSION})",
                    version.map_or("missing".into(), |v| v.to_string())
                ),
            ));
        }
        let manifest: Manifest = serde_json::from_value(json)
            .map_err(|e| Error::format(&manifest_path, format!("bad manifest: {e}")))?;
        let checked = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let expected = manifest
                .files
                .get(name)
                .ok_or_else(|| Error::format(&manifest_path, format!("no entry for {name}")))?;
            let bytes = read(&path)?;
            let found = entry(&bytes);
            if found != *expected {
                return Err(Error::format(
                    &path,
                    format!(
                        "{} bytes with CRC-32 {:08x}, the manifest says {} bytes with {:08x}: \
                         damaged or from another save",
                        found.bytes, found.crc32, expected.bytes, expected.crc32
                    ),
                ));
            }
            Ok(bytes)
        };

        checked(QUANTIZER)?;
        let quantizer_path = dir.join(QUANTIZER);
        let quantizer = match manifest.quantizer.as_str() {
            "coarse_to_fine" => {
                IndexQuantizer::CoarseToFine(Box::new(CoarseToFine::load(&quantizer_path, device)?))
            }
            "residual" => {
                IndexQuantizer::Residual(ResidualQuantizer::load(&quantizer_path, device)?)
            }
            other => {
                return Err(Error::format(&manifest_path, format!("unknown quantizer {other:?}")));
            }
        };
        let trie = IdTrie::from_bytes(&checked(TRIE)?)?;
        let generator = Generator::from_bytes(&checked(GENERATOR)?, device)?;
        let history: TrainHistory = serde_json::from_slice(&checked(HISTORY)?)
            .map_err(|e| Error::format(dir.join(HISTORY), e))?;
        let dense = match manifest.files.contains_key(RERANK) {
            true => Some(vectors_from_bytes(&checked(RERANK)?, &dir.join(RERANK))?),
            false => None,
        };

        // The parts must fit together.
        let bad = |reason: String| Err(Error::format(dir, reason));
        let l = trie.layout();
        if layout(&quantizer.codebook_sizes(), l.n_unique())? != *l {
            return bad("the quantizer's codebooks do not match the identifier layout".into());
        }
        let g = generator.config();
        if (g.vocab_size, g.id_len) != (l.vocab_size(), l.id_len()) {
            return bad(format!(
                "generator vocabulary/length {}/{} vs layout {}/{}",
                g.vocab_size,
                g.id_len,
                l.vocab_size(),
                l.id_len()
            ));
        }
        if trie.len() != manifest.n_items {
            return bad(format!(
                "{} items in the trie, {} in the manifest",
                trie.len(),
                manifest.n_items
            ));
        }
        // Item keys must be exactly 0..n (what add_items and fine-tuning rely on).
        IdAssignment::from_trie(&trie)
            .map_err(|e| Error::format(dir.join(TRIE), format!("item keys are not 0..n: {e}")))?;
        if quantizer.d_input() != manifest.item_dim || g.query_width() != manifest.query_dim {
            return bad("item or query width differs from the manifest".into());
        }
        if let Some(d) = &dense
            && (d.len() != trie.len() || d.dim() != g.query_width())
        {
            return bad(format!(
                "{} re-rank vectors of width {} for {} items and queries of width {}",
                d.len(),
                d.dim(),
                trie.len(),
                g.query_width()
            ));
        }
        let mut config = manifest.config;
        config.generator = generator.config().clone();
        Ok(Self { config, quantizer, trie, generator, dense, history })
    }
}

/// Whether `dir` may be replaced by a save: empty, or a cart index (a manifest of this format
/// and nothing but index files).
fn is_replaceable(dir: &Path) -> Result<bool> {
    let known = [MANIFEST, QUANTIZER, TRIE, GENERATOR, RERANK, HISTORY];
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(true);
    }
    let only_index_files = names.iter().all(|n| known.contains(&n.as_str()));
    let manifest = fs::read(dir.join(MANIFEST)).ok();
    let is_manifest = manifest
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|j| j.get("format").and_then(|f| f.as_str()) == Some(FORMAT));
    Ok(only_index_files && is_manifest)
}

fn quantizer_kind(q: &IndexQuantizer) -> &'static str {
    match q {
        IndexQuantizer::CoarseToFine(_) => "coarse_to_fine",
        IndexQuantizer::Residual(_) => "residual",
    }
}

/// Moves the complete directory `tmp` to `dir`, replacing an old index there.
fn swap_in(tmp: &Path, dir: &Path) -> Result<()> {
    let old = match dir.exists() {
        true => {
            let old = sibling(dir, "old")?;
            fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
            Some(old)
        }
        false => None,
    };
    if let Err(e) = fs::rename(tmp, dir) {
        if let Some(old) = &old {
            let _ = fs::rename(old, dir); // put the previous index back
        }
        return Err(Error::io(dir, e));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(old);
    }
    Ok(())
}

fn vectors_to_bytes(dense: &DenseIndex) -> Vec<u8> {
    let (n, dim) = (dense.len(), dense.dim());
    let mut out = Vec::with_capacity(VEC_HEADER + n * dim * 4 + 4);
    out.extend_from_slice(VEC_MAGIC);
    out.extend_from_slice(&VEC_VERSION.to_le_bytes());
    let metric: u32 = match dense.metric() {
        Metric::Cosine => 0,
        Metric::InnerProduct => 1,
    };
    out.extend_from_slice(&metric.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&(dim as u64).to_le_bytes());
    for i in 0..n as u32 {
        for v in dense.vector(i).unwrap_or_default() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn vectors_from_bytes(bytes: &[u8], path: &Path) -> Result<DenseIndex> {
    let bad = |reason: &str| Err(Error::format(path, reason));
    if bytes.len() < VEC_HEADER + 4 || &bytes[..8] != VEC_MAGIC {
        return bad("not a CARTVEC1 file");
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if u32_at(8) != VEC_VERSION {
        return bad("unsupported CARTVEC version");
    }
    let metric = match u32_at(12) {
        0 => Metric::Cosine,
        1 => Metric::InnerProduct,
        _ => return bad("unknown metric"),
    };
    let (n, dim) = (u64_at(16), u64_at(24));
    let values = n.checked_mul(dim).and_then(|v| v.checked_mul(4));
    let expected = values.and_then(|v| v.checked_add((VEC_HEADER + 4) as u64));
    if expected != Some(bytes.len() as u64) || dim == 0 {
        return bad("length does not match the header (truncated or damaged)");
    }
    let body = bytes.len() - 4;
    if crc32fast::hash(&bytes[..body]) != u32_at(body) {
        return bad("checksum mismatch");
    }
    let data: Vec<f32> = bytes[VEC_HEADER..body]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(DenseIndex::new(data, dim as usize, metric)?)
}
