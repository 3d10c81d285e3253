//! Saving and loading fitted quantizers, one file each.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CARTQNT1` |
//! | 4 | format version (`u32`, now 1) |
//! | 8 | header length `H` (`u64`) |
//! | `H` | header: JSON with the quantizer kind, its config, and the name, shape and length of every blob |
//! | .. | the blobs, in header order: centroids as row-major `f32`, RQ-VAE weights (encoder, codebooks, decoder) as a burn record (burnpack bytes) |
//! | 4 | CRC-32 of everything before it |
//!
//! Files are written to a temporary file in the same directory and renamed into place, so a
//! crash never leaves a half-written checkpoint under the real name. Loading checks the magic,
//! version, lengths, checksum, kind and every shape, and returns [`Error::Checkpoint`] on any
//! mismatch.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::coarse::CoarseToFine;
use crate::kmeans::KMeans;
use crate::quantizer::Quantizer;
use crate::residual::ResidualQuantizer;
use crate::rqvae::{RqVae, RqVaeConfig};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CARTQNT1";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kind: String,
    config: serde_json::Value,
    blobs: Vec<BlobInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BlobInfo {
    name: String,
    rows: usize,
    cols: usize,
    len: usize,
}

struct Writer {
    kind: &'static str,
    config: serde_json::Value,
    blobs: Vec<(BlobInfo, Vec<u8>)>,
}

impl Writer {
    fn new(kind: &'static str, config: serde_json::Value) -> Self {
        Self { kind, config, blobs: Vec::new() }
    }

    fn matrix(&mut self, name: &str, m: ArrayView2<'_, f32>) {
        let bytes: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
        let info =
            BlobInfo { name: name.into(), rows: m.nrows(), cols: m.ncols(), len: bytes.len() };
        self.blobs.push((info, bytes));
    }

    fn rqvae(&mut self, name: &str, model: &RqVae) -> Result<()> {
        let bytes = model
            .model()
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::tensor(format!("burn record: {e}")))?;
        let bytes = bytes.to_vec();
        self.blobs
            .push((BlobInfo { name: name.into(), rows: 0, cols: 0, len: bytes.len() }, bytes));
        Ok(())
    }

    fn write(self, path: &Path) -> Result<()> {
        let (infos, payloads): (Vec<_>, Vec<_>) = self.blobs.into_iter().unzip();
        let header = Header { kind: self.kind.into(), config: self.config, blobs: infos };
        let header = serde_json::to_vec(&header)?;
        let mut out =
            Vec::with_capacity(24 + header.len() + payloads.iter().map(Vec::len).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for p in &payloads {
            out.extend_from_slice(p);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_atomic(path, &out)
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name")))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

struct Reader {
    path: PathBuf,
    config: serde_json::Value,
    blobs: Vec<(BlobInfo, Vec<u8>)>,
}

impl Reader {
    fn open(path: &Path, kind: &str) -> Result<Self> {
        let bad = |reason: String| Error::Checkpoint { path: path.to_path_buf(), reason };
        let bytes =
            fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        if bytes.len() < 24 {
            return Err(bad(format!(
                "truncated: {} bytes, less than the fixed header",
                bytes.len()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a cart-quant checkpoint (bad magic)".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(bad(format!("format version {version}, this build reads {VERSION}")));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[12..20]);
        let header_len = usize::try_from(u64::from_le_bytes(len8)).unwrap_or(usize::MAX);
        let header_end = 20usize.saturating_add(header_len);
        if header_end > bytes.len().saturating_sub(4) {
            return Err(bad(format!("truncated: header of {header_len} bytes does not fit")));
        }
        let header: Header = serde_json::from_slice(&bytes[20..header_end])
            .map_err(|e| bad(format!("corrupt header: {e}")))?;
        let payload: usize = header.blobs.iter().map(|b| b.len).fold(0, usize::saturating_add);
        let expected = header_end.saturating_add(payload).saturating_add(4);
        if bytes.len() < expected {
            return Err(bad(format!("truncated: {} bytes, expected {expected}", bytes.len())));
        }
        if bytes.len() > expected {
            return Err(bad(format!(
                "{} trailing bytes after the checksum",
                bytes.len() - expected
            )));
        }
        let body = expected - 4;
        let stored =
            u32::from_le_bytes([bytes[body], bytes[body + 1], bytes[body + 2], bytes[body + 3]]);
        if crc32fast::hash(&bytes[..body]) != stored {
            return Err(bad("checksum mismatch: the file is corrupt".into()));
        }
        if header.kind != kind {
            return Err(bad(format!("holds a {}, expected a {kind}", header.kind)));
        }
        let mut offset = header_end;
        let mut blobs = Vec::with_capacity(header.blobs.len());
        for info in header.blobs {
            let data = bytes[offset..offset + info.len].to_vec();
            offset += info.len;
            blobs.push((info, data));
        }
        Ok(Self { path: path.to_path_buf(), config: header.config, blobs })
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Checkpoint { path: self.path.clone(), reason: reason.into() }
    }

    fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| self.bad(format!("config does not match this version: {e}")))
    }

    fn blob(&self, name: &str) -> Result<&(BlobInfo, Vec<u8>)> {
        self.blobs
            .iter()
            .find(|(info, _)| info.name == name)
            .ok_or_else(|| self.bad(format!("missing blob {name:?}")))
    }

    fn matrix(&self, name: &str) -> Result<Array2<f32>> {
        let (info, bytes) = self.blob(name)?;
        if info.rows.checked_mul(info.cols).and_then(|n| n.checked_mul(4)) != Some(bytes.len()) {
            return Err(self.bad(format!(
                "blob {name:?}: {} bytes for {}x{}",
                bytes.len(),
                info.rows,
                info.cols
            )));
        }
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(self.bad(format!("blob {name:?} holds non-finite values")));
        }
        Array2::from_shape_vec((info.rows, info.cols), values).map_err(|e| self.bad(e.to_string()))
    }

    fn kmeans(&self, name: &str, device: &Device) -> Result<KMeans> {
        let m = self.matrix(name)?;
        KMeans::from_centroids(m, device).map_err(|e| self.bad(format!("blob {name:?}: {e}")))
    }

    fn rqvae(&self, name: &str, config: RqVaeConfig, device: &Device) -> Result<RqVae> {
        let (_, bytes) = self.blob(name)?;
        let model = RqVae::build_for_load(&config, device)
            .map_err(|e| self.bad(format!("stored rq-vae config: {e}")))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.clone()))
            .map_err(|e| self.bad(format!("rq-vae weights: {e}")))?;
        let model = model
            .try_load_record(record)
            .map_err(|e| self.bad(format!("rq-vae weights do not match its config: {e}")))?;
        Ok(RqVae::from_model(config, model, device))
    }
}

impl KMeans {
    /// Saves the centroids to `path` (atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = Writer::new("kmeans", serde_json::Value::Null);
        w.matrix("centroids", self.centroids());
        w.write(path.as_ref())
    }

    /// Loads centroids saved by [`KMeans::save`]; assignment runs on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::Checkpoint`] if it is corrupt,
    /// truncated or holds another kind of quantizer.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Reader::open(path.as_ref(), "kmeans")?.kmeans("centroids", device)
    }
}

impl ResidualQuantizer {
    /// Saves every level's centroids to `path` (atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = Writer::new("residual", serde_json::json!({ "n_levels": self.n_levels() }));
        for (l, level) in self.levels().iter().enumerate() {
            w.matrix(&format!("level{l}"), level.centroids());
        }
        w.write(path.as_ref())
    }

    /// Loads a quantizer saved by [`ResidualQuantizer::save`].
    ///
    /// # Errors
    ///
    /// As [`KMeans::load`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let r = Reader::open(path.as_ref(), "residual")?;
        let n_levels = r.config.get("n_levels").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let levels = (0..n_levels)
            .map(|l| r.kmeans(&format!("level{l}"), device))
            .collect::<Result<Vec<_>>>()?;
        ResidualQuantizer::from_levels(levels).map_err(|e| r.bad(e.to_string()))
    }
}

impl RqVae {
    /// Saves the config (JSON) and the weights and codebooks (burn record) to `path`
    /// (atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = Writer::new("rqvae", serde_json::to_value(self.config())?);
        w.rqvae("model", self)?;
        w.write(path.as_ref())
    }

    /// Loads a model saved by [`RqVae::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`KMeans::load`]; also [`Error::Checkpoint`] when the weights do not fit the stored
    /// config.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let r = Reader::open(path.as_ref(), "rqvae")?;
        let config: RqVaeConfig = r.config()?;
        r.rqvae("model", config, device)
    }
}

impl CoarseToFine {
    /// Saves the coarse centroids, the RQ-VAE config (JSON) and its weights (burn record) to
    /// `path` (atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = Writer::new("coarse_to_fine", serde_json::to_value(self.fine().config())?);
        w.matrix("coarse", self.coarse().centroids());
        w.rqvae("fine", self.fine())?;
        w.write(path.as_ref())
    }

    /// Loads a quantizer saved by [`CoarseToFine::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`RqVae::load`], and [`Error::Checkpoint`] if the parts' widths differ.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let r = Reader::open(path.as_ref(), "coarse_to_fine")?;
        let coarse = r.kmeans("coarse", device)?;
        let fine = r.rqvae("fine", r.config()?, device)?;
        CoarseToFine::from_parts(coarse, fine).map_err(|e| r.bad(e.to_string()))
    }
}
