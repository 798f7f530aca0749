//! The directory target: each object written as a file under a root,
//! `<root>/<namespace or _cluster>/<Kind>[.<group>]/<name>.yaml`.
//! Writes are atomic (temp file, fsync, rename). Prune deletes only files the
//! inventory lists.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use fleet_render::resource::validate_name;
use fleet_render::{DesiredState, Resource};

use fleet_render::diff::{Change, ResourceDiff, unified};

use super::{Applier, Inventory, InventoryEntry, Outcome, ResourceOutcome};

pub struct DirectoryApplier {
    root: PathBuf,
}

impl DirectoryApplier {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(DirectoryApplier { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The path of a resource relative to the root; refuses names that are not
/// plain path segments.
pub fn relative_path(r: &Resource) -> Result<String, String> {
    validate_name("metadata.name", &r.id.name).map_err(|e| e.to_string())?;
    if !r.id.namespace.is_empty() {
        validate_name("metadata.namespace", &r.id.namespace).map_err(|e| e.to_string())?;
    }
    if r.id.kind.is_empty() || !r.id.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("kind {:?} is not a plain name", r.id.kind));
    }
    if !r
        .id
        .group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        || r.id.group.starts_with('.')
    {
        return Err(format!("group {:?} is not a plain name", r.id.group));
    }
    let ns = if r.id.namespace.is_empty() {
        "_cluster"
    } else {
        &r.id.namespace
    };
    let kind = if r.id.group.is_empty() {
        r.id.kind.clone()
    } else {
        format!("{}.{}", r.id.kind, r.id.group)
    };
    Ok(format!("{ns}/{kind}/{}.yaml", r.id.name))
}

/// Writes `content` at `path` atomically; `secret` files are created
/// readable by the owner only (0600), others 0644.
fn write_atomic(path: &Path, content: &[u8], secret: bool) -> std::io::Result<()> {
    let dir = path.parent().expect("resource paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.fleet-tmp",
        path.file_name().expect("file name").to_string_lossy()
    ));
    // A temp file left by a crash may have another mode: start afresh.
    let _ = std::fs::remove_file(&tmp);
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Objects whose content is secret on the target's disk.
fn is_secret(r: &Resource) -> bool {
    r.id.kind == "Secret" && r.id.group.is_empty()
}

/// Removes now-empty directories from `dir` up to (not including) `root`.
fn remove_empty_parents(root: &Path, mut dir: &Path) {
    while dir != root && dir.starts_with(root) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
}

impl DirectoryApplier {
    fn apply_one(
        &self,
        app: &str,
        r: &Resource,
        inv: &mut Inventory,
        heal: Option<bool>,
    ) -> ResourceOutcome {
        let out = |outcome, message: String| ResourceOutcome {
            app: app.into(),
            id: r.id.to_string(),
            outcome,
            message,
            health: None,
        };
        let rel = match relative_path(r) {
            Ok(p) => p,
            Err(e) => return out(Outcome::Failed, e),
        };
        if let Some(e) = super::still_sealed(r) {
            return out(Outcome::Failed, e);
        }
        let path = self.root.join(&rel);
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(r.manifest.as_bytes()) {
            #[cfg(unix)]
            if is_secret(r) {
                // A Secret an older version wrote world-readable.
                use std::os::unix::fs::PermissionsExt as _;
                if let Ok(m) = std::fs::metadata(&path) {
                    if m.permissions().mode() & 0o077 != 0 {
                        let _ =
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                    }
                }
            }
            inv.insert(
                rel,
                InventoryEntry {
                    app: app.into(),
                    id: r.id.to_string(),
                    digest: r.digest.clone(),
                    api_version: String::new(),
                },
            );
            return out(Outcome::Unchanged, String::new());
        }
        // Drift: the file differs from what fleet last wrote for this same desired digest.
        let drift = inv.get(&rel).is_some_and(|e| e.digest == r.digest);
        let what = if current.is_none() {
            "deleted"
        } else {
            "modified"
        };
        if drift && heal == Some(false) {
            return out(
                Outcome::Drifted,
                format!("{rel} was {what} outside fleet; self-heal is off"),
            );
        }
        match write_atomic(&path, r.manifest.as_bytes(), is_secret(r)) {
            Ok(()) => {
                inv.insert(
                    rel.clone(),
                    InventoryEntry {
                        app: app.into(),
                        id: r.id.to_string(),
                        digest: r.digest.clone(),
                        api_version: String::new(),
                    },
                );
                if drift {
                    out(
                        Outcome::Healed,
                        format!("{rel} was {what} outside fleet; restored"),
                    )
                } else {
                    out(Outcome::Applied, String::new())
                }
            }
            Err(e) => out(Outcome::Failed, format!("writing {}: {e}", path.display())),
        }
    }

    fn prune(
        &self,
        state: &DesiredState,
        wanted: &BTreeSet<String>,
        inv: &mut Inventory,
    ) -> Vec<ResourceOutcome> {
        let mut outs = Vec::new();
        let stale: Vec<String> = inv
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            let entry = inv.get(&key).cloned().expect("key from inventory");
            if !state.sync.prune {
                outs.push(ResourceOutcome {
                    app: entry.app,
                    id: entry.id,
                    outcome: Outcome::Orphaned,
                    message: "no longer desired; kept because prune is off".into(),
                    health: None,
                });
                continue;
            }
            let path = self.root.join(&key);
            let res = match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => {
                    inv.remove(&key);
                    if let Some(parent) = path.parent() {
                        remove_empty_parents(&self.root, parent);
                    }
                    outs.push(ResourceOutcome {
                        app: entry.app,
                        id: entry.id,
                        outcome: Outcome::Pruned,
                        message: String::new(),
                        health: None,
                    });
                }
                Err(e) => outs.push(ResourceOutcome {
                    app: entry.app,
                    id: entry.id,
                    outcome: Outcome::Failed,
                    message: format!("pruning {}: {e}", path.display()),
                    health: None,
                }),
            }
        }
        outs
    }

    fn wanted(state: &DesiredState) -> BTreeSet<String> {
        state
            .resources()
            .filter_map(|(_, r)| relative_path(r).ok())
            .collect()
    }
}

impl Applier for DirectoryApplier {
    async fn apply(&mut self, state: &DesiredState, inv: &mut Inventory) -> Vec<ResourceOutcome> {
        let heal = Some(state.sync.self_heal);
        let mut outs: Vec<ResourceOutcome> = state
            .resources()
            .map(|(app, r)| self.apply_one(app, r, inv, heal))
            .collect();
        outs.extend(self.prune(state, &Self::wanted(state), inv));
        outs
    }

    async fn reconcile_drift(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> Vec<ResourceOutcome> {
        let heal = Some(state.sync.self_heal);
        let mut outs: Vec<ResourceOutcome> = state
            .resources()
            .map(|(app, r)| self.apply_one(app, r, inv, heal))
            .collect();
        // Orphans stay reported while prune is off.
        if !state.sync.prune {
            outs.extend(self.prune(state, &Self::wanted(state), inv));
        }
        outs
    }

    async fn diff(
        &mut self,
        state: &DesiredState,
        inv: &Inventory,
        app: Option<&str>,
    ) -> Result<Vec<ResourceDiff>, String> {
        let mut out = Vec::new();
        for (a, r) in state
            .resources()
            .filter(|(a, _)| app.is_none_or(|x| x == *a))
        {
            let rel = relative_path(r)?;
            let text = |change, body: String| ResourceDiff {
                app: a.into(),
                id: r.id.to_string(),
                change,
                text: body,
            };
            match std::fs::read_to_string(self.root.join(&rel)) {
                Err(_) => out.push(text(
                    Change::Added,
                    unified("", &r.manifest, "/dev/null", &rel),
                )),
                Ok(live) if live != *r.manifest => out.push(text(
                    Change::Changed,
                    unified(&live, &r.manifest, &rel, &rel),
                )),
                Ok(_) => {}
            }
        }
        if state.sync.prune {
            let wanted = Self::wanted(state);
            for key in inv.keys().filter(|k| !wanted.contains(*k)) {
                let e = inv.get(key).expect("key from inventory");
                if app.is_some_and(|x| x != e.app) {
                    continue;
                }
                let live = std::fs::read_to_string(self.root.join(key)).unwrap_or_default();
                out.push(ResourceDiff {
                    app: e.app.clone(),
                    id: e.id.clone(),
                    change: Change::Removed,
                    text: unified(&live, "", key, "/dev/null"),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_render::{AppState, CommitMeta, SyncPolicy};
    use std::collections::BTreeMap;

    fn cm(name: &str, value: &str) -> Resource {
        Resource::from_value(&serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "web"}, "data": {"k": value}
        }))
        .unwrap()
    }

    fn state(resources: Vec<Resource>, sync: SyncPolicy) -> DesiredState {
        let mut apps = BTreeMap::new();
        apps.insert(
            "web".into(),
            AppState {
                source_revision: Some("c".into()),
                error: None,
                resources: resources.into(),
            },
        );
        DesiredState::new("c1".into(), CommitMeta::default(), sync, apps)
    }

    #[tokio::test]
    async fn applies_heals_and_prunes_only_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("target");
        let mut a = DirectoryApplier::new(root.clone()).unwrap();
        let mut inv = Inventory::default();
        let s1 = state(vec![cm("a", "1"), cm("b", "1")], SyncPolicy::default());
        let outs = a.apply(&s1, &mut inv).await;
        assert!(
            outs.iter().all(|o| o.outcome == Outcome::Applied),
            "{outs:?}"
        );
        let a_path = root.join("web/ConfigMap/a.yaml");
        assert!(
            std::fs::read_to_string(&a_path)
                .unwrap()
                .contains("k: \"1\"")
        );

        // A file fleet did not create is never touched.
        std::fs::write(root.join("web/ConfigMap/mine.yaml"), "hand made").unwrap();
        // Hand edit is healed.
        std::fs::write(&a_path, "edited").unwrap();
        let outs = a.reconcile_drift(&s1, &mut inv).await;
        assert_eq!(
            outs.iter().filter(|o| o.outcome == Outcome::Healed).count(),
            1,
            "{outs:?}"
        );
        assert!(
            std::fs::read_to_string(&a_path)
                .unwrap()
                .contains("k: \"1\"")
        );

        // b removed from desired: pruned; the hand-made file stays.
        let s2 = state(vec![cm("a", "1")], SyncPolicy::default());
        let outs = a.apply(&s2, &mut inv).await;
        assert!(
            outs.iter()
                .any(|o| o.outcome == Outcome::Pruned && o.id == "ConfigMap/web/b"),
            "{outs:?}"
        );
        assert!(!root.join("web/ConfigMap/b.yaml").exists());
        assert!(root.join("web/ConfigMap/mine.yaml").exists());
    }

    #[tokio::test]
    async fn drift_is_reported_but_kept_without_self_heal() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = DirectoryApplier::new(dir.path().to_path_buf()).unwrap();
        let mut inv = Inventory::default();
        let s = state(
            vec![cm("a", "1")],
            SyncPolicy {
                automatic: true,
                prune: true,
                self_heal: false,
                ..SyncPolicy::default()
            },
        );
        a.apply(&s, &mut inv).await;
        let p = dir.path().join("web/ConfigMap/a.yaml");
        std::fs::remove_file(&p).unwrap();
        let outs = a.reconcile_drift(&s, &mut inv).await;
        assert_eq!(outs[0].outcome, Outcome::Drifted);
        assert!(outs[0].message.contains("deleted"), "{outs:?}");
        assert!(!p.exists());
    }

    #[tokio::test]
    async fn prune_off_keeps_and_reports_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = DirectoryApplier::new(dir.path().to_path_buf()).unwrap();
        let mut inv = Inventory::default();
        let keep = SyncPolicy {
            automatic: true,
            prune: false,
            self_heal: true,
            ..SyncPolicy::default()
        };
        a.apply(&state(vec![cm("a", "1"), cm("b", "1")], keep), &mut inv)
            .await;
        let outs = a.apply(&state(vec![cm("a", "1")], keep), &mut inv).await;
        assert!(outs.iter().any(|o| o.outcome == Outcome::Orphaned));
        assert!(dir.path().join("web/ConfigMap/b.yaml").exists());
    }
}
