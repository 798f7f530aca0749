//! fleet spoke: one small agent per cluster. It dials the hub ([`link`]),
//! keeps the last verified desired state in sled ([`cache`]), applies it
//! through an [`apply::Applier`] and self-heals ([`reconcile`]).

pub mod apply;
pub mod cache;
pub mod link;
pub mod metrics;
pub mod reconcile;
pub mod renew;
pub mod secrets;
pub mod trust;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

pub use link::LinkConfig;

#[derive(Debug, Clone)]
pub enum Target {
    Directory(PathBuf),
    Kubernetes(KubernetesTarget),
}

/// Where the Kubernetes target finds its cluster.
#[derive(Debug, Clone)]
pub struct KubernetesTarget {
    /// A kubeconfig file; `None` means in-cluster config (service account).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
    pub options: apply::kubernetes::Options,
}

async fn kube_client(t: &KubernetesTarget) -> anyhow::Result<kube::Client> {
    let config = match &t.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let opts = kube::config::KubeConfigOptions {
                context: t.context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster().context(
            "loading in-cluster config (outside a cluster, pass --kubeconfig or set KUBECONFIG)",
        )?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

#[derive(Debug, Clone)]
pub struct SpokeConfig {
    pub link: LinkConfig,
    pub cache_dir: PathBuf,
    pub target: Target,
    pub drift_interval: Duration,
    /// Renew the client certificate when less than this is left (default: a
    /// third of its lifetime); see [`renew`].
    pub renew_before: Option<Duration>,
    /// Hub public keys (OpenSSH lines or allowed_signers) states must be signed by.
    pub trust_keys: Option<PathBuf>,
    /// Accept a state published before the one held (a rollback by bundle).
    pub allow_older: bool,
    /// A bundle (`fleetctl bundle export`) to verify and cache before starting.
    pub import: Option<PathBuf>,
    /// Roll back, at the site, to a remembered state of this revision (prefix).
    pub rollback_to: Option<String>,
    /// How many verified states the cache remembers for `rollback_to`.
    pub keep_states: usize,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` (none: no listener).
    pub http_addr: Option<std::net::SocketAddr>,
    /// age identities that open SOPS documents (none: they fail closed).
    pub age_identity: Option<PathBuf>,
}

/// Makes a remembered verified state of revision `rev` (a prefix) the
/// current one, recording the rollback for the hub's history.
pub fn rollback_to(
    cache: &cache::Cache,
    trust: &trust::Trust,
    rev: &str,
) -> anyhow::Result<String> {
    if !trust.enabled() {
        anyhow::bail!("--rollback-to needs --trust-keys: only verified states are remembered");
    }
    let lax = trust::Trust {
        allow_older: true,
        ..trust.clone()
    };
    let mut known = Vec::new();
    for (bytes, env) in cache.history()? {
        let Ok(state) = fleet_proto::convert::decode_state(&bytes) else {
            continue;
        };
        known.push(state.commit.short_id().to_string());
        if !state.commit.id.starts_with(rev) || rev.is_empty() {
            continue;
        }
        lax.check(&state, &env, None)
            .map_err(|e| anyhow::anyhow!("the remembered state of {rev}: {e}"))?;
        cache.save_signed_state(&bytes, &env)?;
        let mut p = cache.load_provenance()?;
        p.source = "rollback".into();
        p.rolled_back_to = state.commit.id.clone();
        p.rolled_back_at = now_unix();
        cache.save_provenance(&p)?;
        tracing::warn!(revision = %state.commit.short_id(), "rolled back at the site to a remembered state; reported to the hub when the link returns");
        return Ok(state.commit.id.clone());
    }
    anyhow::bail!(
        "no remembered state of revision {rev:?}; the cache remembers: {}",
        if known.is_empty() {
            "(none)".to_string()
        } else {
            known.join(", ")
        }
    )
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads the trust file; an error names it.
fn load_trust(config: &SpokeConfig) -> anyhow::Result<trust::Trust> {
    let Some(path) = &config.trust_keys else {
        tracing::warn!(
            "no --trust-keys: desired states are not verified against the hub's signing keys"
        );
        return Ok(trust::Trust::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the trusted hub keys at {}", path.display()))?;
    let keys = fleet_proto::sshsig::parse_keys(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if keys.is_empty() {
        anyhow::bail!("{} holds no ssh-ed25519 key", path.display());
    }
    Ok(trust::Trust {
        keys,
        allow_older: config.allow_older,
    })
}

/// The cached state and its verified facts; a cached state that fails
/// verification is not applied (the spoke waits for the hub or a bundle).
fn load_verified(
    cache: &cache::Cache,
    trust: &trust::Trust,
) -> anyhow::Result<(
    Option<fleet_render::DesiredState>,
    Option<fleet_proto::provenance::Facts>,
)> {
    let Some(s) = cache.load_state()? else {
        return Ok((None, None));
    };
    let env = cache.load_envelope()?;
    match trust.check(&s, &env, None) {
        Ok(v) => Ok((Some(s), v.map(|v| v.facts))),
        Err(e) => {
            tracing::error!(revision = %s.commit.short_id(), error = %e, "the cached desired state does not verify; applying nothing until a verified one arrives");
            Ok((None, None))
        }
    }
}

/// Verifies a bundle for `cluster` and caches its state. Returns the revision.
pub fn import_bundle(
    cache: &cache::Cache,
    trust: &trust::Trust,
    cluster: &str,
    path: &std::path::Path,
    keep: usize,
) -> anyhow::Result<String> {
    let what = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("reading the bundle {what}"))?;
    let b =
        fleet_proto::bundle::unpack(&bytes).map_err(|e| anyhow::anyhow!("bundle {what}: {e}"))?;
    if !trust.enabled() {
        anyhow::bail!(
            "bundle {what}: importing a bundle needs --trust-keys (its signature is checked)"
        );
    }
    let state = fleet_proto::convert::decode_state(&b.state)
        .map_err(|e| anyhow::anyhow!("bundle {what}: {e}"))?;
    if state.cluster != cluster {
        anyhow::bail!(
            "bundle {what} is for cluster {}, not this spoke's cluster {cluster}",
            state.cluster
        );
    }
    let env = trust::Envelope {
        statement: b.statement.into(),
        signature: b.signature.into_bytes().into(),
    };
    let (_, held) = load_verified(cache, trust)?;
    let v = trust
        .check(&state, &env, held.as_ref())
        .map_err(|e| anyhow::anyhow!("bundle {what}: {e}"))?
        .expect("trust is enabled");
    let file_sha = fleet_proto::bundle::sha256_hex(&b.state);
    if v.facts.state_file_sha256.as_deref() != Some(file_sha.as_str()) {
        anyhow::bail!(
            "bundle {what}: {} does not match the signed statement",
            fleet_proto::bundle::STATE
        );
    }
    cache
        .save_signed_state(&b.state, &env)
        .with_context(|| format!("caching the state of bundle {what}"))?;
    cache.remember(v.facts.published_at_ms, &b.state, &env, keep)?;
    let mut p = cache.load_provenance()?;
    p.source = "bundle".into();
    p.verified_by = v.key.clone();
    p.published_at_ms = v.facts.published_at_ms as i64;
    p.bundle = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.bundle_at = now_unix();
    p.rolled_back_to.clear();
    p.rolled_back_at = 0;
    cache.save_provenance(&p)?;
    tracing::info!(bundle = %what, revision = %state.commit.short_id(), key = %v.key, "imported a verified bundle");
    Ok(state.commit.id.clone())
}

/// Runs the spoke until `shutdown` flips to true.
pub async fn run(config: SpokeConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&config.cache_dir)
        .with_context(|| format!("creating cache dir {}", config.cache_dir.display()))?;
    // Fail on unreadable certificates now, not at the first dial.
    link::channel(&config.link)?;
    let cache = cache::Cache::open(&config.cache_dir)?;
    let trust = load_trust(&config)?;
    if let Some(b) = &config.import {
        let pem = std::fs::read(&config.link.cert)
            .with_context(|| format!("reading {}", config.link.cert.display()))?;
        let cluster = renew::validity(&pem)?
            .cluster
            .with_context(|| format!("{} names no cluster", config.link.cert.display()))?;
        import_bundle(&cache, &trust, &cluster, b, config.keep_states)?;
    }
    if let Some(rev) = &config.rollback_to {
        rollback_to(&cache, &trust, rev)?;
    }
    let (cached, held) = load_verified(&cache, &trust)?;
    let mut provenance = cache.load_provenance()?;
    if trust.enabled() && cached.is_none() {
        provenance = Default::default();
    }
    if let Some(s) = &cached {
        tracing::info!(revision = %s.commit.short_id(), digest = %s.digest, "loaded desired state from cache");
    }
    let inventory = cache.load_inventory()?;
    let (desired_tx, desired_rx) = watch::channel(cached.map(std::sync::Arc::new));
    let outbox = link::Outbox::default();
    let (diff_tx, diff_rx) = tokio::sync::mpsc::channel(4);
    #[allow(clippy::too_many_arguments)]
    fn reconciler<A: apply::Applier>(
        applier: A,
        cache: cache::Cache,
        inventory: apply::Inventory,
        desired: watch::Receiver<Option<std::sync::Arc<fleet_render::DesiredState>>>,
        reports: link::Outbox,
        diffs: tokio::sync::mpsc::Receiver<link::DiffAsk>,
        drift_interval: Duration,
        metrics: std::sync::Arc<metrics::SpokeMetrics>,
        secrets: std::sync::Arc<secrets::Secrets>,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let r = reconcile::Reconciler {
            applier,
            cache,
            inventory,
            desired,
            reports,
            diffs,
            drift_interval,
            metrics,
            secrets,
        };
        tokio::spawn(r.run(shutdown))
    }
    let spoke_metrics = std::sync::Arc::new(metrics::SpokeMetrics::default());
    if let Some(addr) = config.http_addr {
        metrics::serve(addr, spoke_metrics.clone(), cache.clone(), shutdown.clone()).await?;
    }
    let m = spoke_metrics.clone();
    let (c, di, sd) = (cache.clone(), config.drift_interval, shutdown.clone());
    let sec = std::sync::Arc::new(match &config.age_identity {
        Some(p) => secrets::Secrets::from_file(p)?,
        None => secrets::Secrets::default(),
    });
    let r = match &config.target {
        Target::Directory(root) => {
            let a = apply::directory::DirectoryApplier::new(root.clone())
                .with_context(|| format!("creating target directory {}", root.display()))?;
            reconciler(
                a,
                c,
                inventory,
                desired_rx,
                outbox.clone(),
                diff_rx,
                di,
                m,
                sec,
                sd,
            )
        }
        Target::Kubernetes(t) => {
            let client = kube_client(t).await?;
            let a = apply::kubernetes::KubernetesApplier::new(client, t.options.clone());
            reconciler(
                a,
                c,
                inventory,
                desired_rx,
                outbox.clone(),
                diff_rx,
                di,
                m,
                sec,
                sd,
            )
        }
    };
    let link = link::Link {
        renewal: renew::Renewal {
            dir: config.cache_dir.join("identity"),
            before: config.renew_before,
        },
        renewed_at: None,
        trust,
        held,
        provenance,
        keep_states: config.keep_states,
        metrics: spoke_metrics,
        cfg: config.link,
        cache,
        desired_tx,
        reports: outbox,
        diffs: diff_tx,
    };
    let l = tokio::spawn(link.run(shutdown));
    let _ = tokio::join!(r, l);
    Ok(())
}
