//! Rendering one app for one cluster: choose its directory, build it (plain
//! YAML or Kustomize), give namespaced objects the app's namespace, and turn
//! each object into a canonical [`Resource`].

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::model::{App, ClusterSpec, DEFAULT_PATHS, expand_path};
use crate::resource::{Resource, ResourceId, is_cluster_scoped};
use crate::source::{FileSource, join};
use crate::state::RenderError;
use crate::{kustomize, plain};

/// File names that make a directory a Kustomize directory.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The result of rendering an app directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRender {
    /// The directory rendered, relative to the repo root.
    pub dir: String,
    pub resources: std::sync::Arc<Vec<Resource>>,
}

fn err(app: &App, file: &str, reason: impl Into<String>) -> RenderError {
    RenderError {
        app: app.name.clone(),
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// The first of the app's path candidates that exists for this cluster.
pub fn select_directory(
    src: &dyn FileSource,
    app: &App,
    cluster: &ClusterSpec,
) -> Result<String, RenderError> {
    let owned: Vec<&str> = app.spec.paths.iter().map(String::as_str).collect();
    let candidates: &[&str] = if owned.is_empty() {
        DEFAULT_PATHS
    } else {
        &owned
    };
    let mut tried = Vec::new();
    for template in candidates {
        let Some(rel) = expand_path(template, cluster) else {
            continue;
        };
        let Some(dir) = join(&app.dir, &rel) else {
            return Err(err(
                app,
                &format!("{}/app.yaml", app.dir),
                format!("path {template:?} leaves the repo"),
            ));
        };
        if src.is_dir(&dir).map_err(|e| err(app, &dir, e.reason))? {
            return Ok(dir);
        }
        tried.push(dir);
    }
    Err(err(
        app,
        &format!("{}/app.yaml", app.dir),
        format!(
            "no directory to render for cluster {}: tried {}",
            cluster.name,
            tried.join(", ")
        ),
    ))
}

/// An app's path candidates worked out once for one tree of the app, for
/// choosing the directory of cluster after cluster: a candidate without
/// variables names the same directory (or none) for every cluster, and one
/// whose fixed part (before its first variable) is not a directory names
/// none, unless a value climbs back out with `..`. [`DirPlan::select`]
/// gives what [`select_directory`] gives.
#[derive(Debug, Clone)]
pub struct DirPlan {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    /// No variables: the directory, if it is one.
    Fixed(Option<String>),
    /// Its fixed part is not a directory: nothing, for values without `..`.
    Missing(String),
    /// Expanded and looked up for each cluster.
    Expand(String),
}

impl DirPlan {
    /// `None`: a candidate climbs with `..`, leaves the repo or cannot be
    /// looked up; such an app's directory is chosen by [`select_directory`].
    pub fn new(src: &dyn FileSource, app: &App) -> Option<DirPlan> {
        let owned: Vec<&str> = app.spec.paths.iter().map(String::as_str).collect();
        let candidates: &[&str] = if owned.is_empty() {
            DEFAULT_PATHS
        } else {
            &owned
        };
        let mut steps = Vec::with_capacity(candidates.len());
        for template in candidates {
            if template.starts_with('/') || template.contains("..") {
                return None;
            }
            let step = match template.find("${") {
                None => {
                    let dir = join(&app.dir, template)?;
                    Step::Fixed(src.is_dir(&dir).ok()?.then_some(dir))
                }
                Some(start) => {
                    let fixed = template[..start].rsplit_once('/').map_or("", |(d, _)| d);
                    let dir = join(&app.dir, fixed)?;
                    if src.is_dir(&dir).ok()? {
                        Step::Expand(template.to_string())
                    } else {
                        Step::Missing(template.to_string())
                    }
                }
            };
            steps.push(step);
        }
        Some(DirPlan { steps })
    }

    /// The directory for `cluster`: [`select_directory`]'s answer.
    pub fn select(
        &self,
        src: &dyn FileSource,
        app: &App,
        cluster: &ClusterSpec,
    ) -> Result<String, RenderError> {
        for step in &self.steps {
            match step {
                Step::Fixed(Some(dir)) => return Ok(dir.clone()),
                Step::Fixed(None) => {}
                Step::Missing(template) => {
                    if climbs(template, cluster) {
                        return select_directory(src, app, cluster);
                    }
                }
                Step::Expand(template) => {
                    let Some(rel) = expand_path(template, cluster) else {
                        continue;
                    };
                    let Some(dir) = join(&app.dir, &rel) else {
                        return select_directory(src, app, cluster);
                    };
                    if src.is_dir(&dir).map_err(|e| err(app, &dir, e.reason))? {
                        return Ok(dir);
                    }
                }
            }
        }
        // None named a directory: the error names every path tried.
        select_directory(src, app, cluster)
    }
}

/// Whether `template` expands to a path with a `..` segment for `cluster`.
fn climbs(template: &str, cluster: &ClusterSpec) -> bool {
    expand_path(template, cluster).is_some_and(|p| p.split('/').any(|s| s == ".."))
}

/// Renders `dir` for `app`. Pure: the same tree gives the same resources.
pub fn render_dir(src: &dyn FileSource, app: &App, dir: &str) -> Result<AppRender, RenderError> {
    let recorder = crate::sops::Recorder::new(src);
    let src: &dyn FileSource = &recorder;
    let mut is_kustomize = false;
    for f in KUSTOMIZATION_FILES {
        if src
            .read(&format!("{dir}/{f}"))
            .map_err(|e| err(app, dir, e.reason))?
            .is_some()
        {
            is_kustomize = true;
        }
    }
    let docs: Vec<(String, Value)> = if is_kustomize {
        kustomize::build(src, dir)
            .map_err(|e| err(app, &e.file, e.reason))?
            .into_iter()
            .map(|v| (format!("{dir} (kustomize)"), v))
            .collect()
    } else {
        plain::collect(src, dir).map_err(|e| match e {
            plain::PlainError::Source(s) => err(app, &s.path, s.reason),
            plain::PlainError::Yaml(y) => {
                let (file, reason) = split_yaml_error(&y);
                err(app, &file, reason)
            }
        })?
    };

    finish(app, dir, docs, is_kustomize, Some(&recorder))
}

/// Turns the documents an app rendered to into its resources: lists
/// expanded, the app's namespace given, SOPS files placed, names checked,
/// duplicates refused.
fn finish(
    app: &App,
    dir: &str,
    docs: Vec<(String, Value)>,
    is_kustomize: bool,
    recorder: Option<&crate::sops::Recorder<'_>>,
) -> Result<AppRender, RenderError> {
    let mut objects = Vec::with_capacity(docs.len());
    for (file, doc) in docs {
        expand_list(file, doc, &mut objects);
    }
    // Kinds that a CRD in this render declares cluster-scoped.
    let mut crd_cluster_kinds: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, o) in &objects {
        if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && o.pointer("/spec/scope").and_then(Value::as_str) == Some("Cluster")
            && let (Some(g), Some(k)) = (
                o.pointer("/spec/group").and_then(Value::as_str),
                o.pointer("/spec/names/kind").and_then(Value::as_str),
            )
        {
            crd_cluster_kinds.insert((g.to_string(), k.to_string()));
        }
    }

    let mut sops_sources = None;
    let mut seen: HashMap<ResourceId, usize> = HashMap::new();
    let mut resources: Vec<Resource> = Vec::with_capacity(objects.len());
    for (file, mut obj) in objects {
        if let Some(ns) = &app.spec.namespace {
            default_namespace(&mut obj, ns, &crd_cluster_kinds);
        }
        let as_written = if let (true, Some(recorder)) = (crate::sops::is_sops(&obj), recorder) {
            sops_sources
                .get_or_insert_with(|| recorder.sources())
                .place(&mut obj, &file)
                .map_err(|e| err(app, &file, e))?
        } else {
            None
        };
        let r = match as_written {
            Some(text) => Resource::from_value_as_written(&obj, text),
            None => Resource::from_value(&obj),
        }
        .map_err(|e| err(app, &file, e.to_string()))?;
        crate::validate::names(&r.id.group, &r.id.kind, &obj)
            .map_err(|e| err(app, &file, e.to_string()))?;
        match seen.get(&r.id) {
            None => {
                seen.insert(r.id.clone(), resources.len());
                resources.push(r);
            }
            Some(&i) if resources[i].api_version != r.api_version => {
                // One cluster object written in two versions (a kind served
                // as v1 and v1beta1): kustomize keeps both, and applying them
                // leaves the one applied last, as `kubectl apply` and Argo CD
                // do: kustomize's output order puts the greater version last,
                // plain YAML keeps file order.
                let later = !is_kustomize
                    || version_of(&r.api_version) > version_of(&resources[i].api_version);
                if later {
                    resources[i] = r;
                }
            }
            Some(_) => {
                return Err(err(app, &file, format!("duplicate resource {}", r.id)));
            }
        }
    }
    Ok(AppRender {
        dir: dir.to_string(),
        resources: std::sync::Arc::new(resources),
    })
}

/// Selects and renders the app for a cluster: its chart when it has one,
/// else the first of its directories that exists.
pub fn render_app(
    src: &dyn FileSource,
    app: &App,
    cluster: &ClusterSpec,
) -> Result<AppRender, RenderError> {
    if let Some(dir) = chart_dir(src, app)? {
        return render_chart(src, app, cluster, &dir);
    }
    let dir = select_directory(src, app, cluster)?;
    render_dir(src, app, &dir)
}

/// The app's Helm chart directory: the app directory itself or `chart/`
/// in it, whichever holds a `Chart.yaml`.
pub fn chart_dir(src: &dyn FileSource, app: &App) -> Result<Option<String>, RenderError> {
    for dir in [app.dir.clone(), format!("{}/chart", app.dir)] {
        let found = src
            .read(&format!("{dir}/Chart.yaml"))
            .map_err(|e| err(app, &dir, e.reason))?;
        if found.is_some() {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// What a chart's render depends on besides the repo tree: the cluster
/// facts fleet passes to the chart (its name, labels, kube version, API
/// versions). Renders are memoized by it with the tree.
pub fn chart_inputs(cluster: &ClusterSpec) -> String {
    let mut s = format!("{}\n{:?}\n", cluster.name, cluster.kube_version);
    for (k, v) in &cluster.labels {
        s.push_str(&format!("{k}={v}\n"));
    }
    s.push_str(&cluster.api_versions.join(","));
    crate::digest::sha256(s.as_bytes())
}

/// The values layers of a chart app for a cluster: `values.yaml` of each
/// of its path candidates that has one, the most general first (with the
/// default paths: `base`, `overlays/<env>`, `clusters/<name>`), then
/// fleet's own: `global.fleet.clusterName` and `global.fleet.clusterLabels`.
fn chart_values(
    src: &dyn FileSource,
    app: &App,
    cluster: &ClusterSpec,
) -> Result<Vec<serde_json::Map<String, Value>>, RenderError> {
    let owned: Vec<&str> = app.spec.paths.iter().map(String::as_str).collect();
    let candidates: &[&str] = if owned.is_empty() {
        DEFAULT_PATHS
    } else {
        &owned
    };
    let mut layers = Vec::new();
    for template in candidates.iter().rev() {
        let Some(rel) = expand_path(template, cluster) else {
            continue;
        };
        let Some(dir) = join(&app.dir, &rel) else {
            return Err(err(
                app,
                &format!("{}/app.yaml", app.dir),
                format!("path {template:?} leaves the repo"),
            ));
        };
        let file = format!("{dir}/values.yaml");
        let Some(bytes) = src.read(&file).map_err(|e| err(app, &file, e.reason))? else {
            continue;
        };
        let docs = crate::yaml::parse_documents(&file, &bytes).map_err(|y| {
            let (f, reason) = split_yaml_error(&y);
            err(app, &f, reason)
        })?;
        match docs.into_iter().next() {
            None => {}
            Some(Value::Object(m)) => layers.push(m),
            Some(_) => return Err(err(app, &file, "values must be a map")),
        }
    }
    let labels: serde_json::Map<String, Value> = cluster
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    layers.push(
        serde_json::json!({"global": {"fleet": {"clusterName": cluster.name, "clusterLabels": labels}}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    Ok(layers)
}

/// Renders the app's Helm chart in `dir` for `cluster`, as `helm template`
/// does, with the app's namespace and release name. Hooks are kept as
/// objects with their annotations, except test hooks (`helm.sh/hook:
/// test`), which `helm test` runs and fleet does not apply.
pub fn render_chart(
    src: &dyn FileSource,
    app: &App,
    cluster: &ClusterSpec,
    dir: &str,
) -> Result<AppRender, RenderError> {
    let files: Vec<(String, std::rc::Rc<[u8]>)> = crate::source::read_tree(src, dir)
        .map_err(|e| err(app, &e.path, e.reason))?
        .into_iter()
        .map(|(n, d)| (n, std::rc::Rc::from(&d[..])))
        .collect();
    let layers = chart_values(src, app, cluster)?;
    let release = crate::helm::Release {
        name: app
            .spec
            .helm
            .release_name
            .clone()
            .unwrap_or_else(|| app.name.clone()),
        namespace: app
            .spec
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    };
    let caps = crate::helm::Capabilities {
        kube_version: cluster
            .kube_version
            .clone()
            .unwrap_or_else(|| crate::helm::DEFAULT_KUBE_VERSION.into()),
        api_versions: cluster.api_versions.clone(),
    };
    let opts = crate::helm::engine::EngineOptions {
        strict: false,
        random_seed: app
            .spec
            .helm
            .seeded_random
            .then(|| crate::helm::random_seed(&cluster.name, &release, &files)),
    };
    let rendered = crate::helm::template_with(&files, &layers, &release, &caps, &opts)
        .map_err(|e| err(app, &format!("{dir}/Chart.yaml"), e.message().to_string()))?;
    let mut docs = Vec::new();
    for (source, text) in &rendered.crds {
        let file = format!("{dir} (helm: {source})");
        let bytes = crate::helm::template::go_string_bytes(text).into_owned();
        let parsed = crate::yaml::parse_documents(&file, &bytes).map_err(|y| {
            let (f, reason) = split_yaml_error(&y);
            err(app, &f, reason)
        })?;
        docs.extend(parsed.into_iter().map(|d| (file.clone(), d)));
    }
    let is_test = |m: &crate::helm::manifests::Manifest| {
        m.hook
            .as_ref()
            .is_some_and(|e| e.iter().any(|x| x.starts_with("test")))
    };
    for m in rendered
        .manifests
        .into_iter()
        .chain(rendered.hooks.into_iter().filter(|h| !is_test(h)))
    {
        // Parsed once already, as Helm parses each document to sort it.
        if let Some(d) = m.doc {
            docs.push((format!("{dir} (helm: {})", m.source), d));
        }
    }
    finish(app, dir, docs, false, None)
}

fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}

fn split_yaml_error(e: &crate::yaml::YamlError) -> (String, String) {
    use crate::yaml::YamlError::*;
    match e {
        TooLarge { file, .. } | NotUtf8 { file } | Syntax { file, .. } => {
            let msg = e.to_string();
            let reason = msg
                .strip_prefix(&format!("{file}: "))
                .unwrap_or(&msg)
                .to_string();
            (file.clone(), reason)
        }
    }
}

fn expand_list(file: String, doc: Value, out: &mut Vec<(String, Value)>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = doc.get("items") {
            for item in items {
                out.push((file.clone(), item.clone()));
            }
        }
    } else {
        out.push((file, doc));
    }
}

fn default_namespace(obj: &mut Value, ns: &str, crd_cluster_kinds: &BTreeSet<(String, String)>) {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = crate::resource::group_of(api_version).to_string();
    let Some(kind) = obj.get("kind").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    if is_cluster_scoped(&group, &kind) || crd_cluster_kinds.contains(&(group, kind)) {
        return;
    }
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let has = meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fleet;
    use crate::source::MemTree;

    fn fleet() -> MemTree {
        MemTree::new()
            .with("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
            .with("clusters/prod-1.yaml", "name: prod-1\nlabels: {env: prod}\n")
            .with("clusters/edge.yaml", "name: edge\n")
            .with("apps/web/app.yaml", "namespace: web\n")
            .with(
                "apps/web/base/all.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
            )
            .with(
                "apps/web/overlays/prod/deploy.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: web-prod}\nspec: {replicas: 3}\n",
            )
    }

    fn chart_fleet() -> MemTree {
        MemTree::new()
            .with("clusters/prod-1.yaml", "name: prod-1\nlabels: {env: prod, region: eu}\nkubeVersion: \"1.29\"\n")
            .with("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
            .with("apps/cache/app.yaml", "namespace: cache\nhelm:\n  releaseName: c\n")
            .with("apps/cache/chart/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 1.0.0\n")
            .with("apps/cache/chart/values.yaml", "replicas: 1\nsize: small\ntier: base\n")
            .with(
                "apps/cache/chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  size: {{ .Values.size }}\n  tier: {{ .Values.tier }}\n  cluster: {{ .Values.global.fleet.clusterName }}\n  region: {{ .Values.global.fleet.clusterLabels.region | default \"none\" }}\n  kube: {{ .Capabilities.KubeVersion.Version }}\n",
            )
            .with(
                "apps/cache/chart/templates/tests/t.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\nspec: {containers: [{name: t, image: busybox}]}\n",
            )
            .with("apps/cache/base/values.yaml", "tier: app\n")
            .with("apps/cache/overlays/prod/values.yaml", "replicas: 3\nsize: large\n")
            .with("apps/cache/clusters/prod-1/values.yaml", "size: huge\n")
    }

    fn data(r: &AppRender) -> serde_json::Map<String, Value> {
        let cm = r
            .resources
            .iter()
            .find(|r| r.id.kind == "ConfigMap")
            .expect("a ConfigMap");
        let v = crate::yaml::parse_documents("cm", cm.manifest.as_bytes())
            .expect("yaml")
            .remove(0);
        v["data"].as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_chart_app_layers_values_from_base_env_and_cluster() {
        let t = chart_fleet();
        let f = Fleet::load(&t).unwrap();
        let app = &f.apps["cache"];
        let prod = render_app(&t, app, &f.clusters["prod-1"]).unwrap();
        assert_eq!(prod.dir, "apps/cache/chart");
        let d = data(&prod);
        assert_eq!(d["replicas"], "3");
        assert_eq!(d["size"], "huge");
        assert_eq!(d["tier"], "app");
        assert_eq!(d["cluster"], "prod-1");
        assert_eq!(d["region"], "eu");
        assert_eq!(d["kube"], "v1.29");
        // The release namespace goes to namespaced objects; test hooks are not applied.
        assert!(prod.resources.iter().all(|r| r.id.namespace == "cache"));
        assert!(!prod.resources.iter().any(|r| r.id.kind == "Pod"));
        let dev = data(&render_app(&t, app, &f.clusters["dev-1"]).unwrap());
        assert_eq!(
            (dev["replicas"].as_str(), dev["size"].as_str()),
            (Some("1"), Some("small"))
        );
        assert_eq!(
            (dev["cluster"].as_str(), dev["region"].as_str()),
            (Some("dev-1"), Some("none"))
        );
        assert_eq!(
            dev["kube"],
            format!("v{}", crate::helm::DEFAULT_KUBE_VERSION)
        );
    }

    #[test]
    fn a_failing_chart_names_the_chart_and_template() {
        let t = chart_fleet().with(
            "apps/cache/chart/templates/bad.yaml",
            "{{ required \"set size\" .Values.nope }}\n",
        );
        let f = Fleet::load(&t).unwrap();
        let e = render_app(&t, &f.apps["cache"], &f.clusters["dev-1"]).unwrap_err();
        assert_eq!(e.file, "apps/cache/chart/Chart.yaml");
        assert!(
            e.reason.contains("cache/templates/bad.yaml:1:3"),
            "{}",
            e.reason
        );
        assert!(e.reason.contains("set size"), "{}", e.reason);
    }

    #[test]
    fn random_functions_are_refused_unless_the_app_opts_in_then_seeded() {
        let tpl = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r\ndata:\n  pw: {{ randAlphaNum 16 }}\n  id: {{ uuidv4 }}\n  num: {{ randInt 10 20 | quote }}\n";
        let t = chart_fleet().with("apps/cache/chart/templates/r.yaml", tpl);
        let f = Fleet::load(&t).unwrap();
        let e = render_app(&t, &f.apps["cache"], &f.clusters["dev-1"]).unwrap_err();
        assert!(
            e.reason
                .contains("error calling randAlphaNum: fleet does not render randAlphaNum"),
            "{}",
            e.reason
        );
        assert!(e.reason.contains("helm.seededRandom"), "{}", e.reason);

        let t = t.with(
            "apps/cache/app.yaml",
            "namespace: cache\nhelm:\n  releaseName: c\n  seededRandom: true\n",
        );
        let f = Fleet::load(&t).unwrap();
        let get = |t: &MemTree, c: &str| {
            let f = Fleet::load(t).unwrap();
            let r = render_app(t, &f.apps["cache"], &f.clusters[c]).unwrap();
            let cm = r
                .resources
                .iter()
                .find(|r| r.id.name == "r")
                .expect("the ConfigMap")
                .clone();
            let v = crate::yaml::parse_documents("r", cm.manifest.as_bytes())
                .unwrap()
                .remove(0);
            v["data"].as_object().cloned().unwrap()
        };
        let a = get(&t, "dev-1");
        let pw = a["pw"].as_str().unwrap();
        assert_eq!(pw.len(), 16);
        assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()), "{pw}");
        let id = a["id"].as_str().unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        let n: i64 = a["num"].as_str().unwrap().parse().unwrap();
        assert!((10..20).contains(&n));
        // The same inputs give the same values; another cluster, others.
        assert_eq!(get(&t, "dev-1"), a);
        assert_ne!(get(&t, "prod-1")["pw"], a["pw"]);
        // A chart change reseeds.
        let t2 = t.with(
            "apps/cache/chart/values.yaml",
            "replicas: 1\nsize: small\ntier: base\nextra: 1\n",
        );
        assert_ne!(get(&t2, "dev-1")["pw"], a["pw"]);
        drop(f);
    }

    #[test]
    fn chart_inputs_differ_by_cluster() {
        let t = chart_fleet();
        let f = Fleet::load(&t).unwrap();
        assert_ne!(
            chart_inputs(&f.clusters["prod-1"]),
            chart_inputs(&f.clusters["dev-1"])
        );
        assert_eq!(
            chart_inputs(&f.clusters["dev-1"]),
            chart_inputs(&f.clusters["dev-1"])
        );
    }

    #[test]
    fn directory_choice_follows_the_path_candidates() {
        let t = fleet();
        let f = Fleet::load(&t).unwrap();
        let web = &f.apps["web"];
        assert_eq!(
            select_directory(&t, web, &f.clusters["prod-1"]).unwrap(),
            "apps/web/overlays/prod"
        );
        assert_eq!(
            select_directory(&t, web, &f.clusters["dev-1"]).unwrap(),
            "apps/web/base"
        );
        assert_eq!(
            select_directory(&t, web, &f.clusters["edge"]).unwrap(),
            "apps/web/base"
        );
    }

    #[test]
    fn namespaced_objects_get_the_app_namespace() {
        let t = fleet();
        let f = Fleet::load(&t).unwrap();
        let r = render_app(&t, &f.apps["web"], &f.clusters["dev-1"]).unwrap();
        let ids: Vec<String> = r.resources.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, vec!["Namespace/web", "Deployment.apps/web/web"]);
        let p = render_app(&t, &f.apps["web"], &f.clusters["prod-1"]).unwrap();
        assert_eq!(
            p.resources[0].id.to_string(),
            "Deployment.apps/web-prod/web"
        );
    }

    #[test]
    fn same_input_same_bytes() {
        let t = fleet();
        let f = Fleet::load(&t).unwrap();
        let a = render_app(&t, &f.apps["web"], &f.clusters["dev-1"]).unwrap();
        let b = render_app(&t, &f.apps["web"], &f.clusters["dev-1"]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_file() {
        let t = fleet()
            .with("apps/web/base/broken.yaml", "kind: [\n")
            .with("apps/api/app.yaml", "{}")
            .with("apps/api/base/dup.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
            .with("apps/bad/app.yaml", "{}")
            .with("apps/bad/base/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../etc}\n");
        let f = Fleet::load(&t).unwrap();
        let c = &f.clusters["dev-1"];
        let e = render_app(&t, &f.apps["web"], c).unwrap_err();
        assert_eq!(e.file, "apps/web/base/broken.yaml");
        let e = render_app(&t, &f.apps["api"], c).unwrap_err();
        assert!(e.reason.contains("duplicate resource ConfigMap/a"), "{e:?}");
        let e = render_app(&t, &f.apps["bad"], c).unwrap_err();
        assert!(e.reason.contains("not a valid name"), "{e:?}");
    }

    #[test]
    fn same_object_in_two_versions_is_not_a_duplicate() {
        let two = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 4}\n---\napiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 3}\n";
        let t = fleet()
            .with("apps/plain/app.yaml", "namespace: p\n")
            .with("apps/plain/base/hpa.yaml", two)
            .with("apps/kust/app.yaml", "namespace: k\n")
            .with("apps/kust/base/hpa.yaml", two)
            .with(
                "apps/kust/base/kustomization.yaml",
                "resources: [hpa.yaml]\n",
            );
        let f = Fleet::load(&t).unwrap();
        let c = &f.clusters["dev-1"];
        // Plain YAML: the later one, as `kubectl apply -f` leaves it.
        let p = render_app(&t, &f.apps["plain"], c).unwrap();
        assert_eq!(p.resources.len(), 1);
        assert_eq!(p.resources[0].api_version, "autoscaling/v1");
        // Kustomize: the greater version, which `kubectl apply -k` applies last.
        let k = render_app(&t, &f.apps["kust"], c).unwrap();
        assert_eq!(k.resources.len(), 1);
        assert_eq!(k.resources[0].api_version, "autoscaling/v2");
        assert!(k.resources[0].manifest.contains("maxReplicas: 4"));
    }

    #[test]
    fn plain_yaml_scalars_reach_the_cluster_as_the_api_server_reads_them() {
        let t = fleet()
            .with("apps/modes/app.yaml", "namespace: m\n")
            .with(
                "apps/modes/base/pod.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  enableServiceLinks: no\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0755}\n  terminationGracePeriodSeconds: 3e1\n",
            );
        let f = Fleet::load(&t).unwrap();
        let r = render_app(&t, &f.apps["modes"], &f.clusters["dev-1"]).unwrap();
        let m = &r.resources[0].manifest;
        assert!(m.contains("defaultMode: 493"), "{m}");
        assert!(m.contains("enableServiceLinks: false"), "{m}");
        assert!(m.contains("terminationGracePeriodSeconds: 30\n"), "{m}");
    }

    /// `DirPlan::select` against `select_directory` over candidate lists,
    /// trees and clusters made to catch every shortcut it takes: candidates
    /// under missing, present and file paths, values that are empty, `.`,
    /// `..` or hold slashes, and lists that name no directory at all.
    #[test]
    fn a_dir_plan_chooses_what_select_directory_chooses() {
        let tree = MemTree::new()
            .with("apps/web/app.yaml", "namespace: web\n")
            .with("apps/web/base/a.yaml", "x")
            .with("apps/web/overlays/prod/a.yaml", "x")
            .with("apps/web/clusters/edge/a.yaml", "x")
            .with("apps/web/clusters/x.y/a.yaml", "x")
            .with("apps/web/flat", "a file")
            .with("apps/web/deep/eu/x/a.yaml", "x")
            .with("apps/other/a.yaml", "x");
        let templates = [
            "clusters/${cluster}",
            "overlays/${labels.env}",
            "base",
            "missing/${labels.env}",
            "${labels.env}",
            "nope",
            "flat/${cluster}",
            "missing/.${cluster}",
            "missing/.${labels.env}.",
            "missing/.${labels.env}${labels.region}.",
            "missing/.${labels.env}./.${labels.env}./.${labels.env}./.${labels.env}.",
            "deep/${labels.region}/x",
            "missing/${labels.none}",
            "missing/${unknown}",
            "base/${cluster",
        ];
        let mut lists: Vec<Vec<String>> = vec![Vec::new()];
        for a in &templates {
            lists.push(vec![a.to_string()]);
            for b in &templates {
                lists.push(vec![a.to_string(), b.to_string()]);
                lists.push(vec![a.to_string(), b.to_string(), "base".into()]);
            }
        }
        let mut clusters = Vec::new();
        for name in ["edge", "x.y", "..", ".", "a/b", "../other", "c1"] {
            for env in [
                None,
                Some("prod"),
                Some("dev"),
                Some(""),
                Some(".."),
                Some("../.."),
            ] {
                for region in [None, Some("eu"), Some(".."), Some("")] {
                    let mut labels = std::collections::BTreeMap::new();
                    if let Some(e) = env {
                        labels.insert("env".to_string(), e.to_string());
                    }
                    if let Some(r) = region {
                        labels.insert("region".to_string(), r.to_string());
                    }
                    let c: ClusterSpec = serde_json::from_value(
                        serde_json::json!({ "name": name, "labels": labels }),
                    )
                    .unwrap();
                    clusters.push(c);
                }
            }
        }
        let mut compared = 0;
        for paths in lists {
            let app = App {
                name: "web".into(),
                dir: "apps/web".into(),
                spec: crate::model::AppSpec {
                    paths: paths.clone(),
                    ..Default::default()
                },
            };
            let Some(plan) = DirPlan::new(&tree, &app) else {
                continue;
            };
            for c in &clusters {
                assert_eq!(
                    plan.select(&tree, &app, c),
                    select_directory(&tree, &app, c),
                    "paths {paths:?}, cluster {c:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 30_000, "{compared}");
    }
}
