//! `fleetctl ca`: a fleet CA and ECDSA P-256 certificates whose URI SAN names
//! the holder (see `fleet_proto::identity`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fleet_proto::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// Paths of an issued certificate and key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
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

/// Creates `ca.crt` and `ca.key` in `dir`. Refuses to overwrite an existing CA.
pub fn init(dir: &Path) -> anyhow::Result<PathBuf> {
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
    params
        .distinguished_name
        .push(DnType::CommonName, "fleet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    write_key(&dir.join(CA_KEY), &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
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
    Admin {
        name: String,
    },
}

pub fn issue(dir: &Path, subject: &Subject) -> anyhow::Result<Issued> {
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
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .with_context(|| format!("{} is not a CA certificate", dir.join(CA_CERT).display()))?;

    let (identity, stem, cn) = match subject {
        Subject::Hub { .. } => (Identity::Hub, "hub".to_string(), "fleet-hub".to_string()),
        Subject::Spoke { cluster } => (
            Identity::Cluster(cluster.clone()),
            format!("spoke-{cluster}"),
            format!("fleet-spoke {cluster}"),
        ),
        Subject::Admin { name } => (
            Identity::Admin(name.clone()),
            format!("admin-{name}"),
            format!("fleet-admin {name}"),
        ),
    };
    if Identity::from_uri(&identity.uri()).as_ref() != Some(&identity) {
        anyhow::bail!("{stem:?} is not a valid name: use letters, digits, '-', '.' and '_'");
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().try_into()?));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    match subject {
        Subject::Hub { names } => {
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
        _ => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    let issued = Issued {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&issued.cert, cert.pem())
        .with_context(|| format!("writing {}", issued.cert.display()))?;
    write_key(&issued.key, &key.serialize_pem())?;
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
