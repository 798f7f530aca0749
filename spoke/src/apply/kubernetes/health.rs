//! Health of a live object, from its `status`: pure, over JSON.
//!
//! Rollouts (Deployment, StatefulSet, DaemonSet) follow `kubectl rollout
//! status`; Jobs, PVCs, LoadBalancer Services and CRDs have their own rules;
//! everything else is judged by its `Ready`/`Available`/`Stalled` conditions
//! and `status.observedGeneration`, and is healthy when it has none.

use serde_json::Value;

use crate::apply::Health;

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The condition of type `ty`: (status, reason, message).
fn condition<'a>(obj: &'a Value, ty: &str) -> Option<(&'a str, &'a str, &'a str)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .map(|c| {
            let s = |k| c.get(k).and_then(Value::as_str).unwrap_or("");
            (s("status"), s("reason"), s("message"))
        })
}

fn why(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (false, false) => format!("{reason}: {message}"),
    }
}

/// `Some(progressing)` while the controller has not seen the latest spec.
fn generation_pending(obj: &Value) -> Option<Health> {
    let generation = int(obj, &["metadata", "generation"])?;
    let observed = int(obj, &["status", "observedGeneration"]).unwrap_or(0);
    (observed < generation).then(|| {
        Health::progressing(format!(
            "waiting for the controller to observe generation {generation} (observed {observed})"
        ))
    })
}

/// Health of `obj`, of API group `group` and kind `kind`.
pub fn evaluate(group: &str, kind: &str, obj: &Value) -> Health {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Health::progressing("being deleted");
    }
    match (group, kind) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("batch", "Job") => job(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("", "Namespace") => match str_at(obj, &["status", "phase"]) {
            Some("Terminating") => Health::progressing("namespace is terminating"),
            _ => Health::healthy(),
        },
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        _ => generic(obj),
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(p) = generation_pending(obj) {
        return p;
    }
    if let Some(("False", reason @ "ProgressDeadlineExceeded", msg)) =
        condition(obj, "Progressing").map(|(s, r, m)| (s, r, m))
    {
        return Health::degraded(why(reason, msg));
    }
    if obj.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        return Health::progressing("rollout is paused");
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let current = int(obj, &["status", "replicas"]).unwrap_or(0);
    let updated = int(obj, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = int(obj, &["status", "availableReplicas"]).unwrap_or(0);
    if updated < want {
        Health::progressing(format!("{updated} of {want} replicas updated"))
    } else if current > updated {
        Health::progressing(format!(
            "{} old replicas pending termination",
            current - updated
        ))
    } else if available < updated {
        Health::progressing(format!(
            "{available} of {updated} updated replicas available"
        ))
    } else {
        Health::healthy()
    }
}

fn statefulset(obj: &Value) -> Health {
    if let Some(p) = generation_pending(obj) {
        return p;
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let ready = int(obj, &["status", "readyReplicas"]).unwrap_or(0);
    if ready < want {
        return Health::progressing(format!("{ready} of {want} replicas ready"));
    }
    if str_at(obj, &["spec", "updateStrategy", "type"]) == Some("OnDelete") {
        return Health::healthy();
    }
    let partition = int(
        obj,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    )
    .unwrap_or(0);
    let updated = int(obj, &["status", "updatedReplicas"]).unwrap_or(0);
    if updated < want - partition {
        return Health::progressing(format!(
            "{updated} of {} replicas updated",
            want - partition
        ));
    }
    let current = str_at(obj, &["status", "currentRevision"]);
    let update = str_at(obj, &["status", "updateRevision"]);
    if partition == 0 && current != update {
        return Health::progressing("waiting for the rolling update to finish");
    }
    Health::healthy()
}

fn daemonset(obj: &Value) -> Health {
    if let Some(p) = generation_pending(obj) {
        return p;
    }
    let want = int(obj, &["status", "desiredNumberScheduled"]).unwrap_or(0);
    let updated = int(obj, &["status", "updatedNumberScheduled"]).unwrap_or(0);
    let available = int(obj, &["status", "numberAvailable"]).unwrap_or(0);
    if updated < want {
        Health::progressing(format!("{updated} of {want} pods updated"))
    } else if available < want {
        Health::progressing(format!("{available} of {want} updated pods available"))
    } else {
        Health::healthy()
    }
}

fn job(obj: &Value) -> Health {
    if let Some(("True", r, m)) = condition(obj, "Failed") {
        return Health::degraded(why(r, m));
    }
    if let Some(("True", _, _)) = condition(obj, "Complete") {
        return Health::healthy();
    }
    if obj.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        return Health::progressing("job is suspended");
    }
    Health::progressing("job has not completed")
}

fn pvc(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        Some("Bound") => Health::healthy(),
        Some("Lost") => Health::degraded("claim lost its volume"),
        Some(p) => Health::progressing(format!("claim is {p}")),
        None => Health::progressing("claim is not bound yet"),
    }
}

fn service(obj: &Value) -> Health {
    if str_at(obj, &["spec", "type"]) != Some("LoadBalancer") {
        return Health::healthy();
    }
    let has_address = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_address {
        Health::healthy()
    } else {
        Health::progressing("waiting for a load balancer address")
    }
}

fn crd(obj: &Value) -> Health {
    if let Some(("False", r, m)) = condition(obj, "NamesAccepted") {
        return Health::degraded(why(r, m));
    }
    match condition(obj, "Established") {
        Some(("True", _, _)) => Health::healthy(),
        _ => Health::progressing("not established yet"),
    }
}

/// Conditions in the style of kstatus: `Stalled=True` is degraded; `Ready`
/// (or else `Available`) decides; no conditions at all is healthy.
pub fn generic(obj: &Value) -> Health {
    if let Some(("True", r, m)) = condition(obj, "Stalled") {
        return Health::degraded(why(r, m));
    }
    if let Some(p) = obj
        .pointer("/status/observedGeneration")
        .and_then(|_| generation_pending(obj))
    {
        return p;
    }
    let verdict = condition(obj, "Ready").or_else(|| condition(obj, "Available"));
    match verdict {
        Some(("True", _, _)) | None => Health::healthy(),
        Some(("False", r, m)) if r.ends_with("Failed") || r == "Error" => {
            Health::degraded(why(r, m))
        }
        Some((_, r, m)) => {
            let w = why(r, m);
            Health::progressing(if w.is_empty() { "not ready".into() } else { w })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::HealthState::{self, *};
    use serde_json::json;

    #[track_caller]
    fn check(group: &str, kind: &str, obj: Value, state: HealthState, reason: &str) {
        let h = evaluate(group, kind, &obj);
        assert_eq!(h.state, state, "{kind}: {h:?}");
        assert!(
            h.reason.contains(reason),
            "{kind}: reason {:?} lacks {reason:?}",
            h.reason
        );
    }

    #[test]
    fn deployments() {
        let d = |generation: i64, status: Value| json!({"metadata": {"generation": generation}, "spec": {"replicas": 3}, "status": status});
        let table = [
            (
                d(2, json!({"observedGeneration": 1})),
                Progressing,
                "observe generation 2",
            ),
            (
                d(
                    1,
                    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1}),
                ),
                Progressing,
                "1 of 3 replicas updated",
            ),
            (
                d(
                    1,
                    json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                ),
                Progressing,
                "1 old replicas",
            ),
            (
                d(
                    1,
                    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                ),
                Progressing,
                "2 of 3 updated replicas available",
            ),
            (
                d(
                    1,
                    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                ),
                Healthy,
                "",
            ),
            (
                d(
                    1,
                    json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}),
                ),
                Degraded,
                "ProgressDeadlineExceeded: too slow",
            ),
        ];
        for (obj, state, reason) in table {
            check("apps", "Deployment", obj, state, reason);
        }
    }

    #[test]
    fn statefulsets_and_daemonsets() {
        let sts = |status: Value| json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": status});
        check(
            "apps",
            "StatefulSet",
            sts(json!({"observedGeneration": 1, "readyReplicas": 1})),
            Progressing,
            "1 of 2 replicas ready",
        );
        check(
            "apps",
            "StatefulSet",
            sts(
                json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "b"}),
            ),
            Progressing,
            "rolling update",
        );
        check(
            "apps",
            "StatefulSet",
            sts(
                json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "b", "updateRevision": "b"}),
            ),
            Healthy,
            "",
        );
        let ds = |status: Value| json!({"metadata": {"generation": 1}, "status": status});
        check(
            "apps",
            "DaemonSet",
            ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2}),
            ),
            Progressing,
            "2 of 3 pods updated",
        );
        check(
            "apps",
            "DaemonSet",
            ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}),
            ),
            Progressing,
            "1 of 3",
        );
        check(
            "apps",
            "DaemonSet",
            ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}),
            ),
            Healthy,
            "",
        );
    }

    #[test]
    fn jobs_claims_services_crds() {
        let cond = |ty: &str, status: &str| json!({"status": {"conditions": [{"type": ty, "status": status, "reason": "R", "message": "m"}]}});
        check("batch", "Job", cond("Complete", "True"), Healthy, "");
        check("batch", "Job", cond("Failed", "True"), Degraded, "R: m");
        check("batch", "Job", json!({}), Progressing, "not completed");
        check(
            "",
            "PersistentVolumeClaim",
            json!({"status": {"phase": "Bound"}}),
            Healthy,
            "",
        );
        check(
            "",
            "PersistentVolumeClaim",
            json!({"status": {"phase": "Pending"}}),
            Progressing,
            "Pending",
        );
        check(
            "",
            "PersistentVolumeClaim",
            json!({"status": {"phase": "Lost"}}),
            Degraded,
            "lost",
        );
        check(
            "",
            "Service",
            json!({"spec": {"type": "ClusterIP"}}),
            Healthy,
            "",
        );
        check(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}),
            Progressing,
            "load balancer",
        );
        check(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            Healthy,
            "",
        );
        check(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            cond("Established", "True"),
            Healthy,
            "",
        );
        check(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({}),
            Progressing,
            "not established",
        );
        check(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            cond("NamesAccepted", "False"),
            Degraded,
            "R: m",
        );
    }

    #[test]
    fn generic_conditions() {
        let cond = |ty: &str, status: &str, reason: &str| json!({"status": {"conditions": [{"type": ty, "status": status, "reason": reason}]}});
        check("example.com", "Widget", json!({"spec": {}}), Healthy, "");
        check(
            "example.com",
            "Widget",
            cond("Ready", "True", ""),
            Healthy,
            "",
        );
        check(
            "example.com",
            "Widget",
            cond("Ready", "False", "Reconciling"),
            Progressing,
            "Reconciling",
        );
        check(
            "example.com",
            "Widget",
            cond("Ready", "False", "InstallFailed"),
            Degraded,
            "InstallFailed",
        );
        check(
            "example.com",
            "Widget",
            cond("Available", "False", ""),
            Progressing,
            "not ready",
        );
        check(
            "example.com",
            "Widget",
            cond("Stalled", "True", "Boom"),
            Degraded,
            "Boom",
        );
        check(
            "example.com",
            "Widget",
            json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2}}),
            Progressing,
            "generation 3",
        );
        check(
            "",
            "ConfigMap",
            json!({"metadata": {"deletionTimestamp": "x"}}),
            Progressing,
            "being deleted",
        );
    }
}
