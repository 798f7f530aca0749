//! The spoke's sled cache (`fleet_spoke::cache::Cache`) in-process: latency of
//! a durable write of a 1 MiB state, and disk use after many rewrites.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use fleet_render::{AppState, CommitMeta, DesiredState, Resource, SyncPolicy};
use fleet_spoke::cache::{CACHE_CAPACITY, Cache};
use serde_json::json;

use crate::Config;
use crate::report::{Dist, Report, ms, round};

const GOAL_P99_MS: f64 = 5.0;
const GOAL_DISK_RATIO: f64 = 2.0;

/// A valid encoded state of at least 1 MiB: ConfigMaps of 4 KiB each.
fn state_of_one_mib(tag: &str) -> anyhow::Result<Bytes> {
    let mut resources = Vec::new();
    loop {
        let i = resources.len();
        let data: String = (0..4000)
            .map(|j| char::from(b'a' + ((i * 7 + j * 13) % 26) as u8))
            .collect();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:04}"), "namespace": "bench"}, "data": {"blob": data}});
        resources.push(Resource::from_value(&obj)?);
        if resources.len() % 16 != 0 {
            continue;
        }
        let mut apps = BTreeMap::new();
        apps.insert(
            "bench".to_string(),
            AppState {
                source_revision: tag.into(),
                error: None,
                resources: resources.clone(),
            },
        );
        let state = DesiredState::new(
            "bench".into(),
            CommitMeta {
                id: tag.into(),
                ..Default::default()
            },
            SyncPolicy::default(),
            apps,
        );
        let bytes = fleet_proto::convert::encode_state(&state);
        if bytes.len() >= 1024 * 1024 {
            return Ok(bytes);
        }
    }
}

/// (apparent bytes, allocated bytes) of every file below `dir`.
fn disk_use(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = (0, 0);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            let (a, b) = disk_use(&e.path());
            total.0 += a;
            total.1 += b;
        } else {
            total.0 += md.len();
            total.1 += md.blocks() * 512;
        }
    }
    total
}

pub fn run(cfg: &Config, report: &mut Report) -> anyhow::Result<()> {
    let dir = cfg.work.join("spoke-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let states = [state_of_one_mib("a")?, state_of_one_mib("b")?];
    let logical = states[0].len() as u64;
    let cache = Cache::open(&dir)?;
    let mut lat = Vec::with_capacity(cfg.cache_rewrites);
    let t0 = Instant::now();
    for i in 0..cfg.cache_rewrites {
        let t = Instant::now();
        cache.save_state(&states[i % 2])?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = t0.elapsed();
    let (apparent, allocated) = disk_use(&dir);
    drop(cache);
    let (apparent_reopened, allocated_reopened) = {
        let c = Cache::open(&dir)?;
        let ok = c.load_state()?.is_some();
        drop(c);
        let d = disk_use(&dir);
        anyhow::ensure!(
            ok,
            "the cache lost its state after {} rewrites",
            cfg.cache_rewrites
        );
        d
    };
    let d = Dist::of(lat);
    let ratio = allocated as f64 / logical as f64;
    report.set(
        "spoke_cache",
        json!({
            "state_bytes": logical,
            "rewrites": cfg.cache_rewrites,
            "write": d.json(),
            "total_s": round(total.as_secs_f64()),
            "disk_apparent_bytes": apparent,
            "disk_allocated_bytes": allocated,
            "disk_allocated_bytes_after_reopen": allocated_reopened,
            "disk_apparent_bytes_after_reopen": apparent_reopened,
            "disk_to_logical": round(ratio),
            "sled_cache_capacity_bytes": CACHE_CAPACITY,
        }),
    );
    report.row(
        "spoke cache: durable write of a 1 MiB state",
        format!("p50 {} / p99 {} / max {}", ms(d.p50), ms(d.p99), ms(d.max)),
        "p99 <= 5 ms",
        Some(d.p99 <= GOAL_P99_MS),
    );
    report.row(
        &format!("  disk after {} rewrites / logical", cfg.cache_rewrites),
        format!(
            "{:.1} MiB / {:.1} MiB = {ratio:.2}x (sled page cache {} MiB)",
            allocated as f64 / 1048576.0,
            logical as f64 / 1048576.0,
            CACHE_CAPACITY / 1024 / 1024
        ),
        "<= 2x",
        Some(ratio <= GOAL_DISK_RATIO),
    );
    Ok(())
}
