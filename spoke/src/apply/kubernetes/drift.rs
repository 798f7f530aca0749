//! Drift of an object fleet applied at its current digest: compared with the
//! live copy the watches keep (no API call), healed under self-heal.
//!
//! Healing forces: fleet applied exactly these fields at this digest, so it
//! owned every one of them, and an edit moved their ownership away. An object
//! fleet has *not* applied at this digest never gets here (see
//! [`super::sync`]), so a field fleet never owned is never forced by a heal.

use fleet_render::ResourceId;
use serde_json::Value;

use super::discovery::Resolved;
use super::sync::{Item, apply_message};
use super::{KubernetesApplier, api_error, diff, get_opt, outcome, watch};
use crate::apply::{HealthState, Outcome, ResourceOutcome};

impl KubernetesApplier {
    pub(crate) async fn check_drift(
        &self,
        state: &fleet_render::DesiredState,
        it: &Item<'_>,
        resolved: &Resolved,
        body: &Value,
        id: &ResourceId,
    ) -> ResourceOutcome {
        let eid = id.to_string();
        let gk = watch::group_kind(&resolved.ar.group, &resolved.ar.kind);
        let (ready, mut live) = {
            let store = self.store.lock().expect("live store");
            (store.ready.contains(&gk), store.objects.get(&eid))
        };
        let watched = ready;
        // Without a watch that listed this kind, read the object (a read,
        // never a write): after a restart, or while it is not healthy yet.
        let stale = match &live {
            None => !watched,
            Some(l) => !watched && self.health_of(resolved, l).state != HealthState::Healthy,
        };
        if stale {
            let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
            match get_opt(&self.api(&resolved.ar, ns), &id.name).await {
                Ok(Some(l)) => {
                    self.remember(&eid, l.clone());
                    live = Some(l);
                }
                Ok(None) => {
                    self.store.lock().expect("live store").objects.remove(&eid);
                    live = None;
                }
                Err(e) => {
                    return outcome(
                        it.app,
                        &eid,
                        Outcome::Failed,
                        format!("reading it: {}", api_error(&e)),
                    );
                }
            }
        }
        let what = match &live {
            None => "was deleted outside fleet".to_string(),
            Some(l) => {
                let paths = diff::drift(body, l);
                if paths.is_empty() {
                    let mut o = outcome(it.app, &eid, Outcome::Unchanged, "");
                    o.health = Some(self.health_of(resolved, l));
                    return o;
                }
                let by = diff::last_other_manager(l, super::plan::FIELD_MANAGER)
                    .map(|m| format!(" (last written by {m})"))
                    .unwrap_or_default();
                format!("{} changed outside fleet{by}", paths.join(", "))
            }
        };
        if !state.sync.self_heal {
            let mut o = outcome(
                it.app,
                &eid,
                Outcome::Drifted,
                format!("{what}; self-heal is off"),
            );
            o.health = live.as_ref().map(|l| self.health_of(resolved, l));
            return o;
        }
        match self.apply_body(resolved, body, id, true).await {
            Ok(l) => {
                let mut o = outcome(it.app, &eid, Outcome::Healed, format!("{what}; restored"));
                o.health = Some(self.health_of(resolved, &l));
                o
            }
            Err(e) => outcome(
                it.app,
                &eid,
                Outcome::Failed,
                format!("{what}; restoring it: {}", apply_message(&e)),
            ),
        }
    }
}
