//! The hub's commit signature policy (`--allowed-signers`): the deployed
//! commit must carry an SSH signature (`git commit -S` with
//! `gpg.format=ssh`) by a key in an ssh-keygen allowed_signers file. An
//! unsigned or wrongly signed commit is not rendered; status names it and
//! why; the last good states stay served. Pure: the caller hands in the raw
//! commit object. OpenPGP signatures are refused as not SSH.

use fleet_proto::sshsig::{self, PublicKey};

/// Git signs SSH commit signatures in this namespace.
pub const GIT_NAMESPACE: &str = "git";

/// Splits a raw commit object into its `gpgsig` signature (armored) and the
/// signed payload (the object without that header). `None`: unsigned.
pub fn split(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(raw).ok()?;
    let header_end = text.find("\n\n").map(|i| i + 1).unwrap_or(text.len());
    let (headers, rest) = text.split_at(header_end);
    let mut payload = String::with_capacity(raw.len());
    let mut sig: Option<Vec<&str>> = None;
    let mut in_sig = false;
    for line in headers.split_inclusive('\n') {
        if in_sig {
            if let Some(cont) = line.strip_prefix(' ') {
                sig.as_mut()
                    .expect("in a signature")
                    .push(cont.trim_end_matches('\n'));
                continue;
            }
            in_sig = false;
        }
        if let Some(first) = line.strip_prefix("gpgsig ") {
            sig = Some(vec![first.trim_end_matches('\n')]);
            in_sig = true;
            continue;
        }
        payload.push_str(line);
    }
    payload.push_str(rest);
    sig.map(|lines| (lines.join("\n"), payload.into_bytes()))
}

pub struct CommitPolicy {
    keys: Vec<PublicKey>,
}

impl CommitPolicy {
    /// From an allowed_signers file's text; an error names the line.
    pub fn parse(text: &str) -> Result<CommitPolicy, String> {
        let keys = sshsig::parse_keys(text)?;
        if keys.is_empty() {
            return Err("no ssh-ed25519 key".into());
        }
        Ok(CommitPolicy { keys })
    }

    /// The signer (its principal or key fingerprint), or why the commit is refused.
    pub fn check(&self, raw: &[u8]) -> Result<String, String> {
        let Some((sig, payload)) = split(raw) else {
            return Err("the commit is not signed (the hub requires SSH-signed commits)".into());
        };
        if !sig.starts_with("-----BEGIN SSH SIGNATURE-----") {
            return Err("the commit's signature is not an SSH signature".into());
        }
        let k = sshsig::verify(&sig, GIT_NAMESPACE, &payload, &self.keys)
            .map_err(|e| format!("the commit's signature: {e}"))?;
        Ok(if k.comment.is_empty() {
            k.fingerprint()
        } else {
            k.comment.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_header_is_cut_out_of_the_payload() {
        let raw = b"tree 1\nparent 2\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\n\nmessage\n\nbody\n";
        let (sig, payload) = split(raw).unwrap();
        assert_eq!(
            sig,
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----"
        );
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            "tree 1\nparent 2\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nmessage\n\nbody\n"
        );
        assert!(split(b"tree 1\n\nmsg\n").is_none());
    }
}
