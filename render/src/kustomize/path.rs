//! Dotted field paths as `vars` and `replacements` write them
//! (`spec.template.spec.containers.[name=app].image`,
//! `metadata.annotations.[cert-manager.io/inject-ca-from]`, `ports.0.port`,
//! `containers.*.image`), read and matched as kyaml's `PathGetter` and
//! `PathMatcher` do.

use serde_json::{Map, Value};

use super::regex::Regex;

type R<T> = Result<T, String>;

/// kyaml's `PathSplitter`: split on `delim`, honouring `\` escapes.
fn split_escaped(path: &str, delim: char) -> Vec<String> {
    let mut ps: Vec<&str> = path.split(delim).collect();
    if ps.len() > 1 && ps[0].is_empty() {
        ps.remove(0);
    }
    let mut out: Vec<String> = Vec::new();
    for p in ps {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push(delim);
                last.push_str(p);
            }
            _ => out.push(p.to_string()),
        }
    }
    out
}

/// kyaml's `SmarterPathSplitter`: bracketed parts survive the split; a
/// bracketed part without `=` is a plain map key.
pub fn split(path: &str) -> Vec<String> {
    let parts = split_escaped(path, '.');
    let mut out = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let elem = &parts[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut bracketed = vec![elem.clone()];
            while i < parts.len() - 1 {
                i += 1;
                bracketed.push(parts[i].clone());
                if parts[i].ends_with(']') {
                    break;
                }
            }
            let joined = bracketed.join(".");
            if joined.contains('=') {
                out.push(joined);
            } else {
                out.push(joined.trim_matches(|c| c == '[' || c == ']').to_string());
            }
        } else {
            out.push(elem.clone());
        }
        i += 1;
    }
    out
}

/// `containers[0]` -> `containers`, `0` (kyaml's `convertSliceIndex`).
fn convert_slice_index(parts: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for s in parts {
        if let Some(open) = s.rfind('[')
            && s.ends_with(']')
            && s.len() > open + 2
            && s[open + 1..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
        {
            if open > 0 {
                out.push(s[..open].to_string());
            }
            out.push(s[open + 1..s.len() - 1].to_string());
            continue;
        }
        out.push(s);
    }
    out
}

fn is_list_index(p: &str) -> bool {
    p.starts_with('[') && p.ends_with(']')
}

fn index_number(p: &str) -> Option<usize> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

fn split_name_value(p: &str) -> R<(String, String)> {
    let inner = p.strip_prefix('[').unwrap_or(p);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    match inner.split_once('=') {
        Some((n, v)) => Ok((n.to_string(), v.to_string())),
        None => Err(format!(
            "list path element {p:?} must contain fieldName=fieldValue for element to match"
        )),
    }
}

/// A scalar's text as YAML wrote it (the best fleet can do after parsing).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// kyaml's `Lookup` as `GetFieldValue` uses it: the first field the path
/// reaches (`[a=b]` matches exactly; `containers[0]` is accepted).
pub fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let parts = convert_slice_index(split(path));
    let mut cur = obj;
    for p in &parts {
        cur = if let Some(i) = index_number(p) {
            cur.as_array()?.get(i)?
        } else if p == "-" {
            cur.as_array()?.last()?
        } else if is_list_index(p) {
            let (name, value) = split_name_value(p).ok()?;
            cur.as_array()?.iter().find(|e| {
                if name.is_empty() {
                    scalar_text(e).is_some_and(|t| t == value)
                } else {
                    e.get(&name)
                        .and_then(scalar_text)
                        .is_some_and(|t| t == value)
                }
            })?
        } else {
            cur.as_object()?.get(p.as_str())?
        };
    }
    Some(cur)
}

/// What a missing leaf is created as (kyaml's `Create` kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scalar,
    Map,
    Seq,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Object(_) => Kind::Map,
        Value::Array(_) => Kind::Seq,
        _ => Kind::Scalar,
    }
}

pub fn value_kind(v: &Value) -> Kind {
    kind_of(v)
}

fn fresh(next: Option<&String>, create: Kind) -> Value {
    let kind = match next {
        Some(n) if is_list_index(n) || index_number(n).is_some() => Kind::Seq,
        Some(_) => Kind::Map,
        None => create,
    };
    match kind {
        Kind::Scalar => Value::Null,
        Kind::Map => Value::Object(Map::new()),
        Kind::Seq => Value::Array(Vec::new()),
    }
}

/// kyaml's `PathMatcher`: calls `f` on every field the path matches
/// (`[a=b]` as an unanchored regular expression, `*` every element),
/// creating missing parts when `create` is given. Returns how many fields
/// matched.
pub fn matching(
    node: &mut Value,
    path: &str,
    create: Option<Kind>,
    f: &mut dyn FnMut(&mut Value) -> R<()>,
) -> R<usize> {
    let parts: Vec<String> = split(path)
        .into_iter()
        .map(|p| p.trim().to_string())
        .collect();
    walk(node, &parts, create, f)
}

fn walk(
    node: &mut Value,
    path: &[String],
    create: Option<Kind>,
    f: &mut dyn FnMut(&mut Value) -> R<()>,
) -> R<usize> {
    let Some((head, rest)) = path.split_first() else {
        f(node)?;
        return Ok(1);
    };
    if let Some(idx) = index_number(head) {
        let Value::Array(items) = node else {
            return Err(format!("expected a sequence at {head:?}"));
        };
        if items.len() == idx
            && let Some(c) = create
        {
            items.push(fresh(rest.first(), c));
        }
        if items.len() < idx + 1 {
            return Err(format!(
                "index {idx} specified but only {} elements found",
                items.len()
            ));
        }
        return walk(&mut items[idx], rest, create, f);
    }
    if is_list_index(head) {
        let (name, pattern) = split_name_value(head)?;
        let re = Regex::new(&pattern).map_err(|e| format!("{head}: {e}"))?;
        let Value::Array(items) = node else {
            return Err(format!("expected a sequence at {head:?}"));
        };
        let mut n = 0;
        let mut any = false;
        for item in items.iter_mut() {
            let text = if name.is_empty() {
                scalar_text(item)
            } else {
                item.get(&name).and_then(scalar_text)
            };
            let Some(text) = text else { continue };
            if !re.is_match(text.trim()) {
                continue;
            }
            any = true;
            n += walk(item, rest, create, f)?;
        }
        if any || create.is_none() {
            return Ok(n);
        }
        let elem = if name.is_empty() {
            Value::String(pattern.clone())
        } else {
            let mut m = Map::new();
            m.insert(name.clone(), Value::String(pattern.clone()));
            Value::Object(m)
        };
        items.push(elem);
        return walk(node, path, create, f);
    }
    if head == "*" {
        let mut n = 0;
        match node {
            Value::Array(items) => {
                for item in items {
                    n += walk(item, rest, create, f)?;
                }
            }
            Value::Object(m) => {
                for v in m.values_mut() {
                    n += walk(v, rest, create, f)?;
                }
            }
            _ => return Err(format!("expected a sequence or mapping at {head:?}")),
        }
        return Ok(n);
    }
    let Value::Object(m) = node else {
        if create.is_some() && node.is_null() {
            *node = Value::Object(Map::new());
            return walk(node, path, create, f);
        }
        return Ok(0);
    };
    if !m.contains_key(head.as_str()) {
        let Some(c) = create else { return Ok(0) };
        m.insert(head.clone(), fresh(rest.first(), c));
    }
    walk(m.get_mut(head.as_str()).expect("present"), rest, create, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_keeps_brackets_and_escapes() {
        assert_eq!(
            split("spec.template.spec.containers.[name=com.foo.app].image"),
            vec![
                "spec",
                "template",
                "spec",
                "containers",
                "[name=com.foo.app]",
                "image"
            ]
        );
        assert_eq!(
            split("metadata.annotations.[cert-manager.io/inject-ca-from]"),
            vec!["metadata", "annotations", "cert-manager.io/inject-ca-from"]
        );
        assert_eq!(split(r"data.a\.b"), vec!["data", "a.b"]);
    }

    #[test]
    fn lookup_reads_indexes_and_matches() {
        let v = json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 9090}]}});
        assert_eq!(
            lookup(&v, "spec.ports.[name=grpc].port"),
            Some(&json!(9090))
        );
        assert_eq!(lookup(&v, "spec.ports[0].port"), Some(&json!(80)));
        assert_eq!(lookup(&v, "spec.ports.1.name"), Some(&json!("grpc")));
        assert_eq!(lookup(&v, "spec.missing"), None);
    }

    #[test]
    fn matcher_is_unanchored_and_creates() {
        let mut v = json!({"c": [{"name": "app"}, {"name": "app-sidecar"}, {"name": "x"}]});
        let n = matching(&mut v, "c.[name=app].image", Some(Kind::Scalar), &mut |x| {
            *x = json!("img");
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(v["c"][1]["image"], json!("img"));
        assert!(v["c"][2].get("image").is_none());
        let n = matching(&mut v, "c.[name=new].image", None, &mut |_| Ok(())).unwrap();
        assert_eq!(n, 0);
    }
}
