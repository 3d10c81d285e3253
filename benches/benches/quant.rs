//! criterion benches of cart-quant at small sizes (big sizes: the `quant_report` binary).

use std::hint::black_box;
use std::time::Duration;

use burn::prelude::Device;
use cart_benches::clustered;
use cart_quant::{KMeansConfig, Quantizer, RqVaeConfig, RqVaeTrainConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

fn kmeans(c: &mut Criterion) {
    let device: Device = cart_benches::device();
    let mut group = c.benchmark_group("quant");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    let (n, d, k) = (10_000, 128, 64);
    let data = clustered(n, d, 100, 1);
    let config = KMeansConfig::new(k).with_n_runs(1).with_max_iters(10);
    group.bench_function(BenchmarkId::new("kmeans_fit", format!("{n}x{d}/k{k}")), |b| {
        b.iter(|| config.fit(black_box(data.view()), &device))
    });
    let fitted = config.fit(data.view(), &device).ok();
    if let Some(fitted) = fitted {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("kmeans_encode", format!("{n}x{d}/k{k}")), |b| {
            b.iter(|| fitted.encode(black_box(data.view())))
        });
    }
    group.finish();
}

fn rqvae(c: &mut Criterion) {
    let device: Device = cart_benches::device();
    let mut group = c.benchmark_group("quant");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let (n, d) = (4_096, 128);
    let data = clustered(n, d, 100, 2);
    let config = RqVaeConfig::new(d).with_codebook_size(64);
    let train = RqVaeTrainConfig::new().with_n_epochs(1).with_batch_size(512);
    // One `fit` of one epoch: model build, K-Means codebook init and 8 Adam steps.
    group.bench_function(BenchmarkId::new("rqvae_epoch", format!("{n}x{d}/3x64")), |b| {
        b.iter(|| config.fit(black_box(data.view()), &train, &device))
    });
    if let Ok((model, _)) = config.fit(data.view(), &train, &device) {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("rqvae_encode", format!("{n}x{d}/3x64")), |b| {
            b.iter(|| model.encode(black_box(data.view())))
        });
    }
    group.finish();
}

criterion_group!(benches, kmeans, rqvae);
