//! The hub's sled database: the last rendered state of every cluster, what
//! each spoke reported, and the fleet index. Lets a hub restarted while Git
//! is unreachable serve what it had.

use std::collections::BTreeMap;
use std::path::Path;

use fleet_proto::convert::ContentParts;
use fleet_render::DesiredState;

use crate::status::{FleetIndex, SpokeRecord};

mod states;

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
/// Key, in an older hub's tree of states, of the commit its headers without
/// one are at (cluster names never start with NUL).
const BASE_KEY: &[u8] = b"\0base";
/// Key of the index's clusters in the meta tree.
const INDEX_CLUSTERS: &str = "index-clusters";
/// Key prefix of each environment's rollout in the meta tree.
const ROLLOUT_PREFIX: &[u8] = b"rollout/";

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// The desired and released states, and their parts.
    records: states::StateTrees,
    /// Where hubs before records kept the states: read once, then emptied.
    old_states: sled::Tree,
    old_released: sled::Tree,
    old_contents: sled::Tree,
    events: sled::Tree,
    spokes: sled::Tree,
    meta: sled::Tree,
    envelopes: sled::Tree,
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
        let store = Store {
            records: states::StateTrees::open(&db)?,
            old_states: db.open_tree(DESIRED)?,
            old_released: db.open_tree(RELEASED)?,
            old_contents: db.open_tree("state-contents")?,
            events: db.open_tree("events")?,
            spokes: db.open_tree("spokes")?,
            meta: db.open_tree("meta")?,
            envelopes: db.open_tree("released-signatures")?,
            outbox: db.open_tree("outbox")?,
            outbox_keys: db.open_tree("outbox-keys")?,
            db,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Moves the states an older hub stored (one key per cluster, whole
    /// contents apart) into records and parts, once.
    fn migrate(&self) -> Result<()> {
        for which in [DESIRED, RELEASED] {
            let old = self.old_tree(which);
            if old.is_empty() || !self.records.is_empty(which_of(which)) {
                continue;
            }
            let base = self.old_base(which)?.unwrap_or_default();
            let states = self.old_load_states(which)?;
            let writes: Vec<(&DesiredState, Option<&ContentParts>)> =
                states.values().map(|s| (s, None)).collect();
            self.records.write(which_of(which), &base, &writes, &[])?;
            tracing::info!(
                tree = which,
                states = states.len(),
                "moved stored states to records"
            );
            old.clear()?;
        }
        if self.old_states.is_empty() && self.old_released.is_empty() {
            self.old_contents.clear()?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn old_tree(&self, which: &str) -> &sled::Tree {
        if which == RELEASED {
            &self.old_released
        } else {
            &self.old_states
        }
    }

    fn old_base(&self, which: &str) -> Result<Option<fleet_render::CommitMeta>> {
        let Some(v) = self.old_tree(which).get(BASE_KEY)? else {
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

    /// The states as older hubs stored them: a header (content key and
    /// commit) per cluster with the content apart, or the whole state.
    fn old_load_states(&self, which: &str) -> Result<BTreeMap<String, DesiredState>> {
        let mut out = BTreeMap::new();
        let base = self.old_base(which)?;
        for kv in self.old_tree(which).iter() {
            let (k, v) = kv?;
            if k.starts_with(b"\0") {
                continue;
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            let encoded = match Header::parse(&v) {
                None => bytes::Bytes::copy_from_slice(&v),
                Some(Err(e)) => {
                    tracing::warn!(cluster = %key, error = %e, "skipping corrupt stored state");
                    continue;
                }
                Some(Ok(h)) => match self.old_contents.get(&h.key)? {
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

    /// Every stored state. A corrupt entry is skipped with a warning, never fatal.
    pub fn load_states(&self, which: &str) -> Result<BTreeMap<String, DesiredState>> {
        let mut out = BTreeMap::new();
        for (cluster, encoded) in self.records.load(which_of(which))? {
            match fleet_proto::convert::decode_state(&encoded) {
                Ok(s) => {
                    out.insert(cluster, s);
                }
                Err(e) => {
                    tracing::warn!(%cluster, error = %e, "skipping corrupt stored state")
                }
            }
        }
        Ok(out)
    }

    /// The stored content named `key` (`fleet_proto::convert::content_key`).
    pub fn load_content(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        self.records.content(key)
    }

    /// Stores one cluster's state ([`Store::write_states`] with the tree's
    /// base as it is).
    pub fn save_state(&self, which: &str, state: &DesiredState) -> Result<()> {
        let base = self.base(which)?.unwrap_or_default();
        self.write_states(which, &base, &[(state, None)], &[])
            .map(drop)
    }

    pub fn remove_state(&self, which: &str, cluster: &str) -> Result<()> {
        let base = self.base(which)?.unwrap_or_default();
        self.write_states(which, &base, &[], &[cluster.to_string()])
            .map(drop)
    }

    /// The commit of `which`'s states stored without one: the commit most
    /// of them are at, so that moving them to the next commit rewrites no
    /// record.
    pub fn base(&self, which: &str) -> Result<Option<fleet_render::CommitMeta>> {
        self.records.base(which_of(which))
    }

    /// A publish's writes to `which`: the records of `writes` (a state at
    /// `base` is stored without its commit) with the parts of their
    /// contents not stored yet (encoded here unless given), the removal of
    /// `removed`, and `base` itself, in one atomic batch of records. A
    /// cluster left out keeps its record: the caller leaves out those whose
    /// record would not change ([`header_unchanged`]). Parts nothing names
    /// any more are removed after.
    pub fn write_states(
        &self,
        which: &str,
        base: &fleet_render::CommitMeta,
        writes: &[(&DesiredState, Option<&ContentParts>)],
        removed: &[String],
    ) -> Result<Written> {
        self.records.write(which_of(which), base, writes, removed)
    }

    /// How many content parts are stored.
    pub fn contents_len(&self) -> usize {
        self.records.parts_len()
    }

    /// Removes stored parts that no record names (left by a hub killed
    /// between a write and its removals); returns how many.
    pub fn collect_contents(&self) -> Result<usize> {
        self.records.collect()
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

fn which_of(which: &str) -> states::Which {
    if which == RELEASED {
        states::Which::Released
    } else {
        states::Which::Desired
    }
}

/// What [`Store::write_states`] wrote: records changed (and removed),
/// content parts stored, and buckets (the values written for those records).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub headers: usize,
    pub contents: usize,
    pub buckets: usize,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, o: Written) {
        self.headers += o.headers;
        self.contents += o.contents;
        self.buckets += o.buckets;
    }
}

/// How an older hub stored a state: the key of its content and its commit
/// (JSON). Hubs before that stored the whole encoded state, a protobuf
/// message, which never starts with `{`. Read once, when the store moves
/// them to records.
///
/// A header without a commit is at its tree's base commit.
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
    let (old_at_base, new_at_base) = (
        same_commit(&old.commit, old_base),
        same_commit(&new.commit, new_base),
    );
    old_at_base == new_at_base && (old_at_base || same_commit(&old.commit, &new.commit))
}

/// Whether two commits are the same: by pointer first, as the states of a
/// render and their tree's base share one.
pub fn same_commit(a: &fleet_render::CommitMeta, b: &fleet_render::CommitMeta) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl Header {
    /// `None`: not a header (a whole state).
    fn parse(v: &[u8]) -> Option<std::result::Result<Header, serde_json::Error>> {
        (v.first() == Some(&b'{')).then(|| serde_json::from_slice(v))
    }

    #[cfg(test)]
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
                source_revision: None,
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
    fn a_state_is_a_record_and_its_parts_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = state("c1", "a", "1");
        store.save_state(DESIRED, &a).unwrap();
        store.save_state(RELEASED, &a).unwrap();
        // One app: one part, for both trees.
        assert_eq!(store.contents_len(), 1);
        // Another cluster with the same render shares the part.
        store.save_state(DESIRED, &state("c2", "a", "1")).unwrap();
        assert_eq!(store.contents_len(), 1);
        store.remove_state(DESIRED, "c2").unwrap();
        // The next commit, same content: a record, no part.
        let b = state("c1", "b", "1");
        store.save_state(DESIRED, &b).unwrap();
        assert_eq!(store.contents_len(), 1);
        assert_eq!(store.load_states(DESIRED).unwrap()["c1"], b);
        assert_eq!(store.load_states(RELEASED).unwrap()["c1"], a);
        // New content: the old part stays while the released record names it...
        let c = state("c1", "c", "2");
        store.save_state(DESIRED, &c).unwrap();
        assert_eq!(store.contents_len(), 2);
        // ...and goes when nothing names it.
        store.save_state(RELEASED, &c).unwrap();
        assert_eq!(store.contents_len(), 1);
        assert_eq!(store.load_states(RELEASED).unwrap()["c1"], c);
        store.remove_state(DESIRED, "c1").unwrap();
        assert_eq!(store.contents_len(), 1);
        store.remove_state(RELEASED, "c1").unwrap();
        assert_eq!(store.contents_len(), 0);
        // What a reopened store reads is what was written.
        store.save_state(RELEASED, &b).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_states(RELEASED).unwrap()["c1"], b);
        assert!(store.load_states(DESIRED).unwrap().is_empty());
        assert_eq!(store.collect_contents().unwrap(), 0);
    }

    #[test]
    fn a_publish_writes_one_value_per_bucket_it_touches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let v: Vec<DesiredState> = (0..3000)
            .map(|i| state(&format!("cluster-{i}"), "a", "1"))
            .collect();
        let writes: Vec<(&DesiredState, Option<&ContentParts>)> =
            v.iter().map(|s| (s, None)).collect();
        let w = store
            .write_states(DESIRED, &v[0].commit, &writes, &[])
            .unwrap();
        assert_eq!(w.headers, 3000);
        assert_eq!(w.contents, 1, "one render, one part");
        assert!(w.buckets <= 1024, "{} buckets", w.buckets);
        // One cluster changes: one bucket.
        let changed = state("cluster-7", "b", "2");
        let w = store
            .write_states(DESIRED, &v[0].commit, &[(&changed, None)], &[])
            .unwrap();
        assert_eq!((w.headers, w.contents, w.buckets), (1, 1, 1));
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let got = store.load_states(DESIRED).unwrap();
        assert_eq!(got.len(), 3000);
        assert_eq!(got["cluster-7"], changed);
        assert_eq!(got["cluster-8"], v[8]);
    }

    #[test]
    fn states_of_older_hubs_move_to_records_and_orphan_parts_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let a = state("c1", "a", "1");
        let b = state("c2", "b", "2");
        let held = state("c3", "a", "3");
        {
            let db = sled::open(dir.path().join("hub.sled")).unwrap();
            let states = db.open_tree(DESIRED).unwrap();
            let contents = db.open_tree("state-contents").unwrap();
            // As hubs before content keys stored it: the whole state.
            states
                .insert("c1", fleet_proto::convert::encode_state(&a).to_vec())
                .unwrap();
            // As hubs before records: a header at the tree's base, and one
            // naming its commit, with the contents apart.
            states
                .insert(BASE_KEY, serde_json::to_vec(&*b.commit).unwrap())
                .unwrap();
            for (s, commit) in [(&b, None), (&held, Some((*held.commit).clone()))] {
                let key = fleet_proto::convert::content_key(s);
                contents
                    .insert(key.as_bytes(), content(s).to_vec())
                    .unwrap();
                let h = Header { key, commit };
                states.insert(s.cluster.as_bytes(), h.to_vec()).unwrap();
            }
            db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let got = store.load_states(DESIRED).unwrap();
        assert_eq!(got["c1"], a);
        assert_eq!(got["c2"], b);
        assert_eq!(got["c3"], held);
        assert_eq!(store.base(DESIRED).unwrap().unwrap(), *b.commit);
        assert!(store.old_states.is_empty() && store.old_contents.is_empty());
        assert_eq!(store.contents_len(), 3);
        // A part no record names (a hub killed before removing it).
        store.records.insert_part(&[7; 32], b"x");
        assert_eq!(store.collect_contents().unwrap(), 1);
        assert_eq!(store.contents_len(), 3);
        // A record whose parts are missing is skipped, not fatal.
        store.records.clear_parts();
        assert!(store.load_states(DESIRED).unwrap().is_empty());
        // Reopened, the store reads the same (the move happened once).
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_states(DESIRED).unwrap().len(), 0);
        assert_eq!(store.base(DESIRED).unwrap().unwrap(), *b.commit);
    }

    #[test]
    fn the_index_stores_its_clusters_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut index = FleetIndex::default();
        index.commit.id = "a".into();
        std::sync::Arc::make_mut(&mut index.clusters).insert("c1".into(), Default::default());
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
