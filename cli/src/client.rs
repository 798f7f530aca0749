//! fleetctl's connection to the hub's admin API (mTLS, a user certificate).
//! Every call has a deadline (`--timeout`) and says what timed out.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use fleet_proto::v1 as pb;
use tonic::transport::Channel;

#[derive(clap::Args, Debug, Clone)]
pub struct HubArgs {
    /// The hub's gRPC address.
    #[arg(long, env = "FLEET_HUB", default_value = "https://127.0.0.1:7443")]
    pub hub: String,
    /// Name to verify in the hub's certificate (default: the host of --hub).
    #[arg(long, env = "FLEET_HUB_NAME")]
    pub hub_name: Option<String>,
    /// The fleet CA certificate (PEM).
    #[arg(long, env = "FLEET_CA")]
    pub ca: Option<PathBuf>,
    /// An admin certificate (PEM), from `fleetctl ca issue admin NAME`.
    #[arg(long, env = "FLEET_CERT")]
    pub cert: Option<PathBuf>,
    /// The admin certificate's private key (PEM).
    #[arg(long, env = "FLEET_KEY")]
    pub key: Option<PathBuf>,
    /// How long to wait for the hub's answer to each call (e.g. 30s, 2m).
    #[arg(long, env = "FLEET_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs = fleet_render::model::parse_duration(s)?;
    if secs <= 0 {
        return Err(format!("{s:?}: a timeout must be at least 1s"));
    }
    Ok(Duration::from_secs(secs as u64))
}

impl HubArgs {
    /// Whether enough was given to reach the hub.
    pub fn given(&self) -> bool {
        self.ca.is_some() && self.cert.is_some() && self.key.is_some()
    }
}

/// The admin API with a deadline on every call.
pub struct Admin {
    client: pb::admin_service_client::AdminServiceClient<Channel>,
    hub: String,
    timeout: Duration,
}

impl Admin {
    pub fn connect(a: &HubArgs) -> anyhow::Result<Admin> {
        Ok(Admin {
            client: admin_client(a)?,
            hub: a.hub.clone(),
            timeout: a.timeout,
        })
    }

    /// Runs one call with the deadline (sent to the hub as `grpc-timeout`,
    /// and enforced here too, since a hub that accepted the connection may
    /// never answer).
    async fn call<Req, Resp, F, Fut>(&self, what: &str, req: Req, f: F) -> anyhow::Result<Resp>
    where
        F: FnOnce(
            pb::admin_service_client::AdminServiceClient<Channel>,
            tonic::Request<Req>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let mut req = tonic::Request::new(req);
        req.set_timeout(self.timeout);
        let secs = self.timeout.as_secs();
        let timed_out = || {
            anyhow::anyhow!(
                "{what}: the hub at {} did not answer within {secs}s (--timeout)",
                self.hub
            )
        };
        match tokio::time::timeout(self.timeout, f(self.client.clone(), req)).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded && s.message().is_empty() => {
                Err(timed_out())
            }
            Ok(Err(s)) if s.code() == tonic::Code::Cancelled && s.message().contains("Timeout") => {
                Err(timed_out())
            }
            Ok(Err(s)) if s.code() == tonic::Code::Unavailable => Err(anyhow::anyhow!(
                "{what}: the hub at {} is unreachable or not ready: {}",
                self.hub,
                s.message()
            )),
            Ok(Err(s)) => Err(anyhow::anyhow!("{what}: {}", s.message())),
        }
    }

    /// The whole fleet's status, page by page.
    pub async fn status(&self) -> anyhow::Result<pb::FleetStatus> {
        let mut all = self
            .call(
                "status",
                pb::GetStatusRequest::default(),
                |mut c, r| async move { c.get_status(r).await },
            )
            .await?;
        let mut token = std::mem::take(&mut all.next_page_token);
        while !token.is_empty() {
            let req = pb::GetStatusRequest {
                page_size: 0,
                page_token: token.clone(),
            };
            let mut page = self
                .call(
                    "status",
                    req,
                    |mut c, r| async move { c.get_status(r).await },
                )
                .await?;
            // A hub that does not move on would loop forever.
            if page.next_page_token == token
                || page.clusters.is_empty() && !page.next_page_token.is_empty()
            {
                anyhow::bail!("status: the hub returned the page after {token} again");
            }
            all.clusters.append(&mut page.clusters);
            token = page.next_page_token;
        }
        Ok(all)
    }

    pub async fn refresh(&self) -> anyhow::Result<pb::RefreshResponse> {
        self.call("refresh", pb::RefreshRequest {}, |mut c, r| async move {
            c.refresh(r).await
        })
        .await
    }

    pub async fn sync(&self, req: pb::SyncRequest) -> anyhow::Result<pb::SyncResponse> {
        let what = format!("syncing {}", req.cluster);
        self.call(&what, req, |mut c, r| async move { c.sync(r).await })
            .await
    }

    pub async fn history(&self, req: pb::GetHistoryRequest) -> anyhow::Result<pb::History> {
        self.call(
            "history",
            req,
            |mut c, r| async move { c.get_history(r).await },
        )
        .await
    }

    pub async fn live_diff(&self, req: pb::LiveDiffRequest) -> anyhow::Result<pb::DiffReport> {
        let what = format!("live diff of {}", req.cluster);
        self.call(&what, req, |mut c, r| async move { c.live_diff(r).await })
            .await
    }

    pub async fn rollout(&self, req: pb::GetRolloutRequest) -> anyhow::Result<pb::RolloutStatus> {
        let what = format!("rollout status of {}", req.env);
        self.call(&what, req, |mut c, r| async move { c.get_rollout(r).await })
            .await
    }

    pub async fn export_bundle(
        &self,
        req: pb::ExportBundleRequest,
    ) -> anyhow::Result<pb::ExportBundleResponse> {
        let what = format!("bundle of {}", req.cluster);
        self.call(
            &what,
            req,
            |mut c, r| async move { c.export_bundle(r).await },
        )
        .await
    }

    pub async fn control_rollout(
        &self,
        req: pb::ControlRolloutRequest,
    ) -> anyhow::Result<pb::RolloutStatus> {
        let what = format!("rollout {} {}", req.action, req.env);
        self.call(
            &what,
            req,
            |mut c, r| async move { c.control_rollout(r).await },
        )
        .await
    }
}

fn admin_client(
    a: &HubArgs,
) -> anyhow::Result<pb::admin_service_client::AdminServiceClient<Channel>> {
    let cfg = fleet_spoke::LinkConfig {
        hub: a.hub.clone(),
        hub_name: a.hub_name.clone(),
        ca: a
            .ca
            .clone()
            .context("missing --ca (or FLEET_CA): the fleet CA certificate")?,
        cert: a
            .cert
            .clone()
            .context("missing --cert (or FLEET_CERT): an admin certificate")?,
        key: a
            .key
            .clone()
            .context("missing --key (or FLEET_KEY): the admin certificate's key")?,
    };
    let ch = fleet_spoke::link::channel(&cfg)?;
    Ok(pb::admin_service_client::AdminServiceClient::new(ch)
        .max_decoding_message_size(fleet_proto::MAX_MESSAGE_SIZE * 16))
}
