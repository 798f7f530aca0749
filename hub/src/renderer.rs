//! Renders every cluster at a commit, reusing work: an app's output is cached
//! by the Git tree ids of its inputs, so clusters with the same inputs share
//! one render, and a commit that changes one app re-renders that app only.
//!
//! It also applies the "last good state" rule: an app that fails to render for
//! a cluster keeps the resources it had in that cluster's previous state.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use fleet_render::model::{App, ClusterSpec, Fleet};
use fleet_render::source::{DirEntry, FileSource, SourceError};
use fleet_render::{AppRender, AppState, CommitMeta, DesiredState, RenderError, render};
use gix::ObjectId;

use crate::repo::GitTree;

/// What identifies an app render's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RenderKey {
    app: String,
    app_tree: ObjectId,
    dir: String,
    /// Set when the render read files outside the app's directory.
    root_tree: Option<ObjectId>,
}

type Rendered = Arc<Result<AppRender, RenderError>>;

/// The result of rendering one commit.
#[derive(Debug, Default)]
pub struct FleetRender {
    pub commit: CommitMeta,
    /// One state per cluster that has a valid cluster file.
    pub states: BTreeMap<String, DesiredState>,
    /// Labels, sync windows and policy of each cluster.
    pub clusters: BTreeMap<String, ClusterMeta>,
    /// Errors that are not about one app of one cluster: broken cluster files
    /// (cluster -> error) and broken app.yaml files (listed under every cluster
    /// that had the app).
    pub cluster_errors: BTreeMap<String, Vec<RenderError>>,
    /// Work done: app renders computed and reused.
    pub stats: RenderStats,
    /// The rollout waves of each environment that declares them.
    pub rollouts: BTreeMap<String, crate::rollout::RolloutPlan>,
    /// Environments whose file does not parse (their last rollout plan stays).
    pub broken_envs: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RenderStats {
    pub rendered: usize,
    pub reused: usize,
}

/// What the hub needs of a cluster besides its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterMeta {
    pub labels: BTreeMap<String, String>,
    pub automatic: bool,
    pub windows: Vec<fleet_render::window::SyncWindow>,
}

/// Remembers app renders across commits.
#[derive(Default)]
pub struct Renderer {
    memo: HashMap<RenderKey, Rendered>,
    /// Key of each (app, dir) seen last, to find renders that escaped the app dir.
    escapes: HashSet<(String, String)>,
}

impl Renderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders every cluster at `commit`. `previous` holds the last states
    /// served, whose apps are kept when they fail to render now.
    pub fn render(
        &mut self,
        tree: &GitTree,
        commit: &CommitMeta,
        previous: &BTreeMap<String, DesiredState>,
    ) -> Result<FleetRender, RenderError> {
        let fleet = Fleet::load(tree)?;
        let mut out = FleetRender {
            commit: commit.clone(),
            ..Default::default()
        };
        let mut used: HashMap<RenderKey, Rendered> = HashMap::new();

        for (name, err) in &fleet.cluster_errors {
            out.cluster_errors
                .entry(name.clone())
                .or_default()
                .push(err.clone());
            // A broken cluster file keeps the cluster's previous state as it was.
            if let Some(prev) = previous.get(name) {
                out.states.insert(name.clone(), prev.clone());
            }
        }

        for (env, spec) in &fleet.environments {
            if let Some(r) = &spec.rollout {
                let members: Vec<&fleet_render::model::ClusterSpec> = fleet
                    .clusters
                    .values()
                    .filter(|c| c.labels.get("env") == Some(env))
                    .collect();
                out.rollouts
                    .insert(env.clone(), crate::rollout::plan(r, &members));
            }
        }
        out.broken_envs = fleet.env_errors.keys().cloned().collect();
        for cluster in fleet.clusters.values() {
            let env = fleet.environment_of(cluster);
            let policy = cluster.sync.policy_with(env);
            out.clusters.insert(
                cluster.name.clone(),
                ClusterMeta {
                    labels: cluster.labels.clone(),
                    automatic: policy.automatic,
                    windows: fleet.windows_for(cluster),
                },
            );
            if let Some(e) = cluster
                .labels
                .get("env")
                .and_then(|e| fleet.env_errors.get(e))
            {
                out.cluster_errors
                    .entry(cluster.name.clone())
                    .or_default()
                    .push(e.clone());
            }
            let prev = previous.get(&cluster.name);
            let mut apps: BTreeMap<String, AppState> = BTreeMap::new();
            let mut owners: HashMap<fleet_render::ResourceId, String> = HashMap::new();
            for app in fleet.apps_for(cluster) {
                let result = self.render_app(tree, app, cluster, &mut used, &mut out.stats);
                let state = match &*result {
                    Ok(r) => match claim(&mut owners, &app.name, r) {
                        Ok(()) => AppState {
                            source_revision: commit.id.clone(),
                            error: None,
                            resources: r.resources.clone(),
                        },
                        Err(e) => keep_last_good(prev, &app.name, e),
                    },
                    Err(e) => keep_last_good(prev, &app.name, e.clone()),
                };
                apps.insert(app.name.clone(), state);
            }
            // Apps whose app.yaml is broken: keep them where they ran.
            for (app, err) in &fleet.app_errors {
                if let Some(p) = prev.and_then(|p| p.apps.get(app)) {
                    let mut kept = p.clone();
                    kept.error = Some(err.clone());
                    apps.insert(app.clone(), kept);
                }
            }
            let state = DesiredState::new(cluster.name.clone(), commit.clone(), policy, apps);
            out.states.insert(cluster.name.clone(), state);
        }
        self.memo = used;
        Ok(out)
    }

    fn render_app(
        &mut self,
        tree: &GitTree,
        app: &App,
        cluster: &ClusterSpec,
        used: &mut HashMap<RenderKey, Rendered>,
        stats: &mut RenderStats,
    ) -> Rendered {
        let dir = match render::select_directory(tree, app, cluster) {
            Ok(d) => d,
            Err(e) => return Arc::new(Err(e)),
        };
        let Some(app_tree) = tree.tree_id(&app.dir) else {
            return Arc::new(Err(RenderError {
                app: app.name.clone(),
                file: app.dir.clone(),
                reason: "not a directory".into(),
            }));
        };
        let escapes = self.escapes.contains(&(app.name.clone(), dir.clone()));
        let key = RenderKey {
            app: app.name.clone(),
            app_tree,
            dir: dir.clone(),
            root_tree: escapes.then(|| tree.root_id()),
        };
        if let Some(hit) = used.get(&key).or_else(|| self.memo.get(&key)) {
            stats.reused += 1;
            let hit = hit.clone();
            used.insert(key, hit.clone());
            return hit;
        }
        stats.rendered += 1;
        let tracking = Tracking {
            inner: tree,
            prefix: format!("{}/", app.dir),
            escaped: Cell::new(false),
        };
        let result = Arc::new(render::render_dir(&tracking, app, &dir));
        let key = if tracking.escaped.get() {
            self.escapes.insert((app.name.clone(), dir));
            RenderKey {
                root_tree: Some(tree.root_id()),
                ..key
            }
        } else {
            key
        };
        used.insert(key, result.clone());
        result
    }
}

/// Records each resource's app; a resource claimed by two apps is an error for the second.
fn claim(
    owners: &mut HashMap<fleet_render::ResourceId, String>,
    app: &str,
    r: &AppRender,
) -> Result<(), RenderError> {
    for res in &r.resources {
        if let Some(other) = owners.get(&res.id) {
            return Err(RenderError {
                app: app.to_string(),
                file: r.dir.clone(),
                reason: format!("resource {} is also rendered by app {other}", res.id),
            });
        }
    }
    for res in &r.resources {
        owners.insert(res.id.clone(), app.to_string());
    }
    Ok(())
}

fn keep_last_good(prev: Option<&DesiredState>, app: &str, error: RenderError) -> AppState {
    match prev.and_then(|p| p.apps.get(app)) {
        Some(p) => AppState {
            source_revision: p.source_revision.clone(),
            error: Some(error),
            resources: p.resources.clone(),
        },
        None => AppState {
            source_revision: String::new(),
            error: Some(error),
            resources: Vec::new(),
        },
    }
}

/// A [`FileSource`] that notes whether anything outside the app directory was read.
struct Tracking<'a> {
    inner: &'a GitTree,
    prefix: String,
    escaped: Cell<bool>,
}

impl Tracking<'_> {
    fn note(&self, path: &str) {
        let p = fleet_render::source::normalize(path).unwrap_or_default();
        if !(p.starts_with(&self.prefix) || format!("{p}/") == self.prefix) {
            self.escaped.set(true);
        }
    }
}

impl FileSource for Tracking<'_> {
    fn read(&self, path: &str) -> Result<Option<Arc<[u8]>>, SourceError> {
        self.note(path);
        self.inner.read(path)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, SourceError> {
        self.note(path);
        self.inner.list_dir(path)
    }
}
