//! Output order: `sortOptions` of the kustomization built (kustomize reads
//! only the top one), `legacy` by default as `kubectl kustomize` does, or
//! `fifo` (build order).

use std::collections::HashMap;

use serde::Deserialize;

use super::resmap::{Resource, group_version};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SortOptions {
    #[serde(default)]
    pub order: String,
    #[serde(default)]
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LegacySortOptions {
    #[serde(default)]
    pub order_first: Vec<String>,
    #[serde(default)]
    pub order_last: Vec<String>,
}

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Checks the options as kustomize's SortOrderTransformer does.
pub fn validate(o: &SortOptions) -> Result<(), String> {
    match o.order.as_str() {
        "fifo" if o.legacy_sort_options.is_some() => Err(
            "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'"
                .into(),
        ),
        "fifo" | "legacy" => Ok(()),
        _ => Err("the field 'sortOptions.order' must be one of [fifo, legacy]".into()),
    }
}

fn or(s: &str, empty: &'static str) -> String {
    if s.is_empty() { empty.into() } else { s.into() }
}

fn gvk_string(g: &str, v: &str, k: &str) -> String {
    format!("{}_{}_{}", or(g, "~G"), or(v, "~V"), or(k, "~K"))
}

/// Sorts `list` in place; `None` options mean kubectl's default (legacy).
pub fn sort(list: &mut [Resource], opts: Option<&SortOptions>) {
    let (first, last): (Vec<String>, Vec<String>) = match opts {
        Some(o) if o.order == "fifo" => return,
        Some(SortOptions {
            legacy_sort_options: Some(l),
            ..
        }) => (l.order_first.clone(), l.order_last.clone()),
        _ => (
            ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        ),
    };
    let mut orders: HashMap<String, i64> = HashMap::new();
    let n = first.len() as i64;
    for (i, k) in first.iter().enumerate() {
        orders.insert(k.clone(), -n + i as i64);
    }
    for (i, k) in last.iter().enumerate() {
        orders.insert(k.clone(), 1 + i as i64);
    }
    let key = |r: &Resource| {
        let (g, v) = group_version(r.api_version());
        let kind = r.kind();
        let gvk = gvk_string(g, v, kind);
        let id = format!("{gvk}|{}|{}", or(r.namespace(), "~X"), or(r.name(), "~N"));
        (
            orders.get(kind).copied().unwrap_or(0),
            g.is_empty(),
            kind == "Namespace",
            gvk,
            id,
        )
    };
    list.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        if ka.3 != kb.3 {
            if ka.0 != kb.0 {
                return ka.0.cmp(&kb.0);
            }
            // Namespaces of the core group sort after other Namespace kinds.
            if ka.2 && kb.2 && (ka.1 || kb.1) {
                return kb.3.cmp(&ka.3);
            }
            return ka.3.cmp(&kb.3);
        }
        ka.4.cmp(&kb.4)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(api: &str, kind: &str, name: &str) -> Resource {
        Resource::new(
            json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn names(l: &[Resource]) -> Vec<String> {
        l.iter()
            .map(|r| format!("{}/{}", r.kind(), r.name()))
            .collect()
    }

    #[test]
    fn legacy_puts_namespaces_first_and_webhooks_last() {
        let mut l = vec![
            res(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "v",
            ),
            res("apps/v1", "Deployment", "b"),
            res("example.com/v1", "Widget", "w"),
            res("apps/v1", "Deployment", "a"),
            res("v1", "Service", "s"),
            res("v1", "Namespace", "n"),
        ];
        sort(&mut l, None);
        assert_eq!(
            names(&l),
            [
                "Namespace/n",
                "Service/s",
                "Deployment/a",
                "Deployment/b",
                "Widget/w",
                "ValidatingWebhookConfiguration/v"
            ]
        );
        let fifo = SortOptions {
            order: "fifo".into(),
            legacy_sort_options: None,
        };
        let before = names(&l);
        let mut l2 = l.clone();
        l2.reverse();
        sort(&mut l2, Some(&fifo));
        assert_ne!(names(&l2), before);
    }

    #[test]
    fn options_are_checked() {
        let bad = SortOptions {
            order: "random".into(),
            legacy_sort_options: None,
        };
        assert!(validate(&bad).unwrap_err().contains("sortOptions.order"));
        let both = SortOptions {
            order: "fifo".into(),
            legacy_sort_options: Some(LegacySortOptions::default()),
        };
        assert!(validate(&both).unwrap_err().contains("legacySortOptions"));
    }
}
