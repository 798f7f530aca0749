//! The spoke's own HTTP listener (`--http-addr`): `/healthz` (the process
//! answers), `/readyz` (it has applied a desired state at least once, from
//! the hub, a bundle or its cache) and `/metrics` (OpenMetrics text via
//! `prometheus-client`, no global registry). Labels are never per object.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::apply::{Outcome, ResourceOutcome};

/// What the reconciler and the link tell the listener.
#[derive(Default)]
pub struct SpokeMetrics {
    passes: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    heals: AtomicU64,
    /// Microseconds of the last full apply pass.
    last_sync_us: AtomicU64,
    connected: AtomicBool,
    /// Outcome of each object at the last pass (to count changes once), by
    /// a hash of its app and id: 16 bytes an object, not a copy of its name.
    last: Mutex<HashMap<u64, Outcome>>,
    counts: Mutex<Vec<(&'static str, u64)>>,
    conflicts: AtomicU64,
}

/// The key of an object in [`SpokeMetrics`]'s last outcomes. A collision
/// (at 2^-64 odds) could only miscount a change in a counter.
fn object_key(app: &str, id: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    (app, id).hash(&mut h);
    h.finish()
}

impl SpokeMetrics {
    pub fn set_connected(&self, c: bool) {
        self.connected.store(c, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.passes.load(Ordering::Relaxed) > 0
    }

    /// Records one pass: an object counts as a write, an error or a heal
    /// when its outcome becomes that (outcomes are kept between passes).
    pub fn pass(&self, outs: &[ResourceOutcome], full: bool, took: std::time::Duration) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        if full {
            self.last_sync_us
                .store(took.as_micros() as u64, Ordering::Relaxed);
        }
        let mut last = self.last.lock().expect("lock");
        let mut next = HashMap::with_capacity(outs.len());
        let mut by: HashMap<&'static str, u64> = HashMap::new();
        let mut conflicts = 0;
        for o in outs {
            let key = object_key(&o.app, &o.id);
            let changed = last.get(&key) != Some(&o.outcome);
            if changed {
                match o.outcome {
                    Outcome::Applied | Outcome::Pruned => {
                        self.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Healed => {
                        self.writes.fetch_add(1, Ordering::Relaxed);
                        self.heals.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Failed => {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            if o.outcome == Outcome::Failed && o.message.to_lowercase().contains("conflict") {
                conflicts += 1;
            }
            *by.entry(o.outcome.as_str()).or_default() += 1;
            next.insert(key, o.outcome);
        }
        *last = next;
        let mut counts: Vec<_> = by.into_iter().collect();
        counts.sort();
        *self.counts.lock().expect("lock") = counts;
        self.conflicts.store(conflicts, Ordering::Relaxed);
    }

    /// The metrics, encoded; `published_at_ms` dates the enforced state.
    pub fn render(&self, published_at_ms: i64) -> String {
        let mut reg = Registry::default();
        let counter = |reg: &mut Registry, name: &str, help: &str, v: &AtomicU64| {
            let c: Counter = Counter::default();
            c.inc_by(v.load(Ordering::Relaxed));
            reg.register(name, help, c);
        };
        let gauge = |reg: &mut Registry, name: &str, help: &str, v: f64| {
            let g: Gauge<f64, AtomicU64> = Gauge::default();
            g.set(v);
            reg.register(name, help, g);
        };
        counter(
            &mut reg,
            "fleet_spoke_passes",
            "Apply and drift passes",
            &self.passes,
        );
        counter(
            &mut reg,
            "fleet_spoke_apply_writes",
            "Objects written (applied, healed, pruned)",
            &self.writes,
        );
        counter(
            &mut reg,
            "fleet_spoke_apply_errors",
            "Objects that became failed",
            &self.errors,
        );
        counter(
            &mut reg,
            "fleet_spoke_drift_heals",
            "Objects restored after drift",
            &self.heals,
        );
        gauge(
            &mut reg,
            "fleet_spoke_conflicts",
            "Objects failing on a field conflict with another manager",
            self.conflicts.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut reg,
            "fleet_spoke_last_sync_seconds",
            "Duration of the last full apply",
            self.last_sync_us.load(Ordering::Relaxed) as f64 / 1e6,
        );
        gauge(
            &mut reg,
            "fleet_spoke_hub_connected",
            "1 while the stream to the hub is open",
            f64::from(u8::from(self.connected.load(Ordering::Relaxed))),
        );
        if published_at_ms > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            gauge(
                &mut reg,
                "fleet_spoke_state_age_seconds",
                "Age of the enforced state (since the hub published it)",
                (now - published_at_ms).max(0) as f64 / 1000.0,
            );
        }
        let objects: Family<Vec<(String, String)>, Gauge> = Family::default();
        for (outcome, n) in self.counts.lock().expect("lock").iter() {
            objects
                .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
                .set(*n as i64);
        }
        reg.register(
            "fleet_spoke_objects",
            "Objects by outcome at the last pass",
            objects,
        );
        let mut out = String::new();
        encode(&mut out, &reg).expect("encoding into a String");
        out
    }
}

struct Http {
    metrics: Arc<SpokeMetrics>,
    cache: crate::cache::Cache,
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<SpokeMetrics>,
    cache: crate::cache::Cache,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the spoke's HTTP address {addr}: {e}"))?;
    tracing::info!(http = %listener.local_addr()?, "spoke HTTP listening (/healthz, /readyz, /metrics)");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .with_state(Arc::new(Http { metrics, cache }));
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "spoke HTTP listener failed");
        }
    });
    Ok(())
}

async fn readyz(State(h): State<Arc<Http>>) -> (StatusCode, &'static str) {
    if h.metrics.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no desired state applied yet (waiting for the hub, a bundle or the cache)\n",
        )
    }
}

async fn scrape(State(h): State<Arc<Http>>) -> impl axum::response::IntoResponse {
    let published = h
        .cache
        .load_provenance()
        .map(|p| p.published_at_ms)
        .unwrap_or(0);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.render(published),
    )
}
