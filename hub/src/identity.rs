//! A peer's fleet identity, read from the URI SAN of its client certificate.

use fleet_proto::identity::Identity;
use tonic::Status;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A verified peer: its fleet identity and its certificate's serial number.
#[derive(Debug, Clone)]
pub struct Peer {
    pub identity: Identity,
    pub serial: Vec<u8>,
}

/// The identity in the first (leaf) peer certificate of a request.
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<Peer, Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let identity = identity_of(leaf.as_ref())
        .ok_or_else(|| Status::permission_denied("client certificate carries no fleet identity"))?;
    let serial = X509Certificate::from_der(leaf.as_ref())
        .map(|(_, c)| c.raw_serial().to_vec())
        .map_err(|_| Status::unauthenticated("client certificate does not parse"))?;
    Ok(Peer { identity, serial })
}

/// The serial numbers a DER revocation list names.
pub fn revoked_serials(crl: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect())
}

/// The fleet identity in a DER certificate, if it has exactly one.
pub fn identity_of(der: &[u8]) -> Option<Identity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Identity::from_uri(uri),
        _ => None,
    });
    let first = found.next()?;
    // Two identities in one certificate is a mis-issued certificate: trust neither.
    if found.next().is_some() {
        return None;
    }
    Some(first)
}
