//! `fleetctl promote`, `rollback` and `unfreeze`: release management as Git
//! commits. Release pins are the `images` entries of an app's environment
//! kustomization (`apps/<app>/overlays/<env>/kustomization.yaml`), or of a
//! cluster override (`apps/<app>/clusters/<cluster>/kustomization.yaml`).

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use fleet_hub::renderer::Renderer;
use fleet_hub::repo::{GitTree, Repo, Source};
use fleet_proto::v1 as pb;
use fleet_render::model::{EnvironmentSpec, Fleet, Freeze};
use fleet_render::pins::{self, PinChange};
use fleet_render::{CommitMeta, DesiredState};
use gix::ObjectId;

use crate::gitops::{Dest, FileChange, Workspace};

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
    let r = Renderer::new()
        .render(&l.tree, &l.head, &BTreeMap::new())
        .map_err(|e| anyhow::anyhow!("{}: {}", e.file, e.reason))?;
    Ok(r.states)
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
}

/// One app's planned promotion.
struct Plan {
    app: String,
    file: String,
    old: String,
    new: String,
    changes: Vec<PinChange>,
}

fn plan(l: &Loaded, apps: &[String], from: &str, to: &str) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for app in apps {
        let src_file = overlay_file(app, from);
        let dst_file = overlay_file(app, to);
        let Some(src) = read(&l.tree, &src_file)? else {
            bail!(
                "app {app} has no {src_file}: nothing marks what {from} runs (see docs/promotion.md)"
            );
        };
        let Some(dst) = read(&l.tree, &dst_file)? else {
            bail!("app {app} has no {dst_file} to promote into");
        };
        let src_pins = pins::images_of(&src_file, &src).map_err(anyhow::Error::msg)?;
        let dst_pins = pins::images_of(&dst_file, &dst).map_err(anyhow::Error::msg)?;
        let (new_pins, changes) = pins::promote(&dst_pins, &src_pins);
        if changes.is_empty() {
            continue;
        }
        let old = String::from_utf8(dst).with_context(|| format!("{dst_file} is not UTF-8"))?;
        let new = pins::rewrite(&old, &new_pins);
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

/// The promotion gate: every cluster of `env` runs exactly what HEAD renders
/// for it, synced, with no failed or degraded object.
pub fn gate(l: &Loaded, status: &pb::FleetStatus, env: &str) -> anyhow::Result<Vec<String>> {
    let rendered = render_all(l)?;
    let mut problems = Vec::new();
    let clusters: Vec<&String> = l
        .fleet
        .clusters
        .values()
        .filter(|c| c.labels.get("env").map(String::as_str) == Some(env))
        .map(|c| &c.name)
        .collect();
    if clusters.is_empty() {
        problems.push(format!("no cluster is labelled env={env}"));
    }
    for name in clusters {
        let Some(c) = status.clusters.iter().find(|c| &c.name == name) else {
            problems.push(format!("{name}: unknown to the hub"));
            continue;
        };
        let want = rendered.get(name).map(|s| s.digest.as_str()).unwrap_or("");
        let runs = c.applied.as_ref().map(|a| a.id.as_str()).unwrap_or("");
        if c.applied_digest != want {
            problems.push(format!(
                "{name}: runs {} , not {} (the source revision)",
                short(runs),
                short(&l.head.id)
            ));
        } else if c.sync != "synced" {
            problems.push(format!("{name}: {}", c.sync.replace('_', " ")));
        }
        for r in c
            .resources
            .iter()
            .filter(|r| r.state == "failed" || r.health == "degraded" || r.state == "drifted")
        {
            problems.push(format!("{name}: {} is {}: {}", r.id, r.state, r.message));
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

pub fn promote(
    repo_path: &std::path::Path,
    a: PromoteArgs<'_>,
    status: Option<&pb::FleetStatus>,
) -> anyhow::Result<Outcome> {
    let l = load(repo_path, "HEAD")?;
    if let Some(f) = l
        .fleet
        .environments
        .get(a.to)
        .and_then(|e| e.frozen.as_ref())
    {
        bail!(
            "environment {} is frozen ({}, by {}): run `fleetctl unfreeze {}` first",
            a.to,
            f.reason,
            f.by,
            a.to
        );
    }
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
                bail!(
                    "no app {app:?} in the fleet repo; apps: {}",
                    l.fleet.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        a.apps.clone()
    };
    let plans = plan(&l, &apps, a.from, a.to)?;
    if plans.is_empty() {
        return Ok(Outcome {
            report: format!(
                "nothing to promote: {} already runs what {} runs\n",
                a.to, a.from
            ),
        });
    }
    if !a.force {
        let status = status.context("the promotion gate asks the hub: give --hub, --ca, --cert and --key (or FLEET_*), or --force to skip it")?;
        let problems = gate(&l, status, a.from)?;
        if !problems.is_empty() {
            bail!(
                "promotion refused: {} is not synced and healthy at {}:\n  {}\n(use --force to promote anyway)",
                a.from,
                short(&l.head.id),
                problems.join("\n  ")
            );
        }
    }
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
    for p in &plans {
        message.push_str(&format!("Promoted-App: {}\n", p.app));
    }
    if a.force {
        message.push_str("Promotion-Forced: true\n");
    }
    let changes: Vec<FileChange> = plans
        .iter()
        .map(|p| (p.file.clone(), Some(p.new.clone().into_bytes())))
        .collect();
    let mut report = String::new();
    if a.dry_run {
        report.push_str(&format!("would commit:\n\n{}\n", indent(&message)));
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
    commit_and_push(
        repo_path,
        &changes,
        &message,
        a.author.as_deref(),
        a.branch,
        a.push,
        &mut report,
    )
}

fn commit_and_push(
    repo_path: &std::path::Path,
    changes: &[FileChange],
    message: &str,
    author: Option<&str>,
    branch: Option<String>,
    push: Option<String>,
    report: &mut String,
) -> anyhow::Result<Outcome> {
    let ws = Workspace::open(repo_path)?;
    let sig = ws.signature(author)?;
    let parent = ws.head_commit()?;
    let dest = match &branch {
        Some(b) => Dest::NewBranch(b.clone()),
        None => Dest::CurrentBranch,
    };
    let (id, refname) = ws.commit(changes, message, &sig, &dest)?;
    report.push_str(&format!(
        "committed {} on {refname}: {}\n",
        id.to_hex_with_len(8),
        message.lines().next().unwrap_or("")
    ));
    let remote = match (&branch, push) {
        (Some(_), p) => Some(p.unwrap_or_else(|| "origin".into())),
        (None, p) => p,
    };
    if let Some(remote) = remote {
        let has_remote = ws.repo.find_remote(remote.as_str()).is_ok();
        if branch.is_some() && !has_remote {
            report.push_str(&format!("no remote {remote:?}: branch left local\n"));
            return Ok(Outcome {
                report: std::mem::take(report),
            });
        }
        let expected = if branch.is_some() { None } else { Some(parent) };
        if let Err(e) = ws.push(&remote, &refname, id, expected) {
            // No local mess: undo the local commit or branch.
            let undo = ws.reset_ref(
                &refname,
                id,
                if branch.is_some() { None } else { Some(parent) },
            );
            if let (Dest::CurrentBranch, Some(wd)) = (&dest, ws.repo.workdir()) {
                for (path, _) in changes {
                    if let Ok(Some(old)) = ws.read_at(parent, path) {
                        let _ = std::fs::write(wd.join(path), old);
                    }
                }
            }
            if let Err(u) = undo {
                return Err(e.context(format!("and undoing the local commit failed too: {u}")));
            }
            return Err(e.context("the local commit was undone"));
        }
        report.push_str(&format!("pushed {refname} to {remote}\n"));
    }
    Ok(Outcome {
        report: std::mem::take(report),
    })
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
    for (name, c) in &l.fleet.clusters {
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
    bail!("no promotion into {env} in the history: give --to REV")
}

pub fn rollback(
    repo_path: &std::path::Path,
    target: &str,
    to: Option<&str>,
    author: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<Outcome> {
    let l = load(repo_path, "HEAD")?;
    let ws = Workspace::open(repo_path)?;
    // ENV, or CLUSTER (its overrides, and its environment is frozen).
    let (env, files): (String, Vec<String>) = if let Some(c) = l.fleet.clusters.get(target) {
        let env = c
            .labels
            .get("env")
            .cloned()
            .with_context(|| format!("cluster {target} has no env label to freeze"))?;
        (
            env,
            l.fleet
                .apps
                .keys()
                .map(|a| cluster_file(a, target))
                .collect(),
        )
    } else if l
        .fleet
        .clusters
        .values()
        .any(|c| c.labels.get("env").map(String::as_str) == Some(target))
    {
        (
            target.to_string(),
            l.fleet
                .apps
                .keys()
                .map(|a| overlay_file(a, target))
                .collect(),
        )
    } else {
        bail!(
            "{target:?} is neither a cluster nor an environment (an env label) in the fleet repo"
        );
    };
    let to_id = match to {
        Some(rev) => ObjectId::from_hex(l.repo.resolve(rev)?.id.as_bytes())?,
        None => before_last_promotion(&ws, &env)?,
    };
    let mut changes: Vec<FileChange> = Vec::new();
    let mut moved = Vec::new();
    for file in files {
        let (Some(now), Some(then)) = (read(&l.tree, &file)?, ws.read_at(to_id, &file)?) else {
            continue;
        };
        let now_pins = pins::images_of(&file, &now).map_err(anyhow::Error::msg)?;
        let then_pins = pins::images_of(&file, &then).map_err(anyhow::Error::msg)?;
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
        changes.push((file, Some(pins::rewrite(&text, &new_pins).into_bytes())));
    }
    let sig = ws.signature(author)?;
    let by = format!("{} <{}>", sig.name, sig.email);
    let to_short = to_id.to_hex_with_len(8).to_string();
    changes.push(freeze_change(
        &l,
        &env,
        Some(Freeze {
            reason: reason
                .map(str::to_string)
                .unwrap_or_else(|| format!("rollback of {target} to {to_short}")),
            by,
        }),
    )?);
    let mut message = format!(
        "rollback {target} to {to_short}{}\n",
        if moved.is_empty() {
            String::new()
        } else {
            format!(": {}", moved.join("; "))
        }
    );
    message.push_str(&format!("\nFreezes {env} until `fleetctl unfreeze {env}`.\n\nRolled-Back: {target}\nRolled-Back-To: {to_id}\nFrozen: {env}\n"));
    let mut report = String::new();
    commit_and_push(
        repo_path,
        &changes,
        &message,
        author,
        None,
        None,
        &mut report,
    )
}

pub fn unfreeze(
    repo_path: &std::path::Path,
    env: &str,
    author: Option<&str>,
) -> anyhow::Result<Outcome> {
    let l = load(repo_path, "HEAD")?;
    if l.fleet
        .environments
        .get(env)
        .and_then(|e| e.frozen.as_ref())
        .is_none()
    {
        return Ok(Outcome {
            report: format!("{env} is not frozen\n"),
        });
    }
    let change = freeze_change(&l, env, None)?;
    let message = format!("unfreeze {env}\n\nUnfrozen: {env}\n");
    let mut report = String::new();
    commit_and_push(
        repo_path,
        &[change],
        &message,
        author,
        None,
        None,
        &mut report,
    )
}

/// `environments/<env>.yaml` with `frozen` set or cleared (other settings kept).
fn freeze_change(l: &Loaded, env: &str, frozen: Option<Freeze>) -> anyhow::Result<FileChange> {
    let path = format!("environments/{env}.yaml");
    let mut spec: EnvironmentSpec = l.fleet.environments.get(env).cloned().unwrap_or_default();
    if l.fleet.env_errors.contains_key(env) {
        bail!("{path} does not parse; fix it first");
    }
    spec.frozen = frozen;
    let value = serde_json::to_value(&spec)?;
    Ok((
        path,
        Some(fleet_render::yaml::to_canonical(&value).into_bytes()),
    ))
}
