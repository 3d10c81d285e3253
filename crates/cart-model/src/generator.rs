//! [`Generator`]: a trained (or untrained) model with its config and device.

use std::borrow::Cow;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use cart_ids::{IdLayout, IdTrie, Token};
use ndarray::{Array2, ArrayView2};

use crate::model::{GeneratorConfig, GeneratorDims, GeneratorModel, Groups, PositionGroup};
use crate::{Error, Result};

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
/// [`Generator::scorer`] with your own [`cart_search::BeamSearch`].
#[derive(Debug, Clone)]
pub struct Generator {
    pub(crate) config: GeneratorConfig,
    pub(crate) dims: GeneratorDims,
    pub(crate) model: GeneratorModel,
    pub(crate) device: Device,
}

impl GeneratorConfig {
    /// An untrained generator of sizes `dims` with random weights (seed the device for
    /// reproducible weights).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero width, count or length, `n_heads` not dividing
    /// `d_model`, `n_query_vectors` not dividing the query width, a dropout outside `[0, 1)`,
    /// or sizes that would need a weight matrix over 2^31 values.
    pub fn init(&self, dims: &GeneratorDims, device: &Device) -> Result<Generator> {
        self.validate(dims)?;
        Ok(Generator {
            config: self.clone(),
            dims: dims.clone(),
            model: self.build(dims, device).initialized(),
            device: device.clone(),
        })
    }
}

/// Training or evaluation pairs: query vectors and the item each one should retrieve.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    /// Query vectors, one row per query (`n_query_vectors * d_query` values).
    pub queries: ArrayView2<'a, f32>,
    /// `items[q]`: the item of query `q`.
    pub items: &'a [u32],
    /// Every item's vector in the query space (row `i` is item `i`), for the item-as-query and
    /// interpolation augmentations of [`crate::TrainConfig`] and, with the dense head, its
    /// starting item table. `None`: no augmentation.
    pub item_vectors: Option<ArrayView2<'a, f32>>,
}

impl<'a> Pairs<'a> {
    /// Pairs from query vectors (one row each) and one item per query.
    pub fn new(queries: ArrayView2<'a, f32>, items: &'a [u32]) -> Self {
        Self { queries, items, item_vectors: None }
    }

    /// With every item's vector in the query space (for the augmentations and the dense
    /// head's starting table).
    #[must_use]
    pub fn with_item_vectors(mut self, vectors: ArrayView2<'a, f32>) -> Self {
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

/// Checks that `queries` holds finite rows of `width` values; returns their values row-major
/// (borrowed when the view is contiguous).
pub(crate) fn check_queries<'a>(
    what: &'static str,
    queries: ArrayView2<'a, f32>,
    width: usize,
) -> Result<Cow<'a, [f32]>> {
    if queries.ncols() != width {
        return Err(Error::DimMismatch { what, got: queries.ncols(), expected: width });
    }
    if let Some(((query, index), &value)) = queries.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { what, query, index, value });
    }
    Ok(row_major(queries))
}

/// The values of `view` row-major, borrowed when it is contiguous.
pub(crate) fn row_major(view: ArrayView2<'_, f32>) -> Cow<'_, [f32]> {
    match view.to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(view.iter().copied().collect()),
    }
}

impl Generator {
    /// The architecture the generator was built with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Its sizes: query width, vocabulary, identifier length, items.
    pub fn dims(&self) -> &GeneratorDims {
        &self.dims
    }

    /// Values per query row.
    pub fn query_width(&self) -> usize {
        self.dims.query_width
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
    /// `ids` holds one full identifier (`id_len` tokens) per query, `[n, id_len]`.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad query vectors,
    /// [`Error::UnknownToken`] for a token outside the vocabulary or a length mismatch.
    ///
    /// With the dense head, every position's log-probabilities are over the children of the
    /// identifier's prefix in `trie` (the other tokens get about `-1e9`), as the search scores
    /// them.
    pub fn log_probs(
        &self,
        trie: &IdTrie,
        queries: ArrayView2<'_, f32>,
        ids: ArrayView2<'_, Token>,
    ) -> Result<Vec<f32>> {
        let values = check_queries("log_probs", queries, self.dims.query_width)?;
        let n = queries.nrows();
        let len = self.dims.id_len;
        if ids.dim() != (n, len) {
            return Err(Error::UnknownToken {
                what: "log_probs: ids must hold id_len tokens per query",
                token: ids.len() as u32,
                position: 0,
                vocab_size: self.dims.vocab_size,
            });
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<Token> = ids.iter().copied().collect();
        let inputs = decoder_inputs(&ids, len, self.dims.vocab_size)?;
        let groups = groups(&self.config, &self.dims, trie, &ids, &self.device);
        let q = self.query_tensor(&values, n);
        let tokens = int_tensor(&inputs, [n, len], &self.device);
        let logits = self.model.forward_groups(q, tokens, groups.as_ref());
        to_f32(log_softmax(logits, 2))
    }

    /// Sets the dense head's item vectors: `items` (`[n_items, query_width]`), each item's
    /// target in the query space. [`GeneratorConfig::dense_head`] explains what they score;
    /// the trie nodes' vectors are their subtree means.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] without a dense head, [`Error::DimMismatch`] for a wrong size,
    /// [`Error::NonFinite`] for NaN or inf.
    pub fn set_dense_tables(&mut self, items: ArrayView2<'_, f32>) -> Result<()> {
        let width = self.dims.query_width;
        let n_items = self.dims.n_items;
        let device = self.device.clone();
        let head = self.model.dense_mut().ok_or(Error::config(
            "dense_head",
            false,
            "set_dense_tables needs a dense head",
        ))?;
        let what = "dense item table";
        if items.nrows() != n_items {
            return Err(Error::DimMismatch { what, got: items.nrows(), expected: n_items });
        }
        let items = check_queries(what, items, width)?.into_owned();
        let items = Tensor::from_data(TensorData::new(items, [n_items, width]), &device);
        head.items = burn::module::Param::from_tensor(items);
        Ok(())
    }

    /// The dense head's item table (`[n_items, query_width]`), if the model has one.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] if the backend cannot read it back.
    pub fn dense_tables(&self) -> Result<Option<Array2<f32>>> {
        let Some(head) = self.model.dense() else { return Ok(None) };
        let values = to_f32(head.item_table())?;
        let shape = (self.dims.n_items, self.dims.query_width);
        Array2::from_shape_vec(shape, values).map(Some).map_err(Error::tensor)
    }

    /// This generator with `rows` (`[n, query_width]`) appended to the dense head's item
    /// table, for items added to the trie after training; without a dense head, a plain copy.
    ///
    /// # Errors
    ///
    /// [`Error::DimMismatch`] / [`Error::NonFinite`] for bad rows.
    pub fn with_more_items(&self, rows: ArrayView2<'_, f32>) -> Result<Generator> {
        let width = self.dims.query_width;
        let values = check_queries("new dense item rows", rows, width)?.into_owned();
        let n = rows.nrows();
        let mut out = self.clone();
        if let Some(head) = out.model.dense_mut() {
            let new = Tensor::from_data(TensorData::new(values, [n, width]), &self.device);
            head.items =
                burn::module::Param::from_tensor(Tensor::cat(vec![head.items.val(), new], 0));
            out.dims.n_items += n;
        }
        Ok(out)
    }

    /// `[n, n_query_vectors, d_query]` tensor of checked queries (row-major values).
    pub(crate) fn query_tensor(&self, queries: &[f32], n: usize) -> Tensor<3> {
        query_tensor(&self.config, &self.dims, queries, n, &self.device)
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
    dims: &GeneratorDims,
    trie: &IdTrie,
    ids: &[Token],
) -> Option<HostGroups> {
    if !config.dense_head {
        return None;
    }
    let len = dims.id_len;
    let n = ids.len() / len;
    let sizes: Vec<usize> = (0..len).map(|p| dims.position_range(p).len()).collect();
    let mut lo: Vec<Vec<i32>> = sizes.iter().map(|&s| vec![0; n * s]).collect();
    let mut hi = lo.clone();
    for (r, id) in ids.chunks_exact(len).enumerate() {
        let mut node = cart_ids::Node::ROOT;
        for (p, &token) in id.iter().enumerate() {
            let range = dims.position_range(p);
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
    Some(HostGroups { leaf_items: leaf_items(trie, dims.n_items), sizes, lo, hi, n })
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
    dims: &GeneratorDims,
    trie: &IdTrie,
    ids: &[Token],
    device: &Device,
) -> Option<Groups> {
    groups_host(config, dims, trie, ids).map(|g| g.all(device))
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
    dims: &GeneratorDims,
    queries: &[f32],
    n: usize,
    device: &Device,
) -> Tensor<3> {
    let shape = [n, config.n_query_vectors, config.d_query(dims)];
    Tensor::from_data(TensorData::new(queries.to_vec(), shape), device)
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
