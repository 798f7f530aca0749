//! fleetctl's connection to the hub's admin API (mTLS, admin certificate).

use std::path::PathBuf;

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
}

impl HubArgs {
    /// Whether enough was given to reach the hub.
    pub fn given(&self) -> bool {
        self.ca.is_some() && self.cert.is_some() && self.key.is_some()
    }
}

pub fn admin_client(
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
