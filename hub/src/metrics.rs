//! The hub's Prometheus metrics (OpenMetrics text via `prometheus-client`,
//! no global registry): a registry is filled at each scrape from the hub's
//! counters and its view of the fleet, so per-cluster series always match
//! `fleetctl status`. Labels are per cluster, never per object.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Hub;

type Labels = Vec<(String, String)>;

/// Observations that need memory between scrapes.
#[derive(Clone)]
pub struct Histograms {
    /// Seconds to render the fleet at a commit.
    pub render: Histogram,
    /// Seconds from the hub publishing a commit to a spoke acknowledging it.
    pub commit_to_applied: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            render: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            commit_to_applied: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        }
    }
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn family(reg: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, f64)>) {
    let f: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    for (labels, v) in rows {
        f.get_or_create(&labels).set(v);
    }
    reg.register(name, help, f);
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The hub's metrics, encoded.
pub fn render(hub: &Hub, webhook_refused: u64, webhook_limited: u64) -> String {
    let m = &hub.metrics;
    let status = hub.fleet_status();
    let mut reg = Registry::default();
    let last = m.last_publish.lock().expect("lock").clone();
    let commit = last.commit.as_str();
    family(
        &mut reg,
        "fleet_hub_last_publish_timestamp_seconds",
        "When the hub last published states (Unix seconds)",
        vec![(l(&[("commit", commit)]), last.at_unix_ms as f64 / 1000.0)],
    );
    family(
        &mut reg,
        "fleet_hub_last_publish_states",
        "States that changed at the last publish",
        vec![(l(&[("commit", commit)]), last.states as f64)],
    );
    family(
        &mut reg,
        "fleet_hub_last_render_seconds",
        "Duration of the last render",
        vec![(l(&[("commit", commit)]), last.render_us as f64 / 1e6)],
    );
    family(
        &mut reg,
        "fleet_hub_last_render_apps",
        "App renders at the last render: computed or reused",
        vec![
            (
                l(&[("commit", commit), ("work", "rendered")]),
                last.rendered as f64,
            ),
            (
                l(&[("commit", commit), ("work", "reused")]),
                last.reused as f64,
            ),
        ],
    );
    for (name, help, v) in [
        ("fleet_hub_renders", "Renders published", &m.renders),
        (
            "fleet_hub_states_published",
            "States published to spokes",
            &m.states_published,
        ),
        ("fleet_hub_acks", "Acks from spokes", &m.acks),
        (
            "fleet_hub_notifications_sent",
            "Notifications delivered",
            &m.notifications_sent,
        ),
        (
            "fleet_hub_notifications_failed",
            "Notification attempts that failed (retried)",
            &m.notifications_failed,
        ),
        ("fleet_hub_webhooks", "Webhooks accepted", &m.webhooks),
    ] {
        counter(&mut reg, name, help, v.load(Ordering::Relaxed));
    }
    let refused: Family<Labels, Counter> = Family::default();
    refused
        .get_or_create(&l(&[("reason", "signature")]))
        .inc_by(webhook_refused);
    refused
        .get_or_create(&l(&[("reason", "rate_limit")]))
        .inc_by(webhook_limited);
    reg.register("fleet_hub_webhooks_refused", "Webhooks refused", refused);
    let rejected: Family<Labels, Counter> = Family::default();
    for (r, n) in hub.rejections.counts() {
        rejected
            .get_or_create(&l(&[("reason", r.as_str())]))
            .inc_by(n);
    }
    reg.register(
        "fleet_hub_rejected_messages",
        "Spoke messages refused, by reason",
        rejected,
    );
    let connected = status.clusters.iter().filter(|c| c.connected).count();
    let synced = status
        .clusters
        .iter()
        .filter(|c| c.sync == "synced")
        .count();
    gauge(
        &mut reg,
        "fleet_hub_clusters",
        "Clusters in the fleet",
        status.clusters.len() as f64,
    );
    gauge(
        &mut reg,
        "fleet_hub_spokes_connected",
        "Spokes connected",
        connected as f64,
    );
    gauge(
        &mut reg,
        "fleet_hub_clusters_synced",
        "Clusters synced",
        synced as f64,
    );
    // Per cluster, as Argo CD's argocd_app_info.
    let mut info = Vec::new();
    let (mut sync, mut healthy, mut conn) = (Vec::new(), Vec::new(), Vec::new());
    for c in &status.clusters {
        let env = c.labels.get("env").map(String::as_str).unwrap_or("");
        let rev = c.applied.as_ref().map(|a| a.id.as_str()).unwrap_or("");
        info.push((
            l(&[
                ("cluster", &c.name),
                ("env", env),
                ("revision", rev),
                ("sync", &c.sync),
            ]),
            1.0,
        ));
        let one = l(&[("cluster", &c.name)]);
        sync.push((one.clone(), f64::from(u8::from(c.sync == "synced"))));
        healthy.push((one.clone(), f64::from(u8::from(c.healthy_since != 0))));
        conn.push((one, f64::from(u8::from(c.connected))));
    }
    family(
        &mut reg,
        "fleet_cluster_info",
        "One series per cluster: env, applied revision, sync",
        info,
    );
    family(
        &mut reg,
        "fleet_cluster_synced",
        "1 when the cluster is synced",
        sync,
    );
    family(
        &mut reg,
        "fleet_cluster_healthy",
        "1 when the cluster is synced and healthy",
        healthy,
    );
    family(
        &mut reg,
        "fleet_cluster_connected",
        "1 when the cluster's spoke is connected",
        conn,
    );
    reg.register(
        "fleet_hub_render_seconds",
        "Render durations",
        m.histograms.render.clone(),
    );
    reg.register(
        "fleet_hub_commit_to_applied_seconds",
        "From publishing a commit to a spoke acknowledging it",
        m.histograms.commit_to_applied.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("encoding into a String");
    out
}
