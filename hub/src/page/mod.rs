//! The read-only fleet status page (`--page-addr`): server-rendered HTML,
//! no JavaScript, reloaded by `<meta http-equiv="refresh">`.
//!
//! - `/`: the fleet at a glance, clusters grouped by environment, paged
//!   ([`CLUSTERS_PER_PAGE`], `?after=<cluster>`), and the rollouts;
//! - `/clusters/<name>`: apps and objects, render errors, drift, history,
//!   the rollout of its environment;
//! - `/commits/<id>`: which clusters run (or are moving to) a commit.
//!
//! This module is the I/O side: it reads the hub's status, history and
//! rollouts through [`Hub`] and hands them, with the time, to the pure view
//! models in [`view`], which the askama templates in `hub/templates/page/`
//! print (HTML-escaped). The page has no credential of its own: it listens
//! on localhost by default and is meant to sit behind an authenticating
//! proxy for anything else (docs/status-page.md).

pub mod view;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Hub;

/// Clusters on one page of `/` (the fleet's size never decides a response's).
pub const CLUSTERS_PER_PAGE: usize = 500;

/// Serves the page until `shutdown`.
pub async fn serve(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let r = axum::serve(listener, router(hub))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "status page server failed");
    }
}

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(fleet))
        .route("/clusters/{name}", get(cluster))
        .route("/commits/{id}", get(commit))
        .fallback(|| async {
            not_found(
                "no such page",
                "The status page has /, /clusters/<name> and /commits/<id>.".into(),
            )
        })
        .with_state(hub)
}

/// An HTML response that may not be framed, sniffed, cached or run scripts.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the status page");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the status page failed to render\n",
            )
                .into_response();
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    for (k, v) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn error_page(status: StatusCode, title: &str, detail: String) -> Response {
    let v = view::ErrorView {
        title: title.to_string(),
        detail,
    };
    html(status, v.render())
}

fn not_found(title: &str, detail: String) -> Response {
    error_page(StatusCode::NOT_FOUND, title, detail)
}

/// The hub's locks and the store are blocking; keep them off the reactor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "status page task failed");
            None
        }
    }
}

fn unavailable() -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "status unavailable",
        "The hub could not build this page; see its log.".into(),
    )
}

/// `after=<cluster>` from a query string (percent-decoded), empty without one.
fn after_of(query: Option<&str>) -> Result<String, String> {
    let Some(q) = query else {
        return Ok(String::new());
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "after" {
            return percent_decode(v).ok_or_else(|| {
                format!("the query's after={v} is not valid percent-encoded UTF-8")
            });
        }
    }
    Ok(String::new())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn fleet(State(hub): State<Arc<Hub>>, RawQuery(query): RawQuery) -> Response {
    let after = match after_of(query.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "bad query", e),
    };
    let built = blocking(move || {
        let st = hub.fleet_status_page(&crate::Page {
            after,
            size: CLUSTERS_PER_PAGE,
            budget: crate::PAGE_BUDGET,
        });
        let next = (!st.next_page_token.is_empty())
            .then(|| format!("/?after={}", view::encode_segment(&st.next_page_token)));
        view::fleet(&st, crate::status::now(), next).render()
    })
    .await;
    match built {
        Some(body) => html(StatusCode::OK, body),
        None => unavailable(),
    }
}

async fn cluster(State(hub): State<Arc<Hub>>, Path(name): Path<String>) -> Response {
    let wanted = name.clone();
    let built = blocking(move || {
        let c = hub.cluster_status(&wanted)?;
        let history: Vec<crate::status::Event> =
            hub.history(&wanted).into_iter().map(|(_, e)| e).collect();
        let rollouts: Vec<_> = hub
            .rollouts()
            .into_iter()
            .map(|(env, plan, r)| crate::rollout_status(&env, &plan, r.as_ref()))
            .collect();
        Some(view::cluster(&c, &history, &rollouts, crate::status::now()).render())
    })
    .await;
    match built {
        Some(Some(body)) => html(StatusCode::OK, body),
        Some(None) => not_found(
            "unknown cluster",
            format!(
                "The fleet has no cluster named `{name}` (clusters/<name>.yaml in the fleet repo); see the list at /."
            ),
        ),
        None => unavailable(),
    }
}

async fn commit(State(hub): State<Arc<Hub>>, Path(id): Path<String>) -> Response {
    let query = match view::parse_commit_query(&id) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "not a commit id", e),
    };
    let built = blocking(move || {
        // Page through the fleet, keeping only the clusters that match.
        let mut v = view::commit_page(query);
        let mut after = String::new();
        loop {
            let st = hub.fleet_status_page(&crate::Page {
                after,
                size: crate::PAGE_SIZE,
                budget: crate::PAGE_BUDGET,
            });
            view::add_commit_page(&mut v, &st);
            if st.next_page_token.is_empty() {
                break;
            }
            after = st.next_page_token;
        }
        v.render()
    })
    .await;
    match built {
        Some(body) => html(StatusCode::OK, body),
        None => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_read_from_the_query() {
        assert_eq!(after_of(None).unwrap(), "");
        assert_eq!(after_of(Some("")).unwrap(), "");
        assert_eq!(after_of(Some("after=prod-1")).unwrap(), "prod-1");
        assert_eq!(after_of(Some("x=1&after=a%2Db")).unwrap(), "a-b");
        assert!(
            after_of(Some("after=%zz"))
                .unwrap_err()
                .contains("after=%zz")
        );
        assert!(after_of(Some("after=%ff")).is_err());
    }
}
