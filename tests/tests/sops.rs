//! SOPS-encrypted Secrets (age recipients) through a real hub and real
//! spokes: the data key is encrypted by the real `age` tool, the hub and both
//! caches hold only ciphertext, a spoke with the identity applies plaintext,
//! a spoke without it applies nothing of that object (fail closed) and the
//! rest of its state, and a document changed after encryption is refused
//! with the last good one kept.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use fleet_tests::sops::{PLAIN, TOKEN_PLAIN, have_age, keygen, sops_secret};
use fleet_tests::*;

fn contains_bytes(dir: &Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(hit) = contains_bytes(&p, needle) {
                return Some(hit);
            }
        } else if let Ok(b) = std::fs::read(&p) {
            if b.windows(needle.len()).any(|w| w == needle) {
                return Some(p);
            }
        }
    }
    None
}

fn resource<'a>(
    status: &'a serde_json::Value,
    cluster_name: &str,
    id: &str,
) -> Option<&'a serde_json::Value> {
    cluster(status, cluster_name)["resources"]
        .as_array()?
        .iter()
        .find(|r| r["id"].as_str().is_some_and(|i| i.contains(id)))
}

#[test]
fn a_sops_secret_is_decrypted_only_on_the_spoke_and_fails_closed_elsewhere() {
    if !have_age() {
        eprintln!(
            "SKIPPED: the age tool is not installed (apt-get install age); .ci/run installs it"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (identity, recipient) = keygen(work.path(), "site");
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let key2: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(53).wrapping_add(5));

    let repo = GitRepo::new(work.path().join("repo"));
    for c in ["a-1", "b-1"] {
        repo.write(
            &format!("clusters/{c}.yaml"),
            &format!("name: {c}\nlabels: {{env: dev}}\n"),
        );
    }
    // A plain app: the document goes through byte for byte.
    let as_written = sops_secret("db", Some("web"), &recipient, &key);
    repo.write("apps/web/app.yaml", "namespace: web\n")
        .write("apps/web/base/db.yaml", &as_written)
        .write(
            "apps/web/base/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n",
        );
    // A Kustomize app whose transformers change the document (namespace,
    // labels): the spoke checks the MAC over the file as written.
    repo.write("apps/kz/app.yaml", "namespace: kz\n")
        .write(
            "apps/kz/base/kustomization.yaml",
            "namespace: kz\nlabels:\n- pairs: {team: payments}\nresources:\n- api.yaml\n",
        )
        .write(
            "apps/kz/base/api.yaml",
            &sops_secret("api", None, &recipient, &key2),
        );
    repo.commit("fleet with SOPS secrets");

    let pki = Pki::new(work.path().join("pki"));
    for c in ["a-1", "b-1"] {
        pki.issue(&["spoke", c]);
    }
    pki.issue(&["admin", "tester"]);
    let data = work.path().join("hub-data");
    let hub = Hub::start(
        &HubSpec {
            repo: repo.dir.to_str().unwrap(),
            data_dir: &data,
            pki: &pki,
            branch: "main",
        },
        work.path(),
        "hub",
    );
    let id_arg = identity.to_str().unwrap();
    let a = Spoke::start_with(
        &hub.grpc,
        &pki,
        "spoke-a-1",
        &pki.ca(),
        work.path(),
        "a-1",
        &["--age-identity", id_arg],
    );
    let b = Spoke::start(&hub.grpc, &pki, "spoke-b-1", &pki, work.path(), "b-1");

    // The spoke with the identity applies plaintext, for both shapes.
    let db = a.wait_file("web/Secret/db.yaml", "db secret decrypted", |c| {
        c.contains(PLAIN)
    });
    assert!(db.contains(TOKEN_PLAIN), "{db}");
    assert!(!db.contains("ENC[") && !db.contains("sops"), "{db}");
    let api = a.wait_file("kz/Secret/api.yaml", "api secret decrypted", |c| {
        c.contains(PLAIN)
    });
    assert!(
        api.contains("team: payments"),
        "the render's labels are kept: {api}"
    );
    assert!(
        !api.contains("ENC[") && !api.contains("fleet_source"),
        "{api}"
    );

    // The spoke without it applies the rest and fails those objects closed.
    b.wait_file("web/ConfigMap/cfg.yaml", "config applied", |_| true);
    let st = wait_until("b-1 to report the SOPS failure", TIMEOUT, || {
        let s = hub.status(&pki);
        resource(&s, "b-1", "Secret/web/db")
            .filter(|r| r["state"] == "failed")
            .map(|r| r["message"].as_str().unwrap_or_default().to_string())
    });
    assert!(st.contains("SOPS") && st.contains("age identity"), "{st}");
    assert!(b.file("web/Secret/db.yaml").is_none());
    assert!(b.file("kz/Secret/api.yaml").is_none());

    // Only ciphertext outside the spoke's target: the hub's store, both caches.
    for dir in [&data, &a.cache, &b.cache] {
        assert_eq!(
            contains_bytes(dir, PLAIN.as_bytes()),
            None,
            "plaintext in {}",
            dir.display()
        );
        assert_eq!(contains_bytes(dir, TOKEN_PLAIN.as_bytes()), None);
    }
    // The plain app's document reached the spoke's cache byte for byte.
    assert!(contains_bytes(&a.cache, as_written.lines().nth(7).unwrap().as_bytes()).is_some());

    // A plaintext value changed after encryption: the MAC refuses it and the
    // last good Secret stays applied.
    let tampered = as_written.replace("type: Opaque", "type: kubernetes.io/tls");
    repo.write("apps/web/base/db.yaml", &tampered);
    let rev = repo.commit("change a value under the MAC");
    let msg = wait_until("a-1 to refuse the tampered document", TIMEOUT, || {
        let s = hub.status(&pki);
        let c = cluster(&s, "a-1");
        (c["revision"] == rev.as_str() || c["applied"]["id"] == rev.as_str())
            .then_some(())
            .and_then(|_| resource(&s, "a-1", "Secret/web/db"))
            .filter(|r| r["state"] == "failed")
            .map(|r| r["message"].as_str().unwrap_or_default().to_string())
    });
    assert!(msg.contains("MAC mismatch"), "{msg}");
    assert_eq!(a.file("web/Secret/db.yaml").as_deref(), Some(db.as_str()));
    // A live diff tells that the object differs, never its values.
    let out = hub.ctl(&pki, &["diff", "a-1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SOPS-encrypted object"), "{text}");
    assert!(
        !text.contains(PLAIN) && !text.contains(TOKEN_PLAIN),
        "{text}"
    );

    // A document whose name is encrypted cannot be placed: a render error
    // naming the file, the last good state kept.
    let hidden = as_written.replace(
        "name: db",
        "name: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
    );
    repo.write("apps/web/base/db.yaml", &hidden);
    repo.commit("encrypt the name");
    let err = wait_until("the render error", TIMEOUT, || {
        let s = hub.status(&pki);
        let text = s.to_string();
        text.contains("metadata.name is encrypted").then_some(text)
    });
    assert!(err.contains("db.yaml"), "{err}");
    assert_eq!(a.file("web/Secret/db.yaml").as_deref(), Some(db.as_str()));
}

/// fleet's age reading against the real tool: armored and binary, one chunk
/// and several (age's payload comes in 64 KiB chunks), the wrong identity.
#[test]
fn files_the_age_tool_encrypts_decrypt_and_only_with_their_identity() {
    if !have_age() {
        eprintln!(
            "SKIPPED: the age tool is not installed (apt-get install age); .ci/run installs it"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (id_file, recipient) = keygen(work.path(), "one");
    let (other_file, _) = keygen(work.path(), "two");
    let ids = fleet_proto::age::Identity::parse_file(&std::fs::read_to_string(&id_file).unwrap())
        .unwrap();
    assert_eq!(ids[0].recipient(), recipient);
    let other =
        fleet_proto::age::Identity::parse_file(&std::fs::read_to_string(&other_file).unwrap())
            .unwrap();
    for len in [0usize, 1, 32, 65_536, 65_537, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for armor in [true, false] {
            let mut cmd = Command::new("age");
            if armor {
                cmd.arg("-a");
            }
            let mut child = cmd
                .args(["-r", &recipient])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let input = data.clone();
            // age writes while it reads: feed it from another thread.
            let feeder = std::thread::spawn(move || stdin.write_all(&input));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            assert!(out.status.success());
            let got = fleet_proto::age::decrypt(&out.stdout, &ids)
                .unwrap_or_else(|e| panic!("{len} bytes, armor {armor}: {e}"));
            assert_eq!(got, data, "{len} bytes, armor {armor}");
            assert_eq!(
                fleet_proto::age::decrypt(&out.stdout, &other),
                Err(fleet_proto::age::AgeError::NoMatch)
            );
        }
    }
}
