//! Ed25519 signatures in OpenSSH's SSHSIG format, so what fleet signs can be
//! checked with `ssh-keygen -Y verify` from any OpenSSH install, and what
//! `ssh-keygen -Y sign` (or `git commit -S` with `gpg.format=ssh`) signs can
//! be checked by fleet. ring does the cryptography (fleet's one provider);
//! this module only frames bytes as PROTOCOL.sshsig says.
//!
//! Only `ssh-ed25519` keys and the `sha512` message hash are accepted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

const MAGIC: &[u8] = b"SSHSIG";
const KEY_TYPE: &str = "ssh-ed25519";
const HASH: &str = "sha512";
const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const END: &str = "-----END SSH SIGNATURE-----";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("not an SSH signature: {0}")]
    Malformed(String),
    #[error("signed for namespace {got:?}, expected {want:?}")]
    Namespace { got: String, want: String },
    #[error("signed by {0}, which is not a trusted key")]
    Untrusted(String),
    #[error("the signature by {0} does not match the content")]
    Invalid(String),
    #[error("not an OpenSSH ssh-ed25519 public key: {0}")]
    BadKey(String),
}

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key: [u8; 32],
    /// The comment of its OpenSSH line (often a name).
    pub comment: String,
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SigError> {
        if self.0.len() < n {
            return Err(SigError::Malformed("truncated".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, SigError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], SigError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

impl PublicKey {
    /// The SSH wire blob: string("ssh-ed25519") string(key).
    pub fn blob(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(51);
        put_string(&mut b, KEY_TYPE.as_bytes());
        put_string(&mut b, &self.key);
        b
    }

    fn from_blob(blob: &[u8], comment: &str) -> Result<PublicKey, SigError> {
        let mut r = Reader(blob);
        let t = r.string()?;
        if t != KEY_TYPE.as_bytes() {
            return Err(SigError::BadKey(format!(
                "key type {:?}",
                String::from_utf8_lossy(t)
            )));
        }
        let k = r.string()?;
        let key: [u8; 32] = k
            .try_into()
            .map_err(|_| SigError::BadKey("key is not 32 bytes".into()))?;
        Ok(PublicKey {
            key,
            comment: comment.into(),
        })
    }

    /// Parses one OpenSSH line: `ssh-ed25519 AAAA... [comment]`.
    pub fn parse(line: &str) -> Result<PublicKey, SigError> {
        let mut parts = line.split_whitespace();
        let (Some(t), Some(b)) = (parts.next(), parts.next()) else {
            return Err(SigError::BadKey(line.chars().take(60).collect()));
        };
        if t != KEY_TYPE {
            return Err(SigError::BadKey(format!("key type {t:?}")));
        }
        let blob = B64
            .decode(b)
            .map_err(|e| SigError::BadKey(format!("base64: {e}")))?;
        let comment = parts.collect::<Vec<_>>().join(" ");
        PublicKey::from_blob(&blob, &comment)
    }

    /// The OpenSSH line.
    pub fn to_openssh(&self) -> String {
        let mut s = format!("{KEY_TYPE} {}", B64.encode(self.blob()));
        if !self.comment.is_empty() {
            s.push(' ');
            s.push_str(&self.comment);
        }
        s
    }

    /// `SHA256:...` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.blob());
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.as_ref())
        )
    }
}

/// Reads a trust file: OpenSSH public key lines, or `ssh-keygen`
/// allowed_signers lines (`principal[,principal] [options] ssh-ed25519 KEY`);
/// blank lines and `#` comments are skipped. Errors name the line.
pub fn parse_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let from = line
            .find(KEY_TYPE)
            .ok_or_else(|| format!("line {}: no ssh-ed25519 key", i + 1))?;
        let principal = line[..from].split_whitespace().next().unwrap_or("");
        let mut k = PublicKey::parse(&line[from..]).map_err(|e| format!("line {}: {e}", i + 1))?;
        if k.comment.is_empty() {
            k.comment = principal.to_string();
        }
        keys.push(k);
    }
    Ok(keys)
}

fn signed_data(namespace: &str, message: &[u8]) -> Vec<u8> {
    let h = ring::digest::digest(&ring::digest::SHA512, message);
    let mut d = MAGIC.to_vec();
    put_string(&mut d, namespace.as_bytes());
    put_string(&mut d, b"");
    put_string(&mut d, HASH.as_bytes());
    put_string(&mut d, h.as_ref());
    d
}

/// A signing key (Ed25519, from PKCS#8).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub public: PublicKey,
}

impl SigningKey {
    /// From PKCS#8 DER (as `ring` generates and `fleetctl ca signing-key` writes).
    pub fn from_pkcs8(der: &[u8], comment: &str) -> Result<SigningKey, SigError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| SigError::BadKey(format!("PKCS#8 Ed25519 key: {e}")))?;
        let key: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| SigError::BadKey("public key length".into()))?;
        Ok(SigningKey {
            pair,
            public: PublicKey {
                key,
                comment: comment.into(),
            },
        })
    }

    /// A new key as PKCS#8 DER.
    pub fn generate_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the system random number generator failed")
            .as_ref()
            .to_vec()
    }

    /// An armored SSHSIG signature of `message` in `namespace`.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> String {
        let sig = self.pair.sign(&signed_data(namespace, message));
        let mut inner = Vec::new();
        put_string(&mut inner, KEY_TYPE.as_bytes());
        put_string(&mut inner, sig.as_ref());
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut blob, &self.public.blob());
        put_string(&mut blob, namespace.as_bytes());
        put_string(&mut blob, b"");
        put_string(&mut blob, HASH.as_bytes());
        put_string(&mut blob, &inner);
        armor(&blob)
    }
}

fn armor(blob: &[u8]) -> String {
    let b = B64.encode(blob);
    let mut s = String::from(BEGIN);
    s.push('\n');
    for chunk in b.as_bytes().chunks(70) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
    s
}

/// Verifies an armored SSHSIG signature of `message` in `namespace` by one of
/// `trusted`; returns the key that signed.
pub fn verify<'k>(
    armored: &str,
    namespace: &str,
    message: &[u8],
    trusted: &'k [PublicKey],
) -> Result<&'k PublicKey, SigError> {
    let body: String = armored
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|s| s.strip_suffix(END))
        .ok_or_else(|| SigError::Malformed("no SSH SIGNATURE armor".into()))?
        .split_whitespace()
        .collect();
    let blob = B64
        .decode(body)
        .map_err(|e| SigError::Malformed(format!("base64: {e}")))?;
    let mut r = Reader(&blob);
    if r.take(6)? != MAGIC {
        return Err(SigError::Malformed("no SSHSIG preamble".into()));
    }
    if r.u32()? != 1 {
        return Err(SigError::Malformed("unknown SSHSIG version".into()));
    }
    let key = PublicKey::from_blob(r.string()?, "")?;
    let ns = r.string()?;
    if ns != namespace.as_bytes() {
        return Err(SigError::Namespace {
            got: String::from_utf8_lossy(ns).into(),
            want: namespace.into(),
        });
    }
    let _reserved = r.string()?;
    let hash = r.string()?;
    if hash != HASH.as_bytes() {
        return Err(SigError::Malformed(format!(
            "hash {:?} (only sha512)",
            String::from_utf8_lossy(hash)
        )));
    }
    let mut s = Reader(r.string()?);
    if s.string()? != KEY_TYPE.as_bytes() {
        return Err(SigError::Malformed("signature is not ssh-ed25519".into()));
    }
    let sig = s.string()?;
    let found = trusted
        .iter()
        .find(|t| t.key == key.key)
        .ok_or_else(|| SigError::Untrusted(key.fingerprint()))?;
    UnparsedPublicKey::new(&ED25519, key.key)
        .verify(&signed_data(namespace, message), sig)
        .map_err(|_| SigError::Invalid(key.fingerprint()))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(comment: &str) -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8(), comment).unwrap()
    }

    #[test]
    fn sign_verify_and_every_refusal() {
        let k = key("fleet-hub");
        let other = key("other");
        let sig = k.sign("fleet-state", b"hello");
        let trusted = vec![other.public.clone(), k.public.clone()];
        assert_eq!(
            verify(&sig, "fleet-state", b"hello", &trusted).unwrap(),
            &k.public
        );
        assert!(matches!(
            verify(&sig, "fleet-state", b"hellO", &trusted),
            Err(SigError::Invalid(_))
        ));
        assert!(matches!(
            verify(&sig, "git", b"hello", &trusted),
            Err(SigError::Namespace { .. })
        ));
        assert!(matches!(
            verify(&sig, "fleet-state", b"hello", &[other.public.clone()]),
            Err(SigError::Untrusted(_))
        ));
        assert!(matches!(
            verify("junk", "fleet-state", b"hello", &trusted),
            Err(SigError::Malformed(_))
        ));
        // Keys round-trip through their OpenSSH line and trust files.
        let line = k.public.to_openssh();
        assert_eq!(PublicKey::parse(&line).unwrap(), k.public);
        let file = format!(
            "# hub keys\n\nhub@example {}\n{line}\n",
            other.public.to_openssh()
        );
        let keys = parse_keys(&file).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key, other.public.key);
        assert!(parse_keys("ssh-rsa AAAA x").unwrap_err().contains("line 1"));
    }

    /// Against the real `ssh-keygen -Y` both ways (SKIPPED without it).
    #[test]
    fn ssh_keygen_verifies_ours_and_we_verify_its() {
        let Ok(out) = std::process::Command::new("ssh-keygen").arg("-?").output() else {
            eprintln!("SKIPPED: ssh-keygen is not installed");
            return;
        };
        drop(out);
        let dir = std::env::temp_dir().join(format!("fleet-sshsig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let k = key("fleet-hub");
        std::fs::write(dir.join("msg"), b"the state\n").unwrap();
        std::fs::write(dir.join("msg.sig"), k.sign("fleet-state", b"the state\n")).unwrap();
        std::fs::write(
            dir.join("allowed"),
            format!("fleet-hub {}\n", k.public.to_openssh()),
        )
        .unwrap();
        let verify_cmd = |sig: &str, ns: &str| {
            std::process::Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(dir.join("allowed"))
                .args(["-I", "fleet-hub", "-n", ns, "-s"])
                .arg(dir.join(sig))
                .stdin(std::fs::File::open(dir.join("msg")).unwrap())
                .output()
                .unwrap()
        };
        let out = verify_cmd("msg.sig", "fleet-state");
        assert!(
            out.status.success(),
            "ssh-keygen refused our signature: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!verify_cmd("msg.sig", "git").status.success());
        // And ssh-keygen's signature, verified here.
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f"])
            .arg(dir.join("id"))
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::remove_file(dir.join("msg.sig")).unwrap();
        let st = std::process::Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "fleet-state", "-f"])
            .arg(dir.join("id"))
            .arg(dir.join("msg"))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let pubkey =
            PublicKey::parse(&std::fs::read_to_string(dir.join("id.pub")).unwrap()).unwrap();
        let theirs = std::fs::read_to_string(dir.join("msg.sig")).unwrap();
        verify(&theirs, "fleet-state", b"the state\n", &[pubkey]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
