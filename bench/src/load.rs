//! The hub under load: initial sync of N spokes, hub memory per idle spoke,
//! commit-to-applied (webhook and poll, one app everywhere and 1% of the
//! fleet), and the reconnect storm after the hub is killed and restarted.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::block_in_place;

use crate::Config;
use crate::pki::Pki;
use crate::procs::{HubProc, HubSpec, Metrics};
use crate::repo::{FleetRepo, cluster_name, in_canary_ring};
use crate::report::{Dist, Report, ms, round};
use crate::sim::{self, Event};

/// Goals from PRODUCT.md.
/// Issue 15's goals: up to 10,000 spokes, commit-to-applied p99 at most 1 s
/// and the hub's part at most 200 ms (50 ms when 1% of clusters change);
/// at 100,000, p99 at most 5 s; an idle spoke at most 40 KiB of hub memory;
/// the reconnect storm at most 10 s at 10,000 and 60 s at 100,000.
fn goal_p99_ms(n: usize) -> f64 {
    if n <= 10_000 { 1000.0 } else { 5000.0 }
}
fn goal_hub_part_ms(n: usize, everywhere: bool) -> Option<f64> {
    (n <= 10_000).then_some(if everywhere { 200.0 } else { 50.0 })
}
const GOAL_KIB_PER_SPOKE: f64 = 40.0;
fn goal_storm_ms(n: usize) -> f64 {
    if n <= 10_000 { 10_000.0 } else { 60_000.0 }
}
fn secs(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Receives the simulated spokes' events and counts what the hub sent.
struct Tracker {
    rx: mpsc::UnboundedReceiver<Event>,
    n: usize,
    full: u64,
    header_only: u64,
    full_bytes: u64,
    connects: u64,
}

impl Tracker {
    fn account(&mut self, e: &Event) {
        match e {
            Event::Connected { .. } => self.connects += 1,
            Event::State {
                full: true, bytes, ..
            } => {
                self.full += 1;
                self.full_bytes += bytes;
            }
            Event::State { full: false, .. } => self.header_only += 1,
        }
    }

    async fn recv(&mut self, deadline: Instant) -> Option<Event> {
        let e = tokio::time::timeout_at(deadline.into(), self.rx.recv())
            .await
            .ok()
            .flatten()?;
        self.account(&e);
        Some(e)
    }

    fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.account(&e);
        }
    }

    /// Waits until `want` distinct spokes (re)connected; their first connect instants.
    async fn connected(&mut self, want: usize, deadline: Instant) -> anyhow::Result<Vec<Instant>> {
        let mut seen = vec![false; self.n];
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            match self.recv(deadline).await {
                Some(Event::Connected { idx, at }) if !seen[idx] => {
                    seen[idx] = true;
                    out.push(at);
                }
                Some(_) => {}
                None => anyhow::bail!("only {} of {want} spokes connected in time", out.len()),
            }
        }
        Ok(out)
    }

    /// Waits until `want` distinct spokes acked revision `rev`: when, and whether content came.
    async fn acked(
        &mut self,
        rev: &str,
        want: usize,
        deadline: Instant,
    ) -> anyhow::Result<Vec<(usize, Instant, bool)>> {
        let mut seen = vec![false; self.n];
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            match self.recv(deadline).await {
                Some(Event::State {
                    idx,
                    rev: r,
                    full,
                    at,
                    ..
                }) if r == rev && !seen[idx] => {
                    seen[idx] = true;
                    out.push((idx, at, full));
                }
                Some(_) => {}
                None => anyhow::bail!(
                    "only {} of {want} spokes acked {} in time",
                    out.len(),
                    &rev[..8.min(rev.len())]
                ),
            }
        }
        Ok(out)
    }
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn metrics(hub: &HubProc) -> anyhow::Result<Metrics> {
    block_in_place(|| hub.metrics())
}

async fn wait_metric(
    hub: &HubProc,
    name: &str,
    ok: impl Fn(f64) -> bool,
    timeout: Duration,
) -> anyhow::Result<Metrics> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = metrics(hub)?;
        if m.get(name).is_some_and(&ok) {
            return Ok(m);
        }
        if Instant::now() > deadline {
            anyhow::bail!("hub metric {name} not reached in {timeout:?}:\n{}", m.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(
    cfg: &Config,
    report: &mut Report,
    no_load: bool,
    no_footprint: bool,
) -> anyhow::Result<()> {
    let n = if no_load { 0 } else { cfg.spokes };
    let t = Instant::now();
    let pki = Pki::new(&cfg.work.join("pki"))?;
    let names: Vec<String> = (0..n).map(cluster_name).collect();
    let pairs = pki.issue_spokes(&names)?;
    let pki_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let repo = FleetRepo::generate(&cfg.work.join("repo"), n, cfg.state_kib)?;
    let repo_ms = t.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "fleet-load: PKI for {n} spokes in {}, repo of {n} clusters in {}",
        ms(pki_ms),
        ms(repo_ms)
    );
    report.set(
        "setup",
        json!({"pki_issue_ms": round(pki_ms), "repo_generate_ms": round(repo_ms)}),
    );

    let spec = HubSpec {
        bin: cfg.hub_bin.clone(),
        repo: repo.dir.clone(),
        data_dir: cfg.work.join("hub-data"),
        pki_dir: pki.dir.clone(),
        poll_interval: cfg.poll_interval,
        log_filter: cfg.hub_log.clone(),
    };
    let t = Instant::now();
    let mut hub = block_in_place(|| HubProc::start(&spec, listen_addr(n + 1), &cfg.work, "hub"))?;
    let m = wait_metric(
        &hub,
        "fleet_hub_renders_total",
        |v| v >= 1.0,
        cfg.phase_timeout,
    )
    .await?;
    let first_render_ms = t.elapsed().as_secs_f64() * 1000.0;
    let render_s = m.get("fleet_hub_last_render_seconds").unwrap_or(0.0);
    eprintln!(
        "fleet-load: hub up and first render of {} clusters published after {} (render {})",
        n + 1,
        ms(first_render_ms),
        ms(render_s * 1000.0)
    );
    report.set(
        "hub_start",
        json!({"start_to_first_publish_ms": round(first_render_ms), "full_render_ms": round(render_s * 1000.0)}),
    );

    if !no_load {
        hub = load_phases(cfg, report, &spec, hub, &repo, &pki, pairs).await?;
    }
    if !no_footprint {
        block_in_place(|| crate::footprint::run(cfg, report, &hub, &pki, &repo))?;
    }
    hub.proc.kill();
    Ok(())
}

async fn load_phases(
    cfg: &Config,
    report: &mut Report,
    spec: &HubSpec,
    hub: HubProc,
    repo: &FleetRepo,
    pki: &Pki,
    pairs: Vec<crate::pki::Pair>,
) -> anyhow::Result<HubProc> {
    let n = pairs.len();
    let rss0 = hub.rss_kib();
    let grpc = hub.grpc;
    let handshakes = match pairs.first() {
        Some(p) => crate::handshake::server_handshakes_per_core_second(pki, p)?,
        None => 0.0,
    };
    let (events, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let mut tracker = Tracker {
        rx,
        n,
        full: 0,
        header_only: 0,
        full_bytes: 0,
        connects: 0,
    };
    let rev0 = metrics(&hub)?
        .last_publish_commit()
        .context("hub published no commit")?;

    // Initial sync, in ramps so the accept queue is not the thing measured.
    let ramp = 250;
    let t0 = Instant::now();
    let mut ramp_ms = Vec::new();
    for start in (0..n).step_by(ramp) {
        let end = (start + ramp).min(n);
        let tr = Instant::now();
        for (idx, pair) in pairs.iter().enumerate().take(end).skip(start) {
            let ep = sim::endpoint(&hub_url(grpc, idx, n), &pki.ca_pem, pair)?;
            tokio::spawn(sim::run_spoke(idx, ep, events.clone(), stop_rx.clone()));
        }
        let deadline = Instant::now() + cfg.phase_timeout;
        let got = tracker.acked(&rev0, end - start, deadline).await?;
        ramp_ms.extend(
            got.iter()
                .map(|(_, at, _)| (*at - tr).as_secs_f64() * 1000.0),
        );
    }
    let initial_ms = t0.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "fleet-load: {n} spokes connected and synced in {} ({:.0}/s)",
        ms(initial_ms),
        n as f64 / initial_ms * 1000.0
    );
    drop(pairs);
    report.set(
        "tls_handshake",
        json!({"server_handshakes_per_core_second": round(handshakes)}),
    );

    // Hub memory per idle spoke.
    tokio::time::sleep(cfg.settle).await;
    let rss_n = hub.rss_kib();
    let per = (rss_n as f64 - rss0 as f64) / n as f64;
    report.set(
        "initial_sync",
        json!({"spokes": n, "ms": round(initial_ms), "per_ramp_of_250": Dist::of(ramp_ms).json(), "full_states": tracker.full, "bytes": tracker.full_bytes}),
    );
    report.set(
        "hub_memory",
        json!({"rss_kib_0_spokes": rss0, "rss_kib_n_idle_spokes": rss_n, "spokes": n, "kib_per_spoke": round(per)}),
    );
    report.row(
        &format!("hub memory per idle spoke (N={n})"),
        format!("{per:.1} KiB ({} -> {} MiB RSS)", rss0 / 1024, rss_n / 1024),
        "<= 40 KiB",
        Some(per <= GOAL_KIB_PER_SPOKE),
    );

    // Commit-to-applied.
    let mut scenarios = Vec::new();
    let mut k = 0;
    for webhook in [true, false] {
        for everywhere in [true, false] {
            k += 1;
            let v = scenario(
                cfg,
                report,
                &hub,
                repo,
                &mut tracker,
                webhook,
                everywhere,
                k,
            )
            .await?;
            scenarios.push(v);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    report.set("commit_to_applied", Value::Array(scenarios));

    // Reconnect storm.
    let hub = storm(cfg, report, spec, hub, &mut tracker, handshakes).await?;
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(hub)
}

#[allow(clippy::too_many_arguments)]
async fn scenario(
    cfg: &Config,
    report: &mut Report,
    hub: &HubProc,
    repo: &FleetRepo,
    tracker: &mut Tracker,
    webhook: bool,
    everywhere: bool,
    k: usize,
) -> anyhow::Result<Value> {
    let n = tracker.n;
    let trigger = if webhook { "webhook" } else { "poll" };
    let change = if everywhere {
        "one app on every cluster"
    } else {
        "1% of clusters"
    };
    let value = format!("v{k}");
    block_in_place(|| {
        if everywhere {
            repo.change_everywhere(&value)
        } else {
            repo.change_one_percent(&value)
        }?;
        repo.stage()
    })?;
    tracker.drain();
    let (full0, hdr0) = (tracker.full, tracker.header_only);
    // Commit-to-applied counts from just before `git commit`; the hub's
    // part from the moment the commit is in the repo (the webhook POST).
    let t0 = Instant::now();
    let (rev, wall0, committed) = block_in_place(|| {
        let rev = repo.commit_staged(&format!("bench: {change} ({value})"))?;
        let (wall0, committed) = (SystemTime::now(), Instant::now());
        if webhook {
            hub.webhook()?;
        }
        anyhow::Ok((rev, wall0, committed))
    })?;
    // The bench's own `git commit` and `git rev-parse`, not the hub's.
    let commit_ms = (committed - t0).as_secs_f64() * 1000.0;
    let deadline = Instant::now() + cfg.phase_timeout + Duration::from_secs_f64(cfg.poll_interval);
    let acks = tracker.acked(&rev, n, deadline).await?;
    let expected = if everywhere {
        n
    } else {
        (0..n).filter(|i| in_canary_ring(*i)).count()
    };
    let lat = |(_, at, _): &(usize, Instant, bool)| (*at - t0).as_secs_f64() * 1000.0;
    let affected = Dist::of(acks.iter().filter(|a| a.2).map(lat).collect());
    let all = Dist::of(acks.iter().map(lat).collect());
    let first = acks.iter().map(lat).fold(f64::INFINITY, f64::min);
    let m = metrics(hub)?;
    let published_commit = m.last_publish_commit().unwrap_or_default();
    let hub_part = (m
        .get("fleet_hub_last_publish_timestamp_seconds")
        .unwrap_or(0.0)
        - unix_secs(wall0))
        * 1000.0;
    let render_ms = m.get("fleet_hub_last_render_seconds").unwrap_or(0.0) * 1000.0;
    // By label: the two series come out in either order.
    let work = |w: &str| {
        m.0.lines()
            .find(|l| {
                l.starts_with("fleet_hub_last_render_apps{") && l.contains(&format!("work=\"{w}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (rendered, reused) = (work("rendered"), work("reused"));
    let states = m.get("fleet_hub_last_publish_states").unwrap_or(0.0);
    // Let late messages in, then count what this commit made the hub send.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tracker.drain();
    let full = tracker.full - full0;
    let hdr = tracker.header_only - hdr0;
    let label = format!("commit-to-applied, {trigger}, {change} (N={n})");
    if webhook {
        report.row(
            &label,
            affected.text(),
            &format!("p99 <= {}", secs(goal_p99_ms(n))),
            Some(affected.p99 <= goal_p99_ms(n)),
        );
        let goal = goal_hub_part_ms(n, everywhere);
        report.row(
            &format!("  hub's part (commit -> published), {change}"),
            format!(
                "{} (render {}, {rendered:.0} app renders, {reused:.0} reused; the commit took {} before)",
                ms(hub_part),
                ms(render_ms),
                ms(commit_ms)
            ),
            &goal.map(|g| format!("<= {}", secs(g))).unwrap_or_default(),
            goal.map(|g| hub_part <= g),
        );
    } else {
        report.row(
            &label,
            affected.text(),
            &format!("(poll every {} s)", cfg.poll_interval),
            None,
        );
    }
    if !everywhere {
        report.row(
            &format!("  every spoke at the new revision ({trigger})"),
            all.text(),
            "",
            None,
        );
    }
    Ok(json!({
        "trigger": trigger,
        "change": change,
        "commit": rev,
        "spokes": n,
        "affected_expected": expected,
        "affected": affected.json(),
        "all_spokes_at_revision": all.json(),
        "first_ack_ms": round(first),
        "hub_published_ms": round(hub_part),
        "git_commit_ms": round(commit_ms),
        "hub_published_commit_matches": published_commit == rev,
        "render_ms": round(render_ms),
        "app_renders": rendered,
        "app_renders_reused": reused,
        "states_published": states,
        "full_states_received": full,
        "header_only_received": hdr,
    }))
}

async fn storm(
    cfg: &Config,
    report: &mut Report,
    spec: &HubSpec,
    mut hub: HubProc,
    tracker: &mut Tracker,
    handshakes_per_core: f64,
) -> anyhow::Result<HubProc> {
    let n = tracker.n;
    // Every spoke's handshake on the hub's cores, nothing else: the floor.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let floor_ms = n as f64 / (handshakes_per_core * cores as f64).max(1.0) * 1000.0;
    let grpc: SocketAddr = hub.grpc;
    tracker.drain();
    let (full0, hdr0, conn0) = (tracker.full, tracker.header_only, tracker.connects);
    hub.proc.kill();
    drop(hub);
    // Let every spoke notice and back off, as after a real crash.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tracker.drain();
    let t0 = Instant::now();
    let hub = block_in_place(|| HubProc::start(spec, grpc, &cfg.work, "hub-restarted"))?;
    let listening_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let deadline = Instant::now() + cfg.phase_timeout;
    let at = tracker.connected(n, deadline).await?;
    let lat: Vec<f64> = at
        .iter()
        .map(|a| (*a - t0).as_secs_f64() * 1000.0)
        .collect();
    let d = Dist::of(lat);
    tokio::time::sleep(cfg.settle).await;
    tracker.drain();
    let full = tracker.full - full0;
    let hdr = tracker.header_only - hdr0;
    let attempts = tracker.connects - conn0;
    let published = metrics(&hub)?
        .get("fleet_hub_states_published_total")
        .unwrap_or(-1.0);
    report.set(
        "reconnect_storm",
        json!({
            "spokes": n,
            "hub_listening_ms": round(listening_ms),
            "resynced": d.json(),
            "full_states_resent": full,
            "headers_resent": hdr,
            "stream_opens": attempts,
            "hub_states_published_after_restart": published,
            "tls_floor_ms": round(floor_ms),
            "server_handshakes_per_core_second": round(handshakes_per_core),
        }),
    );
    report.row(
        &format!("reconnect storm: all re-handshaken (N={n})"),
        format!(
            "{} (hub listening after {}; TLS floor {} at {:.0} server handshakes/s per core, {cores} cores)",
            ms(d.max),
            ms(listening_ms),
            ms(floor_ms),
            handshakes_per_core
        ),
        &format!("<= {}", secs(goal_storm_ms(n))),
        Some(d.max <= goal_storm_ms(n)),
    );
    report.row(
        "  full states resent after restart",
        format!("{full} (headers: {hdr})"),
        "0",
        Some(full == 0),
    );
    Ok(hub)
}

/// Spokes per loopback address: one address's ephemeral ports (28,232 here)
/// with room to spare.
const SPOKES_PER_ADDRESS: usize = 20_000;

/// Where the hub listens: 127.0.0.1, or every address (so 127.0.0.2, .3, ...
/// reach it too) when the spokes would not fit one address's ports.
fn listen_addr(spokes: usize) -> SocketAddr {
    if spokes > SPOKES_PER_ADDRESS {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "127.0.0.1:0".parse().expect("addr")
    }
}

/// The hub's URL for spoke `idx` of `n`: spread over 127.0.0.1..k when the
/// hub listens on every address, so no one (source, destination) address
/// pair runs out of ephemeral ports.
fn hub_url(grpc: SocketAddr, idx: usize, n: usize) -> String {
    if !grpc.ip().is_unspecified() {
        return format!("https://{grpc}");
    }
    let k = n.div_ceil(SPOKES_PER_ADDRESS).max(1);
    format!("https://127.0.0.{}:{}", 1 + idx % k, grpc.port())
}
