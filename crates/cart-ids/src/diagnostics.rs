//! Identifier quality diagnostics: collisions, prefix fan-out, uniqueness histogram.

use std::fmt;

use crate::trie::{IdTrie, Node};

/// Items per prefix at one depth of the trie.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthStats {
    /// Prefix length (1 = the coarse token alone).
    pub depth: usize,
    /// Distinct prefixes of this length.
    pub n_prefixes: usize,
    /// Most items sharing one prefix.
    pub max_items: usize,
    /// Mean items per prefix.
    pub mean_items: f64,
}

/// Diagnostics of an identifier set, from [`IdTrie::diagnostics`]; prints as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct IdDiagnostics {
    /// Number of items.
    pub n_items: usize,
    /// Distinct `[k, v1..vM]` tuples (identifiers before the uniqueness token).
    pub n_code_tuples: usize,
    /// Items whose `[k, v1..vM]` is shared with another item.
    pub n_colliding: usize,
    /// `n_colliding / n_items`: the collision rate before the uniqueness token.
    pub collision_rate: f64,
    /// Size of the largest group of items sharing one `[k, v1..vM]`.
    pub largest_group: usize,
    /// Items per prefix at each depth `1..=id_len`.
    pub depths: Vec<DepthStats>,
    /// `unique_histogram[u]`: items whose uniqueness value is `u` (trailing zeros trimmed).
    pub unique_histogram: Vec<usize>,
    /// Heap bytes of the trie, and per item.
    pub memory_bytes: usize,
}

impl IdTrie {
    /// Computes the diagnostics in one pass over the trie's arrays.
    pub fn diagnostics(&self) -> IdDiagnostics {
        let l = self.layout().id_len();
        let n = self.len();
        let depths = (1..=l)
            .map(|depth| {
                let n_prefixes = self.n_nodes(depth);
                let max_items = (0..n_prefixes as u32)
                    .map(|index| self.leaf_range(node(depth, index)).len())
                    .max()
                    .unwrap_or(0);
                let mean_items = if n_prefixes == 0 { 0.0 } else { n as f64 / n_prefixes as f64 };
                DepthStats { depth, n_prefixes, max_items, mean_items }
            })
            .collect::<Vec<_>>();
        // groups sharing [k, v1..vM] are the nodes of depth id_len - 1
        let (mut n_colliding, mut largest_group) = (0, 0);
        for index in 0..self.n_nodes(l - 1) as u32 {
            let size = self.children(node(l - 1, index)).len();
            if size > 1 {
                n_colliding += size;
            }
            largest_group = largest_group.max(size);
        }
        let unique_start = self.layout().position_range(l - 1).start;
        let mut unique_histogram = vec![0usize; self.layout().n_unique() as usize];
        for index in 0..self.n_nodes(l - 1) as u32 {
            for &t in self.children(node(l - 1, index)).tokens() {
                unique_histogram[(t - unique_start) as usize] += 1;
            }
        }
        while unique_histogram.last() == Some(&0) {
            unique_histogram.pop();
        }
        IdDiagnostics {
            n_items: n,
            n_code_tuples: self.n_nodes(l - 1),
            n_colliding,
            collision_rate: if n == 0 { 0.0 } else { n_colliding as f64 / n as f64 },
            largest_group,
            depths,
            unique_histogram,
            memory_bytes: self.memory_bytes(),
        }
    }
}

fn node(depth: usize, index: u32) -> Node {
    Node::new(depth, index)
}

impl fmt::Display for IdDiagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "items                 {:>12}", self.n_items)?;
        writeln!(f, "distinct [k, v1..vM]  {:>12}", self.n_code_tuples)?;
        writeln!(
            f,
            "colliding items       {:>12}  ({:.2}% before the uniqueness token)",
            self.n_colliding,
            100.0 * self.collision_rate
        )?;
        writeln!(f, "largest collision     {:>12}", self.largest_group)?;
        let per_item =
            if self.n_items == 0 { 0.0 } else { self.memory_bytes as f64 / self.n_items as f64 };
        writeln!(f, "trie memory           {:>12} B  ({per_item:.1} B/item)", self.memory_bytes)?;
        writeln!(f, "depth  prefixes      items/prefix max   mean")?;
        for d in &self.depths {
            writeln!(
                f,
                "{:>5}  {:>12}  {:>16}  {:>8.2}",
                d.depth, d.n_prefixes, d.max_items, d.mean_items
            )?;
        }
        write!(f, "uniqueness values     ")?;
        for (u, c) in self.unique_histogram.iter().enumerate() {
            write!(f, "{}u={u}:{c}", if u == 0 { "" } else { "  " })?;
        }
        writeln!(f)
    }
}
