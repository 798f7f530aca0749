//! The fleet repo model: `clusters/<name>.yaml` and `apps/<app>/app.yaml`.
//! Documented with a full example in `docs/fleet-repo.md`.

use std::collections::BTreeMap;

use crate::source::FileSource;
use crate::state::{RenderError, SyncPolicy};
use crate::window::SyncWindow;
use crate::yaml;

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Directory,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Automatic,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncSpec {
    /// `None`: the environment's policy, else automatic.
    #[serde(default)]
    pub policy: Option<Policy>,
    #[serde(default = "yes")]
    pub prune: bool,
    #[serde(default = "yes")]
    pub self_heal: bool,
    /// When automatic syncs may happen (see `window`).
    #[serde(default)]
    pub windows: Vec<SyncWindow>,
    /// Kubernetes target: take ownership of fields other field managers hold
    /// (server-side apply `force`) instead of reporting a conflict.
    #[serde(default)]
    pub force_conflicts: bool,
}

fn yes() -> bool {
    true
}

impl Default for SyncSpec {
    fn default() -> Self {
        SyncSpec {
            policy: None,
            prune: true,
            self_heal: true,
            windows: Vec::new(),
            force_conflicts: false,
        }
    }
}

impl SyncSpec {
    /// The policy sent to the spoke, given the environment's default.
    pub fn policy_with(&self, env: Option<&EnvironmentSpec>) -> SyncPolicy {
        let policy = self
            .policy
            .or(env.and_then(|e| e.sync.policy))
            .unwrap_or_default();
        SyncPolicy {
            automatic: policy == Policy::Automatic,
            prune: self.prune,
            self_heal: self.self_heal,
            force_conflicts: self.force_conflicts,
        }
    }
}

/// `environments/<env>.yaml`: settings shared by every cluster labelled `env: <env>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentSpec {
    #[serde(default)]
    pub sync: EnvSync,
    /// Set by `fleetctl rollback`, removed by `fleetctl unfreeze`: promotions
    /// into a frozen environment are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Freeze>,
    /// Progressive rollout of a new revision across the environment's clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// What a promotion into this environment needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionPolicy>,
}

/// `promotion:` of `environments/<env>.yaml`: the gate's policy for promotions
/// into this environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionPolicy {
    /// The environments it may be promoted from (the env order); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// How long every cluster of the source environment must have run the
    /// revision synced and healthy: `1h`, `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    /// Distinct approvers (`fleetctl approve`) the promoted release needs.
    #[serde(default)]
    pub approvals: u32,
}

/// `rollout:` of `environments/<env>.yaml`: ordered waves of clusters (by
/// label selector; a cluster belongs to the first wave that selects it, and
/// clusters no wave selects form a last wave), at most `maxParallel` clusters
/// of a wave updating at once, and a soak after each wave during which every
/// cluster of the wave must stay synced and healthy.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutSpec {
    pub waves: Vec<WaveSpec>,
    /// Clusters of a wave updating at once (0: all of the wave).
    #[serde(default)]
    pub max_parallel: u32,
    /// Soak after each wave: `90s`, `10m`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaveSpec {
    pub name: String,
    /// Empty: every cluster of the environment not in an earlier wave.
    #[serde(default)]
    pub selector: Selector,
    /// Overrides the rollout's `maxParallel` for this wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Overrides the rollout's `soak` for this wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
}

impl RolloutSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.waves.is_empty() {
            return Err("rollout: waves must list at least one wave".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for w in &self.waves {
            if w.name.is_empty() || !names.insert(w.name.as_str()) {
                return Err(format!(
                    "rollout: every wave needs a name of its own ({:?})",
                    w.name
                ));
            }
            if let Some(s) = &w.soak {
                parse_duration(s).map_err(|e| format!("rollout: wave {}: soak: {e}", w.name))?;
            }
        }
        if let Some(s) = &self.soak {
            parse_duration(s).map_err(|e| format!("rollout: soak: {e}"))?;
        }
        Ok(())
    }
}

/// `90`, `90s`, `10m`, `1h30m`, `2d` -> seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return if n >= 0 {
            Ok(n)
        } else {
            Err(format!("{s:?} is negative"))
        };
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{s:?} is not a duration like 90s, 10m or 1h30m")),
        };
        let n: i64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 90s, 10m or 1h30m"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        return Err(format!("{s:?} is not a duration like 90s, 10m or 1h30m"));
    }
    Ok(total)
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvSync {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<SyncWindow>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    pub reason: String,
    pub by: String,
}

/// `clusters/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The Kubernetes version Helm charts see (`.Capabilities.KubeVersion`,
    /// `helm template --kube-version`); [`crate::helm::DEFAULT_KUBE_VERSION`] when unset.
    #[serde(default, rename = "kubeVersion")]
    pub kube_version: Option<String>,
    /// API versions the cluster serves beyond Helm's defaults
    /// (`.Capabilities.APIVersions`, `helm template --api-versions`).
    #[serde(default, rename = "apiVersions")]
    pub api_versions: Vec<String>,
    #[serde(default)]
    pub target: TargetKind,
    #[serde(default)]
    pub sync: SyncSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A Kubernetes-style label selector over cluster labels. Empty selects every cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let have = labels.get(&r.key);
                match r.operator {
                    Operator::In => have.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => !have.is_some_and(|v| r.values.contains(v)),
                    Operator::Exists => have.is_some(),
                    Operator::DoesNotExist => have.is_none(),
                }
            })
    }
}

/// The directories tried, in order, when no `paths` are given.
pub const DEFAULT_PATHS: &[&str] = &["clusters/${cluster}", "overlays/${labels.env}", "base"];

/// `apps/<app>/app.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// Which clusters run the app.
    #[serde(default)]
    pub selector: Selector,
    /// Namespace given to namespaced objects that name none.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Candidate directories relative to the app directory; the first that
    /// exists for a cluster is rendered. `${cluster}` and `${labels.KEY}` are
    /// substituted; a candidate naming a label the cluster lacks is skipped.
    /// For a Helm chart app, every candidate's `values.yaml` is a values
    /// layer, the most general (last) first.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Settings of a Helm chart app (one whose directory, or `chart/` in
    /// it, holds a `Chart.yaml`).
    #[serde(default)]
    pub helm: HelmSpec,
}

/// `helm:` in `app.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmSpec {
    /// The release name (`.Release.Name`); the app's name when unset.
    #[serde(default)]
    pub release_name: Option<String>,
    /// Lets the chart call Sprig's random functions (`randAlphaNum`,
    /// `uuidv4`...), which then give values derived from the cluster, the
    /// release and the chart: the same every render, and predictable to
    /// anyone who reads the repository (never a secret).
    #[serde(default)]
    pub seeded_random: bool,
}

/// The parsed `clusters/` directory.
#[derive(Debug, Default, Clone)]
pub struct Clusters {
    /// Shared: a render whose `clusters/` did not change reuses them as parsed.
    pub specs: std::sync::Arc<BTreeMap<String, ClusterSpec>>,
    /// Cluster files that did not parse: name (file stem) -> error.
    pub errors: BTreeMap<String, RenderError>,
}

/// An app: its name (the directory name) and its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// `apps/<name>`.
    pub dir: String,
    pub spec: AppSpec,
}

/// The parsed top level of a fleet repo. Broken files do not stop the rest:
/// they are listed in `errors` (a broken cluster file under `clusters`, a
/// broken app under `apps`) and the callers keep the last good state for them.
#[derive(Debug, Default)]
pub struct Fleet {
    pub clusters: std::sync::Arc<BTreeMap<String, ClusterSpec>>,
    pub apps: BTreeMap<String, App>,
    /// Clusters whose file did not parse: name (file stem) -> error.
    pub cluster_errors: BTreeMap<String, RenderError>,
    /// Apps whose `app.yaml` did not parse: name -> error.
    pub app_errors: BTreeMap<String, RenderError>,
    /// `environments/<env>.yaml` files that parsed.
    pub environments: BTreeMap<String, EnvironmentSpec>,
    /// Environment files that did not parse: env -> error.
    pub env_errors: BTreeMap<String, RenderError>,
}

impl Fleet {
    pub fn load(src: &dyn FileSource) -> Result<Fleet, RenderError> {
        Fleet::load_with(src, None)
    }

    /// [`Fleet::load`], with `clusters/` parsed before when given (the
    /// caller knows the directory did not change since).
    pub fn load_with(
        src: &dyn FileSource,
        clusters: Option<Clusters>,
    ) -> Result<Fleet, RenderError> {
        let clusters = match clusters {
            Some(c) => c,
            None => Fleet::load_clusters(src)?,
        };
        let mut fleet = Fleet {
            clusters: clusters.specs,
            cluster_errors: clusters.errors,
            ..Fleet::default()
        };
        let repo_err = |file: &str, reason: String| RenderError {
            app: String::new(),
            file: file.into(),
            reason,
        };
        let envs = src
            .list_dir("environments")
            .map_err(|e| repo_err("environments", e.to_string()))?
            .unwrap_or_default();
        for entry in envs.into_iter().filter(|e| !e.is_dir) {
            let Some(stem) = entry
                .name
                .strip_suffix(".yaml")
                .or_else(|| entry.name.strip_suffix(".yml"))
            else {
                continue;
            };
            let file = format!("environments/{}", entry.name);
            let parsed = src
                .read(&file)
                .map_err(|e| e.reason)
                .and_then(|b| b.ok_or_else(|| "file vanished".to_string()))
                .and_then(|b| {
                    yaml::parse_one::<EnvironmentSpec>(&file, &b)
                        .map_err(|e| strip_file(&e.to_string(), &file))
                })
                .and_then(|spec| {
                    spec.sync
                        .windows
                        .iter()
                        .try_for_each(SyncWindow::validate)?;
                    if let Some(r) = &spec.rollout {
                        r.validate()?;
                    }
                    if let Some(s) = spec.promotion.as_ref().and_then(|p| p.soak.as_ref()) {
                        parse_duration(s).map_err(|e| format!("promotion: soak: {e}"))?;
                    }
                    Ok(spec)
                });
            match parsed {
                Ok(spec) => {
                    fleet.environments.insert(stem.to_string(), spec);
                }
                Err(reason) => {
                    fleet
                        .env_errors
                        .insert(stem.to_string(), repo_err(&file, reason));
                }
            }
        }
        let apps = src
            .list_dir("apps")
            .map_err(|e| repo_err("apps", e.to_string()))?
            .unwrap_or_default();
        for entry in apps.into_iter().filter(|e| e.is_dir) {
            let dir = format!("apps/{}", entry.name);
            let file = format!("{dir}/app.yaml");
            let err = |reason: String| RenderError {
                app: entry.name.clone(),
                file: file.clone(),
                reason,
            };
            if let Err(e) = crate::resource::validate_name("app name", &entry.name) {
                fleet
                    .app_errors
                    .insert(entry.name.clone(), err(e.to_string()));
                continue;
            }
            match src.read(&file) {
                Ok(Some(bytes)) => match yaml::parse_one::<AppSpec>(&file, &bytes) {
                    Ok(spec) => {
                        fleet.apps.insert(
                            entry.name.clone(),
                            App {
                                name: entry.name.clone(),
                                dir,
                                spec,
                            },
                        );
                    }
                    Err(e) => {
                        fleet
                            .app_errors
                            .insert(entry.name.clone(), err(strip_file(&e.to_string(), &file)));
                    }
                },
                Ok(None) => {
                    fleet.app_errors.insert(
                        entry.name.clone(),
                        err("missing app.yaml (see docs/fleet-repo.md)".into()),
                    );
                }
                Err(e) => {
                    fleet.app_errors.insert(entry.name.clone(), err(e.reason));
                }
            }
        }
        Ok(fleet)
    }

    /// The `clusters/` directory: every cluster file, parsed or refused.
    pub fn load_clusters(src: &dyn FileSource) -> Result<Clusters, RenderError> {
        let repo_err = |file: &str, reason: String| RenderError {
            app: String::new(),
            file: file.into(),
            reason,
        };
        let mut out = Clusters::default();
        let mut specs = BTreeMap::new();
        let clusters = src
            .list_dir("clusters")
            .map_err(|e| repo_err("clusters", e.to_string()))?;
        let Some(clusters) = clusters else {
            return Err(repo_err(
                "clusters/",
                "the fleet repo has no clusters/ directory".into(),
            ));
        };
        for entry in clusters.into_iter().filter(|e| !e.is_dir) {
            let Some(stem) = entry
                .name
                .strip_suffix(".yaml")
                .or_else(|| entry.name.strip_suffix(".yml"))
            else {
                continue;
            };
            let file = format!("clusters/{}", entry.name);
            match load_cluster(src, &file, stem) {
                Ok(spec) => {
                    specs.insert(stem.to_string(), spec);
                }
                Err(reason) => {
                    out.errors.insert(stem.to_string(), repo_err(&file, reason));
                }
            }
        }
        out.specs = std::sync::Arc::new(specs);
        Ok(out)
    }

    /// The environment of a cluster (its `env` label), if it has a file.
    pub fn environment_of(&self, cluster: &ClusterSpec) -> Option<&EnvironmentSpec> {
        cluster
            .labels
            .get("env")
            .and_then(|e| self.environments.get(e))
    }

    /// Every sync window that applies to a cluster: its own and its environment's.
    pub fn windows_for(&self, cluster: &ClusterSpec) -> Vec<SyncWindow> {
        let mut w = cluster.sync.windows.clone();
        if let Some(env) = self.environment_of(cluster) {
            w.extend(env.sync.windows.iter().cloned());
        }
        w
    }

    /// Apps selected for a cluster, by name.
    pub fn apps_for<'a>(&'a self, cluster: &'a ClusterSpec) -> impl Iterator<Item = &'a App> + 'a {
        self.apps
            .values()
            .filter(move |a| a.spec.selector.matches(&cluster.labels))
    }
}

fn strip_file(msg: &str, file: &str) -> String {
    msg.strip_prefix(&format!("{file}: "))
        .unwrap_or(msg)
        .to_string()
}

fn load_cluster(src: &dyn FileSource, file: &str, stem: &str) -> Result<ClusterSpec, String> {
    let bytes = src
        .read(file)
        .map_err(|e| e.reason)?
        .ok_or("file vanished")?;
    let spec: ClusterSpec =
        yaml::parse_one(file, &bytes).map_err(|e| strip_file(&e.to_string(), file))?;
    if spec.name != stem {
        return Err(format!(
            "name {:?} must equal the file name {stem:?}",
            spec.name
        ));
    }
    crate::resource::validate_name("cluster name", &spec.name).map_err(|e| e.to_string())?;
    spec.sync
        .windows
        .iter()
        .try_for_each(SyncWindow::validate)?;
    Ok(spec)
}

/// Expands `${cluster}` and `${labels.KEY}` in a path candidate; `None` when a label is missing.
pub fn expand_path(template: &str, cluster: &ClusterSpec) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let var = &after[..end];
        if var == "cluster" {
            out.push_str(&cluster.name);
        } else if let Some(key) = var.strip_prefix("labels.") {
            out.push_str(cluster.labels.get(key)?);
        } else {
            return None;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemTree;

    #[test]
    fn selector_semantics() {
        let labels: BTreeMap<String, String> = [
            ("env".into(), "prod".into()),
            ("region".into(), "eu".into()),
        ]
        .into();
        let sel = |y: &str| yaml::parse_one::<Selector>("s", y.as_bytes()).unwrap();
        assert!(sel("{}").matches(&labels));
        assert!(sel("matchLabels: {env: prod}").matches(&labels));
        assert!(!sel("matchLabels: {env: dev}").matches(&labels));
        assert!(
            sel("matchExpressions: [{key: env, operator: In, values: [staging, prod]}]")
                .matches(&labels)
        );
        assert!(
            !sel("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]")
                .matches(&labels)
        );
        assert!(sel("matchExpressions: [{key: tier, operator: DoesNotExist}]").matches(&labels));
        assert!(!sel("matchExpressions: [{key: tier, operator: Exists}]").matches(&labels));
    }

    #[test]
    fn broken_files_are_reported_and_do_not_stop_the_rest() {
        let t = MemTree::new()
            .with("clusters/a.yaml", "name: a\nlabels: {env: dev}\n")
            .with("clusters/b.yaml", "name: not-b\n")
            .with("clusters/c.yaml", "name: c\nbogus: 1\n")
            .with("apps/web/app.yaml", "namespace: web\n")
            .with("apps/api/app.yaml", "selector: [\n")
            .with("apps/noconf/base/x.yaml", "a: 1\n");
        let f = Fleet::load(&t).unwrap();
        assert_eq!(f.clusters.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(
            f.cluster_errors["b"]
                .reason
                .contains("must equal the file name")
        );
        assert!(
            f.cluster_errors["c"].reason.contains("bogus"),
            "{:?}",
            f.cluster_errors["c"]
        );
        assert_eq!(f.apps.keys().collect::<Vec<_>>(), vec!["web"]);
        assert_eq!(f.app_errors["api"].file, "apps/api/app.yaml");
        assert!(f.app_errors["noconf"].reason.contains("missing app.yaml"));
    }

    #[test]
    fn path_templates() {
        let c = ClusterSpec {
            name: "prod-eu".into(),
            labels: [("env".into(), "prod".into())].into(),
            kube_version: None,
            api_versions: Vec::new(),
            target: TargetKind::Directory,
            sync: SyncSpec::default(),
        };
        assert_eq!(
            expand_path("clusters/${cluster}", &c).as_deref(),
            Some("clusters/prod-eu")
        );
        assert_eq!(
            expand_path("overlays/${labels.env}", &c).as_deref(),
            Some("overlays/prod")
        );
        assert_eq!(expand_path("overlays/${labels.region}", &c), None);
    }
}
