//! The desired state of one cluster, as the hub serves it and the spoke caches it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::digest::{Fields, Hasher};
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
    /// The commit these resources were rendered from, when it is not the
    /// state's own commit: the app failed to render and its last good
    /// version is kept, or one app was synced alone. `None`: the state's
    /// commit, so a state moved to a new commit shares its apps unchanged.
    /// `Some("")`: the app never rendered. [`DesiredState::revision_of`]
    /// gives the commit id either way.
    pub source_revision: Option<String>,
    /// The render error at the state's commit, if any.
    pub error: Option<RenderError>,
    /// Shared: a state moved to a new commit, or an app render used by
    /// many clusters, shares its resources rather than copying them.
    pub resources: Arc<Vec<Resource>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    pub cluster: String,
    /// Shared by every state rendered at the same commit.
    pub commit: Arc<CommitMeta>,
    pub sync: SyncPolicy,
    /// Shared by the cluster's states at other commits while its content
    /// stays the same ([`DesiredState::at_commit`]).
    pub apps: Arc<BTreeMap<String, AppState>>,
    /// See [`DesiredState::compute_digest`].
    pub digest: String,
}

/// An app's fields of a state's digest: its name, its error and each
/// resource's id (as it displays) and digest.
fn app_fields(name: &str, app: &AppState, f: &mut Fields) {
    f.field(name);
    match &app.error {
        Some(e) => f.field(&e.file).field(&e.reason),
        None => f.field("").field(""),
    };
    f.field((app.resources.len() as u64).to_be_bytes());
    for r in app.resources.iter() {
        f.field_of(&r.id.display_parts().map(str::as_bytes))
            .field(&r.digest);
    }
}

/// The digest fields of app renders shared by many states, recorded once
/// per render (found by its resources' pointer, which the entry holds).
#[derive(Default)]
pub struct DigestCache {
    apps: std::collections::HashMap<usize, Vec<CachedApp>>,
}

struct CachedApp {
    name: String,
    /// Held, so that no other render takes its pointer.
    _resources: Arc<Vec<Resource>>,
    fields: Fields,
}

impl DigestCache {
    /// The fields of an app without an error.
    fn app(&mut self, name: &str, app: &AppState) -> &Fields {
        let same = self
            .apps
            .entry(Arc::as_ptr(&app.resources) as usize)
            .or_default();
        let i = match same.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                let mut f = Fields::default();
                app_fields(name, app, &mut f);
                same.push(CachedApp {
                    name: name.to_string(),
                    _resources: Arc::clone(&app.resources),
                    fields: f,
                });
                same.len() - 1
            }
        };
        &same[i].fields
    }
}

impl DesiredState {
    /// A state and its digest. An app whose revision is the state's commit
    /// is stored as `None`, a failed app's
    /// as `Some` ([`AppState::source_revision`]).
    pub fn new(
        cluster: String,
        commit: impl Into<Arc<CommitMeta>>,
        sync: SyncPolicy,
        apps: BTreeMap<String, AppState>,
    ) -> Self {
        Self::new_with(cluster, commit, sync, apps, None)
    }

    /// [`DesiredState::new`] for one of many states that share app renders:
    /// each render's part of the digest is recorded once in `cache`.
    pub fn new_cached(
        cluster: String,
        commit: impl Into<Arc<CommitMeta>>,
        sync: SyncPolicy,
        apps: BTreeMap<String, AppState>,
        cache: &mut DigestCache,
    ) -> Self {
        Self::new_with(cluster, commit, sync, apps, Some(cache))
    }

    fn new_with(
        cluster: String,
        commit: impl Into<Arc<CommitMeta>>,
        sync: SyncPolicy,
        mut apps: BTreeMap<String, AppState>,
        cache: Option<&mut DigestCache>,
    ) -> Self {
        let commit = commit.into();
        for a in apps.values_mut() {
            match (&a.error, a.source_revision.as_deref()) {
                (None, Some(r)) if r.is_empty() || r == commit.id => a.source_revision = None,
                (Some(_), None) => a.source_revision = Some(String::new()),
                _ => {}
            }
        }
        let mut s = DesiredState {
            cluster,
            commit,
            sync,
            apps: Arc::new(apps),
            digest: String::new(),
        };
        s.digest = s.digest_with(cache);
        s
    }

    /// The same content at another commit: the apps at this state's commit
    /// move to `commit`, the others keep theirs; nothing is copied but the
    /// names.
    pub fn at_commit(&self, commit: Arc<CommitMeta>) -> DesiredState {
        DesiredState {
            cluster: self.cluster.clone(),
            commit,
            sync: self.sync,
            apps: Arc::clone(&self.apps),
            digest: self.digest.clone(),
        }
    }

    /// The commit an app's resources were rendered from.
    pub fn revision_of<'a>(&'a self, app: &'a AppState) -> &'a str {
        app.source_revision.as_deref().unwrap_or(&self.commit.id)
    }

    /// Digest of the content: cluster, sync policy, and for every app its
    /// error and each resource's id and digest. The commit is left out on
    /// purpose, so a commit that does not touch a cluster does not resend it.
    pub fn compute_digest(&self) -> String {
        self.digest_with(None)
    }

    /// [`DesiredState::compute_digest`], with the fields of the app renders
    /// `cache` has seen recorded once.
    fn digest_with(&self, mut cache: Option<&mut DigestCache>) -> String {
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
        for (name, app) in self.apps.iter() {
            match cache.as_deref_mut() {
                Some(c) if app.error.is_none() => h.fields(c.app(name, app)),
                _ => {
                    let mut f = Fields::default();
                    app_fields(name, app, &mut f);
                    h.fields(&f)
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;

    fn resource(api_version: &str, kind: &str, namespace: &str, name: &str) -> Resource {
        let mut meta = serde_json::json!({ "name": name });
        if !namespace.is_empty() {
            meta["namespace"] = namespace.into();
        }
        let v = serde_json::json!({ "apiVersion": api_version, "kind": kind, "metadata": meta });
        Resource::from_value(&v).unwrap()
    }

    /// The digest hashes each resource's id as it displays: the formula
    /// every stored and served digest was made with.
    #[test]
    fn the_digest_hashes_ids_as_they_display() {
        let resources = vec![
            resource("v1", "Namespace", "", "web"),
            resource("v1", "ConfigMap", "web", "c"),
            resource("apps/v1", "Deployment", "web", "d"),
            resource("rbac.authorization.k8s.io/v1", "ClusterRole", "", "r"),
        ];
        let apps = BTreeMap::from([(
            "web".to_string(),
            AppState {
                source_revision: None,
                error: None,
                resources: Arc::new(resources.clone()),
            },
        )]);
        let s = DesiredState::new(
            "c1".into(),
            CommitMeta::default(),
            SyncPolicy::default(),
            apps,
        );
        let mut h = crate::digest::Hasher::new();
        h.field("fleet.desired-state.v1").field("c1");
        h.field([1u8, 1, 1]);
        h.field("web").field("").field("");
        h.field((resources.len() as u64).to_be_bytes());
        for r in &resources {
            h.field(r.id.to_string()).field(&r.digest);
        }
        assert_eq!(s.digest, h.finish());
        assert_eq!(
            resources
                .iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>(),
            [
                "Namespace/web",
                "ConfigMap/web/c",
                "Deployment.apps/web/d",
                "ClusterRole.rbac.authorization.k8s.io/r"
            ]
        );
    }

    /// States built with one cache over shared renders (and an app with an
    /// error, which is never cached) have the digests built without it.
    #[test]
    fn a_digest_cache_gives_the_digests_made_without_it() {
        let shared = Arc::new(vec![
            resource("v1", "ConfigMap", "web", "c"),
            resource("apps/v1", "Deployment", "web", "d"),
        ]);
        let other = Arc::new(vec![resource("v1", "Namespace", "", "api")]);
        let app = |resources: &Arc<Vec<Resource>>, error: Option<&str>| AppState {
            source_revision: None,
            error: error.map(|r| RenderError {
                app: "x".into(),
                file: "apps/x/app.yaml".into(),
                reason: r.into(),
            }),
            resources: Arc::clone(resources),
        };
        let mut cache = DigestCache::default();
        for (cluster, apps) in [
            (
                "c1",
                vec![("web", app(&shared, None)), ("api", app(&other, None))],
            ),
            (
                "c2",
                vec![
                    ("web", app(&shared, None)),
                    ("api", app(&other, Some("broken"))),
                ],
            ),
            // The same render under another name.
            (
                "c3",
                vec![("web2", app(&shared, None)), ("web", app(&shared, None))],
            ),
        ] {
            let apps: BTreeMap<String, AppState> =
                apps.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
            let plain = DesiredState::new(
                cluster.into(),
                CommitMeta::default(),
                SyncPolicy::default(),
                apps.clone(),
            );
            let cached = DesiredState::new_cached(
                cluster.into(),
                CommitMeta::default(),
                SyncPolicy::default(),
                apps,
                &mut cache,
            );
            assert_eq!(plain.digest, cached.digest, "{cluster}");
            assert_eq!(cached.digest, cached.compute_digest());
        }
    }
}
