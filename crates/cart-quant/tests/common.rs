//! Seeded test data.

use burn::prelude::Device;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// burn's seeded RNG is one per process, shared by every thread: an RQ-VAE fit seeds it and
/// draws its initial weights from it, so fits run one at a time to see exactly the stream their
/// seed gives.
static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn device() -> Device {
    Device::flex()
}

/// Standard normal sample (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `n_clusters` well separated Gaussian blobs of `n_per` points in `d` dimensions, and the true
/// label of every point.
pub(crate) fn blobs(
    n_clusters: usize,
    n_per: usize,
    d: usize,
    spread: f32,
    seed: u64,
) -> (Array2<f32>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> =
        (0..n_clusters).map(|_| (0..d).map(|_| rng.random_range(-10.0..10.0)).collect()).collect();
    let mut data = Array2::<f32>::zeros((n_clusters * n_per, d));
    let mut labels = Vec::with_capacity(n_clusters * n_per);
    for (i, mut row) in data.outer_iter_mut().enumerate() {
        let c = i % n_clusters;
        for (v, &m) in row.iter_mut().zip(&centres[c]) {
            *v = m + spread * normal(&mut rng);
        }
        labels.push(c);
    }
    (data, labels)
}

/// Uniform noise in `[-1, 1]^d`: no cluster structure at all.
pub(crate) fn uniform(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0))
}
