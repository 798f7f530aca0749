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

/// Encodes a desired state once; the bytes are shared by every stream that
/// sends it. Equal to [`encode_content`] followed by [`encode_commit`].
pub fn encode_state(s: &DesiredState) -> Bytes {
    let content = encode_content(s);
    let commit = encode_commit(&s.commit);
    let mut out = bytes::BytesMut::with_capacity(content.len() + commit.len());
    out.extend_from_slice(&content);
    out.extend_from_slice(&commit);
    out.freeze()
}

/// A state's content encoded without its commit: every field of the
/// `DesiredState` message but `commit`, with the `source_revision` of each
/// app rendered at the state's own commit left empty (decoding fills it in).
/// So a cluster whose content did not change encodes to the same bytes at
/// every commit, and the hub encodes and stores it once. A protobuf message
/// may carry its fields in any order: this followed by [`encode_commit`] is
/// the whole state, as every decoder (older spokes too) reads it.
pub fn encode_content(s: &DesiredState) -> Bytes {
    ContentEncoder::default().encode(s)
}

/// The digest (SHA-256) of one part of a content ([`ContentParts`]).
pub type PartKey = [u8; 32];

/// A state's content ([`encode_content`]) in pieces: the fields before its
/// apps (cluster, digest), the field of each app with the digest of its
/// bytes, and the fields after (sync). Their concatenation is the content.
/// An app render shared by many clusters is one part for all of them, so
/// the hub stores it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentParts {
    pub head: Bytes,
    pub apps: Vec<(PartKey, Bytes)>,
    pub tail: Bytes,
}

impl ContentParts {
    pub fn len(&self) -> usize {
        self.head.len() + self.apps.iter().map(|(_, b)| b.len()).sum::<usize>() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content: the parts in order.
    pub fn join(&self) -> Bytes {
        let mut out = bytes::BytesMut::with_capacity(self.len());
        out.extend_from_slice(&self.head);
        for (_, b) in &self.apps {
            out.extend_from_slice(b);
        }
        out.extend_from_slice(&self.tail);
        out.freeze()
    }
}

/// The digest of a part's bytes.
pub fn part_key(bytes: &[u8]) -> PartKey {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut k = [0; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// [`encode_content`] for many states: an app whose resources are shared
/// (one render used by many clusters) is encoded and digested once, and its
/// bytes shared by each state that holds it. The bytes are those prost
/// writes for the whole message (fields in tag order: cluster, digest,
/// apps, sync).
#[derive(Default)]
pub struct ContentEncoder {
    /// Resources (by pointer) -> (app name, revision as written) -> the
    /// app's field bytes. The `Arc` held keeps the pointer from being reused.
    /// Found without building a key: a state's apps are looked up for every
    /// cluster that runs them.
    apps: foldhash::HashMap<usize, Vec<EncodedApp>>,
}

struct EncodedApp {
    name: String,
    rev: String,
    _resources: Arc<Vec<Resource>>,
    part: PartKey,
    bytes: Bytes,
}

impl ContentEncoder {
    pub fn encode(&mut self, s: &DesiredState) -> Bytes {
        self.encode_parts(s).join()
    }

    pub fn encode_parts(&mut self, s: &DesiredState) -> ContentParts {
        // The fields before `apps`, as prost writes them (an empty string
        // is left out).
        let mut head = Vec::with_capacity(s.cluster.len() + s.digest.len() + 4);
        for (tag, v) in [(1, &s.cluster), (3, &s.digest)] {
            if !v.is_empty() {
                prost::encoding::string::encode(tag, v, &mut head);
            }
        }
        let mut apps = Vec::with_capacity(s.apps.len());
        for (name, a) in s.apps.iter() {
            let rev = relative_revision(a);
            if a.error.is_some() {
                let bytes = encode_app(name, rev, a);
                apps.push((part_key(&bytes), bytes));
                continue;
            }
            let same = self
                .apps
                .entry(Arc::as_ptr(&a.resources) as usize)
                .or_default();
            let e = match same.iter().position(|e| e.name == *name && e.rev == rev) {
                Some(i) => &same[i],
                None => {
                    let bytes = encode_app(name, rev, a);
                    same.push(EncodedApp {
                        name: name.clone(),
                        rev: rev.to_string(),
                        _resources: Arc::clone(&a.resources),
                        part: part_key(&bytes),
                        bytes,
                    });
                    same.last().expect("just pushed")
                }
            };
            apps.push((e.part, e.bytes.clone()));
        }
        let sync = pb::SyncPolicy {
            automatic: s.sync.automatic,
            prune: s.sync.prune,
            self_heal: s.sync.self_heal,
            force_conflicts: s.sync.force_conflicts,
        };
        let mut tail = Vec::with_capacity(16);
        prost::encoding::message::encode(5, &sync, &mut tail);
        ContentParts {
            head: Bytes::from(head),
            apps,
            tail: Bytes::from(tail),
        }
    }
}

/// The `apps` field (tag 4) of one app, key and length included.
fn encode_app(name: &str, rev: &str, a: &AppState) -> Bytes {
    let msg = app_message(name, rev, a);
    let mut out = Vec::with_capacity(msg.encoded_len() + 8);
    prost::encoding::message::encode(4, &msg, &mut out);
    Bytes::from(out)
}

/// One app as the wire message.
fn app_message(name: &str, rev: &str, a: &AppState) -> pb::AppState {
    pb::AppState {
        name: name.to_string(),
        source_revision: rev.to_string(),
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
    }
}

/// The `commit` field of a `DesiredState` message alone (see [`encode_content`]).
pub fn encode_commit(c: &CommitMeta) -> Bytes {
    let msg = pb::DesiredState {
        commit: Some(c.into()),
        ..Default::default()
    };
    Bytes::from(msg.encode_to_vec())
}

/// An app's revision as [`encode_content`] writes it: empty when the app
/// rendered without error at the state's own commit.
fn relative_revision(a: &AppState) -> &str {
    a.source_revision.as_deref().unwrap_or("")
}

/// The name of a state's content ([`encode_content`]) in the hub's store:
/// its digest, and when an app's revision is not the state's own commit (kept
/// at its last good render, or `fleetctl sync --app`), a hash of those
/// revisions too. States with the same key have the same content bytes.
pub fn content_key(s: &DesiredState) -> String {
    content_key_of(s).into_owned()
}

/// [`content_key`], borrowed from the state when it is its digest (every
/// app at the state's commit): no copy made per state.
pub fn content_key_of(s: &DesiredState) -> std::borrow::Cow<'_, str> {
    let mut h = fleet_render::digest::Hasher::new();
    let mut behind = false;
    for (name, a) in s.apps.iter() {
        let rev = relative_revision(a);
        if !rev.is_empty() {
            behind = true;
            h.field(name).field(rev);
        }
    }
    if behind {
        let revs = h.finish();
        let hex = &revs["sha256:".len()..];
        format!("{}+{}", s.digest, &hex[..16]).into()
    } else {
        s.digest.as_str().into()
    }
}

/// Whether two states of a cluster encode to the same content
/// ([`encode_content`]), whatever their commits: the same digest, and every
/// app's revision the same relative to its state's commit.
pub fn same_content(a: &DesiredState, b: &DesiredState) -> bool {
    a.digest == b.digest
        && a.cluster == b.cluster
        && a.sync == b.sync
        && (Arc::ptr_eq(&a.apps, &b.apps)
            || a.apps.len() == b.apps.len()
                && a.apps.iter().zip(b.apps.iter()).all(|((na, x), (nb, y))| {
                    na == nb && relative_revision(x) == relative_revision(y)
                }))
}

/// Decodes and verifies a desired state: every resource digest and the state digest
/// are recomputed from the content.
pub fn decode_state(bytes: &[u8]) -> Result<DesiredState, DecodeError> {
    let msg = pb::DesiredState::decode(bytes)?;
    let commit: CommitMeta = msg.commit.map(Into::into).unwrap_or_default();
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
                // Empty: rendered at the state's own commit (see `encode_content`).
                source_revision: if error.is_none()
                    && (a.source_revision.is_empty() || a.source_revision == commit.id)
                {
                    None
                } else {
                    Some(a.source_revision)
                },
                error,
                resources: resources.into(),
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
        commit: Arc::new(commit),
        sync: sync.unwrap_or_default(),
        apps: Arc::new(apps),
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
                source_revision: Some("abc".into()),
                error: None,
                resources: vec![r].into(),
            },
        );
        apps.insert(
            "api".to_string(),
            AppState {
                source_revision: Some("old".into()),
                error: Some(RenderError {
                    app: "api".into(),
                    file: "apps/api/x.yaml".into(),
                    reason: "bad".into(),
                }),
                resources: vec![].into(),
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
    fn the_content_encoder_writes_what_prost_writes_for_the_whole_message() {
        let s = state();
        let whole = pb::DesiredState {
            cluster: s.cluster.clone(),
            commit: None,
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
                .map(|(name, a)| app_message(name, relative_revision(a), a))
                .collect(),
        }
        .encode_to_vec();
        let mut enc = ContentEncoder::default();
        assert_eq!(enc.encode(&s), whole);
        // A second cluster sharing the render: the app's bytes are reused,
        // and the state is still its own (cluster, digest).
        let mut other = s.clone();
        other.cluster = "c2".into();
        other.digest = other.compute_digest();
        let got = enc.encode(&other);
        assert_eq!(enc.apps.len(), 1);
        let mut head = got.to_vec();
        head.extend_from_slice(&encode_commit(&other.commit));
        assert_eq!(decode_state(&head).unwrap(), other);
        // In parts: the shared app is one part (same key) in both, each
        // key is the digest of its bytes, and the parts join to the content.
        let (a, b) = (enc.encode_parts(&s), enc.encode_parts(&other));
        assert_eq!(a.join(), whole);
        assert_eq!(b.join(), got);
        let keys = |p: &ContentParts| p.apps.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        assert_ne!(a.head, b.head);
        for (k, bytes) in &a.apps {
            assert_eq!(*k, part_key(bytes));
        }
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

    /// The state at another commit, as the renderer makes it when the
    /// cluster's inputs did not change: apps rendered OK move to the new commit.
    fn at_commit(s: &DesiredState, id: &str) -> DesiredState {
        s.at_commit(Arc::new(CommitMeta {
            id: id.into(),
            message: "another".into(),
            ..CommitMeta::clone(&s.commit)
        }))
    }

    #[test]
    fn content_does_not_depend_on_the_commit() {
        let s = state();
        let t = at_commit(&s, "def");
        assert!(same_content(&s, &t));
        assert_eq!(s.apps["web"].source_revision, None, "stored relative");
        assert_eq!(t.revision_of(&t.apps["web"]), "def");
        assert_eq!(t.revision_of(&t.apps["api"]), "old");
        assert_eq!(content_key(&s), content_key(&t));
        assert_eq!(encode_content(&s), encode_content(&t));
        assert_ne!(encode_state(&s), encode_state(&t));
        // Content of one commit with the header of another: the other state.
        let mut joined = encode_content(&s).to_vec();
        joined.extend_from_slice(&encode_commit(&t.commit));
        assert_eq!(decode_state(&joined).unwrap(), t);
        // The app kept at its last good revision keeps it.
        assert_eq!(
            decode_state(&joined).unwrap().apps["api"].source_revision,
            Some("old".into())
        );
    }

    #[test]
    fn an_app_behind_the_state_commit_is_other_content() {
        let s = state();
        let mut t = at_commit(&s, "def");
        // `fleetctl sync --app api`: web stays at the revision it had.
        Arc::make_mut(&mut t.apps)
            .get_mut("web")
            .unwrap()
            .source_revision = Some("abc".into());
        assert!(!same_content(&s, &t));
        assert_ne!(content_key(&s), content_key(&t));
        assert_ne!(encode_content(&s), encode_content(&t));
        assert_eq!(decode_state(&encode_state(&t)).unwrap(), t);
    }
}
