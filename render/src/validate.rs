//! Names as the Kubernetes API server validates them, checked at render time
//! so a bad name is a render error naming its file (the app keeps its last
//! good render) instead of an object the cluster refuses. Pure.
//!
//! - `metadata.namespace`, and the name of a Namespace: RFC 1123 label;
//! - a Service: RFC 1035 label;
//! - RBAC roles and bindings: a path segment (`system:viewer` is fine);
//! - a CustomResourceDefinition: `<spec.names.plural>.<spec.group>`;
//! - everything else: RFC 1123 subdomain.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not a valid {kind} name: {rule}")]
pub struct InvalidName {
    pub field: &'static str,
    pub value: String,
    pub kind: String,
    pub rule: String,
}

const LABEL: &str = "must be an RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit";
const LABEL_1035: &str = "must be an RFC 1035 label: at most 63 characters, lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
const SUBDOMAIN: &str = "must be an RFC 1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit";
const SEGMENT: &str = "may not be '.' or '..' nor contain '/' or '%'";

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// RFC 1035 label: an RFC 1123 label starting with a letter.
pub fn is_label_1035(s: &str) -> bool {
    is_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
pub fn is_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            let b = p.as_bytes();
            !b.is_empty()
                && alnum(b[0])
                && alnum(b[b.len() - 1])
                && b.iter().all(|&c| alnum(c) || c == b'-')
        })
}

fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
}

/// Checks `metadata.name` and `metadata.namespace` of one object.
pub fn names(group: &str, kind: &str, obj: &Value) -> Result<(), InvalidName> {
    let meta = |k: &str| {
        obj.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
    };
    let bad = |field, value: &str, rule: &str| {
        Err(InvalidName {
            field,
            value: value.to_string(),
            kind: kind.to_string(),
            rule: rule.to_string(),
        })
    };
    if let Some(ns) = meta("namespace").filter(|n| !n.is_empty())
        && !is_label(ns)
    {
        return bad("metadata.namespace", ns, LABEL);
    }
    let Some(name) = meta("name") else {
        return Ok(());
    };
    let rbac = group == "rbac.authorization.k8s.io"
        && matches!(
            kind,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        );
    match (group, kind) {
        ("", "Namespace") if !is_label(name) => bad("metadata.name", name, LABEL),
        ("", "Service") if !is_label_1035(name) => bad("metadata.name", name, LABEL_1035),
        _ if rbac => {
            if is_path_segment(name) {
                Ok(())
            } else {
                bad("metadata.name", name, SEGMENT)
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let plural = obj.pointer("/spec/names/plural").and_then(Value::as_str);
            let g = obj.pointer("/spec/group").and_then(Value::as_str);
            match (plural, g) {
                (Some(p), Some(g)) if name != format!("{p}.{g}") => bad(
                    "metadata.name",
                    name,
                    &format!("must be spec.names.plural.spec.group ({p}.{g})"),
                ),
                _ if !is_subdomain(name) => bad("metadata.name", name, SUBDOMAIN),
                _ => Ok(()),
            }
        }
        ("", "Namespace") | ("", "Service") => Ok(()),
        _ if !is_subdomain(name) => bad("metadata.name", name, SUBDOMAIN),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(group: &str, kind: &str, name: &str, ns: Option<&str>) -> Result<(), String> {
        let mut o = json!({"metadata": {"name": name}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = ns.into();
        }
        names(group, kind, &o).map_err(|e| e.to_string())
    }

    #[test]
    fn names_are_checked_as_the_api_server_checks_them() {
        let ok = [
            ("", "Namespace", "web-1", None),
            ("", "ConfigMap", "web.config-1", Some("web")),
            ("", "Service", "web", Some("web")),
            (
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "system:viewer",
                None,
            ),
            ("apps", "Deployment", "a", Some("a")),
        ];
        for (g, k, n, ns) in ok {
            assert_eq!(check(g, k, n, ns), Ok(()), "{k} {n}");
        }
        let long = "a".repeat(64);
        let bad = [
            ("", "Namespace", "my_ns", None, "RFC 1123 label"),
            ("", "Namespace", "web.prod", None, "RFC 1123 label"),
            ("", "Namespace", long.as_str(), None, "RFC 1123 label"),
            ("", "ConfigMap", "Web", Some("web"), "RFC 1123 subdomain"),
            ("", "ConfigMap", "a_b", Some("web"), "RFC 1123 subdomain"),
            ("", "ConfigMap", "ok", Some("my_ns"), "metadata.namespace"),
            ("", "Service", "1web", Some("web"), "RFC 1035"),
            (
                "rbac.authorization.k8s.io",
                "Role",
                "a/b",
                Some("web"),
                "'/'",
            ),
            ("example.com", "Widget", "-w", Some("web"), "subdomain"),
        ];
        for (g, k, n, ns, want) in bad {
            let e = check(g, k, n, ns).unwrap_err();
            assert!(e.contains(want) && e.contains(k), "{k} {n}: {e}");
        }
        let crd = json!({"metadata": {"name": "widget.example.com"},
            "spec": {"group": "example.com", "names": {"plural": "widgets"}}});
        let e = names("apiextensions.k8s.io", "CustomResourceDefinition", &crd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("widgets.example.com"), "{e}");
    }
}
