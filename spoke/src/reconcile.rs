//! The spoke's loop: apply each new desired state, check for drift on an
//! interval, and report. Works from the cache alone when the hub is away.

use std::sync::Arc;
use std::time::Duration;

use fleet_proto::v1 as pb;
use fleet_render::DesiredState;
use sha2::Digest as _;
use tokio::sync::watch;

use crate::apply::{Applier, Inventory, Outcome, ResourceOutcome};
use crate::cache::Cache;
use crate::link::Outbox;

pub struct Reconciler<A: Applier> {
    pub applier: A,
    pub cache: Cache,
    pub inventory: Inventory,
    pub desired: watch::Receiver<Option<Arc<DesiredState>>>,
    pub reports: Outbox,
    /// Live diff requests from the hub.
    pub diffs: tokio::sync::mpsc::Receiver<crate::link::DiffAsk>,
    pub drift_interval: Duration,
    pub metrics: std::sync::Arc<crate::metrics::SpokeMetrics>,
    /// Opens SOPS documents just before they are applied.
    pub secrets: std::sync::Arc<crate::secrets::Secrets>,
}

/// The cluster-level verdict from per-resource outcomes.
pub fn verdict(outs: &[ResourceOutcome]) -> &'static str {
    if outs.iter().any(|o| o.outcome == Outcome::Failed) {
        "failed"
    } else if outs.iter().any(|o| o.outcome == Outcome::Drifted) {
        "drifted"
    } else if outs.iter().any(|o| o.outcome == Outcome::Pending) {
        "progressing"
    } else {
        "synced"
    }
}

impl<A: Applier> Reconciler<A> {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.drift_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What was last handed to the link, as a digest (the report itself
        // is the link's).
        let mut last_sent: Option<[u8; 32]> = None;
        // Apply what the cache holds right away: the hub may be down.
        self.desired.mark_changed();
        loop {
            let full = tokio::select! {
                c = self.desired.changed() => { if c.is_err() { return } true }
                _ = tick.tick() => false,
                _ = self.applier.changed() => false,
                Some((req, answer)) = self.diffs.recv() => {
                    let report = self.diff(req).await;
                    let _ = answer.send(report);
                    continue;
                }
                _ = shutdown.changed() => return,
            };
            let Some(state) = self.desired.borrow_and_update().clone() else {
                continue;
            };
            let started = std::time::Instant::now();
            let outs = self.reconcile(&state, full).await;
            self.metrics.pass(&outs, full, started.elapsed());
            let status = report(&state, outs);
            let digest = report_digest(&status);
            if full || last_sent != Some(digest) {
                if let Err(e) = self.cache.save_report(&status) {
                    tracing::warn!(error = %e, "cannot keep the status report in the cache");
                }
                last_sent = Some(digest);
                self.reports.put(status);
            }
        }
    }

    #[tracing::instrument(skip_all, fields(rev = %state.commit.short_id(), full))]
    async fn reconcile(&mut self, state: &DesiredState, full: bool) -> Vec<ResourceOutcome> {
        let opened = self.secrets.open(state);
        let target = opened.as_ref().map_or(state, |o| &o.state);
        let mut outs = if full {
            self.applier.apply(target, &mut self.inventory).await
        } else {
            self.applier
                .reconcile_drift(target, &mut self.inventory)
                .await
        };
        if let Some(o) = &opened {
            o.explain(&mut outs);
        }
        if let Err(e) = self.cache.save_inventory(&mut self.inventory) {
            tracing::error!(error = %e, "cannot persist the inventory");
        }
        for o in &outs {
            match o.outcome {
                Outcome::Applied | Outcome::Pruned => {
                    tracing::info!(app = %o.app, id = %o.id, outcome = o.outcome.as_str(), "reconciled")
                }
                Outcome::Healed | Outcome::Drifted => {
                    tracing::warn!(app = %o.app, id = %o.id, outcome = o.outcome.as_str(), message = %o.message, "drift")
                }
                Outcome::Failed => {
                    tracing::error!(app = %o.app, id = %o.id, message = %o.message, "apply failed")
                }
                Outcome::Unchanged | Outcome::Orphaned | Outcome::Pending => {}
            }
        }
        outs
    }
}

impl<A: Applier> Reconciler<A> {
    async fn diff(&mut self, req: pb::DiffRequest) -> pb::DiffReport {
        // The hub sends the latest commit's state while it holds it from us.
        let state = if req.state.is_empty() {
            self.desired.borrow().clone()
        } else {
            match fleet_proto::convert::decode_state(&req.state) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    return pb::DiffReport {
                        id: req.id,
                        error: format!("the state sent with the diff request does not verify: {e}"),
                        ..Default::default()
                    };
                }
            }
        };
        let Some(state) = state else {
            return pb::DiffReport {
                id: req.id,
                diffs: Vec::new(),
                error: "the spoke holds no desired state yet".into(),
                ..Default::default()
            };
        };
        let revision = state.commit.id.clone();
        let app = (!req.app.is_empty()).then_some(req.app.as_str());
        if let Some(a) = app {
            if !state.apps.contains_key(a) {
                return pb::DiffReport {
                    id: req.id,
                    diffs: Vec::new(),
                    error: format!("app {a} does not run on cluster {}", state.cluster),
                    ..Default::default()
                };
            }
        }
        let opened = self.secrets.open(&state);
        let target = opened.as_ref().map_or(&*state, |o| &o.state);
        match self.applier.diff(target, &self.inventory, app).await {
            Ok(diffs) => pb::DiffReport {
                id: req.id,
                diffs: diffs
                    .into_iter()
                    .map(|mut d| {
                        if opened.as_ref().is_some_and(|o| o.sops_ids.contains(&d.id)) {
                            d.text = "(a SOPS-encrypted object: its values are not shown)\n".into();
                        }
                        d
                    })
                    .map(|d| pb::ObjectDiff {
                        app: d.app,
                        id: d.id,
                        change: match d.change {
                            fleet_render::diff::Change::Added => "added",
                            fleet_render::diff::Change::Removed => "removed",
                            fleet_render::diff::Change::Changed => "changed",
                        }
                        .into(),
                        text: d.text,
                    })
                    .collect(),
                error: String::new(),
                revision,
                held_reason: String::new(),
            },
            Err(e) => pb::DiffReport {
                id: req.id,
                diffs: Vec::new(),
                error: e,
                ..Default::default()
            },
        }
    }
}

/// The report of a pass, trimmed to what the hub accepts
/// (`fleet_proto::limits`): every problem kept, long texts cut. The outcomes
/// are moved into it, not copied.
fn report(state: &DesiredState, outs: Vec<ResourceOutcome>) -> pb::StatusReport {
    let mut r = full_report(state, outs);
    let left_out = fleet_proto::limits::trim_status(&mut r);
    if left_out > 0 {
        tracing::info!(
            left_out,
            kept = r.resources.len(),
            "status report trimmed to the hub's limits (objects that are fine left out)"
        );
    }
    r
}

fn full_report(state: &DesiredState, outs: Vec<ResourceOutcome>) -> pb::StatusReport {
    pb::StatusReport {
        revision: state.commit.id.clone(),
        digest: state.digest.clone(),
        sync: verdict(&outs).to_string(),
        resources: outs
            .into_iter()
            .map(|o| {
                let (health, health_message) = match o.health {
                    Some(h) => (h.state.as_str().to_string(), h.reason),
                    None => Default::default(),
                };
                pb::ResourceStatus {
                    app: o.app,
                    id: o.id,
                    state: o.outcome.as_str().to_string(),
                    message: o.message,
                    health,
                    health_message,
                }
            })
            .collect(),
        provenance: None,
        observed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    }
}

/// A digest of what a report says (its revision, digest, verdict and
/// resources; not when it was made or its provenance): a report whose digest
/// was sent already is not sent again, and no copy of it is kept to compare.
fn report_digest(r: &pb::StatusReport) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    field(&r.revision);
    field(&r.digest);
    field(&r.sync);
    for x in r.resources.iter() {
        for s in [
            &x.app,
            &x.id,
            &x.state,
            &x.message,
            &x.health,
            &x.health_message,
        ] {
            field(s);
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(id: &str, state: &str, message: &str) -> pb::ResourceStatus {
        pb::ResourceStatus {
            app: "web".into(),
            id: id.into(),
            state: state.into(),
            message: message.into(),
            health: "healthy".into(),
            health_message: String::new(),
        }
    }

    fn check(a: &pb::StatusReport, b: &pb::StatusReport, same: bool) {
        assert_eq!(report_digest(a) == report_digest(b), same, "{a:?}\n{b:?}");
    }

    #[test]
    fn a_report_digest_covers_what_the_report_says_not_when() {
        let base = pb::StatusReport {
            revision: "r1".into(),
            digest: "d1".into(),
            sync: "synced".into(),
            resources: vec![
                res("ConfigMap/n/a", "synced", ""),
                res("ConfigMap/n/b", "synced", ""),
            ],
            observed_at: 1,
            provenance: None,
        };
        let later = pb::StatusReport {
            observed_at: 2,
            provenance: Some(pb::SpokeProvenance {
                source: "network".into(),
                ..Default::default()
            }),
            ..base.clone()
        };
        check(&base, &later, true);
        let mut other = base.clone();
        other.resources[1].state = "drifted".into();
        check(&base, &other, false);
        let mut other = base.clone();
        other.revision = "r2".into();
        check(&base, &other, false);
        let mut other = base.clone();
        other.resources.pop();
        check(&base, &other, false);
        // Field boundaries count: text moved from one field to the next differs.
        let mut a = base.clone();
        a.resources[0].message = "ab".into();
        let mut b = base.clone();
        b.resources[0].message = "a".into();
        b.resources[0].health = "bhealthy".into();
        check(&a, &b, false);
    }

    #[test]
    fn a_report_moves_the_outcomes_in() {
        let state = DesiredState::new(
            "c".into(),
            fleet_render::CommitMeta::default(),
            fleet_render::SyncPolicy::default(),
            Default::default(),
        );
        let outs = vec![
            ResourceOutcome {
                app: "web".into(),
                id: "ConfigMap/n/a".into(),
                outcome: Outcome::Applied,
                message: String::new(),
                health: Some(crate::apply::Health::progressing("rolling out")),
            },
            ResourceOutcome {
                app: "web".into(),
                id: "ConfigMap/n/b".into(),
                outcome: Outcome::Failed,
                message: "apply: no".into(),
                health: None,
            },
        ];
        let r = report(&state, outs);
        assert_eq!(r.sync, "failed");
        assert_eq!(
            r.resources,
            vec![
                pb::ResourceStatus {
                    health: "progressing".into(),
                    health_message: "rolling out".into(),
                    ..res("ConfigMap/n/a", "applied", "")
                },
                pb::ResourceStatus {
                    health: String::new(),
                    ..res("ConfigMap/n/b", "failed", "apply: no")
                },
            ]
        );
    }
}
