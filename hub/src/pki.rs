//! Certificate contents fleet issues (used by `fleetctl ca` and by the hub
//! when it signs a spoke's renewal): the identity in the URI SAN, key usages,
//! a lifetime and a random serial. And the hub's renewal signer.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use fleet_proto::identity::Identity;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

/// Default lifetime of spoke and user certificates, in days.
pub const CLIENT_DAYS: u32 = 90;

/// Backdating of `notBefore`, for clocks slightly behind the issuer's.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Sets `params` valid from (about) now for `days`, with a random serial.
pub fn lifetime(params: &mut CertificateParams, days: u32) -> anyhow::Result<()> {
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + Duration::from_secs(u64::from(days) * 86_400)).into();
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    // Positive and non-zero, as RFC 5280 wants.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// A client certificate's contents for `identity` (a spoke or a user).
pub fn client_params(identity: &Identity, days: u32) -> anyhow::Result<CertificateParams> {
    let cn = match identity {
        Identity::Cluster(c) => format!("fleet-spoke {c}"),
        Identity::User(role, n) => format!("fleet-{} {n}", role.as_str()),
        Identity::Hub => "fleet-hub".to_string(),
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().try_into()?));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    lifetime(&mut params, days)?;
    Ok(params)
}

/// Why a renewal was refused.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("the hub does not sign renewals (start it with --signer-cert and --signer-key)")]
    Disabled,
    #[error("the CSR does not parse or its signature does not verify: {0}")]
    BadCsr(String),
    #[error("the CSR asks for {asked}, but this stream is {stream}")]
    OtherIdentity { asked: String, stream: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The CA the hub signs spoke renewals with.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    days: u32,
}

impl Signer {
    pub fn load(cert: &Path, key: &Path, days: u32) -> anyhow::Result<Signer> {
        let cert_pem = std::fs::read_to_string(cert)
            .with_context(|| format!("reading the signer certificate at {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .with_context(|| format!("reading the signer key at {}", key.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("{} is not a private key", key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .with_context(|| format!("{} is not a CA certificate", cert.display()))?;
        Ok(Signer { issuer, days })
    }

    /// Signs `csr_pem` for the spoke of `cluster`: only the CSR's key (its
    /// signature proves the spoke holds it) is taken from it; identity,
    /// usages and lifetime are the hub's.
    pub fn renew(&self, cluster: &str, csr_pem: &str) -> Result<String, RenewError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| RenewError::BadCsr(e.to_string()))?;
        let stream = Identity::Cluster(cluster.to_string()).uri();
        let asked: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|s| match s {
                SanType::URI(u) => u.as_str().to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        if asked != [stream.clone()] {
            return Err(RenewError::OtherIdentity {
                asked: asked.join(", "),
                stream,
            });
        }
        csr.params = client_params(&Identity::Cluster(cluster.to_string()), self.days)
            .map_err(|e| RenewError::Sign(e.to_string()))?;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| RenewError::Sign(e.to_string()))?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).unwrap();
        let s = Signer::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key"), 30).unwrap();
        (dir, s)
    }

    fn csr(uri: &str) -> String {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names
            .push(SanType::URI(uri.to_string().try_into().unwrap()));
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn renewals_are_for_the_streams_cluster_only() {
        let (_d, s) = ca();
        let pem = s.renew("a-1", &csr("fleet://cluster/a-1")).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c)
            .unwrap();
        assert_eq!(
            crate::identity::identity_of(&der),
            Some(Identity::Cluster("a-1".into()))
        );
        let e = s.renew("a-1", &csr("fleet://cluster/b-1")).unwrap_err();
        assert!(
            matches!(e, RenewError::OtherIdentity { .. }) && e.to_string().contains("b-1"),
            "{e}"
        );
        let e = s.renew("a-1", &csr("fleet://admin/root")).unwrap_err();
        assert!(matches!(e, RenewError::OtherIdentity { .. }), "{e}");
        assert!(matches!(
            s.renew("a-1", "not a csr").unwrap_err(),
            RenewError::BadCsr(_)
        ));
    }
}
