//! The hub's TLS: its certificate, the trusted CA bundle and the revocation
//! list, reloaded from their files when they change, and the accept loop
//! that hands tonic finished handshakes.
//!
//! - The CA file may hold several CA certificates: during a CA rollover the
//!   old and the new CA are trusted together.
//! - A certificate on the revocation list (`fleetctl ca revoke`) is refused
//!   at the handshake; [`Tls::revoked`] also lets the services end what a
//!   revoked certificate already has open (spoke streams, admin calls on a
//!   kept-alive connection).
//! - A reload that fails (a half-written file, a key that does not match)
//!   is logged and the last good configuration stays.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::TlsFiles;

/// How often the files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What was loaded from the files.
struct Loaded {
    config: Arc<rustls::ServerConfig>,
    revoked: HashSet<Vec<u8>>,
}

type Stamp = Vec<Option<(SystemTime, u64)>>;

pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
    revoked: RwLock<HashSet<Vec<u8>>>,
    stamp: RwLock<Stamp>,
    /// Bumped on every reload of the revocation list.
    generation: watch::Sender<u64>,
}

fn stamp(files: &TlsFiles) -> Stamp {
    files
        .paths()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

fn load(files: &TlsFiles) -> anyhow::Result<Loaded> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the hub {what} at {}", p.display()))
    };
    let ca = read(&files.ca, "CA certificate")?;
    let cert = read(&files.cert, "certificate")?;
    let key = read(&files.key, "private key")?;
    crate::check_pem(&ca, &files.ca, "CERTIFICATE")?;
    crate::check_pem(&cert, &files.cert, "CERTIFICATE")?;
    crate::check_pem(&key, &files.key, "PRIVATE KEY")?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.with_context(|| format!("{} holds a broken certificate", files.ca.display()))?;
        roots.add(c).with_context(|| {
            format!(
                "{} holds a certificate that is not a CA",
                files.ca.display()
            )
        })?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a broken certificate", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .with_context(|| format!("{} holds no usable private key", files.key.display()))?;
    let mut crls = Vec::new();
    let mut revoked = HashSet::new();
    if let Some(path) = &files.crl {
        let pem = read(path, "revocation list")?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&pem) {
            let crl =
                crl.with_context(|| format!("{} holds a broken revocation list", path.display()))?;
            revoked.extend(crate::identity::revoked_serials(&crl).with_context(|| {
                format!(
                    "{} holds a revocation list that does not parse",
                    path.display()
                )
            })?);
            crls.push(crl);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        // A certificate of a second CA (a rollover) with no list of its own is not refused for that.
        .allow_unknown_revocation_status()
        .only_check_end_entity_revocation()
        .build()
        .with_context(|| format!("the CA bundle {} cannot verify clients", files.ca.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} are not a certificate and its key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        revoked,
    })
}

impl Tls {
    /// Loads the files; an error names the file.
    pub fn open(files: TlsFiles) -> anyhow::Result<Tls> {
        let st = stamp(&files);
        let l = load(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(l.config),
            revoked: RwLock::new(l.revoked),
            stamp: RwLock::new(st),
            generation: watch::Sender::new(0),
        })
    }

    /// Whether a certificate serial number (DER bytes) is revoked.
    pub fn revoked(&self, serial: &[u8]) -> bool {
        self.revoked.read().expect("lock").contains(serial)
    }

    /// Changes whenever the revocation list is reloaded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reloads when a file changed; `Ok(false)`: nothing changed.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = stamp(&self.files);
        if *self.stamp.read().expect("lock") == now {
            return Ok(false);
        }
        *self.stamp.write().expect("lock") = now;
        let l = load(&self.files)?;
        let n = l.revoked.len();
        *self.current.write().expect("lock") = l.config;
        *self.revoked.write().expect("lock") = l.revoked;
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(
            revoked = n,
            "reloaded the hub's certificate, CA bundle and revocation list"
        );
        Ok(true)
    }

    /// Reloads on change every [`RELOAD_EVERY`] until `shutdown`.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.reload_if_changed() {
                tracing::warn!(error = %format!("{e:#}"), "cannot reload TLS files; keeping the last good ones");
            }
        }
    }

    /// Accepts TCP connections and finishes their handshakes concurrently;
    /// a failed handshake is logged (with the peer address) and dropped.
    pub fn incoming(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
    ) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // Once the server stops taking connections, the listener closes.
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = tx.closed() => return,
                };
                let (tcp, addr) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor =
                    tokio_rustls::TlsAcceptor::from(self.current.read().expect("lock").clone());
                let conn_tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => {
                            let _ = conn_tx.send(Ok(s)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(peer = %addr, error = %e, "TLS handshake refused")
                        }
                        Err(_) => tracing::info!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}
