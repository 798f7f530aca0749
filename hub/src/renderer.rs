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
    /// For a Helm chart app: the digest of the cluster facts the chart
    /// sees (name, labels, kube version), so that a render is shared only
    /// by clusters that give the chart the same values.
    chart_inputs: Option<String>,
}

type Rendered = Arc<Result<AppRender, RenderError>>;

/// Shared by every cluster whose app render it names: cloned as a pointer.
type Key = Arc<RenderKey>;

/// The renders a cluster runs (held) and what `claim_all` gave them.
type Claimed = (Vec<Rendered>, Vec<Option<RenderError>>);

/// The result of rendering one commit.
#[derive(Debug, Default)]
pub struct FleetRender {
    pub commit: CommitMeta,
    /// One state per cluster that has a valid cluster file.
    pub states: BTreeMap<String, DesiredState>,
    /// Labels, sync windows and policy of each cluster: the last render's
    /// map itself while `clusters/` and `environments/` are unchanged.
    pub clusters: Arc<BTreeMap<String, ClusterMeta>>,
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
    /// Clusters whose inputs did not change: their previous state moved to
    /// the new commit, not assembled or digested again.
    pub clusters_reused: usize,
    /// Directories chosen for an app on a cluster (path candidates tried
    /// against the tree); an app whose tree and cluster did not change
    /// keeps the one chosen last time.
    pub dirs_selected: usize,
}

/// What a cluster's state is made of, besides the commit: when a commit
/// leaves all of it as it was, the cluster's state is its previous one at
/// the new commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClusterInputs {
    spec: ClusterSpec,
    policy: fleet_render::SyncPolicy,
    /// The apps that run on the cluster and the Git tree of each.
    apps: Vec<(String, Option<ObjectId>)>,
    /// Set when one of those apps reads outside its directory.
    root: Option<ObjectId>,
}

/// A cluster's inputs at the last render, the digest they gave and the app
/// renders they used (held here, so that a cluster moved to a new commit
/// keeps them without a lookup).
struct ClusterMemo {
    inputs: ClusterInputs,
    digest: String,
    renders: Vec<(Key, Rendered)>,
}

/// What choosing an app's directory needs, worked out once per app tree:
/// its chart directory (`render::chart_dir`) and its path candidates'
/// plan (`render::DirPlan`).
struct AppDirs {
    tree: ObjectId,
    chart: Option<String>,
    plan: Option<render::DirPlan>,
}

/// What the hub needs of a cluster besides its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterMeta {
    pub labels: BTreeMap<String, String>,
    pub automatic: bool,
    pub windows: Vec<fleet_render::window::SyncWindow>,
}

/// The states of the last render, by cluster: what the renderer keeps an
/// app's last good resources from.
pub trait PreviousStates {
    fn state(&self, cluster: &str) -> Option<&DesiredState>;
}

/// No previous states: a first render.
impl PreviousStates for () {
    fn state(&self, _: &str) -> Option<&DesiredState> {
        None
    }
}

impl PreviousStates for BTreeMap<String, DesiredState> {
    fn state(&self, cluster: &str) -> Option<&DesiredState> {
        self.get(cluster)
    }
}

impl PreviousStates for BTreeMap<String, Arc<DesiredState>> {
    fn state(&self, cluster: &str) -> Option<&DesiredState> {
        self.get(cluster).map(|s| &**s)
    }
}

/// Remembers app renders and cluster states across commits.
#[derive(Default)]
pub struct Renderer {
    memo: HashMap<Key, Rendered>,
    /// Key of each (app, dir) seen last, to find renders that escaped the app dir.
    escapes: HashSet<(String, String)>,
    /// `clusters/` as parsed last, by its tree id.
    parsed_clusters: Option<(ObjectId, fleet_render::model::Clusters)>,
    /// Each cluster's inputs at the last render.
    clusters: HashMap<String, ClusterMemo>,
    /// Each app's directory choice at its tree, by app: worked out once per
    /// app tree, not once per cluster; kept while the app's tree stays.
    app_dirs: HashMap<String, Arc<AppDirs>>,
    /// Broken app.yaml files at the last render (they are in every state).
    app_errors: Vec<(String, Option<ObjectId>)>,
    /// The `clusters/` and `environments/` trees of the last render and the
    /// cluster metas they gave. While both trees stay, every memo's spec and
    /// policy are the current ones (each render leaves its memos at its own
    /// specs), so they are not compared again.
    cluster_trees: Option<(Option<ObjectId>, Option<ObjectId>)>,
    metas: Arc<BTreeMap<String, ClusterMeta>>,
    /// Each app's tree at the last render.
    app_trees: HashMap<String, Option<ObjectId>>,
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
        previous: &impl PreviousStates,
    ) -> Result<FleetRender, RenderError> {
        let clusters_tree = tree.tree_id("clusters");
        let parsed = match (&self.parsed_clusters, clusters_tree) {
            (Some((id, c)), Some(now)) if *id == now => Some(c.clone()),
            _ => None,
        };
        let fleet = Fleet::load_with(tree, parsed)?;
        if let Some(id) = clusters_tree {
            self.parsed_clusters = Some((
                id,
                fleet_render::model::Clusters {
                    specs: Arc::clone(&fleet.clusters),
                    errors: fleet.cluster_errors.clone(),
                },
            ));
        }
        // The tree of each app (its app.yaml and everything it renders).
        let app_trees: HashMap<&str, Option<ObjectId>> = fleet
            .apps
            .values()
            .map(|a| (a.name.as_str(), tree.tree_id(&a.dir)))
            .collect();
        let app_errors: Vec<(String, Option<ObjectId>)> = fleet
            .app_errors
            .keys()
            .map(|a| (a.clone(), tree.tree_id(&format!("apps/{a}"))))
            .collect();
        let app_errors_same = app_errors == self.app_errors;
        let cluster_trees = (clusters_tree, tree.tree_id("environments"));
        let specs_same = self.cluster_trees == Some(cluster_trees);
        // With every spec and broken app.yaml as they were, only the apps
        // whose tree changed (or that came or went) can change a cluster's
        // state: the others select the same clusters and render the same.
        let touched = (specs_same && app_errors_same)
            .then(|| Touched::new(&fleet, &app_trees, &self.app_trees));
        // Updated in place: a cluster whose inputs did not change keeps its memo.
        let mut memos = std::mem::take(&mut self.clusters);
        if !specs_same {
            memos.retain(|name, _| fleet.clusters.contains_key(name));
        }
        let mut metas = (!specs_same).then(BTreeMap::new);
        // One commit shared by every state of this render.
        let commit = &Arc::new(commit.clone());
        let mut out = FleetRender {
            commit: CommitMeta::clone(commit),
            ..Default::default()
        };
        let mut states = Vec::with_capacity(fleet.clusters.len());
        let mut used: HashMap<Key, Rendered> = HashMap::new();
        // By the renders a cluster runs (their pointers; the entry holds
        // them, so no other render takes their place): what `claim_all` gave.
        let mut claims: HashMap<Vec<usize>, Claimed> = HashMap::new();
        let mut digests = fleet_render::state::DigestCache::default();

        for (name, err) in &fleet.cluster_errors {
            out.cluster_errors
                .entry(name.clone())
                .or_default()
                .push(err.clone());
            // A broken cluster file keeps the cluster's previous state as it was.
            if let Some(prev) = previous.state(name) {
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
            let memo = memos.get(&cluster.name);
            let policy = match memo.filter(|_| specs_same) {
                Some(m) => m.inputs.policy.clone(),
                None => cluster.sync.policy_with(fleet.environment_of(cluster)),
            };
            if let Some(metas) = metas.as_mut() {
                metas.insert(
                    cluster.name.clone(),
                    ClusterMeta {
                        labels: cluster.labels.clone(),
                        automatic: policy.automatic,
                        windows: fleet.windows_for(cluster),
                    },
                );
            }
            if let Some(e) = cluster
                .labels
                .get("env")
                .filter(|_| !fleet.env_errors.is_empty())
                .and_then(|e| fleet.env_errors.get(e))
            {
                out.cluster_errors
                    .entry(cluster.name.clone())
                    .or_default()
                    .push(e.clone());
            }
            let prev = previous.state(&cluster.name);
            if let (Some(t), Some(m), Some(p)) = (&touched, memo, prev) {
                let escapes = |app: &str| self.escapes.iter().any(|(a, _)| a == app);
                if m.inputs.root.is_none()
                    && m.digest == p.digest
                    && !t.touches(m, cluster)
                    && !m.inputs.apps.iter().any(|(a, _)| escapes(a))
                {
                    out.stats.clusters_reused += 1;
                    states.push((cluster.name.clone(), p.at_commit(Arc::clone(commit))));
                    continue;
                }
            }
            let running: Vec<&App> = fleet.apps_for(cluster).collect();
            let root = running
                .iter()
                .any(|a| self.may_escape(a))
                .then(|| tree.root_id());
            // Only the spec is compared here; the apps and their trees in `moved_on`.
            let same_spec = memo.is_some_and(|m| {
                m.inputs.root == root
                    && (specs_same || (m.inputs.spec == *cluster && m.inputs.policy == policy))
            });
            if same_spec {
                if let Some(state) = Self::moved_on(
                    memo.expect("checked"),
                    &running,
                    &app_trees,
                    prev,
                    app_errors_same,
                    commit,
                ) {
                    out.stats.clusters_reused += 1;
                    states.push((cluster.name.clone(), state));
                    continue;
                }
            }
            // The render keys of the apps whose tree did not change: their
            // directory is the one chosen last time.
            let last_keys: &[(Key, Rendered)] = match memo {
                Some(m) if same_spec => &m.renders,
                _ => &[],
            };
            let last_key = |app: &str| {
                last_keys
                    .iter()
                    .find(|(k, _)| k.app == app && k.root_tree.is_none())
                    .map(|(k, _)| k)
            };
            let apps_in: Vec<(String, Option<ObjectId>)> = running
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        app_trees.get(a.name.as_str()).copied().flatten(),
                    )
                })
                .collect();
            let mut renders = Vec::with_capacity(running.len());
            let mut apps: BTreeMap<String, AppState> = BTreeMap::new();
            let mut results = Vec::with_capacity(running.len());
            for (app, (_, app_tree)) in running.into_iter().zip(&apps_in) {
                let (key, result) = self.render_app(
                    tree,
                    app,
                    *app_tree,
                    cluster,
                    last_key(&app.name),
                    &mut used,
                    &mut out.stats,
                );
                renders.extend(key.map(|k| (k, Arc::clone(&result))));
                results.push((app, result));
            }
            // Clusters that run the same renders claim the same: once per
            // render for them all.
            let (_, claimed) = claims
                .entry(
                    results
                        .iter()
                        .map(|(_, r)| Arc::as_ptr(r) as usize)
                        .collect(),
                )
                .or_insert_with(|| {
                    let held = results.iter().map(|(_, r)| Arc::clone(r)).collect();
                    (held, claim_all(&results))
                });
            for ((app, result), claimed) in results.iter().zip(claimed.iter()) {
                let state = match (&**result, claimed) {
                    (Ok(r), None) => AppState {
                        source_revision: None,
                        error: None,
                        resources: r.resources.clone(),
                    },
                    (Ok(_), Some(e)) => keep_last_good(prev, &app.name, e.clone()),
                    (Err(e), _) => keep_last_good(prev, &app.name, e.clone()),
                };
                apps.insert(app.name.clone(), state);
            }
            // Apps whose app.yaml is broken: keep them where they ran.
            for (app, err) in &fleet.app_errors {
                if let Some((prev, p)) = prev.and_then(|s| s.apps.get(app).map(|a| (s, a))) {
                    let mut kept = p.clone();
                    kept.source_revision = Some(prev.revision_of(p).to_string());
                    kept.error = Some(err.clone());
                    apps.insert(app.clone(), kept);
                }
            }
            let state = DesiredState::new_cached(
                cluster.name.clone(),
                Arc::clone(commit),
                policy,
                apps,
                &mut digests,
            );
            // The memo is updated in place when its spec stays: no copy of
            // the spec, and no memo dropped, per cluster.
            match memos.get_mut(&cluster.name).filter(|_| same_spec) {
                Some(m) => {
                    m.inputs.apps = apps_in;
                    m.digest.clone_from(&state.digest);
                    m.renders = renders;
                }
                None => {
                    memos.insert(
                        cluster.name.clone(),
                        ClusterMemo {
                            inputs: ClusterInputs {
                                spec: cluster.clone(),
                                policy,
                                apps: apps_in,
                                root,
                            },
                            digest: state.digest.clone(),
                            renders,
                        },
                    );
                }
            }
            states.push((cluster.name.clone(), state));
        }
        // In name order (the clusters' own): built in one pass, no search per cluster.
        if out.states.is_empty() {
            out.states = states.into_iter().collect();
        } else {
            out.states.extend(states);
        }
        out.clusters = match metas {
            Some(m) => Arc::new(m),
            None => Arc::clone(&self.metas),
        };
        // The claims' hold on renders goes first: only the memos' counts.
        drop(claims);
        // A render a kept memo still holds stays findable by its key.
        for (k, r) in std::mem::take(&mut self.memo) {
            if Arc::strong_count(&r) > 1 {
                used.entry(k).or_insert(r);
            }
        }
        self.clusters = memos;
        self.app_errors = app_errors;
        self.memo = used;
        self.cluster_trees = Some(cluster_trees);
        self.metas = Arc::clone(&out.clusters);
        self.app_trees = app_trees
            .into_iter()
            .map(|(a, t)| (a.to_string(), t))
            .collect();
        Ok(out)
    }

    /// One app's render for `cluster`: reused when its inputs are those of
    /// a render kept in `used` or the memo. `app_tree`: the app's tree at
    /// this commit. `last`: the app's key at the cluster's last render, when
    /// the cluster's spec has not changed since.
    #[allow(clippy::too_many_arguments)]
    fn render_app(
        &mut self,
        tree: &GitTree,
        app: &App,
        app_tree: Option<ObjectId>,
        cluster: &ClusterSpec,
        last: Option<&Key>,
        used: &mut HashMap<Key, Rendered>,
        stats: &mut RenderStats,
    ) -> (Option<Key>, Rendered) {
        let Some(app_tree) = app_tree else {
            return (
                None,
                Arc::new(Err(RenderError {
                    app: app.name.clone(),
                    file: app.dir.clone(),
                    reason: "not a directory".into(),
                })),
            );
        };
        // The same app tree and cluster spec choose the same directory, unless
        // the app's paths climb out of its tree.
        if let Some(key) = last.filter(|k| k.app_tree == app_tree && !self.may_escape(app)) {
            if let Some((key, hit)) = self.reuse(key, used) {
                stats.reused += 1;
                return (Some(key), hit);
            }
        }
        let dirs = match self.app_dirs.get(app.name.as_str()) {
            Some(d) if d.tree == app_tree => Arc::clone(d),
            _ => {
                let chart = match render::chart_dir(tree, app) {
                    Ok(c) => c,
                    Err(e) => return (None, Arc::new(Err(e))),
                };
                let plan = chart
                    .is_none()
                    .then(|| render::DirPlan::new(tree, app))
                    .flatten();
                let d = Arc::new(AppDirs {
                    tree: app_tree,
                    chart,
                    plan,
                });
                self.app_dirs.insert(app.name.clone(), Arc::clone(&d));
                d
            }
        };
        let dir = match (&dirs.chart, &dirs.plan) {
            (Some(d), _) => d.clone(),
            (None, plan) => {
                stats.dirs_selected += 1;
                let chosen = match plan {
                    Some(p) => p.select(tree, app, cluster),
                    None => render::select_directory(tree, app, cluster),
                };
                match chosen {
                    Ok(d) => d,
                    Err(e) => return (None, Arc::new(Err(e))),
                }
            }
        };
        let escapes =
            !self.escapes.is_empty() && self.escapes.contains(&(app.name.clone(), dir.clone()));
        let key = RenderKey {
            app: app.name.clone(),
            app_tree,
            dir,
            root_tree: escapes.then(|| tree.root_id()),
            chart_inputs: dirs.chart.is_some().then(|| render::chart_inputs(cluster)),
        };
        if let Some((key, hit)) = self.reuse(&key, used) {
            stats.reused += 1;
            return (Some(key), hit);
        }
        stats.rendered += 1;
        let tracking = Tracking {
            inner: tree,
            prefix: format!("{}/", app.dir),
            escaped: Cell::new(false),
        };
        let result = Arc::new(match &dirs.chart {
            Some(_) => render::render_chart(&tracking, app, cluster, &key.dir),
            None => render::render_dir(&tracking, app, &key.dir),
        });
        let key = if tracking.escaped.get() {
            self.escapes.insert((app.name.clone(), key.dir.clone()));
            RenderKey {
                root_tree: Some(tree.root_id()),
                ..key
            }
        } else {
            key
        };
        let key = Arc::new(key);
        used.insert(Arc::clone(&key), result.clone());
        (Some(key), result)
    }

    /// The render `key` names and its shared key, from this render's or
    /// the memo: kept in `used` either way.
    fn reuse(&self, key: &RenderKey, used: &mut HashMap<Key, Rendered>) -> Option<(Key, Rendered)> {
        if let Some((k, hit)) = used.get_key_value(key) {
            return Some((Arc::clone(k), hit.clone()));
        }
        let (k, hit) = self.memo.get_key_value(key)?;
        let (k, hit) = (Arc::clone(k), hit.clone());
        used.insert(Arc::clone(&k), hit.clone());
        Some((k, hit))
    }

    /// Whether an app's render may read outside its directory: a path
    /// candidate that climbs out, or a render that did.
    fn may_escape(&self, app: &App) -> bool {
        app.spec.paths.iter().any(|p| p.contains(".."))
            || self.escapes.iter().any(|(a, _)| *a == app.name)
    }

    /// The cluster's previous state at `commit`, when its apps and their
    /// trees are those of its last render (`memo`, whose spec the caller
    /// found unchanged) and `prev` is the state that render gave; the memo
    /// keeps holding its app renders. `None`: the state is to be assembled.
    fn moved_on(
        memo: &ClusterMemo,
        running: &[&App],
        app_trees: &HashMap<&str, Option<ObjectId>>,
        prev: Option<&DesiredState>,
        app_errors_same: bool,
        commit: &Arc<CommitMeta>,
    ) -> Option<DesiredState> {
        let prev = prev?;
        let same_apps = memo.inputs.apps.len() == running.len()
            && memo.inputs.apps.iter().zip(running).all(|((name, t), a)| {
                *name == a.name && *t == app_trees.get(a.name.as_str()).copied().flatten()
            });
        if !app_errors_same || !same_apps || memo.digest != prev.digest {
            return None;
        }
        Some(prev.at_commit(Arc::clone(commit)))
    }
}

/// The apps a commit changed, against the last render: the only ones that
/// can change a cluster's state while the specs stay.
struct Touched<'a> {
    /// Apps whose tree is new or changed.
    changed: Vec<&'a App>,
    /// Apps gone since the last render.
    gone: Vec<String>,
}

impl<'a> Touched<'a> {
    fn new(
        fleet: &'a Fleet,
        now: &HashMap<&str, Option<ObjectId>>,
        last: &HashMap<String, Option<ObjectId>>,
    ) -> Self {
        Touched {
            changed: fleet
                .apps
                .values()
                .filter(|a| last.get(a.name.as_str()) != now.get(a.name.as_str()))
                .collect(),
            gone: last
                .keys()
                .filter(|a| !now.contains_key(a.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Whether the cluster ran one of these apps at its last render or
    /// runs a changed one now.
    fn touches(&self, memo: &ClusterMemo, cluster: &ClusterSpec) -> bool {
        let ran = |app: &str| memo.inputs.apps.iter().any(|(a, _)| a == app);
        self.gone.iter().any(|a| ran(a))
            || self
                .changed
                .iter()
                .any(|a| ran(&a.name) || a.spec.selector.matches(&cluster.labels))
    }
}

/// Each app's claim on its resources, in the order the cluster runs them:
/// `Some` when a resource is also rendered by an app before it.
fn claim_all(results: &[(&App, Rendered)]) -> Vec<Option<RenderError>> {
    // Borrowed from the renders: no copy of an id.
    let mut owners: foldhash::HashMap<&fleet_render::ResourceId, &str> = Default::default();
    results
        .iter()
        .map(|(app, result)| match &**result {
            Ok(r) => claim(&mut owners, &app.name, r).err(),
            Err(_) => None,
        })
        .collect()
}

/// Records each resource's app; a resource claimed by two apps is an error for the second.
fn claim<'a>(
    owners: &mut foldhash::HashMap<&'a fleet_render::ResourceId, &'a str>,
    app: &'a str,
    r: &'a AppRender,
) -> Result<(), RenderError> {
    for res in r.resources.iter() {
        if let Some(other) = owners.get(&res.id) {
            return Err(RenderError {
                app: app.to_string(),
                file: r.dir.clone(),
                reason: format!("resource {} is also rendered by app {other}", res.id),
            });
        }
    }
    for res in r.resources.iter() {
        owners.insert(&res.id, app);
    }
    Ok(())
}

fn keep_last_good(prev: Option<&DesiredState>, app: &str, error: RenderError) -> AppState {
    match prev.and_then(|p| p.apps.get(app).map(|a| (p, a))) {
        Some((state, p)) => AppState {
            source_revision: Some(state.revision_of(p).to_string()),
            error: Some(error),
            resources: p.resources.clone(),
        },
        None => AppState {
            source_revision: Some(String::new()),
            error: Some(error),
            resources: Vec::new().into(),
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
