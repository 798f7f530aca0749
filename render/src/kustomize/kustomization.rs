//! The kustomization file: which fields fleet builds, which it refuses, and
//! the typed model of the supported ones. Unknown fields are errors, as in
//! kustomize; supported-by-kustomize-but-not-here fields are refused by name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::fieldspec::FieldSpec;
use super::resmap::Selector;

/// File names that make a directory a kustomization, in kustomize's order.
pub const FILE_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields kustomize supports that fleet refuses rather than build differently.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "helmChartInflationGenerator",
        "the legacy Helm plugin field is not supported; use helmCharts",
    ),
    ("crds", "custom CRD configurations are not supported"),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    /// Accepted and not checked, as in kustomize.
    #[serde(default)]
    #[allow(dead_code)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub bases: Vec<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name_prefix: String,
    #[serde(default)]
    pub name_suffix: String,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub image_tags: Vec<Image>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    #[serde(default)]
    pub patches: Vec<Patch>,
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    #[serde(default)]
    pub patches_json6902: Vec<Json6902>,
    #[serde(default)]
    pub config_map_generator: Vec<GeneratorArgs>,
    #[serde(default)]
    pub secret_generator: Vec<GeneratorArgs>,
    #[serde(default)]
    pub generator_options: Option<GeneratorOptions>,
    #[serde(default)]
    pub configurations: Vec<String>,
    #[serde(default)]
    pub replacements: Vec<super::replacements::Entry>,
    #[serde(default)]
    pub vars: Vec<super::vars::Var>,
    #[serde(default)]
    pub generators: Vec<String>,
    #[serde(default)]
    pub helm_charts: Vec<super::helmcharts::HelmChart>,
    #[serde(default)]
    pub helm_globals: Option<super::helmcharts::HelmGlobals>,
    #[serde(default)]
    pub transformers: Vec<String>,
    #[serde(default)]
    pub validators: Vec<String>,
    #[serde(default)]
    pub sort_options: Option<super::sort::SortOptions>,
    #[serde(default)]
    pub build_metadata: Vec<String>,
    /// `path` (a custom schema file) or `version` (a built-in one); other
    /// keys are ignored, as in kustomize.
    #[serde(default)]
    pub openapi: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Label {
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    #[serde(default)]
    pub include_selectors: bool,
    #[serde(default)]
    pub include_templates: bool,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub new_name: String,
    #[serde(default)]
    pub new_tag: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub tag_suffix: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    #[serde(default)]
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub patch: String,
    #[serde(default)]
    pub target: Option<Selector>,
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Json6902 {
    #[serde(default)]
    pub target: Option<Selector>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub patch: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeneratorArgs {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub behavior: String,
    #[serde(default)]
    pub literals: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
    /// Secrets only.
    #[serde(default, rename = "type")]
    pub type_: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeneratorOptions {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    #[serde(default)]
    pub immutable: bool,
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn drop_nulls(map: &mut serde_json::Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for v in map.values_mut() {
        match v {
            Value::Object(m) => drop_nulls(m),
            Value::Array(a) => {
                for e in a.iter_mut() {
                    if let Value::Object(m) = e {
                        drop_nulls(m);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Kustomization {
    /// Parses a kustomization document: refused fields first (by name), then
    /// the typed model with unknown fields rejected.
    pub fn from_value(v: Value) -> Result<Kustomization, String> {
        let Value::Object(map) = &v else {
            return Err("a kustomization must be a YAML mapping".into());
        };
        for (field, why) in REFUSED {
            if map.get(*field).is_some_and(|x| !is_empty(x)) {
                return Err(format!("field {field} is refused: {why}"));
            }
        }
        let mut map = map.clone();
        for (field, _) in REFUSED {
            map.remove(*field);
        }
        // kustomize reads the file through JSON into Go structs, where a
        // null (`components:` with every entry commented out) is no value.
        drop_nulls(&mut map);
        let mut k: Kustomization =
            serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
        // kustomize's FixKustomization: deprecated spellings of current fields.
        k.resources.append(&mut k.bases);
        k.images.append(&mut k.image_tags);
        for g in k
            .config_map_generator
            .iter_mut()
            .chain(k.secret_generator.iter_mut())
        {
            if !g.env.is_empty() {
                g.envs.push(std::mem::take(&mut g.env));
            }
        }
        Ok(k)
    }

    pub fn is_component(&self) -> bool {
        self.kind == "Component"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_present_but_null_are_empty() {
        // kubebuilder's config/default: every entry of these commented out.
        let v = crate::yaml::parse_documents(
            "kustomization.yaml",
            b"resources:\n- ../crd\npatches:\n#- path: p.yaml\ncomponents:\n#- ../c\nimages:\nconfigurations:\n#- k.yaml\nconfigMapGenerator:\n- name: x\n  literals:\n",
        )
        .unwrap();
        let k = Kustomization::from_value(v[0].clone()).unwrap();
        assert_eq!(k.resources, vec!["../crd"]);
        assert!(k.patches.is_empty() && k.components.is_empty() && k.images.is_empty());
        assert!(k.config_map_generator[0].literals.is_empty());
    }
}
