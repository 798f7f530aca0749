//! A bundle: one cluster's signed desired state as one file, to carry across
//! an air gap. A plain tar archive (in memory; no filesystem here) of:
//!
//! | file | what |
//! |---|---|
//! | `state.pb` | the encoded `DesiredState` |
//! | `statement.json` | the hub's provenance statement; its subjects are the state digest and `state.pb`'s sha256 |
//! | `statement.json.sig` | SSHSIG of `statement.json`, namespace `fleet-state` |
//! | `SHA256SUMS` | `sha256sum` lines for `state.pb` and `statement.json` |
//! | `SHA256SUMS.sig` | SSHSIG of `SHA256SUMS`, namespace [`SUMS_NAMESPACE`] |
//! | `allowed_signers` | the signing key as an `ssh-keygen` allowed-signers line (a convenience; verifiers use their own copy) |
//!
//! So a site can check a bundle with standard tools alone:
//! `ssh-keygen -Y verify -f allowed_signers -I fleet-hub -n fleet-bundle -s SHA256SUMS.sig < SHA256SUMS && sha256sum -c SHA256SUMS`.

use std::io::Read as _;

use crate::sshsig::SigningKey;

pub const STATE: &str = "state.pb";
pub const STATEMENT: &str = "statement.json";
pub const STATEMENT_SIG: &str = "statement.json.sig";
pub const SUMS: &str = "SHA256SUMS";
pub const SUMS_SIG: &str = "SHA256SUMS.sig";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
/// The SSHSIG namespace of `SHA256SUMS.sig`.
pub const SUMS_NAMESPACE: &str = "fleet-bundle";
/// The principal `allowed_signers` names.
pub const PRINCIPAL: &str = "fleet-hub";
/// Bundles larger than this are refused when read.
pub const MAX_BUNDLE: usize = 1024 * 1024 * 1024;

/// The files of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub state: Vec<u8>,
    pub statement: Vec<u8>,
    pub signature: String,
}

pub fn sha256_hex(b: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn sums(state: &[u8], statement: &[u8]) -> String {
    format!(
        "{}  {STATE}\n{}  {STATEMENT}\n",
        sha256_hex(state),
        sha256_hex(statement)
    )
}

/// Packs a bundle; `statement` must already name `state`'s sha256 (see
/// `provenance::Facts::state_file_sha256`) and be signed by `key`.
pub fn pack(state: &[u8], statement: &[u8], signature: &str, key: &SigningKey) -> Vec<u8> {
    let sums = sums(state, statement);
    let sums_sig = key.sign(SUMS_NAMESPACE, sums.as_bytes());
    let allowed = format!("{PRINCIPAL} {}\n", key.public.to_openssh());
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (STATE, state),
        (STATEMENT, statement),
        (STATEMENT_SIG, signature.as_bytes()),
        (SUMS, sums.as_bytes()),
        (SUMS_SIG, sums_sig.as_bytes()),
        (ALLOWED_SIGNERS, allowed.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data)
            .expect("writing a tar into memory");
    }
    b.into_inner().expect("writing a tar into memory")
}

/// Reads a bundle's files (the signatures are checked by the caller).
pub fn unpack(bytes: &[u8]) -> Result<Bundle, String> {
    if bytes.len() > MAX_BUNDLE {
        return Err(format!(
            "{} bytes is over the 1 GiB bundle limit",
            bytes.len()
        ));
    }
    let mut a = tar::Archive::new(bytes);
    let (mut state, mut statement, mut signature) = (None, None, None);
    for entry in a.entries().map_err(|e| format!("not a tar archive: {e}"))? {
        let mut e = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let name = e
            .path()
            .map_err(|e| format!("bad file name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data)
            .map_err(|e| format!("reading {name}: {e}"))?;
        match name.as_str() {
            STATE => state = Some(data),
            STATEMENT => statement = Some(data),
            STATEMENT_SIG => {
                signature = Some(
                    String::from_utf8(data).map_err(|_| format!("{STATEMENT_SIG} is not text"))?,
                )
            }
            _ => {}
        }
    }
    let missing = |what: &str| format!("the bundle has no {what}");
    Ok(Bundle {
        state: state.ok_or_else(|| missing(STATE))?,
        statement: statement.ok_or_else(|| missing(STATEMENT))?,
        signature: signature.ok_or_else(|| missing(STATEMENT_SIG))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack() {
        let k = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8(), "hub").unwrap();
        let b = pack(b"state", b"{}", "sig", &k);
        assert_eq!(
            unpack(&b).unwrap(),
            Bundle {
                state: b"state".to_vec(),
                statement: b"{}".to_vec(),
                signature: "sig".into()
            }
        );
        assert!(unpack(b"junk").is_err());
        assert!(unpack(&pack(b"", b"", "", &k)[..512]).is_err());
    }
}
