//! Values as Helm 3.19 prepares them (`pkg/chartutil`): the `-f` layers
//! merged, dependencies enabled or dropped by `condition` and `tags`,
//! aliases applied, `import-values` pulled up, and the user's values
//! coalesced over every chart's defaults with subchart scoping and
//! `global` copied down. Values are JSON (`null` is Go's nil).

use serde_json::{Map, Value};

use super::chart::Chart;
use super::semver;
use super::{HelmError, go_type};

pub const GLOBAL_KEY: &str = "global";

fn is_table(v: &Value) -> bool {
    v.is_object()
}

/// `values.MergeValues`' merge of `-f` files: later maps merge into
/// earlier ones, anything else replaces.
pub fn merge_maps(a: &mut Map<String, Value>, b: Map<String, Value>) {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(Value::Object(am)), Value::Object(bm)) => merge_maps(am, bm),
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
}

/// `chartutil.CoalesceValues` (`merge` false) or `MergeValues` (`merge`
/// true, nulls kept): `vals` over the chart's values and its subcharts'.
pub fn coalesce(
    chart: &Chart,
    vals: &Map<String, Value>,
    merge: bool,
) -> Result<Map<String, Value>, HelmError> {
    let mut dest = vals.clone();
    coalesce_into(chart, &mut dest, merge)?;
    Ok(dest)
}

fn coalesce_into(
    chart: &Chart,
    dest: &mut Map<String, Value>,
    merge: bool,
) -> Result<(), HelmError> {
    coalesce_values(chart, dest, merge);
    coalesce_deps(chart, dest, merge)
}

fn coalesce_deps(
    chart: &Chart,
    dest: &mut Map<String, Value>,
    merge: bool,
) -> Result<(), HelmError> {
    for sub in &chart.dependencies {
        let name = sub.name().to_string();
        match dest.get(&name) {
            None => {
                dest.insert(name.clone(), Value::Object(Map::new()));
            }
            Some(v) if !is_table(v) => {
                return Err(HelmError::Values(format!(
                    "type mismatch on {name}: %!t({}={})",
                    go_type(v),
                    go_print(v)
                )));
            }
            Some(_) => {}
        }
        let parent_globals = dest.get(GLOBAL_KEY).cloned();
        let Some(Value::Object(dv)) = dest.get_mut(&name) else {
            continue;
        };
        coalesce_globals(dv, parent_globals.as_ref());
        coalesce_into(sub, dv, merge)?;
    }
    Ok(())
}

fn go_print(v: &Value) -> String {
    super::template::sprint(&[super::template::Value::from_json(v)])
}

/// `coalesceGlobals`: the parent's `global` copied into the subchart's
/// `global`, the parent winning for scalars, tables merged.
fn coalesce_globals(dest: &mut Map<String, Value>, src_globals: Option<&Value>) {
    let mut dg = match dest.get(GLOBAL_KEY) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        // "skipping globals because destination global is not a table"
        Some(_) => return,
    };
    let sg = match src_globals {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return,
    };
    for (key, val) in sg {
        if let Value::Object(vm) = &val {
            let mut vv = vm.clone();
            match dg.get(&key) {
                None => {
                    dg.insert(key, Value::Object(vv));
                }
                Some(Value::Object(destv)) => {
                    coalesce_tables(&mut vv, destv, true);
                    dg.insert(key, Value::Object(vv));
                }
                // "cannot merge map onto non-map"
                Some(_) => {}
            }
        } else if dg.get(&key).is_some_and(is_table) {
            // "key is table. Skipping"
        } else {
            dg.insert(key, val);
        }
    }
    dest.insert(GLOBAL_KEY.into(), Value::Object(dg));
}

/// `coalesceValues`: the chart's own defaults under what `v` holds.
fn coalesce_values(chart: &Chart, v: &mut Map<String, Value>, merge: bool) {
    for (key, val) in &chart.values {
        match v.get_mut(key) {
            Some(value) => {
                if value.is_null() && !merge {
                    v.remove(key);
                } else if let Value::Object(dest) = value
                    && let Value::Object(src) = val
                {
                    let merge = merge || chart.dependencies.iter().any(|d| d.name() == key);
                    coalesce_tables(dest, src, merge);
                }
                // else: "skipped value: Not a table"
            }
            None => {
                v.insert(key.clone(), val.clone());
            }
        }
    }
}

/// `coalesceTablesFullKey`: `src` fills in what `dst` lacks; a null in
/// `dst` deletes the key unless merging.
pub fn coalesce_tables(dst: &mut Map<String, Value>, src: &Map<String, Value>, merge: bool) {
    for (key, val) in src {
        match dst.get_mut(key) {
            Some(dv) if !merge && dv.is_null() => {
                dst.remove(key);
            }
            None => {
                dst.insert(key.clone(), val.clone());
            }
            Some(dv) => {
                if let Value::Object(sv) = val
                    && let Value::Object(dm) = dv
                {
                    coalesce_tables(dm, sv, merge);
                }
                // else: "cannot overwrite table with non table"
                // else: dst wins (a table in dst ignores a non-table value)
            }
        }
    }
}

/// `Values.Table`: the table at a dotted path.
pub fn table<'a>(v: &'a Map<String, Value>, path: &str) -> Option<&'a Map<String, Value>> {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get(part) {
            Some(Value::Object(m)) => cur = m,
            _ => return None,
        }
    }
    Some(cur)
}

/// `Values.PathValue`: a non-table value at a dotted path.
fn path_value<'a>(v: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    let (table_path, key) = match path.rsplit_once('.') {
        Some((t, k)) => (Some(t), k),
        None => (None, path),
    };
    let t = match table_path {
        Some(tp) => table(v, tp)?,
        None => v,
    };
    t.get(key).filter(|x| !is_table(x))
}

/// `IsCompatibleRange`.
fn compatible(constraint: &str, version: &str) -> bool {
    let Ok(c) = semver::Constraints::parse(constraint) else {
        return false;
    };
    let Ok(v) = semver::Version::parse(version) else {
        return false;
    };
    c.check(&v)
}

/// `ProcessDependenciesWithMerge`: which subcharts render, under which
/// names, and the values they export to their parent.
pub fn process_dependencies(chart: &mut Chart, vals: &Map<String, Value>) -> Result<(), HelmError> {
    process_enabled(chart, vals, "")?;
    process_import_values(chart)
}

fn process_enabled(c: &mut Chart, v: &Map<String, Value>, path: &str) -> Result<(), HelmError> {
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let existing = std::mem::take(&mut c.dependencies);
    let mut deps: Vec<Chart> = Vec::new();
    for e in &existing {
        let claimed = c
            .metadata
            .dependencies
            .iter()
            .any(|r| e.name() == r.name && compatible(&r.version, &e.metadata.version));
        if !claimed {
            deps.push(e.clone());
        }
    }
    for req in &mut c.metadata.dependencies {
        if let Some(found) = existing
            .iter()
            .find(|e| e.name() == req.name && compatible(&req.version, &e.metadata.version))
        {
            let mut out = found.clone();
            if !req.alias.is_empty() {
                out.metadata.name = req.alias.clone();
            }
            deps.push(out);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.dependencies = deps;
    for r in &mut c.metadata.dependencies {
        r.enabled = true;
    }
    let cvals = coalesce(c, v, false)?;
    // Tags.
    if let Some(tags) = table(&cvals, "tags") {
        for r in &mut c.metadata.dependencies {
            let (mut has_true, mut has_false) = (false, false);
            for k in &r.tags {
                if let Some(Value::Bool(b)) = tags.get(k) {
                    if *b {
                        has_true = true;
                    } else {
                        has_false = true;
                    }
                }
            }
            r.enabled = has_true || !has_false;
        }
    }
    // Conditions: the first one that resolves to a bool decides.
    for r in &mut c.metadata.dependencies {
        for cond in r.condition.trim().split(',') {
            if cond.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(&cvals, &format!("{path}{cond}")) {
                r.enabled = *b;
                break;
            }
        }
    }
    let removed: Vec<String> = c
        .metadata
        .dependencies
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    c.dependencies
        .retain(|d| !removed.contains(&d.metadata.name));
    c.metadata
        .dependencies
        .retain(|r| !removed.contains(&r.name));
    for d in &mut c.dependencies {
        let sub = format!("{path}{}.", d.metadata.name);
        process_enabled(d, &cvals, &sub)?;
    }
    Ok(())
}

fn path_to_map(path: &str, data: Map<String, Value>) -> Map<String, Value> {
    if path == "." {
        return data;
    }
    let mut cur = data;
    for part in path.split('.').rev() {
        let mut m = Map::new();
        m.insert(part.to_string(), Value::Object(cur));
        cur = m;
    }
    cur
}

fn process_import_values(c: &mut Chart) -> Result<(), HelmError> {
    for d in &mut c.dependencies {
        process_import_values(d)?;
    }
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let cvals = coalesce(c, &Map::new(), true)?;
    let mut b = Map::new();
    for r in &mut c.metadata.dependencies {
        let mut out = Vec::new();
        for iv in &r.import_values {
            match iv {
                Value::Object(m) => {
                    let child = m
                        .get("child")
                        .map(go_print)
                        .unwrap_or_else(|| "<nil>".into());
                    let parent = m
                        .get("parent")
                        .map(go_print)
                        .unwrap_or_else(|| "<nil>".into());
                    let mut o = Map::new();
                    o.insert("child".into(), Value::String(child.clone()));
                    o.insert("parent".into(), Value::String(parent.clone()));
                    out.push(Value::Object(o));
                    if let Some(vv) = table(&cvals, &format!("{}.{child}", r.name)) {
                        let add = path_to_map(&parent, vv.clone());
                        coalesce_tables(&mut b, &add, true);
                    }
                }
                Value::String(s) => {
                    let child = format!("exports.{s}");
                    let mut o = Map::new();
                    o.insert("child".into(), Value::String(child.clone()));
                    o.insert("parent".into(), Value::String(".".into()));
                    out.push(Value::Object(o));
                    if let Some(vm) = table(&cvals, &format!("{}.{child}", r.name)) {
                        coalesce_tables(&mut b, &vm.clone(), true);
                    }
                }
                _ => {}
            }
        }
        r.import_values = out;
    }
    let mut merged = cvals;
    coalesce_tables(&mut merged, &b, true);
    c.values = merged;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn user_nulls_delete_defaults_and_tables_merge() {
        let mut dst = obj(json!({"a": null, "b": {"x": 1}}));
        coalesce_tables(
            &mut dst,
            &obj(json!({"a": 1, "b": {"x": 2, "y": 2}, "c": 3})),
            false,
        );
        assert_eq!(Value::Object(dst), json!({"b": {"x": 1, "y": 2}, "c": 3}));
    }

    #[test]
    fn file_layers_merge_maps_and_replace_lists() {
        let mut a = obj(json!({"m": {"x": 1, "l": [1, 2]}, "s": "a"}));
        merge_maps(&mut a, obj(json!({"m": {"y": 2, "l": [3]}, "s": null})));
        assert_eq!(
            Value::Object(a),
            json!({"m": {"x": 1, "y": 2, "l": [3]}, "s": null})
        );
    }

    #[test]
    fn path_values_skip_tables() {
        let v = obj(json!({"sub": {"enabled": false, "t": {}}}));
        assert_eq!(path_value(&v, "sub.enabled"), Some(&json!(false)));
        assert_eq!(path_value(&v, "sub.t"), None);
        assert_eq!(path_value(&v, "nope.enabled"), None);
    }
}
