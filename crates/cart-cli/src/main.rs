//! `cart`: generative cross-modal retrieval (CART) on the vectors in your `.npy` files.
//!
//! ```sh
//! cart fit --items items.npy --queries q.npy --query-items qi.npy --rerank items_q.npy --out idx
//! cart eval idx --queries test.npy --items test_items.npy
//! cart search idx --queries new.npy -k 10 --mode fused --out hits.npy
//! cart add idx --items more.npy --rerank more_q.npy
//! cart info idx
//! ```
//!
//! Progress goes to stderr (bars on a terminal, plain lines otherwise, nothing with
//! `--quiet`); results go to stdout or the files named. Every error is one line naming the
//! file and the problem, with exit status 1 (2 for a bad command line); nothing on disk is
//! changed by a command that fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use cart::model::TrainHistory;
use cart::search::{DenseIndex, Metric};
use cart::{
    CartIndex, Corpus, FineTune, Hit, IdVectors, IndexConfig, NewItems, SearchMode, SearchOptions,
};
use cart_cli::{Evaluation, FitProgress, Row, npy, plot, progress};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ndarray::Array2;

/// Largest k of the Recall@k plot of `cart eval --plot`.
const PLOT_MAX_K: usize = 50;

#[derive(Parser, Debug)]
#[command(
    name = "cart",
    version,
    about = "Generative cross-modal retrieval (CART) on the vectors in your .npy files",
    long_about = "Generative cross-modal retrieval (CART) on the vectors in your .npy files.\n\n\
        `cart fit` gives every item a short semantic identifier [k, v1..vM, u] (K-Means \
        cluster, residual codes, collision suffix) and trains a small seq2seq generator to \
        write identifiers from queries; `cart search` answers queries by beam search \
        constrained to the identifiers that exist. Vectors are float16/32/64 .npy matrices, \
        one row per vector (C order); item indices are integer .npy arrays.",
    after_help = "Run `cart <command> --help` for each command's flags and their defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Draw nothing on stderr: no progress bars, no log lines (errors still print).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Where to run: `cpu` (burn's flex backend) or `wgpu` (a GPU; needs a build with
    /// `--features wgpu`).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fit an index on item vectors and (query, item) training pairs, and save it.
    Fit(Box<FitArgs>),
    /// Answer queries with a saved index: item ids and scores as .npy or JSON lines.
    Search(SearchArgs),
    /// Measure a saved index on test queries against the dense baselines (the quickstart's
    /// table).
    Eval(EvalArgs),
    /// Append items to a saved index (optionally with a short training run), in place.
    Add(AddArgs),
    /// Describe a saved index: sizes, identifiers, config and training history.
    Info(InfoArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum QuantizerKind {
    /// CART's quantizer: K-Means for k, an RQ-VAE on the residual for v1..vM.
    C2f,
    /// Residual K-Means at every level (no neural network; faster).
    Rq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IdsFrom {
    /// The item vectors as given (--items).
    Items,
    /// Relevance-aware: each item's vector pulled toward its training queries (needs
    /// --items in the query space).
    Supervised,
}

#[derive(Args, Debug)]
struct FitArgs {
    /// Item vectors, [n_items, d_item]: the quantizer turns them into identifiers.
    #[arg(long, value_name = "NPY", required_unless_present = "resume")]
    items: Option<PathBuf>,
    /// Training query vectors, [n_queries, d_query] (captions, pseudo-queries, ...).
    #[arg(long, value_name = "NPY")]
    queries: PathBuf,
    /// The item each training query should retrieve: n_queries integers in 0..n_items.
    #[arg(long, value_name = "NPY")]
    query_items: PathBuf,
    /// Item vectors in the query space, [n_items, d_query] (for CLIP-style models the item
    /// vectors themselves): enables the re-ranked and fused searches and the dense head's
    /// tables.
    #[arg(long, value_name = "NPY")]
    rerank: Option<PathBuf>,
    /// Directory to save the index to (created; an existing index there needs --force).
    /// With --resume it defaults to the resumed directory.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue training the index saved in DIR for --epochs more epochs, on the pairs it
    /// was fitted on (give the same --queries and --query-items: the validation split is
    /// drawn again with the index's seed). The best epoch is kept; the history runs on.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Replace an index already saved at --out.
    #[arg(long)]
    force: bool,
    /// Start from this index config (JSON, as `cart info DIR --json` prints under "config");
    /// the flags below override it where given.
    #[arg(long, value_name = "JSON")]
    config: Option<PathBuf>,
    /// Quantizer [default: c2f, or the --config file's].
    #[arg(long, value_enum)]
    quantizer: Option<QuantizerKind>,
    /// Identifier shape KxMxC: K coarse clusters, M residual levels of C codes each
    /// [default: 64x3x32, or the --config file's].
    #[arg(long, value_name = "KxMxC", value_parser = parse_shape)]
    shape: Option<(usize, usize, usize)>,
    /// Which vectors build the identifiers [default: items].
    #[arg(long, value_enum)]
    ids_from: Option<IdsFrom>,
    /// Generator training epochs (with --resume: epochs more) [default: 4].
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate [default: 1e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// Training pairs per step [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Share of the pairs held out to pick the best epoch and the fused score's lambda
    /// [default: 0.1].
    #[arg(long)]
    valid_fraction: Option<f64>,
    /// Beam width of the plain generated search [default: 10].
    #[arg(long)]
    beam: Option<usize>,
    /// Candidates of the re-ranked and fused searches [default: 50].
    #[arg(long)]
    candidates: Option<usize>,
    /// Item-as-query pairs per epoch, as a share of the items; 0 turns them off
    /// [default: 1.0].
    #[arg(long)]
    item_queries: Option<f64>,
    /// Share of the queries replaced by query-target interpolations each epoch; 0 turns it
    /// off [default: 0.5].
    #[arg(long)]
    interpolation: Option<f64>,
    /// Weight of the prefix-level ranking loss against negatives mined from the model's own
    /// beams each epoch; 0 turns it off [default: 0.1].
    #[arg(long)]
    rank_weight: Option<f64>,
    /// Negatives per training query for the ranking loss [default: 1].
    #[arg(long)]
    rank_negatives: Option<usize>,
    /// Share of the training queries given negatives each epoch [default: 1.0].
    #[arg(long)]
    rank_rows: Option<f64>,
    /// Add the R-Drop term (doubles the cost of a step; worth it on a GPU) [default: off].
    #[arg(long)]
    rdrop: bool,
    /// The dense head's tables: the items' supervised centroids (re-rank vector plus its
    /// training queries), their raw re-rank vectors, or auto: the one whose training-free
    /// generator retrieves better on the validation split [default: supervised].
    #[arg(long, value_enum)]
    targets: Option<Choice>,
    /// The vectors the re-ranked and fused searches score against (auto: picked with lambda
    /// on the validation split) [default: supervised].
    #[arg(long, value_enum)]
    rerank_vectors: Option<Choice>,
    /// Store supervised re-rank centroids fitted on the training split alone (by default they
    /// are refitted on every pair once validation has picked them and lambda).
    #[arg(long)]
    rerank_held_out: bool,
    /// Add ln(items below) to every trie node's dense-head score (the subtree prior): on,
    /// off, or auto: whichever training-free generator retrieves better on the validation
    /// split [default: auto].
    #[arg(long, value_enum)]
    subtree_prior: Option<Toggle>,
    /// One seed for the split, the quantizer and the training [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Write the training curves (loss, validation recall per epoch) to DIR/training.svg.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Image format of --plot (png needs a build with --features png).
    #[arg(long, value_enum, default_value = "svg")]
    plot_format: PlotFormat,
}

/// A choice made on the validation split unless given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Choice {
    /// Picked on the validation split during the fit.
    Auto,
    /// The items' supervised centroids.
    Supervised,
    /// The raw re-rank vectors.
    Raw,
}

impl Choice {
    fn supervised(self) -> Option<bool> {
        match self {
            Choice::Auto => None,
            Choice::Supervised => Some(true),
            Choice::Raw => Some(false),
        }
    }
}

/// On, off, or picked on the validation split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Toggle {
    /// Picked on the validation split during the fit.
    Auto,
    /// On.
    On,
    /// Off.
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PlotFormat {
    Svg,
    Png,
}

impl PlotFormat {
    fn file(self, dir: &Path, stem: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("{}: cannot create the plot directory: {e}", dir.display())
        })?;
        let ext = match self {
            PlotFormat::Svg => "svg",
            PlotFormat::Png => "png",
        };
        Ok(dir.join(format!("{stem}.{ext}")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The generator alone: identifiers by constrained beam search, scored by log p.
    Generated,
    /// The generator's candidates re-scored by cosine to the index's re-rank vectors.
    Reranked,
    /// The candidates re-scored by cos(q, item) + lambda * log p(id | q).
    Fused,
}

impl From<Mode> for SearchMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Generated => SearchMode::Generated,
            Mode::Reranked => SearchMode::Reranked,
            Mode::Fused => SearchMode::Fused,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Two .npy files: ids (int64, -1 pads) at --out and scores (float32) beside it.
    Npy,
    /// One JSON object per query: {"query", "items", "scores"}.
    Jsonl,
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// The index directory (from `cart fit`).
    index: PathBuf,
    /// Query vectors, [n_queries, d_query].
    #[arg(long, value_name = "NPY")]
    queries: PathBuf,
    /// Items per query.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// How candidates are ranked.
    #[arg(long, value_enum, default_value = "generated")]
    mode: Mode,
    /// Beam width [default: the index's: 10 generated, 50 for the other modes].
    #[arg(long)]
    beam: Option<usize>,
    /// lambda of the fused score [default: the index's, picked on validation at fit].
    #[arg(long)]
    lambda: Option<f64>,
    /// Output file; without it JSON lines go to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Output format [default: npy when --out ends in .npy, else jsonl].
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// The index directory (from `cart fit`).
    index: PathBuf,
    /// Test query vectors, [n_queries, d_query].
    #[arg(long, value_name = "NPY")]
    queries: PathBuf,
    /// The relevant item of each test query: n_queries integers.
    #[arg(long, value_name = "NPY")]
    items: PathBuf,
    /// Item vectors in the query space, as given to `cart fit --rerank`: adds the zero-shot
    /// dense row (and, with --train-queries/--train-items, supervised dense).
    #[arg(long, value_name = "NPY")]
    rerank: Option<PathBuf>,
    /// The training queries given to `cart fit`: with --rerank, adds the supervised dense row
    /// (each item's vector plus its training queries, normalised, then cosine), the bar a
    /// learned retriever should beat.
    #[arg(long, value_name = "NPY", requires = "train_items")]
    train_queries: Option<PathBuf>,
    /// The training queries' items given to `cart fit`.
    #[arg(long, value_name = "NPY", requires = "train_queries")]
    train_items: Option<PathBuf>,
    /// Print the table as JSON (for scripts).
    #[arg(long)]
    json: bool,
    /// Write Recall@k for k = 1..50 of every method to DIR/recall.svg.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Image format of --plot.
    #[arg(long, value_enum, default_value = "svg")]
    plot_format: PlotFormat,
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The index directory: updated in place (atomically).
    index: PathBuf,
    /// The new items' vectors, [n_new, d_item].
    #[arg(long, value_name = "NPY")]
    items: PathBuf,
    /// Their vectors in the query space (required when the index has re-rank vectors).
    #[arg(long, value_name = "NPY")]
    rerank: Option<PathBuf>,
    /// Queries for a short training run after the insert (cover the new items and, to keep
    /// what the generator knows, a sample of the old ones).
    #[arg(long, value_name = "NPY", requires = "fine_tune_items")]
    fine_tune_queries: Option<PathBuf>,
    /// Their items: old keys, or new ones (numbered on from the index's last item).
    #[arg(long, value_name = "NPY", requires = "fine_tune_queries")]
    fine_tune_items: Option<PathBuf>,
    /// Epochs of the fine-tuning run.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// The index directory.
    index: PathBuf,
    /// Print everything as JSON (the config included).
    #[arg(long)]
    json: bool,
}

fn parse_shape(v: &str) -> Result<(usize, usize, usize), String> {
    let parts: Vec<usize> = v
        .split('x')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{v}: expected KxMxC, e.g. 64x3x32"))?;
    match parts[..] {
        [k, m, c] if k > 0 && m > 0 && c > 0 => Ok((k, m, c)),
        _ => Err(format!("{v}: expected KxMxC with three positive sizes, e.g. 64x3x32")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line: the file and the problem (anyhow's `{:#}` joins the causes)
            eprintln!("cart: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = cart_cli::device(&cli.device)?;
    match cli.command {
        Command::Fit(a) => fit(*a, cli.quiet, &device),
        Command::Search(a) => search(a, cli.quiet, &device),
        Command::Eval(a) => eval(a, cli.quiet, &device),
        Command::Add(a) => add(a, cli.quiet, &device),
        Command::Info(a) => info(a, &device),
    }
}

/// Loads an index, naming the directory in every error.
fn load(dir: &Path, device: &Device) -> Result<CartIndex> {
    if !dir.exists() {
        bail!("{}: no such index directory", dir.display());
    }
    if !dir.is_dir() {
        bail!("{}: not a directory (an index is a directory from `cart fit`)", dir.display());
    }
    if !dir.join("index.json").exists() {
        bail!("{}: not a cart index (no index.json; make one with `cart fit`)", dir.display());
    }
    CartIndex::load(dir, device).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}

/// Refuses, before any work, an output directory that a save would refuse or that holds an
/// index the user did not ask to replace.
fn check_out(out: &Path, force: bool, resumed: Option<&Path>) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("{}: exists and is not a directory", out.display());
    }
    let is_index = out.join("index.json").exists();
    let empty = std::fs::read_dir(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot be read: {e}", out.display()))?
        .next()
        .is_none();
    let same =
        resumed.is_some_and(|r| std::fs::canonicalize(r).ok() == std::fs::canonicalize(out).ok());
    match (empty, is_index, force || same) {
        (true, _, _) | (false, true, true) => Ok(()),
        (false, true, false) => {
            bail!("{}: already holds a cart index; pass --force to replace it", out.display())
        }
        (false, false, _) => bail!(
            "{}: exists, is not empty and is not a cart index; refusing to write there",
            out.display()
        ),
    }
}

fn query_width(index: &CartIndex, path: &Path, q: &Array2<f32>) -> Result<()> {
    if q.ncols() != index.query_dim() {
        bail!(
            "{}: {}-wide vectors, but the index takes {}-wide queries",
            path.display(),
            q.ncols(),
            index.query_dim()
        );
    }
    Ok(())
}

/// A `--config` file: an `IndexConfig` as JSON. Fields the file lacks (one written by an older
/// version, or by hand) take their defaults; the quantizer must be given.
fn read_config(path: &Path, defaults: &IndexConfig) -> Result<IndexConfig> {
    let bad = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{}: not an index config ({e})", path.display())
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let mut file: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    fill_missing(&mut file, &serde_json::to_value(defaults)?);
    serde_json::from_value(file).map_err(|e| bad(&e))
}

/// Copies into `into` every object key of `from` it lacks, recursively; the quantizer is the
/// file's own (its variant decides its fields).
fn fill_missing(into: &mut serde_json::Value, from: &serde_json::Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else { return };
    for (key, value) in from {
        match into.get_mut(key) {
            None if key != "quantizer" => {
                into.insert(key.clone(), value.clone());
            }
            Some(own) if key != "quantizer" => fill_missing(own, value),
            _ => {}
        }
    }
}

fn config_from(a: &FitArgs, d_item: usize) -> Result<IndexConfig> {
    let defaults = IndexConfig::coarse_to_fine(d_item, 64, 3, 32);
    let mut config = match &a.config {
        Some(path) => read_config(path, &defaults)?,
        None => defaults,
    };
    if a.quantizer.is_some() || a.shape.is_some() {
        let (k, m, c) = a.shape.unwrap_or((64, 3, 32));
        let fresh = match a.quantizer.unwrap_or(QuantizerKind::C2f) {
            QuantizerKind::C2f => IndexConfig::coarse_to_fine(d_item, k, m, c),
            QuantizerKind::Rq => IndexConfig::residual(k, m, c),
        };
        config.quantizer = fresh.quantizer;
    }
    if a.config.is_none() || a.seed.is_some() {
        config = config.with_seed_everywhere(a.seed.unwrap_or(0));
    }
    if let Some(v) = a.ids_from {
        config.id_vectors = match v {
            IdsFrom::Items => IdVectors::Items,
            IdsFrom::Supervised => IdVectors::Supervised,
        };
    }
    let t = &mut config.train;
    if let Some(v) = a.epochs {
        t.n_epochs = v;
    }
    if let Some(v) = a.lr {
        t.learning_rate = v;
    }
    if let Some(v) = a.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = a.item_queries {
        t.item_queries = v;
    }
    if let Some(v) = a.interpolation {
        t.interpolation = v;
    }
    if let Some(v) = a.rank_weight {
        t.rank_weight = v;
    }
    if let Some(v) = a.rank_negatives {
        t.rank_negatives = v;
    }
    if let Some(v) = a.rank_rows {
        t.rank_rows = v;
    }
    if a.rdrop {
        t.rdrop = true;
    }
    if let Some(v) = a.valid_fraction {
        config.validation_fraction = v;
    }
    if let Some(v) = a.beam {
        config.beam_width = v;
    }
    if let Some(v) = a.candidates {
        config.fuse_candidates = v;
    }
    if let Some(v) = a.targets {
        config.supervised_targets = v.supervised();
    }
    if let Some(v) = a.rerank_vectors {
        config.rerank_supervised = v.supervised();
    }
    if a.rerank_held_out {
        config.rerank_all_pairs = false;
    }
    if let Some(v) = a.subtree_prior {
        config.subtree_prior = match v {
            Toggle::Auto => None,
            Toggle::On => Some(true),
            Toggle::Off => Some(false),
        };
    }
    Ok(config)
}

fn fit(a: FitArgs, quiet: bool, device: &Device) -> Result<()> {
    let started = Instant::now();
    let out = a.out.clone().or_else(|| a.resume.clone()).context("--out DIR is required")?;
    check_out(&out, a.force, a.resume.as_deref())?;
    let queries = npy::read_matrix(&a.queries)?;
    let query_items = npy::read_indices(&a.query_items)?;
    let mut progress = FitProgress::new(quiet);

    let index = match &a.resume {
        Some(dir) => {
            let mut index = load(dir, device)?;
            query_width(&index, &a.queries, &queries)?;
            npy::check_pairs(
                &a.queries,
                queries.nrows(),
                &a.query_items,
                &query_items,
                dir,
                index.len(),
            )?;
            let epochs = a.epochs.unwrap_or(index.config().train.n_epochs);
            index
                .resume_observed(queries.view(), &query_items, epochs, &mut |e| progress.observe(e))
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            index
        }
        None => {
            let items_path = a.items.as_deref().context("--items is required")?;
            let items = npy::read_matrix(items_path)?;
            npy::check_pairs(
                &a.queries,
                queries.nrows(),
                &a.query_items,
                &query_items,
                items_path,
                items.nrows(),
            )?;
            let rerank = a.rerank.as_deref().map(npy::read_matrix).transpose()?;
            if let (Some(r), Some(path)) = (&rerank, &a.rerank) {
                if r.nrows() != items.nrows() {
                    bail!(
                        "{}: {} rows, but {} has {} items (one re-rank vector per item)",
                        path.display(),
                        r.nrows(),
                        items_path.display(),
                        items.nrows()
                    );
                }
                if r.ncols() != queries.ncols() {
                    bail!(
                        "{}: {}-wide, but the queries in {} are {}-wide (re-rank vectors live \
                         in the query space)",
                        path.display(),
                        r.ncols(),
                        a.queries.display(),
                        queries.ncols()
                    );
                }
            }
            let config = config_from(&a, items.ncols())?;
            let mut corpus = Corpus::new(items.view(), queries.view(), &query_items);
            if let Some(r) = &rerank {
                corpus = corpus.with_rerank(r.view());
            }
            CartIndex::fit_observed(&config, corpus, device, &mut |e| progress.observe(e))?
        }
    };
    index.save(&out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "saved {} items to {} in {:.1} s",
        index.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    )?;
    write!(stdout, "{}", index.diagnostics())?;
    summary(&mut stdout, &index)?;
    if let Some(dir) = &a.plot {
        let path = a.plot_format.file(dir, "training")?;
        plot::training_curves(index.history(), &path)?;
        writeln!(stdout, "training curves: {}", path.display())?;
    }
    Ok(())
}

/// The training history in a few lines: floor, best epoch, lambda.
fn summary(out: &mut impl Write, index: &CartIndex) -> Result<()> {
    let history: &TrainHistory = index.history();
    if let Some(floor) = history.start_valid.first() {
        writeln!(
            out,
            "validation R@{} before training (training-free floor): {:.4}",
            floor.k, floor.recall
        )?;
    }
    match history.epochs.iter().find(|e| e.epoch == history.best_epoch) {
        Some(best) => writeln!(out, "best epoch: {best}")?,
        None => writeln!(out, "best epoch: {} (the starting model)", history.best_epoch)?,
    }
    if let Some(l) = index.config().fuse_lambda {
        writeln!(out, "fused score lambda: {l}")?;
    }
    Ok(())
}

fn run_search(
    index: &CartIndex,
    queries: &Array2<f32>,
    options: SearchOptions,
    label: &str,
    quiet: bool,
) -> Result<Vec<Vec<Hit>>> {
    Ok(progress::search(index, queries.view(), options, label, quiet)?)
}

fn search(a: SearchArgs, quiet: bool, device: &Device) -> Result<()> {
    let format = match (a.format, &a.out) {
        (Some(f), _) => f,
        (None, Some(p)) if p.extension().is_some_and(|e| e == "npy") => Format::Npy,
        _ => Format::Jsonl,
    };
    if format == Format::Npy && a.out.is_none() {
        bail!("--format npy writes files: give --out hits.npy (or use --format jsonl for stdout)");
    }
    if a.k == 0 {
        bail!("-k 0: ask for at least one item per query");
    }
    let index = load(&a.index, device)?;
    let queries = npy::read_matrix(&a.queries)?;
    query_width(&index, &a.queries, &queries)?;
    if a.mode != Mode::Generated && index.dense().is_none() {
        bail!(
            "{}: --mode {:?} needs re-rank vectors, and the index was fitted without --rerank",
            a.index.display(),
            a.mode
        );
    }
    let mut options = SearchOptions::new(a.k).with_mode(a.mode.into());
    if let Some(b) = a.beam {
        options = options.with_beam_width(b);
    }
    if let Some(l) = a.lambda {
        options = options.with_lambda(l);
    }
    let hits = run_search(&index, &queries, options, "search", quiet)?;
    match (format, &a.out) {
        (Format::Npy, Some(path)) => {
            let scores = npy::write_hits(path, &hits, a.k)?;
            if !quiet {
                eprintln!("wrote {} (ids) and {} (scores)", path.display(), scores.display());
            }
        }
        (Format::Jsonl, Some(path)) => {
            cart::ids::write_atomic(path, jsonl(&hits).as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: cannot be written: {e}", path.display()))?;
        }
        (_, None) => std::io::stdout().lock().write_all(jsonl(&hits).as_bytes())?,
    }
    Ok(())
}

fn jsonl(hits: &[Vec<Hit>]) -> String {
    let mut out = String::new();
    for (q, row) in hits.iter().enumerate() {
        let line = serde_json::json!({
            "query": q,
            "items": row.iter().map(|h| h.item).collect::<Vec<_>>(),
            "scores": row.iter().map(|h| h.score).collect::<Vec<_>>(),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// One method of `cart eval`: its row, and its top-50 lists when plotting.
struct Measured {
    row: Row,
    curve: Option<Vec<f64>>,
    hits: Vec<Vec<Hit>>,
}

fn eval(a: EvalArgs, quiet: bool, device: &Device) -> Result<()> {
    let index = load(&a.index, device)?;
    let queries = npy::read_matrix(&a.queries)?;
    query_width(&index, &a.queries, &queries)?;
    let items = npy::read_indices(&a.items)?;
    npy::check_pairs(&a.queries, queries.nrows(), &a.items, &items, &a.index, index.len())?;
    let rerank = a.rerank.as_deref().map(npy::read_matrix).transpose()?;
    if let (Some(r), Some(path)) = (&rerank, &a.rerank)
        && (r.nrows() != index.len() || r.ncols() != index.query_dim())
    {
        bail!(
            "{}: shape [{}, {}], but the index holds {} items with {}-wide queries",
            path.display(),
            r.nrows(),
            r.ncols(),
            index.len(),
            index.query_dim()
        );
    }
    let train = match (&a.train_queries, &a.train_items) {
        (Some(q), Some(i)) => {
            let tq = npy::read_matrix(q)?;
            let ti = npy::read_indices(i)?;
            query_width(&index, q, &tq)?;
            npy::check_pairs(q, tq.nrows(), i, &ti, &a.index, index.len())?;
            Some((tq, ti))
        }
        _ => None,
    };
    let report = Evaluation::new(&items);
    let plotting = a.plot.is_some();
    let k = 10;
    let mut rows: Vec<Measured> = Vec::new();
    let candidates = index.config().fuse_candidates;

    let measure_index = |name: String, options: SearchOptions| -> Result<Measured> {
        let t = Instant::now();
        let hits = run_search(&index, &queries, options, "eval", quiet)?;
        let row = report.row(&name, &hits, t.elapsed())?;
        let curve = match plotting {
            false => None,
            true => {
                let wide = options.with_beam_width(options.beam_width.unwrap_or(0).max(PLOT_MAX_K));
                let wide = SearchOptions { k: PLOT_MAX_K, ..wide };
                let hits = run_search(&index, &queries, wide, "plot", quiet)?;
                Some(report.recall_curve(&hits, PLOT_MAX_K)?)
            }
        };
        Ok(Measured { row, curve, hits })
    };
    // where the rows that the sign tests below compare sit in `rows`
    let generator = rows.len();
    rows.push(measure_index("generator (CART)".into(), SearchOptions::new(k))?);
    let mut fused_at = None;
    if index.dense().is_some() {
        let fused = SearchOptions::new(k).with_mode(SearchMode::Fused);
        fused_at = Some(rows.len());
        rows.push(measure_index(format!("fused: cos + lambda log p ({candidates} cand.)"), fused)?);
        let reranked = SearchOptions::new(k).with_mode(SearchMode::Reranked);
        rows.push(measure_index(format!("generator + re-rank ({candidates} cand.)"), reranked)?);
    }
    let dense_row = |name: &str, dense: &DenseIndex| -> Result<Measured> {
        let t = Instant::now();
        let hits = dense.search(queries.view(), k)?;
        let row = report.row(name, &hits, t.elapsed())?;
        let curve = match plotting {
            false => None,
            true => {
                Some(report.recall_curve(&dense.search(queries.view(), PLOT_MAX_K)?, PLOT_MAX_K)?)
            }
        };
        Ok(Measured { row, curve, hits })
    };
    if let Some(d) = index.dense() {
        let name = match index.config().rerank_supervised {
            Some(false) => "exact dense, the index's vectors",
            _ => "exact dense, the index's centroids",
        };
        rows.push(dense_row(name, d)?);
    }
    let (mut zero_shot_at, mut supervised_at) = (None, None);
    if let Some(r) = &rerank {
        let zero_shot = DenseIndex::new(r.view(), Metric::Cosine)?;
        zero_shot_at = Some(rows.len());
        rows.push(dense_row("exact dense, zero-shot (cosine)", &zero_shot)?);
        if let Some((tq, ti)) = &train {
            let c = cart::supervised_centroids(r.view(), tq.view(), ti)?;
            let supervised = DenseIndex::new(c.view(), Metric::Cosine)?;
            supervised_at = Some(rows.len());
            rows.push(dense_row("supervised dense (item + its queries)", &supervised)?);
        }
    }

    // Recalls a few queries apart decide nothing: at rank 1, how the queries on which the
    // generated searches and the dense baselines disagree split, with the sign test's p-value.
    let mut comparisons = Vec::new();
    for pair in
        [(Some(generator), zero_shot_at), (fused_at, supervised_at), (fused_at, zero_shot_at)]
    {
        if let (Some(f), Some(s)) = pair {
            let (f, s) = (&rows[f], &rows[s]);
            let c = report.compare(&f.hits, &s.hits, 1)?;
            comparisons.push((f.row.method.clone(), s.row.method.clone(), c));
        }
    }

    let history = index.history();
    let best = history.epochs.iter().find(|e| e.epoch == history.best_epoch);
    if a.json {
        let json = serde_json::json!({
            "index": a.index,
            "n_queries": report.len(),
            "k": k,
            "beam_width": index.config().beam_width,
            "fuse_candidates": candidates,
            "fuse_lambda": index.config().fuse_lambda,
            "validation": {
                "floor": history.start_valid,
                "best_epoch": history.best_epoch,
                "best": best.map(|b| &b.valid),
            },
            "rows": rows.iter().map(|m| &m.row).collect::<Vec<_>>(),
            "comparisons": comparisons
                .iter()
                .map(|(first, second, c)| serde_json::json!({
                    "first": first,
                    "second": second,
                    "comparison": c,
                }))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "{} queries, top {k}; generator beam {}, re-ranked and fused over {candidates} candidates",
            report.len(),
            index.config().beam_width
        )?;
        for m in &rows {
            writeln!(stdout, "{}", m.row)?;
        }
        for (first, second, c) in &comparisons {
            writeln!(stdout, "sign test, {first} vs {second}, {c}")?;
        }
        if let Some(floor) = history.start_valid.first() {
            writeln!(
                stdout,
                "validation R@1: {:.4} before training, {} at the kept epoch {}",
                floor.recall,
                best.and_then(|b| b.valid.first())
                    .map_or("-".into(), |m| format!("{:.4}", m.recall)),
                history.best_epoch
            )?;
        }
        if rerank.is_none() {
            writeln!(
                stdout,
                "(--rerank adds zero-shot dense; with --train-queries/--train-items, supervised dense)"
            )?;
        }
    }
    if let Some(dir) = &a.plot {
        let path = a.plot_format.file(dir, "recall")?;
        let curves: Vec<(String, Vec<f64>)> = rows
            .iter()
            .filter_map(|m| m.curve.clone().map(|c| (m.row.method.clone(), c)))
            .collect();
        let title = format!(
            "Recall@k on {} queries (generated searches: beam >= {PLOT_MAX_K})",
            report.len()
        );
        plot::recall_curves(&curves, &title, &path)?;
        if !a.json {
            println!("recall curves: {}", path.display());
        }
    }
    Ok(())
}

fn add(a: AddArgs, quiet: bool, device: &Device) -> Result<()> {
    let mut index = load(&a.index, device)?;
    let items = npy::read_matrix(&a.items)?;
    if items.ncols() != index.item_dim() {
        bail!(
            "{}: {}-wide vectors, but the index's items are {}-wide",
            a.items.display(),
            items.ncols(),
            index.item_dim()
        );
    }
    let rerank = a.rerank.as_deref().map(npy::read_matrix).transpose()?;
    match (&rerank, &a.rerank, index.dense().is_some()) {
        (None, _, true) => bail!(
            "{}: the index re-ranks; give the new items' query-space vectors with --rerank",
            a.index.display()
        ),
        (Some(_), Some(p), false) => {
            bail!("{}: the index was fitted without re-rank vectors; drop --rerank", p.display())
        }
        (Some(r), Some(p), true)
            if r.nrows() != items.nrows() || r.ncols() != index.query_dim() =>
        {
            bail!(
                "{}: shape [{}, {}], but {} has {} new items and queries are {}-wide",
                p.display(),
                r.nrows(),
                r.ncols(),
                a.items.display(),
                items.nrows(),
                index.query_dim()
            )
        }
        _ => {}
    }
    let fine_tune = match (&a.fine_tune_queries, &a.fine_tune_items) {
        (Some(q), Some(i)) => {
            let fq = npy::read_matrix(q)?;
            let fi = npy::read_indices(i)?;
            query_width(&index, q, &fq)?;
            let total = index.len() + items.nrows();
            npy::check_len(q, fq.nrows(), i, fi.len())?;
            // the range check names the old and the new items, which check_pairs cannot
            if let Some((at, &item)) = fi.iter().enumerate().find(|(_, x)| **x as usize >= total) {
                bail!(
                    "{}: entry {at} is item {item}, but the index will hold {total} items \
                     ({} old, {} new)",
                    i.display(),
                    index.len(),
                    items.nrows()
                );
            }
            Some((fq, fi))
        }
        _ => None,
    };
    let mut new = NewItems::new(items.view());
    if let Some(r) = &rerank {
        new = new.with_rerank(r.view());
    }
    if let Some((fq, fi)) = &fine_tune {
        let train = index.config().train.clone().with_n_epochs(a.epochs);
        new = new.with_fine_tune(FineTune::new(fq.view(), fi).with_train(train));
    }
    if !quiet && fine_tune.is_some() {
        eprintln!("adding {} items, then fine-tuning for {} epochs", items.nrows(), a.epochs);
    }
    let keys = index.add_items(new).map_err(|e| anyhow::anyhow!("{}: {e}", a.index.display()))?;
    index.save(&a.index).map_err(|e| anyhow::anyhow!("{}: {e}", a.index.display()))?;
    println!(
        "added items {}..{} ({} in all) to {}",
        keys.start,
        keys.end,
        index.len(),
        a.index.display()
    );
    Ok(())
}

fn info(a: InfoArgs, device: &Device) -> Result<()> {
    let index = load(&a.index, device)?;
    let layout = index.layout();
    let diagnostics = index.diagnostics();
    let history = index.history();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&a.index)
        .map_err(|e| anyhow::anyhow!("{}: cannot be read: {e}", a.index.display()))?
    {
        let entry = entry?;
        files.push((entry.file_name().to_string_lossy().into_owned(), entry.metadata()?.len()));
    }
    files.sort();
    let sizes: Vec<usize> =
        (0..layout.id_len()).map(|p| layout.position_size(p) as usize).collect();
    if a.json {
        let json = serde_json::json!({
            "index": a.index,
            "n_items": index.len(),
            "item_dim": index.item_dim(),
            "query_dim": index.query_dim(),
            "quantizer": index.quantizer().kind(),
            "id_len": layout.id_len(),
            "vocab_size": layout.vocab_size(),
            "position_sizes": sizes,
            "collision_rate": diagnostics.collision_rate,
            "largest_group": diagnostics.largest_group,
            "distinct_codes": diagnostics.n_code_tuples,
            "trie_bytes": diagnostics.memory_bytes,
            "generator_params": index.generator().n_params(),
            "rerank": index.dense().is_some(),
            "files": files.iter().map(|(n, b)| serde_json::json!({"name": n, "bytes": b})).collect::<Vec<_>>(),
            "history": history,
            "config": index.config(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "index        {}", a.index.display())?;
    writeln!(
        out,
        "items        {} ({}-wide item vectors, {}-wide queries)",
        index.len(),
        index.item_dim(),
        index.query_dim()
    )?;
    writeln!(out, "quantizer    {}", index.quantizer().kind())?;
    writeln!(
        out,
        "identifiers  {} tokens [k, v1..v{}, u], sizes {:?}, vocabulary {}",
        layout.id_len(),
        layout.n_levels(),
        sizes,
        layout.vocab_size()
    )?;
    writeln!(
        out,
        "generator    {} parameters; re-rank vectors: {}",
        index.generator().n_params(),
        if index.dense().is_some() { "yes" } else { "no" }
    )?;
    let c = index.config();
    writeln!(
        out,
        "search       beam {}, {} candidates re-ranked/fused, lambda {}",
        c.beam_width,
        c.fuse_candidates,
        c.fuse_lambda.map_or("-".into(), |l| l.to_string())
    )?;
    writeln!(out, "\n{diagnostics}")?;
    writeln!(out, "training     {} epochs", history.epochs.len())?;
    for e in &history.epochs {
        writeln!(out, "  {e}")?;
    }
    summary(&mut out, &index)?;
    writeln!(out, "\nfiles")?;
    for (name, bytes) in &files {
        writeln!(out, "  {name:<16} {bytes:>12} bytes")?;
    }
    writeln!(out, "(`cart info {} --json` prints the full config)", a.index.display())?;
    Ok(())
}
