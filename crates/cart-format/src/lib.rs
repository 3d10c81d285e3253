//! The one file layer of cart-rs.
//!
//! Every binary file the workspace writes (the trie, the quantizers, the generator, the re-rank
//! vectors) is one [`Container`]: a fixed header naming the file's *kind* and its version, a
//! table of named sections, the sections' bytes, and a CRC-32 of everything before it. Each
//! crate decides what goes into its sections; framing, bounds checks and the checksum live
//! here once. Every write goes through [`write_atomic`].
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CARTFILE` |
//! | 4 | container version ([`CONTAINER_VERSION`]) |
//! | 16 | kind, ASCII, NUL-padded (e.g. `cart-trie`) |
//! | 4 | kind version (the writer's format of its sections) |
//! | 4 | number of sections `S` |
//! | 40 per section | name (32 bytes, ASCII, NUL-padded), length `u64` |
//! | .. | the sections' bytes, in table order |
//! | 4 | CRC-32 (IEEE) of every byte before it: the file's [`digest`] |
//!
//! Reading checks the magic, the versions, that the lengths add up to the file's length
//! (with checked arithmetic, before anything is allocated) and the checksum; it never panics.
//!
//! This crate has no cart dependency and no burn: `cart-quant` uses it and can still be
//! embedded alone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// File magic of every container.
pub const MAGIC: [u8; 8] = *b"CARTFILE";
/// The container framing this build reads and writes.
pub const CONTAINER_VERSION: u32 = 1;

const KIND_LEN: usize = 16;
const NAME_LEN: usize = 32;
const FIXED: usize = 8 + 4 + KIND_LEN + 4 + 4;
const ENTRY: usize = NAME_LEN + 8;
/// More sections than any writer here uses; bounds the table before it is read.
const MAX_SECTIONS: u32 = 1024;

/// Why bytes are not a valid container (or not the expected one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than its header and table say, or longer.
    #[error("truncated or damaged: {0}")]
    Length(String),
    /// Not a cart file at all.
    #[error("not a cart file (bad magic)")]
    Magic,
    /// The checksum does not match the contents.
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    /// A container or kind version this build does not read.
    #[error("{what} format version {found}, this build reads version {supported}")]
    Version {
        /// `"container"` or the kind.
        what: String,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A container of another kind (e.g. a trie where a quantizer was expected).
    #[error("a {found:?} file, expected {expected:?}")]
    Kind {
        /// Kind in the file.
        found: String,
        /// Kind expected.
        expected: String,
    },
    /// A section the reader needs is absent.
    #[error("no section {0:?}")]
    MissingSection(String),
}

/// A container being written: a kind, its version and named sections.
///
/// ```
/// use cart_format::{Container, Writer};
/// let bytes = Writer::new("demo", 3).section("numbers", vec![1, 2, 3]).to_bytes();
/// let file = Container::parse(&bytes)?.expect("demo", 3)?;
/// assert_eq!(file.section("numbers")?, &[1, 2, 3]);
/// # Ok::<(), cart_format::FormatError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Writer {
    kind: String,
    version: u32,
    sections: Vec<(String, Vec<u8>)>,
}

impl Writer {
    /// A container of `kind` (ASCII, at most 16 bytes) at `version`.
    ///
    /// # Panics
    ///
    /// If `kind` is longer than 16 bytes or not ASCII: a programming error of the writer,
    /// never a property of data.
    pub fn new(kind: &str, version: u32) -> Self {
        assert!(kind.len() <= KIND_LEN && kind.is_ascii(), "container kind {kind:?}");
        Self { kind: kind.to_owned(), version, sections: Vec::new() }
    }

    /// Adds a section (name: ASCII, at most 32 bytes, unique in the file).
    ///
    /// # Panics
    ///
    /// On a bad or repeated name: a programming error of the writer.
    pub fn section(mut self, name: &str, bytes: Vec<u8>) -> Self {
        assert!(name.len() <= NAME_LEN && name.is_ascii(), "section name {name:?}");
        assert!(self.sections.iter().all(|(n, _)| n != name), "section {name:?} twice");
        self.sections.push((name.to_owned(), bytes));
        self
    }

    /// A writer holding `file`'s kind, version and sections, to write it again edited (tools
    /// and tests that forge or migrate files).
    pub fn from_container(file: &Container<'_>) -> Self {
        let sections = file.sections.iter().map(|(n, b)| (n.clone(), b.to_vec())).collect();
        Self { kind: file.kind.clone(), version: file.version, sections }
    }

    /// With this kind version.
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Replaces the section `name` (or adds it).
    ///
    /// # Panics
    ///
    /// On a bad name, as [`Writer::section`].
    pub fn replace(mut self, name: &str, bytes: Vec<u8>) -> Self {
        match self.sections.iter_mut().find(|(n, _)| n == name) {
            Some((_, b)) => *b = bytes,
            None => self = self.section(name, bytes),
        }
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body: usize = self.sections.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(FIXED + ENTRY * self.sections.len() + body + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
        out.extend_from_slice(&padded::<KIND_LEN>(&self.kind));
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.sections.len() as u32).to_le_bytes());
        for (name, bytes) in &self.sections {
            out.extend_from_slice(&padded::<NAME_LEN>(name));
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        }
        for (_, bytes) in &self.sections {
            out.extend_from_slice(bytes);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out[..s.len()].copy_from_slice(s.as_bytes());
    out
}

fn unpadded(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A parsed container, borrowing the file's bytes.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    kind: String,
    version: u32,
    sections: Vec<(String, &'a [u8])>,
    digest: u32,
}

impl<'a> Container<'a> {
    /// Parses and checks a container: magic, container version, lengths, checksum.
    ///
    /// # Errors
    ///
    /// [`FormatError`]; never panics on any input.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let short = || FormatError::Length(format!("{} bytes", bytes.len()));
        if bytes.len() < 8 {
            return Err(short());
        }
        if bytes[..8] != MAGIC {
            return Err(FormatError::Magic);
        }
        if bytes.len() < FIXED + 4 {
            return Err(short());
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let container = u32_at(8);
        if container != CONTAINER_VERSION {
            return Err(FormatError::Version {
                what: "container".into(),
                found: container,
                supported: CONTAINER_VERSION,
            });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let kind = unpadded(&bytes[12..12 + KIND_LEN]);
        let version = u32_at(12 + KIND_LEN);
        let n = u32_at(16 + KIND_LEN);
        if n > MAX_SECTIONS {
            return Err(FormatError::Length(format!("{n} sections")));
        }
        let table_end = FIXED + ENTRY * n as usize;
        if table_end > body.len() {
            return Err(short());
        }
        let mut lens = Vec::with_capacity(n as usize);
        let mut total: u64 = table_end as u64;
        for i in 0..n as usize {
            let at = FIXED + ENTRY * i;
            let name = unpadded(&bytes[at..at + NAME_LEN]);
            let mut len = [0u8; 8];
            len.copy_from_slice(&bytes[at + NAME_LEN..at + ENTRY]);
            let len = u64::from_le_bytes(len);
            total = total.checked_add(len).ok_or_else(short)?;
            lens.push((name, len));
        }
        if total != body.len() as u64 {
            return Err(FormatError::Length(format!(
                "{} bytes, the header and table say {}",
                bytes.len(),
                total.saturating_add(4)
            )));
        }
        if crc32fast::hash(body) != stored {
            return Err(FormatError::Checksum);
        }
        let mut sections = Vec::with_capacity(lens.len());
        let mut at = table_end;
        for (name, len) in lens {
            let len = len as usize; // fits: the sum equals the body's length
            sections.push((name, &body[at..at + len]));
            at += len;
        }
        Ok(Self { kind, version, sections, digest: stored })
    }

    /// Checks the kind and its version.
    ///
    /// # Errors
    ///
    /// [`FormatError::Kind`] or [`FormatError::Version`].
    pub fn expect(self, kind: &str, version: u32) -> Result<Self, FormatError> {
        if self.kind != kind {
            return Err(FormatError::Kind { found: self.kind, expected: kind.into() });
        }
        if self.version != version {
            return Err(FormatError::Version {
                what: kind.into(),
                found: self.version,
                supported: version,
            });
        }
        Ok(self)
    }

    /// The kind named in the header.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The kind's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// A section's bytes.
    ///
    /// # Errors
    ///
    /// [`FormatError::MissingSection`].
    pub fn section(&self, name: &str) -> Result<&'a [u8], FormatError> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| FormatError::MissingSection(name.into()))
    }

    /// The names of the sections, in file order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|(n, _)| n.as_str())
    }

    /// The file's checksum (see [`digest`]).
    pub fn digest(&self) -> u32 {
        self.digest
    }
}

/// The CRC-32 of a file's contents before its trailing checksum: for a container, the value
/// its last four bytes hold. Two files with the same digest are (up to CRC collisions) the
/// same bytes, so a manifest that records it can tell one save's file from another's, which
/// a checksum over the whole file (a constant for every intact container) cannot.
pub fn digest(bytes: &[u8]) -> u32 {
    crc32fast::hash(&bytes[..bytes.len().saturating_sub(4)])
}

/// Little-endian `f32` values as bytes.
pub fn f32s_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Bytes as little-endian `f32` values; `None` if the length is not a multiple of 4.
pub fn bytes_to_f32s(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    })
}

/// Little-endian `u32` values as bytes.
pub fn u32s_to_bytes(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Bytes as little-endian `u32` values; `None` if the length is not a multiple of 4.
pub fn bytes_to_u32s(bytes: &[u8]) -> Option<Vec<u32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    })
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A sibling path of `path` no other writer uses: `.{name}.{tag}-{pid}-{n}-{nanos}`, with
/// `n` a process-wide counter (so two threads never share one) and `nanos` the clock's
/// sub-second part (so a later process with the same pid does not either).
///
/// # Errors
///
/// [`std::io::ErrorKind::InvalidInput`] if `path` has no final name.
pub fn unique_sibling(path: &Path, tag: &str) -> std::io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no final name")
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{tag}-{}-{n}-{nanos}", std::process::id()));
    Ok(path.with_file_name(s))
}

/// Whether `candidate` is a sibling made by [`unique_sibling`] for `path` with `tag`.
pub fn is_sibling_of(candidate: &Path, path: &Path, tag: &str) -> bool {
    let (Some(c), Some(name)) = (candidate.file_name(), path.file_name()) else { return false };
    let prefix = format!(".{}.{tag}-", name.to_string_lossy());
    candidate.parent() == path.parent() && c.to_string_lossy().starts_with(&prefix)
}

/// The path a write to `path` should replace: the final target when `path` is a symbolic
/// link (so a save through a link updates the file it points at instead of replacing the
/// link), `path` itself otherwise.
///
/// # Errors
///
/// The I/O error of resolving a link (e.g. a dangling one).
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_owned()),
    }
}

/// Makes a completed rename in `dir` durable. On platforms that cannot open a directory
/// (Windows) this does nothing.
///
/// # Errors
///
/// The I/O error of syncing the directory.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if cfg!(unix) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a temporary sibling with a name no other
/// writer uses ([`unique_sibling`]), `fsync`, `rename` over `path` (through a symbolic link:
/// over its target), then `fsync` of the directory. A crash leaves the old file or the new
/// one, never a mix; concurrent writers of one path each leave a whole file (the last rename
/// wins). On an error before the rename the temporary file is removed and `path` is
/// untouched; an error syncing the directory comes after the rename (the new file is in place,
/// its durability not confirmed).
///
/// # Errors
///
/// The I/O error; the path it happened on is the caller's to report.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = resolve(path)?;
    let tmp = unique_sibling(&path, "tmp")?;
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        Writer::new("test", 2).section("a", vec![1, 2, 3]).section("b", vec![]).to_bytes()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let c = Container::parse(&bytes).unwrap().expect("test", 2).unwrap();
        assert_eq!(c.section("a").unwrap(), &[1, 2, 3]);
        assert_eq!(c.section("b").unwrap(), &[] as &[u8]);
        assert_eq!(c.section_names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.digest(), digest(&bytes));
        assert!(matches!(c.section("c"), Err(FormatError::MissingSection(_))));
        // re-framed unchanged: the same bytes; edited: the edit and nothing else
        assert_eq!(Writer::from_container(&c).to_bytes(), bytes);
        let edited = Writer::from_container(&c).with_version(5).replace("a", vec![9]).to_bytes();
        let e = Container::parse(&edited).unwrap().expect("test", 5).unwrap();
        assert_eq!((e.section("a").unwrap(), e.section("b").unwrap()), (&[9u8][..], &[][..]));
    }

    #[test]
    fn kind_and_version_are_checked() {
        let bytes = sample();
        let c = || Container::parse(&bytes).unwrap();
        assert!(matches!(c().expect("other", 2), Err(FormatError::Kind { .. })));
        assert!(matches!(c().expect("test", 3), Err(FormatError::Version { found: 2, .. })));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Container::parse(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                assert!(Container::parse(&b).is_err(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn a_huge_forged_length_is_refused_before_allocating() {
        let mut bytes = sample();
        // the first section's length, then a recomputed checksum
        let at = FIXED + NAME_LEN;
        bytes[at..at + 8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(Container::parse(&bytes), Err(FormatError::Length(_))));
    }

    #[test]
    fn different_contents_have_different_digests() {
        let a = Writer::new("t", 1).section("x", vec![1]).to_bytes();
        let b = Writer::new("t", 1).section("x", vec![2]).to_bytes();
        // a whole-file CRC is the same constant for both; the digest is not
        assert_eq!(crc32fast::hash(&a), crc32fast::hash(&b));
        assert_ne!(digest(&a), digest(&b));
    }

    #[test]
    fn concurrent_writers_of_one_path_each_leave_a_whole_file() {
        let dir = std::env::temp_dir().join(format!("cart-format-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let files: Vec<Vec<u8>> = (0..8u8)
            .map(|i| Writer::new("t", 1).section("x", vec![i; 100_000]).to_bytes())
            .collect();
        for _ in 0..20 {
            std::thread::scope(|s| {
                for f in &files {
                    let path = &path;
                    s.spawn(move || write_atomic(path, f).unwrap());
                }
            });
            let bytes = fs::read(&path).unwrap();
            assert!(files.contains(&bytes));
        }
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != "f.bin")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn writing_through_a_symlink_updates_its_target() {
        let dir = std::env::temp_dir().join(format!("cart-format-link-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target.bin");
        let link = dir.join("link.bin");
        fs::write(&target, b"old").unwrap();
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }
}
