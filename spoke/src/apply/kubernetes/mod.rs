//! The Kubernetes target: server-side apply as field manager `fleet`.
//!
//! A sync runs in steps ([`plan::Step`]): CustomResourceDefinitions (then
//! wait until each is Established), Namespaces, then everything else by
//! `fleet.dev/sync-wave`, each wave healthy before the next. Every object gets
//! the label `fleet.dev/cluster=<cluster>` and the annotation
//! `fleet.dev/app=<app>`; what fleet applied is recorded in the spoke's sled
//! inventory and in a ConfigMap in the cluster, so a spoke that lost its disk
//! still prunes what it created, and never anything else.
//!
//! Pure logic lives in [`plan`], [`health`] and [`diff`]; this file and
//! [`discovery`] and [`watch`] do the I/O.

pub mod diff;
pub mod discovery;
pub mod health;
pub mod plan;
pub mod watch;

#[cfg(test)]
mod mock_tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fleet_render::diff::{Change, ResourceDiff, unified};
use fleet_render::{DesiredState, Resource, ResourceId, SyncPolicy};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde_json::Value;
use tokio::sync::Notify;

use super::{Applier, HealthState, Inventory, InventoryEntry, Outcome, ResourceOutcome};
use discovery::{Discovery, Resolved};
use plan::{FIELD_MANAGER, Keep, Step};

/// Settings of the Kubernetes target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of the inventory ConfigMap (`fleet-system`).
    pub inventory_namespace: String,
    /// How long a step (CRDs Established, a sync wave healthy) may take
    /// before the rest of the sync waits for the next drift check.
    pub step_timeout: Duration,
    /// How often a step's objects are read while waiting for them.
    pub poll_interval: Duration,
    /// Watch managed objects for drift (off only in tests).
    pub watch: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inventory_namespace: "fleet-system".into(),
            step_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            watch: true,
        }
    }
}

pub struct KubernetesApplier {
    client: Client,
    opts: Options,
    discovery: Discovery,
    store: watch::Store,
    notify: Arc<Notify>,
    watches: HashMap<String, tokio::task::JoinHandle<()>>,
    /// Whether the cluster's inventory ConfigMap was read into the inventory.
    cluster_inventory_read: bool,
    /// What the inventory ConfigMap holds, as fleet last wrote it.
    cluster_inventory: Option<BTreeMap<String, InventoryEntry>>,
    /// The last sync stopped at a step; the next drift check resumes it.
    incomplete: bool,
}

impl Drop for KubernetesApplier {
    fn drop(&mut self) {
        for w in self.watches.values() {
            w.abort();
        }
    }
}

/// One desired object, parsed and placed in a step.
struct Item<'a> {
    app: &'a str,
    res: &'a Resource,
    manifest: Value,
}

/// An object applied in the current step.
struct Applied {
    out: ResourceOutcome,
    resolved: Resolved,
    namespace: Option<String>,
    name: String,
    live: Value,
}

fn outcome(app: &str, id: &str, outcome: Outcome, message: impl Into<String>) -> ResourceOutcome {
    ResourceOutcome {
        app: app.into(),
        id: id.into(),
        outcome,
        message: message.into(),
        health: None,
    }
}

fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                "error"
            } else {
                &s.reason
            };
            format!("{reason} ({}): {}", s.code, s.message)
        }
        e => e.to_string(),
    }
}

fn parse_manifest(r: &Resource) -> Result<Value, String> {
    let mut docs = fleet_render::yaml::parse_documents(&r.id.to_string(), r.manifest.as_bytes())
        .map_err(|e| e.to_string())?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(format!("manifest holds {n} documents, not 1")),
    }
}

/// The id of the object as applied (namespace as the API has it).
fn effective_id(r: &Resource, body: &Value) -> ResourceId {
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
        KubernetesApplier {
            discovery: Discovery::new(client.clone()),
            client,
            opts,
            store: Default::default(),
            notify: Arc::new(Notify::new()),
            watches: HashMap::new(),
            cluster_inventory_read: false,
            cluster_inventory: None,
            incomplete: false,
        }
    }

    /// The store of live objects the watches keep (tests feed it directly).
    pub fn store(&self) -> watch::Store {
        self.store.clone()
    }

    fn api(&self, ar: &kube::core::ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    fn inventory_api(&self) -> Api<k8s_openapi::api::core::v1::ConfigMap> {
        Api::namespaced(self.client.clone(), &self.opts.inventory_namespace)
    }

    /// Merges the cluster's inventory ConfigMap into `inv`, once per process:
    /// what a spoke that lost its disk must still prune.
    async fn read_cluster_inventory(&mut self, cluster: &str, inv: &mut Inventory) {
        if self.cluster_inventory_read {
            return;
        }
        match self.inventory_api().get_opt(plan::INVENTORY_NAME).await {
            Ok(None) => {
                self.cluster_inventory_read = true;
            }
            Ok(Some(cm)) => {
                let v = serde_json::to_value(cm).unwrap_or_default();
                match plan::read_inventory_configmap(&v, cluster) {
                    Ok(entries) => {
                        for (k, e) in &entries {
                            if inv.get(k).is_none() {
                                inv.insert(k.clone(), e.clone());
                            }
                        }
                        self.cluster_inventory = Some(entries);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ignoring the cluster's inventory ConfigMap")
                    }
                }
                self.cluster_inventory_read = true;
            }
            Err(e) => {
                tracing::warn!(error = %api_error(&e), namespace = %self.opts.inventory_namespace, "cannot read the inventory ConfigMap; will retry")
            }
        }
    }

    /// Writes `entries` to the inventory ConfigMap when they changed.
    async fn write_cluster_inventory(
        &mut self,
        cluster: &str,
        entries: BTreeMap<String, InventoryEntry>,
    ) {
        if self.cluster_inventory.as_ref() == Some(&entries) {
            return;
        }
        let body = plan::inventory_configmap(&self.opts.inventory_namespace, cluster, &entries);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        match self
            .inventory_api()
            .patch(plan::INVENTORY_NAME, &pp, &Patch::Apply(&body))
            .await
        {
            Ok(_) => self.cluster_inventory = Some(entries),
            Err(e) => tracing::error!(
                error = %api_error(&e),
                namespace = %self.opts.inventory_namespace,
                "cannot write the inventory ConfigMap; a spoke that loses its cache may then not prune"
            ),
        }
    }

    fn k8s_entries(inv: &Inventory) -> BTreeMap<String, InventoryEntry> {
        inv.keys()
            .filter(|k| k.starts_with("k8s:"))
            .filter_map(|k| Some((k.clone(), inv.get(k)?.clone())))
            .collect()
    }

    /// Server-side applies one object.
    async fn apply_one(
        &mut self,
        cluster: &str,
        item: &Item<'_>,
        policy: SyncPolicy,
        inv: &mut Inventory,
    ) -> Result<Applied, ResourceOutcome> {
        let r = item.res;
        let fail = |m: String| outcome(item.app, &r.id.to_string(), Outcome::Failed, m);
        let resolved = self
            .discovery
            .resolve(&r.api_version, &r.id.kind)
            .await
            .map_err(fail)?;
        let body =
            plan::prepare(&item.manifest, cluster, item.app, resolved.namespaced).map_err(fail)?;
        let id = effective_id(r, &body);
        let key = plan::inventory_key(&id);
        let entry = InventoryEntry {
            app: item.app.into(),
            id: id.to_string(),
            digest: r.digest.clone(),
            api_version: r.api_version.clone(),
        };
        let namespace = (!id.namespace.is_empty()).then(|| id.namespace.clone());
        let done = |out: ResourceOutcome, live: Value| Applied {
            out,
            resolved: resolved.clone(),
            namespace: namespace.clone(),
            name: id.name.clone(),
            live,
        };
        // Already applied at this digest and still as applied: no request.
        let known = self
            .store
            .lock()
            .expect("live store")
            .objects
            .get(&id.to_string())
            .cloned();
        if let Some(live) = known
            && inv.get(&key).is_some_and(|e| e.digest == r.digest)
            && diff::drift(&body, &live).is_empty()
        {
            inv.insert(key, entry);
            let out = outcome(item.app, &id.to_string(), Outcome::Unchanged, "");
            return Ok(done(out, live));
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        if policy.force_conflicts || plan::wants_force(&item.manifest) {
            pp = pp.force();
        }
        let api = self.api(&resolved.ar, namespace.as_deref());
        match api.patch(&id.name, &pp, &Patch::Apply(&body)).await {
            Ok(obj) => {
                let live = serde_json::to_value(obj).unwrap_or_default();
                self.store
                    .lock()
                    .expect("live store")
                    .objects
                    .insert(id.to_string(), live.clone());
                inv.insert(key, entry);
                let out = outcome(item.app, &id.to_string(), Outcome::Applied, "");
                Ok(done(out, live))
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Err(outcome(
                item.app,
                &id.to_string(),
                Outcome::Failed,
                format!(
                    "conflict with another field manager: {}; fleet takes such fields only when the cluster's sync policy has forceConflicts: true or the object is annotated {}: \"true\"",
                    s.message,
                    plan::ANNOTATION_FORCE
                ),
            )),
            Err(e) => Err(outcome(
                item.app,
                &id.to_string(),
                Outcome::Failed,
                format!("apply: {}", api_error(&e)),
            )),
        }
    }

    /// Waits until every object of a step is healthy, reading each that is
    /// not; fails on a degraded object or at the step timeout.
    async fn wait_healthy(&mut self, step: Step, applied: &mut [Applied]) -> Result<(), String> {
        let start = tokio::time::Instant::now();
        loop {
            let mut waiting = None;
            for a in applied.iter_mut() {
                let h = health::evaluate(&a.resolved.ar.group, &a.resolved.ar.kind, &a.live);
                a.out.health = Some(h.clone());
                match h.state {
                    HealthState::Healthy => {}
                    HealthState::Degraded => {
                        return Err(format!("{} is degraded: {}", a.out.id, h.reason));
                    }
                    HealthState::Progressing => {
                        waiting.get_or_insert_with(|| format!("{}: {}", a.out.id, h.reason));
                    }
                }
            }
            let Some(waiting) = waiting else {
                return Ok(());
            };
            if start.elapsed() >= self.opts.step_timeout {
                return Err(format!(
                    "{step} not healthy after {:?}: {waiting}",
                    self.opts.step_timeout
                ));
            }
            tokio::time::sleep(self.opts.poll_interval).await;
            for a in applied.iter_mut() {
                if a.out
                    .health
                    .as_ref()
                    .is_some_and(|h| h.state == HealthState::Healthy)
                {
                    continue;
                }
                let api = self.api(&a.resolved.ar, a.namespace.as_deref());
                match api.get(&a.name).await {
                    Ok(obj) => {
                        a.live = serde_json::to_value(obj).unwrap_or_default();
                        self.store
                            .lock()
                            .expect("live store")
                            .objects
                            .insert(a.out.id.clone(), a.live.clone());
                    }
                    Err(e) => {
                        tracing::warn!(id = %a.out.id, error = %api_error(&e), "reading an object while waiting for it")
                    }
                }
            }
        }
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

    /// Deletes what fleet applied and no longer wants: ordinary objects,
    /// then CRDs, then Namespaces; only objects labelled as this cluster's.
    async fn prune(
        &mut self,
        state: &DesiredState,
        wanted: &BTreeSet<String>,
        inv: &mut Inventory,
        blocked: Option<&str>,
    ) -> Vec<ResourceOutcome> {
        let stale: Vec<(String, InventoryEntry)> = Self::k8s_entries(inv)
            .into_iter()
            .filter(|(k, _)| !wanted.contains(k))
            .collect();
        let mut outs = Vec::new();
        for (key, e) in plan::prune_order(stale) {
            let out = |o, m: String| outcome(&e.app, &e.id, o, m);
            if !state.sync.prune {
                outs.push(out(
                    Outcome::Orphaned,
                    "no longer desired; kept because prune is off".into(),
                ));
                continue;
            }
            if let Some(why) = blocked {
                outs.push(out(
                    Outcome::Pending,
                    format!("prune waits until the sync completes ({why})"),
                ));
                continue;
            }
            let Some(id) = plan::parse_id(&e.id) else {
                inv.remove(&key);
                continue;
            };
            let resolved = match self.discovery.resolve(&e.api_version, &id.kind).await {
                Ok(r) => r,
                Err(m) if m.starts_with("unknown") => {
                    // Its API is gone (a CRD pruned before): so is the object.
                    inv.remove(&key);
                    outs.push(out(Outcome::Pruned, format!("gone with its API: {m}")));
                    continue;
                }
                Err(m) => {
                    outs.push(out(Outcome::Failed, format!("prune: {m}")));
                    continue;
                }
            };
            let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
            let api = self.api(&resolved.ar, ns);
            let live = match api.get_opt(&id.name).await {
                Ok(None) => {
                    inv.remove(&key);
                    outs.push(out(Outcome::Pruned, "already gone".into()));
                    continue;
                }
                Ok(Some(o)) => serde_json::to_value(o).unwrap_or_default(),
                Err(err) => {
                    outs.push(out(
                        Outcome::Failed,
                        format!("prune: reading it: {}", api_error(&err)),
                    ));
                    continue;
                }
            };
            match plan::prunable(&live, &state.cluster) {
                Err(Keep::NotOurs(m)) => {
                    inv.remove(&key);
                    outs.push(out(Outcome::Orphaned, m));
                    continue;
                }
                Err(Keep::Protected(m)) => {
                    outs.push(out(Outcome::Orphaned, m));
                    continue;
                }
                Ok(()) => {}
            }
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match api.delete(&id.name, &dp).await {
                Ok(_) => {
                    inv.remove(&key);
                    self.store.lock().expect("live store").objects.remove(&e.id);
                    outs.push(out(Outcome::Pruned, String::new()));
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    inv.remove(&key);
                    outs.push(out(Outcome::Pruned, "already gone".into()));
                }
                Err(err) => outs.push(out(Outcome::Failed, format!("prune: {}", api_error(&err)))),
            }
        }
        outs
    }

    async fn sync(&mut self, state: &DesiredState, inv: &mut Inventory) -> Vec<ResourceOutcome> {
        let cluster = state.cluster.as_str();
        let mut outs = Vec::new();
        self.read_cluster_inventory(cluster, inv).await;

        let mut items = Vec::new();
        let mut steps = Vec::new();
        for (app, r) in state.resources() {
            let parsed = parse_manifest(r)
                .and_then(|m| plan::step_of(&r.id.group, &r.id.kind, &m).map(|s| (m, s)));
            match parsed {
                Ok((manifest, step)) => {
                    steps.push((items.len(), step));
                    items.push(Item {
                        app,
                        res: r,
                        manifest,
                    });
                }
                Err(e) => outs.push(outcome(app, &r.id.to_string(), Outcome::Failed, e)),
            }
        }

        // Write ahead: the cluster's record names every object before it exists.
        let mut ahead = Self::k8s_entries(inv);
        for it in &items {
            ahead
                .entry(plan::inventory_key(&it.res.id))
                .or_insert_with(|| InventoryEntry {
                    app: it.app.into(),
                    id: it.res.id.to_string(),
                    digest: String::new(),
                    api_version: it.res.api_version.clone(),
                });
        }
        self.write_cluster_inventory(cluster, ahead).await;

        let planned = plan::plan(steps);
        let last = planned.keys().next_back().copied();
        let mut blocked: Option<String> = None;
        let mut wanted = BTreeSet::new();
        let mut kinds = Vec::new();
        for (step, idxs) in planned {
            if let Some(why) = &blocked {
                for i in idxs {
                    let it = &items[i];
                    wanted.insert(plan::inventory_key(&it.res.id));
                    outs.push(outcome(
                        it.app,
                        &it.res.id.to_string(),
                        Outcome::Pending,
                        format!("waiting: {why}"),
                    ));
                }
                continue;
            }
            let mut applied = Vec::new();
            let mut failed = 0;
            for i in idxs {
                let it = &items[i];
                wanted.insert(plan::inventory_key(&it.res.id));
                match self.apply_one(cluster, it, state.sync, inv).await {
                    Ok(a) => {
                        wanted.insert(plan::inventory_key(&ResourceId {
                            namespace: a.namespace.clone().unwrap_or_default(),
                            ..it.res.id.clone()
                        }));
                        kinds.push(a.resolved.clone());
                        applied.push(a);
                    }
                    Err(o) => {
                        failed += 1;
                        outs.push(o);
                    }
                }
            }
            let more = Some(step) != last;
            if more && (step == Step::Crds || !applied.is_empty()) {
                if let Err(why) = self.wait_healthy(step, &mut applied).await {
                    blocked = Some(why);
                }
            } else {
                for a in &mut applied {
                    a.out.health = Some(health::evaluate(
                        &a.resolved.ar.group,
                        &a.resolved.ar.kind,
                        &a.live,
                    ));
                }
            }
            if more && failed > 0 && blocked.is_none() {
                blocked = Some(format!("{failed} object(s) of {step} failed to apply"));
            }
            outs.extend(applied.into_iter().map(|a| a.out));
        }
        self.incomplete = blocked.is_some();
        outs.extend(self.prune(state, &wanted, inv, blocked.as_deref()).await);
        let entries = Self::k8s_entries(inv);
        self.write_cluster_inventory(cluster, entries).await;
        self.ensure_watches(cluster, kinds);
        outs
    }

    async fn check_drift(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> Vec<ResourceOutcome> {
        let cluster = state.cluster.as_str();
        let mut outs = Vec::new();
        for (app, r) in state.resources() {
            let id = r.id.to_string();
            let Some(resolved) = self.discovery.cached(&r.api_version, &r.id.kind) else {
                outs.push(outcome(app, &id, Outcome::Pending, "not applied yet"));
                continue;
            };
            let body = match parse_manifest(r)
                .and_then(|m| plan::prepare(&m, cluster, app, resolved.namespaced))
            {
                Ok(b) => b,
                Err(e) => {
                    outs.push(outcome(app, &id, Outcome::Failed, e));
                    continue;
                }
            };
            let eid = effective_id(r, &body).to_string();
            let gk = watch::group_kind(&resolved.ar.group, &resolved.ar.kind);
            let (ready, live) = {
                let store = self.store.lock().expect("live store");
                (store.ready.contains(&gk), store.objects.get(&eid).cloned())
            };
            let what = match &live {
                None if !ready => {
                    outs.push(outcome(app, &eid, Outcome::Unchanged, ""));
                    continue;
                }
                None => "was deleted outside fleet".to_string(),
                Some(l) => {
                    let paths = diff::drift(&body, l);
                    if paths.is_empty() {
                        let mut o = outcome(app, &eid, Outcome::Unchanged, "");
                        o.health = Some(health::evaluate(&resolved.ar.group, &resolved.ar.kind, l));
                        outs.push(o);
                        continue;
                    }
                    let by = diff::last_other_manager(l, FIELD_MANAGER)
                        .map(|m| format!(" (last written by {m})"))
                        .unwrap_or_default();
                    format!("{} changed outside fleet{by}", paths.join(", "))
                }
            };
            if !state.sync.self_heal {
                let mut o = outcome(
                    app,
                    &eid,
                    Outcome::Drifted,
                    format!("{what}; self-heal is off"),
                );
                o.health = live
                    .as_ref()
                    .map(|l| health::evaluate(&resolved.ar.group, &resolved.ar.kind, l));
                outs.push(o);
                continue;
            }
            // Self-heal takes back the fields fleet applied: force, since an
            // edit moved their ownership to the editor.
            let ns = body
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string);
            let api = self.api(&resolved.ar, ns.as_deref());
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(&r.id.name, &pp, &Patch::Apply(&body)).await {
                Ok(obj) => {
                    let l = serde_json::to_value(obj).unwrap_or_default();
                    let mut o = outcome(app, &eid, Outcome::Healed, format!("{what}; restored"));
                    o.health = Some(health::evaluate(&resolved.ar.group, &resolved.ar.kind, &l));
                    self.store
                        .lock()
                        .expect("live store")
                        .objects
                        .insert(eid.clone(), l);
                    outs.push(o);
                    inv.insert(
                        plan::inventory_key(&effective_id(r, &body)),
                        InventoryEntry {
                            app: app.into(),
                            id: eid,
                            digest: r.digest.clone(),
                            api_version: r.api_version.clone(),
                        },
                    );
                }
                Err(e) => outs.push(outcome(
                    app,
                    &eid,
                    Outcome::Failed,
                    format!("{what}; restoring it: {}", api_error(&e)),
                )),
            }
        }
        if !state.sync.prune {
            let wanted: BTreeSet<String> = state
                .resources()
                .map(|(_, r)| plan::inventory_key(&r.id))
                .collect();
            for (k, e) in Self::k8s_entries(inv) {
                if !wanted.contains(&k) {
                    outs.push(outcome(
                        &e.app,
                        &e.id,
                        Outcome::Orphaned,
                        "no longer desired; kept because prune is off",
                    ));
                }
            }
        }
        outs
    }
}

impl Applier for KubernetesApplier {
    async fn apply(&mut self, state: &DesiredState, inv: &mut Inventory) -> Vec<ResourceOutcome> {
        self.sync(state, inv).await
    }

    async fn reconcile_drift(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
    ) -> Vec<ResourceOutcome> {
        if self.incomplete {
            return self.sync(state, inv).await;
        }
        self.check_drift(state, inv).await
    }

    async fn changed(&mut self) {
        self.notify.notified().await
    }

    /// Server-side dry-run of every desired object (as fleet's field manager),
    /// compared with the live object; inventory objects no longer desired are
    /// listed as removed when prune is on.
    async fn diff(
        &mut self,
        state: &DesiredState,
        inv: &Inventory,
        app: Option<&str>,
    ) -> Result<Vec<ResourceDiff>, String> {
        let mut out = Vec::new();
        for (a, r) in state
            .resources()
            .filter(|(a, _)| app.is_none_or(|x| x == *a))
        {
            let id = r.id.to_string();
            let resolved = self
                .discovery
                .resolve(&r.api_version, &r.id.kind)
                .await
                .map_err(|e| format!("{id}: {e}"))?;
            let manifest = parse_manifest(r).map_err(|e| format!("{id}: {e}"))?;
            let body = plan::prepare(&manifest, &state.cluster, a, resolved.namespaced)
                .map_err(|e| format!("{id}: {e}"))?;
            let eid = effective_id(r, &body);
            let namespace = (!eid.namespace.is_empty()).then(|| eid.namespace.clone());
            let api = self.api(&resolved.ar, namespace.as_deref());
            let live = api
                .get_opt(&eid.name)
                .await
                .map_err(|e| format!("{id}: {}", api_error(&e)))?;
            let mut pp = PatchParams::apply(FIELD_MANAGER).dry_run();
            if state.sync.force_conflicts || plan::wants_force(&manifest) {
                pp = pp.force();
            }
            let after = match api.patch(&eid.name, &pp, &Patch::Apply(&body)).await {
                Ok(o) => serde_json::to_value(o).unwrap_or_default(),
                Err(e) => {
                    out.push(ResourceDiff {
                        app: a.into(),
                        id,
                        change: Change::Changed,
                        text: format!("dry-run refused: {}\n", api_error(&e)),
                    });
                    continue;
                }
            };
            let after_text = comparable(&after);
            match live {
                None => out.push(ResourceDiff {
                    app: a.into(),
                    id: id.clone(),
                    change: Change::Added,
                    text: unified("", &after_text, "/dev/null", &id),
                }),
                Some(l) => {
                    let live_text = comparable(&serde_json::to_value(l).unwrap_or_default());
                    if live_text != after_text {
                        out.push(ResourceDiff {
                            app: a.into(),
                            id: id.clone(),
                            change: Change::Changed,
                            text: unified(&live_text, &after_text, &id, &id),
                        });
                    }
                }
            }
        }
        if state.sync.prune {
            let wanted: BTreeSet<String> =
                state.resources().map(|(_, r)| r.id.to_string()).collect();
            for key in inv.keys() {
                let e = inv.get(key).expect("key from inventory");
                if wanted.contains(&e.id) || app.is_some_and(|x| x != e.app) {
                    continue;
                }
                out.push(ResourceDiff {
                    app: e.app.clone(),
                    id: e.id.clone(),
                    change: Change::Removed,
                    text: format!("--- {}\n+++ /dev/null\n(would be pruned)\n", e.id),
                });
            }
        }
        Ok(out)
    }
}

/// Canonical YAML of an object without the fields the server rewrites on
/// every write (managed fields, resource version, generation, status).
fn comparable(obj: &Value) -> String {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation"] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    fleet_render::yaml::to_canonical(&o)
}
