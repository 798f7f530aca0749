//! `fleetctl`: PKI, offline render, fleet status and the local demo.

/// Writes to stdout; a closed pipe (`fleetctl status -o json | head`) ends
/// the command quietly, as Unix tools do.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("fleetctl: error: writing the output: {e}");
        std::process::exit(1);
    }
}

macro_rules! outln {
    () => {
        crate::emit(format_args!("\n"))
    };
    ($($t:tt)*) => {
        crate::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}

macro_rules! out {
    ($($t:tt)*) => {
        crate::emit(format_args!($($t)*))
    };
}

mod bundle;
mod ca;
mod client;
mod demo;
mod gitops;
mod gitwrite;
mod history;
mod k8s;
mod policy;
mod release;
mod rollout;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fleet_proto::v1 as pb;

/// fleetctl: manage a fleet of clusters run by fleet-hub and fleet-spoke.
#[derive(Parser, Debug)]
#[command(name = "fleetctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for commands that run fleet components (demo).
    #[arg(long, env = "FLEET_LOG", default_value = "warn", global = true)]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Certificate authority: create one, issue hub, spoke and admin certificates.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Signed bundles of desired state, to carry across an air gap.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Print one cluster's rendered desired state as multi-document YAML, offline.
    Render {
        /// The fleet repo (a local Git repository).
        #[arg(long, env = "FLEET_REPO")]
        repo: PathBuf,
        /// The cluster to render.
        #[arg(long)]
        cluster: String,
        /// Revision to render (branch, tag or commit).
        #[arg(long, default_value = "HEAD")]
        rev: String,
    },
    /// Show every cluster: revision, sync state, errors, last seen.
    Status {
        /// Only this cluster.
        cluster: Option<String>,
        #[command(flatten)]
        hub: client::HubArgs,
        /// Output format.
        #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "wide", "json", "yaml"])]
        output: String,
        /// Show it again every --interval until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How often --watch refreshes (e.g. 2s, 1m).
        #[arg(long, default_value = "2s", value_parser = parse_interval)]
        interval: std::time::Duration,
    },
    /// Ask the hub to fetch the fleet repo now.
    Refresh {
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Release sync for a cluster now: a manual sync policy, or a closed sync window with --force.
    Sync {
        cluster: String,
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        /// Sync even when a sync window holds syncs (recorded in the cluster's history).
        #[arg(long)]
        force: bool,
        /// Why (recorded in the cluster's history).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Promote release pins (kustomization images) of apps from one environment to another, as one commit.
    Promote {
        /// Apps to promote (or --all).
        apps: Vec<String>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Every app whose pins differ between the environments.
        #[arg(long, conflicts_with = "apps")]
        all: bool,
        /// Show the commit, the fleet repo diff and the rendered diff per affected cluster; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Skip the gate (the source environment synced and healthy); recorded in a trailer.
        #[arg(long)]
        force: bool,
        /// Commit to this new branch and push it (for a pull request) instead of the current branch.
        #[arg(long)]
        branch: Option<String>,
        /// Push to this remote after committing (default with --branch: origin).
        #[arg(long)]
        push: Option<String>,
        /// Commit author, "Name <email>" (default: Git config).
        #[arg(long, env = "FLEET_AUTHOR")]
        author: Option<String>,
        /// Add a pin to a target overlay that has none for an image (refused otherwise).
        #[arg(long)]
        add_pins: bool,
        /// The gate lets a disconnected source cluster pass if its spoke was seen at most this many seconds ago (default: it must be connected).
        #[arg(long, env = "FLEET_GATE_SEEN_WITHIN", value_name = "SECONDS")]
        seen_within: Option<i64>,
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Restore the release pins of ENV (or a cluster's overrides) as of REV, and freeze the environment.
    Rollback {
        /// An environment (env label) or a cluster.
        target: String,
        /// Revision to restore (default: before the last promotion into the environment).
        #[arg(long)]
        to: Option<String>,
        /// Why (a commit trailer and the freeze); required during a freeze or a paused rollout (break-glass).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "FLEET_AUTHOR")]
        author: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
        /// With hub credentials, a paused rollout of the environment makes this a break-glass rollback.
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Allow promotions into a frozen environment again (a commit).
    Unfreeze {
        env: String,
        /// Why (a commit trailer, shown by `fleetctl history`).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "FLEET_AUTHOR")]
        author: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Approve the release at REV (its pins in --from) for promotion into --to (a commit with trailers).
    Approve {
        /// The revision whose release is approved.
        #[arg(default_value = "HEAD")]
        rev: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "FLEET_AUTHOR")]
        author: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Mark the release REV introduced (the pins it set) as never to be promoted again (a commit).
    Reject {
        rev: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "FLEET_AUTHOR")]
        author: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// The commits that changed what runs on an environment, cluster or app, and when each cluster applied them.
    History {
        target: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// What would change: live on a connected spoke, or offline between two revisions.
    ///
    /// `fleetctl diff CLUSTER [APP]`: live, what applying the desired state would
    /// change on the connected spoke's target (server-side dry-run on Kubernetes).
    /// `fleetctl diff --from REV [--to REV] [CLUSTER]`: offline, between two revisions.
    Diff {
        /// The cluster (required for a live diff).
        cluster: Option<String>,
        /// Only this app (live diff).
        app: Option<String>,
        /// Offline: the revision to compare from.
        #[arg(long)]
        from: Option<String>,
        /// Offline: the revision to compare to.
        #[arg(long, default_value = "HEAD", requires = "from")]
        to: String,
        /// Offline: only this cluster (same as the positional CLUSTER).
        #[arg(long = "cluster", conflicts_with = "cluster")]
        only: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// The progressive rollout of an environment: status (waves, timings), pause, resume, abort.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// A cluster's spoke: `fleetctl spoke manifests CLUSTER | kubectl apply -f -`.
    Spoke {
        #[command(subcommand)]
        command: k8s::SpokeCommand,
    },
    /// Run a local demo fleet: a Git repo, a PKI, a real hub and real spokes (no cluster needed).
    Demo {
        /// Directory to create the demo in (default: a new temporary directory, kept).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Exit 0 once every cluster has converged (non-zero if not within --timeout).
        #[arg(long)]
        exit_when_converged: bool,
        /// Seconds to wait for convergence.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum RolloutCommand {
    /// The waves of ENV's rollout: clusters, phase, and when each started, synced and finished soaking.
    Status {
        env: String,
        #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Stop releasing the revision to more clusters of ENV.
    Pause {
        env: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Continue a paused rollout (health and soak of the current wave are judged afresh).
    Resume {
        env: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// Stop the rollout of this revision for good; clusters not reached keep what they run.
    Abort {
        env: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        hub: client::HubArgs,
    },
}

#[derive(clap::Args, Debug)]
struct RepoArg {
    /// The fleet repo (a local Git repository, your checkout).
    #[arg(long = "repo", env = "FLEET_REPO", default_value = ".")]
    path: PathBuf,
}

#[derive(Subcommand, Debug)]
enum BundleCommand {
    /// Write CLUSTER's signed state as one file: from the hub (its released
    /// state), or offline from the repo with --signing-key.
    Export {
        cluster: String,
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Sign offline with this key (the hub's --signing-key) instead of asking the hub.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// The revision to render offline.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        hub: client::HubArgs,
    },
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a CA (ca.crt, ca.key) in --dir.
    Init {
        #[arg(long, env = "FLEET_PKI_DIR", default_value = "pki")]
        dir: PathBuf,
        /// Lifetime in days.
        #[arg(long, default_value_t = ca::CA_DAYS)]
        days: u32,
    },
    /// Issue an ECDSA P-256 certificate signed by the CA in --dir.
    Issue {
        #[arg(long, env = "FLEET_PKI_DIR", default_value = "pki", global = true)]
        dir: PathBuf,
        /// Lifetime in days (default: 365 for the hub, 90 for spokes and users).
        #[arg(long, global = true)]
        days: Option<u32>,
        /// Keep a certificate this one replaces valid (by default it is
        /// revoked): deploy the new one, then `fleetctl ca revoke` the old.
        #[arg(long, global = true)]
        keep_previous: bool,
        #[command(subcommand)]
        subject: IssueSubject,
    },
    /// Create an Ed25519 state signing key (NAME.key for the hub's
    /// --signing-key, NAME.pub for spokes' --trust-keys).
    SigningKey {
        #[arg(long, env = "FLEET_PKI_DIR", default_value = "pki")]
        dir: PathBuf,
        #[arg(long, default_value = "signing")]
        name: String,
    },
    /// Revoke a certificate (by its file): adds it to --dir's ca.crl, which
    /// the hub (`--crl`) reloads; its connections are closed at once.
    Revoke {
        #[arg(long, env = "FLEET_PKI_DIR", default_value = "pki")]
        dir: PathBuf,
        /// The certificate file to revoke.
        cert: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum IssueSubject {
    /// The hub's server certificate (hub.crt, hub.key).
    Hub {
        /// DNS names and IP addresses the hub is reached at (default: loopback and in-cluster names).
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// A spoke's client certificate for CLUSTER (spoke-CLUSTER.crt/.key).
    Spoke { cluster: String },
    /// A fleetctl user's certificate (ROLE-NAME.crt/.key): viewer reads,
    /// release also syncs and controls rollouts, admin does everything.
    Admin {
        name: String,
        #[arg(long, default_value = "admin", value_parser = ["viewer", "release", "admin"])]
        role: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetctl: error: {e:#}");
            if e.downcast_ref::<release::BadInput>().is_some() {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    match fleet_render::model::parse_duration(s)? {
        n if n > 0 => Ok(std::time::Duration::from_secs(n as u64)),
        _ => Err(format!("{s:?}: the interval must be at least 1s")),
    }
}

/// One `fleetctl status` picture.
fn show_status(hub: &client::HubArgs, cluster: Option<&str>, output: &str) -> anyhow::Result<()> {
    let mut s = runtime().block_on(async { client::Admin::connect(hub)?.status().await })?;
    if let Some(c) = cluster {
        let known = fleet_hub::release::list_names(s.clusters.iter().map(|c| &c.name));
        s.clusters.retain(|x| x.name == c);
        if s.clusters.is_empty() {
            return Err(release::bad(format!(
                "no cluster {c:?} in the fleet; clusters: {known}"
            )));
        }
    }
    match output {
        "json" => outln!("{}", serde_json::to_string_pretty(&status::to_json(&s))?),
        "yaml" => out!("{}", status::to_yaml(&s)),
        "wide" => out!("{}", status::wide(&s)),
        _ => out!("{}", status::table(&s)),
    }
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Ca {
            command: CaCommand::Init { dir, days },
        } => {
            let p = ca::init(&dir, days)?;
            outln!("created CA {}", p.display());
        }
        Command::Ca {
            command:
                CaCommand::Issue {
                    dir,
                    days,
                    keep_previous,
                    subject,
                },
        } => {
            let subject = match subject {
                IssueSubject::Hub { sans } => ca::Subject::Hub {
                    names: if sans.is_empty() {
                        ca::default_hub_names()
                    } else {
                        sans
                    },
                },
                IssueSubject::Spoke { cluster } => ca::Subject::Spoke { cluster },
                IssueSubject::Admin { name, role } => ca::Subject::User {
                    name,
                    role: fleet_proto::identity::Role::parse(&role).expect("clap checked the role"),
                },
            };
            let days = days.unwrap_or(subject.default_days());
            let issued = ca::issue(&dir, &subject, days, keep_previous)?;
            outln!(
                "issued {} and {} (valid {days} days)",
                issued.cert.display(),
                issued.key.display()
            );
            if let Some(serial) = issued.superseded {
                outln!(
                    "revoked the certificate it replaces (serial {serial}) in {}",
                    dir.join(ca::CA_CRL).display()
                );
            }
        }
        Command::Ca {
            command: CaCommand::SigningKey { dir, name },
        } => {
            let line = ca::signing_key(&dir, &name)?;
            outln!(
                "created {} (the hub's --signing-key) and {} (spokes' --trust-keys):\n{line}",
                dir.join(format!("{name}.key")).display(),
                dir.join(format!("{name}.pub")).display()
            );
        }
        Command::Bundle {
            command:
                BundleCommand::Export {
                    cluster,
                    out,
                    signing_key,
                    rev,
                    repo,
                    hub,
                },
        } => {
            let source = match &signing_key {
                Some(key) => bundle::Source::Offline {
                    repo: &repo.path,
                    rev: &rev,
                    key,
                },
                None => bundle::Source::Hub(&hub),
            };
            let revision = bundle::export(&cluster, source, &out)?;
            outln!(
                "wrote {} ({cluster} at {})",
                out.display(),
                &revision[..revision.len().min(8)]
            );
        }
        Command::Ca {
            command: CaCommand::Revoke { dir, cert },
        } => {
            let who = ca::revoke(&dir, &cert)?;
            outln!(
                "revoked {who} ({}); {} lists {} certificate(s)",
                cert.display(),
                dir.join(ca::CA_CRL).display(),
                ca::revoked(&dir)?.len()
            );
        }
        Command::Render { repo, cluster, rev } => return render(&repo, &cluster, &rev),
        Command::Spoke { command } => k8s::run(command)?,
        Command::Rollout { command } => {
            let (env, action, reason, hub, output) = match command {
                RolloutCommand::Status { env, output, hub } => (env, "status", None, hub, output),
                RolloutCommand::Pause { env, reason, hub } => {
                    (env, "pause", reason, hub, "table".into())
                }
                RolloutCommand::Resume { env, reason, hub } => {
                    (env, "resume", reason, hub, "table".into())
                }
                RolloutCommand::Abort { env, reason, hub } => {
                    (env, "abort", reason, hub, "table".into())
                }
            };
            let r = if action == "status" {
                rollout::get(&hub, &env)?
            } else {
                rollout::control(&hub, &env, action, reason.as_deref().unwrap_or(""))?
            };
            if output == "json" {
                outln!("{}", serde_json::to_string_pretty(&rollout::to_json(&r))?);
            } else {
                out!("{}", rollout::table(&r));
            }
        }
        Command::Status {
            cluster,
            hub,
            output,
            watch,
            interval,
        } => loop {
            let shown = show_status(&hub, cluster.as_deref(), &output);
            if !watch {
                shown?;
                break;
            }
            if let Err(e) = shown {
                outln!("fleetctl: {e:#}");
            }
            std::thread::sleep(interval);
            // Clear the screen for the next picture, as `watch` does.
            out!("\x1b[H\x1b[2J");
        },
        Command::Refresh { hub } => {
            let r = runtime().block_on(async { client::Admin::connect(&hub)?.refresh().await })?;
            outln!(
                "fetch scheduled (hub was at {})",
                if r.revision.is_empty() {
                    "no revision yet"
                } else {
                    &r.revision
                }
            );
        }
        Command::Sync {
            cluster,
            app,
            force,
            reason,
            hub,
        } => {
            let r = runtime().block_on(async {
                client::Admin::connect(&hub)?
                    .sync(pb::SyncRequest {
                        cluster: cluster.clone(),
                        app: app.clone().unwrap_or_default(),
                        force,
                        reason: reason.clone().unwrap_or_default(),
                    })
                    .await
            })?;
            let rev = r.revision.map(|c| c.id).unwrap_or_default();
            outln!(
                "released {} to {cluster}{}",
                &rev[..rev.len().min(8)],
                if force { " (forced)" } else { "" }
            );
        }
        Command::Promote {
            apps,
            from,
            to,
            all,
            dry_run,
            force,
            branch,
            push,
            author,
            add_pins,
            seen_within,
            repo,
            hub,
        } => {
            if apps.is_empty() && !all {
                return Err(release::bad("name the apps to promote, or --all"));
            }
            let status = if !force && !dry_run || hub.given() {
                Some(runtime().block_on(async {
                    client::Admin::connect(&hub)
                        .context("the promotion gate asks the hub (or pass --force)")?
                        .status()
                        .await
                })?)
            } else {
                None
            };
            let args = release::PromoteArgs {
                apps,
                all,
                from: &from,
                to: &to,
                force,
                dry_run,
                branch,
                push,
                author,
                add_pins,
                gate: release::GateOptions {
                    seen_within,
                    now: now_unix(),
                    soak: None,
                },
            };
            let out = release::promote(&repo.path, args, status.as_ref())?;
            out!("{}", out.report);
        }
        Command::Rollback {
            target,
            to,
            reason,
            author,
            repo,
            hub,
        } => {
            let rollout_paused = if hub.given() {
                rollout::paused_reason(&hub, &repo.path, &target)?
            } else {
                None
            };
            let out = release::rollback(
                &repo.path,
                release::RollbackArgs {
                    target: &target,
                    to: to.as_deref(),
                    author: author.as_deref(),
                    reason: reason.as_deref(),
                    rollout_paused,
                },
            )?;
            out!("{}", out.report);
        }
        Command::Unfreeze {
            env,
            reason,
            author,
            repo,
        } => {
            let out = release::unfreeze(&repo.path, &env, author.as_deref(), reason.as_deref())?;
            out!("{}", out.report);
        }
        Command::Approve {
            rev,
            from,
            to,
            reason,
            author,
            repo,
        } => {
            out!(
                "{}",
                policy::approve(
                    &repo.path,
                    &rev,
                    &from,
                    &to,
                    author.as_deref(),
                    reason.as_deref()
                )?
            );
        }
        Command::Reject {
            rev,
            reason,
            author,
            repo,
        } => {
            out!(
                "{}",
                policy::reject(&repo.path, &rev, author.as_deref(), reason.as_deref())?
            );
        }
        Command::History {
            target,
            limit,
            repo,
            hub,
        } => {
            let events = if hub.given() {
                Some(runtime().block_on(async {
                    client::Admin::connect(&hub)?
                        .history(pb::GetHistoryRequest {
                            cluster: String::new(),
                        })
                        .await
                })?)
            } else {
                None
            };
            let entries = history::history(&repo.path, &target, limit, events.as_ref())?;
            let actions = match &events {
                Some(ev) => history::actions(&repo.path, &target, ev)?,
                None => Vec::new(),
            };
            out!("{}", history::print(&entries, &actions, events.is_some()));
        }
        Command::Diff {
            cluster: live_cluster,
            app,
            from: None,
            hub,
            ..
        } => {
            let cluster = live_cluster.context(
                "name the cluster for a live diff (or give --from REV for an offline one)",
            )?;
            let r = runtime().block_on(async {
                client::Admin::connect(&hub)?
                    .live_diff(pb::LiveDiffRequest {
                        cluster: cluster.clone(),
                        app: app.clone().unwrap_or_default(),
                    })
                    .await
            })?;
            if !r.error.is_empty() {
                anyhow::bail!("the spoke of {cluster} could not diff: {}", r.error);
            }
            if !r.held_reason.is_empty() {
                outln!(
                    "cluster {cluster}: compared with the latest commit {}, held from the spoke ({})",
                    &r.revision[..r.revision.len().min(8)],
                    r.held_reason
                );
            }
            if r.diffs.is_empty() {
                outln!("cluster {cluster}: in sync, nothing would change");
            } else {
                outln!(
                    "cluster {cluster}: {} object(s) would change",
                    r.diffs.len()
                );
                for d in &r.diffs {
                    outln!("# {} {} (app {})", d.change, d.id, d.app);
                    out!("{}", d.text);
                }
            }
        }
        Command::Diff {
            from: Some(from),
            to,
            cluster: positional,
            only,
            repo,
            ..
        } => {
            let cluster = only.or(positional);
            let a = release::load(&repo.path, &from)?;
            let b = release::load(&repo.path, &to)?;
            let (sa, sb) = (release::render_all(&a)?, release::render_all(&b)?);
            let mut names: Vec<&String> = sa.keys().chain(sb.keys()).collect();
            names.sort();
            names.dedup();
            if let Some(c) = &cluster {
                if !names.iter().any(|n| *n == c) {
                    anyhow::bail!("cluster {c:?} is in neither revision");
                }
            }
            for name in names
                .into_iter()
                .filter(|n| cluster.as_ref().is_none_or(|c| c == *n))
            {
                let diffs = fleet_render::diff::state_diff(sa.get(name), sb.get(name));
                if diffs.is_empty() {
                    continue;
                }
                outln!("cluster {name}: {} object(s) differ", diffs.len());
                for d in diffs {
                    out!("{}", d.text);
                }
            }
        }
        Command::Demo {
            dir,
            exit_when_converged,
            timeout,
        } => {
            let ok = runtime().block_on(demo::run(demo::DemoArgs {
                dir,
                exit_when_converged,
                timeout: Duration::from_secs(timeout),
            }))?;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders offline through the same code the hub runs, so the manifests are
/// byte-identical to what the hub serves.
fn render(repo: &std::path::Path, cluster: &str, rev: &str) -> anyhow::Result<ExitCode> {
    let r = fleet_hub::repo::Repo::open(fleet_hub::repo::Source::Local(repo.to_path_buf()))?;
    let commit = r.resolve(rev)?;
    let tree = r.tree_at(&commit.id)?;
    let mut renderer = fleet_hub::renderer::Renderer::new();
    let out = renderer
        .render(&tree, &commit, &())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(errs) = out.cluster_errors.get(cluster) {
        for e in errs {
            eprintln!("fleetctl: error: {}: {}", e.file, e.reason);
        }
        return Ok(ExitCode::FAILURE);
    }
    let Some(state) = out.states.get(cluster) else {
        let known: Vec<&str> = out.states.keys().map(String::as_str).collect();
        eprintln!(
            "fleetctl: error: cluster {cluster:?} is not in the fleet repo at {rev}; clusters: {}",
            known.join(", ")
        );
        return Ok(ExitCode::from(64));
    };
    out!("{}", state.to_yaml_stream());
    let mut failed = false;
    for e in state.errors() {
        eprintln!("fleetctl: error: app {}: {}: {}", e.app, e.file, e.reason);
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
