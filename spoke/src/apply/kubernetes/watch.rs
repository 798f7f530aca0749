//! Watches of the objects fleet manages: one kube-runtime watcher per kind,
//! selecting this cluster's label, feeding a store of live objects that the
//! drift check reads without calling the API.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::Notify;

use super::plan::LABEL_CLUSTER;

/// `Kind[.group]`: what a watch covers.
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// A live object as the store keeps it: slimmed ([`slim`]) and serialized
/// as compact JSON, a few hundred bytes for a small object where the parsed
/// tree took several KiB; parsed again only when drift or health reads it.
#[derive(Debug, Clone)]
pub struct Compact(Box<[u8]>);

impl Compact {
    pub fn new(v: &Value) -> Compact {
        Compact(serde_json::to_vec(v).unwrap_or_default().into_boxed_slice())
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Live objects by id, compact ([`Compact`]).
#[derive(Debug, Default)]
pub struct Objects(HashMap<String, Compact>);

impl Objects {
    /// The live object, parsed.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.0.get(id).map(Compact::value)
    }

    pub fn insert(&mut self, id: String, v: &Value) {
        self.0.insert(id, Compact::new(v));
    }

    pub fn remove(&mut self, id: &str) {
        self.0.remove(id);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Live objects by id (`Kind[.group]/[namespace/]name`), the kinds whose
/// watch has listed everything once (`ready`), and the resource version of
/// fleet's own last write of each object (`own`): its watch event is not news.
#[derive(Debug, Default)]
pub struct Live {
    pub objects: Objects,
    pub ready: HashSet<String>,
    pub own: Own,
    /// The namespace of fleet's inventory ConfigMaps: the ConfigMap watch
    /// sees them (they carry the cluster's label) but they are not kept,
    /// since nothing reads them from the store (megabytes at 10,000 objects).
    pub inventory_namespace: Option<String>,
}

impl Live {
    /// Whether the object `id` is one of fleet's inventory shards.
    fn is_inventory(&self, id: &str) -> bool {
        let Some(ns) = &self.inventory_namespace else {
            return false;
        };
        let Some(name) = id
            .strip_prefix("ConfigMap/")
            .and_then(|r| r.strip_prefix(ns.as_str()))
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let base = super::plan::INVENTORY_NAME;
        name == base
            || name
                .strip_prefix(base)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// The resource version of fleet's own last write, by a 128-bit hash of the
/// object's id ([`super::plan::key_hash`]) rather than a second copy of it.
#[derive(Debug, Default)]
pub struct Own(HashMap<u128, Box<str>>);

impl Own {
    pub fn insert(&mut self, id: impl AsRef<str>, rv: impl Into<Box<str>>) {
        self.0.insert(super::plan::key_hash(id.as_ref()), rv.into());
    }

    pub fn get(&self, id: &str) -> Option<&str> {
        self.0.get(&super::plan::key_hash(id)).map(|rv| &**rv)
    }

    pub fn remove(&mut self, id: &str) {
        self.0.remove(&super::plan::key_hash(id));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub type Store = Arc<Mutex<Live>>;

pub fn object_id(group: &str, kind: &str, obj: &Value) -> Option<String> {
    let meta = obj.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let gk = group_kind(group, kind);
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{gk}/{ns}/{name}"),
        _ => format!("{gk}/{name}"),
    })
}

/// Drops what drift and health never read from a live object kept in the
/// store: each managed-fields entry keeps its manager, operation and time
/// (who changed it), not its field set, which is often most of the object;
/// nor are the object's uid and creation time kept (drift compares only
/// the fields fleet applies, which never hold them).
pub fn slim(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("uid");
        meta.remove("creationTimestamp");
    }
    if let Some(mf) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in mf.iter_mut() {
            if let Some(e) = e.as_object_mut() {
                e.retain(|k, _| matches!(k.as_str(), "manager" | "operation" | "time"));
            }
        }
    }
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Applies one watch event to the store. A relist's objects go into the
/// store as they come, and `listing` keeps their ids: when it is done, the
/// objects of the kind it did not list are dropped. (A copy of the listed
/// objects until then was a second live store at 10,000 objects.)
/// Returns whether the event may be drift: not for fleet's own writes (the
/// resource version fleet's write returned), nor during a relist.
pub fn apply_event(
    live: &mut Live,
    ar: &ApiResource,
    event: Event<DynamicObject>,
    listing: &mut HashSet<String>,
) -> bool {
    let to_value = |o: DynamicObject| -> Option<(String, Value)> {
        let mut v = serde_json::to_value(o).ok()?;
        slim(&mut v);
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), ar.api_version.clone().into());
            m.insert("kind".into(), ar.kind.clone().into());
        }
        Some((object_id(&ar.group, &ar.kind, &v)?, v))
    };
    match event {
        Event::Apply(o) => {
            let Some((k, v)) = to_value(o) else {
                return false;
            };
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            let ours = rv.is_some() && live.own.get(&k) == rv;
            if !live.is_inventory(&k) {
                live.objects.insert(k, &v);
            }
            !ours
        }
        Event::Delete(o) => {
            if let Some((k, _)) = to_value(o) {
                live.objects.remove(&k);
                live.own.remove(&k);
            }
            true
        }
        Event::Init => {
            listing.clear();
            false
        }
        Event::InitApply(o) => {
            if let Some((k, v)) = to_value(o).filter(|(k, _)| !live.is_inventory(k)) {
                live.objects.insert(k.clone(), &v);
                listing.insert(k);
            }
            false
        }
        Event::InitDone => {
            let prefix = format!("{}/", group_kind(&ar.group, &ar.kind));
            live.objects
                .0
                .retain(|k, _| !k.starts_with(&prefix) || listing.contains(k));
            listing.clear();
            listing.shrink_to_fit();
            live.ready.insert(group_kind(&ar.group, &ar.kind));
            true
        }
    }
}

/// Objects per page of a watch's list (kube's default is 500).
pub const LIST_PAGE: u32 = 100;

/// Starts watching `ar` cluster-wide for objects labelled with `cluster`.
pub fn spawn(
    client: Client,
    ar: ApiResource,
    cluster: &str,
    store: Store,
    notify: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    // Lists come in pages of LIST_PAGE objects: each page is held whole
    // (as received and as parsed) while its objects go into the store.
    let cfg = watcher::Config::default()
        .labels(&format!("{LABEL_CLUSTER}={cluster}"))
        .page_size(LIST_PAGE);
    tokio::spawn(async move {
        let mut events = watcher::watcher(api, cfg).default_backoff().boxed();
        let mut listing = HashSet::new();
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    let wake = apply_event(
                        &mut store.lock().expect("live store"),
                        &ar,
                        ev,
                        &mut listing,
                    );
                    if wake {
                        notify.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = %ar.kind, api_version = %ar.api_version, error = %e, "watch failed; retrying")
                }
            }
        }
    })
}
