//! Saving and loading a [`Generator`], one file each.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CARTGEN1` |
//! | 4 | format version (`u32`, now 1) |
//! | 8 | header length `H` (`u64`) |
//! | `H` | header: JSON with the kind, the writing crate's version and the [`GeneratorConfig`] |
//! | .. | the weights as a burn record (burnpack bytes) |
//! | 4 | CRC-32 of everything before it |
//!
//! Writes are atomic (temporary file, then rename). Loading checks the magic, version, lengths,
//! checksum and kind, validates the config, and loads the weights into a model built from it,
//! so a weight of another shape is an [`Error::Checkpoint`], never a panic.

use std::path::Path;

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::generator::Generator;
use crate::model::GeneratorConfig;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CARTGEN1";
/// Version of the checkpoint format [`Generator::save`] writes.
pub const FORMAT_VERSION: u32 = 1;
const KIND: &str = "cart-model generator";

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kind: String,
    crate_version: String,
    config: GeneratorConfig,
    weights_len: u64,
}

/// Atomic write (temporary sibling file, sync, rename), with I/O errors as [`Error::Io`].
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    cart_ids::write_atomic(path, bytes).map_err(|e| match e {
        cart_ids::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Ids(other),
    })
}

impl Generator {
    /// The checkpoint as bytes (see the module docs for the layout).
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] if the weights cannot be read back, [`Error::Json`] for the header.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let weights = self
            .model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::tensor(format!("burn record: {e}")))?;
        let header = Header {
            kind: KIND.into(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            config: self.config.clone(),
            weights_len: weights.len() as u64,
        };
        let header = serde_json::to_vec(&header)?;
        let mut out = Vec::with_capacity(24 + header.len() + weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&weights);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Saves the config and weights to `path`, atomically.
    ///
    /// # Errors
    ///
    /// As [`Generator::to_bytes`], and [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a generator saved by [`Generator::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::Checkpoint`] if it is truncated,
    /// corrupt, of another kind or version, or its weights do not match its config.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, device).map_err(|e| match e {
            Error::Checkpoint { reason, .. } => {
                Error::Checkpoint { path: path.to_path_buf(), reason }
            }
            other => other,
        })
    }

    /// Reads a checkpoint from bytes (see [`Generator::load`]); errors name the path `<bytes>`.
    ///
    /// # Errors
    ///
    /// As [`Generator::load`].
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::Checkpoint { path: "<bytes>".into(), reason };
        if bytes.len() < 24 {
            return Err(bad(format!("truncated: {} bytes", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a cart-model checkpoint (bad magic)".into()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        if crc32fast::hash(body) != stored {
            return Err(bad("checksum mismatch: the file is corrupt or truncated".into()));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let header_len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
        let header_end = 20usize.saturating_add(header_len);
        if header_end > body.len() {
            return Err(bad(format!("header of {header_len} bytes past the end")));
        }
        let header: Header = serde_json::from_slice(&body[20..header_end])
            .map_err(|e| bad(format!("header: {e}")))?;
        if header.kind != KIND {
            return Err(bad(format!("kind {:?}, expected {KIND:?}", header.kind)));
        }
        let weights = &body[header_end..];
        if weights.len() as u64 != header.weights_len {
            return Err(bad(format!(
                "weights of {} bytes, header says {}",
                weights.len(),
                header.weights_len
            )));
        }
        header.config.validate().map_err(|e| bad(format!("stored config: {e}")))?;
        let model = header.config.build(device);
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
            .map_err(|e| bad(format!("weights: {e}")))?;
        let model = model
            .try_load_record(record)
            .map_err(|e| bad(format!("weights do not match the config: {e}")))?;
        Ok(Generator { config: header.config, model, device: device.clone() })
    }
}
