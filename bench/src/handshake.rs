//! The physical floor of a reconnect storm: the CPU a TLS 1.3 mTLS
//! handshake costs the hub's side (ECDHE, the ECDSA P-256 signature of its
//! certificate, the check of the spoke's certificate and signature), measured
//! in memory with the hub's kind of rustls configuration and the harness's
//! own certificates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore, ServerConnection};

use crate::pki::{Pair, Pki};

/// How long to measure.
const MEASURE: Duration = Duration::from_millis(1500);

fn chain(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    Ok(CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>()?)
}

fn key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    Ok(PrivateKeyDer::from_pem_slice(pem.as_bytes())?)
}

/// Handshakes per second one core completes on the server's side.
pub fn server_handshakes_per_core_second(pki: &Pki, spoke: &Pair) -> anyhow::Result<f64> {
    let hub = Pair {
        cert: std::fs::read_to_string(pki.dir.join("hub.crt"))?,
        key: std::fs::read_to_string(pki.dir.join("hub.key"))?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in chain(&pki.ca_pem)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(&hub.cert)?, key(&hub.key)?)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let server = Arc::new(server);
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain(&spoke.cert)?, key(&spoke.key)?)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    let client = Arc::new(client);

    let mut server_time = Duration::ZERO;
    let mut count = 0u32;
    let started = Instant::now();
    while started.elapsed() < MEASURE {
        let mut c = ClientConnection::new(client.clone(), ServerName::try_from("localhost")?)?;
        let mut s = ServerConnection::new(server.clone())?;
        let mut buf = Vec::new();
        while c.is_handshaking() || s.is_handshaking() {
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf)?;
            }
            let t = Instant::now();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd)?;
            }
            s.process_new_packets()?;
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf)?;
            }
            server_time += t.elapsed();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd)?;
            }
            c.process_new_packets()?;
        }
        count += 1;
    }
    Ok(count as f64 / server_time.as_secs_f64())
}
