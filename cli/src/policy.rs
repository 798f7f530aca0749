//! Promotion policy: `promotion:` of `environments/<env>.yaml` (env order,
//! source soak, required approvals) and rejected releases. Approvals and
//! rejections are commits whose trailers say what, by whom and why
//! (`fleetctl approve`, `fleetctl reject`); the gate finds them by walking
//! first parents from HEAD. A release is identified by its pins, not by a
//! commit: an approval of REV counts for any later revision whose source
//! pins are REV's, and a rejected pin is never promoted again.

use anyhow::Context as _;
use fleet_render::model::Fleet;
use fleet_render::pins::{self, ImagePin};
use gix::ObjectId;

use crate::gitops::{Prepared, read_at};
use crate::release::{bad, overlay_file, require_env};

/// How far back approvals and rejections are looked for.
const SCAN_COMMITS: usize = 10_000;

pub struct Approval {
    pub revision: ObjectId,
    pub from: String,
    pub to: String,
    pub by: String,
}

pub struct Rejection {
    pub revision: ObjectId,
    pub by: String,
    pub reason: String,
    /// The pins the rejected revision set (in any overlay).
    pub pins: Vec<ImagePin>,
}

#[derive(Default)]
pub struct Record {
    pub approvals: Vec<Approval>,
    pub rejections: Vec<Rejection>,
}

fn trailer<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().rev().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::trim)
    })
}

/// Every approval and rejection on the first-parent history of `head`.
pub fn scan(repo: &gix::Repository, head: ObjectId, fleet: &Fleet) -> anyhow::Result<Record> {
    let mut out = Record::default();
    let mut id = Some(head);
    let mut n = 0;
    while let Some(cid) = id {
        if n >= SCAN_COMMITS {
            break;
        }
        n += 1;
        let c = repo.find_commit(cid)?;
        let msg = c.message_raw()?.to_string();
        if let (Some(rev), Some(to), Some(by)) = (
            trailer(&msg, "Approved-Revision"),
            trailer(&msg, "Approved-For"),
            trailer(&msg, "Approved-By"),
        ) {
            out.approvals.push(Approval {
                revision: ObjectId::from_hex(rev.as_bytes())?,
                from: trailer(&msg, "Approved-From").unwrap_or("").to_string(),
                to: to.to_string(),
                by: by.to_string(),
            });
        }
        if let Some(rev) = trailer(&msg, "Rejected-Revision") {
            let revision = ObjectId::from_hex(rev.as_bytes())?;
            out.rejections.push(Rejection {
                revision,
                by: trailer(&msg, "Rejected-By").unwrap_or("").to_string(),
                reason: trailer(&msg, "Reason").unwrap_or("").to_string(),
                pins: pins_set_by(repo, revision, fleet)?,
            });
        }
        id = c.parent_ids().next().map(|p| p.detach());
    }
    Ok(out)
}

/// The pins a commit set in any environment overlay (new or changed against its first parent).
pub fn pins_set_by(
    repo: &gix::Repository,
    rev: ObjectId,
    fleet: &Fleet,
) -> anyhow::Result<Vec<ImagePin>> {
    let parent = repo
        .find_commit(rev)?
        .parent_ids()
        .next()
        .map(|p| p.detach());
    let mut out: Vec<ImagePin> = Vec::new();
    for app in fleet.apps.keys() {
        for env in crate::release::environments(fleet) {
            let file = overlay_file(app, &env);
            let Some(now) = read_at(repo, rev, &file)? else {
                continue;
            };
            let now = pins::images_of(&file, &now).unwrap_or_default();
            let before = match parent {
                Some(p) => read_at(repo, p, &file)?
                    .map(|b| pins::images_of(&file, &b).unwrap_or_default())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for p in now {
                if !before.contains(&p) && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}

/// The source pins of `apps` in `from` at `rev`.
pub fn release_pins(
    repo: &gix::Repository,
    rev: ObjectId,
    apps: &[String],
    from: &str,
) -> anyhow::Result<Vec<(String, Vec<ImagePin>)>> {
    let mut out = Vec::new();
    for app in apps {
        let file = overlay_file(app, from);
        let pins = match read_at(repo, rev, &file)? {
            Some(b) => pins::images_of(&file, &b).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        out.push((app.clone(), pins));
    }
    Ok(out)
}

/// The env order: `promotion.from` of the target, when declared.
pub fn check_order(fleet: &Fleet, from: &str, to: &str) -> anyhow::Result<()> {
    let Some(p) = fleet
        .environments
        .get(to)
        .and_then(|e| e.promotion.as_ref())
    else {
        return Ok(());
    };
    if !p.from.is_empty() && !p.from.iter().any(|f| f == from) {
        anyhow::bail!(
            "promotion refused: {to} is promoted from {} only (promotion.from in environments/{to}.yaml), not from {from}",
            p.from.join(", ")
        );
    }
    Ok(())
}

/// What a promotion must satisfy besides the health gate. Returns the
/// approvers to record in the promotion's trailers.
pub fn check(
    repo: &gix::Repository,
    head: ObjectId,
    fleet: &Fleet,
    from: &str,
    to: &str,
    src: &[(String, Vec<ImagePin>)],
    moving: &[ImagePin],
) -> anyhow::Result<Vec<String>> {
    let policy = fleet
        .environments
        .get(to)
        .and_then(|e| e.promotion.clone())
        .unwrap_or_default();
    check_order(fleet, from, to)?;
    let record = scan(repo, head, fleet)?;
    for r in &record.rejections {
        if let Some(p) = moving.iter().find(|p| r.pins.contains(p)) {
            anyhow::bail!(
                "promotion refused: image {} {} was rejected in {} by {}{}: a rejected release is never promoted again",
                p.name,
                p.short_version(),
                r.revision.to_hex_with_len(8),
                r.by,
                if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.reason)
                }
            );
        }
    }
    if policy.approvals == 0 {
        return Ok(Vec::new());
    }
    let apps: Vec<String> = src.iter().map(|(a, _)| a.clone()).collect();
    let mut approvers: Vec<String> = Vec::new();
    for a in record
        .approvals
        .iter()
        .filter(|a| a.to == to && (a.from.is_empty() || a.from == from))
    {
        if approvers.contains(&a.by) {
            continue;
        }
        if release_pins(repo, a.revision, &apps, from)? == src {
            approvers.push(a.by.clone());
        }
    }
    if (approvers.len() as u32) < policy.approvals {
        anyhow::bail!(
            "promotion refused: {to} needs {} approval(s) of this release, it has {}{}: run `fleetctl approve {} --from {from} --to {to}` (policy in environments/{to}.yaml)",
            policy.approvals,
            approvers.len(),
            if approvers.is_empty() {
                String::new()
            } else {
                format!(" (by {})", approvers.join(", "))
            },
            head.to_hex_with_len(8)
        );
    }
    Ok(approvers)
}

/// `fleetctl approve REV --from ENV --to ENV`: an empty commit whose trailers record the approval.
pub fn approve(
    repo_path: &std::path::Path,
    rev: &str,
    from: &str,
    to: &str,
    author: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let l = crate::release::load(repo_path, rev)?;
    require_env(&l.fleet, from, "--from")?;
    require_env(&l.fleet, to, "--to")?;
    if from == to {
        return Err(bad(format!("--from and --to are both {to}")));
    }
    let ws = crate::gitops::Workspace::open(repo_path)?;
    let sig = ws.signature(author)?;
    let by = format!("{} <{}>", sig.name, sig.email);
    let id = l.head.id.clone();
    let short = &id[..8];
    let reason = reason.map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "));
    let message = format!(
        "approve {short} from {from} for {to}{}\n\nApproved-Revision: {id}\nApproved-From: {from}\nApproved-For: {to}\nApproved-By: {by}\n{}",
        reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default(),
        reason
            .as_ref()
            .map(|r| format!("Reason: {r}\n"))
            .unwrap_or_default(),
    );
    commit_empty(&ws, &sig, message)
}

/// `fleetctl reject REV`: the pins REV set are never promoted again.
pub fn reject(
    repo_path: &std::path::Path,
    rev: &str,
    author: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let l = crate::release::load(repo_path, rev)?;
    let id = ObjectId::from_hex(l.head.id.as_bytes())?;
    let ws = crate::gitops::Workspace::open(repo_path)?;
    let set = pins_set_by(&ws.repo, id, &l.fleet)?;
    if set.is_empty() {
        return Err(bad(format!(
            "{} sets no release pin in any overlay: there is no release to reject",
            id.to_hex_with_len(8)
        )));
    }
    let sig = ws.signature(author)?;
    let by = format!("{} <{}>", sig.name, sig.email);
    let reason = reason.map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "));
    let what: Vec<String> = set
        .iter()
        .map(|p| format!("{} {}", p.name, p.short_version()))
        .collect();
    let message = format!(
        "reject {}: {}\n\nRejected-Revision: {id}\nRejected-By: {by}\n{}",
        id.to_hex_with_len(8),
        what.join(", "),
        reason
            .as_ref()
            .map(|r| format!("Reason: {r}\n"))
            .unwrap_or_default(),
    );
    commit_empty(&ws, &sig, message)
}

fn commit_empty(
    ws: &crate::gitops::Workspace,
    sig: &gix::actor::Signature,
    message: String,
) -> anyhow::Result<String> {
    let c = ws
        .commit_with(
            &crate::gitops::Dest::CurrentBranch,
            sig,
            |_, _| {
                Ok(Some(Prepared {
                    changes: Vec::new(),
                    message: message.clone(),
                }))
            },
            |_, _, _, _| Ok(()),
        )?
        .context("nothing committed")?;
    Ok(format!(
        "committed {} on {}: {}\n",
        c.id.to_hex_with_len(8),
        c.refname,
        c.message.lines().next().unwrap_or("")
    ))
}
