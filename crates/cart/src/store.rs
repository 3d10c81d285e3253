//! Saving and loading a [`CartIndex`] as a versioned directory.
//!
//! ```text
//! my-index/
//!   index.json       manifest: format name and version, a random save id, the IndexConfig,
//!                    sizes, the length and content digest of every other file, and the
//!                    CRC-32 of the manifest itself
//!   quantizer.bin    the fitted quantizer (cart-quant's `cart-quantizer` container)
//!   trie.bin         identifiers and the prefix trie (cart-ids' `cart-trie` container)
//!   generator.bin    generator config and weights (cart-model's `cart-generator` container)
//!   rerank.bin       re-rank vectors (a `cart-vectors` container, below), if the index has them
//!   history.json     the generator's training history
//! .my-index.lock     beside the directory: serialises saves, and loads against saves
//! ```
//!
//! Every binary file is a [`cart_format`] container. `rerank.bin` has a `header` section
//! (JSON: metric, rows, width) and a `values` section (`rows * width` little-endian `f32`,
//! for cosine already normalised, loaded as stored).
//!
//! **Identity.** A container's trailing CRC-32 makes every intact file's whole-file CRC the
//! same constant, so the manifest records each file's *digest* (the CRC of its contents before
//! that trailer; for JSON files, of the whole file). A file from another index or another save
//! of the same one has another digest and is refused, as is a manifest edited by hand (its own
//! checksum) or one whose config does not validate.
//!
//! **Atomicity.** A save takes an exclusive lock on `.NAME.lock`, writes a complete new
//! directory next to the target (`.NAME.tmp-*`), `fsync`s every file and the directory, then
//! swaps it in with two renames (old index to `.NAME.old-*`, new one into place, `fsync` of
//! the parent) and deletes the old one. A load takes the shared lock while it reads, reads
//! every file once and checks it against the manifest, so it sees the old index or the new
//! one, never a mix (without the lock, e.g. on a read-only folder, a mix is detected by the
//! digests and the load retried).
//!
//! **Recovery.** A crash between the two renames leaves no `NAME` and the previous index
//! whole in `.NAME.old-*`: the next load or save renames it back. Stale `.NAME.tmp-*` and
//! `.NAME.old-*` siblings of crashed saves are removed by the next save (under the lock, no
//! other save can own them). A save through a symbolic link replaces the directory it points
//! at and keeps the link.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use cart_format::{Container, Writer, bytes_to_f32s, f32s_to_bytes};
use cart_ids::{IdAssignment, IdLayout, IdTrie};
use cart_model::{Generator, TrainHistory};
use cart_quant::{AnyQuantizer, Quantizer};
use cart_search::{DenseIndex, Metric};
use serde::{Deserialize, Serialize};

use crate::config::IndexConfig;
use crate::index::CartIndex;
use crate::{Error, Result};

/// Name in the manifest's `format` field.
pub const FORMAT: &str = "cart-index";
/// Version of the index directory layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 5;

const MANIFEST: &str = "index.json";
const QUANTIZER: &str = "quantizer.bin";
const TRIE: &str = "trie.bin";
const GENERATOR: &str = "generator.bin";
const RERANK: &str = "rerank.bin";
const HISTORY: &str = "history.json";

const VECTORS_KIND: &str = "cart-vectors";
const VECTORS_VERSION: u32 = 1;

/// How often a load starts again when a concurrent writer changed files under it.
const LOAD_ATTEMPTS: usize = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    crate_version: String,
    save_id: String,
    n_items: usize,
    item_dim: usize,
    query_dim: usize,
    quantizer: String,
    rerank: bool,
    config: IndexConfig,
    files: BTreeMap<String, FileEntry>,
    /// CRC-32 of the manifest serialised with this field 0.
    checksum: u32,
}

impl Manifest {
    fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::format(MANIFEST, e))
    }

    fn sealed(mut self) -> Result<Vec<u8>> {
        self.checksum = 0;
        self.checksum = crc32fast::hash(&self.to_bytes()?);
        self.to_bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    bytes: u64,
    digest: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct VectorsHeader {
    metric: Metric,
    rows: usize,
    dim: usize,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

fn entry(name: &str, bytes: &[u8]) -> FileEntry {
    let digest = match name.ends_with(".bin") {
        true => cart_format::digest(bytes),
        false => crc32fast::hash(bytes),
    };
    FileEntry { bytes: bytes.len() as u64, digest }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// `.NAME.lock` beside `dir`.
fn lock_path(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::format(dir, "an index directory path needs a final name"))?;
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(".lock");
    Ok(dir.with_file_name(s))
}

/// The exclusive lock of a save (held until dropped).
fn lock_exclusive(dir: &Path) -> Result<fs::File> {
    let path = lock_path(dir)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    file.lock().map_err(io_error(&path))?;
    Ok(file)
}

/// The shared lock of a load, when the lock file exists and can be opened.
fn lock_shared(dir: &Path) -> Option<fs::File> {
    let file = fs::File::open(lock_path(dir).ok()?).ok()?;
    file.lock_shared().ok()?;
    Some(file)
}

/// Siblings of `dir` left by saves: `(tmp, old)` directories.
fn leftovers(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let parent = match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_owned(),
        None => PathBuf::from("."),
    };
    let (mut tmp, mut old) = (Vec::new(), Vec::new());
    if let Ok(entries) = fs::read_dir(&parent) {
        for e in entries.flatten() {
            let p = dir.with_file_name(e.file_name());
            if cart_format::is_sibling_of(&p, dir, "tmp") {
                tmp.push(p);
            } else if cart_format::is_sibling_of(&p, dir, "old") {
                old.push(p);
            }
        }
    }
    (tmp, old)
}

/// With no `dir`, puts back the newest `.NAME.old-*` that holds a readable manifest (a save
/// that crashed between its two renames). Returns whether it did.
fn recover(dir: &Path) -> Result<bool> {
    if dir.exists() {
        return Ok(false);
    }
    let (_, mut old) = leftovers(dir);
    old.retain(|p| read_manifest(&p.join(MANIFEST)).is_ok());
    old.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    match old.pop() {
        None => Ok(false),
        Some(newest) => {
            fs::rename(&newest, dir).map_err(io_error(dir))?;
            cart_format::sync_dir(dir.parent().unwrap_or(Path::new("."))).map_err(io_error(dir))?;
            Ok(true)
        }
    }
}

/// The CRC-32 a sealed manifest was sealed with: its bytes as read, with the checksum's digits
/// put back to `0` (the checksum is the manifest's last field). Checking the bytes as written,
/// not a re-serialisation, keeps older manifests checkable after fields are added.
fn unsealed_crc(bytes: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"\"checksum\": ";
    let at = bytes.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..at]);
    crc.update(b"0");
    crc.update(&bytes[at + digits..]);
    Some(crc.finalize())
}

/// Reads and checks a manifest: JSON, format, version, its own checksum, the config.
fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = read(path)?;
    let mut json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(path, format!("not JSON: {e}")))?;
    // Format and version first, so a newer layout gets a version error, not a parse error.
    if json.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(Error::format(path, "not a cart index manifest"));
    }
    let version = json.get("version").and_then(serde_json::Value::as_u64);
    if version == Some(4) {
        // Version 4 had no `rerank_all_pairs`: its re-rank centroids were the training
        // split's, which is what `false` means.
        if let Some(config) = json.get_mut("config").and_then(|c| c.as_object_mut()) {
            config.entry("rerank_all_pairs").or_insert(serde_json::Value::Bool(false));
        }
    } else if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(Error::format(
            path,
            format!(
                "format version {} (this build reads version {FORMAT_VERSION}; re-fit or save \
                 the index with this version)",
                version.map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let manifest: Manifest = serde_json::from_value(json)
        .map_err(|e| Error::format(path, format!("bad manifest: {e}")))?;
    if unsealed_crc(&bytes) != Some(manifest.checksum) {
        return Err(Error::format(path, "checksum mismatch: the manifest was edited or damaged"));
    }
    manifest.config.validate().map_err(|e| Error::format(path, format!("stored config: {e}")))?;
    manifest
        .config
        .train
        .validate()
        .map_err(|e| Error::format(path, format!("stored training config: {e}")))?;
    Ok(manifest)
}

impl CartIndex {
    /// Saves every part to the directory `dir` (created if needed), atomically and durably:
    /// the complete new index is written beside it, then swapped in (see the
    /// protocol in `docs/formats.md`). An existing `dir` must be empty or a
    /// cart index directory holding nothing but index files (it is then replaced); anything
    /// else is refused, so a wrong path cannot destroy unrelated files. Saves of one path are
    /// serialised (across threads and processes); the leftovers of a crashed save are
    /// recovered or removed first.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if `dir` holds something that is not an index; [`Error::Io`] if a
    /// file cannot be written, the previous index, if any, then left in place (except after an
    /// error syncing the parent directory, which comes once the new index is in place).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = cart_format::resolve(dir.as_ref()).map_err(io_error(dir.as_ref()))?;
        let dir = dir.as_path();
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let _lock = lock_exclusive(dir)?;
        // Under the lock no other save is running: whatever a save left here is stale.
        recover(dir)?;
        let (tmp_left, old_left) = leftovers(dir);
        for p in tmp_left.iter().chain(&old_left) {
            let _ = fs::remove_dir_all(p);
        }
        if dir.exists() && !is_replaceable(dir)? {
            return Err(Error::format(
                dir,
                "exists and is not a cart index directory (or holds other files); refusing to \
                 replace it",
            ));
        }
        let tmp = cart_format::unique_sibling(dir, "tmp").map_err(io_error(dir))?;
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = self.write_files(&tmp).and_then(|()| swap_in(&tmp, dir));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_files(&self, tmp: &Path) -> Result<()> {
        let mut files = BTreeMap::new();
        let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
            let path = tmp.join(name);
            cart_format::write_atomic(&path, &bytes).map_err(|e| Error::io(&path, e))?;
            files.insert(name.to_owned(), entry(name, &bytes));
            Ok(())
        };
        put(QUANTIZER, self.quantizer.to_bytes()?)?;
        put(TRIE, self.trie.to_bytes())?;
        put(GENERATOR, self.generator.to_bytes()?)?;
        put(
            HISTORY,
            serde_json::to_vec_pretty(&self.history)
                .map_err(|e| Error::format(tmp.join(HISTORY), e))?,
        )?;
        if let Some(dense) = &self.dense {
            put(RERANK, vectors_to_bytes(dense)?)?;
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            save_id: format!("{:032x}", rand::random::<u128>()),
            n_items: self.len(),
            item_dim: self.item_dim(),
            query_dim: self.query_dim(),
            quantizer: self.quantizer.kind().to_owned(),
            rerank: self.dense.is_some(),
            config: self.config.clone(),
            files,
            checksum: 0,
        };
        let path = tmp.join(MANIFEST);
        cart_format::write_atomic(&path, &manifest.sealed()?).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }

    /// Loads an index saved by [`CartIndex::save`] onto `device`. Waits for a save of the
    /// same path in progress; recovers the previous index left by a save that crashed
    /// between its renames.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a missing or unreadable file; [`Error::Format`] for an unknown format
    /// or version (older index directories name their version), a manifest that was edited or
    /// whose config does not validate, a file whose length or digest differs from the
    /// manifest (damaged, or from another index or save), or parts that do not fit together;
    /// the parts' own errors for damaged contents.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = cart_format::resolve(dir.as_ref()).map_err(io_error(dir.as_ref()))?;
        let dir = dir.as_path();
        if !dir.exists() && lock_path(dir).is_ok_and(|p| p.exists()) {
            let _lock = lock_exclusive(dir)?;
            recover(dir)?;
        }
        let mut last = None;
        for _ in 0..LOAD_ATTEMPTS {
            let lock = lock_shared(dir);
            match Self::load_once(dir, device) {
                Ok(index) => return Ok(index),
                // without the lock a save may have changed files under this load: retry
                Err(e) if lock.is_none() => last = Some(e),
                Err(e) => return Err(e),
            }
            drop(lock);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(last.unwrap_or_else(|| Error::format(dir, "changed during every load attempt")))
    }

    fn load_once(dir: &Path, device: &Device) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST);
        let manifest = read_manifest(&manifest_path)?;
        let checked = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let expected = manifest
                .files
                .get(name)
                .ok_or_else(|| Error::format(&manifest_path, format!("no entry for {name}")))?;
            let bytes = read(&path)?;
            let found = entry(name, &bytes);
            if found != *expected {
                return Err(Error::format(
                    &path,
                    format!(
                        "{} bytes with digest {:08x}, the manifest says {} bytes with {:08x}: \
                         damaged, or from another index or save",
                        found.bytes, found.digest, expected.bytes, expected.digest
                    ),
                ));
            }
            Ok(bytes)
        };
        // Every file is read once, checked, then decoded from those bytes.
        let quantizer_bytes = checked(QUANTIZER)?;
        let trie_bytes = checked(TRIE)?;
        let generator_bytes = checked(GENERATOR)?;
        let history_bytes = checked(HISTORY)?;
        let rerank_bytes = match (manifest.rerank, manifest.files.contains_key(RERANK)) {
            (true, _) => Some(checked(RERANK)?),
            (false, false) => None,
            (false, true) => {
                return Err(Error::format(
                    &manifest_path,
                    "lists rerank.bin for an index without re-rank vectors",
                ));
            }
        };
        Self::decode(
            dir,
            manifest,
            &quantizer_bytes,
            &trie_bytes,
            &generator_bytes,
            &history_bytes,
            rerank_bytes.as_deref(),
            device,
        )
    }

    #[allow(clippy::too_many_arguments, reason = "one byte buffer per file, read once")]
    fn decode(
        dir: &Path,
        manifest: Manifest,
        quantizer: &[u8],
        trie: &[u8],
        generator: &[u8],
        history: &[u8],
        rerank: Option<&[u8]>,
        device: &Device,
    ) -> Result<Self> {
        let at = |name: &str| {
            let path = dir.join(name);
            move |e: cart_quant::Error| match e {
                cart_quant::Error::Checkpoint { reason, .. } => Error::format(&path, reason),
                other => Error::Quant(other),
            }
        };
        let quantizer = AnyQuantizer::from_bytes(quantizer, device).map_err(at(QUANTIZER))?;
        if quantizer.kind() != manifest.quantizer {
            return Err(Error::format(
                dir.join(QUANTIZER),
                format!(
                    "a {} quantizer, the manifest says {}",
                    quantizer.kind(),
                    manifest.quantizer
                ),
            ));
        }
        let trie = IdTrie::from_bytes(trie)?;
        let generator = Generator::from_bytes(generator, device)?;
        let history: TrainHistory =
            serde_json::from_slice(history).map_err(|e| Error::format(dir.join(HISTORY), e))?;
        let dense = match rerank {
            Some(bytes) => Some(vectors_from_bytes(bytes, &dir.join(RERANK))?),
            None => None,
        };
        // The parts must fit together.
        let bad = |reason: String| Err(Error::format(dir, reason));
        let l = trie.layout();
        if IdLayout::for_codebooks(&quantizer.codebook_sizes(), l.n_unique())? != *l {
            return bad("the quantizer's codebooks do not match the identifier layout".into());
        }
        let g = generator.dims();
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
        if quantizer.d_input() != manifest.item_dim || g.query_width != manifest.query_dim {
            return bad("item or query width differs from the manifest".into());
        }
        if let Some(d) = &dense
            && (d.len() != trie.len() || d.dim() != g.query_width)
        {
            return bad(format!(
                "{} re-rank vectors of width {} for {} items and queries of width {}",
                d.len(),
                d.dim(),
                trie.len(),
                g.query_width
            ));
        }
        if manifest.config.generator != *generator.config() {
            return bad("the manifest's generator config is not the one generator.bin holds".into());
        }
        let config = manifest.config;
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

/// Moves the complete directory `tmp` to `dir`, replacing an old index there, durably.
fn swap_in(tmp: &Path, dir: &Path) -> Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    cart_format::sync_dir(tmp).map_err(io_error(tmp))?;
    let old = match dir.exists() {
        true => {
            let old = cart_format::unique_sibling(dir, "old").map_err(io_error(dir))?;
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
    cart_format::sync_dir(parent).map_err(io_error(parent))?;
    if let Some(old) = old {
        let _ = fs::remove_dir_all(old);
    }
    Ok(())
}

fn vectors_to_bytes(dense: &DenseIndex) -> Result<Vec<u8>> {
    let (n, dim) = (dense.len(), dense.dim());
    let header = VectorsHeader { metric: dense.metric(), rows: n, dim };
    let values: Vec<f32> = dense.vectors().iter().copied().collect();
    Ok(Writer::new(VECTORS_KIND, VECTORS_VERSION)
        .section("header", serde_json::to_vec(&header).map_err(|e| Error::format(RERANK, e))?)
        .section("values", f32s_to_bytes(&values))
        .to_bytes())
}

fn vectors_from_bytes(bytes: &[u8], path: &Path) -> Result<DenseIndex> {
    let bad = |reason: String| Error::format(path, reason);
    let file = Container::parse(bytes)
        .and_then(|c| c.expect(VECTORS_KIND, VECTORS_VERSION))
        .map_err(|e| bad(e.to_string()))?;
    let header: VectorsHeader =
        serde_json::from_slice(file.section("header").map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(format!("header: {e}")))?;
    let values = file.section("values").map_err(|e| bad(e.to_string()))?;
    let expected = header.rows.checked_mul(header.dim).and_then(|v| v.checked_mul(4));
    if expected != Some(values.len()) || header.dim == 0 {
        return Err(bad(format!(
            "{} bytes of values for {} rows of width {}",
            values.len(),
            header.rows,
            header.dim
        )));
    }
    let data = bytes_to_f32s(values).unwrap_or_default();
    let data = ndarray::Array2::from_shape_vec((header.rows, header.dim), data)
        .map_err(|e| bad(format!("values: {e}")))?;
    DenseIndex::from_prepared(data, header.metric).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: IndexConfig) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            crate_version: "test".into(),
            save_id: "0".into(),
            n_items: 1,
            item_dim: 1,
            query_dim: 1,
            quantizer: "residual".into(),
            rerank: false,
            config,
            files: BTreeMap::new(),
            checksum: 0,
        }
    }

    #[test]
    fn a_sealed_manifest_with_a_bad_config_is_refused() {
        let dir = std::env::temp_dir().join(format!("cart-manifest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MANIFEST);
        let good = IndexConfig::residual(4, 1, 4);
        fs::write(&path, manifest(good.clone()).sealed().unwrap()).unwrap();
        read_manifest(&path).unwrap();
        let mut bad = Vec::new();
        let mut c = good.clone();
        c.beam_width = 0;
        bad.push(("beam_width", c));
        let mut c = good.clone();
        c.validation_fraction = 5.0;
        bad.push(("validation_fraction", c));
        let mut c = good.clone();
        c.unique_headroom = -3.0;
        bad.push(("unique_headroom", c));
        let mut c = good;
        c.train.batch_size = 0;
        bad.push(("batch_size", c));
        for (field, config) in bad {
            fs::write(&path, manifest(config).sealed().unwrap()).unwrap();
            let e = read_manifest(&path).unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// A version-4 manifest (no `rerank_all_pairs`) loads with the switch off, which is what
    /// its training-split centroids were; an edit of one byte is still caught.
    #[test]
    fn a_version_4_manifest_loads_with_held_out_centroids() {
        let dir = std::env::temp_dir().join(format!("cart-manifest-v4-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MANIFEST);
        let sealed = manifest(IndexConfig::residual(4, 1, 4)).sealed().unwrap();
        let text = String::from_utf8(sealed).unwrap();
        let v4: String = text
            .lines()
            .filter(|l| !l.contains("\"rerank_all_pairs\""))
            .map(|l| {
                if l.starts_with("  \"version\"") {
                    "  \"version\": 4,".into()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!v4.contains("rerank_all_pairs") && v4.contains("\"version\": 4,"));
        let reseal = |body: &str| {
            let at = body.rfind("\"checksum\": ").unwrap() + "\"checksum\": ".len();
            let end = at + body[at..].bytes().take_while(u8::is_ascii_digit).count();
            let zero = format!("{}0{}", &body[..at], &body[end..]);
            format!("{}{}{}", &body[..at], crc32fast::hash(zero.as_bytes()), &body[end..])
        };
        let v4 = reseal(&v4);
        fs::write(&path, &v4).unwrap();
        let read = read_manifest(&path).unwrap();
        assert!(!read.config.rerank_all_pairs);
        assert_eq!(read.version, 4);
        fs::write(&path, v4.replace("\"beam_width\": 10", "\"beam_width\": 11")).unwrap();
        let e = read_manifest(&path).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        fs::write(&path, v4.replace("\"version\": 4,", "\"version\": 3,")).unwrap();
        assert!(read_manifest(&path).unwrap_err().to_string().contains("format version 3"));
        let _ = fs::remove_dir_all(&dir);
    }
}
