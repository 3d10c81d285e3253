#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! The wgpu path (built with `--features wgpu`; in CI on Debian's software Vulkan, llvmpipe):
//! an index fitted and searched on the wgpu device, the same weights answering alike on wgpu
//! and flex, files saved on one backend loading on the other, and the fast K-Means on wgpu.

use burn::prelude::Device;
use burn::tensor::DeviceKind;
use cart::ndarray::ArrayView2;
use cart::quant::{KMeans, KMeansConfig, Quantizer};
use cart::synthetic::{SyntheticConfig, SyntheticCorpus};
use cart::{CartIndex, Corpus, IndexConfig, SearchOptions};

const D: usize = 16;
/// Scores of one model on two backends: float kernels differ in summation order only.
const SCORE_TOLERANCE: f32 = 1e-3;

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

fn data() -> SyntheticCorpus {
    let mut c = SyntheticConfig::new(120).with_dims(D, D).with_seed(5);
    c.n_clusters = 8;
    c.generate().unwrap()
}

fn config() -> IndexConfig {
    let mut c = IndexConfig::residual(8, 2, 6).with_seed_everywhere(3);
    c.train = c.train.with_n_epochs(1).with_batch_size(64).with_learning_rate(3e-3);
    c.generator = c
        .generator
        .with_d_model(32)
        .with_n_heads(2)
        .with_n_encoder_layers(1)
        .with_n_decoder_layers(1)
        .with_d_ff(64)
        .with_n_memory(2);
    c.validation_fraction = 0.0;
    c
}

fn corpus(d: &SyntheticCorpus) -> Corpus<'_> {
    Corpus::new(d.items.view(), d.train_queries.view(), &d.train_items)
        .with_rerank(d.items_in_query_space.view())
}

fn same_answers(a: &CartIndex, b: &CartIndex, queries: ArrayView2<'_, f32>) {
    for opts in [SearchOptions::new(10), SearchOptions::new(10).with_rerank(true)] {
        let (x, y) = (a.search_with(queries, opts).unwrap(), b.search_with(queries, opts).unwrap());
        assert_eq!(x.len(), y.len());
        for (hx, hy) in x.iter().zip(&y) {
            let items = |h: &[cart::Hit]| h.iter().map(|x| x.item).collect::<Vec<_>>();
            assert_eq!(items(hx), items(hy), "{opts:?}");
            for (p, q) in hx.iter().zip(hy) {
                assert!((p.score - q.score).abs() < SCORE_TOLERANCE, "{p:?} vs {q:?}");
            }
        }
    }
}

#[test]
fn an_index_fits_on_wgpu_and_answers_like_flex_after_a_backend_switch() {
    let d = data();
    let gpu = wgpu();
    let index = CartIndex::fit(&config(), corpus(&d), &gpu).unwrap();
    let hits = index.search(d.test_queries.view(), 5).unwrap();
    assert_eq!(hits.len(), d.test_items.len());
    assert!(hits.iter().all(|h| !h.is_empty() && h.iter().all(|x| x.item < 120)));

    let dir = std::env::temp_dir().join(format!("cart-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // saved from wgpu, loaded on flex: the same answers
    index.save(dir.join("from-wgpu")).unwrap();
    let on_flex = CartIndex::load(dir.join("from-wgpu"), &Device::flex()).unwrap();
    same_answers(&index, &on_flex, d.test_queries.view());
    // saved from flex, loaded on wgpu: the same again
    on_flex.save(dir.join("from-flex")).unwrap();
    let back = CartIndex::load(dir.join("from-flex"), &gpu).unwrap();
    same_answers(&on_flex, &back, d.test_queries.view());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fast_kmeans_runs_on_wgpu_and_assigns_like_flex() {
    let d = data();
    let items = d.items.view();
    let gpu = wgpu();
    let fitted = KMeansConfig::new(8).with_seed(1).fit(items.view(), &gpu).unwrap();
    let labels = fitted.predict(items.view()).unwrap();
    assert!(labels.iter().all(|&l| l < 8));
    // the same centroids on flex assign every item alike
    let on_flex = KMeans::from_centroids(fitted.centroids().to_owned(), &Device::flex()).unwrap();
    assert_eq!(on_flex.predict(items.view()).unwrap(), labels);
    assert_eq!(on_flex.encode(items.view()).unwrap(), fitted.encode(items.view()).unwrap());
}
