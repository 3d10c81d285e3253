//! The compact binary trie file, and atomic writes.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CARTTRIE` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 16 | layout: `n_coarse`, `n_levels`, `codebook_size`, `n_unique` (u32 each) |
//! | 8 per depth | number of nodes at depths `1..=id_len` (u64 each) |
//! | 4 per entry | `offsets[0..id_len]`, then `labels[0..id_len]`, then the item of every leaf (u32) |
//! | 4 | CRC-32 (IEEE) of every byte before it |

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::IdLayout;
use crate::trie::{IdTrie, TrieParts};

/// File magic of a trie file.
pub const MAGIC: [u8; 8] = *b"CARTTRIE";
/// The trie file format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

impl IdTrie {
    /// Encodes the trie in the binary file format (see the [module docs](crate#file-format)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (offsets, labels, leaf_item) = self.parts();
        let n_words: usize =
            offsets.iter().chain(labels).map(Vec::len).sum::<usize>() + leaf_item.len();
        let mut out = Vec::with_capacity(32 + 8 * labels.len() + 4 * n_words + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let l = self.layout();
        for v in [l.n_coarse(), l.n_levels() as u32, l.codebook_size(), l.n_unique()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for lab in labels {
            out.extend_from_slice(&(lab.len() as u64).to_le_bytes());
        }
        for x in offsets.iter().chain(labels).flatten().chain(leaf_item) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a trie from the binary file format, checking magic, version, size, checksum and
    /// every structural invariant.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedVersion`]; never panics on any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode(bytes, Path::new(""))
    }

    /// Writes the trie to `path` atomically: a temporary file in the same folder, synced, then
    /// renamed over `path`. A crash leaves either the old file or the new one.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes())
    }

    /// Reads a trie written by [`IdTrie::save`].
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Corrupt`] (truncated, bad checksum, inconsistent) or
    /// [`Error::UnsupportedVersion`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        decode(&bytes, path)
    }
}

fn decode(bytes: &[u8], path: &Path) -> Result<IdTrie> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.take(8).ok_or_else(|| corrupt("too short for a header".into()))?;
    if magic != MAGIC {
        return Err(corrupt("not a cart trie file (bad magic)".into()));
    }
    let version = r.u32().ok_or_else(|| corrupt("truncated header".into()))?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut head = [0u32; 4];
    for h in &mut head {
        *h = r.u32().ok_or_else(|| corrupt("truncated header".into()))?;
    }
    let layout = IdLayout::new(head[0], head[1] as usize, head[2], head[3])
        .map_err(|e| corrupt(format!("bad layout: {e}")))?;
    let l = layout.id_len();
    let mut n_nodes = Vec::with_capacity(l + 1);
    n_nodes.push(1u64);
    for _ in 0..l {
        n_nodes.push(r.u64().ok_or_else(|| corrupt("truncated header".into()))?);
    }
    // the exact size the counts imply, checked before anything is allocated
    let words = n_nodes[..l]
        .iter()
        .map(|n| n.checked_add(1))
        .chain(n_nodes[1..].iter().map(|&n| Some(n)))
        .chain(std::iter::once(Some(n_nodes[l])))
        .try_fold(0u64, |acc, n| acc.checked_add(n?));
    let expected = words
        .and_then(|w| w.checked_mul(4))
        .and_then(|w| w.checked_add(r.pos as u64 + 4))
        .ok_or_else(|| corrupt("node counts overflow".into()))?;
    if expected != bytes.len() as u64 {
        let what = if (bytes.len() as u64) < expected { "truncated" } else { "trailing bytes" };
        return Err(corrupt(format!("{what}: expected {expected} bytes, found {}", bytes.len())));
    }
    let body = bytes.len() - 4;
    let stored =
        u32::from_le_bytes([bytes[body], bytes[body + 1], bytes[body + 2], bytes[body + 3]]);
    if crc32fast::hash(&bytes[..body]) != stored {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut array = |n: u64| -> Vec<u32> { (0..n).filter_map(|_| r.u32()).collect() };
    let offsets: Vec<Vec<u32>> = (0..l).map(|d| array(n_nodes[d] + 1)).collect();
    let labels: Vec<Vec<u32>> = (0..l).map(|d| array(n_nodes[d + 1])).collect();
    let leaf_item = array(n_nodes[l]);
    let parts = TrieParts { layout, offsets, labels, leaf_item };
    parts.validate().map_err(corrupt)?;
    IdTrie::try_from(parts).map_err(|e| match e {
        Error::Corrupt { reason, .. } => corrupt(reason),
        other => corrupt(other.to_string()),
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
}

/// Writes `bytes` to `path` atomically: a temporary sibling file, `fsync`, then `rename`.
///
/// # Errors
/// [`Error::Io`] naming the file that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path| {
        let p: PathBuf = p.to_owned();
        move |source| Error::Io { path: p, source }
    };
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // make the rename durable; not every platform can open a directory, so best effort
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}
