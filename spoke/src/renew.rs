//! The spoke renews its own client certificate over its stream before it
//! expires, as kubelets rotate theirs: a new key, a CSR for its own
//! identity, the hub's signature. The renewed pair lives in the cache
//! directory (`identity/tls.crt`, `tls.key`), since the configured files are
//! often a read-only Secret mount; it is used instead of them while it is the
//! later of the two.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::link::LinkConfig;

/// When and where to renew.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// Where the renewed certificate and key are kept.
    pub dir: PathBuf,
    /// Renew when less than this is left (default: a third of the lifetime).
    pub before: Option<Duration>,
}

/// What the spoke needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
    /// The cluster in its `fleet://cluster/NAME` SAN.
    pub cluster: Option<String>,
}

/// Reads validity and cluster from a PEM certificate.
pub fn validity(pem: &[u8]) -> anyhow::Result<Validity> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let (_, c) = X509Certificate::from_der(&p.contents)
        .map_err(|e| anyhow::anyhow!("not a certificate: {e}"))?;
    let cluster = c.subject_alternative_name().ok().flatten().and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix("fleet://cluster/").map(String::from),
            _ => None,
        })
    });
    Ok(Validity {
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        cluster,
    })
}

/// `tls.key` -> `tls.key.tmp` (each file its own temp name).
fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Renewal {
    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// The link configuration to dial with: the renewed pair when it expires
    /// later than the configured one.
    pub fn current(&self, cfg: &LinkConfig) -> LinkConfig {
        let later = |p: &Path| {
            std::fs::read(p)
                .ok()
                .and_then(|b| validity(&b).ok())
                .map(|v| v.not_after)
        };
        match (later(&self.cert()), later(&cfg.cert)) {
            (Some(renewed), Some(configured)) if renewed > configured && self.key().exists() => {
                LinkConfig {
                    cert: self.cert(),
                    key: self.key(),
                    ..cfg.clone()
                }
            }
            (Some(_), None) if self.key().exists() => LinkConfig {
                cert: self.cert(),
                key: self.key(),
                ..cfg.clone()
            },
            _ => cfg.clone(),
        }
    }

    /// Whether a certificate with validity `v` should be renewed at `now`.
    pub fn due(&self, v: &Validity, now: SystemTime) -> bool {
        let left = v.not_after - unix(now);
        let before = match self.before {
            Some(d) => d.as_secs() as i64,
            None => (v.not_after - v.not_before) / 3,
        };
        left < before
    }

    /// A new key and a CSR for the spoke of `cluster`: (key PEM, CSR PEM).
    pub fn request(cluster: &str) -> anyhow::Result<(String, String)> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("fleet-spoke {cluster}"));
        p.subject_alt_names.push(rcgen::SanType::URI(
            format!("fleet://cluster/{cluster}").try_into()?,
        ));
        let csr = p.serialize_request(&key)?.pem()?;
        Ok((key.serialize_pem(), csr))
    }

    /// Keeps a renewed pair (key 0600), after checking the certificate is for
    /// `cluster`. Both files are written aside and renamed into place.
    pub fn store(&self, cluster: &str, key_pem: &str, cert_pem: &str) -> anyhow::Result<Validity> {
        let v = validity(cert_pem.as_bytes()).context("the hub's renewed certificate")?;
        if v.cluster.as_deref() != Some(cluster) {
            anyhow::bail!(
                "the hub's renewed certificate is for {:?}, not cluster {cluster}",
                v.cluster
            );
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let write = |path: &Path, bytes: &str, mode: u32| -> anyhow::Result<()> {
            use std::io::Write as _;
            let tmp = tmp_of(path);
            let _ = std::fs::remove_file(&tmp);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(mode);
            }
            let mut f = opts
                .open(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            f.write_all(bytes.as_bytes())?;
            f.sync_all()?;
            Ok(())
        };
        write(&self.key(), key_pem, 0o600)?;
        write(&self.cert(), cert_pem, 0o644)?;
        std::fs::rename(tmp_of(&self.key()), self.key())?;
        std::fs::rename(tmp_of(&self.cert()), self.cert())?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days: u32, uri: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::URI(uri.to_string().try_into().unwrap()));
        let now = SystemTime::now();
        p.not_before = (now - Duration::from_secs(60)).into();
        p.not_after = (now + Duration::from_secs(u64::from(days) * 86_400)).into();
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn renewal_is_due_in_the_last_third_or_before_the_given_margin() {
        let r = Renewal {
            dir: PathBuf::new(),
            before: None,
        };
        let (pem, _) = cert(90, "fleet://cluster/a-1");
        let v = validity(pem.as_bytes()).unwrap();
        assert_eq!(v.cluster.as_deref(), Some("a-1"));
        let now = SystemTime::now();
        assert!(!r.due(&v, now));
        assert!(r.due(&v, now + Duration::from_secs(61 * 86_400)));
        let soon = Renewal {
            before: Some(Duration::from_secs(100 * 86_400)),
            ..r
        };
        assert!(soon.due(&v, now));
    }

    #[test]
    fn a_renewed_pair_is_used_while_it_is_the_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let r = Renewal {
            dir: dir.path().join("identity"),
            before: None,
        };
        let (old, old_key) = cert(10, "fleet://cluster/a-1");
        std::fs::write(dir.path().join("c.crt"), &old).unwrap();
        std::fs::write(dir.path().join("c.key"), &old_key).unwrap();
        let cfg = LinkConfig {
            hub: "https://127.0.0.1:1".into(),
            hub_name: None,
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join("c.crt"),
            key: dir.path().join("c.key"),
        };
        assert_eq!(r.current(&cfg).cert, cfg.cert);
        let (key_pem, csr) = Renewal::request("a-1").unwrap();
        assert!(csr.contains("CERTIFICATE REQUEST"));
        let (other, _) = cert(90, "fleet://cluster/b-1");
        assert!(r.store("a-1", &key_pem, &other).is_err());
        let (new, _) = cert(90, "fleet://cluster/a-1");
        r.store("a-1", &key_pem, &new).unwrap();
        assert_eq!(r.current(&cfg).cert, r.cert());
        assert_eq!(std::fs::read_to_string(r.key()).unwrap(), key_pem);
        // An operator's newer file wins again.
        let (newer, newer_key) = cert(200, "fleet://cluster/a-1");
        std::fs::write(dir.path().join("c.crt"), &newer).unwrap();
        std::fs::write(dir.path().join("c.key"), &newer_key).unwrap();
        assert_eq!(r.current(&cfg).cert, cfg.cert);
    }
}
