//! Field specifications: "in objects of this GVK, the field at this path",
//! and kustomize's way of walking them (`api/filters/fieldspec`).

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::builtin_config as cfg;
use super::resmap::{Gvk, group_version};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

impl FieldSpec {
    pub fn new(path: &str, create: bool) -> FieldSpec {
        FieldSpec {
            group: String::new(),
            version: String::new(),
            kind: String::new(),
            path: path.into(),
            create,
        }
    }

    pub fn gvk(&self) -> Gvk {
        Gvk {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
        }
    }

    /// Whether the spec applies to an object (by its current apiVersion and kind).
    pub fn applies_to(&self, obj: &Map<String, Value>) -> bool {
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let (g, v) = group_version(api);
        self.gvk().selects(g, v, kind)
    }
}

/// One entry of the name-reference configuration: objects of kind `gvk` are
/// referred to from `referrers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBackRef {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(rename = "fieldSpecs")]
    pub referrers: Vec<FieldSpec>,
}

/// A transformer configuration (kustomize's `TransformerConfig`): the
/// built-in one, or it merged with a kustomization's `configurations`.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub var_reference: Vec<FieldSpec>,
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    crate::yaml::parse_one(name, text.as_bytes())
        .unwrap_or_else(|e| panic!("built-in kustomize config {name} is invalid: {e}"))
}

pub fn builtin() -> &'static Builtin {
    static B: OnceLock<Builtin> = OnceLock::new();
    B.get_or_init(|| Builtin {
        common_labels: parse("commonLabels", cfg::COMMON_LABELS),
        template_labels: parse("templateLabels", cfg::TEMPLATE_LABELS),
        common_annotations: parse("commonAnnotations", cfg::COMMON_ANNOTATIONS),
        namespace: parse("namespace", cfg::NAMESPACE),
        images: parse("images", cfg::IMAGES),
        replicas: parse("replicas", cfg::REPLICAS),
        name_reference: parse("nameReference", cfg::NAME_REFERENCE),
        var_reference: parse("varReference", cfg::VAR_REFERENCE),
    })
}

/// Splits a field path on `/`, honouring `\/` escapes (kyaml's `PathSplitter`).
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts[0].is_empty() {
        parts.remove(0);
    }
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(p);
            }
            _ => out.push(p.to_string()),
        }
    }
    out
}

/// What a missing final field is created as, when the spec says `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Never create (kustomize's `CreateKind` 0).
    Never,
    Map,
    Scalar,
}

pub type SetFn<'a> = dyn FnMut(&mut Value) -> Result<(), String> + 'a;

/// Applies `set` to every field the spec's path reaches in `obj`, creating
/// missing fields on the way when the spec says so. The caller checks the GVK.
pub fn apply(
    obj: &mut Value,
    fs: &FieldSpec,
    create: Create,
    set: &mut SetFn<'_>,
) -> Result<(), String> {
    let path = split_path(&fs.path);
    walk(obj, &path, fs.create, create, set)
        .map_err(|e| format!("considering field '{}': {e}", fs.path))
}

fn walk(
    node: &mut Value,
    path: &[String],
    fs_create: bool,
    create: Create,
    set: &mut SetFn<'_>,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return set(node);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                walk(item, path, fs_create, create, set)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let (name, is_seq) = match head.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (head.as_str(), false),
            };
            if name.is_empty() {
                return Err("cannot set or create an empty field name".into());
            }
            let creating = fs_create && create != Create::Never && !is_seq;
            if !map.contains_key(name) {
                if !creating {
                    return Ok(());
                }
                let fresh = if rest.is_empty() && create == Create::Scalar {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                };
                map.insert(name.to_string(), fresh);
            }
            let child = map.get_mut(name).expect("present");
            if child.is_null() && creating && !(rest.is_empty() && create == Create::Scalar) {
                *child = Value::Object(Map::new());
            }
            walk(child, rest, fs_create, create, set)
        }
        _ => Err("expected sequence or mapping node".into()),
    }
}

/// Sets `key: value` in a map node (kustomize's `SetEntry` on a mapping).
pub fn set_entry(node: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match node {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Null => {
            let mut m = Map::new();
            m.insert(key.to_string(), value);
            *node = Value::Object(m);
            Ok(())
        }
        _ => Err(format!("cannot set key {key:?}: the field is not a map")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_configs_parse() {
        let b = builtin();
        assert!(b.common_labels.len() > 20);
        assert!(b.name_reference.iter().any(|r| r.kind == "ConfigMap"));
    }

    #[test]
    fn paths_split_on_unescaped_slashes() {
        assert_eq!(
            split_path("metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret"),
            vec![
                "metadata",
                "annotations",
                "nginx.ingress.kubernetes.io/auth-secret"
            ]
        );
        assert_eq!(split_path("/a/b"), vec!["a", "b"]);
    }
}
