//! The index directory under hostile conditions: files from other saves, edited manifests,
//! concurrent saves and loads, crashes (kill -9) in the middle of a save.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use burn::prelude::Device;
use cart::{CartIndex, Error, FineTune};

use crate::index::{config, data, fit, rng_lock, scratch};

/// The dense vectors of an index, exactly.
fn dense_rows(index: &CartIndex) -> Vec<f32> {
    let d = index.dense().unwrap();
    (0..d.len() as u32).flat_map(|i| d.vector(i).unwrap().to_vec()).collect()
}

/// The same data fitted with other seeds: an index whose files all differ from `fit`'s.
fn other_index(d: &cart::synthetic::SyntheticCorpus) -> CartIndex {
    let c = config(1).with_seed_everywhere(11);
    CartIndex::fit(&c, crate::index::corpus_of(d), &Device::flex()).unwrap()
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    names
}

fn copy_file(from: &Path, to: &Path, name: &str) {
    fs::copy(from.join(name), to.join(name)).unwrap();
}

#[test]
fn files_from_another_index_or_save_are_refused() {
    let _guard = rng_lock();
    let d = data(120);
    let a = fit(&d, 1);
    let b = other_index(&d);
    let root = scratch("identity");
    let device = Device::flex();
    for file in ["quantizer.bin", "rerank.bin", "generator.bin", "trie.bin"] {
        let (da, db) = (root.join(format!("a-{file}")), root.join(format!("b-{file}")));
        a.save(&da).unwrap();
        b.save(&db).unwrap();
        if fs::read(da.join(file)).unwrap() == fs::read(db.join(file)).unwrap() {
            continue; // the same bytes: nothing to tell apart
        }
        copy_file(&db, &da, file);
        let e = CartIndex::load(&da, &device).unwrap_err();
        assert!(
            matches!(&e, Error::Format { path, reason } if path.ends_with(file) && reason.contains("another")),
            "{file}: {e}"
        );
    }
    // a generator.bin from a later save of the same index (fine-tuned in between)
    let first = root.join("first");
    a.save(&first).unwrap();
    let mut later = a;
    let ft = FineTune::new(d.train_queries.view(), &d.train_items).with_train(config(1).train);
    later.fine_tune(&ft).unwrap();
    let second = root.join("second");
    later.save(&second).unwrap();
    copy_file(&second, &first, "generator.bin");
    assert!(matches!(CartIndex::load(&first, &device), Err(Error::Format { .. })));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn an_edited_manifest_is_refused() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("manifest");
    let device = Device::flex();
    let edits: [(&str, &str); 3] = [
        ("\"beam_width\": 8", "\"beam_width\": 9"),
        ("\"beam_width\": 8", "\"beam_width\": 0"),
        ("\"rerank\": true", "\"rerank\": false"),
    ];
    for (i, (from, to)) in edits.into_iter().enumerate() {
        let dir = root.join(format!("m{i}"));
        index.save(&dir).unwrap();
        let p = dir.join("index.json");
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{from} not in the manifest");
        fs::write(&p, text.replace(from, to)).unwrap();
        let e = CartIndex::load(&dir, &device).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{to}: {e}");
    }
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn rerank_vectors_reload_bit_identical_and_saves_are_stable() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("ulp");
    let device = Device::flex();
    let mut current = index.clone();
    let mut first_bytes = None;
    for round in 0..3 {
        let dir = root.join(format!("r{round}"));
        current.save(&dir).unwrap();
        let bytes = fs::read(dir.join("rerank.bin")).unwrap();
        assert_eq!(first_bytes.get_or_insert_with(|| bytes.clone()), &bytes, "round {round}");
        current = CartIndex::load(&dir, &device).unwrap();
        assert_eq!(dense_rows(&current), dense_rows(&index), "round {round}");
    }
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn concurrent_saves_and_loads_never_mix_or_lose_an_index() {
    let _guard = rng_lock();
    let d = data(120);
    let a = fit(&d, 1);
    let b = other_index(&d);
    let (rows_a, rows_b) = (dense_rows(&a), dense_rows(&b));
    let (gen_a, gen_b) = (a.generator().to_bytes().unwrap(), b.generator().to_bytes().unwrap());
    assert_ne!(gen_a, gen_b);
    let root = scratch("concurrent");
    let dir = root.join("idx");
    a.save(&dir).unwrap();
    let device = Device::flex();
    std::thread::scope(|s| {
        for (t, index) in [&a, &b, &a, &b].into_iter().enumerate() {
            let dir = &dir;
            s.spawn(move || {
                for round in 0..6 {
                    index.save(dir).unwrap_or_else(|e| panic!("thread {t} round {round}: {e}"));
                }
            });
        }
        for _ in 0..12 {
            let loaded = CartIndex::load(&dir, &device).unwrap();
            let rows = dense_rows(&loaded);
            let generator = loaded.generator().to_bytes().unwrap();
            assert!(
                (rows == rows_a && generator == gen_a) || (rows == rows_b && generator == gen_b),
                "a load mixed two saves"
            );
        }
    });
    let names = entries(&root);
    assert_eq!(names, vec![".idx.lock", "idx"], "leftovers of the saves");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_crash_between_the_renames_is_recovered_and_leftovers_cleaned() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("crash");
    let dir = root.join("idx");
    index.save(&dir).unwrap();
    // the state a crash between the two renames leaves: the old index aside, a new one whole
    // or half written, no index under the name
    fs::rename(&dir, root.join(".idx.old-1-0-0")).unwrap();
    fs::create_dir(root.join(".idx.tmp-1-1-0")).unwrap();
    fs::write(root.join(".idx.tmp-1-1-0").join("trie.bin"), b"half").unwrap();
    let device = Device::flex();
    let loaded = CartIndex::load(&dir, &device).unwrap();
    assert_eq!(loaded.trie(), index.trie());
    assert!(dir.join("index.json").exists(), "recovered under its name");
    index.save(&dir).unwrap();
    let names = entries(&root);
    assert_eq!(names, vec![".idx.lock", "idx"], "stale siblings are removed by the next save");
    let _ = fs::remove_dir_all(&root);
}

#[cfg(unix)]
#[test]
fn saving_through_a_symlink_keeps_the_link() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("link");
    let target = root.join("real");
    index.save(&target).unwrap();
    let link = root.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    index.save(&link).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    CartIndex::load(&link, &Device::flex()).unwrap();
    let _ = fs::remove_dir_all(&root);
}

const CHILD: &str = "CART_TEST_SAVE_FOREVER";

/// Not a test on its own: the child process of the kill -9 test (it returns at once unless
/// the parent set the variable), saving one index over and over until it is killed.
#[test]
fn child_saves_until_killed() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (source, target) = spec.split_once('|').unwrap();
    let device = Device::flex();
    let index = CartIndex::load(source, &device).unwrap();
    loop {
        index.save(target).unwrap();
    }
}

#[test]
fn kill_9_during_saves_never_loses_the_index() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("kill");
    let (source, target) = (root.join("source"), root.join("target"));
    index.save(&source).unwrap();
    index.save(&target).unwrap();
    let exe = std::env::current_exe().unwrap();
    let device = Device::flex();
    // seeded, spread kill times: some during the child's start, most inside saves
    let mut state = 0x9e37_79b9_u64;
    for round in 0..12 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = 150 + (state >> 33) % 400;
        let mut child = Command::new(&exe)
            .args(["--exact", "store::child_saves_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}|{}", source.display(), target.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        let loaded = CartIndex::load(&target, &device)
            .unwrap_or_else(|e| panic!("round {round} (killed after {wait} ms): {e}"));
        assert_eq!(loaded.trie(), index.trie());
    }
    index.save(&target).unwrap();
    let leftovers: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = fs::remove_dir_all(&root);
}

/// Every file of an index, damaged: a flipped bit at seeded positions (the header, the body,
/// the trailer) or a cut, is an error on load, never a panic and never an index.
#[test]
fn every_index_file_damaged_anywhere_is_an_error() {
    let _guard = rng_lock();
    let d = data(120);
    let index = fit(&d, 1);
    let root = scratch("fuzz");
    let dir = root.join("idx");
    index.save(&dir).unwrap();
    let device = Device::flex();
    let mut state = 0x2545_f491_u64;
    for file in
        ["index.json", "quantizer.bin", "trie.bin", "generator.bin", "rerank.bin", "history.json"]
    {
        let path = dir.join(file);
        let good = fs::read(&path).unwrap();
        let n = good.len();
        let mut positions = vec![0, 8, 20, n / 2, n - 5, n - 1];
        for _ in 0..6 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            positions.push((state >> 33) as usize % n);
        }
        for at in positions {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(CartIndex::load(&dir, &device).is_err(), "{file}: bit flipped at {at}");
        }
        for cut in [0, n / 3, n - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(CartIndex::load(&dir, &device).is_err(), "{file}: cut to {cut}");
        }
        fs::write(&path, &good).unwrap();
        CartIndex::load(&dir, &device).unwrap();
    }
    let _ = fs::remove_dir_all(&root);
}
