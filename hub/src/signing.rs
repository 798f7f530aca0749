//! The hub signs every state it publishes: an in-toto statement with an SLSA
//! provenance predicate (`fleet_proto::provenance`), signed as SSHSIG with
//! the hub's Ed25519 key (`--signing-key`, from `fleetctl ca signing-key`).
//! Spokes holding the public key verify before caching and before applying.

use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use fleet_proto::provenance::{self, Facts};
use fleet_proto::sshsig::SigningKey;
use fleet_render::DesiredState;

/// A statement and its armored SSHSIG signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub statement: Bytes,
    pub signature: Bytes,
}

pub struct StateSigner {
    key: SigningKey,
    repo: String,
    branch: String,
}

/// Reads a PEM `PRIVATE KEY` (PKCS#8 Ed25519) file.
pub fn read_key(path: &Path, comment: &str) -> anyhow::Result<SigningKey> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let der = PrivatePkcs8KeyDer::from_pem_file(path)
        .with_context(|| format!("{} holds no PEM PRIVATE KEY", path.display()))?;
    SigningKey::from_pkcs8(der.secret_pkcs8_der(), comment)
        .with_context(|| format!("{} is not an Ed25519 signing key", path.display()))
}

impl StateSigner {
    pub fn load(path: &Path, repo: &str, branch: &str) -> anyhow::Result<StateSigner> {
        Ok(StateSigner {
            key: read_key(path, "fleet-hub")?,
            repo: repo.to_string(),
            branch: branch.to_string(),
        })
    }

    /// A bundle of `s` (see `fleet_proto::bundle`), signed now.
    pub fn bundle(&self, s: &DesiredState) -> Vec<u8> {
        let bytes = fleet_proto::convert::encode_state(s);
        let mut f = self.facts(s, now_ms());
        f.state_file_sha256 = Some(fleet_proto::bundle::sha256_hex(&bytes));
        let statement = provenance::statement(&f);
        let signature = self.key.sign(provenance::NAMESPACE, &statement);
        fleet_proto::bundle::pack(&bytes, &statement, &signature, &self.key)
    }

    pub fn facts(&self, s: &DesiredState, published_at_ms: u64) -> Facts {
        Facts {
            cluster: s.cluster.clone(),
            digest: s.digest.clone(),
            commit: s.commit.id.clone(),
            repo: self.repo.clone(),
            branch: self.branch.clone(),
            apps: s
                .apps
                .iter()
                .map(|(name, a)| (name.clone(), s.revision_of(a).to_string()))
                .collect(),
            renderer: crate::status::RENDERER_VERSION.to_string(),
            published_at_ms,
            state_file_sha256: None,
        }
    }

    /// Signs the statement of `facts`.
    pub fn sign(&self, facts: &Facts) -> Envelope {
        let statement = provenance::statement(facts);
        let signature = self.key.sign(provenance::NAMESPACE, &statement);
        Envelope {
            statement: statement.into(),
            signature: signature.into_bytes().into(),
        }
    }

    /// Whether `e` is signed by this signer's key.
    pub fn signed(&self, e: &Envelope) -> bool {
        std::str::from_utf8(&e.signature).is_ok_and(|sig| {
            fleet_proto::sshsig::verify(
                sig,
                provenance::NAMESPACE,
                &e.statement,
                std::slice::from_ref(&self.key.public),
            )
            .is_ok()
        })
    }

    /// The public key line spokes trust (`--trust-keys`).
    pub fn public_line(&self) -> String {
        self.key.public.to_openssh()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
