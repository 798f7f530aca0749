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
use crate::apply::{HealthState, Inventory, InventoryEntry, Outcome, ResourceOutcome};

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

    /// Answers as a real API server does for a path it does not serve (an
    /// unknown group version): plain text, not a `Status`.
    fn page_not_found(self) {
        self.send.send_response(
            Response::builder()
                .status(404)
                .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from(b"404 page not found\n".to_vec()))
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
    state_of(vec![("web", objects)], sync)
}

fn state_of(apps: Vec<(&str, Vec<Value>)>, sync: SyncPolicy) -> DesiredState {
    let apps = apps
        .into_iter()
        .map(|(name, objects)| {
            (
                name.to_string(),
                AppState {
                    source_revision: Some("c".into()),
                    error: None,
                    resources: objects
                        .iter()
                        .map(|o| Resource::from_value(o).unwrap())
                        .collect::<Vec<_>>()
                        .into(),
                },
            )
        })
        .collect();
    DesiredState::new(CLUSTER.into(), CommitMeta::default(), sync, apps)
}

/// Runs `f`, which must make no API call: the scripted server answers none,
/// so a call would hang until the bound.
async fn quiet<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: made an API call"))
}

const INVENTORY: &str = "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory";

/// The first requests of a spoke's first pass: the cluster record (absent)
/// and its write-ahead.
async fn fresh_inventory(api: &mut Server) -> Call {
    api.next("GET", INVENTORY).await.reply(404, &not_found());
    let ahead = api.next("PATCH", INVENTORY).await;
    ahead.assert_apply(true);
    ahead
}

fn deployment(name: &str, wave: Option<&str>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "web"},
        "spec": {"replicas": 1}});
    if let Some(w) = wave {
        d["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": w});
    }
    d
}

fn apps_v1() -> Value {
    resources("apps/v1", &[("deployments", "Deployment", true)])
}

/// A Deployment that is not rolled out (0 of 1 replicas updated).
fn progressing(body: &Value) -> Value {
    let mut p = body.clone();
    p["metadata"]["generation"] = json!(1);
    p["status"] = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0});
    p
}

fn find<'a>(outs: &'a [ResourceOutcome], id: &str) -> &'a ResourceOutcome {
    outs.iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("no outcome for {id}: {outs:#?}"))
}

fn configmap(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "web"}, "data": {"k": value}})
}

fn inventory_of(call: &Call) -> BTreeMap<String, Value> {
    serde_json::from_str(call.body["data"]["inventory.json"].as_str().unwrap()).unwrap()
}

fn crd_widgets() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
                 "versions": [{"name": "v1", "served": true, "storage": true}]}})
}

fn widget(wave: Option<&str>) -> Value {
    let mut w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "web"}, "spec": {"size": 3}});
    if let Some(w1) = wave {
        w["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": w1});
    }
    w
}

fn apiextensions_v1() -> Value {
    resources(
        "apiextensions.k8s.io/v1",
        &[(
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )],
    )
}

const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";

fn established(crd: &Value) -> Value {
    let mut e = crd.clone();
    e["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
    e
}

#[tokio::test]
async fn applies_crds_then_namespaces_then_waves_and_resumes_when_the_crd_is_established() {
    let (mut a, mut api) = applier();
    // Render order is deliberately the reverse of apply order.
    let s = state(
        vec![
            widget(Some("1")),
            configmap("c1", "1"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
            crd_widgets(),
        ],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    let scenario = async {
        let ahead = fresh_inventory(&mut api).await;
        let entries = inventory_of(&ahead);
        assert_eq!(
            entries.len(),
            4,
            "the write-ahead inventory names every desired object"
        );
        assert!(
            entries.values().all(|e| e["digest"] == ""),
            "nothing is applied yet: {entries:?}"
        );
        ahead.echo(json!({}));

        api.next("GET", "/apis/apiextensions.k8s.io/v1")
            .await
            .reply(200, &apiextensions_v1());
        let p = api.next("PATCH", CRD_PATH).await;
        p.assert_apply(false);
        assert_eq!(p.body["metadata"]["labels"][LABEL_CLUSTER], CLUSTER);
        assert_eq!(p.body["metadata"]["annotations"]["fleet.dev/app"], "web");
        let crd = p.body.clone();
        // Not Established in the apply response: its custom resources wait,
        // the rest of the app does not, and the pass does not wait.
        p.echo(json!({}));
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
        let fin = api.next("PATCH", INVENTORY).await;
        let entries = inventory_of(&fin);
        assert_eq!(entries["k8s:Widget.example.com/web/w1"]["digest"], "");
        assert_ne!(entries["k8s:ConfigMap/web/c1"]["digest"], "");
        fin.echo(json!({}));
        crd
    };
    let (outs, crd) = tokio::join!(a.apply(&s, &mut inv), scenario);
    assert_eq!(
        find(&outs, "Widget.example.com/web/w1").outcome,
        Outcome::Pending
    );
    assert!(
        find(&outs, "Widget.example.com/web/w1")
            .message
            .contains("CustomResourceDefinition"),
        "{outs:#?}"
    );
    assert_eq!(find(&outs, "ConfigMap/web/c1").outcome, Outcome::Applied);
    assert!(a.incomplete, "the next pass resumes the sync");

    // The next pass reads the CRD (no watch here), sees it Established,
    // looks up its group version and applies the custom resource.
    let scenario = async {
        api.next("GET", CRD_PATH)
            .await
            .reply(200, &established(&crd));
        api.next("GET", "/apis/example.com/v1").await.reply(
            200,
            &resources("example.com/v1", &[("widgets", "Widget", true)]),
        );
        let w = api
            .next("PATCH", "/apis/example.com/v1/namespaces/web/widgets/w1")
            .await;
        w.assert_apply(false);
        w.echo(json!({}));
        let fin = api.next("PATCH", INVENTORY).await;
        let entries = inventory_of(&fin);
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries["k8s:Widget.example.com/web/w1"]["api_version"],
            "example.com/v1"
        );
        assert!(entries.values().all(|e| e["digest"] != ""));
        fin.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
    assert_eq!(
        find(&outs, "Widget.example.com/web/w1").outcome,
        Outcome::Applied
    );
    let crd = find(
        &outs,
        "CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com",
    );
    assert_eq!(
        crd.health.as_ref().map(|h| h.state),
        Some(HealthState::Healthy)
    );
    assert_eq!(inv.len(), 4);
    assert!(!a.incomplete);
}

/// A first pass leaving wave 0 held: Deployment `d` rolling out, ConfigMap
/// `wave0` applied, ConfigMap `after` in wave 1 waiting. Returns d's body.
async fn held(
    a: &mut KubernetesApplier,
    api: &mut Server,
    s: &DesiredState,
    inv: &mut Inventory,
    conflict: bool,
) -> Value {
    let scenario = async {
        fresh_inventory(api).await.echo(json!({}));
        // Discovery of the wave's kinds first, then its objects together.
        api.next("GET", "/apis/apps/v1")
            .await
            .reply(200, &apps_v1());
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/apis/apps/v1/namespaces/web/deployments/d")
            .await;
        let body = p.body.clone();
        p.reply(200, &progressing(&body));
        let c = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/wave0")
            .await;
        if conflict {
            c.reply(409, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
                "message": "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.k"}));
        } else {
            c.echo(json!({}));
        }
        api.next("PATCH", INVENTORY).await.echo(json!({}));
        body
    };
    let (outs, body) = tokio::join!(a.apply(s, inv), scenario);
    let after = find(&outs, "ConfigMap/web/after");
    assert_eq!(after.outcome, Outcome::Pending, "{after:?}");
    assert!(a.incomplete);
    body
}

fn held_state() -> DesiredState {
    let mut after = configmap("after", "1");
    after["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": "1"});
    state(
        vec![deployment("d", None), configmap("wave0", "1"), after],
        SyncPolicy::default(),
    )
}

#[tokio::test]
async fn a_held_sync_makes_no_writes_over_several_passes() {
    let (mut a, mut api) = applier();
    a.opts.backoff = Duration::from_secs(60);
    let s = held_state();
    let mut inv = Inventory::default();
    let body = held(&mut a, &mut api, &s, &mut inv, true).await;
    let writes = a.writes();
    assert_eq!(writes, 4, "write-ahead, two applies, final inventory");
    for pass in 0..3 {
        // Each pass only reads the Deployment it waits for: the conflicted
        // ConfigMap waits out its backoff, the inventory is unchanged.
        let scenario = async {
            api.next("GET", "/apis/apps/v1/namespaces/web/deployments/d")
                .await
                .reply(200, &progressing(&body));
        };
        let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
        assert_eq!(a.writes(), writes, "pass {pass} wrote");
        let c = find(&outs, "ConfigMap/web/wave0");
        assert_eq!(c.outcome, Outcome::Failed);
        assert!(
            c.message.contains("kubectl-edit") && c.message.contains("retry"),
            "{}",
            c.message
        );
        let after = find(&outs, "ConfigMap/web/after");
        assert_eq!(after.outcome, Outcome::Pending);
        assert!(
            after.message.contains("sync wave 0 failed"),
            "{}",
            after.message
        );
        let d = find(&outs, "Deployment.apps/web/d");
        assert_eq!(d.health.as_ref().unwrap().state, HealthState::Progressing);
    }
}

#[tokio::test]
async fn a_held_wave_is_reported_at_once_and_applied_objects_are_healed_meanwhile() {
    let (mut a, mut api) = applier();
    let s = held_state();
    let mut inv = Inventory::default();
    let body = held(&mut a, &mut api, &s, &mut inv, false).await;
    // A hand edit of a ConfigMap applied in the held wave.
    {
        let mut st = a.store.lock().unwrap();
        st.ready.insert("ConfigMap".into());
        let mut c = st.objects.get("ConfigMap/web/wave0").unwrap();
        c["data"]["k"] = json!("hand");
        c["metadata"]["managedFields"] = json!([{"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:00:00Z"}]);
        st.objects.insert("ConfigMap/web/wave0".into(), &c);
    }
    let scenario = async {
        api.next("GET", "/apis/apps/v1/namespaces/web/deployments/d")
            .await
            .reply(200, &progressing(&body));
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/wave0")
            .await;
        p.assert_apply(true);
        assert_eq!(p.body["data"]["k"], "1");
        p.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
    let c = find(&outs, "ConfigMap/web/wave0");
    assert_eq!(c.outcome, Outcome::Healed, "{c:?}");
    let after = find(&outs, "ConfigMap/web/after");
    assert_eq!(after.outcome, Outcome::Pending);
    assert!(
        after.message.contains("sync wave 0 not healthy yet")
            && after.message.contains("0 of 1 replicas updated"),
        "{}",
        after.message
    );
}

#[tokio::test]
async fn a_conflict_stays_reported_and_is_never_forced_by_a_later_pass_or_a_restart() {
    let conflict = || {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
        "message": "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.k"})
    };
    let (mut a, mut api) = applier();
    a.opts.backoff = Duration::ZERO;
    let s = state(vec![configmap("c1", "1")], SyncPolicy::default());
    let mut inv = Inventory::default();
    let scenario = async {
        let ahead = fresh_inventory(&mut api).await;
        let record = ahead.body.clone();
        assert_eq!(inventory_of(&ahead)["k8s:ConfigMap/web/c1"]["digest"], "");
        ahead.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(false);
        p.reply(409, &conflict());
        // Nothing applied: the record written ahead is still true, not rewritten.
        record
    };
    let (outs, record) = tokio::join!(a.apply(&s, &mut inv), scenario);
    assert_eq!(outs[0].outcome, Outcome::Failed);
    assert!(
        outs[0].message.contains("kubectl-edit") && outs[0].message.contains("forceConflicts"),
        "{}",
        outs[0].message
    );
    // The live object is someone else's; the watch saw it. The next pass
    // retries the apply without force, and the conflict stays reported.
    a.store.lock().unwrap().ready.insert("ConfigMap".into());
    a.store.lock().unwrap().objects.insert(
        "ConfigMap/web/c1".into(),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "web"}, "data": {"k": "theirs"}}),
    );
    for _ in 0..2 {
        let scenario = async {
            let p = api
                .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
                .await;
            p.assert_apply(false);
            p.reply(409, &conflict());
        };
        let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
        assert_eq!(outs[0].outcome, Outcome::Failed, "{outs:?}");
        assert!(outs[0].message.contains("conflict"), "{}", outs[0].message);
        assert!(!outs[0].message.contains("deleted"), "{}", outs[0].message);
    }

    // After a restart that lost the disk, the cluster record says "not
    // applied" (empty digest): still no force.
    let (mut b, mut api) = applier();
    let mut inv = Inventory::default();
    let scenario = async {
        let mut cm = record.clone();
        cm["metadata"]["resourceVersion"] = json!("5");
        api.next("GET", INVENTORY).await.reply(200, &cm);
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(false);
        p.reply(409, &conflict());
    };
    let (outs, ()) = tokio::join!(b.apply(&s, &mut inv), scenario);
    assert_eq!(outs[0].outcome, Outcome::Failed);

    // With forceConflicts, the apply forces.
    let (mut c, mut api) = applier();
    let forced = state(
        vec![configmap("c1", "1")],
        SyncPolicy {
            force_conflicts: true,
            ..SyncPolicy::default()
        },
    );
    let mut inv = Inventory::default();
    let scenario = async {
        fresh_inventory(&mut api).await.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(true);
        p.echo(json!({}));
        api.next("PATCH", INVENTORY).await.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(c.apply(&forced, &mut inv), scenario);
    assert_eq!(outs[0].outcome, Outcome::Applied, "{outs:?}");
}

#[tokio::test]
async fn one_apps_failed_namespace_and_unhealthy_wave_hold_only_what_depends_on_them() {
    let (mut a, mut api) = applier();
    let mut bad_cm = configmap("c", "1");
    bad_cm["metadata"]["namespace"] = json!("bad_ns");
    let mut late = configmap("late", "1");
    late["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": "1"});
    let mut other = configmap("b1", "1");
    other["metadata"]["annotations"] = json!({"fleet.dev/sync-wave": "1"});
    let s = state_of(
        vec![
            (
                "a",
                vec![
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bad_ns"}}),
                    bad_cm,
                    deployment("d", None),
                    late,
                ],
            ),
            ("b", vec![other]),
        ],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    let scenario = async {
        fresh_inventory(&mut api).await.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        api.next("PATCH", "/api/v1/namespaces/bad_ns").await.reply(
            422,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                "message": "Namespace \"bad_ns\" is invalid: metadata.name: Invalid value: \"bad_ns\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"}),
        );
        // c waits for its namespace; d (another namespace) is applied.
        api.next("GET", "/apis/apps/v1")
            .await
            .reply(200, &apps_v1());
        let p = api
            .next("PATCH", "/apis/apps/v1/namespaces/web/deployments/d")
            .await;
        let body = p.body.clone();
        p.reply(200, &progressing(&body));
        // App b's wave 1 does not wait for app a's wave 0.
        api.next("PATCH", "/api/v1/namespaces/web/configmaps/b1")
            .await
            .echo(json!({}));
        api.next("PATCH", INVENTORY).await.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let ns = find(&outs, "Namespace/bad_ns");
    assert_eq!(ns.outcome, Outcome::Failed);
    assert!(ns.message.contains("Invalid"), "{}", ns.message);
    let c = find(&outs, "ConfigMap/bad_ns/c");
    assert_eq!(c.outcome, Outcome::Pending);
    assert!(
        c.message.contains("its Namespace bad_ns failed"),
        "{}",
        c.message
    );
    let late = find(&outs, "ConfigMap/web/late");
    assert_eq!(late.outcome, Outcome::Pending);
    assert!(
        late.message.contains("sync wave 0 not healthy"),
        "{}",
        late.message
    );
    assert_eq!(find(&outs, "ConfigMap/web/b1").outcome, Outcome::Applied);
    assert_eq!(
        find(&outs, "Deployment.apps/web/d").outcome,
        Outcome::Applied
    );
}

#[tokio::test]
async fn an_unserved_group_is_a_plain_text_404_and_its_kind_is_applied_once_its_crd_is_established()
{
    let (mut a, mut api) = applier();
    a.opts.backoff = Duration::from_secs(60);
    // The CRD in one app, its custom resource in another.
    let s = state_of(
        vec![("a", vec![crd_widgets()]), ("b", vec![widget(None)])],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    let scenario = async {
        fresh_inventory(&mut api).await.echo(json!({}));
        api.next("GET", "/apis/apiextensions.k8s.io/v1")
            .await
            .reply(200, &apiextensions_v1());
        let p = api.next("PATCH", CRD_PATH).await;
        let crd = p.body.clone();
        p.echo(json!({}));
        api.next("GET", "/apis/example.com/v1")
            .await
            .page_not_found();
        api.next("PATCH", INVENTORY).await.echo(json!({}));
        crd
    };
    let (outs, crd) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let w = find(&outs, "Widget.example.com/web/w1");
    assert_eq!(w.outcome, Outcome::Failed);
    assert!(
        w.message.contains("unknown apiVersion example.com/v1")
            && w.message.contains("CustomResourceDefinition installed"),
        "{}",
        w.message
    );
    // Long before the backoff ends, the CRD becomes Established: discovery
    // is asked again and the custom resource applied.
    let scenario = async {
        api.next("GET", CRD_PATH)
            .await
            .reply(200, &established(&crd));
        api.next("GET", "/apis/example.com/v1").await.reply(
            200,
            &resources("example.com/v1", &[("widgets", "Widget", true)]),
        );
        api.next("PATCH", "/apis/example.com/v1/namespaces/web/widgets/w1")
            .await
            .echo(json!({}));
        api.next("PATCH", INVENTORY).await.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.reconcile_drift(&s, &mut inv), scenario);
    assert_eq!(
        find(&outs, "Widget.example.com/web/w1").outcome,
        Outcome::Applied
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
        api.next("GET", INVENTORY).await.reply(200, &cm);
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
        // The custom resource's CRD is already gone: a real server answers
        // its group version with a plain-text 404. So is the object.
        api.next("GET", "/apis/example.com/v1")
            .await
            .page_not_found();
        api.next("GET", "/apis/apiextensions.k8s.io/v1")
            .await
            .reply(200, &apiextensions_v1());
        api.next(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
        )
        .await
        .reply(200, &ours(json!({})));
        let d = api
            .next(
                "DELETE",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
            )
            .await;
        assert_eq!(d.body["propagationPolicy"], "Background");
        d.reply(200, &ours(json!({})));
        api.next("GET", "/api/v1/namespaces/old")
            .await
            .reply(200, &ours(json!({})));
        api.next("DELETE", "/api/v1/namespaces/old")
            .await
            .reply(200, &ours(json!({})));
        let fin = api.next("PATCH", INVENTORY).await;
        assert_eq!(
            inventory_of(&fin).keys().collect::<Vec<_>>(),
            ["k8s:ConfigMap/old/keep"]
        );
        fin.echo(json!({}));
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let got: Vec<(&str, Outcome)> = outs.iter().map(|o| (o.id.as_str(), o.outcome)).collect();
    let want = [
        ("ConfigMap/old/keep", Outcome::Orphaned),
        ("ConfigMap/old/stray", Outcome::Orphaned),
        ("Gadget.example.com/old/g1", Outcome::Pruned),
        (
            "CustomResourceDefinition.apiextensions.k8s.io/gadgets.example.com",
            Outcome::Pruned,
        ),
        ("Namespace/old", Outcome::Pruned),
    ];
    assert_eq!(got, want);
    assert!(
        find(&outs, "Gadget.example.com/old/g1")
            .message
            .contains("gone with its API"),
        "{outs:#?}"
    );
    assert_eq!(inv.keys().collect::<Vec<_>>(), ["k8s:ConfigMap/old/keep"]);

    // The next pass asks nothing and still reports every outcome.
    let outs = quiet("a pass after prune", a.reconcile_drift(&s, &mut inv)).await;
    let mut got: Vec<(&str, Outcome)> = outs.iter().map(|o| (o.id.as_str(), o.outcome)).collect();
    got.sort_by_key(|x| x.0);
    let mut want = want.to_vec();
    want.sort_by_key(|x| x.0);
    assert_eq!(got, want, "outcomes are kept until they change");
}

#[tokio::test]
async fn the_inventory_is_sharded_and_a_lost_disk_reads_every_shard() {
    let (mut a, mut api) = applier();
    a.opts.inventory_shard_entries = 2;
    a.inventory = inventory::ClusterInventory::new(2);
    let s = state(
        vec![
            configmap("a", "1"),
            configmap("b", "1"),
            configmap("c", "1"),
        ],
        SyncPolicy::default(),
    );
    let mut inv = Inventory::default();
    const SHARD1: &str = "/api/v1/namespaces/fleet-system/configmaps/fleet-inventory-1";
    let scenario = async {
        api.next("GET", INVENTORY).await.reply(404, &not_found());
        // Shard 1 first, shard 0 (which counts the shards) last.
        let s1 = api.next("PATCH", SHARD1).await;
        s1.assert_apply(true);
        let n1 = inventory_of(&s1).len();
        s1.echo(json!({}));
        let s0 = api.next("PATCH", INVENTORY).await;
        assert_eq!(s0.body["data"]["shards"], "2");
        assert_eq!(inventory_of(&s0).len() + n1, 3);
        s0.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        for n in ["a", "b", "c"] {
            api.next("PATCH", &format!("/api/v1/namespaces/web/configmaps/{n}"))
                .await
                .echo(json!({}));
        }
        // Both shards changed (digests recorded): rewritten, 1 then 0.
        let mut shards = Vec::new();
        for path in [SHARD1, INVENTORY] {
            let p = api.next("PATCH", path).await;
            shards.push(p.body.clone());
            p.echo(json!({}));
        }
        shards
    };
    let (outs, shards) = tokio::join!(a.apply(&s, &mut inv), scenario);
    assert!(
        outs.iter().all(|o| o.outcome == Outcome::Applied),
        "{outs:?}"
    );

    // A spoke without its disk reads both shards, and prunes all three.
    let (mut b, mut api) = applier();
    b.inventory = inventory::ClusterInventory::new(2);
    let empty = state(vec![], SyncPolicy::default());
    let mut inv = Inventory::default();
    let scenario = async {
        api.next("GET", INVENTORY).await.reply(200, &shards[1]);
        api.next("GET", SHARD1).await.reply(200, &shards[0]);
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        for n in ["a", "b", "c"] {
            let path = format!("/api/v1/namespaces/web/configmaps/{n}");
            api.next("GET", &path).await.reply(
                200,
                &json!({"metadata": {"name": n, "labels": {LABEL_CLUSTER: CLUSTER}}}),
            );
            api.next("DELETE", &path).await.reply(200, &json!({}));
        }
        // Empty now: one shard, and the other deleted.
        let s0 = api.next("PATCH", INVENTORY).await;
        assert_eq!(s0.body["data"]["shards"], "1");
        assert!(inventory_of(&s0).is_empty());
        s0.echo(json!({}));
        api.next("DELETE", SHARD1).await.reply(200, &json!({}));
    };
    let (outs, ()) = tokio::join!(b.apply(&empty, &mut inv), scenario);
    assert_eq!(
        outs.iter().filter(|o| o.outcome == Outcome::Pruned).count(),
        3,
        "{outs:?}"
    );
}

#[tokio::test]
async fn a_failed_inventory_write_is_a_reported_failure_retried_with_backoff() {
    let (mut a, mut api) = applier();
    a.opts.backoff = Duration::from_secs(60);
    let s = state(vec![configmap("c1", "1")], SyncPolicy::default());
    let mut inv = Inventory::default();
    let scenario = async {
        api.next("GET", INVENTORY).await.reply(404, &not_found());
        api.next("PATCH", INVENTORY).await.reply(
            403,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                "message": "configmaps \"fleet-inventory\" is forbidden: User \"system:serviceaccount:fleet-system:fleet-spoke\" cannot create resource \"configmaps\""}),
        );
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        api.next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await
            .echo(json!({}));
        // The final write waits out the backoff.
    };
    let (outs, ()) = tokio::join!(a.apply(&s, &mut inv), scenario);
    let inv_out = find(&outs, "ConfigMap/fleet-system/fleet-inventory");
    assert_eq!(inv_out.outcome, Outcome::Failed);
    assert!(
        inv_out.message.contains("cannot write fleet's inventory")
            && inv_out.message.contains("cannot create"),
        "{}",
        inv_out.message
    );
    assert_eq!(crate::reconcile::verdict(&outs), "failed");
    let outs = quiet("a pass in backoff", a.reconcile_drift(&s, &mut inv)).await;
    assert_eq!(
        find(&outs, "ConfigMap/fleet-system/fleet-inventory").outcome,
        Outcome::Failed,
        "still reported while it cannot be written"
    );
}

/// Applies one ConfigMap so the drift tests start from a synced state.
async fn synced(
    a: &mut KubernetesApplier,
    api: &mut Server,
    s: &DesiredState,
    inv: &mut Inventory,
) -> Value {
    let scenario = async {
        fresh_inventory(api).await.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        let live = p.body.clone();
        p.echo(json!({}));
        api.next("PATCH", INVENTORY).await.echo(json!({}));
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
        .insert("ConfigMap/web/c1".into(), &extra);
    let outs = quiet("an unchanged pass", a.reconcile_drift(&s, &mut inv)).await;
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
        .insert("ConfigMap/web/c1".into(), &edited);
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
        .insert("ConfigMap/web/c1".into(), &edited);
    let outs = quiet("self-heal off", a.reconcile_drift(&s, &mut inv)).await;
    assert_eq!(outs[0].outcome, Outcome::Drifted);
    assert!(
        outs[0].message.contains("data.k") && outs[0].message.contains("self-heal is off"),
        "{}",
        outs[0].message
    );
}

#[test]
fn the_spokes_own_writes_wake_nobody() {
    let ar = kube::core::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let obj = |rv: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c1", "namespace": "web", "resourceVersion": rv}}))
        .unwrap()
    };
    let mut live = watch::Live::default();
    live.own.insert("ConfigMap/web/c1", "7");
    let mut listing = Default::default();
    assert!(
        !watch::apply_event(&mut live, &ar, watcher_event(obj("7")), &mut listing),
        "fleet's own write"
    );
    assert!(
        watch::apply_event(&mut live, &ar, watcher_event(obj("8")), &mut listing),
        "someone else's write"
    );
    assert_eq!(
        live.objects.get("ConfigMap/web/c1").unwrap()["metadata"]["resourceVersion"],
        "8"
    );
}

fn watcher_event(o: DynamicObject) -> kube::runtime::watcher::Event<DynamicObject> {
    kube::runtime::watcher::Event::Apply(o)
}

#[test]
fn a_relist_drops_what_it_did_not_list_of_its_kind_only() {
    use kube::runtime::watcher::Event;
    let cm = kube::core::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let obj = |name: &str, rv: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "web", "resourceVersion": rv}}))
        .unwrap()
    };
    let mut live = watch::Live::default();
    let mut listing = Default::default();
    for n in ["kept", "gone"] {
        watch::apply_event(&mut live, &cm, Event::Apply(obj(n, "1")), &mut listing);
    }
    // Another kind whose id starts alike.
    live.objects.insert(
        "ConfigMapX/web/other".into(),
        &json!({"metadata": {"name": "other"}}),
    );
    assert!(!watch::apply_event(
        &mut live,
        &cm,
        Event::Init,
        &mut listing
    ));
    assert!(!watch::apply_event(
        &mut live,
        &cm,
        Event::InitApply(obj("kept", "5")),
        &mut listing
    ));
    // Listed objects are in the store before the relist is done.
    assert_eq!(
        live.objects.get("ConfigMap/web/kept").unwrap()["metadata"]["resourceVersion"],
        "5"
    );
    assert!(watch::apply_event(
        &mut live,
        &cm,
        Event::InitDone,
        &mut listing
    ));
    assert!(live.objects.get("ConfigMap/web/kept").is_some());
    assert!(live.objects.get("ConfigMap/web/gone").is_none());
    assert!(live.objects.get("ConfigMapX/web/other").is_some());
    assert!(live.ready.contains("ConfigMap"));
    assert!(listing.is_empty());
}

#[test]
fn fleets_inventory_configmaps_are_watched_but_not_kept() {
    use kube::runtime::watcher::Event;
    let cm = kube::core::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let obj = |ns: &str, name: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}}))
        .unwrap()
    };
    let mut live = watch::Live {
        inventory_namespace: Some("fleet-system".into()),
        ..Default::default()
    };
    let mut listing = Default::default();
    for (ns, name) in [
        ("fleet-system", "fleet-inventory"),
        ("fleet-system", "fleet-inventory-12"),
        ("fleet-system", "fleet-inventory-x"),
        ("web", "fleet-inventory"),
    ] {
        // Someone else's write of an inventory shard still wakes the reconciler.
        assert!(watch::apply_event(
            &mut live,
            &cm,
            Event::Apply(obj(ns, name)),
            &mut listing
        ));
    }
    watch::apply_event(&mut live, &cm, Event::Init, &mut listing);
    for (ns, name) in [
        ("fleet-system", "fleet-inventory-3"),
        ("fleet-system", "fleet-inventory-x"),
        ("web", "fleet-inventory"),
    ] {
        watch::apply_event(
            &mut live,
            &cm,
            Event::InitApply(obj(ns, name)),
            &mut listing,
        );
    }
    watch::apply_event(&mut live, &cm, Event::InitDone, &mut listing);
    assert!(
        live.objects
            .get("ConfigMap/fleet-system/fleet-inventory")
            .is_none()
    );
    assert!(
        live.objects
            .get("ConfigMap/fleet-system/fleet-inventory-12")
            .is_none()
    );
    assert!(
        live.objects
            .get("ConfigMap/fleet-system/fleet-inventory-3")
            .is_none()
    );
    assert!(
        live.objects
            .get("ConfigMap/fleet-system/fleet-inventory-x")
            .is_some()
    );
    assert!(live.objects.get("ConfigMap/web/fleet-inventory").is_some());
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
        assert_eq!(s.objects.get("ConfigMap/web/c1").unwrap()["data"]["k"], "1");
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
        store
            .lock()
            .unwrap()
            .objects
            .get("ConfigMap/web/c1")
            .unwrap()["data"]["k"],
        "2"
    );
    task.abort();
}

#[tokio::test]
async fn live_diff_forces_a_dry_run_shows_removals_and_skips_protected_objects() {
    let (mut a, mut api) = applier();
    let s = state(
        vec![configmap("c1", "new"), configmap("c2", "x")],
        SyncPolicy::default(),
    );
    let entry = |id: &str| InventoryEntry {
        app: "web".into(),
        id: id.into(),
        digest: "d".into(),
        api_version: "v1".into(),
    };
    let mut inv = Inventory::default();
    inv.insert("k8s:ConfigMap/web/gone".into(), entry("ConfigMap/web/gone"));
    inv.insert("k8s:ConfigMap/web/kept".into(), entry("ConfigMap/web/kept"));
    let scenario = async move {
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        // c1 exists with another value, after a hand edit: read it, then
        // dry-run the apply with force, so the edit shows instead of a conflict.
        api.next("GET", "/api/v1/namespaces/web/configmaps/c1").await.reply(
            200,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c1", "namespace": "web", "resourceVersion": "7", "labels": {LABEL_CLUSTER: CLUSTER}, "annotations": {"fleet.dev/app": "web"}},
                "data": {"k": "old"}}),
        );
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        p.assert_apply(true);
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
        // Prune would delete `gone`, and keep the protected `kept`.
        api.next("GET", "/api/v1/namespaces/web/configmaps/gone").await.reply(
            200,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "gone", "namespace": "web", "labels": {LABEL_CLUSTER: CLUSTER}}, "data": {"k": "bye"}}),
        );
        api.next("GET", "/api/v1/namespaces/web/configmaps/kept").await.reply(
            200,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kept", "namespace": "web", "labels": {LABEL_CLUSTER: CLUSTER}, "annotations": {ANNOTATION_PRUNE: "false"}}}),
        );
    };
    let (diffs, ()) = tokio::join!(a.diff(&s, &inv, None), scenario);
    let diffs = diffs.unwrap();
    assert_eq!(diffs.len(), 3, "{diffs:#?}");
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
    assert_eq!(diffs[2].id, "ConfigMap/web/gone");
    assert_eq!(diffs[2].change, fleet_render::diff::Change::Removed);
    assert!(diffs[2].text.contains("-  k: bye"), "{}", diffs[2].text);
    assert_eq!(a.writes(), 0, "dry-runs are not writes");
}

#[tokio::test]
async fn live_diff_lists_an_unserved_kind_in_its_place_and_diffs_the_others() {
    let (mut a, mut api) = applier();
    // The custom resource's CRD is not installed: its group version is not
    // served, which a real API server answers with a plain-text 404.
    let s = state_of(
        vec![
            ("a", vec![widget(None)]),
            ("b", vec![configmap("c1", "new")]),
        ],
        SyncPolicy::default(),
    );
    let inv = Inventory::default();
    let scenario = async move {
        api.next("GET", "/apis/example.com/v1")
            .await
            .page_not_found();
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        api.next("GET", "/api/v1/namespaces/web/configmaps/c1")
            .await
            .reply(404, &not_found());
        let p = api
            .next("PATCH", "/api/v1/namespaces/web/configmaps/c1")
            .await;
        assert_eq!(p.query.get("dryRun").map(String::as_str), Some("All"));
        p.echo(json!({}));
    };
    let (diffs, ()) = tokio::join!(a.diff(&s, &inv, None), scenario);
    let diffs = diffs.expect("one unserved kind must not fail the whole diff");
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
    assert_eq!(diffs[0].id, "Widget.example.com/web/w1");
    assert!(
        diffs[0]
            .text
            .contains("cannot diff: unknown apiVersion example.com/v1"),
        "{}",
        diffs[0].text
    );
    assert_eq!(diffs[1].id, "ConfigMap/web/c1");
    assert_eq!(diffs[1].change, fleet_render::diff::Change::Added);
    assert_eq!(a.writes(), 0, "dry-runs are not writes");
}

/// The next request if one comes within `wait`.
async fn maybe_next(api: &mut Server, wait: Duration) -> Option<Request<Body>> {
    tokio::time::timeout(wait, api.0.next_request())
        .await
        .ok()
        .flatten()
        .map(|(req, send)| {
            // Answered later through `pending` by the caller.
            drop(send);
            req
        })
}

#[tokio::test]
async fn a_wave_is_applied_with_bounded_concurrency_after_its_namespace_with_one_write_each() {
    let (mut a, mut api) = applier();
    a.opts.apply_concurrency = 4;
    let n = 10;
    let mut objects =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})];
    objects.extend((0..n).map(|i| configmap(&format!("c{i:02}"), "1")));
    let s = state(objects, SyncPolicy::default());
    let mut inv = Inventory::default();
    let scenario = async {
        fresh_inventory(&mut api).await.echo(json!({}));
        api.next("GET", "/api/v1").await.reply(200, &core_v1());
        let ns = api.next("PATCH", "/api/v1/namespaces/web").await;
        // Nothing of the wave is sent while its Namespace is unanswered.
        assert!(
            maybe_next(&mut api, Duration::from_millis(100))
                .await
                .is_none(),
            "a wave object was applied before its Namespace"
        );
        ns.echo(json!({"status": {"phase": "Active"}}));
        // Four applies in flight, never a fifth: each answer lets one more in.
        let mut in_flight = std::collections::VecDeque::new();
        let mut paths = Vec::new();
        for _ in 0..4 {
            let c = api
                .next(
                    "PATCH",
                    &format!("/api/v1/namespaces/web/configmaps/c{:02}", paths.len()),
                )
                .await;
            c.assert_apply(false);
            paths.push(c.path.clone());
            in_flight.push_back(c);
        }
        while let Some(c) = in_flight.pop_front() {
            if paths.len() < n {
                assert!(
                    maybe_next(&mut api, Duration::from_millis(100))
                        .await
                        .is_none(),
                    "more than 4 applies in flight"
                );
            }
            c.echo(json!({}));
            if paths.len() < n {
                let c = api
                    .next(
                        "PATCH",
                        &format!("/api/v1/namespaces/web/configmaps/c{:02}", paths.len()),
                    )
                    .await;
                paths.push(c.path.clone());
                in_flight.push_back(c);
            }
        }
        let record = api.next("PATCH", INVENTORY).await;
        let entries = inventory_of(&record);
        record.echo(json!({}));
        entries
    };
    let (outs, entries) = tokio::join!(a.apply(&s, &mut inv), scenario);
    assert!(
        outs.iter().all(|o| o.outcome == Outcome::Applied),
        "{outs:#?}"
    );
    let ids: Vec<&str> = outs.iter().map(|o| o.id.as_str()).collect();
    let mut want = vec!["Namespace/web".to_string()];
    want.extend((0..n).map(|i| format!("ConfigMap/web/c{i:02}")));
    assert_eq!(ids, want, "outcomes in the order of the state");
    assert_eq!(entries.len(), n + 1);
    assert_eq!(
        a.writes(),
        1 + 1 + n as u64 + 1,
        "write-ahead, one apply per object, record"
    );
    // Nothing changed: the next pass writes nothing and asks nothing.
    a.store.lock().unwrap().ready.insert("ConfigMap".into());
    a.store.lock().unwrap().ready.insert("Namespace".into());
    let writes = a.writes();
    let outs = quiet("an unchanged pass", a.reconcile_drift(&s, &mut inv)).await;
    assert!(
        outs.iter().all(|o| o.outcome == Outcome::Unchanged),
        "{outs:#?}"
    );
    assert_eq!(a.writes(), writes);
}

#[test]
fn the_live_store_keeps_compact_slimmed_objects_that_drift_still_reads() {
    let ar = kube::core::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let full = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c1", "namespace": "web", "resourceVersion": "3",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(4000)},
            "managedFields": [{"manager": "fleet", "operation": "Apply", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}}]},
        "data": {"k": "1"}});
    let obj: DynamicObject = serde_json::from_value(full.clone()).unwrap();
    let mut live = watch::Live::default();
    let mut listing = Default::default();
    watch::apply_event(&mut live, &ar, watcher_event(obj), &mut listing);
    let kept = live.objects.get("ConfigMap/web/c1").unwrap();
    assert_eq!(kept["data"]["k"], "1");
    assert_eq!(kept["metadata"]["managedFields"][0]["manager"], "fleet");
    assert!(
        kept["metadata"]["managedFields"][0]
            .get("fieldsV1")
            .is_none()
    );
    assert!(
        kept["metadata"]
            .get("annotations")
            .is_some_and(|a| a.as_object().unwrap().is_empty())
    );
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "web"}, "data": {"k": "1"}});
    assert!(diff::drift(&body, &kept).is_empty());
    assert!(
        watch::Compact::new(&kept).len() < serde_json::to_vec(&full).unwrap().len() / 10,
        "kept as compact JSON without what drift never reads"
    );
}
