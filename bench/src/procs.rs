//! Child processes (the real `fleet-hub` and `fleet-spoke`) and what /proc says about them.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// mimalloc's purge delay for the hub: `ENV MIMALLOC_PURGE_DELAY` of the hub
/// image (never: freed pages are kept for the next commit).
const HUB_PURGE_DELAY: &str = "-1";

/// A binary of this workspace: the flag if given, else next to this executable.
pub fn sibling_bin(flag: Option<&PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe.parent().expect("exe dir").join(name);
    if !p.exists() {
        anyhow::bail!(
            "{} is missing: build it first with `cargo build --release -p {}` (or pass --{}-bin)",
            p.display(),
            name,
            name.trim_start_matches("fleet-")
        );
    }
    Ok(p)
}

/// Resident set size of a process, KiB (`VmRSS`), or its peak (`VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system, all threads) of a process so far. /proc counts in
/// clock ticks; Linux uses 100 per second on every common configuration.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat, counted after "pid (comm) ": indices 11 and 12.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> anyhow::Result<Proc> {
        let f = std::fs::File::create(&log)?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        Ok(Proc { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read(&self.log).unwrap_or_default();
        let start = s.len().saturating_sub(3000);
        String::from_utf8_lossy(&s[start..]).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct HubSpec {
    pub bin: PathBuf,
    pub repo: PathBuf,
    pub data_dir: PathBuf,
    pub pki_dir: PathBuf,
    pub poll_interval: f64,
    pub log_filter: String,
}

pub struct HubProc {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl HubProc {
    /// Starts the hub on `grpc` (port 0 picks one) and waits for its address file.
    pub fn start(
        spec: &HubSpec,
        grpc: SocketAddr,
        work: &Path,
        name: &str,
    ) -> anyhow::Result<HubProc> {
        let addr_file = work.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut proc = Proc::spawn(
            Command::new(&spec.bin)
                .arg("--repo")
                .arg(&spec.repo)
                .args(["--branch", "main"])
                .arg("--poll-interval")
                .arg(spec.poll_interval.to_string())
                .arg("--data-dir")
                .arg(&spec.data_dir)
                .arg("--grpc-addr")
                .arg(grpc.to_string())
                .args(["--http-addr", "127.0.0.1:0", "--page-addr", "off"])
                .arg("--ca")
                .arg(spec.pki_dir.join("ca.crt"))
                .arg("--cert")
                .arg(spec.pki_dir.join("hub.crt"))
                .arg("--key")
                .arg(spec.pki_dir.join("hub.key"))
                .arg("--addr-file")
                .arg(&addr_file)
                .args(["--log", &spec.log_filter])
                // As the hub image runs it (deploy/Dockerfile), unless set here.
                .env(
                    "MIMALLOC_PURGE_DELAY",
                    std::env::var("MIMALLOC_PURGE_DELAY")
                        .unwrap_or_else(|_| HUB_PURGE_DELAY.into()),
                ),
            work.join(format!("{name}.log")),
        )?;
        let started = Instant::now();
        let addrs: serde_json::Value = loop {
            if let Some(v) = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
            {
                break v;
            }
            if !proc.is_running() {
                anyhow::bail!("fleet-hub exited:\n{}", proc.log_tail());
            }
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("fleet-hub did not listen within 60 s:\n{}", proc.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(HubProc {
            grpc: addrs["grpc"].as_str().unwrap_or_default().parse()?,
            http: addrs["http"].as_str().unwrap_or_default().parse()?,
            proc,
        })
    }

    pub fn rss_kib(&self) -> u64 {
        status_kib(self.proc.pid(), "VmRSS:").unwrap_or(0)
    }

    fn http(&self, request: &str) -> anyhow::Result<String> {
        let mut s = std::net::TcpStream::connect(self.http).context("connecting to hub HTTP")?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(request.as_bytes())?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp)
    }

    pub fn webhook(&self) -> anyhow::Result<()> {
        let resp = self.http(&format!(
            "POST /webhook HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            self.http
        ))?;
        if !resp.starts_with("HTTP/1.1 202") {
            anyhow::bail!("webhook answered: {resp}");
        }
        Ok(())
    }

    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        let resp = self.http(&format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        ))?;
        Ok(Metrics(
            resp.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default(),
        ))
    }
}

/// The hub's Prometheus text.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the first sample whose name (with labels) starts with `prefix`.
    pub fn get(&self, prefix: &str) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(prefix))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    }

    pub fn last_publish_commit(&self) -> Option<String> {
        let l = self
            .0
            .lines()
            .find(|l| l.starts_with("fleet_hub_last_publish_timestamp_seconds{"))?;
        let start = l.find("commit=\"")? + 8;
        let end = start + l[start..].find('"')?;
        Some(l[start..end].to_string())
    }
}
