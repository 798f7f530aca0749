//! sha256 digests, hex encoded with an algorithm prefix.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An incremental digest over length-prefixed fields, so `("ab","c")` and
/// `("a","bc")` never collide.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let b = bytes.as_ref();
        self.0.update((b.len() as u64).to_be_bytes());
        self.0.update(b);
        self
    }

    /// Bytes recorded by [`Fields`]: hashed as the fields they record.
    pub fn fields(&mut self, recorded: &Fields) -> &mut Self {
        self.0.update(&recorded.0);
        self
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// Fields recorded as [`Hasher::field`] feeds them, to be hashed later
/// (and again) with [`Hasher::fields`].
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<u8>);

impl Fields {
    pub fn field(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        self.field_of(&[bytes.as_ref()])
    }

    /// One field made of `parts` in order: the same as `field` of their
    /// concatenation, without building it.
    pub fn field_of(&mut self, parts: &[&[u8]]) -> &mut Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.0.extend_from_slice(&(len as u64).to_be_bytes());
        for p in parts {
            self.0.extend_from_slice(p);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_fields_hash_as_the_fields_themselves() {
        let mut direct = Hasher::new();
        direct.field("a").field("bcd").field([0u8; 3]);
        let mut recorded = Fields::default();
        recorded.field_of(&[b"b", b"", b"cd"]).field([0u8; 3]);
        let mut replayed = Hasher::new();
        replayed.field("a").fields(&recorded);
        assert_eq!(direct.finish(), replayed.finish());
        let mut split = Hasher::new();
        split.field("ab");
        let mut joined = Hasher::new();
        joined.field("a").field("b");
        assert_ne!(split.finish(), joined.finish());
    }
}
