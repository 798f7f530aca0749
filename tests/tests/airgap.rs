//! Signed desired state and bundles carried by hand: the real hub, spokes
//! and fleetctl, with keys from `fleetctl ca signing-key`, checked also with
//! the standard tools a site has (`ssh-keygen -Y verify`, `sha256sum -c`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fleet_tests::*;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  k: VALUE\n";
const FILE: &str = "web/ConfigMap/web-config.yaml";

struct Fleet {
    work: tempfile::TempDir,
    repo: GitRepo,
    pki: Pki,
}

impl Fleet {
    fn new() -> Fleet {
        let work = tempfile::tempdir().unwrap();
        let repo = GitRepo::new(work.path().join("repo"));
        for c in ["a-1", "b-1", "c-1"] {
            repo.write(
                &format!("clusters/{c}.yaml"),
                &format!("name: {c}\nlabels: {{env: dev}}\n"),
            );
        }
        repo.write("apps/web/app.yaml", "namespace: web\n")
            .write("apps/web/base/config.yaml", &CM.replace("VALUE", "one"));
        repo.commit("initial fleet");
        let pki = Pki::new(work.path().join("pki"));
        for c in ["a-1", "b-1", "c-1"] {
            pki.issue(&["spoke", c]);
        }
        pki.issue(&["admin", "tester"]);
        let dir = pki.dir.to_str().unwrap().to_string();
        for name in ["signing", "signing-2", "rogue"] {
            fleetctl_ok(&["ca", "signing-key", "--dir", &dir, "--name", name]);
        }
        Fleet { work, repo, pki }
    }

    fn key(&self, name: &str) -> String {
        self.pki.dir.join(name).display().to_string()
    }

    fn hub(&self, name: &str, key: Option<&str>) -> Hub {
        let data = self.work.path().join("hub-data");
        let k = key.map(|k| self.key(k));
        let extra: Vec<&str> = match &k {
            Some(k) => vec!["--signing-key", k],
            None => vec![],
        };
        Hub::start_with(
            &HubSpec {
                repo: self.repo.dir.to_str().unwrap(),
                data_dir: &data,
                pki: &self.pki,
                branch: "main",
            },
            self.work.path(),
            name,
            &extra,
        )
    }

    /// A trust file holding the named public keys.
    fn trust(&self, names: &[&str]) -> PathBuf {
        let mut text = String::from("# hub keys\n");
        for n in names {
            text.push_str(&std::fs::read_to_string(self.pki.dir.join(format!("{n}.pub"))).unwrap());
        }
        let p = self
            .work
            .path()
            .join(format!("trust-{}.pub", names.join("+")));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn spoke(&self, hub_url: &str, cluster: &str, name: &str, extra: &[&str]) -> Spoke {
        Spoke::start_with(
            hub_url,
            &self.pki,
            &format!("spoke-{cluster}"),
            &self.pki.ca(),
            self.work.path(),
            name,
            extra,
        )
    }
}

fn value_of(s: &Spoke) -> Option<String> {
    s.file(FILE).and_then(|f| {
        f.lines()
            .find_map(|l| l.trim().strip_prefix("k: ").map(String::from))
    })
}

/// Signed states reach a spoke that trusts the hub's key; a spoke that trusts
/// another key, or any key when the hub does not sign, refuses them and
/// applies nothing; a rotated hub key is accepted while both are trusted.
#[test]
fn only_states_signed_by_a_trusted_key_are_applied_and_keys_rotate() {
    let f = Fleet::new();
    let mut hub = f.hub("hub", Some("signing.key"));
    let good = f.trust(&["signing", "signing-2"]);
    let rogue = f.trust(&["rogue"]);
    let a = f.spoke(
        &hub.grpc,
        "a-1",
        "a-1",
        &["--trust-keys", good.to_str().unwrap()],
    );
    let b = f.spoke(
        &hub.grpc,
        "b-1",
        "b-1",
        &["--trust-keys", rogue.to_str().unwrap()],
    );
    a.wait_file(FILE, "a-1 applied the signed state", |s| s.contains("one"));
    wait_until(
        "b-1 refuses the state signed by a key it does not trust",
        TIMEOUT,
        || {
            b.proc
                .logs()
                .contains("refusing a desired state from the hub")
                .then_some(())
        },
    );
    assert!(
        b.proc.logs().contains("which is not a trusted key"),
        "{}",
        b.proc.logs()
    );
    assert!(
        b.file(FILE).is_none(),
        "b-1 applied a state it could not verify"
    );

    // Rotation: the hub restarts with the second key; a-1 trusts both.
    hub.proc.kill();
    drop(a);
    f.repo
        .write("apps/web/base/config.yaml", &CM.replace("VALUE", "two"));
    f.repo.commit("web: two");
    let hub2 = f.hub("hub2", Some("signing-2.key"));
    let a = f.spoke(
        &hub2.grpc,
        "a-1",
        "a-1",
        &["--trust-keys", good.to_str().unwrap()],
    );
    a.wait_file(
        FILE,
        "a-1 applied the state signed by the rotated key",
        |s| s.contains("two"),
    );

    // A hub that does not sign: a spoke with trusted keys keeps (and
    // enforces) its verified cached state and applies nothing new.
    drop((hub2, a));
    f.repo
        .write("apps/web/base/config.yaml", &CM.replace("VALUE", "three"));
    f.repo.commit("web: three");
    let hub3 = f.hub("hub3", None);
    let a = f.spoke(
        &hub3.grpc,
        "a-1",
        "a-1",
        &["--trust-keys", good.to_str().unwrap()],
    );
    wait_until("a-1 refuses the unsigned state", TIMEOUT, || {
        a.proc
            .logs()
            .contains("the state is not signed")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        value_of(&a).as_deref(),
        Some("two"),
        "the last good state stays"
    );
    assert!(a.proc.logs().contains("loaded desired state from cache"));
}

fn sh(cmd: &str, dir: &Path) -> std::process::Output {
    run(Command::new("sh").args(["-c", cmd]).current_dir(dir))
}

/// A bundle from the hub and one made offline both verify with ssh-keygen
/// and sha256sum; a spoke that never saw a hub imports one and converges; a
/// tampered bundle is refused and the last good state kept; an older bundle
/// is refused as a replay unless allowed.
#[test]
fn bundles_verify_with_standard_tools_and_converge_a_spoke_without_a_hub() {
    let f = Fleet::new();
    let hub = f.hub("hub", Some("signing.key"));
    let out = f.work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let v1 = out.join("c-1-v1.bundle");
    let v1s = v1.to_str().unwrap();
    wait_until("the hub to serve c-1", TIMEOUT, || {
        let o = hub.ctl(&f.pki, &["bundle", "export", "c-1", "-o", v1s]);
        o.status.success().then_some(())
    });
    // Offline, from the repo with the key, at a later commit.
    f.repo
        .write("apps/web/base/config.yaml", &CM.replace("VALUE", "two"));
    f.repo.commit("web: two");
    let v2 = out.join("c-1-v2.bundle");
    fleetctl_ok(&[
        "bundle",
        "export",
        "c-1",
        "-o",
        v2.to_str().unwrap(),
        "--signing-key",
        &f.key("signing.key"),
        "--repo",
        f.repo.dir.to_str().unwrap(),
    ]);
    // Standard tools only: ssh-keygen and sha256sum, as a site would.
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        eprintln!("SKIPPED: ssh-keygen is not installed; the standard-tool check did not run");
    } else {
        for b in [&v1, &v2] {
            let dir = out.join(format!("x-{}", b.file_name().unwrap().to_string_lossy()));
            std::fs::create_dir_all(&dir).unwrap();
            let o = sh(&format!("tar -xf {}", b.display()), &dir);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // The site's own copy of the hub key.
            let signers = format!(
                "fleet-hub {}",
                std::fs::read_to_string(f.pki.dir.join("signing.pub")).unwrap()
            );
            std::fs::write(dir.join("site_signers"), signers).unwrap();
            let cmd = "ssh-keygen -Y verify -f site_signers -I fleet-hub -n fleet-bundle -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c SHA256SUMS && ssh-keygen -Y verify -f site_signers -I fleet-hub -n fleet-state -s statement.json.sig < statement.json";
            let o = sh(cmd, &dir);
            assert!(
                o.status.success(),
                "{cmd}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            // A flipped byte in the state fails the same command.
            let mut st = std::fs::read(dir.join("state.pb")).unwrap();
            let n = st.len() / 2;
            st[n] ^= 1;
            std::fs::write(dir.join("state.pb"), st).unwrap();
            assert!(!sh(cmd, &dir).status.success());
        }
    }

    // A spoke with no hub (nothing listens at its address) imports v2.
    let trust = f.trust(&["signing"]);
    let t = trust.to_str().unwrap();
    let nohub = "https://127.0.0.1:9";
    let c = f.spoke(
        nohub,
        "c-1",
        "c-1",
        &["--trust-keys", t, "--import", v2.to_str().unwrap()],
    );
    c.wait_file(FILE, "c-1 converged from the bundle", |s| s.contains("two"));
    assert!(c.proc.logs().contains("imported a verified bundle"));
    drop(c);

    // A tampered bundle: the spoke refuses to start and keeps v2.
    let mut bytes = std::fs::read(&v2).unwrap();
    let pos = bytes
        .windows(3)
        .position(|w| w == b"two")
        .expect("the state holds the value");
    bytes[pos] = b'T';
    let bad = out.join("tampered.bundle");
    std::fs::write(&bad, bytes).unwrap();
    let mut c = f.spoke(
        nohub,
        "c-1",
        "c-1",
        &["--trust-keys", t, "--import", bad.to_str().unwrap()],
    );
    wait_until("the tampered bundle refused", TIMEOUT, || {
        (!c.proc.is_running()).then_some(())
    });
    let logs = c.proc.logs();
    assert!(logs.contains("tampered.bundle"), "{logs}");
    assert_eq!(value_of(&c).as_deref(), Some("two"));

    // The older v1 is a replay: refused, unless --allow-older.
    let mut c = f.spoke(
        nohub,
        "c-1",
        "c-1",
        &["--trust-keys", t, "--import", v1.to_str().unwrap()],
    );
    wait_until("the older bundle refused", TIMEOUT, || {
        (!c.proc.is_running()).then_some(())
    });
    assert!(
        c.proc.logs().contains("refused as a replay"),
        "{}",
        c.proc.logs()
    );
    let c = f.spoke(
        nohub,
        "c-1",
        "c-1",
        &[
            "--trust-keys",
            t,
            "--import",
            v1.to_str().unwrap(),
            "--allow-older",
        ],
    );
    c.wait_file(FILE, "c-1 rolled back to v1 by bundle", |s| {
        s.contains("one")
    });

    // A bundle for another cluster is refused.
    let mut b = f.spoke(
        nohub,
        "b-1",
        "b-1",
        &["--trust-keys", t, "--import", v1.to_str().unwrap()],
    );
    wait_until("the other cluster's bundle refused", TIMEOUT, || {
        (!b.proc.is_running()).then_some(())
    });
    assert!(
        b.proc.logs().contains("is for cluster c-1"),
        "{}",
        b.proc.logs()
    );
}

/// An SSH key made by ssh-keygen, as a developer has one; `None` without ssh-keygen.
fn ssh_key(dir: &Path, name: &str) -> Option<(PathBuf, String)> {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .ok()?;
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    Some((key, public))
}

fn signed_commit(repo: &GitRepo, key: &Path, message: &str) -> String {
    repo.git(&["add", "-A"]);
    let k = format!("user.signingkey={}", key.display());
    repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &k,
        "commit",
        "-q",
        "-S",
        "-m",
        message,
    ]);
    repo.git(&["rev-parse", "HEAD"])
}

/// With --allowed-signers the hub renders only commits signed by an allowed
/// key; an unsigned or wrongly signed commit is named in status with the
/// reason, and the last good state stays served.
#[test]
fn only_commits_signed_by_an_allowed_key_are_deployed() {
    let f = Fleet::new();
    let keys = f.work.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let Some((ada, ada_pub)) = ssh_key(&keys, "ada") else {
        eprintln!("SKIPPED: ssh-keygen is not installed; commit signatures not tested");
        return;
    };
    let (eve, _) = ssh_key(&keys, "eve").unwrap();
    let allowed = keys.join("allowed_signers");
    std::fs::write(&allowed, format!("ada@example.com {ada_pub}")).unwrap();
    f.repo
        .write("apps/web/base/config.yaml", &CM.replace("VALUE", "signed"));
    let good = signed_commit(&f.repo, &ada, "web: signed");
    let data = f.work.path().join("hub-data");
    let hub = Hub::start_with(
        &HubSpec {
            repo: f.repo.dir.to_str().unwrap(),
            data_dir: &data,
            pki: &f.pki,
            branch: "main",
        },
        f.work.path(),
        "hub",
        &["--allowed-signers", allowed.to_str().unwrap()],
    );
    let a = f.spoke(&hub.grpc, "a-1", "a-1", &[]);
    a.wait_file(FILE, "the signed commit applied", |s| s.contains("signed"));
    assert!(hub.proc.logs().contains("commit signature verified"));
    let git_error = |hub: &Hub| {
        hub.status(&f.pki)["gitError"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for what in ["unsigned", "signed by eve"] {
        f.repo
            .write("apps/web/base/config.yaml", &CM.replace("VALUE", what));
        let commit = if what == "unsigned" {
            f.repo.commit("web: unsigned")
        } else {
            signed_commit(&f.repo, &eve, "web: eve")
        };
        hub.webhook();
        let e = wait_until(&format!("the {what} commit refused"), TIMEOUT, || {
            let e = git_error(&hub);
            e.contains(&commit[..8]).then_some(e)
        });
        let want = if what == "unsigned" {
            "the commit is not signed"
        } else {
            "which is not a trusted key"
        };
        assert!(e.contains(want), "{e}");
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            value_of(&a).as_deref(),
            Some("signed"),
            "{what} reached the spoke"
        );
        let s = hub.status(&f.pki);
        assert_eq!(s["hubRevision"]["id"], good.as_str(), "{s}");
    }
    f.repo.write(
        "apps/web/base/config.yaml",
        &CM.replace("VALUE", "signed-again"),
    );
    signed_commit(&f.repo, &ada, "web: signed again");
    hub.webhook();
    a.wait_file(FILE, "the next signed commit applied", |s| {
        s.contains("signed-again")
    });
    assert_eq!(git_error(&hub), "");
}

/// Status shows the chain commit -> state digest -> hub key -> verified by
/// the spoke, and where the state came from; a spoke that is down shows
/// since when; a rollback made at the site with no hub (from the states the
/// cache remembers) is reported in history when the link returns.
#[test]
fn provenance_staleness_and_a_site_rollback_are_reported() {
    let f = Fleet::new();
    let trust = f.trust(&["signing"]);
    let t = trust.to_str().unwrap().to_string();
    let repo = f.repo.dir.to_str().unwrap().to_string();
    let hub = f.hub("hub", Some("signing.key"));
    let a = f.spoke(&hub.grpc, "a-1", "a-1", &["--trust-keys", &t]);
    a.wait_file(FILE, "v1 applied", |s| s.contains("one"));
    let v1 = f.repo.git(&["rev-parse", "HEAD"]);
    f.repo
        .write("apps/web/base/config.yaml", &CM.replace("VALUE", "two"));
    f.repo.commit("web: two");
    hub.webhook();
    a.wait_file(FILE, "v2 applied", |s| s.contains("two"));
    let status = |hub: &Hub| {
        let out = hub.ctl(&f.pki, &["status", "a-1", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
        v["clusters"][0].clone()
    };
    let c = wait_until("provenance reported", TIMEOUT, || {
        let c = status(&hub);
        (c["provenance"]["source"] == "network" && c["appliedDigest"] == c["desiredDigest"])
            .then_some(c)
    });
    let p = &c["provenance"];
    assert!(
        p["verifiedBy"].as_str().unwrap().contains("fleet-hub"),
        "{p}"
    );
    assert!(
        p["hubKey"].as_str().unwrap().starts_with("ssh-ed25519 "),
        "{p}"
    );
    assert_eq!(p["stateDigest"], c["appliedDigest"]);
    assert_eq!(p["commit"], c["applied"]["id"]);
    assert!(p["publishedAtMs"].as_i64().unwrap() > 0, "{p}");
    assert!(c["offlineSince"].is_null());
    let out = hub.ctl(&f.pki, &["status", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("clusters: a-1, b-1, c-1"));

    // The spoke goes down: status says since when.
    drop(a);
    let c = wait_until("a-1 offline", TIMEOUT, || {
        let c = status(&hub);
        c["offlineSince"].as_i64().map(|_| c)
    });
    assert_eq!(c["connected"], false);

    // With no hub reachable, the site rolls back to v1 from the cache.
    let down = "https://127.0.0.1:9";
    let short = &v1[..10];
    let a = f.spoke(
        down,
        "a-1",
        "a-1",
        &["--trust-keys", &t, "--rollback-to", short],
    );
    a.wait_file(FILE, "the site rollback applied", |s| s.contains("one"));
    drop(a);
    let mut bad = f.spoke(
        down,
        "a-1",
        "a-1",
        &["--trust-keys", &t, "--rollback-to", "ffff"],
    );
    wait_until("an unknown rollback refused", TIMEOUT, || {
        (!bad.proc.is_running()).then_some(())
    });
    assert!(
        bad.proc.logs().contains("no remembered state of revision"),
        "{}",
        bad.proc.logs()
    );
    // The link returns: the rollback is in history, then the hub's newer state wins.
    let a = f.spoke(&hub.grpc, "a-1", "a-1", &["--trust-keys", &t]);
    wait_until("the site rollback in history", TIMEOUT, || {
        let out = hub.ctl(&f.pki, &["history", "a-1", "--repo", &repo]);
        String::from_utf8_lossy(&out.stdout)
            .contains("rolled back at the site")
            .then_some(())
    });
    a.wait_file(FILE, "the hub's newer state again", |s| s.contains("two"));
}

/// After a key rotation the hub signs its stored states again, so a spoke
/// that trusts only the new key accepts them without a new commit (its
/// cached state, signed by the old key, no longer verifies).
#[test]
fn a_rotated_hub_key_re_signs_stored_states() {
    let f = Fleet::new();
    let old_only = f.trust(&["signing"]);
    let new_only = f.trust(&["signing-2"]);
    let mut hub = f.hub("hub", Some("signing.key"));
    let a = f.spoke(
        &hub.grpc,
        "a-1",
        "a-1",
        &["--trust-keys", old_only.to_str().unwrap()],
    );
    a.wait_file(FILE, "applied under the old key", |s| s.contains("one"));
    let verified_by = |hub: &Hub| {
        let s = hub.status(&f.pki);
        cluster(&s, "a-1")["provenance"]["verifiedBy"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let old_key = wait_until("a-1 verified under the old key", TIMEOUT, || {
        Some(verified_by(&hub)).filter(|v| v.contains("fleet-hub"))
    });
    drop(a);
    hub.proc.kill();
    let hub2 = f.hub("hub2", Some("signing-2.key"));
    let a = f.spoke(
        &hub2.grpc,
        "a-1",
        "a-1",
        &["--trust-keys", new_only.to_str().unwrap()],
    );
    // The hub's stored record still shows the old key until the new spoke reports.
    wait_until("a-1 re-verified under the new key", TIMEOUT, || {
        let v = verified_by(&hub2);
        (a.proc.logs().contains("received desired state")
            && v.contains("fleet-hub")
            && v != old_key)
            .then_some(())
    });
    let logs = a.proc.logs();
    assert!(
        logs.contains("the cached desired state does not verify"),
        "{logs}"
    );
    assert!(
        !logs.contains("refusing a desired state from the hub"),
        "{logs}"
    );
    assert_eq!(value_of(&a).as_deref(), Some("one"));
}
