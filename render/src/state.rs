//! The desired state of one cluster, as the hub serves it and the spoke caches it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::digest::Hasher;
use crate::resource::Resource;

/// The Git commit a state was rendered from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitMeta {
    pub id: String,
    pub author: String,
    pub message: String,
    /// Seconds since the Unix epoch (committer time).
    pub time: i64,
}

impl CommitMeta {
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }

    /// First line of the message.
    pub fn summary(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncPolicy {
    pub automatic: bool,
    pub prune: bool,
    pub self_heal: bool,
    /// Server-side apply with `force`: take fields other field managers own
    /// instead of reporting the conflict (Kubernetes target only).
    #[serde(default)]
    pub force_conflicts: bool,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            automatic: true,
            prune: true,
            self_heal: true,
            force_conflicts: false,
        }
    }
}

/// Why an app did not render for a cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenderError {
    pub app: String,
    pub file: String,
    pub reason: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppState {
    /// The commit these resources were rendered from: older than the state's
    /// commit when the app failed to render and its last good version is kept.
    pub source_revision: String,
    /// The render error at the state's commit, if any.
    pub error: Option<RenderError>,
    /// Shared: a state moved to a new commit, or an app render used by
    /// many clusters, shares its resources rather than copying them.
    pub resources: Arc<Vec<Resource>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    pub cluster: String,
    pub commit: CommitMeta,
    pub sync: SyncPolicy,
    pub apps: BTreeMap<String, AppState>,
    /// See [`DesiredState::compute_digest`].
    pub digest: String,
}

impl DesiredState {
    pub fn new(
        cluster: String,
        commit: CommitMeta,
        sync: SyncPolicy,
        apps: BTreeMap<String, AppState>,
    ) -> Self {
        let mut s = DesiredState {
            cluster,
            commit,
            sync,
            apps,
            digest: String::new(),
        };
        s.digest = s.compute_digest();
        s
    }

    /// Digest of the content: cluster, sync policy, and for every app its
    /// error and each resource's id and digest. The commit is left out on
    /// purpose, so a commit that does not touch a cluster does not resend it.
    pub fn compute_digest(&self) -> String {
        let mut h = Hasher::new();
        h.field("fleet.desired-state.v1").field(&self.cluster);
        h.field([
            self.sync.automatic as u8,
            self.sync.prune as u8,
            self.sync.self_heal as u8,
        ]);
        // Hashed only when set, so states from before the field keep their digest.
        if self.sync.force_conflicts {
            h.field("force-conflicts");
        }
        for (name, app) in &self.apps {
            h.field(name);
            match &app.error {
                Some(e) => h.field(&e.file).field(&e.reason),
                None => h.field("").field(""),
            };
            h.field((app.resources.len() as u64).to_be_bytes());
            for r in app.resources.iter() {
                h.field(r.id.to_string()).field(&r.digest);
            }
        }
        h.finish()
    }

    /// Checks that the digest matches the content, and every resource digest its bytes.
    pub fn verify(&self) -> Result<(), String> {
        for app in self.apps.values() {
            for r in app.resources.iter() {
                let d = crate::digest::sha256(r.manifest.as_bytes());
                if d != r.digest {
                    return Err(format!(
                        "resource {} digest {} does not match its content ({d})",
                        r.id, r.digest
                    ));
                }
            }
        }
        let d = self.compute_digest();
        if d != self.digest {
            return Err(format!(
                "state digest {} does not match its content ({d})",
                self.digest
            ));
        }
        Ok(())
    }

    pub fn resources(&self) -> impl Iterator<Item = (&str, &Resource)> {
        self.apps
            .iter()
            .flat_map(|(a, s)| s.resources.iter().map(move |r| (a.as_str(), r)))
    }

    pub fn errors(&self) -> impl Iterator<Item = &RenderError> {
        self.apps.values().filter_map(|a| a.error.as_ref())
    }

    /// The multi-document YAML of every resource, apps in name order and
    /// resources in render order: what `fleetctl render` prints.
    pub fn to_yaml_stream(&self) -> String {
        let mut out = String::new();
        for (app, r) in self.resources() {
            out.push_str("---\n");
            out.push_str(&format!("# app: {app}, {}\n", r.id));
            out.push_str(&r.manifest);
        }
        out
    }
}
