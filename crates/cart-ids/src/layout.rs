//! Identifier layout: positions, token ranges and control tokens.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A token of the generator's vocabulary.
pub type Token = u32;

/// What a token stands for, as told by [`IdLayout::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Padding ([`IdLayout::PAD`]).
    Pad,
    /// Start of decoding ([`IdLayout::BOS`]).
    Bos,
    /// A code: `value` at identifier `position`.
    Code {
        /// Position in the identifier: 0 = coarse, `1..=M` fine, `M + 1` uniqueness.
        position: usize,
        /// Value at that position.
        value: u32,
    },
}

/// The shape of a semantic identifier `[k, v1..vM, u]` and its token vocabulary.
///
/// Every position has its own token range, so one token maps to exactly one
/// (position, value) pair:
///
/// | tokens | meaning |
/// | --- | --- |
/// | `0` | [`IdLayout::PAD`] |
/// | `1` | [`IdLayout::BOS`] |
/// | `2 .. 2+K` | coarse cluster `k` |
/// | then `C` per level, `M` levels | fine codes `v1..vM` |
/// | then `U` | uniqueness suffix `u` |
///
/// The vocabulary size is `2 + K + M*C + U`.
///
/// ```
/// use cart_ids::{IdLayout, TokenKind};
///
/// let layout = IdLayout::new(16, 3, 256, 8)?;
/// assert_eq!(layout.id_len(), 5);
/// assert_eq!(layout.vocab_size(), 2 + 16 + 3 * 256 + 8);
/// let t = layout.token(2, 7)?; // value 7 of the second fine level
/// assert_eq!(layout.kind(t), Some(TokenKind::Code { position: 2, value: 7 }));
/// # Ok::<(), cart_ids::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LayoutRepr", into = "LayoutRepr")]
pub struct IdLayout {
    n_coarse: u32,
    n_levels: u32,
    codebook_size: u32,
    n_unique: u32,
}

#[derive(Serialize, Deserialize)]
struct LayoutRepr {
    n_coarse: u32,
    n_levels: u32,
    codebook_size: u32,
    n_unique: u32,
}

impl TryFrom<LayoutRepr> for IdLayout {
    type Error = Error;
    fn try_from(r: LayoutRepr) -> Result<Self> {
        IdLayout::new(r.n_coarse, r.n_levels as usize, r.codebook_size, r.n_unique)
    }
}

impl From<IdLayout> for LayoutRepr {
    fn from(l: IdLayout) -> Self {
        LayoutRepr {
            n_coarse: l.n_coarse,
            n_levels: l.n_levels,
            codebook_size: l.codebook_size,
            n_unique: l.n_unique,
        }
    }
}

/// Longest identifier supported (coarse + fine levels + uniqueness).
pub const MAX_ID_LEN: usize = 32;

impl IdLayout {
    /// Padding token.
    pub const PAD: Token = 0;
    /// Begin-of-sequence token: the decoder's first input.
    pub const BOS: Token = 1;
    /// Number of control tokens before the first code token.
    pub const N_SPECIAL: u32 = 2;

    /// A layout of `n_coarse` clusters (K), `n_levels` fine codebooks (M) of `codebook_size`
    /// codes (C) each, and `n_unique` uniqueness values (U).
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] if a count is zero, the identifier is longer than
    /// [`MAX_ID_LEN`], or the vocabulary does not fit in `u32`.
    pub fn new(n_coarse: u32, n_levels: usize, codebook_size: u32, n_unique: u32) -> Result<Self> {
        let invalid = |reason: &str| Err(Error::InvalidLayout { reason: reason.to_owned() });
        if n_coarse == 0 {
            return invalid("n_coarse must be at least 1");
        }
        if codebook_size == 0 && n_levels > 0 {
            return invalid("codebook_size must be at least 1");
        }
        if n_unique == 0 {
            return invalid("n_unique must be at least 1");
        }
        if n_levels + 2 > MAX_ID_LEN {
            return invalid("too many fine levels");
        }
        let vocab = u64::from(Self::N_SPECIAL)
            + u64::from(n_coarse)
            + n_levels as u64 * u64::from(codebook_size)
            + u64::from(n_unique);
        if vocab > u64::from(u32::MAX) {
            return invalid("vocabulary does not fit in u32");
        }
        Ok(Self { n_coarse, n_levels: n_levels as u32, codebook_size, n_unique })
    }

    /// K: number of coarse clusters.
    pub fn n_coarse(&self) -> u32 {
        self.n_coarse
    }

    /// M: number of fine levels.
    pub fn n_levels(&self) -> usize {
        self.n_levels as usize
    }

    /// C: codes per fine level.
    pub fn codebook_size(&self) -> u32 {
        self.codebook_size
    }

    /// U: number of uniqueness values.
    pub fn n_unique(&self) -> u32 {
        self.n_unique
    }

    /// Tokens in one identifier: `M + 2`.
    pub fn id_len(&self) -> usize {
        self.n_levels as usize + 2
    }

    /// Position of the uniqueness token: `M + 1`.
    pub fn unique_position(&self) -> usize {
        self.n_levels as usize + 1
    }

    /// Vocabulary size, control tokens included.
    pub fn vocab_size(&self) -> usize {
        self.position_range(self.unique_position()).end as usize
    }

    /// Number of values position `position` takes.
    ///
    /// # Panics
    /// If `position >= self.id_len()`.
    pub fn position_size(&self, position: usize) -> u32 {
        let r = self.position_range(position);
        r.end - r.start
    }

    /// The token range of `position`.
    ///
    /// # Panics
    /// If `position >= self.id_len()`.
    pub fn position_range(&self, position: usize) -> Range<Token> {
        let m = self.n_levels as usize;
        assert!(
            position <= m + 1,
            "position {position} out of range for an id of length {}",
            m + 2
        );
        let coarse_start = Self::N_SPECIAL;
        let fine_start = coarse_start + self.n_coarse;
        if position == 0 {
            coarse_start..fine_start
        } else if position <= m {
            let s = fine_start + (position as u32 - 1) * self.codebook_size;
            s..s + self.codebook_size
        } else {
            let s = fine_start + self.n_levels * self.codebook_size;
            s..s + self.n_unique
        }
    }

    /// The token of `value` at `position`.
    ///
    /// # Errors
    /// [`Error::ValueOutOfRange`] if the value or position is out of range.
    pub fn token(&self, position: usize, value: u32) -> Result<Token> {
        if position >= self.id_len() {
            return Err(Error::ValueOutOfRange { position, value, limit: 0 });
        }
        let r = self.position_range(position);
        let limit = r.end - r.start;
        if value >= limit {
            return Err(Error::ValueOutOfRange { position, value, limit });
        }
        Ok(r.start + value)
    }

    /// What `token` stands for; `None` if it is outside the vocabulary.
    pub fn kind(&self, token: Token) -> Option<TokenKind> {
        match token {
            Self::PAD => Some(TokenKind::Pad),
            Self::BOS => Some(TokenKind::Bos),
            _ => (0..self.id_len()).find_map(|position| {
                let r = self.position_range(position);
                r.contains(&token).then(|| TokenKind::Code { position, value: token - r.start })
            }),
        }
    }

    /// The value of `token` if it belongs to `position`.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] otherwise.
    pub fn value(&self, position: usize, token: Token) -> Result<u32> {
        if position < self.id_len() {
            let r = self.position_range(position);
            if r.contains(&token) {
                return Ok(token - r.start);
            }
        }
        Err(Error::TokenOutOfRange { position, token })
    }

    /// Tokens of the identifier with coarse code `coarse`, fine codes `fine` and suffix `unique`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `fine.len() != M`, [`Error::ValueOutOfRange`] for a bad value.
    pub fn encode(&self, coarse: u32, fine: &[u32], unique: u32) -> Result<SemanticId> {
        if fine.len() != self.n_levels() {
            return Err(Error::LengthMismatch { expected: self.n_levels(), got: fine.len() });
        }
        let mut tokens = Vec::with_capacity(self.id_len());
        tokens.push(self.token(0, coarse)?);
        for (m, &v) in fine.iter().enumerate() {
            tokens.push(self.token(m + 1, v)?);
        }
        tokens.push(self.token(self.unique_position(), unique)?);
        Ok(SemanticId { tokens })
    }

    /// Checks that `tokens` is a complete, valid identifier of this layout.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::TokenOutOfRange`].
    pub fn check(&self, tokens: &[Token]) -> Result<()> {
        if tokens.len() != self.id_len() {
            return Err(Error::LengthMismatch { expected: self.id_len(), got: tokens.len() });
        }
        for (position, &t) in tokens.iter().enumerate() {
            self.value(position, t)?;
        }
        Ok(())
    }
}

/// One item's identifier as vocabulary tokens `[k, v1..vM, u]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SemanticId {
    tokens: Vec<Token>,
}

impl SemanticId {
    /// The tokens, coarse first.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The per-position values `[k, v1..vM, u]` under `layout`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::TokenOutOfRange`] if this id is not of `layout`.
    pub fn values(&self, layout: &IdLayout) -> Result<Vec<u32>> {
        layout.check(&self.tokens)?;
        self.tokens.iter().enumerate().map(|(p, &t)| layout.value(p, t)).collect()
    }

    /// Wraps tokens checked against `layout`.
    ///
    /// # Errors
    /// As [`IdLayout::check`].
    pub fn from_tokens(layout: &IdLayout, tokens: Vec<Token>) -> Result<Self> {
        layout.check(&tokens)?;
        Ok(Self { tokens })
    }

    pub(crate) fn from_tokens_unchecked(tokens: Vec<Token>) -> Self {
        Self { tokens }
    }
}

impl fmt::Display for SemanticId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<")?;
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{t}")?;
        }
        f.write_str(">")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_disjoint_and_cover_the_vocabulary() {
        let l = IdLayout::new(5, 3, 4, 2).unwrap();
        let mut next = IdLayout::N_SPECIAL;
        for p in 0..l.id_len() {
            let r = l.position_range(p);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next as usize, l.vocab_size());
        for t in 0..l.vocab_size() as u32 {
            let kind = l.kind(t).unwrap();
            if let TokenKind::Code { position, value } = kind {
                assert_eq!(l.token(position, value).unwrap(), t);
            }
        }
        assert_eq!(l.kind(l.vocab_size() as u32), None);
    }

    #[test]
    fn rejects_bad_layouts_and_values() {
        assert!(IdLayout::new(0, 3, 4, 2).is_err());
        assert!(IdLayout::new(4, 3, 4, 0).is_err());
        assert!(IdLayout::new(u32::MAX, 3, 4, 2).is_err());
        let l = IdLayout::new(5, 3, 4, 2).unwrap();
        assert!(matches!(l.token(1, 4), Err(Error::ValueOutOfRange { limit: 4, .. })));
        assert!(l.token(9, 0).is_err());
        assert!(l.encode(0, &[1, 2], 0).is_err());
        assert!(l.check(&[2, 7, 11, 15, 19]).is_ok());
        assert!(l.check(&[2, 7, 11, 15, 21]).is_err());
    }

    #[test]
    fn layout_serde_validates() {
        let l = IdLayout::new(5, 3, 4, 2).unwrap();
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<IdLayout>(&s).unwrap(), l);
        let bad = s.replace("\"n_unique\":2", "\"n_unique\":0");
        assert!(serde_json::from_str::<IdLayout>(&bad).is_err());
    }
}
