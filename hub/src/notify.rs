//! Notifications: what happened in the fleet, sent to webhook receivers
//! configured in the fleet repo (`notifications.yaml`). Pure: events in,
//! requests out; [`crate::outbox`] keeps and delivers them.
//!
//! ```yaml
//! # notifications.yaml
//! disconnectedAfter: 5m            # default 5m
//! receivers:
//! - name: ops
//!   type: slack                    # generic | generic-hmac | slack | msteams
//!   addressFile: /etc/fleet/slack-url   # or address: https://...
//!   events: [sync_failed, health_degraded, disconnected]   # default: all
//!   clusters: {matchLabels: {env: prod}}                     # default: all
//! - name: audit
//!   type: generic-hmac
//!   address: https://audit.example/fleet
//!   secretFile: /etc/fleet/audit-hmac
//! ```
//!
//! `generic` and `generic-hmac` bodies are Flux's generic event JSON
//! (`involvedObject`, `severity`, `timestamp`, `message`, `reason`,
//! `metadata`, `reportingController`), so existing receivers work;
//! `generic-hmac` adds `X-Signature: sha256=<hex HMAC of the body>`.

use std::collections::BTreeMap;

use fleet_render::model::Selector as LabelSelector;
use serde::Deserialize;
use serde_json::json;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deployed,
    SyncFailed,
    HealthDegraded,
    DriftHealed,
    Disconnected,
    Promoted,
    RolledBack,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deployed,
        Kind::SyncFailed,
        Kind::HealthDegraded,
        Kind::DriftHealed,
        Kind::Disconnected,
        Kind::Promoted,
        Kind::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployed => "deployed",
            Kind::SyncFailed => "sync_failed",
            Kind::HealthDegraded => "health_degraded",
            Kind::DriftHealed => "drift_healed",
            Kind::Disconnected => "disconnected",
            Kind::Promoted => "promoted",
            Kind::RolledBack => "rolled_back",
        }
    }

    /// Flux's `reason` word.
    fn reason(self) -> &'static str {
        match self {
            Kind::Deployed => "Deployed",
            Kind::SyncFailed => "SyncFailed",
            Kind::HealthDegraded => "HealthDegraded",
            Kind::DriftHealed => "DriftHealed",
            Kind::Disconnected => "Disconnected",
            Kind::Promoted => "Promoted",
            Kind::RolledBack => "RolledBack",
        }
    }

    fn severity(self) -> &'static str {
        match self {
            Kind::SyncFailed | Kind::HealthDegraded | Kind::Disconnected => "error",
            _ => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One event. `key` identifies it: an event is delivered at most once per
/// receiver and key, across hub restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub key: String,
    /// Empty for fleet-wide events (a promotion).
    pub cluster: String,
    pub labels: BTreeMap<String, String>,
    pub revision: String,
    pub message: String,
    /// Unix seconds.
    pub time: i64,
}

impl Event {
    pub fn new(kind: Kind, cluster: &str, revision: &str, message: String, time: i64) -> Event {
        Event {
            kind,
            key: format!("{}/{cluster}/{revision}", kind.as_str()),
            cluster: cluster.to_string(),
            labels: BTreeMap::new(),
            revision: revision.to_string(),
            message,
            time,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiverType {
    Generic,
    GenericHmac,
    Slack,
    Msteams,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiverSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ReceiverType,
    #[serde(default)]
    pub address: Option<String>,
    /// A file the hub reads the address from (a Slack URL is a secret).
    #[serde(default)]
    pub address_file: Option<String>,
    /// generic-hmac: a file holding the HMAC key.
    #[serde(default)]
    pub secret_file: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub clusters: Option<LabelSelector>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileSpec {
    #[serde(default)]
    disconnected_after: Option<String>,
    #[serde(default)]
    receivers: Vec<ReceiverSpec>,
}

/// A receiver ready to send to.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverType,
    pub address: String,
    pub secret: Option<Vec<u8>>,
    events: Vec<Kind>,
    clusters: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub receivers: Vec<Receiver>,
    /// Seconds a spoke may be gone before `disconnected` is sent.
    pub disconnected_after: i64,
}

pub const FILE: &str = "notifications.yaml";

/// Parses `notifications.yaml`; `read` reads the files it names (addresses
/// and secrets by reference). Errors name the file, receiver and field.
pub fn parse(
    text: &[u8],
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Config, String> {
    let spec: FileSpec = fleet_render::yaml::parse_one(FILE, text).map_err(|e| e.to_string())?;
    let disconnected_after = match &spec.disconnected_after {
        Some(d) => fleet_render::model::parse_duration(d)
            .map_err(|e| format!("{FILE}: disconnectedAfter: {e}"))?,
        None => 300,
    };
    let mut receivers = Vec::new();
    for r in spec.receivers {
        let at = |what: &str| format!("{FILE}: receiver {}: {what}", r.name);
        let address = match (&r.address, &r.address_file) {
            (Some(a), None) => a.clone(),
            (None, Some(f)) => String::from_utf8_lossy(&read(f).map_err(|e| at(&e))?)
                .trim()
                .to_string(),
            _ => return Err(at("give exactly one of address and addressFile")),
        };
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(at(&format!("address {address:?} is not an http(s) URL")));
        }
        let secret = match (&r.kind, &r.secret_file) {
            (ReceiverType::GenericHmac, Some(f)) => {
                let s = read(f).map_err(|e| at(&e))?;
                Some(s.trim_ascii().to_vec())
            }
            (ReceiverType::GenericHmac, None) => {
                return Err(at("a generic-hmac receiver needs secretFile"));
            }
            (_, Some(_)) => return Err(at("secretFile is only for generic-hmac")),
            (_, None) => None,
        };
        let events = match &r.events {
            None => Kind::ALL.to_vec(),
            Some(list) => list
                .iter()
                .map(|e| {
                    Kind::parse(e).ok_or_else(|| {
                        at(&format!(
                            "unknown event {e:?}; events: {}",
                            Kind::ALL.map(Kind::as_str).join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        receivers.push(Receiver {
            name: r.name.clone(),
            kind: r.kind,
            address,
            secret,
            events,
            clusters: r.clusters.clone(),
        });
    }
    Ok(Config {
        receivers,
        disconnected_after,
    })
}

impl Receiver {
    /// Whether this receiver wants `e`.
    pub fn wants(&self, e: &Event) -> bool {
        self.events.contains(&e.kind)
            && match (&self.clusters, e.cluster.is_empty()) {
                (None, _) | (Some(_), true) => true,
                (Some(sel), false) => sel.matches(&e.labels),
            }
    }

    /// The request body and extra headers for `e`.
    pub fn request(&self, e: &Event) -> (Vec<u8>, Vec<(String, String)>) {
        let title = if e.cluster.is_empty() {
            format!("fleet: {}", e.kind.as_str().replace('_', " "))
        } else {
            format!(
                "fleet: {} on {}",
                e.kind.as_str().replace('_', " "),
                e.cluster
            )
        };
        let body = match self.kind {
            ReceiverType::Generic | ReceiverType::GenericHmac => json!({
                "involvedObject": {
                    "kind": "Cluster",
                    "apiVersion": "fleet.dev/v1",
                    "namespace": "fleet",
                    "name": if e.cluster.is_empty() { "fleet" } else { &e.cluster },
                },
                "severity": e.kind.severity(),
                "timestamp": fleet_render::window::rfc3339(e.time),
                "message": e.message,
                "reason": e.kind.reason(),
                "metadata": {"revision": e.revision, "event": e.kind.as_str(), "key": e.key},
                "reportingController": "fleet-hub",
                "reportingInstance": "fleet-hub",
            }),
            ReceiverType::Slack => json!({
                "text": format!("{title}: {}", e.message),
                "attachments": [{
                    "color": if e.kind.severity() == "error" { "danger" } else { "good" },
                    "fields": [{"title": "revision", "value": e.revision, "short": true}],
                }],
            }),
            ReceiverType::Msteams => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "themeColor": if e.kind.severity() == "error" { "FF0000" } else { "00A000" },
                "summary": title,
                "sections": [{
                    "activityTitle": title,
                    "text": e.message,
                    "facts": [{"name": "revision", "value": e.revision}],
                }],
            }),
        };
        let body = serde_json::to_vec(&body).expect("JSON serializes");
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if let Some(secret) = &self.secret {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            let tag = ring::hmac::sign(&key, &body);
            headers.push((
                "X-Signature".to_string(),
                format!("sha256={}", hex::encode(tag.as_ref())),
            ));
        }
        (body, headers)
    }
}

/// The events a change in one cluster's spoke record means. Pure: the
/// caller hands in the record before and after a status report.
pub fn from_report(
    cluster: &str,
    labels: &BTreeMap<String, String>,
    before: &crate::status::SpokeRecord,
    after: &crate::status::SpokeRecord,
    now: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    let rev = after.applied.as_ref().map(|c| c.id.as_str()).unwrap_or("");
    let short = &rev[..rev.len().min(8)];
    let mut push = |kind: Kind, key: String, message: String| {
        let mut e = Event::new(kind, cluster, rev, message, now);
        e.key = key;
        e.labels = labels.clone();
        out.push(e);
    };
    let before_rev = before.applied.as_ref().map(|c| c.id.as_str()).unwrap_or("");
    // Every synced report offers it: the key makes it once per cluster and
    // revision (an Ack may have moved the revision before this report).
    if after.sync == "synced" && !rev.is_empty() {
        push(
            Kind::Deployed,
            format!("deployed/{cluster}/{rev}"),
            format!("cluster {cluster} runs {short}, synced"),
        );
    }
    if after.sync == "failed" && (before.sync != "failed" || before_rev != rev) {
        let failed: Vec<&str> = after
            .resources
            .iter()
            .filter(|r| r.state == "failed")
            .map(|r| r.id.as_str())
            .take(5)
            .collect();
        push(
            Kind::SyncFailed,
            format!("sync_failed/{cluster}/{rev}/{now}"),
            format!(
                "cluster {cluster} failed to sync {short}: {}",
                failed.join(", ")
            ),
        );
    }
    let degraded = |r: &crate::status::SpokeRecord| {
        r.resources
            .iter()
            .filter(|x| x.health == "degraded")
            .map(|x| x.id.clone())
            .collect::<Vec<_>>()
    };
    let (was, is) = (degraded(before), degraded(after));
    if !is.is_empty() && was.is_empty() {
        push(
            Kind::HealthDegraded,
            format!("health_degraded/{cluster}/{rev}/{now}"),
            format!("cluster {cluster}: degraded: {}", is.join(", ")),
        );
    }
    for r in after.resources.iter().filter(|r| r.state == "healed") {
        let was_healed = before
            .resources
            .iter()
            .any(|b| b.id == r.id && b.state == "healed");
        if !was_healed {
            push(
                Kind::DriftHealed,
                format!("drift_healed/{cluster}/{}/{now}", r.id),
                format!(
                    "cluster {cluster}: {} was changed outside fleet and restored",
                    r.id
                ),
            );
        }
    }
    out
}

/// The fleet-wide event a rendered commit means (a promotion or a rollback
/// made by fleetctl, from its commit trailers).
pub fn from_commit(id: &str, message: &str, now: i64) -> Option<Event> {
    let trailer = |k: &str| {
        message
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(": ").map(str::trim))
    };
    let short = &id[..id.len().min(8)];
    let subject = message.lines().next().unwrap_or("");
    let (kind, what) = if let Some(env) = trailer("Promoted-To") {
        (
            Kind::Promoted,
            format!("promoted to {env} in {short}: {subject}"),
        )
    } else if let Some(target) = trailer("Rolled-Back") {
        (
            Kind::RolledBack,
            format!("{target} rolled back in {short}: {subject}"),
        )
    } else {
        return None;
    };
    Some(Event::new(kind, "", id, what, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn cfg(text: &str) -> Result<Config, String> {
        parse(text.as_bytes(), |f| match f {
            "/s/url" => Ok(b"https://hooks.slack.example/T1\n".to_vec()),
            "/s/hmac" => Ok(b"k3y\n".to_vec()),
            other => Err(format!("cannot read {other}")),
        })
    }

    #[test]
    fn config_reads_receivers_and_names_mistakes() {
        let c = cfg("disconnectedAfter: 2m\nreceivers:\n- name: s\n  type: slack\n  addressFile: /s/url\n  events: [sync_failed]\n- name: h\n  type: generic-hmac\n  address: http://127.0.0.1:1/x\n  secretFile: /s/hmac\n  clusters: {matchLabels: {env: prod}}\n").unwrap();
        assert_eq!(c.disconnected_after, 120);
        assert_eq!(c.receivers[0].address, "https://hooks.slack.example/T1");
        assert_eq!(c.receivers[1].secret.as_deref(), Some(&b"k3y"[..]));
        let e = Event::new(Kind::SyncFailed, "dev-1", "abc", "m".into(), 0);
        assert!(c.receivers[0].wants(&e));
        let mut prod = e.clone();
        prod.labels.insert("env".into(), "prod".into());
        assert!(!c.receivers[1].wants(&e) && c.receivers[1].wants(&prod));
        for (text, want) in [
            (
                "receivers:\n- name: x\n  type: slack\n",
                "exactly one of address",
            ),
            (
                "receivers:\n- name: x\n  type: generic-hmac\n  address: http://a\n",
                "needs secretFile",
            ),
            (
                "receivers:\n- name: x\n  type: generic\n  address: ftp://a\n",
                "not an http(s) URL",
            ),
            (
                "receivers:\n- name: x\n  type: generic\n  address: http://a\n  events: [oops]\n",
                "unknown event \"oops\"",
            ),
            (
                "receivers:\n- name: x\n  type: generic\n  addressFile: /nope\n",
                "cannot read /nope",
            ),
            (
                "receivers:\n- name: x\n  type: pager\n  address: http://a\n",
                "pager",
            ),
        ] {
            let err = cfg(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn generic_hmac_bodies_are_flux_events_signed() {
        let c = cfg("receivers:\n- name: h\n  type: generic-hmac\n  address: http://a/x\n  secretFile: /s/hmac\n").unwrap();
        let e = Event::new(
            Kind::Deployed,
            "dev-1",
            "abc",
            "runs abc".into(),
            1_764_633_600,
        );
        let (body, headers) = c.receivers[0].request(&e);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["involvedObject"]["name"], "dev-1");
        assert_eq!(v["reason"], "Deployed");
        assert_eq!(v["timestamp"], "2025-12-02T00:00:00Z");
        let sig = &headers.iter().find(|(k, _)| k == "X-Signature").unwrap().1;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k3y");
        let tag = hex::decode(sig.strip_prefix("sha256=").unwrap()).unwrap();
        ring::hmac::verify(&key, &body, &tag).unwrap();
    }

    #[test]
    fn promotions_and_rollbacks_come_from_trailers() {
        let e = from_commit(
            "0123456789",
            "promote api to prod\n\nPromoted-From: staging\nPromoted-To: prod\n",
            5,
        )
        .unwrap();
        assert_eq!(
            (e.kind, e.key.as_str()),
            (Kind::Promoted, "promoted//0123456789")
        );
        let e = from_commit("ab", "rollback prod-1 to 1234\n\nRolled-Back: prod-1\n", 5).unwrap();
        assert_eq!(e.kind, Kind::RolledBack);
        assert!(from_commit("ab", "an ordinary commit", 5).is_none());
    }
}
