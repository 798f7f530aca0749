//! `vars`: named values read from a field of one object and substituted
//! wherever `$(NAME)` appears in the fields of kustomize's `varReference`
//! configuration (container commands, args and env values, annotations,
//! ... plus any `configurations` add). kustomize's `MergeVars` binds each
//! var to its object when the kustomization that declares it is built; the
//! values are read and substituted once, after hash suffixes and name
//! references (so a var naming a Service yields its final name).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::fieldspec::{self, Create, FieldSpec};
use super::path;
use super::resmap::{ResId, ResMap, group_version, is_cluster_scoped};

type R<T> = Result<T, String>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Var {
    pub name: String,
    #[serde(alias = "objRef")]
    pub objref: ObjRef,
    #[serde(default, alias = "fieldRef")]
    pub fieldref: FieldRef,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjRef {
    #[serde(default)]
    pub api_version: String,
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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldRef {
    /// Go's JSON decoding matches keys case-insensitively; kubebuilder's
    /// scaffolds write `fieldpath`.
    #[serde(default, alias = "fieldpath", alias = "FieldPath")]
    pub field_path: String,
}

impl Var {
    fn field_path(&self) -> &str {
        if self.fieldref.field_path.is_empty() {
            "metadata.name"
        } else {
            &self.fieldref.field_path
        }
    }

    /// kustomize's `Target.GVK`: `apiVersion`, when given, wins.
    fn group_version(&self) -> (String, String) {
        let o = &self.objref;
        if o.api_version.is_empty() {
            return (o.group.clone(), o.version.clone());
        }
        let (g, v) = group_version(&o.api_version);
        (g.to_string(), v.to_string())
    }

    fn describe(&self) -> String {
        let (g, v) = self.group_version();
        let o = &self.objref;
        let mut s = format!("{} (objref {}", self.name, o.kind);
        if !g.is_empty() || !v.is_empty() {
            s.push_str(&format!(
                " {}",
                if g.is_empty() { v } else { format!("{g}/{v}") }
            ));
        }
        if !o.namespace.is_empty() {
            s.push_str(&format!(" {}/{}", o.namespace, o.name));
        } else {
            s.push_str(&format!(" {}", o.name));
        }
        s.push_str(&format!(", fieldPath {})", self.field_path()));
        s
    }

    fn matches(&self, id: &ResId) -> bool {
        let (g, v) = self.group_version();
        let o = &self.objref;
        if id.group != g || id.version != v || id.kind != o.kind || id.name != o.name {
            return false;
        }
        let api = if g.is_empty() {
            v.clone()
        } else {
            format!("{g}/{v}")
        };
        if o.namespace.is_empty() && !is_cluster_scoped(&api, &o.kind) {
            return true;
        }
        ResId::of(&api, &o.kind, &o.name, &o.namespace).ns == id.ns
    }
}

/// kustomize's `MergeVars`: binds each var to the one object it names (by
/// current or previous id) and adds it to the accumulated vars.
pub fn merge(ra: &mut ResMap, incoming: &[Var]) -> R<()> {
    for v in incoming {
        let hits: Vec<usize> = ra
            .list
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.prev_ids()
                    .iter()
                    .chain(std::iter::once(&r.cur_id()))
                    .any(|id| v.matches(id))
            })
            .map(|(i, _)| i)
            .collect();
        if hits.len() > 1 {
            return Err(format!(
                "found {} objects for var {} (unable to disambiguate)",
                hits.len(),
                v.describe()
            ));
        }
        if let Some(&i) = hits.first() {
            ra.list[i].ref_vars.push(v.name.clone());
        }
    }
    add(&mut ra.vars, incoming)
}

/// Adds vars, refusing a name already declared.
pub fn add(into: &mut Vec<Var>, incoming: &[Var]) -> R<()> {
    for v in incoming {
        if into.iter().any(|x| x.name == v.name) {
            return Err(format!("var '{}' already encountered", v.name));
        }
        into.push(v.clone());
    }
    Ok(())
}

/// Reads every var's value and substitutes `$(NAME)` in the configured fields.
pub fn resolve(ra: &mut ResMap, specs: &[FieldSpec]) -> R<()> {
    if ra.vars.is_empty() {
        return Ok(());
    }
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut vars = ra.vars.clone();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    for v in &vars {
        let Some(r) = ra.list.iter().find(|r| r.ref_vars.contains(&v.name)) else {
            return Err(format!(
                "var {} cannot be mapped to a field in the set of known resources",
                v.describe()
            ));
        };
        let obj = Value::Object(r.obj.clone());
        let value = path::lookup(&obj, v.field_path()).ok_or_else(|| {
            format!(
                "field specified in var {} not found in {}",
                v.describe(),
                r.cur_id()
            )
        })?;
        values.insert(v.name.clone(), value.clone());
    }
    for r in &mut ra.list {
        let mut obj = Value::Object(std::mem::take(&mut r.obj));
        let mut res = Ok(());
        for fs in specs {
            if !obj.as_object().is_some_and(|o| fs.applies_to(o)) {
                continue;
            }
            res = fieldspec::apply(&mut obj, fs, Create::Never, &mut |node| set(node, &values));
            if res.is_err() {
                break;
            }
        }
        if let Value::Object(o) = obj {
            r.obj = o;
        }
        res.map_err(|e| format!("vars: {e} in {}", r.cur_id()))?;
    }
    Ok(())
}

fn set(node: &mut Value, values: &HashMap<String, Value>) -> R<()> {
    match node {
        Value::String(s) => {
            *node = expand(s, values);
            Ok(())
        }
        Value::Object(m) => {
            for v in m.values_mut() {
                if let Value::String(s) = v {
                    *v = expand(s, values);
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => *item = expand(s, values),
                    _ => return Err("invalid value type expect a string".into()),
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn primitive(v: &Value) -> Option<&Value> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(v),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// kustomize's `DoReplacements`: `$(NAME)` becomes the value (keeping its
/// type when it is the whole string), `$$` an escaped `$`; unknown names
/// stay as written.
pub fn expand(input: &str, values: &HashMap<String, Value>) -> Value {
    let b = input.as_bytes();
    let mut buf: Vec<u8> = Vec::with_capacity(b.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            buf.extend_from_slice(&b[checkpoint..cursor]);
            let rest = &b[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    buf.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&c| c == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]).into_owned();
                        let mapped = values.get(&name).and_then(primitive);
                        if input.len() == close + 2 && cursor == 0 {
                            return match mapped {
                                Some(v) => v.clone(),
                                None => Value::String(input.to_string()),
                            };
                        }
                        match mapped {
                            Some(v) => buf.extend_from_slice(text(v).as_bytes()),
                            None => {
                                buf.extend_from_slice(b"$(");
                                buf.extend_from_slice(name.as_bytes());
                                buf.push(b')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        buf.extend_from_slice(b"$(");
                        1
                    }
                },
                c => {
                    buf.push(b'$');
                    buf.push(c);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    buf.extend_from_slice(&b[checkpoint.min(b.len())..]);
    Value::String(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals() -> HashMap<String, Value> {
        HashMap::from([
            ("SVC".to_string(), json!("web-svc")),
            ("PORT".to_string(), json!(8080)),
        ])
    }

    #[test]
    fn expansion_follows_kustomize() {
        let v = vals();
        assert_eq!(expand("$(SVC)", &v), json!("web-svc"));
        assert_eq!(expand("$(PORT)", &v), json!(8080));
        assert_eq!(
            expand("http://$(SVC):$(PORT)/", &v),
            json!("http://web-svc:8080/")
        );
        assert_eq!(expand("$(UNKNOWN)", &v), json!("$(UNKNOWN)"));
        assert_eq!(expand("a $(UNKNOWN) b", &v), json!("a $(UNKNOWN) b"));
        assert_eq!(expand("$$(SVC)", &v), json!("$(SVC)"));
        assert_eq!(expand("$(SVC", &v), json!("$(SVC"));
        assert_eq!(expand("cost $5 $", &v), json!("cost $5 $"));
        assert_eq!(expand("é$(SVC)ü", &v), json!("éweb-svcü"));
    }
}
