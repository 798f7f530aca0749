//! The hub's sled database: the last rendered state of every cluster, what
//! each spoke reported, and the fleet index. Lets a hub restarted while Git
//! is unreachable serve what it had.

use std::collections::BTreeMap;
use std::path::Path;

use fleet_render::DesiredState;

use crate::status::{FleetIndex, SpokeRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("hub database at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("hub database: {0}")]
    Db(#[from] sled::Error),
    #[error("hub database holds a corrupt {what} for {key}: {reason}")]
    Corrupt {
        what: &'static str,
        key: String,
        reason: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The rendered desired states.
pub const DESIRED: &str = "states";
/// The states served to spokes.
pub const RELEASED: &str = "released";
/// Key, in a tree of states, of the commit its headers without one are at
/// (cluster names never start with NUL).
const BASE_KEY: &[u8] = b"\0base";
/// Key of the index's clusters in the meta tree.
const INDEX_CLUSTERS: &str = "index-clusters";
/// Key prefix of each environment's rollout in the meta tree.
const ROLLOUT_PREFIX: &[u8] = b"rollout/";

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    states: sled::Tree,
    released: sled::Tree,
    events: sled::Tree,
    spokes: sled::Tree,
    meta: sled::Tree,
    envelopes: sled::Tree,
    /// `content_key` -> a state's content (`fleet_proto::convert::encode_content`),
    /// once per content whatever the commits and trees that name it.
    contents: sled::Tree,
    outbox: sled::Tree,
    /// receiver NUL event key -> "queued" | "sent": an event goes out once.
    outbox_keys: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("hub.sled");
        // It holds rendered Secrets in plain text: owner only (docs/security.md).
        owner_only_dir(&path);
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            states: db.open_tree(DESIRED)?,
            released: db.open_tree(RELEASED)?,
            events: db.open_tree("events")?,
            spokes: db.open_tree("spokes")?,
            meta: db.open_tree("meta")?,
            envelopes: db.open_tree("released-signatures")?,
            contents: db.open_tree("state-contents")?,
            outbox: db.open_tree("outbox")?,
            outbox_keys: db.open_tree("outbox-keys")?,
            db,
        })
    }

    fn tree(&self, which: &str) -> &sled::Tree {
        if which == RELEASED {
            &self.released
        } else {
            &self.states
        }
    }

    fn other_tree(&self, which: &str) -> &sled::Tree {
        if which == RELEASED {
            &self.states
        } else {
            &self.released
        }
    }

    /// Every stored state. A corrupt entry is skipped with a warning, never fatal.
    pub fn load_states(&self, which: &str) -> Result<BTreeMap<String, DesiredState>> {
        let mut out = BTreeMap::new();
        let base = self.base(which)?;
        for kv in self.tree(which).iter() {
            let (k, v) = kv?;
            if k.starts_with(b"\0") {
                continue;
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            let encoded = match Header::parse(&v) {
                // Stored whole (by hubs before content was kept apart).
                None => bytes::Bytes::copy_from_slice(&v),
                Some(Err(e)) => {
                    tracing::warn!(cluster = %key, error = %e, "skipping corrupt stored state");
                    continue;
                }
                Some(Ok(h)) => match self.contents.get(&h.key)? {
                    Some(c) => match h.commit.as_ref().or(base.as_ref()) {
                        Some(commit) => h.join(&c, commit),
                        None => {
                            tracing::warn!(cluster = %key, "skipping a stored state at the tree's commit, which is missing");
                            continue;
                        }
                    },
                    None => {
                        tracing::warn!(cluster = %key, content = %h.key, "skipping a stored state whose content is missing");
                        continue;
                    }
                },
            };
            match fleet_proto::convert::decode_state(&encoded) {
                Ok(s) => {
                    out.insert(key, s);
                }
                Err(e) => {
                    tracing::warn!(cluster = %key, error = %e, "skipping corrupt stored state")
                }
            }
        }
        Ok(out)
    }

    /// The stored content of a state (see [`Store::save_state`]).
    pub fn load_content(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        Ok(self
            .contents
            .get(key)?
            .map(|v| bytes::Bytes::copy_from_slice(&v)))
    }

    /// Stores one cluster's state ([`Store::write_states`] with the tree's
    /// base as it is). `None` says the content is stored already.
    pub fn save_state(
        &self,
        which: &str,
        state: &DesiredState,
        content: Option<&[u8]>,
    ) -> Result<()> {
        let base = self.base(which)?.unwrap_or_default();
        self.write_states(which, &base, &[(state, content)], &[])
            .map(drop)
    }

    pub fn remove_state(&self, which: &str, cluster: &str) -> Result<()> {
        let base = self.base(which)?.unwrap_or_default();
        self.write_states(which, &base, &[], &[cluster.to_string()])
            .map(drop)
    }

    /// The commit of `which`'s headers that name none: the commit most of
    /// its states are at, so that moving them to the next commit rewrites
    /// one record, not one per cluster.
    pub fn base(&self, which: &str) -> Result<Option<fleet_render::CommitMeta>> {
        let Some(v) = self.tree(which).get(BASE_KEY)? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: "base commit",
                key: which.into(),
                reason: e.to_string(),
            })
    }

    /// A publish's writes to `which`, as one atomic batch: the headers of
    /// `writes` (a state at `base` names no commit) with their contents
    /// when given (`None`: stored already), the removal of `removed`, and
    /// `base` itself. A cluster left out keeps its header: the caller
    /// leaves out those whose header would not change ([`header_unchanged`]).
    /// Contents no header names any more are removed after.
    pub fn write_states(
        &self,
        which: &str,
        base: &fleet_render::CommitMeta,
        writes: &[(&DesiredState, Option<&[u8]>)],
        removed: &[String],
    ) -> Result<Written> {
        let tree = self.tree(which);
        let mut written = Written::default();
        let mut contents = sled::Batch::default();
        let mut headers = sled::Batch::default();
        let mut replaced = Vec::with_capacity(writes.len() + removed.len());
        for (state, content) in writes {
            let key = fleet_proto::convert::content_key(state);
            if let Some(c) = content {
                contents.insert(key.as_bytes(), *c);
                written.contents += 1;
            }
            written.headers += 1;
            let header = Header {
                commit: (state.commit != *base).then(|| state.commit.clone()),
                key,
            };
            replaced.push((
                state.cluster.as_str(),
                tree.get(&state.cluster)?,
                Some(header.key.clone()),
            ));
            headers.insert(state.cluster.as_bytes(), header.to_vec());
        }
        for cluster in removed {
            replaced.push((cluster.as_str(), tree.get(cluster)?, None));
            headers.remove(cluster.as_bytes());
        }
        headers.insert(
            BASE_KEY,
            serde_json::to_vec(base).expect("commit serializes"),
        );
        // Contents first: a header never names a content not yet stored.
        self.contents.apply_batch(contents)?;
        tree.apply_batch(headers)?;
        let mut unnamed = sled::Batch::default();
        for (cluster, old, new) in replaced {
            if let Some(key) = self.unnamed(which, cluster, old, new.as_deref())? {
                unnamed.remove(key.as_bytes());
            }
        }
        self.contents.apply_batch(unnamed)?;
        Ok(written)
    }

    /// The content an old header of `which` named that nothing names now.
    fn unnamed(
        &self,
        which: &str,
        cluster: &str,
        old: Option<sled::IVec>,
        new: Option<&str>,
    ) -> Result<Option<String>> {
        let Some(Some(Ok(old))) = old.map(|v| Header::parse(&v)) else {
            return Ok(None);
        };
        if Some(old.key.as_str()) == new {
            return Ok(None);
        }
        let other = self.other_tree(which).get(cluster)?;
        if other
            .and_then(|v| Header::parse(&v))
            .and_then(|h| h.ok())
            .is_some_and(|h| h.key == old.key)
        {
            return Ok(None);
        }
        Ok(Some(old.key))
    }

    /// How many contents are stored.
    pub fn contents_len(&self) -> usize {
        self.contents.len()
    }

    /// Removes stored contents that no header names (left by a hub killed
    /// between a header and the removal); returns how many.
    pub fn collect_contents(&self) -> Result<usize> {
        let mut named = std::collections::HashSet::new();
        for tree in [&self.states, &self.released] {
            for kv in tree.iter() {
                let (_, v) = kv?;
                if let Some(Ok(h)) = Header::parse(&v) {
                    named.insert(h.key.into_bytes());
                }
            }
        }
        let mut removed = 0;
        for k in self.contents.iter().keys() {
            let k = k?;
            if !named.contains(k.as_ref()) {
                self.contents.remove(&k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Queues a notification unless this receiver already has (or had) this
    /// event; durable when it returns. `Ok(false)`: a duplicate.
    pub fn outbox_add(
        &self,
        receiver: &str,
        key: &str,
        d: &crate::outbox::Delivery,
    ) -> Result<bool> {
        let k = format!("{receiver}\0{key}");
        let fresh = self
            .outbox_keys
            .compare_and_swap(k.as_bytes(), None as Option<&[u8]>, Some(&b"queued"[..]))?
            .is_ok();
        if !fresh {
            return Ok(false);
        }
        let id = self.db.generate_id()?.to_be_bytes();
        self.outbox
            .insert(id, serde_json::to_vec(d).expect("delivery serializes"))?;
        self.db.flush()?;
        Ok(true)
    }

    /// Queued deliveries, oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<(Vec<u8>, crate::outbox::Delivery)>> {
        let mut out = Vec::new();
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            match serde_json::from_slice(&v) {
                Ok(d) => out.push((k.to_vec(), d)),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a corrupt queued notification");
                    self.outbox.remove(k)?;
                }
            }
        }
        Ok(out)
    }

    /// A delivery went out: off the queue, its key remembered as sent.
    pub fn outbox_done(&self, id: &[u8], d: &crate::outbox::Delivery) -> Result<()> {
        self.outbox.remove(id)?;
        self.outbox_keys
            .insert(format!("{}\0{}", d.receiver, d.key), &b"sent"[..])?;
        self.db.flush()?;
        Ok(())
    }

    /// The signed statement of a cluster's released state (empty: unsigned).
    pub fn save_envelope(&self, cluster: &str, e: &crate::signing::Envelope) -> Result<()> {
        if e.statement.is_empty() {
            self.envelopes.remove(cluster)?;
            return Ok(());
        }
        let v = serde_json::to_vec(&serde_json::json!({
            "statement": String::from_utf8_lossy(&e.statement),
            "signature": String::from_utf8_lossy(&e.signature),
        }))
        .expect("envelope serializes");
        self.envelopes.insert(cluster, v)?;
        Ok(())
    }

    pub fn load_envelope(&self, cluster: &str) -> Result<Option<crate::signing::Envelope>> {
        let Some(v) = self.envelopes.get(cluster)? else {
            return Ok(None);
        };
        let j: serde_json::Value = match serde_json::from_slice(&v) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(%cluster, error = %e, "skipping a corrupt stored signature");
                return Ok(None);
            }
        };
        let field = |k: &str| bytes::Bytes::from(j[k].as_str().unwrap_or("").as_bytes().to_vec());
        Ok(Some(crate::signing::Envelope {
            statement: field("statement"),
            signature: field("signature"),
        }))
    }

    pub fn load_spokes(&self) -> Result<BTreeMap<String, SpokeRecord>> {
        let mut out = BTreeMap::new();
        for kv in self.spokes.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match serde_json::from_slice(&v) {
                Ok(r) => {
                    out.insert(key, r);
                }
                Err(e) => {
                    tracing::warn!(cluster = %key, error = %e, "skipping corrupt spoke record")
                }
            }
        }
        Ok(out)
    }

    pub fn save_spoke(&self, cluster: &str, rec: &SpokeRecord) -> Result<()> {
        self.spokes.insert(
            cluster,
            serde_json::to_vec(rec).expect("spoke record serializes"),
        )?;
        Ok(())
    }

    pub fn load_index(&self) -> Result<Option<FleetIndex>> {
        let corrupt = |key: &str, e: serde_json::Error| StoreError::Corrupt {
            what: "fleet index",
            key: key.into(),
            reason: e.to_string(),
        };
        let Some(v) = self.meta.get("index")? else {
            return Ok(None);
        };
        let mut index: FleetIndex = serde_json::from_slice(&v).map_err(|e| corrupt("index", e))?;
        if let Some(v) = self.meta.get(INDEX_CLUSTERS)? {
            index.clusters =
                serde_json::from_slice(&v).map_err(|e| corrupt("index-clusters", e))?;
        }
        Ok(Some(index))
    }

    /// Stores the index; its clusters (labels, policies and windows of
    /// every cluster, the bulk of it) only when `clusters_changed`.
    pub fn save_index(&self, index: &FleetIndex, clusters_changed: bool) -> Result<()> {
        if clusters_changed {
            self.meta.insert(
                INDEX_CLUSTERS,
                serde_json::to_vec(&index.clusters).expect("clusters serialize"),
            )?;
        }
        self.meta.insert(
            "index",
            serde_json::to_vec(index).expect("index serializes"),
        )?;
        Ok(())
    }

    /// Appends an event to a cluster's history (key: cluster, NUL, big-endian sequence).
    pub fn record_event(&self, cluster: &str, ev: &crate::status::Event) -> Result<()> {
        let seq = self.db.generate_id()?;
        let mut key = cluster.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&seq.to_be_bytes());
        self.events
            .insert(key, serde_json::to_vec(ev).expect("event serializes"))?;
        Ok(())
    }

    /// Events of one cluster (or every cluster for `""`), oldest first within a cluster.
    pub fn events(&self, cluster: &str) -> Result<Vec<(String, crate::status::Event)>> {
        let mut prefix = cluster.as_bytes().to_vec();
        if !cluster.is_empty() {
            prefix.push(0);
        }
        let mut out = Vec::new();
        for kv in self.events.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let name = k
                .split(|b| *b == 0)
                .next()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            if let Ok(ev) = serde_json::from_slice(&v) {
                out.push((name, ev));
            }
        }
        Ok(out)
    }

    /// The stored rollout of every environment (a corrupt one is skipped with a warning).
    pub fn load_rollouts(&self) -> Result<BTreeMap<String, crate::rollout::Rollout>> {
        let mut out = BTreeMap::new();
        for kv in self.meta.scan_prefix(ROLLOUT_PREFIX) {
            let (k, v) = kv?;
            let env = String::from_utf8_lossy(&k[ROLLOUT_PREFIX.len()..]).into_owned();
            match serde_json::from_slice(&v) {
                Ok(r) => {
                    out.insert(env, r);
                }
                Err(e) => tracing::warn!(%env, error = %e, "skipping a corrupt stored rollout"),
            }
        }
        Ok(out)
    }

    pub fn save_rollout(&self, env: &str, r: &crate::rollout::Rollout) -> Result<()> {
        let mut key = ROLLOUT_PREFIX.to_vec();
        key.extend_from_slice(env.as_bytes());
        self.meta
            .insert(key, serde_json::to_vec(r).expect("rollout serializes"))?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush_sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// What [`Store::write_states`] wrote: headers (and removals) and contents.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub headers: usize,
    pub contents: usize,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, o: Written) {
        self.headers += o.headers;
        self.contents += o.contents;
    }
}

/// A stored state: the key of its content and its commit (JSON). Hubs
/// before it stored the whole encoded state, a protobuf message, which never
/// starts with `{`.
///
/// A header without a commit is at its tree's base commit ([`Store::base`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commit: Option<fleet_render::CommitMeta>,
}

/// Whether a cluster's stored header stays as it is when its state moves
/// from `old` (with the tree at `old_base`) to `new` (at `new_base`): the
/// same content, and either both at their tree's base or both at the same
/// commit. Then [`Store::write_states`] need not be given the state.
pub fn header_unchanged(
    old: &DesiredState,
    old_base: &fleet_render::CommitMeta,
    new: &DesiredState,
    new_base: &fleet_render::CommitMeta,
) -> bool {
    same_commit_field(old, old_base, new, new_base) && fleet_proto::convert::same_content(old, new)
}

/// The commit half of [`header_unchanged`]: both states at their tree's
/// base, or both at the same commit.
pub fn same_commit_field(
    old: &DesiredState,
    old_base: &fleet_render::CommitMeta,
    new: &DesiredState,
    new_base: &fleet_render::CommitMeta,
) -> bool {
    let (old_at_base, new_at_base) = (old.commit == *old_base, new.commit == *new_base);
    old_at_base == new_at_base && (old_at_base || old.commit == new.commit)
}

impl Header {
    /// `None`: not a header (a whole state).
    fn parse(v: &[u8]) -> Option<std::result::Result<Header, serde_json::Error>> {
        (v.first() == Some(&b'{')).then(|| serde_json::from_slice(v))
    }

    fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("header serializes")
    }

    /// The whole encoded state: the content, then the commit.
    fn join(&self, content: &[u8], commit: &fleet_render::CommitMeta) -> bytes::Bytes {
        let commit = fleet_proto::convert::encode_commit(commit);
        let mut out = bytes::BytesMut::with_capacity(content.len() + commit.len());
        out.extend_from_slice(content);
        out.extend_from_slice(&commit);
        out.freeze()
    }
}

/// Creates `dir` (mode 0700) or narrows an existing one to its owner.
fn owner_only_dir(dir: &Path) {
    let _ = std::fs::create_dir_all(dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the database directory owner-only");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fleet_render::{AppState, CommitMeta, Resource, SyncPolicy};

    /// Cluster `cluster` at `commit`, one ConfigMap holding `value`.
    pub(crate) fn state(cluster: &str, commit: &str, value: &str) -> DesiredState {
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "n"}, "data": {"v": value}});
        let mut apps = BTreeMap::new();
        apps.insert(
            "app".to_string(),
            AppState {
                source_revision: commit.into(),
                error: None,
                resources: vec![Resource::from_value(&obj).unwrap()].into(),
            },
        );
        let commit = CommitMeta {
            id: commit.into(),
            author: "A <a@example.com>".into(),
            message: format!("commit {commit}"),
            time: 1,
        };
        DesiredState::new(cluster.into(), commit, SyncPolicy::default(), apps)
    }

    fn content(s: &DesiredState) -> bytes::Bytes {
        fleet_proto::convert::encode_content(s)
    }

    #[test]
    fn a_state_is_a_header_and_its_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = state("c1", "a", "1");
        store.save_state(DESIRED, &a, Some(&content(&a))).unwrap();
        store.save_state(RELEASED, &a, None).unwrap();
        assert_eq!(store.contents_len(), 1);
        // The next commit, same content: a header, no content.
        let b = state("c1", "b", "1");
        store.save_state(DESIRED, &b, None).unwrap();
        assert_eq!(store.contents_len(), 1);
        assert_eq!(store.load_states(DESIRED).unwrap()["c1"], b);
        assert_eq!(store.load_states(RELEASED).unwrap()["c1"], a);
        // New content: the old one stays while the released header names it...
        let c = state("c1", "c", "2");
        store.save_state(DESIRED, &c, Some(&content(&c))).unwrap();
        assert_eq!(store.contents_len(), 2);
        // ...and goes when nothing names it.
        store.save_state(RELEASED, &c, None).unwrap();
        assert_eq!(store.contents_len(), 1);
        assert_eq!(store.load_states(RELEASED).unwrap()["c1"], c);
        store.remove_state(DESIRED, "c1").unwrap();
        assert_eq!(store.contents_len(), 1);
        store.remove_state(RELEASED, "c1").unwrap();
        assert_eq!(store.contents_len(), 0);
    }

    #[test]
    fn whole_states_of_older_hubs_load_and_orphan_contents_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = state("c1", "a", "1");
        // As hubs before content keys stored it.
        store
            .states
            .insert("c1", fleet_proto::convert::encode_state(&a).to_vec())
            .unwrap();
        assert_eq!(store.load_states(DESIRED).unwrap()["c1"], a);
        // Replacing it with a header leaves no content behind.
        let b = state("c1", "b", "2");
        store.save_state(DESIRED, &b, Some(&content(&b))).unwrap();
        assert_eq!(store.load_states(DESIRED).unwrap()["c1"], b);
        // A content no header names (a hub killed before removing it).
        store.contents.insert("sha256:orphan", &b"x"[..]).unwrap();
        assert_eq!(store.collect_contents().unwrap(), 1);
        assert_eq!(store.contents_len(), 1);
        // A header whose content is missing is skipped, not fatal.
        store.contents.clear().unwrap();
        assert!(store.load_states(DESIRED).unwrap().is_empty());
    }

    #[test]
    fn the_index_stores_its_clusters_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut index = FleetIndex::default();
        index.commit.id = "a".into();
        index.clusters.insert("c1".into(), Default::default());
        store.save_index(&index, true).unwrap();
        let mut next = index.clone();
        next.commit.id = "b".into();
        store.save_index(&next, false).unwrap();
        let got = store.load_index().unwrap().unwrap();
        assert_eq!(got.commit.id, "b");
        assert_eq!(got.clusters.keys().collect::<Vec<_>>(), ["c1"]);
        // As hubs before the split stored it: clusters inline.
        store.meta.remove(INDEX_CLUSTERS).unwrap();
        store
            .meta
            .insert("index", &br#"{"commit":{"id":"c","author":"","message":"","time":0},"clusters":{"c2":{"labels":{},"automatic":true,"windows":[]}},"cluster_errors":{}}"#[..])
            .unwrap();
        let got = store.load_index().unwrap().unwrap();
        assert_eq!(got.commit.id, "c");
        assert_eq!(got.clusters.keys().collect::<Vec<_>>(), ["c2"]);
    }
}
