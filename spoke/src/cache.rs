//! The spoke's sled cache: the last verified desired state, the inventory of
//! what fleet applied, and the latest status report not yet delivered.
//! The only module that knows sled.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use fleet_render::DesiredState;

use crate::apply::{Inventory, InventoryEntry};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("spoke cache at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("spoke cache: {0}")]
    Db(#[from] sled::Error),
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// sled's page cache for a small agent: states are read once at start, so a
/// small cache costs nothing but keeps RSS low.
pub const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// A state is stored in chunks of this size, far under sled's blob threshold
/// (a quarter of its 512 KiB segment, for a whole leaf of up to 17 entries):
/// sled 0.34 writes larger pages as blob files and, with this configuration,
/// never deletes the superseded ones, so every rewrite of a 1 MiB state used
/// to leave 1 MiB behind on disk (measured by `fleet-load`, docs/benchmarks.md).
pub const STATE_CHUNK: usize = 1024;

/// sled's log segment: it keeps a few segments whatever the data, so smaller
/// segments keep the disk floor near the size of the state.
pub const SEGMENT_SIZE: usize = 128 * 1024;
/// sled's default segment, used by caches created before [`SEGMENT_SIZE`].
const LEGACY_SEGMENT_SIZE: usize = 512 * 1024;

/// Key of the number of chunks of the current state (u32, big-endian).
const CHUNKS: &[u8] = b"chunks";
/// Key of a state stored whole, by caches written before chunking.
const LEGACY: &[u8] = b"current";
/// The hub's provenance statement of the cached state, and its signature.
const STATEMENT: &[u8] = b"statement";
const SIGNATURE: &[u8] = b"signature";

fn chunk_key(i: usize) -> [u8; 5] {
    let mut k = [b'c', 0, 0, 0, 0];
    k[1..].copy_from_slice(&(i as u32).to_be_bytes());
    k
}

#[derive(Clone)]
pub struct Cache {
    db: sled::Db,
    state: sled::Tree,
    inventory: sled::Tree,
    outbox: sled::Tree,
    history: sled::Tree,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache> {
        let path = dir.join("spoke.sled");
        // It holds rendered Secrets in plain text: owner only (docs/security.md).
        owner_only_dir(&path);
        let config = |segment_size| {
            sled::Config::new()
                .path(&path)
                .cache_capacity(CACHE_CAPACITY)
                .segment_size(segment_size)
                .mode(sled::Mode::LowSpace)
                .flush_every_ms(None)
        };
        // A cache made before SEGMENT_SIZE was set keeps sled's default: sled
        // refuses to change the segment size of an existing database.
        let db = match config(SEGMENT_SIZE).open() {
            Err(sled::Error::Unsupported(why)) if why.contains("io buffer size") => {
                config(LEGACY_SEGMENT_SIZE).open()
            }
            r => r,
        }
        .map_err(|source| CacheError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Cache {
            state: db.open_tree("state")?,
            inventory: db.open_tree("inventory")?,
            outbox: db.open_tree("outbox")?,
            history: db.open_tree("history")?,
            db,
        })
    }

    /// The cached state, verified again. A corrupt entry is reported and
    /// ignored: the spoke then waits for the hub and applies (and prunes) nothing.
    pub fn load_state(&self) -> Result<Option<DesiredState>> {
        let Some(bytes) = self.load_encoded()? else {
            return Ok(None);
        };
        match fleet_proto::convert::decode_state(&bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                tracing::error!(error = %e, "the cached desired state is corrupt; waiting for the hub and applying nothing until then");
                Ok(None)
            }
        }
    }

    /// The encoded state as stored; a missing chunk reads as an empty
    /// (hence corrupt) state.
    fn load_encoded(&self) -> Result<Option<Vec<u8>>> {
        let Some(n) = self.chunk_count()? else {
            return Ok(self.state.get(LEGACY)?.map(|v| v.to_vec()));
        };
        let mut out = Vec::with_capacity(n * STATE_CHUNK);
        for i in 0..n {
            match self.state.get(chunk_key(i))? {
                Some(c) => out.extend_from_slice(&c),
                None => return Ok(Some(Vec::new())),
            }
        }
        Ok(Some(out))
    }

    fn chunk_count(&self) -> Result<Option<usize>> {
        Ok(self.state.get(CHUNKS)?.map(|v| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&v[..4.min(v.len())]);
            u32::from_be_bytes(b) as usize
        }))
    }

    /// Persists a verified state durably (flushed before returning), in
    /// [`STATE_CHUNK`] pieces written as one atomic batch.
    pub fn save_state(&self, encoded: &[u8]) -> Result<()> {
        self.save_signed_state(encoded, &crate::trust::Envelope::default())
    }

    /// The statement and signature of the cached state (empty: unsigned).
    pub fn load_envelope(&self) -> Result<crate::trust::Envelope> {
        let get = |k: &[u8]| -> Result<bytes::Bytes> {
            Ok(self
                .state
                .get(k)?
                .map(|v| bytes::Bytes::from(v.to_vec()))
                .unwrap_or_default())
        };
        Ok(crate::trust::Envelope {
            statement: get(STATEMENT)?,
            signature: get(SIGNATURE)?,
        })
    }

    /// Persists a state with its signed statement, in the same atomic batch.
    pub fn save_signed_state(&self, encoded: &[u8], env: &crate::trust::Envelope) -> Result<()> {
        let old = self.chunk_count()?.unwrap_or(0);
        let n = encoded.len().div_ceil(STATE_CHUNK);
        let mut batch = sled::Batch::default();
        for (i, c) in encoded.chunks(STATE_CHUNK).enumerate() {
            batch.insert(&chunk_key(i), c);
        }
        for i in n..old {
            batch.remove(&chunk_key(i));
        }
        batch.insert(CHUNKS, &(n as u32).to_be_bytes());
        batch.remove(LEGACY);
        if env.is_empty() {
            batch.remove(STATEMENT);
            batch.remove(SIGNATURE);
        } else {
            batch.insert(STATEMENT, env.statement.as_ref());
            batch.insert(SIGNATURE, env.signature.as_ref());
        }
        self.state.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn load_inventory(&self) -> Result<Inventory> {
        let mut map = BTreeMap::new();
        for kv in self.inventory.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match serde_json::from_slice::<InventoryEntry>(&v) {
                Ok(e) => {
                    map.insert(key, e);
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "skipping a corrupt inventory entry")
                }
            }
        }
        Ok(Inventory::from(map))
    }

    /// Writes the inventory's changes since the last save, durably.
    pub fn save_inventory(&self, inv: &mut Inventory) -> Result<()> {
        let (upserts, removals) = inv.take_changes();
        if upserts.is_empty() && removals.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (k, e) in upserts {
            batch.insert(
                k.as_bytes(),
                serde_json::to_vec(&e).expect("inventory entry serializes"),
            );
        }
        for k in removals {
            batch.remove(k.as_bytes());
        }
        self.inventory.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn save_report(&self, encoded: &[u8]) -> Result<()> {
        self.outbox.insert("status", encoded)?;
        Ok(())
    }

    pub fn load_report(&self) -> Result<Option<Bytes>> {
        Ok(self
            .outbox
            .get("status")?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    /// Where the cached state came from (reported to the hub).
    pub fn save_provenance(&self, p: &fleet_proto::v1::SpokeProvenance) -> Result<()> {
        self.outbox
            .insert("provenance", prost::Message::encode_to_vec(p))?;
        Ok(())
    }

    pub fn load_provenance(&self) -> Result<fleet_proto::v1::SpokeProvenance> {
        Ok(self
            .outbox
            .get("provenance")?
            .and_then(|v| prost::Message::decode(v.as_ref()).ok())
            .unwrap_or_default())
    }

    /// Keeps a verified state in the history of good states (the newest
    /// `keep`), for `--rollback-to`. Keyed by when the hub published it.
    pub fn remember(
        &self,
        published_at_ms: u64,
        encoded: &[u8],
        env: &crate::trust::Envelope,
        keep: usize,
    ) -> Result<()> {
        let mut v =
            Vec::with_capacity(encoded.len() + env.statement.len() + env.signature.len() + 12);
        for part in [encoded, env.statement.as_ref(), env.signature.as_ref()] {
            v.extend_from_slice(&(part.len() as u32).to_be_bytes());
            v.extend_from_slice(part);
        }
        self.history.insert(published_at_ms.to_be_bytes(), v)?;
        while self.history.len() > keep.max(1) {
            match self.history.pop_min()? {
                Some(_) => {}
                None => break,
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// The remembered good states, newest first: (encoded state, envelope).
    pub fn history(&self) -> Result<Vec<(Vec<u8>, crate::trust::Envelope)>> {
        let mut out = Vec::new();
        for kv in self.history.iter().rev() {
            let (_, v) = kv?;
            let mut parts = Vec::new();
            let mut rest: &[u8] = &v;
            while rest.len() >= 4 {
                let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() < 4 + n {
                    break;
                }
                parts.push(rest[4..4 + n].to_vec());
                rest = &rest[4 + n..];
            }
            if let [state, statement, signature] = &parts[..] {
                out.push((
                    state.clone(),
                    crate::trust::Envelope {
                        statement: statement.clone().into(),
                        signature: signature.clone().into(),
                    },
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the cache again after a drop. sled's flusher thread lets go of
    /// the directory lock a moment after the last handle is dropped, so a
    /// reopen in the same process waits for it (bounded).
    fn reopen(dir: &std::path::Path) -> Cache {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Cache::open(dir) {
                Ok(c) => return c,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cache at {} did not reopen: {e}", dir.display()),
            }
        }
    }

    fn encoded(cluster: &str, resources: usize) -> Vec<u8> {
        let mut apps = BTreeMap::new();
        let resources = (0..resources)
            .map(|i| {
                let v = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "n"},
                    "data": {"v": "x".repeat(300)}});
                fleet_render::Resource::from_value(&v).unwrap()
            })
            .collect();
        apps.insert(
            "app".to_string(),
            fleet_render::AppState {
                source_revision: "r".into(),
                error: None,
                resources,
            },
        );
        let s = DesiredState::new(
            cluster.into(),
            fleet_render::CommitMeta::default(),
            fleet_render::SyncPolicy::default(),
            apps,
        );
        fleet_proto::convert::encode_state(&s).to_vec()
    }

    #[test]
    fn a_smaller_state_replaces_a_larger_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.save_state(&encoded("big", 40)).unwrap();
        let small = encoded("small", 2);
        assert!(small.len() > STATE_CHUNK, "the test needs several chunks");
        cache.save_state(&small).unwrap();
        drop(cache);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_encoded().unwrap().unwrap(), small);
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "small");
    }

    #[test]
    fn a_state_stored_whole_by_an_older_spoke_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.state.insert(LEGACY, encoded("old", 3)).unwrap();
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "old");
        cache.save_state(&encoded("new", 3)).unwrap();
        assert!(cache.state.get(LEGACY).unwrap().is_none());
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "new");
    }

    #[test]
    fn a_cache_made_with_the_default_segment_size_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("spoke.sled"))
            .open()
            .unwrap();
        db.open_tree("state")
            .unwrap()
            .insert(LEGACY, encoded("old", 3))
            .unwrap();
        db.flush().unwrap();
        drop(db);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "old");
    }

    #[test]
    fn a_missing_chunk_is_a_corrupt_state_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.save_state(&encoded("c", 10)).unwrap();
        cache.state.remove(chunk_key(1)).unwrap();
        assert!(cache.load_state().unwrap().is_none());
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
