//! Exact dense search against a brute-force sort.

use cart_search::{DenseIndex, Error, Hit, Metric};
use ndarray::ArrayView2;
use proptest::prelude::*;

/// Row-major `values` as rows of `dim`.
fn m(values: &[f32], dim: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((values.len() / dim, dim), values).unwrap()
}

fn brute(items: &[f32], dim: usize, q: &[f32], k: usize, metric: Metric) -> Vec<u32> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut s: Vec<(f32, u32)> = items
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| {
            let d: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            let d = if metric == Metric::Cosine { d / (norm(v) * norm(q)) } else { d };
            (d, i as u32)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|x| x.1).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_brute_force(
        dim in 1usize..20,
        n in 1usize..300,
        nq in 1usize..20,
        k in 1usize..40,
        seed in any::<u64>(),
        cosine in any::<bool>(),
    ) {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // coarse values so ties happen and tie-breaking is exercised
            ((s % 9) as f32 - 4.0) / 4.0 + 0.01
        };
        let items: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
        let metric = if cosine { Metric::Cosine } else { Metric::InnerProduct };
        let Ok(index) = DenseIndex::new(m(&items, dim), metric) else {
            return Ok(()); // a zero row under cosine
        };
        let Ok(hits) = index.search(m(&queries, dim), k) else { return Ok(()) };
        prop_assert_eq!(hits.len(), nq);
        for (qi, list) in hits.iter().enumerate() {
            let q = &queries[qi * dim..(qi + 1) * dim];
            let want = brute(&items, dim, q, k, metric);
            prop_assert_eq!(list.len(), k.min(n));
            // same scores as brute force at every rank (items may swap only on float-equal ties)
            for (h, &w) in list.iter().zip(&want) {
                let ws = index.rerank(m(q, dim), &[vec![Hit { item: w, score: 0.0 }]]).unwrap()[0][0].score;
                prop_assert!((h.score - ws).abs() < 1e-5, "rank score {} vs {}", h.score, ws);
            }
        }
    }
}

#[test]
fn errors_on_bad_vectors() {
    assert!(matches!(DenseIndex::new(m(&[], 3), Metric::Cosine), Err(Error::EmptyIndex)));
    let no_columns = ArrayView2::<f32>::from_shape((2, 0), &[]).unwrap();
    assert!(matches!(
        DenseIndex::new(no_columns, Metric::Cosine),
        Err(Error::InvalidParameter { name: "dim", .. })
    ));
    assert!(matches!(
        DenseIndex::new(m(&[1.0, f32::NAN], 2), Metric::Cosine),
        Err(Error::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        DenseIndex::new(m(&[1.0, 1.0, 0.0, 0.0], 2), Metric::Cosine),
        Err(Error::ZeroVector { index: 1, .. })
    ));
    let index = DenseIndex::new(m(&[1.0, 0.0, 0.0, 1.0], 2), Metric::InnerProduct).unwrap();
    assert!(matches!(
        index.search(m(&[1.0, 2.0, 3.0], 3), 1),
        Err(Error::DimensionMismatch { expected: 2, got: 3 })
    ));
    assert!(matches!(
        index.search(m(&[f32::INFINITY, 0.0], 2), 1),
        Err(Error::NonFinite { what: "query", .. })
    ));
    let bad = vec![vec![Hit { item: 9, score: 0.0 }]];
    let one = m(&[1.0, 0.0], 2);
    assert!(matches!(index.rerank(one, &bad), Err(Error::UnknownItem { item: 9, .. })));
    let two = m(&[1.0, 0.0, 1.0, 0.0], 2);
    assert!(matches!(index.rerank(two, &bad), Err(Error::LengthMismatch { .. })));
}

#[test]
fn rerank_orders_by_similarity() {
    let index = DenseIndex::new(m(&[1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 2), Metric::Cosine).unwrap();
    let beams = vec![vec![
        Hit { item: 1, score: -0.1 },
        Hit { item: 0, score: -0.2 },
        Hit { item: 2, score: -0.3 },
    ]];
    let r = index.rerank(m(&[1.0, 0.1], 2), &beams).unwrap();
    assert_eq!(r[0].iter().map(|h| h.item).collect::<Vec<_>>(), vec![0, 2, 1]);
}

#[test]
fn many_queries_and_one_query_agree() {
    let dim = 16;
    let items: Vec<f32> = (0..5000 * dim).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
    let index = DenseIndex::new(m(&items, dim), Metric::Cosine).unwrap();
    let queries: Vec<f32> =
        (0..40 * dim).map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0).collect();
    let batch = index.search(m(&queries, dim), 10).unwrap();
    for (q, list) in queries.chunks_exact(dim).zip(&batch) {
        assert_eq!(&index.search(m(q, dim), 10).unwrap()[0], list);
    }
}

#[test]
fn append_equals_one_build_and_refuses_mismatches() {
    let items = [1.0, 0.0, 0.0, 2.0, 3.0, 4.0, -1.0, 1.0, 0.5, 0.5];
    let whole = DenseIndex::new(m(&items, 2), Metric::Cosine).unwrap();
    let mut first = DenseIndex::new(m(&items[..6], 2), Metric::Cosine).unwrap();
    first.append(DenseIndex::new(m(&items[6..], 2), Metric::Cosine).unwrap()).unwrap();
    assert_eq!(first, whole);
    let before = first.clone();
    let wide = DenseIndex::new(m(&[1.0, 2.0, 3.0], 3), Metric::Cosine).unwrap();
    assert!(matches!(first.append(wide), Err(Error::DimensionMismatch { .. })));
    let ip = DenseIndex::new(m(&[1.0, 2.0], 2), Metric::InnerProduct).unwrap();
    assert!(matches!(first.append(ip), Err(Error::InvalidParameter { .. })));
    assert_eq!(first, before);
}

#[test]
fn from_prepared_takes_exactly_the_rows_of_an_array_collapsed_in_place() {
    let rows = [[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]];
    let mut a = ndarray::Array2::from_shape_fn((4, 2), |(i, j)| rows[i][j]);
    a.collapse_axis(ndarray::Axis(0), 2); // row 2 alone: standard layout, offset 4 of 8 values
    let index = DenseIndex::from_prepared(a, Metric::Cosine).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index.vector(0), Some(&rows[2][..]));
    let mut t = ndarray::Array2::from_shape_fn((2, 2), |(i, j)| rows[i][j]);
    t.swap_axes(0, 1); // not standard layout: copied row by row
    let index = DenseIndex::from_prepared(t, Metric::Cosine).unwrap();
    assert_eq!(index.vector(0), Some(&[1.0f32, 0.0][..]));
    assert_eq!(index.vector(1), Some(&[0.0f32, 1.0][..]));
}
