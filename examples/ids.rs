//! Semantic identifiers from codes: assign collision-free ids, build the trie, print its
//! diagnostics, save and reload it, then add items to the live index.
//!
//! ```sh
//! # codes written by the quantize example ([n, 1 + M] u32: k, v1..vM per item)
//! cargo run --release -p cart-examples --example quantize -- examples/data/emoji/items.npy /tmp/codes.npy
//! cargo run --release -p cart-examples --example ids -- /tmp/codes.npy [--codebook C] [--out ids.trie]
//! # without a file: 100k items with random codes
//! cargo run --release -p cart-examples --example ids
//! ```

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use cart_examples::read_u32;
use cart_ids::{IdLayout, IdTrie, assign_ids};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let out = flag("--out").cloned().unwrap_or_else(|| {
        std::env::temp_dir().join("cart-ids-example.trie").to_string_lossy().into_owned()
    });

    // codes: [n, 1 + M], column 0 the coarse cluster
    let (codes, n, width) = match args.first().filter(|a| !a.starts_with("--")) {
        Some(path) => {
            let a = read_u32(path)?;
            ensure!(a.shape.len() == 2 && a.cols() >= 1, "{path}: expected [n, 1 + M] codes");
            println!("read {} items x {} codes from {path}", a.rows(), a.cols());
            let (n, w) = (a.rows(), a.cols());
            (a.data, n, w)
        }
        None => {
            let n = 100_000;
            println!("no codes file given: {n} items with random codes (K=316, M=3, C=256)");
            let mut s = 42u64;
            let mut next = |m: u64| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % m) as u32
            };
            let codes = (0..n).flat_map(|_| [next(316), next(256), next(256), next(256)]).collect();
            (codes, n, 4)
        }
    };
    let m = width - 1;
    let coarse: Vec<u32> = codes.chunks_exact(width).map(|r| r[0]).collect();
    let fine: Vec<u32> = codes.chunks_exact(width).flat_map(|r| r[1..].to_vec()).collect();
    let n_coarse = coarse.iter().max().map_or(1, |&k| k + 1);
    let codebook = match flag("--codebook") {
        Some(c) => c.parse().context("--codebook")?,
        None => fine.iter().max().map_or(1, |&v| v + 1),
    };

    // size U from the data: the largest collision group, plus room for later inserts
    let probe = IdLayout::new(n_coarse, m, codebook, u32::try_from(n.max(1))?)?;
    let needed = assign_ids(&probe, &coarse, &fine)?.largest_group() as u32;
    let layout = IdLayout::new(n_coarse, m, codebook, needed + 4)?;
    println!(
        "layout: K={} M={} C={} U={} -> {} tokens per id, vocabulary {}",
        layout.n_coarse(),
        layout.n_levels(),
        layout.codebook_size(),
        layout.n_unique(),
        layout.id_len(),
        layout.vocab_size()
    );

    let t0 = Instant::now();
    let ids = assign_ids(&layout, &coarse, &fine)?;
    let mut trie = ids.to_trie()?;
    println!("assigned ids and built the trie in {:.1} ms\n", t0.elapsed().as_secs_f64() * 1e3);
    println!("{}", trie.diagnostics());

    trie.save(&out)?;
    let back = IdTrie::load(&out)?;
    ensure!(back == trie, "reloaded trie differs");
    println!("saved and reloaded {out} ({} bytes)", std::fs::metadata(&out)?.len());

    let first = ids.id(0).context("no items")?;
    println!(
        "item 0 has id {}; after its coarse token the trie allows {} next tokens",
        trie.id_of(0)?,
        trie.allowed(&first[..1]).len()
    );

    // a new item with item 0's codes: it gets the next free suffix of that tuple
    let new_item = u32::try_from(n)?;
    let given = trie.insert_codes(&[new_item], &coarse[..1], &fine[..m])?;
    println!(
        "inserted item {new_item} with item 0's codes: id {given:?}, {} items now",
        trie.len()
    );
    trie.remove(&[new_item])?;
    Ok(())
}
