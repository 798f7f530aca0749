//! A chart as Helm's loader builds it from a directory's files: metadata
//! from `Chart.yaml`, default values, templates, other files (what
//! `.Files` sees, `crds/` among them), and subcharts from `charts/`
//! (directories or `.tgz` archives). `.helmignore` applies as Helm applies
//! it. Pure: it is handed the files, it reads no disk.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::rc::Rc;

use serde::Deserialize;

use super::ignore::Rules;
use super::{HelmError, json_kind};

/// `chart.Metadata`, from `Chart.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Metadata {
    pub name: String,
    pub home: String,
    pub sources: Vec<String>,
    pub version: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub maintainers: Vec<Maintainer>,
    pub icon: String,
    pub api_version: String,
    pub condition: String,
    pub tags: String,
    pub app_version: String,
    pub deprecated: bool,
    pub annotations: BTreeMap<String, String>,
    pub kube_version: String,
    pub dependencies: Vec<Dependency>,
    #[serde(rename = "type")]
    pub chart_type: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Maintainer {
    pub name: String,
    pub email: String,
    pub url: String,
}

/// `chart.Dependency`, an entry of `dependencies:` in `Chart.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    #[serde(rename = "import-values")]
    pub import_values: Vec<serde_json::Value>,
    pub alias: String,
}

/// A chart file: its path inside the chart and its bytes.
#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub data: Rc<[u8]>,
}

/// A loaded chart with its subcharts.
#[derive(Debug, Clone)]
pub struct Chart {
    pub metadata: Metadata,
    /// `values.yaml`, as a JSON object (Helm reads it as JSON would).
    pub values: serde_json::Map<String, serde_json::Value>,
    pub schema: Option<Rc<[u8]>>,
    pub templates: Vec<File>,
    /// Everything that is not a template, `Chart.yaml`, `values.yaml`,
    /// the schema or a subchart: `.Files`, `crds/` among them.
    pub files: Vec<File>,
    pub dependencies: Vec<Chart>,
}

/// Largest file the loader takes, as Helm's `MaxDecompressedFileSize`.
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;
/// Largest decompressed `.tgz` subchart, as Helm's `MaxDecompressedChartSize`.
pub const MAX_CHART_BYTES: usize = 100 * 1024 * 1024;

impl Chart {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `LoadDir`: the files of a chart directory (paths relative to it,
    /// `/`-separated), `.helmignore` applied.
    pub fn load_dir(files: &[(String, Rc<[u8]>)]) -> Result<Chart, HelmError> {
        let rules = match files.iter().find(|(n, _)| n == ".helmignore") {
            Some((_, data)) => Rules::parse(&String::from_utf8_lossy(data)),
            None => Rules::default(),
        }
        .with_defaults();
        let mut kept = Vec::new();
        for (name, data) in files {
            if rules.ignores(name) {
                continue;
            }
            if data.len() > MAX_FILE_BYTES {
                let base = name.rsplit('/').next().unwrap_or(name);
                return Err(HelmError::Load(format!(
                    "chart file \"{base}\" is larger than the maximum file size {MAX_FILE_BYTES}"
                )));
            }
            let data: Rc<[u8]> = match data.strip_prefix(b"\xef\xbb\xbf") {
                Some(d) => d.into(),
                None => data.clone(),
            };
            kept.push(File {
                name: name.clone(),
                data,
            });
        }
        Chart::load_files(kept)
    }

    /// `LoadFiles`: sorts a chart's files into their parts.
    pub fn load_files(files: Vec<File>) -> Result<Chart, HelmError> {
        let mut metadata: Option<Metadata> = None;
        for f in &files {
            if f.name == "Chart.yaml" {
                let mut md: Metadata = parse_yaml(&f.data)
                    .map_err(|e| HelmError::Load(format!("cannot load Chart.yaml: {e}")))?;
                if md.api_version.is_empty() {
                    md.api_version = "v1".into();
                }
                metadata = Some(md);
            }
        }
        let mut values = serde_json::Map::new();
        let mut schema = None;
        let mut templates = Vec::new();
        let mut other = Vec::new();
        let mut subcharts: BTreeMap<String, Vec<File>> = BTreeMap::new();
        for f in files {
            match f.name.as_str() {
                "Chart.yaml" => {}
                "Chart.lock" | "requirements.lock" => {}
                "values.yaml" => {
                    values = match parse_yaml::<Option<serde_json::Value>>(&f.data) {
                        Ok(None | Some(serde_json::Value::Null)) => serde_json::Map::new(),
                        Ok(Some(serde_json::Value::Object(m))) => m,
                        Ok(Some(v)) => {
                            return Err(HelmError::Load(format!(
                                "cannot load values.yaml: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                                json_kind(&v)
                            )));
                        }
                        Err(e) => {
                            return Err(HelmError::Load(format!("cannot load values.yaml: {e}")));
                        }
                    };
                }
                "values.schema.json" => schema = Some(f.data.clone()),
                "requirements.yaml" => {
                    #[derive(Deserialize, Default)]
                    #[serde(default)]
                    struct Req {
                        dependencies: Vec<Dependency>,
                    }
                    let req: Req = parse_yaml(&f.data).map_err(|e| {
                        HelmError::Load(format!("cannot load requirements.yaml: {e}"))
                    })?;
                    let md = metadata.get_or_insert_with(Metadata::default);
                    md.dependencies = req.dependencies;
                    if md.api_version == "v1" {
                        other.push(f);
                    }
                }
                n if n.starts_with("templates/") => templates.push(f),
                n if n.starts_with("charts/") => {
                    if n.ends_with(".prov") {
                        other.push(f);
                        continue;
                    }
                    let rest = &n["charts/".len()..];
                    let cname = rest.split('/').next().unwrap_or(rest).to_string();
                    subcharts.entry(cname).or_default().push(File {
                        name: rest.to_string(),
                        data: f.data,
                    });
                }
                _ => other.push(f),
            }
        }
        let Some(mut metadata) = metadata else {
            return Err(HelmError::Load("Chart.yaml file is missing".into()));
        };
        validate(&mut metadata)?;
        let name = metadata.name.clone();
        let mut dependencies = Vec::new();
        // Helm walks a Go map here (random order); fleet walks names in order.
        for (n, files) in subcharts {
            if n.starts_with(['_', '.']) {
                continue;
            }
            let sc = if n.ends_with(".tgz") {
                let file = &files[0];
                if file.name != n {
                    return Err(HelmError::Load(format!(
                        "error unpacking subchart tar in {name}: expected {n}, got {}",
                        file.name
                    )));
                }
                load_archive(&file.data)
            } else {
                let inner: Vec<File> = files
                    .into_iter()
                    .filter_map(|f| {
                        let (_, rest) = f.name.split_once('/')?;
                        Some(File {
                            name: rest.to_string(),
                            data: f.data,
                        })
                    })
                    .collect();
                Chart::load_files(inner)
            };
            let sc = sc.map_err(|e| {
                HelmError::Load(format!(
                    "error unpacking subchart {n} in {name}: {}",
                    e.message()
                ))
            })?;
            dependencies.push(sc);
        }
        Ok(Chart {
            metadata,
            values,
            schema,
            templates,
            files: other,
            dependencies,
        })
    }

    /// The chart's CRD files (`crds/*.yaml|yml|json`) and its subcharts',
    /// with the path `helm template` prints for each.
    pub fn crd_objects(&self, prefix: &str) -> Vec<(String, Rc<[u8]>)> {
        let full = if prefix.is_empty() {
            self.name().to_string()
        } else {
            format!("{prefix}/charts/{}", self.name())
        };
        let mut out = Vec::new();
        for f in &self.files {
            if f.name.starts_with("crds/") && has_manifest_extension(&f.name) {
                out.push((format!("{full}/{}", f.name), f.data.clone()));
            }
        }
        for d in &self.dependencies {
            out.extend(d.crd_objects(&full));
        }
        out
    }
}

fn has_manifest_extension(name: &str) -> bool {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let base = name.rsplit('/').next().unwrap_or(name);
    base.contains('.') && matches!(ext.as_str(), "yaml" | "yml" | "json")
}

/// Reads YAML as `sigs.k8s.io/yaml` does into a Go struct: through JSON.
fn parse_yaml<T: serde::de::DeserializeOwned + Default>(data: &[u8]) -> Result<T, String> {
    let docs = crate::yaml::parse_documents("", data).map_err(|e| {
        let msg = e.to_string();
        format!(
            "error converting YAML to JSON: {}",
            msg.trim_start_matches(": ")
        )
    })?;
    match docs.into_iter().next() {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| format!("error unmarshaling JSON: while decoding JSON: json: {e}")),
    }
}

/// `Metadata.Validate`.
fn validate(md: &mut Metadata) -> Result<(), HelmError> {
    for s in [
        &mut md.name,
        &mut md.description,
        &mut md.home,
        &mut md.icon,
        &mut md.condition,
        &mut md.tags,
        &mut md.app_version,
        &mut md.kube_version,
    ] {
        *s = sanitize(s);
    }
    let err = |m: String| Err(HelmError::Load(format!("validation: {m}")));
    if md.api_version.is_empty() {
        return err("chart.metadata.apiVersion is required".into());
    }
    if md.name.is_empty() {
        return err("chart.metadata.name is required".into());
    }
    if md.name.contains('/') || md.name == "." || md.name == ".." {
        return err(format!("chart.metadata.name {:?} is invalid", md.name));
    }
    if md.version.is_empty() {
        return err("chart.metadata.version is required".into());
    }
    if super::semver::Version::parse(&md.version).is_err() {
        return err(format!(
            "chart.metadata.version {:?} is invalid",
            md.version
        ));
    }
    if !matches!(md.chart_type.as_str(), "" | "application" | "library") {
        return err("chart.metadata.type must be application or library".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &md.dependencies {
        if d.name.is_empty() {
            return err("dependencies must have a name".into());
        }
        let key = if d.alias.is_empty() {
            &d.name
        } else {
            &d.alias
        };
        if !seen.insert(key.clone()) {
            return err(format!(
                "more than one dependency with name or alias {key:?}"
            ));
        }
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some(' ')
            } else if c.is_control() {
                None
            } else {
                Some(c)
            }
        })
        .collect()
}

/// `LoadArchive`: a gzipped tar of one top folder holding the chart.
pub fn load_archive(data: &[u8]) -> Result<Chart, HelmError> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut archive = tar::Archive::new(gz.take(MAX_CHART_BYTES as u64 + 1));
    let mut files = Vec::new();
    let mut total = 0usize;
    let entries = archive
        .entries()
        .map_err(|e| HelmError::Load(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| HelmError::Load(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| HelmError::Load(e.to_string()))?
            .to_string_lossy()
            .replace('\\', "/");
        if !kind.is_file() {
            if path.ends_with("pax_global_header") || kind.is_pax_global_extensions() {
                continue;
            }
            return Err(HelmError::Load(format!(
                "cannot load irregular file {path} as it has file mode type bits set"
            )));
        }
        // Drop the top folder, as Helm does.
        let Some((_, rest)) = path.split_once('/') else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let mut buf = Vec::new();
        entry
            .by_ref()
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| HelmError::Load(e.to_string()))?;
        if buf.len() > MAX_FILE_BYTES {
            return Err(HelmError::Load(format!(
                "decompressed chart file {rest:?} is larger than the maximum file size {MAX_FILE_BYTES}"
            )));
        }
        total += buf.len();
        if total > MAX_CHART_BYTES {
            return Err(HelmError::Load(format!(
                "decompressed chart is larger than the maximum size {MAX_CHART_BYTES}"
            )));
        }
        let data: Rc<[u8]> = match buf.strip_prefix(b"\xef\xbb\xbf") {
            Some(d) => d.into(),
            None => buf.into(),
        };
        files.push(File {
            name: rest.to_string(),
            data,
        });
    }
    if files.is_empty() {
        return Err(HelmError::Load("no files in chart archive".into()));
    }
    // An archive's .helmignore is not applied by Helm's LoadArchive.
    Chart::load_files(files)
}
