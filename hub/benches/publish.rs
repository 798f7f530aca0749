//! The hub's part of a commit at fleet scale: render every cluster, then
//! publish (`Hub::publish_render`: store the desired states, release them,
//! encode what the streams send) on a real sled store. Four commits in turn:
//! the first, one app changed on every cluster, one app changed on 1% of
//! clusters (the other 99% only move to the new commit), and a commit that
//! changes no cluster's content.
//!
//! `FLEET_BENCH_CLUSTERS=10000 cargo bench -p fleet-hub --bench publish`
//! (default 10,000 clusters). Goals (issue 15): the hub's part at most 200 ms
//! for a change to every cluster and at most 50 ms when 1% change, at 10,000.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_hub::Hub;
use fleet_hub::renderer::Renderer;

mod common;

// The hub binary's allocator (src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn clusters() -> usize {
    std::env::var("FLEET_BENCH_CLUSTERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

struct Fixture {
    _repo_dir: tempfile::TempDir,
    _hub_dir: tempfile::TempDir,
    repo: fleet_hub::repo::Repo,
    hub: Hub,
    renderer: Renderer,
    /// Commits: first, web changed, canary changed, README changed.
    commits: Vec<(String, &'static str)>,
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = common::fleet(d, n);
    common::write(
        d,
        "apps/web/base/config.yaml",
        &common::config_map("web-config", "1"),
    );
    let web = common::commit(d, "web: one change");
    common::write(
        d,
        "apps/canary/base/config.yaml",
        &common::config_map("canary", "1"),
    );
    let canary = common::commit(d, "canary: one change");
    common::write(d, "README.md", "the fleet\n");
    let readme = common::commit(d, "readme");
    let hub_dir = tempfile::tempdir().unwrap();
    Fixture {
        repo: common::open(d),
        hub: Hub::open(hub_dir.path()).unwrap(),
        renderer: Renderer::new(),
        commits: vec![
            (first, "first commit, every cluster new"),
            (web, "one app changed on every cluster"),
            (canary, "one app changed on 1% of clusters"),
            (readme, "no cluster's content changed"),
        ],
        _repo_dir: dir,
        _hub_dir: hub_dir,
    }
}

/// Renders and publishes `id`; returns (render, publish) wall times.
fn publish(f: &mut Fixture, id: &str) -> (Duration, Duration, usize, usize) {
    let (tree, commit) = common::tree_at(&f.repo, id);
    let previous = f.hub.states_snapshot();
    let t = Instant::now();
    let r = f.renderer.render(&tree, &commit, &previous).unwrap();
    let render = t.elapsed();
    let (rendered, reused) = (r.stats.rendered, r.stats.reused);
    let t = Instant::now();
    f.hub.publish_render(r, render).unwrap();
    (render, t.elapsed(), rendered, reused)
}

fn summary(f: &mut Fixture, n: usize) {
    for (id, what) in f.commits.clone() {
        let (render, publish, rendered, reused) = publish(f, &id);
        println!(
            "{n} clusters, {what}: hub's part {:.1} ms (render {:.1} ms, publish {:.1} ms); app renders computed {rendered}, reused {reused}",
            (render + publish).as_secs_f64() * 1e3,
            render.as_secs_f64() * 1e3,
            publish.as_secs_f64() * 1e3,
        );
    }
}

fn bench(c: &mut Criterion) {
    let n = clusters();
    let mut f = fixture(n);
    summary(&mut f, n);
    let mut g = c.benchmark_group(format!("publish_{n}_clusters"));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // Each iteration publishes the other of two commits that differ in app
    // canary (1% of clusters), so every sample is a real change.
    let pair = [f.commits[1].0.clone(), f.commits[2].0.clone()];
    let mut flip = 0;
    g.bench_function("one_percent_changed", |b| {
        b.iter(|| {
            flip = 1 - flip;
            publish(&mut f, &pair[flip])
        })
    });
    // The same for one app changed on every cluster (first commit and web).
    let pair = [f.commits[0].0.clone(), f.commits[1].0.clone()];
    g.bench_function("every_cluster_changed", |b| {
        b.iter(|| {
            flip = 1 - flip;
            publish(&mut f, &pair[flip])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
