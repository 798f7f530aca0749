//! The built-in transformers a kustomization configures: namespace, name
//! prefix and suffix, labels, annotations, replicas and images.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldspec::{self, Create, FieldSpec};
use super::kustomization::{Image, Replica};
use super::regex::Regex;
use super::resmap::{Gvk, ResMap};

type R<T> = Result<T, String>;

/// `namespace:` — kustomize's NamespaceTransformer with the built-in specs.
pub fn namespace(m: &mut ResMap, ns: &str, specs: &[FieldSpec]) -> R<()> {
    for i in 0..m.list.len() {
        let r = &mut m.list[i];
        if r.obj.is_empty() {
            continue;
        }
        r.store_previous_id();
        if !r.is_cluster_scoped() {
            r.set_namespace(ns);
        }
        let kind = r.kind().to_string();
        let api = r.api_version().to_string();
        if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
            // Only subjects named "default" move with the namespace.
            if let Some(Value::Array(subjects)) = r.obj.get_mut("subjects") {
                for s in subjects {
                    if let Value::Object(sm) = s
                        && sm.get("name").and_then(Value::as_str) == Some("default")
                    {
                        sm.insert("namespace".into(), Value::String(ns.into()));
                    }
                }
            }
        }
        let mut obj = Value::Object(std::mem::take(&mut r.obj));
        for fs in specs {
            if fs.path == "metadata/namespace" || (fs.path == "metadata/name" && api != "v1") {
                continue;
            }
            if (kind == "RoleBinding" || kind == "ClusterRoleBinding")
                && fs.kind == kind
                && fs.path == "subjects/namespace"
            {
                continue;
            }
            let Value::Object(o) = &obj else { break };
            if !fs.applies_to(o) {
                continue;
            }
            fieldspec::apply(&mut obj, fs, Create::Scalar, &mut |v| {
                *v = Value::String(ns.into());
                Ok(())
            })?;
        }
        let Value::Object(o) = obj else {
            unreachable!("objects stay maps")
        };
        r.obj = o;
        let id = m.list[i].cur_id();
        if m.list.iter().filter(|x| x.cur_id() == id).count() != 1 {
            return Err(format!(
                "namespace transformation produces ID conflict: {id}"
            ));
        }
    }
    Ok(())
}

fn skip_rename(m: &ResMap, i: usize) -> bool {
    let id = m.list[i].org_id();
    id.kind == "CustomResourceDefinition"
        || id.kind == "Namespace"
        || (id.kind == "APIService" && id.group == "apiregistration.k8s.io")
}

/// `namePrefix:` and `nameSuffix:`; each records the previous id so that
/// references can follow the rename.
pub fn prefix(m: &mut ResMap, prefix: &str) {
    for i in 0..m.list.len() {
        if skip_rename(m, i) {
            continue;
        }
        let r = &mut m.list[i];
        r.prefixes.push(prefix.into());
        r.store_previous_id();
        if r.obj.get("metadata").and_then(|x| x.get("name")).is_some() {
            let name = format!("{prefix}{}", r.name());
            r.set_name(&name);
        }
    }
}

pub fn suffix(m: &mut ResMap, suffix: &str) {
    for i in 0..m.list.len() {
        if skip_rename(m, i) {
            continue;
        }
        let r = &mut m.list[i];
        r.suffixes.push(suffix.into());
        r.store_previous_id();
        if r.obj.get("metadata").and_then(|x| x.get("name")).is_some() {
            let name = format!("{}{suffix}", r.name());
            r.set_name(&name);
        }
    }
}

/// Sets every pair in the maps the specs point at (labels and annotations).
pub fn set_pairs(m: &mut ResMap, pairs: &BTreeMap<String, String>, specs: &[FieldSpec]) -> R<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    for r in &mut m.list {
        let mut obj = Value::Object(std::mem::take(&mut r.obj));
        let mut result = Ok(());
        for fs in specs {
            let applies = obj.as_object().is_some_and(|o| fs.applies_to(o));
            if !applies {
                continue;
            }
            result = fieldspec::apply(&mut obj, fs, Create::Map, &mut |node| {
                for (k, v) in pairs {
                    fieldspec::set_entry(node, k, Value::String(v.clone()))?;
                }
                Ok(())
            });
            if result.is_err() {
                break;
            }
        }
        if let Value::Object(o) = obj {
            r.obj = o;
        }
        result.map_err(|e| format!("{e} in {}", m_id(&r.obj)))?;
    }
    Ok(())
}

fn m_id(obj: &Map<String, Value>) -> String {
    format!(
        "{} {}",
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
        obj.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// `replicas:` — sets `spec/replicas` of the named workloads.
pub fn replicas(m: &mut ResMap, reps: &[Replica], specs: &[FieldSpec]) -> R<()> {
    for rep in reps {
        let mut found = false;
        for fs in specs {
            let gvk = fs.gvk();
            for r in &mut m.list {
                let ids = r.prev_ids().into_iter().chain(std::iter::once(r.cur_id()));
                let hit = ids
                    .into_iter()
                    .any(|id| id.name == rep.name && id.selected_by(&gvk));
                if !hit {
                    continue;
                }
                found = true;
                let mut obj = Value::Object(std::mem::take(&mut r.obj));
                let applies = obj.as_object().is_some_and(|o| fs.applies_to(o));
                let res = if applies {
                    fieldspec::apply(&mut obj, fs, Create::Scalar, &mut |v| {
                        *v = Value::from(rep.count);
                        Ok(())
                    })
                } else {
                    Ok(())
                };
                if let Value::Object(o) = obj {
                    r.obj = o;
                }
                res?;
            }
        }
        if !found {
            let gvks: Vec<String> = specs.iter().map(|f| gvk_string(&f.gvk())).collect();
            return Err(format!(
                "resource with name {} does not match a config with the following GVK [{}]",
                rep.name,
                gvks.join(" ")
            ));
        }
    }
    Ok(())
}

fn gvk_string(g: &Gvk) -> String {
    format!("{}_{}_{}", g.group, g.version, g.kind).replace("__", "_~_")
}

/// kustomize's `image.Split`: name, tag and digest of an image reference.
fn split_image(image: &str) -> (String, String, String) {
    let (search, offset) = match image.find('/') {
        Some(i) if i > 0 => (&image[i..], i),
        _ => (image, 0),
    };
    let id = search.find('@');
    let ic = search.find(':');
    match (id, ic) {
        (None, None) => (image.into(), String::new(), String::new()),
        (Some(d), c) if c.is_none_or(|c| d < c) => {
            let d = d + offset;
            (image[..d].into(), String::new(), image[d + 1..].into())
        }
        (Some(d), Some(c)) => {
            let (d, c) = (d + offset, c + offset);
            (
                image[..c].into(),
                image[c + 1..d].into(),
                image[d + 1..].into(),
            )
        }
        (None, Some(c)) => {
            let c = c + offset;
            (image[..c].into(), image[c + 1..].into(), String::new())
        }
        (Some(_), None) => unreachable!("covered above"),
    }
}

struct ImageRule<'a> {
    img: &'a Image,
    pattern: Regex,
}

impl ImageRule<'_> {
    fn update(&self, v: &mut Value) -> R<()> {
        let cur = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => return Err("an image field must be a scalar".into()),
        };
        if !self.pattern.is_match(&cur) {
            return Ok(());
        }
        let (mut name, mut tag, mut digest) = split_image(&cur);
        let i = self.img;
        if !i.new_name.is_empty() {
            name = i.new_name.clone();
        }
        if !i.new_tag.is_empty() && !i.digest.is_empty() {
            tag = i.new_tag.clone();
            digest = i.digest.clone();
        } else if !i.new_tag.is_empty() {
            tag = i.new_tag.clone();
            digest.clear();
        } else if !i.digest.is_empty() {
            tag.clear();
            digest = i.digest.clone();
        } else if !i.tag_suffix.is_empty() {
            tag.push_str(&i.tag_suffix);
            digest.clear();
        }
        if !tag.is_empty() {
            name = format!("{name}:{tag}");
        }
        if !digest.is_empty() {
            name = format!("{name}@{digest}");
        }
        *v = Value::String(name);
        Ok(())
    }
}

/// kustomize's legacy image walk: every `containers` or `initContainers`
/// list anywhere in the object.
fn legacy_walk(node: &mut Value, rule: &ImageRule<'_>) -> R<()> {
    match node {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                legacy_walk(v, rule)?;
                if (k == "containers" || k == "initContainers")
                    && let Value::Array(items) = v
                {
                    for item in items {
                        if let Some(img) = item.as_object_mut().and_then(|c| c.get_mut("image")) {
                            rule.update(img)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| legacy_walk(i, rule)),
        _ => Ok(()),
    }
}

/// `images:` — new names, tags and digests for matching container images.
pub fn images(m: &mut ResMap, images: &[Image], specs: &[FieldSpec]) -> R<()> {
    for img in images {
        let pattern = Regex::new(&format!(
            "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
            img.name
        ))
        .map_err(|e| format!("image name {:?}: {e}", img.name))?;
        let rule = ImageRule { img, pattern };
        for r in &mut m.list {
            if r.kind() == "CustomResourceDefinition" {
                continue;
            }
            let mut obj = Value::Object(std::mem::take(&mut r.obj));
            let mut res = legacy_walk(&mut obj, &rule);
            if res.is_ok() {
                for fs in specs {
                    let applies = obj.as_object().is_some_and(|o| fs.applies_to(o));
                    if applies {
                        res =
                            fieldspec::apply(&mut obj, fs, Create::Never, &mut |v| rule.update(v));
                        if res.is_err() {
                            break;
                        }
                    }
                }
            }
            if let Value::Object(o) = obj {
                r.obj = o;
            }
            res?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_split() {
        let s = |x: &str| {
            let (a, b, c) = split_image(x);
            (a, b, c)
        };
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(s("nginx:1.2"), ("nginx".into(), "1.2".into(), "".into()));
        assert_eq!(
            s("reg:5000/app:v1@sha256:ab"),
            ("reg:5000/app".into(), "v1".into(), "sha256:ab".into())
        );
        assert_eq!(
            s("app@sha256:ab"),
            ("app".into(), "".into(), "sha256:ab".into())
        );
    }
}
