//! The synthetic corpus: determinism, shapes, and a signal a retriever can find.

use cart::Error;
use cart::search::{DenseIndex, Metric, evaluate};
use cart::synthetic::SyntheticConfig;

#[test]
fn same_seed_same_corpus_other_seed_other_corpus() {
    let config = SyntheticConfig::new(500).with_dims(12, 20);
    let a = config.generate().unwrap();
    assert_eq!(a, config.generate().unwrap());
    let b = config.with_seed(1).generate().unwrap();
    assert_ne!(a.items, b.items);
    assert_ne!(a.test_items, b.test_items);
}

#[test]
fn shapes_norms_and_distinct_test_items() {
    let c = SyntheticConfig::new(300).with_dims(10, 6).generate().unwrap();
    assert_eq!(c.items.dim(), (300, 10));
    assert_eq!(c.items_in_query_space.dim(), (300, 6));
    assert_eq!(c.train_queries.dim(), (900, 6));
    assert_eq!(c.train_items.len(), 900);
    assert_eq!(c.test_queries.dim(), (c.test_items.len(), 6));
    assert_eq!(c.test_items.len(), 300);
    for row in c.items.rows().into_iter().chain(c.train_queries.rows()) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let mut seen = c.test_items.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 300, "test items are drawn without replacement");
    assert!(c.clusters.iter().all(|&k| (k as usize) < c.config.n_clusters));
}

#[test]
fn queries_find_their_items_densely_but_not_trivially() {
    let c = SyntheticConfig::new(2000).with_dims(32, 48).generate().unwrap();
    let dense = DenseIndex::new(c.items_in_query_space.view(), Metric::Cosine).unwrap();
    let hits = dense.search(c.test_queries.view(), 10).unwrap();
    let relevant: Vec<Vec<u32>> = c.test_items.iter().map(|&i| vec![i]).collect();
    let m = evaluate(&hits, &relevant, &[1, 10]).unwrap();
    // chance is 1/2000 at R@1: the queries carry the item, but noise and near neighbours in
    // the same cluster make it a real retrieval problem
    assert!(m[0].recall > 0.2, "R@1 {}", m[0].recall);
    assert!(m[0].recall < 0.98, "R@1 {}: too easy to tell methods apart", m[0].recall);
    assert!(m[1].recall > m[0].recall);
    // the item vectors themselves live in another space: the same queries, scored against
    // them, do no better than chance-level structure allows
    let other = SyntheticConfig::new(2000).with_dims(48, 48).generate().unwrap();
    let raw = DenseIndex::new(other.items.view(), Metric::Cosine).unwrap();
    let raw_hits = raw.search(other.test_queries.view(), 10).unwrap();
    let rel: Vec<Vec<u32>> = other.test_items.iter().map(|&i| vec![i]).collect();
    let raw_m = evaluate(&raw_hits, &rel, &[10]).unwrap();
    assert!(raw_m[0].recall < 0.05, "the transform must hide the item space: {}", raw_m[0].recall);
}

#[test]
fn bad_configs_are_errors() {
    let mut c = SyntheticConfig::new(10);
    c.n_test_queries = 11;
    assert!(matches!(c.generate(), Err(Error::InvalidConfig { field: "n_test_queries", .. })));
    let mut c = SyntheticConfig::new(10);
    c.query_noise = f32::NAN;
    assert!(matches!(c.generate(), Err(Error::InvalidConfig { field: "query_noise", .. })));
    assert!(matches!(
        SyntheticConfig::new(0).generate(),
        Err(Error::InvalidConfig { field: "n_items", .. })
    ));
}
