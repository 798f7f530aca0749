//! The Kubernetes target: server-side apply as field manager `fleet`.
//!
//! Every pass over a desired state (a new state, a watch event, the drift
//! interval) is the same walk ([`sync`]): per app, CustomResourceDefinitions,
//! Namespaces, then sync waves (`fleet.dev/sync-wave`); an object already
//! applied at its digest is compared with its live copy and healed
//! ([`drift`]), one not applied yet is applied, a failed one waits out its
//! backoff. A step that is not healthy holds the later steps of its app only,
//! and the walk never waits: it returns, reports, and resumes at the next
//! watch event or poll. Then [`prune`], and the cluster-side record
//! ([`inventory`]). [`live_diff`] answers `fleetctl diff`.
//!
//! Pure logic lives in [`plan`], [`health`] and [`diff`]; [`discovery`] and
//! [`watch`] do the remaining I/O.

pub mod diff;
pub mod discovery;
pub mod drift;
pub mod health;
pub mod inventory;
pub mod live_diff;
pub mod plan;
pub mod prune;
pub mod sync;
pub mod watch;

#[cfg(test)]
mod mock_tests;

/// The client library this target is built on, for tools that drive the
/// same cluster (the benchmark harness creates its namespaces with it).
pub use kube;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleet_render::{DesiredState, Resource, ResourceId};
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Applier, Inventory, Outcome, ResourceOutcome};
use discovery::{Discovery, Resolved};

/// Settings of the Kubernetes target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of the inventory ConfigMaps (`fleet-system`).
    pub inventory_namespace: String,
    /// How long a step (CRDs Established, a sync wave healthy) may take
    /// before its objects are reported as not healthy in time (the later
    /// steps of its app stay held either way).
    pub step_timeout: Duration,
    /// How often a held sync is resumed when no watch event comes.
    pub poll_interval: Duration,
    /// First retry delay of a failed object (doubles per failure, at most
    /// [`MAX_BACKOFF`]).
    pub backoff: Duration,
    /// At most this many entries per inventory ConfigMap shard.
    pub inventory_shard_entries: usize,
    /// Watch managed objects for drift (off only in tests).
    pub watch: bool,
    /// At most this many objects of one step reconciled at a time (server-
    /// side applies in flight); steps still run one after the other.
    pub apply_concurrency: usize,
}

/// Default of [`Options::apply_concurrency`].
pub const APPLY_CONCURRENCY: usize = 16;

/// The longest a failed object waits before it is retried.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            inventory_namespace: "fleet-system".into(),
            step_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            backoff: Duration::from_secs(2),
            inventory_shard_entries: inventory::SHARD_ENTRIES,
            watch: true,
            apply_concurrency: APPLY_CONCURRENCY,
        }
    }
}

/// A failed write, retried after `retry_at`.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The desired digest that failed (a new digest retries at once).
    digest: String,
    attempts: u32,
    retry_at: Instant,
    outcome: ResourceOutcome,
    /// Failed because discovery does not know the kind (retried at once
    /// when a CRD becomes Established).
    unknown_kind: bool,
}

pub struct KubernetesApplier {
    client: Client,
    opts: Options,
    discovery: Discovery,
    store: watch::Store,
    notify: Arc<Notify>,
    watches: HashMap<String, tokio::task::JoinHandle<()>>,
    /// Writes (apply, delete) sent to the API server, dry-runs not counted.
    writes: Arc<AtomicU64>,
    inventory: inventory::ClusterInventory,
    /// Failed objects by effective id, with their backoff.
    failures: HashMap<String, Failure>,
    /// When each (app, step) started waiting for health.
    waiting: BTreeMap<(String, plan::Step), Instant>,
    /// Outcomes of prune (pruned, orphaned, protected) kept until the next
    /// state: reported at every pass without asking the API again.
    pruned: BTreeMap<String, ResourceOutcome>,
    /// CRDs seen Established (discovery is refreshed when one becomes so).
    established: std::collections::HashSet<String>,
    /// The last pass left objects pending: resume on the poll interval.
    incomplete: bool,
    /// Kinds discovery could not resolve in this step, with why.
    unresolved: HashMap<(String, String), String>,
}

impl Drop for KubernetesApplier {
    fn drop(&mut self) {
        for w in self.watches.values() {
            w.abort();
        }
    }
}

pub(crate) fn outcome(
    app: &str,
    id: &str,
    outcome: Outcome,
    message: impl Into<String>,
) -> ResourceOutcome {
    ResourceOutcome {
        app: app.into(),
        id: id.into(),
        outcome,
        message: message.into(),
        health: None,
    }
}

pub(crate) fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() || s.reason == "Failed to parse error data" {
                "error"
            } else {
                &s.reason
            };
            format!("{reason} ({}): {}", s.code, s.message)
        }
        e => e.to_string(),
    }
}

/// A 404 from the API server, whatever its body: a real server answers an
/// unserved group version with a plain-text `404 page not found`, which kube
/// turns into a `Status` without the `NotFound` reason.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// `GET`, with any 404 as `None`.
pub(crate) async fn get_opt(
    api: &Api<DynamicObject>,
    name: &str,
) -> Result<Option<Value>, kube::Error> {
    match api.get(name).await {
        Ok(o) => Ok(Some(serde_json::to_value(o).unwrap_or_default())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn parse_manifest(r: &Resource) -> Result<Value, String> {
    let mut docs = fleet_render::yaml::parse_documents(&r.id.to_string(), r.manifest.as_bytes())
        .map_err(|e| e.to_string())?;
    match docs.len() {
        1 => {
            let doc = docs.remove(0);
            match crate::apply::might_be_sealed(r)
                .then(|| crate::apply::sealed_value(&doc))
                .flatten()
            {
                Some(e) => Err(e),
                None => Ok(doc),
            }
        }
        n => Err(format!("manifest holds {n} documents, not 1")),
    }
}

/// The id of the object as applied (namespace as the API has it).
pub(crate) fn effective_id(r: &Resource, body: &Value) -> ResourceId {
    ResourceId {
        namespace: body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ..r.id.clone()
    }
}

impl KubernetesApplier {
    pub fn new(client: Client, opts: Options) -> Self {
        let store = Arc::new(std::sync::Mutex::new(watch::Live {
            inventory_namespace: Some(opts.inventory_namespace.clone()),
            ..Default::default()
        }));
        KubernetesApplier {
            discovery: Discovery::new(client.clone()),
            inventory: inventory::ClusterInventory::new(opts.inventory_shard_entries),
            client,
            opts,
            store,
            notify: Arc::new(Notify::new()),
            watches: HashMap::new(),
            writes: Arc::new(AtomicU64::new(0)),
            failures: HashMap::new(),
            waiting: BTreeMap::new(),
            pruned: BTreeMap::new(),
            established: Default::default(),
            incomplete: false,
            unresolved: HashMap::new(),
        }
    }

    /// The store of live objects the watches keep (tests feed it directly).
    pub fn store(&self) -> watch::Store {
        self.store.clone()
    }

    /// How many writes (server-side applies, deletes) this applier sent.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn api(&self, ar: &kube::core::ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Remembers a live object fleet just wrote (or read); its own watch
    /// event for that resource version then wakes nobody.
    pub(crate) fn remember(&self, id: &str, mut live: Value) {
        watch::slim(&mut live);
        let mut s = self.store.lock().expect("live store");
        if let Some(rv) = live
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            s.own.insert(id, rv);
        }
        s.objects.insert(id.to_string(), &live);
    }

    /// Starts a watch for each kind fleet manages that has none.
    fn ensure_watches(&mut self, cluster: &str, kinds: impl IntoIterator<Item = Resolved>) {
        if !self.opts.watch {
            return;
        }
        for r in kinds {
            let gk = watch::group_kind(&r.ar.group, &r.ar.kind);
            if self.watches.get(&gk).is_some_and(|w| !w.is_finished()) {
                continue;
            }
            let w = watch::spawn(
                self.client.clone(),
                r.ar.clone(),
                cluster,
                self.store.clone(),
                self.notify.clone(),
            );
            self.watches.insert(gk, w);
        }
    }

    /// Records a failed write; the object is retried after a backoff that
    /// doubles with each failure at the same digest.
    pub(crate) fn fail(
        &mut self,
        eid: &str,
        digest: &str,
        out: ResourceOutcome,
        unknown_kind: bool,
    ) -> ResourceOutcome {
        let attempts = self
            .failures
            .get(eid)
            .filter(|f| f.digest == digest)
            .map_or(0, |f| f.attempts)
            + 1;
        let delay = self
            .opts
            .backoff
            .saturating_mul(1 << (attempts - 1).min(16))
            .min(MAX_BACKOFF);
        let mut out = out;
        out.message = format!(
            "{} (attempt {attempts}; retry after {}s)",
            out.message,
            delay.as_secs_f64()
        );
        self.failures.insert(
            eid.to_string(),
            Failure {
                digest: digest.to_string(),
                attempts,
                retry_at: Instant::now() + delay,
                outcome: out.clone(),
                unknown_kind,
            },
        );
        out
    }

    /// The recorded failure of `eid` at `digest`, while its backoff lasts.
    pub(crate) fn backing_off(&self, eid: &str, digest: &str) -> Option<ResourceOutcome> {
        let f = self.failures.get(eid)?;
        (f.digest == digest && Instant::now() < f.retry_at).then(|| f.outcome.clone())
    }
}

impl Applier for KubernetesApplier {
    async fn apply(&mut self, state: &DesiredState, inv: &mut Inventory) -> Vec<ResourceOutcome> {
        self.pass(state, inv, true).await
    }

    async fn reconcile_drift(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> Vec<ResourceOutcome> {
        self.pass(state, inv, false).await
    }

    /// A watch event from someone else, or, while a sync is held, the poll
    /// interval.
    async fn changed(&mut self) {
        if self.incomplete {
            let _ = tokio::time::timeout(self.opts.poll_interval, self.notify.notified()).await;
        } else {
            self.notify.notified().await
        }
    }

    async fn diff(
        &mut self,
        state: &DesiredState,
        inv: &Inventory,
        app: Option<&str>,
    ) -> Result<Vec<fleet_render::diff::ResourceDiff>, String> {
        self.live_diff(state, inv, app).await
    }
}
