//! Name references: after prefixes, suffixes, namespaces and hash suffixes
//! renamed objects, the fields that refer to them by name (volumes,
//! `envFrom`, `serviceAccountName`, role bindings, Ingress backends, HPA
//! targets, ...) follow, using the previous names each object recorded.
//! This is kustomize's `nameReferenceTransformer`, run once at the end.

use std::collections::HashSet;

use serde_json::Value;

use super::fieldspec::{self, Create, FieldSpec, NameBackRef};
use super::resmap::{Gvk, ResId, ResMap, Resource};

type R<T> = Result<T, String>;

/// What the selection needs to know about a possible referral.
struct Cand {
    cur: ResId,
    org: ResId,
    prev: Vec<ResId>,
    name: String,
    namespace: String,
    res: Resource,
}

/// The filter for one referrer field: which kind it refers to.
struct Ctx<'a> {
    target: Gvk,
    spec: &'a FieldSpec,
    referrer: usize,
    cands: &'a [Cand],
    subset: &'a [usize],
    /// `roleRef` of the referrer, for `roleRef/name` fields.
    role_ref: Option<Gvk>,
}

pub fn fix(m: &mut ResMap, config: &[NameBackRef]) -> R<()> {
    let cands: Vec<Cand> = m
        .list
        .iter()
        .map(|r| Cand {
            cur: r.cur_id(),
            org: r.org_id(),
            prev: r.prev_ids(),
            name: r.name().to_string(),
            namespace: r.namespace().to_string(),
            res: Resource {
                obj: Default::default(),
                ..r.clone()
            },
        })
        .collect();
    for i in 0..m.list.len() {
        if m.list[i].obj.is_empty() {
            continue;
        }
        let subset = referable_by(&m.list[i], &cands);
        let role_ref = role_ref_gvk(&m.list[i].obj);
        let mut obj = Value::Object(std::mem::take(&mut m.list[i].obj));
        let mut result = Ok(());
        'outer: for back in config {
            let target = Gvk {
                group: back.group.clone(),
                version: back.version.clone(),
                kind: back.kind.clone(),
            };
            for spec in &back.referrers {
                if !cands[i].org.selected_by(&spec.gvk()) {
                    continue;
                }
                let ctx = Ctx {
                    target: target.clone(),
                    spec,
                    referrer: i,
                    cands: &cands,
                    subset: &subset,
                    role_ref: role_ref.clone(),
                };
                let unrestricted = FieldSpec::new(&spec.path, false);
                result = fieldspec::apply(&mut obj, &unrestricted, Create::Never, &mut |node| {
                    ctx.set(node)
                })
                .map_err(|e| {
                    format!(
                        "updating name reference in '{}' field of {}: {e}",
                        spec.path, cands[i].cur
                    )
                });
                if result.is_err() {
                    break 'outer;
                }
            }
        }
        if let Value::Object(o) = obj {
            m.list[i].obj = o;
        }
        result?;
    }
    Ok(())
}

/// kustomize's `SubsetThatCouldBeReferencedByResource`.
fn referable_by(referrer: &Resource, cands: &[Cand]) -> Vec<usize> {
    let rid = referrer.cur_id();
    if rid.is_cluster_scoped() {
        return (0..cands.len()).collect();
    }
    let mut rb_namespaces = HashSet::new();
    if referrer.kind() == "RoleBinding"
        && let Some(Value::Array(subjects)) = referrer.obj.get("subjects")
    {
        for s in subjects {
            if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && let Some(ns) = s.get("namespace").and_then(Value::as_str)
            {
                rb_namespaces.insert(ns.to_string());
            }
        }
    }
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.cur.is_cluster_scoped() || c.cur.ns == rid.ns || rb_namespaces.contains(&c.namespace)
        })
        .map(|(i, _)| i)
        .collect()
}

fn role_ref_gvk(obj: &serde_json::Map<String, Value>) -> Option<Gvk> {
    let rr = obj.get("roleRef")?;
    Some(Gvk {
        group: rr.get("apiGroup")?.as_str().unwrap_or("").to_string(),
        version: String::new(),
        kind: rr.get("kind")?.as_str().unwrap_or("").to_string(),
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Ctx<'_> {
    fn set(&self, node: &mut Value) -> R<()> {
        match node {
            Value::Null => Ok(()),
            Value::Object(_) => self.set_mapping(node),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Null => {}
                        Value::Object(_) => self.set_mapping(item)?,
                        Value::Array(_) => {
                            return Err("a name reference must be a string or a map".into());
                        }
                        _ => self.set_scalar(item)?,
                    }
                }
                Ok(())
            }
            _ => self.set_scalar(node),
        }
    }

    fn set_scalar(&self, node: &mut Value) -> R<()> {
        let Some(old) = text(node) else { return Ok(()) };
        let Some(r) = self.select(&old, self.subset.to_vec(), false)? else {
            return Ok(());
        };
        if self.cands[r].name != old {
            *node = Value::String(self.cands[r].name.clone());
        }
        Ok(())
    }

    fn set_mapping(&self, node: &mut Value) -> R<()> {
        let Value::Object(m) = node else {
            return Ok(());
        };
        let Some(old) = m.get("name").and_then(text) else {
            return Err("path config error; no 'name' field in node".into());
        };
        let candidates: Vec<usize> = match m.get("namespace").and_then(text) {
            None => self.subset.to_vec(),
            Some(ns) => {
                let by_org: Vec<usize> = self
                    .subset
                    .iter()
                    .copied()
                    .filter(|&i| {
                        !self.cands[i].org.is_cluster_scoped() && self.cands[i].org.ns == ns
                    })
                    .collect();
                if !by_org.is_empty() {
                    by_org
                } else {
                    self.subset
                        .iter()
                        .copied()
                        .filter(|&i| {
                            !self.cands[i].cur.is_cluster_scoped() && self.cands[i].cur.ns == ns
                        })
                        .collect()
                }
            }
        };
        let Some(r) = self.select(&old, candidates, true)? else {
            return Ok(());
        };
        let c = &self.cands[r];
        if c.name == old && c.namespace.is_empty() {
            return Ok(());
        }
        m.insert("name".into(), Value::String(c.name.clone()));
        if !c.namespace.is_empty() {
            m.insert("namespace".into(), Value::String(c.namespace.clone()));
        }
        Ok(())
    }

    /// kustomize's `selectReferral`.
    fn select(&self, old: &str, mut c: Vec<usize>, with_ns: bool) -> R<Option<usize>> {
        let cands = self.cands;
        c.retain(|&i| cands[i].prev.iter().any(|p| p.name == old));
        c.retain(|&i| cands[i].prev.iter().any(|p| p.selected_by(&self.target)));
        if self.spec.path.ends_with("roleRef/name")
            && let Some(rr) = &self.role_ref
        {
            c.retain(|&i| cands[i].prev.iter().any(|p| p.selected_by(rr)));
        }
        let referrer = &cands[self.referrer];
        if !referrer.cur.is_cluster_scoped() {
            c.retain(|&i| {
                cands[i].cur.is_cluster_scoped()
                    || cands[i].cur.kind == "ServiceAccount"
                    || cands[i].cur.ns == referrer.cur.ns
            });
        }
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
        c.retain(|&i| cands[i].res.prefixes_suffixes_equal(&referrer.res, true));
        if c.len() > 1 {
            c.retain(|&i| cands[i].res.prefixes_suffixes_equal(&referrer.res, false));
        }
        match c.len() {
            0 => Ok(None),
            1 => Ok(Some(c[0])),
            _ => {
                let first = &cands[c[0]];
                let same = c.iter().all(|&i| {
                    cands[i].name == first.name
                        && (!with_ns || cands[i].namespace == first.namespace)
                });
                if same {
                    Ok(Some(c[0]))
                } else {
                    let ids: Vec<String> = c.iter().map(|&i| cands[i].cur.to_string()).collect();
                    Err(format!(
                        "found multiple possible referrals: {}",
                        ids.join(", ")
                    ))
                }
            }
        }
    }
}
