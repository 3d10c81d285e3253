//! The trie file: a [`cart_format`] container of kind `cart-trie`.
//!
//! Sections (all integers little-endian `u32` unless said):
//!
//! | section | content |
//! | --- | --- |
//! | `layout` | `n_coarse`, `n_levels`, `codebook_size`, `n_unique` |
//! | `nodes` | number of nodes at depths `1..=id_len` (`u64` each) |
//! | `offsets` | `offsets[0..id_len]`, concatenated |
//! | `labels` | `labels[0..id_len]`, concatenated |
//! | `leaves` | the item of every leaf |
//!
//! The container frames, bounds-checks and checksums the file; this module checks that the
//! sections' sizes follow from the node counts and every structural invariant of the trie.

use std::fs;
use std::path::Path;

use cart_format::{Container, Writer, bytes_to_u32s, u32s_to_bytes};

use crate::error::{Error, Result};
use crate::layout::IdLayout;
use crate::trie::{IdTrie, TrieParts};

/// Container kind of a trie file.
pub const KIND: &str = "cart-trie";
/// The trie format (the container's kind version) this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

impl IdTrie {
    /// Encodes the trie as a `cart-trie` container (see the [module docs](crate#file-format)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (offsets, labels, leaf_item) = self.parts();
        let l = self.layout();
        let layout = [l.n_coarse(), l.n_levels() as u32, l.codebook_size(), l.n_unique()];
        let nodes: Vec<u8> =
            labels.iter().flat_map(|lab| (lab.len() as u64).to_le_bytes()).collect();
        let flat = |v: &[Vec<u32>]| u32s_to_bytes(&v.concat());
        Writer::new(KIND, FORMAT_VERSION)
            .section("layout", u32s_to_bytes(&layout))
            .section("nodes", nodes)
            .section("offsets", flat(offsets))
            .section("labels", flat(labels))
            .section("leaves", u32s_to_bytes(leaf_item))
            .to_bytes()
    }

    /// Decodes a trie from the binary file format, checking the container, the sections'
    /// sizes and every structural invariant.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedVersion`]; never panics on any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode(bytes, Path::new(""))
    }

    /// Writes the trie to `path` atomically and durably ([`cart_format::write_atomic`]). A
    /// crash leaves either the old file or the new one.
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

/// [`cart_format::write_atomic`] with the error as [`Error::Io`].
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    cart_format::write_atomic(path, bytes)
        .map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn decode(bytes: &[u8], path: &Path) -> Result<IdTrie> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
    let file = Container::parse(bytes).and_then(|c| c.expect(KIND, FORMAT_VERSION)).map_err(
        |e| match e {
            cart_format::FormatError::Version { what, found, supported } if what == KIND => {
                Error::UnsupportedVersion { path: path.to_owned(), found, supported }
            }
            other => corrupt(other.to_string()),
        },
    )?;
    let section = |name: &str| -> Result<Vec<u32>> {
        let b = file.section(name).map_err(|e| corrupt(e.to_string()))?;
        bytes_to_u32s(b)
            .ok_or_else(|| corrupt(format!("section {name}: length not a multiple of 4")))
    };
    let head = section("layout")?;
    let [n_coarse, n_levels, codebook_size, n_unique] = head[..] else {
        return Err(corrupt(format!("layout: {} values, expected 4", head.len())));
    };
    let layout = IdLayout::new(n_coarse, n_levels as usize, codebook_size, n_unique)
        .map_err(|e| corrupt(format!("bad layout: {e}")))?;
    let l = layout.id_len();
    let nodes = file.section("nodes").map_err(|e| corrupt(e.to_string()))?;
    if nodes.len() != 8 * l {
        return Err(corrupt(format!("nodes: {} bytes for {l} depths", nodes.len())));
    }
    let mut n_nodes = Vec::with_capacity(l + 1);
    n_nodes.push(1u64);
    for c in nodes.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        n_nodes.push(u64::from_le_bytes(b));
    }
    // the sizes the counts imply, checked before anything is built
    let want = |name: &str, got: usize, n: Option<u64>| -> Result<()> {
        if n != Some(got as u64 / 4) || !got.is_multiple_of(4) {
            return Err(corrupt(format!("{name}: {got} bytes do not match the node counts")));
        }
        Ok(())
    };
    fn sum(it: impl Iterator<Item = Option<u64>>) -> Option<u64> {
        it.into_iter().try_fold(0u64, |a, n| a.checked_add(n?))
    }
    let len = |name: &str| file.section(name).map_or(0, <[u8]>::len);
    want("offsets", len("offsets"), sum(n_nodes[..l].iter().map(|n| n.checked_add(1))))?;
    want("labels", len("labels"), sum(n_nodes[1..].iter().map(|&n| Some(n))))?;
    want("leaves", len("leaves"), Some(n_nodes[l]))?;
    let split = |flat: Vec<u32>, counts: &mut dyn Iterator<Item = u64>| -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        let mut rest = &flat[..];
        for n in counts {
            let (a, b) = rest.split_at(n as usize);
            out.push(a.to_vec());
            rest = b;
        }
        out
    };
    let offsets = split(section("offsets")?, &mut n_nodes[..l].iter().map(|n| n + 1));
    let labels = split(section("labels")?, &mut n_nodes[1..].iter().copied());
    let leaf_item = section("leaves")?;
    let parts = TrieParts { layout, offsets, labels, leaf_item };
    parts.validate().map_err(corrupt)?;
    IdTrie::try_from(parts).map_err(|e| match e {
        Error::Corrupt { reason, .. } => corrupt(reason),
        other => corrupt(other.to_string()),
    })
}
