//! Helm charts, rendered natively as `helm template` (Helm 3.19) renders
//! them, with no `helm` binary and no I/O: [`template`] takes a chart's
//! files, the values layers and the release, and gives the manifests and
//! the text `helm template --include-crds` prints.
//!
//! Code map: [`chart`] loads a chart (and `.tgz` subcharts) from its
//! files, [`ignore`] is `.helmignore`, [`values`] prepares values
//! (coalescing, `global`, conditions, tags, aliases, `import-values`),
//! [`engine`] runs the templates with Helm's functions and [`sprig`]'s,
//! [`objects`] are `.Chart`, `.Capabilities` and `.Files`, [`manifests`]
//! splits, sorts and prints the output, [`schema`] checks `values.schema.json`. [`template`](mod@template) is Go's
//! `text/template`; [`yaml_v2`] and [`json`] write values as Go does
//! (`toYaml`, `toJson`); [`semver`] is Masterminds' semver.

pub mod chart;
pub mod engine;
pub mod ignore;
pub mod json;
pub mod manifests;
pub mod objects;
pub mod schema;
pub mod semver;
pub mod sprig;
pub mod template;
pub mod toml;
pub mod values;
pub mod yaml_v2;

use std::collections::BTreeMap;
use std::rc::Rc;

use chart::Chart;
use manifests::Manifest;
use objects::KubeVersion;
use template::Value;

/// Why a chart did not render. The messages are Helm's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HelmError {
    /// The chart could not be loaded (`Chart.yaml`, `values.yaml`, a subchart).
    #[error("{0}")]
    Load(String),
    /// Values could not be prepared.
    #[error("{0}")]
    Values(String),
    /// A template failed to parse or execute, or its output is not YAML.
    #[error("{0}")]
    Render(String),
}

impl HelmError {
    pub fn message(&self) -> &str {
        match self {
            HelmError::Load(m) | HelmError::Values(m) | HelmError::Render(m) => m,
        }
    }

    /// What `helm template` prints after `Error: ` (a render error gets
    /// its hint about `--debug`).
    pub fn helm_template_message(&self) -> String {
        match self {
            HelmError::Render(m) => format!("{m}\n\nUse --debug flag to render out invalid YAML"),
            e => e.message().to_string(),
        }
    }
}

/// The JSON kind Go's `encoding/json` names in its errors (`cannot
/// unmarshal array into ...`).
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Null => "null",
    }
}

/// The Go type (`%T`) of a value read from JSON into `interface{}`.
pub(crate) fn go_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "<nil>",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "float64",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "[]interface {}",
        serde_json::Value::Object(_) => "map[string]interface {}",
    }
}

/// The release a chart is rendered as (`helm template NAME --namespace NS`).
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

/// What the cluster offers, as `--kube-version` and `--api-versions` give it.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// `1.31.0`, `v1.31` ...
    pub kube_version: String,
    /// Added to Helm's default API versions.
    pub api_versions: Vec<String>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            kube_version: DEFAULT_KUBE_VERSION.into(),
            api_versions: Vec::new(),
        }
    }
}

/// The kube version a chart sees when the cluster names none: what
/// `helm template` of Helm 3.19 assumes without `--kube-version` (the
/// client-go it is built with, 0.34).
pub const DEFAULT_KUBE_VERSION: &str = "1.34.0";
/// What `.Capabilities.HelmVersion.Version` says.
pub const HELM_VERSION: &str = "v3.19.4";

/// A rendered chart.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// CRDs from `crds/` directories: (path as printed, text).
    pub crds: Vec<(String, String)>,
    pub manifests: Vec<Manifest>,
    pub hooks: Vec<Manifest>,
}

impl Rendered {
    /// What `helm template --include-crds` prints.
    pub fn text(&self) -> String {
        manifests::print(&self.crds, &self.manifests, &self.hooks)
    }
}

/// `helm template`: the chart in `files` (paths relative to the chart
/// directory), with the values `layers` applied in order as `-f` files.
pub fn template(
    files: &[(String, Rc<[u8]>)],
    layers: &[serde_json::Map<String, serde_json::Value>],
    release: &Release,
    caps: &Capabilities,
) -> Result<Rendered, HelmError> {
    template_with(
        files,
        layers,
        release,
        caps,
        &engine::EngineOptions::default(),
    )
}

/// The seed of a render whose app opted in to Sprig's random functions:
/// the cluster, the release and the chart's files (paths and bytes), so
/// that the values change only when one of them does.
pub fn random_seed(cluster: &str, release: &Release, files: &[(String, Rc<[u8]>)]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [cluster, release.name.as_str(), release.namespace.as_str()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut sorted: Vec<&(String, Rc<[u8]>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, data) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    h.finalize().into()
}

/// [`template`] with the engine's options (a seed for random functions).
pub fn template_with(
    files: &[(String, Rc<[u8]>)],
    layers: &[serde_json::Map<String, serde_json::Value>],
    release: &Release,
    caps: &Capabilities,
    opts: &engine::EngineOptions,
) -> Result<Rendered, HelmError> {
    validate_release_name(&release.name)?;
    let mut chart = Chart::load_dir(files)?;
    if !matches!(chart.metadata.chart_type.as_str(), "" | "application") {
        return Err(HelmError::Load(format!(
            "{} charts are not installable",
            chart.metadata.chart_type
        )));
    }
    let missing: Vec<&str> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|r| !chart.dependencies.iter().any(|d| d.name() == r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(HelmError::Load(format!(
            "An error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: {}",
            missing.join(", ")
        )));
    }
    let mut vals = serde_json::Map::new();
    for l in layers {
        values::merge_maps(&mut vals, l.clone());
    }
    values::process_dependencies(&mut chart, &vals)?;
    let kube = KubeVersion::parse(&caps.kube_version).map_err(|e| {
        HelmError::Values(format!("invalid kube version '{}': {e}", caps.kube_version))
    })?;
    if !chart.metadata.kube_version.is_empty() {
        let ok = semver::Constraints::parse(&chart.metadata.kube_version)
            .ok()
            .zip(semver::Version::parse(&kube.version).ok())
            .is_some_and(|(c, v)| c.check(&v));
        if !ok {
            return Err(HelmError::Render(format!(
                "chart requires kubeVersion: {} which is incompatible with Kubernetes {}",
                chart.metadata.kube_version, kube.version
            )));
        }
    }
    let coalesced = values::coalesce(&chart, &vals, false)?;
    schema::validate(&chart, &coalesced)?;
    let mut api_versions: Vec<String> =
        DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect();
    api_versions.extend(caps.api_versions.iter().cloned());
    let mut top = BTreeMap::new();
    top.insert(
        "Values".to_string(),
        Value::from_json(&serde_json::Value::Object(coalesced)),
    );
    top.insert(
        "Release".to_string(),
        Value::map(BTreeMap::from([
            ("Name".to_string(), Value::from(release.name.as_str())),
            (
                "Namespace".to_string(),
                Value::from(release.namespace.as_str()),
            ),
            ("IsUpgrade".to_string(), Value::Bool(false)),
            ("IsInstall".to_string(), Value::Bool(true)),
            ("Revision".to_string(), Value::Int(1)),
            ("Service".to_string(), Value::from("Helm")),
        ])),
    );
    top.insert(
        "Capabilities".to_string(),
        objects::capabilities(kube, api_versions, HELM_VERSION),
    );
    let mut files = engine::render(&chart, &top, opts)?;
    files.retain(|k, _| !k.ends_with("NOTES.txt"));
    let (hooks, manifests) = manifests::sort_manifests(&files)?;
    let crds = chart
        .crd_objects("")
        .into_iter()
        .map(|(n, d)| (n, String::from_utf8_lossy(&d).into_owned()))
        .collect();
    Ok(Rendered {
        crds,
        manifests,
        hooks,
    })
}

const RELEASE_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// `chartutil.ValidateReleaseName`: a DNS-1123 subdomain of at most 53 characters.
pub fn validate_release_name(name: &str) -> Result<(), HelmError> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(RELEASE_NAME_PATTERN).expect("release name regex")
    });
    if name.is_empty() || name.len() > 53 || !RE.is_match(name) {
        return Err(HelmError::Values(format!(
            "release name {name:?}: invalid release name, must match regex {RELEASE_NAME_PATTERN} and the length must not be longer than 53"
        )));
    }
    Ok(())
}

/// `chartutil.DefaultVersionSet`: the API versions client-go's scheme
/// knows (Helm 3.19 builds with client-go 0.34), in its order.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha1",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1alpha1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];
