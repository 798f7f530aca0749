//! The spoke's link to the hub: dial, say what we hold, receive states
//! (chunked), verify, persist, hand them to the reconciler; send acks and
//! status. Reconnects with backoff; the latest status waits in the cache
//! while the hub is away.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
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

/// What the reconciler tells the link after each reconcile.
#[derive(Debug, Clone)]
pub struct Report {
    pub status: pb::StatusReport,
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
    pub cache: Cache,
    pub desired_tx: watch::Sender<Option<DesiredState>>,
    pub reports: watch::Receiver<Option<Report>>,
    pub diffs: mpsc::Sender<DiffAsk>,
}

impl Link {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = std::time::Instant::now();
            tokio::select! {
                r = self.session() => match r {
                    Ok(()) => tracing::info!(hub = %self.cfg.hub, "hub closed the stream"),
                    Err(e) => tracing::warn!(hub = %self.cfg.hub, error = %format!("{e:#}"), "hub unreachable; enforcing the cached state"),
                },
                _ = shutdown.changed() => return,
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
        // Status produced while disconnected goes out first.
        if let Some(bytes) = self.cache.load_report()? {
            if let Ok(status) = pb::StatusReport::decode(bytes) {
                send_report(&out_tx, status).await?;
            }
        }
        let mut inbound = client
            .sync(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await
            .with_context(|| format!("opening the sync stream to {}", self.cfg.hub))?
            .into_inner();
        tracing::info!(hub = %self.cfg.hub, "connected to hub");
        let mut renewing = self.start_renewal(&cfg, &out_tx).await?;
        let mut pending: Option<(pb::StateHeader, BytesMut)> = None;
        self.reports.borrow_and_update();
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
                changed = self.reports.changed() => {
                    if changed.is_err() { return Ok(()) }
                    let report = self.reports.borrow_and_update().clone();
                    if let Some(r) = report {
                        send_report(&out_tx, r.status).await?;
                    }
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
        pending: &mut Option<(pb::StateHeader, BytesMut)>,
    ) -> anyhow::Result<()> {
        use pb::hub_message::Msg;
        match msg.msg {
            Some(Msg::Header(h)) => {
                if h.total_size == 0 {
                    // Same content, new revision.
                    let current = self.desired_tx.borrow().clone();
                    match current {
                        Some(mut s) if s.digest == h.digest => {
                            s.commit = h.commit.unwrap_or_default().into();
                            self.accept(s)?;
                        }
                        _ => anyhow::bail!(
                            "hub announced digest {} without content, but the cache holds another",
                            h.digest
                        ),
                    }
                } else {
                    if h.total_size > 1024 * 1024 * 1024 {
                        anyhow::bail!(
                            "hub announced a {} byte state, over the 1 GiB limit",
                            h.total_size
                        );
                    }
                    let buf = BytesMut::with_capacity(h.total_size as usize);
                    *pending = Some((h, buf));
                }
            }
            Some(Msg::Chunk(c)) => {
                let Some((h, buf)) = pending.as_mut() else {
                    anyhow::bail!("hub sent a chunk without a header")
                };
                buf.extend_from_slice(&c.data);
                if buf.len() as u64 > h.total_size {
                    anyhow::bail!("hub sent more bytes than announced");
                }
                if c.index + 1 == h.chunks {
                    let (h, buf) = pending.take().expect("pending state");
                    if buf.len() as u64 != h.total_size {
                        anyhow::bail!("hub sent {} bytes, announced {}", buf.len(), h.total_size);
                    }
                    self.receive(h, buf.freeze())?;
                }
            }
            Some(Msg::DiffRequest(_)) | Some(Msg::Renewed(_)) | None => {}
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
        self.cache
            .save_state(&bytes)
            .context("persisting the desired state")?;
        tracing::info!(revision = %state.commit.short_id(), digest = %state.digest, "received desired state");
        self.desired_tx.send_replace(Some(state));
        Ok(())
    }

    fn accept(&mut self, state: DesiredState) -> anyhow::Result<()> {
        let bytes = fleet_proto::convert::encode_state(&state);
        self.cache
            .save_state(&bytes)
            .context("persisting the desired state")?;
        self.desired_tx.send_replace(Some(state));
        Ok(())
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
