//! The main job: a CART index on the bundled emoji set, end to end, through the `cart` facade.
//!
//! Item vectors (the English names through the e5 query encoder; `--ids-from minilm` for the
//! separate MiniLM item encoder) are quantized into identifiers `[k, v1..vM, u]`; the
//! generator learns to write them from multilingual pseudo-queries (e5 vectors of the names and
//! keywords in de, es, fr, it, nl, pt); then held-out queries in ten *other* languages are
//! answered by trie-constrained beam search. Printed: identifier diagnostics, training progress,
//! Recall@1/5/10 and MRR@10 with queries per second for the generator, the exact dense baseline
//! (e5 on both sides) and the generator's beams re-ranked by it, and a few readable queries.
//!
//! ```sh
//! cargo run --release --example quickstart -- [--epochs 4] [--lr 1e-3] [--rdrop] [--no-names]
//!     [--no-fusion] [--quantizer c2f|rq] [--shape 64x3x32] [--ids-from minilm|e5|supervised] [--beam 10]
//!     [--seed 0] [--save DIR] [--quiet] [--no-dense-head] [--item-queries 1.0]
//!     [--interpolation 0.5] [--targets auto|supervised|raw] [--rerank-vectors auto|supervised|raw]
//!     [--rerank-held-out]
//!     [--subtree-prior auto|on|off] [--transformer-scale 0.1] [--device cpu|wgpu]
//!     [--rank-weight 0.1] [--rank-negatives 1] [--rank-rows 1] [--plot DIR]
//! ```
//!
//! - Names (on; `--no-names` drops them): each item's English name, embedded by the query
//!   encoder, is one more pseudo-query per item (the caption augmentation of the method).
//! - R-Drop (off; `--rdrop`): it doubles the cost of every step, and on two CPU cores the
//!   same four minutes buy more from twice the epochs (measured on this set: test R@1 0.074
//!   with R-Drop at 16 epochs, 0.181 without at 28). On a GPU, turn it on.
//! - Identifiers (`--ids-from e5`, the default) are built from the items' vectors in the
//!   *query* encoder's space, as CART does with CLIP, where images and captions share one
//!   space. `--ids-from minilm` builds them from the separate MiniLM item encoder instead, and
//!   `--ids-from supervised` from the items' supervised centroids in the query space
//!   (relevance-aware identifiers: e5 vector plus its training queries). Measured on two seeds
//!   (docs/results.md): e5 and supervised are level, both about 0.8 points above MiniLM;
//!   validation R@1 picked e5.
//! - The dense head (on; `--no-dense-head` for the plain transformer head, which needs about
//!   28 epochs) and the augmentations (`--item-queries`, `--interpolation`; 0 turns one off),
//!   `--raw-targets` (dense-head targets from the items' e5 vectors alone, not their supervised
//!   centroids), `--transformer-scale` (0: the dense head alone) are the ablation's switches
//!   (`benches/ablation.sh`); `--shape KxMxC` sets the identifier shape.
//! - `--rerank-held-out` stores re-rank centroids fitted on the training split alone; by
//!   default, once validation has picked the re-rank vectors and lambda, the stored centroids
//!   are refitted on every pair (`IndexConfig::rerank_all_pairs`).
//! - The prefix-level ranking loss (weight 0.1; `--rank-weight 0` turns it off): each epoch
//!   the model searches its training queries, and its best answer that is another item is the
//!   query's negative (`--rank-negatives`, `--rank-rows` the share of queries given one). It
//!   raised validation R@1 on both seeds measured and costs about 1.7x the training time.
//! - `--device cpu` (burn's flex backend, the default) or `--device wgpu` (build with
//!   `--features wgpu`): the device is always chosen explicitly, since burn's
//!   `Device::default()` picks wgpu whenever it is built.
//! - `--plot DIR` writes `DIR/training.svg` (loss and validation recall per epoch) and
//!   `DIR/recall.svg` (Recall@k for k = 1..50 of every method), as `cart fit --plot` and
//!   `cart eval --plot` do.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use cart::search::{DenseIndex, Hit, Metric};
use cart::{CartIndex, Corpus, IndexConfig, SearchMode, SearchOptions};
use cart_cli::{Evaluation, FitProgress, plot, progress};
use cart_examples::{EmojiData, default_data_dir, rows, show_examples};

struct Args {
    epochs: Option<usize>,
    lr: f64,
    names: bool,
    fusion: bool,
    rdrop: bool,
    quantizer: String,
    ids_from: String,
    beam: usize,
    seed: u64,
    save: Option<String>,
    quiet: bool,
    dense_head: bool,
    item_queries: Option<f64>,
    interpolation: Option<f64>,
    rank_weight: Option<f64>,
    rank_negatives: Option<usize>,
    rank_rows: Option<f64>,
    /// Given: `Some(true)` supervised centroids, `Some(false)` raw vectors, `None` picked.
    targets: Option<Option<bool>>,
    rerank_vectors: Option<Option<bool>>,
    /// The stored re-rank centroids from the training split only (`rerank_all_pairs` off).
    rerank_held_out: bool,
    subtree_prior: Option<Option<bool>>,
    transformer_scale: Option<f64>,
    shape: (usize, usize, usize),
    device: String,
    plot: Option<String>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        epochs: None,
        lr: 1e-3,
        names: true,
        fusion: true,
        rdrop: false,
        quantizer: "c2f".into(),
        ids_from: "e5".into(),
        beam: 10,
        seed: 0,
        save: None,
        quiet: false,
        dense_head: true,
        item_queries: None,
        interpolation: None,
        rank_weight: None,
        rank_negatives: None,
        rank_rows: None,
        targets: None,
        rerank_vectors: None,
        rerank_held_out: false,
        subtree_prior: None,
        transformer_scale: None,
        shape: (64, 3, 32),
        device: "cpu".into(),
        plot: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = Some(value()?.parse()?),
            "--no-names" => a.names = false,
            "--no-fusion" => a.fusion = false,
            "--rdrop" => a.rdrop = true,
            "--lr" => a.lr = value()?.parse()?,
            "--quantizer" => a.quantizer = value()?,
            "--ids-from" => a.ids_from = value()?,
            "--beam" => a.beam = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--save" => a.save = Some(value()?),
            "--plot" => a.plot = Some(value()?),
            "--quiet" => a.quiet = true,
            "--device" => a.device = value()?,
            "--no-dense-head" => a.dense_head = false,
            "--item-queries" => a.item_queries = Some(value()?.parse()?),
            "--interpolation" => a.interpolation = Some(value()?.parse()?),
            "--rank-weight" => a.rank_weight = Some(value()?.parse()?),
            "--rank-negatives" => a.rank_negatives = Some(value()?.parse()?),
            "--rank-rows" => a.rank_rows = Some(value()?.parse()?),
            "--raw-targets" => a.targets = Some(Some(false)),
            "--targets" => a.targets = Some(choice(&flag, &value()?)?),
            "--rerank-vectors" => a.rerank_vectors = Some(choice(&flag, &value()?)?),
            "--rerank-held-out" => a.rerank_held_out = true,
            "--subtree-prior" => {
                a.subtree_prior = Some(match value()?.as_str() {
                    "auto" => None,
                    "on" => Some(true),
                    "off" => Some(false),
                    other => bail!("--subtree-prior {other}: expected auto, on or off"),
                });
            }
            "--transformer-scale" => a.transformer_scale = Some(value()?.parse()?),
            "--shape" => {
                let v = value()?;
                let parts: Vec<usize> = v
                    .split('x')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--shape {v}: expected KxMxC, e.g. 64x3x32"))?;
                let [k, m, c] = parts[..] else { bail!("--shape {v}: expected KxMxC") };
                a.shape = (k, m, c);
            }
            "-h" | "--help" => {
                println!("see the top of examples/quickstart.rs for the flags");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// `auto` (picked on validation), `supervised` or `raw`.
fn choice(flag: &str, value: &str) -> Result<Option<bool>> {
    Ok(match value {
        "auto" => None,
        "supervised" => Some(true),
        "raw" => Some(false),
        other => bail!("{flag} {other}: expected auto, supervised or raw"),
    })
}

fn main() -> Result<()> {
    let args = parse()?;
    let started = Instant::now();
    let device = cart_cli::device(&args.device)?;
    let data = EmojiData::load(default_data_dir())?;
    let (n, d_item, d_query) = (data.items.rows(), data.items.cols(), data.test_queries.cols());
    println!(
        "emoji: {n} items ({d_item}-d MiniLM), {} training pseudo-queries and {} held-out test \
         queries ({d_query}-d e5)",
        data.train_items.len(),
        data.test_items.len()
    );

    // Pseudo-queries: the multilingual names and keywords, plus (with --names) each item's
    // English name as the query encoder sees it.
    let mut queries = data.train_queries.data.clone();
    let mut query_items = data.train_items.clone();
    if args.names {
        queries.extend_from_slice(&data.items_e5.data);
        query_items.extend(0..n as u32);
    }
    let id_vectors = match args.ids_from.as_str() {
        "minilm" => data.items.view(),
        "e5" | "supervised" => data.items_e5.view(),
        other => bail!("--ids-from {other}: expected minilm, e5 or supervised"),
    };
    let d_item = id_vectors.ncols();
    let corpus = Corpus::new(id_vectors, rows(&queries, d_query), &query_items)
        .with_rerank(data.items_e5.view());

    let (k, m, c) = args.shape;
    let mut config = match args.quantizer.as_str() {
        "c2f" => IndexConfig::coarse_to_fine(d_item, k, m, c),
        "rq" => IndexConfig::residual(k, m, c),
        other => bail!("--quantizer {other}: expected c2f or rq"),
    }
    .with_seed_everywhere(args.seed);
    config.generator = config.generator.with_fusion(args.fusion).with_dense_head(args.dense_head);
    if let Some(s) = args.transformer_scale {
        config.generator = config.generator.with_transformer_scale(s);
    }
    if args.ids_from == "supervised" {
        config.id_vectors = cart::IdVectors::Supervised;
    }
    if let Some(t) = args.targets {
        config.supervised_targets = t;
    }
    if let Some(r) = args.rerank_vectors {
        config.rerank_supervised = r;
    }
    if let Some(p) = args.subtree_prior {
        config.subtree_prior = p;
    }
    config.rerank_all_pairs = !args.rerank_held_out;
    if let Some(x) = args.item_queries {
        config.train = config.train.with_item_queries(x);
    }
    if let Some(x) = args.interpolation {
        config.train = config.train.with_interpolation(x);
    }
    if let Some(x) = args.rank_weight {
        config.train = config.train.with_rank_weight(x);
    }
    if let Some(x) = args.rank_negatives {
        config.train = config.train.with_rank_negatives(x);
    }
    if let Some(x) = args.rank_rows {
        config.train = config.train.with_rank_rows(x);
    }
    // without the dense head the transformer must learn the ranking from scratch: 28 epochs
    let epochs = args.epochs.unwrap_or(if args.dense_head { config.train.n_epochs } else { 28 });
    config.train =
        config.train.with_n_epochs(epochs).with_learning_rate(args.lr).with_rdrop(args.rdrop);
    config.beam_width = args.beam;

    let t = Instant::now();
    let mut progress = FitProgress::new(args.quiet);
    let index = CartIndex::fit_observed(&config, corpus, &device, &mut |e| progress.observe(e))?;
    println!("index built in {:.1} s", t.elapsed().as_secs_f64());
    print!("{}", index.diagnostics());
    let history = index.history();
    if let Some(floor) = history.start_valid.first() {
        println!("validation R@1 before training (training-free floor): {:.4}", floor.recall);
    }
    if let Some(best) = history.epochs.iter().find(|e| e.epoch == history.best_epoch) {
        println!("best epoch: {best}");
    } else {
        println!("best epoch: {} (the starting model)", history.best_epoch);
    }
    println!("fused score lambda: {:?}", index.config().fuse_lambda);
    if let Some(dir) = &args.save {
        index.save(dir)?;
        let again = CartIndex::load(dir, &device)?;
        println!("saved to {dir} and loaded back ({} items)", again.len());
    }

    // Held-out queries in other languages: generator, fused, re-ranked, and the dense
    // baselines, searched as `cart eval` searches (in chunks, with a progress bar).
    let test = data.test_queries.view();
    let report = Evaluation::new(&data.test_items);
    println!(
        "\ntest: {} held-out queries in other languages (ar fi hi ja ko pl ru sv tr zh), top 10, \
         beam {}",
        data.test_items.len(),
        args.beam
    );
    let quiet = args.quiet;
    let searched = |options: SearchOptions| -> Result<(Vec<Vec<Hit>>, std::time::Duration)> {
        let t = Instant::now();
        let hits = progress::search(&index, test, options, "test", quiet)?;
        Ok((hits, t.elapsed()))
    };
    let fused_options = SearchOptions::new(10).with_mode(SearchMode::Fused);
    let reranked_options = SearchOptions::new(10).with_rerank(true);
    let (generated, took) = searched(SearchOptions::new(10))?;
    println!("{}", report.row("generator (CART)", &generated, took)?);
    let (fused, took) = searched(fused_options)?;
    println!("{}", report.row("fused: cos + lambda log p (50 cand.)", &fused, took)?);
    let (reranked, took) = searched(reranked_options)?;
    println!("{}", report.row("generator + re-rank (50 cand.)", &reranked, took)?);
    let zero_shot = DenseIndex::new(data.items_e5.view(), Metric::Cosine)?;
    let t = Instant::now();
    let exact: Vec<Vec<Hit>> = zero_shot.search(test, 10)?;
    println!("{}", report.row("exact dense, zero-shot (cosine)", &exact, t.elapsed())?);
    // The honest bar: each item's vector plus all its training queries (the same pairs the
    // generator trains on), normalised, then cosine.
    let centroids =
        cart::supervised_centroids(data.items_e5.view(), rows(&queries, d_query), &query_items)?;
    let supervised = DenseIndex::new(centroids.view(), Metric::Cosine)?;
    let t = Instant::now();
    let sup: Vec<Vec<Hit>> = supervised.search(test, 10)?;
    println!("{}", report.row("supervised dense (item + its queries)", &sup, t.elapsed())?);
    // Recalls a few queries apart decide nothing: how the queries on which two methods
    // disagree split, and the chance of a split that uneven between equals.
    for (name, hits, other, baseline) in [
        ("generator", &generated, "zero-shot dense", &exact),
        ("fused", &fused, "supervised dense", &sup),
    ] {
        let c = report.compare(hits, baseline, 1)?;
        println!(
            "R@1, {name} against {other}: {} queries only the {name} finds, {} only {other} \
             (sign test p = {:.2})",
            c.only_first, c.only_second, c.p_value
        );
    }

    if let Some(dir) = &args.plot {
        let dir = std::path::Path::new(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        plot::training_curves(index.history(), &dir.join("training.svg"))?;
        // Recall@k up to 50: the generated searches with 50 beams
        let wide = |o: SearchOptions| SearchOptions { k: 50, beam_width: Some(50), ..o };
        let mut curves = Vec::new();
        for (name, options) in [
            ("generator (CART)", SearchOptions::new(10)),
            ("fused: cos + lambda log p", fused_options),
            ("generator + re-rank", reranked_options),
        ] {
            let hits = progress::search(&index, test, wide(options), "plot", quiet)?;
            curves.push((name.to_owned(), report.recall_curve(&hits, 50)?));
        }
        curves.push((
            "exact dense, zero-shot".into(),
            report.recall_curve(&zero_shot.search(test, 50)?, 50)?,
        ));
        curves.push((
            "supervised dense".into(),
            report.recall_curve(&supervised.search(test, 50)?, 50)?,
        ));
        let title =
            format!("Recall@k, {} held-out emoji queries (generated: beam 50)", report.len());
        plot::recall_curves(&curves, &title, &dir.join("recall.svg"))?;
        println!("plots: {0}/training.svg, {0}/recall.svg", dir.display());
    }

    println!();
    show_examples(&data, &[("generator", &generated), ("dense", &exact)], 6);
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
