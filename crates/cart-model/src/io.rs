//! Saving and loading a [`Generator`], one file each.
//!
//! A [`cart_format`] container of kind `cart-generator` (version [`FORMAT_VERSION`]) with two
//! sections: `header`, JSON with the writing crate's version, the [`GeneratorConfig`] and the
//! [`GeneratorDims`], and `weights`, the weights as a burn record (burnpack bytes). Version 2
//! (one config holding the sizes too) is refused with a version error.
//!
//! Writes are atomic and durable ([`cart_format::write_atomic`]). Loading checks the container
//! (magic, versions, lengths, checksum), validates the config, refuses one that needs more
//! parameters than the stored weights hold before allocating, and loads the weights into a
//! model built from it, so a weight of another shape is an [`Error::Checkpoint`], never a
//! panic.

use std::path::Path;

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::generator::Generator;
use crate::model::{GeneratorConfig, GeneratorDims};
use crate::{Error, Result};

/// Container kind of a generator file.
pub const KIND: &str = "cart-generator";
/// Version of the checkpoint format [`Generator::save`] writes.
pub const FORMAT_VERSION: u32 = 3;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    crate_version: String,
    config: GeneratorConfig,
    dims: GeneratorDims,
}

/// Atomic, durable write ([`cart_format::write_atomic`]), with I/O errors as [`Error::Io`].
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    cart_format::write_atomic(path, bytes)
        .map_err(|source| Error::Io { path: path.to_owned(), source })
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
            crate_version: env!("CARGO_PKG_VERSION").into(),
            config: self.config.clone(),
            dims: self.dims.clone(),
        };
        Ok(cart_format::Writer::new(KIND, FORMAT_VERSION)
            .section("header", serde_json::to_vec(&header)?)
            .section("weights", weights.to_vec())
            .to_bytes())
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
        let file = cart_format::Container::parse(bytes)
            .and_then(|c| c.expect(KIND, FORMAT_VERSION))
            .map_err(|e| bad(e.to_string()))?;
        let section = |name: &str| file.section(name).map_err(|e| bad(e.to_string()));
        let mut header: serde_json::Value =
            serde_json::from_slice(section("header")?).map_err(|e| bad(format!("header: {e}")))?;
        // files written before `subtree_prior` existed scored without it
        if let Some(config) = header.get_mut("config").and_then(serde_json::Value::as_object_mut) {
            config.entry("subtree_prior").or_insert(serde_json::Value::Bool(false));
        }
        let header: Header =
            serde_json::from_value(header).map_err(|e| bad(format!("header: {e}")))?;
        let weights = section("weights")?;
        let Header { config, dims, .. } = header;
        config.validate(&dims).map_err(|e| bad(format!("stored config: {e}")))?;
        let needed = config.min_params(&dims).and_then(|n| n.checked_mul(4));
        if needed.is_none_or(|n| n > weights.len()) {
            return Err(bad(format!(
                "the stored config needs more parameters than the {} bytes of weights hold",
                weights.len()
            )));
        }
        let model = config.build(&dims, device);
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
            .map_err(|e| bad(format!("weights: {e}")))?;
        let model = model
            .try_load_record(record)
            .map_err(|e| bad(format!("weights do not match the config: {e}")))?;
        Ok(Generator { config, dims, model, device: device.clone() })
    }
}
