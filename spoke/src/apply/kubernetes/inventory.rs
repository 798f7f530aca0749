//! The cluster-side record of what fleet applied: ConfigMaps in the
//! inventory namespace, so a spoke that lost its disk still prunes what it
//! created. The record is sharded (`fleet-inventory`, `fleet-inventory-1`,
//! ...) by a hash of each key, so it has no size limit and a change rewrites
//! only the shards it touches. Written only when it changes; a failed write
//! is a reported failure, retried with backoff.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fleet_render::Resource;
use serde_json::Value;
use tokio::time::Instant;

use super::plan::{self, INVENTORY_NAME};
use super::{KubernetesApplier, api_error, is_not_found, outcome};
use crate::apply::{Inventory, InventoryEntry, Outcome, ResourceOutcome};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

/// Entries per shard at most: 1,000 entries of the longest names Kubernetes
/// allows stay well below the API server's 1 MiB object limit.
pub const SHARD_ENTRIES: usize = 1000;
/// Key in shard 0 holding the number of shards.
pub const SHARDS_KEY: &str = "shards";

type Entries = BTreeMap<String, InventoryEntry>;

/// Number of shards for `n` entries: a power of two, so growing re-hashes
/// rarely.
pub fn shard_count(n: usize, per_shard: usize) -> usize {
    n.div_ceil(per_shard.max(1)).max(1).next_power_of_two()
}

/// FNV-1a: stable across processes and versions (unlike std's hasher).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn shard_name(i: usize) -> String {
    if i == 0 {
        INVENTORY_NAME.to_string()
    } else {
        format!("{INVENTORY_NAME}-{i}")
    }
}

/// The shard of `key` among `count`.
pub fn shard_of(key: &str, count: usize) -> usize {
    (fnv1a(key) % count.max(1) as u64) as usize
}

/// Splits entries into `count` shards by key hash.
pub fn split(entries: &Entries, count: usize) -> Vec<Entries> {
    let mut shards = vec![Entries::new(); count];
    for (k, e) in entries {
        shards[shard_of(k, count)].insert(k.clone(), e.clone());
    }
    shards
}

/// One shard's entries, borrowed from the inventory where they are there.
type Shard<'a> = BTreeMap<&'a str, Cow<'a, InventoryEntry>>;

/// A SHA-256 of a shard's entries as its ConfigMap holds them (their JSON).
pub type ShardDigest = [u8; 32];

/// [`ShardDigest`] of `entries` (an [`Entries`] or a [`Shard`]: the same
/// entries give the same JSON, so the same digest).
pub fn shard_digest(entries: &impl serde::Serialize) -> ShardDigest {
    struct Hashing(sha2::Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            sha2::Digest::update(&mut self.0, b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(sha2::Digest::new());
    serde_json::to_writer(&mut h, entries).expect("inventory serializes");
    sha2::Digest::finalize(h.0).into()
}

/// Shard `index` of `count` as a ConfigMap.
pub fn shard_configmap(
    namespace: &str,
    cluster: &str,
    index: usize,
    count: usize,
    entries: &impl serde::Serialize,
) -> Value {
    let mut cm = plan::inventory_configmap(namespace, cluster, entries);
    cm["metadata"]["name"] = shard_name(index).into();
    if index == 0 {
        cm["data"][SHARDS_KEY] = count.to_string().into();
    }
    cm
}

/// The number of shards shard 0 announces (1 for a record without shards).
pub fn announced_shards(cm: &Value) -> Result<usize, String> {
    match cm.pointer("/data").and_then(|d| d.get(SHARDS_KEY)) {
        None => Ok(1),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| (1..=1 << 20).contains(n))
            .ok_or_else(|| format!("inventory: {SHARDS_KEY} is {v}, not a shard count")),
    }
}

/// The objects of `intended` the inventory does not hold yet, by inventory
/// key (the first of two with one key), in key order.
fn not_recorded<'a>(
    inv: &Inventory,
    intended: &[(&'a str, &'a Resource)],
) -> Vec<(String, (&'a str, &'a Resource))> {
    let mut extra: Vec<_> = intended
        .iter()
        .map(|&(app, r)| (plan::inventory_key(&r.id), (app, r)))
        .filter(|(k, _)| inv.get(k).is_none())
        .collect();
    // Stable: the first of a key is kept, as a map's `or_insert` would.
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    extra.dedup_by(|b, a| a.0 == b.0);
    extra
}

/// What fleet knows of the cluster-side record.
pub struct ClusterInventory {
    per_shard: usize,
    /// Read into the inventory once per process.
    read: bool,
    /// A digest of each shard as last written or read ([`shard_digest`]):
    /// the record is compared without keeping a copy of it.
    written: Option<Vec<ShardDigest>>,
    attempts: u32,
    retry_at: Option<Instant>,
    failure: Option<ResourceOutcome>,
}

impl ClusterInventory {
    pub fn new(per_shard: usize) -> Self {
        ClusterInventory {
            per_shard,
            read: false,
            written: None,
            attempts: 0,
            retry_at: None,
            failure: None,
        }
    }
}

impl KubernetesApplier {
    fn inventory_api(&self) -> Api<k8s_openapi::api::core::v1::ConfigMap> {
        Api::namespaced(self.client.clone(), &self.opts.inventory_namespace)
    }

    fn inventory_id(&self, i: usize) -> String {
        format!(
            "ConfigMap/{}/{}",
            self.opts.inventory_namespace,
            shard_name(i)
        )
    }

    pub(crate) fn k8s_entries(inv: &Inventory) -> Entries {
        inv.keys()
            .filter(|k| k.starts_with("k8s:"))
            .filter_map(|k| Some((k.clone(), inv.get(k)?.clone())))
            .collect()
    }

    async fn read_shard(&self, i: usize) -> Result<Option<Value>, String> {
        match self.inventory_api().get(&shard_name(i)).await {
            Ok(cm) => Ok(Some(serde_json::to_value(cm).unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(&e)),
        }
    }

    /// Merges the cluster's inventory into `inv`, once per process: what a
    /// spoke that lost its disk must still prune.
    pub(crate) async fn read_cluster_inventory(&mut self, cluster: &str, inv: &mut Inventory) {
        if self.inventory.read {
            return;
        }
        let mut shards = Vec::new();
        let result: Result<(), String> = async {
            let Some(first) = self.read_shard(0).await? else {
                return Ok(());
            };
            let count = announced_shards(&first)?;
            shards.push(plan::read_inventory_configmap(&first, cluster)?);
            for i in 1..count {
                let cm = self.read_shard(i).await?;
                shards.push(match cm {
                    Some(cm) => plan::read_inventory_configmap(&cm, cluster)?,
                    None => Entries::new(),
                });
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                // No record is the same as an empty one.
                if shards.is_empty() {
                    shards.push(Entries::new());
                }
                self.inventory.written = Some(shards.iter().map(shard_digest).collect());
                for s in shards {
                    for (k, e) in s {
                        if inv.get(&k).is_none() {
                            inv.insert(k, e);
                        }
                    }
                }
                self.inventory.read = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, namespace = %self.opts.inventory_namespace, "cannot read the inventory ConfigMaps; will retry")
            }
        }
    }

    /// Writes the record when it changed: what `inv` holds, plus every
    /// object about to be applied (`intended`, digest empty until applied).
    /// Returns the failure to report while the record cannot be written.
    ///
    /// The record is never held whole: each shard is gathered (borrowing
    /// the inventory's entries), compared by digest with what was written,
    /// and only a changed one is built as a ConfigMap, one at a time.
    pub(crate) async fn write_cluster_inventory(
        &mut self,
        cluster: &str,
        inv: &Inventory,
        intended: &[(&str, &Resource)],
    ) -> Option<ResourceOutcome> {
        let extra = not_recorded(inv, intended);
        let recorded = || inv.iter().filter(|(k, _)| k.starts_with("k8s:"));
        let count = shard_count(recorded().count() + extra.len(), self.inventory.per_shard);
        // Each recorded entry's shard, in the order of `recorded`.
        let of: Vec<u32> = recorded().map(|(k, _)| shard_of(k, count) as u32).collect();
        let shard = |i: usize| -> Shard<'_> {
            let mut s: Shard<'_> = recorded()
                .zip(&of)
                .filter(|(_, s)| **s as usize == i)
                .map(|((k, e), _)| (k.as_str(), Cow::Borrowed(e)))
                .collect();
            for (k, (app, r)) in &extra {
                if shard_of(k, count) == i {
                    s.insert(
                        k.as_str(),
                        Cow::Owned(InventoryEntry {
                            app: app.to_string(),
                            id: r.id.to_string(),
                            digest: String::new(),
                            api_version: r.api_version.clone(),
                        }),
                    );
                }
            }
            s
        };
        let digests: Vec<ShardDigest> = (0..count).map(|i| shard_digest(&shard(i))).collect();
        if self.inventory.written.as_ref() == Some(&digests) {
            return None;
        }
        if self.inventory.retry_at.is_some_and(|t| Instant::now() < t) {
            return self.inventory.failure.clone();
        }
        // On success the record is `digests`; on failure it is unknown (see
        // below).
        let old = self.inventory.written.take().unwrap_or_default();
        let result: Result<(), String> = async {
            // Shards 1.. first, shard 0 (which names the count) next, then
            // the shards no longer counted: a crash between leaves a record
            // that still names every object.
            for i in (1..count).chain([0]) {
                // Shard 0 also holds the count.
                if old.get(i) == Some(&digests[i]) && (i != 0 || old.len() == count) {
                    continue;
                }
                let body =
                    shard_configmap(&self.opts.inventory_namespace, cluster, i, count, &shard(i));
                let pp = PatchParams::apply(plan::FIELD_MANAGER).force();
                self.count_write();
                let cm = self
                    .inventory_api()
                    .patch(&shard_name(i), &pp, &Patch::Apply(&body))
                    .await
                    .map_err(|e| api_error(&e))?;
                if let Some(rv) = cm.metadata.resource_version {
                    let id = self.inventory_id(i);
                    self.store.lock().expect("live store").own.insert(id, rv);
                }
            }
            for i in count..old.len() {
                self.count_write();
                match self
                    .inventory_api()
                    .delete(&shard_name(i), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(api_error(&e)),
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.inventory.written = Some(digests);
                self.inventory.attempts = 0;
                self.inventory.retry_at = None;
                self.inventory.failure = None;
                None
            }
            Err(e) => {
                // Unknown state on the server: rewrite every shard next time.
                self.inventory.written = None;
                self.inventory.attempts += 1;
                let delay = self
                    .opts
                    .backoff
                    .saturating_mul(1 << (self.inventory.attempts - 1).min(16))
                    .min(super::MAX_BACKOFF);
                self.inventory.retry_at = Some(Instant::now() + delay);
                tracing::error!(error = %e, namespace = %self.opts.inventory_namespace, "cannot write the inventory ConfigMap");
                let o = outcome(
                    "",
                    &self.inventory_id(0),
                    Outcome::Failed,
                    format!(
                        "cannot write fleet's inventory in namespace {}: {e}; a spoke that loses its cache may then not prune",
                        self.opts.inventory_namespace
                    ),
                );
                self.inventory.failure = Some(o.clone());
                Some(o)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(n: usize) -> Entries {
        (0..n)
            .map(|i| {
                let id = format!("ConfigMap/{}/{}", "n".repeat(63), format!("{i:0>253}"));
                (
                    format!("k8s:{id}"),
                    InventoryEntry {
                        app: "a".repeat(63),
                        id,
                        digest: "f".repeat(64),
                        api_version: "v1".into(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_inventory_has_no_size_limit_each_shard_stays_under_one_mebibyte() {
        let all = entries(10_000);
        let count = shard_count(all.len(), SHARD_ENTRIES);
        assert_eq!(count, 16);
        let shards = split(&all, count);
        let mut back = Entries::new();
        for (i, s) in shards.iter().enumerate() {
            let cm = shard_configmap("fleet-system", "c1", i, count, s);
            let bytes = serde_json::to_vec(&cm).unwrap().len();
            assert!(
                bytes < 1024 * 1024,
                "shard {i}: {bytes} bytes, {} entries",
                s.len()
            );
            back.extend(plan::read_inventory_configmap(&cm, "c1").unwrap());
            if i == 0 {
                assert_eq!(announced_shards(&cm).unwrap(), count);
            }
        }
        assert_eq!(back, all);
    }

    #[test]
    fn shards_are_stable_so_one_change_rewrites_one_shard() {
        let mut all = entries(3000);
        let count = shard_count(all.len(), SHARD_ENTRIES);
        let before = split(&all, count);
        all.remove(all.keys().next().cloned().as_ref().unwrap());
        let after = split(&all, count);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1);
        assert_eq!(shard_count(0, SHARD_ENTRIES), 1);
        assert_eq!(shard_count(1000, SHARD_ENTRIES), 1);
        assert_eq!(shard_count(1001, SHARD_ENTRIES), 2);
        assert_eq!(shard_count(3000, SHARD_ENTRIES), 4);
    }

    #[test]
    fn a_shard_borrowed_from_the_inventory_digests_as_the_record_read_back() {
        let all = entries(50);
        let count = 4;
        let shards = split(&all, count);
        for (i, read) in shards.iter().enumerate() {
            let borrowed: Shard<'_> = all
                .iter()
                .filter(|(k, _)| shard_of(k, count) == i)
                .map(|(k, e)| (k.as_str(), Cow::Borrowed(e)))
                .collect();
            assert_eq!(shard_digest(&borrowed), shard_digest(read));
            let cm = shard_configmap("ns", "c1", i, count, &borrowed);
            assert_eq!(cm, shard_configmap("ns", "c1", i, count, read));
            assert_eq!(&plan::read_inventory_configmap(&cm, "c1").unwrap(), read);
        }
        let mut changed = shards[1].clone();
        changed.values_mut().next().unwrap().digest = "0".repeat(64);
        assert_ne!(shard_digest(&changed), shard_digest(&shards[1]));
    }

    #[test]
    fn objects_not_recorded_yet_are_each_named_once() {
        let res = |name: &str| {
            fleet_render::Resource::from_value(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "n"}}))
            .unwrap()
        };
        let (a, b, c) = (res("a"), res("b"), res("c"));
        let mut inv = Inventory::default();
        inv.insert(
            plan::inventory_key(&b.id),
            InventoryEntry {
                app: "x".into(),
                id: b.id.to_string(),
                digest: "d".into(),
                api_version: "v1".into(),
            },
        );
        let intended = [("y", &c), ("x", &a), ("x", &b), ("z", &c)];
        let got: Vec<(String, &str)> = not_recorded(&inv, &intended)
            .into_iter()
            .map(|(k, (app, _))| (k, app))
            .collect();
        assert_eq!(
            got,
            vec![
                ("k8s:ConfigMap/n/a".to_string(), "x"),
                ("k8s:ConfigMap/n/c".to_string(), "y"),
            ]
        );
    }

    #[test]
    fn a_record_without_shards_is_one_shard() {
        let cm = plan::inventory_configmap("ns", "c1", &Entries::new());
        assert_eq!(announced_shards(&cm).unwrap(), 1);
        let mut bad = cm.clone();
        bad["data"][SHARDS_KEY] = json!("many");
        assert!(announced_shards(&bad).is_err());
    }
}
