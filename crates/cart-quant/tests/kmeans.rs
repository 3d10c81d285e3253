//! K-Means: planted clusters, engine agreement, determinism, errors.

use cart_quant::{Error, KMeansConfig, KMeansEngine, Quantizer};
use ndarray::Array2;

use crate::common::{blobs, device, uniform};

#[test]
fn recovers_planted_clusters() {
    let (data, truth) = blobs(8, 40, 16, 0.5, 1);
    let kmeans = KMeansConfig::new(8).fit(data.view(), &device()).unwrap();
    let labels = kmeans.predict(data.view()).unwrap();
    // Every true cluster maps onto exactly one centroid, and no two onto the same one.
    let mut map = vec![None; 8];
    for (&t, &l) in truth.iter().zip(labels.iter()) {
        assert_eq!(*map[t].get_or_insert(l), l, "true cluster {t} split");
    }
    let mut seen: Vec<u32> = map.into_iter().map(Option::unwrap).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 8, "two true clusters merged");
    assert!(kmeans.inertia() < 16.0 * 0.5 * 0.5 * 1.5, "inertia {}", kmeans.inertia());
}

#[test]
fn fast_engine_matches_linfa_inertia() {
    for (data, k) in [(uniform(400, 8, 2), 12), (blobs(6, 50, 16, 2.0, 3).0, 6)] {
        let fast = KMeansConfig::new(k).fit(data.view(), &device()).unwrap();
        let linfa = KMeansConfig::new(k)
            .with_engine(KMeansEngine::Linfa)
            .fit(data.view(), &device())
            .unwrap();
        let ratio = fast.inertia() / linfa.inertia();
        assert!(ratio < 1.05, "fast {} vs linfa {}", fast.inertia(), linfa.inertia());
        assert!(ratio > 0.8, "fast {} vs linfa {}", fast.inertia(), linfa.inertia());
    }
}

#[test]
fn deterministic_given_seed() {
    let data = uniform(200, 8, 4);
    let a = KMeansConfig::new(10).with_seed(7).fit(data.view(), &device()).unwrap();
    let b = KMeansConfig::new(10).with_seed(7).fit(data.view(), &device()).unwrap();
    assert_eq!(a.centroids(), b.centroids());
    let c = KMeansConfig::new(10).with_seed(8).fit(data.view(), &device()).unwrap();
    assert_ne!(a.centroids(), c.centroids());
}

#[test]
fn encode_decode_as_quantizer() {
    let (data, _) = blobs(4, 10, 8, 0.1, 5);
    let kmeans = KMeansConfig::new(4).fit(data.view(), &device()).unwrap();
    assert_eq!(kmeans.codebook_sizes(), vec![4]);
    let codes = kmeans.encode(data.view()).unwrap();
    assert_eq!(codes.dim(), (40, 1));
    let back = kmeans.decode(codes.view()).unwrap();
    assert_eq!(back.row(0), kmeans.centroids().row(codes[[0, 0]] as usize));
    let bad = Array2::from_elem((1, 1), 4u32);
    assert!(matches!(kmeans.decode(bad.view()), Err(Error::CodeOutOfRange { code: 4, .. })));
}

#[test]
fn typed_errors_on_bad_input() {
    let dev = device();
    let data = uniform(20, 4, 6);
    assert!(matches!(
        KMeansConfig::new(0).fit(data.view(), &dev),
        Err(Error::InvalidConfig { field: "n_clusters", .. })
    ));
    assert!(matches!(
        KMeansConfig::new(21).fit(data.view(), &dev),
        Err(Error::TooFewPoints { k: 21, n: 20, .. })
    ));
    for engine in [KMeansEngine::Fast, KMeansEngine::Linfa] {
        let mut bad = data.clone();
        bad[[3, 2]] = f32::NAN;
        assert!(matches!(
            KMeansConfig::new(2).with_engine(engine).fit(bad.view(), &dev),
            Err(Error::NonFinite { row: 3, col: 2, .. })
        ));
        bad[[3, 2]] = f32::INFINITY;
        assert!(matches!(
            KMeansConfig::new(2).with_engine(engine).fit(bad.view(), &dev),
            Err(Error::NonFinite { .. })
        ));
        // finite, but squared distances would overflow f32: a typed error, not collapsed codes
        bad[[3, 2]] = 1e20;
        assert!(matches!(
            KMeansConfig::new(2).with_engine(engine).fit(bad.view(), &dev),
            Err(Error::TooLarge { row: 3, col: 2, .. })
        ));
    }
    let kmeans = KMeansConfig::new(2).fit(data.view(), &dev).unwrap();
    let huge = data.mapv(|x| x * 1e30);
    assert!(matches!(kmeans.predict(huge.view()), Err(Error::TooLarge { .. })));
    // up to the limit, scaled data keeps its clusters
    let scaled = data.mapv(|x| x * 1e15);
    let a = kmeans.predict(data.view()).unwrap();
    let b = KMeansConfig::new(2).fit(scaled.view(), &dev).unwrap().predict(scaled.view()).unwrap();
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(agree == a.len() || agree == 0, "a relabelling at most: {agree} of {}", a.len());
    let empty = Array2::<f32>::zeros((0, 4));
    assert!(matches!(KMeansConfig::new(1).fit(empty.view(), &dev), Err(Error::EmptyData { .. })));
    let kmeans = KMeansConfig::new(2).fit(data.view(), &dev).unwrap();
    let wide = uniform(3, 5, 7);
    assert!(matches!(
        kmeans.predict(wide.view()),
        Err(Error::DimMismatch { got: 5, expected: 4, .. })
    ));
}

#[test]
fn config_json_round_trip() {
    let config = KMeansConfig::new(16).with_engine(KMeansEngine::Linfa).with_seed(9);
    let json = serde_json::to_string(&config).unwrap();
    let back: KMeansConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert_eq!(back.engine, KMeansEngine::Linfa);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<cart_quant::KMeans>();
    check::<cart_quant::ResidualQuantizer>();
    check::<cart_quant::RqVae>();
    check::<cart_quant::CoarseToFine>();
    check::<cart_quant::Diagnostics>();
    check::<cart_quant::TrainHistory>();
    check::<Error>();
}
