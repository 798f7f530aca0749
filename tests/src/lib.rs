//! Harness for fleet's end-to-end tests: the real `fleet-hub`, `fleet-spoke`
//! and `fleetctl` binaries as processes, a real Git repository made with
//! `git`, and a real PKI made by `fleetctl ca`.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which
//! README's test command does).

pub mod sops;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of a workspace binary next to the test executable's target directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        p.display()
    );
    p
}

/// Polls `f` until it returns `Some`, or fails the test with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a command, returning its output; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A fleet repo made with `git` in a temp dir, with pinned identities and dates.
pub struct GitRepo {
    pub dir: PathBuf,
    commits: AtomicU32,
}

impl GitRepo {
    pub fn new(dir: PathBuf) -> GitRepo {
        std::fs::create_dir_all(&dir).unwrap();
        let r = GitRepo {
            dir,
            commits: AtomicU32::new(0),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub fn git(&self, args: &[&str]) -> String {
        let n = self.commits.load(Ordering::SeqCst);
        let date = format!("2026-01-01T00:{:02}:{:02}Z", n / 60, n % 60);
        let out = run(Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", "Ada Lovelace")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada Lovelace")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir));
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, path: &str, content: &str) -> &Self {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.dir.join(path)).unwrap();
        self
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A PKI made by `fleetctl ca`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: PathBuf) -> Pki {
        fleetctl_ok(&["ca", "init", "--dir", dir.to_str().unwrap()]);
        let p = Pki { dir };
        p.issue(&["hub"]);
        p
    }

    pub fn issue(&self, what: &[&str]) {
        let mut args = vec!["ca", "issue", "--dir", self.dir.to_str().unwrap()];
        args.extend_from_slice(what);
        fleetctl_ok(&args);
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn pair(&self, stem: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{stem}.crt")),
            self.dir.join(format!("{stem}.key")),
        )
    }
}

pub fn fleetctl(args: &[&str]) -> Output {
    run(Command::new(bin("fleetctl")).args(args))
}

pub fn fleetctl_ok(args: &[&str]) -> String {
    let out = fleetctl(args);
    assert!(
        out.status.success(),
        "fleetctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed on drop, with its stderr captured to a file.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc { child, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the process to stop, as a service manager does (SIGTERM).
    pub fn terminate(&self) {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
    }

    /// How the process exited, if it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what its processes said.
        if std::thread::panicking() {
            eprintln!("----- {} -----\n{}", self.log.display(), self.logs());
        }
    }
}

/// A running `fleet-hub`.
pub struct Hub {
    pub proc: Proc,
    pub grpc: String,
    pub http: String,
    /// The status page's address (`--page-addr 127.0.0.1:0`).
    pub page: String,
}

pub struct HubSpec<'a> {
    pub repo: &'a str,
    pub data_dir: &'a Path,
    pub pki: &'a Pki,
    pub branch: &'a str,
}

impl Hub {
    /// A hub named `hub` on `repo`'s `main`, its data in `work/hub-data`.
    pub fn start_on(repo: &GitRepo, pki: &Pki, work: &Path) -> Hub {
        Hub::start(
            &HubSpec {
                repo: repo.dir.to_str().expect("UTF-8 path"),
                data_dir: &work.join("hub-data"),
                pki,
                branch: "main",
            },
            work,
            "hub",
        )
    }

    pub fn start(spec: &HubSpec<'_>, work: &Path, name: &str) -> Hub {
        Hub::start_with(spec, work, name, &[])
    }

    /// Starts a hub with more flags (`--crl`, `--webhook-secret-file`, ...).
    pub fn start_with(spec: &HubSpec<'_>, work: &Path, name: &str, extra: &[&str]) -> Hub {
        let addr_file = work.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let (cert, key) = spec.pki.pair("hub");
        let proc = Proc::spawn(
            Command::new(bin("fleet-hub"))
                .args([
                    "--repo",
                    spec.repo,
                    "--branch",
                    spec.branch,
                    "--poll-interval",
                    "0.5",
                ])
                .arg("--data-dir")
                .arg(spec.data_dir)
                .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
                .args(["--page-addr", "127.0.0.1:0"])
                .args(if extra.contains(&"--ca") {
                    Vec::new()
                } else {
                    vec!["--ca".into(), spec.pki.ca().into_os_string()]
                })
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key)
                .arg("--addr-file")
                .arg(&addr_file)
                .args(extra)
                .env("FLEET_LOG", "info,fleet_hub=debug"),
            work.join(format!("{name}.log")),
        );
        let mut proc = proc;
        let addrs: Value = wait_until("hub to write its address file", TIMEOUT, || {
            assert!(proc.is_running(), "fleet-hub exited:\n{}", proc.logs());
            std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
        });
        Hub {
            grpc: format!("https://{}", addrs["grpc"].as_str().unwrap()),
            http: addrs["http"].as_str().unwrap().to_string(),
            page: addrs["page"].as_str().unwrap_or_default().to_string(),
            proc,
        }
    }

    /// POSTs the webhook (plain HTTP/1.1 over a TCP socket).
    pub fn webhook(&self) {
        let resp = self.http_request("POST", "/webhook", &[], b"{}");
        assert!(resp.starts_with("HTTP/1.1 202"), "webhook answered: {resp}");
    }

    /// One HTTP/1.1 request to the hub's plain listener; the whole response.
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let mut s = std::net::TcpStream::connect(&self.http).expect("connect to hub HTTP");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.http,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    }

    /// The value of a metric line (`name{labels}`) in `/metrics`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.http_request("GET", "/metrics", &[], b"");
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// `fleetctl ARGS` against this hub, trusting `trust`'s CA and presenting
    /// the `stem` certificate of `creds`.
    pub fn ctl_as(&self, trust: &Pki, creds: &Pki, stem: &str, args: &[&str]) -> Output {
        let (cert, key) = creds.pair(stem);
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for (flag, value) in [
            ("--hub", self.grpc.clone()),
            ("--hub-name", "localhost".into()),
            ("--ca", trust.ca().display().to_string()),
            ("--cert", cert.display().to_string()),
            ("--key", key.display().to_string()),
        ] {
            all.push(flag.into());
            all.push(value);
        }
        run(Command::new(bin("fleetctl")).args(&all))
    }

    /// `fleetctl ARGS` as the admin `tester` of `pki`.
    pub fn ctl(&self, pki: &Pki, args: &[&str]) -> Output {
        if !pki.pair("admin-tester").0.exists() {
            pki.issue(&["admin", "tester"]);
        }
        self.ctl_as(pki, pki, "admin-tester", args)
    }

    /// `fleetctl status -o json` with the given admin certificate stem.
    pub fn status_as(&self, pki: &Pki, stem: &str) -> Output {
        self.ctl_as(pki, pki, stem, &["status", "-o", "json"])
    }

    pub fn status(&self, pki: &Pki) -> Value {
        if !pki.pair("admin-tester").0.exists() {
            pki.issue(&["admin", "tester"]);
        }
        let out = self.status_as(pki, "admin-tester");
        assert!(
            out.status.success(),
            "fleetctl status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }
}

/// A running `fleet-spoke` with a directory target.
pub struct Spoke {
    pub proc: Proc,
    pub target: PathBuf,
    pub cache: PathBuf,
}

impl Spoke {
    /// Starts a spoke presenting `cert_stem` (e.g. `spoke-dev-1`) from `pki`, trusting `trust`'s CA.
    pub fn start(
        hub_url: &str,
        pki: &Pki,
        cert_stem: &str,
        trust: &Pki,
        work: &Path,
        name: &str,
    ) -> Spoke {
        Spoke::start_with(hub_url, pki, cert_stem, &trust.ca(), work, name, &[])
    }

    /// Starts a spoke trusting the CA file `trust_ca`, with more flags.
    pub fn start_with(
        hub_url: &str,
        pki: &Pki,
        cert_stem: &str,
        trust_ca: &Path,
        work: &Path,
        name: &str,
        extra: &[&str],
    ) -> Spoke {
        let (cert, key) = pki.pair(cert_stem);
        let target = work.join(name).join("target");
        let cache = work.join(name).join("cache");
        let proc = Proc::spawn(
            Command::new(bin("fleet-spoke"))
                .args(["--hub", hub_url, "--hub-name", "localhost"])
                .arg("--ca")
                .arg(trust_ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key)
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--target-dir")
                .arg(&target)
                .args(["--drift-interval", "0.3"])
                .args(extra),
            work.join(format!("{name}.log")),
        );
        Spoke {
            proc,
            target,
            cache,
        }
    }

    pub fn file(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.target.join(rel)).ok()
    }

    /// Waits until the file at `rel` exists and satisfies `pred`.
    pub fn wait_file(&self, rel: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_until(&format!("{what} ({rel})"), TIMEOUT, || {
            self.file(rel).filter(|c| pred(c))
        })
    }

    pub fn wait_gone(&self, rel: &str) {
        wait_until(&format!("{rel} to be pruned"), TIMEOUT, || {
            self.file(rel).is_none().then_some(())
        })
    }
}

/// A cluster's entry in `fleetctl status -o json`.
pub fn cluster<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {status}"))
}
