//! `replacements`: copy one field of one object into fields of others, as
//! kustomize's ReplacementTransformer does (it runs last among a
//! kustomization's built-in transformers). Entries are inline or `path:`
//! files holding one replacement or a list of them.

use serde::Deserialize;
use serde_json::Value;

use super::path::{self, Kind};
use super::resmap::{LabelSelector, ResId, ResMap, Resource};

type R<T> = Result<T, String>;

/// An object id to select by: every non-empty field must equal (exact,
/// not a regular expression; namespaces compare as effective namespaces).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdSelector {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub label_selector: String,
    #[serde(default)]
    pub annotation_selector: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Options {
    #[serde(default)]
    pub delimiter: String,
    #[serde(default)]
    pub index: i64,
    /// Accepted and ignored, as kustomize 5.5 ignores it.
    #[serde(default)]
    #[allow(dead_code)]
    pub encoding: String,
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub field_path: String,
    #[serde(default)]
    pub options: Option<Options>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    #[serde(default)]
    pub select: Option<IdSelector>,
    #[serde(default)]
    pub reject: Vec<IdSelector>,
    #[serde(default)]
    pub field_paths: Vec<String>,
    #[serde(default)]
    pub options: Option<Options>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub targets: Option<Vec<Target>>,
}

/// One entry of `replacements:`: inline, or a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub targets: Option<Vec<Target>>,
}

/// Resolves `replacements:` entries, loading `path:` files with `load`.
pub fn resolve_entries(
    entries: &[Entry],
    load: &dyn Fn(&str) -> R<Vec<u8>>,
) -> R<Vec<Replacement>> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.path.is_empty() {
            out.push(Replacement {
                source: e.source.clone(),
                targets: e.targets.clone(),
            });
            continue;
        }
        if e.source.is_some() || e.targets.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(format!(
                "[{i}]: cannot specify both path and inline replacement"
            ));
        }
        let bytes = load(&e.path).map_err(|m| format!("[{i}]: {m}"))?;
        let docs =
            crate::yaml::parse_documents(&e.path, &bytes).map_err(|m| format!("[{i}]: {m}"))?;
        let doc = docs.into_iter().next().unwrap_or(Value::Null);
        let parsed = match doc {
            Value::Array(_) => serde_json::from_value::<Vec<Replacement>>(doc),
            Value::Object(_) => serde_json::from_value::<Replacement>(doc).map(|r| vec![r]),
            _ => {
                return Err(format!(
                    "[{i}]: {}: a replacement file must hold a replacement or a list of them",
                    e.path
                ));
            }
        };
        out.extend(parsed.map_err(|m| format!("[{i}]: {}: {m}", e.path))?);
    }
    Ok(out)
}

fn ids(r: &Resource) -> Vec<ResId> {
    let mut v = vec![r.cur_id()];
    v.extend(r.prev_ids());
    v
}

/// kustomize's `ResId.IsSelectedBy`.
fn id_selected(id: &ResId, group: &str, version: &str, kind: &str, name: &str, ns: &str) -> bool {
    if !name.is_empty() && name != id.name {
        return false;
    }
    if !ns.is_empty() {
        let api = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        if ResId::of(&api, kind, name, ns).ns != id.ns {
            return false;
        }
    }
    (group.is_empty() || group == id.group)
        && (version.is_empty() || version == id.version)
        && (kind.is_empty() || kind == id.kind)
}

impl IdSelector {
    fn has_id(&self) -> bool {
        !(self.group.is_empty()
            && self.version.is_empty()
            && self.kind.is_empty()
            && self.name.is_empty()
            && self.namespace.is_empty())
    }

    fn selects_id(&self, id: &ResId) -> bool {
        id_selected(
            id,
            &self.group,
            &self.version,
            &self.kind,
            &self.name,
            &self.namespace,
        )
    }

    fn matches_meta(&self, r: &Resource) -> R<bool> {
        let a = LabelSelector::parse(&self.annotation_selector)?;
        let l = LabelSelector::parse(&self.label_selector)?;
        Ok(a.matches(&r.string_map("annotations")) && l.matches(&r.string_map("labels")))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::resmap::write_fields(
            f,
            &[
                ("group", &self.group),
                ("version", &self.version),
                ("kind", &self.kind),
                ("name", &self.name),
                ("namespace", &self.namespace),
            ],
        )
    }
}

/// Runs the replacements over `ra`, in order.
pub fn apply(ra: &mut ResMap, list: &[Replacement]) -> R<()> {
    for (i, r) in list.iter().enumerate() {
        let at = |m: String| format!("[{i}]: {m}");
        let (Some(source), Some(targets)) = (&r.source, &r.targets) else {
            return Err(at(
                "replacements must specify a source and at least one target".into(),
            ));
        };
        let value = source_value(ra, source).map_err(at)?;
        for t in targets {
            apply_target(ra, &value, t).map_err(at)?;
        }
    }
    Ok(())
}

fn source_value(ra: &ResMap, s: &Source) -> R<Value> {
    let mut hit: Option<&Resource> = None;
    for r in &ra.list {
        let selected = ids(r)
            .iter()
            .any(|id| id_selected(id, &s.group, &s.version, &s.kind, &s.name, &s.namespace));
        if selected {
            if hit.is_some() {
                return Err(format!("multiple matches for source selector {s}"));
            }
            hit = Some(r);
        }
    }
    let r = hit.ok_or_else(|| format!("nothing selected by source selector {s}"))?;
    let fp = if s.field_path.is_empty() {
        "metadata.name"
    } else {
        &s.field_path
    };
    let obj = Value::Object(r.obj.clone());
    let v = path::lookup(&obj, fp)
        .filter(|v| !is_nil_or_empty(v))
        .ok_or_else(|| {
            format!(
                "fieldPath `{fp}` is missing for replacement source {}",
                r.cur_id()
            )
        })?
        .clone();
    match &s.options {
        Some(o) if !o.delimiter.is_empty() => {
            let text = match &v {
                Value::Object(_) | Value::Array(_) => {
                    return Err("delimiter option can only be used with scalar nodes".into());
                }
                other => path::scalar_text(other).unwrap_or_default(),
            };
            let parts: Vec<&str> = text.split(o.delimiter.as_str()).collect();
            if o.index < 0 || o.index as usize >= parts.len() {
                return Err(format!(
                    "options.index {} is out of bounds for value {text}",
                    o.index
                ));
            }
            Ok(retype(&v, parts[o.index as usize]))
        }
        _ => Ok(v),
    }
}

fn is_nil_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A scalar of `like`'s YAML type holding `text` (kyaml keeps a node's tag
/// when only its value changes).
fn retype(like: &Value, text: &str) -> Value {
    match like {
        Value::Number(_) => {
            if let Ok(i) = text.parse::<i64>() {
                return Value::from(i);
            }
            if let Ok(f) = text.parse::<f64>()
                && let Some(n) = serde_json::Number::from_f64(f)
            {
                return Value::Number(n);
            }
            Value::String(text.into())
        }
        Value::Bool(_) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        _ => Value::String(text.into()),
    }
}

fn apply_target(ra: &mut ResMap, value: &Value, t: &Target) -> R<()> {
    let select = t
        .select
        .as_ref()
        .ok_or("target must specify resources to select")?;
    let default_paths = vec!["metadata.name".to_string()];
    let paths = if t.field_paths.is_empty() {
        &default_paths
    } else {
        &t.field_paths
    };
    for r in &mut ra.list {
        if !select.matches_meta(r)? {
            continue;
        }
        let mut rejected = false;
        for rej in &t.reject {
            if (!rej.annotation_selector.is_empty() || !rej.label_selector.is_empty())
                && rej.matches_meta(r)?
            {
                rejected = true;
            }
        }
        if rejected {
            continue;
        }
        let rids = ids(r);
        if !rids.iter().any(|id| select.selects_id(id)) {
            continue;
        }
        if t.reject
            .iter()
            .any(|rej| rej.has_id() && rids.iter().any(|id| rej.selects_id(id)))
        {
            continue;
        }
        let id = r.cur_id();
        let mut obj = Value::Object(std::mem::take(&mut r.obj));
        let res = copy_to(&mut obj, value, paths, t.options.as_ref());
        if let Value::Object(o) = obj {
            r.obj = o;
        }
        res.map_err(|m| format!("{m} (target {id})"))?;
    }
    Ok(())
}

fn copy_to(obj: &mut Value, value: &Value, paths: &[String], opts: Option<&Options>) -> R<()> {
    let create = opts.filter(|o| o.create).map(|_| path::value_kind(value));
    for fp in paths {
        let mut set = |field: &mut Value| set_field(field, value, opts);
        let n = path::matching(obj, fp, create, &mut set)
            .map_err(|m| format!("{}: {m}", retrieval_error(fp, create.is_some())))?;
        if n == 0 {
            return Err(retrieval_error(fp, create.is_some()));
        }
    }
    Ok(())
}

fn retrieval_error(fp: &str, create: bool) -> String {
    if create {
        format!("unable to find or create field {fp:?} in replacement target")
    } else {
        format!("unable to find field {fp:?} in replacement target")
    }
}

fn set_field(target: &mut Value, value: &Value, opts: Option<&Options>) -> R<()> {
    let mut value = value.clone();
    if let Some(o) = opts.filter(|o| !o.delimiter.is_empty()) {
        let cur = match &*target {
            Value::Object(_) | Value::Array(_) => {
                return Err("delimiter option can only be used with scalar nodes".into());
            }
            other => path::scalar_text(other).unwrap_or_default(),
        };
        let mut tv: Vec<String> = cur.split(o.delimiter.as_str()).map(String::from).collect();
        let v = path::scalar_text(&value).unwrap_or_default();
        if o.index < 0 {
            tv.insert(0, v);
        } else if o.index as usize >= tv.len() {
            tv.push(v);
        } else {
            tv[o.index as usize] = v;
        }
        value = retype(&value, &tv.join(&o.delimiter));
    }
    match (&*target, &value) {
        // A scalar keeps its type and takes the value's text.
        (Value::String(_) | Value::Number(_) | Value::Bool(_), v)
            if path::value_kind(v) == Kind::Scalar =>
        {
            let text = path::scalar_text(v).unwrap_or_default();
            *target = retype(target, &text);
        }
        _ => *target = value,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_keep_the_target_type() {
        let mut t = json!("80");
        set_field(&mut t, &json!(8080), None).unwrap();
        assert_eq!(t, json!("8080"));
        let mut t = json!(80);
        set_field(&mut t, &json!("8080"), None).unwrap();
        assert_eq!(t, json!(8080));
        let mut t = json!({"a": 1});
        set_field(&mut t, &json!(["x"]), None).unwrap();
        assert_eq!(t, json!(["x"]));
    }

    #[test]
    fn delimiter_replaces_prefixes_and_appends() {
        let o = |index| Options {
            delimiter: ".".into(),
            index,
            ..Options::default()
        };
        for (index, want) in [
            (0, "new.svc.local"),
            (-1, "new.old.svc.local"),
            (9, "old.svc.local.new"),
        ] {
            let mut t = json!("old.svc.local");
            set_field(&mut t, &json!("new"), Some(&o(index))).unwrap();
            assert_eq!(t, json!(want), "index {index}");
        }
    }
}
