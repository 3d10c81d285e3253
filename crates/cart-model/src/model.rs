//! The generator network: query encoder, identifier decoder and coarse-to-fine feature fusion.
//!
//! Method: CART (Fang et al., ACL 2025), see `docs/method.md`. All blocks are pre-norm
//! transformer blocks (`x + f(LayerNorm(x))`), which train without a warm restart at small sizes.

use burn::module::Param;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid, softmax};

use crate::{Error, Result};

/// Largest weight matrix a config may ask for (2^31 values, 8 GiB of f32).
const MAX_TENSOR: usize = 1 << 31;

/// Architecture of a [`Generator`](crate::Generator): everything but the sizes that come from
/// the data ([`GeneratorDims`]). Every field has a default, CART's defaults (the `cart` index
/// uses them as they are): a model small enough to train on a laptop CPU in minutes, with the
/// dense head on.
///
/// [`GeneratorConfig::fit`] reads the sizes from the training pairs and the trie;
/// [`GeneratorConfig::init`] takes them as [`GeneratorDims`].
#[derive(Config, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Vectors per query (1: one embedding; more: a short sequence of vectors, which the query
    /// rows hold side by side). Default: 1.
    #[config(default = 1)]
    pub n_query_vectors: usize,
    /// Memory tokens each query vector is projected into. Default: 4.
    #[config(default = 4)]
    pub n_memory: usize,
    /// Model width. Default: 128.
    #[config(default = 128)]
    pub d_model: usize,
    /// Attention heads; must divide `d_model`. Default: 4.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Encoder layers `S`; every layer's output feeds the fusion. Default: 2.
    #[config(default = 2)]
    pub n_encoder_layers: usize,
    /// Decoder layers. Default: 2.
    #[config(default = 2)]
    pub n_decoder_layers: usize,
    /// Hidden width of the feed-forward blocks. Default: 512.
    #[config(default = 512)]
    pub d_ff: usize,
    /// Dropout probability (embeddings, attention and feed-forward outputs). Default: 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Coarse-to-fine feature fusion (`true`) or plain cross-attention to the last encoder
    /// layer (`false`, the paper's "without fusion" ablation). Default: `true`.
    #[config(default = true)]
    pub fusion: bool,
    /// The dense head: the model starts as a tree search over the trie in the query space.
    /// Every item gets an output vector `e_i` in the query space; a trie node's vector is the
    /// mean `m` of the vectors of the items below it (a subtree centroid, recomputed as the
    /// item table learns, so an item added later moves its prefixes' centroids). The logit of
    /// a child of the beam's prefix gains `scale * ((W q) . m - |m|^2 / 2)`, the nearest-centroid
    /// rule of K-Means, and each step's softmax runs over the prefix's children, in training
    /// as in search (a hierarchical softmax over the trie). `W = I` and the transformer's output
    /// layer are at zero at the start, so with the item vectors set (from
    /// [`Pairs::with_item_vectors`](crate::Pairs::with_item_vectors) in
    /// [`GeneratorConfig::fit`], or
    /// [`Generator::set_dense_tables`](crate::Generator::set_dense_tables)) the untrained
    /// generator is a beam search down the trie by nearest subtree centroid whose last step
    /// scores the items exactly. Needs [`GeneratorDims::position_sizes`] and
    /// [`GeneratorDims::n_items`]. Default: `true` (docs/results.md has the ablation).
    #[config(default = true)]
    pub dense_head: bool,
    /// Initial `scale` of the dense head's logits (learned, kept positive). Default: 20.
    #[config(default = 20.0)]
    pub dense_scale: f64,
    /// With the dense head, the transformer's logits are multiplied by this: its output layer
    /// starts at zero and its share grows this much slower, so that its early, query-blind
    /// guesses do not drown the dense head's ranking (0: the dense head alone, the ablation).
    /// Default: 0.1.
    #[config(default = 0.1)]
    pub transformer_scale: f64,
    /// With the dense head, every child's logit also gains `ln(n)`, `n` the number of items
    /// below it: the prior of a mixture whose components are the subtrees, so that the
    /// subtree scores approximate the log-sum-exp of their items' scores and the product of
    /// the steps approximates one softmax over all items. Default: false.
    #[config(default = false)]
    pub subtree_prior: bool,
}

/// The sizes of a [`Generator`](crate::Generator) that come from its data: the query width,
/// the identifier vocabulary and length, and the items of the dense head's table.
/// [`GeneratorDims::for_trie`] reads them from a trie.
#[derive(Config, Debug, PartialEq)]
pub struct GeneratorDims {
    /// Values per query row (`n_query_vectors * d_query`).
    pub query_width: usize,
    /// Decoder vocabulary size ([`cart_ids::IdLayout::vocab_size`]).
    pub vocab_size: usize,
    /// Identifier length in tokens ([`cart_ids::IdLayout::id_len`]).
    pub id_len: usize,
    /// Token values per identifier position (`[K, C, .., C, U]`). When given, position `t`'s
    /// logits are restricted to position `t`'s tokens, so no probability goes to tokens that
    /// cannot occur there. Empty (default): a softmax over the whole vocabulary at every
    /// position (no dense head then).
    #[config(default = "Vec::new()")]
    pub position_sizes: Vec<usize>,
    /// Items of the dense head's table (items are keyed `0..n_items`; grown by
    /// [`Generator::with_more_items`](crate::Generator::with_more_items)). Default: 0.
    #[config(default = 0)]
    pub n_items: usize,
}

impl GeneratorDims {
    /// The sizes for query rows of `query_width` values and the identifiers of `trie`
    /// (its layout's vocabulary, length and position sizes; one table row per item).
    pub fn for_trie(query_width: usize, trie: &cart_ids::IdTrie) -> Self {
        Self::for_layout(query_width, trie.layout(), trie.len())
    }

    /// The sizes for query rows of `query_width` values, identifiers of `layout` and
    /// `n_items` items.
    pub fn for_layout(query_width: usize, layout: &cart_ids::IdLayout, n_items: usize) -> Self {
        let sizes = (0..layout.id_len()).map(|p| layout.position_size(p) as usize).collect();
        Self::new(query_width, layout.vocab_size(), layout.id_len())
            .with_position_sizes(sizes)
            .with_n_items(n_items)
    }

    /// The token range of identifier position `p` (needs `position_sizes`).
    pub(crate) fn position_range(&self, p: usize) -> std::ops::Range<usize> {
        let start =
            cart_ids::IdLayout::N_SPECIAL as usize + self.position_sizes[..p].iter().sum::<usize>();
        start..start + self.position_sizes[p]
    }
}

impl GeneratorConfig {
    /// Width of one query vector: `dims.query_width / n_query_vectors`.
    pub(crate) fn d_query(&self, dims: &GeneratorDims) -> usize {
        dims.query_width / self.n_query_vectors.max(1)
    }

    pub(crate) fn validate(&self, dims: &GeneratorDims) -> Result<()> {
        let positive = [
            ("query_width", dims.query_width),
            ("vocab_size", dims.vocab_size),
            ("id_len", dims.id_len),
            ("n_query_vectors", self.n_query_vectors),
            ("n_memory", self.n_memory),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_encoder_layers", self.n_encoder_layers),
            ("n_decoder_layers", self.n_decoder_layers),
            ("d_ff", self.d_ff),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, 0, "must be at least 1"));
            }
        }
        if !dims.query_width.is_multiple_of(self.n_query_vectors) {
            return Err(Error::config(
                "n_query_vectors",
                format!("{} (query width {})", self.n_query_vectors, dims.query_width),
                "must divide the query width",
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::config("n_heads", self.n_heads, "must divide d_model"));
        }
        if dims.vocab_size > i32::MAX as usize {
            return Err(Error::config("vocab_size", dims.vocab_size, "must fit in an i32"));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(Error::config("dropout", self.dropout, "must be in [0, 1)"));
        }
        if !dims.position_sizes.is_empty() {
            let total = dims.position_sizes.iter().try_fold(2usize, |a, &s| a.checked_add(s));
            if dims.position_sizes.len() != dims.id_len
                || dims.position_sizes.contains(&0)
                || total != Some(dims.vocab_size)
            {
                return Err(Error::config(
                    "position_sizes",
                    format!("{:?}", dims.position_sizes),
                    "one non-zero size per position, summing to vocab_size - 2",
                ));
            }
        }
        if self.dense_head {
            if dims.position_sizes.is_empty() {
                return Err(Error::config("dense_head", true, "needs position_sizes"));
            }
            if dims.n_items == 0 {
                return Err(Error::config("n_items", 0, "the dense head needs at least 1 item"));
            }
            if !(self.dense_scale.is_finite() && self.dense_scale > 0.0) {
                return Err(Error::config("dense_scale", self.dense_scale, "finite and > 0"));
            }
            if !(self.transformer_scale.is_finite() && self.transformer_scale >= 0.0) {
                return Err(Error::config(
                    "transformer_scale",
                    self.transformer_scale,
                    "finite and >= 0",
                ));
            }
        }
        // Tensors are built eagerly: refuse sizes that cannot be allocated before trying.
        let width = dims.query_width;
        let params = [
            ("d_ff", self.d_ff.checked_mul(self.d_model)),
            ("vocab_size", dims.vocab_size.checked_mul(self.d_model.max(width))),
            (
                "n_memory",
                self.n_memory.checked_mul(self.d_model).and_then(|v| v.checked_mul(width)),
            ),
            ("n_items", dims.n_items.checked_mul(width)),
        ];
        for (field, size) in params {
            if size.is_none_or(|s| s > MAX_TENSOR) {
                return Err(Error::config(
                    field,
                    size.unwrap_or(usize::MAX),
                    "a weight matrix over 2^31 values",
                ));
            }
        }
        if self.min_params(dims).is_none_or(|n| n > MAX_TENSOR) {
            return Err(Error::config(
                "d_ff",
                self.d_ff,
                "the model would hold over 2^31 parameters (d_ff, d_model and the layer counts)",
            ));
        }
        Ok(())
    }

    /// A lower bound on the number of parameters (the feed-forward, embedding and item
    /// tables; attention and norms are left out), `None` on overflow: what a config must at
    /// least cost before it is built, and what stored weights must at least hold.
    pub(crate) fn min_params(&self, dims: &GeneratorDims) -> Option<usize> {
        let layers = self.n_encoder_layers.checked_add(self.n_decoder_layers)?;
        let ff = self.d_ff.checked_mul(self.d_model)?.checked_mul(2)?.checked_mul(layers)?;
        let embed = dims.vocab_size.checked_mul(self.d_model)?;
        let items = if self.dense_head { dims.n_items.checked_mul(dims.query_width)? } else { 0 };
        ff.checked_add(embed)?.checked_add(items)
    }

    pub(crate) fn build(&self, dims: &GeneratorDims, device: &Device) -> GeneratorModel {
        let d = self.d_model;
        let n_mem = self.n_memory * self.n_query_vectors;
        let layer_norm = || LayerNormConfig::new(d).init(device);
        let dropout = || DropoutConfig::new(self.dropout).init();
        let attention = || Attention::new(d, self.n_heads, device);
        let ff = || FeedForward {
            up: LinearConfig::new(d, self.d_ff).init(device),
            down: LinearConfig::new(self.d_ff, d).init(device),
            dropout: dropout(),
        };
        let encoder = (0..self.n_encoder_layers)
            .map(|_| EncoderLayer {
                norm_attn: layer_norm(),
                attn: attention(),
                norm_ff: layer_norm(),
                ff: ff(),
                dropout: dropout(),
            })
            .collect();
        let s = self.n_encoder_layers;
        let decoder = (0..self.n_decoder_layers)
            .map(|_| DecoderLayer {
                norm_self: layer_norm(),
                self_attn: attention(),
                norm_cross: layer_norm(),
                fusion: Fusion {
                    fine: attention(),
                    layer_logits: self
                        .fusion
                        .then(|| Param::from_tensor(Tensor::zeros([s], device))),
                    coarse_proj: self.fusion.then(|| LinearConfig::new(s * d, d).init(device)),
                    coarse: self.fusion.then(attention),
                    gate: self.fusion.then(|| Param::from_tensor(Tensor::zeros([d], device))),
                },
                norm_ff: layer_norm(),
                ff: ff(),
                dropout: dropout(),
            })
            .collect();
        let memory_pos =
            Tensor::random([n_mem, d], burn::tensor::Distribution::Normal(0.0, 0.02), device);
        let width = dims.query_width;
        let dense = self.dense_head.then(|| DenseHead {
            map: Param::from_tensor(Tensor::zeros([width, width], device)),
            items: Param::from_tensor(Tensor::zeros([dims.n_items, width], device)),
            log_scale: Param::from_tensor(Tensor::from_floats(
                [self.dense_scale.ln() as f32],
                device,
            )),
            subtree_prior: self.subtree_prior,
        });
        let mut output = LinearConfig::new(d, dims.vocab_size).init(device);
        if self.dense_head {
            // the transformer starts silent: the untrained model is the dense head alone
            output.weight = Param::from_tensor(output.weight.val().zeros_like());
            output.bias = output.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
        }
        GeneratorModel {
            position_sizes: dims.position_sizes.clone(),
            transformer_scale: self.transformer_scale,
            dense,
            query_proj: LinearConfig::new(self.d_query(dims), self.n_memory * d).init(device),
            memory_pos: Param::from_tensor(memory_pos),
            encoder,
            encoder_norm: layer_norm(),
            token_embedding: EmbeddingConfig::new(dims.vocab_size, d).init(device),
            position_embedding: EmbeddingConfig::new(dims.id_len, d).init(device),
            decoder,
            decoder_norm: layer_norm(),
            output,
            dropout: dropout(),
        }
    }
}

/// Multi-head attention with separate projections, so that keys and values can be computed once
/// (memory) or appended one token at a time (the decoder's cache).
#[derive(Module, Debug)]
pub(crate) struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    n_heads: usize,
}

/// Keys and values, `[batch, heads, length, d_head]` each.
#[derive(Clone, Debug)]
pub(crate) struct Kv {
    pub(crate) key: Tensor<4>,
    pub(crate) value: Tensor<4>,
}

impl Kv {
    pub(crate) fn select(&self, rows: &Tensor<1, Int>) -> Self {
        Self {
            key: self.key.clone().select(0, rows.clone()),
            value: self.value.clone().select(0, rows.clone()),
        }
    }

    /// Appends `other` along the sequence axis.
    fn append(self, other: Kv) -> Self {
        Self {
            key: Tensor::cat(vec![self.key, other.key], 2),
            value: Tensor::cat(vec![self.value, other.value], 2),
        }
    }
}

impl Attention {
    fn new(d_model: usize, n_heads: usize, device: &Device) -> Self {
        let linear = || LinearConfig::new(d_model, d_model).init(device);
        Self { query: linear(), key: linear(), value: linear(), output: linear(), n_heads }
    }

    /// `[b, t, d]` -> `[b, heads, t, d / heads]`.
    fn split(&self, x: Tensor<3>, linear: &Linear) -> Tensor<4> {
        let [b, t, d] = x.dims();
        linear.forward(x).reshape([b, t, self.n_heads, d / self.n_heads]).swap_dims(1, 2)
    }

    fn kv(&self, x: Tensor<3>) -> Kv {
        Kv { key: self.split(x.clone(), &self.key), value: self.split(x, &self.value) }
    }

    fn queries(&self, x: Tensor<3>) -> Tensor<4> {
        self.split(x, &self.query)
    }

    /// Attends projected queries `q` (`[b, h, tq, dh]`) to `kv`; `mask` (`[tq, tk]`, true =
    /// hidden) hides keys. Returns `[b, tq, d]` after the output projection.
    fn attend(&self, q: Tensor<4>, kv: &Kv, mask: Option<&Tensor<2, Bool>>) -> Tensor<3> {
        let [b, h, tq, dh] = q.dims();
        let scores = q.matmul(kv.key.clone().swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        let scores = match mask {
            Some(mask) => {
                let [_, _, _, tk] = scores.dims();
                let mask = mask.clone().reshape([1, 1, tq, tk]).expand([b, h, tq, tk]);
                scores.mask_fill(mask, -1.0e9)
            }
            None => scores,
        };
        let context = softmax(scores, 3).matmul(kv.value.clone());
        self.output.forward(context.swap_dims(1, 2).reshape([b, tq, h * dh]))
    }
}

#[derive(Module, Debug)]
pub(crate) struct FeedForward {
    up: Linear,
    down: Linear,
    dropout: Dropout,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.down.forward(self.dropout.forward(gelu(self.up.forward(x))))
    }
}

#[derive(Module, Debug)]
pub(crate) struct EncoderLayer {
    norm_attn: LayerNorm,
    attn: Attention,
    norm_ff: LayerNorm,
    ff: FeedForward,
    dropout: Dropout,
}

impl EncoderLayer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.norm_attn.forward(x.clone());
        let kv = self.attn.kv(h.clone());
        let x = x + self.dropout.forward(self.attn.attend(self.attn.queries(h), &kv, None));
        let h = self.norm_ff.forward(x.clone());
        x + self.dropout.forward(self.ff.forward(h))
    }
}

/// The decoder's cross-attention.
///
/// With fusion: `sigmoid(g) * Attn_c(x, W[E_1; ..; E_S] + b) + sum_i softmax(alpha)_i *
/// Attn_f(x, E_i)` (coarse branch plus fine branch); without: `Attn_f(x, E_S)`.
#[derive(Module, Debug)]
pub(crate) struct Fusion {
    fine: Attention,
    layer_logits: Option<Param<Tensor<1>>>,
    coarse_proj: Option<Linear>,
    coarse: Option<Attention>,
    gate: Option<Param<Tensor<1>>>,
}

/// Per-decoder-layer keys and values of the encoder memory.
#[derive(Clone, Debug)]
pub(crate) struct CrossKv {
    fine: Vec<Kv>,
    coarse: Option<Kv>,
}

impl CrossKv {
    pub(crate) fn select(&self, rows: &Tensor<1, Int>) -> Self {
        Self {
            fine: self.fine.iter().map(|kv| kv.select(rows)).collect(),
            coarse: self.coarse.as_ref().map(|kv| kv.select(rows)),
        }
    }
}

impl Fusion {
    fn kv(&self, layers: &[Tensor<3>]) -> CrossKv {
        match (&self.coarse_proj, &self.coarse) {
            (Some(proj), Some(coarse)) => {
                let z = proj.forward(Tensor::cat(layers.to_vec(), 2));
                CrossKv {
                    fine: layers.iter().map(|e| self.fine.kv(e.clone())).collect(),
                    coarse: Some(coarse.kv(z)),
                }
            }
            _ => {
                let last = layers.last().cloned().map(|e| self.fine.kv(e));
                CrossKv { fine: last.into_iter().collect(), coarse: None }
            }
        }
    }

    fn forward(&self, x: Tensor<3>, kv: &CrossKv) -> Tensor<3> {
        let q = self.fine.queries(x.clone());
        let mut out: Option<Tensor<3>> = None;
        match &self.layer_logits {
            Some(logits) => {
                let alpha = softmax(logits.val(), 0);
                for (i, layer) in kv.fine.iter().enumerate() {
                    let a = alpha.clone().slice(s![i..i + 1]).reshape([1, 1, 1]);
                    let y = self.fine.attend(q.clone(), layer, None) * a;
                    out = Some(match out {
                        Some(o) => o + y,
                        None => y,
                    });
                }
            }
            None => {
                for layer in &kv.fine {
                    out = Some(self.fine.attend(q.clone(), layer, None));
                }
            }
        }
        let fine = out.unwrap_or_else(|| x.zeros_like());
        match (&self.coarse, &kv.coarse, &self.gate) {
            (Some(coarse), Some(ckv), Some(gate)) => {
                let [d] = gate.dims();
                let g = sigmoid(gate.val()).reshape([1, 1, d]);
                fine + coarse.attend(coarse.queries(x), ckv, None) * g
            }
            _ => fine,
        }
    }
}

#[derive(Module, Debug)]
pub(crate) struct DecoderLayer {
    norm_self: LayerNorm,
    self_attn: Attention,
    norm_cross: LayerNorm,
    fusion: Fusion,
    norm_ff: LayerNorm,
    ff: FeedForward,
    dropout: Dropout,
}

impl DecoderLayer {
    /// Whole-sequence pass (teacher forcing); `mask` is the causal mask.
    fn forward(&self, x: Tensor<3>, cross: &CrossKv, mask: &Tensor<2, Bool>) -> Tensor<3> {
        let h = self.norm_self.forward(x.clone());
        let kv = self.self_attn.kv(h.clone());
        let attn = self.self_attn.attend(self.self_attn.queries(h), &kv, Some(mask));
        self.rest(x + self.dropout.forward(attn), cross)
    }

    /// One new token per row (`x`: `[b, 1, d]`); `cache` holds the keys and values of the
    /// earlier tokens and gets this token's appended.
    fn step(&self, x: Tensor<3>, cross: &CrossKv, cache: &mut Option<Kv>) -> Tensor<3> {
        let h = self.norm_self.forward(x.clone());
        let new = self.self_attn.kv(h.clone());
        let kv = match cache.take() {
            Some(old) => old.append(new),
            None => new,
        };
        let attn = self.self_attn.attend(self.self_attn.queries(h), &kv, None);
        *cache = Some(kv);
        self.rest(x + self.dropout.forward(attn), cross)
    }

    fn rest(&self, x: Tensor<3>, cross: &CrossKv) -> Tensor<3> {
        let h = self.norm_cross.forward(x.clone());
        let x = x + self.dropout.forward(self.fusion.forward(h, cross));
        let h = self.norm_ff.forward(x.clone());
        x + self.dropout.forward(self.ff.forward(h))
    }
}

/// The burn module behind [`Generator`](crate::Generator).
#[derive(Module, Debug)]
pub(crate) struct GeneratorModel {
    query_proj: Linear,
    memory_pos: Param<Tensor<2>>,
    encoder: Vec<EncoderLayer>,
    encoder_norm: LayerNorm,
    token_embedding: Embedding,
    position_embedding: Embedding,
    decoder: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
    output: Linear,
    dropout: Dropout,
    /// Token values per position (empty: no per-position restriction).
    position_sizes: Vec<usize>,
    /// [`GeneratorConfig::transformer_scale`].
    transformer_scale: f64,
    dense: Option<DenseHead>,
}

/// The trie's shape for a batch of rows, as the dense head needs it: for every identifier
/// position `p`, the children of each row's prefix at `p` by token slot
/// (`position_range(p)`), as leaf ranges `lo..hi` into the trie's leaf order.
#[derive(Clone, Debug)]
pub(crate) struct Groups {
    /// `[n_leaves]`: the item of every leaf, in leaf order (`n_items` for an item without a
    /// row in the item table).
    pub(crate) leaf_items: Tensor<1, Int>,
    /// One entry per position.
    pub(crate) positions: Vec<PositionGroup>,
}

/// The children of each row's prefix at one position (see [`Groups`]).
#[derive(Clone, Debug)]
pub(crate) struct PositionGroup {
    /// `[b, size]` first leaf of the child in that token slot.
    pub(crate) lo: Tensor<2, Int>,
    /// `[b, size]` one past its last leaf.
    pub(crate) hi: Tensor<2, Int>,
    /// `[b, size]` whether the slot is a child at all.
    pub(crate) valid: Tensor<2, Bool>,
}

impl Groups {
    /// These rows, then `other`'s (one batch of both; the trie's leaves are the same).
    pub(crate) fn concat(&self, other: &Self) -> Self {
        Self {
            leaf_items: self.leaf_items.clone(),
            positions: self
                .positions
                .iter()
                .zip(&other.positions)
                .map(|(a, b)| PositionGroup {
                    lo: Tensor::cat(vec![a.lo.clone(), b.lo.clone()], 0),
                    hi: Tensor::cat(vec![a.hi.clone(), b.hi.clone()], 0),
                    valid: Tensor::cat(vec![a.valid.clone(), b.valid.clone()], 0),
                })
                .collect(),
        }
    }
}

/// The dense head: query-space output vectors for every item (see
/// [`GeneratorConfig::dense_head`]).
#[derive(Module, Debug)]
pub(crate) struct DenseHead {
    /// `W = I + MAP_STEP * map` (query -> query space), `map` starts at zero.
    pub(crate) map: Param<Tensor<2>>,
    /// `[n_items, width]`: one output vector per item, learned.
    pub(crate) items: Param<Tensor<2>>,
    /// `ln(scale)`, `[1]`.
    pub(crate) log_scale: Param<Tensor<1>>,
    /// [`GeneratorConfig::subtree_prior`].
    pub(crate) subtree_prior: bool,
}

/// How far one unit of the dense head's `map` parameter moves `W` from the identity: Adam
/// moves every parameter by about the learning rate per step, and an unscaled `W` would lose
/// the identity (the query space the item table lives in) within a few dozen steps.
///
/// The item table itself is learned unscaled: measured on the bundled set (6 epochs,
/// validation R@1), its changes scaled by 0.01 reach 0.374, by 0.1 0.435, unscaled 0.491.
const MAP_STEP: f64 = 0.001;

impl DenseHead {
    /// The item table in use.
    pub(crate) fn item_table(&self) -> Tensor<2> {
        self.items.val()
    }

    /// The logits' scale.
    pub(crate) fn scale(&self) -> Tensor<1> {
        self.log_scale.val().exp()
    }

    /// `scale * W q`, `[b, width]`, from queries `[b, n_vec, d_query]`.
    pub(crate) fn project(&self, queries: Tensor<3>) -> Tensor<2> {
        let [b, n, d] = queries.dims();
        let q = queries.reshape([b, n * d]);
        let q = q.clone() + q.matmul(self.map.val().transpose()).mul_scalar(MAP_STEP);
        q * self.scale().reshape([1, 1])
    }

    /// `[n_leaves + 1, width]`: running sums of the item vectors in leaf order, from a zero row,
    /// so that the sum over leaves `lo..hi` is `row hi - row lo`.
    pub(crate) fn running_sums(&self, leaf_items: Tensor<1, Int>) -> Tensor<2> {
        let table = self.item_table();
        let zero = table.clone().slice(s![0..1]).zeros_like();
        let padded = Tensor::cat(vec![table, zero.clone()], 0);
        let leaves = padded.select(0, leaf_items);
        Tensor::cat(vec![zero, leaves.cumsum(0)], 0)
    }

    /// `[b, size]` scores `(scale W q) . m - scale |m|^2 / 2` of the children of one position,
    /// `m` the mean item vector of each child's leaves; `-1e9` where no child is.
    pub(crate) fn child_logits(
        &self,
        projected: Tensor<2>,
        sums: &Tensor<2>,
        group: &PositionGroup,
    ) -> Tensor<2> {
        let [b, size] = group.lo.dims();
        let [_, w] = projected.dims();
        let lo = group.lo.clone().reshape([b * size]);
        let hi = group.hi.clone().reshape([b * size]);
        let count = (hi.clone() - lo.clone()).float().clamp_min(1.0).reshape([b * size, 1]);
        let means = (sums.clone().select(0, hi) - sums.clone().select(0, lo)) / count.clone();
        let norms = (means.clone() * means.clone()).sum_dim(1).reshape([b, size]);
        let dots =
            means.reshape([b, size, w]).matmul(projected.reshape([b, w, 1])).reshape([b, size]);
        let mut scores = dots - norms * self.scale().reshape([1, 1]).mul_scalar(0.5);
        if self.subtree_prior {
            scores = scores + count.log().reshape([b, size]);
        }
        scores.mask_fill(group.valid.clone().bool_not(), -1.0e9)
    }
}

/// Touches every parameter once (see [`GeneratorModel::initialized`]).
struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        let _ = param.val();
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        let _ = param.val();
    }
}

impl GeneratorModel {
    /// Draws every lazily initialised parameter now. burn initialises a parameter on its first
    /// use, from the device's RNG as it stands then, so without this a model's weights would
    /// depend on whatever else drew from that RNG between `build` and the first forward pass
    /// (another model, another thread), not only on the seed set before `build`.
    pub(crate) fn initialized(self) -> Self {
        self.visit(&mut Materialize);
        self
    }

    /// The dense head, if the model has one.
    pub(crate) fn dense(&self) -> Option<&DenseHead> {
        self.dense.as_ref()
    }

    /// Mutable access for setting the dense tables.
    pub(crate) fn dense_mut(&mut self) -> Option<&mut DenseHead> {
        self.dense.as_mut()
    }

    /// Scales the transformer's logits `[b, t, vocab]` of positions `start..start + t` when the
    /// model has a dense head, and applies the per-position restriction.
    pub(crate) fn finish_logits(&self, logits: Tensor<3>, start: usize) -> Tensor<3> {
        let [b, t, vocab] = logits.dims();
        let logits = match &self.dense {
            // the transformer's share grows slowly, so that its early, query-blind guesses do
            // not drown the dense head's ranking
            Some(_) => logits.mul_scalar(self.transformer_scale),
            None => logits,
        };
        if self.position_sizes.is_empty() {
            return logits;
        }
        let device = logits.device();
        let mut hidden = vec![true; t * vocab];
        for p in 0..t {
            let pos = start + p;
            if pos >= self.position_sizes.len() {
                continue;
            }
            let begin = cart_ids::IdLayout::N_SPECIAL as usize
                + self.position_sizes[..pos].iter().sum::<usize>();
            for v in begin..begin + self.position_sizes[pos] {
                hidden[p * vocab + v] = false;
            }
        }
        let mask = Tensor::<3, Bool>::from_data(TensorData::new(hidden, [1, t, vocab]), &device)
            .expand([b, t, vocab]);
        logits.mask_fill(mask, -1.0e9)
    }

    /// Teacher-forced logits `[b, t, vocab]` with the dense head in full: at every position,
    /// the children of the row's prefix gain their subtree-centroid scores and the other tokens
    /// are ruled out.
    pub(crate) fn forward_groups(
        &self,
        queries: Tensor<3>,
        tokens: Tensor<2, Int>,
        groups: Option<&Groups>,
    ) -> Tensor<3> {
        let projected = self.dense.as_ref().map(|h| h.project(queries.clone()));
        let layers = self.encode(queries);
        let cross = self.cross(&layers);
        let logits = self.finish_logits(self.decode_raw(&cross, tokens), 0);
        let (Some(head), Some(q), Some(groups)) = (&self.dense, projected, groups) else {
            return logits;
        };
        let [b, t, vocab] = logits.dims();
        let sums = head.running_sums(groups.leaf_items.clone());
        let mut rows = Vec::with_capacity(t);
        let mut start = cart_ids::IdLayout::N_SPECIAL as usize;
        for (p, group) in groups.positions.iter().enumerate().take(t) {
            let [_, size] = group.lo.dims();
            let row = logits.clone().slice(s![.., p..p + 1, ..]).reshape([b, vocab]);
            let mid = row.clone().slice(s![.., start..start + size])
                + head.child_logits(q.clone(), &sums, group);
            let row = Tensor::cat(
                vec![
                    row.clone().slice(s![.., 0..start]),
                    mid,
                    row.slice(s![.., start + size..vocab]),
                ],
                1,
            );
            rows.push(row.reshape([b, 1, vocab]));
            start += size;
        }
        Tensor::cat(rows, 1)
    }

    /// Encoder layer outputs `E_1..E_S`, each `[b, n_mem, d]`, from queries `[b, n_vec, d_query]`.
    pub(crate) fn encode(&self, queries: Tensor<3>) -> Vec<Tensor<3>> {
        let [b, _, _] = queries.dims();
        let [n_mem, d] = self.memory_pos.dims();
        let x = self.query_proj.forward(queries).reshape([b, n_mem, d]);
        let x = x + self.memory_pos.val().reshape([1, n_mem, d]);
        let mut x = self.dropout.forward(x);
        let mut layers = Vec::with_capacity(self.encoder.len());
        for layer in &self.encoder {
            x = layer.forward(x);
            layers.push(self.encoder_norm.forward(x.clone()));
        }
        layers
    }

    /// Cross-attention keys and values of every decoder layer.
    pub(crate) fn cross(&self, layers: &[Tensor<3>]) -> Vec<CrossKv> {
        self.decoder.iter().map(|layer| layer.fusion.kv(layers)).collect()
    }

    fn embed(&self, tokens: Tensor<2, Int>, start: usize) -> Tensor<3> {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let positions =
            Tensor::<1, Int>::arange(start as i64..(start + t) as i64, &device).reshape([1, t]);
        let x = self.token_embedding.forward(tokens) + self.position_embedding.forward(positions);
        self.dropout.forward(x)
    }

    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        self.output.forward(self.decoder_norm.forward(x))
    }

    /// Transformer logits `[b, t, vocab]` for decoder inputs `tokens` (`[b, t]`, starting
    /// with BOS), before the dense head and the per-position restriction.
    pub(crate) fn decode_raw(&self, cross: &[CrossKv], tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let mask = Tensor::<2, Bool>::tril_mask([t, t], 0, &device);
        let mut x = self.embed(tokens, 0);
        for (layer, kv) in self.decoder.iter().zip(cross) {
            x = layer.forward(x, kv, &mask);
        }
        self.head(x)
    }

    /// Logits `[b, 1, vocab]` for one new token per row at `position`, using and extending
    /// `caches` (one per decoder layer).
    pub(crate) fn decode_step(
        &self,
        cross: &[CrossKv],
        tokens: Tensor<2, Int>,
        position: usize,
        caches: &mut [Option<Kv>],
    ) -> Tensor<3> {
        let mut x = self.embed(tokens, position);
        for ((layer, kv), cache) in self.decoder.iter().zip(cross).zip(caches.iter_mut()) {
            x = layer.step(x, kv, cache);
        }
        self.head(x)
    }

    /// Teacher-forced logits `[b, t, vocab]` without the item scores of the last position
    /// (see [`GeneratorModel::forward_groups`]).
    pub(crate) fn forward(&self, queries: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.forward_groups(queries, tokens, None)
    }
}
