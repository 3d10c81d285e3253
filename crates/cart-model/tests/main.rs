#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! Public-API tests of `cart-model`: learning is shown (overfit to Recall@1 = 1.0 through the
//! constrained beam search, with and without fusion), the cached scorer equals full recompute,
//! and checkpoints round-trip and fail with typed errors.

use burn::prelude::Device;
use cart_ids::{IdAssignment, IdLayout, Node, Token, assign_ids};
use cart_model::{
    Error, Generator, GeneratorConfig, GeneratorDims, Pairs, TrainConfig, TrainHistory,
};
use cart_search::{BeamSearchConfig, Scorer, Step, evaluate};
use ndarray::ArrayView2;

/// Row-major `values` as `[len / width, width]` rows.
fn m<T>(values: &[T], width: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((values.len() / width, width), values).unwrap()
}

/// burn's seeded RNG is one per device, shared by every thread: tests that draw from it run one
/// at a time so that each sees exactly the random stream its seed gives.
static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A tiny deterministic generator of uniform floats (no rand dependency in the test API).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// `n` items with random identifiers `[k, v1, v2, u]` and `per_item` noisy queries each.
struct Data {
    ids: IdAssignment,
    queries: Vec<f32>,
    items: Vec<u32>,
    d: usize,
}

fn data(n: usize, per_item: usize, d: usize, seed: u64) -> Data {
    let layout = IdLayout::new(8, 2, 8, 8).unwrap();
    let mut rng = Lcg(seed);
    let coarse: Vec<u32> = (0..n).map(|_| (rng.next() * 8.0) as u32 % 8).collect();
    let fine: Vec<u32> = (0..2 * n).map(|_| (rng.next() * 8.0) as u32 % 8).collect();
    let ids = assign_ids(&layout, &coarse, &fine).unwrap();
    let centers: Vec<f32> = (0..n * d).map(|_| rng.next() * 2.0 - 1.0).collect();
    let mut queries = Vec::with_capacity(n * per_item * d);
    let mut items = Vec::with_capacity(n * per_item);
    for i in 0..n {
        for _ in 0..per_item {
            queries
                .extend(centers[i * d..(i + 1) * d].iter().map(|c| c + 0.1 * (rng.next() - 0.5)));
            items.push(i as u32);
        }
    }
    Data { ids, queries, items, d }
}

/// A small transformer without the dense head (the tests of the head set it).
/// A small generator with the dense head (the default head), for the untrained-head tests.
fn small_dense() -> GeneratorConfig {
    GeneratorConfig::new()
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_encoder_layers(1)
        .with_n_decoder_layers(1)
        .with_d_ff(32)
}

fn tiny() -> GeneratorConfig {
    GeneratorConfig::new()
        .with_dense_head(false)
        .with_d_model(32)
        .with_n_heads(2)
        .with_n_memory(2)
        .with_n_encoder_layers(2)
        .with_n_decoder_layers(1)
        .with_d_ff(64)
        .with_dropout(0.0)
}

fn overfit(fusion: bool, rdrop: bool) -> (Generator, TrainHistory, Data) {
    let data = data(100, 3, 16, 7);
    let _guard = rng_lock();
    let device = Device::flex();
    let config = tiny().with_fusion(fusion).with_dropout(0.1);
    let train = TrainConfig::new()
        .with_n_epochs(60)
        .with_batch_size(32)
        .with_learning_rate(3e-3)
        .with_rdrop(rdrop)
        .with_eval_every(20)
        .with_beam_width(5)
        .with_seed(1);
    let pairs = Pairs::new(m(&data.queries, data.d), &data.items);
    let (generator, history) =
        config.fit(pairs, Some(pairs), &data.ids.to_trie().unwrap(), &train, &device).unwrap();
    (generator, history, data)
}

fn check_learned(generator: &Generator, history: &TrainHistory, data: &Data) {
    let first = &history.epochs[0];
    let last = history.epochs.last().unwrap();
    assert!(
        last.cross_entropy < 0.1 * first.cross_entropy,
        "loss must fall: {} -> {}\n{history}",
        first.cross_entropy,
        last.cross_entropy
    );
    let best = &history.epochs[history.best_epoch - 1];
    assert_eq!(best.valid[0].k, 1);
    assert!((best.valid[0].recall - 1.0).abs() < 1e-9, "{history}");
    // The returned model is the best one: recompute its Recall@1 through the beam search.
    let trie = data.ids.to_trie().unwrap();
    let config = BeamSearchConfig::default().with_beam_width(5).with_top_k(5);
    let ranked = generator.search(&trie, config, m(&data.queries, data.d)).unwrap();
    let relevant: Vec<Vec<u32>> = data.items.iter().map(|&i| vec![i]).collect();
    let m = evaluate(&ranked, &relevant, &[1]).unwrap();
    assert!((m[0].recall - 1.0).abs() < 1e-9);
    // Distinct items are retrieved: no collapse onto one identifier.
    let mut top: Vec<u32> = ranked.iter().map(|r| r[0].item).collect();
    top.sort_unstable();
    top.dedup();
    assert_eq!(top.len(), 100);
}

#[test]
fn overfits_to_recall_1_with_fusion_and_rdrop() {
    let (generator, history, data) = overfit(true, true);
    check_learned(&generator, &history, &data);
    assert!(history.epochs.iter().all(|e| e.rdrop >= 0.0));
    assert!(history.epochs[0].rdrop > 0.0, "dropout 0.1 gives a positive R-Drop term");
}

#[test]
fn overfits_to_recall_1_without_fusion() {
    let (generator, history, data) = overfit(false, false);
    check_learned(&generator, &history, &data);
    assert!(history.epochs.iter().all(|e| e.rdrop == 0.0));
}

fn random_generator(fusion: bool, layout: &IdLayout, seed: u64) -> Generator {
    let _guard = rng_lock();
    let device = Device::flex();
    device.seed(seed);
    let dims = GeneratorDims::for_layout(10, layout, 1);
    tiny().with_fusion(fusion).with_n_query_vectors(2).init(&dims, &device).unwrap()
}

/// Drives the scorer by hand (beams that split, repeat and vanish) and compares every row with
/// the log-probabilities of recomputing the whole prefix.
fn cached_equals_recompute(fusion: bool) {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(fusion, &layout, 11);
    let mut rng = Lcg(5);
    let queries: Vec<f32> = (0..3 * 10).map(|_| rng.next() - 0.5).collect();
    let vocab = layout.vocab_size();
    let len = layout.id_len();
    let trie = assign_ids(&layout, &[0], &[0, 0]).unwrap().to_trie().unwrap();
    let mut scorer = g.scorer(&trie, m(&queries, 10)).unwrap();
    assert_eq!((scorer.vocab_size(), scorer.n_queries()), (vocab, 3));

    // beams: (query, prefix tokens so far)
    let mut beams: Vec<(usize, Vec<Token>)> = (0..3).map(|q| (q, vec![])).collect();
    let parents_per_step = [vec![0, 0, 2, 1, 2], vec![4, 1, 1, 0], vec![3, 2]];
    for position in 0..len {
        let queries_of: Vec<usize> = beams.iter().map(|b| b.0).collect();
        let tokens: Vec<Token> =
            beams.iter().map(|b| b.1.last().copied().unwrap_or(IdLayout::BOS)).collect();
        let nodes = vec![Node::ROOT; tokens.len()];
        let step = Step { position, queries: &queries_of, tokens: &tokens, nodes: &nodes };
        let mut out = vec![f32::NAN; beams.len() * vocab];
        scorer.score(&step, &mut out).unwrap();
        for (b, (q, prefix)) in beams.iter().enumerate() {
            // a full identifier whose first `position` tokens are the prefix
            let mut id: Vec<Token> = prefix.clone();
            while id.len() < len {
                id.push(layout.position_range(id.len()).start);
            }
            let full = g.log_probs(&trie, m(&queries[q * 10..(q + 1) * 10], 10), m(&id, len));
            let full = full.unwrap();
            let expected = &full[position * vocab..(position + 1) * vocab];
            let got = &out[b * vocab..(b + 1) * vocab];
            for (e, g) in expected.iter().zip(got) {
                assert!((e - g).abs() < 1e-4, "position {position} beam {b}: {e} vs {g}");
            }
            let sum: f32 = got.iter().map(|l| l.exp()).sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
        if position + 1 == len {
            break;
        }
        let parents = &parents_per_step[position];
        scorer.reorder(parents).unwrap();
        let range = layout.position_range(position);
        beams = parents
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let (q, mut prefix) = beams[p].clone();
                prefix.push(range.start + (i as u32) % (range.end - range.start));
                (q, prefix)
            })
            .collect();
    }
}

#[test]
fn cached_decoding_equals_full_recompute_with_fusion() {
    cached_equals_recompute(true);
}

#[test]
fn cached_decoding_equals_full_recompute_without_fusion() {
    cached_equals_recompute(false);
}

#[test]
fn scorer_rejects_protocol_errors() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 1);
    let queries = vec![0.1f32; 2 * 10];
    let trie = assign_ids(&layout, &[0], &[0, 0]).unwrap().to_trie().unwrap();
    let mut scorer = g.scorer(&trie, m(&queries, 10)).unwrap();
    let r = &[Node::ROOT, Node::ROOT];
    let vocab = layout.vocab_size();
    let mut out = vec![0.0; 2 * vocab];
    let bad_query = Step { position: 0, queries: &[0, 5], tokens: &[1, 1], nodes: r };
    assert!(matches!(scorer.score(&bad_query, &mut out), Err(Error::Protocol { .. })));
    let bad_token = Step { position: 0, queries: &[0, 1], tokens: &[1, 999], nodes: r };
    assert!(matches!(scorer.score(&bad_token, &mut out), Err(Error::UnknownToken { .. })));
    let ok = Step { position: 0, queries: &[0, 1], tokens: &[1, 1], nodes: r };
    scorer.score(&ok, &mut out).unwrap();
    assert!(matches!(scorer.reorder(&[0, 2]), Err(Error::Protocol { .. })));
    let skipped = Step { position: 2, queries: &[0, 1], tokens: &[3, 3], nodes: r };
    assert!(matches!(scorer.score(&skipped, &mut out), Err(Error::Protocol { .. })));
}

#[test]
fn bad_queries_are_typed_errors() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 1);
    let trie = assign_ids(&layout, &[0], &[0, 0]).unwrap().to_trie().unwrap();
    assert!(matches!(
        g.scorer(&trie, m(&[0.0; 7], 7)),
        Err(Error::DimMismatch { got: 7, expected: 10, .. })
    ));
    let mut nan = vec![0.0f32; 20];
    nan[13] = f32::NAN;
    let nan = m(&nan, 10);
    assert!(matches!(g.scorer(&trie, nan), Err(Error::NonFinite { query: 1, index: 3, .. })));
    let id = [2u32, 999, 20, 21];
    assert!(matches!(
        g.log_probs(&trie, m(&[0.0; 10], 10), m(&id, 4)),
        Err(Error::UnknownToken { token: 999, .. })
    ));
    assert!(matches!(
        g.log_probs(&trie, m(&[0.0; 10], 10), m(&id[..3], 3)),
        Err(Error::UnknownToken { .. })
    ));
    assert!(matches!(
        g.search(&trie, BeamSearchConfig::default(), m(&[f32::INFINITY; 10], 10)),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn search_returns_valid_items_from_an_untrained_model() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(false, &layout, 2);
    let coarse: Vec<u32> = (0..30).map(|i| i % 4).collect();
    let fine: Vec<u32> = (0..60).map(|i| (i * 7 % 5) as u32).collect();
    let ids = assign_ids(&layout, &coarse, &fine).unwrap();
    let trie = ids.to_trie().unwrap();
    let queries: Vec<f32> = (0..4 * 10).map(|i| (i as f32 * 0.37).sin()).collect();
    let hits = g.search(&trie, BeamSearchConfig::default().with_top_k(5), m(&queries, 10)).unwrap();
    assert_eq!(hits.len(), 4);
    for ranked in &hits {
        assert_eq!(ranked.len(), 5);
        assert!(ranked.iter().all(|h| (h.item as usize) < 30));
        assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
        let mut items: Vec<u32> = ranked.iter().map(|h| h.item).collect();
        items.sort_unstable();
        items.dedup();
        assert_eq!(items.len(), 5, "no item twice");
    }
}

#[test]
fn save_load_reproduces_logits() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 4);
    // loading builds a model first, which draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let dir = std::env::temp_dir().join(format!("cart-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("generator.cart");
    g.save(&path).unwrap();
    let loaded = Generator::load(&path, &Device::flex()).unwrap();
    assert_eq!((loaded.config(), loaded.dims()), (g.config(), g.dims()));
    let queries: Vec<f32> = (0..20).map(|i| (i as f32).cos()).collect();
    let ids = [2u32, 6, 11, 16, 3, 7, 12, 17];
    let trie = assign_ids(&layout, &[0], &[0, 0]).unwrap().to_trie().unwrap();
    let (q, ids) = (m(&queries, 10), m(&ids, 4));
    assert_eq!(g.log_probs(&trie, q, ids).unwrap(), loaded.log_probs(&trie, q, ids).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The checkpoint re-framed (a valid container) with its header edited and its kind version
/// set: what a forger or a buggy writer produces.
fn reframed(bytes: &[u8], version: u32, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let file = cart_format::Container::parse(bytes).unwrap();
    let header = edit(std::str::from_utf8(file.section("header").unwrap()).unwrap());
    cart_format::Writer::from_container(&file)
        .with_version(version)
        .replace("header", header.into_bytes())
        .to_bytes()
}

/// A checkpoint written before `subtree_prior` existed (its header without the field) loads,
/// with the prior off, and scores as before.
#[test]
fn checkpoints_without_subtree_prior_load_with_it_off() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 4);
    // loading builds a model first, which draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let bytes = g.to_bytes().unwrap();
    let old = reframed(&bytes, cart_model::FORMAT_VERSION, |h| {
        assert!(h.contains("\"subtree_prior\":false"), "{h}");
        h.replace(",\"subtree_prior\":false", "").replace("\"subtree_prior\":false,", "")
    });
    let file = cart_format::Container::parse(&old).unwrap();
    assert!(!std::str::from_utf8(file.section("header").unwrap()).unwrap().contains("subtree"));
    let loaded = Generator::from_bytes(&old, &Device::flex()).unwrap();
    assert!(!loaded.config().subtree_prior);
    assert_eq!(loaded.config(), g.config());
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 4);
    // loading builds a model first, which draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let device = Device::flex();
    let bytes = g.to_bytes().unwrap();
    let is_bad =
        |b: &[u8]| matches!(Generator::from_bytes(b, &device), Err(Error::Checkpoint { .. }));
    assert!(Generator::from_bytes(&bytes, &device).is_ok());
    assert!(is_bad(&bytes[..10]), "truncated header");
    assert!(is_bad(&bytes[..bytes.len() - 100]), "truncated weights");
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    assert!(is_bad(&corrupt), "flipped byte");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(is_bad(&magic), "bad magic");
    let v = cart_model::FORMAT_VERSION;
    assert!(is_bad(&reframed(&bytes, v + 7, str::to_owned)), "other format version");
    assert!(Generator::from_bytes(&reframed(&bytes, v, str::to_owned), &device).is_ok());

    // A well-formed file whose config does not match its weights (d_ff 64 -> 48).
    let tampered = reframed(&bytes, v, |h| {
        assert!(h.contains("\"d_ff\":64"));
        h.replace("\"d_ff\":64", "\"d_ff\":48")
    });
    let err = Generator::from_bytes(&tampered, &device).unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    // One that claims a model far larger than its weights: refused before it is built.
    let huge = reframed(&bytes, v, |h| h.replace("\"d_ff\":64", "\"d_ff\":4000000"));
    match Generator::from_bytes(&huge, &device) {
        Err(Error::Checkpoint { reason, .. }) => {
            assert!(reason.contains("more parameters"), "{reason}")
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }

    let missing = Generator::load("/nonexistent/dir/g.cart", &device).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }));
}

#[test]
fn configs_round_trip_through_json_and_are_validated() {
    // `init` draws weights from the device's RNG, which the seeded tests share
    let _guard = rng_lock();
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let config = tiny().with_fusion(false);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<GeneratorConfig>(&json).unwrap(), config);
    let train = TrainConfig::new().with_omega(0.5).with_checkpoint(Some("x.cart".into()));
    let json = serde_json::to_string(&train).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), train);

    let device = Device::flex();
    let bad = [
        config.clone().with_n_heads(3),
        config.clone().with_d_model(0),
        config.clone().with_dropout(1.0),
        config.clone().with_dropout(f64::NAN),
    ];
    let dims = GeneratorDims::for_layout(5, &layout, 1);
    for c in bad {
        assert!(matches!(c.init(&dims, &device), Err(Error::InvalidConfig { .. })), "{c:?}");
    }
    let bad_dims = [
        GeneratorDims { query_width: 0, ..dims.clone() },
        dims.clone().with_position_sizes(vec![4, 5]),
        GeneratorDims { vocab_size: dims.vocab_size + 1, ..dims.clone() },
    ];
    for d in bad_dims {
        assert!(matches!(config.init(&d, &device), Err(Error::InvalidConfig { .. })), "{d:?}");
    }
    let split = config.clone().with_n_query_vectors(2); // 5 values cannot be 2 vectors
    assert!(matches!(split.init(&dims, &device), Err(Error::InvalidConfig { .. })));
    let head = GeneratorConfig::new().with_d_model(32).with_n_heads(2);
    assert!(
        matches!(
            head.init(&dims.clone().with_n_items(0), &device),
            Err(Error::InvalidConfig { .. })
        ),
        "the dense head needs items"
    );
    // fit checks the training config before any work
    let ids = assign_ids(&layout, &[0], &[0, 0]).unwrap();
    let q = [0.0f32; 5];
    let pairs = Pairs::new(m(&q, 5), &[0]);
    let zero_batch = TrainConfig::new().with_batch_size(0);
    assert!(matches!(
        config.fit(pairs, None, &ids.to_trie().unwrap(), &zero_batch, &device),
        Err(Error::InvalidConfig { .. })
    ));
    let unknown = Pairs::new(m(&q, 5), &[3]);
    assert!(matches!(
        config.fit(unknown, None, &ids.to_trie().unwrap(), &TrainConfig::new(), &device),
        Err(Error::UnknownItem { item: 3, .. })
    ));
    // a trained generator refuses a trie of another layout
    let g = config.init(&dims, &device).unwrap();
    let other = assign_ids(&IdLayout::new(5, 2, 5, 3).unwrap(), &[0], &[0, 0]).unwrap();
    assert!(matches!(
        g.fit_more(pairs, None, &other.to_trie().unwrap(), &TrainConfig::new()),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        g.search(&other.to_trie().unwrap(), BeamSearchConfig::default(), m(&q, 5)),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn history_writes_csv_and_json() {
    let data = data(6, 2, 4, 3);
    let _guard = rng_lock();
    let device = Device::flex();
    let config = tiny();
    let train = TrainConfig::new().with_n_epochs(2).with_batch_size(4);
    let pairs = Pairs::new(m(&data.queries, data.d), &data.items);
    let (_, history) =
        config.fit(pairs, Some(pairs), &data.ids.to_trie().unwrap(), &train, &device).unwrap();
    let csv = history.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("epoch,loss,cross_entropy,rdrop,rank,learning_rate,seconds,recall@1")
    );
    let dir = std::env::temp_dir().join(format!("cart-model-hist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    history.save(dir.join("h.json")).unwrap();
    let back: TrainHistory =
        serde_json::from_slice(&std::fs::read(dir.join("h.json")).unwrap()).unwrap();
    // serde_json reads floats back to within an ulp, not always bit for bit
    assert_eq!((back.epochs.len(), back.best_epoch), (2, history.best_epoch));
    for (a, b) in back.epochs.iter().zip(&history.epochs) {
        assert!((a.loss - b.loss).abs() < 1e-12 && a.valid.len() == b.valid.len());
    }
    history.save(dir.join("h.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("h.csv")).unwrap(), csv);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ranking_loss_is_added_with_its_weight_and_is_deterministic() {
    let data = data(30, 3, 8, 5);
    let device = Device::flex();
    let config = small_dense().with_dropout(0.0);
    let trie = data.ids.to_trie().unwrap();
    let pairs = Pairs::new(m(&data.queries, data.d), &data.items);
    let base = TrainConfig::new().with_n_epochs(2).with_batch_size(16).with_beam_width(6);
    let run = |train: &TrainConfig| {
        let _guard = rng_lock();
        config.fit(pairs, None, &trie, train, &device).unwrap().1
    };
    let off = run(&base.clone().with_rank_weight(0.0));
    assert!(off.epochs.iter().all(|e| e.rank.abs() < 1e-12), "{off}");
    let ranked = base.clone().with_rank_weight(0.5).with_rank_negatives(3);
    let (a, b) = (run(&ranked), run(&ranked));
    for e in &a.epochs {
        // the beams of an untrained model hold other items, so every epoch has negatives
        assert!(e.rank > 0.0, "{a}");
        let sum = e.cross_entropy + 0.5 * e.rank;
        assert!((e.loss - sum).abs() < 1e-4 * sum.max(1.0), "{e}: loss is ce + 0.5 rank");
    }
    let losses = |h: &TrainHistory| h.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b), "negatives are mined deterministically");
    assert_ne!(losses(&a), losses(&off), "the ranking loss changes training");

    for bad in [
        base.clone().with_rank_weight(-1.0),
        base.clone().with_rank_weight(f64::NAN),
        base.with_rank_weight(1.0).with_rank_negatives(0),
    ] {
        let _guard = rng_lock();
        assert!(
            matches!(
                config.fit(pairs, None, &trie, &bad, &device),
                Err(Error::InvalidConfig { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn training_is_deterministic_given_a_seed() {
    let data = data(10, 2, 4, 9);
    let device = Device::flex();
    let config = tiny().with_dropout(0.1);
    // The ranking loss on (the default): its mining searches run between the seeded draws.
    let train = TrainConfig::new().with_n_epochs(2).with_batch_size(8);
    assert!(train.rank_weight > 0.0);
    let pairs = Pairs::new(m(&data.queries, data.d), &data.items);
    let run = || {
        let _guard = rng_lock();
        let (g, h) =
            config.fit(pairs, None, &data.ids.to_trie().unwrap(), &train, &device).unwrap();
        let trie = data.ids.to_trie().unwrap();
        let id = data.ids.id(0).unwrap();
        let logp = g.log_probs(&trie, m(&data.queries[..4], 4), m(id, id.len())).unwrap();
        (logp, h.epochs.iter().map(|e| e.loss).collect::<Vec<_>>())
    };
    let (a, b) = (run(), run());
    assert_eq!(a.1, b.1, "losses");
    assert_eq!(a.0, b.0, "weights");
}

/// `init` draws every weight from the seeded RNG at once. burn initialises parameters lazily,
/// on first use; a draw from the same RNG between `init` and the first forward pass (another
/// model, another thread) must not change the weights.
#[test]
fn init_draws_all_weights_from_the_seed_at_once() {
    let _guard = rng_lock();
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let device = Device::flex();
    let dims = GeneratorDims::for_layout(10, &layout, 1);
    let ids = assign_ids(&layout, &[0, 1], &[0, 0, 1, 1]).unwrap();
    let trie = ids.to_trie().unwrap();
    let id = ids.id(1).unwrap();
    let queries: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin()).collect();
    let score = |interleave: bool| {
        device.seed(21);
        let g = tiny().with_n_query_vectors(2).init(&dims, &device).unwrap();
        if interleave {
            let _ =
                burn::Tensor::<2>::random([64, 64], burn::tensor::Distribution::Default, &device)
                    .into_data();
        }
        g.log_probs(&trie, m(&queries, 10), m(id, id.len())).unwrap()
    };
    let (plain, interleaved) = (score(false), score(true));
    assert_eq!(plain, interleaved);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Generator>();
    check::<GeneratorConfig>();
    check::<GeneratorDims>();
    check::<TrainConfig>();
    check::<TrainHistory>();
    check::<Error>();
}

#[test]
fn training_resumes_from_a_saved_checkpoint() {
    let data = data(20, 2, 4, 5);
    let _guard = rng_lock();
    let device = Device::flex();
    let config = tiny();
    let dir = std::env::temp_dir().join(format!("cart-model-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("best.cart");
    let train = TrainConfig::new()
        .with_n_epochs(8)
        .with_batch_size(8)
        .with_learning_rate(3e-3)
        .with_checkpoint(Some(path.to_string_lossy().into_owned()));
    let pairs = Pairs::new(m(&data.queries, data.d), &data.items);
    let (_, first) =
        config.fit(pairs, Some(pairs), &data.ids.to_trie().unwrap(), &train, &device).unwrap();
    let loaded = Generator::load(&path, &device).unwrap();
    let (_, more) = loaded.fit_more(pairs, None, &data.ids.to_trie().unwrap(), &train).unwrap();
    // the resumed run starts where the first one stopped, far below a fresh start
    assert!(more.epochs[0].cross_entropy < 0.8 * first.epochs[0].cross_entropy, "{first}\n{more}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saving_into_a_missing_directory_is_an_io_error() {
    let layout = IdLayout::new(4, 2, 5, 3).unwrap();
    let g = random_generator(true, &layout, 4);
    let err = g.save("/nonexistent/dir/g.cart").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

/// An untrained generator with the dense head ranks the first token as the nearest-centroid
/// rule `q . m - |m|^2 / 2` does (`m` the mean item vector of each coarse cluster) and the
/// items of a prefix exactly by `q . e_item`: it starts as a tree search by subtree centroids.
#[test]
fn untrained_dense_head_ranks_coarse_tokens_by_centroid_similarity() {
    // held for the whole test, so that nothing here draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let layout = IdLayout::new(6, 1, 4, 2).unwrap();
    let width = 8;
    let mut rng = Lcg(17);
    let n_items = 12;
    let coarse: Vec<u32> = (0..n_items as u32).map(|i| i % 6).collect();
    let fine: Vec<u32> = (0..n_items as u32).map(|i| (i / 6) % 4).collect();
    let ids = assign_ids(&layout, &coarse, &fine).unwrap();
    let trie = ids.to_trie().unwrap();
    let device = Device::flex();
    let mut g = {
        device.seed(3);
        small_dense().init(&GeneratorDims::for_trie(width, &trie), &device).unwrap()
    };
    assert_eq!(g.dims().n_items, n_items);
    let vocab = layout.vocab_size();
    let table: Vec<f32> = (0..n_items * width).map(|_| rng.next() - 0.5).collect();
    g.set_dense_tables(m(&table, width)).unwrap();
    assert_eq!(g.dense_tables().unwrap().unwrap(), m(&table, width));
    let row = |i: usize| &table[i * width..(i + 1) * width];
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    // cluster c holds items c and c + 6
    let means: Vec<Vec<f32>> = (0..6)
        .map(|c| row(c).iter().zip(row(c + 6)).map(|(a, b)| (a + b) / 2.0).collect())
        .collect();
    let rule =
        |q: &[f32]| -> Vec<f32> { means.iter().map(|m| dot(q, m) - dot(m, m) / 2.0).collect() };
    let rank = |v: &[f32]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        order
    };
    let start = layout.position_range(0).start as usize;
    for _ in 0..5 {
        let q: Vec<f32> = (0..width).map(|_| rng.next() - 0.5).collect();
        let id = ids.id(0).unwrap();
        let logp = g.log_probs(&trie, m(&q, width), m(id, id.len())).unwrap();
        let first = &logp[start..start + 6];
        assert_eq!(rank(first), rank(&rule(&q)), "first-token ranking = nearest-centroid rule");
        // tokens of other positions get no probability at position 0
        assert!(
            logp[..vocab]
                .iter()
                .enumerate()
                .all(|(t, &l)| { (start..start + 6).contains(&t) || l < -1e6 })
        );
        // item 0 is alone under its prefix [k0, v0]: the last step is certain
        let last = &logp[(layout.id_len() - 1) * vocab..];
        let u0 = id[layout.id_len() - 1] as usize;
        assert!(last[u0].abs() < 1e-4, "single child: log p = 0, got {}", last[u0]);
    }
    // the greedy search agrees: its first token is the rule's best cluster
    let q: Vec<f32> = (0..width).map(|_| rng.next() - 0.5).collect();
    let greedy = BeamSearchConfig::default().with_beam_width(1).with_top_k(1);
    let hits = g.search(&trie, greedy, m(&q, width));
    let best = trie.id_of(hits.unwrap()[0][0].item).unwrap().tokens()[0] as usize - start;
    assert_eq!(best, rank(&rule(&q))[0]);
}

/// With `subtree_prior`, an untrained generator's first step is the log-softmax of
/// `scale (q . m - |m|^2 / 2) + ln n` over the coarse clusters (`n` items below each; the
/// transformer starts silent); without it the `ln n` term is absent.
#[test]
fn subtree_prior_adds_log_counts_to_the_first_step() {
    // held for the whole test, so that nothing here draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let layout = IdLayout::new(6, 1, 4, 2).unwrap();
    let width = 8;
    // clusters 0..3 hold three items each, clusters 3..6 one
    let coarse: Vec<u32> = (0..12u32).map(|i| if i < 9 { i % 3 } else { i - 6 }).collect();
    let fine: Vec<u32> = (0..12u32).map(|i| if i < 9 { i / 3 } else { 0 }).collect();
    let ids = assign_ids(&layout, &coarse, &fine).unwrap();
    let trie = ids.to_trie().unwrap();
    let mut rng = Lcg(29);
    let table: Vec<f32> = (0..12 * width).map(|_| rng.next() - 0.5).collect();
    let row = |i: usize| &table[i * width..(i + 1) * width];
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let members = |c: u32| -> Vec<usize> { (0..12).filter(|&i| coarse[i] == c).collect() };
    let means: Vec<Vec<f32>> = (0..6)
        .map(|c| {
            let items = members(c);
            (0..width)
                .map(|d| items.iter().map(|&i| row(i)[d]).sum::<f32>() / items.len() as f32)
                .collect()
        })
        .collect();
    let device = Device::flex();
    let start = layout.position_range(0).start as usize;
    let q: Vec<f32> = (0..width).map(|_| rng.next() - 0.5).collect();
    for prior in [false, true] {
        let mut g = {
            device.seed(5);
            small_dense()
                .with_subtree_prior(prior)
                .init(&GeneratorDims::for_trie(width, &trie), &device)
                .unwrap()
        };
        g.set_dense_tables(m(&table, width)).unwrap();
        let scale = g.config().dense_scale as f32;
        let z: Vec<f32> = (0..6u32)
            .map(|c| {
                let mean = &means[c as usize];
                let log_n = if prior { (members(c).len() as f32).ln() } else { 0.0 };
                scale * (dot(&q, mean) - dot(mean, mean) / 2.0) + log_n
            })
            .collect();
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        let id = ids.id(0).unwrap();
        let logp = g.log_probs(&trie, m(&q, width), m(id, id.len())).unwrap();
        for c in 0..6 {
            let (got, want) = (logp[start + c], z[c] - lse);
            assert!((got - want).abs() < 1e-3, "prior {prior}, cluster {c}: {got} vs {want}");
        }
    }
}

/// With the dense head, the cached scorer's log-probabilities over each prefix's children
/// equal those of recomputing the whole identifier (where the subtree centroids come from the
/// item table's running sums on the device).
#[test]
fn cached_decoding_equals_full_recompute_with_dense_head() {
    // held for the whole test, so that nothing here draws from the RNG the seeded tests share
    let _guard = rng_lock();
    let layout = IdLayout::new(4, 2, 3, 3).unwrap();
    let mut rng = Lcg(23);
    let n_items = 20;
    let coarse: Vec<u32> = (0..n_items as u32).map(|i| i % 4).collect();
    let fine: Vec<u32> = (0..n_items as u32).flat_map(|i| [(i / 4) % 3, (i / 2) % 3]).collect();
    let ids = assign_ids(&layout, &coarse, &fine).unwrap();
    let trie = ids.to_trie().unwrap();
    let mut g = {
        let device = Device::flex();
        device.seed(4);
        tiny().with_dense_head(true).init(&GeneratorDims::for_trie(5, &trie), &device).unwrap()
    };
    let width = g.query_width();
    let table: Vec<f32> = (0..n_items * width).map(|_| rng.next() - 0.5).collect();
    g.set_dense_tables(m(&table, width)).unwrap();
    let (vocab, len) = (layout.vocab_size(), layout.id_len());
    let targets = [3usize, 17];
    let queries: Vec<f32> = (0..targets.len() * width).map(|_| rng.next() - 0.5).collect();
    let mut scorer = g.scorer(&trie, m(&queries, width)).unwrap();
    for position in 0..len {
        let mut tokens = Vec::new();
        let mut nodes = Vec::new();
        for &t in &targets {
            let id = ids.id(t).unwrap();
            tokens.push(if position == 0 { IdLayout::BOS } else { id[position - 1] });
            nodes.push(trie.find(&id[..position]).unwrap());
        }
        let step = Step { position, queries: &[0, 1], tokens: &tokens, nodes: &nodes };
        let mut out = vec![f32::NAN; targets.len() * vocab];
        scorer.score(&step, &mut out).unwrap();
        for (b, &t) in targets.iter().enumerate() {
            let id = ids.id(t).unwrap();
            let q = m(&queries[b * width..(b + 1) * width], width);
            let full = g.log_probs(&trie, q, m(id, id.len())).unwrap();
            let expected = &full[position * vocab..(position + 1) * vocab];
            let got = &out[b * vocab..(b + 1) * vocab];
            let kids = trie.children(nodes[b]);
            for (token, (e, g)) in expected.iter().zip(got).enumerate() {
                if kids.tokens().contains(&(token as Token)) {
                    assert!((e - g).abs() < 1e-4, "position {position} token {token}: {e} vs {g}");
                } else {
                    assert!(*g == f32::NEG_INFINITY && *e < -1e6, "{token}: {e} / {g}");
                }
            }
            let sum: f32 = got.iter().map(|l| l.exp()).sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
        scorer.reorder(&[0, 1]).unwrap();
    }
}
