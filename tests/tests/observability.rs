//! Metrics and probes (issue 16, point 1): the hub's and the spoke's
//! `/metrics` scraped from the real processes, `/readyz` before and after a
//! state, and the probes in the manifests fleet prints.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use fleet_tests::*;

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Log text without terminal colours.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The spoke's HTTP address, from its log.
fn spoke_http(s: &Spoke) -> String {
    wait_until("the spoke's HTTP listener", TIMEOUT, || {
        let logs = strip_ansi(&s.proc.logs());
        let l = logs.lines().find(|l| l.contains("spoke HTTP listening"))?;
        let i = l.find("http=")? + 5;
        let rest = &l[i..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    })
}

#[test]
fn hub_and_spoke_metrics_and_probes() {
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
        .write("apps/web/app.yaml", "namespace: web\n")
        .write(
            "apps/web/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: one\n",
        );
    repo.commit("initial");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["spoke", "dev-1"]);
    pki.issue(&["admin", "tester"]);
    let hub = Hub::start(
        &HubSpec {
            repo: repo.dir.to_str().unwrap(),
            data_dir: &work.path().join("hub-data"),
            pki: &pki,
            branch: "main",
        },
        work.path(),
        "hub",
    );
    let spoke = Spoke::start_with(
        &hub.grpc,
        &pki,
        "spoke-dev-1",
        &pki.ca(),
        work.path(),
        "dev-1",
        &["--http-addr", "127.0.0.1:0"],
    );
    let addr = spoke_http(&spoke);
    spoke.wait_file("web/ConfigMap/c.yaml", "applied", |_| true);
    assert_eq!(get(&addr, "/healthz").0, 200);
    wait_until("the spoke ready", TIMEOUT, || {
        (get(&addr, "/readyz").0 == 200).then_some(())
    });
    // A hand edit is healed and counted.
    std::fs::write(
        spoke.target.join("web/ConfigMap/c.yaml"),
        "edited by hand\n",
    )
    .unwrap();
    spoke.wait_file("web/ConfigMap/c.yaml", "healed", |s| s.contains("k: one"));
    let m = wait_until("spoke metrics", TIMEOUT, || {
        let (code, m) = get(&addr, "/metrics");
        (code == 200 && value(&m, "fleet_spoke_drift_heals_total").is_some_and(|v| v >= 1.0))
            .then_some(m)
    });
    assert!(m.contains("application/openmetrics-text"), "{m}");
    assert!(value(&m, "fleet_spoke_passes_total").unwrap() >= 1.0);
    assert!(
        value(&m, "fleet_spoke_apply_writes_total").unwrap() >= 2.0,
        "{m}"
    );
    assert_eq!(value(&m, "fleet_spoke_hub_connected"), Some(1.0), "{m}");
    assert!(
        value(&m, "fleet_spoke_objects{outcome=\"healed\"}").is_some()
            || value(&m, "fleet_spoke_objects{outcome=\"unchanged\"}").is_some(),
        "{m}"
    );
    assert!(m.trim_end().ends_with("# EOF"));

    // The hub: per-cluster series and histograms.
    repo.write(
        "apps/web/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: two\n",
    );
    repo.commit("two");
    hub.webhook();
    spoke.wait_file("web/ConfigMap/c.yaml", "v2", |s| s.contains("two"));
    let m = wait_until("hub metrics", TIMEOUT, || {
        let m = hub.http_request("GET", "/metrics", &[], b"");
        (value(&m, "fleet_hub_commit_to_applied_seconds_count").is_some_and(|v| v >= 1.0)
            && value(&m, "fleet_cluster_synced{cluster=\"dev-1\"}") == Some(1.0))
        .then_some(m)
    });
    assert!(
        m.lines()
            .any(|l| l.starts_with("fleet_cluster_info{cluster=\"dev-1\",env=\"dev\",revision=\"")),
        "{m}"
    );
    assert_eq!(
        value(&m, "fleet_cluster_connected{cluster=\"dev-1\"}"),
        Some(1.0)
    );
    assert!(
        value(&m, "fleet_hub_render_seconds_count").unwrap() >= 2.0,
        "{m}"
    );
    assert!(value(&m, "fleet_hub_renders_total").unwrap() >= 2.0);
    assert!(
        hub.http_request("GET", "/readyz", &[], b"")
            .starts_with("HTTP/1.1 200")
    );

    // A spoke that has applied nothing is not ready.
    drop(hub);
    let fresh = Spoke::start_with(
        "https://127.0.0.1:9",
        &pki,
        "spoke-dev-1",
        &pki.ca(),
        work.path(),
        "fresh",
        &["--http-addr", "127.0.0.1:0"],
    );
    let addr = spoke_http(&fresh);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&addr, "/readyz").0, 503);
    assert_eq!(get(&addr, "/healthz").0, 200);

    // The manifests fleet prints carry the probes.
    let out = fleetctl_ok(&[
        "spoke",
        "manifests",
        "dev-1",
        "--dir",
        pki.dir.to_str().unwrap(),
        "--hub",
        "https://hub.example:7443",
    ]);
    for want in [
        "livenessProbe",
        "readinessProbe",
        "/readyz",
        "/healthz",
        "containerPort: 7081",
    ] {
        assert!(out.contains(want), "no {want} in:\n{out}");
    }
    let deploy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hub/hub.yaml"),
    )
    .unwrap();
    assert!(deploy.contains("readinessProbe") && deploy.contains("/readyz"));
}
