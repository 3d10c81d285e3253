//! criterion benches of `cart-model`: one training step and one batch of constrained beam
//! search. Small samples (2 cores); the big figures come from `cargo run --release -p
//! cart-benches --bin model_report`.

use std::time::Duration;

use burn::prelude::Device;
use cart_benches::{Rng, device, rows, synthetic_ids};
use cart_model::{GeneratorConfig, GeneratorDims, Pairs, TrainConfig};
use cart_search::BeamSearchConfig;
use criterion::{BenchmarkId, Criterion, criterion_group};

fn vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * d).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect()
}

/// The transformer alone (no dense head), as the paper's model.
fn config(d_model: usize, layers: usize) -> GeneratorConfig {
    GeneratorConfig::new()
        .with_dense_head(false)
        .with_d_model(d_model)
        .with_n_heads(4)
        .with_n_encoder_layers(layers)
        .with_n_decoder_layers(layers)
        .with_d_ff(4 * d_model)
}

fn bench_model(c: &mut Criterion) {
    let device: Device = device();
    let ids = synthetic_ids(10_000, 1).expect("synthetic ids");
    let trie = ids.to_trie().expect("trie");
    let mut group = c.benchmark_group("model");
    group.sample_size(10).measurement_time(Duration::from_secs(20));

    // One training epoch of a single batch of 256 (includes building the model).
    let (d_model, layers, batch) = (256, 4, 256);
    let q = vectors(batch, 384, 2);
    let items: Vec<u32> = (0..batch as u32).collect();
    let train = TrainConfig::new().with_n_epochs(1).with_batch_size(batch).with_rdrop(true);
    let cfg = config(d_model, layers);
    group.bench_function(
        BenchmarkId::new("train_step", format!("b{batch}/d{d_model}/l{layers}")),
        |b| {
            let pairs = Pairs::new(rows(&q, 384), &items);
            b.iter(|| cfg.fit(pairs, None, &trie, &train, &device).expect("fit"));
        },
    );

    // One batch of 10 queries, beam 10, over 10k identifiers.
    let generator = cfg.init(&GeneratorDims::for_trie(384, &trie), &device).expect("init");
    let queries = vectors(10, 384, 3);
    let search = BeamSearchConfig::default().with_beam_width(10).with_top_k(10);
    group.bench_function(BenchmarkId::new("search", "n10k/beam10/q10"), |b| {
        b.iter(|| generator.search(&trie, search, rows(&queries, 384)).expect("search"));
    });
    group.finish();
}

criterion_group!(benches, bench_model);
