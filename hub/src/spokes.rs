//! What the hub knows of each spoke ([`SpokeRecord`]: when it was last seen,
//! the commit and digest it applied, its sync verdict and resources), kept in
//! memory and written to the store behind the changes: a record that changed
//! many times between two writes is written once ([`Spokes::persist`], on a
//! ticker and at shutdown). A hub killed loses at most the last tick of
//! records, which its spokes send again: a reconnecting spoke's Ack and
//! status come first on its new stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use crate::status::SpokeRecord;
use crate::store::{self, Store};

/// How often changed records are written.
pub const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

pub struct Spokes {
    store: Store,
    records: Mutex<BTreeMap<String, SpokeRecord>>,
    /// Clusters whose record changed since it was last written.
    dirty: Mutex<BTreeSet<String>>,
}

impl Spokes {
    pub fn open(store: &Store) -> store::Result<Spokes> {
        Ok(Spokes {
            records: Mutex::new(store.load_spokes()?),
            store: store.clone(),
            dirty: Mutex::new(BTreeSet::new()),
        })
    }

    /// Every record, locked: hold it briefly.
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, SpokeRecord>> {
        self.records.lock().expect("spokes lock")
    }

    pub fn get(&self, cluster: &str) -> Option<SpokeRecord> {
        self.lock().get(cluster).cloned()
    }

    /// Changes a cluster's record (made when missing) and marks it to be
    /// written; returns the commit it newly applied, if `f` changed that.
    pub fn update(
        &self,
        cluster: &str,
        now: i64,
        f: impl FnOnce(&mut SpokeRecord),
    ) -> Option<String> {
        let applied = {
            let mut records = self.lock();
            let rec = records.entry(cluster.to_string()).or_default();
            let before = rec.applied.as_ref().map(|c| c.id.clone());
            f(rec);
            rec.last_seen = now;
            let after = rec.applied.as_ref().map(|c| c.id.clone());
            after.filter(|a| before.as_ref() != Some(a))
        };
        self.dirty
            .lock()
            .expect("dirty lock")
            .insert(cluster.to_string());
        applied
    }

    /// Writes the records changed since the last call; returns how many.
    pub fn persist(&self) -> store::Result<usize> {
        let dirty = std::mem::take(&mut *self.dirty.lock().expect("dirty lock"));
        let mut written = 0;
        for cluster in dirty {
            let Some(rec) = self.get(&cluster) else {
                continue;
            };
            if let Err(e) = self.store.save_spoke(&cluster, &rec) {
                // Marked again, so the next tick retries it.
                self.dirty.lock().expect("dirty lock").insert(cluster);
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }
}
