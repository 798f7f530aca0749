//! One encoded state per cluster, shared by reference with every stream that
//! serves it: publishing a new state is one `watch` send, never a copy per
//! connection.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use fleet_render::CommitMeta;
use tokio::sync::watch;

/// A state's content bytes (`fleet_proto::convert::ContentParts` in order):
/// pieces shared with the cluster's earlier states and with every cluster
/// that runs the same app render. A commit that changes one app on every
/// cluster allocates that app's piece once, not every cluster's content.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pieces: Arc<[Bytes]>,
    len: usize,
}

impl Content {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// The very same pieces (not only equal bytes).
    pub fn same(&self, other: &Content) -> bool {
        Arc::ptr_eq(&self.pieces, &other.pieces)
    }
}

impl From<Vec<Bytes>> for Content {
    fn from(pieces: Vec<Bytes>) -> Self {
        let len = pieces.iter().map(Bytes::len).sum();
        Content {
            pieces: pieces.into(),
            len,
        }
    }
}

impl From<Bytes> for Content {
    fn from(whole: Bytes) -> Self {
        vec![whole].into()
    }
}

impl From<&fleet_proto::convert::ContentParts> for Content {
    fn from(p: &fleet_proto::convert::ContentParts) -> Self {
        let mut pieces = Vec::with_capacity(p.apps.len() + 2);
        pieces.push(p.head.clone());
        pieces.extend(p.apps.iter().map(|(_, b)| b.clone()));
        pieces.push(p.tail.clone());
        pieces.into()
    }
}

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
    pub content: Content,
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

    /// Bytes `start..end` of the encoded state: a slice of the shared piece
    /// where they fall in one, a copy only where they span several.
    pub fn slice(&self, start: usize, end: usize) -> Bytes {
        let mut out: Option<bytes::BytesMut> = None;
        let mut at = 0;
        for piece in self
            .content
            .pieces
            .iter()
            .chain(std::iter::once(&self.head))
        {
            let (from, to) = (at, at + piece.len());
            at = to;
            if to <= start {
                continue;
            }
            if from >= end {
                break;
            }
            let range = start.max(from) - from..end.min(to) - from;
            match out.as_mut() {
                None if end <= to => return piece.slice(range),
                None => {
                    let mut m = bytes::BytesMut::with_capacity(end - start);
                    m.extend_from_slice(&piece[range]);
                    out = Some(m);
                }
                Some(m) => m.extend_from_slice(&piece[range]),
            }
        }
        out.map(bytes::BytesMut::freeze).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn published(pieces: &[&[u8]], head: &[u8]) -> Published {
        Published {
            commit: Default::default(),
            digest: String::new(),
            content_key: "k".into(),
            content: pieces
                .iter()
                .map(|p| Bytes::copy_from_slice(p))
                .collect::<Vec<_>>()
                .into(),
            head: Bytes::copy_from_slice(head),
            envelope: Default::default(),
        }
    }

    #[test]
    fn every_slice_of_the_pieces_is_the_slice_of_the_whole() {
        let p = published(&[b"abc", b"", b"defgh", b"i"], b"jk");
        let whole = b"abcdefghijk";
        assert_eq!(p.len(), whole.len());
        for start in 0..=whole.len() {
            for end in start..=whole.len() {
                assert_eq!(
                    &p.slice(start, end)[..],
                    &whole[start..end],
                    "{start}..{end}"
                );
            }
        }
        assert_eq!(&p.encoded()[..], whole);
    }

    #[test]
    fn a_slice_inside_one_piece_shares_its_bytes() {
        let p = published(&[b"abc", b"defgh"], b"jk");
        let inside = p.slice(4, 7);
        assert_eq!(&inside[..], b"efg");
        let piece = &p.content.pieces[1];
        assert_eq!(
            inside.as_ptr(),
            piece[1..].as_ptr(),
            "copied instead of sliced"
        );
    }
}
