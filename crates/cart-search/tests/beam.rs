//! Beam search against brute force, with a scorer whose scores depend on the whole prefix, so a
//! wrong cache reorder shows up as a wrong score.

use std::collections::BTreeSet;

use cart_ids::{IdLayout, IdTrie, Token, assign_ids};
use cart_search::{BeamSearch, BeamSearchConfig, Error, Hit, Scorer, Step};
use proptest::prelude::*;

/// Log-probability of `token` after `prefix` for `query`: a hash, spread over [-10, 0].
fn logp(query: usize, prefix: &[Token], token: Token) -> f32 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ query as u64;
    for &t in prefix.iter().chain(std::iter::once(&token)) {
        h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
        h ^= h >> 29;
    }
    -((h % 1000) as f32) / 100.0
}

/// A scorer with real per-beam state: the prefix so far, kept in step by `reorder`.
struct PrefixScorer {
    vocab: usize,
    n_queries: usize,
    prefixes: Vec<Vec<Token>>,
    calls: usize,
}

impl PrefixScorer {
    fn new(layout: &IdLayout, n_queries: usize) -> Self {
        Self { vocab: layout.vocab_size(), n_queries, prefixes: Vec::new(), calls: 0 }
    }
}

impl Scorer for PrefixScorer {
    type Error = std::convert::Infallible;
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn n_queries(&self) -> usize {
        self.n_queries
    }
    fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
        self.calls += 1;
        if step.position == 0 {
            assert!(step.tokens.iter().all(|&t| t == IdLayout::BOS));
            self.prefixes = vec![Vec::new(); step.n_beams()];
        } else {
            assert_eq!(self.prefixes.len(), step.n_beams());
            for (p, &t) in self.prefixes.iter_mut().zip(step.tokens) {
                p.push(t);
            }
        }
        for (b, row) in out.chunks_mut(self.vocab).enumerate() {
            assert_eq!(self.prefixes[b].len(), step.position);
            for (t, x) in row.iter_mut().enumerate() {
                *x = logp(step.queries[b], &self.prefixes[b], t as Token);
            }
        }
        Ok(())
    }
    fn reorder(&mut self, parents: &[usize]) -> Result<(), Self::Error> {
        self.prefixes = parents.iter().map(|&p| self.prefixes[p].clone()).collect();
        Ok(())
    }
}

fn brute_force(trie: &IdTrie, query: usize, k: usize) -> Vec<Hit> {
    let mut all: Vec<Hit> = trie
        .iter()
        .map(|(id, item)| {
            let t = id.tokens();
            let score = (0..t.len()).map(|p| logp(query, &t[..p], t[p])).sum();
            Hit { item, score }
        })
        .collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    all.truncate(k);
    all
}

fn tries() -> impl Strategy<Value = IdTrie> {
    (1u32..5, 0usize..3, 1u32..5).prop_flat_map(|(k, m, c)| {
        let layout = IdLayout::new(k, m, c, 64).unwrap();
        let item = (0..k, proptest::collection::vec(0..c, m));
        proptest::collection::vec(item, 0..40).prop_map(move |rows| {
            let coarse: Vec<u32> = rows.iter().map(|r| r.0).collect();
            let fine: Vec<u32> = rows.iter().flat_map(|r| r.1.clone()).collect();
            assign_ids(&layout, &coarse, &fine).unwrap().to_trie().unwrap()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn results_are_valid_distinct_and_ranked(trie in tries(), width in 1usize..6, k in 1usize..12, nq in 1usize..4) {
        let mut scorer = PrefixScorer::new(trie.layout(), nq);
        let config = BeamSearchConfig::default().with_beam_width(width).with_top_k(k);
        let hits = BeamSearch::new(&trie, config).search(&mut scorer).unwrap();
        prop_assert_eq!(hits.len(), nq);
        for (q, list) in hits.iter().enumerate() {
            prop_assert!(list.len() <= k);
            let set: BTreeSet<u32> = list.iter().map(|h| h.item).collect();
            prop_assert_eq!(set.len(), list.len(), "duplicate item");
            for h in list {
                // a real item whose identifier's score is the reported one
                let id = trie.id_of(h.item).unwrap();
                let t = id.tokens();
                let s: f32 = (0..t.len()).map(|p| logp(q, &t[..p], t[p])).sum();
                prop_assert!((s - h.score).abs() < 1e-4, "score {} vs {}", h.score, s);
            }
            prop_assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
            if trie.is_empty() {
                prop_assert!(list.is_empty());
            } else {
                prop_assert!(!list.is_empty());
            }
        }
    }

    #[test]
    fn exhaustive_width_equals_brute_force(trie in tries(), k in 1usize..50, nq in 1usize..3) {
        let width = trie.len().max(1);
        let mut scorer = PrefixScorer::new(trie.layout(), nq);
        let config = BeamSearchConfig::default().with_beam_width(width).with_top_k(k);
        let hits = BeamSearch::new(&trie, config).search(&mut scorer).unwrap();
        for (q, list) in hits.iter().enumerate() {
            let expected = brute_force(&trie, q, k);
            prop_assert_eq!(list.len(), expected.len().min(k));
            // the best k scores, rank by rank (items may differ only between equal scores)
            for (g, w) in list.iter().zip(&expected) {
                prop_assert!((g.score - w.score).abs() < 1e-4, "{:?} vs {:?}", list, expected);
            }
        }
        // one scoring call per identifier position: incremental, never re-running a prefix
        if !trie.is_empty() {
            prop_assert_eq!(scorer.calls, trie.layout().id_len());
        }
    }
}

#[test]
fn rejects_bad_parameters_and_scores() {
    let layout = IdLayout::new(2, 1, 2, 1).unwrap();
    let trie = assign_ids(&layout, &[0, 1], &[0, 1]).unwrap().to_trie().unwrap();
    let search = |c| BeamSearch::new(&trie, c).search(&mut PrefixScorer::new(&layout, 1));
    assert!(matches!(
        search(BeamSearchConfig::default().with_beam_width(0)),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        search(BeamSearchConfig::default().with_top_k(0)),
        Err(Error::InvalidParameter { .. })
    ));

    let mut wrong = PrefixScorer::new(&layout, 1);
    wrong.vocab += 1;
    let r = BeamSearch::new(&trie, BeamSearchConfig::default()).search(&mut wrong);
    assert!(matches!(r, Err(Error::VocabMismatch { .. })));

    struct Nan(usize);
    impl Scorer for Nan {
        type Error = std::io::Error;
        fn vocab_size(&self) -> usize {
            self.0
        }
        fn n_queries(&self) -> usize {
            1
        }
        fn score(&mut self, _: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
            out.fill(f32::NAN);
            Ok(())
        }
        fn reorder(&mut self, _: &[usize]) -> Result<(), Self::Error> {
            Err(std::io::Error::other("never reached"))
        }
    }
    let r =
        BeamSearch::new(&trie, BeamSearchConfig::default()).search(&mut Nan(layout.vocab_size()));
    assert!(matches!(r, Err(Error::NanScore { position: 0, .. })));
}

#[test]
fn scorer_errors_are_passed_on() {
    struct Fails(usize);
    impl Scorer for Fails {
        type Error = std::io::Error;
        fn vocab_size(&self) -> usize {
            self.0
        }
        fn n_queries(&self) -> usize {
            1
        }
        fn score(&mut self, _: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
            out.fill(-1.0);
            Ok(())
        }
        fn reorder(&mut self, _: &[usize]) -> Result<(), Self::Error> {
            Err(std::io::Error::other("cache lost"))
        }
    }
    let layout = IdLayout::new(2, 1, 2, 1).unwrap();
    let trie = assign_ids(&layout, &[0, 1], &[0, 1]).unwrap().to_trie().unwrap();
    let r =
        BeamSearch::new(&trie, BeamSearchConfig::default()).search(&mut Fails(layout.vocab_size()));
    let err = r.unwrap_err();
    assert!(matches!(err, Error::Scorer(_)) && err.to_string().contains("cache lost"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BeamSearch<'_>>();
    check::<cart_search::DenseIndex>();
    check::<Error>();
}

#[test]
fn wide_tries_exercise_streaming_selection() {
    // 3000 items under 3 clusters of 40 codes: hundreds of candidates per step, so the
    // candidate buffer is cut many times
    let layout = IdLayout::new(3, 2, 40, 8).unwrap();
    let n = 3000u32;
    let coarse: Vec<u32> = (0..n).map(|i| i % 3).collect();
    let fine: Vec<u32> = (0..n).flat_map(|i| [(i * 7) % 40, (i * 13 + i / 40) % 40]).collect();
    let trie = assign_ids(&layout, &coarse, &fine).unwrap().to_trie().unwrap();
    for (width, k) in [(trie.len(), 25), (trie.len(), 200), (1, 3), (17, 40)] {
        let mut scorer = PrefixScorer::new(&layout, 3);
        let config = BeamSearchConfig::default().with_beam_width(width).with_top_k(k);
        let hits = BeamSearch::new(&trie, config).search(&mut scorer).unwrap();
        for (q, list) in hits.iter().enumerate() {
            assert!(!list.is_empty() && list.len() <= k);
            let set: BTreeSet<u32> = list.iter().map(|h| h.item).collect();
            assert_eq!(set.len(), list.len());
            if width == trie.len() {
                assert_eq!(list.len(), k);
                let expected = brute_force(&trie, q, k);
                for (g, w) in list.iter().zip(&expected) {
                    assert!((g.score - w.score).abs() < 1e-4, "width {width} k {k}");
                }
            }
        }
    }
}
