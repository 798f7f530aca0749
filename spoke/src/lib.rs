//! fleet spoke: one small agent per cluster. It dials the hub ([`link`]),
//! keeps the last verified desired state in sled ([`cache`]), applies it
//! through an [`apply::Applier`] and self-heals ([`reconcile`]).

pub mod apply;
pub mod cache;
pub mod link;
pub mod reconcile;
pub mod renew;

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
}

/// Runs the spoke until `shutdown` flips to true.
pub async fn run(config: SpokeConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&config.cache_dir)
        .with_context(|| format!("creating cache dir {}", config.cache_dir.display()))?;
    // Fail on unreadable certificates now, not at the first dial.
    link::channel(&config.link)?;
    let cache = cache::Cache::open(&config.cache_dir)?;
    let cached = cache.load_state()?;
    if let Some(s) = &cached {
        tracing::info!(revision = %s.commit.short_id(), digest = %s.digest, "loaded desired state from cache");
    }
    let inventory = cache.load_inventory()?;
    let (desired_tx, desired_rx) = watch::channel(cached);
    let (report_tx, report_rx) = watch::channel(None);
    let (diff_tx, diff_rx) = tokio::sync::mpsc::channel(4);
    #[allow(clippy::too_many_arguments)]
    fn reconciler<A: apply::Applier>(
        applier: A,
        cache: cache::Cache,
        inventory: apply::Inventory,
        desired: watch::Receiver<Option<fleet_render::DesiredState>>,
        reports: watch::Sender<Option<link::Report>>,
        diffs: tokio::sync::mpsc::Receiver<link::DiffAsk>,
        drift_interval: Duration,
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
        };
        tokio::spawn(r.run(shutdown))
    }
    let (c, di, sd) = (cache.clone(), config.drift_interval, shutdown.clone());
    let r = match &config.target {
        Target::Directory(root) => {
            let a = apply::directory::DirectoryApplier::new(root.clone())
                .with_context(|| format!("creating target directory {}", root.display()))?;
            reconciler(a, c, inventory, desired_rx, report_tx, diff_rx, di, sd)
        }
        Target::Kubernetes(t) => {
            let client = kube_client(t).await?;
            let a = apply::kubernetes::KubernetesApplier::new(client, t.options.clone());
            reconciler(a, c, inventory, desired_rx, report_tx, diff_rx, di, sd)
        }
    };
    let link = link::Link {
        renewal: renew::Renewal {
            dir: config.cache_dir.join("identity"),
            before: config.renew_before,
        },
        renewed_at: None,
        cfg: config.link,
        cache,
        desired_tx,
        reports: report_rx,
        diffs: diff_tx,
    };
    let l = tokio::spawn(link.run(shutdown));
    let _ = tokio::join!(r, l);
    Ok(())
}
