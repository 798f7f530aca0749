//! One Kubernetes object of a desired state: its identity, canonical bytes and digest.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

use crate::{digest, yaml};

/// Identity of an object in a cluster: group, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceId {
    /// The pieces of the id as it displays, in order: kind, `.` and group
    /// (when there is one), `/` and namespace (when namespaced), `/`, name.
    pub fn display_parts(&self) -> [&str; 7] {
        let (dot, group) = match self.group.as_str() {
            "" => ("", ""),
            g => (".", g),
        };
        let (slash, ns) = match self.namespace.as_str() {
            "" => ("", ""),
            n => ("/", n),
        };
        [&self.kind, dot, group, slash, ns, "/", &self.name]
    }
}

impl fmt::Display for ResourceId {
    /// `Deployment.apps/web/frontend`, `ConfigMap/web/settings`, `Namespace/web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_parts().iter().try_for_each(|p| f.write_str(p))
    }
}

/// Group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// A rendered object: canonical YAML and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub api_version: String,
    /// Canonical YAML (see [`yaml::to_canonical`]).
    pub manifest: Arc<str>,
    pub digest: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidObject {
    #[error("document is not a mapping")]
    NotAMapping,
    #[error("missing or empty {0}")]
    Missing(&'static str),
    #[error("{field} {value:?} is not a valid name: {reason}")]
    BadName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Checks a name or namespace before it becomes part of a path or an API URL.
pub fn validate_name(field: &'static str, value: &str) -> Result<(), InvalidObject> {
    let bad = |reason| {
        Err(InvalidObject::BadName {
            field,
            value: value.to_string(),
            reason,
        })
    };
    if value.len() > 253 {
        return bad("longer than 253 characters");
    }
    if value == "." || value == ".." {
        return bad("is a relative path segment");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'@'))
    {
        return bad("only letters, digits, '-', '.', '_', ':' and '@' are allowed");
    }
    Ok(())
}

impl Resource {
    /// Builds a resource from a parsed object, checking what identifies it.
    pub fn from_value(value: &Value) -> Result<Resource, InvalidObject> {
        Self::build(value, None)
    }

    /// A resource sent as `text` byte for byte (a SOPS document as written:
    /// re-encoding it would break its MAC); `value` is `text` parsed.
    pub fn from_value_as_written(value: &Value, text: Arc<str>) -> Result<Resource, InvalidObject> {
        Self::build(value, Some(text))
    }

    fn build(value: &Value, text: Option<Arc<str>>) -> Result<Resource, InvalidObject> {
        let obj = value.as_object().ok_or(InvalidObject::NotAMapping)?;
        let str_field = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let api_version =
            str_field(obj.get("apiVersion")).ok_or(InvalidObject::Missing("apiVersion"))?;
        let kind = str_field(obj.get("kind")).ok_or(InvalidObject::Missing("kind"))?;
        let meta = obj.get("metadata");
        let name = str_field(meta.and_then(|m| m.get("name")))
            .ok_or(InvalidObject::Missing("metadata.name"))?;
        let namespace = str_field(meta.and_then(|m| m.get("namespace"))).unwrap_or_default();
        validate_name("metadata.name", &name)?;
        if !namespace.is_empty() {
            validate_name("metadata.namespace", &namespace)?;
        }
        if !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InvalidObject::BadName {
                field: "kind",
                value: kind,
                reason: "only letters and digits are allowed",
            });
        }
        let manifest: Arc<str> = text.unwrap_or_else(|| yaml::to_canonical(value).into());
        let digest = digest::sha256(manifest.as_bytes());
        Ok(Resource {
            id: ResourceId {
                group: group_of(&api_version).to_string(),
                kind,
                namespace,
                name,
            },
            api_version,
            manifest,
            digest,
        })
    }
}

/// Kinds that are cluster-scoped in every Kubernetes version fleet supports.
/// Objects of other kinds get the app's default namespace when they have none,
/// unless a CustomResourceDefinition in the same render declares them `Cluster`.
pub const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
}
