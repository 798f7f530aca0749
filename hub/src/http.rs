//! Plain HTTP next to gRPC: the Git webhook, health and Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

use crate::Hub;
use crate::webhook::{Bucket, Verifier};

/// Webhook requests at once, then per second (see `webhook::Bucket`).
const WEBHOOK_BURST: u32 = 20;
const WEBHOOK_PER_SEC: u32 = 5;

struct Http {
    hub: Arc<Hub>,
    verifier: Option<Verifier>,
    bucket: Mutex<Bucket>,
    refused: AtomicU64,
    limited: AtomicU64,
}

/// Serves until `shutdown`; with `webhook_secret`, `/webhook` needs a signature.
pub async fn serve(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    webhook_secret: Option<Vec<u8>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if webhook_secret.is_none() {
        tracing::warn!(
            "POST /webhook accepts unsigned requests; set --webhook-secret-file to require a signature"
        );
    }
    let state = Arc::new(Http {
        hub,
        verifier: webhook_secret.as_deref().map(Verifier::new),
        bucket: Mutex::new(Bucket::new(WEBHOOK_BURST, WEBHOOK_PER_SEC, Instant::now())),
        refused: AtomicU64::new(0),
        limited: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/webhook", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state);
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// A POST that passes the rate limit and (when a secret is set) the
/// signature check triggers a fetch now; the payload is trusted for nothing else.
async fn webhook(
    State(h): State<Arc<Http>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !h.bucket.lock().expect("lock").take(Instant::now()) {
        h.limited.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many webhook requests; a fetch is already scheduled\n".into(),
        );
    }
    if let Some(v) = &h.verifier {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Err(e) = v.verify(header, &body) {
            h.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(reason = %e, "refused a webhook request");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n"));
        }
    }
    h.hub.metrics.webhooks.fetch_add(1, Ordering::Relaxed);
    h.hub.refresh.notify_one();
    (StatusCode::ACCEPTED, "fetch scheduled\n".into())
}

async fn metrics(State(h): State<Arc<Http>>) -> String {
    let hub = &h.hub;
    let m = &hub.metrics;
    let status = hub.fleet_status();
    let connected = status.clusters.iter().filter(|c| c.connected).count();
    let synced = status
        .clusters
        .iter()
        .filter(|c| c.sync == "synced")
        .count();
    let last = m.last_publish.lock().expect("lock").clone();
    let rejected: String = hub
        .rejections
        .counts()
        .into_iter()
        .map(|(r, n)| {
            format!(
                "fleet_hub_rejected_messages_total{{reason=\"{}\"}} {n}\n",
                r.as_str()
            )
        })
        .collect();
    let commit = &last.commit;
    format!(
        "# TYPE fleet_hub_last_publish_timestamp_seconds gauge\n\
         fleet_hub_last_publish_timestamp_seconds{{commit=\"{commit}\"}} {}.{:03}\n\
         # TYPE fleet_hub_last_publish_states gauge\nfleet_hub_last_publish_states{{commit=\"{commit}\"}} {}\n\
         # TYPE fleet_hub_last_render_seconds gauge\nfleet_hub_last_render_seconds{{commit=\"{commit}\"}} {}.{:06}\n\
         # TYPE fleet_hub_last_render_apps gauge\n\
         fleet_hub_last_render_apps{{commit=\"{commit}\",work=\"rendered\"}} {}\n\
         fleet_hub_last_render_apps{{commit=\"{commit}\",work=\"reused\"}} {}\n\
         # TYPE fleet_hub_renders_total counter\nfleet_hub_renders_total {}\n\
         # TYPE fleet_hub_states_published_total counter\nfleet_hub_states_published_total {}\n\
         # TYPE fleet_hub_acks_total counter\nfleet_hub_acks_total {}\n\
         # TYPE fleet_hub_webhooks_total counter\nfleet_hub_webhooks_total {}\n\
         # TYPE fleet_hub_clusters gauge\nfleet_hub_clusters {}\n\
         # TYPE fleet_hub_spokes_connected gauge\nfleet_hub_spokes_connected {connected}\n\
         # TYPE fleet_hub_clusters_synced gauge\nfleet_hub_clusters_synced {synced}\n\
         # TYPE fleet_hub_webhooks_refused_total counter\n\
         fleet_hub_webhooks_refused_total{{reason=\"signature\"}} {}\n\
         fleet_hub_webhooks_refused_total{{reason=\"rate_limit\"}} {}\n\
         # TYPE fleet_hub_rejected_messages_total counter\n{rejected}",
        last.at_unix_ms / 1000,
        last.at_unix_ms % 1000,
        last.states,
        last.render_us / 1_000_000,
        last.render_us % 1_000_000,
        last.rendered,
        last.reused,
        m.renders.load(Ordering::Relaxed),
        m.states_published.load(Ordering::Relaxed),
        m.acks.load(Ordering::Relaxed),
        m.webhooks.load(Ordering::Relaxed),
        status.clusters.len(),
        h.refused.load(Ordering::Relaxed),
        h.limited.load(Ordering::Relaxed),
    )
}
