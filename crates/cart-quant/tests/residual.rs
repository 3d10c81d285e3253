//! Residual K-Means and the coarse-to-fine quantizer.

use cart_quant::{
    CoarseToFineConfig, Diagnostics, Error, KMeansConfig, Quantizer, ResidualQuantizerConfig,
};

use crate::common::{blobs, device, uniform};
use crate::rqvae::{additive, small_config, small_train};

#[test]
fn residual_quantizer_learns_additive_codes() {
    let data = additive(2);
    let rq = ResidualQuantizerConfig::new(vec![16, 16])
        .with_n_runs(5)
        .fit(data.view(), &device())
        .unwrap();
    assert_eq!(rq.codebook_sizes(), vec![16, 16]);
    let diag = Diagnostics::compute(&rq, data.view(), 256, &device()).unwrap();
    // 16 x 16 additive offsets: a good residual quantizer gives nearly every point its own tuple.
    assert!(diag.n_unique >= 200, "{diag}");
    assert!(diag.collision_rate < 0.3, "{diag}");
    assert!(diag.usage.iter().all(|&u| u >= 0.9), "{diag}");
    assert!(diag.relative_error < 0.05, "{diag}");
    // Each level lowers the error.
    let one = ResidualQuantizerConfig::new(vec![16]).fit(data.view(), &device()).unwrap();
    let one = Diagnostics::compute(&one, data.view(), 0, &device()).unwrap();
    assert!(diag.relative_error < one.relative_error);
}

#[test]
fn residual_quantizer_round_trips_codes() {
    let data = uniform(100, 8, 3);
    let rq = ResidualQuantizerConfig::new(vec![8, 4, 4]).fit(data.view(), &device()).unwrap();
    let codes = rq.encode(data.view()).unwrap();
    assert_eq!(codes.dim(), (100, 3));
    let decoded = rq.decode(codes.view()).unwrap();
    // Decoding sums one centroid per level.
    let levels = rq.levels();
    for (i, row) in decoded.outer_iter().enumerate().take(5) {
        let mut sum = levels[0].centroids().row(codes[[i, 0]] as usize).to_owned();
        sum += &levels[1].centroids().row(codes[[i, 1]] as usize);
        sum += &levels[2].centroids().row(codes[[i, 2]] as usize);
        assert!(sum.iter().zip(row.iter()).all(|(a, b)| (a - b).abs() < 1e-5));
    }
    assert!(matches!(
        ResidualQuantizerConfig::new(vec![]).fit(data.view(), &device()),
        Err(Error::InvalidConfig { field: "codebook_sizes", .. })
    ));
    assert!(matches!(
        ResidualQuantizerConfig::new(vec![8, 101]).fit(data.view(), &device()),
        Err(Error::TooFewPoints { k: 101, .. })
    ));
}

#[test]
fn coarse_to_fine_codes_are_k_then_v() {
    let _guard = crate::common::rng_lock();
    let (data, _) = blobs(8, 32, 16, 1.0, 4);
    let config = CoarseToFineConfig::new(KMeansConfig::new(8), small_config(16))
        .with_train(small_train().with_n_epochs(40));
    let (q, history) = config.fit(data.view(), &device()).unwrap();
    assert_eq!(history.epochs.len(), 40);
    assert_eq!(q.codebook_sizes(), vec![8, 16, 16]);
    let codes = q.encode(data.view()).unwrap();
    assert_eq!(codes.dim(), (256, 3));
    assert!(codes.is_standard_layout(), "codes come back row-major");
    // The first code is the coarse K-Means label.
    let coarse = q.coarse().predict(data.view()).unwrap();
    assert_eq!(codes.column(0), coarse);
    let diag = Diagnostics::compute(&q, data.view(), 256, &device()).unwrap();
    eprintln!("{diag}");
    assert!(diag.usage[0] > 0.99, "{diag}");
    assert!(diag.usage[1..].iter().all(|&u| u >= 0.75), "{diag}");
    assert!(diag.relative_error < 0.05, "{diag}");
    assert!(diag.collision_rate < 0.5, "{diag}");
    assert!(matches!(
        CoarseToFineConfig::for_dim(17, 8).fit(data.view(), &device()),
        Err(Error::DimMismatch { got: 16, expected: 17, .. })
    ));
}
