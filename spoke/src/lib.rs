//! fleet spoke: one small agent per cluster. It dials the hub ([`link`]),
//! keeps the last verified desired state in sled ([`cache`]), applies it
//! through an [`apply::Applier`] and self-heals ([`reconcile`]).

pub mod apply;
pub mod cache;
pub mod link;
pub mod reconcile;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

pub use link::LinkConfig;

#[derive(Debug, Clone)]
pub enum Target {
    Directory(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SpokeConfig {
    pub link: LinkConfig,
    pub cache_dir: PathBuf,
    pub target: Target,
    pub drift_interval: Duration,
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
    let applier = match &config.target {
        Target::Directory(root) => apply::directory::DirectoryApplier::new(root.clone())
            .with_context(|| format!("creating target directory {}", root.display()))?,
    };
    let reconciler = reconcile::Reconciler {
        applier,
        cache: cache.clone(),
        inventory,
        desired: desired_rx,
        reports: report_tx,
        drift_interval: config.drift_interval,
    };
    let link = link::Link {
        cfg: config.link,
        cache,
        desired_tx,
        reports: report_rx,
    };
    let r = tokio::spawn(reconciler.run(shutdown.clone()));
    let l = tokio::spawn(link.run(shutdown));
    let _ = tokio::join!(r, l);
    Ok(())
}
