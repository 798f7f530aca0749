//! Pure planning for the Kubernetes target: which object goes in which step,
//! the order of prune, what fleet adds to each manifest, and the inventory
//! record kept in the cluster.

use std::collections::BTreeMap;

use fleet_render::ResourceId;
use serde_json::{Value, json};

use crate::apply::InventoryEntry;

/// The server-side apply field manager fleet writes as.
pub const FIELD_MANAGER: &str = "fleet";
/// Label on every object fleet applies: the cluster (spoke) that owns it.
pub const LABEL_CLUSTER: &str = "fleet.dev/cluster";
/// Annotation on every object fleet applies: the app it belongs to.
pub const ANNOTATION_APP: &str = "fleet.dev/app";
/// `"<int>"`: lower waves are applied, and healthy, before higher ones.
pub const ANNOTATION_WAVE: &str = "fleet.dev/sync-wave";
/// `"false"` on a live object: prune leaves it in the cluster.
pub const ANNOTATION_PRUNE: &str = "fleet.dev/prune";
/// `"true"` on an object: server-side apply with force for it alone.
pub const ANNOTATION_FORCE: &str = "fleet.dev/force-conflicts";
/// Name of the ConfigMap recording fleet's inventory in the cluster.
pub const INVENTORY_NAME: &str = "fleet-inventory";
/// Key of the inventory JSON in that ConfigMap.
pub const INVENTORY_KEY: &str = "inventory.json";

/// One step of a sync, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// CustomResourceDefinitions, then wait until each is Established.
    Crds,
    Namespaces,
    /// Everything else, by `fleet.dev/sync-wave` (default 0).
    Wave(i64),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Crds => f.write_str("CustomResourceDefinitions"),
            Step::Namespaces => f.write_str("Namespaces"),
            Step::Wave(w) => write!(f, "sync wave {w}"),
        }
    }
}

pub fn is_crd(group: &str, kind: &str) -> bool {
    group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
}

pub fn is_namespace(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Namespace"
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// The step of an object, or why its wave annotation is wrong.
pub fn step_of(group: &str, kind: &str, obj: &Value) -> Result<Step, String> {
    if is_crd(group, kind) {
        return Ok(Step::Crds);
    }
    if is_namespace(group, kind) {
        return Ok(Step::Namespaces);
    }
    match annotation(obj, ANNOTATION_WAVE) {
        None => Ok(Step::Wave(0)),
        Some(w) => w
            .trim()
            .parse()
            .map(Step::Wave)
            .map_err(|_| format!("annotation {ANNOTATION_WAVE}: {w:?} is not an integer")),
    }
}

/// Groups object indices by step, steps in order, indices in input order.
pub fn plan(steps: impl IntoIterator<Item = (usize, Step)>) -> BTreeMap<Step, Vec<usize>> {
    let mut out: BTreeMap<Step, Vec<usize>> = BTreeMap::new();
    for (i, s) in steps {
        out.entry(s).or_default().push(i);
    }
    out
}

/// Prune order: ordinary objects (custom resources among them) first, then
/// CRDs, then Namespaces last; by id within each.
pub fn prune_order(mut stale: Vec<(String, InventoryEntry)>) -> Vec<(String, InventoryEntry)> {
    let rank = |e: &InventoryEntry| match parse_id(&e.id) {
        Some(id) if is_namespace(&id.group, &id.kind) => 2,
        Some(id) if is_crd(&id.group, &id.kind) => 1,
        _ => 0,
    };
    stale.sort_by(|a, b| (rank(&a.1), &a.0).cmp(&(rank(&b.1), &b.0)));
    stale
}

/// The inventory key of an object of the Kubernetes target.
pub fn inventory_key(id: &ResourceId) -> String {
    format!("k8s:{id}")
}

/// The inventory keys a pass wants ([`inventory_key`]), by a 128-bit hash
/// of each rather than a copy: a pass over 10,000 objects held megabytes of
/// keys. A collision (at odds of about 2^-100 for 10,000 keys) could only
/// keep an object that is no longer desired, never prune one that is.
#[derive(Debug, Default)]
pub struct Wanted(std::collections::HashSet<u128>);

impl Wanted {
    /// Wants the object `id`, without building its key.
    pub fn insert(&mut self, id: &ResourceId) {
        let mut h = KeyHash::default();
        use std::fmt::Write as _;
        let _ = write!(h, "k8s:{id}");
        self.0.insert(h.finish());
    }

    /// Whether the inventory key `key` is wanted.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains(&key_hash(key))
    }
}

/// A 128-bit hash of `s` (the same as [`Wanted`] keeps).
pub fn key_hash(s: &str) -> u128 {
    let mut h = KeyHash::default();
    std::fmt::Write::write_str(&mut h, s).expect("hashing");
    h.finish()
}

/// Two SipHashes of a text written in pieces (the same as written whole).
struct KeyHash([std::hash::DefaultHasher; 2]);

impl Default for KeyHash {
    fn default() -> Self {
        use std::hash::Hasher as _;
        let mut hs = [
            std::hash::DefaultHasher::new(),
            std::hash::DefaultHasher::new(),
        ];
        for (i, h) in hs.iter_mut().enumerate() {
            h.write_u8(i as u8);
        }
        KeyHash(hs)
    }
}

impl KeyHash {
    fn finish(&self) -> u128 {
        use std::hash::Hasher as _;
        (u128::from(self.0[0].finish()) << 64) | u128::from(self.0[1].finish())
    }
}

impl std::fmt::Write for KeyHash {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        use std::hash::Hasher as _;
        for h in &mut self.0 {
            h.write(s.as_bytes());
        }
        Ok(())
    }
}

/// Parses [`ResourceId`]'s display form, `Kind[.group]/[namespace/]name`.
pub fn parse_id(s: &str) -> Option<ResourceId> {
    let (kind_group, rest) = s.split_once('/')?;
    let (kind, group) = kind_group.split_once('.').unwrap_or((kind_group, ""));
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, n)) => (ns, n),
        None => ("", rest),
    };
    if kind.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some(ResourceId {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// The body fleet applies: the manifest with fleet's label and annotation,
/// and the namespace the API wants (`namespaced` from discovery): dropped
/// for a cluster-scoped kind, required for a namespaced one.
pub fn prepare(
    manifest: &Value,
    cluster: &str,
    app: &str,
    namespaced: bool,
) -> Result<Value, String> {
    let mut obj = manifest.clone();
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or("object has no metadata")?;
    if namespaced {
        if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(
                "namespaced object without a namespace: set metadata.namespace, or `namespace:` in the app's app.yaml"
                    .into(),
            );
        }
    } else {
        meta.remove("namespace");
    }
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert(LABEL_CLUSTER.into(), cluster.into());
    }
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(ANNOTATION_APP.into(), app.into());
    }
    fold_string_data(&mut obj);
    Ok(obj)
}

/// A core Secret's `stringData` folded into `data`, as the API server stores
/// it (`stringData` is write-only: the live object never has it, so a drift
/// check against it would heal, and write, on every pass). Values of
/// `stringData` win over `data`, as on the server; a value that is not a
/// string is left where it is for the server to refuse.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine as _;
    if obj.get("apiVersion").and_then(Value::as_str) != Some("v1")
        || obj.get("kind").and_then(Value::as_str) != Some("Secret")
    {
        return;
    }
    let Some(Value::Object(m)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let mut rest = serde_json::Map::new();
    let data = obj
        .as_object_mut()
        .expect("an object")
        .entry("data")
        .or_insert_with(|| json!({}));
    for (k, v) in m {
        match (&v, data.as_object_mut()) {
            (Value::String(s), Some(d)) => {
                d.insert(
                    k,
                    base64::engine::general_purpose::STANDARD
                        .encode(s.as_bytes())
                        .into(),
                );
            }
            _ => {
                rest.insert(k, v);
            }
        }
    }
    if !rest.is_empty() {
        obj["stringData"] = Value::Object(rest);
    }
}

/// Why prune keeps a live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Not labelled as this cluster's: fleet did not create it, and forgets it.
    NotOurs(String),
    /// Protected by `fleet.dev/prune: "false"`: kept, and still listed.
    Protected(String),
}

/// May prune delete this live object? Only what carries this cluster's
/// label, and not what is protected by `fleet.dev/prune: "false"`.
pub fn prunable(live: &Value, cluster: &str) -> Result<(), Keep> {
    let label = live
        .pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_CLUSTER))
        .and_then(Value::as_str);
    if label != Some(cluster) {
        return Err(Keep::NotOurs(format!(
            "kept: it does not carry the label {LABEL_CLUSTER}={cluster}, so fleet did not create it"
        )));
    }
    if annotation(live, ANNOTATION_PRUNE) == Some("false") {
        return Err(Keep::Protected(format!(
            "kept: protected by {ANNOTATION_PRUNE}: \"false\""
        )));
    }
    Ok(())
}

/// Does the object ask for force (`fleet.dev/force-conflicts: "true"`)?
pub fn wants_force(obj: &Value) -> bool {
    annotation(obj, ANNOTATION_FORCE) == Some("true")
}

/// The inventory ConfigMap fleet keeps in `namespace`.
pub fn inventory_configmap(
    namespace: &str,
    cluster: &str,
    entries: &impl serde::Serialize,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": INVENTORY_NAME,
            "namespace": namespace,
            "labels": {LABEL_CLUSTER: cluster},
        },
        "data": {
            INVENTORY_KEY: serde_json::to_string(entries).expect("inventory serializes"),
        }
    })
}

/// Reads the inventory ConfigMap; entries of another cluster are refused.
pub fn read_inventory_configmap(
    cm: &Value,
    cluster: &str,
) -> Result<BTreeMap<String, InventoryEntry>, String> {
    let owner = cm
        .pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_CLUSTER))
        .and_then(Value::as_str);
    if owner != Some(cluster) {
        return Err(format!(
            "the inventory ConfigMap belongs to cluster {owner:?}, not {cluster:?}"
        ));
    }
    let Some(data) = cm.pointer("/data").and_then(|d| d.get(INVENTORY_KEY)) else {
        return Ok(BTreeMap::new());
    };
    let data = data.as_str().ok_or("inventory data is not a string")?;
    let map: BTreeMap<String, InventoryEntry> =
        serde_json::from_str(data).map_err(|e| format!("inventory data: {e}"))?;
    Ok(map
        .into_iter()
        .filter(|(k, _)| k.starts_with("k8s:"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_string_data_is_sent_as_the_server_stores_it() {
        let m = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "web"},
            "data": {"a": "b2xk", "keep": "aw=="},
            "stringData": {"a": "new", "pw": "hunter2"}});
        let body = prepare(&m, "c-1", "web", true).unwrap();
        assert_eq!(body.get("stringData"), None);
        assert_eq!(
            body["data"],
            json!({"a": "bmV3", "keep": "aw==", "pw": "aHVudGVyMg=="})
        );
        // The live object the server keeps has no stringData: no drift.
        let mut live = body.clone();
        live["metadata"]["resourceVersion"] = "7".into();
        assert!(super::super::diff::drift(&body, &live).is_empty());
        // Other kinds keep a field of that name.
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Secret",
            "metadata": {"name": "x", "namespace": "web"}, "stringData": {"a": "b"}});
        assert_eq!(
            prepare(&cr, "c-1", "web", true).unwrap()["stringData"]["a"],
            "b"
        );
    }

    fn obj(annotations: Value) -> Value {
        json!({"metadata": {"name": "x", "annotations": annotations}})
    }

    #[test]
    fn steps_crds_then_namespaces_then_waves() {
        let table = [
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                json!({}),
                Ok(Step::Crds),
            ),
            (
                "",
                "Namespace",
                json!({ANNOTATION_WAVE: "5"}),
                Ok(Step::Namespaces),
            ),
            ("apps", "Deployment", json!({}), Ok(Step::Wave(0))),
            (
                "",
                "ConfigMap",
                json!({ANNOTATION_WAVE: "-2"}),
                Ok(Step::Wave(-2)),
            ),
            (
                "",
                "ConfigMap",
                json!({ANNOTATION_WAVE: " 7 "}),
                Ok(Step::Wave(7)),
            ),
            (
                "",
                "ConfigMap",
                json!({ANNOTATION_WAVE: "soon"}),
                Err("\"soon\" is not an integer"),
            ),
        ];
        for (g, k, ann, want) in table {
            let got = step_of(g, k, &obj(ann));
            match (got, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{k}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("{k}: got {got:?}, want {want:?}"),
            }
        }
        let p = plan([
            (0, Step::Wave(1)),
            (1, Step::Crds),
            (2, Step::Wave(-1)),
            (3, Step::Namespaces),
            (4, Step::Wave(1)),
        ]);
        let order: Vec<_> = p.into_iter().collect();
        assert_eq!(
            order,
            vec![
                (Step::Crds, vec![1]),
                (Step::Namespaces, vec![3]),
                (Step::Wave(-1), vec![2]),
                (Step::Wave(1), vec![0, 4])
            ]
        );
    }

    #[test]
    fn prune_runs_resources_then_crds_then_namespaces() {
        let e = |id: &str| {
            (
                format!("k8s:{id}"),
                InventoryEntry {
                    app: "a".into(),
                    id: id.into(),
                    digest: String::new(),
                    api_version: "v1".into(),
                },
            )
        };
        let order: Vec<String> = prune_order(vec![
            e("Namespace/web"),
            e("CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com"),
            e("Widget.example.com/web/w"),
            e("ConfigMap/web/c"),
        ])
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
        assert_eq!(
            order,
            [
                "ConfigMap/web/c",
                "Widget.example.com/web/w",
                "CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com",
                "Namespace/web"
            ]
        );
    }

    #[test]
    fn ids_round_trip() {
        for s in [
            "Deployment.apps/web/frontend",
            "ConfigMap/web/settings",
            "Namespace/web",
            "ClusterRole.rbac.authorization.k8s.io/view",
        ] {
            let id = parse_id(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(id.to_string(), s);
        }
        assert_eq!(
            parse_id("web/ConfigMap/a.yaml").map(|i| i.kind),
            Some("web".into()),
            "directory keys are not k8s: keys"
        );
        assert!(parse_id("nokind").is_none());
    }

    #[test]
    fn prepare_labels_and_fixes_namespace() {
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "web"}});
        let p = prepare(&m, "prod-1", "web", true).unwrap();
        assert_eq!(p["metadata"]["labels"][LABEL_CLUSTER], "prod-1");
        assert_eq!(p["metadata"]["annotations"][ANNOTATION_APP], "web");
        assert_eq!(p["metadata"]["namespace"], "web");
        let p = prepare(&m, "prod-1", "web", false).unwrap();
        assert!(
            p["metadata"].get("namespace").is_none(),
            "cluster-scoped kinds lose the defaulted namespace"
        );
        let bare = json!({"metadata": {"name": "c"}});
        assert!(
            prepare(&bare, "c", "a", true)
                .unwrap_err()
                .contains("without a namespace")
        );
    }

    #[test]
    fn prune_only_what_is_labelled_and_unprotected() {
        let live =
            |labels: Value, ann: Value| json!({"metadata": {"labels": labels, "annotations": ann}});
        assert!(prunable(&live(json!({LABEL_CLUSTER: "c1"}), json!({})), "c1").is_ok());
        assert!(
            matches!(prunable(&live(json!({LABEL_CLUSTER: "c2"}), json!({})), "c1"), Err(Keep::NotOurs(m)) if m.contains("did not create"))
        );
        assert!(matches!(
            prunable(&live(json!({}), json!({})), "c1"),
            Err(Keep::NotOurs(_))
        ));
        assert!(
            matches!(prunable(&live(json!({LABEL_CLUSTER: "c1"}), json!({ANNOTATION_PRUNE: "false"})), "c1"), Err(Keep::Protected(m)) if m.contains("protected"))
        );
    }

    #[test]
    fn wanted_objects_are_found_by_their_inventory_key() {
        let id = |ns: &str, name: &str| ResourceId {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: ns.into(),
            name: name.into(),
        };
        let mut w = Wanted::default();
        w.insert(&id("web", "front"));
        w.insert(&id("", "cluster-wide"));
        assert!(w.contains(&inventory_key(&id("web", "front"))));
        assert!(w.contains("k8s:Deployment.apps/web/front"));
        assert!(w.contains(&inventory_key(&id("", "cluster-wide"))));
        assert!(!w.contains(&inventory_key(&id("web", "back"))));
        assert!(!w.contains("k8s:Deployment.apps/webfront"));
        assert!(!w.contains("Deployment.apps/web/front"));
    }

    #[test]
    fn inventory_configmap_round_trips_and_is_per_cluster() {
        let mut m = BTreeMap::new();
        m.insert(
            "k8s:ConfigMap/web/c".to_string(),
            InventoryEntry {
                app: "web".into(),
                id: "ConfigMap/web/c".into(),
                digest: "d".into(),
                api_version: "v1".into(),
            },
        );
        let cm = inventory_configmap("fleet-system", "c1", &m);
        assert_eq!(read_inventory_configmap(&cm, "c1").unwrap(), m);
        assert!(read_inventory_configmap(&cm, "c2").is_err());
    }
}
