//! The coarse-to-fine quantizer of CART: a K-Means coarse code on `x`, then an RQ-VAE on the
//! residual `x - centroid(k)`, giving identifiers `[k, v1, .., vM]`.

use burn::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};

use crate::data;
use crate::kmeans::{KMeans, KMeansConfig};
use crate::quantizer::{Quantizer, check_codes};
use crate::rqvae::{RqVae, RqVaeConfig, RqVaeEvent, RqVaeTrainConfig, TrainHistory};
use crate::{Error, Result};

/// Settings for [`CoarseToFine`].
#[derive(Config, Debug)]
pub struct CoarseToFineConfig {
    /// The coarse K-Means (`K = coarse.n_clusters`).
    pub coarse: KMeansConfig,
    /// The RQ-VAE on the residuals; its `d_input` must be the data width.
    pub fine: RqVaeConfig,
    /// How the RQ-VAE is trained.
    #[config(default = "RqVaeTrainConfig::new()")]
    pub train: RqVaeTrainConfig,
}

/// K-Means coarse code plus RQ-VAE fine codes: `[k, v1, .., vM]` per item.
#[derive(Debug, Clone)]
pub struct CoarseToFine {
    coarse: KMeans,
    fine: RqVae,
}

impl CoarseToFineConfig {
    /// The paper's layout for `d`-wide vectors: `n_coarse` coarse clusters, then our defaults
    /// for the RQ-VAE (3 levels of 256 codes, latent 64, beta 0.25).
    pub fn for_dim(d_input: usize, n_coarse: usize) -> Self {
        Self::new(KMeansConfig::new(n_coarse), RqVaeConfig::new(d_input))
    }

    /// Fits the coarse K-Means on `data` (`[n, d]`), then trains the RQ-VAE on the residuals.
    ///
    /// # Errors
    ///
    /// As [`KMeansConfig::fit`] and [`RqVaeConfig::fit`]; [`Error::DimMismatch`] if
    /// `fine.d_input` is not the data width.
    pub fn fit(
        &self,
        data: ArrayView2<'_, f32>,
        device: &Device,
    ) -> Result<(CoarseToFine, TrainHistory)> {
        self.fit_observed(data, device, &mut |_| {})
    }

    /// [`CoarseToFineConfig::fit`], reporting the RQ-VAE's batches and epochs to `observer`.
    ///
    /// # Errors
    ///
    /// As [`CoarseToFineConfig::fit`].
    pub fn fit_observed(
        &self,
        data: ArrayView2<'_, f32>,
        device: &Device,
        observer: &mut dyn FnMut(RqVaeEvent<'_>),
    ) -> Result<(CoarseToFine, TrainHistory)> {
        data::check_data("coarse-to-fine fit", data, Some(self.fine.d_input))?;
        let coarse = self.coarse.fit(data, device)?;
        let (labels, _) = coarse.assign(data)?;
        let mut residual = data.to_owned();
        crate::residual::subtract_centroids(&mut residual, &coarse, &labels);
        let (fine, history) =
            self.fine.fit_observed(residual.view(), &self.train, device, observer)?;
        Ok((CoarseToFine { coarse, fine }, history))
    }
}

impl CoarseToFine {
    /// A quantizer from a fitted coarse K-Means and an RQ-VAE trained on its residuals.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] if their widths differ.
    pub fn from_parts(coarse: KMeans, fine: RqVae) -> Result<Self> {
        if coarse.d_input() != fine.d_input() {
            return Err(Error::DimMismatch {
                what: "coarse-to-fine parts",
                got: fine.d_input(),
                expected: coarse.d_input(),
            });
        }
        Ok(Self { coarse, fine })
    }

    /// The coarse K-Means.
    pub fn coarse(&self) -> &KMeans {
        &self.coarse
    }

    /// The RQ-VAE on residuals.
    pub fn fine(&self) -> &RqVae {
        &self.fine
    }

    /// The residuals `x - centroid(k)` of `data` and the coarse codes.
    fn residuals(&self, data: ArrayView2<'_, f32>) -> Result<(Vec<u32>, Array2<f32>)> {
        let (labels, _) = self.coarse.assign(data)?;
        let mut residual = data.to_owned();
        crate::residual::subtract_centroids(&mut residual, &self.coarse, &labels);
        Ok((labels, residual))
    }
}

impl Quantizer for CoarseToFine {
    fn d_input(&self) -> usize {
        self.coarse.d_input()
    }

    fn codebook_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.coarse.n_clusters()];
        sizes.extend(self.fine.codebook_sizes());
        sizes
    }

    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>> {
        data::check_data("coarse-to-fine encode", data, Some(self.d_input()))?;
        let (labels, residual) = self.residuals(data)?;
        let fine = self.fine.encode(residual.view())?;
        // Built row by row so the result is in standard (row-major) layout.
        let mut codes = Array2::<u32>::zeros((labels.len(), 1 + fine.ncols()));
        for ((mut row, k), v) in codes.outer_iter_mut().zip(labels).zip(fine.outer_iter()) {
            row[0] = k;
            row.slice_axis_mut(Axis(0), ndarray::Slice::from(1..)).assign(&v);
        }
        Ok(codes)
    }

    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        check_codes("coarse-to-fine decode", codes, &self.codebook_sizes())?;
        let fine_codes = codes.slice_axis(Axis(1), ndarray::Slice::from(1..));
        let mut out = self.fine.decode(fine_codes)?;
        let centroids = self.coarse.centroids();
        for (mut row, code) in out.outer_iter_mut().zip(codes.outer_iter()) {
            row += &centroids.row(code[0] as usize);
        }
        Ok(out)
    }
}
