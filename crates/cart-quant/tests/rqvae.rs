//! RQ-VAE: training, collapse detection, history, errors.

use cart_quant::{Diagnostics, Error, Quantizer, RqVaeConfig, RqVaeTrainConfig};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::{blobs, device, normal, rng_lock, uniform};

/// Additive two-level structure, what residual quantizers model: point `(i, j)` is
/// `a_i + b_j + noise` for 16 coarse offsets `a` and 16 fine offsets `b` (256 points, d = 16).
pub(crate) fn additive(seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let d = 16;
    let a: Vec<Vec<f32>> = (0..16).map(|_| (0..d).map(|_| normal(&mut rng)).collect()).collect();
    let b: Vec<Vec<f32>> =
        (0..16).map(|_| (0..d).map(|_| 0.3 * normal(&mut rng)).collect()).collect();
    let mut data = Array2::<f32>::zeros((256, d));
    for (k, mut row) in data.outer_iter_mut().enumerate() {
        let (i, j) = (k / 16, k % 16);
        for (c, v) in row.iter_mut().enumerate() {
            *v = a[i][c] + b[j][c] + 0.01 * normal(&mut rng);
        }
    }
    data
}

pub(crate) const N_EPOCHS: usize = 150;

pub(crate) fn small_config(d: usize) -> RqVaeConfig {
    RqVaeConfig::new(d)
        .with_d_hidden(vec![64])
        .with_d_latent(16)
        .with_codebook_size(16)
        .with_n_levels(2)
}

pub(crate) fn small_train() -> RqVaeTrainConfig {
    RqVaeTrainConfig::new().with_n_epochs(N_EPOCHS).with_batch_size(32).with_learning_rate(1e-2)
}

#[test]
fn trains_without_collapse_on_clustered_data() {
    let _guard = rng_lock();
    // 64 well separated clusters of 4 points; 2 levels of 16 codes give 256 tuples.
    let (data, truth) = blobs(64, 4, 16, 0.05, 11);
    let (rqvae, history) = small_config(16).fit(data.view(), &small_train(), &device()).unwrap();
    assert_eq!(history.epochs.len(), N_EPOCHS);
    let first = &history.epochs[0];
    let last = history.epochs.last().unwrap();
    assert!(last.reconstruction < 0.5 * first.reconstruction, "{history}");
    let diag = Diagnostics::compute(&rqvae, data.view(), 256, &device()).unwrap();
    eprintln!("{}{diag}", history.epochs.last().unwrap());
    // A collapsed quantizer has usage 1/16, perplexity 1 and one tuple for everything.
    assert!(diag.usage.iter().all(|&u| u >= 0.75), "{diag}");
    assert!(diag.perplexity.iter().all(|&p| p >= 8.0), "{diag}");
    assert!(diag.n_unique >= 56, "{diag}");
    // Items that share a tuple should come from one planted cluster.
    let codes = rqvae.encode(data.view()).unwrap();
    let mut owner = std::collections::HashMap::new();
    let mut impure = std::collections::HashSet::new();
    for (row, &t) in codes.outer_iter().zip(&truth) {
        let first = *owner.entry(row.to_vec()).or_insert(t);
        if first != t {
            impure.insert(row.to_vec());
        }
    }
    let mixed = codes.outer_iter().filter(|r| impure.contains(&r.to_vec())).count();
    assert!(mixed as f64 <= 0.15 * 256.0, "{mixed} items share a tuple with another cluster");
}

#[test]
fn additive_structure_is_learned() {
    let _guard = rng_lock();
    let data = additive(1);
    let (rqvae, _) = small_config(16).fit(data.view(), &small_train(), &device()).unwrap();
    let diag = Diagnostics::compute(&rqvae, data.view(), 256, &device()).unwrap();
    eprintln!("{diag}");
    // Random codes would give ~63% collisions and ~0.4% self-recall.
    assert!(diag.usage.iter().all(|&u| u >= 0.75), "{diag}");
    assert!(diag.collision_rate < 0.45, "{diag}");
    assert!(diag.self_recall_at_1 > 0.6, "{diag}");
    assert!(diag.relative_error < 0.06, "{diag}");
}

#[test]
fn diagnostics_flag_a_collapsed_code() {
    let codes = Array2::<u32>::zeros((100, 2));
    let diag = Diagnostics::from_codes(codes.view(), &[16, 16]);
    assert_eq!(diag.n_unique, 1);
    assert!((diag.collision_rate - 1.0).abs() < 1e-12);
    assert!((diag.usage[0] - 1.0 / 16.0).abs() < 1e-12);
    assert!((diag.perplexity[0] - 1.0).abs() < 1e-9);
    let text = diag.to_string();
    assert!(text.contains("100.0% of items collide"), "{text}");
}

#[test]
fn history_and_determinism() {
    let _guard = rng_lock();
    let data = uniform(64, 8, 3);
    let config = RqVaeConfig::new(8)
        .with_d_hidden(vec![16])
        .with_d_latent(4)
        .with_codebook_size(8)
        .with_n_levels(3);
    let train = RqVaeTrainConfig::new().with_n_epochs(3).with_batch_size(16);
    let (a, ha) = config.fit(data.view(), &train, &device()).unwrap();
    let (b, hb) = config.fit(data.view(), &train, &device()).unwrap();
    assert_eq!(ha.epochs.len(), 3);
    assert_eq!(ha.epochs[0].usage.len(), 3);
    assert_eq!(ha.epochs[0].perplexity.len(), 3);
    assert!(ha.epochs.iter().all(|e| e.loss.is_finite() && e.loss > 0.0));
    assert_eq!(a.encode(data.view()).unwrap(), b.encode(data.view()).unwrap());
    assert_eq!(ha.epochs[2].loss.to_bits(), hb.epochs[2].loss.to_bits());
    let decoded = a.decode(a.encode(data.view()).unwrap().view()).unwrap();
    assert_eq!(decoded.dim(), (64, 8));
}

#[test]
fn typed_errors() {
    let _guard = rng_lock();
    let dev = device();
    let data = uniform(32, 8, 4);
    let train = RqVaeTrainConfig::new().with_n_epochs(1);
    let mut bad = data.clone();
    bad[[5, 1]] = f32::NAN;
    let config = RqVaeConfig::new(8).with_codebook_size(8).with_d_hidden(vec![8]);
    assert!(matches!(config.fit(bad.view(), &train, &dev), Err(Error::NonFinite { row: 5, .. })));
    assert!(matches!(
        RqVaeConfig::new(9).fit(data.view(), &train, &dev),
        Err(Error::DimMismatch { got: 8, expected: 9, .. })
    ));
    assert!(matches!(
        RqVaeConfig::new(8).with_codebook_size(64).fit(data.view(), &train, &dev),
        Err(Error::TooFewPoints { k: 64, n: 32, .. })
    ));
    assert!(matches!(
        config.clone().with_n_levels(0).fit(data.view(), &train, &dev),
        Err(Error::InvalidConfig { field: "n_levels", .. })
    ));
    assert!(matches!(
        config.fit(data.view(), &train.clone().with_batch_size(0), &dev),
        Err(Error::InvalidConfig { field: "batch_size", .. })
    ));
    let (model, _) = config.fit(data.view(), &train, &dev).unwrap();
    let codes = Array2::from_elem((2, 3), 8u32);
    assert!(matches!(model.decode(codes.view()), Err(Error::CodeOutOfRange { .. })));
    let short = Array2::from_elem((2, 2), 0u32);
    assert!(matches!(model.decode(short.view()), Err(Error::DimMismatch { .. })));
}

#[test]
fn configs_round_trip_through_json() {
    let config = small_config(16).with_beta(0.5);
    let back: RqVaeConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back.d_hidden, vec![64]);
    assert!((back.beta - 0.5).abs() < 1e-12);
    let train = small_train().with_seed(42);
    let back: RqVaeTrainConfig =
        serde_json::from_str(&serde_json::to_string(&train).unwrap()).unwrap();
    assert_eq!(back.seed, 42);
    assert_eq!(back.batch_size, 32);
}

#[test]
fn the_observer_sees_every_batch_and_epoch() {
    let _guard = rng_lock();
    let data = uniform(100, 16, 2);
    let train = small_train().with_n_epochs(3).with_batch_size(32);
    let (mut batches, mut epochs) = (Vec::new(), Vec::new());
    let (_, history) = small_config(16)
        .fit_observed(data.view(), &train, &device(), &mut |e| match e {
            cart_quant::RqVaeEvent::Batch { epoch, batch, n_batches, loss, .. } => {
                assert!(loss.is_finite());
                batches.push((epoch, batch, n_batches));
            }
            cart_quant::RqVaeEvent::Epoch(stats) => epochs.push(stats.epoch),
            _ => {}
        })
        .unwrap();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert_eq!(batches.len(), 3 * 4, "100 rows in batches of 32: 4 per epoch");
    assert_eq!(batches[5], (1, 1, 4));
    assert_eq!(history.epochs.len(), 3);
}

/// `init` draws every weight from the seeded RNG at once: burn initialises parameters lazily,
/// and a draw from the same RNG before the first forward pass must not change them.
#[test]
fn init_draws_all_weights_from_the_seed_at_once() {
    let _guard = rng_lock();
    let data = uniform(32, 8, 5);
    let config = RqVaeConfig::new(8).with_d_hidden(vec![16]).with_d_latent(4).with_codebook_size(8);
    let dev = device();
    let encode = |interleave: bool| {
        dev.seed(9);
        let model = config.init(&dev).unwrap();
        if interleave {
            let _ = burn::Tensor::<2>::random([64, 64], burn::tensor::Distribution::Default, &dev)
                .into_data();
        }
        model.decode(model.encode(data.view()).unwrap().view()).unwrap()
    };
    assert_eq!(encode(false), encode(true));
}
