//! Against a real API server (`--kube KUBECONFIG`): the same N ConfigMaps
//! (and their Namespace) applied by fleet (a real `fleet-hub` and a real
//! `fleet-spoke --target kubernetes`) and by `kubectl apply --server-side`,
//! side by side, at each N of `--objects`.
//!
//! fleet's time is webhook-to-synced: from just before `git commit` of the
//! app to the spoke's log line `kubernetes pass` for that revision with
//! nothing failed or pending. Its writes are the spoke's own count (every
//! server-side apply and delete it sent, inventory shards included), summed
//! over the passes of that window. kubectl's time is the wall time of one
//! `kubectl apply --server-side -f` of the same objects into another
//! namespace. The spoke's peak RSS is its `VmHWM` after the runs at that N
//! (one fresh spoke per N).

use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fleet_spoke::apply::kubernetes::kube;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::Config;
use crate::pki::Pki;
use crate::procs::{HubProc, HubSpec, Proc, status_kib};
use crate::repo::FleetRepo;
use crate::report::{Report, round};

/// Goal: fleet at most half kubectl's time at this N.
const GOAL_RATIO_AT: usize = 1000;

/// One `kubernetes pass` line of the spoke's log.
#[derive(Debug, Default)]
struct Pass {
    revision: String,
    objects: u64,
    failed: u64,
    pending: u64,
    writes: u64,
}

/// A line of the spoke's JSON log (`--log-format json`).
fn parse_pass(line: &str) -> Option<Pass> {
    if !line.contains("kubernetes pass") {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let f = v.get("fields")?;
    if f.get("message")?.as_str()? != "kubernetes pass" {
        return None;
    }
    let n = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Pass {
        revision: f.get("revision")?.as_str()?.to_string(),
        objects: n("objects"),
        failed: n("failed"),
        pending: n("pending"),
        writes: n("writes"),
    })
}

/// Follows the spoke's log from where it is now.
struct LogTail {
    file: std::io::BufReader<std::fs::File>,
    partial: String,
}

impl LogTail {
    fn open(path: &Path) -> anyhow::Result<LogTail> {
        let mut f = std::fs::File::open(path)?;
        f.seek(std::io::SeekFrom::End(0))?;
        Ok(LogTail {
            file: std::io::BufReader::new(f),
            partial: String::new(),
        })
    }

    /// The complete lines written since the last call.
    fn lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            match self.file.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    self.partial.push_str(&l);
                    if self.partial.ends_with('\n') {
                        out.push(std::mem::take(&mut self.partial));
                    }
                }
            }
        }
        out
    }
}

/// Waits for a pass of `revision` with at least `objects` outcomes, none
/// failed or pending; returns the time since `t0` and the writes of every
/// pass seen until then.
fn wait_synced(
    spoke: &mut Proc,
    log: &mut LogTail,
    revision: &str,
    objects: u64,
    t0: Instant,
    timeout: Duration,
) -> anyhow::Result<(Duration, u64)> {
    let mut writes = 0;
    loop {
        for l in log.lines() {
            let Some(p) = parse_pass(&l) else { continue };
            writes += p.writes;
            if p.revision == revision && p.objects >= objects && p.failed == 0 && p.pending == 0 {
                return Ok((t0.elapsed(), writes));
            }
        }
        if !spoke.is_running() {
            anyhow::bail!("fleet-spoke exited:\n{}", spoke.log_tail());
        }
        if t0.elapsed() > timeout {
            anyhow::bail!(
                "fleet-spoke did not sync revision {revision} in {timeout:?}:\n{}",
                spoke.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config_map(name: &str, namespace: Option<&str>, value: &str) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ns}data:\n  value: \"{value}\"\n"
    )
}

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

/// Objects per file of the app (a YAML file holds at most 10,000 documents).
const PER_FILE: usize = 1000;

/// The N objects: a Namespace first, then N ConfigMaps, in files of
/// [`PER_FILE`]; `changed` is the index of the one ConfigMap whose value
/// differs, if any.
fn objects(ns: &str, n: usize, with_ns: bool, changed: Option<usize>) -> Vec<String> {
    let mut files = vec![namespace(ns)];
    for start in (0..n).step_by(PER_FILE) {
        let docs: Vec<String> = (start..n.min(start + PER_FILE))
            .map(|i| {
                let v = if changed == Some(i) {
                    format!("changed-{i}")
                } else {
                    format!("v-{i}")
                };
                config_map(&format!("cm-{i:05}"), with_ns.then_some(ns), &v)
            })
            .collect();
        files.push(docs.join("---\n"));
    }
    files
}

fn write_app(repo: &FleetRepo, app: &str, files: &[String]) -> anyhow::Result<()> {
    for (i, f) in files.iter().enumerate() {
        repo.write(&format!("{app}/base/objects-{i:03}.yaml"), f)?;
    }
    Ok(())
}

fn kubectl_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

type Namespace = DynamicObject;

fn namespaces_api(client: kube::Client) -> Api<Namespace> {
    let ar = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
    };
    Api::all_with(client, &ar)
}

async fn create_namespace(api: &Api<Namespace>, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// The figures at one N.
struct Run {
    n: usize,
    fleet: Duration,
    fleet_writes: u64,
    change: Duration,
    change_writes: u64,
    kubectl: Option<Duration>,
    hwm_kib: u64,
}

pub async fn run(
    cfg: &Config,
    report: &mut Report,
    kubeconfig: &Path,
    sizes: &[usize],
    no_kubectl: bool,
) -> anyhow::Result<()> {
    let client = client(kubeconfig).await?;
    let namespaces = namespaces_api(client);
    let kubectl = if no_kubectl { None } else { kubectl_bin() };
    if kubectl.is_none() && !no_kubectl {
        eprintln!("fleet-load: kubectl not found: fleet's figures only");
    }
    let base = format!("fleet-load-{}", std::process::id());
    let work = cfg.work.join("kube");
    let pki = Pki::new(&work.join("pki"))?;
    let repo = FleetRepo::init(&work.join("repo"))?;
    for &n in sizes {
        repo.write(
            &format!("clusters/kube-{n}.yaml"),
            &format!("name: kube-{n}\ntarget: kubernetes\nlabels:\n  bench: kube-{n}\n"),
        )?;
    }
    repo.commit("clusters")?;
    let spec = HubSpec {
        bin: cfg.hub_bin.clone(),
        repo: repo.dir.clone(),
        data_dir: work.join("hub-data"),
        pki_dir: pki.dir.clone(),
        poll_interval: 60.0,
        log_filter: cfg.hub_log.clone(),
    };
    let hub = tokio::task::block_in_place(|| {
        HubProc::start(&spec, "127.0.0.1:0".parse().expect("addr"), &work, "hub")
    })?;
    let mut created = Vec::new();
    let mut runs = Vec::new();
    let result: anyhow::Result<()> = async {
        for &n in sizes {
            let (fleet_ns, kubectl_ns, sys_ns) = (
                format!("{base}-f{n}"),
                format!("{base}-k{n}"),
                format!("{base}-s{n}"),
            );
            created.extend([fleet_ns.clone(), kubectl_ns.clone(), sys_ns.clone()]);
            create_namespace(&namespaces, &sys_ns).await?;
            let r = tokio::task::block_in_place(|| {
                one_size(
                    cfg,
                    &work,
                    &hub,
                    &pki,
                    &repo,
                    kubeconfig,
                    kubectl.as_deref(),
                    n,
                    [&fleet_ns, &kubectl_ns, &sys_ns],
                )
            })?;
            runs.push(r);
        }
        Ok(())
    }
    .await;
    for ns in &created {
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }
    // The namespace controller deletes their objects in the background,
    // which would load the API server under the next run: wait for it.
    let t0 = Instant::now();
    for ns in &created {
        while namespaces.get_opt(ns).await.ok().flatten().is_some() {
            if t0.elapsed() > Duration::from_secs(600) {
                eprintln!("fleet-load: namespace {ns} is still being deleted");
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    result?;

    let mut rows = Vec::new();
    for r in &runs {
        let ratio = r.kubectl.map(|k| r.fleet.as_secs_f64() / k.as_secs_f64());
        report.row(
            &format!(
                "real API server, {} ConfigMaps: fleet / kubectl --server-side",
                r.n
            ),
            format!(
                "{:.2} s / {} ({}); {} writes; spoke peak RSS {:.1} MiB",
                r.fleet.as_secs_f64(),
                r.kubectl
                    .map(|k| format!("{:.2} s", k.as_secs_f64()))
                    .unwrap_or_else(|| if no_kubectl {
                        "kubectl left out"
                    } else {
                        "kubectl not found"
                    }
                    .into()),
                ratio
                    .map(|x| format!("ratio {x:.2}"))
                    .unwrap_or_else(|| "no ratio".into()),
                r.fleet_writes,
                r.hwm_kib as f64 / 1024.0
            ),
            if r.n == GOAL_RATIO_AT {
                "ratio <= 0.5"
            } else {
                ""
            },
            (r.n == GOAL_RATIO_AT)
                .then_some(ratio.map(|x| x <= 0.5))
                .flatten(),
        );
        report.row(
            &format!("  one ConfigMap of {} changed: fleet", r.n),
            format!(
                "{:.2} s; {} writes",
                r.change.as_secs_f64(),
                r.change_writes
            ),
            "",
            None,
        );
        rows.push(json!({
            "objects": r.n,
            "fleet_ms": round(r.fleet.as_secs_f64() * 1000.0),
            "fleet_writes": r.fleet_writes,
            "kubectl_ms": r.kubectl.map(|k| round(k.as_secs_f64() * 1000.0)),
            "ratio": ratio.map(round),
            "one_change_ms": round(r.change.as_secs_f64() * 1000.0),
            "one_change_writes": r.change_writes,
            "spoke_vm_hwm_kib": r.hwm_kib,
        }));
    }
    report.set("kubernetes", Value::Array(rows));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn one_size(
    cfg: &Config,
    work: &Path,
    hub: &HubProc,
    pki: &Pki,
    repo: &FleetRepo,
    kubeconfig: &Path,
    kubectl: Option<&Path>,
    n: usize,
    [fleet_ns, kubectl_ns, sys_ns]: [&String; 3],
) -> anyhow::Result<Run> {
    let cluster = format!("kube-{n}");
    let timeout = cfg.phase_timeout.max(Duration::from_secs(600));
    let (cert, key) = pki.write_spoke(&cluster)?;
    let dir = work.join(&cluster);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("spoke.log");
    let mut spoke = Proc::spawn(
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
            .args(["--target", "kubernetes", "--inventory-namespace", sys_ns])
            .args(["--log-format", "json"])
            .arg("--kubeconfig")
            .arg(kubeconfig),
        log.clone(),
    )?;
    let mut tail = LogTail::open(&log)?;
    // The first pass (nothing desired yet for this cluster).
    let head = repo_head(repo)?;
    wait_synced(&mut spoke, &mut tail, &head, 0, Instant::now(), timeout)?;

    let app = format!("apps/load-{n}");
    repo.write(
        &format!("{app}/app.yaml"),
        &format!("namespace: {fleet_ns}\nselector:\n  matchLabels: {{bench: {cluster}}}\n"),
    )?;
    write_app(repo, &app, &objects(fleet_ns, n, false, None))?;
    repo.stage()?;
    let t0 = Instant::now();
    let rev = repo.commit_staged(&format!("bench: {n} ConfigMaps"))?;
    hub.webhook()?;
    let (fleet, fleet_writes) =
        wait_synced(&mut spoke, &mut tail, &rev, n as u64 + 1, t0, timeout)?;
    eprintln!(
        "fleet-load: fleet applied {n} ConfigMaps in {:.2} s, {fleet_writes} writes",
        fleet.as_secs_f64()
    );

    write_app(repo, &app, &objects(fleet_ns, n, false, Some(n / 2)))?;
    repo.stage()?;
    let t0 = Instant::now();
    let rev = repo.commit_staged(&format!("bench: one of {n} ConfigMaps changed"))?;
    hub.webhook()?;
    let (change, change_writes) =
        wait_synced(&mut spoke, &mut tail, &rev, n as u64 + 1, t0, timeout)?;
    // Let the watches settle, then read the peak.
    std::thread::sleep(Duration::from_secs(2));
    let hwm_kib = status_kib(spoke.pid(), "VmHWM:").unwrap_or(0);
    spoke.kill();

    let kubectl = match kubectl {
        None => None,
        Some(bin) => {
            let file = dir.join("kubectl.yaml");
            std::fs::write(&file, objects(kubectl_ns, n, true, None).join("---\n"))?;
            let t0 = Instant::now();
            let out = Command::new(bin)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["apply", "--server-side", "-f"])
                .arg(&file)
                .output()
                .context("running kubectl")?;
            let t = t0.elapsed();
            if !out.status.success() {
                anyhow::bail!(
                    "kubectl apply --server-side failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            eprintln!(
                "fleet-load: kubectl applied {n} ConfigMaps in {:.2} s",
                t.as_secs_f64()
            );
            Some(t)
        }
    };
    Ok(Run {
        n,
        fleet,
        fleet_writes,
        change,
        change_writes,
        kubectl,
        hwm_kib,
    })
}

fn repo_head(repo: &FleetRepo) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&repo.dir)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
