//! Saving and loading fitted quantizers, one file each.
//!
//! Every file is a [`cart_format`] container of kind `cart-quantizer` (version
//! [`FORMAT_VERSION`]). Its `header` section is JSON with the quantizer kind (`kmeans`,
//! `residual`, `rqvae`, `coarse_to_fine`), its config and the name and shape of every blob;
//! each blob is one more section: centroids as row-major little-endian `f32`, RQ-VAE weights
//! (encoder, codebooks, decoder) as a burn record (burnpack bytes).
//!
//! Writes are atomic and durable ([`cart_format::write_atomic`]). Loading checks the
//! container (magic, versions, lengths, checksum), the kind and every shape, and refuses a
//! header whose sizes the stored weights cannot hold before allocating anything: any mismatch
//! is an [`Error::Checkpoint`]. [`AnyQuantizer`] reads any of the four kinds.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use cart_format::{Container, Writer as FileWriter, bytes_to_f32s, f32s_to_bytes};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::coarse::CoarseToFine;
use crate::kmeans::KMeans;
use crate::quantizer::Quantizer;
use crate::residual::ResidualQuantizer;
use crate::rqvae::{RqVae, RqVaeConfig};
use crate::{Error, Result};

/// Container kind of a quantizer file.
pub const KIND: &str = "cart-quantizer";
/// The quantizer file format (the container's kind version) this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

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
        let values: Vec<f32> = m.iter().copied().collect();
        let info = BlobInfo { name: name.into(), rows: m.nrows(), cols: m.ncols() };
        self.blobs.push((info, f32s_to_bytes(&values)));
    }

    fn rqvae(&mut self, name: &str, model: &RqVae) -> Result<()> {
        let bytes = model
            .model()
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::tensor(format!("burn record: {e}")))?;
        self.blobs.push((BlobInfo { name: name.into(), rows: 0, cols: 0 }, bytes.to_vec()));
        Ok(())
    }

    fn into_bytes(self) -> Result<Vec<u8>> {
        let (infos, payloads): (Vec<_>, Vec<_>) = self.blobs.into_iter().unzip();
        let names: Vec<String> = infos.iter().map(|b| b.name.clone()).collect();
        let header = Header { kind: self.kind.into(), config: self.config, blobs: infos };
        let mut file =
            FileWriter::new(KIND, FORMAT_VERSION).section("header", serde_json::to_vec(&header)?);
        for (name, bytes) in names.iter().zip(payloads) {
            file = file.section(name, bytes);
        }
        Ok(file.to_bytes())
    }
}

fn save_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    cart_format::write_atomic(path, bytes)
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Errors of `from_bytes` name the path `<bytes>`; `load` puts the real one in.
fn at_path(path: &Path) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::Checkpoint { reason, .. } => Error::Checkpoint { path: path.to_path_buf(), reason },
        other => other,
    }
}

struct Reader<'a> {
    path: PathBuf,
    kind: String,
    config: serde_json::Value,
    file: Container<'a>,
    blobs: Vec<BlobInfo>,
}

impl<'a> Reader<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        let path = PathBuf::from("<bytes>");
        let bad = |reason: String| Error::Checkpoint { path: path.clone(), reason };
        let file = Container::parse(bytes)
            .and_then(|c| c.expect(KIND, FORMAT_VERSION))
            .map_err(|e| bad(e.to_string()))?;
        let header: Header =
            serde_json::from_slice(file.section("header").map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(format!("corrupt header: {e}")))?;
        Ok(Self { path, kind: header.kind, config: header.config, file, blobs: header.blobs })
    }

    fn expect(self, kind: &str) -> Result<Self> {
        if self.kind != kind {
            return Err(self.bad(format!("holds a {}, expected a {kind}", self.kind)));
        }
        Ok(self)
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Checkpoint { path: self.path.clone(), reason: reason.into() }
    }

    fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| self.bad(format!("config does not match this version: {e}")))
    }

    fn blob(&self, name: &str) -> Result<(&BlobInfo, &'a [u8])> {
        let info = self
            .blobs
            .iter()
            .find(|info| info.name == name)
            .ok_or_else(|| self.bad(format!("missing blob {name:?}")))?;
        let bytes = self.file.section(name).map_err(|e| self.bad(e.to_string()))?;
        Ok((info, bytes))
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
        let values = bytes_to_f32s(bytes).unwrap_or_default();
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
        let model = RqVae::build_for_load(&config, bytes.len(), device)
            .map_err(|e| self.bad(format!("stored rq-vae config: {e}")))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| self.bad(format!("rq-vae weights: {e}")))?;
        let model = model
            .try_load_record(record)
            .map_err(|e| self.bad(format!("rq-vae weights do not match its config: {e}")))?;
        Ok(RqVae::from_model(config, model, device))
    }

    fn residual(&self, device: &Device) -> Result<ResidualQuantizer> {
        let n_levels = self.config.get("n_levels").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if n_levels as usize > self.blobs.len() {
            return Err(self.bad(format!("{n_levels} levels, {} blobs", self.blobs.len())));
        }
        let levels = (0..n_levels)
            .map(|l| self.kmeans(&format!("level{l}"), device))
            .collect::<Result<Vec<_>>>()?;
        ResidualQuantizer::from_levels(levels).map_err(|e| self.bad(e.to_string()))
    }

    fn coarse_to_fine(&self, device: &Device) -> Result<CoarseToFine> {
        let coarse = self.kmeans("coarse", device)?;
        let fine = self.rqvae("fine", self.config()?, device)?;
        CoarseToFine::from_parts(coarse, fine).map_err(|e| self.bad(e.to_string()))
    }
}

/// Any fitted quantizer, as read from a file of any kind: the one type to hold when the kind
/// is known only at run time (e.g. an index that was fitted with either).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyQuantizer {
    /// K-Means + RQ-VAE on the residual.
    CoarseToFine(Box<CoarseToFine>),
    /// Residual K-Means.
    Residual(ResidualQuantizer),
    /// An RQ-VAE alone.
    RqVae(Box<RqVae>),
    /// K-Means alone (one level).
    KMeans(KMeans),
}

macro_rules! each {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            AnyQuantizer::CoarseToFine($q) => $e,
            AnyQuantizer::Residual($q) => $e,
            AnyQuantizer::RqVae($q) => $e,
            AnyQuantizer::KMeans($q) => $e,
        }
    };
}

impl AnyQuantizer {
    /// The kind written in the file (`coarse_to_fine`, `residual`, `rqvae`, `kmeans`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CoarseToFine(_) => "coarse_to_fine",
            Self::Residual(_) => "residual",
            Self::RqVae(_) => "rqvae",
            Self::KMeans(_) => "kmeans",
        }
    }

    /// The file's bytes.
    ///
    /// # Errors
    ///
    /// As the inner type's `to_bytes`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        each!(self, q => q.to_bytes())
    }

    /// Reads a quantizer file of any kind, dispatching on the kind it names.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] for a damaged or foreign file.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let r = Reader::parse(bytes)?;
        Ok(match r.kind.as_str() {
            "coarse_to_fine" => Self::CoarseToFine(Box::new(r.coarse_to_fine(device)?)),
            "residual" => Self::Residual(r.residual(device)?),
            "rqvae" => Self::RqVae(Box::new(r.rqvae("model", r.config()?, device)?)),
            "kmeans" => Self::KMeans(r.kmeans("centroids", device)?),
            other => return Err(r.bad(format!("unknown quantizer kind {other:?}"))),
        })
    }

    /// Saves to `path`, atomically and durably.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_bytes(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a quantizer file of any kind onto `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::Checkpoint`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&read(path)?, device).map_err(at_path(path))
    }
}

impl Quantizer for AnyQuantizer {
    fn d_input(&self) -> usize {
        each!(self, q => q.d_input())
    }

    fn codebook_sizes(&self) -> Vec<usize> {
        each!(self, q => q.codebook_sizes())
    }

    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>> {
        each!(self, q => q.encode(data))
    }

    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        each!(self, q => q.decode(codes))
    }
}

impl From<CoarseToFine> for AnyQuantizer {
    fn from(q: CoarseToFine) -> Self {
        Self::CoarseToFine(Box::new(q))
    }
}

impl From<ResidualQuantizer> for AnyQuantizer {
    fn from(q: ResidualQuantizer) -> Self {
        Self::Residual(q)
    }
}

impl From<RqVae> for AnyQuantizer {
    fn from(q: RqVae) -> Self {
        Self::RqVae(Box::new(q))
    }
}

impl From<KMeans> for AnyQuantizer {
    fn from(q: KMeans) -> Self {
        Self::KMeans(q)
    }
}

impl KMeans {
    /// The centroids as a quantizer file's bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] (never in practice).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new("kmeans", serde_json::Value::Null);
        w.matrix("centroids", self.centroids());
        w.into_bytes()
    }

    /// Reads centroids written by [`KMeans::to_bytes`]; assignment runs on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] if the bytes are corrupt, truncated or hold another kind.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Reader::parse(bytes)?.expect("kmeans")?.kmeans("centroids", device)
    }

    /// Saves the centroids to `path` (atomically and durably).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_bytes(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads centroids saved by [`KMeans::save`]; assignment runs on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::Checkpoint`] if it is corrupt,
    /// truncated or holds another kind of quantizer.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&read(path)?, device).map_err(at_path(path))
    }
}

impl ResidualQuantizer {
    /// Every level's centroids as a quantizer file's bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] (never in practice).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new("residual", serde_json::json!({ "n_levels": self.n_levels() }));
        for (l, level) in self.levels().iter().enumerate() {
            w.matrix(&format!("level{l}"), level.centroids());
        }
        w.into_bytes()
    }

    /// Reads a quantizer written by [`ResidualQuantizer::to_bytes`].
    ///
    /// # Errors
    ///
    /// As [`KMeans::from_bytes`].
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Reader::parse(bytes)?.expect("residual")?.residual(device)
    }

    /// Saves every level's centroids to `path` (atomically and durably).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_bytes(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a quantizer saved by [`ResidualQuantizer::save`].
    ///
    /// # Errors
    ///
    /// As [`KMeans::load`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&read(path)?, device).map_err(at_path(path))
    }
}

impl RqVae {
    /// The config (JSON) and the weights and codebooks (burn record) as a quantizer file's
    /// bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] if the weights cannot be read back.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new("rqvae", serde_json::to_value(self.config())?);
        w.rqvae("model", self)?;
        w.into_bytes()
    }

    /// Reads a model written by [`RqVae::to_bytes`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`KMeans::from_bytes`]; also [`Error::Checkpoint`] when the weights do not fit the
    /// stored config.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let r = Reader::parse(bytes)?.expect("rqvae")?;
        r.rqvae("model", r.config()?, device)
    }

    /// Saves the model to `path` (atomically and durably).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_bytes(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a model saved by [`RqVae::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`RqVae::from_bytes`], and [`Error::Io`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&read(path)?, device).map_err(at_path(path))
    }
}

impl CoarseToFine {
    /// The coarse centroids, the RQ-VAE config (JSON) and its weights (burn record) as a
    /// quantizer file's bytes.
    ///
    /// # Errors
    ///
    /// As [`RqVae::to_bytes`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new("coarse_to_fine", serde_json::to_value(self.fine().config())?);
        w.matrix("coarse", self.coarse().centroids());
        w.rqvae("fine", self.fine())?;
        w.into_bytes()
    }

    /// Reads a quantizer written by [`CoarseToFine::to_bytes`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`RqVae::from_bytes`], and [`Error::Checkpoint`] if the parts' widths differ.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Reader::parse(bytes)?.expect("coarse_to_fine")?.coarse_to_fine(device)
    }

    /// Saves the quantizer to `path` (atomically and durably).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_bytes(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a quantizer saved by [`CoarseToFine::save`] onto `device`.
    ///
    /// # Errors
    ///
    /// As [`CoarseToFine::from_bytes`], and [`Error::Io`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&read(path)?, device).map_err(at_path(path))
    }
}
