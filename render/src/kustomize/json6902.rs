//! JSON patches (RFC 6902) with the semantics of the library kustomize uses
//! (evanphx/json-patch): `add`, `remove`, `replace`, `move`, `copy`, `test`.

use serde_json::Value;

type R<T> = Result<T, String>;

#[derive(Debug, Clone)]
pub struct Op {
    op: String,
    path: String,
    from: Option<String>,
    value: Option<Value>,
}

/// Reads a list of operations from a parsed patch document.
pub fn parse(doc: &Value) -> R<Vec<Op>> {
    let Value::Array(items) = doc else {
        return Err("a JSON patch must be a list of operations".into());
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(m) = item else {
                return Err("each JSON patch operation must be a mapping".into());
            };
            let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
            let op = s("op").ok_or("a JSON patch operation has no 'op'")?;
            let path =
                s("path").ok_or_else(|| format!("JSON patch operation {op} has no 'path'"))?;
            Ok(Op {
                from: s("from"),
                value: m.get("value").cloned(),
                op,
                path,
            })
        })
        .collect()
}

fn pointer(path: &str) -> R<Vec<String>> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {path:?}"));
    };
    Ok(rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn container<'a>(doc: &'a mut Value, parts: &[String], path: &str) -> R<&'a mut Value> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("path {path:?}: missing key {p:?}"))?,
            Value::Array(a) => {
                let i = index(p, a.len(), false, path)?;
                &mut a[i]
            }
            _ => return Err(format!("path {path:?}: {p:?} is not in a map or list")),
        };
    }
    Ok(cur)
}

fn index(p: &str, len: usize, allow_end: bool, path: &str) -> R<usize> {
    if allow_end && p == "-" {
        return Ok(len);
    }
    let i: usize = p
        .parse()
        .map_err(|_| format!("path {path:?}: {p:?} is not a list index"))?;
    if i > len || (!allow_end && i == len) {
        return Err(format!("path {path:?}: index {i} is out of range"));
    }
    Ok(i)
}

fn get(doc: &mut Value, path: &str) -> R<Value> {
    let parts = pointer(path)?;
    Ok(container(doc, &parts, path)?.clone())
}

fn add(doc: &mut Value, path: &str, value: Value) -> R<()> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match container(doc, parent, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = index(last, a.len(), true, path)?;
            a.insert(i, value);
        }
        _ => return Err(format!("path {path:?}: parent is not a map or list")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> R<Value> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match container(doc, parent, path)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("remove {path:?}: no such field")),
        Value::Array(a) => {
            let i = index(last, a.len(), false, path)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("path {path:?}: parent is not a map or list")),
    }
}

fn replace(doc: &mut Value, path: &str, value: Value) -> R<()> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match container(doc, parent, path)? {
        Value::Object(m) => match m.get_mut(last) {
            Some(slot) => *slot = value,
            None => return Err(format!("replace {path:?}: no such field")),
        },
        Value::Array(a) => {
            let i = index(last, a.len(), false, path)?;
            a[i] = value;
        }
        _ => return Err(format!("path {path:?}: parent is not a map or list")),
    }
    Ok(())
}

/// Applies the operations in order; the first failure aborts.
pub fn apply(doc: &mut Value, ops: &[Op]) -> R<()> {
    for op in ops {
        let need_value = || {
            op.value
                .clone()
                .ok_or_else(|| format!("{} {:?}: missing 'value'", op.op, op.path))
        };
        let need_from = || {
            op.from
                .clone()
                .ok_or_else(|| format!("{} {:?}: missing 'from'", op.op, op.path))
        };
        match op.op.as_str() {
            "add" => add(doc, &op.path, need_value()?)?,
            "remove" => {
                remove(doc, &op.path)?;
            }
            "replace" => replace(doc, &op.path, need_value()?)?,
            "move" => {
                let from = need_from()?;
                let v = remove(doc, &from)?;
                add(doc, &op.path, v)?;
            }
            "copy" => {
                let v = get(doc, &need_from()?)?;
                add(doc, &op.path, v)?;
            }
            "test" => {
                let want = need_value()?;
                let got = get(doc, &op.path)?;
                if got != want {
                    return Err(format!("test {:?}: value differs", op.path));
                }
            }
            other => return Err(format!("unexpected JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations() {
        let mut doc = json!({"a": [1, 2], "b": {"c": "x"}});
        let ops = parse(&json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "add", "path": "/a/0", "value": 0},
            {"op": "replace", "path": "/b/c", "value": "y"},
            {"op": "copy", "from": "/b/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/1"},
            {"op": "test", "path": "/e", "value": "y"},
            {"op": "add", "path": "/b/x~1y", "value": true}
        ]))
        .unwrap();
        apply(&mut doc, &ops).unwrap();
        assert_eq!(
            doc,
            json!({"a": [0, 2, 3], "b": {"c": "y", "x/y": true}, "e": "y"})
        );
    }

    #[test]
    fn failures() {
        let mut doc = json!({"a": 1});
        for op in [
            json!({"op": "replace", "path": "/b", "value": 1}),
            json!({"op": "remove", "path": "/b"}),
            json!({"op": "test", "path": "/a", "value": 2}),
            json!({"op": "add", "path": "/x/y", "value": 2}),
        ] {
            let ops = parse(&json!([op])).unwrap();
            assert!(apply(&mut doc, &ops).is_err(), "{op}");
        }
    }
}
