//! Resources as kustomize tracks them while building: the object plus the
//! identities it had before prefixes, suffixes, namespaces and hashes renamed
//! it, and the ordered list they live in (kustomize's `ResMap`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::regex::Regex;

/// `(apiVersion, kind)` pairs kustomize's built-in OpenAPI data (Kubernetes
/// 1.21) knows to be cluster-scoped. Every other kind counts as namespaced,
/// custom resources included, exactly as in kustomize.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("apiregistration.k8s.io/v1beta1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
    ),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1beta1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("node.k8s.io/v1beta1", "RuntimeClass"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("storage.k8s.io/v1beta1", "CSIDriver"),
    ("storage.k8s.io/v1beta1", "CSINode"),
    ("storage.k8s.io/v1beta1", "StorageClass"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"),
    ("v1", "ComponentStatus"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "NodeProxyOptions"),
    ("v1", "PersistentVolume"),
];

/// The namespaced `(apiVersion, kind)` pairs kyaml precomputes; with
/// [`CLUSTER_SCOPED`], the kinds whose scope kustomize knows without reading
/// its OpenAPI data.
const NAMESPACED: &[(&str, &str)] = &[
    ("apps/v1", "ControllerRevision"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v1", "Scale"),
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler"),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("batch/v1beta1", "CronJob"),
    ("coordination.k8s.io/v1", "Lease"),
    ("coordination.k8s.io/v1beta1", "Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("discovery.k8s.io/v1beta1", "EndpointSlice"),
    ("events.k8s.io/v1", "Event"),
    ("events.k8s.io/v1beta1", "Event"),
    ("extensions/v1beta1", "Ingress"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1beta1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
    ("policy/v1beta1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "Role"),
    ("rbac.authorization.k8s.io/v1beta1", "RoleBinding"),
    ("storage.k8s.io/v1beta1", "CSIStorageCapacity"),
    ("v1", "ConfigMap"),
    ("v1", "Endpoints"),
    ("v1", "Event"),
    ("v1", "LimitRange"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("v1", "PodAttachOptions"),
    ("v1", "PodExecOptions"),
    ("v1", "PodPortForwardOptions"),
    ("v1", "PodProxyOptions"),
    ("v1", "PodTemplate"),
    ("v1", "ReplicationController"),
    ("v1", "ResourceQuota"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "ServiceProxyOptions"),
];

/// Whether kyaml knows the scope of this kind without parsing a schema.
pub fn is_precomputed_kind(api_version: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .chain(NAMESPACED)
        .any(|(a, k)| *a == api_version && *k == kind)
}

/// The effective namespace of cluster-scoped objects (kustomize's `TotallyNotANamespace`).
const NOT_NAMESPACED: &str = "_non_namespaceable_";

pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(a, k)| *a == api_version && *k == kind)
        || CUSTOM_CLUSTER_SCOPED.with(|c| {
            let c = c.borrow();
            !c.is_empty() && c.iter().any(|(a, k)| a == api_version && k == kind)
        })
}

thread_local! {
    /// Kinds outside kyaml's precomputed list that the custom OpenAPI schema
    /// of the build running on this thread makes cluster-scoped (kyaml reads
    /// their scope from the schema's `paths`). Set by [`CustomScopes::set`]
    /// and cleared when the build ends.
    static CUSTOM_CLUSTER_SCOPED: std::cell::RefCell<Vec<(String, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The custom scopes of one build: set while it runs, cleared when dropped.
pub struct CustomScopes(());

impl CustomScopes {
    pub fn new() -> CustomScopes {
        CUSTOM_CLUSTER_SCOPED.with(|c| c.borrow_mut().clear());
        CustomScopes(())
    }

    pub fn set(&self, kinds: Vec<(String, String)>) {
        CUSTOM_CLUSTER_SCOPED.with(|c| *c.borrow_mut() = kinds);
    }
}

impl Drop for CustomScopes {
    fn drop(&mut self) {
        CUSTOM_CLUSTER_SCOPED.with(|c| c.borrow_mut().clear());
    }
}

/// Splits an apiVersion into group and version (`v1` -> `("", "v1")`).
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Group, version and kind; empty fields select anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gvk {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

impl Gvk {
    /// kustomize's `Gvk.IsSelected`: every non-empty selector field must match.
    pub fn selects(&self, group: &str, version: &str, kind: &str) -> bool {
        (self.group.is_empty() || self.group == group)
            && (self.version.is_empty() || self.version == version)
            && (self.kind.is_empty() || self.kind == kind)
    }
}

/// The identity kustomize compares objects by. `ns` is the effective namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResId {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub ns: String,
}

impl ResId {
    pub fn of(api_version: &str, kind: &str, name: &str, namespace: &str) -> ResId {
        let (group, version) = group_version(api_version);
        let ns = if is_cluster_scoped(api_version, kind) {
            NOT_NAMESPACED.to_string()
        } else if namespace.is_empty() {
            "default".to_string()
        } else {
            namespace.to_string()
        };
        ResId {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            name: name.into(),
            ns,
        }
    }

    pub fn is_cluster_scoped(&self) -> bool {
        self.ns == NOT_NAMESPACED
    }

    pub fn selected_by(&self, gvk: &Gvk) -> bool {
        gvk.selects(&self.group, &self.version, &self.kind)
    }
}

impl std::fmt::Display for ResId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        };
        write!(f, "{api} {}", self.kind)?;
        if !self.is_cluster_scoped() {
            write!(f, " {}/{}", self.ns, self.name)
        } else {
            write!(f, " {}", self.name)
        }
    }
}

/// A previous identity: kustomize records kind, name and effective namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevId {
    pub kind: String,
    pub name: String,
    pub ns: String,
}

/// How a generated object combines with one of the same id already built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Create,
    Merge,
    Replace,
}

/// One object being built.
#[derive(Debug, Clone)]
pub struct Resource {
    pub obj: Map<String, Value>,
    pub prev: Vec<PrevId>,
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub needs_hash: bool,
    /// Set for objects made by a generator.
    pub behavior: Option<Behavior>,
    /// Names of the `vars` bound to this object ([`super::vars`]).
    pub ref_vars: Vec<String>,
    /// Paths of fields read as `key:` (no value); see [`crate::yaml::Doc`].
    pub empty_nulls: Vec<Vec<crate::yaml::Seg>>,
    /// Keys and texts of `metadata.annotations` read as plain scalars.
    pub plain_annotations: Vec<(String, String)>,
    /// Fields with comments kyaml may read as their schema.
    pub field_comments: Vec<crate::yaml::FieldComment>,
}

pub fn str_at<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> &'a str {
    let mut cur: Option<&Value> = obj.get(path[0]);
    for p in &path[1..] {
        cur = cur.and_then(|v| v.get(*p));
    }
    cur.and_then(Value::as_str).unwrap_or("")
}

impl Resource {
    pub fn new(obj: Map<String, Value>) -> Resource {
        Resource {
            obj,
            prev: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            needs_hash: false,
            behavior: None,
            ref_vars: Vec::new(),
            empty_nulls: Vec::new(),
            plain_annotations: Vec::new(),
            field_comments: Vec::new(),
        }
    }

    pub fn api_version(&self) -> &str {
        str_at(&self.obj, &["apiVersion"])
    }

    pub fn kind(&self) -> &str {
        str_at(&self.obj, &["kind"])
    }

    pub fn name(&self) -> &str {
        str_at(&self.obj, &["metadata", "name"])
    }

    pub fn namespace(&self) -> &str {
        str_at(&self.obj, &["metadata", "namespace"])
    }

    pub fn is_cluster_scoped(&self) -> bool {
        is_cluster_scoped(self.api_version(), self.kind())
    }

    pub fn cur_id(&self) -> ResId {
        ResId::of(
            self.api_version(),
            self.kind(),
            self.name(),
            self.namespace(),
        )
    }

    /// Every identity the object had before its current one, oldest first.
    pub fn prev_ids(&self) -> Vec<ResId> {
        let (group, version) = group_version(self.api_version());
        self.prev
            .iter()
            .map(|p| ResId {
                group: group.into(),
                version: version.into(),
                kind: p.kind.clone(),
                name: p.name.clone(),
                ns: p.ns.clone(),
            })
            .collect()
    }

    /// The identity the object had when it was read or generated.
    pub fn org_id(&self) -> ResId {
        self.prev_ids()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.cur_id())
    }

    pub fn store_previous_id(&mut self) {
        let id = self.cur_id();
        self.prev.push(PrevId {
            kind: id.kind,
            name: id.name,
            ns: id.ns,
        });
    }

    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let meta = self
            .obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        meta.as_object_mut().expect("metadata is a map")
    }

    pub fn set_name(&mut self, name: &str) {
        let meta = self.metadata_mut();
        if name.is_empty() {
            meta.remove("name");
        } else {
            meta.insert("name".into(), Value::String(name.into()));
        }
    }

    pub fn set_namespace(&mut self, ns: &str) {
        let meta = self.metadata_mut();
        if ns.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(ns.into()));
        }
    }

    pub fn string_map(&self, field: &str) -> Map<String, Value> {
        self.obj
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn prefixes_suffixes_equal(&self, other: &Resource, allow_empty: bool) -> bool {
        if allow_empty {
            let pe = self.prefixes.is_empty() || other.prefixes.is_empty();
            let se = self.suffixes.is_empty() || other.suffixes.is_empty();
            (pe || same_ending(&self.prefixes, &other.prefixes))
                && (se || same_ending(&self.suffixes, &other.suffixes))
        } else {
            same_ending(&self.prefixes, &other.prefixes)
                && same_ending(&self.suffixes, &other.suffixes)
        }
    }
}

/// kustomize's `SameEndingSubSlice`.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() > b.len() { (b, a) } else { (a, b) };
    if short.is_empty() {
        return long.is_empty();
    }
    long.ends_with(short)
}

/// Patch and replica targets: a GVK, name and namespace (regular
/// expressions, anchored), and label and annotation selectors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
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

fn anchored(p: &str) -> Result<Option<Regex>, String> {
    if p.is_empty() {
        Ok(None)
    } else {
        Regex::new(&format!("^(?:{p})$")).map(Some)
    }
}

fn re_match(re: &Option<Regex>, s: &str) -> bool {
    re.as_ref().is_none_or(|r| r.is_match(s))
}

/// Writes the non-empty fields of a selector as `key=value,...`.
pub fn write_fields(f: &mut std::fmt::Formatter<'_>, fields: &[(&str, &str)]) -> std::fmt::Result {
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    f.write_str(&parts.join(","))
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_fields(
            f,
            &[
                ("group", &self.group),
                ("version", &self.version),
                ("kind", &self.kind),
                ("name", &self.name),
                ("namespace", &self.namespace),
                ("labelSelector", &self.label_selector),
                ("annotationSelector", &self.annotation_selector),
            ],
        )
    }
}

/// The ordered resources of a build.
#[derive(Debug, Clone, Default)]
pub struct ResMap {
    pub list: Vec<Resource>,
    /// The accumulated transformer configuration; `None` is the built-in one
    /// ([`super::config`]).
    pub config: Option<std::sync::Arc<super::fieldspec::Builtin>>,
    /// The accumulated `vars` ([`super::vars`]).
    pub vars: Vec<super::vars::Var>,
}

impl ResMap {
    /// Appends, refusing an id that is already present (kustomize's `Append`).
    pub fn append(&mut self, res: Resource) -> Result<(), String> {
        let id = res.cur_id();
        if self.list.iter().any(|r| r.cur_id() == id) {
            return Err(format!(
                "may not add resource with an already registered id: {id}"
            ));
        }
        self.list.push(res);
        Ok(())
    }

    pub fn append_all(&mut self, other: ResMap) -> Result<(), String> {
        for r in other.list {
            self.append(r)?;
        }
        Ok(())
    }

    /// Resources matching `id` by their current or any previous id.
    pub fn indexes_by_any_id(&self, id: &ResId) -> Vec<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, r)| r.cur_id() == *id || r.prev_ids().iter().any(|p| p == id))
            .map(|(i, _)| i)
            .collect()
    }

    /// Indexes of the resources a selector picks (kustomize's `Select`).
    pub fn select(&self, s: &Selector) -> Result<Vec<usize>, String> {
        let name = anchored(&s.name)?;
        let ns = anchored(&s.namespace)?;
        let group = anchored(&s.group)?;
        let version = anchored(&s.version)?;
        let kind = anchored(&s.kind)?;
        let labels = LabelSelector::parse(&s.label_selector)?;
        let annotations = LabelSelector::parse(&s.annotation_selector)?;
        let mut out = Vec::new();
        for (i, r) in self.list.iter().enumerate() {
            let cur = r.cur_id();
            let org = r.org_id();
            if !re_match(&ns, &org.ns) && !re_match(&ns, &cur.ns) {
                continue;
            }
            if !re_match(&name, &org.name) && !re_match(&name, &cur.name) {
                continue;
            }
            if !re_match(&group, &cur.group)
                || !re_match(&version, &cur.version)
                || !re_match(&kind, &cur.kind)
            {
                continue;
            }
            if !labels.matches(&r.string_map("labels"))
                || !annotations.matches(&r.string_map("annotations"))
            {
                continue;
            }
            out.push(i);
        }
        Ok(out)
    }
}

/// A Kubernetes label selector in its string form (`a=b,c!=d,e in (x,y),!f`).
#[derive(Debug, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

#[derive(Debug)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        let mut depth = 0;
        let mut parts = Vec::new();
        let mut cur = String::new();
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let bad = || format!("invalid selector {s:?}");
            if let Some(k) = p.strip_prefix('!') {
                reqs.push(Requirement::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Requirement::NotIn(k.trim().into(), vec![v.trim().into()]));
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                reqs.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
            } else if let Some((k, rest)) = split_word(p, " notin ") {
                reqs.push(Requirement::NotIn(k, set_values(rest).ok_or_else(bad)?));
            } else if let Some((k, rest)) = split_word(p, " in ") {
                reqs.push(Requirement::In(k, set_values(rest).ok_or_else(bad)?));
            } else if p.contains(['<', '>', ' ', '(']) {
                return Err(bad());
            } else {
                reqs.push(Requirement::Exists(p.to_string()));
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        })
    }
}

fn split_word(p: &str, word: &str) -> Option<(String, String)> {
    p.split_once(word)
        .map(|(k, r)| (k.trim().to_string(), r.trim().to_string()))
}

fn set_values(s: String) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object().unwrap();
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (api, web)", true),
            ("app notin (web)", false),
            ("env", false),
            ("!env", true),
            ("tier", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(labels),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn ids_compare_effective_namespaces() {
        assert_eq!(
            ResId::of("v1", "ConfigMap", "a", ""),
            ResId::of("v1", "ConfigMap", "a", "default")
        );
        assert!(ResId::of("v1", "Namespace", "a", "x").is_cluster_scoped());
    }
}
