//! Trie lookups and constrained beam search at 10k, 100k and 1M identifiers.

use std::hint::black_box;
use std::time::Duration;

use cart_benches::{HashScorer, sample_items, synthetic_ids};
use cart_ids::Node;
use cart_search::{BeamSearch, BeamSearchConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const BATCH: usize = 64;

fn trie(c: &mut Criterion) {
    let mut group = c.benchmark_group("ids");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for n in SIZES {
        let ids = synthetic_ids(n, 7).expect("synthetic ids");
        let trie = ids.to_trie().expect("trie");
        let l = trie.layout().id_len();
        // nodes at every depth along random identifiers: what a beam search visits
        let nodes: Vec<Node> = sample_items(n, 1024, 11)
            .into_iter()
            .flat_map(|i| {
                let id = ids.id(i as usize).expect("in range").to_vec();
                (0..l).map(move |d| id[..d].to_vec())
            })
            .map(|p| trie.find(&p).expect("a prefix of a real id"))
            .collect();
        group.throughput(Throughput::Elements(nodes.len() as u64));
        group.bench_with_input(BenchmarkId::new("children", n), &nodes, |b, nodes| {
            b.iter(|| nodes.iter().map(|&node| trie.children(black_box(node)).len()).sum::<usize>())
        });
        let items = sample_items(n, 1024, 13);
        group.throughput(Throughput::Elements(items.len() as u64));
        group.bench_with_input(BenchmarkId::new("get_full_id", n), &items, |b, items| {
            b.iter(|| {
                items
                    .iter()
                    .filter_map(|&i| trie.get(black_box(ids.id(i as usize).expect("in range"))))
                    .count()
            })
        });
    }
    group.finish();
}

fn beam(c: &mut Criterion) {
    let mut group = c.benchmark_group("beam_search");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for n in SIZES {
        let trie = synthetic_ids(n, 7).and_then(|a| a.to_trie()).expect("trie");
        let search =
            BeamSearch::new(&trie, BeamSearchConfig::default().with_beam_width(10).with_top_k(10));
        let vocab = trie.layout().vocab_size();
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::new("beam10_batch64", n), |b| {
            b.iter(|| search.search(&mut HashScorer::new(vocab, BATCH)).expect("search"))
        });
    }
    group.finish();
}

criterion_group!(benches, trie, beam);
