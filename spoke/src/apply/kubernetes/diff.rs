//! Drift: does a live object still hold the fields fleet applies? Pure.
//!
//! Only the fields of the applied manifest are compared (fleet's managed
//! fields under server-side apply); whatever other managers, controllers and
//! API defaulting add (`status`, defaulted fields, extra labels) is not drift.
//! The API server's normal forms are tolerated: a field dropped because it
//! held its zero value, and quantities written another way (`0.5` / `500m`).

use serde_json::Value;

/// The most differences a report lists.
const MAX_DIFFS: usize = 5;

/// Paths (`spec.replicas`, `spec.template.spec.containers[0].image`) where
/// `live` no longer holds what `desired` sets; empty when in sync.
pub fn drift(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(desired, Some(live), &mut String::new(), &mut out);
    out
}

fn walk(desired: &Value, live: Option<&Value>, path: &mut String, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFFS {
        return;
    }
    match (desired, live) {
        (Value::Null, _) => {}
        (Value::Object(d), Some(Value::Object(l))) => {
            for (k, v) in d {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(v, l.get(k), path, out);
                path.truncate(len);
            }
        }
        (Value::Array(d), Some(Value::Array(l))) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(dv, Some(lv), path, out);
                path.truncate(len);
            }
        }
        (d, None) if is_zero(d) => {}
        (d, Some(l)) if scalar_eq(d, l) => {}
        _ => out.push(if path.is_empty() {
            "(object)".into()
        } else {
            path.clone()
        }),
    }
}

/// Values the API server drops from a stored object (Go's `omitempty`).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn scalar_eq(d: &Value, l: &Value) -> bool {
    if d == l {
        return true;
    }
    match (d, l) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // Quantities: `1` and `"1"`, `"0.5"` and `"500m"`, `"1024Mi"` and `"1Gi"`.
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            match (quantity(d), quantity(l)) {
                (Some(a), Some(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()) * 4.0,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A Kubernetes quantity as a number (`500m` -> 0.5, `1Ki` -> 1024).
pub fn quantity(v: &Value) -> Option<f64> {
    let s = match v {
        Value::Number(n) => return n.as_f64(),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    // The suffix starts at the first letter that is not an exponent (`1e3`).
    let b = s.as_bytes();
    let split = (0..b.len())
        .find(|&i| {
            b[i].is_ascii_alphabetic()
                && !(matches!(b[i], b'e' | b'E')
                    && b.get(i + 1)
                        .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+'))
        })
        .unwrap_or(b.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mul = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * mul)
}

/// The field manager that last wrote `live` other than `ours`, from
/// `metadata.managedFields` (the entry with the latest `time`): who drifted it.
pub fn last_other_manager<'a>(live: &'a Value, ours: &str) -> Option<&'a str> {
    live.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter(|e| e.get("manager").and_then(Value::as_str) != Some(ours))
        .max_by(|a, b| {
            let t = |e: &Value| {
                e.get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            t(a).cmp(&t(b))
        })
        .and_then(|e| e.get("manager")?.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(desired: Value, live: Value, expected: &[&str]) {
        assert_eq!(
            drift(&desired, &live),
            expected,
            "desired {desired} live {live}"
        );
    }

    #[test]
    fn compares_only_the_fields_fleet_applies() {
        let d =
            json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"replicas": 2}});
        let table = [
            // Added fields, status and other labels are not drift.
            (
                json!({"metadata": {"name": "a", "uid": "u", "labels": {"app": "web", "x": "y"}}, "spec": {"replicas": 2, "paused": false}, "status": {}}),
                vec![],
            ),
            (
                json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"replicas": 5}}),
                vec!["spec.replicas"],
            ),
            (
                json!({"metadata": {"name": "a", "labels": {}}, "spec": {"replicas": 2}}),
                vec!["metadata.labels.app"],
            ),
            (
                json!({"metadata": {"name": "a", "labels": {"app": "web"}}}),
                vec!["spec"],
            ),
        ];
        for (live, expected) in table {
            check(d.clone(), live, &expected);
        }
    }

    #[test]
    fn lists_compare_element_by_element() {
        let d = json!({"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        check(
            d.clone(),
            json!({"spec": {"containers": [{"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}]}}),
            &[],
        );
        check(
            d.clone(),
            json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}),
            &["spec.containers[0].image"],
        );
        check(d, json!({"spec": {"containers": []}}), &["spec.containers"]);
    }

    #[test]
    fn normal_forms_of_the_api_server_are_not_drift() {
        check(
            json!({"spec": {"hostNetwork": false, "ports": [], "x": ""}}),
            json!({"spec": {}}),
            &[],
        );
        check(
            json!({"cpu": "0.5", "mem": "1024Mi", "n": 1}),
            json!({"cpu": "500m", "mem": "1Gi", "n": "1"}),
            &[],
        );
        check(json!({"cpu": "1"}), json!({"cpu": "2"}), &["cpu"]);
        check(json!({"s": "true"}), json!({"s": true}), &["s"]);
    }

    #[test]
    fn quantities() {
        for (q, v) in [
            ("500m", 0.5),
            ("1Ki", 1024.0),
            ("2", 2.0),
            ("1e3", 1000.0),
            ("1.5G", 1.5e9),
            ("2Ei", 2.0 * 1024f64.powi(6)),
        ] {
            assert_eq!(quantity(&json!(q)), Some(v), "{q}");
        }
        assert_eq!(quantity(&json!("web")), None);
        assert_eq!(quantity(&json!("1x")), None);
    }

    #[test]
    fn names_who_changed_it() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "fleet", "operation": "Apply", "time": "2026-01-01T00:00:09Z"},
            {"manager": "kube-controller-manager", "operation": "Update", "time": "2026-01-01T00:00:01Z"},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:00:05Z"},
        ]}});
        assert_eq!(last_other_manager(&live, "fleet"), Some("kubectl-edit"));
        assert_eq!(last_other_manager(&json!({}), "fleet"), None);
    }
}
