//! The stored desired and released states. Each cluster's state is a
//! *record*: its content's skeleton (the fields before and after its apps,
//! and the key of each app's part) and, unless the state is at its tree's
//! base commit, its commit. Records are grouped in buckets by a hash of the
//! cluster's name, so a publish writes one value per bucket it touches, not
//! one per cluster. Parts (one app's encoded field) are stored once by their
//! digest, whatever the clusters and trees that hold them: an app render
//! shared by every cluster is one part.
//!
//! The records are also held in memory (a few hundred bytes a cluster),
//! with a count of the records naming each part, so that a write knows
//! what a bucket holds and which parts nothing names any more without
//! reading the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fleet_proto::convert::{ContentEncoder, ContentParts, PartKey};
use fleet_render::{CommitMeta, DesiredState};
use prost::Message;

use super::{Result, StoreError, Written};

/// Buckets per tree: a publish that changes every cluster writes at most
/// this many values per tree.
const BUCKETS: u64 = 1024;
/// Key of the tree's base commit (bucket keys are two bytes).
const BASE_KEY: &[u8] = b"\0base";

/// Which of the two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Desired = 0,
    Released = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredBucket {
    #[prost(message, repeated, tag = "1")]
    states: Vec<StoredState>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredState {
    #[prost(string, tag = "1")]
    cluster: String,
    /// `fleet_proto::convert::content_key`.
    #[prost(string, tag = "2")]
    key: String,
    /// `fleet_proto::convert::encode_commit`; empty at the tree's base.
    #[prost(bytes = "bytes", tag = "3")]
    commit: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    head: Bytes,
    #[prost(bytes = "vec", repeated, tag = "5")]
    parts: Vec<Vec<u8>>,
    #[prost(bytes = "bytes", tag = "6")]
    tail: Bytes,
}

struct Record {
    /// The content, held: a record reaches its skeleton without a lookup.
    skeleton: Arc<Skeleton>,
    /// Encoded commit; `None`: at the tree's base.
    commit: Option<Bytes>,
}

/// A content without its parts' bytes, named by its content key. The
/// records (in either tree) that name it hold it; the index's set, too.
struct Skeleton {
    key: String,
    head: Bytes,
    parts: Vec<PartKey>,
    tail: Bytes,
}

/// A skeleton in the index's set, found by its key.
struct ByKey(Arc<Skeleton>);

impl std::borrow::Borrow<str> for ByKey {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl std::hash::Hash for ByKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.key.hash(state)
    }
}

#[derive(Default)]
struct Index {
    /// Per tree: bucket -> cluster -> record.
    trees: [BTreeMap<u16, BTreeMap<String, Record>>; 2],
    skeletons: foldhash::HashSet<ByKey>,
    /// Part -> skeletons that hold it.
    parts: foldhash::HashMap<PartKey, u32>,
}

/// The bucket of a cluster: FNV-1a of its name (stable across builds).
fn bucket(cluster: &str) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cluster.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % BUCKETS) as u16
}

fn corrupt(what: &'static str, key: String, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        key,
        reason: reason.to_string(),
    }
}

impl Index {
    /// The skeleton named `key` for one more record, added from `parts`
    /// if new; the parts not stored yet go to `fresh`.
    fn name(
        &mut self,
        key: &str,
        parts: impl FnOnce() -> ContentParts,
        fresh: &mut Vec<(PartKey, Bytes)>,
    ) -> Arc<Skeleton> {
        if let Some(s) = self.skeletons.get(key) {
            return Arc::clone(&s.0);
        }
        let parts = parts();
        for (k, bytes) in &parts.apps {
            let n = self.parts.entry(*k).or_insert(0);
            if *n == 0 {
                fresh.push((*k, bytes.clone()));
            }
            *n += 1;
        }
        let s = Arc::new(Skeleton {
            key: key.to_string(),
            head: parts.head,
            parts: parts.apps.into_iter().map(|(k, _)| k).collect(),
            tail: parts.tail,
        });
        self.skeletons.insert(ByKey(Arc::clone(&s)));
        s
    }

    /// A record let go of `s`; when no record holds it any more, it leaves
    /// the set, and parts nothing holds any more go to `unnamed`.
    fn unname(&mut self, s: Arc<Skeleton>, unnamed: &mut BTreeSet<PartKey>) {
        // Held here and by the set: no record holds it.
        if Arc::strong_count(&s) > 2 {
            return;
        }
        self.skeletons.remove(s.key.as_str());
        for k in &s.parts {
            if let Some(n) = self.parts.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    self.parts.remove(k);
                    unnamed.insert(*k);
                }
            }
        }
    }

    /// Bucket `b` of `which` as stored: a `StoredBucket`, encoded here
    /// from the index without building one (the fields prost writes).
    /// `None`: the bucket is empty.
    fn encoded_bucket(&self, which: Which, b: u16) -> Option<Vec<u8>> {
        let records = self.trees[which as usize]
            .get(&b)
            .filter(|m| !m.is_empty())?;
        let mut out = Vec::with_capacity(records.len() * 256);
        let mut fields: Vec<(u32, &[u8])> = Vec::with_capacity(16);
        for (cluster, r) in records {
            let s = &r.skeleton;
            fields.clear();
            fields.push((1, cluster.as_bytes()));
            fields.push((2, s.key.as_bytes()));
            if let Some(c) = &r.commit {
                fields.push((3, c));
            }
            fields.push((4, &s.head));
            fields.extend(s.parts.iter().map(|k| (5, &k[..])));
            fields.push((6, &s.tail));
            let len: usize = fields.iter().map(|(t, v)| field_len(*t, v.len())).sum();
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut out);
            prost::encoding::encode_varint(len as u64, &mut out);
            for (t, v) in &fields {
                prost::encoding::encode_key(
                    *t,
                    prost::encoding::WireType::LengthDelimited,
                    &mut out,
                );
                prost::encoding::encode_varint(v.len() as u64, &mut out);
                out.extend_from_slice(v);
            }
        }
        Some(out)
    }
}

/// The encoded size of a length-delimited field.
fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// The two trees of records, the parts, and the index of both in memory.
#[derive(Clone)]
pub(super) struct StateTrees {
    trees: [sled::Tree; 2],
    parts: sled::Tree,
    index: Arc<Mutex<Index>>,
}

impl StateTrees {
    pub(super) fn open(db: &sled::Db) -> Result<StateTrees> {
        let trees = [
            db.open_tree("desired-records")?,
            db.open_tree("released-records")?,
        ];
        let parts = db.open_tree("state-parts")?;
        let index = Self::read_index(&trees)?;
        Ok(StateTrees {
            trees,
            parts,
            index: Arc::new(Mutex::new(index)),
        })
    }

    fn read_index(trees: &[sled::Tree; 2]) -> Result<Index> {
        let mut index = Index::default();
        for (t, tree) in trees.iter().enumerate() {
            for kv in tree.iter() {
                let (k, v) = kv?;
                if k.as_ref() == BASE_KEY {
                    continue;
                }
                let b = match <[u8; 2]>::try_from(k.as_ref()) {
                    Ok(b) => u16::from_be_bytes(b),
                    Err(_) => {
                        tracing::warn!(key = ?k, "skipping an unknown key among stored states");
                        continue;
                    }
                };
                let stored = match StoredBucket::decode(v.as_ref()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(bucket = b, error = %e, "skipping a corrupt bucket of stored states");
                        continue;
                    }
                };
                for s in stored.states {
                    let parts: Option<Vec<PartKey>> = s
                        .parts
                        .iter()
                        .map(|p| PartKey::try_from(p.as_slice()).ok())
                        .collect();
                    let Some(parts) = parts else {
                        tracing::warn!(cluster = %s.cluster, "skipping a stored state with a corrupt part key");
                        continue;
                    };
                    let skeleton = ContentParts {
                        head: s.head,
                        apps: parts.into_iter().map(|k| (k, Bytes::new())).collect(),
                        tail: s.tail,
                    };
                    let skeleton = index.name(&s.key, || skeleton, &mut Vec::new());
                    let which = if t == 0 {
                        Which::Desired
                    } else {
                        Which::Released
                    };
                    index.trees[which as usize]
                        .entry(bucket(&s.cluster))
                        .or_default()
                        .insert(
                            s.cluster,
                            Record {
                                skeleton,
                                commit: (!s.commit.is_empty()).then_some(s.commit),
                            },
                        );
                }
            }
        }
        Ok(index)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().expect("state index lock")
    }

    /// Whether the tree holds nothing (not even a base): a new store, or
    /// one of a hub that stored states the older way.
    pub(super) fn is_empty(&self, which: Which) -> bool {
        self.trees[which as usize].is_empty()
    }

    pub(super) fn base(&self, which: Which) -> Result<Option<CommitMeta>> {
        let Some(v) = self.trees[which as usize].get(BASE_KEY)? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| corrupt("base commit", format!("{which:?}"), e))
    }

    /// The content named `key`, read from its parts.
    pub(super) fn content(&self, key: &str) -> Result<Option<Bytes>> {
        let index = self.index();
        let Some(ByKey(s)) = index.skeletons.get(key) else {
            return Ok(None);
        };
        let mut parts = Vec::with_capacity(s.parts.len());
        for k in &s.parts {
            match self.parts.get(k)? {
                Some(v) => parts.push((*k, Bytes::copy_from_slice(&v))),
                None => return Ok(None),
            }
        }
        Ok(Some(
            ContentParts {
                head: s.head.clone(),
                apps: parts,
                tail: s.tail.clone(),
            }
            .join(),
        ))
    }

    /// Every state of `which`, whole-encoded (content then commit). A state
    /// whose parts are missing is skipped with a warning.
    pub(super) fn load(&self, which: Which) -> Result<Vec<(String, Bytes)>> {
        let base = self.base(which)?;
        let base = base.as_ref().map(fleet_proto::convert::encode_commit);
        let records: Vec<(String, String, Option<Bytes>)> = {
            let index = self.index();
            index.trees[which as usize]
                .values()
                .flatten()
                .map(|(c, r)| (c.clone(), r.skeleton.key.clone(), r.commit.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(records.len());
        for (cluster, key, commit) in records {
            let Some(commit) = commit.or_else(|| base.clone()) else {
                tracing::warn!(%cluster, "skipping a stored state at the tree's commit, which is missing");
                continue;
            };
            let Some(content) = self.content(&key)? else {
                tracing::warn!(%cluster, content = %key, "skipping a stored state whose content is missing");
                continue;
            };
            let mut whole = bytes::BytesMut::with_capacity(content.len() + commit.len());
            whole.extend_from_slice(&content);
            whole.extend_from_slice(&commit);
            out.push((cluster, whole.freeze()));
        }
        Ok(out)
    }

    /// One publish's writes to `which` (see `Store::write_states`).
    pub(super) fn write(
        &self,
        which: Which,
        base: &CommitMeta,
        writes: &[(&DesiredState, Option<&ContentParts>)],
        removed: &[String],
    ) -> Result<Written> {
        let mut index = self.index();
        let result = self.write_locked(&mut index, which, base, writes, removed);
        if result.is_err() {
            // Memory follows the disk: whatever of the write did not land is forgotten.
            match Self::read_index(&self.trees) {
                Ok(i) => *index = i,
                Err(e) => tracing::error!(error = %e, "cannot read the stored states again"),
            }
        }
        result
    }

    fn write_locked(
        &self,
        index: &mut Index,
        which: Which,
        base: &CommitMeta,
        writes: &[(&DesiredState, Option<&ContentParts>)],
        removed: &[String],
    ) -> Result<Written> {
        let t = which as usize;
        let mut written = Written::default();
        let mut fresh = sled::Batch::default();
        let mut unnamed = BTreeSet::new();
        let mut dirty = BTreeSet::new();
        let mut encoder = ContentEncoder::default();
        let mut heads: HashMap<&str, Bytes> = HashMap::new();
        let mut new_parts = Vec::new();
        for (state, parts) in writes {
            let key = fleet_proto::convert::content_key_of(state);
            let commit = (*state.commit != *base).then(|| {
                heads
                    .entry(state.commit.id.as_str())
                    .or_insert_with(|| fleet_proto::convert::encode_commit(&state.commit))
                    .clone()
            });
            let skeleton = index.name(
                &key,
                || match parts {
                    Some(p) => (*p).clone(),
                    None => encoder.encode_parts(state),
                },
                &mut new_parts,
            );
            for (k, bytes) in new_parts.drain(..) {
                fresh.insert(&k[..], bytes.as_ref());
                written.contents += 1;
            }
            let b = bucket(&state.cluster);
            let records = index.trees[t].entry(b).or_default();
            let record = Record { skeleton, commit };
            // In place when the cluster has a record: no new name.
            let old = match records.get_mut(&state.cluster) {
                Some(r) => Some(std::mem::replace(r, record)),
                None => records.insert(state.cluster.clone(), record),
            };
            if let Some(old) = old {
                index.unname(old.skeleton, &mut unnamed);
            }
            dirty.insert(b);
            written.headers += 1;
        }
        for cluster in removed {
            let b = bucket(cluster);
            let old = index.trees[t].get_mut(&b).and_then(|m| m.remove(cluster));
            if let Some(old) = old {
                index.unname(old.skeleton, &mut unnamed);
                dirty.insert(b);
                written.headers += 1;
            }
        }
        let mut records = sled::Batch::default();
        for b in &dirty {
            match index.encoded_bucket(which, *b) {
                Some(v) => records.insert(&b.to_be_bytes()[..], v),
                None => {
                    index.trees[t].remove(b);
                    records.remove(&b.to_be_bytes()[..]);
                }
            }
        }
        written.buckets += dirty.len();
        records.insert(
            BASE_KEY,
            serde_json::to_vec(base).expect("commit serializes"),
        );
        // Parts first: a record never names a part not yet stored.
        self.parts.apply_batch(fresh)?;
        self.trees[t].apply_batch(records)?;
        let mut gone = sled::Batch::default();
        for k in &unnamed {
            if !index.parts.contains_key(k) {
                gone.remove(&k[..]);
            }
        }
        self.parts.apply_batch(gone)?;
        Ok(written)
    }

    pub(super) fn parts_len(&self) -> usize {
        self.parts.len()
    }

    /// Removes stored parts no record names (left by a hub killed between
    /// a write and its removals); returns how many.
    pub(super) fn collect(&self) -> Result<usize> {
        let index = self.index();
        let mut removed = 0;
        for k in self.parts.iter().keys() {
            let k = k?;
            let named = PartKey::try_from(k.as_ref()).is_ok_and(|p| index.parts.contains_key(&p));
            if !named {
                self.parts.remove(&k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    #[cfg(test)]
    pub(super) fn insert_part(&self, k: &[u8], v: &[u8]) {
        self.parts.insert(k, v).unwrap();
    }

    #[cfg(test)]
    pub(super) fn clear_parts(&self) {
        self.parts.clear().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_encoded_as_prost_encodes_it() {
        let mut index = Index::default();
        for (cluster, commit) in [
            ("c1", None),
            ("c2", Some(Bytes::from_static(b"\x0a\x02id"))),
        ] {
            let key = format!("sha256:{cluster}");
            let skeleton = index.name(
                &key,
                || ContentParts {
                    head: Bytes::from(format!("head of {cluster}")),
                    apps: vec![([1; 32], Bytes::new()), ([2; 32], Bytes::new())],
                    tail: Bytes::from_static(b"\x2a\x00"),
                },
                &mut Vec::new(),
            );
            index.trees[0]
                .entry(7)
                .or_default()
                .insert(cluster.to_string(), Record { skeleton, commit });
        }
        let expected = StoredBucket {
            states: ["c1", "c2"]
                .iter()
                .map(|c| StoredState {
                    cluster: c.to_string(),
                    key: format!("sha256:{c}"),
                    commit: if *c == "c2" {
                        Bytes::from_static(b"\x0a\x02id")
                    } else {
                        Bytes::new()
                    },
                    head: Bytes::from(format!("head of {c}")),
                    parts: vec![vec![1; 32], vec![2; 32]],
                    tail: Bytes::from_static(b"\x2a\x00"),
                })
                .collect(),
        };
        let got = index.encoded_bucket(Which::Desired, 7).unwrap();
        assert_eq!(got, expected.encode_to_vec());
        assert_eq!(StoredBucket::decode(got.as_slice()).unwrap(), expected);
        assert!(index.encoded_bucket(Which::Desired, 8).is_none());
    }

    #[test]
    fn buckets_spread_cluster_names_and_never_change() {
        // Stable across builds: a stored bucket is found again.
        assert_eq!(bucket("c1"), bucket("c1"));
        assert_eq!(bucket(""), (0xcbf2_9ce4_8422_2325u64 % BUCKETS) as u16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            seen.insert(bucket(&format!("cluster-{i:05}")));
        }
        assert!(seen.len() > 1000, "{} buckets used", seen.len());
    }
}
