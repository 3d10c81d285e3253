//! The identifier trie: flat, level-ordered arrays (CSR-like), no per-node allocation.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{IdLayout, SemanticId, Token};

/// Marks "no leaf" in the item -> leaf map.
const NONE: u32 = u32::MAX;

/// Largest item key a trie accepts (`u32::MAX` is reserved).
pub const MAX_ITEM: u32 = u32::MAX - 1;

/// A node of an [`IdTrie`]: the prefix of length `depth` it stands for, by index.
///
/// Nodes are plain indices into the trie's arrays; they stay valid until the trie is changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    depth: u32,
    index: u32,
}

impl Node {
    /// The root: the empty prefix.
    pub const ROOT: Node = Node { depth: 0, index: 0 };

    pub(crate) fn new(depth: usize, index: u32) -> Self {
        Node { depth: depth as u32, index }
    }

    /// Length of the prefix this node stands for.
    pub fn depth(self) -> usize {
        self.depth as usize
    }

    /// Index of the node among the nodes of its depth (in token order).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// The children of a node: their tokens as a sorted slice, and their nodes.
#[derive(Clone, Copy, Debug)]
pub struct Children<'a> {
    depth: u32,
    first: u32,
    tokens: &'a [Token],
}

impl<'a> Children<'a> {
    /// The allowed next tokens, strictly increasing.
    pub fn tokens(&self) -> &'a [Token] {
        self.tokens
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for a leaf (a complete identifier).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The node of the `j`-th child (the one reached by `self.tokens()[j]`).
    ///
    /// # Panics
    /// If `j >= self.len()`.
    pub fn node(&self, j: usize) -> Node {
        assert!(j < self.tokens.len(), "child {j} of {}", self.tokens.len());
        Node { depth: self.depth + 1, index: self.first + j as u32 }
    }
}

/// A prefix trie over all identifiers of an index, stored as flat arrays.
///
/// Level-ordered and CSR-like: the nodes of each depth are numbered in token order; node `i` at
/// depth `d` owns the children `offsets[d][i]..offsets[d][i + 1]` at depth `d + 1`, whose tokens
/// are a contiguous, sorted slice of `labels[d]`. A child lookup is two array reads and gives the
/// allowed next tokens as a borrowed slice. Leaves (depth `id_len`) map to items, and a dense
/// item -> leaf array gives the way back. Memory is about 4 bytes per node and 8 per item
/// (see [`IdTrie::memory_bytes`]).
///
/// Built once from all identifiers ([`IdTrie::from_ids`], [`IdTrie::build`]), then changed in
/// batches ([`IdTrie::insert`], [`IdTrie::insert_codes`], [`IdTrie::remove`]); each change
/// rebuilds the arrays in `O(n)` and either fully succeeds or leaves the trie as it was.
///
/// ```
/// use cart_ids::{IdLayout, IdTrie, assign_ids};
///
/// let layout = IdLayout::new(4, 2, 8, 2)?;
/// let ids = assign_ids(&layout, &[0, 0, 3], &[1, 2, 1, 5, 7, 7])?;
/// let trie = ids.to_trie()?;
/// let k0 = layout.token(0, 0)?;
/// // after the coarse token of cluster 0, the first fine level allows only value 1
/// assert_eq!(trie.allowed(&[k0]), &[layout.token(1, 1)?]);
/// assert_eq!(trie.get(ids.id(2).unwrap()), Some(2));
/// assert_eq!(trie.id_of(1)?.tokens(), ids.id(1).unwrap());
/// # Ok::<(), cart_ids::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TrieParts", into = "TrieParts")]
pub struct IdTrie {
    layout: IdLayout,
    /// `offsets[d]`: one start per node of depth `d`, plus a final end (`id_len` arrays).
    offsets: Vec<Vec<u32>>,
    /// `labels[d]`: the token of every node of depth `d + 1` (`id_len` arrays).
    labels: Vec<Vec<Token>>,
    /// Item of every leaf, in leaf order.
    leaf_item: Vec<u32>,
    /// Leaf of every item key.
    item_leaf: ItemIndex,
}

/// The stored form of an [`IdTrie`]: everything but the derived item -> leaf map.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TrieParts {
    pub(crate) layout: IdLayout,
    pub(crate) offsets: Vec<Vec<u32>>,
    pub(crate) labels: Vec<Vec<Token>>,
    pub(crate) leaf_item: Vec<u32>,
}

impl From<IdTrie> for TrieParts {
    fn from(t: IdTrie) -> Self {
        TrieParts { layout: t.layout, offsets: t.offsets, labels: t.labels, leaf_item: t.leaf_item }
    }
}

impl TryFrom<TrieParts> for IdTrie {
    type Error = Error;
    fn try_from(p: TrieParts) -> Result<Self> {
        p.validate().map_err(|reason| Error::Corrupt { path: Default::default(), reason })?;
        let item_leaf = ItemIndex::new(&p.leaf_item)?;
        Ok(IdTrie {
            layout: p.layout,
            offsets: p.offsets,
            labels: p.labels,
            leaf_item: p.leaf_item,
            item_leaf,
        })
    }
}

impl TrieParts {
    /// Checks every structural invariant the lookups rely on, so a decoded trie can never panic.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let l = self.layout.id_len();
        if self.offsets.len() != l || self.labels.len() != l {
            return Err(format!("expected {l} levels, found {}", self.offsets.len()));
        }
        let mut n_nodes = 1usize; // the root
        for d in 0..l {
            let (off, lab) = (&self.offsets[d], &self.labels[d]);
            if off.len() != n_nodes + 1 {
                return Err(format!("depth {d}: {} offsets for {n_nodes} nodes", off.len()));
            }
            if off[0] != 0 || off[n_nodes] as usize != lab.len() {
                return Err(format!("depth {d}: offsets do not span the labels"));
            }
            if off.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("depth {d}: offsets decrease"));
            }
            let range = self.layout.position_range(d);
            for w in off.windows(2) {
                // only the root of an empty trie may have no children
                if w[0] == w[1] && !(d == 0 && lab.is_empty()) {
                    return Err(format!("depth {d}: a node without children"));
                }
                let kids = &lab[w[0] as usize..w[1] as usize];
                if kids.windows(2).any(|p| p[0] >= p[1]) {
                    return Err(format!("depth {d}: children not strictly increasing"));
                }
                if kids.iter().any(|t| !range.contains(t)) {
                    return Err(format!("depth {d}: token outside its position range"));
                }
            }
            n_nodes = lab.len();
        }
        if self.leaf_item.len() != n_nodes {
            return Err(format!("{} items for {n_nodes} leaves", self.leaf_item.len()));
        }
        Ok(())
    }
}

/// Item key -> leaf: a dense array while keys are dense (`max key < 2n + 1024`), else a sorted
/// list of pairs, so a few huge keys never cost a huge allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ItemIndex {
    Dense(Vec<u32>),
    Sparse(Vec<(u32, u32)>),
}

impl ItemIndex {
    /// Builds the map; errors on a reserved or repeated item.
    fn new(leaf_item: &[u32]) -> Result<Self> {
        if let Some(&item) = leaf_item.iter().find(|&&i| i > MAX_ITEM) {
            return Err(Error::InvalidItem { item, limit: MAX_ITEM + 1 });
        }
        let max = leaf_item.iter().copied().max().map_or(0, |m| m as usize + 1);
        if max <= 2 * leaf_item.len() + 1024 {
            let mut map = vec![NONE; max];
            for (leaf, &item) in leaf_item.iter().enumerate() {
                let slot = &mut map[item as usize];
                if *slot != NONE {
                    return Err(Error::DuplicateItem { item });
                }
                *slot = leaf as u32;
            }
            Ok(ItemIndex::Dense(map))
        } else {
            let mut pairs: Vec<(u32, u32)> =
                leaf_item.iter().enumerate().map(|(leaf, &item)| (item, leaf as u32)).collect();
            pairs.sort_unstable();
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::DuplicateItem { item: w[0].0 });
            }
            Ok(ItemIndex::Sparse(pairs))
        }
    }

    fn leaf(&self, item: u32) -> Option<u32> {
        match self {
            ItemIndex::Dense(map) => map.get(item as usize).copied().filter(|&l| l != NONE),
            ItemIndex::Sparse(pairs) => {
                pairs.binary_search_by_key(&item, |p| p.0).ok().map(|i| pairs[i].1)
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            ItemIndex::Dense(map) => 4 * map.capacity(),
            ItemIndex::Sparse(pairs) => 8 * pairs.capacity(),
        }
    }
}

impl IdTrie {
    /// An empty trie of `layout`.
    pub fn empty(layout: IdLayout) -> Self {
        let l = layout.id_len();
        let mut offsets = vec![vec![0u32]; l];
        offsets[0] = vec![0, 0];
        IdTrie {
            layout,
            offsets,
            labels: vec![Vec::new(); l],
            leaf_item: Vec::new(),
            item_leaf: ItemIndex::Dense(Vec::new()),
        }
    }

    /// Builds the trie of identifiers `ids` (flat, `n * id_len` tokens), item `i` being key `i`.
    ///
    /// # Errors
    /// As [`IdTrie::build`].
    pub fn from_ids(layout: IdLayout, ids: &[Token]) -> Result<Self> {
        let n = ids.len() / layout.id_len();
        let n32 = u32::try_from(n).map_err(|_| Error::TooLarge)?;
        let items: Vec<u32> = (0..n32).collect();
        Self::build(layout, ids, &items)
    }

    /// Builds the trie of identifiers `ids` (flat, `items.len() * id_len` tokens) for `items`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the lengths disagree, [`Error::TokenOutOfRange`] for an
    /// invalid identifier, [`Error::DuplicateId`] / [`Error::DuplicateItem`] for repeats,
    /// [`Error::InvalidItem`] for the reserved key `u32::MAX`.
    pub fn build(layout: IdLayout, ids: &[Token], items: &[u32]) -> Result<Self> {
        let l = layout.id_len();
        if ids.len() != items.len() * l {
            return Err(Error::LengthMismatch { expected: items.len() * l, got: ids.len() });
        }
        for id in ids.chunks_exact(l) {
            layout.check(id)?;
        }
        let n32 = u32::try_from(items.len()).map_err(|_| Error::TooLarge)?;
        let mut order: Vec<u32> = (0..n32).collect();
        let row = |i: u32| &ids[i as usize * l..(i as usize + 1) * l];
        order.sort_unstable_by(|&a, &b| row(a).cmp(row(b)));
        Self::from_sorted(layout, order.iter().map(|&i| (row(i), items[i as usize])), items.len())
    }

    /// Builds from identifiers in increasing token order, validated against repeats.
    fn from_sorted<'a>(
        layout: IdLayout,
        sorted: impl Iterator<Item = (&'a [Token], u32)>,
        n: usize,
    ) -> Result<Self> {
        let l = layout.id_len();
        let mut offsets: Vec<Vec<u32>> = vec![Vec::new(); l];
        let mut labels: Vec<Vec<Token>> = vec![Vec::new(); l];
        offsets[0].push(0);
        let mut leaf_item = Vec::with_capacity(n);
        labels[l - 1].reserve(n);
        let mut prev: Option<(&[Token], u32)> = None;
        for (id, item) in sorted {
            let diff = match prev {
                None => 0,
                Some((p, prev_item)) => match p.iter().zip(id).position(|(a, b)| a != b) {
                    Some(d) => d,
                    None => {
                        return Err(Error::DuplicateId {
                            id: id.to_vec(),
                            first: prev_item,
                            second: item,
                        });
                    }
                },
            };
            for d in diff..l {
                labels[d].push(id[d]);
                if d + 1 < l {
                    let start = u32::try_from(labels[d + 1].len()).map_err(|_| Error::TooLarge)?;
                    offsets[d + 1].push(start);
                }
            }
            u32::try_from(labels[l - 1].len()).map_err(|_| Error::TooLarge)?;
            leaf_item.push(item);
            prev = Some((id, item));
        }
        for d in 0..l {
            let end = u32::try_from(labels[d].len()).map_err(|_| Error::TooLarge)?;
            offsets[d].push(end);
            offsets[d].shrink_to_fit();
            labels[d].shrink_to_fit();
        }
        let item_leaf = ItemIndex::new(&leaf_item)?;
        Ok(IdTrie { layout, offsets, labels, leaf_item, item_leaf })
    }

    /// The identifier layout.
    pub fn layout(&self) -> &IdLayout {
        &self.layout
    }

    /// Number of items (complete identifiers).
    pub fn len(&self) -> usize {
        self.leaf_item.len()
    }

    /// True when the trie holds no identifier.
    pub fn is_empty(&self) -> bool {
        self.leaf_item.is_empty()
    }

    /// Number of nodes of depth `depth` (distinct prefixes of that length).
    ///
    /// # Panics
    /// If `depth > id_len`.
    pub fn n_nodes(&self, depth: usize) -> usize {
        if depth == 0 { 1 } else { self.labels[depth - 1].len() }
    }

    /// The children of `node`; empty for a leaf.
    ///
    /// Two array reads, no allocation: this is the beam search's inner lookup.
    ///
    /// # Panics
    /// If `node` does not belong to this trie (a node from another or an older trie).
    #[inline]
    pub fn children(&self, node: Node) -> Children<'_> {
        let d = node.depth as usize;
        if d == self.offsets.len() {
            return Children { depth: node.depth, first: 0, tokens: &[] };
        }
        let off = &self.offsets[d];
        let (s, e) = (off[node.index as usize], off[node.index as usize + 1]);
        Children { depth: node.depth, first: s, tokens: &self.labels[d][s as usize..e as usize] }
    }

    /// The child of `node` reached by `token`, if any.
    pub fn child(&self, node: Node, token: Token) -> Option<Node> {
        let kids = self.children(node);
        kids.tokens.binary_search(&token).ok().map(|j| kids.node(j))
    }

    /// The node of `prefix`, or `None` if no identifier starts with it.
    pub fn find(&self, prefix: &[Token]) -> Option<Node> {
        prefix.iter().try_fold(Node::ROOT, |node, &t| self.child(node, t))
    }

    /// The tokens allowed after `prefix` (empty if `prefix` is complete or unknown).
    pub fn allowed(&self, prefix: &[Token]) -> &[Token] {
        self.find(prefix).map_or(&[], |n| self.children(n).tokens)
    }

    /// The item of a leaf node; `None` for an inner node.
    pub fn item(&self, node: Node) -> Option<u32> {
        if node.depth as usize == self.layout.id_len() {
            self.leaf_item.get(node.index as usize).copied()
        } else {
            None
        }
    }

    /// The item with identifier `id`, if present.
    pub fn get(&self, id: &[Token]) -> Option<u32> {
        if id.len() != self.layout.id_len() {
            return None;
        }
        self.find(id).and_then(|n| self.item(n))
    }

    /// True if `item` is in the trie.
    pub fn contains_item(&self, item: u32) -> bool {
        self.item_leaf.leaf(item).is_some()
    }

    /// The identifier of `item`.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] if the item is not in the trie.
    pub fn id_of(&self, item: u32) -> Result<SemanticId> {
        let mut tokens = vec![0; self.layout.id_len()];
        self.write_id(item, &mut tokens)?;
        Ok(SemanticId::from_tokens_unchecked(tokens))
    }

    /// Writes the tokens of `item`'s identifier into `out` (`id_len` long), walking up the trie.
    ///
    /// # Errors
    /// [`Error::UnknownItem`], or [`Error::LengthMismatch`] for a wrong-sized `out`.
    pub fn write_id(&self, item: u32, out: &mut [Token]) -> Result<()> {
        let l = self.layout.id_len();
        if out.len() != l {
            return Err(Error::LengthMismatch { expected: l, got: out.len() });
        }
        let Some(mut idx) = self.item_leaf.leaf(item) else {
            return Err(Error::UnknownItem { item });
        };
        for d in (0..l).rev() {
            out[d] = self.labels[d][idx as usize];
            // the parent is the node whose child range holds idx
            idx = (self.offsets[d].partition_point(|&o| o <= idx) - 1) as u32;
        }
        Ok(())
    }

    /// The leaves under `node`, as a range of leaf indices: `len()` is the number of items that
    /// share the prefix.
    pub fn leaf_range(&self, node: Node) -> Range<usize> {
        let (mut lo, mut hi) = (node.index as usize, node.index as usize + 1);
        for off in &self.offsets[node.depth as usize..] {
            (lo, hi) = (off[lo] as usize, off[hi] as usize);
        }
        lo..hi
    }

    /// Number of items under every `[k, v1..vM]` prefix present (the sizes of the groups the
    /// uniqueness token separates), in prefix order.
    pub(crate) fn group_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        let l = self.layout.id_len();
        self.offsets[l - 1].windows(2).map(|w| (w[1] - w[0]) as usize)
    }

    /// Every item with its identifier, in identifier order.
    pub fn iter(&self) -> impl Iterator<Item = (SemanticId, u32)> + '_ {
        let l = self.layout.id_len();
        let flat = self.sorted_ids();
        (0..self.len()).map(move |leaf| {
            (
                SemanticId::from_tokens_unchecked(flat[leaf * l..(leaf + 1) * l].to_vec()),
                self.leaf_item[leaf],
            )
        })
    }

    /// All identifiers flat, in leaf (= token) order: `O(n * id_len)`.
    fn sorted_ids(&self) -> Vec<Token> {
        let l = self.layout.id_len();
        // parents[d][j]: the depth-d parent of node j at depth d + 1
        let parents: Vec<Vec<u32>> = self
            .offsets
            .iter()
            .map(|off| {
                let mut p = Vec::with_capacity(off.last().map_or(0, |&e| e as usize));
                for (w, pair) in off.windows(2).enumerate() {
                    p.extend(std::iter::repeat_n(w as u32, (pair[1] - pair[0]) as usize));
                }
                p
            })
            .collect();
        let n = self.len();
        let mut flat = vec![0; n * l];
        let mut idx: Vec<u32> = (0..n as u32).collect();
        for d in (0..l).rev() {
            for (leaf, i) in idx.iter_mut().enumerate() {
                flat[leaf * l + d] = self.labels[d][*i as usize];
                *i = parents[d][*i as usize];
            }
        }
        flat
    }

    /// Adds items with their identifiers (flat, `items.len() * id_len` tokens).
    ///
    /// `O(n + b log b)` for `n` items already in and `b` new ones: batch your inserts.
    ///
    /// # Errors
    /// As [`IdTrie::build`], and [`Error::DuplicateItem`] / [`Error::DuplicateId`] if an item or
    /// identifier is already in the trie. On error the trie is unchanged.
    pub fn insert(&mut self, ids: &[Token], items: &[u32]) -> Result<()> {
        let l = self.layout.id_len();
        if ids.len() != items.len() * l {
            return Err(Error::LengthMismatch { expected: items.len() * l, got: ids.len() });
        }
        for id in ids.chunks_exact(l) {
            self.layout.check(id)?;
        }
        if let Some(&item) = items.iter().find(|&&i| self.contains_item(i)) {
            return Err(Error::DuplicateItem { item });
        }
        let old = self.sorted_ids();
        let n_new = u32::try_from(items.len()).map_err(|_| Error::TooLarge)?;
        let mut order: Vec<u32> = (0..n_new).collect();
        let new_row = |i: u32| &ids[i as usize * l..(i as usize + 1) * l];
        order.sort_unstable_by(|&a, &b| new_row(a).cmp(new_row(b)));
        let old_iter = old.chunks_exact(l).zip(self.leaf_item.iter().copied());
        let new_iter = order.iter().map(|&i| (new_row(i), items[i as usize]));
        let merged = MergeSorted { a: old_iter.peekable(), b: new_iter.peekable() };
        *self = Self::from_sorted(self.layout, merged, self.len() + items.len())?;
        Ok(())
    }

    /// Adds items from their codes, giving each the smallest free uniqueness value of its
    /// `[k, v1..vM]` (after those already in the trie and earlier items of this batch).
    ///
    /// `coarse[i]` and `fine[i * M..(i + 1) * M]` are the codes of `items[i]`. Returns the
    /// identifiers given, flat, in the order of `items`.
    ///
    /// # Errors
    /// As [`IdTrie::insert`], [`Error::ValueOutOfRange`] for a bad code, and
    /// [`Error::NoFreeUnique`] when a tuple has no free suffix left. On error the trie is unchanged.
    pub fn insert_codes(
        &mut self,
        items: &[u32],
        coarse: &[u32],
        fine: &[u32],
    ) -> Result<Vec<Token>> {
        let (m, l) = (self.layout.n_levels(), self.layout.id_len());
        if coarse.len() != items.len() {
            return Err(Error::LengthMismatch { expected: items.len(), got: coarse.len() });
        }
        if fine.len() != items.len() * m {
            return Err(Error::LengthMismatch { expected: items.len() * m, got: fine.len() });
        }
        let unique = self.layout.position_range(self.layout.unique_position());
        let mut ids = Vec::with_capacity(items.len() * l);
        // suffixes taken within this batch, per code tuple
        let mut taken: std::collections::HashMap<Vec<Token>, Vec<Token>> = Default::default();
        for (i, &k) in coarse.iter().enumerate() {
            let id = self.layout.encode(k, &fine[i * m..(i + 1) * m], 0)?;
            let prefix = &id.tokens()[..l - 1];
            let existing = self.find(prefix).map_or(&[][..], |n| self.children(n).tokens);
            let batch = taken.entry(prefix.to_vec()).or_default();
            let free =
                unique.clone().find(|t| existing.binary_search(t).is_err() && !batch.contains(t));
            let Some(u) = free else {
                let codes = prefix
                    .iter()
                    .enumerate()
                    .map(|(p, &t)| t - self.layout.position_range(p).start)
                    .collect();
                return Err(Error::NoFreeUnique { codes, available: self.layout.n_unique() });
            };
            batch.push(u);
            ids.extend_from_slice(prefix);
            ids.push(u);
        }
        self.insert(&ids, items)?;
        Ok(ids)
    }

    /// Removes `items`.
    ///
    /// `O(n)`: batch your removals.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] if an item is not in the trie (or is repeated); the trie is then
    /// unchanged.
    pub fn remove(&mut self, items: &[u32]) -> Result<()> {
        let mut gone = vec![false; self.len()];
        for &item in items {
            match self.item_leaf.leaf(item) {
                Some(leaf) if !gone[leaf as usize] => gone[leaf as usize] = true,
                _ => return Err(Error::UnknownItem { item }),
            }
        }
        let l = self.layout.id_len();
        let old = self.sorted_ids();
        let kept = old
            .chunks_exact(l)
            .zip(self.leaf_item.iter().copied())
            .zip(gone)
            .filter_map(|(pair, g)| (!g).then_some(pair));
        *self = Self::from_sorted(self.layout, kept, self.len() - items.len())?;
        Ok(())
    }

    /// Heap bytes held by the trie's arrays (labels, offsets, leaf -> item, item -> leaf).
    pub fn memory_bytes(&self) -> usize {
        let v = |n: usize| n * std::mem::size_of::<u32>();
        self.offsets.iter().map(|o| v(o.capacity())).sum::<usize>()
            + self.labels.iter().map(|o| v(o.capacity())).sum::<usize>()
            + v(self.leaf_item.capacity())
            + self.item_leaf.bytes()
    }

    pub(crate) fn parts(&self) -> (&[Vec<u32>], &[Vec<Token>], &[u32]) {
        (&self.offsets, &self.labels, &self.leaf_item)
    }
}

/// Merges two token-ordered streams of (identifier, item).
struct MergeSorted<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'x, A, B> Iterator for MergeSorted<A, B>
where
    A: Iterator<Item = (&'x [Token], u32)>,
    B: Iterator<Item = (&'x [Token], u32)>,
{
    type Item = (&'x [Token], u32);
    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}
