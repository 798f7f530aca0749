//! `fleetctl ca`: a fleet CA and ECDSA P-256 certificates whose URI SAN names
//! the holder (see `fleet_proto::identity`), with lifetimes, random serial
//! numbers, and a revocation list (`ca.crl`) the hub reloads.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use fleet_proto::identity::{Identity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
/// The revocation list `fleetctl ca revoke` keeps (PEM), for the hub's `--crl`.
pub const CA_CRL: &str = "ca.crl";

/// Default lifetimes, in days (`--days` overrides).
pub const CA_DAYS: u32 = 3650;
pub const HUB_DAYS: u32 = 365;
pub use fleet_hub::pki::CLIENT_DAYS;
use fleet_hub::pki::lifetime;

/// Paths of an issued certificate and key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate this one replaced and revoked (its serial, hex).
    pub superseded: Option<String>,
}

fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

/// Creates `ca.crt` and `ca.key` in `dir`, valid for `days`. Refuses to
/// overwrite an existing CA.
pub fn init(dir: &Path, days: u32) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert_path = dir.join(CA_CERT);
    if cert_path.exists() {
        anyhow::bail!(
            "{} already exists; remove it first or use another --dir",
            cert_path.display()
        );
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    // A name of its own: during a rollover two CAs are trusted at once, and
    // verifiers find a certificate's issuer by name.
    let mut id = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("fleet CA {}", hex(&id)));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    lifetime(&mut params, days)?;
    let cert = params.self_signed(&key)?;
    write_key(&dir.join(CA_KEY), &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    // An empty revocation list from the start, so the hub can be given it.
    write_crl(dir, &load_issuer(dir)?, &[])?;
    Ok(cert_path)
}

/// What to issue a certificate for.
#[derive(Debug, Clone)]
pub enum Subject {
    /// The hub, valid for these DNS names and IP addresses.
    Hub {
        names: Vec<String>,
    },
    Spoke {
        cluster: String,
    },
    /// A fleetctl user with a role.
    User {
        name: String,
        role: Role,
    },
}

impl Subject {
    pub fn default_days(&self) -> u32 {
        match self {
            Subject::Hub { .. } => HUB_DAYS,
            _ => CLIENT_DAYS,
        }
    }
}

/// The CA in `dir`, as an issuer.
fn load_issuer(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let ca_pem = std::fs::read_to_string(dir.join(CA_CERT)).with_context(|| {
        format!(
            "reading {} (run `fleetctl ca init --dir {}` first)",
            dir.join(CA_CERT).display(),
            dir.display()
        )
    })?;
    let ca_key_pem = std::fs::read_to_string(dir.join(CA_KEY))
        .with_context(|| format!("reading {}", dir.join(CA_KEY).display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{} is not a private key", dir.join(CA_KEY).display()))?;
    Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .with_context(|| format!("{} is not a CA certificate", dir.join(CA_CERT).display()))
}

/// Issues a certificate for `subject`, valid for `days`. A certificate it
/// replaces (same file) is revoked unless `keep_previous` (for a rotation
/// where the old one must work until the new one is deployed; revoke it then).
pub fn issue(
    dir: &Path,
    subject: &Subject,
    days: u32,
    keep_previous: bool,
) -> anyhow::Result<Issued> {
    let issuer = load_issuer(dir)?;
    let (identity, stem, cn) = match subject {
        Subject::Hub { .. } => (Identity::Hub, "hub".to_string(), "fleet-hub".to_string()),
        Subject::Spoke { cluster } => (
            Identity::Cluster(cluster.clone()),
            format!("spoke-{cluster}"),
            format!("fleet-spoke {cluster}"),
        ),
        Subject::User { name, role } => (
            Identity::User(*role, name.clone()),
            format!("{}-{name}", role.as_str()),
            format!("fleet-{} {name}", role.as_str()),
        ),
    };
    if Identity::from_uri(&identity.uri()).as_ref() != Some(&identity) {
        anyhow::bail!("{stem:?} is not a valid name: use letters, digits, '-', '.' and '_'");
    }
    let mut params = fleet_hub::pki::client_params(&identity, days)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Subject::Hub { names } = subject {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for n in names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName(n.clone().try_into()?)),
            }
        }
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    let mut issued = Issued {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
        superseded: None,
    };
    let previous = describe(&issued.cert).ok().map(|(serial, _)| serial);
    std::fs::write(&issued.cert, cert.pem())
        .with_context(|| format!("writing {}", issued.cert.display()))?;
    write_key(&issued.key, &key.serialize_pem())?;
    if let (Some(serial), false) = (previous, keep_previous) {
        let mut entries = revoked(dir)?;
        if !entries.iter().any(|r| r.serial == serial) {
            entries.push(Revoked {
                serial: serial.clone(),
                at: SystemTime::now(),
            });
        }
        write_crl(dir, &issuer, &entries)?;
        issued.superseded = Some(hex(&serial));
    }
    Ok(issued)
}

/// Default names in a hub certificate: loopback and in-cluster service names.
pub fn default_hub_names() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "fleet-hub",
        "fleet-hub.fleet-system",
        "fleet-hub.fleet-system.svc",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// A revoked certificate as `ca.crl` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: Vec<u8>,
    pub at: SystemTime,
}

/// The entries of `dir`'s revocation list (none when there is none yet).
pub fn revoked(dir: &Path) -> anyhow::Result<Vec<Revoked>> {
    use x509_parser::prelude::FromDer as _;
    let path = dir.join(CA_CRL);
    let pem = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{} is not a PEM revocation list: {e}", path.display()))?;
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&p.contents)
            .map_err(|e| anyhow::anyhow!("{} is not a revocation list: {e}", path.display()))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| Revoked {
            serial: r.raw_serial().to_vec(),
            at: SystemTime::UNIX_EPOCH
                + Duration::from_secs(r.revocation_date.timestamp().max(0) as u64),
        })
        .collect())
}

/// The serial number and fleet identity of a certificate file.
pub fn describe(cert: &Path) -> anyhow::Result<(Vec<u8>, String)> {
    use x509_parser::prelude::FromDer as _;
    let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate: {e}", cert.display()))?;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(&p.contents)
        .map_err(|e| anyhow::anyhow!("{} is not a certificate: {e}", cert.display()))?;
    let who = fleet_hub::identity::identity_of(&p.contents)
        .map(|i| i.uri())
        .unwrap_or_else(|| c.subject().to_string());
    Ok((c.raw_serial().to_vec(), who))
}

/// Adds a certificate (by its file) to `dir`'s revocation list and re-signs
/// it; the hub reloads the list and drops the certificate's open streams.
/// Returns the revoked identity. Revoking twice is not an error.
pub fn revoke(dir: &Path, cert: &Path) -> anyhow::Result<String> {
    let issuer = load_issuer(dir)?;
    let (serial, who) = describe(cert)?;
    let mut entries = revoked(dir)?;
    if !entries.iter().any(|r| r.serial == serial) {
        entries.push(Revoked {
            serial,
            at: SystemTime::now(),
        });
    }
    write_crl(dir, &issuer, &entries)?;
    Ok(who)
}

fn write_crl(dir: &Path, issuer: &Issuer<'_, KeyPair>, entries: &[Revoked]) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let params = CertificateRevocationListParams {
        this_update: (now - Duration::from_secs(60)).into(),
        // Consumers that check freshness re-read it well before then.
        next_update: (now + Duration::from_secs(u64::from(CA_DAYS) * 86_400)).into(),
        crl_number: SerialNumber::from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&r.serial),
                revocation_time: r.at.into(),
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer)?;
    let path = dir.join(CA_CRL);
    let tmp = dir.join(".ca.crl.tmp");
    std::fs::write(&tmp, crl.pem()?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer as _;

    fn validity(cert: &Path) -> (i64, i64) {
        let pem = std::fs::read(cert).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(&p.contents).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    #[test]
    fn lifetimes_serials_and_superseded_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init(dir.path(), CA_DAYS).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let days = |(from, to): (i64, i64)| {
            assert!(from <= now && from >= now - 3700, "{from} vs {now}");
            (to - now + 60) / 86_400
        };
        assert_eq!(days(validity(&ca)), i64::from(CA_DAYS));
        let spoke = Subject::Spoke {
            cluster: "prod-1".into(),
        };
        let a = issue(dir.path(), &spoke, spoke.default_days(), false).unwrap();
        assert_eq!(days(validity(&a.cert)), 90);
        assert!(a.superseded.is_none());
        let hub = Subject::Hub {
            names: default_hub_names(),
        };
        let h = issue(dir.path(), &hub, hub.default_days(), false).unwrap();
        assert_eq!(days(validity(&h.cert)), 365);
        let (first, _) = describe(&a.cert).unwrap();
        assert_eq!(revoked(dir.path()).unwrap(), vec![]);
        // Reissuing revokes the certificate it replaces; serials differ.
        let b = issue(dir.path(), &spoke, 30, false).unwrap();
        assert_eq!(days(validity(&b.cert)), 30);
        let (second, who) = describe(&b.cert).unwrap();
        assert_ne!(first, second);
        assert_eq!(who, "fleet://cluster/prod-1");
        assert_eq!(b.superseded.as_deref(), Some(hex(&first).as_str()));
        let listed: Vec<Vec<u8>> = revoked(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| r.serial)
            .collect();
        assert_eq!(listed, vec![first.clone()]);
        // --keep-previous leaves it valid; revoke adds it once.
        issue(dir.path(), &spoke, 30, true).unwrap();
        assert_eq!(revoked(dir.path()).unwrap().len(), 1);
        let user = Subject::User {
            name: "vic".into(),
            role: Role::Viewer,
        };
        let v = issue(dir.path(), &user, 1, false).unwrap();
        assert!(v.cert.ends_with("viewer-vic.crt"));
        assert_eq!(revoke(dir.path(), &v.cert).unwrap(), "fleet://viewer/vic");
        revoke(dir.path(), &v.cert).unwrap();
        assert_eq!(revoked(dir.path()).unwrap().len(), 2);
        assert!(issue(dir.path(), &user, 0, false).is_err());
    }
}
