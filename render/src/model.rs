//! The fleet repo model: `clusters/<name>.yaml` and `apps/<app>/app.yaml`.
//! Documented with a full example in `docs/fleet-repo.md`.

use std::collections::BTreeMap;

use crate::source::FileSource;
use crate::state::{RenderError, SyncPolicy};
use crate::yaml;

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Directory,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Automatic,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncSpec {
    #[serde(default)]
    pub policy: Policy,
    #[serde(default = "yes")]
    pub prune: bool,
    #[serde(default = "yes")]
    pub self_heal: bool,
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
            policy: Policy::Automatic,
            prune: true,
            self_heal: true,
            force_conflicts: false,
        }
    }
}

impl SyncSpec {
    pub fn policy(&self) -> SyncPolicy {
        SyncPolicy {
            automatic: self.policy == Policy::Automatic,
            prune: self.prune,
            self_heal: self.self_heal,
            force_conflicts: self.force_conflicts,
        }
    }
}

/// `clusters/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub target: TargetKind,
    #[serde(default)]
    pub sync: SyncSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A Kubernetes-style label selector over cluster labels. Empty selects every cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
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
    #[serde(default)]
    pub paths: Vec<String>,
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
    pub clusters: BTreeMap<String, ClusterSpec>,
    pub apps: BTreeMap<String, App>,
    /// Clusters whose file did not parse: name (file stem) -> error.
    pub cluster_errors: BTreeMap<String, RenderError>,
    /// Apps whose `app.yaml` did not parse: name -> error.
    pub app_errors: BTreeMap<String, RenderError>,
}

impl Fleet {
    pub fn load(src: &dyn FileSource) -> Result<Fleet, RenderError> {
        let mut fleet = Fleet::default();
        let repo_err = |file: &str, reason: String| RenderError {
            app: String::new(),
            file: file.into(),
            reason,
        };
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
                    fleet.clusters.insert(stem.to_string(), spec);
                }
                Err(reason) => {
                    fleet
                        .cluster_errors
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
