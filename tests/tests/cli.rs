//! fleetctl's habits as a command-line tool (issue 16, point 4): output
//! formats, --watch, a closed pipe, and the spoke saying "not ready" when
//! the hub answered but has nothing to serve yet.

use std::process::{Command, Stdio};
use std::time::Duration;

use fleet_tests::*;

struct Fleet {
    work: tempfile::TempDir,
    repo: GitRepo,
    pki: Pki,
}

fn fleet() -> Fleet {
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write(
        "clusters/dev-1.yaml",
        "name: dev-1\nlabels: {env: dev, region: eu}\n",
    )
    .write("apps/web/app.yaml", "namespace: web\n")
    .write(
        "apps/web/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
    );
    repo.commit("initial");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["spoke", "dev-1"]);
    pki.issue(&["admin", "tester"]);
    Fleet { work, repo, pki }
}

fn hub(f: &Fleet, repo: &str) -> Hub {
    Hub::start(
        &HubSpec {
            repo,
            data_dir: &f.work.path().join("hub-data"),
            pki: &f.pki,
            branch: "main",
        },
        f.work.path(),
        "hub",
    )
}

/// The flags fleetctl needs to reach `hub` as admin tester.
fn hub_flags(f: &Fleet, hub: &Hub) -> Vec<String> {
    let (cert, key) = f.pki.pair("admin-tester");
    [
        "--hub",
        &hub.grpc,
        "--hub-name",
        "localhost",
        "--ca",
        f.pki.ca().to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn output_formats_watch_and_a_closed_pipe() {
    let f = fleet();
    let hub = hub(&f, f.repo.dir.to_str().unwrap());
    let spoke = Spoke::start(
        &hub.grpc,
        &f.pki,
        "spoke-dev-1",
        &f.pki,
        f.work.path(),
        "dev-1",
    );
    spoke.wait_file("web/ConfigMap/c.yaml", "applied", |_| true);
    wait_until("synced", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "dev-1")["sync"] == "synced").then_some(())
    });
    let json = hub.status(&f.pki);
    // YAML is the same document.
    let out = hub.ctl(&f.pki, &["status", "-o", "yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let docs = fleet_render::yaml::parse_documents("status.yaml", yaml.as_bytes()).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["clusters"][0]["name"], "dev-1");
    assert_eq!(
        docs[0]["clusters"][0]["appliedDigest"],
        json["clusters"][0]["appliedDigest"]
    );
    // Wide adds columns.
    let out = hub.ctl(&f.pki, &["status", "-o", "wide"]);
    let wide = String::from_utf8(out.stdout).unwrap();
    for col in ["LABELS", "RELEASED", "SOURCE", "VERIFIED BY"] {
        assert!(wide.contains(col), "{wide}");
    }
    assert!(
        wide.contains("region=eu") && wide.contains("network"),
        "{wide}"
    );

    // A reader that goes away: fleetctl ends quietly, exit 0, no panic.
    let mut child = Command::new(bin("fleetctl"))
        .args(["status", "-o", "json"])
        .args(hub_flags(&f, &hub))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?} {err}", out.status);

    // --watch shows the table again every interval until interrupted.
    let mut child = Command::new(bin("fleetctl"))
        .args(["status", "--watch", "--interval", "1s"])
        .args(hub_flags(&f, &hub))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("CLUSTER").count() >= 2, "{text}");
    assert!(text.contains("\x1b[2J"), "{text}");
}

#[test]
fn a_spoke_says_the_hub_is_not_ready_yet_before_its_first_render() {
    let f = fleet();
    // A repo the hub cannot read: it listens, but never renders.
    let missing = f.work.path().join("no-such-repo");
    let hub = hub(&f, missing.to_str().unwrap());
    let spoke = Spoke::start(
        &hub.grpc,
        &f.pki,
        "spoke-dev-1",
        &f.pki,
        f.work.path(),
        "dev-1",
    );
    wait_until("the spoke to say the hub is not ready", TIMEOUT, || {
        spoke
            .proc
            .logs()
            .contains("hub not ready yet")
            .then_some(())
    });
    assert!(
        !spoke.proc.logs().contains("hub unreachable"),
        "{}",
        spoke.proc.logs()
    );
}
