//! Strategic merge patches, as kustomize applies them (kyaml's `merge2`
//! walker with `ListIncreaseDirection: Prepend`).
//!
//! Maps merge field by field; `null` deletes a field. Lists whose schema
//! says `x-kubernetes-patch-strategy: merge` merge element-wise by their
//! merge keys (elements only in the patch come first, in patch order, then
//! the rest of the original list); every other list is replaced. Directives:
//! `$patch: delete | replace | merge` on maps and as a list element.

use serde_json::{Map, Value};

use super::schema::{Comments, Sch, Schemas};
use crate::yaml::{FieldComment, Seg};

type R<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

const DIRECTIVE: &str = "$patch";

/// kyaml's merge walks the whole object it patches and drops every field
/// written with an empty value (`key:`, not `key: null`) on the way: in maps,
/// and in the elements of lists it merges by key (other lists it keeps as
/// they are). `paths` are those fields as read; returns the ones it kept.
#[cfg(test)]
pub fn drop_empty_nulls(
    dest: &mut Value,
    paths: Vec<Vec<Seg>>,
    schemas: &Schemas,
) -> Vec<Vec<Seg>> {
    let cx = Cx {
        ss: schemas,
        cs: None,
    };
    drop_nulls(dest, paths, cx)
}

fn drop_nulls(dest: &mut Value, paths: Vec<Vec<Seg>>, cx: Cx<'_>) -> Vec<Vec<Seg>> {
    let mut kept = Vec::new();
    for path in paths {
        if !drop_one(dest, &path, cx) {
            kept.push(path);
        }
    }
    kept
}

fn drop_one(dest: &mut Value, path: &[Seg], cx: Cx<'_>) -> bool {
    let Some((Seg::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut cur = dest;
    let mut sch = Sch::NONE;
    for seg in parents {
        if sch.is_none() {
            sch = infer(Some(&*cur), None, cx.ss);
        }
        match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => {
                sch = cx
                    .comment_schema(m.get(COMMENTS), None, k)
                    .unwrap_or_else(|| sch.field(k));
                match m.get_mut(k) {
                    Some(v) => cur = v,
                    None => return false,
                }
            }
            (Seg::Index(i), Value::Array(a)) => {
                if sch.merge_keys().is_none() {
                    return false;
                }
                sch = sch.elements();
                match a.get_mut(*i) {
                    Some(v) => cur = v,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    match cur {
        Value::Object(m) if m.get(last).is_some_and(Value::is_null) => {
            m.remove(last);
            true
        }
        _ => false,
    }
}

/// Merges `patch` into the object `dest` with the merge keys `schemas`
/// gives. `None` means the patch deleted it.
#[cfg(test)]
pub fn merge(dest: Value, patch: &Value, schemas: &Schemas) -> R<Option<Value>> {
    merge_commented(dest, patch, schemas, &[], &mut Vec::new()).map(|(v, _)| v)
}

/// [`merge`] of an object with the schema comments of its fields
/// (`comments`, as read) and of a patch that carries its own ([`embed`]),
/// returning the comments of the result. The fields `empty_nulls` names are
/// dropped first ([`drop_empty_nulls`]); it keeps the ones that stay. As in kyaml, a field's comment
/// schema comes first from the object patched, then from the patch, and
/// takes the place of the field's schema; a field keeps the comments of the
/// object patched, or those of the patch where the patch adds it.
pub fn merge_commented(
    mut dest: Value,
    patch: &Value,
    schemas: &Schemas,
    comments: &[FieldComment],
    empty_nulls: &mut Vec<Vec<Seg>>,
) -> R<(Option<Value>, Vec<FieldComment>)> {
    embed(&mut dest, comments);
    let mut texts: Vec<&str> = comments
        .iter()
        .flat_map(|fc| &fc.texts)
        .map(String::as_str)
        .collect();
    comment_texts(patch, &mut texts);
    if texts.is_empty() {
        let cx = Cx {
            ss: schemas,
            cs: None,
        };
        *empty_nulls = drop_nulls(&mut dest, std::mem::take(empty_nulls), cx);
        return Ok((walk(cx, Some(dest), Some(patch), Sch::NONE)?, Vec::new()));
    }
    let mut cs = Comments::new(schemas);
    for t in texts {
        cs.add(t)?;
    }
    let cx = Cx {
        ss: schemas,
        cs: Some(&cs),
    };
    *empty_nulls = drop_nulls(&mut dest, std::mem::take(empty_nulls), cx);
    let mut out = walk(cx, Some(dest), Some(patch), Sch::NONE)?;
    let mut kept = Vec::new();
    if let Some(v) = &mut out {
        extract(v, &mut Vec::new(), &mut kept);
    }
    Ok((out, kept))
}

/// The key under which a map carries, while a strategic merge runs, the
/// schema comments of its fields: `{field: [text, ...]}` ([`FieldComment`]).
/// No YAML key can be it: YAML text cannot hold a NUL character.
pub const COMMENTS: &str = "\u{0}comments";

/// The key under which a list element that is a map carries, while a
/// strategic merge runs, its own schema comments.
pub const OWN_COMMENTS: &str = "\u{0}own comments";

/// What one strategic merge reads schemas from.
#[derive(Clone, Copy)]
struct Cx<'a> {
    ss: &'a Schemas,
    cs: Option<&'a Comments<'a>>,
}

impl<'a> Cx<'a> {
    /// The schema a node's own comments give (kyaml's `GetSchema`): first
    /// those of the object patched, then those of the patch.
    fn own_schema(self, dest: Option<&Value>, patch: Option<&Value>) -> Option<Sch<'a>> {
        self.comment_schema(dest, patch, OWN_COMMENTS)
    }

    /// The schema the comments of field `k` give: first those of the object
    /// patched, then those of the patch.
    fn comment_schema(
        self,
        dest: Option<&Value>,
        patch: Option<&Value>,
        k: &str,
    ) -> Option<Sch<'a>> {
        let cs = self.cs?;
        [dest, patch]
            .into_iter()
            .flatten()
            .filter_map(|c| c.get(k)?.as_array())
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|t| cs.get(t))
    }
}

/// Puts the comments of `fields` into the maps that hold those fields, under
/// [`COMMENTS`], so they move with their maps while lists merge.
pub fn embed(v: &mut Value, fields: &[FieldComment]) {
    for fc in fields {
        let Some((last, parents)) = fc.path.split_last() else {
            continue;
        };
        let Seg::Key(k) = last else {
            // A list element carries its own.
            let mut cur = Some(&mut *v);
            for seg in &fc.path {
                cur = match (seg, cur) {
                    (Seg::Key(k), Some(Value::Object(m))) => m.get_mut(k),
                    (Seg::Index(i), Some(Value::Array(a))) => a.get_mut(*i),
                    _ => None,
                };
            }
            if let Some(Value::Object(m)) = cur {
                let texts = fc.texts.iter().cloned().map(Value::String).collect();
                m.insert(OWN_COMMENTS.into(), Value::Array(texts));
            }
            continue;
        };
        let mut cur = Some(&mut *v);
        for seg in parents {
            cur = match (seg, cur) {
                (Seg::Key(k), Some(Value::Object(m))) => m.get_mut(k),
                (Seg::Index(i), Some(Value::Array(a))) => a.get_mut(*i),
                _ => None,
            };
        }
        if let Some(Value::Object(m)) = cur {
            let texts = fc.texts.iter().cloned().map(Value::String).collect();
            if let Value::Object(c) = m
                .entry(COMMENTS)
                .or_insert_with(|| Value::Object(Map::new()))
            {
                c.insert(k.clone(), Value::Array(texts));
            }
        }
    }
}

/// Takes every [`COMMENTS`] entry out of `v`, as the fields they belong to.
pub fn extract(v: &mut Value, path: &mut Vec<Seg>, out: &mut Vec<FieldComment>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(texts)) = m.remove(OWN_COMMENTS)
                && matches!(path.last(), Some(Seg::Index(_)))
            {
                let texts = texts
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                out.push(FieldComment {
                    path: path.clone(),
                    texts,
                });
            }
            if let Some(Value::Object(c)) = m.remove(COMMENTS) {
                for (k, texts) in c {
                    if !m.contains_key(&k) {
                        continue;
                    }
                    let mut p = path.clone();
                    p.push(Seg::Key(k));
                    let texts = texts
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect();
                    out.push(FieldComment { path: p, texts });
                }
            }
            for (k, child) in m.iter_mut() {
                path.push(Seg::Key(k.clone()));
                extract(child, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                extract(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn comment_texts<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == OWN_COMMENTS {
                    out.extend(
                        child
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str),
                    );
                } else if k == COMMENTS {
                    out.extend(
                        child
                            .as_object()
                            .into_iter()
                            .flat_map(|c| c.values())
                            .filter_map(Value::as_array)
                            .flatten()
                            .filter_map(Value::as_str),
                    );
                } else {
                    comment_texts(child, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| comment_texts(c, out)),
        _ => {}
    }
}

fn infer<'a>(dest: Option<&Value>, patch: Option<&Value>, schemas: &'a Schemas) -> Sch<'a> {
    for v in [dest, patch].into_iter().flatten() {
        if let (Some(a), Some(k)) = (
            v.get("apiVersion").and_then(Value::as_str),
            v.get("kind").and_then(Value::as_str),
        ) {
            let s = schemas.root(a, k);
            if !s.is_none() {
                return s;
            }
        }
    }
    Sch::NONE
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    ) || (!a.is_object() && !a.is_array() && !b.is_object() && !b.is_array())
}

fn walk<'a>(
    cx: Cx<'a>,
    dest: Option<Value>,
    patch: Option<&Value>,
    mut sch: Sch<'a>,
) -> R<Option<Value>> {
    if let Some(s) = cx.own_schema(dest.as_ref(), patch) {
        sch = s;
    }
    if sch.is_none() {
        sch = infer(dest.as_ref(), patch, cx.ss);
    }
    let first = [dest.as_ref(), patch]
        .into_iter()
        .flatten()
        .find(|v| !v.is_null())
        .cloned();
    let Some(first) = first else {
        // Everything is missing or null: a null in the patch clears the field,
        // a null only in the original stays.
        return Ok(if patch.is_some() { None } else { dest });
    };
    for v in [dest.as_ref(), patch].into_iter().flatten() {
        if !v.is_null() && !same_kind(v, &first) {
            return Err(format!(
                "wrong node kind: expected {} but got {}",
                kind_name(&first),
                kind_name(v)
            ));
        }
    }
    match first {
        Value::Object(_) => walk_map(cx, dest, patch, sch),
        Value::Array(_) => walk_seq(cx, dest, patch, sch),
        _ => Ok(match patch {
            Some(Value::Null) => None,
            Some(p) => Some(p.clone()),
            None => dest,
        }),
    }
}

fn map_directive(p: &Map<String, Value>) -> R<Directive> {
    match p.get(DIRECTIVE) {
        None => Ok(Directive::Merge),
        Some(Value::String(s)) if s == "delete" => Ok(Directive::Delete),
        Some(Value::String(s)) if s == "replace" => Ok(Directive::Replace),
        Some(Value::String(s)) if s == "merge" => Ok(Directive::Merge),
        Some(v) => Err(format!("unknown patch strategy '{}'", scalar_text(v))),
    }
}

fn without_directive(p: &Map<String, Value>) -> Map<String, Value> {
    let mut p = p.clone();
    p.remove(DIRECTIVE);
    p
}

/// A patch merged into itself: what kyaml does with patch content that has
/// no counterpart in the original (nulls and directives fall away).
fn self_merge<'a>(cx: Cx<'a>, v: Value, sch: Sch<'a>) -> R<Option<Value>> {
    let copy = v.clone();
    walk(cx, Some(v), Some(&copy), sch)
}

fn walk_map<'a>(
    cx: Cx<'a>,
    dest: Option<Value>,
    patch: Option<&Value>,
    sch: Sch<'a>,
) -> R<Option<Value>> {
    let dest_missing = dest.as_ref().is_none_or(Value::is_null);
    if dest_missing {
        let Some(Value::Object(p)) = patch else {
            return Ok(dest);
        };
        if map_directive(p).ok() == Some(Directive::Delete) {
            return Ok(None);
        }
        return self_merge(cx, Value::Object(without_directive(p)), sch);
    }
    let Some(patch) = patch else {
        return Ok(dest);
    };
    let Value::Object(p) = patch else {
        // A null patch deletes the map.
        return Ok(None);
    };
    let p_clean = without_directive(p);
    let mut d = match dest {
        Some(Value::Object(d)) => d,
        _ => unreachable!("dest is a non-null map here"),
    };
    match map_directive(p)? {
        Directive::Delete => return Ok(None),
        Directive::Replace => return self_merge(cx, Value::Object(p_clean), sch),
        Directive::Merge => {}
    }
    d.remove(DIRECTIVE);
    // Maps carry comments only in merges that have some.
    let commented = cx.cs.is_some();
    let dc = commented.then(|| d.remove(COMMENTS)).flatten();
    let pc = commented.then(|| p_clean.get(COMMENTS)).flatten();
    let own = commented
        .then(|| {
            d.remove(OWN_COMMENTS)
                .or_else(|| p_clean.get(OWN_COMMENTS).cloned())
        })
        .flatten();
    let mut keys: Vec<String> = d
        .keys()
        .chain(p_clean.keys())
        .filter(|k| !commented || (*k != COMMENTS && *k != OWN_COMMENTS))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    let mut kept = Map::new();
    for k in keys {
        let dv = d.remove(&k);
        let s = cx
            .comment_schema(dc.as_ref(), pc, &k)
            .unwrap_or_else(|| sch.field(&k));
        let texts = if !commented {
            None
        } else if dv.is_some() {
            dc.as_ref().and_then(|c| c.get(&k)).cloned()
        } else {
            pc.and_then(|c| c.get(&k)).cloned()
        };
        if let Some(v) = walk(cx, dv, p_clean.get(&k), s)? {
            if let Some(t) = texts {
                kept.insert(k.clone(), t);
            }
            d.insert(k, v);
        }
    }
    if !kept.is_empty() {
        d.insert(COMMENTS.into(), Value::Object(kept));
    }
    if let Some(o) = own {
        d.insert(OWN_COMMENTS.into(), o);
    }
    Ok(Some(Value::Object(d)))
}

/// The `$patch` directive of a list: an element that is exactly `{$patch: X}`.
fn seq_directive(p: &[Value]) -> R<(Directive, Vec<Value>)> {
    let found = p
        .iter()
        .find_map(|e| e.as_object().filter(|m| m.contains_key(DIRECTIVE)));
    let Some(m) = found else {
        return Ok((Directive::Merge, p.to_vec()));
    };
    if m.keys().any(|k| k != DIRECTIVE && k != OWN_COMMENTS) {
        return Ok((Directive::Merge, p.to_vec()));
    }
    let d = map_directive(m)?;
    let value = m.get(DIRECTIVE).cloned().unwrap_or(Value::Null);
    let mut target = Map::new();
    target.insert(DIRECTIVE.into(), value);
    let rest = element_setter(
        p.to_vec(),
        None,
        &[DIRECTIVE.to_string()],
        &[scalar_text(&target[DIRECTIVE])],
    );
    Ok((d, rest))
}

fn walk_seq<'a>(
    cx: Cx<'a>,
    dest: Option<Value>,
    patch: Option<&Value>,
    sch: Sch<'a>,
) -> R<Option<Value>> {
    let Some(keys) = sch.merge_keys() else {
        return Ok(match patch {
            Some(Value::Null) => None,
            Some(p) => Some(p.clone()),
            None => dest,
        });
    };
    let elem_sch = sch.elements();
    let dest_missing = dest.as_ref().is_none_or(Value::is_null);
    if dest_missing {
        let Some(Value::Array(p)) = patch else {
            return Ok(dest);
        };
        return assoc_merge(cx, p.clone(), p, keys, elem_sch);
    }
    let Some(patch) = patch else {
        return Ok(dest);
    };
    let Value::Array(p) = patch else {
        return Ok(None);
    };
    let d = match dest {
        Some(Value::Array(d)) => d,
        _ => unreachable!("dest is a non-null list here"),
    };
    let (directive, p) = seq_directive(p)?;
    match directive {
        Directive::Delete => Ok(None),
        Directive::Replace => assoc_merge(cx, p.clone(), &p, keys, elem_sch),
        Directive::Merge => assoc_merge(cx, d, &p, keys, elem_sch),
    }
}

/// The text of a scalar as YAML holds it, for comparing merge-key values.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn key_text(e: &Value, key: &str) -> Option<String> {
    if key.is_empty() {
        return (!e.is_object() && !e.is_array()).then(|| scalar_text(e));
    }
    e.as_object()?.get(key).map(scalar_text)
}

fn element_values(sources: [&[Value]; 2], keys: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for src in sources {
        for e in src {
            let vals: Vec<String> = keys
                .iter()
                .map(|k| key_text(e, k).unwrap_or_default())
                .collect();
            if vals.is_empty() || out.contains(&vals) {
                continue;
            }
            out.push(vals);
        }
    }
    out
}

fn primitive_values(sources: [&[Value]; 2]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for src in sources {
        for e in src {
            let v = vec![scalar_text(e)];
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// kyaml's `validateKeys`: keep only the keys some entry has a value for.
fn validate_keys(
    all: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut valid = vec![false; keys.len()];
    for vs in all {
        for (i, v) in vs.iter().enumerate() {
            if !v.is_empty() && i < valid.len() {
                valid[i] = true;
            }
        }
    }
    if !valid.iter().any(|&b| b) {
        return (keys.to_vec(), values.to_vec());
    }
    let vk = keys
        .iter()
        .zip(&valid)
        .filter(|(_, ok)| **ok)
        .map(|(k, _)| k.clone())
        .collect();
    let vv = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || valid.get(*i).copied().unwrap_or(false))
        .map(|(_, v)| v.clone())
        .collect();
    (vk, vv)
}

/// kyaml's `mergeValues`: entries that agree on every key both have a value
/// for are unified (`[8080, ""]` and `[8080, "TCP"]` become `[8080, "TCP"]`).
fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        for j in 0..list.len() {
            if let Some(m) = match_values(&list[i], &list[j]) {
                list[i] = m.clone();
                list[j] = m;
            }
        }
    }
}

fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut res = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            res.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            res.push(x.clone());
        } else {
            res.push(y.clone());
        }
    }
    common.then_some(res)
}

/// kyaml's `FieldMatcher` as `ElementSetter` uses it: an empty value only
/// asks for the field to be present.
fn field_matches(e: &Value, key: &str, value: &str) -> bool {
    if key.is_empty() {
        return !e.is_object() && !e.is_array() && scalar_text(e) == value;
    }
    match e.as_object().and_then(|m| m.get(key)) {
        Some(v) => value.is_empty() || scalar_text(v) == value,
        None => false,
    }
}

/// kyaml's `ElementList`: the first element whose key fields have exactly these values.
fn element_index(list: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
    list.iter().position(|e| {
        if keys.first().is_none_or(String::is_empty) {
            return !e.is_object()
                && !e.is_array()
                && values.first().is_some_and(|v| *v == scalar_text(e));
        }
        e.is_object()
            && keys.iter().zip(values).all(|(k, v)| {
                e.get(k)
                    .is_some_and(|x| !x.is_object() && !x.is_array() && scalar_text(x) == *v)
            })
    })
}

fn is_empty_map(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.keys().all(|k| k == COMMENTS || k == OWN_COMMENTS))
}

/// kyaml's `ElementSetter`: replaces (or, without an element, removes) the
/// elements matching the keys; appends the element when none matched.
/// Null and empty-map elements are dropped on the way, as in kyaml.
fn element_setter(
    list: Vec<Value>,
    element: Option<Value>,
    keys: &[String],
    values: &[String],
) -> Vec<Value> {
    let default_keys = [String::new()];
    let keys = if keys.is_empty() {
        &default_keys[..]
    } else {
        keys
    };
    let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
    let mut out = Vec::with_capacity(list.len() + 1);
    let mut found = false;
    for e in list {
        if e.is_null() || is_empty_map(&e) {
            continue;
        }
        if !e.is_object() && mapping_setter {
            out.push(e);
            continue;
        }
        let matched = !values.is_empty()
            && keys
                .iter()
                .zip(values)
                .all(|(k, v)| field_matches(&e, k, v));
        if !matched {
            if !values.is_empty() {
                out.push(e);
            }
            continue;
        }
        found = true;
        if let Some(el) = &element {
            out.push(el.clone());
        }
    }
    if let Some(el) = element
        && !el.is_null()
        && !found
    {
        out.push(el);
    }
    out
}

fn assoc_merge<'a>(
    cx: Cx<'a>,
    mut dest: Vec<Value>,
    patch: &[Value],
    keys: &[String],
    elem_sch: Sch<'a>,
) -> R<Option<Value>> {
    let (mut values_list, keys): (Vec<Vec<String>>, Vec<String>) = {
        let vals = if keys.is_empty() {
            Vec::new()
        } else {
            element_values([patch, &dest], keys)
        };
        if !vals.is_empty() || !keys.is_empty() {
            (vals, keys.to_vec())
        } else {
            (primitive_values([patch, &dest]), vec![String::new()])
        }
    };
    if keys.len() > 1 {
        merge_values(&mut values_list);
    }
    let mut items: Vec<Value> = Vec::new();
    let mut last_keys: Vec<String> = keys.clone();
    for values in &values_list {
        if values.is_empty() {
            continue;
        }
        let (vk, vv) = validate_keys(&values_list, values, &keys);
        last_keys = vk.clone();
        let (k2, v2) = validate_keys(std::slice::from_ref(&vv), &vv, &vk);
        let di = element_index(&dest, &k2, &v2);
        let pe = element_index(patch, &k2, &v2).map(|i| &patch[i]);
        let de = di.map(|i| dest[i].clone());
        let mut val = walk(cx, de, pe, elem_sch)?;
        let empty = val.as_ref().is_none_or(|v| v.is_null() || is_empty_map(v));
        if empty && !vk.is_empty() {
            dest = element_setter(dest, None, &vk, &vv);
            continue;
        }
        let Some(v) = val.as_mut() else { continue };
        if let Value::Object(m) = v {
            for (k, value) in vk.iter().zip(&vv) {
                if !k.is_empty() && !m.contains_key(k) && !value.is_empty() {
                    m.insert(k.clone(), Value::String(value.clone()));
                }
            }
        }
        // kyaml merges into the original element in place: keep the list in step.
        if let Some(i) = di {
            dest[i] = v.clone();
        }
        items = element_setter(items, Some(v.clone()), &vk, &vv);
    }
    if !values_list.is_empty() {
        dest = append_list(items, dest, &last_keys);
    }
    Ok(Some(Value::Array(dest)))
}

/// kyaml's `appendListNode`: every element of `src` replaces its match in
/// `dst` or is appended; lists with several keys move matches to the end.
fn append_list(mut dst: Vec<Value>, src: Vec<Value>, keys: &[String]) -> Vec<Value> {
    for elem in src {
        if keys.first().is_none_or(String::is_empty) {
            let v = vec![scalar_text(&elem)];
            dst = element_setter(dst, Some(elem), &[String::new()], &v);
            continue;
        }
        // As in kyaml, an element without a key is appended as it is, and the
        // keys it has still select which elements it then replaces.
        let mut v = Vec::new();
        for k in keys {
            match elem.as_object().and_then(|m| m.get(k)) {
                Some(x) if !x.is_null() => v.push(scalar_text(x)),
                _ => dst.push(elem.clone()),
            }
        }
        if keys.len() > 1 {
            dst = element_setter(dst, None, keys, &v);
        }
        dst = element_setter(dst, Some(elem), keys, &v);
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kustomize::schema::builtin;
    use serde_json::json;

    #[test]
    fn patching_drops_fields_written_without_a_value() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": null},
            "spec": {"paused": null, "minReadySeconds": null, "template": {"spec": {
                "containers": [{"name": "c", "args": null, "env": [{"name": "A", "value": null}]}],
                "volumes": [{"name": "v", "secret": null}]}}},
            "status": {"list": [{"a": null}]}});
        let key = |k: &str| Seg::Key(k.into());
        let paths = vec![
            vec![key("metadata"), key("labels")],
            vec![key("spec"), key("minReadySeconds")],
            // containers and env merge by name: walked
            vec![
                key("spec"),
                key("template"),
                key("spec"),
                key("containers"),
                Seg::Index(0),
                key("args"),
            ],
            vec![
                key("spec"),
                key("template"),
                key("spec"),
                key("containers"),
                Seg::Index(0),
                key("env"),
                Seg::Index(0),
                key("value"),
            ],
            // a list without a merge key is kept as it is
            vec![key("status"), key("list"), Seg::Index(0), key("a")],
        ];
        let kept = drop_empty_nulls(&mut d, paths, &builtin());
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            d,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"paused": null, "template": {"spec": {
                    "containers": [{"name": "c", "env": [{"name": "A"}]}],
                    "volumes": [{"name": "v", "secret": null}]}}},
                "status": {"list": [{"a": null}]}})
        );
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_patch_order_first() {
        let dest = deployment(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]));
        let patch =
            deployment(json!([{"name": "side", "image": "s"}, {"name": "b", "image": "bb"}]));
        let out = merge(dest, &patch, &builtin()).unwrap().unwrap();
        assert_eq!(
            out.pointer("/spec/template/spec/containers").unwrap(),
            &json!([{"name": "side", "image": "s"}, {"name": "b", "image": "bb"}, {"name": "a", "image": "a"}])
        );
    }

    #[test]
    fn delete_and_replace_directives() {
        let dest = deployment(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]));
        let patch = deployment(json!([{"name": "a", "$patch": "delete"}]));
        let out = merge(dest.clone(), &patch, &builtin()).unwrap().unwrap();
        assert_eq!(
            out.pointer("/spec/template/spec/containers").unwrap(),
            &json!([{"name": "b", "image": "b"}])
        );
        let patch = deployment(json!([{"$patch": "replace"}, {"name": "c", "image": "c"}]));
        let out = merge(dest.clone(), &patch, &builtin()).unwrap().unwrap();
        assert_eq!(
            out.pointer("/spec/template/spec/containers").unwrap(),
            &json!([{"name": "c", "image": "c"}])
        );
        let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "$patch": "delete"});
        assert_eq!(merge(dest, &patch, &builtin()).unwrap(), None);
    }

    #[test]
    fn null_deletes_and_unknown_lists_are_replaced() {
        let dest = json!({"apiVersion": "x/v1", "kind": "T", "spec": {"a": 1, "b": [{"name": "x", "v": 1}]}});
        let patch = json!({"spec": {"a": null, "b": [{"name": "y"}]}});
        let out = merge(dest, &patch, &builtin()).unwrap().unwrap();
        assert_eq!(out["spec"], json!({"b": [{"name": "y"}]}));
    }
}
