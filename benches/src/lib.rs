//! Shared pieces of the cart-rs benches: seeded synthetic identifiers and a cheap scorer.

use std::time::{Duration, Instant};

use cart_ids::{IdAssignment, IdLayout, Token, assign_ids};
use cart_search::{Scorer, Step};
use ndarray::Array2;

/// A small, fast, seeded generator (xorshift64*), so benches need no `rand`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// The layout the benches use for `n` items: `K = sqrt(n)` clamped to 64..=1024, `M = 3`,
/// `C = 256`, `U = 16` (a TIGER-like shape).
pub fn bench_layout(n: usize) -> IdLayout {
    let k = ((n as f64).sqrt().round() as u32).clamp(64, 1024);
    IdLayout::new(k, 3, 256, 16).expect("a valid layout by construction")
}

/// Identifiers for `n` items with uniform random codes: the fewest shared prefixes, so the
/// largest trie for its size.
///
/// # Errors
/// Propagates [`cart_ids::Error`] (a collision group over 16 items, astronomically unlikely).
pub fn synthetic_ids(n: usize, seed: u64) -> cart_ids::Result<IdAssignment> {
    let layout = bench_layout(n);
    let mut rng = Rng::new(seed);
    let coarse: Vec<u32> = (0..n).map(|_| rng.below(layout.n_coarse())).collect();
    let fine: Vec<u32> = (0..n * 3).map(|_| rng.below(layout.codebook_size())).collect();
    assign_ids(&layout, &coarse, &fine)
}

/// A cheap stand-in for the generator: hashed log-probabilities for every vocabulary entry,
/// with a real per-beam state (a running hash of the prefix) that follows the beams. It also
/// measures its own time, so the search's overhead is the total minus [`HashScorer::elapsed`].
#[derive(Debug)]
pub struct HashScorer {
    vocab: usize,
    n_queries: usize,
    state: Vec<u64>,
    scratch: Vec<u64>,
    elapsed: Duration,
}

impl HashScorer {
    /// A scorer for `n_queries` queries over a vocabulary of `vocab` tokens.
    pub fn new(vocab: usize, n_queries: usize) -> Self {
        Self { vocab, n_queries, state: Vec::new(), scratch: Vec::new(), elapsed: Duration::ZERO }
    }

    /// Time spent inside [`Scorer::score`] and [`Scorer::reorder`] so far.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl Scorer for HashScorer {
    type Error = std::convert::Infallible;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn n_queries(&self) -> usize {
        self.n_queries
    }

    fn score(&mut self, step: &Step<'_>, out: &mut [f32]) -> Result<(), Self::Error> {
        let t0 = Instant::now();
        if step.position == 0 {
            self.state = step.queries.iter().map(|&q| q as u64 + 1).collect();
        }
        for ((s, &t), row) in self.state.iter_mut().zip(step.tokens).zip(out.chunks_mut(self.vocab))
        {
            *s = (*s ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
            let mut h = *s;
            for x in row {
                h ^= h << 13;
                h ^= h >> 7;
                h ^= h << 17;
                *x = -((h & 0xffff) as f32) * (8.0 / 65536.0);
            }
        }
        self.elapsed += t0.elapsed();
        Ok(())
    }

    fn reorder(&mut self, parents: &[usize]) -> Result<(), Self::Error> {
        let t0 = Instant::now();
        self.scratch.clear();
        self.scratch.extend(parents.iter().map(|&p| self.state[p]));
        std::mem::swap(&mut self.state, &mut self.scratch);
        self.elapsed += t0.elapsed();
        Ok(())
    }
}

/// Random full identifiers of `ids` (as token slices' item numbers), for lookup benches.
pub fn sample_items(n: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.below(n as u32)).collect()
}

/// The prefix of length `depth` of item `item`'s identifier in `ids`.
pub fn prefix(ids: &IdAssignment, item: u32, depth: usize) -> &[Token] {
    &ids.id(item as usize).expect("sampled below n")[..depth]
}

/// Seeded clustered vectors: `n` points around `n_centres` random centres in `d` dimensions
/// (Gaussian, noise 0.5), L2-normalised like the output of an embedding model.
pub fn clustered(n: usize, d: usize, n_centres: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    let mut normal = move || {
        let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    };
    let n_centres = n_centres.clamp(1, n.max(1));
    let centres = Array2::from_shape_fn((n_centres, d), |_| normal());
    let mut data = Array2::from_shape_fn((n, d), |_| 0.5 * normal());
    for (i, mut row) in data.outer_iter_mut().enumerate() {
        row += &centres.row(i % n_centres);
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::EPSILON);
        row /= norm;
    }
    data
}

/// The burn device of the benches and reports, chosen explicitly: `CART_DEVICE=wgpu` (in a
/// build with the `wgpu` feature) or the CPU (`flex`) otherwise. burn's `Device::default()`
/// would silently pick wgpu whenever it is built.
///
/// # Panics
///
/// On `CART_DEVICE=wgpu` in a build without the `wgpu` feature, or another unknown value.
pub fn device() -> burn::prelude::Device {
    match std::env::var("CART_DEVICE").as_deref() {
        Err(_) | Ok("cpu") => burn::prelude::Device::flex(),
        #[cfg(feature = "wgpu")]
        Ok("wgpu") => burn::prelude::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        Ok(other) => {
            panic!("CART_DEVICE={other}: this build runs on cpu (or wgpu with the feature)")
        }
    }
}

/// Row-major `values` as rows of `width`.
///
/// # Panics
///
/// When the length is not a multiple of `width` (a broken bench).
pub fn rows(values: &[f32], width: usize) -> ndarray::ArrayView2<'_, f32> {
    ndarray::ArrayView2::from_shape((values.len() / width, width), values)
        .expect("a whole number of rows")
}
