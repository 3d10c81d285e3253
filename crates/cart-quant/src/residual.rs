//! Residual K-Means: each level clusters what the previous levels left over.
//!
//! The cheap quantizer with no neural network, and the "without RQ-VAE" ablation of CART
//! (hierarchical K-Means only): with `codebook_sizes = [K, C, C, C]` the codes are
//! `[k, v1, v2, v3]` like [`CoarseToFine`](crate::CoarseToFine)'s.

use burn::prelude::*;
use ndarray::{Array2, ArrayView2};

use crate::data;
use crate::kmeans::{KMeans, KMeansConfig, KMeansEngine};
use crate::quantizer::{Quantizer, check_codes};
use crate::{Error, Result};

/// Settings for [`ResidualQuantizer`].
#[derive(Config, Debug)]
pub struct ResidualQuantizerConfig {
    /// Codebook size of every level; its length is the number of levels.
    pub codebook_sizes: Vec<usize>,
    /// Upper bound on Lloyd iterations per level.
    #[config(default = 50)]
    pub max_iters: usize,
    /// Convergence threshold (see [`KMeansConfig::tolerance`]).
    #[config(default = 1e-4)]
    pub tolerance: f64,
    /// k-means++ starts per level.
    #[config(default = 1)]
    pub n_runs: usize,
    /// Seed; level `l` uses `seed + l`.
    #[config(default = 0)]
    pub seed: u64,
    /// The K-Means implementation.
    #[config(default = "KMeansEngine::Fast")]
    pub engine: KMeansEngine,
}

/// A stack of K-Means codebooks over successive residuals.
#[derive(Debug, Clone)]
pub struct ResidualQuantizer {
    levels: Vec<KMeans>,
}

impl ResidualQuantizerConfig {
    /// The K-Means settings of level `level`.
    pub fn level_config(&self, level: usize) -> KMeansConfig {
        let n_clusters = self.codebook_sizes.get(level).copied().unwrap_or(0);
        KMeansConfig::new(n_clusters)
            .with_max_iters(self.max_iters)
            .with_tolerance(self.tolerance)
            .with_n_runs(self.n_runs)
            .with_seed(self.seed.wrapping_add(level as u64))
            .with_engine(self.engine)
    }

    /// Fits every level on `data` (`[n, d]`).
    ///
    /// # Errors
    ///
    /// As [`KMeansConfig::fit`]; [`Error::InvalidConfig`] if `codebook_sizes` is empty.
    pub fn fit(&self, data: ArrayView2<'_, f32>, device: &Device) -> Result<ResidualQuantizer> {
        if self.codebook_sizes.is_empty() {
            return Err(Error::config("codebook_sizes", "[]", "needs at least one level"));
        }
        data::check_data("residual quantizer fit", data, None)?;
        let mut residual = data.to_owned();
        let mut levels = Vec::with_capacity(self.codebook_sizes.len());
        for level in 0..self.codebook_sizes.len() {
            let kmeans = self.level_config(level).fit(residual.view(), device)?;
            let (labels, _) = kmeans.assign(residual.view())?;
            subtract_centroids(&mut residual, &kmeans, &labels);
            levels.push(kmeans);
        }
        Ok(ResidualQuantizer { levels })
    }
}

/// `residual[i] -= centroid[labels[i]]`.
pub(crate) fn subtract_centroids(residual: &mut Array2<f32>, kmeans: &KMeans, labels: &[u32]) {
    let centroids = kmeans.centroids();
    for (mut row, &label) in residual.outer_iter_mut().zip(labels) {
        row -= &centroids.row(label as usize);
    }
}

impl ResidualQuantizer {
    /// The K-Means of every level.
    pub fn levels(&self) -> &[KMeans] {
        &self.levels
    }

    /// A quantizer from given levels, which must share one width.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`] for no levels, [`Error::DimMismatch`] for levels of different widths.
    pub fn from_levels(levels: Vec<KMeans>) -> Result<Self> {
        let Some(first) = levels.first() else {
            return Err(Error::EmptyData { what: "residual quantizer", n_rows: 0, n_cols: 0 });
        };
        let d = first.d_input();
        if let Some(bad) = levels.iter().find(|l| l.d_input() != d) {
            return Err(Error::DimMismatch {
                what: "residual quantizer levels",
                got: bad.d_input(),
                expected: d,
            });
        }
        Ok(Self { levels })
    }
}

impl Quantizer for ResidualQuantizer {
    fn d_input(&self) -> usize {
        self.levels.first().map_or(0, |l| l.d_input())
    }

    fn codebook_sizes(&self) -> Vec<usize> {
        self.levels.iter().map(KMeans::n_clusters).collect()
    }

    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>> {
        data::check_data("residual quantizer encode", data, Some(self.d_input()))?;
        let n = data.nrows();
        let mut codes = Array2::<u32>::zeros((n, self.levels.len()));
        let mut residual = data.to_owned();
        for (level, kmeans) in self.levels.iter().enumerate() {
            let (labels, _) = kmeans.assign(residual.view())?;
            subtract_centroids(&mut residual, kmeans, &labels);
            for (dst, label) in codes.column_mut(level).iter_mut().zip(labels) {
                *dst = label;
            }
        }
        Ok(codes)
    }

    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        check_codes("residual quantizer decode", codes, &self.codebook_sizes())?;
        let mut out = Array2::<f32>::zeros((codes.nrows(), self.d_input()));
        for (mut row, code) in out.outer_iter_mut().zip(codes.outer_iter()) {
            for (kmeans, &c) in self.levels.iter().zip(code.iter()) {
                row += &kmeans.centroids().row(c as usize);
            }
        }
        Ok(out)
    }
}
