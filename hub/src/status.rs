//! What the hub knows about each cluster beyond its desired state: labels and
//! repo errors from the last render, and what its spoke reported.

use std::collections::BTreeMap;

use fleet_render::{CommitMeta, RenderError};

/// The fleet as of the last render.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FleetIndex {
    pub commit: CommitMeta,
    /// Stored apart from the rest, and only when it changed (hubs before
    /// stored it inline, which still loads).
    #[serde(default, skip_serializing)]
    pub clusters: std::sync::Arc<BTreeMap<String, crate::renderer::ClusterMeta>>,
    pub cluster_errors: BTreeMap<String, Vec<RenderError>>,
    /// Version of the hub that rendered it: a restarted hub of the same
    /// version trusts the stored states of `commit` instead of rendering it again.
    #[serde(default)]
    pub renderer: String,
    /// The rollout waves of each environment that declares them.
    #[serde(default)]
    pub rollouts: BTreeMap<String, crate::rollout::RolloutPlan>,
}

/// Stored in [`FleetIndex::renderer`].
pub const RENDERER_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceRecord {
    pub app: String,
    pub id: String,
    pub state: String,
    pub message: String,
    /// healthy | progressing | degraded, empty where the target cannot tell.
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub health_message: String,
}

/// The last word from a cluster's spoke.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpokeRecord {
    /// The commit the spoke last acknowledged.
    pub applied: Option<CommitMeta>,
    pub applied_digest: String,
    /// The spoke's own verdict on its last reconcile.
    pub sync: String,
    pub resources: Vec<ResourceRecord>,
    /// Seconds since the Unix epoch.
    pub last_seen: i64,
    /// Since when the spoke has reported its applied state synced with no
    /// failed, drifted, degraded or progressing object (0: it is not).
    #[serde(default)]
    pub healthy_since: i64,
    /// Where the state the spoke enforces came from (its last report).
    #[serde(default)]
    pub provenance: Option<SpokeProvenance>,
}

/// `pb::SpokeProvenance` as the hub stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpokeProvenance {
    pub verified_by: String,
    pub source: String,
    pub published_at_ms: i64,
    pub bundle: String,
    pub bundle_at: i64,
    pub rolled_back_to: String,
    pub rolled_back_at: i64,
}

impl From<fleet_proto::v1::SpokeProvenance> for SpokeProvenance {
    fn from(p: fleet_proto::v1::SpokeProvenance) -> Self {
        SpokeProvenance {
            verified_by: p.verified_by,
            source: p.source,
            published_at_ms: p.published_at_ms,
            bundle: p.bundle,
            bundle_at: p.bundle_at,
            rolled_back_to: p.rolled_back_to,
            rolled_back_at: p.rolled_back_at,
        }
    }
}

impl From<&SpokeProvenance> for fleet_proto::v1::SpokeProvenance {
    fn from(p: &SpokeProvenance) -> Self {
        fleet_proto::v1::SpokeProvenance {
            verified_by: p.verified_by.clone(),
            source: p.source.clone(),
            published_at_ms: p.published_at_ms,
            bundle: p.bundle.clone(),
            bundle_at: p.bundle_at,
            rolled_back_to: p.rolled_back_to.clone(),
            rolled_back_at: p.rolled_back_at,
        }
    }
}

impl SpokeRecord {
    /// Synced, every object fine.
    pub fn healthy(&self) -> bool {
        self.sync == "synced"
            && !self.applied_digest.is_empty()
            && self.resources.iter().all(|r| {
                r.state != "failed"
                    && r.state != "drifted"
                    && r.health != "degraded"
                    && r.health != "progressing"
            })
    }
}

/// The sync verdict shown for a cluster.
pub fn sync_verdict(desired_digest: Option<&str>, rec: Option<&SpokeRecord>) -> &'static str {
    let Some(rec) = rec else { return "unknown" };
    let Some(desired) = desired_digest else {
        return "unknown";
    };
    if rec.applied_digest != desired {
        return "out_of_sync";
    }
    match rec.sync.as_str() {
        "synced" => "synced",
        "drifted" => "drifted",
        "failed" => "failed",
        "progressing" => "progressing",
        _ => "unknown",
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Something that happened to a cluster: a spoke applied a commit, an
/// admin synced it by hand, a rollout moved, paused or was controlled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub time: i64,
    pub commit: String,
    pub note: String,
    /// Who did it: an admin's name, a commit author, or "the hub".
    #[serde(default)]
    pub who: String,
    /// Why, when there is a reason.
    #[serde(default)]
    pub reason: String,
}
