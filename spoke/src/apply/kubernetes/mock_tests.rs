//! The kube client paths against a scripted API server (`tower_test::mock`),
//! as kube-rs does in `kube/src/mock_tests.rs`: each test runs the applier
//! and a scenario side by side; the scenario asserts every request, in order,
//! and answers it.

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_render::{AppState, CommitMeta, DesiredState, Resource, SyncPolicy};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::plan::{ANNOTATION_PRUNE, LABEL_CLUSTER};
use super::*;
use crate::apply::{Inventory, Outcome};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const CLUSTER: &str = "c1";

fn applier() -> (KubernetesApplier, Server) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let opts = Options {
        poll_interval: Duration::from_millis(5),
        step_timeout: Duration::from_secs(5),
        watch: false,
        ..Options::default()
    };
    (KubernetesApplier::new(client, opts), Server(handle))
}

/// One request as the scenario sees it.
struct Call {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
    send: tower_test::mock::SendResponse<Response<Body>>,
}

impl Call {
    fn reply(self, status: u16, body: &Value) {
        self.send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    /// Answers a server-side apply with the applied object (plus `extra`).
    fn echo(self, extra: Value) {
        let mut b = self.body.clone();
        if let (Some(b), Some(x)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(x.clone());
        }
        self.reply(200, &b);
    }

    #[track_caller]
    fn assert_apply(&self, force: bool) {
        assert_eq!(self.method, "PATCH", "{}", self.path);
        assert_eq!(
            self.content_type, "application/apply-patch+yaml",
            "{}",
            self.path
        );
        assert_eq!(
            self.query.get("fieldManager").map(String::as_str),
            Some("fleet"),
            "{}",
            self.path
        );
        assert_eq!(
            self.query.get("force").map(String::as_str),
            force.then_some("true"),
            "force on {}",
            self.path
        );
    }
}

struct Server(Handle);

impl Server {
    /// The next request, which must be `method path`.
    async fn next(&mut self, method: &str, path: &str) -> Call {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
            .unwrap_or_else(|| panic!("the applier stopped before {method} {path}"));
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let call = Call {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: form_urlencoded_pairs(parts.uri.query().unwrap_or("")),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            send,
        };
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            (method, path),
            "unexpected request"
        );
        call
    }
}

fn form_urlencoded_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.replace("%2F", "/").replace("%3D", "="))
        })
        .collect()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn resources(api_version: &str, list: &[(&str, &str, bool)]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version,
        "resources": list.iter().map(|(name, kind, namespaced)| json!({
            "name": name, "singularName": "", "kind": kind, "namespaced": namespaced, "verbs": ["get", "list", "watch", "patch", "delete"]
        })).collect::<Vec<_>>()
    })
}

fn core_v1() -> Value {
    resources(
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("configmaps", "ConfigMap", true),
            ("configmaps/status", "ConfigMap", true),
        ],
    )
}

fn state(objects: Vec<Value>, sync: SyncPolicy) -> DesiredState {
    let mut apps = BTreeMap::new();
    apps.insert(
        "web".to_string(),
        AppState {
            source_revision: "c".into(),
            error: None,
            resources: objects
                .iter()
                .map(|o| Resource::from_value(o).unwrap())
                .collect(),
        },
    );
    DesiredState::new(CLUSTER.into(), CommitMeta::default(), sync, apps)
}

fn configmap(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "web"}, "data": {"k": value}})
}

fn inventory_of(call: &Call) -> BTreeMap<String, Value> {
    serde_json::from_str(call.body["data"]["inventory.json"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn applies_crds_then_waits_for_established_then_namespaces_then_waves() {
    let (mut a, mut api) = applier();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "web", "annotations": {"fleet.dev/sync-wave": "1"}}, "spec": {"size": 3}});
    // Render order is deliberately the reverse of apply order.
    let s = state(
        vec![
            widget,
            configmap("c1", "1"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
            crd,
        ],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    let scenario = async move {
        api.next(
            "GET",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .reply(404, &not_found());
        let ahead = api
            .next(
                "PATCH",
                "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
            )
            .await;
        ahead.assert_apply(true);
        assert_eq!(
            inventory_of(&ahead).len(),
            4,
            "the write-ahead inventory names every desired object"
        );
        ahead.echo(json!({}));

        api.next("GET", "/apis/apiextensions.k8s.io/v1")
            .await
            .reply(
                200,
                &resources(
                    "apiextensions.k8s.io/v1",
                    &[(
                        "customresourcedefinitions",
                        "CustomResourceDefinition",
                        false,
                    )],
                ),
            );
        let p = api
            .next(
                "PATCH",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            )
            .await;
        p.assert_apply(false);
        assert_eq!(p.body["metadata"]["labels"][LABEL_CLUSTER], CLUSTER);
        assert_eq!(p.body["metadata"]["annotations"]["fleet.dev/app"], "web");
        let mut established = p.body.clone();
        p.echo(json!({}));
        // Not established in the apply response: the applier reads it until it is.
        established["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        api.next(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        )
        .await
        .reply(200, &established);

        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let ns = api.next("PATCH", "/api/v1/namespaces/web").await;
        ns.assert_apply(false);
        assert!(ns.body["metadata"].get("namespace").is_none());
        ns.echo(json!({"status": {"phase": "Active"}}));

        let cm = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        cm.assert_apply(false);
        cm.echo(json!({}));

        api.next("GET", "/apis/example.com/v1").await.reply(
            200,
            &resources("example.com/v1", &[("widgets", "Widget", true)]),
        );
        let w = api
            .next("PATCH", "/apis/example.com/v1/namespaces/web/widgets/w1")
            .await;
        w.assert_apply(false);
        w.echo(json!({}));

        let fin = api
            .next(
                "PATCH",
                "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
            )
            .await;
        let entries = inventory_of(&fin);
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries["k8s:Widget.example.com/web/w1"]["api_version"],
            "example.com/v1"
        );
        assert!(
            entries
                .values()
                .all(|e| !e["digest"].as_str().unwrap().is_empty())
        );
        fin.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    assert!(
        outs.iter().all(|o| o.outcome == Outcome::Applied),
        "{outs:#?}"
    );
    assert_eq!(outs.len(), 4);
    assert_eq!(inv.len(), 4);
    let crd = outs
        .iter()
        .find(|o| o.id.starts_with("CustomResourceDefinition"))
        .unwrap();
    assert_eq!(
        crd.health.as_ref().map(|h| h.state),
        Some(HealthState::Healthy)
    );
}

#[tokio::test]
async fn a_wave_that_does_not_become_healthy_holds_back_the_next() {
    let (mut a, mut api) = applier();
    a.opts.step_timeout = Duration::from_millis(30);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "web"},
        "spec": {"replicas": 1}});
    let mut later = configmap("after", "1");
    later["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": "1"});
    let s = state(vec![deploy, later], SyncPolicy::default());
    let mut inv = Inventory::default();
    let scenario = async move {
        api.next(
            "GET",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .reply(404, &not_found());
        api.next(
            "PATCH",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .echo(json!({}));
        api.next("GET", "/apis/apps/v1").await.reply(
            200,
            &resources("apps/v1", &[("deployments", "Deployment", true)]),
        );
        let p = api
            .next("PATCH", "/apis/apps/v1/namespaces/web/deployments/d")
            .await;
        let mut progressing = p.body.clone();
        p.echo(json!({"metadata": {"name": "d", "namespace": "web", "generation": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}}));
        progressing["metadata"]["generation"] = json!(1);
        progressing["status"] =
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0});
        // Read until the step timeout; the ConfigMap of wave 1 is never applied.
        loop {
            let (req, send) = api.0.next_request().await.expect("request");
            if req.method() == http::Method::PATCH {
                assert_eq!(
                    req.uri().path(),
                    "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
                    "nothing of wave 1 may be applied"
                );
                let b = req.into_body().collect_bytes().await.unwrap();
                send.send_response(Response::new(Body::from(b.to_vec())));
                break;
            }
            assert_eq!(
                req.uri().path(),
                "/apis/apps/v1/namespaces/web/deployments/d"
            );
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&progressing).unwrap(),
            )));
        }
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let d = outs
        .iter()
        .find(|o| o.id == "Deployment.apps/web/d")
        .unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(
        d.health.as_ref().unwrap().state,
        HealthState::Progressing,
        "{d:?}"
    );
    let cm = outs.iter().find(|o| o.id == "ConfigMap/web/after").unwrap();
    assert_eq!(cm.outcome, Outcome::Pending, "{cm:?}");
    assert!(
        cm.message.contains("sync wave 0 not healthy")
            && cm.message.contains("0 of 1 replicas updated"),
        "{}",
        cm.message
    );
    assert!(a.incomplete, "the next drift check resumes the sync");
}

#[tokio::test]
async fn conflicts_are_reported_per_resource_and_forced_only_by_policy() {
    for force in [false, true] {
        let (mut a, mut api) = applier();
        let sync = SyncPolicy {
            force_conflicts: force,
            ..SyncPolicy::default()
        };
        let s = state(vec![configmap("c1", "1")], sync);
        let mut inv = Inventory::default();
        let scenario = async move {
            api.next(
                "GET",
                "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
            )
            .await
            .reply(404, &not_found());
            api.next(
                "PATCH",
                "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
            )
            .await
            .echo(json!({}));
            api.next("GET", "/api/v1").await.reply(200, &core_v1());
            let p = api
                .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
                .await;
            p.assert_apply(force);
            if force {
                p.echo(json!({}));
            } else {
                p.reply(409, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
                    "message": "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.k"}));
            }
            // Applied or not, the inventory written ahead stays correct.
            if force {
                api.next(
                    "PATCH",
                    "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
                )
                .await
                .echo(json!({}));
            } else {
                let fin = api
                    .next(
                        "PATCH",
                        "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
                    )
                    .await;
                assert!(inventory_of(&fin).is_empty(), "nothing was applied");
                fin.echo(json!({}));
            }
        };
        let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
        if force {
            assert_eq!(outs[0].outcome, Outcome::Applied, "{outs:?}");
        } else {
            assert_eq!(outs[0].outcome, Outcome::Failed);
            assert!(
                outs[0].message.contains("kubectl-edit")
                    && outs[0].message.contains("forceConflicts"),
                "{}",
                outs[0].message
            );
        }
    }
}

#[tokio::test]
async fn unknown_kind_is_a_per_resource_error() {
    let (mut a, mut api) = applier();
    let s = state(
        vec![
            json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "web"}}),
            configmap("c1", "1"),
        ],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    let scenario = async move {
        api.next(
            "GET",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .reply(404, &not_found());
        api.next(
            "PATCH",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .echo(json!({}));
        api.next("GET", "/apis/example.com/v1")
            .await
            .reply(404, &not_found());
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        api.next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await
            .echo(json!({}));
        api.next(
            "PATCH",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let g = outs.iter().find(|o| o.id.starts_with("Gadget")).unwrap();
    assert_eq!(g.outcome, Outcome::Failed);
    assert!(
        g.message.contains("unknown apiVersion example.com/v1"),
        "{}",
        g.message
    );
    assert!(
        outs.iter()
            .any(|o| o.id == "ConfigMap/web/c1" && o.outcome == Outcome::Applied)
    );
}

#[tokio::test]
async fn a_spoke_that_lost_its_disk_prunes_from_the_cluster_inventory_in_reverse_order() {
    let (mut a, mut api) = applier();
    let s = state(vec![], SyncPolicy::default());
    let mut inv = Inventory::default(); // the sled cache is gone
    let entry = |id: &str, av: &str| {
        (
            format!("k8s:{id}"),
            json!({"app": "old", "id": id, "digest": "d", "api_version": av}),
        )
    };
    let recorded: serde_json::Map<String, Value> = [
        entry("Namespace/old", "v1"),
        entry(
            "CustomResourceDefinition.apiextensions.k8s.io/gadgets.example.com",
            "apiextensions.k8s.io/v1",
        ),
        entry("Gadget.example.com/old/g1", "example.com/v1"),
        entry("ConfigMap/old/keep", "v1"),
        entry("ConfigMap/old/stray", "v1"),
    ]
    .into_iter()
    .collect();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "fleet-inventory", "namespace": "fleet-system", "labels": {LABEL_CLUSTER: CLUSTER}},
        "data": {"inventory.json": serde_json::to_string(&recorded).unwrap()}});
    let ours = |extra: Value| {
        let mut m = json!({"metadata": {"name": "x", "labels": {LABEL_CLUSTER: CLUSTER}}});
        if let (Some(m), Some(x)) = (m["metadata"].as_object_mut(), extra.as_object()) {
            m.extend(x.clone());
        }
        m
    };
    let scenario = async move {
        api.next(
            "GET",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .reply(200, &cm);
        // Nothing desired and nothing new: the write-ahead record is unchanged, so not written.
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        api.next("GET", "/api/v1/namespaces/old/configmaps/keep")
            .await
            .reply(
                200,
                &ours(json!({"annotations": {ANNOTATION_PRUNE: "false"}})),
            );
        api.next("GET", "/api/v1/namespaces/old/configmaps/stray")
            .await
            .reply(
                200,
                &json!({"metadata": {"name": "stray", "labels": {LABEL_CLUSTER: "another"}}}),
            );
        api.next("GET", "/apis/example.com/v1").await.reply(
            200,
            &resources("example.com/v1", &[("gadgets", "Gadget", true)]),
        );
        api.next("GET", "/apis/example.com/v1/namespaces/old/gadgets/g1")
            .await
            .reply(200, &ours(json!({})));
        let d = api
            .next("DELETE", "/apis/example.com/v1/namespaces/old/gadgets/g1")
            .await;
        assert_eq!(d.body["propagationPolicy"], "Background");
        d.reply(200, &ours(json!({})));
        api.next("GET", "/apis/apiextensions.k8s.io/v1")
            .await
            .reply(
                200,
                &resources(
                    "apiextensions.k8s.io/v1",
                    &[(
                        "customresourcedefinitions",
                        "CustomResourceDefinition",
                        false,
                    )],
                ),
            );
        api.next(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
        )
        .await
        .reply(200, &ours(json!({})));
        api.next(
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
        )
        .await
        .reply(200, &ours(json!({})));
        api.next("GET", "/api/v1/namespaces/old")
            .await
            .reply(200, &ours(json!({})));
        api.next("DELETE", "/api/v1/namespaces/old")
            .await
            .reply(200, &ours(json!({})));
        let fin = api
            .next(
                "PATCH",
                "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
            )
            .await;
        assert_eq!(
            inventory_of(&fin).keys().collect::<Vec<_>>(),
            ["k8s:ConfigMap/old/keep"]
        );
        fin.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let got: Vec<(&str, Outcome)> = outs.iter().map(|o| (o.id.as_str(), o.outcome)).collect();
    assert_eq!(
        got,
        [
            ("ConfigMap/old/keep", Outcome::Orphaned),
            ("ConfigMap/old/stray", Outcome::Orphaned),
            ("Gadget.example.com/old/g1", Outcome::Pruned),
            (
                "CustomResourceDefinition.apiextensions.k8s.io/gadgets.example.com",
                Outcome::Pruned
            ),
            ("Namespace/old", Outcome::Pruned),
        ]
    );
    assert_eq!(inv.keys().collect::<Vec<_>>(), ["k8s:ConfigMap/old/keep"]);
}

/// Applies one ConfigMap so the drift tests start from a synced state.
async fn synced(
    a: &mut KubernetesApplier,
    api: &mut Server,
    s: &DesiredState,
    inv: &mut Inventory,
) -> Value {
    let scenario = async {
        api.next(
            "GET",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .reply(404, &not_found());
        api.next(
            "PATCH",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        let live = p.body.clone();
        p.echo(json!({}));
        api.next(
            "PATCH",
            "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory",
        )
        .await
        .echo(json!({}));
        live
    };
    let (outs, live) = tokio::join!(a.apply(s, inv), scenario);
    assert!(
        outs.iter().all(|o| o.outcome == Outcome::Applied),
        "{outs:?}"
    );
    // The watch has listed ConfigMaps.
    a.store.lock().unwrap().ready.insert("ConfigMap".into());
    live
}

#[tokio::test]
async fn drift_of_a_managed_field_is_restored_under_self_heal() {
    let (mut a, mut api) = applier();
    let s = state(vec![configmap("c1", "1")], SyncPolicy::default());
    let mut inv = Inventory::default();
    let live = synced(&mut a, &mut api, &s, &mut inv).await;

    // A field fleet does not set changes: not drift, and no request.
    let mut extra = live.clone();
    extra["metadata"]["labels"]["team"] = json!("x");
    a.store
        .lock()
        .unwrap()
        .objects
        .insert("ConfigMap/web/c1".into(), extra);
    let outs = a.reconcile_drift(&s, &mut inv).await;
    assert_eq!(outs[0].outcome, Outcome::Unchanged, "{outs:?}");

    // Someone edits a managed field.
    let mut edited = live.clone();
    edited["data"]["k"] = json!("2");
    edited["metadata"]["managedFields"] =
        json!([{"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:00:00Z"}]);
    a.store
        .lock()
        .unwrap()
        .objects
        .insert("ConfigMap/web/c1".into(), edited);
    let scenario = async {
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(true);
        assert_eq!(p.body["data"]["k"], "1");
        p.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
    assert_eq!(outs[0].outcome, Outcome::Healed, "{outs:?}");
    assert!(
        outs[0].message.contains("data.k") && outs[0].message.contains("kubectl-edit"),
        "{}",
        outs[0].message
    );

    // Someone deletes it: recreated.
    a.store.lock().unwrap().objects.remove("ConfigMap/web/c1");
    let scenario = async {
        api.next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await
            .echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
    assert_eq!(outs[0].outcome, Outcome::Healed);
    assert!(outs[0].message.contains("deleted"), "{}", outs[0].message);
}

#[tokio::test]
async fn drift_is_reported_without_a_request_when_self_heal_is_off() {
    let (mut a, mut api) = applier();
    let s = state(
        vec![configmap("c1", "1")],
        SyncPolicy {
            self_heal: false,
            ..SyncPolicy::default()
        },
    );
    let mut inv = Inventory::default();
    let live = synced(&mut a, &mut api, &s, &mut inv).await;
    let mut edited = live;
    edited["data"]["k"] = json!("2");
    a.store
        .lock()
        .unwrap()
        .objects
        .insert("ConfigMap/web/c1".into(), edited);
    // Any request would hang here: the scripted server answers none.
    let outs = tokio::time::timeout(Duration::from_secs(5), a.reconcile_drift(&s, &mut inv))
        .await
        .expect("no API call without self-heal");
    assert_eq!(outs[0].outcome, Outcome::Drifted);
    assert!(
        outs[0].message.contains("data.k") && outs[0].message.contains("self-heal is off"),
        "{}",
        outs[0].message
    );
}

#[tokio::test]
async fn the_watcher_feeds_the_live_store_and_wakes_the_reconciler() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut api = Server(handle);
    let client = Client::new(svc, "default");
    let store = watch::Store::default();
    let notify = Arc::new(Notify::new());
    let ar = kube::core::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let task = watch::spawn(client, ar, CLUSTER, store.clone(), notify.clone());
    let obj = |v: &str, rv: &str| json!({"metadata": {"name": "c1", "namespace": "web", "resourceVersion": rv, "labels": {LABEL_CLUSTER: CLUSTER}}, "data": {"k": v}});

    let list = api.next("GET", "/api/v1/configmaps").await;
    assert_eq!(
        list.query.get("labelSelector").map(String::as_str),
        Some("fleet.dev/cluster=c1"),
        "{:?}",
        list.query
    );
    list.reply(200, &json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [obj("1", "1")]}));
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("woken after the list");
    {
        let s = store.lock().unwrap();
        assert!(s.ready.contains("ConfigMap"));
        assert_eq!(s.objects["ConfigMap/web/c1"]["data"]["k"], "1");
    }
    let w = api.next("GET", "/api/v1/configmaps").await;
    assert_eq!(
        w.query.get("watch").map(String::as_str),
        Some("true"),
        "{:?}",
        w.query
    );
    let event = json!({"type": "MODIFIED", "object": obj("2", "2")});
    w.send
        .send_response(Response::new(Body::from(format!("{event}\n").into_bytes())));
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("woken by the event");
    assert_eq!(
        store.lock().unwrap().objects["ConfigMap/web/c1"]["data"]["k"],
        "2"
    );
    task.abort();
}

#[tokio::test]
async fn live_diff_is_a_server_side_dry_run_and_changes_nothing() {
    let (mut a, mut api) = applier();
    let s = state(
        vec![configmap("c1", "new"), configmap("c2", "x")],
        SyncPolicy::default(),
    );
    let inv = Inventory::default();
    let scenario = async move {
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        // c1 exists with another value: read it, then dry-run the apply.
        api.next("GET", "/api/v1/namespaces/web/configmaps/c1").await.reply(
            200,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c1", "namespace": "web", "resourceVersion": "7", "labels": {LABEL_CLUSTER: CLUSTER}, "annotations": {"fleet.dev/app": "web"}},
                "data": {"k": "old"}}),
        );
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(false);
        assert_eq!(
            p.query.get("dryRun").map(String::as_str),
            Some("All"),
            "the diff must not change the cluster"
        );
        let mut after = p.body.clone();
        after["metadata"]["resourceVersion"] = json!("8");
        p.reply(200, &after);
        // c2 does not exist yet.
        api.next("GET", "/api/v1/namespaces/web/configmaps/c2")
            .await
            .reply(404, &not_found());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c2")
            .await;
        assert_eq!(p.query.get("dryRun").map(String::as_str), Some("All"));
        p.echo(json!({}));
    };
    let (diffs, ()) = tokio::join!(a.diff(&s, &inv, None), scenario);
    let diffs = diffs.unwrap();
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert_eq!(diffs[0].id, "ConfigMap/web/c1");
    assert!(
        diffs[0].text.contains("-  k: old") && diffs[0].text.contains("+  k: new"),
        "{}",
        diffs[0].text
    );
    assert!(
        !diffs[0].text.contains("resourceVersion"),
        "{}",
        diffs[0].text
    );
    assert_eq!(diffs[1].change, fleet_render::diff::Change::Added);
}
