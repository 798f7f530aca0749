//! What `helm template` does with the rendered files (`pkg/releaseutil`):
//! splits them into documents, sets hooks apart (`helm.sh/hook`), sorts
//! both by Helm's install order of kinds, and prints them with their
//! `# Source:` lines, CRDs from `crds/` first and hooks last.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::{HelmError, json_kind};

/// A rendered document with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The template path Helm prints (`chart/templates/x.yaml`).
    pub source: String,
    /// The document's text, trimmed as Helm trims it.
    pub content: String,
    pub kind: String,
    /// Set for hooks (`helm.sh/hook`): their events, lower-cased.
    pub hook: Option<Vec<String>>,
    /// The document parsed (as `sigs.k8s.io/yaml` reads it); `None` for
    /// one that holds only comments.
    pub doc: Option<serde_json::Value>,
}

/// Kubernetes kinds in the order Helm installs them.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

const HOOK_EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
];

static SEP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\t\n\f\r ]*\n)---[\t\n\f\r ]*").expect("separator regex"));

/// `SplitManifests`: documents at `---` (even `---foo`), trimmed, empty ones dropped.
pub fn split_manifests(big: &str) -> Vec<String> {
    SEP.split(big.trim())
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_string())
        .collect()
}

fn order(kind: &str) -> Option<usize> {
    INSTALL_ORDER.iter().position(|k| *k == kind)
}

/// `lessByKind`: known kinds in install order, unknown ones after them by name.
fn less_by_kind(a: &str, b: &str) -> bool {
    match (order(a), order(b)) {
        (None, None) => a < b,
        (None, Some(_)) => false,
        (Some(_), None) => true,
        (Some(x), Some(y)) => x < y,
    }
}

fn stable_sort(v: &mut [Manifest]) {
    v.sort_by(|a, b| {
        if less_by_kind(&a.kind, &b.kind) {
            std::cmp::Ordering::Less
        } else if less_by_kind(&b.kind, &a.kind) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

/// `SortManifests`: the rendered files (NOTES already removed) into hooks
/// and manifests, each sorted by kind.
pub fn sort_manifests(
    files: &BTreeMap<String, String>,
) -> Result<(Vec<Manifest>, Vec<Manifest>), HelmError> {
    let mut hooks = Vec::new();
    let mut generic = Vec::new();
    for (path, content) in files {
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') || content.trim().is_empty() {
            continue;
        }
        for doc in split_manifests(content) {
            let head = head(&doc)
                .map_err(|e| HelmError::Render(format!("YAML parse error on {path}: {e}")))?;
            let hook = head.annotations.get("helm.sh/hook");
            match hook {
                None => generic.push(Manifest {
                    source: path.clone(),
                    content: doc,
                    kind: head.kind,
                    hook: None,
                    doc: head.doc,
                }),
                Some(events) => {
                    let events: Vec<String> =
                        events.split(',').map(|e| e.trim().to_lowercase()).collect();
                    if events.iter().any(|e| !HOOK_EVENTS.contains(&e.as_str())) {
                        // Helm skips a hook it does not know ("skipping unknown hook").
                        continue;
                    }
                    hooks.push(Manifest {
                        source: path.clone(),
                        content: doc,
                        kind: head.kind,
                        hook: Some(events),
                        doc: head.doc,
                    });
                }
            }
        }
    }
    stable_sort(&mut hooks);
    stable_sort(&mut generic);
    Ok((hooks, generic))
}

struct Head {
    kind: String,
    annotations: BTreeMap<String, String>,
    doc: Option<serde_json::Value>,
}

/// `SimpleHead`: kind and annotations, read as `sigs.k8s.io/yaml` would.
fn head(doc: &str) -> Result<Head, String> {
    let docs = crate::yaml::parse_documents("", doc.as_bytes()).map_err(|e| {
        format!(
            "error converting YAML to JSON: {}",
            super::engine::go_yaml_error(&e)
        )
    })?;
    let Some(v) = docs.into_iter().next() else {
        return Ok(Head {
            kind: String::new(),
            annotations: BTreeMap::new(),
            doc: None,
        });
    };
    let serde_json::Value::Object(m) = &v else {
        return Err(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
            json_kind(&v)
        ));
    };
    let kind = match m.get("kind") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go struct field SimpleHead.kind of type string",
                json_kind(other)
            ));
        }
    };
    let mut annotations = BTreeMap::new();
    if let Some(serde_json::Value::Object(md)) = m.get("metadata")
        && let Some(serde_json::Value::Object(a)) = md.get("annotations")
    {
        for (k, v) in a {
            match v {
                serde_json::Value::String(s) => {
                    annotations.insert(k.clone(), s.clone());
                }
                serde_json::Value::Null => {
                    annotations.insert(k.clone(), String::new());
                }
                other => {
                    return Err(format!(
                        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go struct field .metadata.annotations of type string",
                        json_kind(other)
                    ));
                }
            }
        }
    }
    Ok(Head {
        kind,
        annotations,
        doc: Some(v),
    })
}

/// `helm template`'s output: CRDs, manifests, then hooks.
pub fn print(crds: &[(String, String)], manifests: &[Manifest], hooks: &[Manifest]) -> String {
    let mut release = String::new();
    for (name, data) in crds {
        release.push_str(&format!("---\n# Source: {name}\n{data}\n"));
    }
    for m in manifests {
        release.push_str(&format!("---\n# Source: {}\n{}\n", m.source, m.content));
    }
    let mut out = String::new();
    out.push_str(release.trim());
    out.push('\n');
    for h in hooks {
        out.push_str(&format!("---\n# Source: {}\n{}\n", h.source, h.content));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_as_helm_splits_them() {
        assert_eq!(
            split_manifests("a: 1\n---\nb: 2\n---\nc: 3"),
            vec!["a: 1", "b: 2", "c: 3"]
        );
        // The separator eats the blank lines after it, so a second `---`
        // right after them starts the next document (as in Helm).
        assert_eq!(
            split_manifests("a: 1\n--- \n\n---\nc: 3"),
            vec!["a: 1", "---\nc: 3"]
        );
        assert_eq!(split_manifests("---\na: 1\n"), vec!["a: 1"]);
    }

    #[test]
    fn kinds_sort_in_install_order_unknown_last() {
        let m = |k: &str| Manifest {
            source: String::new(),
            content: String::new(),
            kind: k.into(),
            hook: None,
            doc: None,
        };
        let mut v = vec![
            m("Zeta"),
            m("Deployment"),
            m("Alpha"),
            m("Namespace"),
            m("Service"),
        ];
        stable_sort(&mut v);
        let kinds: Vec<&str> = v.iter().map(|x| x.kind.as_str()).collect();
        assert_eq!(
            kinds,
            vec!["Namespace", "Service", "Deployment", "Alpha", "Zeta"]
        );
    }
}
