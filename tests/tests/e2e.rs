//! End-to-end: the real binaries against a real Git repo over real mTLS.

use std::time::Duration;

use fleet_tests::*;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\ndata:\n  value: VALUE\n";

fn cm(name: &str, value: &str) -> String {
    CM.replace("NAME", name).replace("VALUE", value)
}

struct Fleet {
    work: tempfile::TempDir,
    repo: GitRepo,
    pki: Pki,
}

impl Fleet {
    /// dev-1 (env dev) and prod-1 (env prod); app `web` everywhere, app `payments` on prod only.
    fn new() -> Fleet {
        let work = tempfile::tempdir().unwrap();
        let repo = GitRepo::new(work.path().join("repo"));
        repo.write("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
            .write(
                "clusters/prod-1.yaml",
                "name: prod-1\nlabels: {env: prod}\n",
            )
            .write("apps/web/app.yaml", "namespace: web\n")
            .write("apps/web/base/config.yaml", &cm("web-config", "one"))
            .write("apps/web/base/extra.yaml", &cm("web-extra", "x"))
            .write(
                "apps/payments/app.yaml",
                "namespace: payments\nselector:\n  matchLabels: {env: prod}\n",
            )
            .write(
                "apps/payments/base/config.yaml",
                &cm("payments-config", "secret-ish"),
            );
        repo.commit("initial fleet");
        let pki = Pki::new(work.path().join("pki"));
        pki.issue(&["admin", "tester"]);
        pki.issue(&["spoke", "dev-1"]);
        pki.issue(&["spoke", "prod-1"]);
        Fleet { work, repo, pki }
    }

    fn hub(&self, name: &str) -> Hub {
        let data = self.work.path().join("hub-data");
        Hub::start(
            &HubSpec {
                repo: self.repo.dir.to_str().unwrap(),
                data_dir: &data,
                pki: &self.pki,
                branch: "main",
            },
            self.work.path(),
            name,
        )
    }

    fn spoke(&self, hub: &Hub, cluster: &str) -> Spoke {
        Spoke::start(
            &hub.grpc,
            &self.pki,
            &format!("spoke-{cluster}"),
            &self.pki,
            self.work.path(),
            cluster,
        )
    }
}

const WEB_CONFIG: &str = "web/ConfigMap/web-config.yaml";

#[test]
fn a_commit_reaches_the_spoke_and_status_shows_it() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    dev.wait_file(WEB_CONFIG, "initial config applied", |c| {
        c.contains("value: one")
    });

    f.repo
        .write("apps/web/base/config.yaml", &cm("web-config", "two"));
    let rev = f.repo.commit("web: value two");
    hub.webhook();
    dev.wait_file(WEB_CONFIG, "new commit applied", |c| {
        c.contains("value: two")
    });

    let status = wait_until(
        "status to show dev-1 synced at the new commit",
        TIMEOUT,
        || {
            let s = hub.status(&f.pki);
            let c = cluster(&s, "dev-1");
            (c["sync"] == "synced" && c["applied"]["id"] == rev.as_str()).then(|| s.clone())
        },
    );
    let c = cluster(&status, "dev-1");
    assert_eq!(c["applied"]["message"], "web: value two");
    assert_eq!(c["applied"]["author"], "Ada Lovelace <ada@example.com>");
    assert_eq!(c["connected"], true);
    assert_eq!(c["labels"]["env"], "dev");
    // prod-1 has no spoke running: it is not synced.
    assert_ne!(cluster(&status, "prod-1")["sync"], "synced");
}

#[test]
fn a_hand_edit_is_healed_and_reported() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    let good = dev.wait_file(WEB_CONFIG, "config applied", |c| c.contains("value: one"));
    std::fs::write(dev.target.join(WEB_CONFIG), "tampered\n").unwrap();
    dev.wait_file(WEB_CONFIG, "hand edit reverted", |c| c == good);
    std::fs::remove_file(dev.target.join(WEB_CONFIG)).unwrap();
    dev.wait_file(WEB_CONFIG, "hand deletion restored", |c| c == good);
    wait_until("the heal to be reported to the hub", TIMEOUT, || {
        let s = hub.status(&f.pki);
        cluster(&s, "dev-1")["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["state"] == "healed")
            .then_some(())
    });
}

#[test]
fn a_file_removed_from_the_repo_is_pruned_and_nothing_else() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    dev.wait_file("web/ConfigMap/web-extra.yaml", "extra applied", |_| true);
    // A file fleet did not create, in a directory fleet manages.
    std::fs::write(dev.target.join("web/ConfigMap/hand-made.yaml"), "mine\n").unwrap();

    f.repo.remove("apps/web/base/extra.yaml");
    f.repo.commit("web: drop extra");
    hub.webhook();
    dev.wait_gone("web/ConfigMap/web-extra.yaml");
    assert!(dev.file(WEB_CONFIG).is_some(), "a desired file was pruned");
    assert_eq!(
        dev.file("web/ConfigMap/hand-made.yaml").as_deref(),
        Some("mine\n")
    );
}

#[test]
fn broken_yaml_in_one_app_keeps_its_last_good_state_and_others_converge() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let prod = f.spoke(&hub, "prod-1");
    prod.wait_file(
        "payments/ConfigMap/payments-config.yaml",
        "payments applied",
        |_| true,
    );
    prod.wait_file(WEB_CONFIG, "web applied", |_| true);

    f.repo.write(
        "apps/payments/base/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
    );
    f.repo
        .write("apps/web/base/config.yaml", &cm("web-config", "three"));
    f.repo.commit("break payments, change web");
    hub.webhook();
    prod.wait_file(
        WEB_CONFIG,
        "web change applied despite broken payments",
        |c| c.contains("value: three"),
    );
    // payments keeps its last good version: still applied, not pruned.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        prod.file("payments/ConfigMap/payments-config.yaml")
            .is_some(),
        "last good payments was pruned"
    );

    let s = wait_until("render error in status", TIMEOUT, || {
        let s = hub.status(&f.pki);
        (!cluster(&s, "prod-1")["renderErrors"]
            .as_array()
            .unwrap()
            .is_empty())
        .then_some(s)
    });
    let errs = cluster(&s, "prod-1")["renderErrors"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["app"], "payments");
    assert_eq!(errs[0]["file"], "apps/payments/base/config.yaml");
    // And the human table names it too.
    let out = hub.ctl(&f.pki, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("render error in app payments: apps/payments/base/config.yaml"),
        "{table}"
    );
}

#[test]
fn a_spoke_restarted_with_the_hub_down_applies_from_its_cache() {
    let f = Fleet::new();
    let mut hub = f.hub("hub");
    let mut dev = f.spoke(&hub, "dev-1");
    let good = dev.wait_file(WEB_CONFIG, "config applied", |_| true);
    // Let the state reach the cache and the hub see the ack.
    wait_until("ack", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "dev-1")["sync"] == "synced").then_some(())
    });
    hub.proc.kill();
    dev.proc.kill();
    std::fs::remove_dir_all(&dev.target).unwrap();

    let dev2 = f.spoke(&hub, "dev-1");
    dev2.wait_file(
        WEB_CONFIG,
        "config re-applied from the cache with the hub down",
        |c| c == good,
    );
    // Self-heal keeps working offline.
    std::fs::write(dev2.target.join(WEB_CONFIG), "offline tamper\n").unwrap();
    dev2.wait_file(WEB_CONFIG, "offline heal", |c| c == good);
    drop(dev);
}

#[test]
fn a_hub_restarted_with_git_unreachable_serves_what_it_stored() {
    let f = Fleet::new();
    let mut hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    let good = dev.wait_file(WEB_CONFIG, "config applied", |_| true);
    hub.proc.kill();
    // Git goes away.
    let moved = f.work.path().join("repo-gone");
    std::fs::rename(&f.repo.dir, &moved).unwrap();
    let hub2 = f.hub("hub2");
    // A fresh spoke (empty cache) still gets the stored state.
    let prod = f.spoke(&hub2, "prod-1");
    prod.wait_file(
        "payments/ConfigMap/payments-config.yaml",
        "state served from the hub's store",
        |_| true,
    );
    let s = hub2.status(&f.pki);
    assert!(
        s["gitError"].as_str().is_some_and(|e| e.contains("repo")),
        "git error not reported: {s}"
    );
    assert_eq!(dev.file(WEB_CONFIG).as_deref(), Some(good.as_str()));
}

#[test]
fn a_hub_asked_to_stop_with_spokes_connected_exits_and_keeps_their_records() {
    let f = Fleet::new();
    let mut hub = f.hub("hub");
    let mut dev = f.spoke(&hub, "dev-1");
    dev.wait_file(WEB_CONFIG, "config applied", |_| true);
    let rev = wait_until("status to show dev-1 synced", TIMEOUT, || {
        let s = hub.status(&f.pki);
        let c = cluster(&s, "dev-1");
        (c["sync"] == "synced").then(|| c["applied"]["id"].as_str().unwrap().to_string())
    });
    // A spoke's stream never ends by itself: the hub must not wait for it.
    hub.proc.terminate();
    let status = hub
        .proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the hub did not exit on SIGTERM:\n{}", hub.proc.logs()));
    assert!(
        status.success(),
        "the hub exited with {status}:\n{}",
        hub.proc.logs()
    );
    dev.proc.kill();
    // What the hub knew of dev-1 was stored on the way out.
    let hub2 = f.hub("hub2");
    let s = hub2.status(&f.pki);
    let c = cluster(&s, "dev-1");
    assert_eq!(c["applied"]["id"], rev.as_str(), "{s}");
    assert_eq!(c["connected"], false);
}

#[test]
fn a_spoke_gets_only_its_own_slice() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    let prod = f.spoke(&hub, "prod-1");
    dev.wait_file(WEB_CONFIG, "dev web", |_| true);
    prod.wait_file(
        "payments/ConfigMap/payments-config.yaml",
        "prod payments",
        |_| true,
    );
    assert!(
        dev.file("payments/ConfigMap/payments-config.yaml")
            .is_none(),
        "dev-1 received prod-only state"
    );

    // A certificate for a cluster the repo does not have gets nothing.
    f.pki.issue(&["spoke", "ghost"]);
    let ghost = Spoke::start(
        &hub.grpc,
        &f.pki,
        "spoke-ghost",
        &f.pki,
        f.work.path(),
        "ghost",
    );
    wait_until("ghost spoke refused", TIMEOUT, || {
        ghost
            .proc
            .logs()
            .contains("cluster ghost is not in the fleet repo")
            .then_some(())
    });
    assert!(!ghost.target.join("web").exists());

    // A spoke certificate is not an admin certificate.
    let out = hub.status_as(&f.pki, "spoke-dev-1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let f = Fleet::new();
    let hub = f.hub("hub");
    let rogue = Pki::new(f.work.path().join("rogue-pki"));
    rogue.issue(&["spoke", "dev-1"]);
    rogue.issue(&["admin", "tester"]);
    // The rogue spoke trusts the real CA (so it can verify the hub) but presents a rogue certificate.
    let spoke = Spoke::start(
        &hub.grpc,
        &rogue,
        "spoke-dev-1",
        &f.pki,
        f.work.path(),
        "rogue",
    );
    wait_until("rogue spoke refused at the TLS layer", TIMEOUT, || {
        spoke.proc.logs().contains("hub unreachable").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !spoke.target.join("web").exists(),
        "rogue spoke received state"
    );
    let out = hub.ctl_as(&f.pki, &rogue, "admin-tester", &["status"]);
    assert!(!out.status.success(), "rogue admin got status");
    // Nothing about the rogue reached the hub's status.
    assert_ne!(cluster(&hub.status(&f.pki), "dev-1")["connected"], true);
}

#[test]
fn states_larger_than_4_mib_are_chunked() {
    let f = Fleet::new();
    // 6 ConfigMaps of ~900 KiB: a 5+ MiB state for dev-1.
    let big = "x".repeat(900 * 1024);
    for i in 0..6 {
        f.repo.write(
            &format!("apps/web/base/big-{i}.yaml"),
            &cm(&format!("big-{i}"), &big),
        );
    }
    f.repo.commit("big state");
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    for i in 0..6 {
        dev.wait_file(
            &format!("web/ConfigMap/big-{i}.yaml"),
            "big configmap",
            |c| c.len() > 900 * 1024,
        );
    }
}

#[test]
fn render_offline_matches_what_the_spoke_applies() {
    let f = Fleet::new();
    let out = fleetctl_ok(&[
        "render",
        "--repo",
        f.repo.dir.to_str().unwrap(),
        "--cluster",
        "prod-1",
    ]);
    assert!(out.contains("name: payments-config"), "{out}");
    let hub = f.hub("hub");
    let prod = f.spoke(&hub, "prod-1");
    let applied = prod.wait_file(WEB_CONFIG, "web applied", |_| true);
    assert!(
        out.contains(&applied),
        "offline render differs from applied bytes:\n{out}\n---\n{applied}"
    );

    let bad = fleetctl(&[
        "render",
        "--repo",
        f.repo.dir.to_str().unwrap(),
        "--cluster",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("dev-1, prod-1"));
}

#[test]
fn demo_converges_and_exits() {
    let work = tempfile::tempdir().unwrap();
    let out = fleetctl(&[
        "demo",
        "--dir",
        work.path().join("demo").to_str().unwrap(),
        "--exit-when-converged",
        "--timeout",
        "60",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all 4 clusters converged"), "{stdout}");
    assert!(
        work.path()
            .join("demo/spokes/prod-eu-1/target/web/Deployment.apps/web.yaml")
            .exists()
    );
}

#[test]
fn a_hub_reading_a_url_mirrors_the_repo_and_follows_new_commits() {
    let f = Fleet::new();
    let url = format!("file://{}", f.repo.dir.display());
    let data = f.work.path().join("hub-url-data");
    let hub = Hub::start(
        &HubSpec {
            repo: &url,
            data_dir: &data,
            pki: &f.pki,
            branch: "main",
        },
        f.work.path(),
        "hub-url",
    );
    let dev = f.spoke(&hub, "dev-1");
    dev.wait_file(WEB_CONFIG, "state rendered from the mirror", |c| {
        c.contains("value: one")
    });
    assert!(
        data.join("mirror.git").exists(),
        "no mirror under the data dir"
    );
    f.repo
        .write("apps/web/base/config.yaml", &cm("web-config", "fetched"));
    f.repo.commit("web: fetched");
    hub.webhook();
    dev.wait_file(WEB_CONFIG, "new commit fetched into the mirror", |c| {
        c.contains("value: fetched")
    });
}

#[test]
fn a_corrupt_cache_is_reported_and_nothing_applied_is_undone() {
    let f = Fleet::new();
    let mut hub = f.hub("hub");
    let mut dev = f.spoke(&hub, "dev-1");
    let good = dev.wait_file(WEB_CONFIG, "config applied", |_| true);
    wait_until("ack", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "dev-1")["sync"] == "synced").then_some(())
    });
    hub.proc.kill();
    dev.proc.kill();
    // Corrupt the cached state in place.
    {
        let cache = fleet_spoke::cache::Cache::open(&dev.cache).unwrap();
        cache
            .save_state(b"\xff\x00 definitely not a desired state")
            .unwrap();
    }
    let dev2 = f.spoke(&hub, "dev-1");
    wait_until("the corrupt cache to be reported", TIMEOUT, || {
        dev2.proc
            .logs()
            .contains("cached desired state is corrupt")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(800));
    // Nothing pruned, nothing rewritten.
    assert_eq!(dev2.file(WEB_CONFIG).as_deref(), Some(good.as_str()));
    assert!(dev2.file("web/ConfigMap/web-extra.yaml").is_some());
    drop(dev);
}

#[test]
fn bad_certificates_and_unreachable_hubs_are_named() {
    let f = Fleet::new();
    let junk = f.work.path().join("junk.crt");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let (_, key) = f.pki.pair("hub");
    let out = run(std::process::Command::new(bin("fleet-hub"))
        .args([
            "--repo",
            f.repo.dir.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(f.work.path().join("d"))
        .arg("--ca")
        .arg(f.pki.ca())
        .arg("--cert")
        .arg(&junk)
        .arg("--key")
        .arg(&key));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.crt") && err.contains("not a PEM file"),
        "{err}"
    );

    let (cert, _) = f.pki.pair("admin-tester");
    let out = fleetctl(&[
        "status",
        "--hub",
        "https://127.0.0.1:9",
        "--hub-name",
        "localhost",
        "--ca",
        f.pki.ca().to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        f.work.path().join("missing.key").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (key_ok_cert, key_ok) = f.pki.pair("admin-tester");
    let out = fleetctl(&[
        "status",
        "--hub",
        "https://127.0.0.1:9",
        "--hub-name",
        "localhost",
        "--ca",
        f.pki.ca().to_str().unwrap(),
        "--cert",
        key_ok_cert.to_str().unwrap(),
        "--key",
        key_ok.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https://127.0.0.1:9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn live_diff_shows_what_a_sync_would_change_on_the_spoke() {
    let f = Fleet::new();
    f.repo.write(
        "clusters/dev-1.yaml",
        "name: dev-1\nlabels: {env: dev}\nsync: {selfHeal: false}\n",
    );
    f.repo.commit("dev-1: no self-heal");
    let hub = f.hub("hub");
    let dev = f.spoke(&hub, "dev-1");
    dev.wait_file(WEB_CONFIG, "config applied", |_| true);
    let diff = |args: &[&str]| {
        let mut all = vec!["diff"];
        all.extend_from_slice(args);
        let out = hub.ctl(&f.pki, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(diff(&["dev-1"]).contains("in sync, nothing would change"));
    std::fs::write(dev.target.join(WEB_CONFIG), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: web\ndata:\n  value: hand-edited\n").unwrap();
    let out = diff(&["dev-1", "web"]);
    assert!(
        out.contains("1 object(s) would change")
            && out.contains("# changed ConfigMap/web/web-config"),
        "{out}"
    );
    assert!(
        out.contains("-  value: hand-edited") && out.contains("+  value: one"),
        "{out}"
    );
    // Not connected: a clear error.
    let out = hub.ctl(&f.pki, &["diff", "prod-1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
