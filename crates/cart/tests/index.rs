//! The index end to end: fit, search, re-rank, save/load, add_items, and bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use burn::prelude::Device;
use cart::ndarray::ArrayView2;
use cart::search::{Hit, evaluate};
use cart::synthetic::{SyntheticConfig, SyntheticCorpus};
use cart::{
    CartIndex, Corpus, Error, FineTune, IndexConfig, NewItems, QuantizerConfig, SearchMode,
    SearchOptions,
};

const D: usize = 16;

pub(crate) fn data(n: usize) -> SyntheticCorpus {
    let mut c = SyntheticConfig::new(n).with_dims(D, D).with_seed(5);
    c.n_clusters = 8;
    c.generate().unwrap()
}

pub(crate) fn config(epochs: usize) -> IndexConfig {
    let mut c = IndexConfig::residual(8, 2, 6).with_seed_everywhere(3);
    c.train = c.train.with_n_epochs(epochs).with_batch_size(64).with_learning_rate(3e-3);
    c.generator = c
        .generator
        .with_d_model(32)
        .with_n_heads(2)
        .with_n_encoder_layers(1)
        .with_n_decoder_layers(1)
        .with_d_ff(64)
        .with_n_memory(2);
    c.validation_fraction = 0.0;
    c.beam_width = 8;
    c
}

/// Row-major values as rows of `D`.
pub(crate) fn v(x: &[f32]) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((x.len() / D, D), x).unwrap()
}

/// A matrix's values, row-major.
pub(crate) fn flat(a: ArrayView2<'_, f32>) -> &[f32] {
    a.to_slice().unwrap()
}

pub(crate) fn corpus_of(d: &SyntheticCorpus) -> Corpus<'_> {
    corpus(d)
}

fn corpus(d: &SyntheticCorpus) -> Corpus<'_> {
    Corpus::new(d.items.view(), d.train_queries.view(), &d.train_items)
        .with_rerank(d.items_in_query_space.view())
}

/// burn's random state is global per backend: tests that train hold this lock so that
/// concurrent tests cannot interleave draws and break the determinism checks.
pub(crate) fn rng_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn fit(d: &SyntheticCorpus, epochs: usize) -> CartIndex {
    CartIndex::fit(&config(epochs), corpus(d), &Device::flex()).unwrap()
}

/// A scratch directory, removed when the test that made it passes (kept after a failure, to
/// look at).
pub(crate) struct Scratch(PathBuf);

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

pub(crate) fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("cart-index-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn items(hits: &[Vec<Hit>]) -> Vec<Vec<u32>> {
    hits.iter().map(|h| h.iter().map(|x| x.item).collect()).collect()
}

#[test]
fn fit_search_rerank_is_deterministic_and_learns() {
    let _guard = rng_lock();
    let d = data(240);
    let index = fit(&d, 12);
    assert_eq!(index.len(), 240);
    assert_eq!((index.item_dim(), index.query_dim()), (D, D));
    assert_eq!(index.layout().id_len(), 4);
    // every item has a distinct identifier in the trie
    for item in 0..240 {
        assert_eq!(index.trie().get(index.id_of(item).unwrap().tokens()), Some(item));
    }

    let hits = index.search(d.test_queries.view(), 5).unwrap();
    assert_eq!(hits.len(), d.test_items.len());
    assert!(hits.iter().all(|h| h.len() <= 5 && !h.is_empty()));
    for h in &hits {
        assert!(h.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    }
    // the generator has learned: far above the 10/240 a random ranking gets on the queries it
    // was trained on
    let relevant: Vec<Vec<u32>> = d.train_items.iter().map(|&i| vec![i]).collect();
    let train_hits = index.search(d.train_queries.view(), 10).unwrap();
    let m = evaluate(&train_hits, &relevant, &[10]).unwrap();
    assert!(m[0].recall > 0.25, "training R@10 {}", m[0].recall);

    // re-rank: the same candidates (all beams), re-ordered by dense similarity
    let opts = SearchOptions::new(5).with_rerank(true).with_beam_width(8);
    let reranked = index.search_with(d.test_queries.view(), opts).unwrap();
    let beams = index.search(d.test_queries.view(), 8).unwrap();
    for (r, b) in reranked.iter().zip(&beams) {
        assert!(r.len() <= 5);
        assert!(r.iter().all(|h| b.iter().any(|x| x.item == h.item)));
        assert!(r.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let dense = index.dense().unwrap().rerank(d.test_queries.view(), &beams).unwrap();
    for (r, full) in reranked.iter().zip(&dense) {
        assert_eq!(items(std::slice::from_ref(r)), items(&[full[..r.len()].to_vec()]));
    }

    // same seed, same index, same answers
    let again = fit(&d, 12);
    assert_eq!(items(&again.search(d.test_queries.view(), 5).unwrap()), items(&hits));
}

#[test]
fn save_load_round_trip_and_damaged_directories() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 2);
    let root = scratch("store");
    let dir = root.join("idx");
    index.save(&dir).unwrap();
    let device = Device::flex();
    let loaded = CartIndex::load(&dir, &device).unwrap();
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.layout(), index.layout());
    assert_eq!(loaded.trie(), index.trie());
    assert_eq!(loaded.history(), index.history());
    assert_eq!(
        index.search(d.test_queries.view(), 5).unwrap(),
        loaded.search(d.test_queries.view(), 5).unwrap(),
        "a loaded generator answers exactly like the saved one"
    );
    let opts = SearchOptions::new(5).with_rerank(true).with_beam_width(8);
    let a = index.search_with(d.test_queries.view(), opts).unwrap();
    let b = loaded.search_with(d.test_queries.view(), opts).unwrap();
    assert_eq!(items(&a), items(&b));
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x.score - y.score).abs() < 1e-6, "{x:?} vs {y:?}");
    }
    // resume: training goes on from the loaded weights, not from scratch
    let mut loaded = loaded;
    let ft = FineTune::new(d.train_queries.view(), &d.train_items).with_train(config(2).train);
    let more = loaded.fine_tune(&ft).unwrap();
    let first_fit = index.history().epochs[0].cross_entropy;
    let last_fit = index.history().epochs[1].cross_entropy;
    assert!(more.epochs[0].cross_entropy < first_fit, "{more:?} vs {first_fit}");
    assert!(more.epochs[1].cross_entropy < last_fit, "{more:?} vs {last_fit}");
    assert_eq!(loaded.len(), index.len());
    // no temporary directories are left behind, and saving over an index replaces it
    loaded.save(&dir).unwrap();
    let mut names: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec![".idx.lock", "idx"]);

    // a directory that is not an index is never replaced
    let other = root.join("not-an-index");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("precious.txt"), "keep me").unwrap();
    assert!(matches!(index.save(&other), Err(Error::Format { .. })));
    assert_eq!(fs::read_to_string(other.join("precious.txt")).unwrap(), "keep me");
    // nor is an index directory that also holds other files
    let mixed = root.join("mixed");
    index.save(&mixed).unwrap();
    fs::write(mixed.join("notes.txt"), "mine").unwrap();
    assert!(matches!(index.save(&mixed), Err(Error::Format { .. })));
    assert_eq!(fs::read_to_string(mixed.join("notes.txt")).unwrap(), "mine");

    let damaged = |name: &str, edit: &dyn Fn(&Path)| -> Error {
        let copy = root.join(format!("copy-{name}"));
        index.save(&copy).unwrap();
        edit(&copy);
        CartIndex::load(&copy, &device).unwrap_err()
    };
    let truncate = |file: &'static str| {
        move |dir: &Path| {
            let p = dir.join(file);
            let bytes = fs::read(&p).unwrap();
            fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        }
    };
    for file in ["generator.bin", "trie.bin", "quantizer.bin", "rerank.bin", "history.json"] {
        let e = damaged(file, &truncate(file));
        assert!(matches!(&e, Error::Format { path, .. } if path.ends_with(file)), "{file}: {e}");
    }
    let e = damaged("flip", &|dir: &Path| {
        let p = dir.join("trie.bin");
        let mut bytes = fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        fs::write(&p, bytes).unwrap();
    });
    assert!(e.to_string().contains("digest"), "{e}");
    let e = damaged("version", &|dir: &Path| {
        let p = dir.join("index.json");
        let text = fs::read_to_string(&p).unwrap();
        let current = format!("\"version\": {}", cart::FORMAT_VERSION);
        assert!(text.contains(&current), "{text}");
        let text = text.replace(&current, "\"version\": 99");
        fs::write(&p, text).unwrap();
    });
    assert!(e.to_string().contains("version 99"), "{e}");
    let e = damaged("garbage", &|dir: &Path| fs::write(dir.join("index.json"), "{").unwrap());
    assert!(matches!(e, Error::Format { .. }), "{e}");
    let e = damaged("missing", &|dir: &Path| fs::remove_file(dir.join("generator.bin")).unwrap());
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn add_items_extends_the_trie_and_keeps_the_index_on_error() {
    let _guard = rng_lock();
    let d = data(200);
    let (old, new) = (160, 40);
    let sub =
        |v: &[f32], dim: usize, r: std::ops::Range<usize>| v[r.start * dim..r.end * dim].to_vec();
    let items_old = sub(flat(d.items.view()), D, 0..old);
    let rerank_old = sub(flat(d.items_in_query_space.view()), D, 0..old);
    let keep: Vec<usize> =
        (0..d.train_items.len()).filter(|&q| (d.train_items[q] as usize) < old).collect();
    let q_old: Vec<f32> = keep
        .iter()
        .flat_map(|&q| flat(d.train_queries.view())[q * D..(q + 1) * D].to_vec())
        .collect();
    let i_old: Vec<u32> = keep.iter().map(|&q| d.train_items[q]).collect();
    let corpus = Corpus::new(v(&items_old), v(&q_old), &i_old).with_rerank(v(&rerank_old));
    let mut index = CartIndex::fit(&config(2), corpus, &Device::flex()).unwrap();
    let before = index.trie().clone();

    let items_new = sub(flat(d.items.view()), D, old..old + new);
    let rerank_new = sub(flat(d.items_in_query_space.view()), D, old..old + new);

    // bad input changes nothing
    let wrong = vec![0.5; 4 * (D + 1)];
    let wrong = ArrayView2::from_shape((4, D + 1), &wrong).unwrap();
    let e = index.add_items(NewItems::new(wrong)).unwrap_err();
    assert!(matches!(e, Error::DimMismatch { .. }), "{e}");
    let mut nan = items_new.clone();
    nan[3] = f32::NAN;
    let e = index.add_items(NewItems::new(v(&nan)).with_rerank(v(&rerank_new))).unwrap_err();
    assert!(matches!(e, Error::NonFinite { row: 0, index: 3, .. }), "{e}");
    let huge: Vec<f32> = items_new.iter().map(|x| x * 1e30).collect();
    let e = index.add_items(NewItems::new(v(&huge)).with_rerank(v(&rerank_new))).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
    let e = index.add_items(NewItems::new(v(&items_new))).unwrap_err();
    assert!(matches!(e, Error::Rerank(_)), "{e}");
    let bad_ft =
        FineTune::new(v(&flat(d.train_queries.view())[..D]), &[999]).with_train(config(1).train);
    let new_items = NewItems::new(v(&items_new)).with_rerank(v(&rerank_new));
    let e = index.add_items(new_items.clone().with_fine_tune(bad_ft)).unwrap_err();
    assert!(matches!(e, Error::UnknownItem { item: 999, .. }), "{e}");
    assert_eq!(index.trie(), &before);
    assert_eq!(index.len(), old);

    // the new items get keys old..old+new and identifiers from the frozen quantizer
    let q_new: Vec<f32> = flat(d.train_queries.view()).to_vec();
    let ft = FineTune::new(v(&q_new), &d.train_items).with_train(config(1).train);
    let keys = index.add_items(new_items.with_fine_tune(ft)).unwrap();
    assert_eq!(keys, old as u32..(old + new) as u32);
    assert_eq!(index.len(), old + new);
    assert_eq!(index.dense().unwrap().len(), old + new);
    for item in keys {
        let id = index.id_of(item).unwrap();
        assert_eq!(index.trie().get(id.tokens()), Some(item));
    }
    for item in 0..old as u32 {
        assert_eq!(index.id_of(item).unwrap(), before.id_of(item).unwrap(), "old ids are kept");
    }
    // searching can now return new items
    let hits = index.search(d.train_queries.view(), 10).unwrap();
    assert!(hits.iter().flatten().any(|h| h.item >= old as u32));

    // a code tuple with no free uniqueness suffix left: typed error, index unchanged
    let mut tight = config(1);
    tight.unique_headroom = 1.0;
    let corpus = Corpus::new(v(&items_old), v(&q_old), &i_old);
    let mut small = CartIndex::fit(&tight, corpus, &Device::flex()).unwrap();
    let largest = small.diagnostics().largest_group;
    let copies: Vec<f32> =
        std::iter::repeat_n(items_old[..D].to_vec(), largest + 1).flatten().collect();
    let trie = small.trie().clone();
    let e = small.add_items(NewItems::new(v(&copies))).unwrap_err();
    assert!(e.to_string().contains("uniqueness") || e.to_string().contains("suffix"), "{e}");
    assert_eq!(small.trie(), &trie);
}

#[test]
fn bad_input_is_a_typed_error() {
    let _guard = rng_lock();
    let d = data(60);
    let device = Device::flex();
    let fit = |c: Corpus<'_>| CartIndex::fit(&config(1), c, &device).map(|_| ());

    let e = fit(Corpus::new(v(&[]), d.train_queries.view(), &d.train_items)).unwrap_err();
    assert!(matches!(e, Error::EmptyData { .. }), "{e}");
    let e =
        fit(Corpus::new(d.items.view(), d.train_queries.view(), &d.train_items[1..])).unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e}");
    let mut bad_items = d.train_items.clone();
    bad_items[7] = 60;
    let e = fit(Corpus::new(d.items.view(), d.train_queries.view(), &bad_items)).unwrap_err();
    assert!(matches!(e, Error::UnknownItem { item: 60, n_items: 60 }), "{e}");
    let mut inf = flat(d.items.view()).to_vec();
    inf[D * 2 + 1] = f32::INFINITY;
    let e = fit(Corpus::new(v(&inf), d.train_queries.view(), &d.train_items)).unwrap_err();
    assert!(matches!(e, Error::NonFinite { row: 2, index: 1, .. }), "{e}");
    let short = flat(d.items_in_query_space.view())[..D * 10].to_vec();
    let e =
        fit(Corpus::new(d.items.view(), d.train_queries.view(), &d.train_items)
            .with_rerank(v(&short)))
        .unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e}");
    let mut c = config(1);
    c.validation_fraction = 1.0;
    let e = CartIndex::fit(&c, corpus(&d), &device).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "validation_fraction", .. }), "{e}");
    // k larger than the number of coarse codes is fine for the quantizer to refuse: K > n
    let mut c = config(1);
    c.quantizer = IndexConfig::residual(500, 1, 4).quantizer;
    assert!(CartIndex::fit(&c, corpus(&d), &device).is_err());
    // a headroom that would put 10^8 uniqueness tokens in the vocabulary
    let mut c = config(1);
    c.unique_headroom = 1e8;
    let e = CartIndex::fit(&c, corpus(&d), &device).unwrap_err();
    assert!(matches!(e, Error::Ids(_)) && e.to_string().contains("unique_headroom"), "{e}");
    // finite values whose squares overflow f32
    let huge: Vec<f32> = d.items.iter().map(|x| x * 1e20).collect();
    let e = fit(Corpus::new(v(&huge), d.train_queries.view(), &d.train_items)).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");

    // searching
    let index = CartIndex::fit(
        &config(1),
        Corpus::new(d.items.view(), d.train_queries.view(), &d.train_items),
        &device,
    )
    .unwrap();
    let e = index.search(d.test_queries.view(), 0).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "k", .. }), "{e}");
    let e = index
        .search_with(d.test_queries.view(), SearchOptions::new(3).with_rerank(true))
        .unwrap_err();
    assert!(matches!(e, Error::Rerank(_)), "{e}");
    let mut q = flat(d.test_queries.view())[..D].to_vec();
    q[0] = f32::NAN;
    assert!(matches!(index.search(v(&q), 3), Err(Error::Model(_))));
    let narrow = ArrayView2::from_shape((1, D - 1), &flat(d.test_queries.view())[..D - 1]).unwrap();
    assert!(index.search(narrow, 3).is_err());
    assert!(matches!(index.id_of(60), Err(Error::UnknownItem { item: 60, .. })));
}

/// The stored supervised re-rank vectors are every pair's centroids once the validation split
/// has made its choices (`rerank_all_pairs`), and the training split's with the switch off.
#[test]
fn stored_rerank_centroids_use_every_pair() {
    let _guard = rng_lock();
    let d = data(80);
    let mut c = config(1);
    c.validation_fraction = 0.3;
    c.rerank_supervised = Some(true);
    let all = cart::supervised_centroids(
        d.items_in_query_space.view(),
        d.train_queries.view(),
        &d.train_items,
    )
    .unwrap();
    let gap = |index: &CartIndex| {
        let stored = index.dense().expect("re-rank vectors given").vectors();
        stored.iter().zip(all.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
    };
    let index = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    assert!(index.config().rerank_all_pairs);
    assert!(gap(&index) < 1e-5, "every pair's centroids: {}", gap(&index));
    c.rerank_all_pairs = false;
    let held_out = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    assert!(gap(&held_out) > 1e-2, "the training split's centroids: {}", gap(&held_out));

    let root = scratch("all-pairs");
    index.save(root.join("index")).unwrap();
    let back = CartIndex::load(root.join("index"), &Device::flex()).unwrap();
    assert!(back.config().rerank_all_pairs);
    assert!(gap(&back) < 1e-5);
    fs::remove_dir_all(&root).unwrap();
}

/// The fused search returns valid, distinct items; lambda is picked on the validation split
/// and survives save/load; absurd beam widths are clamped, not a panic; the dense head fits,
/// searches, saves and loads, and grows with add_items.
#[test]
fn fused_search_lambda_and_dense_head() {
    let _guard = rng_lock();
    let d = data(120);
    let mut c = config(2);
    c.validation_fraction = 0.2;
    c.generator = c.generator.with_dense_head(true);
    c.train = c.train.with_item_queries(1.0).with_interpolation(0.5);
    let mut index = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    let lambda = index.config().fuse_lambda.expect("picked at fit");
    let targets = index.config().supervised_targets.expect("picked at fit");
    let rerank = index.config().rerank_supervised.expect("picked at fit");
    let prior = index.config().subtree_prior.expect("picked at fit");
    assert_eq!(index.generator().config().subtree_prior, prior);
    assert!(!index.history().start_valid.is_empty(), "the starting model is validated");
    let n = index.len() as u32;
    for mode in [SearchMode::Generated, SearchMode::Reranked, SearchMode::Fused] {
        let hits = index
            .search_with(d.test_queries.view(), SearchOptions::new(5).with_mode(mode))
            .unwrap();
        for h in &hits {
            assert!(!h.is_empty() && h.len() <= 5);
            assert!(h.iter().all(|x| x.item < n && x.score.is_finite()));
            let mut ids: Vec<u32> = h.iter().map(|x| x.item).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), h.len(), "{mode:?}: no item twice");
            assert!(h.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }
    let huge = SearchOptions::new(3).with_beam_width(usize::MAX >> 2);
    assert_eq!(index.search_with(v(&flat(d.test_queries.view())[..D]), huge).unwrap()[0].len(), 3);
    assert!(
        index.search_with(d.test_queries.view(), SearchOptions::new(3).with_lambda(-1.0)).is_err()
    );

    let root = scratch("fused");
    let dir = root.join("index");
    index.save(&dir).unwrap();
    let back = CartIndex::load(&dir, &Device::flex()).unwrap();
    assert_eq!(back.config().fuse_lambda, Some(lambda));
    assert_eq!(back.config().supervised_targets, Some(targets));
    assert_eq!(back.config().rerank_supervised, Some(rerank));
    assert_eq!(back.config().subtree_prior, Some(prior));
    assert_eq!(back.generator().config().subtree_prior, prior);
    let fused = SearchOptions::new(5).with_mode(SearchMode::Fused);
    assert_eq!(
        items(&index.search_with(d.test_queries.view(), fused).unwrap()),
        items(&back.search_with(d.test_queries.view(), fused).unwrap())
    );
    fs::remove_dir_all(&root).unwrap();

    // new items get dense-head rows and are searchable
    let new = flat(d.items.view())[..2 * D].to_vec();
    let new_q = flat(d.items_in_query_space.view())[..2 * D].to_vec();
    let keys = index.add_items(NewItems::new(v(&new)).with_rerank(v(&new_q))).unwrap();
    assert_eq!(keys, n..n + 2);
    assert_eq!(index.generator().dims().n_items, n as usize + 2);
    let hits = index.search_with(v(&new_q), SearchOptions::new(5).with_beam_width(20)).unwrap();
    assert!(hits.iter().flatten().all(|h| h.item < n + 2));
}

/// The observer sees every stage in order, each training epoch and the validation floor; the
/// observed fit is the same fit (the observer changes nothing).
#[test]
fn fit_observed_reports_every_stage_in_order() {
    use cart::Event;
    use cart::model::TrainEvent;
    let _guard = rng_lock();
    let d = data(120);
    let mut c = config(2);
    c.validation_fraction = 0.2;
    let mut seen = Vec::new();
    let mut batches = 0;
    let mut picked = None;
    let index = CartIndex::fit_observed(&c, corpus(&d), &Device::flex(), &mut |e| {
        if let Event::RerankPicked { lambda, recall, generator_recall, recall_by_lambda, .. } = e {
            picked = Some((lambda, recall, generator_recall, recall_by_lambda.to_vec()));
        }
        if let Event::Training(TrainEvent::Batch { .. }) = e {
            batches += 1;
            return;
        }
        assert!(!e.to_string().is_empty());
        seen.push(match e {
            Event::QuantizerStarted { .. } => "quantizer",
            Event::Identifiers { .. } => "identifiers",
            Event::TrainingStarted { n_epochs: 2, .. } => "training",
            Event::Training(TrainEvent::Start(m)) if !m.is_empty() => "floor",
            Event::Training(TrainEvent::Epoch(s)) if !s.valid.is_empty() => "epoch",
            Event::Trained { .. } => "trained",
            Event::DenseHeadFloor { n_pairs, .. } if n_pairs > 0 => "floor?",
            Event::RerankPicked { n_pairs, .. } if n_pairs > 0 => "rerank",
            other => panic!("unexpected {other:?}"),
        });
    })
    .unwrap();
    // the subtree prior is left open: two training-free floors, off and on
    let expected = [
        "quantizer",
        "identifiers",
        "floor?",
        "floor?",
        "training",
        "floor",
        "epoch",
        "epoch",
        "trained",
        "rerank",
    ];
    assert_eq!(seen, expected);
    assert!(batches >= 2, "{batches} batches");
    // the picked lambda is the stored one and the best Recall@1 of the curve it reports
    let (lambda, recall, alone, curve) = picked.unwrap();
    assert_eq!(index.config().fuse_lambda, Some(lambda));
    assert!(curve.len() > 1 && curve[0].0.to_bits() == 0, "{curve:?}");
    assert!(curve.windows(2).all(|w| w[0].0 < w[1].0), "{curve:?}");
    assert_eq!(
        curve.iter().find(|(l, _)| l.to_bits() == lambda.to_bits()).map(|p| p.1),
        Some(recall)
    );
    assert!(curve.iter().all(|&(_, r)| r <= recall && (0.0..=1.0).contains(&r)), "{curve:?}");
    assert!((0.0..=1.0).contains(&alone), "{alone}");
    let plain = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    let runs = |i: &CartIndex| -> Vec<_> {
        i.history().epochs.iter().map(|e| (e.loss.to_bits(), e.valid.clone())).collect()
    };
    assert_eq!(runs(&plain), runs(&index), "the same run, seconds aside");
    assert_eq!(
        plain.search(d.test_queries.view(), 5).unwrap(),
        index.search(d.test_queries.view(), 5).unwrap()
    );
}

/// The main job's path (K-Means + RQ-VAE identifiers, validation split) on tiny data: fit,
/// save, load, search; the loaded config is the fitted one.
#[test]
fn coarse_to_fine_fit_save_load_search_round_trip() {
    fn shared<T: Send + Sync>() {}
    shared::<CartIndex>(); // one index can serve many threads

    let _guard = rng_lock();
    let d = data(120);
    let mut c = IndexConfig::coarse_to_fine(D, 4, 2, 8).with_seed_everywhere(3);
    if let QuantizerConfig::CoarseToFine(q) = &mut c.quantizer {
        q.fine = q.fine.clone().with_d_latent(8).with_d_hidden(vec![16]);
        q.train = q.train.clone().with_n_epochs(5).with_batch_size(64);
    }
    let small = config(2);
    c.train = small.train;
    c.generator = small.generator;
    c.beam_width = 8;
    c.validation_fraction = 0.2;
    let index = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    assert_eq!(index.len(), d.items.nrows());
    assert_eq!(index.layout().id_len(), 4, "[k, v1, v2, u]");
    let history = &index.history().epochs;
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| !e.valid.is_empty()), "validation ran: {history:?}");

    let root = scratch("coarse");
    let dir = root.join("idx");
    index.save(&dir).unwrap();
    let loaded = CartIndex::load(&dir, &Device::flex()).unwrap();
    let json = |c: &IndexConfig| serde_json::to_string(c).unwrap();
    assert_eq!(json(loaded.config()), json(index.config()), "the config round-trips");
    // the fitted config is the given one with the fused search's lambda and the subtree prior
    // picked on validation (the prior written into the generator's config too)
    assert!(c.fuse_lambda.is_none() && c.subtree_prior.is_none());
    c.fuse_lambda = index.config().fuse_lambda;
    assert!(c.fuse_lambda.is_some());
    c.subtree_prior = index.config().subtree_prior;
    let prior = c.subtree_prior.expect("picked at fit");
    c.generator.subtree_prior = prior;
    assert_eq!(json(index.config()), json(&c));
    assert_eq!(loaded.trie(), index.trie());
    for opts in [SearchOptions::new(5), SearchOptions::new(5).with_mode(SearchMode::Fused)] {
        let a = index.search_with(d.test_queries.view(), opts).unwrap();
        assert_eq!(a.len(), d.test_queries.nrows());
        assert!(a.iter().all(|h| h.len() == 5), "{opts:?}");
        assert_eq!(a, loaded.search_with(d.test_queries.view(), opts).unwrap(), "{opts:?}");
    }
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

/// `resume` continues a fit on the same split: the history runs on, the kept model never
/// validates worse than the one it started from, the save round-trips it, and bad pairs leave
/// the index unchanged.
#[test]
fn resume_continues_the_fit_and_never_validates_worse() {
    let _guard = rng_lock();
    let d = data(150);
    let mut c = config(1);
    c.validation_fraction = 0.2;
    let mut index = CartIndex::fit(&c, corpus(&d), &Device::flex()).unwrap();
    let before = index.history().clone();
    let kept = |h: &cart::model::TrainHistory| match h.best_epoch {
        0 => h.start_valid[0].recall,
        e => h.epochs[e - 1].valid[0].recall,
    };
    let best_before = kept(&before);
    let (q, qi) = (d.train_queries.view(), &d.train_items[..]);

    // bad pairs first: nothing changes
    let hits = index.search(d.test_queries.view(), 5).unwrap();
    assert!(matches!(index.resume(q, &qi[1..], 1), Err(Error::LengthMismatch { .. })));
    assert!(matches!(index.resume(q, qi, 0), Err(Error::InvalidConfig { .. })));
    let mut far = qi.to_vec();
    far[0] = 10_000;
    assert!(matches!(index.resume(q, &far, 1), Err(Error::UnknownItem { item: 10_000, .. })));
    assert_eq!(index.history(), &before);
    assert_eq!(index.search(d.test_queries.view(), 5).unwrap(), hits);

    let mut seen = Vec::new();
    let run = index.resume_observed(q, qi, 2, &mut |e| {
        if let cart::Event::TrainingStarted { n_valid, n_epochs, .. } = e {
            seen.push((n_valid, n_epochs));
        }
    });
    let run = run.unwrap();
    // the fit's split: the same 20% of the pairs held out
    assert_eq!(seen, vec![((qi.len() as f64 * 0.2) as usize, 2)]);
    assert_eq!(run.epochs.len(), 2);
    let history = index.history();
    let numbers: Vec<usize> = history.epochs.iter().map(|e| e.epoch).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    assert_eq!(history.epochs[0], before.epochs[0], "the fit's epoch is kept as it was");
    assert!(kept(history) >= best_before, "{} < {best_before}", kept(history));

    let root = scratch("resume");
    let dir = root.join("idx");
    index.save(&dir).unwrap();
    let loaded = CartIndex::load(&dir, &Device::flex()).unwrap();
    assert_eq!(loaded.history(), index.history());
}
