//! `fleetctl history ENV|CLUSTER|APP`: the commits that changed what runs
//! there, found by rendering each commit (memoized, so unchanged apps cost
//! nothing) and comparing with its parent; and from the hub, when each
//! cluster applied them.

use std::collections::BTreeMap;

use fleet_hub::renderer::Renderer;
use fleet_proto::v1 as pb;
use fleet_render::digest::Hasher;
use fleet_render::model::Fleet;

use crate::release::load;

pub enum Target {
    Env(String),
    Cluster(String),
    App(String),
}

pub struct Entry {
    pub commit: fleet_render::CommitMeta,
    /// (cluster, applied at) from the hub.
    pub applied: Vec<(String, i64)>,
}

/// A release action the hub recorded (a manual or forced sync, a rollout
/// moving, pausing or controlled), for one or more clusters.
pub struct Action {
    pub time: i64,
    pub commit: String,
    pub note: String,
    pub who: String,
    pub reason: String,
    pub clusters: Vec<String>,
}

/// Whether a commit's trailers make it a release action on the target
/// (a promotion, rollback, freeze or unfreeze), even if nothing renders differently.
fn is_release_action(fleet: &Fleet, message: &str, t: &Target) -> bool {
    let trailers: Vec<(&str, &str)> = message
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let env_of = |c: &str| {
        fleet
            .clusters
            .get(c)
            .and_then(|c| c.labels.get("env"))
            .cloned()
    };
    let env_hit = |env: &str| {
        trailers.iter().any(|(k, v)| {
            matches!(*k, "Promoted-To" | "Frozen" | "Unfrozen" | "Approved-For") && *v == env
                || *k == "Rejected-Revision"
                || *k == "Rolled-Back" && (*v == env || env_of(v).as_deref() == Some(env))
        })
    };
    match t {
        Target::Env(e) => env_hit(e),
        Target::Cluster(c) => {
            trailers.iter().any(|(k, v)| *k == "Rolled-Back" && v == c)
                || env_of(c).is_some_and(|e| env_hit(&e))
        }
        Target::App(a) => trailers.iter().any(|(k, v)| *k == "Promoted-App" && v == a),
    }
}

/// The hub's release actions on the target's clusters, newest first; one
/// action done to several clusters at once is listed once.
pub fn actions(
    repo_path: &std::path::Path,
    name: &str,
    events: &pb::History,
) -> anyhow::Result<Vec<Action>> {
    let head = load(repo_path, "HEAD")?;
    let target = resolve_target(&head.fleet, name)?;
    let clusters = clusters_of(&head.fleet, &target);
    let mut out: Vec<Action> = Vec::new();
    for e in events
        .events
        .iter()
        .filter(|e| e.note != "applied" && clusters.contains(&e.cluster))
    {
        if let Some(a) = out.iter_mut().find(|a| {
            a.time == e.time && a.note == e.note && a.who == e.who && a.reason == e.reason
        }) {
            a.clusters.push(e.cluster.clone());
            continue;
        }
        out.push(Action {
            time: e.time,
            commit: e.commit.clone(),
            note: e.note.clone(),
            who: e.who.clone(),
            reason: e.reason.clone(),
            clusters: vec![e.cluster.clone()],
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.time));
    Ok(out)
}

pub fn resolve_target(fleet: &Fleet, name: &str) -> anyhow::Result<Target> {
    if fleet.clusters.contains_key(name) {
        Ok(Target::Cluster(name.into()))
    } else if fleet.apps.contains_key(name) {
        Ok(Target::App(name.into()))
    } else if fleet.environments.contains_key(name)
        || fleet
            .clusters
            .values()
            .any(|c| c.labels.get("env").map(String::as_str) == Some(name))
    {
        Ok(Target::Env(name.into()))
    } else {
        Err(crate::release::bad(format!(
            "{name:?} is not a cluster, an app or an environment of the fleet repo; clusters: {}; apps: {}; environments: {}",
            fleet
                .clusters
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            fleet.apps.keys().cloned().collect::<Vec<_>>().join(", "),
            crate::release::environments(fleet)
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// What runs at the target at one commit, as a comparable fingerprint.
fn fingerprint(
    fleet: &Fleet,
    states: &BTreeMap<String, fleet_render::DesiredState>,
    t: &Target,
) -> String {
    let mut h = Hasher::new();
    for (name, s) in states {
        let labels = fleet.clusters.get(name).map(|c| &c.labels);
        match t {
            Target::Cluster(c) if c == name => {
                h.field(name).field(&s.digest);
            }
            Target::Env(e) if labels.and_then(|l| l.get("env")) == Some(e) => {
                h.field(name).field(&s.digest);
            }
            Target::App(a) => {
                if let Some(app) = s.apps.get(a) {
                    h.field(name);
                    for r in app.resources.iter() {
                        h.field(&r.digest);
                    }
                }
            }
            _ => {}
        }
    }
    h.finish()
}

fn clusters_of(fleet: &Fleet, t: &Target) -> Vec<String> {
    fleet
        .clusters
        .values()
        .filter(|c| match t {
            Target::Cluster(n) => &c.name == n,
            Target::Env(e) => c.labels.get("env") == Some(e),
            Target::App(a) => fleet
                .apps
                .get(a)
                .is_some_and(|app| app.spec.selector.matches(&c.labels)),
        })
        .map(|c| c.name.clone())
        .collect()
}

pub fn history(
    repo_path: &std::path::Path,
    name: &str,
    limit: usize,
    events: Option<&pb::History>,
) -> anyhow::Result<Vec<Entry>> {
    let head = load(repo_path, "HEAD")?;
    let target = resolve_target(&head.fleet, name)?;
    let clusters = clusters_of(&head.fleet, &target);
    let ws = crate::gitops::Workspace::open(repo_path)?;
    let mut renderer = Renderer::new();
    let mut out = Vec::new();
    let mut id = Some(ws.head_commit()?);
    let mut newer: Option<(fleet_render::CommitMeta, String)> = None;
    let mut scanned = 0;
    while let Some(cid) = id {
        if out.len() >= limit || scanned > 2_000 {
            break;
        }
        scanned += 1;
        let commit = head.repo.resolve(&cid.to_string())?;
        let tree = head.repo.tree_at(&commit.id)?;
        let fp = match Fleet::load(&tree) {
            Ok(fleet) => match renderer.render(&tree, &commit, &()) {
                Ok(r) => fingerprint(&fleet, &r.states, &target),
                Err(_) => String::from("unrenderable"),
            },
            Err(_) => String::from("unrenderable"),
        };
        if let Some((nc, nfp)) = newer.take() {
            if nfp != fp || is_release_action(&head.fleet, &nc.message, &target) {
                out.push(entry(nc, &clusters, events));
            }
        }
        newer = Some((commit, fp));
        id = ws
            .repo
            .find_commit(cid)?
            .parent_ids()
            .next()
            .map(|p| p.detach());
    }
    // The root commit introduced whatever it holds.
    if let Some((nc, _)) = newer {
        if id.is_none() && out.len() < limit {
            out.push(entry(nc, &clusters, events));
        }
    }
    Ok(out)
}

fn entry(
    commit: fleet_render::CommitMeta,
    clusters: &[String],
    events: Option<&pb::History>,
) -> Entry {
    let mut applied = Vec::new();
    if let Some(h) = events {
        for c in clusters {
            if let Some(e) = h
                .events
                .iter()
                .find(|e| &e.cluster == c && e.commit == commit.id && e.note == "applied")
            {
                applied.push((c.clone(), e.time));
            }
        }
    }
    Entry { commit, applied }
}

/// `2026-11-22 07:40:01` (UTC) from Unix seconds.
pub fn utc(t: i64) -> String {
    fleet_render::window::utc(t)
}

/// A commit trailer's value.
fn trailer<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().rev().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::trim)
    })
}

pub fn print(entries: &[Entry], actions: &[Action], clusters_known: bool) -> String {
    enum Item<'a> {
        Commit(&'a Entry),
        Action(&'a Action),
    }
    let mut items: Vec<(i64, Item<'_>)> = entries
        .iter()
        .map(|e| (e.commit.time, Item::Commit(e)))
        .chain(actions.iter().map(|a| (a.time, Item::Action(a))))
        .collect();
    // Newest first; commits keep their Git order among themselves.
    items.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let mut out = String::new();
    for (_, item) in &items {
        match item {
            Item::Commit(e) => {
                let c = &e.commit;
                out.push_str(&format!(
                    "{}  {}  {}\n    {}\n",
                    &c.id[..8.min(c.id.len())],
                    utc(c.time),
                    c.author,
                    c.summary()
                ));
                if let Some(r) = trailer(&c.message, "Reason") {
                    out.push_str(&format!("    why: {r}\n"));
                }
                if let Some(b) = trailer(&c.message, "Break-Glass") {
                    out.push_str(&format!("    break-glass: {b}\n"));
                }
                if let Some(r) = trailer(&c.message, "Promoted-Revision") {
                    out.push_str(&format!(
                        "    revisions: {} -> {}\n",
                        &r[..r.len().min(8)],
                        &c.id[..8.min(c.id.len())]
                    ));
                }
                if let Some(r) = trailer(&c.message, "Rolled-Back-To") {
                    out.push_str(&format!(
                        "    revisions: restores {}\n",
                        &r[..r.len().min(8)]
                    ));
                }
                if clusters_known {
                    if e.applied.is_empty() {
                        out.push_str("    applied: not recorded by the hub\n");
                    }
                    for (cluster, t) in &e.applied {
                        out.push_str(&format!("    applied on {cluster} at {}\n", utc(*t)));
                    }
                }
            }
            Item::Action(a) => {
                out.push_str(&format!(
                    "{}  {}  {}\n    {} on {} at {}\n",
                    "hub     ",
                    utc(a.time),
                    if a.who.is_empty() {
                        "-"
                    } else {
                        a.who.as_str()
                    },
                    a.note,
                    a.clusters.join(", "),
                    &a.commit[..a.commit.len().min(8)]
                ));
                if !a.reason.is_empty() {
                    out.push_str(&format!("    why: {}\n", a.reason));
                }
            }
        }
    }
    if items.is_empty() {
        out.push_str("no commit changed what runs there\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_428_000), "2026-11-23 10:00:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
