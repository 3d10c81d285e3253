//! Example-based tests of the public API.

use cart_ids::{Error, IdLayout, IdTrie, assign_ids};

fn small() -> (IdLayout, IdTrie) {
    let layout = IdLayout::new(3, 2, 4, 3).unwrap();
    // items: 0 [0,1,2] 1 [0,1,2] 2 [2,3,0] 3 [0,0,0]
    let a = assign_ids(&layout, &[0, 0, 2, 0], &[1, 2, 1, 2, 3, 0, 0, 0]).unwrap();
    (layout, a.to_trie().unwrap())
}

#[test]
fn diagnostics_by_hand() {
    let (_, trie) = small();
    let d = trie.diagnostics();
    assert_eq!(d.n_items, 4);
    assert_eq!(d.n_code_tuples, 3);
    assert_eq!(d.n_colliding, 2);
    assert!((d.collision_rate - 0.5).abs() < 1e-12);
    assert_eq!(d.largest_group, 2);
    assert_eq!(d.unique_histogram, vec![3, 1]);
    let per_depth: Vec<(usize, usize)> =
        d.depths.iter().map(|s| (s.n_prefixes, s.max_items)).collect();
    assert_eq!(per_depth, vec![(2, 3), (3, 2), (3, 2), (4, 1)]);
    let table = d.to_string();
    assert!(table.contains("50.00%"), "{table}");
}

#[test]
fn file_round_trip_and_errors() {
    let (_, trie) = small();
    let dir = std::env::temp_dir().join(format!("cart-ids-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids.trie");
    trie.save(&path).unwrap();
    assert_eq!(IdTrie::load(&path).unwrap(), trie);
    // no temporary file left behind
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = IdTrie::load(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("truncated"), "{err}");

    // another trie format version (re-framed, valid checksum): a version error
    let file = cart_format::Container::parse(&bytes).unwrap();
    let w = cart_format::Writer::from_container(&file).with_version(cart_ids::FORMAT_VERSION + 1);
    std::fs::write(&path, w.to_bytes()).unwrap();
    let v = cart_ids::FORMAT_VERSION + 1;
    assert!(
        matches!(IdTrie::load(&path), Err(Error::UnsupportedVersion { found, .. }) if found == v)
    );
    // another container version: damaged or foreign framing
    let mut c2 = bytes.clone();
    c2[8] = 2;
    std::fs::write(&path, &c2).unwrap();
    let err = IdTrie::load(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("container"), "{err}");

    let mut flipped = bytes.clone();
    let mid = bytes.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let err = IdTrie::load(&path).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");

    assert!(matches!(IdTrie::load(dir.join("missing")), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lookups_on_unknown_input_are_empty_not_panics() {
    let (layout, trie) = small();
    assert!(trie.allowed(&[999]).is_empty());
    assert_eq!(trie.get(&[2, 3]), None);
    assert!(matches!(trie.id_of(77), Err(Error::UnknownItem { item: 77 })));
    let k0 = layout.token(0, 0).unwrap();
    assert_eq!(trie.allowed(&[k0]).len(), 2);
}

#[test]
fn build_rejects_repeats_and_reserved_keys() {
    let layout = IdLayout::new(2, 1, 2, 2).unwrap();
    let id = layout.encode(1, &[1], 0).unwrap();
    let two = [id.tokens(), id.tokens()].concat();
    assert!(matches!(IdTrie::build(layout, &two, &[0, 1]), Err(Error::DuplicateId { .. })));
    let other = layout.encode(0, &[1], 0).unwrap();
    let both = [id.tokens(), other.tokens()].concat();
    assert!(matches!(IdTrie::build(layout, &both, &[3, 3]), Err(Error::DuplicateItem { item: 3 })));
    assert!(matches!(
        IdTrie::build(layout, id.tokens(), &[u32::MAX]),
        Err(Error::InvalidItem { .. })
    ));
    assert!(matches!(
        IdTrie::build(layout, id.tokens(), &[0, 1]),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<IdTrie>();
    check::<IdLayout>();
    check::<cart_ids::IdAssignment>();
    check::<Error>();
}

#[test]
fn memory_per_item_at_1m_is_at_most_32_bytes() {
    // the budget: ids + trie <= 32 bytes per item at 1M items. Uniform random codes
    // (K = 1024 ~ sqrt(n), M = 3, C = 256) share the fewest prefixes: the worst case.
    let layout = IdLayout::new(1024, 3, 256, 16).unwrap();
    let n = 1_000_000usize;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |m: u32| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % u64::from(m)) as u32
    };
    let coarse: Vec<u32> = (0..n).map(|_| next(1024)).collect();
    let fine: Vec<u32> = (0..n * 3).map(|_| next(256)).collect();
    let trie = assign_ids(&layout, &coarse, &fine).unwrap().to_trie().unwrap();
    let per_item = trie.memory_bytes() as f64 / n as f64;
    assert!(per_item <= 32.0, "{per_item} bytes per item");
}

#[test]
fn sparse_item_keys_cost_no_huge_allocation() {
    let layout = IdLayout::new(2, 1, 2, 2).unwrap();
    let a = layout.encode(1, &[1], 0).unwrap();
    let b = layout.encode(0, &[1], 1).unwrap();
    let keys = [cart_ids::MAX_ITEM, 7];
    let mut trie = IdTrie::build(layout, &[a.tokens(), b.tokens()].concat(), &keys).unwrap();
    assert!(trie.memory_bytes() < 1024);
    assert_eq!(trie.get(a.tokens()), Some(cart_ids::MAX_ITEM));
    assert_eq!(trie.id_of(7).unwrap(), b);
    assert!(matches!(trie.id_of(8), Err(Error::UnknownItem { .. })));
    trie.remove(&[cart_ids::MAX_ITEM]).unwrap();
    assert_eq!(trie.len(), 1);
    assert_eq!(IdTrie::from_bytes(&trie.to_bytes()).unwrap(), trie);
}
