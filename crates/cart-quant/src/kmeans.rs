//! K-Means with k-means++ initialisation: the coarse token `k` of an identifier.
//!
//! Two engines fit the centroids:
//! - [`KMeansEngine::Fast`] (default): Lloyd iterations on burn tensors, so they run on whatever
//!   device is passed (CPU with `flex`, GPU with `wgpu`). Distances come from one matmul per chunk
//!   (`||x||^2 - 2 x c^T + ||c||^2`), assignment is an argmin, and the centroid update is a single
//!   pass over the data. k-means++ keeps a running minimum-distance array, so the start costs
//!   `O(n k d)` rather than the `O(n k^2 d)` of recomputing all distances at every pick.
//! - [`KMeansEngine::Linfa`]: the reference implementation of `linfa-clustering`, on the same
//!   `ndarray` 0.16 views (no copy at the boundary). Much slower at large `n` and `k`.
//!
//! Both are deterministic given [`KMeansConfig::seed`].

use burn::prelude::*;
use linfa::DatasetBase;
use linfa::traits::Fit;
use ndarray::{Array1, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{self, CHUNK_ROWS};
use crate::quantizer::Quantizer;
use crate::{Error, Result};

/// Which implementation fits the centroids.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum KMeansEngine {
    /// Matmul-based Lloyd iterations on burn tensors (CPU or GPU). The default.
    Fast,
    /// `linfa-clustering`'s `KMeans` (CPU, reference quality, slow for large `n x k`).
    Linfa,
}

/// Settings for [`KMeans`]; [`KMeansConfig::fit`] validates them.
#[derive(Config, Debug)]
pub struct KMeansConfig {
    /// Number of centroids (codebook size).
    pub n_clusters: usize,
    /// Upper bound on Lloyd iterations per run.
    #[config(default = 100)]
    pub max_iters: usize,
    /// Convergence threshold. Fast engine: stop when the inertia improves by less than this
    /// fraction in one iteration. Linfa engine: its own threshold on centroid movement.
    #[config(default = 1e-4)]
    pub tolerance: f64,
    /// Number of independent k-means++ starts; the run with the lowest inertia wins.
    #[config(default = 3)]
    pub n_runs: usize,
    /// Seed for k-means++ sampling.
    #[config(default = 0)]
    pub seed: u64,
    /// The implementation to use.
    #[config(default = "KMeansEngine::Fast")]
    pub engine: KMeansEngine,
}

/// Fitted K-Means centroids.
///
/// Method: Lloyd's algorithm with k-means++ seeding (Arthur and Vassilvitskii, "k-means++: the
/// advantages of careful seeding", SODA 2007). In CART (Fang et al., ACL 2025) the nearest
/// centroid of an item is its coarse token `k`.
#[derive(Debug, Clone)]
pub struct KMeans {
    centroids: Array2<f32>,
    inertia: f64,
    n_iters: usize,
    device: Device,
}

impl KMeansConfig {
    /// Checks the settings against a data set of `n` points.
    fn validate(&self, what: &'static str, n: usize) -> Result<()> {
        if self.n_clusters == 0 {
            return Err(Error::config("n_clusters", 0, "must be at least 1"));
        }
        if self.max_iters == 0 {
            return Err(Error::config("max_iters", 0, "must be at least 1"));
        }
        if self.n_runs == 0 {
            return Err(Error::config("n_runs", 0, "must be at least 1"));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(Error::config("tolerance", self.tolerance, "must be finite and > 0"));
        }
        if self.n_clusters > n {
            return Err(Error::TooFewPoints { what, k: self.n_clusters, n });
        }
        Ok(())
    }

    /// Fits centroids to `data` (`[n, d]`) on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`], [`Error::NonFinite`], [`Error::TooFewPoints`] when
    /// `n_clusters > n`, [`Error::InvalidConfig`] for a zero `n_clusters`, `n_runs` or
    /// `max_iters`, and [`Error::Linfa`] if the linfa engine fails.
    pub fn fit(&self, data: ArrayView2<'_, f32>, device: &Device) -> Result<KMeans> {
        if self.n_clusters == 0 {
            return Err(Error::config("n_clusters", 0, "must be at least 1"));
        }
        data::check_data("k-means fit", data, None)?;
        self.validate("k-means fit", data.nrows())?;
        match self.engine {
            KMeansEngine::Fast => self.fit_fast(data, device),
            KMeansEngine::Linfa => self.fit_linfa(data, device),
        }
    }

    fn fit_linfa(&self, data: ArrayView2<'_, f32>, device: &Device) -> Result<KMeans> {
        use rand_xoshiro::Xoshiro256Plus;
        use rand_xoshiro::rand_core::SeedableRng as _;
        let rng = Xoshiro256Plus::seed_from_u64(self.seed);
        // `DatasetBase` over the caller's view: linfa and we share ndarray 0.16, so no copy.
        let dataset = DatasetBase::new(data, ());
        let model = linfa_clustering::KMeans::params_with_rng(self.n_clusters, rng)
            .n_runs(self.n_runs)
            .tolerance(self.tolerance as f32)
            .max_n_iterations(self.max_iters as u64)
            .init_method(linfa_clustering::KMeansInit::KMeansPlusPlus)
            .fit(&dataset)?;
        let centroids = model.centroids().clone();
        // linfa reports the inertia of its last assignment; recompute it for the final centroids
        // so both engines report the same quantity.
        let kmeans = KMeans { centroids, inertia: 0.0, n_iters: 0, device: device.clone() };
        let (_, dists) = kmeans.assign(data)?;
        let inertia = mean(&dists);
        Ok(KMeans { inertia, ..kmeans })
    }

    fn fit_fast(&self, data: ArrayView2<'_, f32>, device: &Device) -> Result<KMeans> {
        let (n, d) = data.dim();
        let chunks: Vec<Tensor<2>> = (0..n)
            .step_by(CHUNK_ROWS)
            .map(|start| data::rows_tensor(data, start, (start + CHUNK_ROWS).min(n), device))
            .collect();
        let norms: Vec<Tensor<2>> = chunks.iter().map(|c| c.clone().square().sum_dim(1)).collect();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut best: Option<(Array2<f32>, f64, usize)> = None;
        for _ in 0..self.n_runs {
            let init = kmeans_plus_plus(data, &chunks, &norms, self.n_clusters, &mut rng, device)?;
            let (centroids, inertia, n_iters) = self.lloyd(data, &chunks, init, device)?;
            if best.as_ref().is_none_or(|(_, b, _)| inertia < *b) {
                best = Some((centroids, inertia, n_iters));
            }
        }
        let (centroids, inertia, n_iters) =
            best.ok_or_else(|| Error::config("n_runs", 0, "must be at least 1"))?;
        debug_assert_eq!(centroids.ncols(), d);
        Ok(KMeans { centroids, inertia, n_iters, device: device.clone() })
    }

    /// Lloyd iterations from `centroids`; returns the centroids, their mean squared distance and
    /// the number of updates made.
    fn lloyd(
        &self,
        data: ArrayView2<'_, f32>,
        chunks: &[Tensor<2>],
        mut centroids: Array2<f32>,
        device: &Device,
    ) -> Result<(Array2<f32>, f64, usize)> {
        let mut prev = f64::INFINITY;
        let mut n_iters = 0;
        loop {
            let (labels, dists) = assign_chunks(chunks, centroids.view(), device)?;
            let inertia = mean(&dists);
            let converged = prev.is_finite() && prev - inertia <= self.tolerance * prev;
            if converged || n_iters == self.max_iters {
                return Ok((centroids, inertia, n_iters));
            }
            prev = inertia;
            centroids = update_centroids(data, &labels, &dists, centroids.nrows());
            n_iters += 1;
        }
    }
}

/// k-means++ seeding with a running minimum-distance array: each pick costs one pass over the
/// data (a matrix-vector product per chunk), `O(n k d)` in all.
fn kmeans_plus_plus(
    data: ArrayView2<'_, f32>,
    chunks: &[Tensor<2>],
    norms: &[Tensor<2>],
    k: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Result<Array2<f32>> {
    let (n, d) = data.dim();
    let mut centroids = Array2::<f32>::zeros((k, d));
    let mut min_dist = vec![f32::INFINITY; n];
    let mut pick = rng.random_range(0..n);
    for c in 0..k {
        centroids.row_mut(c).assign(&data.row(pick));
        if c + 1 == k {
            break;
        }
        let row: Vec<f32> = data.row(pick).to_vec();
        let centre = data::slice_tensor(&row, 1, d, device);
        let centre_sq = data::row_sq(centre.clone());
        let mut offset = 0;
        for (chunk, x_sq) in chunks.iter().zip(norms) {
            let dist = chunk
                .clone()
                .matmul(centre.clone().transpose())
                .mul_scalar(-2.0)
                .add(x_sq.clone())
                .add(centre_sq.clone())
                .clamp_min(0.0);
            let dist = data::to_f32(dist)?;
            for (m, v) in min_dist[offset..offset + dist.len()].iter_mut().zip(&dist) {
                *m = m.min(*v);
            }
            offset += dist.len();
        }
        let total: f64 = min_dist.iter().map(|&v| f64::from(v)).sum();
        pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            min_dist
                .iter()
                .position(|&v| {
                    acc += f64::from(v);
                    acc > target
                })
                .unwrap_or(n - 1)
        } else {
            // Every point sits on a centroid already: duplicates are unavoidable.
            rng.random_range(0..n)
        };
    }
    Ok(centroids)
}

/// Nearest centroid and squared distance for every row, chunk by chunk.
fn assign_chunks(
    chunks: &[Tensor<2>],
    centroids: ArrayView2<'_, f32>,
    device: &Device,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let (k, d) = centroids.dim();
    let flat: Vec<f32> = centroids.iter().copied().collect();
    let c = data::slice_tensor(&flat, k, d, device);
    let c_sq = data::row_sq(c.clone());
    let mut labels = Vec::new();
    let mut dists = Vec::new();
    for chunk in chunks {
        let (idx, dist) = data::nearest(chunk.clone(), c.clone(), c_sq.clone());
        labels.extend(data::to_u32(idx)?);
        dists.extend(data::to_f32(dist)?);
    }
    Ok((labels, dists))
}

/// New centroids as the means of their points. An empty cluster takes the point that is
/// farthest from its centroid (a different point for each empty cluster).
fn update_centroids(
    data: ArrayView2<'_, f32>,
    labels: &[u32],
    dists: &[f32],
    k: usize,
) -> Array2<f32> {
    let d = data.ncols();
    let mut sums = Array2::<f64>::zeros((k, d));
    let mut counts = vec![0usize; k];
    for (row, &label) in data.outer_iter().zip(labels) {
        let label = label as usize;
        counts[label] += 1;
        for (s, &v) in sums.row_mut(label).iter_mut().zip(row.iter()) {
            *s += f64::from(v);
        }
    }
    let mut centroids = Array2::<f32>::zeros((k, d));
    let mut far: Vec<usize> = Vec::new();
    for (c, &count) in counts.iter().enumerate() {
        if count > 0 {
            let inv = 1.0 / count as f64;
            for (dst, &s) in centroids.row_mut(c).iter_mut().zip(sums.row(c).iter()) {
                *dst = (s * inv) as f32;
            }
        } else {
            if far.is_empty() {
                far = (0..dists.len()).collect();
                // Farthest first; ties broken by index so the result is deterministic.
                far.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(b.cmp(&a)));
            }
            let p = far.remove(0);
            centroids.row_mut(c).assign(&data.row(p));
        }
    }
    centroids
}

fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64
}

impl KMeans {
    /// A `KMeans` from given centroids (`[k, d]`), e.g. ones computed elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`] or [`Error::NonFinite`] for empty or non-finite centroids.
    pub fn from_centroids(centroids: Array2<f32>, device: &Device) -> Result<Self> {
        data::check_data("k-means centroids", centroids.view(), None)?;
        Ok(Self { centroids, inertia: f64::NAN, n_iters: 0, device: device.clone() })
    }

    /// The centroids, `[n_clusters, d]`.
    pub fn centroids(&self) -> ArrayView2<'_, f32> {
        self.centroids.view()
    }

    /// Number of centroids.
    pub fn n_clusters(&self) -> usize {
        self.centroids.nrows()
    }

    /// Mean squared distance of the fitted points to their centroid (NaN if not fitted here).
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Lloyd updates made by the winning run (0 for the linfa engine, which does not report it).
    pub fn n_iters(&self) -> usize {
        self.n_iters
    }

    /// The device used for assignment.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Index of the nearest centroid for every row of `data` (`[n, d]`).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyData`], [`Error::DimMismatch`] or [`Error::NonFinite`].
    pub fn predict(&self, data: ArrayView2<'_, f32>) -> Result<Array1<u32>> {
        data::check_data("k-means predict", data, Some(self.centroids.ncols()))?;
        Ok(Array1::from(self.assign(data)?.0))
    }

    /// Nearest centroid and squared distance per row; `data` is already checked.
    pub(crate) fn assign(&self, data: ArrayView2<'_, f32>) -> Result<(Vec<u32>, Vec<f32>)> {
        let n = data.nrows();
        let chunks: Vec<Tensor<2>> = (0..n)
            .step_by(CHUNK_ROWS)
            .map(|start| data::rows_tensor(data, start, (start + CHUNK_ROWS).min(n), &self.device))
            .collect();
        assign_chunks(&chunks, self.centroids.view(), &self.device)
    }
}

impl Quantizer for KMeans {
    fn d_input(&self) -> usize {
        self.centroids.ncols()
    }

    fn codebook_sizes(&self) -> Vec<usize> {
        vec![self.n_clusters()]
    }

    fn encode(&self, data: ArrayView2<'_, f32>) -> Result<Array2<u32>> {
        let labels = self.predict(data)?;
        let n = labels.len();
        Ok(labels.into_shape_with_order((n, 1))?)
    }

    fn decode(&self, codes: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        crate::quantizer::check_codes("k-means decode", codes, &[self.n_clusters()])?;
        let d = self.centroids.ncols();
        let mut out = Array2::<f32>::zeros((codes.nrows(), d));
        for (mut row, code) in out.outer_iter_mut().zip(codes.outer_iter()) {
            row.assign(&self.centroids.row(code[0] as usize));
        }
        Ok(out)
    }
}
