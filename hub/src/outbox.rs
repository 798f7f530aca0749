//! The notification outbox: every event for every receiver that wants it is
//! stored in the hub's database before it is sent, sent with retries and
//! backoff, and removed once a receiver answered 2xx. A delivered key is
//! remembered, so an event is delivered once per receiver across hub
//! restarts (a restart resends what was not acknowledged, nothing else).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::Hub;
use crate::notify::{Config, Event};

/// First retry after this; doubling to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One queued delivery.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub receiver: String,
    pub key: String,
    pub address: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub attempts: u32,
}

/// Queues `events` for every configured receiver that wants them; an event
/// already queued or delivered to a receiver is skipped. Returns how many
/// were queued.
pub fn enqueue(store: &crate::store::Store, cfg: &Config, events: &[Event]) -> usize {
    let mut n = 0;
    for e in events {
        for r in cfg.receivers.iter().filter(|r| r.wants(e)) {
            let (body, headers) = r.request(e);
            let d = Delivery {
                receiver: r.name.clone(),
                key: e.key.clone(),
                address: r.address.clone(),
                body,
                headers,
                attempts: 0,
            };
            match store.outbox_add(&r.name, &e.key, &d) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(receiver = %r.name, key = %e.key, error = %err, "cannot queue a notification")
                }
            }
        }
    }
    n
}

type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<bytes::Bytes>,
>;

fn client() -> anyhow::Result<HttpClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

async fn send(client: &HttpClient, d: &Delivery) -> Result<(), String> {
    let mut req = http::Request::post(&d.address);
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(d.body.clone())))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(SEND_TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("no answer within {}s", SEND_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Delivers the outbox until `shutdown`: each delivery in order per
/// receiver, failures retried with backoff (a failing receiver never holds
/// up another).
pub async fn run(hub: Arc<Hub>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifications: cannot build an HTTP client; none will be sent");
            return;
        }
    };
    let mut backoff: std::collections::HashMap<String, (tokio::time::Instant, Duration)> =
        Default::default();
    loop {
        let due = hub.store.outbox_pending().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "notifications: cannot read the outbox");
            Vec::new()
        });
        let now = tokio::time::Instant::now();
        let mut blocked = std::collections::HashSet::new();
        for (id, d) in due {
            if blocked.contains(&d.receiver)
                || backoff
                    .get(&d.receiver)
                    .is_some_and(|(until, _)| *until > now)
            {
                blocked.insert(d.receiver.clone());
                continue;
            }
            match send(&client, &d).await {
                Ok(()) => {
                    tracing::info!(receiver = %d.receiver, key = %d.key, "notification delivered");
                    if let Err(e) = hub.store.outbox_done(&id, &d) {
                        tracing::warn!(error = %e, "notifications: cannot mark a delivery done");
                    }
                    hub.metrics
                        .notifications_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    backoff.remove(&d.receiver);
                }
                Err(e) => {
                    let next = backoff
                        .get(&d.receiver)
                        .map(|(_, b)| (*b * 2).min(MAX_BACKOFF))
                        .unwrap_or(FIRST_BACKOFF);
                    tracing::warn!(receiver = %d.receiver, key = %d.key, error = %e, retry_in_s = next.as_secs(), "notification not delivered; retrying");
                    hub.metrics
                        .notifications_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    backoff.insert(
                        d.receiver.clone(),
                        (tokio::time::Instant::now() + next, next),
                    );
                    blocked.insert(d.receiver.clone());
                }
            }
        }
        tokio::select! {
            _ = hub.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
