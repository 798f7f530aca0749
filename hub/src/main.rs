//! `fleet-hub`: flags in, [`fleet_hub::run`] out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fleet_hub::{HubConfig, TlsFiles};

/// mimalloc rather than glibc's malloc: a publish at 10,000 clusters spent a
/// third of its time in glibc's consolidation and page faults
/// (docs/benchmarks.md, "Seventh round").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// fleet hub: renders every cluster's desired state from the fleet repo and
/// serves each spoke its own slice over mTLS gRPC.
#[derive(Parser, Debug)]
#[command(name = "fleet-hub", version)]
struct Args {
    /// The fleet repo: a local path to a Git repository, or a URL (file://, ssh://, git@host:path).
    #[arg(long, env = "FLEET_REPO")]
    repo: String,
    /// Branch (or any revision) of the fleet repo to deploy.
    #[arg(long, env = "FLEET_BRANCH", default_value = "HEAD")]
    branch: String,
    /// How often to fetch the fleet repo, in seconds (the webhook triggers a fetch at once too).
    #[arg(long, env = "FLEET_POLL_INTERVAL", default_value_t = 30.0)]
    poll_interval: f64,
    /// Directory for the hub's database (rendered states, spoke status) and the repo mirror.
    #[arg(long, env = "FLEET_DATA_DIR", default_value = "fleet-hub-data")]
    data_dir: PathBuf,
    /// gRPC (mTLS) listen address for spokes and fleetctl.
    #[arg(long, env = "FLEET_GRPC_ADDR", default_value = "0.0.0.0:7443")]
    grpc_addr: SocketAddr,
    /// Plain HTTP listen address: POST /webhook, GET /healthz, GET /metrics.
    #[arg(long, env = "FLEET_HTTP_ADDR", default_value = "0.0.0.0:7080")]
    http_addr: SocketAddr,
    /// The read-only status page (HTML, no login of its own): localhost by
    /// default; `off` for none. Anything else belongs behind an
    /// authenticating proxy (docs/status-page.md).
    #[arg(long, env = "FLEET_PAGE_ADDR", default_value = "127.0.0.1:7090", value_parser = parse_page_addr)]
    page_addr: PageAddr,
    /// The fleet CA certificate (PEM): clients must present a certificate it
    /// issued. It may hold two CAs during a CA rollover. Reloaded when it changes.
    #[arg(long, env = "FLEET_CA")]
    ca: PathBuf,
    /// The hub's certificate (PEM), from `fleetctl ca issue hub`.
    #[arg(long, env = "FLEET_CERT")]
    cert: PathBuf,
    /// The hub's private key (PEM). The certificate and key are reloaded when they change.
    #[arg(long, env = "FLEET_KEY")]
    key: PathBuf,
    /// Revoked certificates (PEM CRL, `fleetctl ca revoke` keeps `ca.crl`):
    /// refused at the handshake, their open streams closed; reloaded when it changes.
    #[arg(long, env = "FLEET_CRL")]
    crl: Option<PathBuf>,
    /// A file holding the webhook secret: POST /webhook then needs a GitHub
    /// (X-Hub-Signature-256), GitLab (X-Gitlab-Token) or HMAC (X-Signature) signature.
    #[arg(long, env = "FLEET_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// The CA certificate spoke renewals are signed with (normally the fleet
    /// CA's ca.crt; during a rollover, the new CA). With --signer-key, spokes
    /// renew their own certificates over their stream before they expire.
    #[arg(long, env = "FLEET_SIGNER_CERT", requires = "signer_key")]
    signer_cert: Option<PathBuf>,
    /// The private key of --signer-cert.
    #[arg(long, env = "FLEET_SIGNER_KEY", requires = "signer_cert")]
    signer_key: Option<PathBuf>,
    /// The Ed25519 key (PEM, from `fleetctl ca signing-key`) every published
    /// state is signed with; spokes verify with its public key (--trust-keys).
    #[arg(long, env = "FLEET_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// An ssh-keygen allowed_signers file: the deployed commit must carry an
    /// SSH signature by one of its keys, or it is not rendered.
    #[arg(long, env = "FLEET_ALLOWED_SIGNERS")]
    allowed_signers: Option<PathBuf>,
    /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
    #[arg(long, env = "FLEET_ADDR_FILE")]
    addr_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "FLEET_LOG_FORMAT", default_value = "plain", value_parser = ["plain", "json"])]
    log_format: String,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "FLEET_LOG", default_value = "info")]
    log: String,
}

/// `--page-addr`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct PageAddr(Option<SocketAddr>);

fn parse_page_addr(s: &str) -> Result<PageAddr, String> {
    if s == "off" {
        return Ok(PageAddr(None));
    }
    s.parse().map(|a| PageAddr(Some(a))).map_err(|_| {
        format!("`{s}` is neither an address (host:port, e.g. 127.0.0.1:7090) nor `off`")
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args.log_format, &args.log);
    if !(args.poll_interval > 0.0) {
        eprintln!("error: --poll-interval must be a positive number of seconds");
        return ExitCode::from(64);
    }
    let config = HubConfig {
        repo: args.repo,
        branch: args.branch,
        poll_interval: Duration::from_secs_f64(args.poll_interval),
        data_dir: args.data_dir,
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        page_addr: args.page_addr.0,
        webhook_secret_file: args.webhook_secret_file,
        signer: args.signer_cert.zip(args.signer_key),
        signing_key: args.signing_key,
        allowed_signers: args.allowed_signers,
        tls: TlsFiles {
            ca: args.ca,
            cert: args.cert,
            key: args.key,
            crl: args.crl,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        let addr_file = args.addr_file;
        fleet_hub::run(config, rx, move |b| {
            if let Some(f) = addr_file {
                let page = b
                    .page
                    .map(|p| format!(",\"page\":\"{p}\""))
                    .unwrap_or_default();
                let json = format!(
                    "{{\"grpc\":\"{}\",\"http\":\"{}\"{page}}}\n",
                    b.grpc, b.http
                );
                if let Err(e) = std::fs::write(&f, json) {
                    tracing::error!(file = %f.display(), error = %e, "cannot write the address file");
                }
            }
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-hub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}
