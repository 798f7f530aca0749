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

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    states: sled::Tree,
    spokes: sled::Tree,
    meta: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("hub.sled");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            states: db.open_tree("states")?,
            spokes: db.open_tree("spokes")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Every stored state. A corrupt entry is skipped with a warning, never fatal.
    pub fn load_states(&self) -> Result<BTreeMap<String, DesiredState>> {
        let mut out = BTreeMap::new();
        for kv in self.states.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match fleet_proto::convert::decode_state(&v) {
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

    pub fn save_state(&self, cluster: &str, encoded: &[u8]) -> Result<()> {
        self.states.insert(cluster, encoded)?;
        Ok(())
    }

    pub fn remove_state(&self, cluster: &str) -> Result<()> {
        self.states.remove(cluster)?;
        Ok(())
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
        match self.meta.get("index")? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: "fleet index",
                    key: "index".into(),
                    reason: e.to_string(),
                }),
        }
    }

    pub fn save_index(&self, index: &FleetIndex) -> Result<()> {
        self.meta.insert(
            "index",
            serde_json::to_vec(index).expect("index serializes"),
        )?;
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
