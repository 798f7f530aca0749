//! fleet hub: renders the fleet repo and serves each spoke its slice over mTLS gRPC.
//!
//! `run` wires the parts: [`store`] (sled), [`poller`] (gix fetch + render),
//! [`fanout`] (shared encoded states), [`serve`] (tonic services) and [`http`]
//! (webhook, health, metrics). `main.rs` only parses flags.

pub mod fanout;
pub mod http;
pub mod identity;
pub mod poller;
pub mod renderer;
pub mod repo;
pub mod serve;
pub mod status;
pub mod store;

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

use crate::fanout::{Fanout, Published};
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
    pub tls: TlsFiles,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Addresses the hub actually listens on (ports may have been 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

#[derive(Default)]
struct GitStatus {
    error: Option<String>,
    is_fetch: bool,
}

/// The hub's shared state.
///
/// Two states per cluster: the *desired* one (rendered from the latest commit)
/// and the *released* one (what its spoke is served). They differ while a sync
/// is held: a manual sync policy, or a closed sync window.
pub struct Hub {
    store: Store,
    pub fanout: Fanout,
    pub refresh: Notify,
    states: RwLock<BTreeMap<String, DesiredState>>,
    released: RwLock<BTreeMap<String, DesiredState>>,
    held: Mutex<BTreeMap<String, String>>,
    index: RwLock<FleetIndex>,
    spokes: Mutex<BTreeMap<String, SpokeRecord>>,
    connected: Mutex<HashMap<String, usize>>,
    /// The send side of each connected spoke's stream, for live diff requests.
    controls: Mutex<HashMap<String, serve::StreamTx>>,
    diff_waiters: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<pb::DiffReport>>>,
    next_diff: AtomicU64,
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

/// Why a sync request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cluster {0} is not in the fleet repo")]
    UnknownCluster(String),
    #[error("app {app} does not run on cluster {cluster}")]
    UnknownApp { cluster: String, app: String },
    #[error("cluster {cluster}: {reason}; use --force to sync anyway")]
    WindowClosed { cluster: String, reason: String },
}

impl Hub {
    /// Opens the store and loads the last released states into the fanout, so
    /// spokes are served before (or without) the first successful fetch.
    pub fn open(data_dir: &std::path::Path) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let store = Store::open(data_dir)?;
        let states = store.load_states(store::DESIRED)?;
        let released = store.load_states(store::RELEASED)?;
        let index = store.load_index()?.unwrap_or_default();
        let spokes = store.load_spokes()?;
        // The stored states are the render of `index.commit`: a hub restarted
        // on the same commit serves them without rendering the fleet again,
        // which would compete with the reconnecting spokes for the CPU.
        let resumed = (!states.is_empty()
            && !index.commit.id.is_empty()
            && index.renderer == status::RENDERER_VERSION)
            .then(|| index.commit.id.clone());
        if let Some(c) = &resumed {
            tracing::info!(commit = %c, "resuming at the commit rendered before the restart");
        }
        let hub = Hub {
            fanout: Fanout::default(),
            refresh: Notify::new(),
            states: RwLock::new(states),
            released: RwLock::new(BTreeMap::new()),
            held: Mutex::new(BTreeMap::new()),
            last_commit: Mutex::new(resumed),
            index: RwLock::new(index),
            spokes: Mutex::new(spokes),
            connected: Mutex::new(HashMap::new()),
            controls: Mutex::new(HashMap::new()),
            diff_waiters: Mutex::new(HashMap::new()),
            next_diff: AtomicU64::new(1),
            git: Mutex::new(GitStatus::default()),
            metrics: Metrics::default(),
            store,
        };
        for (cluster, state) in &released {
            hub.fanout.publish(cluster, Arc::new(published(state)));
        }
        if !released.is_empty() {
            tracing::info!(
                clusters = released.len(),
                "serving stored states until the fleet repo is read"
            );
        }
        *hub.released.write().expect("released lock") = released;
        Ok(hub)
    }

    pub fn current_commit(&self) -> Option<String> {
        self.last_commit.lock().expect("lock").clone()
    }

    pub fn mark_commit_seen(&self, commit: &CommitMeta) {
        *self.last_commit.lock().expect("lock") = Some(commit.id.clone());
    }

    /// The desired states: the last good versions apps fall back to.
    pub fn states_snapshot(&self) -> BTreeMap<String, DesiredState> {
        self.states.read().expect("states lock").clone()
    }

    pub fn knows_cluster(&self, cluster: &str) -> bool {
        self.fanout.contains(cluster)
            || self
                .states
                .read()
                .expect("states lock")
                .contains_key(cluster)
    }

    /// Stores a render, then releases what may be released now.
    pub fn publish_render(&self, r: FleetRender, render_time: Duration) -> anyhow::Result<()> {
        let stats = r.stats;
        {
            let mut states = self.states.write().expect("states lock");
            for (cluster, state) in &r.states {
                let old = states.get(cluster);
                if old.is_some_and(|o| o.digest == state.digest && o.commit == state.commit) {
                    continue;
                }
                self.store.save_state(
                    store::DESIRED,
                    cluster,
                    &fleet_proto::convert::encode_state(state),
                )?;
            }
            for gone in states
                .keys()
                .filter(|c| !r.states.contains_key(*c))
                .cloned()
                .collect::<Vec<_>>()
            {
                tracing::info!(cluster = %gone, "cluster removed from the fleet repo");
                self.store.remove_state(store::DESIRED, &gone)?;
            }
            *states = r.states;
        }
        let index = FleetIndex {
            commit: r.commit.clone(),
            clusters: r.clusters,
            cluster_errors: r.cluster_errors,
            renderer: status::RENDERER_VERSION.to_string(),
        };
        self.store.save_index(&index)?;
        *self.index.write().expect("index lock") = index;
        let released = self.release_due(status::now())?;
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
        Ok(())
    }

    /// Releases every desired state whose cluster syncs automatically and
    /// whose sync windows are open at `now`; records why the others are held.
    pub fn release_due(&self, now: i64) -> anyhow::Result<usize> {
        let states = self.states.read().expect("states lock");
        let index = self.index.read().expect("index lock");
        let mut due = Vec::new();
        let mut held = BTreeMap::new();
        {
            let released = self.released.read().expect("released lock");
            for (cluster, desired) in states.iter() {
                let current = released.get(cluster);
                if current.is_some_and(|c| c.digest == desired.digest && c.commit == desired.commit)
                {
                    continue;
                }
                let meta = index.clusters.get(cluster);
                let automatic = meta.is_none_or(|m| m.automatic);
                let window = meta
                    .map(|m| fleet_render::window::allows(&m.windows, now))
                    .unwrap_or(Ok(()));
                match (automatic, window) {
                    (true, Ok(())) => due.push(desired.clone()),
                    (false, _) => {
                        held.insert(
                            cluster.clone(),
                            "manual sync policy: run `fleetctl sync`".to_string(),
                        );
                    }
                    (true, Err(reason)) => {
                        held.insert(cluster.clone(), format!("held: {reason}"));
                    }
                }
            }
        }
        drop(index);
        drop(states);
        *self.held.lock().expect("lock") = held;
        self.release(due)
    }

    /// Makes states the served ones: durable first, then published.
    fn release(&self, states: Vec<DesiredState>) -> anyhow::Result<usize> {
        if states.is_empty() {
            return Ok(0);
        }
        let count = states.len();
        let mut out = Vec::with_capacity(states.len());
        for s in &states {
            let p = published(s);
            self.store
                .save_state(store::RELEASED, &s.cluster, &p.bytes)?;
            out.push((s.cluster.clone(), p));
        }
        // Durable before served: a hub killed now restarts with them.
        self.store.flush_sync()?;
        let mut released = self.released.write().expect("released lock");
        for ((cluster, p), s) in out.into_iter().zip(states) {
            self.fanout.publish(&cluster, Arc::new(p));
            self.metrics
                .states_published
                .fetch_add(1, Ordering::Relaxed);
            released.insert(cluster, s);
        }
        Ok(count)
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
        let desired = self
            .states
            .read()
            .expect("lock")
            .get(cluster)
            .cloned()
            .ok_or_else(|| SyncError::UnknownCluster(cluster.into()))?;
        let windows = self
            .index
            .read()
            .expect("lock")
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
        let current = self.released.read().expect("lock").get(cluster).cloned();
        let next = match (app, current) {
            (None, _) | (Some(_), None) => desired.clone(),
            (Some(app), Some(mut cur)) => {
                let a = desired.apps.get(app).ok_or_else(|| SyncError::UnknownApp {
                    cluster: cluster.into(),
                    app: app.into(),
                })?;
                cur.apps.insert(app.to_string(), a.clone());
                DesiredState::new(cur.cluster, desired.commit.clone(), desired.sync, cur.apps)
            }
        };
        let note = match (&window, force) {
            (Err(reason), true) => format!("sync forced by {who} ({reason})"),
            _ => format!("sync by {who}"),
        };
        tracing::info!(%cluster, app = app.unwrap_or("*"), revision = %next.commit.short_id(), %note, "manual sync");
        if let Err(e) = self.store.record_event(
            cluster,
            &status::Event {
                time: status::now(),
                commit: next.commit.id.clone(),
                note,
            },
        ) {
            tracing::warn!(error = %e, "cannot record the sync event");
        }
        if let Err(e) = self.release(vec![next.clone()]) {
            tracing::error!(error = %e, "cannot release the synced state");
        }
        self.held.lock().expect("lock").remove(cluster);
        Ok(next)
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

    pub fn spoke_connected(&self, cluster: &str) {
        *self
            .connected
            .lock()
            .expect("lock")
            .entry(cluster.to_string())
            .or_default() += 1;
        self.touch(cluster, |_| {});
    }

    /// Remembers how to reach a connected spoke's stream.
    pub fn register_control(&self, cluster: &str, tx: serve::StreamTx) {
        self.controls
            .lock()
            .expect("lock")
            .insert(cluster.to_string(), tx);
    }

    pub fn unregister_control(&self, cluster: &str, tx: &serve::StreamTx) {
        let mut c = self.controls.lock().expect("lock");
        if c.get(cluster).is_some_and(|t| t.same_channel(tx)) {
            c.remove(cluster);
        }
    }

    /// Asks a connected spoke what applying its desired state would change.
    pub async fn live_diff(
        &self,
        cluster: &str,
        app: &str,
    ) -> Result<pb::DiffReport, tonic::Status> {
        let tx = self
            .controls
            .lock()
            .expect("lock")
            .get(cluster)
            .cloned()
            .ok_or_else(|| {
                tonic::Status::failed_precondition(format!(
                    "the spoke of cluster {cluster} is not connected"
                ))
            })?;
        let id = self.next_diff.fetch_add(1, Ordering::Relaxed);
        let (wtx, wrx) = tokio::sync::oneshot::channel();
        self.diff_waiters.lock().expect("lock").insert(id, wtx);
        let req = pb::HubMessage {
            msg: Some(pb::hub_message::Msg::DiffRequest(pb::DiffRequest {
                id,
                app: app.to_string(),
            })),
        };
        let result = async {
            tx.send(Ok(req)).await.map_err(|_| {
                tonic::Status::unavailable(format!("the spoke of cluster {cluster} disconnected"))
            })?;
            match tokio::time::timeout(Duration::from_secs(120), wrx).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(_)) => Err(tonic::Status::unavailable(format!(
                    "the spoke of cluster {cluster} disconnected"
                ))),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "the spoke of cluster {cluster} did not answer within 120s"
                ))),
            }
        }
        .await;
        self.diff_waiters.lock().expect("lock").remove(&id);
        result
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
        let mut spokes = self.spokes.lock().expect("lock");
        let rec = spokes.entry(cluster.to_string()).or_default();
        let before = rec.applied.as_ref().map(|c| c.id.clone());
        f(rec);
        rec.last_seen = now();
        let after = rec.applied.as_ref().map(|c| c.id.clone());
        if after.is_some() && after != before {
            let ev = status::Event {
                time: rec.last_seen,
                commit: after.unwrap_or_default(),
                note: "applied".into(),
            };
            if let Err(e) = self.store.record_event(cluster, &ev) {
                tracing::warn!(%cluster, error = %e, "cannot record the apply event");
            }
        }
        if let Err(e) = self.store.save_spoke(cluster, rec) {
            tracing::warn!(%cluster, error = %e, "cannot record spoke status");
        }
    }

    pub fn on_spoke_message(&self, cluster: &str, m: pb::SpokeMessage) {
        use pb::spoke_message::Msg;
        match m.msg {
            Some(Msg::Ack(a)) => {
                self.metrics.acks.fetch_add(1, Ordering::Relaxed);
                let commit = self.commit_meta_for(cluster, &a.revision);
                tracing::debug!(%cluster, revision = %a.revision, "spoke acknowledged");
                self.touch(cluster, |r| {
                    r.applied = Some(commit);
                    r.applied_digest = a.digest;
                });
            }
            Some(Msg::Status(s)) => {
                let commit = self.commit_meta_for(cluster, &s.revision);
                self.touch(cluster, |r| {
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
                });
            }
            Some(Msg::DiffReport(r)) => {
                if let Some(w) = self.diff_waiters.lock().expect("lock").remove(&r.id) {
                    let _ = w.send(r);
                }
            }
            Some(Msg::Hello(_)) | None => {}
        }
    }

    fn commit_meta_for(&self, cluster: &str, revision: &str) -> CommitMeta {
        for map in [&self.released, &self.states] {
            if let Some(s) = map.read().expect("lock").get(cluster) {
                if s.commit.id == revision {
                    return s.commit.clone();
                }
            }
        }
        CommitMeta {
            id: revision.to_string(),
            ..Default::default()
        }
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

    pub fn fleet_status(&self) -> pb::FleetStatus {
        let states = self.states.read().expect("lock");
        let released = self.released.read().expect("lock");
        let held = self.held.lock().expect("lock");
        let index = self.index.read().expect("lock");
        let spokes = self.spokes.lock().expect("lock");
        let connected = self.connected.lock().expect("lock");
        let mut names: Vec<&String> = states
            .keys()
            .chain(released.keys())
            .chain(index.cluster_errors.keys())
            .collect();
        names.sort();
        names.dedup();
        let clusters = names
            .into_iter()
            .map(|name| {
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
                    desired: state.map(|s| (&s.commit).into()),
                    desired_digest: state.map(|s| s.digest.clone()).unwrap_or_default(),
                    released: rel.map(|s| (&s.commit).into()),
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
            })
            .collect();
        pb::FleetStatus {
            hub_revision: Some((&index.commit).into()),
            git_error: self
                .git
                .lock()
                .expect("lock")
                .error
                .clone()
                .unwrap_or_default(),
            clusters,
        }
    }
}

fn published(state: &DesiredState) -> Published {
    Published {
        commit: state.commit.clone(),
        digest: state.digest.clone(),
        bytes: fleet_proto::convert::encode_state(state),
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
    let tls = load_server_tls(&config.tls)?;
    let hub = Arc::new(Hub::open(&config.data_dir)?);

    let grpc = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let http = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let bound = Bound {
        grpc: grpc.local_addr()?,
        http: http.local_addr()?,
    };
    tracing::info!(grpc = %bound.grpc, http = %bound.http, repo = %config.repo, "hub listening");
    on_bound(bound);

    let poller = poller::Poller {
        hub: hub.clone(),
        source: repo::Source::parse(&config.repo, &config.data_dir),
        branch: config.branch.clone(),
        interval: config.poll_interval,
    };
    let poll_task = tokio::spawn(poller.run(shutdown.clone()));
    let http_task = tokio::spawn(http::serve(hub.clone(), http, shutdown.clone()));

    let max = fleet_proto::MAX_MESSAGE_SIZE;
    let spoke_svc =
        pb::spoke_service_server::SpokeServiceServer::new(serve::SpokeSvc { hub: hub.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let admin_svc =
        pb::admin_service_server::AdminServiceServer::new(serve::AdminSvc { hub: hub.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let mut sd = shutdown.clone();
    tonic::transport::Server::builder()
        .tls_config(tls)
        .context("configuring TLS")?
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(spoke_svc)
        .add_service(admin_svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            async move {
                let _ = sd.wait_for(|v| *v).await;
            },
        )
        .await
        .context("gRPC server")?;
    poll_task.abort();
    let _ = http_task.await;
    hub.store.flush().await?;
    Ok(())
}

fn load_server_tls(files: &TlsFiles) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the hub {what} at {}", p.display()))
    };
    let ca = read(&files.ca, "CA certificate")?;
    let cert = read(&files.cert, "certificate")?;
    let key = read(&files.key, "private key")?;
    check_pem(&ca, &files.ca, "CERTIFICATE")?;
    check_pem(&cert, &files.cert, "CERTIFICATE")?;
    check_pem(&key, &files.key, "PRIVATE KEY")?;
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert, key))
        .client_ca_root(tonic::transport::Certificate::from_pem(ca)))
}

/// Fails early, naming the file, when a PEM file does not hold what it should.
pub fn check_pem(bytes: &[u8], path: &std::path::Path, label: &str) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN ") || !text.contains(label) {
        anyhow::bail!("{} is not a PEM file holding a {label}", path.display());
    }
    Ok(())
}
