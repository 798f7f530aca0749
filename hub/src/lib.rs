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
pub struct Hub {
    store: Store,
    pub fanout: Fanout,
    pub refresh: Notify,
    states: RwLock<BTreeMap<String, DesiredState>>,
    index: RwLock<FleetIndex>,
    spokes: Mutex<BTreeMap<String, SpokeRecord>>,
    connected: Mutex<HashMap<String, usize>>,
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

impl Hub {
    /// Opens the store and loads the last states into the fanout, so spokes are
    /// served before (or without) the first successful fetch.
    pub fn open(data_dir: &std::path::Path) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let store = Store::open(data_dir)?;
        let states = store.load_states()?;
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
            states: RwLock::new(BTreeMap::new()),
            last_commit: Mutex::new(resumed),
            index: RwLock::new(index),
            spokes: Mutex::new(spokes),
            connected: Mutex::new(HashMap::new()),
            git: Mutex::new(GitStatus::default()),
            metrics: Metrics::default(),
            store,
        };
        for (cluster, state) in &states {
            hub.fanout.publish(cluster, Arc::new(published(state)));
        }
        if !states.is_empty() {
            tracing::info!(
                clusters = states.len(),
                "serving stored states until the fleet repo is read"
            );
        }
        *hub.states.write().expect("states lock") = states;
        Ok(hub)
    }

    pub fn current_commit(&self) -> Option<String> {
        self.last_commit.lock().expect("lock").clone()
    }

    pub fn mark_commit_seen(&self, commit: &CommitMeta) {
        *self.last_commit.lock().expect("lock") = Some(commit.id.clone());
    }

    pub fn states_snapshot(&self) -> BTreeMap<String, DesiredState> {
        self.states.read().expect("states lock").clone()
    }

    pub fn knows_cluster(&self, cluster: &str) -> bool {
        self.fanout.contains(cluster)
    }

    /// Stores and publishes a render; only clusters whose state changed are sent.
    pub fn publish_render(&self, r: FleetRender, render_time: Duration) -> anyhow::Result<()> {
        self.metrics.renders.fetch_add(1, Ordering::Relaxed);
        let stats = r.stats;
        let mut states = self.states.write().expect("states lock");
        let mut to_publish = Vec::new();
        for (cluster, state) in &r.states {
            let old = states.get(cluster);
            if old.is_some_and(|o| o.digest == state.digest && o.commit == state.commit) {
                continue;
            }
            let p = published(state);
            self.store.save_state(cluster, &p.bytes)?;
            to_publish.push((cluster.clone(), p));
        }
        for gone in states
            .keys()
            .filter(|c| !r.states.contains_key(*c))
            .cloned()
            .collect::<Vec<_>>()
        {
            tracing::info!(cluster = %gone, "cluster removed from the fleet repo");
            self.store.remove_state(&gone)?;
        }
        *states = r.states;
        let index = FleetIndex {
            commit: r.commit.clone(),
            labels: r.labels,
            cluster_errors: r.cluster_errors,
            renderer: status::RENDERER_VERSION.to_string(),
        };
        self.store.save_index(&index)?;
        // Durable before the new states are served: a hub killed now restarts with them.
        self.store.flush_sync()?;
        let published = to_publish.len() as u64;
        for (cluster, p) in to_publish {
            self.fanout.publish(&cluster, Arc::new(p));
            self.metrics
                .states_published
                .fetch_add(1, Ordering::Relaxed);
        }
        *self.metrics.last_publish.lock().expect("lock") = LastPublish {
            commit: r.commit.id.clone(),
            at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            states: published,
            render_us: render_time.as_micros() as u64,
            rendered: stats.rendered as u64,
            reused: stats.reused as u64,
        };
        *self.index.write().expect("index lock") = index;
        self.mark_commit_seen(&r.commit);
        let mut git = self.git.lock().expect("lock");
        *git = GitStatus::default();
        Ok(())
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
        f(rec);
        rec.last_seen = now();
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
                tracing::info!(%cluster, revision = %a.revision, "spoke acknowledged");
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
                        })
                        .collect();
                });
            }
            Some(Msg::Hello(_)) | None => {}
        }
    }

    fn commit_meta_for(&self, cluster: &str, revision: &str) -> CommitMeta {
        match self.states.read().expect("lock").get(cluster) {
            Some(s) if s.commit.id == revision => s.commit.clone(),
            _ => CommitMeta {
                id: revision.to_string(),
                ..Default::default()
            },
        }
    }

    pub fn fleet_status(&self) -> pb::FleetStatus {
        let states = self.states.read().expect("lock");
        let index = self.index.read().expect("lock");
        let spokes = self.spokes.lock().expect("lock");
        let connected = self.connected.lock().expect("lock");
        let mut names: Vec<&String> = states.keys().chain(index.cluster_errors.keys()).collect();
        names.sort();
        names.dedup();
        let clusters = names
            .into_iter()
            .map(|name| {
                let state = states.get(name);
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
                pb::ClusterStatus {
                    name: name.clone(),
                    labels: index
                        .labels
                        .get(name)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    desired: state.map(|s| (&s.commit).into()),
                    desired_digest: state.map(|s| s.digest.clone()).unwrap_or_default(),
                    applied: rec.and_then(|r| r.applied.as_ref()).map(Into::into),
                    applied_digest: rec.map(|r| r.applied_digest.clone()).unwrap_or_default(),
                    sync: sync_verdict(state.map(|s| s.digest.as_str()), rec).to_string(),
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
