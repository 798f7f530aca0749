//! The status page's view models: pure functions from what the hub knows
//! (`pb::FleetStatus` as the admin API and metrics see it, history events,
//! the time) to what the templates print. No I/O and no clock here; the
//! handlers in `page/mod.rs` read the hub and hand the time in.
//!
//! Every string reaches the HTML through askama's escaping (the templates
//! are `.html`, so `{{ }}` escapes); hrefs are built here from path segments
//! that are percent-encoded first.

use std::collections::BTreeMap;

use askama::Template;
use fleet_proto::v1 as pb;

use crate::status::Event;

/// Seconds between the page's automatic reloads (`<meta http-equiv="refresh">`).
pub const REFRESH_SECS: u32 = 5;

/// A status word and the CSS class that colours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    /// ok | warn | bad | none
    pub class: &'static str,
}

impl Badge {
    fn new(label: &str, class: &'static str) -> Badge {
        Badge {
            label: label.to_string(),
            class,
        }
    }
}

/// A commit as the page links it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLink {
    pub id: String,
    pub short: String,
    pub href: String,
    /// The first line of the message.
    pub title: String,
    /// The author without the address.
    pub author: String,
    /// UTC, empty when unknown.
    pub time: String,
}

/// One row of the fleet table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    pub name: String,
    pub href: String,
    pub env: String,
    /// What the spoke runs (applied), if anything.
    pub revision: Option<CommitLink>,
    /// What it should run, when that differs.
    pub pending: Option<CommitLink>,
    pub sync: Badge,
    pub health: Badge,
    pub connected: bool,
    pub last_seen: String,
    pub last_seen_utc: String,
    /// Render errors, failed, drifted and degraded objects.
    pub problems: usize,
}

/// The clusters of one environment (label `env`; `(none)` without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvGroup {
    pub name: String,
    pub clusters: Vec<ClusterRow>,
    pub synced: usize,
    /// Clusters with a degraded or progressing object.
    pub unhealthy: usize,
    pub connected: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    pub env: String,
    pub phase: String,
    pub revision: Option<CommitLink>,
    /// `2/3` waves done.
    pub progress: String,
    pub reason: String,
}

/// `/`: the fleet at a glance.
#[derive(Debug, Clone, Template)]
#[template(path = "page/fleet.html")]
pub struct FleetView {
    pub refresh: u32,
    pub hub_revision: Option<CommitLink>,
    pub git_error: String,
    /// Clusters in the fleet, and on this page.
    pub total: u32,
    pub shown: usize,
    pub envs: Vec<EnvGroup>,
    pub rollouts: Vec<RolloutRow>,
    /// The next page of clusters, when there is one.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub app: String,
    pub id: String,
    pub state: Badge,
    pub health: Badge,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppView {
    pub name: String,
    pub objects: Vec<ObjectRow>,
    pub errors: usize,
    /// Objects that are neither failed, drifted nor degraded.
    pub fine: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    pub app: String,
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub time: String,
    pub ago: String,
    pub commit: Option<CommitLink>,
    pub note: String,
    pub who: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLink {
    pub name: String,
    pub href: String,
    /// This page's own cluster (printed in bold).
    pub this: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveRow {
    pub name: String,
    pub phase: String,
    pub clusters: Vec<ClusterLink>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutView {
    pub env: String,
    pub phase: String,
    pub revision: Option<CommitLink>,
    pub reason: String,
    pub by: String,
    pub waves: Vec<WaveRow>,
}

/// `/clusters/<name>`: one cluster.
#[derive(Debug, Clone, Template)]
#[template(path = "page/cluster.html")]
pub struct ClusterView {
    pub refresh: u32,
    pub name: String,
    pub env: String,
    pub labels: Vec<String>,
    pub sync: Badge,
    pub health: Badge,
    pub connected: bool,
    pub last_seen: String,
    pub last_seen_utc: String,
    pub applied: Option<CommitLink>,
    pub desired: Option<CommitLink>,
    pub released: Option<CommitLink>,
    pub held_reason: String,
    pub applied_digest: String,
    pub render_errors: Vec<ErrorRow>,
    pub apps: Vec<AppView>,
    pub objects: usize,
    pub drifted: Vec<ObjectRow>,
    /// Newest first, at most [`HISTORY_ROWS`].
    pub history: Vec<HistoryRow>,
    pub history_total: usize,
    pub rollout: Option<RolloutView>,
}

/// History events a cluster page shows.
pub const HISTORY_ROWS: usize = 50;

/// A cluster that runs, or is moving to, a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCluster {
    pub name: String,
    pub href: String,
    pub env: String,
    pub sync: Badge,
    pub health: Badge,
    pub connected: bool,
}

/// `/commits/<id>`: which clusters run a commit.
#[derive(Debug, Clone, Template)]
#[template(path = "page/commit.html")]
pub struct CommitView {
    pub refresh: u32,
    /// What was asked for (a full id or a prefix).
    pub query: String,
    pub commit: Option<CommitLink>,
    pub hub_revision: bool,
    /// Clusters whose spoke applied it.
    pub running: Vec<CommitCluster>,
    /// Clusters that should run it but do not (yet).
    pub moving: Vec<CommitCluster>,
}

/// An error page: unknown cluster, malformed commit id.
#[derive(Debug, Clone, Template)]
#[template(path = "page/error.html")]
pub struct ErrorView {
    pub title: String,
    pub detail: String,
}

/// The first 8 characters (a commit id from a spoke's report may be any text).
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `3s ago`, `5m ago`, ... (`never` for 0).
pub use fleet_proto::display::ago;

fn utc(t: i64) -> String {
    if t == 0 {
        String::new()
    } else {
        fleet_render::window::utc(t) + " UTC"
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn cluster_href(name: &str) -> String {
    format!("/clusters/{}", encode_segment(name))
}

pub fn commit_href(id: &str) -> String {
    format!("/commits/{}", encode_segment(id))
}

fn commit_link(c: &pb::CommitMeta) -> Option<CommitLink> {
    if c.id.is_empty() {
        return None;
    }
    Some(CommitLink {
        id: c.id.clone(),
        short: short(&c.id),
        href: commit_href(&c.id),
        title: c.message.lines().next().unwrap_or("").to_string(),
        author: c.author.split(" <").next().unwrap_or("").to_string(),
        time: utc(c.time),
    })
}

/// A bare id (history events carry no commit metadata).
fn id_link(id: &str) -> Option<CommitLink> {
    commit_link(&pb::CommitMeta {
        id: id.to_string(),
        ..Default::default()
    })
}

/// The sync verdict as `fleetctl status` prints it.
pub fn sync_badge(sync: &str) -> Badge {
    match sync {
        "synced" => Badge::new("Synced", "ok"),
        "out_of_sync" => Badge::new("OutOfSync", "warn"),
        "progressing" => Badge::new("Progressing", "warn"),
        "drifted" => Badge::new("Drifted", "bad"),
        "failed" => Badge::new("Failed", "bad"),
        _ => Badge::new("Unknown", "none"),
    }
}

fn one_health(h: &str) -> Badge {
    match h {
        "healthy" => Badge::new("Healthy", "ok"),
        "progressing" => Badge::new("Progressing", "warn"),
        "degraded" => Badge::new("Degraded", "bad"),
        _ => Badge::new("-", "none"),
    }
}

/// The worst health any object reports; `-` when the target reports none
/// (the directory target).
pub fn health_badge(c: &pb::ClusterStatus) -> Badge {
    let all: Vec<&str> = c
        .resources
        .iter()
        .map(|r| r.health.as_str())
        .filter(|h| !h.is_empty())
        .collect();
    if all.is_empty() {
        one_health("")
    } else if all.contains(&"degraded") {
        one_health("degraded")
    } else if all.contains(&"progressing") {
        one_health("progressing")
    } else {
        one_health("healthy")
    }
}

/// An object's outcome as the spoke reports it (`spoke/src/apply`, `Outcome`).
fn state_badge(state: &str) -> Badge {
    match state {
        "failed" | "drifted" => Badge::new(state, "bad"),
        "healed" | "pending" | "orphaned" => Badge::new(state, "warn"),
        "applied" | "synced" | "pruned" => Badge::new(state, "ok"),
        "" => Badge::new("-", "none"),
        other => Badge::new(other, "none"),
    }
}

fn is_problem(r: &pb::ResourceStatus) -> bool {
    r.state == "failed" || r.state == "drifted" || r.health == "degraded"
}

fn problems(c: &pb::ClusterStatus) -> usize {
    c.render_errors.len() + c.resources.iter().filter(|r| is_problem(r)).count()
}

fn env_of(c: &pb::ClusterStatus) -> String {
    c.labels.get("env").cloned().unwrap_or_default()
}

fn row(c: &pb::ClusterStatus, now: i64) -> ClusterRow {
    let applied = c.applied.as_ref().and_then(commit_link);
    let desired = c.desired.as_ref().and_then(commit_link);
    let pending = match (&applied, desired) {
        (Some(a), Some(d)) if a.id != d.id => Some(d),
        (None, d) => d,
        _ => None,
    };
    ClusterRow {
        name: c.name.clone(),
        href: cluster_href(&c.name),
        env: env_of(c),
        revision: applied,
        pending,
        sync: sync_badge(&c.sync),
        health: health_badge(c),
        connected: c.connected,
        last_seen: ago(now, c.last_seen),
        last_seen_utc: utc(c.last_seen),
        problems: problems(c),
    }
}

fn rollout_row(r: &pb::RolloutStatus) -> RolloutRow {
    let done = r.waves.iter().filter(|w| w.phase == "done").count();
    RolloutRow {
        env: r.env.clone(),
        phase: r.phase.clone(),
        revision: r.revision.as_ref().and_then(commit_link),
        progress: format!("{done}/{} waves done", r.waves.len()),
        reason: r.reason.clone(),
    }
}

/// The fleet page from one page of status; `next` is the href of the
/// following page (the caller knows its query form).
pub fn fleet(st: &pb::FleetStatus, now: i64, next: Option<String>) -> FleetView {
    let mut envs: BTreeMap<String, EnvGroup> = BTreeMap::new();
    for c in &st.clusters {
        let r = row(c, now);
        let key = if r.env.is_empty() {
            "(none)".to_string()
        } else {
            r.env.clone()
        };
        let g = envs.entry(key.clone()).or_insert_with(|| EnvGroup {
            name: key,
            clusters: Vec::new(),
            synced: 0,
            unhealthy: 0,
            connected: 0,
        });
        g.synced += usize::from(c.sync == "synced");
        g.unhealthy += usize::from(r.health.class == "bad" || r.health.class == "warn");
        g.connected += usize::from(r.connected);
        g.clusters.push(r);
    }
    FleetView {
        refresh: REFRESH_SECS,
        hub_revision: st.hub_revision.as_ref().and_then(commit_link),
        git_error: st.git_error.clone(),
        total: st.total_clusters,
        shown: st.clusters.len(),
        envs: envs.into_values().collect(),
        rollouts: st.rollouts.iter().map(rollout_row).collect(),
        next,
    }
}

fn object_row(r: &pb::ResourceStatus) -> ObjectRow {
    let message = match (r.message.is_empty(), r.health_message.is_empty()) {
        (false, false) => format!("{}; {}", r.message, r.health_message),
        (false, true) => r.message.clone(),
        (true, _) => r.health_message.clone(),
    };
    ObjectRow {
        app: r.app.clone(),
        id: r.id.clone(),
        state: state_badge(&r.state),
        health: one_health(&r.health),
        message,
    }
}

fn rollout_view(r: &pb::RolloutStatus, cluster: &str) -> RolloutView {
    RolloutView {
        env: r.env.clone(),
        phase: r.phase.clone(),
        revision: r.revision.as_ref().and_then(commit_link),
        reason: r.reason.clone(),
        by: r.by.clone(),
        waves: r
            .waves
            .iter()
            .map(|w| {
                let mut detail = Vec::new();
                if w.max_parallel > 0 {
                    detail.push(format!("{} at a time", w.max_parallel));
                }
                if w.soak_seconds > 0 {
                    detail.push(format!("soak {}s", w.soak_seconds));
                }
                if w.finished_at > 0 {
                    detail.push(format!("done {}", utc(w.finished_at)));
                } else if w.soak_until > 0 {
                    detail.push(format!("soaking until {}", utc(w.soak_until)));
                }
                WaveRow {
                    name: w.name.clone(),
                    phase: w.phase.clone(),
                    clusters: w
                        .clusters
                        .iter()
                        .map(|c| ClusterLink {
                            name: c.clone(),
                            href: cluster_href(c),
                            this: c == cluster,
                        })
                        .collect(),
                    detail: detail.join(", "),
                }
            })
            .collect(),
    }
}

/// The cluster page. `history` is the cluster's events oldest first (as the
/// store keeps them); `rollouts` every environment's rollout, of which the
/// one with a wave naming the cluster (else the one of its env) is shown.
pub fn cluster(
    c: &pb::ClusterStatus,
    history: &[Event],
    rollouts: &[pb::RolloutStatus],
    now: i64,
) -> ClusterView {
    let mut apps: BTreeMap<String, AppView> = BTreeMap::new();
    fn app<'a>(apps: &'a mut BTreeMap<String, AppView>, name: &str) -> &'a mut AppView {
        apps.entry(name.to_string()).or_insert_with(|| AppView {
            name: name.to_string(),
            objects: Vec::new(),
            errors: 0,
            fine: 0,
        })
    }
    for e in &c.render_errors {
        app(&mut apps, &e.app).errors += 1;
    }
    for r in c.resources.iter() {
        let a = app(&mut apps, &r.app);
        a.fine += usize::from(!is_problem(r));
        a.objects.push(object_row(r));
    }
    let env = env_of(c);
    let rollout = rollouts
        .iter()
        .find(|r| r.waves.iter().any(|w| w.clusters.contains(&c.name)))
        .or_else(|| rollouts.iter().find(|r| !env.is_empty() && r.env == env))
        .map(|r| rollout_view(r, &c.name));
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    ClusterView {
        refresh: REFRESH_SECS,
        name: c.name.clone(),
        env,
        labels,
        sync: sync_badge(&c.sync),
        health: health_badge(c),
        connected: c.connected,
        last_seen: ago(now, c.last_seen),
        last_seen_utc: utc(c.last_seen),
        applied: c.applied.as_ref().and_then(commit_link),
        desired: c.desired.as_ref().and_then(commit_link),
        released: c.released.as_ref().and_then(commit_link),
        held_reason: c.held_reason.clone(),
        applied_digest: c.applied_digest.clone(),
        render_errors: c
            .render_errors
            .iter()
            .map(|e| ErrorRow {
                app: e.app.clone(),
                file: e.file.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        objects: c.resources.len(),
        drifted: c
            .resources
            .iter()
            .filter(|r| r.state == "drifted")
            .map(object_row)
            .collect(),
        apps: apps.into_values().collect(),
        history: history
            .iter()
            .rev()
            .take(HISTORY_ROWS)
            .map(|e| HistoryRow {
                time: utc(e.time),
                ago: ago(now, e.time),
                commit: id_link(&e.commit),
                note: e.note.clone(),
                who: e.who.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        history_total: history.len(),
        rollout,
    }
}

/// What the commit page accepts: 4 to 40 hex digits (a prefix or a full id).
pub fn parse_commit_query(q: &str) -> Result<String, String> {
    if !(4..=40).contains(&q.len()) || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`{q}` is not a commit id: give 4 to 40 hexadecimal digits, e.g. /commits/55d8b532"
        ));
    }
    Ok(q.to_ascii_lowercase())
}

fn matches(c: &Option<pb::CommitMeta>, query: &str) -> Option<pb::CommitMeta> {
    c.as_ref().filter(|m| m.id.starts_with(query)).cloned()
}

/// Adds what one page of status says about the commit `query` (see
/// [`parse_commit_query`]) to `view`: clusters that applied it, clusters that
/// should run it (desired or released) but have not applied it.
pub fn add_commit_page(view: &mut CommitView, st: &pb::FleetStatus) {
    if let Some(h) = matches(&st.hub_revision, &view.query) {
        view.hub_revision = true;
        view.commit = view.commit.take().or_else(|| commit_link(&h));
    }
    for c in &st.clusters {
        let entry = || CommitCluster {
            name: c.name.clone(),
            href: cluster_href(&c.name),
            env: env_of(c),
            sync: sync_badge(&c.sync),
            health: health_badge(c),
            connected: c.connected,
        };
        let found = if let Some(m) = matches(&c.applied, &view.query) {
            view.running.push(entry());
            Some(m)
        } else if let Some(m) =
            matches(&c.desired, &view.query).or_else(|| matches(&c.released, &view.query))
        {
            view.moving.push(entry());
            Some(m)
        } else {
            None
        };
        if let (None, Some(m)) = (&view.commit, found) {
            view.commit = commit_link(&m);
        }
    }
}

/// An empty commit page for `query`, filled by [`add_commit_page`].
pub fn commit_page(query: String) -> CommitView {
    CommitView {
        refresh: REFRESH_SECS,
        query,
        commit: None,
        hub_revision: false,
        running: Vec::new(),
        moving: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn meta(id: &str, message: &str) -> pb::CommitMeta {
        pb::CommitMeta {
            id: id.into(),
            author: "Ada Lovelace <ada@example.com>".into(),
            message: message.into(),
            time: NOW - 600,
        }
    }

    fn res(app: &str, id: &str, state: &str, health: &str) -> pb::ResourceStatus {
        pb::ResourceStatus {
            app: app.into(),
            id: id.into(),
            state: state.into(),
            health: health.into(),
            ..Default::default()
        }
    }

    fn cluster_status(name: &str, env: &str, applied: &str, desired: &str) -> pb::ClusterStatus {
        pb::ClusterStatus {
            name: name.into(),
            labels: [("env".to_string(), env.to_string())].into_iter().collect(),
            applied: (!applied.is_empty()).then(|| meta(applied, "applied one\nbody")),
            desired: Some(meta(desired, "desired one")),
            sync: if applied == desired {
                "synced"
            } else {
                "out_of_sync"
            }
            .into(),
            connected: true,
            last_seen: NOW - 3,
            ..Default::default()
        }
    }

    fn check_fleet(st: &pb::FleetStatus, expected: &[(&str, &[(&str, &str, &str, &str)])]) {
        let v = fleet(st, NOW, None);
        let got: Vec<(String, Vec<(String, String, String, String)>)> = v
            .envs
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    g.clusters
                        .iter()
                        .map(|c| {
                            (
                                c.name.clone(),
                                c.sync.label.clone(),
                                c.health.label.clone(),
                                c.revision
                                    .as_ref()
                                    .map(|r| r.short.clone())
                                    .unwrap_or_else(|| "-".into()),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let want: Vec<(String, Vec<(String, String, String, String)>)> = expected
            .iter()
            .map(|(e, cs)| {
                (
                    e.to_string(),
                    cs.iter()
                        .map(|(a, b, c, d)| {
                            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn fleet_groups_clusters_by_env_in_env_order() {
        let mut degraded = cluster_status("prod-1", "prod", "aaaaaaaaaa11", "aaaaaaaaaa11");
        degraded.resources = vec![
            res("web", "apps/v1/Deployment/web/web", "unchanged", "degraded"),
            res("web", "v1/Service/web/web", "unchanged", "healthy"),
        ];
        let mut unlabelled = cluster_status("lab", "", "", "bbbbbbbbbb22");
        unlabelled.labels.clear();
        unlabelled.sync = "unknown".into();
        let st = pb::FleetStatus {
            total_clusters: 4,
            clusters: vec![
                cluster_status("dev-1", "dev", "aaaaaaaaaa11", "bbbbbbbbbb22"),
                unlabelled,
                degraded,
                cluster_status("prod-2", "prod", "aaaaaaaaaa11", "aaaaaaaaaa11"),
            ],
            ..Default::default()
        };
        check_fleet(
            &st,
            &[
                ("(none)", &[("lab", "Unknown", "-", "-")]),
                ("dev", &[("dev-1", "OutOfSync", "-", "aaaaaaaa")]),
                (
                    "prod",
                    &[
                        ("prod-1", "Synced", "Degraded", "aaaaaaaa"),
                        ("prod-2", "Synced", "-", "aaaaaaaa"),
                    ],
                ),
            ],
        );
        let v = fleet(&st, NOW, None);
        let dev = &v.envs[1].clusters[0];
        assert_eq!(
            dev.pending.as_ref().map(|p| p.short.as_str()),
            Some("bbbbbbbb")
        );
        assert_eq!(dev.last_seen, "3s ago");
        assert_eq!(dev.href, "/clusters/dev-1");
        let prod = &v.envs[2];
        assert_eq!((prod.synced, prod.unhealthy, prod.connected), (2, 1, 2));
        assert_eq!(prod.clusters[0].problems, 1);
        // A cluster that never applied anything is pending on its desired commit.
        assert_eq!(
            v.envs[0].clusters[0]
                .pending
                .as_ref()
                .map(|p| p.id.as_str()),
            Some("bbbbbbbbbb22")
        );
    }

    #[test]
    fn sync_and_health_words_match_fleetctl_status() {
        for (sync, label, class) in [
            ("synced", "Synced", "ok"),
            ("out_of_sync", "OutOfSync", "warn"),
            ("drifted", "Drifted", "bad"),
            ("failed", "Failed", "bad"),
            ("progressing", "Progressing", "warn"),
            ("", "Unknown", "none"),
            ("<script>", "Unknown", "none"),
        ] {
            assert_eq!(sync_badge(sync), Badge::new(label, class), "{sync}");
        }
        let mut c = pb::ClusterStatus::default();
        assert_eq!(health_badge(&c).label, "-");
        c.resources = vec![res("a", "x", "applied", "healthy")];
        assert_eq!(health_badge(&c).label, "Healthy");
        c.resources.push(res("a", "y", "applied", "progressing"));
        assert_eq!(health_badge(&c).label, "Progressing");
        c.resources.push(res("a", "z", "applied", "degraded"));
        assert_eq!(health_badge(&c).label, "Degraded");
    }

    #[test]
    fn cluster_page_apps_errors_drift_history_and_rollout() {
        let mut c = cluster_status("prod-1", "prod", "aaaaaaaaaa11", "aaaaaaaaaa11");
        c.render_errors = vec![pb::RenderError {
            app: "api".into(),
            file: "apps/api/base/dep.yaml".into(),
            reason: "mapping values are not allowed".into(),
        }];
        c.resources = vec![
            res("web", "v1/ConfigMap/web/c", "drifted", ""),
            res("web", "v1/Service/web/web", "synced", ""),
            res("api", "v1/ConfigMap/api/c", "applied", ""),
        ];
        let history: Vec<Event> = (0..60)
            .map(|i| Event {
                time: NOW - 1000 + i,
                commit: format!("{i:040x}"),
                note: format!("applied {i}"),
                who: "the hub".into(),
                reason: String::new(),
            })
            .collect();
        let rollouts = vec![
            pb::RolloutStatus {
                env: "dev".into(),
                phase: "idle".into(),
                ..Default::default()
            },
            pb::RolloutStatus {
                env: "prod".into(),
                phase: "paused".into(),
                reason: "prod-1 degraded".into(),
                waves: vec![
                    pb::WaveStatus {
                        name: "canary".into(),
                        clusters: vec!["prod-1".into()],
                        phase: "paused".into(),
                        soak_seconds: 60,
                        ..Default::default()
                    },
                    pb::WaveStatus {
                        name: "rest".into(),
                        clusters: vec!["prod-2".into()],
                        phase: "pending".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ];
        let v = cluster(&c, &history, &rollouts, NOW);
        let apps: Vec<(&str, usize, usize, usize)> = v
            .apps
            .iter()
            .map(|a| (a.name.as_str(), a.objects.len(), a.errors, a.fine))
            .collect();
        assert_eq!(apps, [("api", 1, 1, 1), ("web", 2, 0, 1)]);
        assert_eq!(v.objects, 3);
        assert_eq!(v.drifted.len(), 1);
        assert_eq!(v.drifted[0].id, "v1/ConfigMap/web/c");
        assert_eq!(v.render_errors[0].file, "apps/api/base/dep.yaml");
        assert_eq!(v.history.len(), HISTORY_ROWS);
        assert_eq!(v.history_total, 60);
        assert_eq!(v.history[0].note, "applied 59", "newest first");
        assert_eq!(v.history[0].ago, "15m ago");
        let r = v.rollout.expect("the prod rollout");
        assert_eq!((r.env.as_str(), r.phase.as_str()), ("prod", "paused"));
        assert!(r.waves[0].clusters[0].this && !r.waves[1].clusters[0].this);
        assert_eq!(r.waves[0].detail, "soak 60s");
        assert_eq!(r.waves[1].clusters[0].href, "/clusters/prod-2");
    }

    #[test]
    fn commit_page_collects_running_and_moving_clusters_across_pages() {
        let page1 = pb::FleetStatus {
            hub_revision: Some(meta("bbbbbbbbbb22", "new")),
            clusters: vec![
                cluster_status("dev-1", "dev", "bbbbbbbbbb22", "bbbbbbbbbb22"),
                cluster_status("prod-1", "prod", "aaaaaaaaaa11", "bbbbbbbbbb22"),
            ],
            ..Default::default()
        };
        let page2 = pb::FleetStatus {
            clusters: vec![cluster_status(
                "prod-2",
                "prod",
                "aaaaaaaaaa11",
                "aaaaaaaaaa11",
            )],
            ..Default::default()
        };
        let check = |q: &str, running: &[&str], moving: &[&str], hub: bool| {
            let mut v = commit_page(parse_commit_query(q).unwrap());
            add_commit_page(&mut v, &page1);
            add_commit_page(&mut v, &page2);
            let names =
                |cs: &[CommitCluster]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&v.running), running, "{q} running");
            assert_eq!(names(&v.moving), moving, "{q} moving");
            assert_eq!(v.hub_revision, hub, "{q}");
            v
        };
        let v = check("bbbbbbbbbb22", &["dev-1"], &["prod-1"], true);
        assert_eq!(v.commit.unwrap().title, "new");
        let v = check("AAAA", &["prod-1", "prod-2"], &[], false);
        assert_eq!(v.commit.unwrap().title, "applied one");
        let v = check("cccc", &[], &[], false);
        assert!(v.commit.is_none());
    }

    #[test]
    fn bad_commit_ids_are_refused_with_the_form_expected() {
        for bad in ["", "abc", "xyz1", "../../etc", &"a".repeat(41), "abcd/ef"] {
            let e = parse_commit_query(bad).unwrap_err();
            assert!(e.contains("4 to 40 hexadecimal digits"), "{bad}: {e}");
        }
        assert_eq!(parse_commit_query("ABCD1234").unwrap(), "abcd1234");
    }

    #[test]
    fn a_non_ascii_commit_from_a_spoke_is_shortened_by_characters() {
        let v = cluster(
            &cluster_status("dev-1", "dev", "", "aaaaaaaaaa11"),
            &[Event {
                time: NOW,
                commit: "ééééééééé".into(),
                note: "rolled back at the site".into(),
                who: "the site".into(),
                reason: String::new(),
            }],
            &[],
            NOW,
        );
        let c = v.history[0].commit.as_ref().unwrap();
        assert_eq!(c.short, "éééééééé");
        assert_eq!(
            c.href,
            "/commits/%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
        );
    }

    #[test]
    fn hrefs_encode_their_segment() {
        assert_eq!(cluster_href("prod-eu-1"), "/clusters/prod-eu-1");
        assert_eq!(cluster_href("a/b c\"<"), "/clusters/a%2Fb%20c%22%3C");
        assert_eq!(commit_href("abc"), "/commits/abc");
    }

    #[test]
    fn every_text_is_html_escaped() {
        let evil = "<script>alert(1)</script>\"&'";
        let mut c = cluster_status("prod-1", "prod", "aaaaaaaaaa11", "aaaaaaaaaa11");
        c.labels.insert("team".into(), evil.into());
        if let Some(a) = c.applied.as_mut() {
            a.message = evil.into();
            a.author = format!("{evil} <x@example.com>");
        }
        c.render_errors = vec![pb::RenderError {
            app: evil.into(),
            file: evil.into(),
            reason: evil.into(),
        }];
        c.resources = vec![pb::ResourceStatus {
            app: evil.into(),
            id: evil.into(),
            state: "drifted".into(),
            message: evil.into(),
            ..Default::default()
        }];
        let history = [Event {
            time: NOW,
            commit: "aaaaaaaaaa11".into(),
            note: evil.into(),
            who: evil.into(),
            reason: evil.into(),
        }];
        let st = pb::FleetStatus {
            git_error: evil.into(),
            hub_revision: c.applied.clone(),
            clusters: vec![c.clone()],
            total_clusters: 1,
            ..Default::default()
        };
        let mut commit = commit_page("aaaa".into());
        add_commit_page(&mut commit, &st);
        let pages = [
            fleet(&st, NOW, None).render().unwrap(),
            cluster(&c, &history, &[], NOW).render().unwrap(),
            commit.render().unwrap(),
            ErrorView {
                title: evil.into(),
                detail: evil.into(),
            }
            .render()
            .unwrap(),
        ];
        for html in pages {
            assert!(!html.contains("<script>"), "unescaped: {html}");
            assert!(
                html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
                "{html}"
            );
            assert!(!html.contains("<script"), "no script at all: {html}");
        }
    }

    #[test]
    fn pages_refresh_and_link_each_other() {
        let c = cluster_status("dev-1", "dev", "aaaaaaaaaa11", "aaaaaaaaaa11");
        let st = pb::FleetStatus {
            clusters: vec![c.clone()],
            total_clusters: 2,
            ..Default::default()
        };
        let html = fleet(&st, NOW, Some("/?after=dev-1".into()))
            .render()
            .unwrap();
        assert!(
            html.contains(r#"<meta http-equiv="refresh" content="5">"#),
            "{html}"
        );
        assert!(html.contains(r#"href="/clusters/dev-1""#), "{html}");
        assert!(html.contains(r#"href="/commits/aaaaaaaaaa11""#), "{html}");
        assert!(html.contains(r#"href="/?after=dev-1""#), "{html}");
        let html = cluster(&c, &[], &[], NOW).render().unwrap();
        assert!(html.contains(r#"href="/commits/aaaaaaaaaa11""#), "{html}");
        assert!(html.contains(r#"href="/""#), "{html}");
        let mut v = commit_page("aaaaaaaaaa11".into());
        add_commit_page(&mut v, &st);
        let html = v.render().unwrap();
        assert!(html.contains(r#"href="/clusters/dev-1""#), "{html}");
    }
}
