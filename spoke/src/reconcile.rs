//! The spoke's loop: apply each new desired state, check for drift on an
//! interval, and report. Works from the cache alone when the hub is away.

use std::time::Duration;

use fleet_proto::v1 as pb;
use fleet_render::DesiredState;
use prost::Message;
use tokio::sync::watch;

use crate::apply::{Applier, Inventory, Outcome, ResourceOutcome};
use crate::cache::Cache;
use crate::link::Report;

pub struct Reconciler<A: Applier> {
    pub applier: A,
    pub cache: Cache,
    pub inventory: Inventory,
    pub desired: watch::Receiver<Option<DesiredState>>,
    pub reports: watch::Sender<Option<Report>>,
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
        let mut last_sent: Option<pb::StatusReport> = None;
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
            let status = report(&state, &outs);
            let changed = last_sent.as_ref().is_none_or(|l| !same_report(l, &status));
            if full || changed {
                if let Err(e) = self.cache.save_report(&status.encode_to_vec()) {
                    tracing::warn!(error = %e, "cannot keep the status report in the cache");
                }
                last_sent = Some(status.clone());
                self.reports.send_replace(Some(Report { status }));
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
                Ok(s) => Some(s),
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
        let target = opened.as_ref().map_or(&state, |o| &o.state);
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
/// (`fleet_proto::limits`): every problem kept, long texts cut.
fn report(state: &DesiredState, outs: &[ResourceOutcome]) -> pb::StatusReport {
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

fn full_report(state: &DesiredState, outs: &[ResourceOutcome]) -> pb::StatusReport {
    pb::StatusReport {
        revision: state.commit.id.clone(),
        digest: state.digest.clone(),
        sync: verdict(outs).to_string(),
        resources: outs
            .iter()
            .map(|o| pb::ResourceStatus {
                app: o.app.clone(),
                id: o.id.clone(),
                state: o.outcome.as_str().to_string(),
                message: o.message.clone(),
                health: o
                    .health
                    .as_ref()
                    .map(|h| h.state.as_str().to_string())
                    .unwrap_or_default(),
                health_message: o
                    .health
                    .as_ref()
                    .map(|h| h.reason.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        provenance: None,
        observed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    }
}

fn same_report(a: &pb::StatusReport, b: &pb::StatusReport) -> bool {
    a.revision == b.revision
        && a.digest == b.digest
        && a.sync == b.sync
        && a.resources == b.resources
}
