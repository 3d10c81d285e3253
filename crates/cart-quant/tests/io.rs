//! Save and load: round trips, atomic writes, typed errors on bad files.

use std::path::PathBuf;

use cart_quant::{
    AnyQuantizer, CoarseToFine, CoarseToFineConfig, Error, KMeans, KMeansConfig, Quantizer,
    ResidualQuantizer, ResidualQuantizerConfig, RqVae,
};

use crate::common::{device, uniform};
use crate::rqvae::small_config;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cart-quant-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fitted() -> (ndarray::Array2<f32>, CoarseToFine) {
    let data = uniform(64, 16, 9);
    let config =
        CoarseToFineConfig::new(KMeansConfig::new(4), small_config(16).with_codebook_size(8))
            .with_train(crate::rqvae::small_train().with_n_epochs(2));
    let (q, _) = {
        let _guard = crate::common::rng_lock();
        config.fit(data.view(), &device()).unwrap()
    };
    (data, q)
}

#[test]
fn round_trips_give_identical_codes() {
    let dir = temp_dir("round");
    let (data, q) = fitted();
    let path = dir.join("c2f.cartq");
    q.save(&path).unwrap();
    let back = CoarseToFine::load(&path, &device()).unwrap();
    assert_eq!(q.encode(data.view()).unwrap(), back.encode(data.view()).unwrap());
    let codes = q.encode(data.view()).unwrap();
    assert_eq!(q.decode(codes.view()).unwrap(), back.decode(codes.view()).unwrap());

    let path = dir.join("rqvae.cartq");
    q.fine().save(&path).unwrap();
    let fine = RqVae::load(&path, &device()).unwrap();
    assert_eq!(fine.config().codebook_size, 8);
    assert_eq!(fine.codebook(1).unwrap(), q.fine().codebook(1).unwrap());

    let path = dir.join("kmeans.cartq");
    q.coarse().save(&path).unwrap();
    assert_eq!(KMeans::load(&path, &device()).unwrap().centroids(), q.coarse().centroids());

    let rq = ResidualQuantizerConfig::new(vec![4, 4]).fit(data.view(), &device()).unwrap();
    let path = dir.join("rq.cartq");
    rq.save(&path).unwrap();
    let back = ResidualQuantizer::load(&path, &device()).unwrap();
    assert_eq!(rq.encode(data.view()).unwrap(), back.encode(data.view()).unwrap());

    // No temporary files are left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_files_give_typed_errors() {
    let dir = temp_dir("bad");
    let (_, q) = fitted();
    let path = dir.join("good.cartq");
    q.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let check = |name: &str, content: &[u8], needle: &str| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        match CoarseToFine::load(&p, &device()) {
            Err(Error::Checkpoint { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{name}: expected a checkpoint error, got {other:?}"),
        }
    };
    check("truncated", &bytes[..bytes.len() / 2], "truncated");
    check("tiny", &bytes[..10], "truncated");
    let mut corrupt = bytes;
    let last = corrupt.len() - 10;
    corrupt[last] ^= 0xff;
    check("corrupt", &corrupt, "checksum");
    check("magic", b"definitely not a checkpoint file", "magic");
    // A file of another kind.
    let kpath = dir.join("kmeans.cartq");
    q.coarse().save(&kpath).unwrap();
    check("kind", &std::fs::read(&kpath).unwrap(), "expected a coarse_to_fine");
    assert!(matches!(CoarseToFine::load(dir.join("missing"), &device()), Err(Error::Io { .. })));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn weights_that_do_not_fit_the_config_give_a_typed_error() {
    let dir = temp_dir("mismatch");
    let (_, q) = fitted();
    let path = dir.join("rqvae.cartq");
    q.fine().save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Edit the JSON header and re-seal the container: the file is well formed, but its
    // weights no longer fit its config.
    let bytes = with_header(&bytes, |h| h.replace("\"codebook_size\":8", "\"codebook_size\":9"));
    std::fs::write(&path, &bytes).unwrap();
    match RqVae::load(&path, &device()) {
        Err(Error::Checkpoint { reason, .. }) => {
            assert!(reason.contains("do not match"), "{reason}")
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The file with its `header` section replaced (a well-formed container with a valid
/// checksum: what a forger or a buggy writer produces).
fn with_header(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let file = cart_format::Container::parse(bytes).unwrap();
    let header = edit(std::str::from_utf8(file.section("header").unwrap()).unwrap());
    cart_format::Writer::from_container(&file).replace("header", header.into_bytes()).to_bytes()
}

#[test]
fn a_forged_huge_codebook_is_refused_before_allocating() {
    let (_, q) = fitted();
    let bytes = q.to_bytes().unwrap();
    // 2^28 codes: 8 GiB if built eagerly, over the parameter limit; 2^20 codes: under the
    // limit, but far more than the stored weights (a few KB) hold
    for (size, needle) in
        [(1u64 << 28, "within 2^30 parameters"), (1 << 20, "more parameters than the stored")]
    {
        let forged = with_header(&bytes, |h| {
            h.replace("\"codebook_size\":8", &format!("\"codebook_size\":{size}"))
        });
        match CoarseToFine::from_bytes(&forged, &device()) {
            Err(Error::Checkpoint { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a checkpoint error, got {other:?}"),
        }
    }
}

#[test]
fn any_quantizer_dispatches_on_the_files_kind() {
    let (data, q) = fitted();
    let codes = q.encode(data.view()).unwrap();
    let any = AnyQuantizer::from_bytes(&q.to_bytes().unwrap(), &device()).unwrap();
    assert_eq!(any.kind(), "coarse_to_fine");
    assert_eq!(any.encode(data.view()).unwrap(), codes);
    let rq = ResidualQuantizerConfig::new(vec![4, 4]).fit(data.view(), &device()).unwrap();
    let any = AnyQuantizer::from_bytes(&rq.to_bytes().unwrap(), &device()).unwrap();
    assert_eq!(any.kind(), "residual");
    assert_eq!(any.encode(data.view()).unwrap(), rq.encode(data.view()).unwrap());
    let km = AnyQuantizer::from_bytes(&q.coarse().to_bytes().unwrap(), &device()).unwrap();
    assert_eq!(km.codebook_sizes(), vec![4]);
    // a trie file is not a quantizer
    let trie = cart_format::Writer::new("cart-trie", 2).to_bytes();
    assert!(matches!(AnyQuantizer::from_bytes(&trie, &device()), Err(Error::Checkpoint { .. })));
}

#[test]
fn configs_that_would_allocate_too_much_are_typed_errors() {
    let big = small_config(16).with_codebook_size(100_000_000);
    match big.init(&device()) {
        Err(Error::InvalidConfig { field: "codebook_size", .. }) => {}
        other => panic!("expected an invalid config, got {other:?}"),
    }
}
