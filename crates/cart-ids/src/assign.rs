//! Collision-free assignment of identifiers from per-item codes.

use crate::error::{Error, Result};
use crate::layout::{IdLayout, SemanticId, Token};
use crate::trie::IdTrie;
use ndarray::ArrayView2;

/// Identifiers of items `0..n`, one per item, all distinct: the output of [`assign_ids`].
///
/// Stored flat (`n * id_len` tokens, row-major), as the trie builder and the generator's
/// training loop read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdAssignment {
    layout: IdLayout,
    tokens: Vec<Token>,
    n_colliding: usize,
    largest_group: usize,
}

impl IdAssignment {
    /// The layout the identifiers follow.
    pub fn layout(&self) -> &IdLayout {
        &self.layout
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.layout.id_len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens of item `item`'s identifier, or `None` if `item >= self.len()`.
    pub fn id(&self, item: usize) -> Option<&[Token]> {
        let l = self.layout.id_len();
        self.tokens.get(item * l..(item + 1) * l)
    }

    /// Item `item`'s identifier as an owned [`SemanticId`].
    pub fn semantic_id(&self, item: usize) -> Option<SemanticId> {
        self.id(item).map(|t| SemanticId::from_tokens_unchecked(t.to_vec()))
    }

    /// All identifiers, flat: item `i` owns `tokens[i * id_len..(i + 1) * id_len]`.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Items whose `[k, v1..vM]` is shared with at least one other item.
    pub fn n_colliding(&self) -> usize {
        self.n_colliding
    }

    /// Size of the largest group of items sharing one `[k, v1..vM]`.
    pub fn largest_group(&self) -> usize {
        self.largest_group
    }

    /// Share of items whose codes collide before the uniqueness token (0 when all differ).
    pub fn collision_rate(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.n_colliding as f64 / self.len() as f64 }
    }

    /// Builds the prefix trie over these identifiers, item `i` being key `i`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past `u32` indexing; the identifiers themselves are valid by construction.
    pub fn to_trie(&self) -> Result<IdTrie> {
        IdTrie::from_ids(self.layout, &self.tokens)
    }

    /// The identifiers held by `trie`, whose items must be exactly `0..trie.len()`: the way
    /// back from a trie that grew with [`IdTrie::insert_codes`] to the dense assignment a
    /// generator trains on. `O(n * id_len)`.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] for the first key in `0..trie.len()` the trie lacks.
    pub fn from_trie(trie: &IdTrie) -> Result<Self> {
        let layout = *trie.layout();
        let l = layout.id_len();
        let n = u32::try_from(trie.len()).map_err(|_| Error::TooLarge)?;
        let mut tokens = vec![0; n as usize * l];
        for (item, out) in (0..n).zip(tokens.chunks_exact_mut(l)) {
            trie.write_id(item, out)?;
        }
        let (mut n_colliding, mut largest_group) = (0, 0);
        for size in trie.group_sizes() {
            if size > 1 {
                n_colliding += size;
            }
            largest_group = largest_group.max(size);
        }
        Ok(Self { layout, tokens, n_colliding, largest_group })
    }
}

/// Gives every item exactly one identifier `[k, v1..vM, u]`.
///
/// `coarse[i]` is item `i`'s coarse cluster and `fine[i * M..(i + 1) * M]` its fine codes.
/// Items sharing the same `[k, v1..vM]` get the suffixes `u = 0, 1, 2, ...` in item order; every
/// other item gets `u = 0`. The result depends only on the input (deterministic).
///
/// ```
/// use cart_ids::{IdLayout, assign_ids};
///
/// let layout = IdLayout::new(2, 2, 4, 4)?;
/// // items 0 and 2 collide on [1, 3, 0]
/// let ids = assign_ids(&layout, &[1, 0, 1], &[3, 0, 2, 2, 3, 0])?;
/// let u = |i| layout.value(3, ids.id(i).unwrap()[3]).unwrap();
/// assert_eq!((u(0), u(1), u(2)), (0, 0, 1));
/// assert_eq!(ids.largest_group(), 2);
/// # Ok::<(), cart_ids::Error>(())
/// ```
///
/// # Errors
/// [`Error::LengthMismatch`] if `fine.len() != coarse.len() * M`; [`Error::ValueOutOfRange`]
/// for a code outside its codebook; [`Error::UniqueOverflow`] (with the `n_unique` needed) when
/// a group is larger than the uniqueness range.
pub fn assign_ids(layout: &IdLayout, coarse: &[u32], fine: &[u32]) -> Result<IdAssignment> {
    let m = layout.n_levels();
    let n = coarse.len();
    if fine.len() != n * m {
        return Err(Error::LengthMismatch { expected: n * m, got: fine.len() });
    }
    let l = layout.id_len();
    let mut tokens = Vec::with_capacity(n * l);
    for i in 0..n {
        tokens.push(layout.token(0, coarse[i])?);
        for (level, &v) in fine[i * m..(i + 1) * m].iter().enumerate() {
            tokens.push(layout.token(level + 1, v)?);
        }
        tokens.push(0); // the suffix, filled below
    }
    let key = |i: u32| {
        let i = i as usize;
        &tokens[i * l..i * l + l - 1]
    };
    let n32 = u32::try_from(n).map_err(|_| Error::TooLarge)?;
    let mut order: Vec<u32> = (0..n32).collect();
    // stable: items in a group keep item order, so suffixes follow item order
    order.sort_by(|&a, &b| key(a).cmp(key(b)));

    let mut suffix = vec![0u32; n];
    let (mut n_colliding, mut largest, mut largest_at) = (0usize, 0usize, 0usize);
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && key(order[end]) == key(order[start]) {
            end += 1;
        }
        let size = end - start;
        if size > 1 {
            n_colliding += size;
        }
        if size > largest {
            (largest, largest_at) = (size, start);
        }
        for (u, &item) in order[start..end].iter().enumerate() {
            suffix[item as usize] = u as u32;
        }
        start = end;
    }
    if largest > layout.n_unique() as usize {
        let item = order[largest_at] as usize;
        let codes = tokens[item * l..item * l + l - 1]
            .iter()
            .enumerate()
            .map(|(p, &t)| t - layout.position_range(p).start)
            .collect();
        return Err(Error::UniqueOverflow { needed: largest, available: layout.n_unique(), codes });
    }
    let unique_start = layout.position_range(layout.unique_position()).start;
    for (i, u) in suffix.into_iter().enumerate() {
        tokens[i * l + l - 1] = unique_start + u;
    }
    Ok(IdAssignment { layout: *layout, tokens, n_colliding, largest_group: largest })
}

/// Most uniqueness values a headroom may add beyond the largest collision group: the `U`
/// tokens are part of the generator's vocabulary.
pub const MAX_UNIQUE: usize = 1 << 16;

impl IdLayout {
    /// The layout for a quantizer's codebook sizes `[K, C, .., C]` (the coarse codebook, then
    /// `M` fine levels of one size) and `n_unique` suffixes.
    ///
    /// ```
    /// let layout = cart_ids::IdLayout::for_codebooks(&[64, 32, 32, 32], 4)?;
    /// assert_eq!((layout.n_coarse(), layout.n_levels(), layout.id_len()), (64, 3, 5));
    /// # Ok::<(), cart_ids::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] for no sizes, fine levels of different sizes, a size over
    /// `u32::MAX`, or what [`IdLayout::new`] refuses.
    pub fn for_codebooks(sizes: &[usize], n_unique: u32) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLayout { reason };
        let (&k, fine) = sizes.split_first().ok_or_else(|| invalid("no codebook sizes".into()))?;
        let c = fine.first().copied().unwrap_or(1);
        if fine.iter().any(|&s| s != c) {
            return Err(invalid(format!(
                "codebook sizes {sizes:?}: the fine levels must share one codebook size"
            )));
        }
        let to_u32 = |v: usize| u32::try_from(v).map_err(|_| invalid(format!("codebook size {v}")));
        IdLayout::new(to_u32(k)?, fine.len(), to_u32(c)?, n_unique)
    }
}

/// The coarse codes and the flat fine codes (row-major, `M` per item) of a quantizer's
/// `[n, 1 + M]` code matrix, as [`assign_ids`] and [`IdTrie::insert_codes`] take them.
///
/// ```
/// let codes = ndarray::array![[3, 1, 2], [0, 4, 5]];
/// assert_eq!(cart_ids::split_codes(codes.view())?, (vec![3, 0], vec![1, 2, 4, 5]));
/// # Ok::<(), cart_ids::Error>(())
/// ```
///
/// # Errors
/// [`Error::LengthMismatch`] for a matrix without columns.
pub fn split_codes(codes: ArrayView2<'_, u32>) -> Result<(Vec<u32>, Vec<u32>)> {
    if codes.ncols() == 0 {
        return Err(Error::LengthMismatch { expected: 1, got: 0 });
    }
    let coarse = codes.column(0).iter().copied().collect();
    let fine = codes.rows().into_iter().flat_map(|row| row.into_iter().skip(1).copied()).collect();
    Ok((coarse, fine))
}

/// Identifiers for a quantizer's `[n, 1 + M]` code matrix (codebook sizes `sizes`), with the
/// uniqueness range sized in one pass: `U = ceil(largest group x headroom)`, at least the
/// largest group, so that items added later find free suffixes.
///
/// ```
/// // items 0 and 2 share the codes [1, 3]: U = 2 x 2.0
/// let codes = ndarray::array![[1, 3], [0, 0], [1, 3]];
/// let ids = cart_ids::assign_codes(&[2, 4], codes.view(), 2.0)?;
/// assert_eq!((ids.largest_group(), ids.layout().n_unique()), (2, 4));
/// # Ok::<(), cart_ids::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidLayout`] for a headroom that is not finite and at least 1, or that asks for
/// more than [`MAX_UNIQUE`] values beyond the largest group; [`Error::LengthMismatch`] unless
/// the matrix has one column per codebook; as [`IdLayout::for_codebooks`] and
/// [`assign_ids`] otherwise.
pub fn assign_codes(
    sizes: &[usize],
    codes: ArrayView2<'_, u32>,
    headroom: f64,
) -> Result<IdAssignment> {
    let invalid = |reason: String| Error::InvalidLayout { reason };
    if !(headroom.is_finite() && headroom >= 1.0) {
        return Err(invalid(format!("unique_headroom {headroom}: finite and >= 1")));
    }
    let width = sizes.len();
    if codes.ncols() != width {
        return Err(Error::LengthMismatch { expected: width, got: codes.ncols() });
    }
    let (coarse, fine) = split_codes(codes)?;
    let codes: Vec<u32> = codes.iter().copied().collect();
    // the largest group of equal code rows, from one sort of the row indices
    let n = coarse.len();
    let row = |i: usize| &codes[i * width..(i + 1) * width];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| row(a).cmp(row(b)));
    let mut needed = usize::from(n > 0);
    let mut run = 1;
    for w in order.windows(2) {
        run = if row(w[0]) == row(w[1]) { run + 1 } else { 1 };
        needed = needed.max(run);
    }
    let n_unique = ((needed as f64 * headroom).ceil() as usize).max(needed);
    if n_unique > MAX_UNIQUE.max(needed) {
        return Err(invalid(format!(
            "unique_headroom {headroom} gives U = {n_unique} for a largest group of {needed}; \
             U may exceed the largest group only up to {MAX_UNIQUE} values"
        )));
    }
    let n_unique = u32::try_from(n_unique).map_err(|_| invalid(format!("U = {n_unique}")))?;
    assign_ids(&IdLayout::for_codebooks(sizes, n_unique)?, &coarse, &fine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_codes_sizes_u_in_one_pass_like_the_two_pass_rule() {
        // 6 items, codes [k, v]; [1, 2] three times, [0, 0] twice
        let flat = [1, 2, 0, 0, 1, 2, 3, 1, 0, 0, 1, 2];
        let codes = ArrayView2::from_shape((6, 2), &flat).unwrap();
        let sizes = [4, 3];
        let (coarse, fine) = split_codes(codes).unwrap();
        let probe = IdLayout::for_codebooks(&sizes, 6).unwrap();
        let needed = assign_ids(&probe, &coarse, &fine).unwrap().largest_group();
        assert_eq!(needed, 3);
        for (headroom, u) in [(1.0, 3), (1.5, 5), (2.0, 6)] {
            let ids = assign_codes(&sizes, codes, headroom).unwrap();
            let two_pass = IdLayout::for_codebooks(&sizes, u).unwrap();
            assert_eq!(ids, assign_ids(&two_pass, &coarse, &fine).unwrap(), "headroom {headroom}");
        }
        for bad in [0.5, f64::NAN, 1e8] {
            let e = assign_codes(&sizes, codes, bad).unwrap_err();
            assert!(e.to_string().contains("unique_headroom"), "{bad}: {e}");
        }
        assert!(assign_codes(&[4, 3, 3], codes, 1.0).is_err(), "a column per codebook");
        assert!(IdLayout::for_codebooks(&[4, 3, 5], 1).is_err(), "fine levels of two sizes");
        assert!(IdLayout::for_codebooks(&[], 1).is_err());
    }

    #[test]
    fn overflow_names_the_needed_size() {
        let layout = IdLayout::new(2, 1, 2, 2).unwrap();
        let err = assign_ids(&layout, &[1, 1, 1, 0], &[1, 1, 1, 0]).unwrap_err();
        match err {
            Error::UniqueOverflow { needed, available, codes } => {
                assert_eq!((needed, available), (3, 2));
                assert_eq!(codes, vec![1, 1]);
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err_text(&layout).contains("at least 3"));
    }

    fn err_text(layout: &IdLayout) -> String {
        assign_ids(layout, &[1, 1, 1], &[1, 1, 1]).unwrap_err().to_string()
    }

    #[test]
    fn no_collision_means_all_zero_suffix() {
        let layout = IdLayout::new(4, 1, 4, 1).unwrap();
        let ids = assign_ids(&layout, &[0, 1, 2, 3], &[3, 2, 1, 0]).unwrap();
        assert_eq!(ids.n_colliding(), 0);
        assert_eq!(ids.largest_group(), 1);
        let u0 = layout.position_range(2).start;
        assert!((0..4).all(|i| ids.id(i).unwrap()[2] == u0));
    }

    #[test]
    fn from_trie_needs_dense_keys_and_counts_groups() {
        let layout = IdLayout::new(2, 1, 2, 3).unwrap();
        let ids = assign_ids(&layout, &[1, 0, 1, 1], &[1, 0, 1, 0]).unwrap();
        let back = IdAssignment::from_trie(&ids.to_trie().unwrap()).unwrap();
        assert_eq!(back, ids);
        assert_eq!((back.n_colliding(), back.largest_group()), (2, 2));
        let sparse = IdTrie::build(layout, &ids.tokens()[..6], &[0, 5]).unwrap();
        assert!(matches!(IdAssignment::from_trie(&sparse), Err(Error::UnknownItem { item: 1 })));
    }

    #[test]
    fn rejects_bad_codes() {
        let layout = IdLayout::new(4, 2, 4, 1).unwrap();
        assert!(matches!(assign_ids(&layout, &[0], &[1]), Err(Error::LengthMismatch { .. })));
        assert!(matches!(
            assign_ids(&layout, &[4], &[1, 1]),
            Err(Error::ValueOutOfRange { position: 0, .. })
        ));
        assert!(matches!(
            assign_ids(&layout, &[0], &[1, 9]),
            Err(Error::ValueOutOfRange { position: 2, .. })
        ));
    }
}
