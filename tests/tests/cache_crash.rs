//! The spoke's cache under `kill -9` (issue 15, the cache point): a process
//! rewrites the cached state in a loop, alternating two multi-chunk states
//! (with their signed envelopes), and is killed at random points; each time
//! the cache must reopen and hold either the old or the new state, whole and
//! verified, never a mix and never nothing.
//!
//! The writer is this test binary itself, re-run with `FLEET_CACHE_WRITER`.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use fleet_spoke::cache::Cache;

fn state(name: &str, resources: usize) -> Vec<u8> {
    let resources = (0..resources)
        .map(|i| {
            let v = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{name}-{i}"), "namespace": "n"},
                "data": {"v": name.repeat(200)}});
            fleet_render::Resource::from_value(&v).unwrap()
        })
        .collect::<Vec<_>>()
        .into();
    let mut apps = BTreeMap::new();
    apps.insert(
        "app".to_string(),
        fleet_render::AppState {
            source_revision: Some("r".into()),
            error: None,
            resources,
        },
    );
    let s = fleet_render::DesiredState::new(
        name.into(),
        fleet_render::CommitMeta::default(),
        fleet_render::SyncPolicy::default(),
        apps,
    );
    fleet_proto::convert::encode_state(&s).to_vec()
}

fn envelope(name: &str) -> fleet_spoke::trust::Envelope {
    fleet_spoke::trust::Envelope {
        statement: format!("statement of {name}").into_bytes().into(),
        signature: format!("signature of {name}").into_bytes().into(),
    }
}

/// The writer: alternates "aaa" (large) and "bb" (smaller) forever.
fn writer(dir: &str) -> ! {
    let cache = Cache::open(std::path::Path::new(dir)).unwrap();
    let (a, b) = (state("aaa", 600), state("bb", 150));
    cache.save_signed_state(&a, &envelope("aaa")).unwrap();
    println!("ready");
    let mut n = 0u64;
    loop {
        let (s, name) = if n % 2 == 0 { (&b, "bb") } else { (&a, "aaa") };
        cache.save_signed_state(s, &envelope(name)).unwrap();
        n += 1;
    }
}

fn reopen(dir: &std::path::Path) -> Cache {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Cache::open(dir) {
            Ok(c) => return c,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("the cache did not reopen after kill -9: {e}"),
        }
    }
}

#[test]
fn a_kill_at_any_point_of_a_write_leaves_the_old_or_the_new_state() {
    if let Ok(dir) = std::env::var("FLEET_CACHE_WRITER") {
        writer(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen = BTreeMap::<String, u32>::new();
    // Kill points spread over the write cycle (a write takes a few ms).
    for i in 0..24u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "a_kill_at_any_point_of_a_write_leaves_the_old_or_the_new_state",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("FLEET_CACHE_WRITER", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("ready"))),
            "the writer did not start"
        );
        std::thread::sleep(Duration::from_millis(3 + (i * 37) % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cache = reopen(dir.path());
        let s = cache
            .load_state()
            .unwrap()
            .unwrap_or_else(|| panic!("kill {i}: the cache lost its state"));
        assert!(s.cluster == "aaa" || s.cluster == "bb", "{}", s.cluster);
        let env = cache.load_envelope().unwrap();
        assert_eq!(
            env,
            envelope(&s.cluster),
            "kill {i}: state and envelope from different writes"
        );
        *seen.entry(s.cluster.clone()).or_default() += 1;
        drop(cache);
    }
    eprintln!("states found after 24 kills: {seen:?}");
}
