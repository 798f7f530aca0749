//! The gRPC services: the spoke stream and the admin API. Identity comes from
//! the peer certificate; domain errors become `tonic::Status` here only.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fleet_proto::identity::{Identity, Role};
use fleet_proto::v1 as pb;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Hub;
use crate::fanout::Published;
use crate::guard::Reason;
use crate::identity::peer_identity;
use crate::livediff::StreamTx;
use crate::wire::{Inbound, MessageBody};

type HubStream = Pin<Box<dyn Stream<Item = Result<pb::HubMessage, Status>> + Send>>;

pub struct SpokeSvc {
    pub hub: Arc<Hub>,
}

#[tonic::async_trait]
impl pb::spoke_service_server::SpokeService for SpokeSvc {
    type SyncStream = HubStream;

    /// Reached only through the generated server; [`SpokeServer`] serves
    /// `Sync` with [`Inbound`] instead of tonic's `Streaming`.
    async fn sync(
        &self,
        req: Request<Streaming<pb::SpokeMessage>>,
    ) -> Result<Response<HubStream>, Status> {
        self.open(req).await
    }
}

impl SpokeSvc {
    /// Opens a spoke's stream: checks the peer and its `Hello`, then
    /// serves it from a task of its own until either side ends it.
    #[tracing::instrument(skip_all, fields(cluster))]
    async fn open<S>(&self, req: Request<S>) -> Result<Response<HubStream>, Status>
    where
        S: Stream<Item = Result<pb::SpokeMessage, Status>> + Send + Unpin + 'static,
    {
        let peer = peer_identity(&req)?;
        if self.hub.revoked(&peer.serial) {
            return Err(Status::unauthenticated(format!(
                "the certificate of the {} is revoked",
                peer.identity
            )));
        }
        let serial = peer.serial;
        let cluster = match peer.identity {
            Identity::Cluster(c) => c,
            other => {
                return Err(Status::permission_denied(format!(
                    "{other} may not open a spoke stream"
                )));
            }
        };
        tracing::Span::current().record("cluster", cluster.as_str());
        if self.hub.current_commit().is_none() && !self.hub.knows_cluster(&cluster) {
            return Err(Status::unavailable(
                "the hub has not rendered the fleet repo yet",
            ));
        }
        if !self.hub.knows_cluster(&cluster) {
            return Err(Status::not_found(format!(
                "cluster {cluster} is not in the fleet repo"
            )));
        }
        let mut inbound = req.into_inner();
        let peer = format!("cluster {cluster}");
        let first = tokio::time::timeout(Duration::from_secs(30), inbound.next()).await;
        let hello = match first {
            Ok(Some(Ok(pb::SpokeMessage {
                msg: Some(pb::spoke_message::Msg::Hello(h)),
            }))) => h,
            Ok(Some(Err(e))) => {
                self.hub.rejections.reject(
                    &peer,
                    Reason::Malformed,
                    &format!("Hello: {}", e.message()),
                );
                return Err(e);
            }
            _ => {
                self.hub.rejections.reject(
                    &peer,
                    Reason::Unexpected,
                    "the first message on a spoke stream was not Hello",
                );
                return Err(Status::invalid_argument(
                    "the first message on a spoke stream must be Hello",
                ));
            }
        };
        if let Err(v) = fleet_proto::limits::check_words(&[
            ("hello revision bytes", &hello.revision),
            ("hello digest bytes", &hello.digest),
            ("hello agent version bytes", &hello.agent_version),
        ]) {
            self.hub
                .rejections
                .reject(&peer, Reason::OverLimit, &format!("Hello refused, {v}"));
            return Err(Status::invalid_argument(format!("Hello refused: {v}")));
        }
        tracing::info!(held = %hello.revision, digest = %hello.digest, "spoke connected");
        let (tx, rx) = mpsc::channel(8);
        let hub = self.hub.clone();
        tokio::spawn(async move {
            hub.spoke_connected(&cluster);
            hub.live_diffs.register(&cluster, tx.clone());
            let control = tx.clone();
            stream_loop(&hub, &cluster, &serial, hello, inbound, tx).await;
            hub.live_diffs.unregister(&cluster, &control);
            hub.spoke_disconnected(&cluster);
            tracing::info!(%cluster, "spoke disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(|m| *m))))
    }
}

/// The spoke service as tonic generates it, except that `Sync` is framed
/// by [`crate::wire`] both ways ([`Inbound`] in, [`MessageBody`] out); the
/// handler is the same.
#[derive(Clone)]
pub struct SpokeServer {
    svc: Arc<SpokeSvc>,
    rest: pb::spoke_service_server::SpokeServiceServer<SpokeSvc>,
    max: usize,
}

const SYNC_PATH: &str = "/fleet.v1.SpokeService/Sync";

impl SpokeServer {
    /// `max`: the largest message either way, encoded.
    pub fn new(svc: SpokeSvc, max: usize) -> Self {
        let svc = Arc::new(svc);
        let rest = pb::spoke_service_server::SpokeServiceServer::from_arc(svc.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        Self { svc, rest, max }
    }

    async fn sync_call(
        svc: Arc<SpokeSvc>,
        max: usize,
        req: http::Request<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        // No compression is offered: a compressed request is refused as tonic would.
        if let Some(enc) = req.headers().get("grpc-encoding")
            && enc != "identity"
        {
            let name = String::from_utf8_lossy(enc.as_bytes()).into_owned();
            return Status::unimplemented(format!(
                "Content is compressed with `{name}` which isn't supported"
            ))
            .into_http();
        }
        let req = req.map(|body| Inbound::<pb::SpokeMessage>::new(body, max));
        match svc.open(Request::from_http(req)).await {
            Ok(res) => {
                let (meta, stream, extensions) = res.into_parts();
                let mut res =
                    http::Response::new(tonic::body::Body::new(MessageBody::new(stream, max)));
                *res.headers_mut() = meta.into_headers();
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc"),
                );
                *res.extensions_mut() = extensions;
                res
            }
            Err(status) => status.into_http(),
        }
    }
}

impl tonic::server::NamedService for SpokeServer {
    const NAME: &'static str =
        <pb::spoke_service_server::SpokeServiceServer<SpokeSvc> as tonic::server::NamedService>::NAME;
}

impl tower_service::Service<http::Request<tonic::body::Body>> for SpokeServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.rest, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() == SYNC_PATH {
            Box::pin(Self::sync_call(self.svc.clone(), self.max, req).map(Ok))
        } else {
            Box::pin(self.rest.call(req))
        }
    }
}

async fn stream_loop<S>(
    hub: &Hub,
    cluster: &str,
    serial: &[u8],
    hello: pb::Hello,
    mut inbound: S,
    tx: StreamTx,
) where
    S: Stream<Item = Result<pb::SpokeMessage, Status>> + Unpin,
{
    let mut held_digest = hello.digest;
    let mut held_rev = hello.revision;
    let mut watch = hub.fanout.subscribe(cluster);
    // A hub without listeners (tests) has no revocations: a sender that never sends.
    let none = tokio::sync::watch::Sender::new(0u64);
    let mut revocations = hub
        .tls
        .as_ref()
        .map_or_else(|| none.subscribe(), |t| t.subscribe());
    loop {
        let current = watch.borrow_and_update().clone();
        if let Some(p) = current {
            if p.digest != held_digest || p.commit.id != held_rev {
                let resend = p.digest != held_digest;
                if send_state(&tx, &p, resend).await.is_err() {
                    return;
                }
                held_digest = p.digest.clone();
                held_rev = p.commit.id.clone();
            }
        }
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { return },
            _ = revocations.changed() => {
                if hub.revoked(serial) {
                    tracing::warn!(%cluster, "certificate revoked: closing the spoke's stream");
                    let _ = tx.send(Box::new(Err(Status::unauthenticated("your certificate was revoked")))).await;
                    return;
                }
            }
            msg = inbound.next() => match msg.transpose() {
                Ok(Some(pb::SpokeMessage { msg: Some(pb::spoke_message::Msg::Renew(r)) })) => {
                    // Signing is CPU work: off the async threads.
                    let csr = r.csr_pem;
                    let c = cluster.to_string();
                    let answer = tokio::task::block_in_place(|| hub.renew(&c, &csr));
                    let m = pb::HubMessage { msg: Some(pb::hub_message::Msg::Renewed(answer)) };
                    if tx.send(Box::new(Ok(m))).await.is_err() {
                        return;
                    }
                }
                Ok(Some(m)) => hub.on_spoke_message(cluster, m),
                Ok(None) => return,
                Err(e) => {
                    // Bytes that are not a SpokeMessage, or one over the size limit.
                    if matches!(e.code(), tonic::Code::Internal | tonic::Code::OutOfRange | tonic::Code::InvalidArgument)
                        && !e.message().contains("h2 protocol error")
                    {
                        hub.rejections.reject(&format!("cluster {cluster}"), Reason::Malformed, e.message());
                    } else {
                        tracing::debug!(%cluster, error = %e, "spoke stream ended");
                    }
                    return;
                }
            },
        }
    }
}

/// Sends a header, then (when the spoke lacks the content) the chunks: a
/// slice of a shared piece where a chunk falls inside one, else a copy
/// ([`Published::slice`]).
async fn send_state(tx: &StreamTx, p: &Published, with_content: bool) -> Result<(), ()> {
    let size = if with_content { p.len() } else { 0 };
    let chunks = size.div_ceil(fleet_proto::CHUNK_SIZE);
    let header = pb::StateHeader {
        commit: Some((&*p.commit).into()),
        digest: p.digest.clone(),
        total_size: size as u64,
        chunks: chunks as u32,
        statement: p.envelope.statement.clone(),
        signature: p.envelope.signature.clone(),
    };
    tx.send(Box::new(Ok(pb::HubMessage {
        msg: Some(pb::hub_message::Msg::Header(header)),
    })))
    .await
    .map_err(|_| ())?;
    for i in 0..chunks {
        let start = i * fleet_proto::CHUNK_SIZE;
        let end = (start + fleet_proto::CHUNK_SIZE).min(size);
        let chunk = pb::StateChunk {
            index: i as u32,
            data: p.slice(start, end),
        };
        tx.send(Box::new(Ok(pb::HubMessage {
            msg: Some(pb::hub_message::Msg::Chunk(chunk)),
        })))
        .await
        .map_err(|_| ())?;
    }
    Ok(())
}

pub struct AdminSvc {
    pub hub: Arc<Hub>,
}

/// The caller's name, if its certificate is not revoked and its role
/// allows `call` (which needs `need`).
fn require<T>(hub: &Hub, req: &Request<T>, need: Role, call: &str) -> Result<String, Status> {
    let peer = peer_identity(req)?;
    if hub.revoked(&peer.serial) {
        return Err(Status::unauthenticated(format!(
            "the certificate of {} is revoked",
            peer.identity
        )));
    }
    match peer.identity {
        Identity::User(role, name) if role >= need => Ok(name),
        Identity::User(role, name) => Err(Status::permission_denied(format!(
            "{} {name} may not call {call}: it needs the {} role (or above)",
            role.as_str(),
            need.as_str()
        ))),
        other => Err(Status::permission_denied(format!(
            "{other} is not an admin user and may not call {call}: admin calls need a user certificate (`fleetctl ca issue admin NAME --role viewer|release|admin`)"
        ))),
    }
}

/// Runs `f` off the async workers: a call that waits for a publish in
/// progress, the store's flush or a page's worth of records.
async fn off_workers<T: Send + 'static>(
    call: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("{call} task failed: {e}")))
}

/// The deadline the caller set (`grpc-timeout`), if any.
fn caller_deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminSvc {
    async fn get_status(
        &self,
        req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::FleetStatus>, Status> {
        require(&self.hub, &req, Role::Viewer, "GetStatus")?;
        let r = req.get_ref();
        let size = match r.page_size {
            0 => crate::PAGE_SIZE,
            n => (n as usize).min(crate::PAGE_SIZE),
        };
        // As the status page is: a page of up to PAGE_SIZE clusters holds
        // the spoke records while it is built.
        let (hub, after) = (Arc::clone(&self.hub), r.page_token.clone());
        let page = off_workers("status", move || {
            hub.fleet_status_page(&crate::Page {
                after,
                size,
                budget: crate::PAGE_BUDGET,
            })
        })
        .await?;
        Ok(Response::new(page))
    }

    async fn refresh(
        &self,
        req: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let who = require(&self.hub, &req, Role::Release, "Refresh")?;
        tracing::info!(user = %who, "refresh requested");
        self.hub.refresh.notify_one();
        Ok(Response::new(pb::RefreshResponse {
            revision: self.hub.current_commit().unwrap_or_default(),
        }))
    }

    async fn sync(
        &self,
        req: Request<pb::SyncRequest>,
    ) -> Result<Response<pb::SyncResponse>, Status> {
        let who = require(&self.hub, &req, Role::Release, "Sync")?;
        let r = req.into_inner();
        let hub = Arc::clone(&self.hub);
        let synced = off_workers("sync", move || {
            let app = (!r.app.is_empty()).then_some(r.app.as_str());
            hub.sync_with_reason(&r.cluster, app, r.force, &who, &r.reason)
        })
        .await?;
        match synced {
            Ok(s) => Ok(Response::new(pb::SyncResponse {
                revision: Some((&*s.commit).into()),
                digest: s.digest,
            })),
            Err(e @ crate::SyncError::WindowClosed { .. }) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(e @ crate::SyncError::NotRendered(_)) => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::not_found(e.to_string())),
        }
    }

    async fn live_diff(
        &self,
        req: Request<pb::LiveDiffRequest>,
    ) -> Result<Response<pb::DiffReport>, Status> {
        require(&self.hub, &req, Role::Viewer, "LiveDiff")?;
        // Answer a little before the caller gives up, so it hears why.
        let wait = caller_deadline(&req)
            .map(|d| {
                d.saturating_sub((d / 10).max(Duration::from_millis(500)))
                    .max(Duration::from_millis(100))
            })
            .unwrap_or(crate::livediff::DEFAULT_WAIT)
            .min(crate::livediff::DEFAULT_WAIT);
        let r = req.into_inner();
        if !self.hub.knows_cluster(&r.cluster) {
            return Err(Status::not_found(format!(
                "cluster {} is not in the fleet repo",
                r.cluster
            )));
        }
        Ok(Response::new(
            self.hub.live_diff(&r.cluster, &r.app, wait).await?,
        ))
    }

    async fn get_history(
        &self,
        req: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::History>, Status> {
        require(&self.hub, &req, Role::Viewer, "GetHistory")?;
        let events = self
            .hub
            .history(&req.get_ref().cluster)
            .into_iter()
            .map(|(cluster, e)| pb::ClusterEvent {
                cluster,
                commit: e.commit,
                time: e.time,
                note: e.note,
                who: e.who,
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(pb::History { events }))
    }

    async fn get_rollout(
        &self,
        req: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::RolloutStatus>, Status> {
        require(&self.hub, &req, Role::Viewer, "GetRollout")?;
        let env = &req.get_ref().env;
        let (plan, r) = self
            .hub
            .rollout(env)
            .map_err(|e| Status::not_found(e.to_string()))?;
        Ok(Response::new(crate::rollout_status(env, &plan, r.as_ref())))
    }

    async fn export_bundle(
        &self,
        req: Request<pb::ExportBundleRequest>,
    ) -> Result<Response<pb::ExportBundleResponse>, Status> {
        // A bundle holds the cluster's Secrets: not for viewers.
        let who = require(&self.hub, &req, Role::Release, "ExportBundle")?;
        let cluster = &req.get_ref().cluster;
        let signer = self.hub.releases.signer().ok_or_else(|| {
            Status::failed_precondition(
                "the hub does not sign states (start it with --signing-key); export offline with `fleetctl bundle export --signing-key`",
            )
        })?;
        let state = self.hub.releases.released(cluster).ok_or_else(|| {
            Status::not_found(format!("no state is released to cluster {cluster}"))
        })?;
        let bundle = signer.bundle(&state);
        if bundle.len() + 1024 > fleet_proto::MAX_MESSAGE_SIZE {
            return Err(Status::resource_exhausted(format!(
                "the bundle of {cluster} is {} bytes, over the message limit; export it offline with `fleetctl bundle export --signing-key`",
                bundle.len()
            )));
        }
        tracing::info!(user = %who, %cluster, revision = %state.commit.short_id(), "exported a bundle");
        Ok(Response::new(pb::ExportBundleResponse {
            bundle: bundle.into(),
            revision: state.commit.id.clone(),
        }))
    }

    async fn control_rollout(
        &self,
        req: Request<pb::ControlRolloutRequest>,
    ) -> Result<Response<pb::RolloutStatus>, Status> {
        let who = require(&self.hub, &req, Role::Release, "ControlRollout")?;
        let r = req.into_inner();
        let hub = Arc::clone(&self.hub);
        let (env, action, reason) = (r.env.clone(), r.action, r.reason);
        let state = off_workers("rollout control", move || {
            hub.control_rollout(&env, &action, &who, &reason)
        })
        .await?
        .map_err(|e| match e {
            crate::rollout::RolloutError::NoRollout { .. } => Status::not_found(e.to_string()),
            _ => Status::failed_precondition(e.to_string()),
        })?;
        let (plan, _) = self
            .hub
            .rollout(&r.env)
            .map_err(|e| Status::not_found(e.to_string()))?;
        Ok(Response::new(crate::rollout_status(
            &r.env,
            &plan,
            Some(&state),
        )))
    }
}
