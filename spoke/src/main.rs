//! `fleet-spoke`: flags in, [`fleet_spoke::run`] out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fleet_spoke::{KubernetesTarget, LinkConfig, SpokeConfig, Target};

/// fleet spoke: pulls this cluster's desired state from the hub, caches it,
/// applies it, self-heals drift and reports status.
#[derive(Parser, Debug)]
#[command(name = "fleet-spoke", version)]
struct Args {
    /// The hub's gRPC address, e.g. https://fleet-hub.example:7443.
    #[arg(long, env = "FLEET_HUB")]
    hub: String,
    /// Name to verify in the hub's certificate (default: the host of --hub).
    #[arg(long, env = "FLEET_HUB_NAME")]
    hub_name: Option<String>,
    /// The fleet CA certificate (PEM).
    #[arg(long, env = "FLEET_CA")]
    ca: PathBuf,
    /// This spoke's certificate (PEM), from `fleetctl ca issue spoke <cluster>`; it names the cluster.
    #[arg(long, env = "FLEET_CERT")]
    cert: PathBuf,
    /// This spoke's private key (PEM).
    #[arg(long, env = "FLEET_KEY")]
    key: PathBuf,
    /// Directory for the spoke's cache (last desired state, inventory, pending status).
    #[arg(long, env = "FLEET_CACHE_DIR", default_value = "fleet-spoke-cache")]
    cache_dir: PathBuf,
    /// Where to apply: `directory` writes each object as a file under
    /// --target-dir; `kubernetes` server-side applies to a cluster.
    #[arg(long, env = "FLEET_TARGET", default_value = "directory", value_parser = ["directory", "kubernetes"])]
    target: String,
    /// Root directory of the directory target.
    #[arg(long, env = "FLEET_TARGET_DIR", required_if_eq("target", "directory"))]
    target_dir: Option<PathBuf>,
    /// Kubernetes target: kubeconfig file (default: in-cluster config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes target: kubeconfig context (default: its current context).
    #[arg(long, env = "FLEET_KUBE_CONTEXT")]
    kube_context: Option<String>,
    /// Kubernetes target: namespace of fleet's inventory ConfigMap.
    #[arg(
        long,
        env = "FLEET_INVENTORY_NAMESPACE",
        default_value = "fleet-system"
    )]
    inventory_namespace: String,
    /// Kubernetes target: seconds a step (CRDs established, a sync wave
    /// healthy) may take before it is reported as not healthy in time (the
    /// app's later steps wait for it either way).
    #[arg(long, env = "FLEET_STEP_TIMEOUT", default_value_t = 120.0)]
    step_timeout: f64,
    /// Seconds between drift checks.
    #[arg(long, env = "FLEET_DRIFT_INTERVAL", default_value_t = 5.0)]
    drift_interval: f64,
    /// Renew the client certificate over the stream when less than this is
    /// left (e.g. 30d, 12h; default: a third of its lifetime). The hub must
    /// have a signer (--signer-cert/--signer-key).
    #[arg(long, env = "FLEET_RENEW_BEFORE", value_parser = parse_secs)]
    renew_before: Option<Duration>,
    /// Trusted hub signing keys (OpenSSH public key lines or an ssh-keygen
    /// allowed_signers file; several during a key rotation). With it, only
    /// states the hub signed are cached and applied.
    #[arg(long, env = "FLEET_TRUST_KEYS")]
    trust_keys: Option<PathBuf>,
    /// Accept a state published before the one held (replay protection off,
    /// e.g. to roll a site back with an older bundle).
    #[arg(long, env = "FLEET_ALLOW_OLDER")]
    allow_older: bool,
    /// Verify and cache this bundle (`fleetctl bundle export`) before
    /// starting; the spoke then enforces it with or without a hub.
    #[arg(long)]
    import: Option<PathBuf>,
    /// Roll back at the site, with no hub, to a verified state the cache
    /// remembers (a revision or its prefix); reported to the hub when the link
    /// returns, and replaced by the hub's next newer state.
    #[arg(long)]
    rollback_to: Option<String>,
    /// Serve /healthz, /readyz and /metrics here (e.g. 0.0.0.0:7081; none by default).
    #[arg(long, env = "FLEET_SPOKE_HTTP_ADDR")]
    http_addr: Option<std::net::SocketAddr>,
    /// age identities (an `age-keygen` file, e.g. a mounted Kubernetes
    /// Secret) that open SOPS-encrypted documents. Without it, SOPS documents
    /// are not applied.
    #[arg(long, env = "FLEET_AGE_IDENTITY")]
    age_identity: Option<PathBuf>,
    /// How many verified states the cache remembers for --rollback-to.
    #[arg(long, env = "FLEET_KEEP_STATES", default_value_t = 5)]
    keep_states: usize,
    /// Log format.
    #[arg(long, env = "FLEET_LOG_FORMAT", default_value = "plain", value_parser = ["plain", "json"])]
    log_format: String,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "FLEET_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args.log_format, &args.log);
    if !(args.drift_interval > 0.0) {
        eprintln!("error: --drift-interval must be a positive number of seconds");
        return ExitCode::from(64);
    }
    if !(args.step_timeout > 0.0) {
        eprintln!("error: --step-timeout must be a positive number of seconds");
        return ExitCode::from(64);
    }
    let target = match (args.target.as_str(), args.target_dir) {
        ("kubernetes", _) => Target::Kubernetes(KubernetesTarget {
            kubeconfig: args.kubeconfig.filter(|p| !p.as_os_str().is_empty()),
            context: args.kube_context,
            options: fleet_spoke::apply::kubernetes::Options {
                inventory_namespace: args.inventory_namespace,
                step_timeout: Duration::from_secs_f64(args.step_timeout),
                ..Default::default()
            },
        }),
        (_, Some(d)) => Target::Directory(d),
        (_, None) => {
            eprintln!("error: --target-dir is required with --target directory");
            return ExitCode::from(64);
        }
    };
    let config = SpokeConfig {
        link: LinkConfig {
            hub: args.hub,
            hub_name: args.hub_name,
            ca: args.ca,
            cert: args.cert,
            key: args.key,
        },
        cache_dir: args.cache_dir,
        target,
        drift_interval: Duration::from_secs_f64(args.drift_interval),
        renew_before: args.renew_before,
        trust_keys: args.trust_keys,
        allow_older: args.allow_older,
        import: args.import,
        rollback_to: args.rollback_to,
        keep_states: args.keep_states,
        http_addr: args.http_addr,
        age_identity: args.age_identity,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
        fleet_spoke::run(config, rx).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-spoke: error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs = fleet_render::model::parse_duration(s)?;
    u64::try_from(secs)
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is negative"))
}
