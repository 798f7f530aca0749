//! `fleetctl status`: the fleet at a glance, as a table or JSON.

use fleet_proto::v1 as pb;
use serde_json::{Value, json};

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

use fleet_proto::display::ago;

/// The worst health any object reports; `-` when the target reports none (directory).
fn health_label(c: &pb::ClusterStatus) -> String {
    let hs: Vec<&str> = c
        .resources
        .iter()
        .map(|r| r.health.as_str())
        .filter(|h| !h.is_empty())
        .collect();
    if hs.is_empty() {
        "-".into()
    } else if hs.contains(&"degraded") {
        "Degraded".into()
    } else if hs.contains(&"progressing") {
        "Progressing".into()
    } else {
        "Healthy".into()
    }
}

fn sync_label(c: &pb::ClusterStatus) -> String {
    let base = match c.sync.as_str() {
        "out_of_sync" => "OutOfSync",
        "synced" => "Synced",
        "drifted" => "Drifted",
        "failed" => "Failed",
        "progressing" => "Progressing",
        _ => "Unknown",
    };
    base.to_string()
}

pub fn table(s: &pb::FleetStatus) -> String {
    table_of(s, false)
}

/// `-o wide`: the table plus labels, the released revision, where the
/// enforced state came from and which key the spoke verified it with.
pub fn wide(s: &pb::FleetStatus) -> String {
    table_of(s, true)
}

/// `-o yaml`: the JSON document as YAML.
pub fn to_yaml(s: &pb::FleetStatus) -> String {
    fleet_render::yaml::to_canonical(&to_json(s))
}

fn table_of(s: &pb::FleetStatus, wide: bool) -> String {
    let now = fleet_hub::status::now();
    let mut out = String::new();
    if let Some(c) = &s.hub_revision {
        out.push_str(&format!(
            "hub revision: {} {} ({})\n",
            short(&c.id),
            c.message.lines().next().unwrap_or(""),
            c.author
        ));
    }
    if !s.git_error.is_empty() {
        out.push_str(&format!("git: {}\n", s.git_error));
    }
    let rows: Vec<Vec<String>> = s
        .clusters
        .iter()
        .map(|c| {
            let applied = c
                .applied
                .as_ref()
                .map(|a| short(&a.id).to_string())
                .unwrap_or_else(|| "-".into());
            let desired = c
                .desired
                .as_ref()
                .map(|a| short(&a.id).to_string())
                .unwrap_or_else(|| "-".into());
            let rev = if applied == desired {
                applied
            } else {
                format!("{applied} -> {desired}")
            };
            let msg = c
                .applied
                .as_ref()
                .or(c.desired.as_ref())
                .map(|m| {
                    format!(
                        "{} ({})",
                        m.message.lines().next().unwrap_or(""),
                        m.author.split(" <").next().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            let problems = c.render_errors.len()
                + c.resources
                    .iter()
                    .filter(|r| {
                        r.state == "failed" || r.state == "drifted" || r.health == "degraded"
                    })
                    .count();
            let mut row = vec![
                c.name.clone(),
                c.labels.get("env").cloned().unwrap_or_default(),
                rev,
                sync_label(c),
                health_label(c),
                if c.connected {
                    "yes".into()
                } else {
                    "no".into()
                },
                ago(now, c.last_seen),
            ];
            if wide {
                let p = c
                    .provenance
                    .as_ref()
                    .and_then(|p| p.spoke.clone())
                    .unwrap_or_default();
                let dash = |s: &str| {
                    if s.is_empty() {
                        "-".to_string()
                    } else {
                        s.to_string()
                    }
                };
                row.extend([
                    c.labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "env")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(","),
                    c.released
                        .as_ref()
                        .map(|r| short(&r.id).to_string())
                        .unwrap_or_else(|| "-".into()),
                    dash(&p.source),
                    dash(p.verified_by.split(' ').next().unwrap_or("")),
                ]);
            }
            row.push(if problems > 0 {
                format!("{problems} problem(s); {msg}")
            } else {
                msg
            });
            row
        })
        .collect();
    let mut header = vec![
        "CLUSTER",
        "ENV",
        "REVISION",
        "SYNC",
        "HEALTH",
        "CONNECTED",
        "LAST SEEN",
    ];
    if wide {
        header.extend(["LABELS", "RELEASED", "SOURCE", "VERIFIED BY"]);
    }
    header.push("COMMIT");
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let last = header.len() - 1;
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                l.push_str(c);
            } else {
                l.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header));
    for r in &rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    let mut details = String::new();
    for c in &s.clusters {
        if !c.held_reason.is_empty() {
            let pending = c
                .desired
                .as_ref()
                .map(|d| short(&d.id).to_string())
                .unwrap_or_default();
            details.push_str(&format!(
                "  {}: {pending} pending: {}\n",
                c.name, c.held_reason
            ));
        }
        for e in &c.render_errors {
            details.push_str(&format!(
                "  {}: render error in app {}: {}: {}\n",
                c.name, e.app, e.file, e.reason
            ));
        }
        for r in c
            .resources
            .iter()
            .filter(|r| r.state == "failed" || r.state == "drifted" || r.health == "degraded")
        {
            details.push_str(&format!(
                "  {}: {} {} ({}): {}\n",
                c.name, r.state, r.id, r.app, r.message
            ));
        }
    }
    if !details.is_empty() {
        out.push_str("\nproblems:\n");
        out.push_str(&details);
    }
    out
}

fn commit(c: &Option<pb::CommitMeta>) -> Value {
    match c {
        Some(c) => json!({"id": c.id, "author": c.author, "message": c.message, "time": c.time}),
        None => Value::Null,
    }
}

/// The chain commit (and signer) -> state digest -> hub signature -> the
/// spoke's verification -> what it enforces, and where it came from.
fn provenance(p: &pb::Provenance) -> Value {
    let spoke = p.spoke.clone().unwrap_or_default();
    let text = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "commit": text(&p.commit),
        "commitSigner": text(&p.commit_signer),
        "stateDigest": text(&p.state_digest),
        "hubKey": text(&p.hub_key),
        "verifiedBy": text(&spoke.verified_by),
        "source": text(&spoke.source),
        "publishedAtMs": if spoke.published_at_ms == 0 { Value::Null } else { json!(spoke.published_at_ms) },
        "bundle": text(&spoke.bundle),
        "bundleAt": if spoke.bundle_at == 0 { Value::Null } else { json!(spoke.bundle_at) },
        "rolledBackTo": text(&spoke.rolled_back_to),
        "rolledBackAt": if spoke.rolled_back_at == 0 { Value::Null } else { json!(spoke.rolled_back_at) },
    })
}

pub fn to_json(s: &pb::FleetStatus) -> Value {
    json!({
        "hubRevision": commit(&s.hub_revision),
        "gitError": if s.git_error.is_empty() { Value::Null } else { Value::String(s.git_error.clone()) },
        "clusters": s.clusters.iter().map(|c| json!({
            "name": c.name,
            "labels": c.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "desired": commit(&c.desired),
            "desiredDigest": c.desired_digest,
            "released": commit(&c.released),
            "releasedDigest": c.released_digest,
            "heldReason": if c.held_reason.is_empty() { Value::Null } else { Value::String(c.held_reason.clone()) },
            "applied": commit(&c.applied),
            "appliedDigest": c.applied_digest,
            "sync": c.sync,
            "connected": c.connected,
            "lastSeen": c.last_seen,
            "offlineSince": if c.offline_since == 0 { Value::Null } else { json!(c.offline_since) },
            "provenance": c.provenance.as_ref().map(provenance).unwrap_or(Value::Null),
            "renderErrors": c.render_errors.iter().map(|e| json!({"app": e.app, "file": e.file, "reason": e.reason})).collect::<Vec<_>>(),
            "resources": c.resources.iter().map(|r| json!({"app": r.app, "id": r.id, "state": r.state, "message": r.message, "health": r.health, "healthMessage": r.health_message})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rollouts": s.rollouts.iter().map(crate::rollout::to_json).collect::<Vec<_>>(),
    })
}

/// Whether every cluster runs its desired state, synced.
pub fn converged(s: &pb::FleetStatus) -> bool {
    !s.clusters.is_empty()
        && s.clusters.iter().all(|c| {
            c.sync == "synced"
                && !c.desired_digest.is_empty()
                && c.applied_digest == c.desired_digest
                && c.applied.as_ref().map(|a| &a.id) == c.desired.as_ref().map(|d| &d.id)
        })
}
