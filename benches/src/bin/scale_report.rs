//! The `cart` facade on seeded synthetic corpora (`cart::synthetic`) of growing size.
//!
//! For every size: time to draw the corpus, then the index pipeline up to the trie (residual
//! K-Means codes, K = sqrt(n), M = 3, C = 64: identifier collisions, trie bytes per item); up to
//! `TRAIN_MAX` items (default 10,000) also the generator (d_model 128, 2 + 2 layers, `EPOCHS`
//! epochs, default 8) and its test Recall@1/10 and queries per second next to exact dense search
//! and the re-ranked and fused beams and the training-free floor on validation, beside supervised dense search (`cart::supervised_centroids`: each
//! item plus its training queries, the bar a learned retriever must beat). Training on 100k+
//! items is a GPU job; on 2 CPU cores it takes hours.
//!
//! `cargo run --release -p cart-benches --bin scale_report [-- 1000 10000 100000 1000000]`
//! (`TRAIN_MAX=0` skips training; `EPOCHS=N`; `HIER=S` draws the hierarchical corpus of
//! [`cart::synthetic::SyntheticConfig::with_hierarchy`] with `S` sub-clusters per cluster, items spread 0.1;
//! `ITEM_NOISE=X` item-side noise no query sees; `TARGETS=auto|supervised|raw` the dense head's
//! tables and re-rank vectors, picked on validation by default, as is the subtree prior;
//! `SEED=N` the corpus's and the index's seed, default 0; `LR=x` the peak learning rate; `BEAM=N`
//! the generator's beam width; `RANK=w` the weight of the prefix-level ranking loss, `RANK_NEG=N`
//! its negatives per query, `RANK_ROWS=x` the share of queries given negatives each epoch. The
//! train column names the kept epoch: 0 is the untrained model.)
//!
//! Where the generator and dense search are close, the `generator vs dense` column says whether
//! the difference means anything: the test queries only the generator gets right at rank 1, those
//! only dense search gets right, and the two-sided sign-test p-value of that split (McNemar's
//! exact test); `dense top-1 in beams` counts the queries whose dense top-1 item is among the
//! generator's 10 beams.

use std::time::Instant;

use anyhow::Result;
use burn::prelude::Device;
use cart::quant::{Quantizer, ResidualQuantizerConfig};
use cart::search::{DenseIndex, Hit, Metric, compare_at, evaluate};
use cart::synthetic::SyntheticConfig;
use cart::{CartIndex, Corpus, IndexConfig, SearchOptions};

fn env(name: &str, default: usize) -> Result<usize> {
    Ok(std::env::var(name).ok().map(|v| v.parse()).transpose()?.unwrap_or(default))
}

fn recall(hits: &[Vec<Hit>], items: &[u32]) -> Result<(f64, f64)> {
    let relevant: Vec<Vec<u32>> = items.iter().map(|&i| vec![i]).collect();
    let m = evaluate(hits, &relevant, &[1, 10])?;
    Ok((m[0].recall, m[1].recall))
}

fn main() -> Result<()> {
    let sizes: Vec<usize> =
        match std::env::args().skip(1).map(|a| a.parse()).collect::<Result<Vec<_>, _>>()? {
            s if s.is_empty() => vec![1_000, 10_000, 100_000, 1_000_000],
            s => s,
        };
    let (train_max, epochs) = (env("TRAIN_MAX", 10_000)?, env("EPOCHS", 8)?);
    // HIER=S: the hierarchical corpus, S sub-clusters per cluster, items spread 0.1 around them
    let hier = env("HIER", 0)?;
    // ITEM_NOISE=x: item-side noise no query sees (cart::synthetic::SyntheticConfig::item_noise)
    let item_noise: f32 =
        std::env::var("ITEM_NOISE").ok().map(|v| v.parse()).transpose()?.unwrap_or(0.0);
    // SEED=N: the corpus and the index (quantizer, generator) draw from this seed
    let seed = env("SEED", 0)? as u64;
    let device: Device = cart_benches::device();
    let (d, m, c) = (64, 3, 64);
    println!(
        "| items | corpus | codes (fit + encode) | collide | trie B/item | dense R@1 / R@10 | dense q/s | supervised dense R@1 / R@10 | floor (valid R@1) | generator R@1 / R@10 | generator q/s | + re-rank R@1 / R@10 | fused R@1 / R@10 | generator vs dense (only gen / only dense, p) | dense top-1 in beams | train |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for n in sizes {
        let t = Instant::now();
        let data = match hier {
            0 => SyntheticConfig::new(n).with_dims(d, d),
            s => SyntheticConfig::new(n).with_dims(d, d).with_hierarchy(s, 0.1),
        }
        .with_item_noise(item_noise)
        .with_seed(seed)
        .generate()?;
        let t_corpus = t.elapsed().as_secs_f64();
        let k = ((n as f64).sqrt().round() as usize).clamp(1, n);

        let t = Instant::now();
        let items = data.items.view();
        let sizes = std::iter::once(k).chain(std::iter::repeat_n(c, m)).collect();
        let quantizer = ResidualQuantizerConfig::new(sizes).with_seed(seed).fit(items, &device)?;
        let codes = quantizer.encode(items)?;
        let t_codes = t.elapsed().as_secs_f64();
        let ids = cart::ids::assign_codes(&quantizer.codebook_sizes(), codes.view(), 1.0)?;
        let trie = ids.to_trie()?;
        let bytes = trie.memory_bytes() as f64 / n as f64;

        let dense = DenseIndex::new(data.items_in_query_space.view(), Metric::Cosine)?;
        let t = Instant::now();
        let exact = dense.search(data.test_queries.view(), 10)?;
        let dense_qps = data.test_items.len() as f64 / t.elapsed().as_secs_f64();
        let (d1, d10) = recall(&exact, &data.test_items)?;
        // the bar: each item's vector plus its training queries' vectors (the generator's pairs)
        let centroids = cart::supervised_centroids(
            data.items_in_query_space.view(),
            data.train_queries.view(),
            &data.train_items,
        )?;
        let supervised = DenseIndex::new(centroids.view(), Metric::Cosine)?
            .search(data.test_queries.view(), 10)?;
        let (s1, s10) = recall(&supervised, &data.test_items)?;

        let generated = if n <= train_max {
            let mut config = IndexConfig::residual(k, m, c).with_seed_everywhere(seed);
            config.train = config.train.with_n_epochs(epochs).with_batch_size(256);
            // the dense head's tables and the re-rank vectors: picked on the validation split
            // (here drawn like the test queries), or TARGETS=supervised|raw
            let choice = match std::env::var("TARGETS").as_deref() {
                Ok("supervised") => Some(true),
                Ok("raw") => Some(false),
                Ok("auto") | Err(_) => None,
                Ok(other) => anyhow::bail!("TARGETS={other}: expected auto, supervised or raw"),
            };
            config.supervised_targets = choice;
            config.rerank_supervised = choice;
            config.beam_width = env("BEAM", config.beam_width)?;
            if let Some(lr) = std::env::var("LR").ok().map(|v| v.parse()).transpose()? {
                config.train.learning_rate = lr;
            }
            if let Some(w) = std::env::var("RANK").ok().map(|v| v.parse()).transpose()? {
                config.train.rank_weight = w;
            }
            config.train.rank_negatives = env("RANK_NEG", config.train.rank_negatives)?;
            if let Some(x) = std::env::var("RANK_ROWS").ok().map(|v| v.parse()).transpose()? {
                config.train.rank_rows = x;
            }
            let corpus = Corpus::new(items, data.train_queries.view(), &data.train_items)
                .with_rerank(data.items_in_query_space.view());
            let t = Instant::now();
            let index = CartIndex::fit(&config, corpus, &device)?;
            let t_train = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let hits = index.search(data.test_queries.view(), 10)?;
            let qps = data.test_items.len() as f64 / t.elapsed().as_secs_f64();
            let reranked = index
                .search_with(data.test_queries.view(), SearchOptions::new(10).with_rerank(true))?;
            let fused = index.search_with(
                data.test_queries.view(),
                SearchOptions::new(10).with_mode(cart::SearchMode::Fused),
            )?;
            let floor = index.history().start_valid.first().map_or(f64::NAN, |m| m.recall);
            let kept = index.history().best_epoch;
            let relevant: Vec<[u32; 1]> = data.test_items.iter().map(|&i| [i]).collect();
            let vs_dense = compare_at(&hits, &exact, &relevant, 1)?;
            let (only_gen, only_dense, p) =
                (vs_dense.only_first, vs_dense.only_second, vs_dense.p_value);
            let in_beams = hits
                .iter()
                .zip(&exact)
                .filter(|(beams, d)| {
                    d.first().is_some_and(|top| beams.iter().any(|h| h.item == top.item))
                })
                .count();
            Some((
                recall(&hits, &data.test_items)?,
                qps,
                recall(&reranked, &data.test_items)?,
                recall(&fused, &data.test_items)?,
                floor,
                (only_gen, only_dense, p, in_beams),
                (t_train, kept),
            ))
        } else {
            None
        };
        let trained = match generated {
            Some((
                (g1, g10),
                qps,
                (r1, r10),
                (f1, f10),
                floor,
                (only_gen, only_dense, p, in_beams),
                (t_train, kept),
            )) => format!(
                "{floor:.3} | {g1:.4} / {g10:.3} | {qps:.0} | {r1:.4} / {r10:.3} | {f1:.4} / {f10:.3} | {only_gen} / {only_dense}, p {p:.2} | {in_beams} of {} | {t_train:.0} s ({epochs} epochs, kept {kept})",
                data.test_items.len()
            ),
            None => "- | - | - | - | - | - | - | not trained".into(),
        };
        println!(
            "| {n} | {t_corpus:.2} s | {t_codes:.1} s | {:.1}% | {bytes:.1} | {d1:.4} / {d10:.3} | {dense_qps:.0} | {s1:.4} / {s10:.3} | {trained} |",
            100.0 * ids.collision_rate()
        );
    }
    Ok(())
}
