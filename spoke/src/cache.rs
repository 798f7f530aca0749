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

#[derive(Clone)]
pub struct Cache {
    db: sled::Db,
    state: sled::Tree,
    inventory: sled::Tree,
    outbox: sled::Tree,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache> {
        let path = dir.join("spoke.sled");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_CAPACITY)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None)
            .open()
            .map_err(|source| CacheError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Cache {
            state: db.open_tree("state")?,
            inventory: db.open_tree("inventory")?,
            outbox: db.open_tree("outbox")?,
            db,
        })
    }

    /// The cached state, verified again. A corrupt entry is reported and
    /// ignored: the spoke then waits for the hub and applies (and prunes) nothing.
    pub fn load_state(&self) -> Result<Option<DesiredState>> {
        let Some(bytes) = self.state.get("current")? else {
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

    /// Persists a verified state durably (flushed before returning).
    pub fn save_state(&self, encoded: &[u8]) -> Result<()> {
        self.state.insert("current", encoded)?;
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
}
