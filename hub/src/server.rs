//! The gRPC server: HTTP/2 on the connections [`crate::tls::Tls::incoming`]
//! accepts, one task a connection, each request handed to the services'
//! [`Routes`] with the peer's TLS details as tonic's server would attach
//! them (so `Request::peer_certs` works in the handlers).
//!
//! tonic's own server serves each connection through hyper-util's
//! protocol-detecting builder inside a task that also holds both protocols'
//! settings and a connection-age timer; with one long-lived connection per
//! spoke, that task was the largest allocation the hub held for an idle
//! spoke after HTTP/2's own buffers. Serving HTTP/2 directly holds only the
//! connection and a shutdown signal (docs/benchmarks.md, "Ninth round").

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tonic::service::Routes;
use tonic::transport::server::{Connected as _, TcpConnectInfo, TlsConnectInfo};
use tower_service::Service as _;

/// How long open connections get to finish after the hub is asked to stop;
/// a spoke's stream never finishes by itself, so this bounds the shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// HTTP/2 settings of every connection.
pub struct Settings {
    /// A PING after this long without frames from the peer...
    pub keepalive_interval: Duration,
    /// ...and the connection is closed if its answer takes longer.
    pub keepalive_timeout: Duration,
}

/// Serves `incoming` until `stop` turns true, then tells every connection
/// to finish (HTTP/2 GOAWAY), closes those still open [`SHUTDOWN_GRACE`]
/// later, and returns when all are closed.
pub async fn serve<I>(
    routes: Routes,
    incoming: I,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) where
    I: Stream<Item = std::io::Result<TlsStream<TcpStream>>>,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout);
    let routes = routes.prepare();
    // Every connection holds a receiver: the sender learns when all are gone.
    // It carries the moment the connections must be closed by.
    let (finish, finishing) = watch::channel(None::<Instant>);
    // Dropped as soon as the loop ends, so no more handshakes are finished
    // for a server that no longer serves them.
    let mut incoming = Box::pin(incoming);
    loop {
        let io = tokio::select! {
            _ = async { stop.wait_for(|v| *v).await.map(|_| ()) } => break,
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accepting a connection failed");
                    continue;
                }
                None => break,
            },
        };
        let svc = ConnService {
            routes: routes.clone(),
            info: io.connect_info(),
        };
        // Boxed apart from its task: built inside the task's future, the
        // connection and the parts it is built from (the TLS stream) would
        // both take room there, as rustc lays out async state today.
        let conn = Box::pin(builder.serve_connection(TokioIo::new(io), svc));
        tokio::spawn(connection(conn, finishing.clone()));
    }
    drop(incoming);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    let _ = finish.send(Some(deadline));
    drop(finishing);
    // Each connection closes itself at the deadline; this only waits.
    finish.closed().await;
}

type Conn = http2::Connection<TokioIo<TlsStream<TcpStream>>, ConnService, TokioExecutor>;

/// One connection until it closes, or until `finish` names a deadline:
/// then GOAWAY, and until the deadline for its streams to end.
async fn connection(mut conn: Pin<Box<Conn>>, mut finish: watch::Receiver<Option<Instant>>) {
    let result = tokio::select! {
        r = conn.as_mut() => r,
        deadline = async { finish.wait_for(Option::is_some).await.ok().and_then(|d| *d) } => {
            conn.as_mut().graceful_shutdown();
            let deadline = deadline.unwrap_or_else(Instant::now);
            match tokio::time::timeout_at(deadline, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!("connection still open at the shutdown deadline: closed");
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The services of one connection: each request gets the connection's TLS
/// details (peer certificates, addresses) as an extension, as tonic's
/// server attaches them.
#[derive(Clone)]
pub struct ConnService {
    routes: Routes,
    info: TlsConnectInfo<TcpConnectInfo>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for ConnService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = <Routes as tower_service::Service<http::Request<tonic::body::Body>>>::Future;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let mut req = req.map(tonic::body::Body::new);
        req.extensions_mut().insert(self.info.clone());
        // Routes (axum's router) is always ready and cheap to clone.
        self.routes.clone().call(req)
    }
}
