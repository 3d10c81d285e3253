//! Prints the cart-quant figures at a large size (default 100k x 384): K-Means fit time (fast
//! engine, k = 256), RQ-VAE epoch time, and encode throughput of the coarse-to-fine quantizer
//! and of residual K-Means. One line per figure.
//!
//! `cargo run --release -p cart-benches --bin quant_report [-- N D K EPOCHS]`
//! (`--features wgpu` runs the same code on a GPU).

use std::time::Instant;

use anyhow::Result;
use burn::prelude::Device;
use cart_benches::clustered;
use cart_quant::{
    CoarseToFine, Diagnostics, KMeansConfig, KMeansEngine, Quantizer, ResidualQuantizerConfig,
    RqVaeConfig, RqVaeTrainConfig,
};

fn arg(args: &[String], i: usize, default: usize) -> Result<usize> {
    Ok(match args.get(i) {
        Some(a) => a.parse()?,
        None => default,
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, 0, 100_000)?;
    let d = arg(&args, 1, 384)?;
    let k = arg(&args, 2, 256)?;
    let epochs = arg(&args, 3, 1)?;
    let device: Device = cart_benches::device();
    println!("# cart-quant report: n={n} d={d} k={k} device={device:?}");
    let data = clustered(n, d, 1_000, 1);

    // K-Means fit, fast engine, one k-means++ start, at most 20 Lloyd iterations.
    let config = KMeansConfig::new(k).with_n_runs(1).with_max_iters(20);
    let t = Instant::now();
    let kmeans = config.fit(data.view(), &device)?;
    let fit = t.elapsed().as_secs_f64();
    println!(
        "kmeans_fit_fast        {n}x{d} k={k} runs=1 iters={}: {fit:.2} s ({:.3} s/iter incl. k-means++), inertia {:.5}",
        kmeans.n_iters(),
        fit / kmeans.n_iters().max(1) as f64,
        kmeans.inertia()
    );
    let t = Instant::now();
    let labels = kmeans.predict(data.view())?;
    let dt = t.elapsed().as_secs_f64();
    println!("kmeans_predict         {n}x{d} k={k}: {:.0} items/s", labels.len() as f64 / dt);

    if std::env::var_os("QUANT_REPORT_LINFA").is_some() {
        let m = 10_000.min(n);
        let sub = data.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..m));
        for engine in [KMeansEngine::Fast, KMeansEngine::Linfa] {
            let t = Instant::now();
            let km = config.clone().with_engine(engine).fit(sub, &device)?;
            println!(
                "kmeans_fit_{engine:?}  {m}x{d} k={k} runs=1 max_iters=20: {:.2} s, inertia {:.5}",
                t.elapsed().as_secs_f64(),
                km.inertia()
            );
        }
    }

    // RQ-VAE on the residuals: 3 levels of 256 codes, latent 64, hidden [256, 128], batch 1024.
    let mut residual = data.clone();
    for (mut row, &l) in residual.outer_iter_mut().zip(labels.iter()) {
        row -= &kmeans.centroids().row(l as usize);
    }
    let mut train = RqVaeTrainConfig::new().with_n_epochs(epochs);
    // Knobs for experiments; the figures in the docs use the defaults.
    if let Some(v) = std::env::var_os("QUANT_LR") {
        train = train.with_learning_rate(v.to_string_lossy().parse()?);
    }
    if let Some(v) = std::env::var_os("QUANT_BATCH") {
        train = train.with_batch_size(v.to_string_lossy().parse()?);
    }
    let t = Instant::now();
    let (rqvae, history) = RqVaeConfig::new(d).fit(residual.view(), &train, &device)?;
    let total = t.elapsed().as_secs_f64();
    for e in &history.epochs {
        println!(
            "rqvae_epoch            {n}x{d} latent=64 3x256 batch={}: {:.2} s (epoch {}, loss {:.4} = recon {:.4} + codebook {:.4} + 0.25 x commit, usage {:?})",
            train.batch_size, e.seconds, e.epoch, e.loss, e.reconstruction, e.codebook, e.usage
        );
    }
    println!("rqvae_fit_total        {epochs} epoch(s) incl. k-means codebook init: {total:.2} s");

    let q = CoarseToFine::from_parts(kmeans, rqvae)?;
    let t = Instant::now();
    let codes = q.encode(data.view())?;
    let dt = t.elapsed().as_secs_f64();
    println!(
        "encode_coarse_to_fine  {n}x{d} -> [k,v1,v2,v3]: {:.0} items/s",
        codes.nrows() as f64 / dt
    );

    let rq = ResidualQuantizerConfig::new(vec![k, 256, 256, 256])
        .with_max_iters(10)
        .fit(data.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..n.min(20_000))), &device)?;
    let t = Instant::now();
    let codes = rq.encode(data.view())?;
    let dt = t.elapsed().as_secs_f64();
    println!(
        "encode_residual_kmeans {n}x{d} -> 4 levels: {:.0} items/s",
        codes.nrows() as f64 / dt
    );

    // Quality on the same data (1,000 self-recall probes against all n items).
    let diag = Diagnostics::compute(&q, data.view(), 1_000, &device)?;
    println!("# diagnostics, coarse-to-fine (K-Means + RQ-VAE, {epochs} epoch(s)):\n{diag}");
    let diag = Diagnostics::compute(&rq, data.view(), 1_000, &device)?;
    println!("# diagnostics, residual K-Means (fitted on the first 20k items):\n{diag}");
    Ok(())
}
