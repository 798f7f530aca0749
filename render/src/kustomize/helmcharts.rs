//! `helmCharts` (kustomize's HelmChartInflationGenerator, v5.5), rendered
//! with fleet's own Helm engine instead of a `helm` process. Local charts
//! only: the chart must be vendored at `<chartHome>/<name>` (or
//! `<chartHome>/<name>-<version>/<name>` when `repo` and `version` are
//! set), as kustomize finds it before it would pull; fleet pulls nothing.
//!
//! The values kustomize hands to `helm template -f` are rebuilt as it builds
//! them: `valuesFile` (default: the chart's `values.yaml`) as it is, or,
//! with `valuesInline`, both merged by `valuesMerge` (`override`: inline
//! wins; `merge`: the file wins; `replace`: inline alone) after reading the
//! file as YAML 1.2 (kustomize rewrites it); then `additionalValuesFiles`.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::helm;
use crate::source::{FileSource, join};
use crate::yaml::{self, Schema};

/// One `helmCharts` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmChart {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub release_name: String,
    #[serde(default)]
    pub name_template: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub additional_values_files: Vec<String>,
    #[serde(default)]
    pub values_file: String,
    #[serde(default)]
    pub values_inline: Option<Map<String, Value>>,
    #[serde(default)]
    pub values_merge: String,
    #[serde(default, rename = "includeCRDs")]
    pub include_crds: bool,
    #[serde(default)]
    pub skip_hooks: bool,
    #[serde(default)]
    pub skip_tests: bool,
    #[serde(default)]
    pub api_versions: Vec<String>,
    #[serde(default)]
    pub kube_version: String,
}

/// `helmGlobals`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmGlobals {
    #[serde(default)]
    pub chart_home: String,
    /// Only sets where helm keeps its configuration: no effect here.
    #[serde(default)]
    #[allow(dead_code)]
    pub config_home: String,
}

/// A values file as `helm template -f` reads it (`sigs.k8s.io/yaml`), or
/// as kustomize's rewrite leaves it (YAML 1.2) when it merged inline values.
fn values_map(file: &str, bytes: &[u8], schema: Schema) -> Result<Map<String, Value>, String> {
    let docs = yaml::parse_documents_as(schema, file, bytes).map_err(|e| e.to_string())?;
    match docs.into_iter().next() {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(format!("{file}: values must be a map")),
    }
}

/// kustomize's merge of inline values over (or under) the file's: maps
/// merge, anything else is replaced by the winner, a null in the winner
/// removes the key.
fn merge_over(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (_, Value::Null) => {
                base.remove(k);
            }
            (Some(Value::Object(b)), Value::Object(o)) => merge_over(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Helm's `--name-template`: a template over no data, with Sprig.
fn name_from_template(t: &str) -> Result<String, String> {
    let mut set = helm::template::Templates::new("name-template");
    helm::sprig::install(&mut set);
    set.parse("name-template", t).map_err(|e| e.to_string())?;
    set.execute("name-template", &helm::template::Value::Nil)
        .map_err(|e| e.to_string())
}

/// Renders one entry of the kustomization in `dir`: the documents
/// `helm template` would print, parsed as kustomize parses them.
pub fn inflate(
    src: &dyn FileSource,
    dir: &str,
    entry: &HelmChart,
    globals: Option<&HelmGlobals>,
    load: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Vec<yaml::Doc>, String> {
    let home = globals
        .map(|g| g.chart_home.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or("charts");
    let rel = if !entry.repo.is_empty() && !entry.version.is_empty() {
        format!("{home}/{}-{}/{}", entry.name, entry.version, entry.name)
    } else {
        format!("{home}/{}", entry.name)
    };
    let chart_dir =
        join(dir, &rel).ok_or_else(|| format!("chart {rel:?} leaves the repository"))?;
    if src
        .read(&format!("{chart_dir}/Chart.yaml"))
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!(
            "chart {:?} not found at '{chart_dir}': fleet renders only charts vendored in the repository{}",
            entry.name,
            if entry.repo.is_empty() {
                ""
            } else {
                " (it does not pull from repo)"
            }
        ));
    }
    let files: Vec<(String, Rc<[u8]>)> = crate::source::read_tree(src, &chart_dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(n, d)| (n, Rc::from(&d[..])))
        .collect();

    // The values file kustomize passes with -f.
    let values_file = if entry.values_file.is_empty() {
        format!("{rel}/values.yaml")
    } else {
        entry.values_file.clone()
    };
    let merge = if entry.values_merge.is_empty() {
        "override"
    } else {
        entry.values_merge.as_str()
    };
    let first = match (&entry.values_inline, merge) {
        (Some(inline), "replace") => inline.clone(),
        (Some(inline), "override" | "merge") => {
            let bytes = load(&values_file)?;
            let mut file = values_map(&values_file, &bytes, Schema::Kyaml)?;
            if merge == "override" {
                merge_over(&mut file, inline);
                file
            } else {
                let mut m = inline.clone();
                merge_over(&mut m, &file);
                m
            }
        }
        (Some(_), other) => {
            return Err(format!(
                "valuesMerge must be one of 'override', 'replace', or 'merge', got {other:?}"
            ));
        }
        (None, _) => {
            let bytes = load(&values_file)?;
            values_map(&values_file, &bytes, Schema::Kubernetes)?
        }
    };
    let mut layers = vec![first];
    for f in &entry.additional_values_files {
        let bytes = load(f)?;
        layers.push(values_map(f, &bytes, Schema::Kubernetes)?);
    }

    let release_name = match (entry.release_name.as_str(), entry.name_template.as_str()) {
        ("", "") => "release-name".to_string(),
        ("", t) => name_from_template(t)?,
        (name, "") => name.to_string(),
        _ => return Err("cannot set --name-template and also specify a name".into()),
    };
    let release = helm::Release {
        name: release_name,
        namespace: if entry.namespace.is_empty() {
            "default".into()
        } else {
            entry.namespace.clone()
        },
    };
    let caps = helm::Capabilities {
        kube_version: if entry.kube_version.is_empty() {
            helm::DEFAULT_KUBE_VERSION.into()
        } else {
            entry.kube_version.clone()
        },
        api_versions: entry
            .api_versions
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::to_string)
            .collect(),
    };
    let r =
        helm::template(&files, &layers, &release, &caps).map_err(|e| e.helm_template_message())?;
    let crds: Vec<(String, String)> = if entry.include_crds {
        r.crds.clone()
    } else {
        Vec::new()
    };
    let hooks: Vec<helm::manifests::Manifest> = if entry.skip_hooks {
        Vec::new()
    } else {
        r.hooks
            .iter()
            .filter(|h| {
                !(entry.skip_tests
                    && h.hook
                        .as_ref()
                        .is_some_and(|e| e.iter().any(|x| x.starts_with("test"))))
            })
            .cloned()
            .collect()
    };
    let text = helm::manifests::print(&crds, &r.manifests, &hooks);
    let file = format!("{chart_dir} (helm template)");
    let docs = yaml::parse_kyaml(&file, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.value.is_null()).collect())
}
