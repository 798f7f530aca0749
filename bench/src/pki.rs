//! An in-process fleet PKI: one CA, the hub's certificate on disk, and an
//! ECDSA P-256 client certificate per simulated spoke, issued in memory
//! (10,000 take about a second), with the same URI SAN `fleetctl ca issue`
//! writes (`fleet://cluster/<name>`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fleet_proto::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Pki {
    /// Creates the CA and the hub's certificate (for `localhost` and
    /// `127.0.0.1`) in `dir`: `ca.crt`, `hub.crt`, `hub.key`.
    pub fn new(dir: &Path) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fleet bench CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key)?;
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.crt"), &ca_pem)?;
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_pem,
            issuer: Issuer::new(params, key),
        };
        let hub = pki.issue(&Identity::Hub)?;
        std::fs::write(dir.join("hub.crt"), &hub.cert)?;
        std::fs::write(dir.join("hub.key"), &hub.key)?;
        Ok(pki)
    }

    pub fn issue(&self, id: &Identity) -> anyhow::Result<Pair> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, id.to_string());
        params
            .subject_alt_names
            .push(SanType::URI(id.uri().try_into()?));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if *id == Identity::Hub {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params
                .subject_alt_names
                .push(SanType::DnsName("localhost".try_into()?));
            params
                .subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Client certificates for `clusters`, issued on every core.
    pub fn issue_spokes(&self, clusters: &[String]) -> anyhow::Result<Vec<Pair>> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per = clusters.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = clusters
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|c| self.issue(&Identity::Cluster(c.clone())))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(clusters.len());
            for h in handles {
                out.extend(h.join().expect("issuing thread")?);
            }
            Ok(out)
        })
    }

    /// Writes a spoke's pair to `<dir>/spoke-<cluster>.{crt,key}` for a real `fleet-spoke`.
    pub fn write_spoke(&self, cluster: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let pair = self.issue(&Identity::Cluster(cluster.to_string()))?;
        let cert = self.dir.join(format!("spoke-{cluster}.crt"));
        let key = self.dir.join(format!("spoke-{cluster}.key"));
        std::fs::write(&cert, pair.cert).with_context(|| format!("writing {}", cert.display()))?;
        std::fs::write(&key, pair.key)?;
        Ok((cert, key))
    }
}
