//! `fleet-load`: the scale harness. Runs a real `fleet-hub` process against N
//! simulated spokes in this process, a real `fleet-spoke` for the footprint,
//! and the spoke's sled cache in-process; prints every figure next to its goal
//! (a table on stdout, JSON with `--json`). Method and results: docs/benchmarks.md.
//!
//! It measures; it never fails on a threshold. The exit code is non-zero only
//! when the harness itself could not run (a process did not start, a phase
//! timed out).

mod cache;
mod footprint;
mod handshake;
mod kubernetes;
mod load;
mod pki;
mod procs;
mod repo;
mod report;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Scale harness for fleet: commit-to-applied latency, hub memory per spoke,
/// reconnect storm, spoke footprint and spoke cache, each next to its goal.
#[derive(Parser, Debug)]
#[command(name = "fleet-load")]
pub struct Args {
    /// Number of simulated spokes (one cluster each).
    #[arg(long, env = "FLEET_BENCH_SPOKES", default_value_t = 1000)]
    spokes: usize,
    /// Small and quick (20 spokes, short waits, 300 cache rewrites): every figure in well under a minute, for CI.
    #[arg(long)]
    smoke: bool,
    /// Write the results as JSON to this file.
    #[arg(long, env = "FLEET_BENCH_JSON")]
    json: Option<PathBuf>,
    /// A previous run's --json: each figure that moved by more than 20% is marked.
    #[arg(long, env = "FLEET_BENCH_BASELINE")]
    baseline: Option<PathBuf>,
    /// The fleet-hub binary (default: next to this executable).
    #[arg(long, env = "FLEET_BENCH_HUB_BIN")]
    hub_bin: Option<PathBuf>,
    /// The fleet-spoke binary (default: next to this executable).
    #[arg(long, env = "FLEET_BENCH_SPOKE_BIN")]
    spoke_bin: Option<PathBuf>,
    /// Working directory (repo, PKI, hub data, logs); default: a temporary directory, removed at the end.
    #[arg(long, env = "FLEET_BENCH_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// The hub's --poll-interval, seconds: bounds the poll-triggered latency.
    #[arg(long, default_value_t = 2.0)]
    poll_interval: f64,
    /// The hub's log filter (info is what production runs with).
    #[arg(long, default_value = "info")]
    hub_log: String,
    /// Rewrites of a 1 MiB state for the spoke-cache figures.
    #[arg(long)]
    cache_rewrites: Option<usize>,
    /// Rewrites of a small (16 KiB) state over which the cache's disk is
    /// sampled, to show it stays bounded (default 1,000,000; smoke 3,000).
    #[arg(long)]
    cache_churn: Option<usize>,
    /// Skip the real-spoke footprint phase.
    #[arg(long)]
    no_footprint: bool,
    /// Skip the spoke-cache phase.
    #[arg(long)]
    no_cache: bool,
    /// Skip the hub load phases (latency, memory, reconnect storm).
    #[arg(long)]
    no_load: bool,
    /// Run against a real API server with this kubeconfig instead: fleet
    /// (a real hub and `fleet-spoke --target kubernetes`) next to `kubectl
    /// apply --server-side` (when on PATH), at each N of --objects. Without
    /// it that run is skipped with a note.
    #[arg(long, env = "FLEET_BENCH_KUBECONFIG")]
    kube: Option<PathBuf>,
    /// Numbers of ConfigMaps for the --kube run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    objects: Vec<usize>,
    /// In the --kube run, leave out kubectl (fleet's figures only).
    #[arg(long)]
    no_kubectl: bool,
    /// Adds a ConfigMap of about this many KiB to app `api` (on every
    /// workload cluster, untouched by the commits): a larger state per spoke
    /// for the initial sync and the memory per idle spoke.
    #[arg(long, default_value_t = 0)]
    state_kib: usize,
}

/// Resolved settings.
pub struct Config {
    pub spokes: usize,
    pub smoke: bool,
    /// Extra KiB in every workload cluster's state (`--state-kib`).
    pub state_kib: usize,
    pub hub_bin: PathBuf,
    pub spoke_bin: PathBuf,
    pub work: PathBuf,
    pub poll_interval: f64,
    pub hub_log: String,
    pub cache_rewrites: usize,
    pub cache_churn: usize,
    /// How long to let things settle before reading RSS.
    pub settle: Duration,
    /// How long a phase may take before the harness gives up on it.
    pub phase_timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every simulated spoke holds a socket here, and the hub one per spoke:
    // raise the soft open-file limit to the hard one (inherited by the hub).
    let spokes = if args.smoke { 20 } else { args.spokes };
    // The hard limit too when it is short and we may raise it (root): each
    // spoke holds a socket here and one in the hub, which inherits the limit.
    let want = (spokes + 4096) as u64;
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        if hard < want {
            let _ = rlimit::Resource::NOFILE.set(want, want);
        }
    }
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    // The hub holds a socket per spoke in one process: past the limit the
    // run would measure refused connections, not the hub.
    if nofile > 0 && (nofile as usize) < spokes + 256 && !args.no_load {
        anyhow::bail!(
            "{spokes} spokes need about {} open files in the hub and here, and the hard limit is {nofile} \
             (raising it needs CAP_SYS_RESOURCE); raise it (ulimit -Hn) or run at most {} spokes",
            spokes + 256,
            (nofile as usize).saturating_sub(256)
        );
    }
    let tmp;
    let work = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("fleet-load").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let cfg = Config {
        spokes,
        smoke: args.smoke,
        state_kib: args.state_kib,
        hub_bin: procs::sibling_bin(args.hub_bin.as_ref(), "fleet-hub")?,
        spoke_bin: procs::sibling_bin(args.spoke_bin.as_ref(), "fleet-spoke")?,
        work,
        poll_interval: args.poll_interval,
        hub_log: args.hub_log.clone(),
        cache_rewrites: args
            .cache_rewrites
            .unwrap_or(if args.smoke { 300 } else { 10_000 }),
        cache_churn: args
            .cache_churn
            .unwrap_or(if args.smoke { 3_000 } else { 1_000_000 }),
        settle: Duration::from_secs(if args.smoke { 1 } else { 3 }),
        phase_timeout: Duration::from_secs(if args.smoke { 30 } else { 180 }),
    };
    eprintln!(
        "fleet-load: {} spokes, work dir {}, open-file limit {nofile}",
        cfg.spokes,
        cfg.work.display()
    );
    let mut report = report::Report::new(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(kc) = args.kube.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        rt.block_on(kubernetes::run(
            &cfg,
            &mut report,
            kc,
            &args.objects,
            args.no_kubectl,
        ))?;
        drop(rt);
        if let Some(b) = &args.baseline {
            report.compare(&read_baseline(b)?);
        }
        report.print();
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
        }
        return Ok(());
    }
    eprintln!(
        "fleet-load: real API server run skipped (no --kube KUBECONFIG or FLEET_BENCH_KUBECONFIG)"
    );
    rt.block_on(load::run(
        &cfg,
        &mut report,
        args.no_load,
        args.no_footprint,
    ))?;
    if !args.no_cache {
        cache::run(&cfg, &mut report)?;
    }
    drop(rt);
    if let Some(b) = &args.baseline {
        report.compare(&read_baseline(b)?);
    }
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
        eprintln!("fleet-load: results written to {}", path.display());
    }
    Ok(())
}

fn read_baseline(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the baseline {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fleet-load --json file", path.display()))
}
