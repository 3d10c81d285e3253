//! Prints the cart-ids / cart-search figures at 10k, 100k and 1M identifiers: trie memory per
//! item, child lookup time, and beam-search cost per query split into scorer and search overhead.
//!
//! `cargo run --release -p cart-benches --bin search_report`

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use cart_benches::{HashScorer, sample_items, synthetic_ids};
use cart_ids::Node;
use cart_search::{BeamSearch, BeamSearchConfig};

fn main() -> Result<()> {
    let sizes = [10_000usize, 100_000, 1_000_000];
    let (batch, rounds) = (64usize, 8usize);
    println!(
        "{:>9} {:>6} {:>9} {:>9} {:>10} {:>11} {:>11} {:>11} {:>9} {:>10}",
        "items",
        "K",
        "build_ms",
        "B/item",
        "child_ns",
        "get_id_ns",
        "query_us",
        "scorer_us",
        "overhead",
        "queries/s"
    );
    for n in sizes {
        let ids = synthetic_ids(n, 7)?;
        let t0 = Instant::now();
        let trie = ids.to_trie()?;
        let build_ms = t0.elapsed().as_secs_f64() * 1e3;
        let per_item = trie.memory_bytes() as f64 / n as f64;
        let l = trie.layout().id_len();

        let nodes: Vec<Node> = sample_items(n, 20_000, 11)
            .into_iter()
            .flat_map(|i| {
                let id = ids.id(i as usize).expect("in range").to_vec();
                (0..l).map(move |d| id[..d].to_vec())
            })
            .filter_map(|p| trie.find(&p))
            .collect();
        let reps = 50;
        let t0 = Instant::now();
        let mut sum = 0usize;
        for _ in 0..reps {
            for &node in &nodes {
                sum += trie.children(black_box(node)).len();
            }
        }
        let child_ns = t0.elapsed().as_secs_f64() * 1e9 / (reps * nodes.len()) as f64;
        black_box(sum);

        let items = sample_items(n, 100_000, 13);
        let t0 = Instant::now();
        let found = items
            .iter()
            .filter_map(|&i| trie.get(black_box(ids.id(i as usize).expect("in range"))))
            .count();
        let get_ns = t0.elapsed().as_secs_f64() * 1e9 / items.len() as f64;
        assert_eq!(found, items.len());

        let search =
            BeamSearch::new(&trie, BeamSearchConfig::default().with_beam_width(10).with_top_k(10));
        let vocab = trie.layout().vocab_size();
        search.search(&mut HashScorer::new(vocab, batch))?; // warm up
        let (mut total, mut scorer) = (0.0f64, 0.0f64);
        for _ in 0..rounds {
            let mut s = HashScorer::new(vocab, batch);
            let t0 = Instant::now();
            black_box(search.search(&mut s)?);
            total += t0.elapsed().as_secs_f64();
            scorer += s.elapsed().as_secs_f64();
        }
        let q = (rounds * batch) as f64;
        println!(
            "{:>9} {:>6} {:>9.1} {:>9.2} {:>10.2} {:>11.1} {:>11.2} {:>11.2} {:>8.1}% {:>10.0}",
            n,
            trie.layout().n_coarse(),
            build_ms,
            per_item,
            child_ns,
            get_ns,
            total / q * 1e6,
            scorer / q * 1e6,
            100.0 * (total - scorer) / total,
            q / total
        );
    }
    println!(
        "beam width 10, top 10, batches of {batch} queries, 1 thread; overhead = search time outside the scorer"
    );
    Ok(())
}
