//! A hostile spoke, users with too little power, revoked certificates and
//! unsigned webhooks, against the real hub process over real mTLS.
//!
//! The hostile spoke is a gRPC client holding a real spoke certificate that
//! sends what an honest spoke never would.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use fleet_proto::v1 as pb;
use fleet_tests::*;
use pb::spoke_message::Msg;
use tokio::sync::mpsc;

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  k: v\n";
const SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n";

struct Fleet {
    work: tempfile::TempDir,
    repo: GitRepo,
    pki: Pki,
}

impl Fleet {
    /// Clusters a-1, b-1 and c-1, app `web` (a ConfigMap and a Secret) on each.
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
            .write("apps/web/base/config.yaml", CM)
            .write("apps/web/base/secret.yaml", SECRET);
        repo.commit("initial fleet");
        let pki = Pki::new(work.path().join("pki"));
        for c in ["a-1", "b-1", "c-1"] {
            pki.issue(&["spoke", c]);
        }
        pki.issue(&["admin", "tester"]);
        Fleet { work, repo, pki }
    }

    fn hub_with(&self, extra: &[&str]) -> Hub {
        let data = self.work.path().join("hub-data");
        Hub::start_with(
            &HubSpec {
                repo: self.repo.dir.to_str().unwrap(),
                data_dir: &data,
                pki: &self.pki,
                branch: "main",
            },
            self.work.path(),
            "hub",
            extra,
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

    /// `fleetctl ARGS` as the user certificate `stem`.
    fn ctl_as(&self, hub: &Hub, stem: &str, args: &[&str]) -> std::process::Output {
        hub.ctl_as(&self.pki, &self.pki, stem, args)
    }

    fn link(&self, hub: &Hub, stem: &str) -> fleet_spoke::LinkConfig {
        let (cert, key) = self.pki.pair(stem);
        fleet_spoke::LinkConfig {
            hub: hub.grpc.clone(),
            hub_name: Some("localhost".into()),
            ca: self.pki.ca(),
            cert,
            key,
        }
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A spoke stream opened by hand: what the hub sends, and a way to send.
struct RawSpoke {
    tx: mpsc::Sender<pb::SpokeMessage>,
    rx: tonic::Streaming<pb::HubMessage>,
}

impl RawSpoke {
    async fn open(cfg: &fleet_spoke::LinkConfig) -> RawSpoke {
        let ch = fleet_spoke::link::channel(cfg).unwrap();
        let mut client = pb::spoke_service_client::SpokeServiceClient::new(ch)
            .max_encoding_message_size(64 * 1024 * 1024)
            .max_decoding_message_size(64 * 1024 * 1024);
        let (tx, out_rx) = mpsc::channel(64);
        tx.send(pb::SpokeMessage {
            msg: Some(Msg::Hello(pb::Hello::default())),
        })
        .await
        .unwrap();
        let rx = match client
            .sync(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await
        {
            Ok(r) => r.into_inner(),
            // Before the hub's first render; try again (bounded by the caller).
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Box::pin(RawSpoke::open(cfg)).await;
            }
            Err(s) => panic!("the hub did not open the stream: {s}"),
        };
        RawSpoke { tx, rx }
    }

    async fn send(&self, m: Msg) {
        self.tx
            .send(pb::SpokeMessage { msg: Some(m) })
            .await
            .expect("stream open");
    }

    /// The next DiffRequest the hub sends (skipping states).
    async fn next_diff_request(&mut self) -> pb::DiffRequest {
        loop {
            let m = tokio::time::timeout(TIMEOUT, self.rx.message())
                .await
                .expect("a diff request in time")
                .expect("stream open")
                .expect("stream open");
            if let Some(pb::hub_message::Msg::DiffRequest(d)) = m.msg {
                return d;
            }
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn forged(id: u64) -> Msg {
    Msg::DiffReport(pb::DiffReport {
        id,
        diffs: vec![pb::ObjectDiff {
            app: "web".into(),
            id: "v1/ConfigMap/web/web-config".into(),
            change: "changed".into(),
            text: "-k: v\n+k: FORGED-BY-A\n".into(),
        }],
        revision: "forged".into(),
        ..Default::default()
    })
}

/// Points 1, 3 and 9: spoke a-1 cannot answer `fleetctl diff b-1`, not with
/// guessed ids and not even with the request's real id; a spoke that never
/// answers makes fleetctl fail in its --timeout, saying what timed out; each
/// forged reply is logged with the sender's identity and counted.
#[test]
fn a_spoke_cannot_answer_another_clusters_live_diff() {
    let f = Fleet::new();
    let hub = f.hub_with(&[]);
    let rt = rt();
    let (a_cfg, b_cfg) = (f.link(&hub, "spoke-a-1"), f.link(&hub, "spoke-b-1"));
    let (a, mut b) = rt.block_on(async {
        // Opening a stream waits for the hub's first render.
        let a = tokio::time::timeout(TIMEOUT, RawSpoke::open(&a_cfg))
            .await
            .expect("a spoke stream within the timeout");
        (a, RawSpoke::open(&b_cfg).await)
    });
    // b-1 is silent: it takes the request and never answers.
    let started = Instant::now();
    let hub_grpc = hub.grpc.clone();
    let pki_dir = f.pki.dir.clone();
    let diff = std::thread::spawn(move || {
        let ca = pki_dir.join("ca.crt");
        let (cert, key) = (
            pki_dir.join("admin-tester.crt"),
            pki_dir.join("admin-tester.key"),
        );
        run(std::process::Command::new(bin("fleetctl"))
            .args(["diff", "b-1", "--timeout", "4s", "--hub", &hub_grpc])
            .args(["--hub-name", "localhost"])
            .arg("--ca")
            .arg(ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key))
    });
    rt.block_on(async {
        let req = b.next_diff_request().await;
        assert_ne!(req.id, 0);
        // a-1 sends the real id (as if it had guessed it) and a spray of guesses.
        a.send(forged(req.id)).await;
        for id in 0..200u64 {
            a.send(forged(id)).await;
        }
        for d in [1, 2, 3] {
            a.send(forged(req.id.wrapping_add(d))).await;
        }
    });
    let out = diff.join().unwrap();
    let took = started.elapsed();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "diff b-1 succeeded:\n{o}");
    assert!(!o.contains("FORGED") && !e.contains("FORGED"), "{o}\n{e}");
    assert!(
        // The hub answers just before the deadline; on a loaded machine
        // fleetctl's own deadline may fire first. Either says what timed out.
        e.contains("live diff of b-1")
            && (e.contains("cluster b-1 did not answer the live diff within")
                || e.contains("did not answer within 4s (--timeout)")),
        "{e}"
    );
    assert!(took < Duration::from_secs(20), "fleetctl waited {took:?}");
    // Logged with the peer, counted by reason.
    let logs = hub.proc.logs();
    assert!(
        logs.lines().any(|l| l.contains("rejected a spoke message")
            && l.contains("cluster a-1")
            && l.contains("forged_diff_report")
            && l.contains("cluster b-1")),
        "{logs}"
    );
    let forged_n = hub
        .metric("fleet_hub_rejected_messages_total{reason=\"forged_diff_report\"}")
        .unwrap();
    let unknown_n = hub
        .metric("fleet_hub_rejected_messages_total{reason=\"unknown_diff_report\"}")
        .unwrap();
    assert!(forged_n >= 1.0, "{forged_n}");
    assert!(unknown_n >= 200.0, "{unknown_n}");
    // b-1's own answer to a new request still goes through.
    let hub_grpc = hub.grpc.clone();
    let pki_dir = f.pki.dir.clone();
    let diff = std::thread::spawn(move || {
        run(std::process::Command::new(bin("fleetctl"))
            .args(["diff", "b-1", "--timeout", "20s", "--hub", &hub_grpc])
            .args(["--hub-name", "localhost"])
            .arg("--ca")
            .arg(pki_dir.join("ca.crt"))
            .arg("--cert")
            .arg(pki_dir.join("admin-tester.crt"))
            .arg("--key")
            .arg(pki_dir.join("admin-tester.key")))
    });
    rt.block_on(async {
        let req = b.next_diff_request().await;
        a.send(forged(req.id)).await;
        b.send(Msg::DiffReport(pb::DiffReport {
            id: req.id,
            revision: "r".into(),
            ..Default::default()
        }))
        .await;
    });
    let out = diff.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cluster b-1: in sync"),
        "{}",
        stdout(&out)
    );
    drop((a, b));
}

fn resource(i: usize, state: &str) -> pb::ResourceStatus {
    pb::ResourceStatus {
        app: "web".into(),
        id: format!("v1/ConfigMap/web/an-object-with-a-rather-long-name-for-paging-{i:06}"),
        state: state.into(),
        message: String::new(),
        health: "healthy".into(),
        health_message: String::new(),
    }
}

fn report(n: usize, state: &str) -> Msg {
    Msg::Status(pb::StatusReport {
        revision: "r".into(),
        digest: "d".into(),
        sync: "synced".into(),
        resources: (0..n).map(|i| resource(i, state)).collect(),
        observed_at: 1,
        provenance: None,
    })
}

/// Point 2: a status report beyond the bounds is refused (logged, counted,
/// the last accepted report kept), and status for a fleet whose records
/// together pass the 4 MiB message limit still works, page by page.
#[test]
fn an_oversized_report_is_refused_and_status_pages_past_the_message_limit() {
    let f = Fleet::new();
    let hub = f.hub_with(&[]);
    let rt = rt();
    let cfgs: Vec<_> = ["a-1", "b-1", "c-1"]
        .iter()
        .map(|c| f.link(&hub, &format!("spoke-{c}")))
        .collect();
    let raws = rt.block_on(async {
        let mut v = Vec::new();
        for c in &cfgs {
            v.push(
                tokio::time::timeout(TIMEOUT, RawSpoke::open(c))
                    .await
                    .expect("a spoke stream within the timeout"),
            );
        }
        // Each within the bounds; together past the 4 MiB message limit.
        let one = prost::Message::encoded_len(&pb::SpokeMessage {
            msg: Some(report(19_000, "synced")),
        });
        assert!(
            one < fleet_proto::limits::MAX_STATUS_BYTES
                && 3 * one > fleet_proto::MAX_MESSAGE_SIZE + 512 * 1024,
            "{one}"
        );
        for (i, r) in v.iter().enumerate() {
            r.send(report(19_000, ["synced", "applied", "healed"][i]))
                .await;
        }
        // Then a-1 sends 25,000 resources (past the bounds, within the
        // message limit), and then 56,000 (past the message limit too).
        v[0].send(report(25_000, "failed")).await;
        v
    });
    wait_until("the oversized report refused", TIMEOUT, || {
        hub.metric("fleet_hub_rejected_messages_total{reason=\"over_limit\"}")
            .filter(|n| *n >= 1.0)
    });
    rt.block_on(raws[0].send(report(56_000, "failed")));
    wait_until("the report past the message limit refused", TIMEOUT, || {
        hub.metric("fleet_hub_rejected_messages_total{reason=\"malformed\"}")
            .filter(|n| *n >= 1.0)
    });
    let logs = hub.proc.logs();
    assert!(
        logs.lines().any(|l| l.contains("rejected a spoke message")
            && l.contains("cluster a-1")
            && l.contains("status report")),
        "{logs}"
    );
    let s = wait_until("every report in status", TIMEOUT, || {
        let s = hub.status(&f.pki);
        let n = |c: &str| {
            cluster(&s, c)["resources"]
                .as_array()
                .map_or(0, |a| a.len())
        };
        (n("a-1") == 19_000 && n("b-1") == 19_000 && n("c-1") == 19_000).then_some(s)
    });
    // The refused report did not replace a-1's last accepted one.
    assert!(
        cluster(&s, "a-1")["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "synced")
    );
    // The table view works too (every page fetched).
    let out = hub.ctl(&f.pki, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for c in ["a-1", "b-1", "c-1"] {
        assert!(stdout(&out).contains(c), "{}", stdout(&out));
    }
    drop(raws);
}

/// Point 6: a viewer reads, a release user also syncs, and each refusal
/// names the role the call needs.
#[test]
fn roles_are_enforced_per_call() {
    let f = Fleet::new();
    f.repo
        .write("environments/dev.yaml", "sync:\n  policy: manual\n")
        .commit("dev: manual sync");
    f.pki.issue(&["admin", "vic", "--role", "viewer"]);
    f.pki.issue(&["admin", "rita", "--role", "release"]);
    let hub = f.hub_with(&[]);
    let _a = f.spoke(&hub, "a-1");
    wait_until("the hub to hold a-1 (manual)", TIMEOUT, || {
        let out = f.ctl_as(&hub, "viewer-vic", &["status", "-o", "json"]);
        (out.status.success() && stdout(&out).contains("manual")).then_some(())
    });
    let repo = f.repo.dir.to_str().unwrap().to_string();
    for args in [
        &["history", "a-1", "--repo", &repo][..],
        &["rollout", "status", "dev"][..],
    ] {
        let out = f.ctl_as(&hub, "viewer-vic", args);
        assert!(
            !stderr(&out).contains("may not call"),
            "viewer refused {args:?}: {}",
            stderr(&out)
        );
    }
    let out = f.ctl_as(&hub, "viewer-vic", &["sync", "a-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("viewer vic may not call Sync: it needs the release role"),
        "{}",
        stderr(&out)
    );
    let out = f.ctl_as(&hub, "viewer-vic", &["refresh"]);
    assert!(
        stderr(&out).contains("needs the release role"),
        "{}",
        stderr(&out)
    );
    let out = f.ctl_as(&hub, "release-rita", &["sync", "a-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = f.ctl_as(&hub, "admin-tester", &["history", "a-1", "--repo", &repo]);
    assert!(stdout(&h).contains("rita"), "{}", stdout(&h));
}

/// Points 4 and 5: a revoked certificate is refused at the handshake and its
/// open stream closed; reissuing a certificate revokes the one it replaces.
#[test]
fn revoked_and_superseded_certificates_stop_working() {
    let f = Fleet::new();
    let crl = f.pki.dir.join("ca.crl");
    let hub = f.hub_with(&["--crl", crl.to_str().unwrap()]);
    let mut a = f.spoke(&hub, "a-1");
    let b = f.spoke(&hub, "b-1");
    a.wait_file("web/ConfigMap/web-config.yaml", "a-1 applied", |_| true);
    b.wait_file("web/ConfigMap/web-config.yaml", "b-1 applied", |_| true);
    let connected = |c: &str| {
        let s = hub.status(&f.pki);
        cluster(&s, c)["connected"] == true
    };
    assert!(connected("a-1"));
    let out = fleetctl_ok(&[
        "ca",
        "revoke",
        "--dir",
        f.pki.dir.to_str().unwrap(),
        f.pki.pair("spoke-a-1").0.to_str().unwrap(),
    ]);
    assert!(out.contains("revoked fleet://cluster/a-1"), "{out}");
    wait_until("a-1's stream closed", TIMEOUT, || {
        (!connected("a-1")).then_some(())
    });
    wait_until("a-1 refused at the handshake", TIMEOUT, || {
        let l = hub.proc.logs();
        (l.contains("certificate revoked: closing the spoke's stream")
            && l.contains("TLS handshake refused"))
        .then_some(())
    });
    // Still out a few seconds later (its reconnects keep failing); b-1 unaffected.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!connected("a-1") && connected("b-1"));
    assert!(a.proc.is_running(), "the spoke keeps retrying with backoff");
    // A reissued user certificate revokes the one it replaces.
    let old = f.work.path().join("old-admin");
    std::fs::create_dir_all(&old).unwrap();
    let (cert, key) = f.pki.pair("admin-tester");
    std::fs::copy(&cert, old.join("admin-old.crt")).unwrap();
    std::fs::copy(&key, old.join("admin-old.key")).unwrap();
    let out = fleetctl_ok(&[
        "ca",
        "issue",
        "--dir",
        f.pki.dir.to_str().unwrap(),
        "admin",
        "tester",
    ]);
    assert!(out.contains("revoked the certificate it replaces"), "{out}");
    let oldpki = Pki { dir: old };
    wait_until("the old admin certificate refused", TIMEOUT, || {
        let out = hub.ctl_as(&f.pki, &oldpki, "admin-old", &["status"]);
        (!out.status.success()).then_some(())
    });
    let out = hub.ctl(&f.pki, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// Point 7: with a secret, /webhook needs a GitHub, GitLab or HMAC signature,
/// and a flood is answered 429.
#[test]
fn the_webhook_needs_a_signature_and_is_rate_limited() {
    let f = Fleet::new();
    let secret = f.work.path().join("webhook-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let hub = f.hub_with(&["--webhook-secret-file", secret.to_str().unwrap()]);
    let body = br#"{"ref":"refs/heads/main"}"#;
    let post = |headers: &[(&str, &str)]| hub.http_request("POST", "/webhook", headers, body);
    let code = |r: &str| r.split(' ').nth(1).unwrap_or("").to_string();
    assert_eq!(code(&post(&[])), "401", "unsigned");
    let gh = format!("sha256={}", hmac_hex(b"s3cret", body));
    let wrong = format!("sha256={}", hmac_hex(b"guess", body));
    assert_eq!(code(&post(&[("X-Hub-Signature-256", &gh)])), "202");
    assert_eq!(code(&post(&[("X-Hub-Signature-256", &wrong)])), "401");
    assert_eq!(code(&post(&[("X-Signature", &gh)])), "202");
    assert_eq!(code(&post(&[("X-Gitlab-Token", "s3cret")])), "202");
    let r = post(&[("X-Gitlab-Token", "nope")]);
    assert_eq!(code(&r), "401");
    assert!(r.contains("X-Gitlab-Token does not match"), "{r}");
    let codes: Vec<String> = (0..120)
        .map(|_| code(&post(&[("X-Hub-Signature-256", &gh)])))
        .collect();
    assert!(codes.iter().any(|c| c == "429"), "{codes:?}");
    assert!(
        hub.metric("fleet_hub_webhooks_refused_total{reason=\"signature\"}")
            .unwrap()
            >= 3.0
    );
    assert!(
        hub.metric("fleet_hub_webhooks_refused_total{reason=\"rate_limit\"}")
            .unwrap()
            >= 1.0
    );
}

/// Point 8: the directory target writes Secrets owner-only; the hub's
/// database and the spoke's cache are owner-only directories.
#[test]
fn secrets_at_rest_are_owner_only() {
    let f = Fleet::new();
    let hub = f.hub_with(&[]);
    let a = f.spoke(&hub, "a-1");
    a.wait_file("web/Secret/db.yaml", "the Secret applied", |s| {
        s.contains("hunter2")
    });
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&a.target.join("web/Secret/db.yaml")), 0o600);
    assert_eq!(mode(&a.target.join("web/ConfigMap/web-config.yaml")), 0o644);
    assert_eq!(mode(&a.cache.join("spoke.sled")), 0o700);
    assert_eq!(mode(&f.work.path().join("hub-data/hub.sled")), 0o700);
}

/// Point 5: a spoke renews its own certificate over its stream before it
/// expires (the hub signs for the stream's cluster only), and keeps working
/// when the certificate it started with is revoked; the hub reloads its CA
/// bundle, so a second CA is trusted during a rollover; a CSR for another
/// cluster is refused and counted.
#[test]
fn spokes_renew_over_the_stream_and_a_ca_rollover_trusts_both_cas() {
    let f = Fleet::new();
    let pki = f.pki.dir.to_str().unwrap().to_string();
    // a-1 starts with a 30-day certificate and renews with 45 days left.
    f.pki.issue(&["spoke", "a-1", "--days", "30"]);
    let bundle = f.work.path().join("ca-bundle.pem");
    std::fs::copy(f.pki.ca(), &bundle).unwrap();
    let crl = format!("{pki}/ca.crl");
    let hub = f.hub_with(&[
        "--ca",
        bundle.to_str().unwrap(),
        "--crl",
        &crl,
        "--signer-cert",
        &format!("{pki}/ca.crt"),
        "--signer-key",
        &format!("{pki}/ca.key"),
    ]);
    let a = Spoke::start_with(
        &hub.grpc,
        &f.pki,
        "spoke-a-1",
        &f.pki.ca(),
        f.work.path(),
        "a-1",
        &["--renew-before", "45d"],
    );
    wait_until("a-1 renewed its certificate", TIMEOUT, || {
        a.proc
            .logs()
            .contains("renewed the client certificate; reconnecting with it")
            .then_some(())
    });
    let renewed = a.cache.join("identity/tls.crt");
    let v = fleet_spoke::renew::validity(&std::fs::read(&renewed).unwrap()).unwrap();
    assert_eq!(v.cluster.as_deref(), Some("a-1"));
    assert!((v.not_after - v.not_before) / 86_400 >= 89, "{v:?}");
    assert!(
        hub.proc
            .logs()
            .contains("signed a renewed certificate for the spoke")
    );
    // The certificate it started with is revoked: a-1 goes on with the renewed one.
    fleetctl_ok(&[
        "ca",
        "revoke",
        "--dir",
        &pki,
        &format!("{pki}/spoke-a-1.crt"),
    ]);
    std::thread::sleep(Duration::from_secs(4));
    a.wait_file("web/ConfigMap/web-config.yaml", "a-1 applied", |_| true);
    let s = hub.status(&f.pki);
    assert_eq!(cluster(&s, "a-1")["connected"], true, "{s}");

    // A CSR for another cluster on a-1's stream is refused and counted.
    let rt = rt();
    let raw_cfg = f.link(&hub, "spoke-c-1");
    let answer = rt.block_on(async {
        let mut raw = RawSpoke::open(&raw_cfg).await;
        let key = rcgen_csr("fleet://cluster/b-1");
        raw.send(Msg::Renew(pb::RenewRequest { csr_pem: key }))
            .await;
        loop {
            let m = raw.rx.message().await.unwrap().unwrap();
            if let Some(pb::hub_message::Msg::Renewed(r)) = m.msg {
                break r;
            }
        }
    });
    assert!(answer.cert_pem.is_empty());
    assert!(
        answer.error.contains("asks for fleet://cluster/b-1")
            && answer.error.contains("fleet://cluster/c-1"),
        "{}",
        answer.error
    );
    assert!(
        hub.metric("fleet_hub_rejected_messages_total{reason=\"bad_renewal\"}")
            .unwrap()
            >= 1.0
    );

    // A CA rollover: b-1's certificate comes from a new CA, refused until
    // the hub's bundle holds both CAs.
    let new = Pki::new(f.work.path().join("pki-new"));
    new.issue(&["spoke", "b-1"]);
    let both = f.work.path().join("both-cas.pem");
    std::fs::write(
        &both,
        std::fs::read_to_string(f.pki.ca()).unwrap() + &std::fs::read_to_string(new.ca()).unwrap(),
    )
    .unwrap();
    let b = Spoke::start_with(
        &hub.grpc,
        &new,
        "spoke-b-1",
        &both,
        f.work.path(),
        "b-1",
        &[],
    );
    wait_until("b-1 refused at the handshake", TIMEOUT, || {
        hub.proc
            .logs()
            .contains("TLS handshake refused")
            .then_some(())
    });
    assert!(b.file("web/ConfigMap/web-config.yaml").is_none());
    std::fs::copy(&both, &bundle).unwrap();
    wait_until("the hub reloaded its CA bundle", TIMEOUT, || {
        hub.proc
            .logs()
            .contains("reloaded the hub's certificate, CA bundle and revocation list")
            .then_some(())
    });
    b.wait_file(
        "web/ConfigMap/web-config.yaml",
        "b-1 (new CA) applied",
        |_| true,
    );
    // The hub's own certificate is replaced on disk and reloaded without a restart.
    fleetctl_ok(&["ca", "issue", "--dir", &pki, "hub"]);
    std::thread::sleep(Duration::from_secs(3));
    let out = hub.ctl(&f.pki, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn rcgen_csr(uri: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names
        .push(rcgen::SanType::URI(uri.to_string().try_into().unwrap()));
    p.serialize_request(&key).unwrap().pem().unwrap()
}
