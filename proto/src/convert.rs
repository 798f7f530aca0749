//! Conversions between the wire types and fleet's domain types
//! (`fleet_render::state`). Hand-written, beside the generated code.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fleet_render::{
    AppState, CommitMeta, DesiredState, RenderError, Resource, ResourceId, SyncPolicy,
};
use prost::Message;

use crate::v1 as pb;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("desired state does not decode: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("resource {0} has a manifest that is not UTF-8")]
    NotUtf8(String),
    #[error("desired state failed verification: {0}")]
    Verify(String),
}

impl From<&CommitMeta> for pb::CommitMeta {
    fn from(c: &CommitMeta) -> Self {
        pb::CommitMeta {
            id: c.id.clone(),
            author: c.author.clone(),
            message: c.message.clone(),
            time: c.time,
        }
    }
}

impl From<pb::CommitMeta> for CommitMeta {
    fn from(c: pb::CommitMeta) -> Self {
        CommitMeta {
            id: c.id,
            author: c.author,
            message: c.message,
            time: c.time,
        }
    }
}

impl From<&RenderError> for pb::RenderError {
    fn from(e: &RenderError) -> Self {
        pb::RenderError {
            app: e.app.clone(),
            file: e.file.clone(),
            reason: e.reason.clone(),
        }
    }
}

impl From<pb::RenderError> for RenderError {
    fn from(e: pb::RenderError) -> Self {
        RenderError {
            app: e.app,
            file: e.file,
            reason: e.reason,
        }
    }
}

/// Encodes a desired state once; the bytes are shared by every stream that sends it.
pub fn encode_state(s: &DesiredState) -> Bytes {
    let msg = pb::DesiredState {
        cluster: s.cluster.clone(),
        commit: Some((&s.commit).into()),
        digest: s.digest.clone(),
        sync: Some(pb::SyncPolicy {
            automatic: s.sync.automatic,
            prune: s.sync.prune,
            self_heal: s.sync.self_heal,
            force_conflicts: s.sync.force_conflicts,
        }),
        apps: s
            .apps
            .iter()
            .map(|(name, a)| pb::AppState {
                name: name.clone(),
                source_revision: a.source_revision.clone(),
                error: a.error.as_ref().map(Into::into),
                resources: a
                    .resources
                    .iter()
                    .map(|r| pb::Resource {
                        api_version: r.api_version.clone(),
                        kind: r.id.kind.clone(),
                        namespace: r.id.namespace.clone(),
                        name: r.id.name.clone(),
                        manifest: Bytes::copy_from_slice(r.manifest.as_bytes()),
                        digest: r.digest.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    Bytes::from(msg.encode_to_vec())
}

/// Decodes and verifies a desired state: every resource digest and the state digest
/// are recomputed from the content.
pub fn decode_state(bytes: &[u8]) -> Result<DesiredState, DecodeError> {
    let msg = pb::DesiredState::decode(bytes)?;
    let mut apps = BTreeMap::new();
    for a in msg.apps {
        let error = a.error.map(RenderError::from);
        let mut resources = Vec::with_capacity(a.resources.len());
        for r in a.resources {
            let group = fleet_render::resource::group_of(&r.api_version).to_string();
            let id = ResourceId {
                group,
                kind: r.kind,
                namespace: r.namespace,
                name: r.name,
            };
            let manifest: Arc<str> = String::from_utf8(r.manifest.to_vec())
                .map_err(|_| DecodeError::NotUtf8(id.to_string()))?
                .into();
            resources.push(Resource {
                id,
                api_version: r.api_version,
                manifest,
                digest: r.digest,
            });
        }
        apps.insert(
            a.name,
            AppState {
                source_revision: a.source_revision,
                error,
                resources,
            },
        );
    }
    let sync = msg.sync.map(|s| SyncPolicy {
        automatic: s.automatic,
        prune: s.prune,
        self_heal: s.self_heal,
        force_conflicts: s.force_conflicts,
    });
    let state = DesiredState {
        cluster: msg.cluster,
        commit: msg.commit.map(Into::into).unwrap_or_default(),
        sync: sync.unwrap_or_default(),
        apps,
        digest: msg.digest,
    };
    state.verify().map_err(DecodeError::Verify)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_render::Resource;

    fn state() -> DesiredState {
        let obj = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "n"}});
        let r = Resource::from_value(&obj).unwrap();
        let mut apps = BTreeMap::new();
        apps.insert(
            "web".to_string(),
            AppState {
                source_revision: "abc".into(),
                error: None,
                resources: vec![r],
            },
        );
        apps.insert(
            "api".to_string(),
            AppState {
                source_revision: "old".into(),
                error: Some(RenderError {
                    app: "api".into(),
                    file: "apps/api/x.yaml".into(),
                    reason: "bad".into(),
                }),
                resources: vec![],
            },
        );
        DesiredState::new(
            "c1".into(),
            CommitMeta {
                id: "abc".into(),
                author: "A <a@x>".into(),
                message: "m".into(),
                time: 7,
            },
            SyncPolicy::default(),
            apps,
        )
    }

    #[test]
    fn round_trip_is_lossless() {
        let s = state();
        assert_eq!(decode_state(&encode_state(&s)).unwrap(), s);
    }

    #[test]
    fn tampered_state_is_refused() {
        let s = state();
        let mut bytes = encode_state(&s).to_vec();
        let pos = bytes.windows(10).position(|w| w == b"kind: Depl").unwrap();
        bytes[pos] = b'K';
        let err = decode_state(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("does not match its content"),
            "{err}"
        );
    }
}
