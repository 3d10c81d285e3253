//! The whole CART pipeline on the bundled emoji set: identifiers from the item vectors
//! (coarse K-Means + RQ-VAE from `cart-quant`) and their diagnostics, a generator trained on the
//! multilingual pseudo-queries, and R@1/5/10 + MRR@10 on held-out test queries in other
//! languages through the trie-constrained beam search, next to the exact dense baseline and the
//! generator's beams re-ranked by it, with queries per second and a few readable examples.
//!
//! ```sh
//! cargo run --release -p cart-examples --example generator -- [--no-fusion] [--no-rdrop]
//!     [--epochs 30] [--d-model 128] [--layers 2] [--batch 128] [--lr 1e-3] [--beam 10]
//!     [--coarse 64] [--levels 3] [--codes 32] [--seed 0] [--history FILE.csv]
//!     [--checkpoint FILE] [--quantizer c2f|rq] [--names] [--device cpu|wgpu]
//! ```
//!
//! `--names` adds each item's English name (e5) as one more pseudo-query per item.
//! This example wires the crates by hand; `quickstart` does the same through `cart::CartIndex`.
//!
//! 10% of the training pairs are held out for validation (best epoch by validation R@1); the
//! test queries are used once, at the end.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use cart_cli::Evaluation;
use cart_examples::{EmojiData, default_data_dir, rows, show_examples};
use cart_model::{GeneratorConfig, Pairs, TrainConfig};
use cart_quant::{
    CoarseToFineConfig, KMeansConfig, Quantizer, ResidualQuantizerConfig, RqVaeConfig,
    RqVaeTrainConfig,
};
use cart_search::{BeamSearchConfig, DenseIndex, Metric};
use ndarray::Array2;

struct Args {
    fusion: bool,
    rdrop: bool,
    epochs: usize,
    d_model: usize,
    layers: usize,
    batch: usize,
    lr: f64,
    beam: usize,
    coarse: usize,
    levels: usize,
    codes: usize,
    seed: u64,
    history: Option<String>,
    checkpoint: Option<String>,
    quantizer: String,
    names: bool,
    device: String,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        fusion: true,
        rdrop: true,
        epochs: 30,
        d_model: 128,
        layers: 2,
        batch: 128,
        lr: 1e-3,
        beam: 10,
        coarse: 64,
        levels: 3,
        codes: 32,
        seed: 0,
        history: None,
        checkpoint: None,
        quantizer: "c2f".into(),
        names: false,
        device: "cpu".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--no-fusion" => a.fusion = false,
            "--no-rdrop" => a.rdrop = false,
            "--epochs" => a.epochs = value()?.parse()?,
            "--d-model" => a.d_model = value()?.parse()?,
            "--layers" => a.layers = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--lr" => a.lr = value()?.parse()?,
            "--beam" => a.beam = value()?.parse()?,
            "--coarse" => a.coarse = value()?.parse()?,
            "--levels" => a.levels = value()?.parse()?,
            "--codes" => a.codes = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--history" => a.history = Some(value()?),
            "--checkpoint" => a.checkpoint = Some(value()?),
            "--quantizer" => a.quantizer = value()?,
            "--names" => a.names = true,
            "--device" => a.device = value()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse()?;
    let device: Device = cart_cli::device(&args.device)?;
    let data = EmojiData::load(default_data_dir())?;
    let (n, d_item) = (data.items.rows(), data.items.cols());
    let d_query = data.train_queries.cols();
    println!(
        "emoji: {n} items ({d_item}-d), {} training and {} test queries ({d_query}-d)",
        data.train_items.len(),
        data.test_items.len()
    );

    // 1. Identifiers [k, v1..vM, u] from the item vectors.
    let t = Instant::now();
    let items = Array2::from_shape_vec((n, d_item), data.items.data.clone())?;
    let codes = match args.quantizer.as_str() {
        "c2f" => {
            let config = CoarseToFineConfig::new(
                KMeansConfig::new(args.coarse).with_seed(args.seed),
                RqVaeConfig::new(d_item)
                    .with_n_levels(args.levels)
                    .with_codebook_size(args.codes)
                    .with_d_latent(32),
            )
            .with_train(
                RqVaeTrainConfig::new()
                    .with_n_epochs(100)
                    .with_batch_size(256)
                    .with_seed(args.seed),
            );
            config.fit(items.view(), &device)?.0.encode(items.view())?
        }
        "rq" => {
            let sizes = std::iter::once(args.coarse)
                .chain(std::iter::repeat_n(args.codes, args.levels))
                .collect();
            ResidualQuantizerConfig::new(sizes)
                .with_seed(args.seed)
                .fit(items.view(), &device)?
                .encode(items.view())?
        }
        other => bail!("--quantizer {other}: expected c2f or rq"),
    };
    let sizes = [args.coarse].into_iter().chain(std::iter::repeat_n(args.codes, args.levels));
    let ids = cart_ids::assign_codes(&sizes.collect::<Vec<_>>(), codes.view(), 1.0)?;
    let layout = *ids.layout();
    let trie = ids.to_trie()?;
    println!(
        "ids ({}): K={} M={} C={} U={} -> {} tokens, vocabulary {}; {:.1}% of items collide; {:.1} s",
        args.quantizer,
        args.coarse,
        args.levels,
        args.codes,
        layout.n_unique(),
        layout.id_len(),
        layout.vocab_size(),
        100.0 * ids.collision_rate(),
        t.elapsed().as_secs_f64()
    );
    print!("{}", trie.diagnostics());

    // 2. Train on 90% of the pseudo-queries, validate on the rest.
    let n_train = data.train_items.len();
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut s = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n_train).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        order.swap(i, (s % (i as u64 + 1)) as usize);
    }
    let n_valid = n_train / 10;
    let split = |rows: &[usize]| {
        let q: Vec<f32> = rows
            .iter()
            .flat_map(|&r| data.train_queries.data[r * d_query..(r + 1) * d_query].to_vec())
            .collect();
        let i: Vec<u32> = rows.iter().map(|&r| data.train_items[r]).collect();
        (q, i)
    };
    let (valid_q, valid_i) = split(&order[..n_valid]);
    let (mut train_q, mut train_i) = split(&order[n_valid..]);
    if args.names {
        train_q.extend_from_slice(&data.items_e5.data);
        train_i.extend(0..n as u32);
    }

    // the paper's generator: the transformer alone, without the dense head
    let config = GeneratorConfig::new()
        .with_dense_head(false)
        .with_d_model(args.d_model)
        .with_n_heads(4)
        .with_n_encoder_layers(args.layers)
        .with_n_decoder_layers(args.layers)
        .with_d_ff(4 * args.d_model)
        .with_fusion(args.fusion);
    let train = TrainConfig::new()
        .with_n_epochs(args.epochs)
        .with_batch_size(args.batch)
        .with_learning_rate(args.lr)
        .with_rdrop(args.rdrop)
        .with_seed(args.seed)
        .with_beam_width(args.beam)
        .with_checkpoint(args.checkpoint.clone());
    println!(
        "generator: d_model {} layers {}+{} fusion {} rdrop {}; {} train / {} validation pairs",
        args.d_model,
        args.layers,
        args.layers,
        args.fusion,
        args.rdrop,
        train_i.len(),
        valid_i.len()
    );
    let t = Instant::now();
    let (generator, history) = config.fit(
        Pairs::new(rows(&train_q, d_query), &train_i),
        Some(Pairs::new(rows(&valid_q, d_query), &valid_i)),
        &trie,
        &train,
        &device,
    )?;
    println!(
        "trained {} parameters in {:.1} s; best epoch {}",
        generator.n_params(),
        t.elapsed().as_secs_f64(),
        history.best_epoch
    );
    print!("{}", history.to_csv());
    if let Some(path) = &args.history {
        history.save(path)?;
        println!("history written to {path}");
    }

    // 3. Held-out test queries (other languages), constrained beam search.
    let search = BeamSearchConfig::default().with_beam_width(args.beam).with_top_k(10);
    let t = Instant::now();
    let ranked = generator.search(&trie, search, data.test_queries.view())?;
    let secs = t.elapsed();
    let report = Evaluation::new(&data.test_items);
    println!(
        "\ntest: {} held-out queries in other languages, top 10, beam {}",
        data.test_items.len(),
        args.beam
    );
    println!("{}", report.row("generator", &ranked, secs)?);

    // 4. The dense baseline a user would otherwise pick (e5 on both sides), and the generator's
    //    beams re-ranked by the same dense similarity.
    let dense = DenseIndex::new(data.items_e5.view(), Metric::Cosine)?;
    let t = Instant::now();
    let dense_ranked = dense.search(data.test_queries.view(), 10)?;
    println!("{}", report.row("exact dense (e5, cosine)", &dense_ranked, t.elapsed())?);
    let t = Instant::now();
    let reranked = dense.rerank(data.test_queries.view(), &ranked)?;
    println!("{}", report.row("generator + dense re-rank", &reranked, secs + t.elapsed())?);

    // 5. A few readable queries.
    println!();
    show_examples(&data, &[("generator", &ranked), ("dense", &dense_ranked)], 6);
    Ok(())
}
