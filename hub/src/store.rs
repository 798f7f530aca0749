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
            outbox: db.open_tree("outbox")?,
            outbox_keys: db.open_tree("outbox-keys")?,
            db,
        })
    }

    /// Every stored state. A corrupt entry is skipped with a warning, never fatal.
    fn tree(&self, which: &str) -> &sled::Tree {
        if which == RELEASED {
            &self.released
        } else {
            &self.states
        }
    }

    pub fn load_states(&self, which: &str) -> Result<BTreeMap<String, DesiredState>> {
        let mut out = BTreeMap::new();
        for kv in self.tree(which).iter() {
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

    pub fn save_state(&self, which: &str, cluster: &str, encoded: &[u8]) -> Result<()> {
        self.tree(which).insert(cluster, encoded)?;
        Ok(())
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

    pub fn remove_state(&self, which: &str, cluster: &str) -> Result<()> {
        self.tree(which).remove(cluster)?;
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
