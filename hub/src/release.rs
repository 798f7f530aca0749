//! Held releases: the *desired* state of each cluster (rendered from the
//! latest commit) and the *released* one (what its spoke is served). They
//! differ while a sync is held: a manual sync policy, a closed sync window,
//! or a progressive rollout ([`crate::rollout`]) whose wave has not reached
//! the cluster yet. `fleetctl sync` releases on demand.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fleet_render::{CommitMeta, DesiredState};

use crate::fanout::{Fanout, Published};
use crate::rollout::{self, ClusterView, Rollout, Rollouts};
use crate::signing::{Envelope, StateSigner};
use crate::status::{self, FleetIndex, SpokeRecord};
use crate::store::{self, Store};

/// Why a sync request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cluster {0} is not in the fleet repo; clusters: {1}")]
    UnknownCluster(String, String),
    #[error("cluster {0}: the hub has not rendered the fleet repo yet; try again when it has")]
    NotRendered(String),
    #[error("app {app} does not run on cluster {cluster}; apps there: {known}")]
    UnknownApp {
        cluster: String,
        app: String,
        known: String,
    },
    #[error("cluster {cluster}: {reason}; use --force to sync anyway")]
    WindowClosed { cluster: String, reason: String },
}

/// At most this many names in an error's list of what exists.
const LIST_MAX: usize = 20;

pub fn list_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&String> = names.collect();
    let mut s = all
        .iter()
        .take(LIST_MAX)
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > LIST_MAX {
        s.push_str(&format!(" and {} more", all.len() - LIST_MAX));
    }
    if s.is_empty() {
        s.push_str("(none)");
    }
    s
}

/// A state ready to serve, signed when the hub has a signer: a stored
/// envelope for the same digest and commit is kept (a restart re-serves the
/// same signature), otherwise a new statement is signed.
fn published(
    state: &DesiredState,
    signer: Option<&StateSigner>,
    stored: Option<Envelope>,
    content: crate::fanout::Content,
    content_key: Arc<str>,
    (commit, head): (Arc<CommitMeta>, bytes::Bytes),
) -> Published {
    let envelope = match (signer, stored) {
        // Kept only if it is this key's: after a key rotation every state is
        // signed again, so spokes that dropped the old key accept them.
        (Some(s), Some(e)) if envelope_matches(&e, state) && s.signed(&e) => e,
        (None, Some(e)) if envelope_matches(&e, state) => e,
        (Some(s), _) => s.sign(&s.facts(state, crate::signing::now_ms())),
        (None, _) => Envelope::default(),
    };
    Published {
        commit,
        digest: state.digest.clone(),
        content_key,
        content,
        head,
        envelope,
    }
}

fn envelope_matches(e: &Envelope, s: &DesiredState) -> bool {
    fleet_proto::provenance::parse(&e.statement)
        .is_ok_and(|f| f.digest == s.digest && f.commit == s.commit.id && f.cluster == s.cluster)
}

/// States by cluster, shared: a release or a status read takes a reference,
/// never a copy of a state.
pub type States = BTreeMap<String, Arc<DesiredState>>;

/// Desired and released states per cluster, and why releases are held.
///
/// Its locks are taken in one order: `bases`, `states`, `released`,
/// `fresh`, `held` (any may be left out).
pub struct Releases {
    store: Store,
    signer: Option<Arc<StateSigner>>,
    states: RwLock<States>,
    released: RwLock<States>,
    held: Mutex<BTreeMap<String, String>>,
    /// Contents encoded (and stored) by the last `set_desired`, for the
    /// release that follows it; dropped after each `release_due`.
    fresh: Mutex<foldhash::HashMap<String, crate::fanout::Content>>,
    /// The base commit of the stored desired and released trees
    /// ([`Store::base`]): states at it are stored without their commit, so
    /// a commit that moves them costs no write per cluster.
    bases: Mutex<Bases>,
    /// Records written to the store since the hub started (desired and
    /// released trees): what a commit cost in storage.
    pub written: Mutex<store::Written>,
    pub rollouts: Rollouts,
}

/// Shared with the states at them, so that a state is found at its tree's
/// base by pointer ([`store::same_commit`]).
#[derive(Default)]
struct Bases {
    desired: Arc<CommitMeta>,
    released: Arc<CommitMeta>,
}

/// What releasing needs from the rest of the hub.
pub struct Ctx<'a> {
    pub index: &'a FleetIndex,
    pub spokes: &'a BTreeMap<String, SpokeRecord>,
    pub connected: &'a dyn Fn(&str) -> bool,
    pub fanout: &'a Fanout,
    pub published: &'a AtomicU64,
}

impl Releases {
    /// Loads the stored states (and publishes the released ones to `fanout`).
    pub fn open(
        store: &Store,
        fanout: &Fanout,
        signer: Option<Arc<StateSigner>>,
    ) -> anyhow::Result<Releases> {
        let shared = |m: BTreeMap<String, DesiredState>| -> States {
            m.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
        };
        let states = shared(store.load_states(store::DESIRED)?);
        let released = shared(store.load_states(store::RELEASED)?);
        let collected = store.collect_contents()?;
        if collected > 0 {
            tracing::info!(
                contents = collected,
                "removed stored contents no state names"
            );
        }
        for (cluster, state) in &released {
            let stored = store.load_envelope(cluster)?;
            let content = match store.load_content(&fleet_proto::convert::content_key(state))? {
                Some(c) => c.into(),
                None => fleet_proto::convert::encode_content(state).into(),
            };
            let head = (
                Arc::clone(&state.commit),
                fleet_proto::convert::encode_commit(&state.commit),
            );
            let key = fleet_proto::convert::content_key(state).into();
            let p = published(state, signer.as_deref(), stored, content, key, head);
            if signer.is_some() {
                store.save_envelope(cluster, &p.envelope)?;
            }
            fanout.publish(cluster, Arc::new(p));
        }
        if !released.is_empty() {
            tracing::info!(
                clusters = released.len(),
                "serving stored states until the fleet repo is read"
            );
        }
        Ok(Releases {
            rollouts: Rollouts::new(store.load_rollouts()?),
            store: store.clone(),
            signer,
            states: RwLock::new(states),
            released: RwLock::new(released),
            held: Mutex::new(BTreeMap::new()),
            fresh: Mutex::default(),
            written: Mutex::new(store::Written::default()),
            bases: Mutex::new(Bases {
                desired: Arc::new(store.base(store::DESIRED)?.unwrap_or_default()),
                released: Arc::new(store.base(store::RELEASED)?.unwrap_or_default()),
            }),
        })
    }

    pub fn states_snapshot(&self) -> States {
        self.states.read().expect("states lock").clone()
    }

    /// Runs `f` over the desired states (the renderer's previous states),
    /// without copying them.
    pub fn with_desired<T>(&self, f: impl FnOnce(&States) -> T) -> T {
        f(&self.states.read().expect("states lock"))
    }

    pub fn has_desired(&self) -> bool {
        !self.states.read().expect("states lock").is_empty()
    }

    pub fn knows(&self, cluster: &str) -> bool {
        self.states
            .read()
            .expect("states lock")
            .contains_key(cluster)
    }

    pub fn desired(&self, cluster: &str) -> Option<DesiredState> {
        self.states
            .read()
            .expect("states lock")
            .get(cluster)
            .map(|s| DesiredState::clone(s))
    }

    pub fn signer(&self) -> Option<&StateSigner> {
        self.signer.as_deref()
    }

    pub fn released(&self, cluster: &str) -> Option<DesiredState> {
        self.released
            .read()
            .expect("released lock")
            .get(cluster)
            .map(|s| DesiredState::clone(s))
    }

    pub fn held_reason(&self, cluster: &str) -> Option<String> {
        self.held.lock().expect("held lock").get(cluster).cloned()
    }

    /// Runs `f` over desired, released and held (for status).
    pub fn view<T>(&self, f: impl FnOnce(&States, &States, &BTreeMap<String, String>) -> T) -> T {
        let states = self.states.read().expect("states lock");
        let released = self.released.read().expect("released lock");
        let held = self.held.lock().expect("held lock");
        f(&states, &released, &held)
    }

    /// The commit a spoke reports, with author and message when the hub knows it.
    pub fn commit_meta_for(&self, cluster: &str, revision: &str) -> Option<CommitMeta> {
        for map in [&self.released, &self.states] {
            if let Some(s) = map.read().expect("lock").get(cluster) {
                if s.commit.id == revision {
                    return Some(CommitMeta::clone(&s.commit));
                }
            }
        }
        None
    }

    /// Stores a render's desired states (durable), dropping removed clusters.
    /// A cluster whose content did not change costs no write (its header
    /// names the tree's base commit, which moves once); only changed
    /// contents are encoded and stored.
    pub fn set_desired(
        &self,
        commit: &CommitMeta,
        new: BTreeMap<String, DesiredState>,
    ) -> anyhow::Result<()> {
        // Locks in the order a release takes them (bases, states, fresh).
        // The states are only read until the swap at the end: the streams
        // and status readers are not held up by the encoding and the store's
        // write. No other writer can come in between: every `set_desired`
        // holds `bases` throughout.
        let mut bases = self.bases.lock().expect("bases lock");
        let states = self.states.read().expect("states lock");
        let mut fresh = self.fresh.lock().expect("fresh lock");
        fresh.clear();
        // The render's states share one commit: the tree's new base is it.
        let base = new
            .values()
            .map(|s| &s.commit)
            .find(|c| ***c == *commit)
            .map_or_else(|| Arc::new(commit.clone()), Arc::clone);
        let mut encoder = fleet_proto::convert::ContentEncoder::default();
        let mut writes = Vec::new();
        let mut olds = crate::sorted::Cursor::new(&states);
        for (cluster, state) in &new {
            let old = olds.get(cluster);
            if old.is_some_and(|o| store::header_unchanged(o, &bases.desired, state, &base)) {
                continue;
            }
            if old.is_some_and(|o| fleet_proto::convert::same_content(o, state)) {
                writes.push((state, None));
                continue;
            }
            let parts = encoder.encode_parts(state);
            fresh.insert(cluster.clone(), (&parts).into());
            writes.push((state, Some(parts)));
        }
        let mut kept = crate::sorted::Cursor::new(&new);
        let gone: Vec<String> = states
            .keys()
            .filter(|c| !kept.contains_key(c))
            .cloned()
            .collect();
        for cluster in &gone {
            tracing::info!(%cluster, "cluster removed from the fleet repo");
        }
        let writes: Vec<(&DesiredState, Option<&fleet_proto::convert::ContentParts>)> =
            writes.iter().map(|(s, c)| (*s, c.as_ref())).collect();
        let w = self
            .store
            .write_states(store::DESIRED, commit, &writes, &gone)?;
        *self.written.lock().expect("written lock") += w;
        drop((fresh, states));
        let new: States = new.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let old = std::mem::replace(&mut *self.states.write().expect("states lock"), new);
        bases.desired = base;
        drop(bases);
        crate::reclaim::later(old);
        Ok(())
    }

    fn record(&self, cluster: &str, ev: status::Event) {
        if let Err(e) = self.store.record_event(cluster, &ev) {
            tracing::warn!(%cluster, error = %e, "cannot record an event");
        }
    }

    /// Releases every desired state whose cluster syncs automatically, whose
    /// sync windows are open at `now` and whose environment's rollout has
    /// reached it; records why the others are held.
    pub fn release_due(&self, now: i64, ctx: &Ctx<'_>) -> anyhow::Result<usize> {
        let states = self.states.read().expect("states lock");
        let index = ctx.index;
        let mut due = Vec::with_capacity(states.len());
        let mut held = BTreeMap::new();
        {
            let released = self.released.read().expect("released lock");
            let releasable_as =
                |meta: Option<&crate::renderer::ClusterMeta>| -> Result<(), String> {
                    if !meta.is_none_or(|m| m.automatic) {
                        return Err("manual sync policy: run `fleetctl sync`".into());
                    }
                    meta.map(|m| fleet_render::window::allows(&m.windows, now))
                        .unwrap_or(Ok(()))
                        .map_err(|reason| format!("held: {reason}"))
                };
            let releasable = |cluster: &str| releasable_as(index.clusters.get(cluster));
            let pending = |cluster: &str| match (states.get(cluster), released.get(cluster)) {
                (Some(d), Some(r)) => d.digest != r.digest,
                (Some(_), None) => true,
                _ => false,
            };
            // Rollouts decide for the clusters of their environment.
            let mut decided: BTreeMap<String, bool> = BTreeMap::new();
            for (env, plan) in &index.rollouts {
                let members: Vec<&String> = plan.waves.iter().flat_map(|w| &w.clusters).collect();
                let key = rollout::key_of(
                    members
                        .iter()
                        .filter_map(|c| states.get(*c).map(|s| (c.as_str(), s.digest.as_str()))),
                );
                let revision = members
                    .iter()
                    .filter(|c| pending(c))
                    .find_map(|c| states.get(*c).map(|s| s.commit.clone()));
                let view = |c: &str| -> ClusterView {
                    let rel = released.get(c);
                    let rec = ctx.spokes.get(c);
                    ClusterView {
                        pending: pending(c),
                        runs: rel
                            .is_some_and(|r| rec.is_some_and(|x| x.applied_digest == r.digest)),
                        synced: rec.is_some_and(|x| x.sync == "synced"),
                        connected: (ctx.connected)(c),
                        problems: rec
                            .map(|x| {
                                x.resources
                                    .iter()
                                    .filter(|r| r.state == "failed" || r.health == "degraded")
                                    .map(|r| {
                                        let msg = if r.health == "degraded" {
                                            &r.health_message
                                        } else {
                                            &r.message
                                        };
                                        format!("{} ({}): {msg}", r.id, r.app)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        releasable: releasable(c),
                    }
                };
                let step = self.rollouts.with(env, |slot| {
                    let restart = match (slot.as_ref(), &revision) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(r), Some(_)) => r.key != key,
                    };
                    let mut notes = Vec::new();
                    if restart {
                        let rev = revision.as_deref().cloned().unwrap_or_default();
                        if let Some(old) = slot.as_ref() {
                            if old.phase == rollout::Phase::Progressing
                                || old.phase == rollout::Phase::Paused
                            {
                                notes.push((
                                    String::new(),
                                    format!(
                                        "rollout of {} superseded by {}",
                                        old.revision.short_id(),
                                        rev.short_id()
                                    ),
                                ));
                            }
                        }
                        let immediate = rollout::is_rollback(&rev);
                        tracing::info!(%env, revision = %rev.short_id(), immediate, "rollout started");
                        *slot = Some(Rollout::start(env, rev, key.clone(), plan, now, immediate));
                    }
                    let Some(r) = slot.as_mut() else {
                        return None;
                    };
                    let before = r.clone();
                    let step = r.step(now, &view);
                    let changed = restart || step.changed || *r != before;
                    Some((step, r.clone(), changed, notes, before))
                });
                let Some((step, r, changed, notes, before)) = step else {
                    continue;
                };
                for c in &members {
                    decided.insert((*c).clone(), false);
                }
                for c in &step.release {
                    decided.insert(c.clone(), true);
                }
                held.extend(step.held);
                for (_, note) in notes {
                    for c in &members {
                        self.record(
                            c,
                            status::Event {
                                time: now,
                                commit: r.revision.id.clone(),
                                note: note.clone(),
                                who: "the hub".into(),
                                reason: String::new(),
                            },
                        );
                    }
                }
                for n in step.notes {
                    self.record(
                        &n.cluster,
                        status::Event {
                            time: now,
                            commit: r.revision.id.clone(),
                            note: n.note,
                            who: "the hub".into(),
                            reason: n.reason,
                        },
                    );
                }
                if r.immediate && before.phase != r.phase {
                    for c in &members {
                        self.record(
                            c,
                            status::Event {
                                time: now,
                                commit: r.revision.id.clone(),
                                note: format!(
                                    "rollback {} released to every cluster of {env} at once",
                                    r.revision.short_id()
                                ),
                                who: r.revision.author.clone(),
                                reason: trailer(&r.revision.message, "Reason").unwrap_or_default(),
                            },
                        );
                    }
                }
                if r.wave > before.wave && !r.immediate {
                    for w in &r.waves[before.wave..r.wave.min(r.waves.len())] {
                        tracing::info!(%env, wave = %w.name, revision = %r.revision.short_id(), "rollout wave done");
                    }
                }
                if changed {
                    if let Err(e) = self.store.save_rollout(env, &r) {
                        tracing::warn!(%env, error = %e, "cannot store the rollout");
                    }
                }
            }
            let mut released_now = crate::sorted::Cursor::new(&released);
            let mut metas = crate::sorted::Cursor::new(&index.clusters);
            for (cluster, desired) in states.iter() {
                let current = released_now.get(cluster);
                if current.is_some_and(|c| c.digest == desired.digest && c.commit == desired.commit)
                {
                    continue;
                }
                // Same content, new commit: only the revision moves on.
                let same_content = current.is_some_and(|c| c.digest == desired.digest);
                match decided.get(cluster) {
                    Some(true) => {
                        due.push(Arc::clone(desired));
                        continue;
                    }
                    Some(false) if !same_content => continue,
                    _ => {}
                }
                match releasable_as(metas.get(cluster)) {
                    Ok(()) => due.push(Arc::clone(desired)),
                    Err(reason) => {
                        held.insert(cluster.clone(), reason);
                    }
                }
            }
        }
        drop(states);
        *self.held.lock().expect("held lock") = held;
        let base = {
            let bases = self.bases.lock().expect("bases lock");
            if *bases.desired == index.commit {
                Arc::clone(&bases.desired)
            } else {
                Arc::new(index.commit.clone())
            }
        };
        let released = self.release(due, Some(base), ctx);
        self.fresh.lock().expect("fresh lock").clear();
        released
    }

    /// Makes states the served ones: durable first, then published. `base`:
    /// the commit the released tree moves to (the render's, when releasing
    /// a render); `None` keeps it.
    fn release(
        &self,
        states: Vec<Arc<DesiredState>>,
        base: Option<Arc<CommitMeta>>,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<usize> {
        if states.is_empty() {
            return Ok(0);
        }
        let count = states.len();
        let mut out = Vec::with_capacity(states.len());
        let mut bases = self.bases.lock().expect("bases lock");
        let old_base = Arc::clone(&bases.released);
        let new_base = base.unwrap_or_else(|| Arc::clone(&old_base));
        {
            let desired = self.states.read().expect("states lock");
            let released = self.released.read().expect("released lock");
            let mut fresh = self.fresh.lock().expect("fresh lock");
            // The commit's encoding, once per commit rather than per cluster.
            let mut heads: HashMap<&str, (Arc<CommitMeta>, bytes::Bytes)> = HashMap::new();
            let mut last_head: Option<(Arc<CommitMeta>, bytes::Bytes)> = None;
            // A content in neither tree (a partial `fleetctl sync --app`)
            // is split into parts by the store.
            let mut writes: Vec<&DesiredState> = Vec::new();
            let mut encoder = fleet_proto::convert::ContentEncoder::default();
            let serving = ctx
                .fanout
                .get_all(states.iter().map(|s| s.cluster.as_str()));
            let mut released_now = crate::sorted::Cursor::new(&released);
            for (s, serving) in states.iter().zip(serving) {
                let current = released_now.get(&s.cluster);
                let as_released = current.is_some_and(|o| fleet_proto::convert::same_content(o, s));
                // The content the cluster is served now (what it was released
                // with), or the one the render just stored: neither stored
                // again nor (when at hand) encoded. A state released from the
                // desired ones is that very state.
                let (key, content) = match serving
                    .as_ref()
                    .filter(|p| as_released && p.digest == s.digest)
                {
                    Some(p) => (Arc::clone(&p.content_key), p.content.clone()),
                    None => {
                        let key = fleet_proto::convert::content_key_of(s);
                        let content = match serving.as_ref().filter(|p| *p.content_key == *key) {
                            Some(p) => p.content.clone(),
                            None => {
                                let d = desired.get(&s.cluster);
                                let as_desired = d.is_some_and(|d| {
                                    Arc::ptr_eq(d, s) || fleet_proto::convert::same_content(d, s)
                                });
                                fresh
                                    .remove(&s.cluster)
                                    .filter(|_| as_desired)
                                    .unwrap_or_else(|| (&encoder.encode_parts(s)).into())
                            }
                        };
                        (Arc::from(&*key), content)
                    }
                };
                // `header_unchanged`, with its content check done above.
                let unchanged = as_released
                    && current
                        .is_some_and(|o| store::same_commit_field(o, &old_base, s, &new_base));
                if !unchanged {
                    writes.push(s);
                }
                // The states of a render share one commit: the last one
                // looked up is found by its pointer, without hashing its id.
                let head = match last_head
                    .as_ref()
                    .filter(|(c, _)| Arc::ptr_eq(c, &s.commit))
                {
                    Some(h) => h.clone(),
                    None => {
                        let h = heads
                            .entry(s.commit.id.as_str())
                            .or_insert_with(|| {
                                (
                                    Arc::clone(&s.commit),
                                    fleet_proto::convert::encode_commit(&s.commit),
                                )
                            })
                            .clone();
                        last_head = Some(h.clone());
                        h
                    }
                };
                let p = published(s, self.signer.as_deref(), None, content, key, head);
                if self.signer.is_some() {
                    self.store.save_envelope(&s.cluster, &p.envelope)?;
                }
                out.push(Arc::new(p));
            }
            // States left at the old base keep their commit, now named.
            if !store::same_commit(&new_base, &old_base) {
                let mut moving: Vec<&str> = states.iter().map(|s| s.cluster.as_str()).collect();
                moving.sort_unstable();
                // Both in name order: one walk, not a search per cluster.
                let mut moving = moving.into_iter().peekable();
                for (cluster, r) in released.iter() {
                    while moving.next_if(|m| *m < cluster.as_str()).is_some() {}
                    if store::same_commit(&r.commit, &old_base)
                        && moving.peek() != Some(&cluster.as_str())
                    {
                        writes.push(r);
                    }
                }
            }
            let writes: Vec<(&DesiredState, Option<&fleet_proto::convert::ContentParts>)> =
                writes.into_iter().map(|s| (s, None)).collect();
            let w = self
                .store
                .write_states(store::RELEASED, &new_base, &writes, &[])?;
            *self.written.lock().expect("written lock") += w;
        }
        // Durable before served: a hub killed now restarts with them.
        self.store.flush_sync()?;
        bases.released = new_base;
        // `bases` is held to the end: a second release waits until this one
        // is served, so it can never serve an older state over this one.
        let mut released = self.released.write().expect("released lock");
        // The cluster's entry is kept: no new key per release.
        let replaced =
            crate::sorted::update_sorted(&mut released, states.iter().map(Arc::clone), |s| {
                s.cluster.as_str()
            });
        // Last: the streams it wakes share the cores with this thread.
        ctx.fanout
            .publish_all(states.iter().zip(out).map(|(s, p)| (s.cluster.as_str(), p)));
        drop((released, bases));
        ctx.published.fetch_add(count as u64, Ordering::Relaxed);
        crate::reclaim::later((replaced, states));
        Ok(count)
    }

    /// `fleetctl sync`: releases a cluster's desired state (or one app of it)
    /// now, even under a manual policy or a rollout; a closed window needs `force`.
    pub fn sync(&self, req: SyncRequest<'_>, ctx: &Ctx<'_>) -> Result<DesiredState, SyncError> {
        let SyncRequest {
            cluster,
            app,
            force,
            who,
            reason,
        } = req;
        let desired = self.desired(cluster).ok_or_else(|| {
            SyncError::UnknownCluster(
                cluster.into(),
                list_names(self.states.read().expect("states lock").keys()),
            )
        })?;
        let windows = ctx
            .index
            .clusters
            .get(cluster)
            .map(|m| m.windows.clone())
            .unwrap_or_default();
        let window = fleet_render::window::allows(&windows, status::now());
        if let Err(reason) = &window {
            if !force {
                return Err(SyncError::WindowClosed {
                    cluster: cluster.into(),
                    reason: reason.clone(),
                });
            }
        }
        let current = self.released(cluster);
        let next = match (app, current) {
            (None, _) | (Some(_), None) => desired.clone(),
            (Some(app), Some(cur)) => {
                let a = desired.apps.get(app).ok_or_else(|| SyncError::UnknownApp {
                    cluster: cluster.into(),
                    app: app.into(),
                    known: list_names(desired.apps.keys()),
                })?;
                // The other apps stay at the commit they were released at.
                let mut apps = BTreeMap::clone(&cur.apps);
                for other in apps.values_mut() {
                    other
                        .source_revision
                        .get_or_insert_with(|| cur.commit.id.clone());
                }
                apps.insert(app.to_string(), a.clone());
                DesiredState::new(cur.cluster, Arc::clone(&desired.commit), desired.sync, apps)
            }
        };
        let (note, why) = match (&window, force) {
            (Err(w), true) => (
                format!("sync --force by {who}"),
                match reason {
                    "" => format!("closed window: {w}"),
                    r => format!("{r} (closed window: {w})"),
                },
            ),
            _ => (format!("sync by {who}"), reason.to_string()),
        };
        let note = match app {
            Some(a) => format!("{note} (app {a})"),
            None => note,
        };
        tracing::info!(%cluster, app = app.unwrap_or("*"), revision = %next.commit.short_id(), %note, reason = %why, "manual sync");
        self.record(
            cluster,
            status::Event {
                time: status::now(),
                commit: next.commit.id.clone(),
                note,
                who: who.into(),
                reason: why,
            },
        );
        if let Err(e) = self.release(vec![Arc::new(next.clone())], None, ctx) {
            tracing::error!(error = %e, "cannot release the synced state");
        }
        self.held.lock().expect("held lock").remove(cluster);
        Ok(next)
    }

    /// The desired state to compare a live diff against, when a release is
    /// held for the cluster (else the spoke's own, released, state is the latest).
    pub fn held_desired(&self, cluster: &str) -> Option<(DesiredState, String)> {
        let desired = self.desired(cluster)?;
        let rel = self.released(cluster);
        if rel.is_some_and(|r| r.digest == desired.digest) {
            return None;
        }
        let why = self.held_reason(cluster).unwrap_or_default();
        Some((desired, why))
    }

    /// `fleetctl rollout pause|resume|abort ENV`, recorded on every cluster of the environment.
    pub fn control_rollout(
        &self,
        env: &str,
        action: &str,
        who: &str,
        reason: &str,
        index: &FleetIndex,
    ) -> Result<Rollout, rollout::RolloutError> {
        if !index.rollouts.contains_key(env) {
            return Err(rollout::RolloutError::NoRollout {
                env: env.into(),
                known: list_names(index.rollouts.keys()),
            });
        }
        let r = self.rollouts.control(env, action, who, reason)?;
        if let Err(e) = self.store.save_rollout(env, &r) {
            tracing::warn!(%env, error = %e, "cannot store the rollout");
        }
        tracing::info!(%env, %action, admin = %who, %reason, revision = %r.revision.short_id(), "rollout control");
        for w in &r.waves {
            for c in &w.clusters {
                self.record(
                    c,
                    status::Event {
                        time: status::now(),
                        commit: r.revision.id.clone(),
                        note: format!("rollout {action} by {who}"),
                        who: who.into(),
                        reason: reason.into(),
                    },
                );
            }
        }
        Ok(r)
    }
}

/// `fleetctl sync`'s request, as the hub sees it.
pub struct SyncRequest<'a> {
    pub cluster: &'a str,
    pub app: Option<&'a str>,
    pub force: bool,
    pub who: &'a str,
    pub reason: &'a str,
}

/// The value of a commit trailer (`Key: value`).
pub fn trailer(message: &str, key: &str) -> Option<String> {
    message.lines().rev().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::state;

    fn states(v: &[DesiredState]) -> BTreeMap<String, DesiredState> {
        v.iter().map(|s| (s.cluster.clone(), s.clone())).collect()
    }

    /// Runs `f` with what a release needs: `index`, `fanout`, no spoke.
    fn with_ctx<T>(index: &FleetIndex, fanout: &Fanout, f: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let spokes = BTreeMap::new();
        let published = AtomicU64::new(0);
        f(&Ctx {
            index,
            spokes: &spokes,
            connected: &|_| false,
            fanout,
            published: &published,
        })
    }

    #[test]
    fn an_app_render_shared_by_clusters_is_served_from_one_piece() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, fanout, r) = open(dir.path());
        let index = FleetIndex::default();
        let c1 = state("c1", "a", "1");
        // The renderer shares a reused app render between clusters (`Arc`).
        let c2 = DesiredState::new(
            "c2".into(),
            Arc::clone(&c1.commit),
            c1.sync,
            (*c1.apps).clone(),
        );
        r.set_desired(&c1.commit.clone(), states(&[c1, c2]))
            .unwrap();
        assert_eq!(
            with_ctx(&index, &fanout, |ctx| r.release_due(0, ctx).unwrap()),
            2
        );
        let (p1, p2) = (fanout.get("c1").unwrap(), fanout.get("c2").unwrap());
        let app = |p: &Published| p.content.pieces()[1].as_ptr();
        assert_eq!(
            app(&p1),
            app(&p2),
            "the app's bytes were copied per cluster"
        );
        for (c, p) in [("c1", &p1), ("c2", &p2)] {
            let got = fleet_proto::convert::decode_state(&p.encoded()).unwrap();
            assert_eq!(got.cluster, c);
            assert_eq!(got.digest, p.digest);
        }
    }

    #[test]
    fn a_commit_that_changes_no_content_is_served_from_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let fanout = Fanout::default();
        let r = Releases::open(&store, &fanout, None).unwrap();
        let index = FleetIndex::default();
        let release_due = || with_ctx(&index, &fanout, |ctx| r.release_due(0, ctx).unwrap());
        let a = states(&[state("c1", "a", "1"), state("c2", "a", "1")]);
        r.set_desired(&a["c1"].commit.clone(), a).unwrap();
        assert_eq!(release_due(), 2);
        let before = fanout.get("c1").unwrap();
        // Both clusters hold the same render: one part.
        assert_eq!(store.contents_len(), 1);

        // c1 only moves to commit b; c2 gets new content.
        let b = states(&[state("c1", "b", "1"), state("c2", "b", "2")]);
        r.set_desired(&b["c1"].commit.clone(), b).unwrap();
        assert_eq!(release_due(), 2);
        let c1 = fanout.get("c1").unwrap();
        assert_eq!(c1.commit.id, "b");
        assert!(c1.content.same(&before.content), "c1 encoded again");
        let got = fleet_proto::convert::decode_state(&c1.encoded()).unwrap();
        assert_eq!(got, state("c1", "b", "1"));
        let c2 = fleet_proto::convert::decode_state(&fanout.get("c2").unwrap().encoded()).unwrap();
        assert_eq!(c2, state("c2", "b", "2"));
        // c2's first content is named by nothing now.
        assert_eq!(store.contents_len(), 2);

        // A restarted hub serves the same states.
        drop(r);
        let fanout2 = Fanout::default();
        let r2 = Releases::open(&store, &fanout2, None).unwrap();
        assert_eq!(r2.released("c1").unwrap(), state("c1", "b", "1"));
        assert_eq!(r2.desired("c2").unwrap(), state("c2", "b", "2"));
        assert_eq!(fanout2.get("c1").unwrap().encoded(), c1.encoded());
    }

    fn open(dir: &std::path::Path) -> (Store, Fanout, Releases) {
        let store = Store::open(dir).unwrap();
        let fanout = Fanout::default();
        let r = Releases::open(&store, &fanout, None).unwrap();
        (store, fanout, r)
    }

    /// Renders `v` at its commit and releases what is due under `index`.
    fn publish(r: &Releases, fanout: &Fanout, index: &mut FleetIndex, v: &[DesiredState]) {
        let commit = CommitMeta::clone(&v[0].commit);
        index.commit = commit.clone();
        r.set_desired(&commit, states(v)).unwrap();
        with_ctx(index, fanout, |ctx| r.release_due(0, ctx).unwrap());
    }

    /// Records and parts written so far.
    fn written(r: &Releases) -> (usize, usize) {
        let w = *r.written.lock().unwrap();
        (w.headers, w.contents)
    }

    #[test]
    fn states_that_only_move_to_the_new_commit_cost_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let (store, fanout, r) = open(dir.path());
        let mut index = FleetIndex::default();
        let at = |c: &str, v: &[&str]| -> Vec<DesiredState> {
            ["c1", "c2", "c3"]
                .iter()
                .zip(v)
                .map(|(cluster, value)| state(cluster, c, value))
                .collect()
        };
        publish(&r, &fanout, &mut index, &at("a", &["1", "1", "1"]));
        // Three records in each tree, and the one render they share is
        // one part.
        assert_eq!(written(&r), (6, 1));
        // Commit b changes c1 only: its record in both trees and its one
        // new part; c2 and c3 move to b without a write.
        publish(&r, &fanout, &mut index, &at("b", &["2", "1", "1"]));
        assert_eq!(written(&r), (8, 2));
        // A commit that changes nothing writes nothing but the base.
        publish(&r, &fanout, &mut index, &at("c", &["2", "1", "1"]));
        assert_eq!(written(&r), (8, 2));
        assert_eq!(fanout.get("c3").unwrap().commit.id, "c");
        assert_eq!(store.contents_len(), 2);
        // A restarted hub reads every state at its commit.
        drop(r);
        let (_, fanout2, r2) = open_again(store);
        for (cluster, value) in [("c1", "2"), ("c2", "1"), ("c3", "1")] {
            assert_eq!(r2.desired(cluster).unwrap(), state(cluster, "c", value));
            assert_eq!(r2.released(cluster).unwrap(), state(cluster, "c", value));
        }
        assert_eq!(
            fanout2.get("c2").unwrap().encoded(),
            fleet_proto::convert::encode_state(&state("c2", "c", "1"))
        );
    }

    fn open_again(store: Store) -> (Store, Fanout, Releases) {
        let fanout = Fanout::default();
        let r = Releases::open(&store, &fanout, None).unwrap();
        (store, fanout, r)
    }

    /// A render stored while releases run on another thread (`fleetctl
    /// sync`, the rollout ticker's release_due): each takes the locks the
    /// other holds, and neither may wait for the other forever. Before the
    /// locks had one order this hung within a few hundred rounds.
    #[test]
    fn a_render_stored_while_a_release_runs_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, fanout, r) = open(dir.path());
        let clusters: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
        let at = |commit: &str| -> BTreeMap<String, DesiredState> {
            clusters
                .iter()
                .map(|c| (c.clone(), state(c, commit, commit)))
                .collect()
        };
        let first = at("a");
        r.set_desired(&first["c00"].commit.clone(), first).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let (r, fanout, done2) = (&r, &fanout, done.clone());
            s.spawn(move || {
                for i in 0..300 {
                    let v = at(&format!("r{i}"));
                    r.set_desired(&v["c00"].commit.clone(), v).unwrap();
                }
                done2.send("renders").unwrap();
            });
            s.spawn(move || {
                let index = FleetIndex::default();
                with_ctx(&index, fanout, |ctx| {
                    for i in 0..300 {
                        if i % 3 == 2 {
                            r.release_due(0, ctx).unwrap();
                            continue;
                        }
                        let req = SyncRequest {
                            cluster: if i % 3 == 0 { "c00" } else { "c49" },
                            app: None,
                            force: true,
                            who: "test",
                            reason: "",
                        };
                        r.sync(req, ctx).unwrap();
                    }
                });
                done.send("releases").unwrap();
            });
            // Far beyond what 600 small writes take; a deadlock never ends.
            // A thread that panicked drops its sender: the scope reports it.
            for _ in 0..2 {
                match finished.recv_timeout(std::time::Duration::from_secs(60)) {
                    Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        eprintln!("set_desired and a release are deadlocked; aborting");
                        std::process::abort();
                    }
                }
            }
        });
    }

    #[test]
    fn a_held_state_keeps_its_commit_when_the_others_move_on() {
        let dir = tempfile::tempdir().unwrap();
        let (store, fanout, r) = open(dir.path());
        let mut index = FleetIndex::default();
        publish(
            &r,
            &fanout,
            &mut index,
            &[state("c1", "a", "1"), state("c2", "a", "1")],
        );
        // c2 turns manual: commit b is released to c1 only.
        std::sync::Arc::make_mut(&mut index.clusters).insert(
            "c2".into(),
            crate::renderer::ClusterMeta {
                automatic: false,
                ..Default::default()
            },
        );
        let before = written(&r);
        publish(
            &r,
            &fanout,
            &mut index,
            &[state("c1", "b", "2"), state("c2", "b", "2")],
        );
        // Desired: both headers; released: c1's, and c2's now naming commit a.
        assert_eq!(written(&r).0 - before.0, 4);
        assert_eq!(r.released("c2").unwrap(), state("c2", "a", "1"));
        drop(r);
        let (_, _, r2) = open_again(store);
        assert_eq!(r2.released("c2").unwrap(), state("c2", "a", "1"));
        assert_eq!(r2.released("c1").unwrap(), state("c1", "b", "2"));
        assert_eq!(r2.desired("c2").unwrap(), state("c2", "b", "2"));
    }
}
