//! Rendering a 1,000-cluster fleet: a full render (cold renderer), and the
//! incremental render of a commit that changes one app (the `Renderer`
//! memoizes app renders by Git tree id). Measured twice: wall time, and the
//! CPU time of the rendering thread (from /proc/thread-self/schedstat).
//!
//! `cargo bench -p fleet-hub --bench render`. Goal (PRODUCT.md): the
//! incremental render <= 200 ms of CPU, with zero work for unaffected apps.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fleet_hub::renderer::Renderer;
use fleet_hub::repo::GitTree;
use fleet_render::CommitMeta;

mod common;

const CLUSTERS: usize = 1000;

/// Returns the commits before and after a change to app `web`.
fn fleet(dir: &Path) -> (String, String) {
    let a = common::fleet(dir, CLUSTERS);
    common::write(
        dir,
        "apps/web/base/config.yaml",
        &common::config_map("web-config", "1"),
    );
    (a, common::commit(dir, "web: one change"))
}

struct Fixture {
    _dir: tempfile::TempDir,
    trees: [(GitTree, CommitMeta); 2],
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = fleet(dir.path());
    let repo = common::open(dir.path());
    Fixture {
        trees: [common::tree_at(&repo, &a), common::tree_at(&repo, &b)],
        _dir: dir,
    }
}

/// CPU time of the calling thread, ns (the render runs on one thread).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Criterion measurement: thread CPU time.
struct ThreadCpu;

struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical >= 1e9 {
            (1e9, "s CPU")
        } else if typical >= 1e6 {
            (1e6, "ms CPU")
        } else if typical >= 1e3 {
            (1e3, "µs CPU")
        } else {
            (1.0, "ns CPU")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }

    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "elements/s"
    }

    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

fn benches<M: Measurement>(c: &mut Criterion<M>, what: &str) {
    let f = fixture();
    let mut g = c.benchmark_group(format!("render_{CLUSTERS}_clusters_{what}"));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let (tree_a, commit_a) = &f.trees[0];
    g.bench_function("full", |b| {
        b.iter_batched(
            Renderer::new,
            |mut r| r.render(tree_a, commit_a, &()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    // Each iteration renders the other commit: one app (web) differs.
    let mut r = Renderer::new();
    r.render(tree_a, commit_a, &()).unwrap();
    let mut flip = 0;
    g.bench_function("incremental_one_app", |b| {
        b.iter_batched(
            || {
                flip = 1 - flip;
                flip
            },
            |i| {
                let (t, c) = &f.trees[i];
                r.render(t, c, &()).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// One plain run of each, with RenderStats, before criterion's samples.
fn summary() {
    let f = fixture();
    let mut r = Renderer::new();
    let (cpu, wall) = (thread_cpu_ns(), Instant::now());
    let full = r.render(&f.trees[0].0, &f.trees[0].1, &()).unwrap();
    let (full_cpu, full_wall) = (thread_cpu_ns() - cpu, wall.elapsed());
    let (cpu, wall) = (thread_cpu_ns(), Instant::now());
    let inc = r.render(&f.trees[1].0, &f.trees[1].1, &()).unwrap();
    let (inc_cpu, inc_wall) = (thread_cpu_ns() - cpu, wall.elapsed());
    println!(
        "render of {} clusters: full {:.1} ms CPU ({:.1} ms wall), rendered {} reused {}; \
         incremental (web changed) {:.1} ms CPU ({:.1} ms wall), rendered {} reused {}; goal <= 200 ms CPU",
        full.states.len(),
        full_cpu as f64 / 1e6,
        full_wall.as_secs_f64() * 1e3,
        full.stats.rendered,
        full.stats.reused,
        inc_cpu as f64 / 1e6,
        inc_wall.as_secs_f64() * 1e3,
        inc.stats.rendered,
        inc.stats.reused,
    );
}

fn wall(c: &mut Criterion) {
    summary();
    benches(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    benches(c, "cpu");
}

criterion_group!(wall_group, wall);
criterion_group! {
    name = cpu_group;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_group, cpu_group);
