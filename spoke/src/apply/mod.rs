//! Appliers: how a desired state reaches a target. The applier never talks
//! gRPC and never reads the cache; it is handed a state and an inventory.

pub mod directory;
pub mod kubernetes;

use std::collections::BTreeMap;

use fleet_render::{DesiredState, Resource};

/// Why `r` must not be applied because it is still SOPS-encrypted (its
/// document did not open on this spoke), if it is. Every applier asks.
pub(crate) fn still_sealed(r: &Resource) -> Option<String> {
    if !might_be_sealed(r) {
        return None;
    }
    let doc = fleet_render::yaml::parse_documents(&r.id.to_string(), r.manifest.as_bytes())
        .ok()?
        .pop()?;
    sealed_value(&doc)
}

/// Whether `r`'s text could hold SOPS metadata or an encrypted value (a
/// scan of the text, before walking the parsed object).
pub(crate) fn might_be_sealed(r: &Resource) -> bool {
    r.manifest.contains("ENC[") || r.manifest.contains("sops")
}

pub(crate) fn sealed_value(doc: &serde_json::Value) -> Option<String> {
    fleet_render::sops::sealed_at(doc).map(|at| {
        format!(
            "still SOPS-encrypted at {at}: not applied (the spoke needs an age identity that opens it, --age-identity)"
        )
    })
}

/// One object fleet applied: keyed by a target-specific key (a path for the
/// directory target).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InventoryEntry {
    pub app: String,
    pub id: String,
    pub digest: String,
    /// The object's `apiVersion` when applied (Kubernetes target; empty for
    /// the directory target). Prune uses it to find the object's API.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

/// What fleet applied and still owns. Prune only ever touches what is here.
///
/// Each entry carries whether it changed since the last save (so the changes
/// to save are not a second copy of the entries: at 10,000 objects a copy is
/// megabytes); removals are kept by key until saved.
#[derive(Debug, Default)]
pub struct Inventory {
    entries: BTreeMap<String, (InventoryEntry, Unsaved)>,
    removals: Vec<String>,
}

/// Whether an inventory entry changed since it was last saved.
type Unsaved = bool;

impl From<BTreeMap<String, InventoryEntry>> for Inventory {
    fn from(entries: BTreeMap<String, InventoryEntry>) -> Self {
        Inventory {
            entries: entries.into_iter().map(|(k, e)| (k, (e, false))).collect(),
            removals: Vec::new(),
        }
    }
}

impl Inventory {
    pub fn get(&self, key: &str) -> Option<&InventoryEntry> {
        self.entries.get(key).map(|(e, _)| e)
    }

    pub fn insert(&mut self, key: String, e: InventoryEntry) {
        if self.get(&key) != Some(&e) {
            self.removals.retain(|k| k != &key);
            self.entries.insert(key, (e, true));
        }
    }

    pub fn remove(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.removals.push(key.to_string());
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &InventoryEntry)> {
        self.entries.iter().map(|(k, (e, _))| (k, e))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first `n` entries changed since they were saved, after key
    /// `after`, in key order.
    pub(crate) fn unsaved_after(
        &self,
        after: Option<&str>,
        n: usize,
    ) -> Vec<(&String, &InventoryEntry)> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries
            .range::<str, _>((from, Bound::Unbounded))
            .filter(|(_, (_, unsaved))| *unsaved)
            .map(|(k, (e, _))| (k, e))
            .take(n)
            .collect()
    }

    /// The first `n` removals not saved yet.
    pub(crate) fn unsaved_removals(&self, n: usize) -> &[String] {
        &self.removals[..n.min(self.removals.len())]
    }

    /// Marks these entries and the first `removals` removals saved.
    pub(crate) fn saved(&mut self, keys: &[String], removals: usize) {
        for k in keys {
            if let Some((_, unsaved)) = self.entries.get_mut(k) {
                *unsaved = false;
            }
        }
        self.removals.drain(..removals.min(self.removals.len()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written because it was missing or different.
    Applied,
    /// Already as desired.
    Unchanged,
    Failed,
    /// Changed or deleted by someone else, and left so (self-heal off).
    Drifted,
    /// Changed or deleted by someone else, and restored.
    Healed,
    Pruned,
    /// No longer desired but kept, because prune is off or the object is
    /// protected (`fleet.dev/prune: "false"`, or not labelled as fleet's).
    Orphaned,
    /// Not applied yet: an earlier step (CRDs, namespaces, a sync wave) is
    /// not healthy yet. Retried on the next drift check.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "synced",
            Outcome::Failed => "failed",
            Outcome::Drifted => "drifted",
            Outcome::Healed => "healed",
            Outcome::Pruned => "pruned",
            Outcome::Orphaned => "orphaned",
            Outcome::Pending => "pending",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceOutcome {
    pub app: String,
    pub id: String,
    pub outcome: Outcome,
    pub message: String,
    /// Health of the live object, where the target can tell (Kubernetes).
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthState {
    Healthy,
    Progressing,
    Degraded,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Progressing => "progressing",
            HealthState::Degraded => "degraded",
        }
    }
}

/// Health of one live object: a state and, unless healthy, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: HealthState,
    pub reason: String,
}

impl Health {
    pub fn healthy() -> Health {
        Health {
            state: HealthState::Healthy,
            reason: String::new(),
        }
    }
    pub fn progressing(reason: impl Into<String>) -> Health {
        Health {
            state: HealthState::Progressing,
            reason: reason.into(),
        }
    }
    pub fn degraded(reason: impl Into<String>) -> Health {
        Health {
            state: HealthState::Degraded,
            reason: reason.into(),
        }
    }
}

/// A target that desired states are applied to.
pub trait Applier: Send + 'static {
    /// Makes the target match `state`: writes what is missing or different,
    /// and prunes inventory entries no longer desired when the state's policy
    /// says so. Records every object it applied in `inv`.
    fn apply(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> impl Future<Output = Vec<ResourceOutcome>> + Send;

    /// Compares the target with `state` and reports drift; restores drifted
    /// objects when the state's policy has self-heal on.
    fn reconcile_drift(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> impl Future<Output = Vec<ResourceOutcome>> + Send;

    /// What applying `state` would change on the target now, object by object
    /// (live -> desired), without changing anything. `app` narrows it to one app.
    fn diff(
        &mut self,
        state: &DesiredState,
        inv: &Inventory,
        app: Option<&str>,
    ) -> impl Future<Output = Result<Vec<fleet_render::diff::ResourceDiff>, String>> + Send;

    /// Resolves when the target saw a change that may be drift (a watch
    /// event). Targets that cannot watch never resolve; the reconciler's
    /// drift interval covers them.
    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

#[cfg(test)]
mod sealed_tests {
    use super::*;

    fn res(v: serde_json::Value) -> Resource {
        Resource::from_value(&v).unwrap()
    }

    #[test]
    fn every_target_refuses_what_is_still_encrypted() {
        let sealed = res(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"k": "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]"},
        }));
        let with_meta = res(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"k": "djE="}, "sops": {"mac": "x"},
        }));
        let plain = res(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"k": "djE="}, "stringData": {"note": "mentions sops and ENC without being either"},
        }));
        assert!(still_sealed(&sealed).unwrap().contains("/data/k"));
        assert!(still_sealed(&with_meta).unwrap().contains("/sops"));
        assert_eq!(still_sealed(&plain), None);
        assert!(
            kubernetes::parse_manifest(&sealed)
                .unwrap_err()
                .contains("SOPS")
        );
        assert!(kubernetes::parse_manifest(&plain).is_ok());
    }
}
