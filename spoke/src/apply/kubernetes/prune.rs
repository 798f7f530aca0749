//! Prune: delete what fleet applied and no longer wants — ordinary objects,
//! then CRDs, then Namespaces — only objects in the inventory that carry this
//! cluster's label live, and only for apps whose sync is complete. Outcomes
//! are kept until the next state, so a pass does not ask the API again.

use std::collections::{BTreeSet, HashSet};

use fleet_render::DesiredState;
use kube::api::{DeleteParams, PropagationPolicy};

use super::plan::{self, Keep};
use super::{KubernetesApplier, api_error, get_opt, is_not_found, outcome};
use crate::apply::{Inventory, InventoryEntry, Outcome, ResourceOutcome};

impl KubernetesApplier {
    pub(crate) async fn prune(
        &mut self,
        state: &DesiredState,
        wanted: &plan::Wanted,
        inv: &mut Inventory,
        complete: &BTreeSet<String>,
    ) -> Vec<ResourceOutcome> {
        // Only the stale entries are copied, not the whole inventory.
        let stale: Vec<(String, InventoryEntry)> = inv
            .keys()
            .filter(|k| k.starts_with("k8s:") && !wanted.contains(k))
            .filter_map(|k| Some((k.clone(), inv.get(k)?.clone())))
            .collect();
        let stale_keys: HashSet<String> = stale.iter().map(|(k, _)| k.clone()).collect();
        // Kept outcomes of objects desired again are dropped.
        self.pruned.retain(|k, _| !wanted.contains(k));
        let mut outs = Vec::new();
        for (key, e) in plan::prune_order(stale) {
            let out = |o, m: String| outcome(&e.app, &e.id, o, m);
            if !state.sync.prune {
                outs.push(out(
                    Outcome::Orphaned,
                    "no longer desired; kept because prune is off".into(),
                ));
                continue;
            }
            if let Some(o) = self.pruned.get(&key) {
                outs.push(o.clone());
                continue;
            }
            if !complete.contains(&e.app) {
                outs.push(out(
                    Outcome::Pending,
                    format!("prune waits until app {} has synced", e.app),
                ));
                continue;
            }
            if let Some(o) = self.backing_off(&e.id, "") {
                outs.push(o);
                continue;
            }
            let mut o = self.prune_one(state, &key, &e, inv).await;
            match o.outcome {
                Outcome::Failed => o = self.fail(&e.id, "", o, false),
                _ => {
                    self.failures.remove(&e.id);
                    self.pruned.insert(key, o.clone());
                }
            }
            outs.push(o);
        }
        // Pruned and forgotten objects stay reported until the next state.
        outs.extend(
            self.pruned
                .iter()
                .filter(|(k, _)| !stale_keys.contains(*k))
                .map(|(_, o)| o.clone()),
        );
        outs
    }

    async fn prune_one(
        &mut self,
        state: &DesiredState,
        key: &str,
        e: &InventoryEntry,
        inv: &mut Inventory,
    ) -> ResourceOutcome {
        let out = |o, m: String| outcome(&e.app, &e.id, o, m);
        let Some(id) = plan::parse_id(&e.id) else {
            inv.remove(key);
            return out(Outcome::Pruned, "unreadable inventory entry dropped".into());
        };
        let resolved = match self.discovery.resolve(&e.api_version, &id.kind).await {
            Ok(r) => r,
            Err(m) if m.starts_with("unknown") => {
                // Its API is gone (a CRD pruned before): so is the object.
                inv.remove(key);
                return out(Outcome::Pruned, format!("gone with its API: {m}"));
            }
            Err(m) => return out(Outcome::Failed, format!("prune: {m}")),
        };
        let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
        let api = self.api(&resolved.ar, ns);
        let live = match get_opt(&api, &id.name).await {
            Ok(None) => {
                inv.remove(key);
                return out(Outcome::Pruned, "already gone".into());
            }
            Ok(Some(l)) => l,
            Err(err) => {
                return out(
                    Outcome::Failed,
                    format!("prune: reading it: {}", api_error(&err)),
                );
            }
        };
        match plan::prunable(&live, &state.cluster) {
            Err(Keep::NotOurs(m)) => {
                inv.remove(key);
                return out(Outcome::Orphaned, m);
            }
            Err(Keep::Protected(m)) => return out(Outcome::Orphaned, m),
            Ok(()) => {}
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        self.count_write();
        match api.delete(&id.name, &dp).await {
            Ok(_) => {
                inv.remove(key);
                self.store.lock().expect("live store").objects.remove(&e.id);
                out(Outcome::Pruned, String::new())
            }
            Err(err) if is_not_found(&err) => {
                inv.remove(key);
                out(Outcome::Pruned, "already gone".into())
            }
            Err(err) => out(Outcome::Failed, format!("prune: {}", api_error(&err))),
        }
    }
}
