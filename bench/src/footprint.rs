//! A real `fleet-spoke` process enforcing a 500-resource state on the
//! directory target: RSS and CPU during its first sync, idle (drift checks
//! every 5 s, the default), and during a sync that changes every resource.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Config;
use crate::pki::Pki;
use crate::procs::{HubProc, Proc, cpu_time, status_kib};
use crate::repo::{FOOTPRINT_CLUSTER, FOOTPRINT_RESOURCES, FleetRepo};
use crate::report::{Report, round};

const GOAL_RSS_KIB: u64 = 32 * 1024;

/// Samples RSS every 20 ms until `done` holds; returns (elapsed, peak RSS KiB, CPU used).
fn watch_until(
    p: &mut Proc,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<(Duration, u64, Duration)> {
    let pid = p.pid();
    let t0 = Instant::now();
    let cpu0 = cpu_time(pid).unwrap_or_default();
    let mut peak = 0;
    loop {
        peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
        if done() {
            let cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu0);
            return Ok((t0.elapsed(), peak, cpu));
        }
        if !p.is_running() {
            anyhow::bail!("fleet-spoke exited:\n{}", p.log_tail());
        }
        if t0.elapsed() > timeout {
            anyhow::bail!(
                "fleet-spoke did not finish its sync in {timeout:?}:\n{}",
                p.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every footprint ConfigMap in the target holds `value`.
fn all_applied(dir: &Path, value: &str) -> bool {
    // The last file first: cheap while the sync is under way.
    let last = FOOTPRINT_RESOURCES - 1;
    let has = |i: usize| {
        std::fs::read_to_string(dir.join(format!("fp-{i:03}.yaml"))).is_ok_and(|s| {
            s.contains(&format!("\"{value}-{i}\"")) || s.contains(&format!(" {value}-{i}\n"))
        })
    };
    has(last) && (0..FOOTPRINT_RESOURCES).all(has)
}

/// RSS samples every 250 ms over `d`; returns (last, max) KiB and CPU used.
fn idle(p: &Proc, d: Duration) -> (u64, u64, Duration) {
    let pid = p.pid();
    let cpu0 = cpu_time(pid).unwrap_or_default();
    let t0 = Instant::now();
    let (mut last, mut max) = (0, 0);
    while t0.elapsed() < d {
        std::thread::sleep(Duration::from_millis(250));
        last = status_kib(pid, "VmRSS:").unwrap_or(0);
        max = max.max(last);
    }
    (
        last,
        max,
        cpu_time(pid).unwrap_or_default().saturating_sub(cpu0),
    )
}

pub fn run(
    cfg: &Config,
    report: &mut Report,
    hub: &HubProc,
    pki: &Pki,
    repo: &FleetRepo,
) -> anyhow::Result<()> {
    let (cert, key) = pki.write_spoke(FOOTPRINT_CLUSTER)?;
    let dir = cfg.work.join("footprint-spoke");
    let target = dir.join("target");
    std::fs::create_dir_all(&dir)?;
    let mut p = Proc::spawn(
        Command::new(&cfg.spoke_bin)
            .arg("--hub")
            .arg(format!("https://{}", hub.grpc))
            .args(["--hub-name", "localhost"])
            .arg("--ca")
            .arg(pki.dir.join("ca.crt"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--target-dir")
            .arg(&target),
        dir.join("spoke.log"),
    )?;
    let cms = target.join(FOOTPRINT_CLUSTER).join("ConfigMap");
    let timeout = cfg.phase_timeout;
    let (first_t, first_peak, first_cpu) = watch_until(&mut p, timeout, || all_applied(&cms, "0"))?;
    let idle_for = Duration::from_secs(if cfg.smoke { 6 } else { 20 });
    let (idle_rss, idle_max, idle_cpu) = idle(&p, idle_for);

    repo.write_footprint("1")?;
    repo.stage()?;
    let t0 = Instant::now();
    repo.commit_staged("bench: change all 500 footprint resources")?;
    hub.webhook()?;
    let (_, sync_peak, sync_cpu) = watch_until(&mut p, timeout, || all_applied(&cms, "1"))?;
    let sync_t = t0.elapsed();
    let (after_rss, after_max, _) = idle(&p, Duration::from_secs(2));
    let hwm = status_kib(p.pid(), "VmHWM:").unwrap_or(0);
    p.kill();

    let steady = idle_max.max(after_max);
    let pct = |cpu: Duration, over: Duration| 100.0 * cpu.as_secs_f64() / over.as_secs_f64();
    report.set(
        "spoke_footprint",
        json!({
            "resources": FOOTPRINT_RESOURCES,
            "first_sync": {"ms": round(first_t.as_secs_f64() * 1000.0), "cpu_ms": first_cpu.as_millis() as u64, "peak_rss_kib": first_peak},
            "idle": {"seconds": idle_for.as_secs(), "rss_kib": idle_rss, "max_rss_kib": idle_max, "cpu_ms": idle_cpu.as_millis() as u64, "cpu_percent_of_core": round(pct(idle_cpu, idle_for))},
            "sync_all_changed": {"commit_to_applied_ms": round(sync_t.as_secs_f64() * 1000.0), "cpu_ms": sync_cpu.as_millis() as u64, "peak_rss_kib": sync_peak},
            "after_sync_rss_kib": after_rss,
            "vm_hwm_kib": hwm,
        }),
    );
    report.row(
        &format!("spoke RSS steady, {FOOTPRINT_RESOURCES} resources (idle)"),
        format!(
            "{:.1} MiB (peak during sync {:.1} MiB)",
            steady as f64 / 1024.0,
            sync_peak.max(first_peak) as f64 / 1024.0
        ),
        "<= 32 MiB",
        Some(steady <= GOAL_RSS_KIB),
    );
    report.row(
        "  spoke CPU idle / first sync / sync of 500 changes",
        format!(
            "{:.2}% of a core / {} ms / {} ms",
            pct(idle_cpu, idle_for),
            first_cpu.as_millis(),
            sync_cpu.as_millis()
        ),
        "",
        None,
    );
    report.row(
        "  real spoke commit-to-applied, 500 changes",
        format!("{} ms", sync_t.as_millis()),
        "",
        None,
    );
    Ok(())
}
