//! One pass over a desired state: per app, its steps in order; each object
//! applied, left alone, or healed ([`super::drift`]); a step that is not
//! healthy holds what depends on it in its app only. The pass never waits
//! for health: it reports and returns, and the next pass (a watch event, the
//! poll interval) resumes.

use std::collections::{BTreeMap, BTreeSet};

use fleet_render::{DesiredState, Resource, ResourceId};
use futures_util::StreamExt as _;
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use tokio::time::Instant;

use super::discovery::Resolved;
use super::plan::{self, FIELD_MANAGER, Step};
use super::{KubernetesApplier, api_error, effective_id, is_conflict, outcome, parse_manifest};
use crate::apply::{HealthState, Inventory, InventoryEntry, Outcome, ResourceOutcome};

/// One desired object, placed in a step. Its parsed manifest is kept for
/// CRDs only (their step reads it); the others are parsed again when they
/// are reconciled, a few at a time, so a pass over a large state holds
/// neither every manifest as a tree nor a second copy of its text.
pub(crate) struct Item<'a> {
    pub app: &'a str,
    pub res: &'a Resource,
    pub manifest: Option<Box<Value>>,
    pub step: Step,
}

impl Item<'_> {
    fn manifest(&self) -> Result<std::borrow::Cow<'_, Value>, String> {
        match &self.manifest {
            Some(m) => Ok(std::borrow::Cow::Borrowed(m)),
            None => parse_manifest(self.res).map(std::borrow::Cow::Owned),
        }
    }
}

/// Objects of a step reconciled together before they are finished (in
/// order): what a step holds at once is bounded (a result is a few hundred
/// bytes; all of a 10,000-object step were megabytes), while
/// `apply_concurrency` requests stay in flight for all but the end of each.
const FINISH_BATCH: usize = 256;

/// What [`KubernetesApplier::reconcile_object`] did, for
/// [`KubernetesApplier::finish_object`] to record.
pub(crate) struct Reconciled {
    outcome: ResourceOutcome,
    resolved: Option<Resolved>,
    id: Option<ResourceId>,
    record: Record,
}

enum Record {
    /// Reported as it is (held by a backoff, a manifest fleet cannot apply).
    Nothing,
    /// Discovery does not know the kind: a failure retried with backoff, or
    /// at once when a CRD becomes Established.
    UnknownKind(String),
    /// Applied, checked or failed: recorded in the inventory or backed off.
    Result,
}

/// What a failed or unhealthy object holds back in its app.
#[derive(Default)]
struct Holds {
    /// Namespaces that failed: their objects wait.
    namespaces: BTreeMap<String, String>,
    /// (group, kind) of CRDs not Established: their custom resources wait.
    kinds: BTreeMap<(String, String), String>,
    /// A wave that is not healthy: later waves wait.
    wave: Option<String>,
}

impl Holds {
    fn of(&self, it: &Item<'_>) -> Option<String> {
        if !matches!(it.step, Step::Wave(_)) {
            return None;
        }
        if let Some(why) = self
            .kinds
            .get(&(it.res.id.group.clone(), it.res.id.kind.clone()))
        {
            return Some(why.clone());
        }
        if let Some(why) = self.namespaces.get(&it.res.id.namespace) {
            return Some(why.clone());
        }
        self.wave.clone()
    }
}

impl KubernetesApplier {
    /// A pass: `full` for a new state (failed objects are retried at once).
    pub(crate) async fn pass(
        &mut self,
        state: &DesiredState,
        inv: &mut Inventory,
        full: bool,
    ) -> Vec<ResourceOutcome> {
        let cluster = state.cluster.as_str();
        let started = Instant::now();
        let writes_before = self.writes();
        if full {
            self.failures.clear();
            self.pruned.clear();
        }
        let mut outs = Vec::new();
        self.read_cluster_inventory(cluster, inv).await;

        let mut apps: BTreeMap<&str, Vec<Item<'_>>> = BTreeMap::new();
        for (app, r) in state.resources() {
            let parsed = parse_manifest(r)
                .and_then(|m| plan::step_of(&r.id.group, &r.id.kind, &m).map(|s| (m, s)));
            match parsed {
                Ok((manifest, step)) => apps.entry(app).or_default().push(Item {
                    app,
                    res: r,
                    manifest: (step == Step::Crds).then(|| Box::new(manifest)),
                    step,
                }),
                Err(e) => outs.push(outcome(app, &r.id.to_string(), Outcome::Failed, e)),
            }
        }

        // Write ahead: the cluster's record names every object before it exists.
        let intended: Vec<(&str, &Resource)> =
            apps.values().flatten().map(|it| (it.app, it.res)).collect();
        if let Some(o) = self.write_cluster_inventory(cluster, inv, &intended).await {
            outs.push(o);
        }

        let mut wanted = plan::Wanted::default();
        let mut complete = BTreeSet::new();
        let mut pending = false;
        for (app, items) in &apps {
            let (app_outs, done) = self.walk_app(state, items, inv, &mut wanted).await;
            pending |= !done;
            if done {
                complete.insert(app.to_string());
            }
            outs.extend(app_outs);
        }
        // Apps without objects left (removed, or now empty) are complete.
        for e in inv
            .keys()
            .filter(|k| k.starts_with("k8s:"))
            .filter_map(|k| inv.get(k))
        {
            if !apps.contains_key(e.app.as_str()) {
                complete.insert(e.app.clone());
            }
        }
        outs.extend(self.prune(state, &wanted, inv, &complete).await);
        if let Some(o) = self.write_cluster_inventory(cluster, inv, &intended).await {
            outs.push(o);
        }
        self.incomplete = pending;
        let count = |o: Outcome| outs.iter().filter(|x| x.outcome == o).count();
        tracing::info!(
            revision = %state.commit.id,
            full,
            objects = outs.len(),
            applied = count(Outcome::Applied),
            healed = count(Outcome::Healed),
            failed = count(Outcome::Failed),
            pending = count(Outcome::Pending),
            writes = self.writes() - writes_before,
            writes_total = self.writes(),
            ms = started.elapsed().as_millis() as u64,
            "kubernetes pass"
        );
        outs
    }

    /// One app's steps in order. Returns its outcomes and whether nothing of
    /// it is held.
    async fn walk_app(
        &mut self,
        state: &DesiredState,
        items: &[Item<'_>],
        inv: &mut Inventory,
        wanted: &mut plan::Wanted,
    ) -> (Vec<ResourceOutcome>, bool) {
        let cluster = state.cluster.as_str();
        let planned = plan::plan(items.iter().enumerate().map(|(i, it)| (i, it.step)));
        let mut holds = Holds::default();
        let mut outs = Vec::new();
        let mut done = true;
        let mut kinds = Vec::new();
        for (step, idxs) in planned {
            let mut failed = 0;
            let mut waiting: Option<String> = None;
            // Held objects wait; the others are reconciled together, at
            // most `apply_concurrency` at a time, and finished in order.
            let mut run = Vec::new();
            let mut held = BTreeMap::new();
            for &i in &idxs {
                let it = &items[i];
                wanted.insert(&it.res.id);
                match holds.of(it) {
                    Some(why) => {
                        held.insert(i, why);
                    }
                    None => run.push(i),
                }
            }
            self.resolve_kinds(run.iter().map(|&i| &items[i])).await;
            for batch in idxs.chunks(FINISH_BATCH) {
                let todo: Vec<usize> = batch
                    .iter()
                    .copied()
                    .filter(|i| !held.contains_key(i))
                    .collect();
                let done_objects: Vec<Reconciled> = {
                    let this = &*self;
                    let inv_ro = &*inv;
                    futures_util::stream::iter(todo)
                        .map(move |i: usize| this.reconcile_object(state, &items[i], inv_ro))
                        .buffered(self.opts.apply_concurrency.max(1))
                        .collect()
                        .await
                };
                let mut done_objects = done_objects.into_iter();
                for &i in batch {
                    let it = &items[i];
                    if let Some(why) = held.remove(&i) {
                        done = false;
                        outs.push(outcome(
                            it.app,
                            &it.res.id.to_string(),
                            Outcome::Pending,
                            format!("waiting: {why}"),
                        ));
                        continue;
                    }
                    let Some(r) = done_objects.next() else {
                        continue;
                    };
                    let (o, resolved, eid) = self.finish_object(it, r, inv);
                    if let Some(eid) = &eid {
                        wanted.insert(eid);
                    }
                    // One per kind: the watches are per kind.
                    if let Some(r) = resolved.filter(|r| {
                        !kinds
                            .iter()
                            .any(|k: &Resolved| k.ar.group == r.ar.group && k.ar.kind == r.ar.kind)
                    }) {
                        kinds.push(r);
                    }
                    let health = o.health.as_ref().map(|h| h.state);
                    if o.outcome == Outcome::Failed {
                        failed += 1;
                        match step {
                            Step::Namespaces => {
                                holds.namespaces.insert(
                                    it.res.id.name.clone(),
                                    format!("its Namespace {} failed", it.res.id.name),
                                );
                            }
                            Step::Crds => {
                                if let Some(gk) = it.manifest.as_deref().and_then(crd_kind) {
                                    holds.kinds.insert(
                                        gk,
                                        format!(
                                            "its CustomResourceDefinition {} failed",
                                            it.res.id.name
                                        ),
                                    );
                                }
                            }
                            Step::Wave(_) => {}
                        }
                    } else if health.is_some_and(|h| h != HealthState::Healthy) {
                        let why = format!(
                            "{}: {}",
                            o.id,
                            o.health.as_ref().map(|h| h.reason.as_str()).unwrap_or("")
                        );
                        match step {
                            Step::Crds => {
                                if let Some(gk) = it.manifest.as_deref().and_then(crd_kind) {
                                    holds
                                        .kinds
                                        .insert(gk, format!("CustomResourceDefinition {why}"));
                                }
                            }
                            Step::Namespaces => {}
                            Step::Wave(_) => {
                                waiting.get_or_insert(why);
                            }
                        }
                    }
                    if step == Step::Crds && health == Some(HealthState::Healthy) {
                        if let Some(m) = &it.manifest {
                            self.crd_established(m);
                        }
                    }
                    outs.push(o);
                }
            }
            if matches!(step, Step::Wave(_)) && holds.wave.is_none() {
                let key = (items[0].app.to_string(), step);
                if failed > 0 {
                    self.waiting.remove(&key);
                    holds.wave = Some(format!("{failed} object(s) of {step} failed"));
                } else if let Some(why) = waiting {
                    let since = *self.waiting.entry(key).or_insert_with(Instant::now);
                    let waited = since.elapsed();
                    holds.wave = Some(if waited >= self.opts.step_timeout {
                        format!(
                            "{step} not healthy after {:?}: {why}",
                            self.opts.step_timeout
                        )
                    } else {
                        format!("{step} not healthy yet: {why}")
                    });
                } else {
                    self.waiting.remove(&key);
                }
            }
        }
        self.ensure_watches(cluster, kinds);
        (outs, done)
    }

    /// A CRD is Established: its group versions are looked up again, and
    /// objects that failed as of an unknown kind are retried now.
    fn crd_established(&mut self, crd: &Value) {
        let Some(name) = crd.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        if !self.established.insert(name.to_string()) {
            return;
        }
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(v) = v.get("name").and_then(Value::as_str) {
                self.discovery.forget(&format!("{group}/{v}"));
            }
        }
        self.failures.retain(|_, f| !f.unknown_kind);
    }

    /// Looks up, in order, every kind these objects need that discovery
    /// has not cached (one request per group version); a kind that fails is
    /// remembered for [`Self::reconcile_object`] to report.
    async fn resolve_kinds<'b>(&mut self, items: impl Iterator<Item = &'b Item<'b>>) {
        self.unresolved.clear();
        for it in items {
            let r = it.res;
            if self.backing_off(&r.id.to_string(), &r.digest).is_some() {
                continue;
            }
            let key = (r.api_version.clone(), r.id.kind.clone());
            if self.unresolved.contains_key(&key) || self.discovery.cached(&key.0, &key.1).is_some()
            {
                continue;
            }
            if let Err(e) = self.discovery.resolve(&key.0, &key.1).await {
                self.unresolved.insert(key, e);
            }
        }
    }

    /// One object: applied when fleet has not applied it at this digest,
    /// checked for drift (and healed) when it has. Runs alongside the other
    /// objects of its step (`&self`); [`Self::finish_object`] records the
    /// result.
    async fn reconcile_object(
        &self,
        state: &DesiredState,
        it: &Item<'_>,
        inv: &Inventory,
    ) -> Reconciled {
        let r = it.res;
        let rid = r.id.to_string();
        let done = |o| Reconciled {
            outcome: o,
            resolved: None,
            id: None,
            record: Record::Nothing,
        };
        if let Some(o) = self.backing_off(&rid, &r.digest) {
            return done(o);
        }
        let resolved = match self.discovery.cached(&r.api_version, &r.id.kind) {
            Some(x) => x,
            None => {
                let e = self
                    .unresolved
                    .get(&(r.api_version.clone(), r.id.kind.clone()))
                    .cloned()
                    .unwrap_or_else(|| format!("unknown kind {}", r.id.kind));
                let mut d = done(outcome(it.app, &rid, Outcome::Failed, e));
                d.record = Record::UnknownKind(rid);
                return d;
            }
        };
        let manifest = match it.manifest() {
            Ok(m) => m,
            Err(e) => return done(outcome(it.app, &rid, Outcome::Failed, e)),
        };
        let body = match plan::prepare(&manifest, &state.cluster, it.app, resolved.namespaced) {
            Ok(b) => b,
            Err(e) => return done(outcome(it.app, &rid, Outcome::Failed, e)),
        };
        let id = effective_id(r, &body);
        let eid = id.to_string();
        let key = plan::inventory_key(&id);
        if let Some(o) = self.backing_off(&eid, &r.digest) {
            return Reconciled {
                outcome: o,
                resolved: Some(resolved),
                id: Some(id),
                record: Record::Nothing,
            };
        }
        let applied = inv
            .get(&key)
            .is_some_and(|e| !e.digest.is_empty() && e.digest == r.digest);
        let o = if applied {
            self.check_drift(state, it, &resolved, &body, &id).await
        } else {
            // Not applied at this digest: forced only where the policy or
            // the object says so; fleet owns none of these fields yet.
            let force = state.sync.force_conflicts || plan::wants_force(&manifest);
            match self.apply_body(&resolved, &body, &id, force).await {
                Ok(live) => {
                    let mut o = outcome(it.app, &eid, Outcome::Applied, "");
                    o.health = Some(self.health_of(&resolved, &live));
                    o
                }
                Err(e) => outcome(it.app, &eid, Outcome::Failed, apply_message(&e)),
            }
        };
        Reconciled {
            outcome: o,
            resolved: Some(resolved),
            id: Some(id),
            record: Record::Result,
        }
    }

    /// Records what [`Self::reconcile_object`] did: a failure and its
    /// backoff, or the object in the inventory at its digest.
    fn finish_object(
        &mut self,
        it: &Item<'_>,
        r: Reconciled,
        inv: &mut Inventory,
    ) -> (ResourceOutcome, Option<Resolved>, Option<ResourceId>) {
        let res = it.res;
        let mut o = r.outcome;
        match r.record {
            Record::Nothing => {}
            Record::UnknownKind(rid) => o = self.fail(&rid, &res.digest, o, true),
            Record::Result => {
                let eid = r.id.as_ref().map(ToString::to_string).unwrap_or_default();
                match o.outcome {
                    Outcome::Failed => o = self.fail(&eid, &res.digest, o, false),
                    Outcome::Applied | Outcome::Healed | Outcome::Unchanged => {
                        self.failures.remove(&eid);
                        let key = r.id.as_ref().map(plan::inventory_key).unwrap_or_default();
                        inv.insert(
                            key,
                            InventoryEntry {
                                app: it.app.into(),
                                id: eid,
                                digest: res.digest.clone(),
                                api_version: res.api_version.clone(),
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        (o, r.resolved, r.id)
    }

    /// Server-side applies `body`; the live object it returns is remembered.
    pub(crate) async fn apply_body(
        &self,
        resolved: &Resolved,
        body: &Value,
        id: &ResourceId,
        force: bool,
    ) -> Result<Value, kube::Error> {
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        if force {
            pp = pp.force();
        }
        let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
        let api = self.api(&resolved.ar, ns);
        self.count_write();
        let obj = api.patch(&id.name, &pp, &Patch::Apply(body)).await?;
        let live = serde_json::to_value(obj).unwrap_or_default();
        self.remember(&id.to_string(), live.clone());
        Ok(live)
    }

    /// Health of a live object.
    pub(crate) fn health_of(&self, resolved: &Resolved, live: &Value) -> crate::apply::Health {
        super::health::evaluate(&resolved.ar.group, &resolved.ar.kind, live)
    }
}

/// The message of a failed apply; a conflict names the rule.
pub(crate) fn apply_message(e: &kube::Error) -> String {
    if is_conflict(e) {
        let m = match e {
            kube::Error::Api(s) => s.message.clone(),
            e => e.to_string(),
        };
        format!(
            "conflict with another field manager: {m}; fleet takes such fields only when the cluster's sync policy has forceConflicts: true or the object is annotated {}: \"true\"",
            plan::ANNOTATION_FORCE
        )
    } else {
        format!("apply: {}", api_error(e))
    }
}

/// The (group, kind) a CRD manifest defines.
fn crd_kind(crd: &Value) -> Option<(String, String)> {
    Some((
        crd.pointer("/spec/group")?.as_str()?.to_string(),
        crd.pointer("/spec/names/kind")?.as_str()?.to_string(),
    ))
}
