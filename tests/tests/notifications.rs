//! Notifications (issue 16, point 2): receivers on 127.0.0.1 get Flux-style
//! events (generic, generic-hmac signed), Slack and Teams bodies, each event
//! once per receiver, retried while a receiver fails, and neither lost nor
//! repeated across a hub restart.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_tests::*;
use serde_json::Value;

#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// An HTTP receiver: records every POST; answers 500 while `fail` is above 0
/// (counting it down) or while `down` is set.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
    fail: Arc<AtomicU32>,
    down: Arc<AtomicU32>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicU32::new(0));
        let down = Arc::new(AtomicU32::new(0));
        let (g, f, d) = (got.clone(), fail.clone(), down.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let n: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; n];
                let _ = r.read_exact(&mut body);
                let failing = d.load(Ordering::SeqCst) > 0
                    || f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1))
                        .is_ok();
                let status = if failing {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                if !failing {
                    g.lock().unwrap().push(Got {
                        path,
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            addr,
            got,
            fail,
            down,
        }
    }

    fn got(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// Received events of `reason` at `path` (generic bodies).
    fn reasons(&self, path: &str, reason: &str) -> Vec<Got> {
        self.got(path)
            .into_iter()
            .filter(|g| g.body["reason"] == reason)
            .collect()
    }
}

fn hmac_ok(secret: &[u8], g: &Got) -> bool {
    let body = serde_json::to_vec(&g.body).unwrap();
    let Some(sig) = g
        .headers
        .get("x-signature")
        .and_then(|s| s.strip_prefix("sha256="))
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::decode(sig).is_ok_and(|t| ring::hmac::verify(&key, &body, &t).is_ok())
}

#[test]
fn events_reach_every_receiver_once_with_retries_and_across_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let secret = work.path().join("hmac.key");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let slack_url = work.path().join("slack-url");
    std::fs::write(&slack_url, format!("http://{}/slack\n", rx.addr)).unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
        .write("apps/web/app.yaml", "namespace: web\n")
        .write(
            "apps/web/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: one\n",
        )
        .write(
            "notifications.yaml",
            &format!(
                "disconnectedAfter: 2s\nreceivers:\n- name: generic\n  type: generic\n  address: http://{a}/generic\n- name: signed\n  type: generic-hmac\n  address: http://{a}/signed\n  secretFile: {s}\n  events: [deployed]\n- name: slack\n  type: slack\n  addressFile: {u}\n  events: [deployed]\n- name: teams\n  type: msteams\n  address: http://{a}/teams\n  events: [deployed]\n- name: prod-only\n  type: generic\n  address: http://{a}/prod\n  clusters: {{matchLabels: {{env: prod}}}}\n",
                a = rx.addr,
                s = secret.display(),
                u = slack_url.display()
            ),
        );
    let c1 = repo.commit("initial");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["spoke", "dev-1"]);
    let spec = HubSpec {
        repo: repo.dir.to_str().unwrap(),
        data_dir: &work.path().join("hub-data"),
        pki: &pki,
        branch: "main",
    };
    // The generic receiver fails twice first: delivered on a retry.
    rx.fail.store(2, Ordering::SeqCst);
    let mut hub = Hub::start(&spec, work.path(), "hub");
    let spoke = Spoke::start(&hub.grpc, &pki, "spoke-dev-1", &pki, work.path(), "dev-1");
    spoke.wait_file("web/ConfigMap/c.yaml", "applied", |_| true);
    wait_until("deployed everywhere", TIMEOUT, || {
        (["/generic", "/signed", "/slack", "/teams"]
            .iter()
            .all(|p| !rx.got(p).is_empty()))
        .then_some(())
    });
    let d = rx.reasons("/generic", "Deployed");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].body["involvedObject"]["name"], "dev-1");
    assert_eq!(d[0].body["metadata"]["revision"], c1.as_str());
    assert_eq!(d[0].body["reportingController"], "fleet-hub");
    assert!(
        hub.proc
            .logs()
            .contains("notification not delivered; retrying")
    );
    let signed = rx.got("/signed");
    assert!(hmac_ok(b"s3cret", &signed[0]), "{signed:?}");
    assert!(
        rx.got("/slack")[0].body["text"]
            .as_str()
            .unwrap()
            .contains("deployed on dev-1")
    );
    assert_eq!(rx.got("/teams")[0].body["@type"], "MessageCard");
    assert!(
        rx.got("/prod").is_empty(),
        "a dev cluster reached the prod-only receiver"
    );

    // Drift healed.
    std::fs::write(spoke.target.join("web/ConfigMap/c.yaml"), "by hand\n").unwrap();
    wait_until("drift healed sent", TIMEOUT, || {
        (!rx.reasons("/generic", "DriftHealed").is_empty()).then_some(())
    });

    // The receivers go down; a new commit deploys; the hub restarts; they come back.
    rx.down.store(1, Ordering::SeqCst);
    repo.write(
        "apps/web/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: two\n",
    );
    let c2 = repo.commit("two\n\nPromoted-From: staging\nPromoted-To: dev\n");
    hub.webhook();
    spoke.wait_file("web/ConfigMap/c.yaml", "v2", |s| s.contains("two"));
    std::thread::sleep(Duration::from_secs(2));
    hub.proc.kill();
    rx.down.store(0, Ordering::SeqCst);
    let hub = Hub::start(&spec, work.path(), "hub2");
    let deployed_c2 = |p: &str| {
        rx.got(p)
            .into_iter()
            .filter(|g| {
                g.body["metadata"]["revision"] == c2.as_str() && g.body["reason"] == "Deployed"
            })
            .count()
    };
    wait_until("c2 deployed after the restart", TIMEOUT, || {
        (deployed_c2("/generic") == 1).then_some(())
    });
    wait_until("the promotion after the restart", TIMEOUT, || {
        (!rx.reasons("/generic", "Promoted").is_empty()).then_some(())
    });
    // Nothing twice: the spoke reconnects and reports c2 again, the hub
    // re-reads the commit; the keys delivered before the restart stay delivered.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rx.reasons("/generic", "Deployed").len(),
        2,
        "{:?}",
        rx.got("/generic")
    );
    assert_eq!(rx.reasons("/generic", "Promoted").len(), 1);
    assert_eq!(rx.got("/signed").len(), 2);
    let sent = hub.metric("fleet_hub_notifications_sent_total").unwrap();
    assert!(sent >= 2.0, "{sent}");

    // The spoke goes away: disconnected after 2 s.
    drop(spoke);
    wait_until("disconnected sent", TIMEOUT, || {
        (!rx.reasons("/generic", "Disconnected").is_empty()).then_some(())
    });
    let e = &rx.reasons("/generic", "Disconnected")[0];
    assert_eq!(e.body["severity"], "error");
    drop(hub);
}
