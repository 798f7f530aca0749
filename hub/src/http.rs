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
        .route("/readyz", get(readyz))
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

async fn metrics(State(h): State<Arc<Http>>) -> impl axum::response::IntoResponse {
    let hub = h.hub.clone();
    let (refused, limited) = (
        h.refused.load(Ordering::Relaxed),
        h.limited.load(Ordering::Relaxed),
    );
    let body = tokio::task::spawn_blocking(move || crate::metrics::render(&hub, refused, limited))
        .await
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// Ready once the hub has states to serve (rendered, or stored before a restart).
async fn readyz(State(h): State<Arc<Http>>) -> (StatusCode, &'static str) {
    if h.hub.current_commit().is_some() || h.hub.releases.has_desired() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub has not rendered the fleet repo yet\n",
        )
    }
}
