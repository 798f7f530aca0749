//! `fleetctl rollout status|pause|resume|abort ENV`: the hub's progressive
//! rollout of an environment, as a table with timings or JSON.

use fleet_proto::v1 as pb;
use serde_json::{Value, json};

use crate::client::{self, HubArgs};
use crate::history::utc;

fn time(t: i64) -> Value {
    if t == 0 { Value::Null } else { json!(t) }
}

pub fn to_json(r: &pb::RolloutStatus) -> Value {
    let current = r.waves.get(r.wave as usize);
    json!({
        "env": r.env,
        "revision": r.revision.as_ref().map(|c| json!({"id": c.id, "author": c.author, "message": c.message, "time": c.time})),
        "phase": r.phase,
        "wave": if r.phase == "idle" { Value::Null } else { json!(r.wave + 1) },
        "waveInProgress": match (current, r.phase.as_str()) {
            (Some(w), "progressing" | "paused") => json!(w.name),
            _ => Value::Null,
        },
        "waves": r.waves.iter().map(|w| json!({
            "name": w.name,
            "clusters": w.clusters,
            "phase": w.phase,
            "maxParallel": w.max_parallel,
            "soakSeconds": w.soak_seconds,
            "startedAt": time(w.started_at),
            "syncedAt": time(w.synced_at),
            "soakUntil": time(w.soak_until),
            "finishedAt": time(w.finished_at),
            "released": w.released,
        })).collect::<Vec<_>>(),
        "reason": if r.reason.is_empty() { Value::Null } else { json!(r.reason) },
        "by": if r.by.is_empty() { Value::Null } else { json!(r.by) },
        "startedAt": time(r.started_at),
        "finishedAt": time(r.finished_at),
        "immediate": r.immediate,
    })
}

fn clock(t: i64) -> String {
    if t == 0 {
        "-".into()
    } else {
        utc(t)[11..].to_string()
    }
}

fn took(from: i64, to: i64) -> String {
    if from == 0 || to == 0 {
        "-".into()
    } else {
        format!("{}s", (to - from).max(0))
    }
}

pub fn table(r: &pb::RolloutStatus) -> String {
    let mut out = String::new();
    let rev = r
        .revision
        .as_ref()
        .map(|c| {
            format!(
                "{} {}",
                &c.id[..c.id.len().min(8)],
                c.message.lines().next().unwrap_or("")
            )
        })
        .unwrap_or_else(|| "no revision rolled out yet".into());
    out.push_str(&format!(
        "environment {}: rollout {} — {rev}\n",
        r.env, r.phase
    ));
    if r.started_at != 0 {
        out.push_str(&format!(
            "started {} UTC{}\n",
            utc(r.started_at),
            if r.finished_at != 0 {
                format!(
                    ", finished {} UTC, took {}",
                    utc(r.finished_at),
                    took(r.started_at, r.finished_at)
                )
            } else {
                String::new()
            }
        ));
    }
    if r.immediate {
        out.push_str("a rollback: released to every cluster at once\n");
    }
    if !r.reason.is_empty() && (r.phase == "paused" || r.phase == "aborted") {
        out.push_str(&format!("{} by {}: {}\n", r.phase, r.by, r.reason));
    }
    let header = [
        "WAVE", "NAME", "PHASE", "CLUSTERS", "PARALLEL", "SOAK", "STARTED", "SYNCED", "SOAKED",
        "TOOK",
    ];
    let n = r.waves.len();
    let rows: Vec<[String; 10]> = r
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            [
                format!("{}/{n}", i + 1),
                w.name.clone(),
                w.phase.clone(),
                if w.clusters.is_empty() {
                    "-".into()
                } else {
                    w.clusters.join(",")
                },
                if w.max_parallel == 0 {
                    "all".into()
                } else {
                    w.max_parallel.to_string()
                },
                format!("{}s", w.soak_seconds),
                clock(w.started_at),
                clock(w.synced_at),
                clock(w.finished_at),
                took(w.started_at, w.finished_at),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(&format!("{:<w$}  ", c, w = widths[i]));
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

pub fn get(hub: &HubArgs, env: &str) -> anyhow::Result<pb::RolloutStatus> {
    crate::runtime().block_on(async {
        client::Admin::connect(hub)?
            .rollout(pb::GetRolloutRequest { env: env.into() })
            .await
    })
}

pub fn control(
    hub: &HubArgs,
    env: &str,
    action: &str,
    reason: &str,
) -> anyhow::Result<pb::RolloutStatus> {
    crate::runtime().block_on(async {
        client::Admin::connect(hub)?
            .control_rollout(pb::ControlRolloutRequest {
                env: env.into(),
                action: action.into(),
                reason: reason.into(),
            })
            .await
    })
}

/// Why the rollout of `target`'s environment is paused, if it is (for a
/// break-glass rollback). An environment without a rollout is not paused.
pub fn paused_reason(
    hub: &HubArgs,
    repo: &std::path::Path,
    target: &str,
) -> anyhow::Result<Option<String>> {
    let l = crate::release::load(repo, "HEAD")?;
    let env = match l.fleet.clusters.get(target) {
        Some(c) => match c.labels.get("env") {
            Some(e) => e.clone(),
            None => return Ok(None),
        },
        None => target.to_string(),
    };
    let has_rollout = l
        .fleet
        .environments
        .get(&env)
        .is_some_and(|e| e.rollout.is_some());
    if !has_rollout {
        return Ok(None);
    }
    let r = get(hub, &env)?;
    Ok((r.phase == "paused").then(|| format!("{}: {}", r.by, r.reason)))
}
