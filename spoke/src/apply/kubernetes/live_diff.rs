//! `fleetctl diff`: what a sync would change now, object by object. Each
//! desired object is applied with `dryRun=All` and force (as `kubectl diff
//! --server-side --force-conflicts` does, so a hand edit shows as a change,
//! not as a conflict) and compared with the live object; inventory objects
//! that prune would delete are shown as removed with their live lines. An
//! object that cannot be diffed (its kind not served yet, a refused read) is
//! listed with the reason and does not fail the others. The reconciler answers it between passes, and a pass never waits for health,
//! so a held wave does not delay it.

use std::collections::BTreeSet;

use fleet_render::diff::{Change, ResourceDiff, unified};
use fleet_render::{DesiredState, Resource, ResourceId};
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::plan::{self, FIELD_MANAGER};
use super::{KubernetesApplier, api_error, effective_id, get_opt, parse_manifest};
use crate::apply::Inventory;

impl KubernetesApplier {
    pub(crate) async fn live_diff(
        &mut self,
        state: &DesiredState,
        inv: &Inventory,
        app: Option<&str>,
    ) -> Result<Vec<ResourceDiff>, String> {
        let mut out = Vec::new();
        for (a, r) in state
            .resources()
            .filter(|(a, _)| app.is_none_or(|x| x == *a))
        {
            // One object that cannot be diffed (its kind not served yet, a
            // refused read) is reported in its place; the others are diffed.
            match self.object_diff(state, a, r).await {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                Err(e) => out.push(ResourceDiff {
                    app: a.into(),
                    id: r.id.to_string(),
                    change: Change::Changed,
                    text: format!("cannot diff: {e}\n"),
                }),
            }
        }
        if state.sync.prune {
            let wanted: BTreeSet<String> =
                state.resources().map(|(_, r)| r.id.to_string()).collect();
            let stale: Vec<_> = Self::k8s_entries(inv)
                .into_values()
                .filter(|e| !wanted.contains(&e.id) && app.is_none_or(|x| x == e.app))
                .collect();
            for e in stale {
                if let Some(d) = self
                    .would_prune(state, &e.app, &e.id, &e.api_version)
                    .await?
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// What a sync would change in one desired object; `None`: nothing.
    async fn object_diff(
        &mut self,
        state: &DesiredState,
        a: &str,
        r: &Resource,
    ) -> Result<Option<ResourceDiff>, String> {
        let id = r.id.to_string();
        let resolved = self.discovery.resolve(&r.api_version, &r.id.kind).await?;
        let manifest = parse_manifest(r)?;
        let body = plan::prepare(&manifest, &state.cluster, a, resolved.namespaced)?;
        let eid = effective_id(r, &body);
        let namespace = (!eid.namespace.is_empty()).then(|| eid.namespace.clone());
        let api = self.api(&resolved.ar, namespace.as_deref());
        let live = get_opt(&api, &eid.name).await.map_err(|e| api_error(&e))?;
        let pp = PatchParams::apply(FIELD_MANAGER).dry_run().force();
        let after = match api.patch(&eid.name, &pp, &Patch::Apply(&body)).await {
            Ok(o) => serde_json::to_value(o).unwrap_or_default(),
            Err(e) => {
                return Ok(Some(ResourceDiff {
                    app: a.into(),
                    id,
                    change: Change::Changed,
                    text: format!("dry-run refused: {}\n", api_error(&e)),
                }));
            }
        };
        let after_text = comparable(&after);
        Ok(match live {
            None => Some(ResourceDiff {
                app: a.into(),
                id: id.clone(),
                change: Change::Added,
                text: unified("", &after_text, "/dev/null", &id),
            }),
            Some(l) => {
                let live_text = comparable(&l);
                (live_text != after_text).then(|| ResourceDiff {
                    app: a.into(),
                    id: id.clone(),
                    change: Change::Changed,
                    text: unified(&live_text, &after_text, &id, &id),
                })
            }
        })
    }

    /// The removal prune would make, with the live object's lines; `None`
    /// when prune would keep it (protected, not fleet's) or it is gone.
    async fn would_prune(
        &mut self,
        state: &DesiredState,
        app: &str,
        id: &str,
        api_version: &str,
    ) -> Result<Option<ResourceDiff>, String> {
        let Some(rid): Option<ResourceId> = plan::parse_id(id) else {
            return Ok(None);
        };
        let resolved = match self.discovery.resolve(api_version, &rid.kind).await {
            Ok(r) => r,
            Err(m) if m.starts_with("unknown") => return Ok(None),
            Err(m) => return Err(format!("{id}: {m}")),
        };
        let ns = (!rid.namespace.is_empty()).then_some(rid.namespace.as_str());
        let live = get_opt(&self.api(&resolved.ar, ns), &rid.name)
            .await
            .map_err(|e| format!("{id}: {}", api_error(&e)))?;
        let Some(live) = live else { return Ok(None) };
        if plan::prunable(&live, &state.cluster).is_err() {
            return Ok(None);
        }
        Ok(Some(ResourceDiff {
            app: app.into(),
            id: id.into(),
            change: fleet_render::diff::Change::Removed,
            text: unified(&comparable(&live), "", id, "/dev/null"),
        }))
    }
}

/// Canonical YAML of an object without the fields the server rewrites on
/// every write (managed fields, resource version, generation, status).
fn comparable(obj: &Value) -> String {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation"] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    fleet_render::yaml::to_canonical(&o)
}
