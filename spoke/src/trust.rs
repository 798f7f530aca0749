//! Which states the spoke accepts: with trusted hub keys (`--trust-keys`),
//! only a state whose provenance statement is signed by one of them and
//! names this cluster, this digest and this commit; and never one published
//! before the state the spoke already holds (replay), unless allowed.
//!
//! Checked when a state arrives (stream or bundle), before it is cached, and
//! again when the cached state is loaded at start, before it is applied.

use bytes::Bytes;
use fleet_proto::provenance::{self, Facts};
use fleet_proto::sshsig::{self, PublicKey};
use fleet_render::DesiredState;

/// A statement and its armored signature, as the hub sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub statement: Bytes,
    pub signature: Bytes,
}

impl Envelope {
    pub fn is_empty(&self) -> bool {
        self.statement.is_empty() && self.signature.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the state is not signed, and this spoke trusts only signed states (--trust-keys)")]
    Unsigned,
    #[error("the state's signature: {0}")]
    Signature(#[from] sshsig::SigError),
    #[error("the state's provenance statement: {0}")]
    Statement(String),
    #[error("the signed statement is for {what} {stated}, but the state has {actual}")]
    Mismatch {
        what: &'static str,
        stated: String,
        actual: String,
    },
    #[error(
        "the state was published at {got} ms, before the state this spoke holds ({held} ms): refused as a replay (allow with --allow-older)"
    )]
    Older { got: u64, held: u64 },
}

/// The spoke's trust: hub keys (none: states are not verified).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
    pub allow_older: bool,
}

/// A verified state's facts and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub facts: Facts,
    pub key: String,
}

impl Trust {
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `state` and its envelope. `held`: the facts of the state the
    /// spoke holds now (for replay protection). `Ok(None)`: not verified
    /// (no trusted keys).
    pub fn check(
        &self,
        state: &DesiredState,
        env: &Envelope,
        held: Option<&Facts>,
    ) -> Result<Option<Verified>, Refused> {
        if !self.enabled() {
            return Ok(None);
        }
        if env.is_empty() {
            return Err(Refused::Unsigned);
        }
        let sig = std::str::from_utf8(&env.signature)
            .map_err(|_| Refused::Signature(sshsig::SigError::Malformed("not UTF-8".into())))?;
        let key = sshsig::verify(sig, provenance::NAMESPACE, &env.statement, &self.keys)?;
        let facts = provenance::parse(&env.statement).map_err(Refused::Statement)?;
        for (what, stated, actual) in [
            ("cluster", &facts.cluster, &state.cluster),
            ("digest", &facts.digest, &state.digest),
            ("commit", &facts.commit, &state.commit.id),
        ] {
            if stated != actual {
                return Err(Refused::Mismatch {
                    what,
                    stated: stated.clone(),
                    actual: actual.clone(),
                });
            }
        }
        if let Some(h) = held {
            if facts.published_at_ms < h.published_at_ms && !self.allow_older {
                return Err(Refused::Older {
                    got: facts.published_at_ms,
                    held: h.published_at_ms,
                });
            }
        }
        Ok(Some(Verified {
            facts,
            key: format!("{} ({})", key.fingerprint(), key.comment),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_proto::sshsig::SigningKey;

    fn state(cluster: &str, commit: &str) -> DesiredState {
        DesiredState {
            cluster: cluster.into(),
            commit: fleet_render::CommitMeta {
                id: commit.into(),
                ..Default::default()
            }
            .into(),
            digest: "sha256:00".into(),
            sync: fleet_render::SyncPolicy::default(),
            apps: Default::default(),
        }
    }

    fn sign(k: &SigningKey, s: &DesiredState, at: u64) -> Envelope {
        let facts = Facts {
            cluster: s.cluster.clone(),
            digest: s.digest.clone(),
            commit: s.commit.id.clone(),
            repo: "r".into(),
            branch: "main".into(),
            apps: vec![],
            renderer: "1".into(),
            published_at_ms: at,
            state_file_sha256: None,
        };
        let st = provenance::statement(&facts);
        Envelope {
            signature: k.sign(provenance::NAMESPACE, &st).into_bytes().into(),
            statement: st.into(),
        }
    }

    #[test]
    fn only_signed_matching_newer_states_pass() {
        let hub = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8(), "hub").unwrap();
        let rogue = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8(), "rogue").unwrap();
        let t = Trust {
            keys: vec![hub.public.clone()],
            allow_older: false,
        };
        let s = state("a-1", "c1");
        let v = t.check(&s, &sign(&hub, &s, 10), None).unwrap().unwrap();
        assert_eq!(v.facts.published_at_ms, 10);
        assert_eq!(
            t.check(&s, &Envelope::default(), None),
            Err(Refused::Unsigned)
        );
        assert!(matches!(
            t.check(&s, &sign(&rogue, &s, 10), None),
            Err(Refused::Signature(sshsig::SigError::Untrusted(_)))
        ));
        // Signed for another cluster (a bundle carried to the wrong site).
        let other = state("b-1", "c1");
        let e = t.check(&s, &sign(&hub, &other, 10), None).unwrap_err();
        assert!(
            e.to_string().contains("cluster b-1, but the state has a-1"),
            "{e}"
        );
        // A tampered statement.
        let mut env = sign(&hub, &s, 10);
        env.statement = env.statement.slice(0..env.statement.len() - 1);
        assert!(matches!(
            t.check(&s, &env, None),
            Err(Refused::Signature(sshsig::SigError::Invalid(_)))
        ));
        // Replay of an older state.
        let held = v.facts;
        let e = t.check(&s, &sign(&hub, &s, 9), Some(&held)).unwrap_err();
        assert!(matches!(e, Refused::Older { got: 9, held: 10 }));
        assert!(t.check(&s, &sign(&hub, &s, 10), Some(&held)).is_ok());
        let lax = Trust {
            allow_older: true,
            ..t.clone()
        };
        assert!(lax.check(&s, &sign(&hub, &s, 9), Some(&held)).is_ok());
        // Without keys nothing is verified.
        assert_eq!(
            Trust::default().check(&s, &Envelope::default(), None),
            Ok(None)
        );
    }
}
