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

/// Shape of a [`Generator`](crate::Generator); [`GeneratorConfig::init`] builds an untrained one.
///
/// The vocabulary and identifier length come from the [`cart_ids::IdLayout`] the identifiers were
/// made with ([`GeneratorConfig::for_layout`]).
#[derive(Config, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Width of one query vector.
    pub d_query: usize,
    /// Decoder vocabulary size ([`cart_ids::IdLayout::vocab_size`]).
    pub vocab_size: usize,
    /// Identifier length in tokens ([`cart_ids::IdLayout::id_len`]).
    pub id_len: usize,
    /// Vectors per query (1: one embedding; more: a short sequence of vectors). Default: 1.
    #[config(default = 1)]
    pub n_query_vectors: usize,
    /// Memory tokens each query vector is projected into. Default: 4.
    #[config(default = 4)]
    pub n_memory: usize,
    /// Model width. Default: 256.
    #[config(default = 256)]
    pub d_model: usize,
    /// Attention heads; must divide `d_model`. Default: 4.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Encoder layers `S`; every layer's output feeds the fusion. Default: 4.
    #[config(default = 4)]
    pub n_encoder_layers: usize,
    /// Decoder layers. Default: 4.
    #[config(default = 4)]
    pub n_decoder_layers: usize,
    /// Hidden width of the feed-forward blocks. Default: 1024.
    #[config(default = 1024)]
    pub d_ff: usize,
    /// Dropout probability (embeddings, attention and feed-forward outputs). Default: 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Coarse-to-fine feature fusion (`true`) or plain cross-attention to the last encoder
    /// layer (`false`, the paper's "without fusion" ablation). Default: `true`.
    #[config(default = true)]
    pub fusion: bool,
}

impl GeneratorConfig {
    /// A config for query vectors of width `d_query` and identifiers of `layout`.
    pub fn for_layout(d_query: usize, layout: &cart_ids::IdLayout) -> Self {
        Self::new(d_query, layout.vocab_size(), layout.id_len())
    }

    /// Values per query in the flat query buffers (`n_query_vectors * d_query`).
    pub fn query_width(&self) -> usize {
        self.n_query_vectors * self.d_query
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = [
            ("d_query", self.d_query),
            ("vocab_size", self.vocab_size),
            ("id_len", self.id_len),
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
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::config("n_heads", self.n_heads, "must divide d_model"));
        }
        if self.vocab_size > i32::MAX as usize {
            return Err(Error::config("vocab_size", self.vocab_size, "must fit in an i32"));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(Error::config("dropout", self.dropout, "must be in [0, 1)"));
        }
        Ok(())
    }

    pub(crate) fn build(&self, device: &Device) -> GeneratorModel {
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
        GeneratorModel {
            query_proj: LinearConfig::new(self.d_query, self.n_memory * d).init(device),
            memory_pos: Param::from_tensor(memory_pos),
            encoder,
            encoder_norm: layer_norm(),
            token_embedding: EmbeddingConfig::new(self.vocab_size, d).init(device),
            position_embedding: EmbeddingConfig::new(self.id_len, d).init(device),
            decoder,
            decoder_norm: layer_norm(),
            output: LinearConfig::new(d, self.vocab_size).init(device),
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
}

impl GeneratorModel {
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

    /// Logits `[b, t, vocab]` for decoder inputs `tokens` (`[b, t]`, starting with BOS).
    pub(crate) fn decode(&self, cross: &[CrossKv], tokens: Tensor<2, Int>) -> Tensor<3> {
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

    /// Teacher-forced logits `[b, t, vocab]`.
    pub(crate) fn forward(&self, queries: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<3> {
        let layers = self.encode(queries);
        let cross = self.cross(&layers);
        self.decode(&cross, tokens)
    }
}
