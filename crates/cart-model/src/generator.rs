//! [`Generator`]: a trained (or untrained) model with its config and device.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::{IdLayout, IdTrie, Token};
use cart_search::{BeamSearch, BeamSearchConfig, Hit};

use crate::model::{GeneratorConfig, GeneratorModel, Groups, PositionGroup};
use crate::scorer::GeneratorScorer;
use crate::{Error, Result};

/// Queries per batch in [`Generator::search`]: bounds the memory of the beams' caches.
const SEARCH_CHUNK: usize = 256;

/// The CART generator: reads a query vector (or a short sequence of vectors) and writes the
/// semantic identifier `[k, v1..vM, u]` of the item it retrieves.
///
/// - Encoder: the query is projected into `n_memory` memory tokens per vector and run through
///   `S` transformer layers; every layer's output `E_1..E_S` is kept.
/// - Decoder: token + position embeddings, causal self-attention, then coarse-to-fine fusion as
///   the cross-attention (coarse branch: one attention to `W [E_1; ..; E_S] + b`, scaled by a
///   sigmoid gate; fine branch: one attention to each `E_i`, mixed by softmax weights), then a
///   feed-forward block. [`GeneratorConfig::fusion`] `= false` uses plain cross-attention to
///   `E_S` instead (the paper's ablation).
///
/// Method: Fang et al., "CART: A Generative Cross-Modal Retrieval Framework With Coarse-To-Fine
/// Semantic Modeling", ACL 2025, see `docs/method.md`. Train one with
/// [`GeneratorConfig::fit`], search with [`Generator::search`] or drive its
/// [`Generator::scorer`] with your own [`BeamSearch`].
#[derive(Debug, Clone)]
pub struct Generator {
    pub(crate) config: GeneratorConfig,
    pub(crate) model: GeneratorModel,
    pub(crate) device: Device,
}

impl GeneratorConfig {
    /// An untrained generator with random weights (seed the device for reproducible weights).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero width, count or length, `n_heads` not dividing
    /// `d_model`, or a dropout outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<Generator> {
        self.validate()?;
        Ok(Generator { config: self.clone(), model: self.build(device), device: device.clone() })
    }
}

/// Training or evaluation pairs: query vectors and the item each one should retrieve.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    /// Query vectors, row-major, `query_width` values per query
    /// ([`GeneratorConfig::query_width`]).
    pub queries: &'a [f32],
    /// `items[q]`: the item of query `q`.
    pub items: &'a [u32],
    /// Every item's vector in the query space (row `i` is item `i`, `query_width` values
    /// each), for the item-as-query and interpolation augmentations of
    /// [`crate::TrainConfig`]. `None`: no augmentation.
    pub item_vectors: Option<&'a [f32]>,
}

impl<'a> Pairs<'a> {
    /// Pairs from row-major query vectors and one item per query.
    pub fn new(queries: &'a [f32], items: &'a [u32]) -> Self {
        Self { queries, items, item_vectors: None }
    }

    /// With every item's vector in the query space (for the augmentations).
    #[must_use]
    pub fn with_item_vectors(mut self, vectors: &'a [f32]) -> Self {
        self.item_vectors = Some(vectors);
        self
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Checks that `queries` holds whole, finite queries of `width` values; returns their number.
pub(crate) fn check_queries(what: &'static str, queries: &[f32], width: usize) -> Result<usize> {
    if width == 0 || !queries.len().is_multiple_of(width) {
        return Err(Error::DimMismatch { what, got: queries.len(), expected: width });
    }
    if let Some((i, &value)) = queries.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { what, query: i / width, index: i % width, value });
    }
    Ok(queries.len() / width)
}

impl Generator {
    /// The config the generator was built from.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.model.num_params()
    }

    /// Teacher-forced logits: for every row, the scores of the next identifier token after each
    /// prefix of `tokens`.
    ///
    /// # Shapes
    ///
    /// - queries: `[batch, n_query_vectors, d_query]`
    /// - tokens: `[batch, t]`, decoder inputs (BOS, then identifier tokens), `t <= id_len`
    /// - output: `[batch, t, vocab_size]` logits
    ///
    /// # Panics
    ///
    /// On shapes other than the above (a broken caller); use [`Generator::log_probs`] for
    /// checked input.
    pub fn forward(&self, queries: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.model.forward(queries, tokens)
    }

    /// Next-token log-probabilities after every prefix of the given identifiers, read back to
    /// the host: `[n, id_len, vocab_size]` row-major, where `n` is the number of queries and
    /// `ids` holds one full identifier (`id_len` tokens) per query.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::UnknownToken`] for a token outside the vocabulary or a length mismatch.
    ///
    /// With the dense head, every position's log-probabilities are over the children of the
    /// identifier's prefix in `trie` (the other tokens get about `-1e9`), as the search scores
    /// them.
    pub fn log_probs(&self, trie: &IdTrie, queries: &[f32], ids: &[Token]) -> Result<Vec<f32>> {
        let n = check_queries("log_probs", queries, self.config.query_width())?;
        let len = self.config.id_len;
        if ids.len() != n * len {
            return Err(Error::UnknownToken {
                what: "log_probs: ids must hold id_len tokens per query",
                token: ids.len() as u32,
                position: 0,
                vocab_size: self.config.vocab_size,
            });
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let inputs = decoder_inputs(ids, len, self.config.vocab_size)?;
        let groups = groups(&self.config, trie, ids, &self.device);
        let q = self.query_tensor(queries, n);
        let tokens = int_tensor(&inputs, [n, len], &self.device);
        let logits = self.model.forward_groups(q, tokens, groups.as_ref());
        to_f32(log_softmax(logits, 2))
    }

    /// The top `config.top_k` items for each query, by beam search over `trie` constrained to
    /// valid identifiers. Queries run in batches of 256.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::Search`] if the trie's vocabulary is not the model's or the search fails.
    pub fn search(
        &self,
        trie: &IdTrie,
        config: BeamSearchConfig,
        queries: &[f32],
    ) -> Result<Vec<Vec<Hit>>> {
        let width = self.config.query_width();
        let n = check_queries("search", queries, width)?;
        let search = BeamSearch::new(trie, config);
        let mut out = Vec::with_capacity(n);
        let sums = self.dense_sums(trie)?;
        for chunk in queries.chunks(SEARCH_CHUNK * width) {
            let mut scorer =
                GeneratorScorer::new(self, trie, chunk, chunk.len() / width, sums.clone())?;
            out.extend(search.search(&mut scorer)?);
        }
        Ok(out)
    }

    /// A [`cart_search::Scorer`] for a batch of queries (row-major, `query_width` values each):
    /// runs the encoder once, then decodes one token per beam per step with a key/value cache.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::InvalidConfig`] if `trie`'s vocabulary is not the model's.
    pub fn scorer<'g>(&'g self, trie: &'g IdTrie, queries: &[f32]) -> Result<GeneratorScorer<'g>> {
        let n = check_queries("scorer", queries, self.config.query_width())?;
        let layout = trie.layout();
        if layout.vocab_size() != self.config.vocab_size || layout.id_len() != self.config.id_len {
            return Err(Error::config(
                "trie",
                format!("vocabulary {} / length {}", layout.vocab_size(), layout.id_len()),
                "must match the generator's vocabulary and identifier length",
            ));
        }
        GeneratorScorer::new(self, trie, queries, n, self.dense_sums(trie)?)
    }

    /// The dense head's running sums over `trie`'s leaves on the host, if the model has one.
    fn dense_sums(&self, trie: &IdTrie) -> Result<Option<std::sync::Arc<Vec<f32>>>> {
        let Some(head) = self.model.dense() else { return Ok(None) };
        let table = to_f32(head.item_table())?;
        let leaves = leaf_items(trie, self.config.n_items);
        Ok(Some(std::sync::Arc::new(host_running_sums(&table, self.config.query_width(), &leaves))))
    }

    /// Sets the dense head's item vectors: `items` (`n_items x query_width`, row-major), each
    /// item's target in the query space. [`GeneratorConfig::dense_head`] explains what they
    /// score; the trie nodes' vectors are their subtree means.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] without a dense head, [`Error::DimMismatch`] for a wrong size,
    /// [`Error::NonFinite`] for NaN or inf.
    pub fn set_dense_tables(&mut self, items: &[f32]) -> Result<()> {
        let width = self.config.query_width();
        let n_items = self.config.n_items;
        let device = self.device.clone();
        let head = self.model.dense_mut().ok_or(Error::config(
            "dense_head",
            false,
            "set_dense_tables needs a dense head",
        ))?;
        let what = "dense item table";
        if items.len() != n_items * width {
            return Err(Error::DimMismatch { what, got: items.len(), expected: n_items * width });
        }
        check_queries(what, items, width)?;
        let items = Tensor::from_data(TensorData::new(items.to_vec(), [n_items, width]), &device);
        head.items = burn::module::Param::from_tensor(items);
        Ok(())
    }

    /// The dense head's item table (row-major), if the model has one.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] if the backend cannot read it back.
    pub fn dense_tables(&self) -> Result<Option<Vec<f32>>> {
        match self.model.dense() {
            None => Ok(None),
            Some(head) => Ok(Some(to_f32(head.item_table())?)),
        }
    }

    /// This generator with `rows` (`query_width` values each) appended to the dense head's item
    /// table, for items added to the trie after training; without a dense head, a plain copy.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad rows.
    pub fn with_more_items(&self, rows: &[f32]) -> Result<Generator> {
        let width = self.config.query_width();
        let n = check_queries("new dense item rows", rows, width)?;
        let mut out = self.clone();
        if let Some(head) = out.model.dense_mut() {
            let new = Tensor::from_data(TensorData::new(rows.to_vec(), [n, width]), &self.device);
            head.items =
                burn::module::Param::from_tensor(Tensor::cat(vec![head.items.val(), new], 0));
            out.config.n_items += n;
        }
        Ok(out)
    }

    /// `[n, n_query_vectors, d_query]` tensor of checked queries.
    pub(crate) fn query_tensor(&self, queries: &[f32], n: usize) -> Tensor<3> {
        query_tensor(&self.config, queries, n, &self.device)
    }
}

/// The trie's shape for rows of full identifiers, on the host: what [`Groups`] holds, with
/// `valid` implied by `hi > lo` (every child has a leaf).
#[derive(Clone, Debug)]
pub(crate) struct HostGroups {
    leaf_items: Vec<i32>,
    sizes: Vec<usize>,
    /// Per position `p`, `[n, sizes[p]]` row-major.
    lo: Vec<Vec<i32>>,
    hi: Vec<Vec<i32>>,
    n: usize,
}

/// The item of every leaf of `trie` in leaf order; `n_items` for one past the item table.
pub(crate) fn leaf_items(trie: &IdTrie, n_items: usize) -> Vec<i32> {
    trie.iter()
        .map(|(_, item)| if (item as usize) < n_items { item as i32 } else { n_items as i32 })
        .collect()
}

/// The dense head's groups of full identifiers `ids` (`id_len` tokens each): at every
/// position, the children of the identifier's prefix in `trie` as leaf ranges by token slot.
/// `None` without a dense head.
pub(crate) fn groups_host(
    config: &GeneratorConfig,
    trie: &IdTrie,
    ids: &[Token],
) -> Option<HostGroups> {
    if !config.dense_head {
        return None;
    }
    let len = config.id_len;
    let n = ids.len() / len;
    let sizes: Vec<usize> = (0..len).map(|p| config.position_range(p).len()).collect();
    let mut lo: Vec<Vec<i32>> = sizes.iter().map(|&s| vec![0; n * s]).collect();
    let mut hi = lo.clone();
    for (r, id) in ids.chunks_exact(len).enumerate() {
        let mut node = cart_ids::Node::ROOT;
        for (p, &token) in id.iter().enumerate() {
            let range = config.position_range(p);
            let size = sizes[p];
            let kids = trie.children(node);
            for (j, &t) in kids.tokens().iter().enumerate() {
                let Some(slot) = (t as usize).checked_sub(range.start).filter(|&s| s < size) else {
                    continue;
                };
                let leaves = trie.leaf_range(kids.node(j));
                lo[p][r * size + slot] = leaves.start as i32;
                hi[p][r * size + slot] = leaves.end as i32;
            }
            match trie.child(node, token) {
                Some(next) => node = next,
                None => break,
            }
        }
    }
    Some(HostGroups { leaf_items: leaf_items(trie, config.n_items), sizes, lo, hi, n })
}

impl HostGroups {
    /// The groups of rows `rows`, as tensors on `device`.
    pub(crate) fn select(&self, rows: &[usize], device: &Device) -> Groups {
        let positions = self
            .sizes
            .iter()
            .enumerate()
            .map(|(p, &size)| {
                let pick = |table: &[i32]| -> Vec<i32> {
                    rows.iter()
                        .flat_map(|&r| table[r * size..(r + 1) * size].iter().copied())
                        .collect()
                };
                let lo = int_tensor(&pick(&self.lo[p]), [rows.len(), size], device);
                let hi = int_tensor(&pick(&self.hi[p]), [rows.len(), size], device);
                PositionGroup { valid: hi.clone().greater(lo.clone()), lo, hi }
            })
            .collect();
        Groups {
            leaf_items: int_tensor(&self.leaf_items, [self.leaf_items.len()], device),
            positions,
        }
    }

    /// All rows, as tensors on `device`.
    pub(crate) fn all(&self, device: &Device) -> Groups {
        let rows: Vec<usize> = (0..self.n).collect();
        self.select(&rows, device)
    }
}

/// [`groups_host`] as tensors on `device`.
pub(crate) fn groups(
    config: &GeneratorConfig,
    trie: &IdTrie,
    ids: &[Token],
    device: &Device,
) -> Option<Groups> {
    groups_host(config, trie, ids).map(|g| g.all(device))
}

/// `[n_leaves + 1, width]` running sums of the dense head's item vectors in `trie`'s leaf
/// order, from a zero row, accumulated in f64 (see [`crate::model::DenseHead::running_sums`]).
pub(crate) fn host_running_sums(table: &[f32], width: usize, leaf_items: &[i32]) -> Vec<f32> {
    let n_items = table.len() / width;
    let mut acc = vec![0.0f64; width];
    let mut out = Vec::with_capacity((leaf_items.len() + 1) * width);
    out.extend(std::iter::repeat_n(0.0f32, width));
    for &item in leaf_items {
        let item = item as usize;
        if item < n_items {
            acc.iter_mut().zip(&table[item * width..(item + 1) * width]).for_each(|(a, &x)| {
                *a += f64::from(x);
            });
        }
        out.extend(acc.iter().map(|&a| a as f32));
    }
    out
}

pub(crate) fn query_tensor(
    config: &GeneratorConfig,
    queries: &[f32],
    n: usize,
    device: &Device,
) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(queries.to_vec(), [n, config.n_query_vectors, config.d_query]),
        device,
    )
}

/// Decoder inputs for full identifiers: BOS, then all but the last token of each identifier.
/// Checks every token against the vocabulary.
pub(crate) fn decoder_inputs(ids: &[Token], len: usize, vocab_size: usize) -> Result<Vec<i32>> {
    let mut inputs = Vec::with_capacity(ids.len());
    for id in ids.chunks_exact(len) {
        for (position, &token) in id.iter().enumerate() {
            if token as usize >= vocab_size {
                return Err(Error::UnknownToken {
                    what: "identifier",
                    token,
                    position,
                    vocab_size,
                });
            }
        }
        inputs.push(IdLayout::BOS as i32);
        inputs.extend(id[..len - 1].iter().map(|&t| t as i32));
    }
    Ok(inputs)
}

pub(crate) fn int_tensor<const D: usize>(
    values: &[i32],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

pub(crate) fn to_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor.into_data().try_into_vec_as::<f32>().map_err(Error::tensor)
}
