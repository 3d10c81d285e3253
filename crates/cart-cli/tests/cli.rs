#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! End to end: the built `cart` binary on a small generated set (fit -> info -> search ->
//! eval -> add -> resume), its outputs and exit codes, and one clear line for every bad input,
//! with nothing on disk damaged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::config::Config;
use cart::IndexConfig;
use cart::search::{DenseIndex, Metric};
use cart::synthetic::SyntheticConfig;
use cart_cli::npy;
use npyz::WriterBuilder;

const D: usize = 16;

/// A scratch directory, removed when the test that made it passes (kept after a failure, to
/// look at).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("cart-cli-e2e-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn cart(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cart"))
        .current_dir(dir)
        .arg("--quiet")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Exit status 1 and exactly one stderr line, which holds every `needle`.
fn fails(o: Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{err}");
    assert!(lines[0].starts_with("cart: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {err:?}");
    }
}

/// A small index config: residual K-Means ids, a tiny generator, two epochs.
fn tiny_config(dir: &Path) -> PathBuf {
    let mut c = IndexConfig::residual(8, 2, 6).with_seed_everywhere(3);
    c.train = c.train.with_n_epochs(2).with_batch_size(64).with_learning_rate(3e-3);
    c.generator = c
        .generator
        .with_d_model(32)
        .with_n_heads(2)
        .with_n_encoder_layers(1)
        .with_n_decoder_layers(1)
        .with_d_ff(64)
        .with_n_memory(2);
    c.validation_fraction = 0.2;
    c.beam_width = 8;
    c.fuse_candidates = 12;
    let path = dir.join("config.json");
    c.save(&path).unwrap();
    path
}

struct Files {
    dir: Scratch,
    n_items: usize,
    n_test: usize,
    test_items: Vec<u32>,
}

fn files(name: &str) -> Files {
    let dir = scratch(name);
    let mut c = SyntheticConfig::new(150).with_dims(D, D).with_seed(5);
    c.n_clusters = 8;
    let d = c.generate().unwrap();
    npy::write_matrix(dir.join("items.npy"), d.items.view()).unwrap();
    npy::write_matrix(dir.join("rerank.npy"), d.items_in_query_space.view()).unwrap();
    npy::write_matrix(dir.join("q.npy"), d.train_queries.view()).unwrap();
    npy::write_indices(dir.join("qi.npy"), &d.train_items).unwrap();
    npy::write_matrix(dir.join("test.npy"), d.test_queries.view()).unwrap();
    npy::write_indices(dir.join("test_items.npy"), &d.test_items).unwrap();
    // ten more items for `add`, from another draw of the same shape
    let mut more = SyntheticConfig::new(10).with_dims(D, D).with_seed(9);
    more.n_clusters = 2;
    let m = more.generate().unwrap();
    npy::write_matrix(dir.join("new.npy"), m.items.view()).unwrap();
    npy::write_matrix(dir.join("new_rerank.npy"), m.items_in_query_space.view()).unwrap();
    tiny_config(&dir);
    Files { dir, n_items: 150, n_test: d.test_items.len(), test_items: d.test_items }
}

const FIT: &[&str] = &[
    "fit",
    "--items",
    "items.npy",
    "--queries",
    "q.npy",
    "--query-items",
    "qi.npy",
    "--rerank",
    "rerank.npy",
    "--config",
    "config.json",
];

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn fit_info_search_eval_add_resume() {
    let f = files("happy");
    let dir = &f.dir;

    // fit, with the training curves
    let out = ok(cart(dir, &with(FIT, &["--out", "idx", "--plot", "plots"])));
    assert!(out.contains("saved 150 items to idx"), "{out}");
    assert!(out.contains("best epoch"), "{out}");
    let svg = fs::read_to_string(dir.join("plots/training.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("validation R@1") && svg.contains("epoch"));

    // info, plain and JSON
    let out = ok(cart(dir, &["info", "idx"]));
    assert!(out.contains("items        150"), "{out}");
    let info = json(&ok(cart(dir, &["info", "idx", "--json"])));
    assert_eq!(info["n_items"], 150);
    assert_eq!(info["query_dim"], D);
    assert_eq!(info["id_len"], 4, "[k, v1, v2, u]");
    assert_eq!(info["history"]["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(info["config"]["beam_width"], 8, "the --config file was used");
    assert_eq!(info["config"]["rerank_all_pairs"], true, "the default");
    // a --config file from an older version (fields missing) takes the defaults for them
    let mut old = json(&fs::read_to_string(dir.join("config.json")).unwrap());
    old.as_object_mut().unwrap().remove("rerank_all_pairs").unwrap();
    old["train"].as_object_mut().unwrap().remove("rank_rows").unwrap();
    fs::write(dir.join("old.json"), old.to_string()).unwrap();
    let args: Vec<&str> = FIT
        .iter()
        .map(|&a| if a == "config.json" { "old.json" } else { a })
        .chain(["--out", "idx-old"])
        .collect();
    ok(cart(dir, &args));
    let from_old = json(&ok(cart(dir, &["info", "idx-old", "--json"])));
    assert_eq!(from_old["config"]["rerank_all_pairs"], true);
    assert_eq!(from_old["config"]["train"]["rank_rows"], info["config"]["train"]["rank_rows"]);
    assert_eq!(from_old["config"]["beam_width"], 8, "the file's own fields are kept");
    ok(cart(dir, &with(FIT, &["--out", "idx-held-out", "--rerank-held-out"])));
    let held_out = json(&ok(cart(dir, &["info", "idx-held-out", "--json"])));
    assert_eq!(held_out["config"]["rerank_all_pairs"], false, "--rerank-held-out");

    // search: .npy ids and scores
    ok(cart(dir, &["search", "idx", "--queries", "test.npy", "-k", "5", "--out", "hits.npy"]));
    let bytes = fs::read(dir.join("hits.npy")).unwrap();
    let ids = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(ids.shape(), &[f.n_test as u64, 5]);
    let ids: Vec<i64> = ids.into_vec().unwrap();
    assert!(ids.iter().all(|&i| (0..f.n_items as i64).contains(&i)), "valid ids, no padding");
    let scores = npy::read_matrix(dir.join("hits_scores.npy")).unwrap();
    assert_eq!(scores.shape(), &[f.n_test, 5]);
    for row in scores.rows() {
        assert!(row.windows(2).into_iter().all(|w| w[0] >= w[1]), "best first: {row:?}");
    }

    // search: JSON lines on stdout, every mode; ids valid and distinct, the same as the .npy
    for mode in ["generated", "reranked", "fused"] {
        let out =
            ok(cart(dir, &["search", "idx", "--queries", "test.npy", "-k", "5", "--mode", mode]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), f.n_test, "{mode}");
        for (q, line) in lines.iter().enumerate() {
            let v = json(line);
            assert_eq!(v["query"], q);
            let items: Vec<u64> = serde_json::from_value(v["items"].clone()).unwrap();
            let mut distinct = items.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), items.len(), "{mode}: duplicate item in {line}");
            assert!(items.iter().all(|&i| i < f.n_items as u64));
            if mode == "generated" {
                let from_npy: Vec<u64> = ids[q * 5..q * 5 + 5].iter().map(|&i| i as u64).collect();
                assert_eq!(items, from_npy);
            }
        }
    }

    // eval: the table with every baseline, as JSON, and its plot
    let eval = json(&ok(cart(
        dir,
        &[
            "eval",
            "idx",
            "--queries",
            "test.npy",
            "--items",
            "test_items.npy",
            "--rerank",
            "rerank.npy",
            "--train-queries",
            "q.npy",
            "--train-items",
            "qi.npy",
            "--json",
            "--plot",
            "plots",
        ],
    )));
    let rows = eval["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods.len(), 6, "{methods:?}");
    assert_eq!(methods[0], "generator (CART)");
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r["recall_at_1"].as_f64().unwrap())));
    assert!(rows.iter().all(|r| r["n_queries"] == f.n_test));
    // the zero-shot row is exact cosine search over --rerank: recompute it here
    let rerank = npy::read_matrix(dir.join("rerank.npy")).unwrap();
    let test = npy::read_matrix(dir.join("test.npy")).unwrap();
    let hits =
        DenseIndex::new(rerank.view(), Metric::Cosine).unwrap().search(test.view(), 1).unwrap();
    let hit = hits.iter().zip(&f.test_items).filter(|(h, i)| h[0].item == **i).count();
    let zero_shot =
        rows.iter().find(|r| r["method"].as_str().unwrap().contains("zero-shot")).unwrap();
    let expected = hit as f64 / f.n_test as f64;
    assert!((zero_shot["recall_at_1"].as_f64().unwrap() - expected).abs() < 1e-12);
    // the sign tests: each split's difference is the two rows' R@1 difference, in queries
    let comparisons = eval["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 3, "{comparisons:?}");
    for c in comparisons {
        let r1 = |name: &serde_json::Value| {
            let row = rows.iter().find(|r| &r["method"] == name).unwrap();
            row["recall_at_1"].as_f64().unwrap()
        };
        let split = &c["comparison"];
        let (only_first, only_second) =
            (split["only_first"].as_f64().unwrap(), split["only_second"].as_f64().unwrap());
        let by_rows = (r1(&c["first"]) - r1(&c["second"])) * f.n_test as f64;
        assert!((only_first - only_second - by_rows).abs() < 1e-6, "{c}");
        assert!((0.0..=1.0).contains(&split["p_value"].as_f64().unwrap()), "{c}");
    }
    let svg = fs::read_to_string(dir.join("plots/recall.svg")).unwrap();
    assert!(svg.contains("Recall@k") && svg.contains("supervised dense"));
    // the plain table prints the same rows
    let table =
        ok(cart(dir, &["eval", "idx", "--queries", "test.npy", "--items", "test_items.npy"]));
    assert!(table.contains("generator (CART)") && table.contains("R@10"), "{table}");

    // add ten items, in place
    let out = ok(cart(dir, &["add", "idx", "--items", "new.npy", "--rerank", "new_rerank.npy"]));
    assert!(out.contains("added items 150..160 (160 in all)"), "{out}");
    assert_eq!(json(&ok(cart(dir, &["info", "idx", "--json"])))["n_items"], 160);

    // resume one more epoch on the fit's pairs: the history runs on
    let out = ok(cart(
        dir,
        &[
            "fit",
            "--resume",
            "idx",
            "--queries",
            "q.npy",
            "--query-items",
            "qi.npy",
            "--epochs",
            "1",
        ],
    ));
    assert!(out.contains("saved 160 items to idx"), "{out}");
    let info = json(&ok(cart(dir, &["info", "idx", "--json"])));
    let epochs: Vec<u64> = info["history"]["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, vec![1, 2, 3]);
}

fn raw<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], values: &[T]) {
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn every_bad_input_is_one_clear_line_and_damages_nothing() {
    let f = files("bad");
    let dir = &f.dir;
    ok(cart(dir, &with(FIT, &["--out", "idx"])));
    let manifest = fs::read(dir.join("idx/index.json")).unwrap();

    // wrong dtype, wrong shape, NaN, truncated, missing
    raw(&dir.join("int.npy"), &[150, D as u64], &vec![1i32; 150 * D]);
    raw(&dir.join("flat.npy"), &[150 * D as u64], &vec![0.5f32; 150 * D]);
    let mut q = npy::read_matrix(dir.join("q.npy")).unwrap();
    q[[3, 2]] = f32::NAN;
    npy::write_matrix(dir.join("nan.npy"), q.view()).unwrap();
    let bytes = fs::read(dir.join("items.npy")).unwrap();
    fs::write(dir.join("cut.npy"), &bytes[..bytes.len() - 10]).unwrap();
    let fit_with = |items: &str, queries: &str, qi: &str| {
        cart(
            dir,
            &[
                "fit",
                "--items",
                items,
                "--queries",
                queries,
                "--query-items",
                qi,
                "--config",
                "config.json",
                "--out",
                "fresh",
            ],
        )
    };
    fails(fit_with("int.npy", "q.npy", "qi.npy"), &["int.npy", "dtype <i4", "expected float"]);
    fails(fit_with("flat.npy", "q.npy", "qi.npy"), &["flat.npy", "expected a 2-d matrix"]);
    fails(fit_with("items.npy", "nan.npy", "qi.npy"), &["nan.npy", "row 3 column 2 is NaN"]);
    fails(fit_with("cut.npy", "q.npy", "qi.npy"), &["cut.npy", "truncated or damaged"]);
    fails(fit_with("missing.npy", "q.npy", "qi.npy"), &["missing.npy: no such file"]);

    // length mismatch and an item past the last
    let qi = npy::read_indices(dir.join("qi.npy")).unwrap();
    npy::write_indices(dir.join("short.npy"), &qi[1..]).unwrap();
    let mut far = qi.clone();
    far[4] = 999;
    npy::write_indices(dir.join("far.npy"), &far).unwrap();
    let n_q = qi.len().to_string();
    fails(fit_with("items.npy", "q.npy", "short.npy"), &["short.npy", "but q.npy has", &n_q]);
    fails(
        fit_with("items.npy", "q.npy", "far.npy"),
        &["far.npy: entry 4 is item 999", "items.npy has 150"],
    );
    raw(&dir.join("fidx.npy"), &[qi.len() as u64], &vec![0.5f32; qi.len()]);
    fails(fit_with("items.npy", "q.npy", "fidx.npy"), &["fidx.npy", "expected integers"]);
    assert!(!dir.join("fresh").exists(), "no failed fit left a directory");

    // re-rank vectors of the wrong length or width
    raw(&dir.join("r_short.npy"), &[149, D as u64], &vec![0.5f32; 149 * D]);
    let o = cart(
        dir,
        &with(FIT, &["--out", "fresh"])
            .iter()
            .map(|a| if *a == "rerank.npy" { "r_short.npy" } else { a })
            .collect::<Vec<_>>(),
    );
    fails(o, &["r_short.npy: 149 rows", "150 items"]);

    // an existing index is not replaced without --force; a foreign directory never
    fails(
        cart(dir, &with(FIT, &["--out", "idx"])),
        &["idx: already holds a cart index", "--force"],
    );
    fs::create_dir_all(dir.join("notes")).unwrap();
    fs::write(dir.join("notes/keep.txt"), b"mine").unwrap();
    fails(
        cart(dir, &with(FIT, &["--out", "notes"])),
        &["notes: exists, is not empty and is not a cart index"],
    );
    assert_eq!(fs::read(dir.join("notes/keep.txt")).unwrap(), b"mine");

    // directories that are not an index; a damaged index file
    fails(cart(dir, &["info", "notes"]), &["notes: not a cart index (no index.json"]);
    fails(cart(dir, &["info", "nowhere"]), &["nowhere: no such index directory"]);
    fails(
        cart(dir, &["search", "items.npy", "--queries", "test.npy"]),
        &["items.npy: not a directory"],
    );

    // queries of the wrong width, and bad search settings
    raw(&dir.join("wide.npy"), &[3, 7], &[0.5f32; 21]);
    fails(
        cart(dir, &["search", "idx", "--queries", "wide.npy"]),
        &["wide.npy: 7-wide vectors", "takes 16-wide"],
    );
    fails(cart(dir, &["search", "idx", "--queries", "test.npy", "-k", "0"]), &["-k 0"]);
    fails(cart(dir, &["search", "idx", "--queries", "test.npy", "--format", "npy"]), &["--out"]);
    fails(
        cart(dir, &["eval", "idx", "--queries", "test.npy", "--items", "short.npy"]),
        &["short.npy", "entries, but test.npy has"],
    );
    fails(cart(dir, &["add", "idx", "--items", "new.npy"]), &["--rerank"]);
    fails(
        cart(dir, &["add", "idx", "--items", "wide.npy", "--rerank", "wide.npy"]),
        &["wide.npy: 7-wide", "16-wide"],
    );
    // fine-tuning pairs: one item per query, and items the grown index will hold
    let add_tuned = |qi: &str| {
        cart(
            dir,
            &[
                "add",
                "idx",
                "--items",
                "new.npy",
                "--rerank",
                "new_rerank.npy",
                "--fine-tune-queries",
                "q.npy",
                "--fine-tune-items",
                qi,
            ],
        )
    };
    fails(add_tuned("short.npy"), &["short.npy", "entries, but q.npy has"]);
    fails(add_tuned("far.npy"), &["far.npy: entry 4 is item 999", "(150 old, 10 new)"]);
    assert_eq!(fs::read(dir.join("idx/index.json")).unwrap(), manifest, "the index is untouched");

    let mut trie = fs::read(dir.join("idx/trie.bin")).unwrap();
    let mid = trie.len() / 2;
    trie[mid] ^= 0xff;
    fs::write(dir.join("idx/trie.bin"), &trie).unwrap();
    fails(cart(dir, &["info", "idx"]), &["trie.bin", "damaged"]);

    // a bad command line is clap's: exit status 2 with usage
    let o = cart(dir, &["fit", "--items", "items.npy"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cart(dir, &["search", "idx", "--queries", "test.npy", "--mode", "sideways"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("possible values: generated, reranked, fused"), "{}", stderr(&o));
}
