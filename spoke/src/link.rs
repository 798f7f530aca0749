//! The spoke's link to the hub: dial, say what we hold, receive states
//! (chunked), verify, persist, hand them to the reconciler; send acks and
//! status. Reconnects with backoff; the latest status waits in the cache
//! while the hub is away.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use fleet_proto::v1 as pb;
use fleet_render::DesiredState;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::cache::Cache;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `https://host:port`.
    pub hub: String,
    /// Name to verify in the hub's certificate (defaults to the URL's host).
    pub hub_name: Option<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Builds an mTLS channel to the hub (lazy: connects on first use).
pub fn channel(cfg: &LinkConfig) -> anyhow::Result<Channel> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the {what} at {}", p.display()))
    };
    let ca = read(&cfg.ca, "fleet CA certificate")?;
    let cert = read(&cfg.cert, "client certificate")?;
    let key = read(&cfg.key, "client private key")?;
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key));
    if let Some(name) = &cfg.hub_name {
        tls = tls.domain_name(name.clone());
    }
    let ep = Channel::from_shared(cfg.hub.clone())
        .with_context(|| {
            format!(
                "hub address {:?} is not a URL (use https://host:port)",
                cfg.hub
            )
        })?
        .tls_config(tls)
        .context("configuring TLS")?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    Ok(ep.connect_lazy())
}

/// The newest status report, from the reconciler to the link. `put`
/// replaces a report the link has not taken yet and `take` moves it out, so
/// a report is held once in memory: at 10,000 objects each copy is
/// megabytes. The cache's copy (`Cache::save_report`) is what a reconnect
/// sends when the link took the last one already.
#[derive(Clone, Default)]
pub struct Outbox {
    inner: Arc<(
        std::sync::Mutex<Option<pb::StatusReport>>,
        tokio::sync::Notify,
    )>,
}

impl Outbox {
    pub fn put(&self, status: pb::StatusReport) {
        *self.inner.0.lock().expect("outbox") = Some(status);
        self.inner.1.notify_one();
    }

    pub fn take(&self) -> Option<pb::StatusReport> {
        self.inner.0.lock().expect("outbox").take()
    }

    /// The next report put.
    pub async fn next(&self) -> pb::StatusReport {
        loop {
            let put = self.inner.1.notified();
            if let Some(s) = self.take() {
                return s;
            }
            put.await;
        }
    }
}

/// A live diff asked for by the hub, answered by the reconciler (which owns the applier).
pub type DiffAsk = (
    pb::DiffRequest,
    tokio::sync::oneshot::Sender<pb::DiffReport>,
);

pub struct Link {
    pub cfg: LinkConfig,
    pub renewal: crate::renew::Renewal,
    /// When this process last renewed (at most one renewal a minute).
    pub renewed_at: Option<std::time::Instant>,
    /// Which states to accept (signed by a trusted hub key, not a replay).
    pub trust: crate::trust::Trust,
    /// The verified facts of the state held now (replay protection).
    pub held: Option<fleet_proto::provenance::Facts>,
    /// Where the enforced state came from (sent with every status report).
    pub provenance: pb::SpokeProvenance,
    /// How many verified states the cache remembers for `--rollback-to`.
    pub keep_states: usize,
    pub metrics: std::sync::Arc<crate::metrics::SpokeMetrics>,
    pub cache: Cache,
    /// The state to enforce, shared with the reconciler (never copied per pass).
    pub desired_tx: watch::Sender<Option<Arc<DesiredState>>>,
    pub reports: Outbox,
    pub diffs: mpsc::Sender<DiffAsk>,
}

impl Link {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = std::time::Instant::now();
            let r = tokio::select! {
                r = self.session() => Some(r),
                _ = shutdown.changed() => None,
            };
            self.metrics.set_connected(false);
            let Some(r) = r else { return };
            match r {
                Ok(()) => tracing::info!(hub = %self.cfg.hub, "hub closed the stream"),
                Err(e) if hub_not_ready(&e) => {
                    tracing::info!(hub = %self.cfg.hub, reason = %format!("{e:#}"), "hub not ready yet (it has not rendered the fleet repo); enforcing the cached state")
                }
                Err(e) => {
                    tracing::warn!(hub = %self.cfg.hub, error = %format!("{e:#}"), "hub unreachable; enforcing the cached state")
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            // Jitter spreads a reconnect storm across the fleet.
            let jitter = Duration::from_millis(
                u64::from(std::process::id() % 7) * backoff.as_millis() as u64 / 20,
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn session(&mut self) -> anyhow::Result<()> {
        let cfg = self.renewal.current(&self.cfg);
        let channel = channel(&cfg)?;
        let mut client = pb::spoke_service_client::SpokeServiceClient::new(channel)
            .max_decoding_message_size(fleet_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(fleet_proto::MAX_MESSAGE_SIZE);
        let (out_tx, out_rx) = mpsc::channel::<pb::SpokeMessage>(16);
        let held = self.desired_tx.borrow().clone();
        let hello = pb::Hello {
            revision: held
                .as_ref()
                .map(|s| s.commit.id.clone())
                .unwrap_or_default(),
            digest: held.as_ref().map(|s| s.digest.clone()).unwrap_or_default(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        out_tx
            .send(pb::SpokeMessage {
                msg: Some(pb::spoke_message::Msg::Hello(hello)),
            })
            .await?;
        // Status produced while disconnected goes out first: the report
        // not taken yet, else the last one saved.
        let latest = match self.reports.take() {
            Some(s) => Some(s),
            None => self
                .cache
                .load_report()?
                .and_then(|b| pb::StatusReport::decode(b.as_slice()).ok()),
        };
        if let Some(mut status) = latest {
            status.provenance = Some(self.provenance.clone());
            send_report(&out_tx, status).await?;
        }
        let mut inbound = client
            .sync(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await
            .with_context(|| format!("opening the sync stream to {}", self.cfg.hub))?
            .into_inner();
        tracing::info!(hub = %self.cfg.hub, "connected to hub");
        self.metrics.set_connected(true);
        let mut renewing = self.start_renewal(&cfg, &out_tx).await?;
        let mut pending = fleet_proto::chunks::Reassembly::new();
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let Some(msg) = msg.context("hub stream")? else { return Ok(()) };
                    match msg.msg {
                        Some(pb::hub_message::Msg::DiffRequest(req)) => {
                            self.ask_diff(req, out_tx.clone());
                            continue;
                        }
                        Some(pb::hub_message::Msg::Renewed(r)) => {
                            if self.renewed(renewing.take(), r) {
                                // Dial again with the new certificate.
                                return Ok(());
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.on_hub_message(msg, &mut pending)?;
                }
                mut status = self.reports.next() => {
                    status.provenance = Some(self.provenance.clone());
                    send_report(&out_tx, status).await?;
                }
            }
        }
    }

    /// Asks the hub for a new certificate when the current one is due;
    /// returns the new key and the cluster while the answer is pending.
    async fn start_renewal(
        &self,
        cfg: &LinkConfig,
        out: &mpsc::Sender<pb::SpokeMessage>,
    ) -> anyhow::Result<Option<(String, String)>> {
        let pem =
            std::fs::read(&cfg.cert).with_context(|| format!("reading {}", cfg.cert.display()))?;
        let v = match crate::renew::validity(&pem) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(cert = %cfg.cert.display(), error = %e, "cannot read the client certificate's lifetime");
                return Ok(None);
            }
        };
        let Some(cluster) = v.cluster.clone() else {
            return Ok(None);
        };
        let recently = self
            .renewed_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if recently || !self.renewal.due(&v, std::time::SystemTime::now()) {
            return Ok(None);
        }
        let (key, csr) = crate::renew::Renewal::request(&cluster)?;
        tracing::info!(%cluster, not_after = v.not_after, "asking the hub to renew the client certificate");
        out.send(pb::SpokeMessage {
            msg: Some(pb::spoke_message::Msg::Renew(pb::RenewRequest {
                csr_pem: csr,
            })),
        })
        .await?;
        Ok(Some((cluster, key)))
    }

    /// Keeps a renewed certificate; true when the link should dial again with it.
    fn renewed(&mut self, pending: Option<(String, String)>, r: pb::RenewResponse) -> bool {
        let Some((cluster, key)) = pending else {
            tracing::warn!("the hub sent a certificate this spoke did not ask for; ignored");
            return false;
        };
        if !r.error.is_empty() {
            tracing::warn!(error = %r.error, "the hub did not renew the client certificate; it is used until it expires");
            return false;
        }
        match self.renewal.store(&cluster, &key, &r.cert_pem) {
            Ok(v) => {
                self.renewed_at = Some(std::time::Instant::now());
                tracing::info!(%cluster, not_after = v.not_after, cert = %self.renewal.cert().display(), "renewed the client certificate; reconnecting with it");
                true
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot keep the renewed certificate");
                false
            }
        }
    }

    /// Hands a diff request to the reconciler and sends its answer back when it comes.
    fn ask_diff(&self, req: pb::DiffRequest, out: mpsc::Sender<pb::SpokeMessage>) {
        let id = req.id;
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.diffs.try_send((req, tx)).is_err() {
            let report = pb::DiffReport {
                id,
                diffs: Vec::new(),
                error: "the spoke is busy; retry".into(),
                ..Default::default()
            };
            tokio::spawn(async move {
                let _ = out
                    .send(pb::SpokeMessage {
                        msg: Some(pb::spoke_message::Msg::DiffReport(report)),
                    })
                    .await;
            });
            return;
        }
        tokio::spawn(async move {
            let report = rx.await.unwrap_or(pb::DiffReport {
                id,
                diffs: Vec::new(),
                error: "the reconciler stopped".into(),
                ..Default::default()
            });
            let _ = out
                .send(pb::SpokeMessage {
                    msg: Some(pb::spoke_message::Msg::DiffReport(report)),
                })
                .await;
        });
    }

    fn on_hub_message(
        &mut self,
        msg: pb::HubMessage,
        pending: &mut fleet_proto::chunks::Reassembly,
    ) -> anyhow::Result<()> {
        use fleet_proto::chunks::Step;
        use pb::hub_message::Msg;
        let step = match msg.msg {
            Some(Msg::Header(h)) => pending.header(h)?,
            Some(Msg::Chunk(c)) => pending.chunk(c)?,
            Some(Msg::DiffRequest(_)) | Some(Msg::Renewed(_)) | None => Step::Pending,
        };
        match step {
            Step::Pending => {}
            Step::SameContent(h) => {
                // Same content, new revision.
                let current = self.desired_tx.borrow().clone();
                match current {
                    Some(s) if s.digest == h.digest => {
                        let mut s = DesiredState::clone(&s);
                        s.commit = std::sync::Arc::new(h.commit.clone().unwrap_or_default().into());
                        let env = envelope(&h);
                        if let Ok(v) = self.verified(&s, &env) {
                            self.accept(s, &env, v)?;
                        }
                    }
                    _ => anyhow::bail!(
                        "hub announced digest {} without content, but the cache holds another",
                        h.digest
                    ),
                }
            }
            Step::Complete(h, bytes) => self.receive(h, bytes)?,
        }
        Ok(())
    }

    fn receive(&mut self, h: pb::StateHeader, bytes: Bytes) -> anyhow::Result<()> {
        let state = match fleet_proto::convert::decode_state(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "refusing a desired state from the hub; keeping the cached one");
                return Ok(());
            }
        };
        if state.digest != h.digest {
            tracing::error!(announced = %h.digest, got = %state.digest, "state digest differs from the header; keeping the cached one");
            return Ok(());
        }
        let env = envelope(&h);
        let Ok(v) = self.verified(&state, &env) else {
            return Ok(());
        };
        self.cache
            .save_signed_state(&bytes, &env)
            .context("persisting the desired state")?;
        self.from_network(v, &bytes, &env)?;
        tracing::info!(revision = %state.commit.short_id(), digest = %state.digest, "received desired state");
        drop(bytes);
        self.desired_tx.send_replace(Some(Arc::new(state)));
        Ok(())
    }

    /// Whether `state` may be cached and applied (see [`crate::trust`]);
    /// a refusal is logged and the state held now stays.
    fn verified(
        &mut self,
        state: &DesiredState,
        env: &crate::trust::Envelope,
    ) -> Result<Option<crate::trust::Verified>, ()> {
        match self.trust.check(state, env, self.held.as_ref()) {
            Ok(v) => {
                if let Some(v) = &v {
                    tracing::debug!(key = %v.key, revision = %state.commit.short_id(), "verified the hub's signature");
                    self.held = Some(v.facts.clone());
                }
                Ok(v)
            }
            Err(e) => {
                tracing::error!(revision = %state.commit.short_id(), error = %e, "refusing a desired state from the hub; keeping the cached one");
                Err(())
            }
        }
    }

    /// Records a state accepted from the hub: its provenance, and (verified)
    /// in the history `--rollback-to` picks from. A site rollback ends here.
    fn from_network(
        &mut self,
        v: Option<crate::trust::Verified>,
        bytes: &[u8],
        env: &crate::trust::Envelope,
    ) -> anyhow::Result<()> {
        let p = &mut self.provenance;
        p.source = "network".into();
        p.rolled_back_to.clear();
        p.rolled_back_at = 0;
        match &v {
            Some(v) => {
                p.verified_by = v.key.clone();
                p.published_at_ms = v.facts.published_at_ms as i64;
                self.cache
                    .remember(v.facts.published_at_ms, bytes, env, self.keep_states)?;
            }
            None => {
                p.verified_by.clear();
                p.published_at_ms = 0;
            }
        }
        self.cache.save_provenance(&self.provenance)?;
        Ok(())
    }

    fn accept(
        &mut self,
        state: DesiredState,
        env: &crate::trust::Envelope,
        v: Option<crate::trust::Verified>,
    ) -> anyhow::Result<()> {
        let bytes = fleet_proto::convert::encode_state(&state);
        self.cache
            .save_signed_state(&bytes, env)
            .context("persisting the desired state")?;
        self.from_network(v, &bytes, env)?;
        drop(bytes);
        self.desired_tx.send_replace(Some(Arc::new(state)));
        Ok(())
    }
}

/// The hub answered, but has no state to serve yet (UNAVAILABLE before its
/// first render): not an outage.
fn hub_not_ready(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<tonic::Status>().is_some_and(|s| {
            s.code() == tonic::Code::Unavailable && s.message().contains("has not rendered")
        })
    })
}

fn envelope(h: &pb::StateHeader) -> crate::trust::Envelope {
    crate::trust::Envelope {
        statement: h.statement.clone(),
        signature: h.signature.clone(),
    }
}

async fn send_report(
    out: &mpsc::Sender<pb::SpokeMessage>,
    status: pb::StatusReport,
) -> anyhow::Result<()> {
    let ack = pb::Ack {
        revision: status.revision.clone(),
        digest: status.digest.clone(),
    };
    out.send(pb::SpokeMessage {
        msg: Some(pb::spoke_message::Msg::Ack(ack)),
    })
    .await?;
    out.send(pb::SpokeMessage {
        msg: Some(pb::spoke_message::Msg::Status(status)),
    })
    .await?;
    Ok(())
}
