//! Simulated spokes: each one a real mTLS gRPC client with its own certificate,
//! speaking the spoke protocol as `fleet_spoke::link` does (Hello with what it
//! holds, chunked states verified with `decode_state`, Ack then StatusReport,
//! reconnect with the same backoff and jitter), with an applier that records
//! the state in memory and acks at once.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use fleet_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::pki::Pair;

#[derive(Debug)]
pub enum Event {
    /// The hub accepted the stream (Hello sent, response headers back).
    Connected { idx: usize, at: Instant },
    /// A state was received, verified and acked. `full` is false for a
    /// header-only revision bump (the spoke held the content already).
    State {
        idx: usize,
        rev: String,
        full: bool,
        bytes: u64,
        at: Instant,
    },
}

pub fn endpoint(hub: &str, ca_pem: &str, pair: &Pair) -> anyhow::Result<Endpoint> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&pair.cert, &pair.key))
        .domain_name("localhost");
    Ok(Endpoint::from_shared(hub.to_string())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10)))
}

/// What a simulated spoke holds: the revision and digest of its last state.
#[derive(Default)]
struct Held {
    rev: String,
    digest: String,
    applied: Vec<pb::ResourceStatus>,
}

pub async fn run_spoke(
    idx: usize,
    ep: Endpoint,
    events: mpsc::UnboundedSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut held = Held::default();
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        tokio::select! {
            _ = session(idx, &ep, &mut held, &events) => {}
            _ = shutdown.changed() => return,
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        // The real spoke takes its jitter from its pid; here each spoke is its own "process".
        let jitter = Duration::from_millis((idx % 7) as u64 * backoff.as_millis() as u64 / 20);
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    idx: usize,
    ep: &Endpoint,
    held: &mut Held,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let channel = ep.connect().await?;
    let mut client = pb::spoke_service_client::SpokeServiceClient::new(channel)
        .max_decoding_message_size(fleet_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(fleet_proto::MAX_MESSAGE_SIZE);
    let (out, out_rx) = mpsc::channel::<pb::SpokeMessage>(16);
    out.send(msg(pb::spoke_message::Msg::Hello(pb::Hello {
        revision: held.rev.clone(),
        digest: held.digest.clone(),
        agent_version: "fleet-bench".into(),
    })))
    .await?;
    // Status produced before the link broke goes out first, as the real spoke's outbox does.
    if !held.rev.is_empty() {
        ack(&out, &held.rev, &held.digest, held.applied.clone()).await?;
    }
    let mut inbound = client
        .sync(tokio_stream::wrappers::ReceiverStream::new(out_rx))
        .await?
        .into_inner();
    let _ = events.send(Event::Connected {
        idx,
        at: Instant::now(),
    });
    let mut pending: Option<(pb::StateHeader, BytesMut)> = None;
    while let Some(m) = inbound.message().await? {
        use pb::hub_message::Msg;
        match m.msg {
            Some(Msg::Header(h)) if h.total_size == 0 => {
                if h.digest != held.digest {
                    anyhow::bail!("hub announced digest {} without content", h.digest);
                }
                let rev = h.commit.map(|c| c.id).unwrap_or_default();
                held.rev = rev.clone();
                ack(&out, &rev, &h.digest, held.applied.clone()).await?;
                let _ = events.send(Event::State {
                    idx,
                    rev,
                    full: false,
                    bytes: 0,
                    at: Instant::now(),
                });
            }
            Some(Msg::Header(h)) => {
                let buf = BytesMut::with_capacity(h.total_size as usize);
                pending = Some((h, buf));
            }
            Some(Msg::Chunk(c)) => {
                let Some((h, buf)) = pending.as_mut() else {
                    anyhow::bail!("chunk without header");
                };
                buf.extend_from_slice(&c.data);
                if c.index + 1 < h.chunks {
                    continue;
                }
                let (h, buf) = pending.take().expect("pending");
                let state = fleet_proto::convert::decode_state(&buf)?;
                if state.digest != h.digest {
                    anyhow::bail!("state digest differs from its header");
                }
                // The "applier": record what would be applied.
                let applied: Vec<pb::ResourceStatus> = state
                    .resources()
                    .map(|(app, r)| pb::ResourceStatus {
                        app: app.to_string(),
                        id: r.id.to_string(),
                        state: "applied".into(),
                        ..Default::default()
                    })
                    .collect();
                held.rev = state.commit.id.clone();
                held.digest = state.digest.clone();
                held.applied = applied;
                ack(&out, &held.rev, &held.digest, held.applied.clone()).await?;
                let _ = events.send(Event::State {
                    idx,
                    rev: held.rev.clone(),
                    full: true,
                    bytes: h.total_size,
                    at: Instant::now(),
                });
            }
            Some(Msg::DiffRequest(_)) | Some(Msg::Renewed(_)) | None => {}
        }
    }
    Ok(())
}

fn msg(m: pb::spoke_message::Msg) -> pb::SpokeMessage {
    pb::SpokeMessage { msg: Some(m) }
}

/// Ack, then the status report, as the real spoke's link sends after a reconcile.
async fn ack(
    out: &mpsc::Sender<pb::SpokeMessage>,
    rev: &str,
    digest: &str,
    resources: Vec<pb::ResourceStatus>,
) -> anyhow::Result<()> {
    out.send(msg(pb::spoke_message::Msg::Ack(pb::Ack {
        revision: rev.to_string(),
        digest: digest.to_string(),
    })))
    .await?;
    out.send(msg(pb::spoke_message::Msg::Status(pb::StatusReport {
        revision: rev.to_string(),
        digest: digest.to_string(),
        sync: "synced".into(),
        resources,
        observed_at: 0,
    })))
    .await?;
    Ok(())
}
