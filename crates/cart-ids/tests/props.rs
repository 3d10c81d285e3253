//! Property tests: the trie against a brute-force model of the identifier set.

use std::collections::{BTreeMap, BTreeSet};

use cart_ids::{Error, IdAssignment, IdLayout, IdTrie, Node, Token, assign_ids};
use proptest::prelude::*;

/// A small layout and codes for up to 60 items, drawn to collide often.
fn codes() -> impl Strategy<Value = (IdLayout, Vec<u32>, Vec<u32>)> {
    (1u32..6, 0usize..4, 1u32..5, 1u32..6).prop_flat_map(|(k, m, c, u)| {
        let layout = IdLayout::new(k, m, c, u).unwrap();
        let item = (0..k, proptest::collection::vec(0..c, m));
        proptest::collection::vec(item, 0..60).prop_map(move |rows| {
            let coarse = rows.iter().map(|r| r.0).collect();
            let fine = rows.iter().flat_map(|r| r.1.clone()).collect();
            (layout, coarse, fine)
        })
    })
}

/// Identifiers that fit their layout: assignment succeeded.
fn assigned() -> impl Strategy<Value = (IdLayout, Vec<Token>)> {
    codes().prop_filter_map("uniqueness overflow", |(layout, coarse, fine)| {
        assign_ids(&layout, &coarse, &fine).ok().map(|a| (layout, a.tokens().to_vec()))
    })
}

/// Brute force: next tokens after every prefix of every identifier.
fn model_children(ids: &[Token], l: usize) -> BTreeMap<Vec<Token>, BTreeSet<Token>> {
    let mut m: BTreeMap<Vec<Token>, BTreeSet<Token>> = BTreeMap::new();
    for id in ids.chunks_exact(l) {
        for d in 0..l {
            m.entry(id[..d].to_vec()).or_default().insert(id[d]);
        }
    }
    m
}

fn check_against_model(trie: &IdTrie, ids: &[Token], items: &[u32]) {
    let l = trie.layout().id_len();
    assert_eq!(trie.len(), items.len());
    for (id, &item) in ids.chunks_exact(l).zip(items) {
        assert_eq!(trie.get(id), Some(item));
        assert_eq!(trie.id_of(item).unwrap().tokens(), id);
    }
    let model = model_children(ids, l);
    for (prefix, next) in &model {
        let got: Vec<Token> = trie.allowed(prefix).to_vec();
        assert_eq!(got, next.iter().copied().collect::<Vec<_>>(), "prefix {prefix:?}");
        let node = trie.find(prefix).unwrap();
        let under = ids.chunks_exact(l).filter(|id| id.starts_with(prefix)).count();
        assert_eq!(trie.leaf_range(node).len(), under);
    }
    if ids.is_empty() {
        assert!(trie.allowed(&[]).is_empty());
    }
    // a walk through children() reaches exactly the identifier set
    let mut found = 0;
    let mut stack = vec![Node::ROOT];
    while let Some(n) = stack.pop() {
        let kids = trie.children(n);
        if kids.is_empty() {
            assert!(trie.item(n).is_some() || trie.is_empty());
            found += usize::from(trie.item(n).is_some());
        }
        stack.extend((0..kids.len()).map(|j| kids.node(j)));
    }
    assert_eq!(found, items.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn assignment_is_distinct_deterministic_and_keeps_codes((layout, coarse, fine) in codes()) {
        let m = layout.n_levels();
        match assign_ids(&layout, &coarse, &fine) {
            Ok(a) => {
                let set: BTreeSet<&[Token]> = a.tokens().chunks_exact(layout.id_len()).collect();
                prop_assert_eq!(set.len(), coarse.len());
                for i in 0..coarse.len() {
                    let v = a.semantic_id(i).unwrap().values(&layout).unwrap();
                    prop_assert_eq!(v[0], coarse[i]);
                    prop_assert_eq!(&v[1..=m], &fine[i * m..(i + 1) * m]);
                }
                prop_assert_eq!(assign_ids(&layout, &coarse, &fine).unwrap(), a);
            }
            Err(Error::UniqueOverflow { needed, available, .. }) => {
                let mut groups: BTreeMap<(u32, &[u32]), usize> = BTreeMap::new();
                for i in 0..coarse.len() {
                    *groups.entry((coarse[i], &fine[i * m..(i + 1) * m])).or_default() += 1;
                }
                prop_assert_eq!(needed, *groups.values().max().unwrap());
                prop_assert!(needed > available as usize);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn trie_matches_brute_force((layout, ids) in assigned()) {
        let trie = IdTrie::from_ids(layout, &ids).unwrap();
        let items: Vec<u32> = (0..trie.len() as u32).collect();
        check_against_model(&trie, &ids, &items);
        let d = trie.diagnostics();
        prop_assert_eq!(d.n_items, items.len());
        prop_assert_eq!(d.unique_histogram.iter().sum::<usize>(), items.len());
    }

    #[test]
    fn save_load_and_serde_round_trip((layout, ids) in assigned()) {
        let trie = IdTrie::from_ids(layout, &ids).unwrap();
        let back = IdTrie::from_bytes(&trie.to_bytes()).unwrap();
        prop_assert_eq!(&back, &trie);
        let json = serde_json::to_string(&trie).unwrap();
        prop_assert_eq!(&serde_json::from_str::<IdTrie>(&json).unwrap(), &trie);
    }

    #[test]
    fn insert_after_build_equals_one_build((layout, ids) in assigned(), split in 0usize..60) {
        let l = layout.id_len();
        let n = ids.len() / l;
        let split = split.min(n);
        // items keyed in reverse, so keys and leaf order differ
        let items: Vec<u32> = (0..n as u32).rev().collect();
        let mut trie = IdTrie::build(layout, &ids[..split * l], &items[..split]).unwrap();
        trie.insert(&ids[split * l..], &items[split..]).unwrap();
        prop_assert_eq!(&trie, &IdTrie::build(layout, &ids, &items).unwrap());
        check_against_model(&trie, &ids, &items);
        // inserting any of them again fails and changes nothing
        if n > 0 {
            let before = trie.clone();
            prop_assert!(trie.insert(&ids[..l], &[u32::MAX - 1]).is_err());
            prop_assert!(trie.insert(&ids[..l].iter().rev().copied().collect::<Vec<_>>(), &items[..1]).is_err());
            prop_assert_eq!(&trie, &before);
        }
    }

    #[test]
    fn removed_items_are_gone((layout, ids) in assigned(), mask in proptest::collection::vec(any::<bool>(), 60)) {
        let l = layout.id_len();
        let mut trie = IdTrie::from_ids(layout, &ids).unwrap();
        let n = trie.len();
        let gone: Vec<u32> = (0..n as u32).filter(|&i| mask[i as usize]).collect();
        trie.remove(&gone).unwrap();
        for &g in &gone {
            prop_assert!(!trie.contains_item(g));
            prop_assert!(trie.get(&ids[g as usize * l..(g as usize + 1) * l]).is_none());
            let unknown = matches!(trie.id_of(g), Err(Error::UnknownItem { .. }));
            prop_assert!(unknown);
        }
        let kept: Vec<u32> = (0..n as u32).filter(|&i| !mask[i as usize]).collect();
        let kept_ids: Vec<Token> = kept.iter().flat_map(|&i| ids[i as usize * l..(i as usize + 1) * l].to_vec()).collect();
        check_against_model(&trie, &kept_ids, &kept);
        // removing again is an error and changes nothing
        if let Some(&g) = gone.first() {
            let before = trie.clone();
            prop_assert!(trie.remove(&[g]).is_err());
            prop_assert_eq!(&trie, &before);
        }
    }

    #[test]
    fn insert_codes_gives_fresh_suffixes((layout, coarse, fine) in codes(), split in 0usize..60) {
        let m = layout.n_levels();
        let n = coarse.len();
        let split = split.min(n);
        let Ok(first) = assign_ids(&layout, &coarse[..split], &fine[..split * m]) else { return Ok(()) };
        let mut trie = first.to_trie().unwrap();
        let new_items: Vec<u32> = (split as u32..n as u32).collect();
        let before = trie.clone();
        match trie.insert_codes(&new_items, &coarse[split..], &fine[split * m..]) {
            Ok(ids) => {
                prop_assert_eq!(trie.len(), n);
                for (j, &item) in new_items.iter().enumerate() {
                    let id = &ids[j * layout.id_len()..(j + 1) * layout.id_len()];
                    prop_assert_eq!(trie.get(id), Some(item));
                }
                // with everything in, this succeeds exactly when a one-shot assignment does,
                // and gives the same identifiers (suffixes follow item order in both)
                let one_shot = assign_ids(&layout, &coarse, &fine).unwrap();
                prop_assert_eq!(&IdAssignment::from_trie(&trie).unwrap(), &one_shot);
            }
            Err(Error::NoFreeUnique { .. }) => {
                prop_assert_eq!(&trie, &before);
                prop_assert!(assign_ids(&layout, &coarse, &fine).is_err());
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn decoding_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(0usize..300, 4),
        layout in proptest::collection::vec(0u32..6, 4),
    ) {
        let _ = IdTrie::from_bytes(&bytes);
        // well-framed containers (valid checksum) with arbitrary sections reach the checks
        // past the framing
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut parts = vec![&bytes[..cuts[0]]];
        parts.extend(cuts.windows(2).map(|w| &bytes[w[0]..w[1]]));
        let layout: Vec<u8> = layout.iter().flat_map(|v| v.to_le_bytes()).collect();
        let file = cart_format::Writer::new(cart_ids::KIND, cart_ids::FORMAT_VERSION)
            .section("layout", layout)
            .section("nodes", parts[0].to_vec())
            .section("offsets", parts[1].to_vec())
            .section("labels", parts[2].to_vec())
            .section("leaves", parts[3].to_vec())
            .to_bytes();
        let _ = IdTrie::from_bytes(&file);
    }

    #[test]
    fn damaged_files_are_errors((layout, ids) in assigned(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = IdTrie::from_ids(layout, &ids).unwrap().to_bytes();
        let i = at.index(bytes.len());
        let mut bad = bytes.clone();
        bad[i] ^= flip;
        prop_assert!(IdTrie::from_bytes(&bad).is_err());
        prop_assert!(IdTrie::from_bytes(&bytes[..i]).is_err());
    }

    #[test]
    fn building_from_arbitrary_tokens_never_panics(
        (layout, _) in assigned(),
        raw in proptest::collection::vec(0u32..40, 0..50),
        items in proptest::collection::vec(0u32..20, 0..12),
    ) {
        let _ = IdTrie::build(layout, &raw, &items);
        let mut t = IdTrie::empty(layout);
        let _ = t.insert(&raw, &items);
        let _ = t.insert_codes(&items, &raw[..items.len().min(raw.len())], &raw);
        let _ = t.remove(&items);
        let _ = t.allowed(&raw);
    }
}
