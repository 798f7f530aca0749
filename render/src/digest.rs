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

    /// One field made of `parts` in order: the same as `field` of their
    /// concatenation, without building it.
    pub fn field_of(&mut self, parts: &[&[u8]]) -> &mut Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.0.update((len as u64).to_be_bytes());
        for p in parts {
            self.0.update(p);
        }
        self
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}
