//! fleet hub: renders the fleet repo and serves each spoke its slice over mTLS gRPC.
//!
//! `run` wires the parts: [`store`] (sled), [`poller`] (gix fetch + render),
//! [`fanout`] (shared encoded states), [`serve`] (tonic services) and [`http`]
//! (webhook, health, metrics) and [`page`] (the read-only status page).
//! `main.rs` only parses flags.

pub mod commitsig;
pub mod fanout;
pub mod guard;
pub mod http;
pub mod identity;
pub mod livediff;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod page;
pub mod pki;
pub mod poller;
pub mod reclaim;
pub mod release;
pub mod renderer;
pub mod repo;
pub mod rollout;
pub mod serve;
pub mod server;
pub mod signing;
pub mod sorted;
pub mod spokes;
pub mod status;
pub mod store;
pub mod tls;
pub mod webhook;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use fleet_proto::v1 as pb;
use fleet_render::{CommitMeta, DesiredState};
use tokio::sync::Notify;

use crate::fanout::Fanout;
use crate::release::Releases;
pub use crate::release::SyncError;
use crate::renderer::FleetRender;
use crate::status::{FleetIndex, ResourceRecord, SpokeRecord, now, sync_verdict};
use crate::store::Store;

/// Resolved hub configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Local path or URL of the fleet repo.
    pub repo: String,
    pub branch: String,
    pub poll_interval: Duration,
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The read-only status page's listener ([`page`]); `None`: no page.
    pub page_addr: Option<SocketAddr>,
    /// A file holding the webhook secret (see [`webhook`]).
    pub webhook_secret_file: Option<PathBuf>,
    /// The CA certificate and key spoke renewals are signed with (none: no renewals).
    pub signer: Option<(PathBuf, PathBuf)>,
    /// The Ed25519 key (PKCS#8 PEM) published states are signed with.
    pub signing_key: Option<PathBuf>,
    /// An ssh-keygen allowed_signers file: deployed commits must be signed by one of its keys.
    pub allowed_signers: Option<PathBuf>,
    pub tls: TlsFiles,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// One or more CA certificates (two during a CA rollover).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Revoked certificates (`fleetctl ca revoke` writes `ca.crl`).
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    pub fn paths(&self) -> Vec<&PathBuf> {
        let mut v = vec![&self.ca, &self.cert, &self.key];
        v.extend(&self.crl);
        v
    }
}

/// Addresses the hub actually listens on (ports may have been 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub page: Option<SocketAddr>,
}

#[derive(Default)]
struct GitStatus {
    error: Option<String>,
    is_fetch: bool,
}

/// The hub's shared state.
///
/// Desired and released states per cluster, and rollouts, live in
/// [`release::Releases`]; the hub adds the fleet index, spoke records and
/// connections, live diff routing and status.
pub struct Hub {
    pub(crate) store: Store,
    pub fanout: Fanout,
    pub refresh: Notify,
    pub releases: Releases,
    /// One release decision at a time: a publish (store the render, swap
    /// the index, release what is due), the rollout ticker's release and
    /// `fleetctl sync`. Without it a release decided on the states before a
    /// publish could be served after it, older over newer.
    releasing: Mutex<()>,
    index: RwLock<FleetIndex>,
    spokes: spokes::Spokes,
    connected: Mutex<HashMap<String, usize>>,
    /// Live diff requests, each bound to its cluster's stream.
    pub live_diffs: livediff::LiveDiffs,
    /// Spoke messages refused, by reason.
    pub rejections: guard::Rejections,
    /// The listener's TLS state (revocations); `None` for a hub without listeners (tests).
    pub tls: Option<Arc<tls::Tls>>,
    /// Signs spoke certificate renewals, when configured.
    pub signer: Option<pki::Signer>,
    /// Who signed each verified commit (`--allowed-signers`).
    signers: Mutex<HashMap<String, String>>,
    /// Receivers from the fleet repo's notifications.yaml.
    notifications: RwLock<notify::Config>,
    notifications_at: Mutex<Option<String>>,
    /// Wakes the outbox sender when something was queued.
    pub outbox_wake: Notify,
    git: Mutex<GitStatus>,
    last_commit: Mutex<Option<String>>,
    pub metrics: Metrics,
}

#[derive(Default)]
pub struct Metrics {
    pub renders: AtomicU64,
    pub states_published: AtomicU64,
    pub acks: AtomicU64,
    pub webhooks: AtomicU64,
    /// The last publish: when (ms since the Unix epoch), which commit, how
    /// many states changed, and the render's work (for the scale harness).
    pub last_publish: Mutex<LastPublish>,
    pub histograms: metrics::Histograms,
    pub notifications_sent: AtomicU64,
    pub notifications_failed: AtomicU64,
}

#[derive(Debug, Default, Clone)]
pub struct LastPublish {
    pub commit: String,
    pub at_unix_ms: u64,
    pub states: u64,
    pub render_us: u64,
    pub rendered: u64,
    pub reused: u64,
}

impl Hub {
    /// Opens the store and loads the last released states into the fanout, so
    /// spokes are served before (or without) the first successful fetch.
    pub fn open(data_dir: &std::path::Path) -> anyhow::Result<Hub> {
        Hub::open_signing(data_dir, None)
    }

    /// Opens the hub with a state signer (see [`signing`]).
    pub fn open_signing(
        data_dir: &std::path::Path,
        signer: Option<Arc<signing::StateSigner>>,
    ) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let store = Store::open(data_dir)?;
        let fanout = Fanout::default();
        let releases = Releases::open(&store, &fanout, signer)?;
        let index = store.load_index()?.unwrap_or_default();
        let spokes = spokes::Spokes::open(&store)?;
        // The stored states are the render of `index.commit`: a hub restarted
        // on the same commit serves them without rendering the fleet again,
        // which would compete with the reconnecting spokes for the CPU.
        let resumed = (releases.has_desired()
            && !index.commit.id.is_empty()
            && index.renderer == status::RENDERER_VERSION)
            .then(|| index.commit.id.clone());
        if let Some(c) = &resumed {
            tracing::info!(commit = %c, "resuming at the commit rendered before the restart");
        }
        let hub = Hub {
            fanout,
            refresh: Notify::new(),
            releases,
            last_commit: Mutex::new(resumed),
            releasing: Mutex::new(()),
            index: RwLock::new(index),
            spokes,
            connected: Mutex::new(HashMap::new()),
            live_diffs: livediff::LiveDiffs::default(),
            rejections: guard::Rejections::default(),
            tls: None,
            signer: None,
            signers: Mutex::new(HashMap::new()),
            notifications: RwLock::new(notify::Config::default()),
            notifications_at: Mutex::new(None),
            outbox_wake: Notify::new(),
            git: Mutex::new(GitStatus::default()),
            metrics: Metrics::default(),
            store,
        };
        Ok(hub)
    }

    pub fn current_commit(&self) -> Option<String> {
        self.last_commit.lock().expect("lock").clone()
    }

    pub fn mark_commit_seen(&self, commit: &CommitMeta) {
        *self.last_commit.lock().expect("lock") = Some(commit.id.clone());
    }

    /// The desired states: the last good versions apps fall back to.
    pub fn states_snapshot(&self) -> release::States {
        self.releases.states_snapshot()
    }

    pub fn knows_cluster(&self, cluster: &str) -> bool {
        self.fanout.contains(cluster) || self.releases.knows(cluster)
    }

    /// Stores a render, then releases what may be released now.
    pub fn publish_render(&self, r: FleetRender, render_time: Duration) -> anyhow::Result<()> {
        let releasing = self.releasing.lock().expect("releasing lock");
        let stats = r.stats;
        self.metrics
            .histograms
            .render
            .observe(render_time.as_secs_f64());
        let t0 = std::time::Instant::now();
        self.releases.set_desired(&r.commit, r.states)?;
        let t_desired = t0.elapsed();
        let index = FleetIndex {
            commit: r.commit.clone(),
            clusters: r.clusters,
            cluster_errors: r.cluster_errors,
            renderer: status::RENDERER_VERSION.to_string(),
            rollouts: {
                // A broken environment file keeps its last rollout plan.
                let mut plans = r.rollouts;
                let old = self.index.read().expect("index lock");
                for env in &r.broken_envs {
                    if let Some(p) = old.rollouts.get(env) {
                        plans.entry(env.clone()).or_insert_with(|| p.clone());
                    }
                }
                plans
            },
        };
        let clusters_changed = {
            let old = &self.index.read().expect("index lock").clusters;
            !Arc::ptr_eq(old, &index.clusters) && **old != *index.clusters
        };
        self.store.save_index(&index, clusters_changed)?;
        let old = std::mem::replace(&mut *self.index.write().expect("index lock"), index);
        drop(old);
        let t_index = t0.elapsed();
        let released = self.release_due_now(status::now())?;
        drop(releasing);
        tracing::debug!(
            desired_ms = t_desired.as_millis() as u64,
            index_ms = (t_index - t_desired).as_millis() as u64,
            release_ms = (t0.elapsed() - t_index).as_millis() as u64,
            released,
            "publish steps"
        );
        *self.metrics.last_publish.lock().expect("lock") = LastPublish {
            commit: r.commit.id.clone(),
            at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            states: released as u64,
            render_us: render_time.as_micros() as u64,
            rendered: stats.rendered as u64,
            reused: stats.reused as u64,
        };
        // Counted last: a reader that sees the count sees the publish it counts.
        self.metrics.renders.fetch_add(1, Ordering::Relaxed);
        self.mark_commit_seen(&r.commit);
        *self.git.lock().expect("lock") = GitStatus::default();
        if let Some(e) = notify::from_commit(&r.commit.id, &r.commit.message, now()) {
            self.notify(&[e]);
        }
        Ok(())
    }

    /// Releases what may be released at `now` (policy, windows, rollouts).
    pub fn release_due(&self, now: i64) -> anyhow::Result<usize> {
        let _one = self.releasing.lock().expect("releasing lock");
        self.release_due_now(now)
    }

    /// [`Hub::release_due`], the caller holding `releasing`.
    fn release_due_now(&self, now: i64) -> anyhow::Result<usize> {
        let index = self.index.read().expect("index lock");
        // Only rollouts read the spokes' records and connections: copy
        // those of their clusters, not the whole fleet's.
        let members: Vec<&String> = index
            .rollouts
            .values()
            .flat_map(|p| p.waves.iter().flat_map(|w| &w.clusters))
            .collect();
        let spokes: BTreeMap<String, SpokeRecord> = {
            let all = self.spokes.lock();
            members
                .iter()
                .filter_map(|c| all.get(*c).map(|r| ((*c).clone(), r.clone())))
                .collect()
        };
        let connected: std::collections::HashSet<&str> = {
            let all = self.connected.lock().expect("lock");
            members
                .iter()
                .filter(|c| all.contains_key(c.as_str()))
                .map(|c| c.as_str())
                .collect()
        };
        let is_connected = |c: &str| connected.contains(c);
        self.releases.release_due(
            now,
            &release::Ctx {
                index: &index,
                spokes: &spokes,
                connected: &is_connected,
                fanout: &self.fanout,
                published: &self.metrics.states_published,
            },
        )
    }

    /// `fleetctl sync`: releases a cluster's desired state (or one app of it)
    /// now, even under a manual policy; a closed window needs `force`.
    pub fn sync(
        &self,
        cluster: &str,
        app: Option<&str>,
        force: bool,
        who: &str,
    ) -> Result<DesiredState, SyncError> {
        self.sync_with_reason(cluster, app, force, who, "")
    }

    pub fn sync_with_reason(
        &self,
        cluster: &str,
        app: Option<&str>,
        force: bool,
        who: &str,
        reason: &str,
    ) -> Result<DesiredState, SyncError> {
        if self.current_commit().is_none() && !self.releases.knows(cluster) {
            return Err(SyncError::NotRendered(cluster.into()));
        }
        let _one = self.releasing.lock().expect("releasing lock");
        let index = self.index.read().expect("index lock");
        let spokes = BTreeMap::new();
        let no = |_: &str| false;
        self.releases.sync(
            release::SyncRequest {
                cluster,
                app,
                force,
                who,
                reason,
            },
            &release::Ctx {
                index: &index,
                spokes: &spokes,
                connected: &no,
                fanout: &self.fanout,
                published: &self.metrics.states_published,
            },
        )
    }

    /// `fleetctl rollout pause|resume|abort ENV`; the rollout then moves on at once.
    pub fn control_rollout(
        &self,
        env: &str,
        action: &str,
        who: &str,
        reason: &str,
    ) -> Result<rollout::Rollout, rollout::RolloutError> {
        let r = {
            let index = self.index.read().expect("index lock");
            self.releases
                .control_rollout(env, action, who, reason, &index)?
        };
        if let Err(e) = self.release_due(status::now()) {
            tracing::warn!(error = %format!("{e:#}"), "cannot release after a rollout control");
        }
        Ok(self.releases.rollouts.get(env).unwrap_or(r))
    }

    /// The rollout of an environment (`None`: none started yet), or why there is none.
    pub fn rollout(
        &self,
        env: &str,
    ) -> Result<(rollout::RolloutPlan, Option<rollout::Rollout>), rollout::RolloutError> {
        let index = self.index.read().expect("index lock");
        let plan =
            index
                .rollouts
                .get(env)
                .cloned()
                .ok_or_else(|| rollout::RolloutError::NoRollout {
                    env: env.into(),
                    known: release::list_names(index.rollouts.keys()),
                })?;
        Ok((plan, self.releases.rollouts.get(env)))
    }

    /// Every environment's rollout plan and state.
    pub fn rollouts(&self) -> Vec<(String, rollout::RolloutPlan, Option<rollout::Rollout>)> {
        let index = self.index.read().expect("index lock");
        index
            .rollouts
            .iter()
            .map(|(env, p)| (env.clone(), p.clone(), self.releases.rollouts.get(env)))
            .collect()
    }

    /// Whether a rollout waits on time or health (the hub re-checks every second).
    pub fn rollout_active(&self) -> bool {
        self.releases.rollouts.any_active()
    }

    pub fn set_git_error(&self, e: Option<String>) {
        *self.git.lock().expect("lock") = GitStatus {
            error: e,
            is_fetch: false,
        };
    }

    pub fn set_fetch_error(&self, e: String) {
        *self.git.lock().expect("lock") = GitStatus {
            error: Some(e),
            is_fetch: true,
        };
    }

    pub fn git_error_is_fetch(&self) -> bool {
        self.git.lock().expect("lock").is_fetch
    }

    /// Signs a renewal for the spoke of `cluster` (the stream's identity).
    pub fn renew(&self, cluster: &str, csr_pem: &str) -> pb::RenewResponse {
        let r = match &self.signer {
            Some(s) => s.renew(cluster, csr_pem),
            None => Err(pki::RenewError::Disabled),
        };
        match r {
            Ok(cert_pem) => {
                tracing::info!(%cluster, "signed a renewed certificate for the spoke");
                pb::RenewResponse {
                    cert_pem,
                    error: String::new(),
                }
            }
            Err(e) => {
                if matches!(
                    e,
                    pki::RenewError::OtherIdentity { .. } | pki::RenewError::BadCsr(_)
                ) {
                    self.rejections.reject(
                        &format!("cluster {cluster}"),
                        guard::Reason::BadRenewal,
                        &e.to_string(),
                    );
                } else {
                    tracing::warn!(%cluster, error = %e, "cannot renew the spoke's certificate");
                }
                pb::RenewResponse {
                    cert_pem: String::new(),
                    error: e.to_string(),
                }
            }
        }
    }

    /// Whether a peer certificate's serial number is revoked.
    pub fn revoked(&self, serial: &[u8]) -> bool {
        self.tls.as_ref().is_some_and(|t| t.revoked(serial))
    }

    pub fn spoke_connected(&self, cluster: &str) {
        *self
            .connected
            .lock()
            .expect("lock")
            .entry(cluster.to_string())
            .or_default() += 1;
        self.touch(cluster, |_| {});
    }

    /// Asks a connected spoke what applying its desired state would change,
    /// waiting for its answer at most `wait`.
    pub async fn live_diff(
        &self,
        cluster: &str,
        app: &str,
        wait: Duration,
    ) -> Result<pb::DiffReport, tonic::Status> {
        // Compare with the latest commit's state, also while its release is held.
        let held = self.releases.held_desired(cluster);
        let state = match &held {
            Some((s, _)) => {
                let bytes = fleet_proto::convert::encode_state(s);
                if bytes.len() + 1024 > fleet_proto::MAX_MESSAGE_SIZE {
                    return Err(tonic::Status::resource_exhausted(format!(
                        "the desired state of {cluster} held from its spoke is {} bytes, too large to send with a live diff; run `fleetctl diff --from` offline",
                        bytes.len()
                    )));
                }
                bytes
            }
            None => Default::default(),
        };
        let result = self.live_diffs.ask(cluster, app, state.into(), wait).await;
        result.map(|mut r| {
            if let Some((s, why)) = held {
                r.revision = s.commit.id.clone();
                r.held_reason = if why.is_empty() {
                    "its release is held".into()
                } else {
                    why
                };
            }
            r
        })
    }

    pub fn spoke_disconnected(&self, cluster: &str) {
        let mut c = self.connected.lock().expect("lock");
        if let Some(n) = c.get_mut(cluster) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(cluster);
            }
        }
    }

    fn touch(&self, cluster: &str, f: impl FnOnce(&mut SpokeRecord)) {
        let t = now();
        if let Some(applied) = self.spokes.update(cluster, t, f) {
            let ev = status::Event {
                time: t,
                commit: applied,
                note: "applied".into(),
                who: String::new(),
                reason: String::new(),
            };
            if let Err(e) = self.store.record_event(cluster, &ev) {
                tracing::warn!(%cluster, error = %e, "cannot record the apply event");
            }
        }
    }

    /// Writes the spoke records changed since the last call (see [`spokes`]).
    pub fn persist_spokes(&self) {
        if let Err(e) = self.spokes.persist() {
            tracing::warn!(error = %e, "cannot record spoke status; retrying");
        }
    }

    pub fn on_spoke_message(&self, cluster: &str, m: pb::SpokeMessage) {
        use pb::spoke_message::Msg;
        match m.msg {
            Some(Msg::Ack(a)) => {
                let words = [
                    ("ack revision bytes", a.revision.as_str()),
                    ("ack digest bytes", a.digest.as_str()),
                ];
                if let Err(v) = fleet_proto::limits::check_words(&words) {
                    self.rejections.reject(
                        &format!("cluster {cluster}"),
                        guard::Reason::OverLimit,
                        &format!("ack refused, {v}"),
                    );
                    return;
                }
                self.metrics.acks.fetch_add(1, Ordering::Relaxed);
                let before = self
                    .spokes
                    .lock()
                    .get(cluster)
                    .and_then(|r| r.applied.as_ref().map(|c| c.id.clone()));
                if before.as_deref() != Some(a.revision.as_str()) {
                    let last = self.metrics.last_publish.lock().expect("lock").clone();
                    if last.commit == a.revision && last.at_unix_ms > 0 {
                        let now_ms = signing::now_ms();
                        self.metrics
                            .histograms
                            .commit_to_applied
                            .observe(now_ms.saturating_sub(last.at_unix_ms) as f64 / 1000.0);
                    }
                }
                let commit = self.commit_meta_for(cluster, &a.revision);
                tracing::debug!(%cluster, revision = %a.revision, "spoke acknowledged");
                self.touch(cluster, |r| {
                    r.applied = Some(commit);
                    if r.applied_digest != a.digest {
                        r.healthy_since = 0;
                    }
                    r.applied_digest = a.digest;
                });
            }
            Some(Msg::Status(mut s)) => {
                if let Err(v) = fleet_proto::limits::check_status(&s) {
                    // Refused whole: the last accepted report stays.
                    self.rejections.reject(
                        &format!("cluster {cluster}"),
                        guard::Reason::OverLimit,
                        &format!("status report refused, {v}"),
                    );
                    return;
                }
                s.resources.shrink_to_fit();
                let commit = self.commit_meta_for(cluster, &s.revision);
                let provenance: Option<status::SpokeProvenance> = s.provenance.map(Into::into);
                if let Some(p) = &provenance {
                    let before = self
                        .spokes
                        .lock()
                        .get(cluster)
                        .and_then(|r| r.provenance.as_ref().map(|p| p.rolled_back_to.clone()));
                    if !p.rolled_back_to.is_empty() && before.as_deref() != Some(&p.rolled_back_to)
                    {
                        tracing::warn!(%cluster, to = %p.rolled_back_to, "the site rolled the cluster back with --rollback-to");
                        self.record_event(
                            cluster,
                            status::Event {
                                time: p.rolled_back_at,
                                commit: p.rolled_back_to.clone(),
                                note: "rolled back at the site (fleet-spoke --rollback-to)".into(),
                                who: "the site".into(),
                                reason: String::new(),
                            },
                        );
                    }
                }
                let notifying = !self
                    .notifications
                    .read()
                    .expect("lock")
                    .receivers
                    .is_empty();
                let before = notifying
                    .then(|| self.spokes.get(cluster))
                    .flatten()
                    .unwrap_or_default();
                self.touch(cluster, |r| {
                    r.provenance = provenance;
                    r.applied = Some(commit);
                    r.applied_digest = s.digest;
                    r.sync = s.sync;
                    r.resources = s
                        .resources
                        .into_iter()
                        .map(|x| ResourceRecord {
                            app: x.app,
                            id: x.id,
                            state: x.state,
                            message: x.message,
                            health: x.health,
                            health_message: x.health_message,
                        })
                        .collect();
                    if !r.healthy() {
                        r.healthy_since = 0;
                    } else if r.healthy_since == 0 {
                        r.healthy_since = now();
                    }
                });
                if notifying {
                    let after = self.spokes.get(cluster);
                    let labels = self
                        .index
                        .read()
                        .expect("lock")
                        .clusters
                        .get(cluster)
                        .map(|m| m.labels.clone())
                        .unwrap_or_default();
                    if let Some(after) = after {
                        let events = notify::from_report(cluster, &labels, &before, &after, now());
                        self.notify(&events);
                    }
                }
            }
            Some(Msg::DiffReport(r)) => {
                let peer = format!("cluster {cluster}");
                if let Err(v) = fleet_proto::limits::check_diff(&r) {
                    self.rejections.reject(
                        &peer,
                        guard::Reason::OverLimit,
                        &format!("diff report refused, {v}"),
                    );
                    return;
                }
                let id = r.id;
                match self.live_diffs.answer(cluster, r) {
                    livediff::Answer::Delivered => {}
                    livediff::Answer::Forged { owner } => self.rejections.reject(
                        &peer,
                        guard::Reason::ForgedDiff,
                        &format!("diff report {id:#x} answers a request to cluster {owner}"),
                    ),
                    livediff::Answer::Unknown => self.rejections.reject(
                        &peer,
                        guard::Reason::UnknownDiff,
                        &format!("diff report {id:#x} answers no pending request"),
                    ),
                }
            }
            Some(Msg::Renew(_)) => {
                tracing::debug!(%cluster, "renewals are answered on the stream (serve.rs)")
            }
            Some(Msg::Hello(_)) | None => self.rejections.reject(
                &format!("cluster {cluster}"),
                guard::Reason::Unexpected,
                "a Hello or an empty message after the stream's Hello",
            ),
        }
    }

    fn record_event(&self, cluster: &str, ev: status::Event) {
        if let Err(e) = self.store.record_event(cluster, &ev) {
            tracing::warn!(%cluster, error = %e, "cannot record an event");
        }
    }

    /// Queues events for the configured receivers (see [`outbox`]).
    pub fn notify(&self, events: &[notify::Event]) {
        if events.is_empty() {
            return;
        }
        let cfg = self.notifications.read().expect("lock").clone();
        if outbox::enqueue(&self.store, &cfg, events) > 0 {
            self.outbox_wake.notify_one();
        }
    }

    pub fn notifications_config(&self) -> notify::Config {
        self.notifications.read().expect("lock").clone()
    }

    /// Replaces the receivers (the fleet repo's notifications.yaml at `commit`).
    pub fn set_notifications(&self, commit: &str, cfg: notify::Config) {
        *self.notifications.write().expect("lock") = cfg;
        *self.notifications_at.lock().expect("lock") = Some(commit.to_string());
    }

    /// The commit the served states were rendered from.
    pub fn rendered_commit(&self) -> String {
        self.index.read().expect("lock").commit.id.clone()
    }

    /// The commit whose notifications.yaml the receivers come from.
    pub fn notifications_commit(&self) -> Option<String> {
        self.notifications_at.lock().expect("lock").clone()
    }

    /// `disconnected` events for spokes gone longer than the configured time.
    pub fn notify_disconnected(&self, now: i64) {
        let after = {
            let cfg = self.notifications.read().expect("lock");
            if cfg.receivers.is_empty() {
                return;
            }
            cfg.disconnected_after
        };
        let index = self.index.read().expect("lock");
        let connected = self.connected.lock().expect("lock").clone();
        let spokes = self.spokes.lock();
        let events: Vec<notify::Event> = spokes
            .iter()
            .filter(|(c, r)| {
                !connected.contains_key(*c) && r.last_seen > 0 && now - r.last_seen >= after
            })
            .map(|(c, r)| {
                let rev = r.applied.as_ref().map(|a| a.id.as_str()).unwrap_or("");
                let mut e = notify::Event::new(
                    notify::Kind::Disconnected,
                    c,
                    rev,
                    format!(
                        "the spoke of cluster {c} has been disconnected since {} UTC",
                        fleet_render::window::utc(r.last_seen)
                    ),
                    now,
                );
                e.key = format!("disconnected/{c}/{}", r.last_seen);
                e.labels = index
                    .clusters
                    .get(c)
                    .map(|m| m.labels.clone())
                    .unwrap_or_default();
                e
            })
            .collect();
        drop(spokes);
        drop(index);
        self.notify(&events);
    }

    /// Remembers who signed a commit (the commit signature policy).
    pub fn note_commit_signer(&self, commit: &str, signer: &str) {
        let mut s = self.signers.lock().expect("lock");
        if s.len() > 1000 {
            s.clear();
        }
        s.insert(commit.to_string(), signer.to_string());
    }

    fn commit_meta_for(&self, cluster: &str, revision: &str) -> CommitMeta {
        self.releases
            .commit_meta_for(cluster, revision)
            .unwrap_or_else(|| CommitMeta {
                id: revision.to_string(),
                ..Default::default()
            })
    }

    /// Apply and sync events, oldest first, of one cluster or (empty name) all.
    pub fn history(&self, cluster: &str) -> Vec<(String, status::Event)> {
        match self.store.events(cluster) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read history");
                Vec::new()
            }
        }
    }

    /// The whole fleet's status in one message (metrics, tests; the admin
    /// API pages it with [`Hub::fleet_status_page`]).
    pub fn fleet_status(&self) -> pb::FleetStatus {
        self.fleet_status_page(&Page {
            after: String::new(),
            size: usize::MAX,
            budget: usize::MAX,
        })
    }

    /// One page of status: whole clusters after `page.after`, in name order,
    /// until `page.size` clusters or `page.budget` encoded bytes (at least one).
    pub fn fleet_status_page(&self, page: &Page) -> pb::FleetStatus {
        // The index before the states: the order a release takes them in.
        let index = self.index.read().expect("index lock");
        let mut st = self.releases.view(|states, released, held| {
            self.fleet_status_of(&index, states, released, held, page, None)
        });
        drop(index);
        if page.after.is_empty() {
            st.rollouts = self
                .rollouts()
                .into_iter()
                .map(|(env, plan, r)| rollout_status(&env, &plan, r.as_ref()))
                .collect();
        }
        st
    }

    /// One cluster's status (the status page), `None` for a cluster the hub
    /// does not know.
    pub fn cluster_status(&self, name: &str) -> Option<pb::ClusterStatus> {
        let page = Page {
            after: String::new(),
            size: 1,
            budget: usize::MAX,
        };
        let index = self.index.read().expect("index lock");
        self.releases
            .view(|states, released, held| {
                self.fleet_status_of(&index, states, released, held, &page, Some(name))
            })
            .clusters
            .pop()
    }

    fn fleet_status_of(
        &self,
        index: &FleetIndex,
        states: &release::States,
        released: &release::States,
        held: &BTreeMap<String, String>,
        page: &Page,
        only: Option<&str>,
    ) -> pb::FleetStatus {
        let spokes = self.spokes.lock();
        let connected = self.connected.lock().expect("lock");
        let signers = self.signers.lock().expect("lock");
        let hub_key = self
            .releases
            .signer()
            .map(|s| s.public_line())
            .unwrap_or_default();
        let mut names: Vec<&String> = states
            .keys()
            .chain(released.keys())
            .chain(index.cluster_errors.keys())
            .filter(|n| only.is_none_or(|o| o == n.as_str()))
            .collect();
        names.sort();
        names.dedup();
        let total = names.len();
        let one = |name: &String| {
            let state = states.get(name);
            let rel = released.get(name);
            let rec = spokes.get(name);
            let mut render_errors: Vec<pb::RenderError> = index
                .cluster_errors
                .get(name)
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect();
            if let Some(s) = state {
                render_errors.extend(s.errors().map(Into::into));
            }
            let pending = match (state, rel) {
                (Some(s), Some(r)) => s.digest != r.digest || s.commit != r.commit,
                (Some(_), None) => true,
                _ => false,
            };
            let sync = if pending {
                "out_of_sync"
            } else {
                sync_verdict(rel.map(|s| s.digest.as_str()), rec)
            };
            pb::ClusterStatus {
                name: name.clone(),
                labels: index
                    .clusters
                    .get(name)
                    .map(|m| m.labels.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                desired: state.map(|s| (&*s.commit).into()),
                desired_digest: state.map(|s| s.digest.clone()).unwrap_or_default(),
                released: rel.map(|s| (&*s.commit).into()),
                released_digest: rel.map(|s| s.digest.clone()).unwrap_or_default(),
                held_reason: if pending {
                    held.get(name).cloned().unwrap_or_default()
                } else {
                    String::new()
                },
                applied: rec.and_then(|r| r.applied.as_ref()).map(Into::into),
                applied_digest: rec.map(|r| r.applied_digest.clone()).unwrap_or_default(),
                sync: sync.to_string(),
                connected: connected.contains_key(name),
                last_seen: rec.map(|r| r.last_seen).unwrap_or(0),
                healthy_since: rec.map(|r| r.healthy_since).unwrap_or(0),
                offline_since: match (connected.contains_key(name), rec) {
                    (false, Some(r)) => r.last_seen,
                    _ => 0,
                },
                provenance: {
                    let applied = rec.and_then(|r| r.applied.as_ref()).map(|c| c.id.clone());
                    Some(pb::Provenance {
                        commit_signer: applied
                            .as_ref()
                            .and_then(|c| signers.get(c).cloned())
                            .unwrap_or_default(),
                        commit: applied.unwrap_or_default(),
                        state_digest: rec.map(|r| r.applied_digest.clone()).unwrap_or_default(),
                        hub_key: hub_key.clone(),
                        spoke: rec.and_then(|r| r.provenance.as_ref()).map(Into::into),
                    })
                },
                render_errors,
                resources: rec
                    .map(|r| {
                        r.resources
                            .iter()
                            .map(|x| pb::ResourceStatus {
                                app: x.app.clone(),
                                id: x.id.clone(),
                                state: x.state.clone(),
                                message: x.message.clone(),
                                health: x.health.clone(),
                                health_message: x.health_message.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        };
        let mut clusters = Vec::new();
        let mut bytes = 0usize;
        let mut next_page_token = String::new();
        for name in names
            .into_iter()
            .filter(|n| page.after.is_empty() || n.as_str() > page.after.as_str())
        {
            if clusters.len() >= page.size {
                next_page_token = clusters
                    .last()
                    .map(|c: &pb::ClusterStatus| c.name.clone())
                    .unwrap_or_default();
                break;
            }
            let c = one(name);
            let len = prost::Message::encoded_len(&c) + 8;
            if !clusters.is_empty() && bytes + len > page.budget {
                next_page_token = clusters
                    .last()
                    .map(|c: &pb::ClusterStatus| c.name.clone())
                    .unwrap_or_default();
                break;
            }
            bytes += len;
            clusters.push(c);
        }
        pb::FleetStatus {
            next_page_token,
            total_clusters: total as u32,
            hub_revision: Some((&index.commit).into()),
            git_error: self
                .git
                .lock()
                .expect("lock")
                .error
                .clone()
                .unwrap_or_default(),
            clusters,
            rollouts: Vec::new(),
        }
    }
}

/// Which part of the fleet's status to answer (see `GetStatusRequest`).
#[derive(Debug, Clone)]
pub struct Page {
    /// The last cluster of the previous page (empty: from the start).
    pub after: String,
    pub size: usize,
    /// Encoded bytes of the page's clusters.
    pub budget: usize,
}

/// Clusters in a page when the caller asks for no size.
pub const PAGE_SIZE: usize = 1000;
/// Encoded bytes of one page: under the message limit with room for the
/// rollouts and framing. A cluster's record is bounded by
/// `fleet_proto::limits::MAX_STATUS_BYTES`, so one always fits.
pub const PAGE_BUDGET: usize = 3 * 1024 * 1024;

/// A rollout as the admin API shows it (`fleetctl rollout status`).
pub fn rollout_status(
    env: &str,
    plan: &rollout::RolloutPlan,
    r: Option<&rollout::Rollout>,
) -> pb::RolloutStatus {
    let Some(r) = r else {
        return pb::RolloutStatus {
            env: env.into(),
            phase: "idle".into(),
            waves: plan
                .waves
                .iter()
                .map(|w| pb::WaveStatus {
                    name: w.name.clone(),
                    clusters: w.clusters.clone(),
                    phase: "pending".into(),
                    max_parallel: w.max_parallel,
                    soak_seconds: w.soak_secs,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    };
    pb::RolloutStatus {
        env: env.into(),
        revision: Some((&r.revision).into()),
        phase: r.phase.as_str().into(),
        wave: r.wave as u32,
        waves: r
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| pb::WaveStatus {
                name: w.name.clone(),
                clusters: w.clusters.clone(),
                phase: if w.finished_at != 0 {
                    "done"
                } else if i != r.wave {
                    "pending"
                } else if r.phase != rollout::Phase::Progressing {
                    r.phase.as_str()
                } else if w.synced_at != 0 {
                    "soaking"
                } else {
                    "progressing"
                }
                .into(),
                started_at: w.started_at,
                synced_at: w.synced_at,
                soak_until: w.soak_until,
                finished_at: w.finished_at,
                max_parallel: w.max_parallel,
                soak_seconds: w.soak_secs,
                released: w.released.clone(),
            })
            .collect(),
        reason: r.reason.clone(),
        by: r.by.clone(),
        started_at: r.started_at,
        finished_at: r.finished_at,
        immediate: r.immediate,
    }
}

/// Runs the hub until `shutdown` flips to true. `on_bound` is called once the
/// listeners are up, with their real addresses.
pub async fn run(
    config: HubConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_bound: impl FnOnce(Bound) + Send,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = Arc::new(tls::Tls::open(config.tls.clone())?);
    let webhook_secret = match &config.webhook_secret_file {
        Some(p) => {
            let s = std::fs::read(p)
                .with_context(|| format!("reading the webhook secret at {}", p.display()))?;
            let s = s.trim_ascii().to_vec();
            if s.is_empty() {
                anyhow::bail!("the webhook secret file {} is empty", p.display());
            }
            Some(s)
        }
        None => None,
    };
    let signer = match &config.signing_key {
        Some(p) => {
            let s = signing::StateSigner::load(p, &config.repo, &config.branch)?;
            tracing::info!(key = %s.public_line(), "signing every published state");
            Some(Arc::new(s))
        }
        None => {
            tracing::warn!(
                "states are published unsigned; give the hub --signing-key so spokes can verify them"
            );
            None
        }
    };
    let mut hub = Hub::open_signing(&config.data_dir, signer)?;
    hub.tls = Some(tls.clone());
    if let Some((cert, key)) = &config.signer {
        hub.signer = Some(pki::Signer::load(cert, key, pki::CLIENT_DAYS)?);
    }
    let hub = Arc::new(hub);

    let grpc = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let http = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let page = match config.page_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| {
                    format!(
                        "binding the status page address {a}: give another with --page-addr, or --page-addr off"
                    )
                })?,
        ),
        None => None,
    };
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
        page: page.as_ref().map(|l| l.local_addr()).transpose()?,
    };
    tracing::info!(grpc = %bound.grpc, http = %bound.http, repo = %config.repo, "hub listening");
    match bound.page {
        Some(a) if !a.ip().is_loopback() => tracing::warn!(
            page = %a,
            "the status page listens beyond localhost and has no login of its own; put an authenticating proxy in front (docs/status-page.md)"
        ),
        Some(a) => tracing::info!(page = %format!("http://{a}/"), "status page listening"),
        None => {}
    }
    on_bound(bound);

    let poller = poller::Poller {
        hub: hub.clone(),
        source: repo::Source::parse(&config.repo, &config.data_dir),
        branch: config.branch.clone(),
        interval: config.poll_interval,
        policy: match &config.allowed_signers {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the allowed signers at {}", p.display()))?;
                let policy = commitsig::CommitPolicy::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                Some(Arc::new(policy))
            }
            None => None,
        },
    };
    let poll_task = tokio::spawn(poller.run(shutdown.clone()));
    let rollout_task = tokio::spawn(rollout_ticker(hub.clone(), shutdown.clone()));
    let outbox_task = tokio::spawn(outbox::run(hub.clone(), shutdown.clone()));
    let disconnect_task = tokio::spawn(disconnect_ticker(hub.clone(), shutdown.clone()));
    let persist_task = tokio::spawn(persist_ticker(hub.clone(), shutdown.clone()));
    let http_task = tokio::spawn(http::serve(
        hub.clone(),
        http,
        webhook_secret,
        shutdown.clone(),
    ));

    let page_task = page.map(|l| tokio::spawn(page::serve(hub.clone(), l, shutdown.clone())));

    let max = fleet_proto::MAX_MESSAGE_SIZE;
    let spoke_svc = serve::SpokeServer::new(serve::SpokeSvc { hub: hub.clone() }, max);
    let admin_svc =
        pb::admin_service_server::AdminServiceServer::new(serve::AdminSvc { hub: hub.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let tls_task = tokio::spawn(tls.clone().watch(shutdown.clone()));
    let routes = tonic::service::Routes::new(spoke_svc).add_service(admin_svc);
    let settings = server::Settings {
        keepalive_interval: Duration::from_secs(20),
        keepalive_timeout: Duration::from_secs(10),
    };
    server::serve(routes, tls.incoming(grpc), settings, shutdown.clone()).await;
    poll_task.abort();
    rollout_task.abort();
    outbox_task.abort();
    disconnect_task.abort();
    persist_task.abort();
    tls_task.abort();
    let _ = http_task.await;
    if let Some(t) = page_task {
        let _ = t.await;
    }
    hub.persist_spokes();
    hub.store.flush().await?;
    Ok(())
}

/// Sends `disconnected` events for spokes gone too long (every 2 s).
/// Writes the spoke records that changed, every [`spokes::PERSIST_EVERY`].
async fn persist_ticker(hub: Arc<Hub>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(spokes::PERSIST_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let h = hub.clone();
        let _ = tokio::task::spawn_blocking(move || h.persist_spokes()).await;
    }
}

async fn disconnect_ticker(hub: Arc<Hub>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        // It may queue notifications, each flushed to the store.
        let h = hub.clone();
        let _ = tokio::task::spawn_blocking(move || h.notify_disconnected(status::now())).await;
    }
}

/// Moves rollouts on every second while one waits on soak time or health.
async fn rollout_ticker(hub: Arc<Hub>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        if hub.rollout_active() {
            let h = hub.clone();
            let r = tokio::task::spawn_blocking(move || h.release_due(status::now())).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %format!("{e:#}"), "rollout step failed");
            }
        }
    }
}

/// Fails early, naming the file, when a PEM file does not hold what it should.
pub fn check_pem(bytes: &[u8], path: &std::path::Path, label: &str) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN ") || !text.contains(label) {
        anyhow::bail!("{} is not a PEM file holding a {label}", path.display());
    }
    Ok(())
}
