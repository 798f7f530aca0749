//! `fleetctl promote`, `rollback` and `unfreeze`: release management as Git
//! commits. Release pins are the `images` entries of an app's environment
//! kustomization (`apps/<app>/overlays/<env>/kustomization.yaml`), or of a
//! cluster override (`apps/<app>/clusters/<cluster>/kustomization.yaml`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};
use fleet_hub::renderer::Renderer;
use fleet_hub::repo::{GitTree, Repo, Source};
use fleet_proto::v1 as pb;
use fleet_render::model::{EnvironmentSpec, Fleet, Freeze};
use fleet_render::pins::{self, ImagePin, PinChange};
use fleet_render::{CommitMeta, DesiredState};
use gix::ObjectId;

use crate::gitops::{Dest, FileChange, Prepared, Workspace};

/// Bad input (an unknown environment, app or cluster, a no-op request):
/// `fleetctl` exits 64 on it.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// Every environment of the fleet repo: `env` labels and `environments/*.yaml`.
pub fn environments(f: &Fleet) -> BTreeSet<String> {
    f.clusters
        .values()
        .filter_map(|c| c.labels.get("env").cloned())
        .chain(f.environments.keys().cloned())
        .chain(f.env_errors.keys().cloned())
        .collect()
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| n.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// An environment that exists, or bad input naming it and listing those that do.
pub fn require_env(f: &Fleet, env: &str, what: &str) -> anyhow::Result<()> {
    if environments(f).contains(env) {
        return Ok(());
    }
    Err(bad(format!(
        "{what}: no environment {env:?} in the fleet repo; environments: {}",
        list(environments(f))
    )))
}

/// Clusters labelled `env: <env>`.
pub fn clusters_of_env<'a>(f: &'a Fleet, env: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    f.clusters
        .values()
        .filter(move |c| c.labels.get("env").map(String::as_str) == Some(env))
        .map(|c| &c.name)
}

/// One line of a commit trailer value.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn overlay_file(app: &str, env: &str) -> String {
    format!("apps/{app}/overlays/{env}/kustomization.yaml")
}

pub fn cluster_file(app: &str, cluster: &str) -> String {
    format!("apps/{app}/clusters/{cluster}/kustomization.yaml")
}

pub struct Loaded {
    pub repo: Repo,
    pub head: CommitMeta,
    pub tree: GitTree,
    pub fleet: Fleet,
}

pub fn load(path: &std::path::Path, rev: &str) -> anyhow::Result<Loaded> {
    let repo = Repo::open(Source::Local(path.to_path_buf()))?;
    let head = repo.resolve(rev)?;
    let tree = repo.tree_at(&head.id)?;
    let fleet = Fleet::load(&tree).map_err(|e| anyhow::anyhow!("{}: {}", e.file, e.reason))?;
    Ok(Loaded {
        repo,
        head,
        tree,
        fleet,
    })
}

pub fn render_all(l: &Loaded) -> anyhow::Result<BTreeMap<String, DesiredState>> {
    Ok(render_full(l)?.states)
}

pub fn render_full(l: &Loaded) -> anyhow::Result<fleet_hub::renderer::FleetRender> {
    Renderer::new()
        .render(&l.tree, &l.head, &())
        .map_err(|e| anyhow::anyhow!("{}: {}", e.file, e.reason))
}

fn read(tree: &GitTree, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
    use fleet_render::source::FileSource;
    Ok(tree.read(path)?.map(|b| b.to_vec()))
}

pub struct PromoteArgs<'a> {
    pub apps: Vec<String>,
    pub all: bool,
    pub from: &'a str,
    pub to: &'a str,
    pub force: bool,
    pub dry_run: bool,
    pub branch: Option<String>,
    pub push: Option<String>,
    pub author: Option<String>,
    /// Add a pin to a target overlay that has none for an image.
    pub add_pins: bool,
    pub gate: GateOptions,
}

/// How strict the gate is about connections.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    /// A disconnected cluster passes if its spoke was seen this many seconds ago at most.
    pub seen_within: Option<i64>,
    /// Now, in Unix seconds.
    pub now: i64,
    /// The target's policy: how long each source cluster must have been
    /// healthy at the revision, and the environment asking.
    pub soak: Option<(i64, String)>,
}

/// One app's planned promotion.
struct Plan {
    app: String,
    file: String,
    old: String,
    new: String,
    changes: Vec<PinChange>,
}

/// The source pins of each app at the gated revision.
fn source_pins(
    l: &Loaded,
    apps: &[String],
    from: &str,
) -> anyhow::Result<Vec<(String, Vec<ImagePin>)>> {
    let mut out = Vec::new();
    for app in apps {
        let src_file = overlay_file(app, from);
        let Some(src) = read(&l.tree, &src_file)? else {
            bail!(
                "app {app} has no {src_file}: nothing marks what {from} runs (see docs/promotion.md)"
            );
        };
        out.push((
            app.clone(),
            pins::images_of(&src_file, &src).map_err(anyhow::Error::msg)?,
        ));
    }
    Ok(out)
}

/// The promotion of `src` pins onto the target overlays as they are in `read_dst`.
fn plan(
    src: &[(String, Vec<ImagePin>)],
    to: &str,
    add_pins: bool,
    mut read_dst: impl FnMut(&str) -> anyhow::Result<Option<Vec<u8>>>,
) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for (app, src_pins) in src {
        let dst_file = overlay_file(app, to);
        let Some(dst) = read_dst(&dst_file)? else {
            bail!("app {app} has no {dst_file} to promote into; create the overlay first");
        };
        let dst_pins = pins::images_of(&dst_file, &dst).map_err(anyhow::Error::msg)?;
        let (new_pins, changes) = pins::promote(&dst_pins, src_pins);
        if changes.is_empty() {
            continue;
        }
        let missing: Vec<&str> = changes
            .iter()
            .filter(|c| c.from.is_none())
            .map(|c| c.name.as_str())
            .collect();
        if !missing.is_empty() && !add_pins {
            return Err(bad(format!(
                "{dst_file} has no pin for image {}: promoting would add one; pass --add-pins to add it",
                missing.join(", ")
            )));
        }
        let old = String::from_utf8(dst).with_context(|| format!("{dst_file} is not UTF-8"))?;
        let new = pins::rewrite_in_place(&dst_file, &old, &dst_pins, &new_pins)
            .map_err(anyhow::Error::msg)?;
        plans.push(Plan {
            app: app.clone(),
            file: dst_file,
            old,
            new,
            changes,
        });
    }
    Ok(plans)
}

/// The promotion gate: every cluster of `env` is connected (or was seen
/// within the stated bound), runs exactly what the source revision renders
/// for it, is synced, and has no failed, drifted, degraded or progressing
/// object. One line per failing cluster, with every reason.
pub fn gate(
    l: &Loaded,
    status: &pb::FleetStatus,
    env: &str,
    opts: &GateOptions,
) -> anyhow::Result<Vec<String>> {
    let rendered = render_full(l)?;
    let mut problems = Vec::new();
    let clusters: Vec<&String> = clusters_of_env(&l.fleet, env).collect();
    if clusters.is_empty() {
        problems.push(format!("no cluster is labelled env={env}"));
    }
    let rev = short(&l.head.id);
    for name in clusters {
        let Some(c) = status.clusters.iter().find(|c| &c.name == name) else {
            problems.push(format!("{name}: unknown to the hub"));
            continue;
        };
        let mut why: Vec<String> = Vec::new();
        if !c.connected {
            let ago = opts.now - c.last_seen;
            let within = opts
                .seen_within
                .is_some_and(|b| c.last_seen > 0 && ago <= b);
            if !within {
                let seen = if c.last_seen == 0 {
                    "never seen".to_string()
                } else {
                    format!("last seen {}s ago", ago.max(0))
                };
                let bound = match opts.seen_within {
                    Some(b) => format!("the gate allows {b}s"),
                    None => {
                        "the gate needs it connected; --seen-within SECONDS allows a bound".into()
                    }
                };
                why.push(format!("not connected ({seen}; {bound})"));
            }
        }
        let errors: Vec<String> = rendered
            .cluster_errors
            .get(name)
            .into_iter()
            .flatten()
            .chain(
                rendered
                    .states
                    .get(name)
                    .into_iter()
                    .flat_map(|s| s.errors()),
            )
            .map(|e| {
                if e.app.is_empty() {
                    format!("{}: {}", e.file, e.reason)
                } else {
                    format!("app {}: {}: {}", e.app, e.file, e.reason)
                }
            })
            .collect();
        let want = rendered.states.get(name).map(|s| s.digest.as_str());
        if !errors.is_empty() {
            why.push(format!(
                "the source revision {rev} does not render for it: {}",
                errors.join("; ")
            ));
        } else if want != Some(c.applied_digest.as_str()) {
            let runs = c.applied.as_ref().map(|a| a.id.as_str()).unwrap_or("");
            if runs.is_empty() {
                why.push(format!(
                    "has applied nothing yet, not the source revision {rev}"
                ));
            } else if runs == l.head.id {
                why.push(format!(
                    "applied {rev} but not what {rev} renders (digest {}, not {})",
                    short(&c.applied_digest),
                    short(want.unwrap_or(""))
                ));
            } else {
                why.push(format!(
                    "runs {}, not the source revision {rev}",
                    short(runs)
                ));
            }
        } else if c.sync != "synced" {
            why.push(c.sync.replace('_', " "));
        }
        for r in c.resources.iter().filter(|r| {
            r.state == "failed"
                || r.state == "drifted"
                || r.health == "degraded"
                || r.health == "progressing"
        }) {
            let (what, msg) = if r.state == "failed" || r.state == "drifted" {
                (r.state.as_str(), r.message.as_str())
            } else {
                (r.health.as_str(), r.health_message.as_str())
            };
            why.push(format!("{} is {what}: {msg}", r.id));
        }
        if let Some((soak, to)) = &opts.soak {
            if why.is_empty() {
                let healthy_for = if c.healthy_since == 0 {
                    0
                } else {
                    opts.now - c.healthy_since
                };
                if c.healthy_since == 0 || healthy_for < *soak {
                    why.push(format!(
                        "healthy at the revision for {}s; the promotion policy of {to} needs {soak}s (soak)",
                        healthy_for.max(0)
                    ));
                }
            }
        }
        if !why.is_empty() {
            problems.push(format!("{name}: {}", why.join("; ")));
        }
    }
    Ok(problems)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

pub struct Outcome {
    pub report: String,
}

fn frozen_at(
    repo: &gix::Repository,
    parent: ObjectId,
    env: &str,
) -> anyhow::Result<Option<Freeze>> {
    let path = format!("environments/{env}.yaml");
    let Some(bytes) = crate::gitops::read_at(repo, parent, &path)? else {
        return Ok(None);
    };
    let spec: EnvironmentSpec =
        fleet_render::yaml::parse_one(&path, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(spec.frozen)
}

fn frozen_error(env: &str, f: &Freeze) -> anyhow::Error {
    anyhow::anyhow!(
        "environment {env} is frozen ({}, by {}): run `fleetctl unfreeze {env} --reason ...` first",
        f.reason,
        f.by
    )
}

pub fn promote(
    repo_path: &std::path::Path,
    a: PromoteArgs<'_>,
    status: Option<&pb::FleetStatus>,
) -> anyhow::Result<Outcome> {
    let l = load(repo_path, "HEAD")?;
    require_env(&l.fleet, a.from, "--from")?;
    require_env(&l.fleet, a.to, "--to")?;
    if a.from == a.to {
        return Err(bad(format!(
            "--from and --to are both {}: an environment cannot be promoted into itself",
            a.to
        )));
    }
    if let Some(f) = l
        .fleet
        .environments
        .get(a.to)
        .and_then(|e| e.frozen.as_ref())
    {
        return Err(frozen_error(a.to, f));
    }
    crate::policy::check_order(&l.fleet, a.from, a.to)?;
    let apps: Vec<String> = if a.all {
        l.fleet
            .apps
            .keys()
            .filter(|app| {
                l.tree_has(&overlay_file(app, a.from)) && l.tree_has(&overlay_file(app, a.to))
            })
            .cloned()
            .collect()
    } else {
        for app in &a.apps {
            if !l.fleet.apps.contains_key(app) {
                return Err(bad(format!(
                    "no app {app:?} in the fleet repo; apps: {}",
                    list(l.fleet.apps.keys())
                )));
            }
        }
        a.apps.clone()
    };
    let src = source_pins(&l, &apps, a.from)?;
    let plans = plan(&src, a.to, a.add_pins, |p| read(&l.tree, p))?;
    if plans.is_empty() {
        return Ok(Outcome {
            report: format!(
                "nothing to promote: {} already runs what {} runs\n",
                a.to, a.from
            ),
        });
    }
    let ws = Workspace::open(repo_path)?;
    let head_id = ObjectId::from_hex(l.head.id.as_bytes())?;
    let moving: Vec<ImagePin> = plans
        .iter()
        .flat_map(|p| p.changes.iter().map(|c| c.to.clone()))
        .collect();
    let approvers = crate::policy::check(&ws.repo, head_id, &l.fleet, a.from, a.to, &src, &moving)?;
    let mut gate_opts = a.gate;
    gate_opts.soak = l
        .fleet
        .environments
        .get(a.to)
        .and_then(|e| e.promotion.as_ref())
        .and_then(|p| p.soak.as_deref())
        .and_then(|s| fleet_render::model::parse_duration(s).ok())
        .filter(|s| *s > 0)
        .map(|s| (s, a.to.to_string()));
    if !a.force {
        let status = status.context("the promotion gate asks the hub: give --hub, --ca, --cert and --key (or FLEET_*), or --force to skip it")?;
        let problems = gate(&l, status, a.from, &gate_opts)?;
        if !problems.is_empty() {
            bail!(
                "promotion refused: {} is not connected, synced and healthy at {}:\n  {}\n(use --force to promote anyway)",
                a.from,
                short(&l.head.id),
                problems.join("\n  ")
            );
        }
    }
    let message_for = |plans: &[Plan]| {
        let summary: Vec<String> = plans
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.app,
                    p.changes
                        .iter()
                        .map(PinChange::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        let mut message = if plans.len() == 1 {
            format!("{}, from {} at {}\n", summary[0], a.from, short(&l.head.id))
        } else {
            format!(
                "promote {} apps from {} to {} at {}\n\n{}\n",
                plans.len(),
                a.from,
                a.to,
                short(&l.head.id),
                summary.join("\n")
            )
        };
        message.push_str(&format!(
            "\nPromoted-From: {}\nPromoted-To: {}\nPromoted-Revision: {}\n",
            a.from, a.to, l.head.id
        ));
        for p in plans {
            message.push_str(&format!("Promoted-App: {}\n", p.app));
        }
        for who in &approvers {
            message.push_str(&format!("Approved-By: {who}\n"));
        }
        if a.force {
            message.push_str("Promotion-Forced: true\n");
        }
        message
    };
    if a.dry_run {
        let message = message_for(&plans);
        let changes: Vec<FileChange> = plans
            .iter()
            .map(|p| (p.file.clone(), Some(p.new.clone().into_bytes())))
            .collect();
        let mut report = format!("would commit:\n\n{}\n", indent(&message));
        for p in &plans {
            report.push_str(&fleet_render::diff::unified(
                &p.old,
                &p.new,
                &format!("a/{}", p.file),
                &format!("b/{}", p.file),
            ));
        }
        report.push_str(&rendered_diff(repo_path, &l, &changes, a.to)?);
        return Ok(Outcome { report });
    }
    // The commit: the gated revision's pins onto the target as it is at the
    // branch tip of each attempt (another promotion may have landed since).
    let to = a.to.to_string();
    let add_pins = a.add_pins;
    let prepare = |repo: &gix::Repository, parent: ObjectId| -> anyhow::Result<Option<Prepared>> {
        if let Some(f) = frozen_at(repo, parent, &to)? {
            return Err(frozen_error(&to, &f));
        }
        let plans = plan(&src, &to, add_pins, |p| {
            crate::gitops::read_at(repo, parent, p)
        })?;
        if plans.is_empty() {
            return Ok(None);
        }
        Ok(Some(Prepared {
            changes: plans
                .iter()
                .map(|p| (p.file.clone(), Some(p.new.clone().into_bytes())))
                .collect(),
            message: message_for(&plans),
        }))
    };
    let mut report = String::new();
    let done = commit_and_push(
        repo_path,
        prepare,
        a.author.as_deref(),
        a.branch,
        a.push,
        &mut report,
    )?;
    if !done {
        report.push_str(&format!(
            "nothing to promote: {} already runs what {} runs (a concurrent promotion landed first)\n",
            a.to, a.from
        ));
    }
    Ok(Outcome { report })
}

/// Commits (retrying on a lost race) and pushes. False when `prepare` found
/// nothing to do.
fn commit_and_push(
    repo_path: &std::path::Path,
    prepare: impl FnMut(&gix::Repository, ObjectId) -> anyhow::Result<Option<Prepared>>,
    author: Option<&str>,
    branch: Option<String>,
    push: Option<String>,
    report: &mut String,
) -> anyhow::Result<bool> {
    let ws = Workspace::open(repo_path)?;
    let sig = ws.signature(author)?;
    let dest = match &branch {
        Some(b) => Dest::NewBranch(b.clone()),
        None => Dest::CurrentBranch,
    };
    let remote = match (&branch, push) {
        (Some(_), p) => Some(p.unwrap_or_else(|| "origin".into())),
        (None, p) => p,
    };
    let mut note = None;
    let new_branch = branch.is_some();
    let committed = ws.commit_with(&dest, &sig, prepare, |ws, parent, id, refname| {
        let Some(remote) = &remote else { return Ok(()) };
        if new_branch && ws.repo.find_remote(remote.as_str()).is_err() {
            note = Some(format!("no remote {remote:?}: branch left local\n"));
            return Ok(());
        }
        let expected = if new_branch { None } else { Some(parent) };
        ws.push(remote, refname, id, expected)?;
        note = Some(format!("pushed {refname} to {remote}\n"));
        Ok(())
    })?;
    let Some(c) = committed else { return Ok(false) };
    report.push_str(&format!(
        "committed {} on {}: {}\n",
        c.id.to_hex_with_len(8),
        c.refname,
        c.message.lines().next().unwrap_or("")
    ));
    if let Some(n) = note {
        report.push_str(&n);
    }
    Ok(true)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// What the change does to the rendered state of every cluster of `env`.
fn rendered_diff(
    repo_path: &std::path::Path,
    l: &Loaded,
    changes: &[FileChange],
    env: &str,
) -> anyhow::Result<String> {
    let ws = Workspace::open(repo_path)?;
    let base = ObjectId::from_hex(l.head.id.as_bytes())?;
    let tree = ws.write_tree(base, changes)?;
    let sig = gix::actor::Signature {
        name: "dry-run".into(),
        email: "dry-run@fleet.invalid".into(),
        time: gix::date::Time {
            seconds: 0,
            offset: 0,
        },
    };
    let commit = ws.write_commit(base, tree, "dry run", &sig)?;
    let after = Loaded {
        tree: l.repo.tree_at(&commit.to_string())?,
        head: CommitMeta {
            id: commit.to_string(),
            ..Default::default()
        },
        fleet: Fleet::default(),
        repo: Repo::open(Source::Local(repo_path.to_path_buf()))?,
    };
    let (old, new) = (render_all(l)?, render_all(&after)?);
    let mut out = String::new();
    for (name, c) in l.fleet.clusters.iter() {
        if c.labels.get("env").map(String::as_str) != Some(env) {
            continue;
        }
        let diffs = fleet_render::diff::state_diff(old.get(name), new.get(name));
        out.push_str(&format!(
            "\ncluster {name}: {} object(s) change\n",
            diffs.len()
        ));
        for d in diffs {
            out.push_str(&d.text);
        }
    }
    Ok(out)
}

impl Loaded {
    fn tree_has(&self, path: &str) -> bool {
        read(&self.tree, path).ok().flatten().is_some()
    }
}

/// The commit before the last promotion into `env`, walking first parents from HEAD.
pub fn before_last_promotion(ws: &Workspace, env: &str) -> anyhow::Result<ObjectId> {
    let mut id = ws.head_commit()?;
    for _ in 0..10_000 {
        let c = ws.repo.find_commit(id)?;
        let msg = c.message_raw()?.to_string();
        let parent = c.parent_ids().next().map(|p| p.detach());
        if msg
            .lines()
            .any(|l| l.trim() == format!("Promoted-To: {env}"))
        {
            return parent.context("the promotion commit has no parent");
        }
        match parent {
            Some(p) => id = p,
            None => break,
        }
    }
    Err(bad(format!(
        "no promotion into {env} in the history: give --to REV"
    )))
}

pub struct RollbackArgs<'a> {
    pub target: &'a str,
    pub to: Option<&'a str>,
    pub author: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// Why the hub's rollout of the environment is paused, when it is.
    pub rollout_paused: Option<String>,
}

pub fn rollback(repo_path: &std::path::Path, a: RollbackArgs<'_>) -> anyhow::Result<Outcome> {
    let target = a.target;
    let l = load(repo_path, "HEAD")?;
    let ws = Workspace::open(repo_path)?;
    // ENV, or CLUSTER (its overrides, and its environment is frozen).
    let (env, files): (String, Vec<String>) = if let Some(c) = l.fleet.clusters.get(target) {
        let env = c.labels.get("env").cloned().ok_or_else(|| {
            bad(format!(
                "cluster {target} has no env label: there is no environment to freeze"
            ))
        })?;
        let files: Vec<String> = l
            .fleet
            .apps
            .keys()
            .map(|a| cluster_file(a, target))
            .filter(|f| l.tree_has(f))
            .collect();
        if files.is_empty() {
            return Err(bad(format!(
                "cluster {target} has no overrides (apps/<app>/clusters/{target}/kustomization.yaml): nothing to roll back there; to roll back its environment run `fleetctl rollback {env}`"
            )));
        }
        (env, files)
    } else if environments(&l.fleet).contains(target) {
        (
            target.to_string(),
            l.fleet
                .apps
                .keys()
                .map(|a| overlay_file(a, target))
                .collect(),
        )
    } else {
        return Err(bad(format!(
            "{target:?} is neither a cluster nor an environment of the fleet repo; environments: {}; clusters: {}",
            list(environments(&l.fleet)),
            list(l.fleet.clusters.keys())
        )));
    };
    let frozen = l
        .fleet
        .environments
        .get(&env)
        .and_then(|e| e.frozen.clone());
    let break_glass = match (&frozen, &a.rollout_paused) {
        (Some(f), _) => Some(format!("{env} is frozen ({})", one_line(&f.reason))),
        (None, Some(p)) => Some(format!("the rollout of {env} is paused ({})", one_line(p))),
        (None, None) => None,
    };
    if let (Some(why), None) = (&break_glass, a.reason) {
        return Err(bad(format!(
            "{why}: a rollback now is a break-glass action; give --reason to record why"
        )));
    }
    let to_id = match a.to {
        Some(rev) => ObjectId::from_hex(l.repo.resolve(rev)?.id.as_bytes())?,
        None => before_last_promotion(&ws, &env)?,
    };
    let to_short = to_id.to_hex_with_len(8).to_string();
    let sig = ws.signature(a.author)?;
    let by = format!("{} <{}>", sig.name, sig.email);
    let reason = a
        .reason
        .map(one_line)
        .unwrap_or_else(|| format!("rollback of {target} to {to_short}"));
    let prepare = |repo: &gix::Repository, parent: ObjectId| -> anyhow::Result<Option<Prepared>> {
        let mut changes: Vec<FileChange> = Vec::new();
        let mut moved = Vec::new();
        for file in &files {
            let (Some(now), Some(then)) = (
                crate::gitops::read_at(repo, parent, file)?,
                crate::gitops::read_at(repo, to_id, file)?,
            ) else {
                continue;
            };
            let now_pins = pins::images_of(file, &now).map_err(anyhow::Error::msg)?;
            let then_pins = pins::images_of(file, &then).map_err(anyhow::Error::msg)?;
            let (new_pins, ch) = pins::promote(&now_pins, &then_pins);
            if ch.is_empty() {
                continue;
            }
            let app = file.split('/').nth(1).unwrap_or("").to_string();
            moved.push(format!(
                "{app}: {}",
                ch.iter()
                    .map(PinChange::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let text = String::from_utf8(now)?;
            let new = pins::rewrite_in_place(file, &text, &now_pins, &new_pins)
                .map_err(anyhow::Error::msg)?;
            changes.push((file.clone(), Some(new.into_bytes())));
        }
        if changes.is_empty() {
            return Err(bad(format!(
                "nothing to roll back: the release pins of {target} at {to_short} are those it has now"
            )));
        }
        changes.push(freeze_change(
            repo,
            parent,
            &env,
            Some(Freeze {
                reason: reason.clone(),
                by: by.clone(),
            }),
        )?);
        let mut message = format!("rollback {target} to {to_short}: {}\n", moved.join("; "));
        message.push_str(&format!(
            "\n{reason}\n\nFreezes {env} until `fleetctl unfreeze {env}`.\n\nRolled-Back: {target}\nRolled-Back-To: {to_id}\nFrozen: {env}\nReason: {reason}\n"
        ));
        if let Some(b) = &break_glass {
            message.push_str(&format!("Break-Glass: {b}\n"));
        }
        Ok(Some(Prepared { changes, message }))
    };
    let mut report = String::new();
    commit_and_push(repo_path, prepare, a.author, None, None, &mut report)?;
    Ok(Outcome { report })
}

pub fn unfreeze(
    repo_path: &std::path::Path,
    env: &str,
    author: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<Outcome> {
    let l = load(repo_path, "HEAD")?;
    require_env(&l.fleet, env, "unfreeze")?;
    let env_s = env.to_string();
    let reason = reason.map(one_line);
    let prepare = |repo: &gix::Repository, parent: ObjectId| -> anyhow::Result<Option<Prepared>> {
        if frozen_at(repo, parent, &env_s)?.is_none() {
            return Err(bad(format!("{env_s} is not frozen: nothing to unfreeze")));
        }
        let change = freeze_change(repo, parent, &env_s, None)?;
        let mut message = match &reason {
            Some(r) => format!("unfreeze {env_s}: {r}\n\nUnfrozen: {env_s}\nReason: {r}\n"),
            None => format!("unfreeze {env_s}\n\nUnfrozen: {env_s}\n"),
        };
        if !message.ends_with('\n') {
            message.push('\n');
        }
        Ok(Some(Prepared {
            changes: vec![change],
            message,
        }))
    };
    let mut report = String::new();
    commit_and_push(repo_path, prepare, author, None, None, &mut report)?;
    Ok(Outcome { report })
}

/// `environments/<env>.yaml` at `parent` with `frozen` set or removed; every
/// other line stays (a new file is written in canonical form).
fn freeze_change(
    repo: &gix::Repository,
    parent: ObjectId,
    env: &str,
    frozen: Option<Freeze>,
) -> anyhow::Result<FileChange> {
    let path = format!("environments/{env}.yaml");
    let text = match crate::gitops::read_at(repo, parent, &path)? {
        Some(b) => String::from_utf8(b).with_context(|| format!("{path} is not UTF-8"))?,
        None => String::new(),
    };
    if !text.is_empty() {
        fleet_render::yaml::parse_one::<EnvironmentSpec>(&path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}; fix it first"))?;
    }
    let new = match &frozen {
        Some(f) => {
            let value = serde_json::to_value(f)?;
            if text.is_empty() {
                fleet_render::yaml::to_canonical(&serde_json::json!({ "frozen": value }))
            } else {
                fleet_render::yaml::replace_top_level_key(&text, "frozen", &value)
            }
        }
        None => fleet_render::yaml_edit::remove_top_level_key(&text, "frozen"),
    };
    let back: EnvironmentSpec = if new.trim().is_empty() {
        EnvironmentSpec::default()
    } else {
        fleet_render::yaml::parse_one(&path, new.as_bytes())
            .map_err(|e| anyhow::anyhow!("editing {path}: {e}"))?
    };
    if back.frozen != frozen {
        bail!("editing {path} did not read back as intended; edit it by hand");
    }
    Ok((path, Some(new.into_bytes())))
}
