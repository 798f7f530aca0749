//! Plain HTTP next to gRPC: the Git webhook, health and Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::Hub;

pub async fn serve(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/webhook", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(hub);
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// Any POST triggers a fetch now; the payload is not trusted for anything.
async fn webhook(State(hub): State<Arc<Hub>>) -> (StatusCode, &'static str) {
    hub.metrics.webhooks.fetch_add(1, Ordering::Relaxed);
    hub.refresh.notify_one();
    (StatusCode::ACCEPTED, "fetch scheduled\n")
}

async fn metrics(State(hub): State<Arc<Hub>>) -> String {
    let m = &hub.metrics;
    let status = hub.fleet_status();
    let connected = status.clusters.iter().filter(|c| c.connected).count();
    let synced = status
        .clusters
        .iter()
        .filter(|c| c.sync == "synced")
        .count();
    let last = m.last_publish.lock().expect("lock").clone();
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
         # TYPE fleet_hub_clusters_synced gauge\nfleet_hub_clusters_synced {synced}\n",
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
    )
}
