//! The spoke's cache: the last verified desired state with its signed
//! statement ([`STATE_FILE`]), the inventory of what fleet applied (sled),
//! the latest status report for the link to send again after a reconnect
//! ([`REPORT_FILE`]), and the remembered good states (sled).
//! The only module that knows sled.

use std::collections::BTreeMap;
use std::path::Path;

use fleet_render::DesiredState;

use crate::apply::{Inventory, InventoryEntry};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("spoke cache at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("spoke cache: {0}")]
    Db(#[from] sled::Error),
    #[error("spoke cache file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// `StatusReport.resources` in spoke.proto.
const REPORT_RESOURCES_TAG: u32 = 4;

/// Every field of `r` but its resources.
fn report_head(r: &fleet_proto::v1::StatusReport) -> fleet_proto::v1::StatusReport {
    fleet_proto::v1::StatusReport {
        revision: r.revision.clone(),
        digest: r.digest.clone(),
        sync: r.sync.clone(),
        resources: Vec::new(),
        observed_at: r.observed_at,
        provenance: r.provenance.clone(),
    }
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// sled's page cache for a small agent: states are read once at start, so a
/// small cache costs nothing but keeps RSS low. sled counts pages by their
/// serialized size; in memory they take several times that, so 4 MiB here
/// measured about 28 MB of heap at 10,000 objects. sled holds only the
/// inventory, the outbox and the remembered states now.
pub const CACHE_CAPACITY: u64 = 256 * 1024;

/// Inventory changes written per sled batch (see [`Cache::save_inventory`]).
pub const INVENTORY_BATCH: usize = 256;

/// Older spokes stored a state in sled ([`STATE_FILE`] now) in chunks of
/// this size, far under sled's blob threshold
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

/// Key of the slot (0 or 1, one byte) whose chunks are the current state;
/// absent: slot 0, as written by spokes before slots.
const SLOT: &[u8] = b"slot";
/// Chunk key prefix of each slot.
const SLOT_PREFIX: [u8; 2] = [b'c', b'd'];
/// Chunks removed per sled batch when clearing a state an older spoke left.
const STATE_BATCH: usize = 256;

fn chunk_key(slot: usize, i: usize) -> [u8; 5] {
    let mut k = [SLOT_PREFIX[slot], 0, 0, 0, 0];
    k[1..].copy_from_slice(&(i as u32).to_be_bytes());
    k
}

/// The current state and its envelope, in the cache directory: one file
/// (`FLEETST1`, the statement and the signature each after its u32 length,
/// then the encoded state), replaced whole by a rename. A state in sled was
/// held again by sled's page cache and log as it was written: megabytes of
/// the spoke's peak at 10,000 objects. States written by older spokes (in
/// sled, in chunks or whole) are read when there is no file.
pub const STATE_FILE: &str = "spoke-state.bin";
const STATE_MAGIC: &[u8; 8] = b"FLEETST1";

/// The latest status report, encoded, in the cache directory: a file, not a
/// sled value, so saving it does not have sled hold (and log) a second
/// encoded copy of a report that is megabytes at 10,000 objects.
pub const REPORT_FILE: &str = "spoke-status.pb";

#[derive(Clone)]
pub struct Cache {
    dir: std::sync::Arc<Path>,
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
            dir: dir.into(),
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
        match self.read_state_file()? {
            Some(f) => Ok(Some(f.map(|(_, s)| s).unwrap_or_default())),
            None => self.load_encoded_sled(),
        }
    }

    /// The state file: `None` when there is none, `Some(None)` when it is
    /// not one (a corrupt state), else the envelope and the encoded state.
    #[allow(clippy::type_complexity)]
    fn read_state_file(&self) -> Result<Option<Option<(crate::trust::Envelope, Vec<u8>)>>> {
        let path = self.dir.join(STATE_FILE);
        let mut v = match std::fs::read(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::File {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let mut at = STATE_MAGIC.len();
        if !v.starts_with(STATE_MAGIC) {
            return Ok(Some(None));
        }
        let mut part = |v: &[u8]| -> Option<Vec<u8>> {
            let n = u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize;
            let p = v.get(at + 4..at + 4 + n)?.to_vec();
            at += 4 + n;
            Some(p)
        };
        let (Some(statement), Some(signature)) = (part(&v), part(&v)) else {
            return Ok(Some(None));
        };
        // The state is most of the file: moved down, not copied.
        v.drain(..at);
        let env = crate::trust::Envelope {
            statement: statement.into(),
            signature: signature.into(),
        };
        Ok(Some(Some((env, v))))
    }

    /// The state as an older spoke stored it in sled.
    fn load_encoded_sled(&self) -> Result<Option<Vec<u8>>> {
        let Some(n) = self.chunk_count()? else {
            return Ok(self.state.get(LEGACY)?.map(|v| v.to_vec()));
        };
        let slot = self.slot()?;
        let mut out = Vec::with_capacity(n * STATE_CHUNK);
        for i in 0..n {
            match self.state.get(chunk_key(slot, i))? {
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

    fn slot(&self) -> Result<usize> {
        Ok(match self.state.get(SLOT)?.as_deref() {
            Some([1]) => 1,
            _ => 0,
        })
    }

    /// Removes the chunks of `slot` from index `from` on, in bounded batches.
    fn clear_slot(&self, slot: usize, from: usize) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in self.state.scan_prefix([SLOT_PREFIX[slot]]).keys() {
            let k = k?;
            let index = <[u8; 4]>::try_from(&k[1..]).map(u32::from_be_bytes);
            if !index.is_ok_and(|i| i as usize >= from) {
                continue; // "chunks" shares slot 0's prefix
            }
            batch.remove(k);
            n += 1;
            if n == STATE_BATCH {
                self.state.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        self.state.apply_batch(batch)?;
        Ok(())
    }

    /// Persists a verified state durably (flushed before returning), in
    /// [`STATE_CHUNK`] pieces.
    pub fn save_state(&self, encoded: &[u8]) -> Result<()> {
        self.save_signed_state(encoded, &crate::trust::Envelope::default())
    }

    /// The statement and signature of the cached state (empty: unsigned).
    pub fn load_envelope(&self) -> Result<crate::trust::Envelope> {
        if let Some(f) = self.read_state_file()? {
            return Ok(f.map(|(env, _)| env).unwrap_or_default());
        }
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

    /// Persists a state with its signed statement, durably: written to a
    /// temporary file, flushed, and renamed over [`STATE_FILE`] (the
    /// directory flushed too). A crash before the rename leaves the old
    /// state and its envelope (the temporary file is never read, and is
    /// overwritten by the next save); after it, the new ones. A state an
    /// older spoke left in sled is cleared once the file is written, so a
    /// downgraded spoke finds no state (and waits for the hub) rather than
    /// an old one.
    pub fn save_signed_state(&self, encoded: &[u8], env: &crate::trust::Envelope) -> Result<()> {
        use std::io::Write as _;
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = owner_only_file(&tmp)?;
            let mut head = Vec::with_capacity(16 + env.statement.len() + env.signature.len());
            head.extend_from_slice(STATE_MAGIC);
            for part in [env.statement.as_ref(), env.signature.as_ref()] {
                head.extend_from_slice(&(part.len() as u32).to_be_bytes());
                head.extend_from_slice(part);
            }
            f.write_all(&head)?;
            f.write_all(encoded)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            #[cfg(unix)]
            std::fs::File::open(&*self.dir)?.sync_all()?;
            Ok(())
        };
        write().map_err(|source| CacheError::File {
            path: path.display().to_string(),
            source,
        })?;
        if !self.state.is_empty() {
            self.clear_sled_state()?;
        }
        Ok(())
    }

    /// Removes a state an older spoke stored in sled (its chunks, count,
    /// slot and envelope), in bounded batches.
    fn clear_sled_state(&self) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.remove(CHUNKS);
        batch.remove(SLOT);
        batch.remove(LEGACY);
        batch.remove(STATEMENT);
        batch.remove(SIGNATURE);
        self.state.apply_batch(batch)?;
        self.clear_slot(0, 0)?;
        self.clear_slot(1, 0)?;
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

    /// Writes the inventory's changes since the last save, durably, in
    /// batches of at most [`INVENTORY_BATCH`] changes, each flushed before
    /// the next is built: a first sync of 10,000 objects no longer builds
    /// (and has sled log) one batch of all of them, which was most of the
    /// spoke's peak memory.
    ///
    /// Why batches are safe, though a crash between two of them persists only
    /// part of the changes: every change is true on its own. An entry is
    /// upserted only after its object was applied, and removed only after it
    /// was deleted, found gone, or found not to be fleet's (prune reads the
    /// live object's labels again before any delete). So a crash leaves each
    /// key either as before the pass or as after it, never a record of
    /// something that did not happen: prune never deletes on the strength of
    /// a partial save. Upserts go first, so what fleet applied is durable
    /// before anything is dropped; an upsert lost to a crash is the same as a
    /// crash before the save (the Kubernetes target also keeps its record in
    /// the cluster, read back at start). A failed write keeps the changes it
    /// did not persist pending, for the next save.
    pub fn save_inventory(&self, inv: &mut Inventory) -> Result<()> {
        self.save_inventory_with(inv, |batch| {
            self.inventory.apply_batch(batch)?;
            self.db.flush()?;
            Ok(())
        })
    }

    fn save_inventory_with(
        &self,
        inv: &mut Inventory,
        mut write: impl FnMut(sled::Batch) -> Result<()>,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let mut batch = sled::Batch::default();
            let up = inv.unsaved_after(after.as_deref(), INVENTORY_BATCH);
            for (k, e) in &up {
                batch.insert(
                    k.as_bytes(),
                    serde_json::to_vec(e).expect("inventory entry serializes"),
                );
            }
            let up: Vec<String> = up.into_iter().map(|(k, _)| k.clone()).collect();
            // Upserts go first: a batch short of upserts has them all, and
            // only then are removals added.
            let rm = inv.unsaved_removals(INVENTORY_BATCH - up.len());
            for k in rm {
                batch.remove(k.as_bytes());
            }
            let removed = rm.len();
            if up.is_empty() && removed == 0 {
                return Ok(());
            }
            // A failed write leaves its changes unsaved, for the next save.
            write(batch)?;
            inv.saved(&up, removed);
            after = up.last().cloned().or(after);
        }
    }

    /// Keeps `report` as the latest status report ([`REPORT_FILE`]): written
    /// to a temporary file and renamed over the old one, so a crash leaves
    /// the old report or the new one (not flushed: like the sled value it
    /// replaces, it is only as durable as the next sync of the disk). It is
    /// encoded a resource at a time, never whole in memory: the fields but
    /// the resources first, then each resource (protobuf reads fields in any
    /// order and concatenates repeated ones).
    pub fn save_report(&self, report: &fleet_proto::v1::StatusReport) -> Result<()> {
        use prost::Message as _;
        use std::io::Write as _;
        let path = self.dir.join(REPORT_FILE);
        let tmp = self.dir.join(format!("{REPORT_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(owner_only_file(&tmp)?);
            let mut buf = report_head(report).encode_to_vec();
            w.write_all(&buf)?;
            for r in report.resources.iter() {
                buf.clear();
                prost::encoding::message::encode(REPORT_RESOURCES_TAG, r, &mut buf);
                w.write_all(&buf)?;
            }
            w.into_inner().map_err(|e| e.into_error())?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| CacheError::File {
            path: path.display().to_string(),
            source,
        })?;
        // Written by spokes before the file.
        self.outbox.remove("status")?;
        Ok(())
    }

    /// The latest status report, encoded; from sled where a spoke older than
    /// [`REPORT_FILE`] left it.
    pub fn load_report(&self) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(REPORT_FILE);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.outbox.get("status")?.map(|v| v.to_vec()))
            }
            Err(source) => Err(CacheError::File {
                path: path.display().to_string(),
                source,
            }),
        }
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
            .collect::<Vec<_>>()
            .into();
        apps.insert(
            "app".to_string(),
            fleet_render::AppState {
                source_revision: Some("r".into()),
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

    fn entry(i: usize) -> InventoryEntry {
        InventoryEntry {
            app: "app".into(),
            id: format!("ConfigMap/n/cm-{i}"),
            digest: format!("d{i}"),
            api_version: "v1".into(),
        }
    }

    #[test]
    fn a_large_inventory_save_is_written_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let mut inv = Inventory::default();
        inv.insert("gone".into(), entry(0));
        cache.save_inventory(&mut inv).unwrap();
        inv.remove("gone");
        let n = 2 * INVENTORY_BATCH + 7;
        for i in 0..n {
            inv.insert(format!("k{i:05}"), entry(i));
        }
        let mut sizes = Vec::new();
        cache
            .save_inventory_with(&mut inv, |b| {
                let before = cache.inventory.len();
                cache.inventory.apply_batch(b)?;
                sizes.push(cache.inventory.len().abs_diff(before));
                Ok(())
            })
            .unwrap();
        // Three batches: upserts first, the removal last.
        assert_eq!(sizes, vec![INVENTORY_BATCH, INVENTORY_BATCH, 7 - 1]);
        drop(cache);
        let loaded = reopen(dir.path()).load_inventory().unwrap();
        assert_eq!(loaded.len(), n);
        assert!(loaded.get("gone").is_none());
        assert_eq!(loaded.get("k00300"), Some(&entry(300)));
    }

    #[test]
    fn a_failed_inventory_batch_leaves_the_rest_pending_for_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let mut inv = Inventory::default();
        inv.insert("old".into(), entry(0));
        cache.save_inventory(&mut inv).unwrap();
        inv.remove("old");
        let n = 2 * INVENTORY_BATCH;
        for i in 0..n {
            inv.insert(format!("k{i:05}"), entry(i));
        }
        let mut calls = 0;
        let r = cache.save_inventory_with(&mut inv, |b| {
            calls += 1;
            if calls == 2 {
                return Err(CacheError::Db(sled::Error::Unsupported("disk full".into())));
            }
            cache.inventory.apply_batch(b)?;
            Ok(())
        });
        assert!(r.is_err());
        // The first batch is written; the old entry is still recorded.
        assert_eq!(cache.inventory.len(), INVENTORY_BATCH + 1);
        cache.save_inventory(&mut inv).unwrap();
        drop(cache);
        let loaded = reopen(dir.path()).load_inventory().unwrap();
        assert_eq!(loaded.len(), n);
        assert!(loaded.get("old").is_none());
        assert_eq!(loaded.get(&format!("k{:05}", n - 1)), Some(&entry(n - 1)));
    }

    /// What a spoke before [`STATE_FILE`] wrote: chunks in `slot`, then the
    /// slot, the count and the envelope.
    fn save_as_older_spoke(
        cache: &Cache,
        encoded: &[u8],
        env: &crate::trust::Envelope,
        slot: usize,
    ) {
        for (i, c) in encoded.chunks(STATE_CHUNK).enumerate() {
            cache.state.insert(chunk_key(slot, i), c).unwrap();
        }
        let n = encoded.len().div_ceil(STATE_CHUNK) as u32;
        cache.state.insert(SLOT, &[slot as u8]).unwrap();
        cache.state.insert(CHUNKS, &n.to_be_bytes()).unwrap();
        cache
            .state
            .insert(STATEMENT, env.statement.as_ref())
            .unwrap();
        cache
            .state
            .insert(SIGNATURE, env.signature.as_ref())
            .unwrap();
    }

    fn env(s: &str) -> crate::trust::Envelope {
        crate::trust::Envelope {
            statement: format!("s-{s}").into_bytes().into(),
            signature: format!("g-{s}").into_bytes().into(),
        }
    }

    #[test]
    fn a_smaller_state_replaces_a_larger_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache
            .save_signed_state(&encoded("big", 40), &env("big"))
            .unwrap();
        let small = encoded("small", 2);
        cache.save_state(&small).unwrap();
        drop(cache);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_encoded().unwrap().unwrap(), small);
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "small");
        assert!(cache.load_envelope().unwrap().is_empty());
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
    fn a_state_an_older_spoke_chunked_into_sled_loads_and_is_cleared_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let old = encoded("old", 10);
        assert!(old.len() > STATE_CHUNK, "the test needs several chunks");
        save_as_older_spoke(&cache, &old, &env("old"), 1);
        drop(cache);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_encoded().unwrap().unwrap(), old);
        assert_eq!(cache.load_envelope().unwrap(), env("old"));
        let new = encoded("new", 3);
        cache.save_signed_state(&new, &env("new")).unwrap();
        assert!(cache.state.is_empty(), "the older spoke's state is cleared");
        drop(cache);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_encoded().unwrap().unwrap(), new);
        assert_eq!(cache.load_envelope().unwrap(), env("new"));
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
    fn a_save_cut_short_before_its_rename_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache
            .save_signed_state(&encoded("old", 10), &env("old"))
            .unwrap();
        // What a crash while writing the new file leaves.
        std::fs::write(
            dir.path().join(format!("{STATE_FILE}.tmp")),
            b"FLEETST1torn",
        )
        .unwrap();
        drop(cache);
        let cache = reopen(dir.path());
        assert_eq!(cache.load_state().unwrap().unwrap().cluster, "old");
        assert_eq!(cache.load_envelope().unwrap(), env("old"));
        // The next save overwrites the torn file.
        let new = encoded("new", 3);
        cache.save_state(&new).unwrap();
        assert_eq!(cache.load_encoded().unwrap().unwrap(), new);
        assert!(cache.load_envelope().unwrap().is_empty());
        assert!(!dir.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn a_torn_state_file_or_a_missing_chunk_is_a_corrupt_state_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        save_as_older_spoke(&cache, &encoded("c", 10), &env("c"), 0);
        cache.state.remove(chunk_key(0, 1)).unwrap();
        assert!(cache.load_state().unwrap().is_none());
        for torn in [&b"FLEETST1\0\0"[..], b"not a state file"] {
            std::fs::write(dir.path().join(STATE_FILE), torn).unwrap();
            assert!(cache.load_state().unwrap().is_none());
            assert!(cache.load_envelope().unwrap().is_empty());
        }
    }

    #[test]
    fn the_report_file_reads_back_as_the_report_and_replaces_an_older_spokes() {
        use prost::Message as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.load_report().unwrap(), None);
        // What a spoke before the file left in sled.
        let old = fleet_proto::v1::StatusReport {
            revision: "old".into(),
            ..Default::default()
        };
        cache.outbox.insert("status", old.encode_to_vec()).unwrap();
        let got = cache.load_report().unwrap().unwrap();
        assert_eq!(
            fleet_proto::v1::StatusReport::decode(&got[..]).unwrap(),
            old
        );
        let report = fleet_proto::v1::StatusReport {
            revision: "r".into(),
            digest: "d".into(),
            sync: "synced".into(),
            resources: (0..3)
                .map(|i| fleet_proto::v1::ResourceStatus {
                    app: "app".into(),
                    id: format!("ConfigMap/n/cm-{i}"),
                    state: "synced".into(),
                    ..Default::default()
                })
                .collect(),
            observed_at: 7,
            provenance: Some(fleet_proto::v1::SpokeProvenance {
                source: "network".into(),
                ..Default::default()
            }),
        };
        cache.save_report(&report).unwrap();
        let got = cache.load_report().unwrap().unwrap();
        assert_eq!(
            fleet_proto::v1::StatusReport::decode(&got[..]).unwrap(),
            report
        );
        assert_eq!(cache.outbox.get("status").unwrap(), None);
        assert!(!dir.path().join(format!("{REPORT_FILE}.tmp")).exists());
    }
}

/// Creates (or truncates) a file only its owner may read: the state holds
/// rendered Secrets in plain text (docs/security.md).
fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
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
