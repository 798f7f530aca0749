//! SOPS documents opened on the spoke, and only here: the cache and the hub
//! hold ciphertext; the plaintext lives in memory between the decryption and
//! the applier. A document that does not open (no identity, a wrong key, a
//! MAC mismatch) is handed to the applier still encrypted, which refuses it
//! (fail closed, see `fleet_render::sops::sealed_at`): the object fails, is
//! not pruned, and every other object goes on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use fleet_proto::age::Identity;
use fleet_render::{DesiredState, Resource, yaml};

/// The spoke's age identities (none: SOPS documents fail closed).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    identities: Vec<Identity>,
}

/// A state with its SOPS documents opened, and why the others did not open
/// (by object id).
pub struct Opened {
    pub state: DesiredState,
    pub failures: BTreeMap<String, String>,
    /// Every SOPS object, opened or not: diffs never show their values.
    pub sops_ids: std::collections::BTreeSet<String>,
}

impl Opened {
    /// Puts the reason a SOPS document did not open on its failed outcome.
    pub fn explain(&self, outs: &mut [crate::apply::ResourceOutcome]) {
        for o in outs {
            if o.outcome == crate::apply::Outcome::Failed {
                if let Some(e) = self.failures.get(&o.id) {
                    o.message = e.clone();
                }
            }
        }
    }
}

impl Secrets {
    /// Reads an identities file (`age-keygen` output; a mounted Kubernetes
    /// Secret is such a file).
    pub fn from_file(path: &Path) -> anyhow::Result<Secrets> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the age identity {}: {e}", path.display()))?;
        let identities = Identity::parse_file(&text)
            .map_err(|e| anyhow::anyhow!("the age identity {}: {e}", path.display()))?;
        Ok(Secrets { identities })
    }

    /// The state with every SOPS document decrypted, or `None` when it holds
    /// none (the common case costs a scan of the manifests).
    pub fn open(&self, state: &DesiredState) -> Option<Opened> {
        let has_sops =
            |r: &Resource| r.manifest.contains("ENC[AES256_GCM,") && r.manifest.contains("sops");
        if !state
            .apps
            .values()
            .any(|a| a.resources.iter().any(has_sops))
        {
            return None;
        }
        let mut out = state.clone();
        let mut failures = BTreeMap::new();
        let mut sops_ids = std::collections::BTreeSet::new();
        for app in std::sync::Arc::make_mut(&mut out.apps).values_mut() {
            for r in std::sync::Arc::make_mut(&mut app.resources)
                .iter_mut()
                .filter(|r| has_sops(r))
            {
                match self.open_one(r) {
                    Ok(Some(plain)) => {
                        sops_ids.insert(r.id.to_string());
                        *r = plain;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        sops_ids.insert(r.id.to_string());
                        failures.insert(r.id.to_string(), e);
                    }
                }
            }
        }
        Some(Opened {
            state: out,
            failures,
            sops_ids,
        })
    }

    fn open_one(&self, r: &Resource) -> Result<Option<Resource>, String> {
        let parsed = yaml::parse_documents(&r.id.to_string(), r.manifest.as_bytes())
            .map_err(|e| e.to_string())?
            .pop()
            .unwrap_or_default();
        if !fleet_proto::sops::is_sops(&parsed) {
            return Ok(None);
        }
        let plain = fleet_proto::sops::open(&r.manifest, &parsed, &self.identities)
            .map_err(|e| format!("SOPS document not decrypted, not applied: {e}"))?;
        Ok(Some(Resource {
            id: r.id.clone(),
            api_version: r.api_version.clone(),
            manifest: Arc::from(yaml::to_canonical(&plain)),
            // The digest stays the ciphertext's: a digest of the plaintext
            // would leak a hash of the secret into inventories and status.
            digest: r.digest.clone(),
        }))
    }
}
