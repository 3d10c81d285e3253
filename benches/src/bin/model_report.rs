//! Prints the cart-model figures: the time of one training step (batch 256, d_model 256, 4+4
//! layers, R-Drop on, so two passes per step) and the queries per second of the constrained beam
//! search (beam 10, 100 queries per batch) for 10k, 100k and 1M identifiers. The model is the
//! same for every size (one layout: K = 1024, M = 3, C = 256, U = 16); only the trie grows.
//!
//! `cargo run --release -p cart-benches --bin model_report [-- D_MODEL LAYERS N_QUERIES]`

use std::time::Instant;

use anyhow::Result;
use cart_benches::Rng;
use cart_ids::{IdAssignment, IdLayout, assign_ids};
use cart_model::{GeneratorConfig, GeneratorDims, Pairs, TrainConfig};
use cart_search::BeamSearchConfig;

fn arg(args: &[String], i: usize, default: usize) -> Result<usize> {
    Ok(match args.get(i) {
        Some(a) => a.parse()?,
        None => default,
    })
}

/// One layout for every size, so the model (its vocabulary) does not change with `n`.
fn layout() -> Result<IdLayout> {
    Ok(IdLayout::new(1024, 3, 256, 16)?)
}

fn ids(n: usize, seed: u64) -> Result<IdAssignment> {
    let layout = layout()?;
    let mut rng = Rng::new(seed);
    let coarse: Vec<u32> = (0..n).map(|_| rng.below(1024)).collect();
    let fine: Vec<u32> = (0..n * 3).map(|_| rng.below(256)).collect();
    Ok(assign_ids(&layout, &coarse, &fine)?)
}

fn vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * d).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let d_model = arg(&args, 0, 256)?;
    let layers = arg(&args, 1, 4)?;
    let n_queries = arg(&args, 2, 100)?;
    let d_query = 384;
    let device = cart_benches::device();
    println!("# cart-model report: d_model={d_model} layers={layers}+{layers} device={device:?}");
    let layout = layout()?;
    // the transformer alone (no dense head), as the paper's model
    let config = GeneratorConfig::new()
        .with_dense_head(false)
        .with_d_model(d_model)
        .with_n_heads(4)
        .with_n_encoder_layers(layers)
        .with_n_decoder_layers(layers)
        .with_d_ff(4 * d_model);

    // Training step: the difference between a run of 8 and a run of 2 steps, over 6, leaves
    // out model building and the first step's allocations.
    let train_trie = ids(4096, 1)?.to_trie()?;
    let batch = 256;
    let step_time = |steps: usize| -> Result<f64> {
        let n = batch * steps;
        let q = vectors(n, d_query, 2);
        let items: Vec<u32> = (0..n as u32).map(|i| i % 4096).collect();
        let train = TrainConfig::new().with_n_epochs(1).with_batch_size(batch).with_rdrop(true);
        let t = Instant::now();
        let pairs = Pairs::new(cart_benches::rows(&q, d_query), &items);
        config.fit(pairs, None, &train_trie, &train, &device)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let short = step_time(2)?;
    let long = step_time(8)?;
    let step = (long - short) / 6.0;
    println!(
        "train step (batch {batch}, d_model {d_model}, {layers}+{layers} layers, R-Drop): {:.1} ms ({:.0} pairs/s)",
        step * 1e3,
        batch as f64 / step
    );

    // Queries per second at beam 10 for growing tries, same (untrained) model.
    device.seed(0);
    let generator = config.init(&GeneratorDims::for_layout(d_query, &layout, 1), &device)?;
    println!("model: {} parameters, vocabulary {}", generator.n_params(), layout.vocab_size());
    let queries = vectors(n_queries, d_query, 3);
    let search = BeamSearchConfig::default().with_beam_width(10).with_top_k(10);
    let mut qps = Vec::new();
    for n in [10_000, 100_000, 1_000_000] {
        let trie = ids(n, 4)?.to_trie()?;
        let warm = cart_benches::rows(&queries[..d_query * n_queries.min(10)], d_query);
        generator.search(&trie, search, warm)?; // warm-up
        let reps = 3;
        let t = Instant::now();
        for _ in 0..reps {
            generator.search(&trie, search, cart_benches::rows(&queries, d_query))?;
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        let rate = n_queries as f64 / secs;
        println!(
            "search n={n:>9} beam 10 top 10, {n_queries} queries per batch: {rate:.1} queries/s ({:.1} ms per batch)",
            secs * 1e3
        );
        qps.push(rate);
    }
    println!("ratio qps(1M) / qps(10k) = {:.3}", qps[2] / qps[0]);
    Ok(())
}
