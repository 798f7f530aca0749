//! One encoded state per cluster, shared by reference with every stream that
//! serves it: publishing a new state is one `watch` send, never a copy per
//! connection.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use fleet_render::CommitMeta;
use tokio::sync::watch;

/// A desired state ready to send: commit, digest and the protobuf bytes,
/// as the content (`fleet_proto::convert::encode_content`, shared with the
/// cluster's earlier states of the same content) followed by the commit.
#[derive(Debug)]
pub struct Published {
    /// Shared by every state published at the same commit.
    pub commit: std::sync::Arc<CommitMeta>,
    pub digest: String,
    /// `fleet_proto::convert::content_key` of the state.
    pub content_key: Arc<str>,
    pub content: Bytes,
    /// `fleet_proto::convert::encode_commit` of `commit`.
    pub head: Bytes,
    /// The hub's signed provenance statement (empty when the hub does not sign).
    pub envelope: crate::signing::Envelope,
}

impl Published {
    /// The size of the encoded state.
    pub fn len(&self) -> usize {
        self.content.len() + self.head.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..end` of the encoded state: a slice of the shared
    /// content where they fall in it, a copy only where they reach the head.
    pub fn slice(&self, start: usize, end: usize) -> Bytes {
        let c = self.content.len();
        if end <= c {
            return self.content.slice(start..end);
        }
        if start >= c {
            return self.head.slice(start - c..end - c);
        }
        let mut out = bytes::BytesMut::with_capacity(end - start);
        out.extend_from_slice(&self.content[start..]);
        out.extend_from_slice(&self.head[..end - c]);
        out.freeze()
    }

    /// The whole encoded state (a copy).
    pub fn encoded(&self) -> Bytes {
        self.slice(0, self.len())
    }
}

pub type Slot = Option<Arc<Published>>;

/// Keyed in name order: a publish and a release walk their clusters in that
/// order, and [`crate::sorted::Cursor`] finds each slot in a step or two.
#[derive(Default)]
pub struct Fanout {
    clusters: RwLock<BTreeMap<String, watch::Sender<Slot>>>,
}

impl Fanout {
    pub fn publish(&self, cluster: &str, p: Arc<Published>) {
        self.publish_all([(cluster, p)]);
    }

    /// [`Fanout::publish`] for many clusters, under one lock. The states
    /// they replace are freed off this path ([`crate::reclaim`]).
    pub fn publish_all<'a>(&self, states: impl IntoIterator<Item = (&'a str, Arc<Published>)>) {
        let mut replaced = Vec::new();
        let mut map = self.clusters.write().expect("fanout lock");
        let mut new = Vec::new();
        {
            let mut slots = crate::sorted::Cursor::new(&map);
            for (cluster, p) in states {
                match slots.get(cluster) {
                    Some(tx) => replaced.push(tx.send_replace(Some(p))),
                    None => new.push((cluster, p)),
                }
            }
        }
        for (cluster, p) in new {
            map.insert(cluster.to_string(), watch::channel(Some(p)).0);
        }
        drop(map);
        crate::reclaim::later(replaced);
    }

    pub fn get(&self, cluster: &str) -> Slot {
        self.clusters
            .read()
            .expect("fanout lock")
            .get(cluster)
            .and_then(|tx| tx.borrow().clone())
    }

    /// [`Fanout::get`] for many clusters, under one lock.
    pub fn get_all<'a>(&self, clusters: impl Iterator<Item = &'a str>) -> Vec<Slot> {
        let map = self.clusters.read().expect("fanout lock");
        let mut slots = crate::sorted::Cursor::new(&map);
        clusters
            .map(|c| slots.get(c).and_then(|tx| tx.borrow().clone()))
            .collect()
    }

    /// A receiver that sees the cluster's current state and every later one.
    pub fn subscribe(&self, cluster: &str) -> watch::Receiver<Slot> {
        if let Some(tx) = self.clusters.read().expect("fanout lock").get(cluster) {
            return tx.subscribe();
        }
        let mut map = self.clusters.write().expect("fanout lock");
        map.entry(cluster.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    pub fn contains(&self, cluster: &str) -> bool {
        self.get(cluster).is_some()
    }
}
